//! Degradation under overload at the edge (降级, 限流): with the ledger's writer stalled,
//! money-moving writes fill their class's limit and the next one is refused at once — 503
//! `overloaded` with `Retry-After`, never left to time out — while reads, a class of their
//! own, are still answered. When the stalled writes come back slower than their target, the
//! classes below them are cut first: bulk to its floor, reads below the writes.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use server::admission::{AdmissionConfig, Class, ClassConfig};

use crate::support::*;

fn in_flight(app: &App, class: Class) -> u64 {
    let mut out = String::new();
    app.state.admission.render_metrics(&mut out);
    let line = format!("qianbao_admission_in_flight{{class=\"{}\"}} ", class.as_str());
    out.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_overload_writes_are_refused_at_once_and_the_classes_below_are_cut_first() {
    let mut app = App::new();
    let class = |max| ClassConfig { min: 1, max, target_latency_us: Some(50_000) };
    app.state = app
        .state
        .clone()
        .with_admission(AdmissionConfig { enabled: true, classes: [class(3), class(3), class(2)] });
    app.router = server::router(app.state.clone());
    let key = funded_acme_world(&app).await;

    // The writer stalls: three transfers wait inside, the class is full.
    app.control.set(Mode::Closed);
    let stalled: Vec<_> = (0..3u128)
        .map(|i| {
            let body = transfer_body(100 + i, WORLD_ALICE, WORLD_BOB, 1);
            app.spawn(Req::post("/v1/transfers").key(&key).idem(&format!("stall-{i}")).json(&body))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while in_flight(&app, Class::Write) < 3 {
        assert!(Instant::now() < deadline, "the writes never filled their class");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The next write is refused at once, with a time to come back.
    let started = Instant::now();
    let refused = app
        .call(Req::post("/v1/transfers").key(&key).idem("one-too-many").json(&transfer_body(
            200,
            WORLD_ALICE,
            WORLD_BOB,
            1,
        )))
        .await;
    assert_error(&refused, 503, "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, never left to wait");
    // Refused before routing (`admission::early`), yet like every answer: a request id, and
    // counted in the HTTP metrics and admission's own.
    assert!(refused.header("x-request-id").is_some_and(|id| id.starts_with("req_")), "{refused:?}");
    let metrics = app.call(Req::get("/metrics")).await;
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains(
            "qianbao_http_request_duration_seconds_count{mode=\"live\",route=\"shed:write\",status=\"503\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("qianbao_admission_shed_total{class=\"write\"} 1"), "{metrics}");
    // Reads are a class of their own: still answered.
    let read = app.get(&format!("/v1/accounts/{WORLD_ALICE}"), &key).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");

    // The writer comes back after 100 ms: each stalled write took twice its class's
    // target. The writes are served; the classes below are cut first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.control.set(Mode::Open);
    for handle in stalled {
        let done = handle.await.expect("a stalled write");
        assert!(done.status.is_success(), "{done:?}");
    }
    let limit = |class| app.state.admission.limit(class);
    assert_eq!(limit(Class::Bulk), 1, "bulk cut to its floor");
    assert!(limit(Class::Read) < 3, "reads cut: {}", limit(Class::Read));
    assert!(
        limit(Class::Write) >= limit(Class::Read) && limit(Class::Read) >= limit(Class::Bulk),
        "writes keep the most: {} {} {}",
        limit(Class::Write),
        limit(Class::Read),
        limit(Class::Bulk)
    );
    // Nothing was lost: the three stalled transfers moved 3, the refused one nothing.
    app.assert_balanced().await;
    assert_eq!(app.posted(WORLD_BOB).await.1, 3);
}
