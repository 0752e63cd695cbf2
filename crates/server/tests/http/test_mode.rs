//! Test mode (`server::books`): a test key acts on a book of its own. It cannot read, move
//! or be paid from a live account, nor manage keys; nothing it does moves the live journal.

use access::Scope;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

/// Assets and chart lines in whichever book `admin`'s key acts on.
async fn define_books(app: &App, admin: &str) {
    let r = app.post("/v1/assets", admin, &json!({"code": CNY, "scale": 2})).await;
    assert!(r.status.is_success(), "{r:?}");
    for (code, name, class) in
        [(BANK_CHART, "bank deposits", "asset"), (WALLET_CHART, "customer wallets", "liability")]
    {
        let r = app
            .post("/v1/chart", admin, &json!({"code": code, "name": name, "class": class}))
            .await;
        assert!(r.status.is_success(), "{r:?}");
    }
}

async fn head(app: &App, key: &str) -> serde_json::Value {
    let r = app.get("/v1/journal/head", key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.json
}

#[tokio::test]
async fn a_test_key_acts_on_a_book_of_its_own() {
    let mut app = App::new();
    app.serve_test_book();
    let live = funded_acme_world(&app).await;
    let live_head = head(&app, &app.admin).await;
    assert_eq!(live_head["mode"], "live");

    let test_admin = app.test_key("platform", &[Scope::Admin]);
    let test = app.test_key("acme", &[Scope::LedgerRead, Scope::LedgerWrite]);

    // Live ids are not there for a test key: not acme's own ids, not the ledger's.
    let r = app.get(&format!("/v1/accounts/{WORLD_ALICE}"), &test).await;
    assert_error(&r, 404, "resource_missing");
    let ledger_alice = app.ledger_id("acme", WORLD_ALICE);
    let r = app.get(&format!("/v1/accounts/{ledger_alice}"), &test_admin).await;
    assert_error(&r, 404, "resource_missing");
    // Nor can it move live money, or be paid from it.
    let r = app.transfer(&test, 9, WORLD_ALICE, WORLD_BOB, 1).await;
    assert!(!r.status.is_success(), "{r:?}");
    let r = app.transfer(&test_admin, 9, ledger_alice, app.ledger_id("acme", WORLD_BOB), 1).await;
    assert!(!r.status.is_success(), "{r:?}");

    // The test book has its own assets, chart, accounts and transfers, under the same ids.
    define_books(&app, &test_admin).await;
    app.bank(&test, WORLD_BANK, CNY).await;
    app.wallet(&test, WORLD_ALICE, CNY).await;
    app.pay(&test, 1, WORLD_BANK, WORLD_ALICE, 250).await;
    let r = app.get(&format!("/v1/accounts/{WORLD_ALICE}"), &test).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["balances"]["credits_posted"], "250", "{r:?}");
    // A test transfer's id is its own: the live transfer 1 is another.
    let r = app.get("/v1/transfers/1", &live).await;
    assert_eq!(r.json["amount"], "1000", "{r:?}");

    // Live money did not move; the live journal is where it was.
    let r = app.get(&format!("/v1/accounts/{WORLD_ALICE}"), &live).await;
    assert_eq!(r.json["balances"]["credits_posted"], "1000", "{r:?}");
    assert_eq!(head(&app, &app.admin).await, live_head);
    let test_head = head(&app, &test_admin).await;
    assert_eq!(test_head["mode"], "test");
    assert_ne!(test_head["hash"], live_head["hash"]);
    let r = app.get("/v1/trial-balance", &test_admin).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.json["assets"].as_array().is_some_and(|a| a.iter().all(|a| a["balanced"] == true)));

    // A live key cannot reach the test book through its prefix.
    let r = app.get(&format!("/test/v1/accounts/{WORLD_ALICE}"), &live).await;
    assert_error(&r, 403, "live_key_in_test_mode");
    // Keys are managed with live keys only: a test key could otherwise mint a live one.
    let body = json!({"tenant": "platform", "mode": "live", "scopes": ["admin"]});
    assert_error(&app.post("/v1/keys", &test_admin, &body).await, 403, "keys_live_only");
    assert_error(&app.get("/v1/keys", &test_admin).await, 403, "keys_live_only");

    // Test traffic is labelled in the metrics.
    let metrics = app.call(Req::get("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("mode=\"test\",route=\"POST /v1/transfers\",status=\"201\""), "{text}");
    assert!(text.contains("mode=\"live\",route=\"POST /v1/transfers\",status=\"201\""));
}

#[tokio::test]
async fn test_keys_are_refused_where_no_test_book_runs() {
    let app = App::new();
    let test = app.test_key("acme", &[Scope::LedgerRead]);
    assert_error(&app.get("/v1/trial-balance", &test).await, 403, "test_mode_off");
}
