//! Settlement (结算) through the binary: a T+0 merchant's takings move to settled once per
//! cut-off, on demand and by the scheduled run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::payments::World;

#[test]
fn settlement_moves_takings_to_settled_once_per_cutoff() {
    let world = World::start(&["bank_a"], &[]);
    world.ok(
        "POST",
        "/v1/merchants",
        json!({"id": "now-shop", "assets": ["CNY"], "fee_bps": 100, "settle_after_days": 0}),
    );
    assert_eq!(world.topup("top-1", 20_000)["status"], json!("succeeded"));
    for (reference, merchant, amount) in
        [("o-1", "shop", 4_000), ("o-2", "now-shop", 5_000), ("o-3", "now-shop", 1_000)]
    {
        let paid = world.ok(
            "POST",
            "/v1/payments",
            json!({"reference": reference, "customer": "alice", "merchant": merchant, "asset": "CNY",
                   "amount": amount.to_string()}),
        );
        assert_eq!(paid["status"], json!("succeeded"), "{paid}");
    }
    // T+1 (shop): today's payments wait for tomorrow.
    let run = world.ok("POST", "/v1/merchants/shop/settlements", json!({"asset": "CNY"}));
    assert_eq!(run["settled"], json!(false), "{run}");
    // T+0 (now-shop): 6000 less 1% fee = 5940 settles now.
    let run = world.ok("POST", "/v1/merchants/now-shop/settlements", json!({"asset": "CNY"}));
    assert_eq!(run["settlement"]["status"], json!("succeeded"), "{run}");
    assert_eq!(run["settlement"]["amount"], json!("5940"));
    assert_eq!(world.balance("merchants", "now-shop", "unsettled"), 0);
    assert_eq!(world.balance("merchants", "now-shop", "settled"), 5_940);
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 3_976, "4000 less 0.6%");
    let again = world.ok("POST", "/v1/merchants/now-shop/settlements", json!({"asset": "CNY"}));
    assert_eq!(again["settled"], json!(false), "nothing new to settle: {again}");
    // A refund of a settled payment takes from the settled takings (with its fee share)…
    let orders = world.ok("GET", "/v1/orders?kind=payment&merchant=now-shop", Value::Null);
    let settled_payment = orders["data"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["reference"] == json!("o-2"))
        .expect("o-2")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let refund = world.ok(
        "POST",
        &format!("/v1/payments/{settled_payment}/refunds"),
        json!({"reference": "r-settled", "amount": "2000"}),
    );
    assert_eq!(refund["status"], json!("succeeded"), "{refund}");
    assert_eq!(refund["detail"]["from_settled"], json!(true), "{refund}");
    assert_eq!(world.balance("merchants", "now-shop", "settled"), 5_940 - 2_000 + 20);
    assert_eq!(world.balance("merchants", "now-shop", "unsettled"), 0);
    // …and does not shrink the next settlement.
    world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-4", "customer": "alice", "merchant": "now-shop", "asset": "CNY", "amount": "1000"}),
    );
    let next = world.ok("POST", "/v1/merchants/now-shop/settlements", json!({"asset": "CNY"}));
    assert_eq!(next["settlement"]["amount"], json!("990"), "{next}");
    world.assert_balanced();
}

/// The scheduled run (`--settlement-every-secs`) settles a T+0 merchant without being asked:
/// its first pass is at start, the next one at the background loop's next pass.
#[test]
fn the_scheduled_run_settles_a_t0_merchant() {
    let world = World::start(&["bank_a"], &["--settlement-every-secs", "1"]);
    world.ok(
        "POST",
        "/v1/merchants",
        json!({"id": "now-shop", "assets": ["CNY"], "fee_bps": 100, "settle_after_days": 0}),
    );
    assert_eq!(world.topup("top-1", 5_000)["status"], json!("succeeded"));
    let paid = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "now-shop", "asset": "CNY",
               "amount": "2000"}),
    );
    assert_eq!(paid["status"], json!("succeeded"), "{paid}");
    // The loop passes every 10 s; give it two passes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.balance("merchants", "now-shop", "settled") != 1_980 {
        assert!(Instant::now() < deadline, "the scheduled run never settled now-shop");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(world.balance("merchants", "now-shop", "unsettled"), 0);
    // Once per cut-off: asking again settles nothing new.
    let again = world.ok("POST", "/v1/merchants/now-shop/settlements", json!({"asset": "CNY"}));
    assert_eq!(again["settled"], json!(false), "{again}");
    world.assert_balanced();
}
