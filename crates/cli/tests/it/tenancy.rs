//! Who sees what, through the binary: another tenant sees none of a tenant's orders,
//! parties or webhooks; a merchant's key sees and acts on its own merchant only.

use serde_json::{json, Value};

use crate::payments::{World, CARD};

#[test]
fn another_tenant_sees_none_of_the_orders_parties_or_webhooks() {
    let world = World::start(&["bank_a"], &[]);
    assert_eq!(world.topup("top-1", 5_000)["status"], json!("succeeded"));
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1000"}),
    );
    let id = payment["id"].as_str().expect("id").to_owned();
    let other = world.ok(
        "POST",
        "/v1/keys",
        json!({"tenant": "rival", "mode": "live", "scopes": ["ledger:read", "ledger:write"]}),
    );
    let rival = world.share(other["secret"].as_str().expect("secret"));
    for path in
        [format!("/v1/orders/{id}"), "/v1/customers/alice".into(), "/v1/merchants/shop".into()]
    {
        let (status, body) = rival.call("GET", &path, Value::Null);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = rival.call(
        "POST",
        &format!("/v1/payments/{id}/refunds"),
        json!({"reference": "steal", "amount": "1000"}),
    );
    assert_eq!(status, 404, "no refund of another tenant's payment");
    let (status, _) = rival.call(
        "POST",
        "/v1/payments",
        json!({"reference": "o-2", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1"}),
    );
    assert_eq!(status, 404, "no paying from another tenant's customer");
    let listed = rival.ok("GET", "/v1/orders", Value::Null);
    assert_eq!(listed["data"], json!([]));
    let events = rival.ok("GET", "/v1/events", Value::Null);
    assert_eq!(events["data"], json!([]));
    // Webhooks may not point into the platform's own network.
    let (status, refused) = rival.call(
        "POST",
        "/v1/webhook-endpoints",
        json!({"url": "http://169.254.169.254/latest"}),
    );
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (422, json!("url_not_allowed")),
        "{refused}"
    );
    // The rival's own customer of the same id is a different wallet.
    rival.ok("POST", "/v1/customers", json!({"id": "alice", "assets": ["CNY"]}));
    assert_eq!(rival.balance("customers", "alice", "wallet"), 0);
    assert_eq!(world.wallet(), 4_000);
}

#[test]
fn a_merchants_key_sees_and_acts_on_its_merchant_only() {
    let world = World::start(&["bank_a"], &[]);
    world.ok("POST", "/v1/merchants", json!({"id": "other-shop", "assets": ["CNY"]}));
    assert_eq!(world.topup("top-1", 9_000)["status"], json!("succeeded"));
    let theirs = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-other", "customer": "alice", "merchant": "other-shop", "asset": "CNY", "amount": "1000"}),
    );
    let created = world.ok(
        "POST",
        "/v1/keys",
        json!({"tenant": "platform", "mode": "live", "scopes": ["ledger:read", "ledger:write"], "merchant": "shop"}),
    );
    assert_eq!(created["merchant"], json!("shop"));
    let shop = world.share(created["secret"].as_str().expect("secret"));
    // Its own merchant's payments (the customer pays at the shop's till), refunds, reads.
    let ours = shop.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-shop", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "2000"}),
    );
    assert_eq!(ours["status"], json!("succeeded"), "{ours}");
    let ours_id = ours["id"].as_str().expect("id");
    shop.ok(
        "POST",
        &format!("/v1/payments/{ours_id}/refunds"),
        json!({"reference": "r-1", "amount": "500"}),
    );
    shop.ok("GET", &format!("/v1/orders/{ours_id}"), Value::Null);
    shop.ok("GET", "/v1/merchants/shop", Value::Null);
    let listed = shop.ok("GET", "/v1/orders?merchant=other-shop", Value::Null);
    let merchants: Vec<&Value> =
        listed["data"].as_array().expect("orders").iter().map(|o| &o["merchant"]).collect();
    assert!(!merchants.is_empty() && merchants.iter().all(|m| **m == json!("shop")), "{listed}");
    let events = shop.ok("GET", "/v1/events", Value::Null);
    assert!(events["data"]
        .as_array()
        .expect("events")
        .iter()
        .all(|e| e["data"]["merchant"] == json!("shop")));
    // Nothing of another merchant's, nothing of the platform's.
    let theirs_id = theirs["id"].as_str().expect("id");
    for (method, path, body) in [
        ("GET", format!("/v1/orders/{theirs_id}"), Value::Null),
        (
            "POST",
            format!("/v1/payments/{theirs_id}/refunds"),
            json!({"reference": "r-x", "amount": "1"}),
        ),
        ("GET", "/v1/merchants/other-shop".into(), Value::Null),
        (
            "POST",
            "/v1/payments".into(),
            json!({"reference": "o-x", "customer": "alice", "merchant": "other-shop", "asset": "CNY", "amount": "1"}),
        ),
    ] {
        let (status, body) = shop.call(method, &path, body);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    for (method, path, body) in [
        ("GET", "/v1/customers/alice", Value::Null),
        ("POST", "/v1/customers", json!({"id": "mallory", "assets": ["CNY"]})),
        (
            "POST",
            "/v1/topups",
            json!({"reference": "t-x", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "1"}),
        ),
        (
            "POST",
            "/v1/withdrawals",
            json!({"reference": "w-x", "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "1"}),
        ),
        ("GET", "/v1/webhook-endpoints", Value::Null),
        (
            "POST",
            "/v1/accounts",
            json!({"id": "77", "asset": "CNY", "chart_code": 2241, "rule": {"type": "unbounded"}}),
        ),
    ] {
        let (status, body) = shop.call(method, path, body);
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!("merchant_key_forbidden")),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(world.wallet(), 9_000 - 1_000 - 2_000 + 500);
}
