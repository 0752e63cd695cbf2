//! Cross-tenant access (BOLA): another tenant's key gets 404 on everything of tenant A,
//! cannot move money in or out of A's accounts, and cannot resolve A's holds. Admin sees all.
//! Each tenant names ids in its own namespace: two tenants may use the same ids and neither
//! notices the other; the admin names the ledger's ids.

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
        // The owner sees it; the admin under the ledger's ids.
        assert_eq!(app.get(path, &t.a).await.status, StatusCode::OK, "{path}");
        // The path's one id, replaced once (a chain of replaces could rewrite an id it put in).
        let ledger_path = if let Some(rest) = path.strip_prefix("/v1/accounts/2") {
            format!("/v1/accounts/{}{rest}", app.ledger_id("acme", A_ALICE))
        } else if let Some(id) = path.strip_prefix("/v1/transfers/") {
            let id: u128 = id.parse().expect("a transfer id");
            format!("/v1/transfers/{}", app.ledger_id("acme", id))
        } else {
            panic!("no id to map in {path}")
        };
        assert_eq!(app.get(&ledger_path, &app.admin).await.status, StatusCode::OK, "{path}");
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
async fn two_tenants_use_the_same_ids_and_neither_notices() {
    let app = App::new();
    let t = tenants(&app).await;
    let account_before = app.get("/v1/accounts/2", &t.a).await.json;
    let entries_before = app.get("/v1/accounts/2/entries", &t.a).await.json;
    // B opens its own accounts 1, 2 and 3 (A's ids), moves money under A's transfer id 1 and
    // holds under A's hold id 7: each is B's own, and A's are untouched.
    app.wallet(&t.b, A_BANK, CNY).await;
    let r = app.open(&t.b, A_ALICE, CNY, WALLET_CHART, json!({"type": "unbounded"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["id"], json!("2"), "B sees its own id");
    app.wallet(&t.b, A_BOB, CNY).await;
    let r = app.transfer(&t.b, 1, A_ALICE, A_BANK, 5).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        (&r.json["id"], &r.json["debit_account_id"], &r.json["credit_account_id"]),
        (&json!("1"), &json!("2"), &json!("1"))
    );
    app.hold(&t.b, 7, A_ALICE, A_BOB, 3).await;
    let r = app.post("/v1/transfers/7/void", &t.b, &json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["pending_id"], json!("7"));
    // A's account, entries, transfer 1 and hold 7 are as they were.
    assert_eq!(app.get("/v1/accounts/2", &t.a).await.json, account_before);
    assert_eq!(app.get("/v1/accounts/2/entries", &t.a).await.json, entries_before);
    assert_eq!(app.get("/v1/transfers/1", &t.a).await.json["amount"], json!("1000"));
    let r = app.post("/v1/transfers/7/post", &t.a, &json!({"amount": "60"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "A's hold is still A's to post: {r:?}");
    // B's entries name B's ids only.
    let entries = app.get("/v1/accounts/2/entries", &t.b).await;
    let ids: Vec<&str> = entries.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["transfer_id"].as_str())
        .collect();
    assert!(ids.contains(&"1"), "{entries:?}");
    // In the ledger they are different accounts.
    assert_ne!(app.ledger_id("acme", A_ALICE), app.ledger_id("globex", A_ALICE));
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
