//! The happy path of every endpoint in docs/api.md.

use access::Scope;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const BANK: u128 = 1;
const ALICE: u128 = 2;
const BOB: u128 = 3;

/// Books, and for tenant `acme` a bank and two wallets; returns acme's read-write key.
async fn world(app: &App) -> String {
    acme_world(app).await
}

fn is_rfc3339_micros_utc(raw: &str) -> bool {
    // 2026-11-24T04:15:00.107765Z
    raw.len() == 27
        && raw.ends_with('Z')
        && raw.as_bytes()[10] == b'T'
        && raw.as_bytes()[19] == b'.'
        && humantime::parse_rfc3339(raw).is_ok()
}

#[tokio::test]
async fn assets_and_chart_lines_are_defined_then_replayed() {
    let app = App::new();
    let r = app.post("/v1/assets", &app.admin, &json!({"code": "JPY", "scale": 0})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json, json!({"code": "JPY", "scale": 0}));
    let again = app.post("/v1/assets", &app.admin, &json!({"code": "JPY", "scale": 0})).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.json, r.json);

    let line = json!({"code": 6001, "name": "fee income", "class": "income"});
    let r = app.post("/v1/chart", &app.admin, &line).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["code"], json!(6001));
    assert_eq!(r.json["name"], json!("fee income"));
    assert_eq!(r.json["class"], json!("income"));
    let again = app.post("/v1/chart", &app.admin, &line).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");

    // The new asset and line are usable.
    let key = app.rw_key("acme");
    let r = app.open(&key, 77, "JPY", 6001, json!({"type": "unbounded"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
}

#[tokio::test]
async fn accounts_are_opened_read_and_replayed() {
    let app = App::new();
    app.books().await;
    let key = app.rw_key("acme");
    let body = json!({
        "id": "340282366920938463463374607431768211455",
        "asset": "CNY",
        "chart_code": WALLET_CHART,
        "rule": {"type": "debits_within_credits", "overdraft_minor": "500"},
        "metadata": "用户 42 的钱包",
    });
    let r = app.post("/v1/accounts", &key, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let account = &r.json;
    assert_eq!(account["object"], json!("account"));
    assert_eq!(account["id"], json!("340282366920938463463374607431768211455"));
    assert_eq!(account["asset"], json!("CNY"));
    assert_eq!(account["chart_code"], json!(WALLET_CHART));
    assert_eq!(account["rule"], json!({"type": "debits_within_credits", "overdraft_minor": "500"}));
    assert_eq!(account["status"], json!("active"));
    assert_eq!(account["metadata"], json!("用户 42 的钱包"));
    assert_eq!(
        account["balances"],
        json!({
            "debits_pending": "0", "debits_posted": "0", "credits_pending": "0",
            "credits_posted": "0", "available_credit": "0",
        })
    );
    assert!(num(&account["opened_seq"]) >= 1);
    let opened_at = account["opened_at"].as_str().expect("opened_at");
    assert!(is_rfc3339_micros_utc(opened_at), "{opened_at}");
    // The manual clock's time (the ledger keeps timestamps strictly increasing by microseconds).
    assert!(opened_at.starts_with("2025-11-24T16:00:00.0000"), "{opened_at}");

    // Re-sending the same account is a 200 with the same account.
    let again = app.post("/v1/accounts", &key, &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.json, r.json);

    let got = app.get("/v1/accounts/340282366920938463463374607431768211455", &key).await;
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.json, r.json);

    // Overdraft of 500: a wallet may go to -500 and no further.
    app.bank(&key, BANK, CNY).await;
    let id = u128::MAX;
    let r = app.transfer(&key, 10, id, BANK, 500).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let b = app.balances(id).await;
    assert_eq!(b["available_credit"], json!("-500"));
    let r = app.transfer(&key, 11, id, BANK, 1).await;
    assert_error(&r, 422, "exceeds_credits");
}

#[tokio::test]
async fn a_transfer_moves_money_and_reads_back() {
    let app = App::new();
    let key = world(&app).await;
    let mut body = transfer_body(100, BANK, ALICE, 1050);
    body["business_code"] = json!(7);
    body["order_ref"] = json!("order-42");
    let r = app.post("/v1/transfers", &key, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.replayed(), Some("false"));
    let t = r.json.clone();
    assert_eq!(t["object"], json!("transfer"));
    assert_eq!(t["id"], json!("100"));
    assert_eq!(t["kind"], json!("posted"));
    assert_eq!(t["debit_account_id"], json!("1"));
    assert_eq!(t["credit_account_id"], json!("2"));
    assert_eq!(t["asset"], json!("CNY"));
    assert_eq!(t["amount"], json!("1050"));
    assert_eq!(t["pending_id"], Value::Null);
    assert_eq!(t["expires_at"], Value::Null);
    assert_eq!(t["business_code"], json!(7));
    assert_eq!(t["order_ref"], json!("order-42"));
    assert!(is_rfc3339_micros_utc(t["timestamp"].as_str().expect("timestamp")), "{t}");
    assert!(num(&t["seq"]) > 0);

    assert_eq!(app.posted(BANK).await, (1050, 0));
    assert_eq!(app.posted(ALICE).await, (0, 1050));
    assert_eq!(app.balances(ALICE).await["available_credit"], json!("1050"));

    // The same id with the same fields: 200 and the stored transfer, no second effect.
    let again = app.post("/v1/transfers", &key, &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.json, t);
    assert_eq!(app.posted(ALICE).await, (0, 1050));

    let got = app.get("/v1/transfers/100", &key).await;
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.json, t);

    // Amounts may also be JSON integers; without an id the server picks one.
    let r = app
        .post(
            "/v1/transfers",
            &key,
            &json!({"type": "post", "debit_account_id": "2", "credit_account_id": "3",
                    "asset": "CNY", "amount": 50}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["amount"], json!("50"));
    let id = r.json["id"].as_str().expect("id").parse::<u128>().expect("decimal id");
    assert_ne!(id, 0);
    assert_eq!(app.posted(ALICE).await, (50, 1050));
    assert_eq!(app.posted(BOB).await, (0, 50));
}

#[tokio::test]
async fn entries_paginate_with_limit_and_starting_after() {
    let app = App::new();
    let key = world(&app).await;
    for (i, amount) in [100u64, 200, 300, 400, 500].into_iter().enumerate() {
        app.pay(&key, 1000 + i as u128, BANK, ALICE, amount).await;
    }
    app.pay(&key, 2000, ALICE, BOB, 150).await;

    let all = app.get("/v1/accounts/2/entries", &key).await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(all.json["object"], json!("list"));
    assert_eq!(all.json["has_more"], json!(false));
    let data = all.json["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), 6);
    let mut running = 0i64;
    let mut last_seq = 0;
    for entry in &data {
        assert_eq!(entry["object"], json!("entry"));
        let seq = num(&entry["seq"]);
        assert!(seq > last_seq, "entries in seq order");
        last_seq = seq;
        let amount = num(&entry["amount"]) as i64;
        running += if entry["side"] == json!("credit") { amount } else { -amount };
        assert_eq!(entry["balances_after"]["available_credit"], json!(running.to_string()));
    }
    assert_eq!(data[5]["side"], json!("debit"));
    assert_eq!(data[5]["transfer_id"], json!("2000"));
    assert_eq!(running, 1500 - 150);

    // Pages of two, following the cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/accounts/2/entries?limit=2".to_string(),
            Some(c) => format!("/v1/accounts/2/entries?limit=2&starting_after={c}"),
        };
        let page = app.get(&path, &key).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.json["data"].as_array().expect("data").clone();
        assert!(items.len() <= 2);
        pages += 1;
        seen.extend(items.iter().cloned());
        if page.json["has_more"] == json!(false) {
            break;
        }
        assert_eq!(items.len(), 2);
        cursor = Some(items[1]["seq"].as_str().expect("seq").to_string());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, data);

    // limit=1000 is the largest page; a cursor past the end is an empty page.
    let r = app.get("/v1/accounts/2/entries?limit=1000", &key).await;
    assert_eq!(r.json["data"].as_array().map(Vec::len), Some(6));
    let r = app.get(&format!("/v1/accounts/2/entries?starting_after={last_seq}"), &key).await;
    assert_eq!(r.json["data"], json!([]));
    assert_eq!(r.json["has_more"], json!(false));
    let r = app.get("/v1/accounts/2/entries?limit=5", &key).await;
    assert_eq!(r.json["has_more"], json!(true));
    let r = app.get("/v1/accounts/2/entries?limit=6", &key).await;
    assert_eq!(r.json["has_more"], json!(false));
}

#[tokio::test]
async fn balance_now_as_of_seq_and_as_of_time() {
    let app = App::new();
    let key = world(&app).await;
    app.clock.advance_secs(10); // 16:00:10
    let t1 = app.pay(&key, 1, BANK, ALICE, 100).await;
    app.clock.advance_secs(10); // 16:00:20
    let t2 = app.pay(&key, 2, BANK, ALICE, 200).await;
    app.clock.advance_secs(10); // 16:00:30
    app.pay(&key, 3, ALICE, BOB, 50).await;

    let now = app.get("/v1/accounts/2/balance", &key).await;
    assert_eq!(now.status, StatusCode::OK, "{now:?}");
    assert_eq!(now.json["object"], json!("balance"));
    assert_eq!(now.json["account_id"], json!("2"));
    assert_eq!(now.json["asset"], json!("CNY"));
    assert_eq!(now.json["as_of_seq"], Value::Null);
    assert_eq!(now.json["balances"]["credits_posted"], json!("300"));
    assert_eq!(now.json["balances"]["debits_posted"], json!("50"));
    assert_eq!(now.json["balances"]["available_credit"], json!("250"));

    let seq1 = t1["seq"].as_str().expect("seq");
    let r = app.get(&format!("/v1/accounts/2/balance?as_of_seq={seq1}"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["as_of_seq"], json!(seq1));
    assert_eq!(r.json["balances"]["credits_posted"], json!("100"));
    assert_eq!(r.json["balances"]["debits_posted"], json!("0"));

    let seq2 = t2["seq"].as_str().expect("seq");
    let r = app.get(&format!("/v1/accounts/2/balance?as_of_seq={seq2}"), &key).await;
    assert_eq!(r.json["balances"]["credits_posted"], json!("300"));
    assert_eq!(r.json["balances"]["debits_posted"], json!("0"));

    // By time: between the first and second transfer, then before everything.
    let r = app.get("/v1/accounts/2/balance?as_of=2025-11-24T16:00:15Z", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["as_of_seq"], json!(seq1));
    assert_eq!(r.json["balances"]["credits_posted"], json!("100"));
    let r = app.get("/v1/accounts/2/balance?as_of=2025-11-24T16:00:25.5%2B00:00", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["balances"]["credits_posted"], json!("300"));
    let r = app.get("/v1/accounts/2/balance?as_of=2020-01-01T00:00:00Z", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["balances"]["credits_posted"], json!("0"));
    assert_eq!(r.json["balances"]["available_credit"], json!("0"));
    let r = app.get("/v1/accounts/2/balance?as_of=2030-01-01T00:00:00Z", &key).await;
    assert_eq!(r.json["balances"], now.json["balances"]);
}

#[tokio::test]
async fn a_hold_is_posted_whole() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 1000).await;
    let mut body = transfer_body(2, ALICE, BOB, 400);
    body["type"] = json!("pending");
    body["timeout_secs"] = json!(3600);
    let r = app.post("/v1/transfers", &key, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["kind"], json!("pending"));
    let at = |field: &str| {
        humantime::parse_rfc3339(r.json[field].as_str().expect("time")).expect("rfc3339")
    };
    assert_eq!(
        at("expires_at").duration_since(at("timestamp")).ok(),
        Some(std::time::Duration::from_secs(3600))
    );
    let alice = app.balances(ALICE).await;
    assert_eq!(alice["debits_pending"], json!("400"));
    assert_eq!(alice["available_credit"], json!("600"));
    assert_eq!(app.balances(BOB).await["credits_pending"], json!("400"));

    let r = app.post("/v1/transfers/2/post", &key, &json!({"id": "3"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["kind"], json!("post_pending"));
    assert_eq!(r.json["pending_id"], json!("2"));
    assert_eq!(r.json["amount"], json!("400"));
    let alice = app.balances(ALICE).await;
    assert_eq!(alice["debits_pending"], json!("0"));
    assert_eq!(alice["debits_posted"], json!("400"));
    assert_eq!(alice["available_credit"], json!("600"));
    let bob = app.balances(BOB).await;
    assert_eq!(bob["credits_pending"], json!("0"));
    assert_eq!(bob["credits_posted"], json!("400"));

    // Re-sending the post with the same id is a 200, with no second effect.
    let again = app.post("/v1/transfers/2/post", &key, &json!({"id": "3"})).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(app.balances(BOB).await["credits_posted"], json!("400"));
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_hold_is_posted_in_part_and_the_rest_released() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 1000).await;
    app.hold(&key, 2, ALICE, BOB, 400).await;
    // No body at all: the id is drawn by the server.
    let r = app.post("/v1/transfers/2/post", &key, &json!({"amount": "150"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["amount"], json!("150"));
    let alice = app.balances(ALICE).await;
    assert_eq!(alice["debits_pending"], json!("0"));
    assert_eq!(alice["debits_posted"], json!("150"));
    assert_eq!(alice["available_credit"], json!("850"));
    assert_eq!(app.posted(BOB).await, (0, 150));
    assert_eq!(app.balances(BOB).await["credits_pending"], json!("0"));
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_hold_is_voided() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 1000).await;
    app.hold(&key, 2, ALICE, BOB, 400).await;
    // An empty body is allowed.
    let r = app.call(Req::post("/v1/transfers/2/void").key(&key)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["kind"], json!("void_pending"));
    assert_eq!(r.json["pending_id"], json!("2"));
    let alice = app.balances(ALICE).await;
    assert_eq!(alice["debits_pending"], json!("0"));
    assert_eq!(alice["debits_posted"], json!("0"));
    assert_eq!(alice["available_credit"], json!("1000"));
    assert_eq!(app.balances(BOB).await["credits_pending"], json!("0"));
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_batch_answers_one_result_per_item() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 100).await;
    let body = json!({"transfers": [
        transfer_body(10, BANK, ALICE, 5),
        transfer_body(11, ALICE, BOB, 1_000_000), // overdraws
        transfer_body(12, ALICE, BOB, 30),
        {"type": "pending", "id": "13", "debit_account_id": "2", "credit_account_id": "3",
         "asset": "CNY", "amount": "10", "timeout_secs": 60},
    ]});
    let r = app.post("/v1/transfers/batch", &key, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["object"], json!("batch_result"));
    let data = r.json["data"].as_array().expect("data");
    assert_eq!(data.len(), 4);
    assert_eq!(data[0]["status"], json!("created"));
    assert_eq!(data[0]["transfer"]["id"], json!("10"));
    assert_eq!(data[1]["status"], json!("rejected"));
    assert_eq!(data[1]["error"]["code"], json!("exceeds_credits"));
    assert_eq!(data[1]["error"]["type"], json!("rejected_error"));
    assert_eq!(data[2]["status"], json!("created"));
    assert_eq!(data[3]["status"], json!("created"));
    assert_eq!(data[3]["transfer"]["kind"], json!("pending"));
    let alice = app.balances(ALICE).await;
    assert_eq!(alice["credits_posted"], json!("105"));
    assert_eq!(alice["debits_posted"], json!("30"));
    assert_eq!(alice["debits_pending"], json!("10"));
    assert!(app.get("/v1/transfers/11", &key).await.status == StatusCode::NOT_FOUND);

    // The same batch again: the applied ones are replays, the rejected one is rejected again.
    let r = app.post("/v1/transfers/batch", &key, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let statuses: Vec<&Value> =
        r.json["data"].as_array().expect("data").iter().map(|d| &d["status"]).collect();
    assert_eq!(
        statuses,
        [&json!("replayed"), &json!("rejected"), &json!("replayed"), &json!("replayed")]
    );
    assert_eq!(app.balances(ALICE).await, alice);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_linked_batch_is_all_or_nothing() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 100).await;
    let before = app.fingerprint().await;
    let failing = json!({"linked": true, "transfers": [
        transfer_body(10, BANK, ALICE, 5),
        transfer_body(11, ALICE, BOB, 200), // overdraws: 105 available
        transfer_body(12, BANK, BOB, 7),
    ]});
    let r = app.post("/v1/transfers/batch", &key, &failing).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let data = r.json["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|d| d["status"] == json!("rejected")), "{r:?}");
    assert_eq!(data[0]["error"]["code"], json!("linked_transfer_failed"));
    assert_eq!(data[1]["error"]["code"], json!("exceeds_credits"));
    assert_eq!(data[2]["error"]["code"], json!("linked_transfer_failed"));
    assert_eq!(app.fingerprint().await, before);

    let passing = json!({"linked": true, "transfers": [
        transfer_body(10, BANK, ALICE, 5),
        transfer_body(11, ALICE, BOB, 105),
        transfer_body(12, BANK, BOB, 7),
    ]});
    let r = app.post("/v1/transfers/batch", &key, &passing).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.json["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|d| d["status"] == json!("created")));
    assert_eq!(app.posted(ALICE).await, (105, 105));
    assert_eq!(app.posted(BOB).await, (0, 112));
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_full_batch_of_8000_transfers_is_accepted() {
    let app = App::new();
    let key = world(&app).await;
    let transfers: Vec<Value> =
        (0..8000u128).map(|i| transfer_body(100_000 + i, BANK, ALICE, 1)).collect();
    let r = app.post("/v1/transfers/batch", &key, &json!({"transfers": transfers})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let data = r.json["data"].as_array().expect("data");
    assert_eq!(data.len(), 8000);
    assert!(data.iter().all(|d| d["status"] == json!("created")));
    assert_eq!(app.posted(ALICE).await, (0, 8000));
}

#[tokio::test]
async fn trial_balance_and_journal_verify() {
    let app = App::new();
    let key = world(&app).await;
    app.bank(&key, 50, USD).await;
    app.wallet(&key, 51, USD).await;
    app.pay(&key, 1, BANK, ALICE, 1000).await;
    app.pay(&key, 2, ALICE, BOB, 300).await;
    app.hold(&key, 3, ALICE, BOB, 200).await;
    let mut usd = transfer_body(4, 50, 51, 77);
    usd["asset"] = json!("USD");
    assert_eq!(app.post("/v1/transfers", &key, &usd).await.status, StatusCode::CREATED);

    let tb = app.trial_balance().await;
    assert_eq!(tb["object"], json!("trial_balance"));
    let lines = tb["lines"].as_array().expect("lines");
    let line = |asset: &str, chart: u32| {
        lines
            .iter()
            .find(|l| l["asset"] == json!(asset) && l["chart_code"] == json!(chart))
            .unwrap_or_else(|| panic!("no line {asset} {chart}: {tb}"))
            .clone()
    };
    let bank = line(CNY, BANK_CHART);
    assert_eq!(bank["n_accounts"], json!(1));
    assert_eq!(bank["balances"]["debits_posted"], json!("1000"));
    let wallets = line(CNY, WALLET_CHART);
    assert_eq!(wallets["n_accounts"], json!(2));
    assert_eq!(wallets["balances"]["debits_posted"], json!("300"));
    assert_eq!(wallets["balances"]["credits_posted"], json!("1300"));
    assert_eq!(wallets["balances"]["debits_pending"], json!("200"));
    assert_eq!(wallets["balances"]["credits_pending"], json!("200"));
    let assets = tb["assets"].as_array().expect("assets");
    assert_eq!(assets.len(), 2);
    assert_eq!(
        assets[0],
        json!({"asset": "CNY", "debits_posted": "1300", "credits_posted": "1300",
               "debits_pending": "200", "credits_pending": "200", "balanced": true})
    );
    assert_eq!(assets[1]["asset"], json!("USD"));
    assert_eq!(assets[1]["debits_posted"], json!("77"));
    assert_eq!(assets[1]["balanced"], json!(true));

    let r = app.post("/v1/journal/verify", &app.admin, &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["object"], json!("verify_report"));
    assert_eq!(r.json["ok"], json!(true));
    assert_eq!(r.json["report"]["divergence"], Value::Null);
    assert_eq!(r.json["report"]["n_accounts"], json!(5));
    // 4 definitions + 5 accounts + 4 transfers.
    assert_eq!(r.json["report"]["n_records"], json!(13));
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let app = App::new();
    app.books().await;
    let r = app
        .post(
            "/v1/keys",
            &app.admin,
            &json!({"tenant": "acme", "mode": "live", "scopes": ["ledger:read", "ledger:write"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let created = r.json.clone();
    assert_eq!(created["object"], json!("api_key"));
    assert_eq!(created["tenant"], json!("acme"));
    assert_eq!(created["mode"], json!("live"));
    assert_eq!(created["scopes"], json!(["ledger:read", "ledger:write"]));
    assert_eq!(created["revoked"], json!(false));
    assert_eq!(created["signed"], json!(false));
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("qb_live_") && secret.len() == 8 + 64, "{secret}");
    assert!(secret[8..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created["prefix"], json!(&secret[..12]));
    let id = created["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("key_"));

    // The new key works for its tenant and scopes.
    app.wallet(&secret, 5, CNY).await;
    assert_eq!(app.get("/v1/accounts/5", &secret).await.status, StatusCode::OK);
    assert_error(&app.get("/v1/trial-balance", &secret).await, 403, "missing_scope");

    // Listed without secrets, in pages.
    let r = app
        .post(
            "/v1/keys",
            &app.admin,
            &json!({"tenant": "globex", "mode": "live", "scopes": ["ledger:read"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert!(r.json["secret"].as_str().is_some_and(|s| s.starts_with("qb_live_")));
    let list = app.get("/v1/keys", &app.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    assert_eq!(list.json["object"], json!("list"));
    let keys = list.json["data"].as_array().expect("data");
    assert_eq!(keys.len(), 3, "the admin key and two new ones: {list:?}");
    assert!(keys.iter().all(|k| k.get("secret").is_none() && k["object"] == json!("api_key")));
    assert!(!String::from_utf8_lossy(&list.body).contains(&secret[8..]));
    let listed = keys.iter().find(|k| k["id"] == json!(id)).expect("listed");
    let mut expected = created.clone();
    expected.as_object_mut().expect("object").remove("secret");
    assert_eq!(listed, &expected);

    let mut paged = Vec::new();
    let mut path = "/v1/keys?limit=1".to_string();
    loop {
        let page = app.get(&path, &app.admin).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let items = page.json["data"].as_array().expect("data").clone();
        assert_eq!(items.len(), 1);
        let last = items[0]["id"].as_str().expect("id").to_string();
        paged.extend(items);
        if page.json["has_more"] == json!(false) {
            break;
        }
        path = format!("/v1/keys?limit=1&starting_after={last}");
    }
    assert_eq!(&paged, keys);

    // Revoked: at once on this node.
    let r = app.call(Req::new(Method::DELETE, &format!("/v1/keys/{id}")).key(&app.admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json, json!({"object": "api_key", "id": id, "revoked": true}));
    assert_error(&app.get("/v1/accounts/5", &secret).await, 401, "invalid_api_key");
    let list = app.get("/v1/keys", &app.admin).await;
    let listed =
        list.json["data"].as_array().expect("data").iter().find(|k| k["id"] == json!(id)).cloned();
    assert_eq!(listed.expect("still listed")["revoked"], json!(true));

    let r =
        app.call(Req::new(Method::DELETE, "/v1/keys/key_0000000000000000").key(&app.admin)).await;
    assert_error(&r, 404, "resource_missing");
}

#[tokio::test]
async fn health_readiness_request_ids_and_metrics() {
    let app = App::new();
    let r = app.call(Req::get("/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"ok");
    let r = app.call(Req::get("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"ready");

    // Request ids: generated, or propagated.
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    assert!(
        id.starts_with("req_") && id.len() == 20 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let r = app.call(Req::get("/healthz").header("x-request-id", "req_mine")).await;
    assert_eq!(r.header("x-request-id"), Some("req_mine"));
    let r = app.call(Req::get("/v1/accounts/1")).await;
    assert!(r.header("x-request-id").is_some_and(|v| v.starts_with("req_")), "errors too");

    let key = world(&app).await;
    for id in 1..=3 {
        app.pay(&key, id, BANK, ALICE, 1).await;
    }
    assert_error(&app.transfer(&key, 9, ALICE, BOB, 1_000_000).await, 422, "exceeds_credits");
    assert_eq!(app.get("/v1/accounts/2", &key).await.status, StatusCode::OK);
    assert_eq!(app.get("/v1/accounts/999", &key).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Req::get("/nowhere")).await.status, StatusCode::NOT_FOUND);

    let r = app.call(Req::get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|v| v.starts_with("text/plain")));
    let text = String::from_utf8(r.body.to_vec()).expect("utf-8");
    let count = |route: &str, status: u16| -> Option<u64> {
        let prefix = format!(
            "qianbao_http_request_duration_seconds_count{{mode=\"live\",route=\"{route}\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|n| n.parse().expect("count"))
    };
    assert_eq!(count("POST /v1/transfers", 201), Some(3), "{text}");
    assert_eq!(count("POST /v1/transfers", 422), Some(1), "{text}");
    assert_eq!(count("GET /v1/accounts/{id}", 200), Some(1), "{text}");
    assert_eq!(count("GET /v1/accounts/{id}", 404), Some(1), "{text}");
    assert_eq!(count("GET /v1/accounts/{id}", 401), Some(1), "{text}");
    assert_eq!(count("POST /v1/accounts", 201), Some(3), "{text}");
    assert_eq!(count("GET /healthz", 200), Some(2), "{text}");
    assert!(count("unmatched", 404).is_some_and(|n| n >= 1), "{text}");
    assert!(text.contains("qianbao_http_request_duration_seconds_bucket{mode=\"live\",route=\"POST /v1/transfers\",status=\"201\",le=\"+Inf\"} 3"), "{text}");
    for name in [
        "qianbao_ledger_batches_committed_total",
        "qianbao_ledger_records_committed_total",
        "qianbao_ledger_batch_conflicts_total",
        "qianbao_ledger_batch_failures_total",
        "qianbao_ledger_queue_depth",
        "qianbao_ledger_batch_commands_count",
        "qianbao_ledger_commit_duration_seconds_count",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing: {text}");
    }
    let records: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("qianbao_ledger_records_committed_total "))
        .expect("records")
        .parse()
        .expect("number");
    // 4 definitions, 3 accounts, 3 transfers.
    assert_eq!(records, 10, "{text}");
}

#[tokio::test]
async fn reads_need_only_the_read_scope() {
    let app = App::new();
    let key = world(&app).await;
    app.pay(&key, 1, BANK, ALICE, 10).await;
    let reader = app.key("acme", &[Scope::LedgerRead]);
    for path in
        ["/v1/accounts/2", "/v1/accounts/2/entries", "/v1/accounts/2/balance", "/v1/transfers/1"]
    {
        let r = app.get(path, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
    }
}

/// The OpenAPI document the server serves is the one checked in (regenerate with
/// `QIANBAO_UPDATE_OPENAPI=1 cargo test -p server openapi`), and it needs no key.
#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let app = App::new();
    let served = app.call(Req::get("/v1/openapi.json")).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    let checked_in = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"))
        .expect("docs/openapi.json");
    assert!(
        served.body.as_ref() == checked_in.strip_suffix(b"\n").unwrap_or(&checked_in),
        "docs/openapi.json differs from the served document"
    );
    assert_eq!(served.json["openapi"], "3.1.0");
    assert!(served.json["paths"]["/v1/transfers"]["post"].is_object());
}
