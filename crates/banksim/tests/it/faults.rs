//! One test per fault kind: what the client observes, and what the books say happened.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::join_all;
use crate::harness::{debit_body, refund_body, Receiver, Sim};

#[tokio::test]
async fn injected_failures_are_logged_and_move_nothing() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let (_, debit) = sim.debit("d-ok", "c1", 1_000).await.unwrap();
    assert_eq!(debit["status"], "succeeded");
    sim.set_faults(
        "bank_a",
        json!({
            "debit": { "declined_rate": 1.0 },
            "payout": { "insufficient_funds_rate": 1.0 },
            "refund": { "invalid_account_rate": 1.0 }
        }),
    )
    .await;
    let before = sim.books("bank_a").await;
    let payout =
        json!({ "request_id": "p1", "account": "c1", "amount_minor": "10", "currency": "CNY" });
    let answers = [
        sim.debit("d1", "c1", 10).await.unwrap(),
        sim.post_op("payouts", payout).await.unwrap(),
        sim.post_op("refunds", refund_body("r1", "d-ok", 10)).await.unwrap(),
    ];
    let reasons = ["declined", "insufficient_funds", "invalid_account"];
    for ((status, answer), reason) in answers.iter().zip(reasons) {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(
            (&answer["status"], &answer["failure_reason"]),
            (&json!("failed"), &json!(reason))
        );
        let (_, queried) = sim.query("bank_a", answer["request_id"].as_str().unwrap()).await;
        assert_eq!(queried["failure_reason"], reason);
    }
    assert_eq!(sim.books("bank_a").await, before, "a failure moves nothing");
}

#[tokio::test]
async fn timeout_answers_nothing_and_executes_nothing() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    sim.set_faults("bank_a", json!({ "debit": { "timeout_rate": 1.0, "hold_ms": 200 } })).await;
    let before = sim.books("bank_a").await;

    let started = Instant::now();
    let error = sim.debit("d1", "c1", 500).await.expect_err("no answer");
    assert!(!error.is_timeout(), "the bank dropped the connection before our own timeout: {error}");
    assert!(started.elapsed() >= Duration::from_millis(200), "held first");
    let (status, queried) = sim.query("bank_a", "d1").await;
    assert_eq!((status, &queried["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    assert_eq!(sim.books("bank_a").await, before);

    // A retry is a new attempt with its own draws; with the fault off it goes through.
    sim.set_faults("bank_a", json!({})).await;
    let (_, retried) = sim.debit("d1", "c1", 500).await.unwrap();
    assert_eq!((&retried["status"], &retried["attempt"]), (&json!("succeeded"), &json!(1)));
    assert_eq!(sim.books("bank_a").await.customer("c1"), 9_500);
}

#[tokio::test]
async fn lost_response_executes_but_never_answers() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    sim.set_faults("bank_a", json!({ "debit": { "lost_response_rate": 1.0, "hold_ms": 100 } }))
        .await;

    sim.debit("d1", "c1", 2_500).await.expect_err("the answer is lost");
    let (status, queried) = sim.query("bank_a", "d1").await;
    assert_eq!((status, &queried["status"]), (StatusCode::OK, &json!("succeeded")));
    assert_eq!(sim.books("bank_a").await.customer("c1"), 7_500, "money moved");
    // Retrying into the same fault loses the answer again, and moves nothing.
    sim.debit("d1", "c1", 2_500).await.expect_err("lost again");
    sim.set_faults("bank_a", json!({})).await;
    let (_, retried) = sim.debit("d1", "c1", 2_500).await.unwrap();
    assert_eq!(retried, queried, "the retry reports the original operation");
    assert_eq!(sim.books("bank_a").await.customer("c1"), 7_500, "money moved once");
}

#[tokio::test]
async fn late_success_answers_processing_then_calls_back() {
    let sim = Sim::start().await;
    let mut receiver = Receiver::start(0).await;
    sim.set_callback("bank_a", &receiver.url).await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let faults = json!({ "debit": { "late_success_rate": 1.0, "late_answer": "processing", "late_delay_ms": 1500 } });
    sim.set_faults("bank_a", faults).await;

    let (status, answer) = sim.debit("d1", "c1", 4_000).await.unwrap();
    assert_eq!((status, &answer["status"]), (StatusCode::ACCEPTED, &json!("processing")));
    let (_, queried) = sim.query("bank_a", "d1").await;
    assert_eq!(queried["status"], "processing");
    assert_eq!(sim.books("bank_a").await.customer("c1"), 10_000, "not executed yet");

    let callback = receiver.next().await;
    assert!(callback.signature_is_valid(crate::harness::SECRET_A));
    let event = callback.json();
    assert_eq!(event["data"]["request_id"], "d1");
    assert_eq!(event["data"]["status"], "succeeded");
    assert_eq!(event["data"]["channel_ref"], answer["channel_ref"]);
    let (_, queried) = sim.query("bank_a", "d1").await;
    assert_eq!(queried, event["data"]);
    assert_eq!(sim.books("bank_a").await.customer("c1"), 6_000);
}

#[tokio::test]
async fn late_success_after_a_timeout_calls_back() {
    let sim = Sim::start().await;
    let mut receiver = Receiver::start(0).await;
    sim.set_callback("bank_a", &receiver.url).await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let faults = json!({
        "payout": { "late_success_rate": 1.0, "late_answer": "timeout", "hold_ms": 100, "late_delay_ms": 1500 }
    });
    sim.set_faults("bank_a", faults).await;

    let payout =
        json!({ "request_id": "p1", "account": "c1", "amount_minor": "3000", "currency": "CNY" });
    sim.post_op("payouts", payout).await.expect_err("times out first");
    let (_, queried) = sim.query("bank_a", "p1").await;
    assert_eq!(queried["status"], "processing");
    let event = receiver.next().await.json();
    assert_eq!(
        (&event["data"]["request_id"], &event["data"]["status"]),
        (&json!("p1"), &json!("succeeded"))
    );
    assert_eq!(sim.books("bank_a").await.customer("c1"), 13_000);
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let slow = json!({ "base_ms": 300, "tail_mean_ms": 0 });
    sim.set_faults("bank_a", json!({ "debit": { "latency": slow }, "query": { "latency": slow } }))
        .await;
    let started = Instant::now();
    let (_, answer) = sim.debit("d1", "c1", 1).await.unwrap();
    assert_eq!(answer["status"], "succeeded");
    let (_, _) = sim.query("bank_a", "d1").await;
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
    let (status, faults) = sim.admin(Method::GET, "/admin/channels/bank_a/faults", None).await;
    assert_eq!((status, &faults["debit"]["latency"]["base_ms"]), (StatusCode::OK, &json!(300)));
}

#[tokio::test]
async fn channel_down_refuses_or_drops_everything() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let before = sim.books("bank_a").await;

    sim.set_faults("bank_a", json!({ "down": "refuse" })).await;
    let (status, error) = sim.debit("d1", "c1", 1).await.unwrap();
    assert_eq!(
        (status, &error["error"]["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("channel_down"))
    );
    let (status, _) = sim.query("bank_a", "d1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = sim.debit_on_b().await;
    assert_eq!(status, StatusCode::OK, "other channels are up");

    sim.set_faults("bank_a", json!({ "down": "drop" })).await;
    sim.debit("d1", "c1", 1).await.expect_err("connection dropped");
    let path = "/channels/bank_a/statements/2024-01-01";
    sim.signed(Method::GET, path, None).await.expect_err("connection dropped");

    assert_eq!(sim.books("bank_a").await, before);
    assert!(sim.operations("bank_a").await.is_empty());
    sim.set_faults("bank_a", json!({ "down": "off" })).await;
    let (_, answer) = sim.debit("d1", "c1", 1).await.unwrap();
    assert_eq!(answer["status"], "succeeded");
}

impl Sim {
    async fn debit_on_b(&self) -> (StatusCode, Value) {
        self.open_account("bank_b", "b1", 100).await;
        self.post_op_on("bank_b", "debits", debit_body("b-d1", "b1", 10)).await.unwrap()
    }
}

#[tokio::test]
async fn bad_fault_configs_are_rejected() {
    let sim = Sim::start().await;
    for faults in [
        json!({ "debit": { "timeout_rate": 1.5 } }),
        json!({ "debit": { "timeout_rate": 0.6, "declined_rate": 0.6 } }),
        json!({ "debit": { "no_such_fault": 1 } }),
        json!({ "down": "sometimes" }),
        json!({ "capacity_per_s": 0 }),
        json!({ "capacity_per_s": -5 }),
    ] {
        let (status, _) =
            sim.admin(Method::PUT, "/admin/channels/bank_a/faults", Some(faults.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{faults}");
    }
}

#[tokio::test]
async fn capacity_limit_refuses_before_anything_is_recorded() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    sim.set_faults("bank_a", json!({ "capacity_per_s": 1 })).await;
    let (_, faults) = sim.admin(Method::GET, "/admin/channels/bank_a/faults", None).await;
    assert_eq!(faults["capacity_per_s"], 1, "{faults}");

    // One a second: the first is taken, the second (well within the second) refused.
    let (_, first) = sim.debit("d1", "c1", 100).await.unwrap();
    assert_eq!(first["status"], "succeeded");
    let body = debit_body("d2", "c1", 100);
    let refused = sim.signed(Method::POST, "/channels/bank_a/debits", Some(&body)).await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "capacity_exceeded", "{error}");

    // Nothing of d2 was recorded; queries are not limited and find nothing.
    let (status, queried) = sim.query("bank_a", "d2").await;
    assert_eq!((status, &queried["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    assert_eq!(sim.operations("bank_a").await.len(), 1);
    assert_eq!(sim.books("bank_a").await.customer("c1"), 9_900);

    // A second later the same request id is a first execution; waiting is the feature here.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (_, retried) = sim.debit("d2", "c1", 100).await.unwrap();
    assert_eq!((&retried["status"], &retried["attempt"]), (&json!("succeeded"), &json!(0)));

    // Clearing the faults clears the limit.
    sim.set_faults("bank_a", json!({})).await;
    let (_, faults) = sim.admin(Method::GET, "/admin/channels/bank_a/faults", None).await;
    assert_eq!(faults["capacity_per_s"], Value::Null);
    for n in 0..5 {
        let (status, _) = sim.debit(&format!("e{n}"), "c1", 1).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
}

/// What a client saw for each request id.
async fn outcomes(seed: u64) -> Vec<String> {
    let sim = Sim::start_with(crate::harness::test_config(), seed).await;
    sim.open_account("bank_a", "c1", 1_000_000).await;
    let faults = json!({ "debit": {
        "declined_rate": 0.15, "insufficient_funds_rate": 0.1, "timeout_rate": 0.15,
        "lost_response_rate": 0.15, "hold_ms": 50,
        "latency": { "base_ms": 1, "tail_mean_ms": 5, "max_ms": 30 }
    } });
    sim.set_faults("bank_a", faults).await;
    // All at once, so they interleave differently on every run.
    let request_ids: Vec<String> = (0..40).map(|i| format!("seeded-{i}")).collect();
    let answers = join_all(request_ids.iter().map(|id| sim.debit(id, "c1", 100))).await;
    answers
        .into_iter()
        .map(|answer| match answer {
            Ok((_, operation)) => {
                format!("{}/{}", operation["status"], operation["failure_reason"])
            }
            Err(_) => "no answer".to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn the_seed_reproduces_every_fault() {
    let (first, again, other) = tokio::join!(outcomes(7), outcomes(7), outcomes(8));
    assert_eq!(first, again);
    assert_ne!(first, other);
    let n_no_answer = first.iter().filter(|o| *o == "no answer").count();
    assert!(n_no_answer > 0 && n_no_answer < first.len(), "{first:?}");
}
