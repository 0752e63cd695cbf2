//! Cross-tenant access (BOLA): another tenant's key gets 404 on everything of tenant A,
//! cannot move money in or out of A's accounts, and cannot resolve A's holds. Admin sees all.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

const A_BANK: u128 = 1;
const A_ALICE: u128 = 2;
const A_BOB: u128 = 3;
const B_BANK: u128 = 101;
const B_WALLET: u128 = 102;

struct Tenants {
    a: String,
    b: String,
}

/// Tenants acme (A) and globex (B), each with a bank and wallets; A has a posted transfer 1
/// and a hold 7 of 100 from Alice to Bob.
async fn tenants(app: &App) -> Tenants {
    app.books().await;
    let a = app.rw_key("acme");
    let b = app.rw_key("globex");
    app.bank(&a, A_BANK, CNY).await;
    app.wallet(&a, A_ALICE, CNY).await;
    app.wallet(&a, A_BOB, CNY).await;
    app.bank(&b, B_BANK, CNY).await;
    app.wallet(&b, B_WALLET, CNY).await;
    app.pay(&a, 1, A_BANK, A_ALICE, 1000).await;
    app.hold(&a, 7, A_ALICE, A_BOB, 100).await;
    app.pay(&b, 201, B_BANK, B_WALLET, 500).await;
    Tenants { a, b }
}

#[tokio::test]
async fn another_tenant_cannot_read_accounts_entries_balances_or_transfers() {
    let app = App::new();
    let t = tenants(&app).await;
    let paths = [
        "/v1/accounts/2",
        "/v1/accounts/2/entries",
        "/v1/accounts/2/entries?limit=1",
        "/v1/accounts/2/balance",
        "/v1/accounts/2/balance?as_of_seq=1",
        "/v1/accounts/2/balance?as_of=2025-11-24T16:00:00Z",
        "/v1/transfers/1",
        "/v1/transfers/7",
    ];
    for path in paths {
        let r = app.get(path, &t.b).await;
        assert_error(&r, 404, "resource_missing");
        // Indistinguishable from an absent id.
        let absent = app
            .get(&path.replace("/2", "/999").replace("/1", "/999").replace("/7", "/999"), &t.b)
            .await;
        assert_eq!(absent.status, r.status, "{path}");
        assert_eq!(absent.json["error"]["code"], r.json["error"]["code"], "{path}");
        // The owner and the admin see it.
        assert_eq!(app.get(path, &t.a).await.status, StatusCode::OK, "{path}");
        assert_eq!(app.get(path, &app.admin).await.status, StatusCode::OK, "{path}");
    }
    // And the other way round.
    assert_error(&app.get("/v1/accounts/102", &t.a).await, 404, "resource_missing");
    assert_error(&app.get("/v1/transfers/201", &t.a).await, 404, "resource_missing");
    assert_eq!(app.get("/v1/accounts/102", &t.b).await.status, StatusCode::OK);
}

#[tokio::test]
async fn another_tenant_cannot_move_money_in_or_out_of_foreign_accounts() {
    let app = App::new();
    let t = tenants(&app).await;
    let before = app.fingerprint().await;
    for (id, debit, credit) in [
        (300, A_ALICE, B_WALLET), // out of A
        (301, B_BANK, A_ALICE),   // into A
        (302, A_BANK, A_ALICE),   // entirely inside A
        (303, A_ALICE, A_BOB),
    ] {
        let r = app.transfer(&t.b, id, debit, credit, 10).await;
        assert_error(&r, 404, "resource_missing");
        assert_eq!(r.json["error"]["param"], json!("account_id"));
        let mut hold = transfer_body(id + 100, debit, credit, 10);
        hold["type"] = json!("pending");
        assert_error(&app.post("/v1/transfers", &t.b, &hold).await, 404, "resource_missing");
    }
    // A batch with one foreign leg is refused whole, linked or not.
    for linked in [false, true] {
        let batch = json!({"linked": linked, "transfers": [
            transfer_body(310, B_BANK, B_WALLET, 5),
            transfer_body(311, A_ALICE, B_WALLET, 5),
        ]});
        let r = app.post("/v1/transfers/batch", &t.b, &batch).await;
        assert_error(&r, 404, "resource_missing");
        assert_eq!(r.json["error"]["param"], json!("transfers[1]"));
    }
    // Tenant A cannot pull from B either.
    assert_error(&app.transfer(&t.a, 320, B_WALLET, A_ALICE, 10).await, 404, "resource_missing");
    assert_eq!(app.fingerprint().await, before);
    for id in [300, 301, 302, 303, 310, 311, 320] {
        assert_error(
            &app.get(&format!("/v1/transfers/{id}"), &app.admin).await,
            404,
            "resource_missing",
        );
    }
}

#[tokio::test]
async fn another_tenant_cannot_post_or_void_a_hold() {
    let app = App::new();
    let t = tenants(&app).await;
    let before = app.fingerprint().await;
    for (action, body) in [
        ("post", json!({})),
        ("post", json!({"id": "400", "amount": "50"})),
        ("void", json!({})),
        ("void", json!({"id": "401"})),
    ] {
        let r = app.post(&format!("/v1/transfers/7/{action}"), &t.b, &body).await;
        assert_error(&r, 404, "resource_missing");
        // Same answer as for a hold that does not exist.
        let absent = app.post(&format!("/v1/transfers/999/{action}"), &t.b, &body).await;
        assert_eq!(absent.json["error"]["code"], r.json["error"]["code"]);
    }
    assert_eq!(app.fingerprint().await, before);
    let alice = app.balances(A_ALICE).await;
    assert_eq!(alice["debits_pending"], json!("100"));
    // The owner still can.
    let r = app.post("/v1/transfers/7/post", &t.a, &json!({"amount": "60"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(app.posted(A_BOB).await, (0, 60));
}

#[tokio::test]
async fn another_tenant_cannot_take_or_probe_an_account_id() {
    let app = App::new();
    let t = tenants(&app).await;
    let before = app.fingerprint().await;
    let account_before = app.get("/v1/accounts/2", &t.a).await.json;
    let r = app.open(&t.b, A_ALICE, CNY, WALLET_CHART, json!({"type": "unbounded"})).await;
    assert_error(&r, 409, "id_taken");
    // Not even with the very same fields.
    let rule = json!({"type": "debits_within_credits", "overdraft_minor": "0"});
    let r = app.open(&t.b, A_ALICE, CNY, WALLET_CHART, rule).await;
    assert_error(&r, 409, "id_taken");
    assert!(r.json["error"].get("balances").is_none());
    assert!(!String::from_utf8_lossy(&r.body).contains("1000"), "no balances leak: {r:?}");
    assert_eq!(app.fingerprint().await, before);
    assert_eq!(app.get("/v1/accounts/2", &t.a).await.json, account_before);
}

#[tokio::test]
async fn admin_sees_and_moves_across_tenants_and_each_owner_sees_its_side() {
    let app = App::new();
    let t = tenants(&app).await;
    // The admin may move money between tenants' accounts.
    let r = app.transfer(&app.admin, 500, A_ALICE, B_WALLET, 25).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // Both owners see the transfer: it touches one of their accounts.
    assert_eq!(app.get("/v1/transfers/500", &t.a).await.json, r.json);
    assert_eq!(app.get("/v1/transfers/500", &t.b).await.json, r.json);
    // A third tenant does not.
    let c = app.rw_key("initech");
    assert_error(&app.get("/v1/transfers/500", &c).await, 404, "resource_missing");
    // Each tenant still only reads its own accounts.
    assert_error(&app.get("/v1/accounts/2/entries", &t.b).await, 404, "resource_missing");
    let entries = app.get("/v1/accounts/102/entries", &t.b).await;
    assert_eq!(entries.json["data"].as_array().map(Vec::len), Some(2));
    // The admin reads everything.
    for path in [
        "/v1/accounts/2/entries",
        "/v1/accounts/102/balance",
        "/v1/transfers/201",
        "/v1/transfers/7",
    ] {
        assert_eq!(app.get(path, &app.admin).await.status, StatusCode::OK, "{path}");
    }
    // The admin may resolve a tenant's hold.
    let r = app.post("/v1/transfers/7/void", &app.admin, &json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    app.assert_balanced().await;
}

#[tokio::test]
async fn keys_of_the_same_tenant_share_its_resources() {
    let app = App::new();
    let t = tenants(&app).await;
    let other_a = app.rw_key("acme");
    assert_eq!(app.get("/v1/accounts/2", &other_a).await.status, StatusCode::OK);
    assert_eq!(app.transfer(&other_a, 600, A_ALICE, A_BOB, 1).await.status, StatusCode::CREATED);
    assert_eq!(app.get("/v1/transfers/600", &t.a).await.status, StatusCode::OK);
}
