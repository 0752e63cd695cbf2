//! Hot-account layouts over HTTP: opening one, reads summed (sub-accounts) or split into
//! spendable and buffered, rows hidden from transfers, and a tenant sees its rows' transfers.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

const BANK: u128 = 1;
const ALICE: u128 = 2;
const SHOP: u128 = 50;
const TILL: u128 = 51;

async fn open_hot(app: &App, key: &str, id: u128, layout: serde_json::Value) -> Resp {
    let body = json!({"id": id.to_string(), "asset": CNY, "chart_code": WALLET_CHART,
        "rule": {"type": "debits_within_credits", "overdraft_minor": "0"}, "layout": layout});
    app.post("/v1/accounts", key, &body).await
}

#[tokio::test]
async fn sub_accounts_and_buffers_over_http() {
    let app = App::new();
    app.books().await;
    let key = app.rw_key("acme");
    app.bank(&key, BANK, CNY).await;
    app.wallet(&key, ALICE, CNY).await;
    app.pay(&key, 1, BANK, ALICE, 10_000).await;

    let r = open_hot(&app, &key, SHOP, json!({"type": "sub_accounts", "count": 4})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["layout"], json!({"type": "sub_accounts", "count": 4}));
    let r = open_hot(&app, &key, 60, json!({"type": "sub_accounts", "count": 99})).await;
    assert_error(&r, 422, "layout_invalid");
    let r = open_hot(&app, &key, 61, json!({"type": "row", "of": "50", "row": 1})).await;
    assert_error(&r, 422, "layout_invalid");

    for n in 0..6u128 {
        app.pay(&key, 10 + n, ALICE, SHOP, 100).await;
    }
    let shop = app.get(&format!("/v1/accounts/{SHOP}"), &key).await;
    assert_eq!(shop.status, StatusCode::OK, "{shop:?}");
    assert_eq!(shop.json["balances"]["available_credit"], json!("600"), "summed over rows");
    assert!(shop.json.get("buffered").is_none());
    let seq = shop.json["opened_seq"].as_str().expect("seq").to_string();
    let now = app.get(&format!("/v1/accounts/{SHOP}/balance"), &key).await;
    assert_eq!(now.json["balances"]["available_credit"], json!("600"), "{now:?}");
    let head = app.get(&format!("/v1/accounts/{SHOP}/balance?as_of_seq=1000000"), &key).await;
    assert_eq!(head.json["balances"]["available_credit"], json!("600"), "summed as of a point");
    let opened = app.get(&format!("/v1/accounts/{SHOP}/balance?as_of_seq={seq}"), &key).await;
    assert_eq!(opened.json["balances"]["available_credit"], json!("0"), "{opened:?}");
    // Paid from all rows at once.
    app.pay(&key, 20, SHOP, ALICE, 600).await;
    let row = shop.json["rows"][1].as_str().expect("row id").to_string();
    // A row is the ledger's own: shown to the owner, never a transfer's party.
    let r = app.get(&format!("/v1/accounts/{row}"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["layout"]["of"], json!("50"));
    let r = app.get("/v1/transfers/20", &key).await;
    assert_eq!(r.status, StatusCode::OK, "the owner sees its rows' transfers: {r:?}");
    let other = app.rw_key("globex");
    assert_error(&app.get(&format!("/v1/accounts/{row}"), &other).await, 404, "resource_missing");
    let body = json!({"type": "post", "id": "30", "debit_account_id": row,
        "credit_account_id": ALICE.to_string(), "asset": CNY, "amount": "1"});
    assert_error(&app.post("/v1/transfers", &key, &body).await, 404, "debit_account_not_found");

    let r = open_hot(&app, &key, TILL, json!({"type": "buffered", "count": 2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    app.pay(&key, 40, ALICE, TILL, 250).await;
    // Folded within the writer's fold interval (100 ms); until then shown as buffered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let till = app.get(&format!("/v1/accounts/{TILL}"), &key).await;
        let spendable = till.json["balances"]["available_credit"].clone();
        let waiting = till.json["buffered"]["credits_posted"].as_str().map(str::to_string);
        if spendable == json!("250") {
            break;
        }
        assert_eq!(spendable, json!("0"), "{till:?}");
        assert_eq!(waiting.as_deref(), Some("250"), "{till:?}");
        assert!(std::time::Instant::now() < deadline, "never folded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.pay(&key, 41, TILL, ALICE, 250).await;

    // Another tenant cannot reach an account's rows: the id the owner sees for a row is, in
    // the other tenant's namespace, just a fresh id of its own.
    let till = app.get(&format!("/v1/accounts/{TILL}"), &key).await;
    let till_row = till.json["rows"][1].as_str().expect("row id").to_string();
    let claim_row = json!({"id": till_row, "asset": CNY, "chart_code": WALLET_CHART,
        "rule": {"type": "unbounded"}});
    let r = app.post("/v1/accounts", &other, &claim_row).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = app.get(&format!("/v1/accounts/{till_row}"), &key).await;
    assert_eq!(r.json["layout"]["of"], json!(TILL.to_string()), "the owner's row is intact");
    // The rows of a new account are derived from its ledger id and shown in the owner's ids.
    let r = open_hot(&app, &key, 70, json!({"type": "buffered", "count": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let row = ledger::AccountId::new(app.ledger_id("acme", 70)).expect("id").row(1).get();
    assert_eq!(r.json["rows"], json!(["70", app.client_id("acme", row).to_string()]));
    let path = format!("/v1/accounts/{}", app.client_id("acme", row));
    assert_error(&app.get(&path, &other).await, 404, "resource_missing");
    assert_eq!(app.get(&path, &key).await.status, StatusCode::OK);
    let verify = app.post("/v1/journal/verify", &app.admin, &json!({})).await;
    assert_eq!(verify.status, StatusCode::OK, "{verify:?}");
    assert_eq!(verify.json["ok"], json!(true), "{verify:?}");
}
