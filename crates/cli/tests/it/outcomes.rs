//! Uncertain outcomes through the binary (调单, 补偿): lost answers, requests the bank never
//! got, late callbacks, restarts and a second node while requests are at the bank, and
//! every channel product under every fault. Each ends once, as the bank did it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::payments::{drop_schemas, minor, postgres_url, World, CARD, CARD_BALANCE_MINOR};
use crate::serve::{request, start_with};

#[test]
fn a_lost_answer_is_settled_by_inquiry_as_the_bank_did_it() {
    let world = World::start(&["bank_a"], &[]);
    world.sim.faults("bank_a", json!({"debit": {"lost_response_rate": 1.0, "hold_ms": 50}}));
    let topup = world.topup("top-lost", 7_000);
    assert_eq!(topup["status"], json!("debiting"), "unknown outcome: waits, {topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(20));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(world.wallet(), 7_000);
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR - 7_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn a_request_the_bank_never_got_fails_after_the_late_arrival_window() {
    let world = World::start(&["bank_a"], &["--inquiry-not-found-final-ms", "1500"]);
    world.sim.faults("bank_a", json!({"debit": {"timeout_rate": 1.0, "hold_ms": 50}}));
    let topup = world.topup("top-timeout", 3_000);
    assert_eq!(topup["status"], json!("debiting"), "{topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(30));
    assert_eq!(done["status"], json!("failed"), "{done}");
    assert!(
        done["state"]["reason"].as_str().expect("reason").starts_with("never_received"),
        "{done}"
    );
    assert_eq!(world.wallet(), 0);
    assert!(world.sim.operations("bank_a").is_empty(), "the bank never executed it");
    world.assert_balanced();
}

#[test]
fn a_late_success_arrives_by_callback_and_its_duplicate_changes_nothing() {
    let world = World::start(&["bank_a"], &[]);
    world.sim.call(
        "PUT",
        "/admin/channels/bank_a/callback",
        json!({"url": format!("http://{}/channel-callbacks/bank_a", world.addr())}),
    );
    world.sim.faults(
        "bank_a",
        json!({"debit": {"late_success_rate": 1.0, "late_delay_ms": 200}, "duplicate_callback_rate": 1.0}),
    );
    let topup = world.topup("top-late", 4_000);
    assert_eq!(topup["status"], json!("debiting"), "processing: waits, {topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(20));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    // Both deliveries of the callback were acknowledged, and the wallet was credited once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = world.sim.call("GET", "/admin/channels/bank_a/callbacks", Value::Null);
        let acknowledged = log["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["http_status"] == json!(200))
            .count();
        if acknowledged >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "callbacks not acknowledged: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(world.wallet(), 4_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");

    // A forged callback is refused.
    let (status, refused) = request(
        world.addr(),
        "POST",
        "/channel-callbacks/bank_a",
        "-",
        r#"{"event_id":"x","data":{}}"#,
    )
    .expect("request");
    assert_eq!(status, 401, "{refused}");
}

#[test]
fn a_restart_while_a_payout_is_at_the_bank_resumes_it_once() {
    let mut world = World::start(&["bank_a"], &[]);
    assert_eq!(world.topup("top-1", 9_000)["status"], json!("succeeded"));
    world.sim.faults("bank_a", json!({"payout": {"latency": {"base_ms": 2_000}}}));
    let (addr, key) = (world.addr().to_owned(), world.key.clone());
    let pending = std::thread::spawn(move || {
        let body = json!({"reference": "wd-restart", "customer": "alice", "bank_account": CARD,
                          "asset": "CNY", "amount": "5000"});
        request(&addr, "POST", "/v1/withdrawals", &key, &body.to_string())
    });
    // The payout is at the bank (its state stored before the call): crash now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sim.operations("bank_a").iter().all(|op| op["operation"] != json!("payout")) {
        assert!(Instant::now() < deadline, "the payout never reached the bank");
        std::thread::sleep(Duration::from_millis(20));
    }
    world.kill();
    let _ = pending.join();
    world.sim.faults("bank_a", json!({}));
    world.restart(&["--inspect-after-ms", "100"]);
    let orders = world.ok("GET", "/v1/orders?kind=withdrawal", Value::Null);
    let id = orders["data"][0]["id"].as_str().expect("the withdrawal was stored").to_owned();
    let done = world.wait_final(&id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    let payouts: Vec<Value> = world
        .sim
        .operations("bank_a")
        .into_iter()
        .filter(|op| op["operation"] == json!("payout"))
        .collect();
    assert_eq!(payouts.len(), 1, "paid out once: {payouts:?}");
    assert_eq!(world.wallet(), 4_000);
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR - 9_000 + 5_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// Every product that goes through a bank, under every fault the simulator injects, ends in
/// the right final state with the books balanced and equal to the bank's.
#[test]
fn every_channel_product_ends_right_under_every_fault() {
    let world = World::start(&["bank_a"], &["--inquiry-not-found-final-ms", "1500"]);
    world.sim.call(
        "PUT",
        "/admin/channels/bank_a/callback",
        json!({"url": format!("http://{}/channel-callbacks/bank_a", world.addr())}),
    );
    world.fund_payroll(500_000, 100_000);
    let card_payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-src", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "100000", "card": CARD}),
    );
    assert_eq!(card_payment["status"], json!("succeeded"), "{card_payment}");
    let card_refunds = format!("/v1/payments/{}/refunds", card_payment["id"].as_str().expect("id"));

    let faults = [
        ("declined", json!({"declined_rate": 1.0}), "failed"),
        ("timeout", json!({"timeout_rate": 1.0, "hold_ms": 50}), "failed"),
        ("lost", json!({"lost_response_rate": 1.0, "hold_ms": 50}), "succeeded"),
        ("late", json!({"late_success_rate": 1.0, "late_delay_ms": 200}), "succeeded"),
    ];
    for (fault, operation_faults, expected) in faults {
        for product in ["topup", "withdrawal", "card_payment", "card_refund", "payout"] {
            let operation = match product {
                "topup" | "card_payment" => "debit",
                "card_refund" => "refund",
                _ => "payout",
            };
            world.sim.faults(
                "bank_a",
                json!({operation: operation_faults, "duplicate_callback_rate": 1.0}),
            );
            let reference = format!("{product}-{fault}");
            let order = match product {
                "topup" => world.topup(&reference, 1_000),
                "withdrawal" => world.ok(
                    "POST",
                    "/v1/withdrawals",
                    json!({"reference": reference, "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "1000"}),
                ),
                "card_payment" => world.ok(
                    "POST",
                    "/v1/payments",
                    json!({"reference": reference, "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1000", "card": CARD}),
                ),
                "card_refund" => {
                    world.ok("POST", &card_refunds, json!({"reference": reference, "amount": "1000"}))
                }
                _ => {
                    let (status, batch) = world.call(
                        "POST",
                        "/v1/merchants/payroll/payout-batches",
                        json!({"reference": reference, "asset": "CNY", "items": [
                            {"reference": "only", "bank_account": CARD, "amount": "1000"}]}),
                    );
                    assert_eq!(status, 202, "{batch}");
                    batch["items"][0].clone()
                }
            };
            let id = order["id"].as_str().expect("id").to_owned();
            let done = world.wait_final(&id, Duration::from_secs(30));
            assert_eq!(done["status"], json!(expected), "{product} under {fault}: {done}");
            world.sim.faults("bank_a", json!({}));
        }
    }
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// The service is killed while a request of each kind is at the bank; after the restart,
/// inspection and status inquiry finish every one, and the bank did each exactly once.
#[test]
fn a_restart_while_any_request_is_at_the_bank_finishes_it_once() {
    let mut world = World::start(&["bank_a"], &[]);
    world.fund_payroll(100_000, 50_000);
    let card = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-src", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "20000", "card": CARD}),
    );
    let card_refunds = format!("/v1/payments/{}/refunds", card["id"].as_str().expect("id"));
    for (product, operation, path, body, status) in [
        (
            "topup",
            "debit",
            "/v1/topups".to_owned(),
            json!({"reference": "r-top", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "3000"}),
            201,
        ),
        (
            "card_payment",
            "debit",
            "/v1/payments".to_owned(),
            json!({"reference": "r-card", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "4000", "card": CARD}),
            201,
        ),
        (
            "card_refund",
            "refund",
            card_refunds.clone(),
            json!({"reference": "r-refund", "amount": "5000"}),
            201,
        ),
        (
            "payout",
            "payout",
            "/v1/merchants/payroll/payout-batches".to_owned(),
            json!({"reference": "r-batch", "asset": "CNY", "items": [{"reference": "one", "bank_account": CARD, "amount": "6000"}]}),
            202,
        ),
    ] {
        world.sim.faults("bank_a", json!({operation: {"latency": {"base_ms": 2_000}}}));
        let ops_before = world.sim.operations("bank_a").len();
        let (addr, key, body_text) = (world.addr().to_owned(), world.key.clone(), body.to_string());
        let path_in = path.clone();
        let pending =
            std::thread::spawn(move || request(&addr, "POST", &path_in, &key, &body_text));
        let deadline = Instant::now() + Duration::from_secs(10);
        while world.sim.operations("bank_a").len() == ops_before {
            assert!(Instant::now() < deadline, "{product} never reached the bank");
            std::thread::sleep(Duration::from_millis(20));
        }
        world.kill();
        let _ = pending.join();
        world.sim.faults("bank_a", json!({}));
        world.restart(&["--inspect-after-ms", "100"]);
        // The retried request (same reference) finds the stored order; inspection finishes it.
        let (code, order) = world.call("POST", &path, body);
        assert_eq!(code, if status == 202 { 202 } else { 200 }, "{product}: {order}");
        let id =
            if product == "payout" { order["items"][0]["id"].clone() } else { order["id"].clone() };
        let done = world.wait_final(id.as_str().expect("id"), Duration::from_secs(30));
        assert_eq!(done["status"], json!("succeeded"), "{product}: {done}");
        world.sim.assert_each_request_once("bank_a");
    }
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// Two service nodes on one PostgreSQL receive the same requests at the same time, with
/// inspection racing on both: every order ends once, at the bank and in the books.
#[test]
fn two_nodes_driving_the_same_orders_do_everything_once() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_two_nodes_{}", std::process::id());
    let extra = ["--database-url", &url, "--database-schema", &schema, "--inspect-after-ms", "0"];
    let world = World::start(&["bank_a", "bank_b"], &extra);
    // The same settings: the same database, the same simulator.
    let (second, _) = start_with(&world.args, &[], false);
    let mut second = second;
    world.sim.faults("bank_a", json!({"debit": {"lost_response_rate": 0.3, "hold_ms": 50}}));
    let nodes = [world.addr().to_owned(), second.addr.clone()];
    let mut requests = Vec::new();
    for n in 0..30 {
        requests.push((
            "/v1/topups",
            json!({"reference": format!("top-{n}"), "customer": "alice",
            "card": CARD, "asset": "CNY", "amount": "1000"}),
        ));
    }
    for n in 0..20 {
        requests.push((
            "/v1/payments",
            json!({"reference": format!("pay-{n}"), "customer": "alice",
            "merchant": "shop", "asset": "CNY", "amount": "500"}),
        ));
        requests.push((
            "/v1/withdrawals",
            json!({"reference": format!("wd-{n}"), "customer": "alice",
            "bank_account": CARD, "asset": "CNY", "amount": "300"}),
        ));
    }
    // Each request goes to both nodes at once.
    let threads: Vec<_> = requests
        .into_iter()
        .flat_map(|(path, body)| {
            let key = world.key.clone();
            nodes.clone().map(|node| {
                let (key, body) = (key.clone(), body.to_string());
                std::thread::spawn(move || {
                    request(&node, "POST", path, &key, &body).expect("request")
                })
            })
        })
        .collect();
    for thread in threads {
        let (status, body) = thread.join().expect("thread");
        assert!(status == 200 || status == 201 || status == 409, "{status} {body}");
    }
    // Every order ends final, whichever node finishes it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let orders = world.ok("GET", "/v1/orders?limit=500", Value::Null);
        let all = orders["data"].as_array().expect("orders").clone();
        if all.len() == 70 && all.iter().all(|o| o["final"] == json!(true)) {
            break all;
        }
        assert!(Instant::now() < deadline, "not all final: {}", all.len());
        std::thread::sleep(Duration::from_millis(200));
    };
    for channel in ["bank_a", "bank_b"] {
        world.sim.assert_each_request_once(channel);
        world.assert_matches_simulator(channel);
    }
    let sum = |kind: &str| -> i64 {
        orders
            .iter()
            .filter(|o| o["kind"] == json!(kind) && o["status"] == json!("succeeded"))
            .map(|o| minor(&o["amount"]) as i64)
            .sum()
    };
    assert_eq!(world.wallet(), sum("topup") - sum("payment") - sum("withdrawal"));
    world.assert_balanced();
    let _ = second.child.kill();
    let _ = second.child.wait();
    drop(world);
    drop_schemas(&url, &schema);
}
