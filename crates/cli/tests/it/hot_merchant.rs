//! A hot merchant over HTTP (热点账户): `POST /v1/merchants` with `unsettled_layout` spreads
//! the merchant's unsettled payables over rows; its balances are the rows summed, a refund
//! spends them at once (sub-accounts), and the layout is fixed once the merchant is open.

use serde_json::{json, Value};

use crate::payments::{drop_schemas, postgres_url, World};

fn hot_merchant_walkthrough(world: &World) {
    let layout = json!({"type": "sub_accounts", "count": 4});
    let hot = json!({"id": "hot", "assets": ["CNY"], "fee_bps": 60, "settle_after_days": 0,
                     "unsettled_layout": layout});
    let (status, opened) = world.call("POST", "/v1/merchants", hot.clone());
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["unsettled_layout"], layout, "{opened}");
    // The same request again is the same merchant; another layout is refused.
    let (status, again) = world.call("POST", "/v1/merchants", hot);
    assert_eq!((status, &again["unsettled_layout"]), (200, &layout), "{again}");
    let (status, other) = world.call(
        "POST",
        "/v1/merchants",
        json!({"id": "hot", "assets": ["CNY"], "fee_bps": 60, "settle_after_days": 0}),
    );
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["code"], json!("party_exists_with_different_fields"));
    // A plain merchant shows it plain; a customer has no such field.
    let shop = world.ok("GET", "/v1/merchants/shop", Value::Null);
    assert_eq!(shop["unsettled_layout"], json!({"type": "plain"}), "{shop}");
    let alice = world.ok("GET", "/v1/customers/alice", Value::Null);
    assert!(alice.get("unsettled_layout").is_none(), "{alice}");

    // Bad layouts: refused with the field named, nothing opened.
    for (id, bad) in [
        ("one-row", json!({"type": "sub_accounts", "count": 1})),
        ("too-many", json!({"type": "buffered", "count": 65})),
        ("a-row", json!({"type": "row", "of": "1", "row": 1})),
    ] {
        let (status, refused) = world.call(
            "POST",
            "/v1/merchants",
            json!({"id": id, "assets": ["CNY"], "unsettled_layout": bad}),
        );
        assert_eq!(status, 400, "{id}: {refused}");
        let (status, _) = world.call("GET", &format!("/v1/merchants/{id}"), Value::Null);
        assert_eq!(status, 404, "{id} was not opened");
    }
    let (status, refused) = world.call(
        "POST",
        "/v1/customers",
        json!({"id": "bob", "assets": ["CNY"], "unsettled_layout": layout}),
    );
    assert_eq!(status, 400, "{refused}");

    // Payments land on the rows; the balance is their sum.
    assert_eq!(world.topup("top-hot", 50_000)["status"], json!("succeeded"));
    let mut last = Value::Null;
    for i in 0..8 {
        last = world.ok(
            "POST",
            "/v1/payments",
            json!({"reference": format!("hot-{i}"), "customer": "alice", "merchant": "hot",
                   "asset": "CNY", "amount": "1000"}),
        );
        assert_eq!(last["status"], json!("succeeded"), "{last}");
    }
    assert_eq!(world.balance("merchants", "hot", "unsettled"), 8 * 994, "fee 6 each");
    // The ledger account behind the balance line has the layout and its four rows.
    let hot = world.ok("GET", "/v1/merchants/hot", Value::Null);
    let account_id = hot["balances"][0]["account_id"].as_str().expect("account id").to_owned();
    let account = world.ok("GET", &format!("/v1/accounts/{account_id}"), Value::Null);
    assert_eq!(account["layout"], layout, "{account}");
    assert_eq!(account["rows"].as_array().map(Vec::len), Some(4), "{account}");
    // A refund at once: the rows are spent together.
    let refunds = format!("/v1/payments/{}/refunds", last["id"].as_str().expect("id"));
    let refund = world.ok("POST", &refunds, json!({"reference": "hot-r", "amount": "1000"}));
    assert_eq!(refund["status"], json!("succeeded"), "{refund}");
    assert_eq!(world.balance("merchants", "hot", "unsettled"), 7 * 994);
    // T+0: settlement moves the summed takings.
    let run = world.ok("POST", "/v1/merchants/hot/settlements", json!({"asset": "CNY"}));
    assert_eq!(run["settlement"]["amount"], json!((7 * 994).to_string()), "{run}");
    assert_eq!(world.balance("merchants", "hot", "unsettled"), 0);
    assert_eq!(world.balance("merchants", "hot", "settled"), 7 * 994);

    // Buffered: a payment is in the balance at once, spendable once folded (100 ms).
    world.ok(
        "POST",
        "/v1/merchants",
        json!({"id": "buffered", "assets": ["CNY"], "fee_bps": 0,
               "unsettled_layout": {"type": "buffered", "count": 2}}),
    );
    let paid = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "buf-1", "customer": "alice", "merchant": "buffered", "asset": "CNY",
               "amount": "500"}),
    );
    assert_eq!(paid["status"], json!("succeeded"), "{paid}");
    assert_eq!(world.balance("merchants", "buffered", "unsettled"), 500);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let party = world.ok("GET", "/v1/merchants/buffered", Value::Null);
        if party["balances"][0]["available"] == json!("500") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never folded: {party}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Our own records agree with the journal, which names rows (业务数据核对).
    let checks = world.ok("POST", "/v1/recon/checks", Value::Null);
    assert_eq!(checks["ok"], json!(true), "{checks}");
    world.assert_balanced();
}

#[test]
fn a_hot_merchant_takes_a_layout() {
    hot_merchant_walkthrough(&World::start(&["bank_a"], &[]));
}

#[test]
fn a_hot_merchant_takes_a_layout_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_hot_merchant_{}", std::process::id());
    let world = World::start(&["bank_a"], &["--database-url", &url, "--database-schema", &schema]);
    hot_merchant_walkthrough(&world);
    drop(world);
    drop_schemas(&url, &schema);
}
