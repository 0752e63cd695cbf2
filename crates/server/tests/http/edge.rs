//! Edge defects found by trying the service from outside, one regression test each: replays
//! across keys, merchant keys on the ledger API, and pages at their maximum size.

use access::Scope;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

const BANK: u128 = 1;
const ALICE: u128 = 2;
const BOB: u128 = 3;

/// A key of tenant `acme` bound to merchant `shop`, made through the API.
async fn merchant_key(app: &App) -> String {
    let body = json!({"tenant": "acme", "mode": "live", "scopes": ["ledger:read", "ledger:write"],
        "merchant": "shop"});
    let r = app.post("/v1/keys", &app.admin, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.json["secret"].as_str().expect("secret").to_string()
}

#[tokio::test]
async fn another_key_repeating_an_idempotency_key_gets_its_own_authorisation() {
    let app = App::new();
    let key = funded_acme_world(&app).await;
    let shop = merchant_key(&app).await;
    let body = transfer_body(10, ALICE, BOB, 5);
    let first = app.call(Req::post("/v1/transfers").key(&key).idem("pay-1").json(&body)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    // The merchant's key sends the same key and body: it is not replayed the tenant's answer.
    let r = app.call(Req::post("/v1/transfers").key(&shop).idem("pay-1").json(&body)).await;
    assert_error(&r, 403, "merchant_key_forbidden");
    assert_eq!(r.replayed(), Some("false"));
    // Another key of the same tenant makes its own request (the transfer id dedupes it).
    let other = app.rw_key("acme");
    let r = app.call(Req::post("/v1/transfers").key(&other).idem("pay-1").json(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "replayed by the ledger, not the record: {r:?}");
    assert_eq!(r.replayed(), Some("false"));
    assert_eq!(app.posted(BOB).await, (0, 5));
    // The admin's stored answers (a key's secret is never stored anyway) stay the admin's.
    let created = app
        .call(Req::post("/v1/keys").key(&app.admin).idem("mk").json(&json!({"tenant": "acme",
            "mode": "live", "scopes": ["ledger:read"]})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let r = app
        .call(Req::post("/v1/keys").key(&key).idem("mk").json(&json!({"tenant": "acme",
            "mode": "live", "scopes": ["ledger:read"]})))
        .await;
    assert_error(&r, 403, "missing_scope");
}

#[tokio::test]
async fn merchant_keys_are_forbidden_on_the_ledger_api() {
    let app = App::new();
    let key = funded_acme_world(&app).await;
    let shop = merchant_key(&app).await;
    let before = app.fingerprint().await;
    for path in [
        "/v1/accounts/2",
        "/v1/accounts/2/entries",
        "/v1/accounts/2/balance",
        "/v1/transfers/1",
        // Whether or not the id exists: the answer tells nothing.
        "/v1/accounts/999",
        "/v1/transfers/999",
    ] {
        assert_error(&app.get(path, &shop).await, 403, "merchant_key_forbidden");
    }
    for (path, body) in [
        ("/v1/transfers", transfer_body(11, ALICE, BOB, 1)),
        ("/v1/transfers/batch", json!({"transfers": [transfer_body(12, ALICE, BOB, 1)]})),
        ("/v1/accounts/2/status", json!({"status": "frozen_debits"})),
        (
            "/v1/accounts",
            json!({"id": "9", "asset": CNY, "chart_code": WALLET_CHART,
            "rule": {"type": "unbounded"}}),
        ),
    ] {
        assert_error(&app.post(path, &shop, &body).await, 403, "merchant_key_forbidden");
    }
    app.hold(&key, 7, ALICE, BOB, 10).await;
    let before_hold = app.fingerprint().await;
    for action in ["post", "void"] {
        let r = app.post(&format!("/v1/transfers/7/{action}"), &shop, &json!({})).await;
        assert_error(&r, 403, "merchant_key_forbidden");
    }
    assert_eq!(app.fingerprint().await, before_hold);
    assert_ne!(before, before_hold);
}

#[tokio::test]
async fn a_page_at_the_maximum_size_knows_there_is_more() {
    let app = App::new();
    let key = funded_acme_world(&app).await;
    // Alice has one entry (the funding); 1,000 more make 1,001.
    let transfers: Vec<_> =
        (0..1_000u128).map(|n| transfer_body(100 + n, BANK, ALICE, 1)).collect();
    let r = app.post("/v1/transfers/batch", &key, &json!({"transfers": transfers})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let page = app.get("/v1/accounts/2/entries?limit=1000", &key).await;
    assert_eq!(page.json["data"].as_array().map(Vec::len), Some(1_000));
    assert_eq!(page.json["has_more"], json!(true), "at the maximum the next page is not lost");
    let last = page.json["data"][999]["seq"].as_str().expect("seq").to_string();
    let rest =
        app.get(&format!("/v1/accounts/2/entries?limit=1000&starting_after={last}"), &key).await;
    assert_eq!(rest.json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest.json["has_more"], json!(false));
    // Keys: 1,001 in all (the admin's and acme's among them).
    for _ in 0..999 {
        app.key("acme", &[Scope::LedgerRead]);
    }
    let keys = app.get("/v1/keys?limit=1000", &app.admin).await;
    assert_eq!(keys.json["data"].as_array().map(Vec::len), Some(1_000), "{:?}", keys.status);
    assert_eq!(keys.json["has_more"], json!(true));
}
