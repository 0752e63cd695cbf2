//! Callbacks: signed, retried with backoff until a 2xx, bounded, sometimes duplicated.

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{test_config, Receiver, Sim, SECRET_A};

async fn deliveries(sim: &Sim) -> Vec<Value> {
    let (_, log) = sim.admin(Method::GET, "/admin/channels/bank_a/callbacks", None).await;
    log["deliveries"].as_array().unwrap().clone()
}

/// The delivery log once it holds `n_deliveries` entries: an attempt is logged just after
/// the receiver answers it.
async fn deliveries_eventually(sim: &Sim, n_deliveries: usize) -> Vec<Value> {
    for _ in 0..200 {
        let log = deliveries(sim).await;
        if log.len() >= n_deliveries {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {n_deliveries} deliveries logged");
}

async fn late_debit(sim: &Sim, request_id: &str) {
    sim.open_account("bank_a", request_id, 1_000).await;
    let faults = json!({ "debit": { "late_success_rate": 1.0, "late_delay_ms": 50 } });
    sim.set_faults("bank_a", faults).await;
    let (status, _) = sim.debit(request_id, request_id, 100).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn callbacks_are_signed_and_retried_until_2xx() {
    let sim = Sim::start().await;
    let mut receiver = Receiver::start(1).await;
    sim.set_callback("bank_a", &receiver.url).await;
    late_debit(&sim, "d1").await;

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!(first.answered, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(second.answered, StatusCode::OK);
    for callback in [&first, &second] {
        assert!(callback.signature_is_valid(SECRET_A), "signed over timestamp and body");
        assert!(!callback.signature_is_valid("other-secret"));
        assert_eq!(callback.json()["data"]["status"], "succeeded");
    }
    assert_eq!(first.json()["event_id"], second.json()["event_id"], "a retry repeats the event");
    assert!(receiver.another_within(300).await.is_none(), "no attempt after a 2xx");
    let log = deliveries_eventually(&sim, 2).await;
    let attempts: Vec<(&Value, &Value)> =
        log.iter().map(|d| (&d["attempt"], &d["http_status"])).collect();
    assert_eq!(attempts, [(&json!(1), &json!(500)), (&json!(2), &json!(200))]);
}

#[tokio::test]
async fn callbacks_stop_after_attempts_max() {
    let sim = Sim::start().await;
    let mut receiver = Receiver::start(u32::MAX).await;
    sim.set_callback("bank_a", &receiver.url).await;
    late_debit(&sim, "d1").await;
    for _ in 0..4 {
        assert_eq!(receiver.next().await.answered, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert!(receiver.another_within(600).await.is_none(), "attempts_max is 4");
    assert_eq!(deliveries_eventually(&sim, 4).await.len(), 4);
    // The operation itself succeeded; only the announcement failed.
    assert_eq!(sim.query("bank_a", "d1").await.1["status"], "succeeded");
}

#[tokio::test]
async fn duplicate_callbacks_repeat_the_event_id() {
    let sim = Sim::start().await;
    let mut receiver = Receiver::start(0).await;
    sim.set_callback("bank_a", &receiver.url).await;
    sim.open_account("bank_a", "c1", 1_000).await;
    let faults = json!({
        "debit": { "late_success_rate": 1.0, "late_delay_ms": 50 },
        "duplicate_callback_rate": 1.0
    });
    sim.set_faults("bank_a", faults).await;
    sim.debit("d1", "c1", 100).await.unwrap();
    let (first, second) = (receiver.next().await.json(), receiver.next().await.json());
    assert_eq!(first, second, "the same event, delivered twice");
    let log = deliveries_eventually(&sim, 2).await;
    assert_eq!(
        log.iter().map(|d| d["duplicate"].clone()).collect::<Vec<_>>(),
        [json!(false), json!(true)]
    );
    assert_eq!(sim.books("bank_a").await.customer("c1"), 900, "money moved once");
}

#[tokio::test]
async fn a_callback_url_registered_late_still_gets_pending_events() {
    let mut config = test_config();
    config["callbacks"] = json!({ "attempts_max": 20, "backoff_ms": 100, "backoff_max_ms": 200 });
    let sim = Sim::start_with(config, 42).await;
    let mut receiver = Receiver::start(0).await;
    late_debit(&sim, "d1").await;
    for _ in 0..200 {
        if !deliveries(&sim).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(deliveries(&sim).await[0]["error"], "no callback url registered");
    // Registered through the signed channel endpoint this time.
    let body = json!({ "url": receiver.url });
    let response = sim.signed(Method::PUT, "/channels/bank_a/callback", Some(&body)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(receiver.next().await.json()["data"]["request_id"], "d1");
    let bad = json!({ "url": "https://example.invalid/hook" });
    let response = sim.signed(Method::PUT, "/channels/bank_a/callback", Some(&bad)).await.unwrap();
    assert_eq!(response.status(), 400, "plain http only");
}
