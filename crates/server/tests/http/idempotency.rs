//! `Idempotency-Key`: replays, reuse with another request, a duplicate in flight, tenancy.

use access::{AccessStore, Claim};
use axum::http::StatusCode;
use ledger::Clock;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

const BANK: u128 = 1;
const ALICE: u128 = 2;
const BOB: u128 = 3;

async fn world(app: &App) -> String {
    funded_acme_world(app).await
}

/// A transfer body without an id: the id is derived from the Idempotency-Key.
fn no_id(debit: u128, credit: u128, amount: u64) -> Value {
    let mut body = transfer_body(0, debit, credit, amount);
    body.as_object_mut().expect("object").remove("id");
    body
}

async fn entries(app: &App, key: &str, account: u128) -> usize {
    let r = app.get(&format!("/v1/accounts/{account}/entries"), key).await;
    r.json["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_replay_returns_the_first_response_and_does_nothing_twice() {
    let app = App::new();
    let key = world(&app).await;
    let request =
        Req::post("/v1/transfers").key(&key).idem("pay-bob-1").json(&no_id(ALICE, BOB, 100));
    let first = app.call(request.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.replayed(), Some("false"));
    let after_first = app.fingerprint().await;
    for _ in 0..3 {
        app.clock.advance_secs(3600);
        let again = app.call(request.clone()).await;
        assert_eq!(again.status, first.status);
        assert_eq!(again.body, first.body, "byte for byte");
        assert_eq!(again.replayed(), Some("true"));
        assert!(again.header("content-type").is_some_and(|v| v.starts_with("application/json")));
    }
    assert_eq!(app.fingerprint().await, after_first);
    assert_eq!(app.posted(BOB).await, (0, 100));
    assert_eq!(entries(&app, &key, BOB).await, 1);
    // A different key is a different request: it moves money again, under another id.
    let other = app
        .call(Req::post("/v1/transfers").key(&key).idem("pay-bob-2").json(&no_id(ALICE, BOB, 100)))
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json["id"], first.json["id"]);
    assert_eq!(app.posted(BOB).await, (0, 200));
}

#[tokio::test]
async fn every_post_endpoint_replays() {
    let app = App::new();
    let key = world(&app).await;
    app.hold(&key, 7, ALICE, BOB, 100).await;
    app.hold(&key, 8, ALICE, BOB, 100).await;
    let requests = [
        Req::post("/v1/assets").key(&app.admin).json(&json!({"code": "EUR", "scale": 2})),
        Req::post("/v1/chart")
            .key(&app.admin)
            .json(&json!({"code": 4001, "name": "x", "class": "equity"})),
        Req::post("/v1/accounts").key(&key).json(
            &json!({"id": "9", "asset": "CNY", "chart_code": 2241, "rule": {"type": "unbounded"}}),
        ),
        Req::post("/v1/transfers/batch")
            .key(&key)
            .json(&json!({"transfers": [no_id(ALICE, BOB, 1), no_id(ALICE, BOB, 2)]})),
        Req::post("/v1/transfers/7/post").key(&key).json(&json!({"amount": "40"})),
        Req::post("/v1/transfers/8/void").key(&key),
        Req::post("/v1/keys")
            .key(&app.admin)
            .json(&json!({"tenant": "acme", "mode": "live", "scopes": ["ledger:read"]})),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let request = request.idem(&format!("k-{i}"));
        let first = app.call(request.clone()).await;
        assert!(first.status.is_success(), "{} {first:?}", request.path);
        assert_eq!(first.replayed(), Some("false"));
        let state = app.fingerprint().await;
        let again = app.call(request.clone()).await;
        // A secret is shown once: the replay has every other field.
        let mut expected = first.json.clone();
        if let Some(fields) = expected.as_object_mut() {
            fields.remove("secret");
        }
        assert_eq!((again.status, &again.json), (first.status, &expected), "{}", request.path);
        assert_eq!(again.replayed(), Some("true"), "{}", request.path);
        assert_eq!(app.fingerprint().await, state, "{}", request.path);
    }
    // One batch of two (ids derived per item), one partial post, one void: Bob got 1 + 2 + 40.
    assert_eq!(app.posted(BOB).await, (0, 43));
    // The key creation replayed its response: one key, not two.
    let keys = app.get("/v1/keys", &app.admin).await;
    assert_eq!(keys.json["data"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_rejection_is_replayed_too() {
    let app = App::new();
    let key = world(&app).await;
    let request =
        Req::post("/v1/transfers").key(&key).idem("too-much").json(&no_id(ALICE, BOB, 5000));
    let first = app.call(request.clone()).await;
    assert_error(&first, 422, "exceeds_credits");
    assert_eq!(first.replayed(), Some("false"));
    // Even after a top-up the same key answers the first response, and moves nothing.
    app.pay(&key, 2, BANK, ALICE, 10_000).await;
    let before = app.fingerprint().await;
    let again = app.call(request).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(again.replayed(), Some("true"));
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422() {
    let app = App::new();
    let key = world(&app).await;
    let first = app
        .call(Req::post("/v1/transfers").key(&key).idem("k").json(&no_id(ALICE, BOB, 100)))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = app.fingerprint().await;
    let others = [
        // Another body.
        Req::post("/v1/transfers").json(&no_id(ALICE, BOB, 101)),
        // The same JSON, formatted differently: a different request body.
        Req::post("/v1/transfers")
            .raw(serde_json::to_vec_pretty(&no_id(ALICE, BOB, 100)).expect("json")),
        // Another endpoint with the same body.
        Req::post("/v1/transfers/batch").json(&no_id(ALICE, BOB, 100)),
        Req::post("/v1/accounts").json(&no_id(ALICE, BOB, 100)),
    ];
    for request in others {
        let r = app.call(request.key(&key).idem("k")).await;
        assert_error(&r, 422, "idempotency_key_reused");
        assert_ne!(r.replayed(), Some("true"));
    }
    assert_eq!(app.fingerprint().await, before);
    // The first request still replays.
    let again = app
        .call(Req::post("/v1/transfers").key(&key).idem("k").json(&no_id(ALICE, BOB, 100)))
        .await;
    assert_eq!(again.body, first.body);
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_flight_is_409() {
    let app = App::new();
    let key = world(&app).await;
    let before = app.fingerprint().await;
    let body = no_id(ALICE, BOB, 100);
    let bytes = serde_json::to_vec(&body).expect("json");
    // Claim the key as the first request would, then send the duplicate.
    let hash: [u8; 32] = Sha256::new()
        .chain_update(b"POST /v1/transfers")
        .chain_update([0])
        .chain_update(&bytes)
        .finalize()
        .into();
    let scope = app.scope_of(&key);
    let claim = app
        .access
        .claim_idempotency(&scope, "busy", hash, app.clock.now().0, server::NODE_DEFAULT)
        .expect("claim");
    assert_eq!(claim, Claim::New);
    let request = Req::post("/v1/transfers").key(&key).idem("busy").raw(bytes);
    let r = app.call(request.clone()).await;
    assert_error(&r, 409, "idempotency_key_in_use");
    // Whatever the body: the key is busy.
    let r = app
        .call(Req::post("/v1/transfers").key(&key).idem("busy").json(&no_id(ALICE, BOB, 1)))
        .await;
    assert_error(&r, 409, "idempotency_key_in_use");
    assert_eq!(app.fingerprint().await, before);
    // The first request finishes: the duplicate now gets its answer.
    app.access.complete_idempotency(&scope, "busy", 201, b"{\"first\":true}").expect("complete");
    let r = app.call(request).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(&r.body[..], b"{\"first\":true}");
    assert_eq!(r.replayed(), Some("true"));
    assert_eq!(app.fingerprint().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_duplicate_is_409_and_the_first_completes() {
    let app = App::with_config(ledger::PipelineConfig {
        expiry_poll_interval_ms: 10,
        ..ledger::PipelineConfig::default()
    });
    let key = world(&app).await;
    let request =
        Req::post("/v1/transfers").key(&key).idem("together").json(&no_id(ALICE, BOB, 100));
    // The idle writer stalls at the gate; then the first request claims its key and waits in
    // the queue.
    app.control.set(Mode::Closed);
    app.eventually("the writer to stall", || app.control.waiting() > 0).await;
    let first = app.spawn(request.clone());
    app.eventually("the first request to be queued", || app.state.ledger.queue_fill() > 0.0).await;
    let r = app.call(request.clone()).await;
    assert_error(&r, 409, "idempotency_key_in_use");
    app.control.set(Mode::Open);
    let first = first.await.expect("first");
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let again = app.call(request).await;
    assert_eq!(again.body, first.body);
    assert_eq!(again.replayed(), Some("true"));
    assert_eq!(app.posted(BOB).await, (0, 100));
}

#[tokio::test]
async fn an_abandoned_claim_is_taken_over_after_a_minute() {
    let app = App::new();
    let key = world(&app).await;
    let scope = app.scope_of(&key);
    app.access
        .claim_idempotency(&scope, "crashed", [1; 32], app.clock.now().0, "a-node-that-died")
        .expect("claim");
    let request =
        Req::post("/v1/transfers").key(&key).idem("crashed").json(&no_id(ALICE, BOB, 100));
    assert_error(&app.call(request.clone()).await, 409, "idempotency_key_in_use");
    app.clock.advance_secs(61);
    let r = app.call(request).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(app.posted(BOB).await, (0, 100));
}

#[tokio::test]
async fn keys_are_scoped_per_tenant() {
    let app = App::new();
    let a = world(&app).await;
    let b = app.rw_key("globex");
    app.bank(&b, 101, CNY).await;
    app.wallet(&b, 102, CNY).await;
    let ra = app
        .call(Req::post("/v1/transfers").key(&a).idem("shared").json(&no_id(BANK, BOB, 10)))
        .await;
    assert_eq!(ra.status, StatusCode::CREATED);
    // The same key in another tenant is a fresh request: not replayed, not "reused".
    let rb = app
        .call(Req::post("/v1/transfers").key(&b).idem("shared").json(&no_id(101, 102, 20)))
        .await;
    assert_eq!(rb.status, StatusCode::CREATED, "{rb:?}");
    assert_eq!(rb.replayed(), Some("false"));
    assert_ne!(ra.json["id"], rb.json["id"], "derived ids include the tenant");
    // Even with a byte-identical request B does not get A's response.
    let identical = app
        .call(Req::post("/v1/transfers").key(&b).idem("shared-2").json(&no_id(BANK, BOB, 10)))
        .await;
    assert_error(&identical, 404, "resource_missing");
    let ra2 = app
        .call(Req::post("/v1/transfers").key(&a).idem("shared-2").json(&no_id(BANK, BOB, 10)))
        .await;
    assert_eq!(ra2.status, StatusCode::CREATED, "{ra2:?}");
    assert_eq!(ra2.replayed(), Some("false"));
    assert_eq!(app.posted(BOB).await, (0, 20));
    assert_eq!(app.balances_of("globex", 102).await["credits_posted"], json!("20"));
}

#[tokio::test]
async fn ids_derive_from_the_key() {
    let app = App::new();
    let key = world(&app).await;
    app.hold(&key, 7, ALICE, BOB, 100).await;
    // Without a key each request is new.
    let x = app.post("/v1/transfers", &key, &no_id(ALICE, BOB, 1)).await;
    let y = app.post("/v1/transfers", &key, &no_id(ALICE, BOB, 1)).await;
    assert_ne!(x.json["id"], y.json["id"]);
    assert_eq!(app.posted(BOB).await, (0, 2));
    // A post with a key and no id derives its id; the derived transfer is found again.
    let r = app.call(Req::post("/v1/transfers/7/post").key(&key).idem("settle-7")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.json["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/v1/transfers/{id}"), &key).await.json, r.json);
}

#[tokio::test]
async fn a_bad_idempotency_key_is_400() {
    let app = App::new();
    let key = world(&app).await;
    let before = app.fingerprint().await;
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"has space".to_vec(),
        b"tab\there".to_vec(),
        "ключ".as_bytes().to_vec(),
        vec![b'k'; 256],
    ];
    for value in bad {
        for request in [
            Req::post("/v1/transfers").json(&no_id(ALICE, BOB, 1)),
            Req::post("/v1/accounts").json(&json!({"id": "9", "asset": "CNY", "chart_code": 2241, "rule": {"type": "unbounded"}})),
            Req::post("/v1/transfers/batch").json(&json!({"transfers": [no_id(ALICE, BOB, 1)]})),
        ] {
            let r = app.call(request.key(&key).header("idempotency-key", &value)).await;
            assert_error(&r, 400, "invalid_idempotency_key");
            assert_eq!(r.json["error"]["param"], json!("Idempotency-Key"));
        }
    }
    assert_eq!(app.fingerprint().await, before);
    // 255 visible characters are fine.
    let longest: String = (0..255).map(|i| char::from(b'!' + (i % 94) as u8)).collect();
    let r = app
        .call(Req::post("/v1/transfers").key(&key).idem(&longest).json(&no_id(ALICE, BOB, 1)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn a_replay_does_not_bypass_the_scope_check() {
    let app = App::new();
    let request = Req::post("/v1/keys")
        .idem("new-key-1")
        .json(&json!({"tenant": "acme", "mode": "live", "scopes": ["admin"]}));
    let created = app.call(request.clone().key(&app.admin)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let secret = created.json["secret"].as_str().expect("secret").to_string();
    // A read-only key of the admin's tenant sends the same request with the same key.
    let reader = app.key("platform", &[access::Scope::LedgerRead]);
    let r = app.call(request.key(&reader)).await;
    assert!(!String::from_utf8_lossy(&r.body).contains(&secret), "secret leaked: {r:?}");
    assert_error(&r, 403, "missing_scope");
}
