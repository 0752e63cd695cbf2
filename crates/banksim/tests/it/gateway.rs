//! The channel gateway (`channels`) against the real simulator process: the adapter's
//! outcome mapping, routing that follows health, failover that never touches an unknown
//! outcome, and status inquiry converging every unknown outcome to the simulator's truth —
//! through callbacks and queries, across a gateway restart, and under every fault at once,
//! after which our record of each operation equals the simulator's books exactly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use channels::banksim::{verify_callback, CallbackBody, SimulatorChannel, SimulatorChannelConfig};
use channels::breaker::{BreakerConfig, BreakerState};
use channels::gateway::SystemMillis;
use channels::inquiry::{
    Inquirer, InquiryOwner, InquiryPolicy, InquiryStore, InquiryTask, MemoryInquiryStore,
};
use channels::limits::LimitsConfig;
use channels::router::ChannelProfile;
use channels::{
    BoxFuture, Channel, ChannelId, ChannelRequest, FailureReason, Gateway, GatewayConfig,
    Operation, Outcome, RequestId,
};
use money::{Amount, AssetCode};
use serde_json::{json, Value};

use crate::harness::{test_config, unix_s, Sim, SECRET_A, SECRET_B};

const GATEWAY_TIMEOUT_MS: u64 = 400;

/// Our record of each request: the channel that answered last, and the outcome.
type Records = BTreeMap<String, (Option<ChannelId>, Outcome)>;

fn profile(id: &str, fee_bps: u32) -> ChannelProfile {
    ChannelProfile {
        id: ChannelId::new(id).unwrap(),
        operations: Operation::ALL.to_vec(),
        assets: vec![AssetCode::new("CNY").unwrap()],
        amount_min: Amount::new(1).unwrap(),
        amount_max: Amount::new(1_000_000).unwrap(),
        account_prefixes: vec![],
        fee_fixed: Amount::ZERO,
        fee_bps,
        timeout_ms: GATEWAY_TIMEOUT_MS,
        limits: LimitsConfig::default(),
        breaker: BreakerConfig {
            window_ms: 2_000,
            calls_min: 8,
            open_ms: 300,
            ..BreakerConfig::default()
        },
    }
}

fn gateway(sim: &Sim) -> Arc<Gateway> {
    let adapter = |id: &str, secret: &str| -> Arc<dyn Channel> {
        Arc::new(
            SimulatorChannel::new(SimulatorChannelConfig {
                id: ChannelId::new(id).unwrap(),
                base_url: sim.base.clone(),
                secret: secret.into(),
                timeout_ms: GATEWAY_TIMEOUT_MS,
            })
            .unwrap(),
        )
    };
    Arc::new(
        Gateway::new(
            vec![adapter("bank_a", SECRET_A), adapter("bank_b", SECRET_B)],
            // bank_a is cheaper: it wins while healthy.
            vec![profile("bank_a", 10), profile("bank_b", 40)],
            GatewayConfig { health_window_ms: 2_000, ..GatewayConfig::default() },
            Arc::new(SystemMillis),
        )
        .unwrap(),
    )
}

fn request(id: &str, operation: Operation, account: &str, amount_minor: u64) -> ChannelRequest {
    ChannelRequest {
        request_id: RequestId::new(id).unwrap(),
        operation,
        account: account.into(),
        asset: AssetCode::new("CNY").unwrap(),
        amount: Amount::new(amount_minor).unwrap(),
        original_request_id: None,
    }
}

/// Records every final outcome it is handed, like an order would.
#[derive(Default)]
struct Owner {
    delivered: Mutex<BTreeMap<String, Outcome>>,
    deliveries: AtomicUsize,
}

impl InquiryOwner for Owner {
    fn deliver<'a>(
        &'a self,
        task: &'a InquiryTask,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), channels::inquiry::DeliveryError>> {
        Box::pin(async move {
            self.deliveries.fetch_add(1, Ordering::SeqCst);
            self.delivered.lock().unwrap().insert(task.request_id.to_string(), outcome.clone());
            Ok(())
        })
    }
}

fn fast_policy() -> InquiryPolicy {
    InquiryPolicy {
        first_delay_ms: 50,
        backoff_factor: 2,
        delay_max_ms: 400,
        attempts_max: 60,
        escalated_delay_ms: 400,
        not_found_final_after_ms: Some(1_500),
    }
}

/// A callback endpoint: verifies the simulator's signature and hands the result to inquiry.
async fn start_callback_receiver(inquirer: Arc<Inquirer>) -> String {
    async fn receive(
        State(inquirer): State<Arc<Inquirer>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let channel = header("x-banksim-channel");
        let secret = if channel == "bank_a" { SECRET_A } else { SECRET_B };
        let signed = verify_callback(
            secret,
            header("x-banksim-timestamp"),
            header("x-banksim-signature"),
            &body,
            unix_s(),
            300,
        );
        if !signed {
            return StatusCode::UNAUTHORIZED;
        }
        let Ok(callback) = serde_json::from_slice::<CallbackBody>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        let channel = ChannelId::new(callback.data.channel.clone()).unwrap();
        match inquirer
            .on_callback(&channel, &callback.data.request_id, &callback.data.outcome())
            .await
        {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app =
        axum::Router::new().route("/callbacks", axum::routing::post(receive)).with_state(inquirer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Sweeps until nothing is open or undelivered.
async fn settle(inquirer: &Inquirer, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        inquirer.sweep().await.unwrap();
        let backlog = inquirer.store().backlog().unwrap();
        if backlog.open == 0 && backlog.undelivered == 0 {
            assert_eq!(backlog.escalated, 0, "nothing should need an operator here");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "inquiry did not converge: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn faults(rates: Value) -> Value {
    let mut operation = json!({
        "latency": {"base_ms": 1, "tail_mean_ms": 2, "max_ms": 20},
        "hold_ms": GATEWAY_TIMEOUT_MS * 2,
        "late_delay_ms": 150,
        "late_answer": "processing"
    });
    for (key, value) in rates.as_object().unwrap() {
        operation[key] = value.clone();
    }
    json!({"debit": operation, "payout": operation, "refund": operation, "duplicate_callback_rate": 0.2})
}

#[tokio::test]
async fn routing_follows_health_and_never_fails_over_an_unknown_outcome() {
    let sim = Sim::start().await;
    for channel in ["bank_a", "bank_b"] {
        sim.open_account(channel, "alice", 1_000_000).await;
    }
    let gateway = gateway(&sim);
    let mut n = 0;
    let mut next = || {
        n += 1;
        request(&format!("route-{n}"), Operation::Debit, "alice", 100)
    };
    for _ in 0..5 {
        assert_eq!(gateway.execute(&next()).await.channel.unwrap().as_str(), "bank_a");
    }
    // bank_a goes down (503 before doing anything): everything fails over, and within a few
    // calls bank_a stops being tried at all.
    sim.set_faults("bank_a", json!({"down": "refuse"})).await;
    let mut calls_to_a = 0;
    for _ in 0..40 {
        let routed = gateway.execute(&next()).await;
        assert!(matches!(routed.outcome, Outcome::Succeeded(_)), "{routed:?}");
        assert_eq!(routed.channel.unwrap().as_str(), "bank_b");
        calls_to_a += routed.attempts.iter().filter(|(c, _)| c.as_str() == "bank_a").count();
    }
    assert!(calls_to_a <= 10, "a down channel kept {calls_to_a} of 40 calls");

    // Recovery: the window ages out, probes succeed, the cheaper channel wins again.
    sim.set_faults("bank_a", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut back = 0;
    for _ in 0..10 {
        back += usize::from(gateway.execute(&next()).await.channel.unwrap().as_str() == "bank_a");
    }
    assert!(back >= 8, "only {back} of 10 calls returned to the recovered channel");

    // A lost response is unknown: the request is not sent to bank_b, though bank_b is healthy.
    sim.set_faults("bank_a", faults(json!({"lost_response_rate": 1.0}))).await;
    let routed = gateway.execute(&request("lost-1", Operation::Debit, "alice", 700)).await;
    assert!(matches!(routed.outcome, Outcome::Unknown { .. }), "{routed:?}");
    assert_eq!(routed.attempts.len(), 1, "no failover after an unknown outcome");
    let (_, op) = sim.query("bank_b", "lost-1").await;
    assert_eq!(op["error"]["code"], "not_found", "bank_b never saw it");
    let (_, op) = sim.query("bank_a", "lost-1").await;
    assert_eq!(op["status"], "succeeded", "bank_a did move the money");

    // The breaker on its own: bank_a refuses everything; after enough failures in the window
    // it opens and calls stop reaching the bank; after open_ms, probes find it healthy again.
    let bank_a = ChannelId::new("bank_a").unwrap();
    let breaker = |gateway: &Gateway| {
        gateway.status().into_iter().find(|s| s.channel == bank_a).unwrap().breaker
    };
    sim.set_faults("bank_a", json!({"down": "refuse"})).await;
    let mut refusals = 0;
    while breaker(&gateway) != BreakerState::Open {
        gateway.execute_on(&bank_a, &next()).await;
        refusals += 1;
        assert!(refusals <= 20, "the breaker is still closed after {refusals} refusals");
    }
    let refused = gateway.execute_on(&bank_a, &next()).await;
    assert!(
        matches!(refused.outcome, Outcome::Failed { reason: FailureReason::NotAttempted, .. }),
        "{refused:?}"
    );
    sim.set_faults("bank_a", json!({})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(breaker(&gateway), BreakerState::HalfOpen);
    for _ in 0..3 {
        let probe = gateway.execute_on(&bank_a, &next()).await;
        assert!(matches!(probe.outcome, Outcome::Succeeded(_)), "{probe:?}");
    }
    assert_eq!(breaker(&gateway), BreakerState::Closed);
}

#[tokio::test]
async fn a_request_over_the_banks_capacity_fails_over_because_the_bank_did_nothing() {
    let sim = Sim::start().await;
    for channel in ["bank_a", "bank_b"] {
        sim.open_account(channel, "alice", 1_000_000).await;
    }
    let gateway = gateway(&sim);
    let bank_a = ChannelId::new("bank_a").unwrap();
    sim.set_faults("bank_a", json!({"capacity_per_s": 1})).await;
    let first =
        gateway.execute_on(&bank_a, &request("cap-1", Operation::Debit, "alice", 100)).await;
    assert!(matches!(first.outcome, Outcome::Succeeded(_)), "{first:?}");
    // Within the same second: the adapter reads the refusal as "certainly did nothing"...
    let refused =
        gateway.execute_on(&bank_a, &request("cap-2", Operation::Debit, "alice", 100)).await;
    assert!(
        matches!(
            refused.outcome,
            Outcome::Failed { reason: FailureReason::ChannelUnavailable, .. }
        ),
        "{refused:?}"
    );
    // ...so routing may send the request on to another channel, and bank_a has no trace of it.
    let routed = gateway.execute(&request("cap-3", Operation::Debit, "alice", 100)).await;
    assert!(matches!(routed.outcome, Outcome::Succeeded(_)), "{routed:?}");
    assert_eq!(routed.channel.unwrap().as_str(), "bank_b");
    for request_id in ["cap-2", "cap-3"] {
        let (_, op) = sim.query("bank_a", request_id).await;
        assert_eq!(op["error"]["code"], "not_found", "{request_id}: {op}");
    }
}

#[tokio::test]
async fn inquiry_converges_to_the_simulators_truth_across_a_gateway_restart() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "bob", 1_000_000).await;
    sim.set_faults("bank_a", faults(json!({"lost_response_rate": 0.5, "timeout_rate": 0.5}))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let owner = Arc::new(Owner::default());
    let mut unknown = Vec::new();
    {
        // The first gateway process: sends, sees unknown outcomes, opens inquiries, "crashes".
        let gateway = gateway(&sim);
        let store: Arc<dyn InquiryStore> =
            Arc::new(store::SqliteInquiryStore::open(&path).unwrap());
        let inquirer = Inquirer::new(
            gateway.clone(),
            store,
            owner.clone(),
            fast_policy(),
            Arc::new(SystemMillis),
        );
        for n in 0..20 {
            let request = request(&format!("restart-{n}"), Operation::Payout, "bob", 100 + n);
            let routed = gateway.execute_on(&ChannelId::new("bank_a").unwrap(), &request).await;
            assert!(matches!(routed.outcome, Outcome::Unknown { .. }), "{routed:?}");
            inquirer
                .open(
                    &ChannelId::new("bank_a").unwrap(),
                    Operation::Payout,
                    &request.request_id,
                    "payout",
                )
                .unwrap();
            unknown.push(request.request_id.to_string());
        }
    }
    // A new gateway on the same inquiry store finishes the job.
    let gateway = gateway(&sim);
    let store: Arc<dyn InquiryStore> = Arc::new(store::SqliteInquiryStore::open(&path).unwrap());
    let inquirer =
        Inquirer::new(gateway, store, owner.clone(), fast_policy(), Arc::new(SystemMillis));
    settle(&inquirer, Duration::from_secs(20)).await;

    let delivered = owner.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), unknown.len());
    for id in &unknown {
        let (_, op) = sim.query("bank_a", id).await;
        match (&delivered[id], op["status"].as_str()) {
            (Outcome::Succeeded(_), Some("succeeded")) => {}
            (Outcome::Failed { reason: FailureReason::NeverReceived, .. }, None) => {
                assert_eq!(op["error"]["code"], "not_found");
            }
            (ours, theirs) => panic!("{id}: we say {ours:?}, the bank says {theirs:?}"),
        }
    }
}

#[tokio::test]
async fn chaos_every_fault_at_once_and_our_records_equal_the_simulators_books() {
    const OPERATIONS: usize = 2_000;
    let sim = Sim::start_with(test_config(), 7).await;
    let accounts: Vec<String> = (0..20).map(|n| format!("cust-{n}")).collect();
    for channel in ["bank_a", "bank_b"] {
        for account in &accounts {
            sim.open_account(channel, account, 50_000).await;
        }
    }
    let chaos = faults(json!({
        "declined_rate": 0.05, "insufficient_funds_rate": 0.02, "timeout_rate": 0.05,
        "lost_response_rate": 0.05, "late_success_rate": 0.1
    }));
    sim.set_faults("bank_a", chaos.clone()).await;
    sim.set_faults("bank_b", chaos).await;
    let gateway = gateway(&sim);
    let owner = Arc::new(Owner::default());
    let store = Arc::new(MemoryInquiryStore::default());
    let inquirer = Arc::new(Inquirer::new(
        gateway.clone(),
        store.clone(),
        owner.clone(),
        fast_policy(),
        Arc::new(SystemMillis),
    ));
    let callback_url = start_callback_receiver(inquirer.clone()).await;
    for channel in ["bank_a", "bank_b"] {
        sim.set_callback(channel, &callback_url).await;
    }

    // Our records: request id → (channel, final or pending outcome).
    let records: Arc<Mutex<Records>> = Arc::default();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for n in 0..OPERATIONS {
        let (gateway, inquirer, records, semaphore) =
            (gateway.clone(), inquirer.clone(), records.clone(), semaphore.clone());
        let operation = if n % 3 == 0 { Operation::Payout } else { Operation::Debit };
        let request = request(
            &format!("chaos-{n}"),
            operation,
            &accounts[n % accounts.len()],
            50 + (n as u64 % 400),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let routed = gateway.execute(&request).await;
            if !routed.outcome.is_final() {
                if let Some(channel) = &routed.channel {
                    inquirer
                        .open(channel, request.operation, &request.request_id, "chaos")
                        .unwrap();
                }
            }
            records
                .lock()
                .unwrap()
                .insert(request.request_id.to_string(), (routed.channel, routed.outcome));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    settle(&inquirer, Duration::from_secs(30)).await;

    // Fold inquiry results into our records.
    let delivered = owner.delivered.lock().unwrap().clone();
    let mut records = records.lock().unwrap().clone();
    for (id, outcome) in &delivered {
        records.get_mut(id).unwrap().1 = outcome.clone();
    }
    // The simulator's books: every operation of both channels by request id.
    let mut theirs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for channel in ["bank_a", "bank_b"] {
        for op in sim.operations(channel).await {
            let id = op["request_id"].as_str().unwrap().to_string();
            let previous = theirs.insert(
                id.clone(),
                (channel.to_string(), op["status"].as_str().unwrap().to_string()),
            );
            assert!(previous.is_none(), "{id} reached both channels: doubled");
        }
    }
    let mut n_succeeded = 0;
    for (id, (channel, ours)) in &records {
        assert!(ours.is_final(), "{id} is not final: {ours:?}");
        match (ours, theirs.get(id)) {
            (Outcome::Succeeded(_), Some((their_channel, status))) => {
                assert_eq!(status, "succeeded", "{id}");
                assert_eq!(
                    Some(their_channel.as_str()),
                    channel.as_ref().map(ChannelId::as_str),
                    "{id}"
                );
                n_succeeded += 1;
            }
            (Outcome::Failed { .. }, None) => {}
            (Outcome::Failed { .. }, Some((_, status))) => {
                assert_eq!(status, "failed", "{id}: lost")
            }
            (ours, theirs) => panic!("{id}: we say {ours:?}, the bank says {theirs:?}"),
        }
    }
    // Nothing the bank did is missing from our records.
    for (id, (_, status)) in &theirs {
        if status == "succeeded" {
            assert!(matches!(records.get(id), Some((_, Outcome::Succeeded(_)))), "{id} lost");
        }
    }
    assert!(
        n_succeeded > OPERATIONS / 2,
        "only {n_succeeded} succeeded: the faults swamped the run"
    );

    // Each channel's bill (对账单), fetched, checked against its digest and parsed by the
    // adapter, lists exactly the operations we hold as succeeded on that channel, with the
    // same channel reference. Yesterday's bill too, in case the run crossed midnight at
    // UTC+08:00 (the simulator's default business day).
    let now_ms = i64::try_from(unix_s() * 1_000).unwrap();
    let today = crate::statements::business_day(now_ms, 480);
    let mut n_on_statements = 0;
    for (channel, secret) in [("bank_a", SECRET_A), ("bank_b", SECRET_B)] {
        let adapter = SimulatorChannel::new(SimulatorChannelConfig {
            id: ChannelId::new(channel).unwrap(),
            base_url: sim.base.clone(),
            secret: secret.into(),
            timeout_ms: 5_000,
        })
        .unwrap();
        for day in [today - 1, today] {
            let cny = [AssetCode::new("CNY").unwrap()];
            let statement = adapter.statement(&crate::statements::date(day), &cny).await.unwrap();
            for line in &statement.details {
                let id = line.request_id.clone().unwrap();
                match records.get(&id) {
                    Some((Some(ours), Outcome::Succeeded(settled))) => {
                        assert_eq!(ours.as_str(), channel, "{id}");
                        assert_eq!(Some(&settled.channel_ref), line.channel_ref.as_ref(), "{id}");
                    }
                    other => panic!("{id} on {channel}'s statement, but we hold {other:?}"),
                }
            }
            n_on_statements += statement.details.len();
        }
    }
    assert_eq!(n_on_statements, n_succeeded, "statements and our successes differ");
    let unknown_seen = owner.deliveries.load(Ordering::SeqCst);
    assert!(unknown_seen > 20, "only {unknown_seen} outcomes needed inquiry: faults not exercised");

    // The figures of the run (cargo test -p banksim chaos -- --nocapture).
    let mut failed_by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, outcome) in records.values() {
        if let Outcome::Failed { reason, .. } = outcome {
            *failed_by_reason.entry(reason.as_str()).or_default() += 1;
        }
    }
    let not_executed = records.len() - theirs.len();
    println!(
        "chaos: {} operations over 2 channels; succeeded {n_succeeded}; failed {:?}; \
         settled by inquiry or callback {unknown_seen}; never reached a bank {not_executed}; \
         mismatches 0",
        records.len(),
        failed_by_reason
    );
}
