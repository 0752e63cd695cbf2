//! A card refund while its channel is down, end to end: a real `qianbao serve` and a real
//! bank simulator. The refund is not failed: it waits with the merchant's money held, is sent
//! again (same request id) by inspection while the channel refuses, and completes once the
//! channel is back — once at the bank, with the books balanced.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::payments::{minor, World, CARD, CARD_BALANCE_MINOR};
use crate::serve::request;

/// How long the channel may take to be found back: the next send is at most a few seconds
/// away (1 s, 2 s, 4 s… after the refusals so far), and each poll runs an inspection pass.
const CHANNEL_BACK_WITHIN: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(200);

impl World {
    /// Runs inspection passes (as the background loop does every 10 s) until `done` holds
    /// for the order, or panics after `within`.
    fn inspect_until(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            self.ok("POST", "/v1/inspection", Value::Null);
            let order = self.ok("GET", &format!("/v1/orders/{id}"), Value::Null);
            if done(&order) {
                return order;
            }
            assert!(Instant::now() < deadline, "order {id} not there in {within:?}: {order}");
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The service's `/metrics` line of `name` (no labels), as a number.
    fn gauge(&self, name: &str) -> f64 {
        let (status, text) = request(self.addr(), "GET", "/metrics", "-", "").expect("metrics");
        assert_eq!(status, 200, "{text}");
        let prefix = format!("{name} ");
        let line = text.lines().find_map(|line| line.strip_prefix(prefix.as_str()));
        line.and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no gauge {name} in {text}"))
    }
}

#[test]
fn a_card_refund_waits_while_its_channel_is_down_and_completes_once_it_is_back() {
    let world = World::start(&["bank_a"], &[]);
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-1", "customer": "alice", "merchant": "shop", "asset": "CNY",
               "amount": "5000", "card": CARD}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    // The merchant reads its fee (60 bps) where a wallet payment shows it.
    assert_eq!(payment["detail"]["fee"], json!("30"), "{payment}");
    let taken = 5_000 - 30;
    assert_eq!(world.balance("merchants", "shop", "unsettled"), taken);

    world.sim.faults("bank_a", json!({"down": "refuse"}));
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    let refund = world.ok("POST", &refunds, json!({"reference": "r-1", "amount": "2000"}));
    let id = refund["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (refund["kind"].clone(), refund["status"].clone(), refund["final"].clone()),
        (json!("card_refund"), json!("awaiting_channel"), json!(false)),
        "not failed: it waits for the channel: {refund}"
    );
    let state = &refund["state"];
    assert_eq!(state["attempts"], json!(1), "{refund}");
    let since_ms = state["since_ms"].as_u64().expect("since_ms");
    assert!(state["next_attempt_at_ms"].as_u64().expect("next attempt") > since_ms, "{refund}");
    assert!(
        state["reason"].as_str().expect("reason").starts_with("channel_unavailable"),
        "{refund}"
    );
    // Held: the refund (less its fee share, 12) has left the merchant and is in flight.
    let held = taken - (2_000 - 12);
    assert_eq!(world.balance("merchants", "shop", "unsettled"), held);
    world.assert_balanced();

    // Still down: inspection sends it again when due and it keeps waiting, counted.
    let waiting = world.inspect_until(&id, CHANNEL_BACK_WITHIN, |order| {
        order["state"]["attempts"].as_u64().is_some_and(|attempts| attempts >= 2)
    });
    assert_eq!(waiting["status"], json!("awaiting_channel"), "{waiting}");
    assert_eq!(waiting["state"]["since_ms"], json!(since_ms), "the wait keeps its start");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), held);
    let report = world.ok("POST", "/v1/inspection", Value::Null);
    assert_eq!(report["awaiting_channel"], json!(1), "{report}");
    assert_eq!(world.gauge("qianbao_refunds_awaiting_channel"), 1.0);
    assert!(world.gauge("qianbao_refunds_awaiting_channel_age_seconds_max") > 0.0);
    assert!(world.sim.operations("bank_a").iter().all(|op| op["operation"] != json!("refund")));

    world.sim.faults("bank_a", json!({}));
    let done = world.inspect_until(&id, CHANNEL_BACK_WITHIN, |order| order["final"] == json!(true));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), held, "paid from what was held");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
    // The bank did the refund once, under the one request id every send carried.
    let refunds_at_bank: Vec<Value> = world
        .sim
        .operations("bank_a")
        .into_iter()
        .filter(|op| op["operation"] == json!("refund"))
        .collect();
    assert_eq!(refunds_at_bank.len(), 1, "{refunds_at_bank:?}");
    assert_eq!(refunds_at_bank[0]["request_id"], json!(format!("{id}:return")));
    assert_eq!(refunds_at_bank[0]["status"], json!("succeeded"));
    assert_eq!(minor(&refunds_at_bank[0]["amount_minor"]), 2_000);
    world.sim.assert_each_request_once("bank_a");
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR - 5_000 + 2_000);
    world.ok("POST", "/v1/inspection", Value::Null);
    assert_eq!(world.gauge("qianbao_refunds_awaiting_channel"), 0.0);
}

/// An operator pauses a refund that waits for its channel (a dispute to look into): when the
/// channel is back nothing is sent while it is held, however often inspection runs, and
/// once released it goes, once.
#[test]
fn a_held_refund_is_not_sent_until_an_operator_releases_it() {
    let world = World::start(&["bank_a"], &[]);
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-h", "customer": "alice", "merchant": "shop", "asset": "CNY",
               "amount": "4000", "card": CARD}),
    );
    world.sim.faults("bank_a", json!({"down": "refuse"}));
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    let refund = world.ok("POST", &refunds, json!({"reference": "r-h", "amount": "1000"}));
    let id = refund["id"].as_str().expect("id").to_owned();
    assert_eq!(refund["status"], json!("awaiting_channel"), "{refund}");

    let ops = world.share(&crate::recon::key(&world, &["ops:read", "ops:write"]));
    let hold = json!({"switch": "order_held", "order": id});
    let held = ops.ok(
        "POST",
        "/v1/ops/switches",
        json!({"target": hold, "on": true, "reason": "dispute INC-5 under review"}),
    );
    assert_eq!(
        (held["data"][0]["key"].clone(), held["data"][0]["kind"].clone()),
        (json!(format!("hold/order:{id}")), json!("hold"))
    );
    // The serve loop reads the switches each second.
    std::thread::sleep(Duration::from_millis(1_500));
    world.sim.faults("bank_a", json!({}));
    // The channel is back and the next send is due (attempts back off from 1 s): still held.
    for _ in 0..15 {
        world.ok("POST", "/v1/inspection", Value::Null);
        std::thread::sleep(POLL_EVERY);
    }
    let waiting = world.ok("GET", &format!("/v1/orders/{id}"), Value::Null);
    assert_eq!(waiting["status"], json!("awaiting_channel"), "held: {waiting}");
    assert!(
        world.sim.operations("bank_a").iter().all(|op| op["operation"] != json!("refund")),
        "nothing sent to the bank while held"
    );

    ops.ok("POST", "/v1/ops/switches/rollback", json!({"target": hold, "reason": "reviewed"}));
    let done = world.inspect_until(&id, CHANNEL_BACK_WITHIN, |order| order["final"] == json!(true));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    world.sim.assert_each_request_once("bank_a");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}
