//! Products beyond the walkthrough, through the binary: payout batches (代付), points and
//! cash (积分+支付), cross-currency payments, authorizations and captures, card payments.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::payments::{World, CARD, CARD_BALANCE_MINOR};

#[test]
fn a_payout_batch_pays_each_item_and_returns_failed_items_to_the_merchant() {
    let world = World::start(&["bank_a"], &[]);
    world.ok(
        "POST",
        "/v1/merchants",
        json!({"id": "payroll", "assets": ["CNY"], "fee_bps": 0, "settle_after_days": 0}),
    );
    assert_eq!(world.topup("top-1", 50_000)["status"], json!("succeeded"));
    world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "payroll", "asset": "CNY", "amount": "40000"}),
    );
    let run = world.ok("POST", "/v1/merchants/payroll/settlements", json!({"asset": "CNY"}));
    assert_eq!(run["settlement"]["amount"], json!("40000"), "{run}");
    // The bank refuses one account; the others are paid.
    world.sim.call(
        "POST",
        "/admin/channels/bank_a/accounts",
        json!({"account": "6222020000000002", "initial_balance_minor": "0"}),
    );
    let body = json!({"reference": "batch-1", "asset": "CNY", "items": [
        {"reference": "i-1", "bank_account": CARD, "amount": "10000"},
        {"reference": "i-2", "bank_account": "6222020000000002", "amount": "5000"},
        {"reference": "i-3", "bank_account": "6222020000000999", "amount": "7000"},
        {"reference": "i-4", "bank_account": CARD, "amount": "9000"},
    ]});
    let (status, batch) = world.call("POST", "/v1/merchants/payroll/payout-batches", body.clone());
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let view = world.ok("GET", &format!("/v1/payout-batches/{id}"), Value::Null);
        if view["status"] == json!("completed") {
            break view;
        }
        assert!(Instant::now() < deadline, "batch not done: {view}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["succeeded"], json!({"count": 3, "amount": "24000"}), "{done}");
    assert_eq!(done["failed"], json!({"count": 1, "amount": "7000"}), "{done}");
    assert_eq!(done["merchant"], json!("payroll"));
    assert!(
        done["items"].as_array().expect("items").iter().any(|item| item["state"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("invalid_account"))),
        "the failed item failed at the bank: {done}"
    );
    // 40000 settled − 24000 paid out; the failed 7000 is back.
    assert_eq!(world.balance("merchants", "payroll", "settled"), 16_000);
    // A retried batch creates nothing twice.
    let (status, again) = world.call("POST", "/v1/merchants/payroll/payout-batches", body);
    assert_eq!((status, again["id"].clone()), (202, json!(id)));
    let payouts = world
        .sim
        .operations("bank_a")
        .into_iter()
        .filter(|op| op["operation"] == json!("payout"))
        .count();
    assert_eq!(payouts, 4, "each item went to the bank once");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn points_and_cash_pay_together_and_refund_along_their_legs() {
    let world = World::start(&["bank_a"], &[]);
    world.ok("POST", "/v1/customers", json!({"id": "bob", "assets": ["CNY", "POINTS"]}));
    assert_eq!(world.topup("top-1", 10_000)["status"], json!("succeeded"));
    let moved = world.ok(
        "POST",
        "/v1/wallet-transfers",
        json!({"reference": "gift-1", "from": "alice", "to": "bob", "asset": "CNY", "amount": "3000"}),
    );
    assert_eq!(moved["status"], json!("succeeded"), "{moved}");
    let granted = world.ok(
        "POST",
        "/v1/customers/bob/points",
        json!({"reference": "welcome", "points": "1000"}),
    );
    assert_eq!(granted["status"], json!("succeeded"), "{granted}");
    assert_eq!(world.balance("customers", "bob", "points"), 1_000);

    // 2500 = 500 points (1 fen each) + 2000 cash; the merchant gets all 2500 less its fee.
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-1", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "2500", "points": "500"}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    assert_eq!(world.balance("customers", "bob", "wallet"), 1_000);
    assert_eq!(world.balance("customers", "bob", "points"), 500);
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 2_485);

    // Too many points for the price, or more points than bob has: refused / failed, nothing moves.
    let (status, dear) = world.call(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-2", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "100", "points": "101"}),
    );
    assert_eq!((status, dear["error"]["param"].clone()), (422, json!("points")), "{dear}");
    let short = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-3", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "900", "points": "800"}),
    );
    assert_eq!(short["status"], json!("failed"), "{short}");
    assert_eq!(world.balance("customers", "bob", "points"), 500);

    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    for (reference, amount) in [("r-1", "1250"), ("r-2", "1250")] {
        let refund = world.ok("POST", &refunds, json!({"reference": reference, "amount": amount}));
        assert_eq!(refund["status"], json!("succeeded"), "{refund}");
        assert_eq!(refund["detail"]["points"]["points"], json!("250"), "half the points: {refund}");
    }
    assert_eq!(world.balance("customers", "bob", "wallet"), 3_000, "the cash came back");
    assert_eq!(world.balance("customers", "bob", "points"), 1_000, "every point came back");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 0);
    world.assert_balanced();
}

#[test]
fn a_cross_currency_payment_converts_at_the_recorded_rate_and_refunds_exactly() {
    let world = World::start(&["bank_a"], &["--assets", "CNY:2,USD:2,POINTS:0"]);
    world.ok("POST", "/v1/merchants", json!({"id": "us-shop", "assets": ["USD"], "fee_bps": 100}));
    let (status, missing) = world.call(
        "POST",
        "/v1/payments",
        json!({"reference": "fx-0", "customer": "alice", "merchant": "us-shop", "asset": "USD",
               "amount": "1001", "pay_from": "CNY"}),
    );
    assert_eq!(
        (status, missing["error"]["param"].clone()),
        (422, json!("pay_from")),
        "no rate yet: {missing}"
    );
    world.ok("PUT", "/v1/fx-rates", json!({"asset": "USD", "funding": "CNY", "rate": "7.1234"}));
    assert_eq!(world.topup("top-1", 100_000)["status"], json!("succeeded"));
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "fx-1", "customer": "alice", "merchant": "us-shop", "asset": "USD",
               "amount": "1001", "pay_from": "CNY"}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    assert_eq!(
        payment["detail"]["fx"]["from_amount"],
        json!("7131"),
        "7130.5234 rounded up: {payment}"
    );
    assert_eq!(payment["detail"]["fx"]["rate"], json!({"units": 71234, "decimals": 4}));
    assert_eq!(world.wallet(), 100_000 - 7_131);
    assert_eq!(world.balance("merchants", "us-shop", "unsettled"), 1_001 - 10);
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    for (reference, amount) in [("r-1", "333"), ("r-2", "333"), ("r-3", "335")] {
        let refund = world.ok("POST", &refunds, json!({"reference": reference, "amount": amount}));
        assert_eq!(refund["status"], json!("succeeded"), "{refund}");
    }
    assert_eq!(world.wallet(), 100_000, "every fen came back");
    assert_eq!(world.balance("merchants", "us-shop", "unsettled"), 0);
    world.assert_balanced();
}

#[test]
fn an_authorization_is_captured_in_part_canceled_or_expires() {
    let world = World::start(&["bank_a"], &["--inspect-after-ms", "0"]);
    assert_eq!(world.topup("top-1", 10_000)["status"], json!("succeeded"));
    let authorize = |reference: &str, amount: &str, secs: u32| {
        world.ok(
            "POST",
            "/v1/payments",
            json!({"reference": reference, "customer": "alice", "merchant": "shop", "asset": "CNY",
                   "amount": amount, "authorize_for_secs": secs}),
        )
    };
    let available = || {
        let party = world.ok("GET", "/v1/customers/alice", Value::Null);
        party["balances"][0]["available"]
            .as_str()
            .expect("available")
            .parse::<i64>()
            .expect("number")
    };
    let held = authorize("auth-1", "3000", 600);
    assert_eq!(held["status"], json!("authorized"), "{held}");
    assert_eq!((world.wallet(), available()), (10_000, 7_000), "held, not spent");
    let id = held["id"].as_str().expect("id").to_owned();
    let (status, body) =
        world.call("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "3001"}));
    assert_eq!(status, 422, "more than authorized: {body}");
    assert_eq!(body["error"]["code"], json!("field_refused"), "{body}");
    let captured =
        world.ok("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "2000"}));
    assert_eq!(
        (captured["status"].clone(), captured["amount"].clone()),
        (json!("succeeded"), json!("2000")),
        "{captured}"
    );
    assert_eq!(captured["detail"]["fee"], json!("12"), "the fee is on what was captured");
    assert_eq!((world.wallet(), available()), (8_000, 8_000), "the rest of the hold is released");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 1_988);
    let (status, again) =
        world.call("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "500"}));
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (409, json!("order_state_conflict")),
        "{again}"
    );
    let refunds = format!("/v1/payments/{id}/refunds");
    let (status, _) = world.call("POST", &refunds, json!({"reference": "r-1", "amount": "2001"}));
    assert_eq!(status, 422, "never more than captured");

    let canceled = authorize("auth-2", "1000", 600);
    let id2 = canceled["id"].as_str().expect("id").to_owned();
    let canceled = world.ok("POST", &format!("/v1/payments/{id2}/cancel"), Value::Null);
    assert_eq!(canceled["status"], json!("canceled"), "{canceled}");
    assert_eq!(available(), 8_000);

    let expiring = authorize("auth-3", "500", 1);
    assert_eq!(available(), 7_500);
    std::thread::sleep(Duration::from_millis(1_500));
    world.ok("POST", "/v1/inspection", Value::Null);
    let expired = world.ok(
        "GET",
        &format!("/v1/orders/{}", expiring["id"].as_str().expect("id")),
        Value::Null,
    );
    assert_eq!(expired["status"], json!("expired"), "{expired}");
    assert_eq!((world.wallet(), available()), (8_000, 8_000));
    world.assert_balanced();
}

#[test]
fn a_card_payment_is_refunded_to_the_card_through_its_channel() {
    let world = World::start(&["bank_a", "bank_b"], &[]);
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-1", "customer": "alice", "merchant": "shop", "asset": "CNY",
               "amount": "5000", "card": CARD}),
    );
    assert_eq!(
        (payment["kind"].clone(), payment["status"].clone()),
        (json!("card_payment"), json!("succeeded")),
        "{payment}"
    );
    let channel = payment["state"]["channel"].as_str().expect("channel").to_owned();
    assert_eq!(world.wallet(), 0, "the wallet is not touched");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 5_000 - 30);
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    let partial = world.ok("POST", &refunds, json!({"reference": "r-1", "amount": "2000"}));
    assert_eq!(
        (partial["kind"].clone(), partial["status"].clone()),
        (json!("card_refund"), json!("succeeded")),
        "{partial}"
    );
    // The bank refuses the next refund: the merchant's money comes back by a reversal.
    world.sim.faults(&channel, json!({"refund": {"declined_rate": 1.0}}));
    let declined = world.ok("POST", &refunds, json!({"reference": "r-2", "amount": "3000"}));
    assert_eq!(declined["status"], json!("failed"), "{declined}");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 5_000 - 30 - 2_000 + 12);
    world.sim.faults(&channel, json!({}));
    let rest = world.ok("POST", &refunds, json!({"reference": "r-3", "amount": "3000"}));
    assert_eq!(rest["status"], json!("succeeded"), "{rest}");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 0, "fully refunded, fee included");
    assert_eq!(world.sim.card_balance(&channel), CARD_BALANCE_MINOR, "the card got it all back");
    let refunds_at_bank = world
        .sim
        .operations(&channel)
        .into_iter()
        .filter(|op| op["operation"] == json!("refund") && op["status"] == json!("succeeded"))
        .count();
    assert_eq!(refunds_at_bank, 2);
    world.assert_balanced();
    world.assert_matches_simulator(&channel);
}
