//! Signed requests (docs/api.md, Signed requests): a key created with `"signed": true` must
//! sign every request over method, path and query as sent, timestamp, nonce and body hash.

use access::Scope;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

const BANK: u128 = 1;
const ALICE: u128 = 2;
const BOB: u128 = 3;

struct Signer {
    secret: String,
    id: String,
    n: std::cell::Cell<u32>,
    /// The server verifies signatures over the path without its `/v1` prefix (a bug, see
    /// `the_signed_path_is_the_path_as_sent`): sign that way so that the other rules of the
    /// scheme stay tested. Probed, so the tests keep passing once the bug is fixed.
    strip_v1: bool,
}

impl Signer {
    /// A fresh nonce each call.
    fn nonce(&self) -> String {
        self.n.set(self.n.get() + 1);
        format!("nonce-{:016}", self.n.get())
    }

    /// The path as the server verifies it.
    fn path(&self, path: &str) -> String {
        match path.strip_prefix("/v1") {
            Some(rest) if self.strip_v1 => rest.to_string(),
            _ => path.to_string(),
        }
    }

    /// Signs `req` with this signer's key.
    fn sign(&self, req: Req, timestamp: u64, nonce: &str) -> Req {
        let secret = self.secret.clone();
        self.sign_with(req, &secret, timestamp, nonce)
    }

    /// Signs `req` with another key.
    fn sign_with(&self, req: Req, secret: &str, timestamp: u64, nonce: &str) -> Req {
        let (method, path) = (req.method.to_string(), self.path(&req.path));
        req.sign_as(secret, &method, &path, timestamp, nonce)
    }

    /// Signs with an explicit method and path (before the `/v1` mapping).
    fn sign_as(&self, req: Req, method: &str, path: &str, timestamp: u64, nonce: &str) -> Req {
        let path = self.path(path);
        req.sign_as(&self.secret, method, &path, timestamp, nonce)
    }
}

/// Books, acme's accounts (Alice holding 1000), and a signing key for acme created over HTTP.
async fn world(app: &App) -> Signer {
    app.books().await;
    let key = app.rw_key("acme");
    app.bank(&key, BANK, CNY).await;
    app.wallet(&key, ALICE, CNY).await;
    app.wallet(&key, BOB, CNY).await;
    app.pay(&key, 1, BANK, ALICE, 1000).await;
    let r = app
        .post(
            "/v1/keys",
            &app.admin,
            &json!({"tenant": "acme", "mode": "live", "scopes": ["ledger:read", "ledger:write"], "signed": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["signed"], json!(true));
    let mut signer = Signer {
        secret: r.json["secret"].as_str().expect("secret").to_string(),
        id: r.json["id"].as_str().expect("id").to_string(),
        n: std::cell::Cell::new(0),
        strip_v1: false,
    };
    let probe = |signer: &Signer| {
        signer.sign(Req::get("/v1/accounts/2").key(&signer.secret), app.now_secs(), &signer.nonce())
    };
    if app.call(probe(&signer)).await.status != StatusCode::OK {
        signer.strip_v1 = true;
        let r = app.call(probe(&signer)).await;
        assert_eq!(r.status, StatusCode::OK, "no signed path works: {r:?}");
    }
    signer
}

/// Chainable signing through a [`Signer`].
trait SignBy {
    fn sign_by(self, s: &Signer, timestamp: u64, nonce: &str) -> Req;
    fn sign_other(self, s: &Signer, secret: &str, timestamp: u64, nonce: &str) -> Req;
    fn sign_as_by(self, s: &Signer, method: &str, path: &str, timestamp: u64, nonce: &str) -> Req;
}

impl SignBy for Req {
    fn sign_by(self, s: &Signer, timestamp: u64, nonce: &str) -> Req {
        s.sign(self, timestamp, nonce)
    }

    fn sign_other(self, s: &Signer, secret: &str, timestamp: u64, nonce: &str) -> Req {
        s.sign_with(self, secret, timestamp, nonce)
    }

    fn sign_as_by(self, s: &Signer, method: &str, path: &str, timestamp: u64, nonce: &str) -> Req {
        s.sign_as(self, method, path, timestamp, nonce)
    }
}

fn pay(id: u128, amount: u64) -> Req {
    Req::post("/v1/transfers").json(&transfer_body(id, ALICE, BOB, amount))
}

#[tokio::test]
async fn a_valid_signature_is_accepted() {
    let app = App::new();
    let s = world(&app).await;
    let now = app.now_secs();
    let r = app.call(pay(50, 10).key(&s.secret).sign_by(&s, now, &s.nonce())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = app.call(Req::get("/v1/accounts/3").key(&s.secret).sign_by(&s, now, &s.nonce())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["balances"]["credits_posted"], json!("10"));
    // The query is part of what is signed, exactly as sent.
    let path = "/v1/accounts/3/entries?limit=1";
    let r = app.call(Req::get(path).key(&s.secret).sign_by(&s, now, &s.nonce())).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // An empty body (GET) and the edges of the window and of the nonce rules.
    let r = app
        .call(Req::get("/v1/transfers/50").key(&s.secret).sign_by(&s, now - 300, &s.nonce()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = app
        .call(Req::get("/v1/transfers/50").key(&s.secret).sign_by(&s, now + 300, &"a".repeat(64)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = app
        .call(Req::get("/v1/transfers/50").key(&s.secret).sign_by(&s, now, "Az09_-Az09_-Az09"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // Unsigned keys are not asked for signatures, and ignore the headers.
    let plain = app.rw_key("acme");
    let r =
        app.call(Req::get("/v1/accounts/3").key(&plain).header("qianbao-signature", "v1=00")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // A signed key may also be an admin key.
    let (_, admin) = app.key_with("platform", &[Scope::Admin], true);
    let r = app
        .call(Req::get("/v1/trial-balance").key(&admin).sign_other(&s, &admin, now, &s.nonce()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = app.call(Req::get("/v1/trial-balance").key(&admin)).await;
    assert_error(&r, 401, "signature_missing");
}

#[tokio::test]
async fn missing_signature_headers_are_401() {
    let app = App::new();
    let s = world(&app).await;
    let before = app.fingerprint().await;
    let now = app.now_secs().to_string();
    let signed = pay(50, 10).key(&s.secret).sign_by(&s, app.now_secs(), &s.nonce());
    let full: Vec<(String, Vec<u8>)> =
        signed.headers.iter().filter(|(n, _)| n.starts_with("qianbao-")).cloned().collect();
    assert_eq!(full.len(), 3);
    for missing in 0..3 {
        let mut request = pay(50, 10).key(&s.secret);
        for (i, (name, value)) in full.iter().enumerate() {
            if i != missing {
                request = request.header(name, value);
            }
        }
        assert_error(&app.call(request).await, 401, "signature_missing");
    }
    assert_error(&app.call(pay(50, 10).key(&s.secret)).await, 401, "signature_missing");
    let r =
        app.call(Req::get("/v1/accounts/2").key(&s.secret).header("qianbao-timestamp", &now)).await;
    assert_error(&r, 401, "signature_missing");
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn bad_or_mismatched_signatures_are_401_invalid() {
    let app = App::new();
    let s = world(&app).await;
    let before = app.fingerprint().await;
    let now = app.now_secs();
    let other = app.rw_key("acme");
    let body = serde_json::to_vec(&transfer_body(50, ALICE, BOB, 10)).expect("json");
    let tampered = serde_json::to_vec(&transfer_body(50, ALICE, BOB, 999)).expect("json");
    let cases: Vec<(&str, Req)> = vec![
        (
            "signed by another key",
            pay(50, 10).key(&s.secret).sign_other(&s, &other, now, &s.nonce()),
        ),
        (
            "tampered body",
            pay(50, 10).key(&s.secret).sign_by(&s, now, &s.nonce()).raw(tampered.clone()),
        ),
        (
            "body signed, none sent",
            Req::post("/v1/transfers/7/void").key(&s.secret).sign_body_as(
                &s.secret,
                "POST",
                &s.path("/v1/transfers/7/void"),
                now,
                &s.nonce(),
                b"{}",
            ),
        ),
        (
            "another path",
            Req::post("/v1/transfers/batch").key(&s.secret).raw(body.clone()).sign_as_by(
                &s,
                "POST",
                "/v1/transfers",
                now,
                &s.nonce(),
            ),
        ),
        (
            "another method",
            pay(50, 10).key(&s.secret).sign_as_by(&s, "PUT", "/v1/transfers", now, &s.nonce()),
        ),
        (
            "another query",
            Req::get("/v1/accounts/2/entries?limit=2").key(&s.secret).sign_as_by(
                &s,
                "GET",
                "/v1/accounts/2/entries?limit=1",
                now,
                &s.nonce(),
            ),
        ),
        (
            "query dropped",
            Req::get("/v1/accounts/2/entries?limit=2").key(&s.secret).sign_as_by(
                &s,
                "GET",
                "/v1/accounts/2/entries",
                now,
                &s.nonce(),
            ),
        ),
        (
            "another account",
            Req::get("/v1/accounts/2").key(&s.secret).sign_as_by(
                &s,
                "GET",
                "/v1/accounts/3",
                now,
                &s.nonce(),
            ),
        ),
        (
            "not hex",
            pay(50, 10)
                .key(&s.secret)
                .header("qianbao-timestamp", now.to_string())
                .header("qianbao-nonce", s.nonce())
                .header("qianbao-signature", "v1=zz"),
        ),
        (
            "no v1= prefix",
            pay(50, 10)
                .key(&s.secret)
                .header("qianbao-timestamp", now.to_string())
                .header("qianbao-nonce", s.nonce())
                .header("qianbao-signature", "00".repeat(32)),
        ),
        (
            "v2",
            pay(50, 10)
                .key(&s.secret)
                .header("qianbao-timestamp", now.to_string())
                .header("qianbao-nonce", s.nonce())
                .header("qianbao-signature", format!("v2={}", "00".repeat(32))),
        ),
        (
            "empty",
            pay(50, 10)
                .key(&s.secret)
                .header("qianbao-timestamp", now.to_string())
                .header("qianbao-nonce", s.nonce())
                .header("qianbao-signature", "v1="),
        ),
        (
            "timestamp not a number",
            pay(50, 10)
                .key(&s.secret)
                .header("qianbao-timestamp", "soon")
                .header("qianbao-nonce", s.nonce())
                .header("qianbao-signature", "v1=00"),
        ),
        ("timestamp in ms", pay(50, 10).key(&s.secret).sign_by(&s, now * 1000, &s.nonce())),
        ("nonce too short", pay(50, 10).key(&s.secret).sign_by(&s, now, "short-nonce-15c")),
        ("nonce too long", pay(50, 10).key(&s.secret).sign_by(&s, now, &"n".repeat(65))),
        ("nonce with a space", pay(50, 10).key(&s.secret).sign_by(&s, now, "nonce with space 1")),
        ("nonce with a dot", pay(50, 10).key(&s.secret).sign_by(&s, now, "nonce.0123456789ab")),
    ];
    for (what, request) in cases {
        let r = app.call(request).await;
        // A millisecond timestamp is far outside the window: expired rather than invalid.
        let code =
            if what == "timestamp in ms" { "signature_expired" } else { "signature_invalid" };
        assert_eq!(r.code(), code, "{what}: {r:?}");
        assert_error(&r, 401, code);
    }
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn a_timestamp_outside_the_window_is_401_expired() {
    let app = App::new();
    let s = world(&app).await;
    let before = app.fingerprint().await;
    let now = app.now_secs();
    for ts in [now - 301, now + 301, 0, now - 86_400] {
        let r = app.call(pay(50, 10).key(&s.secret).sign_by(&s, ts, &s.nonce())).await;
        assert_error(&r, 401, "signature_expired");
    }
    // Signed now, arriving after the window (the server's clock moved on).
    let late = pay(50, 10).key(&s.secret).sign_by(&s, now, &s.nonce());
    app.clock.advance_secs(301);
    assert_error(&app.call(late).await, 401, "signature_expired");
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn a_reused_nonce_is_401_replayed() {
    let app = App::new();
    let s = world(&app).await;
    let now = app.now_secs();
    let request = pay(50, 10).key(&s.secret).sign_by(&s, now, "nonce-replay-0001");
    assert_eq!(app.call(request.clone()).await.status, StatusCode::CREATED);
    let before = app.fingerprint().await;
    // The very same request again (a replay by an eavesdropper).
    assert_error(&app.call(request).await, 401, "signature_replayed");
    // A new, validly signed request that reuses the nonce.
    let r = app.call(pay(51, 10).key(&s.secret).sign_by(&s, now + 1, "nonce-replay-0001")).await;
    assert_error(&r, 401, "signature_replayed");
    let r = app
        .call(Req::get("/v1/accounts/2").key(&s.secret).sign_by(&s, now, "nonce-replay-0001"))
        .await;
    assert_error(&r, 401, "signature_replayed");
    assert_eq!(app.fingerprint().await, before);

    // Only a valid signature spends a nonce: one wasted on a bad signature is still usable.
    let bad = pay(52, 10).key(&s.secret).sign_by(&s, now, "nonce-unspent-001").raw(b"{}".to_vec());
    assert_error(&app.call(bad).await, 401, "signature_invalid");
    let expired = pay(52, 10).key(&s.secret).sign_by(&s, now - 1000, "nonce-unspent-001");
    assert_error(&app.call(expired).await, 401, "signature_expired");
    let r = app.call(pay(52, 10).key(&s.secret).sign_by(&s, now, "nonce-unspent-001")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    // Nonces are per key: another signing key may use the same one.
    let (_, second) = app.key_with("acme", &[Scope::LedgerRead], true);
    let r = app
        .call(Req::get("/v1/accounts/2").key(&second).sign_other(
            &s,
            &second,
            now,
            "nonce-replay-0001",
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test]
async fn a_signed_request_still_needs_a_live_key_and_the_scope() {
    let app = App::new();
    let s = world(&app).await;
    let now = app.now_secs();
    let (_, reader) = app.key_with("acme", &[Scope::LedgerRead], true);
    let r = app.call(pay(50, 10).key(&reader).sign_other(&s, &reader, now, &s.nonce())).await;
    assert_error(&r, 403, "missing_scope");
    let r = app.call(Req::new(Method::DELETE, &format!("/v1/keys/{}", s.id)).key(&app.admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = app.call(pay(50, 10).key(&s.secret).sign_by(&s, now, &s.nonce())).await;
    assert_error(&r, 401, "invalid_api_key");
    // Another tenant's signing key gets 404, signature or not.
    let (_, globex) = app.key_with("globex", &[Scope::LedgerRead], true);
    let r = app
        .call(Req::get("/v1/accounts/2").key(&globex).sign_other(&s, &globex, now, &s.nonce()))
        .await;
    assert_error(&r, 404, "resource_missing");
}

#[tokio::test]
async fn a_signed_request_with_a_body_over_4_mib_is_413() {
    let app = App::new();
    let s = world(&app).await;
    let before = app.fingerprint().await;
    let now = app.now_secs();
    let mut over = serde_json::to_vec(&transfer_body(50, ALICE, BOB, 10)).expect("json");
    over.resize(server::BODY_BYTES_MAX + 1, b' ');
    let r = app
        .call(Req::post("/v1/transfers").key(&s.secret).raw(over).sign_by(&s, now, &s.nonce()))
        .await;
    assert_error(&r, 413, "body_too_large");
    // Exactly the limit, signed, is accepted.
    let mut exact = serde_json::to_vec(&transfer_body(50, ALICE, BOB, 10)).expect("json");
    exact.resize(server::BODY_BYTES_MAX, b' ');
    assert_eq!(app.fingerprint().await, before);
    let r = app
        .call(Req::post("/v1/transfers").key(&s.secret).raw(exact).sign_by(&s, now, &s.nonce()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn the_signed_path_is_the_path_as_sent() {
    let app = App::new();
    let s = world(&app).await;
    let now = app.now_secs();
    // As documented: the path and query exactly as sent, /v1 included.
    let r = app.call(pay(50, 10).key(&s.secret).sign(&s.secret, now, &s.nonce())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // The path without its /v1 prefix is not what was sent.
    let r = app
        .call(pay(51, 10).key(&s.secret).sign_as(&s.secret, "POST", "/transfers", now, &s.nonce()))
        .await;
    assert_error(&r, 401, "signature_invalid");
}
