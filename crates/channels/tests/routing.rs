//! The gateway's decisions with scripted in-process channels and a manual clock, so every
//! step is deterministic: failover, unknown outcomes, breakers, recovery, status inquiry.
//! Here each rule is pinned down on its own; the simulator adapter is tested against the real
//! simulator process.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use channels::breaker::BreakerConfig;
use channels::channel::{ChannelError, StatementFile};
use channels::gateway::Millis;
use channels::inquiry::{
    Inquirer, InquiryOwner, InquiryPolicy, InquiryState, InquiryStore, InquiryTask,
    MemoryInquiryStore,
};
use channels::limits::LimitsConfig;
use channels::model::Inquiry;
use channels::router::ChannelProfile;
use channels::{
    BoxFuture, Channel, ChannelId, ChannelRequest, FailureReason, Gateway, GatewayConfig,
    Operation, Outcome, RequestId, Settled,
};
use money::{Amount, AssetCode};

struct ManualMillis(AtomicU64);

impl Millis for ManualMillis {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualMillis {
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Healthy,
    /// Refuses every call (503): certainly did nothing.
    Down,
    /// Executes, but the answer is lost.
    LosesResponses,
}

/// A channel whose behaviour the test sets, with its own books of what it executed.
struct Scripted {
    id: ChannelId,
    behaviour: Mutex<Behaviour>,
    calls: AtomicU64,
    executed: Mutex<BTreeMap<RequestId, Outcome>>,
}

impl Scripted {
    fn new(id: &str) -> Arc<Scripted> {
        Arc::new(Scripted {
            id: ChannelId::new(id).unwrap(),
            behaviour: Mutex::new(Behaviour::Healthy),
            calls: AtomicU64::new(0),
            executed: Mutex::default(),
        })
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Channel for Scripted {
    fn id(&self) -> &ChannelId {
        &self.id
    }

    fn execute<'a>(&'a self, request: &'a ChannelRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let behaviour = *self.behaviour.lock().unwrap();
            if behaviour == Behaviour::Down {
                return Outcome::failed(FailureReason::ChannelUnavailable, "503");
            }
            let done = Outcome::Succeeded(Settled {
                channel_ref: format!("{}-{}", self.id, request.request_id),
                fee: Amount::ZERO,
            });
            // Idempotent by request id, like a real channel.
            let outcome = self
                .executed
                .lock()
                .unwrap()
                .entry(request.request_id.clone())
                .or_insert(done)
                .clone();
            match behaviour {
                Behaviour::LosesResponses => Outcome::Unknown { detail: "timeout".into() },
                _ => outcome,
            }
        })
    }

    fn inquire<'a>(&'a self, _: Operation, request_id: &'a RequestId) -> BoxFuture<'a, Inquiry> {
        Box::pin(async move {
            match self.executed.lock().unwrap().get(request_id) {
                Some(outcome) => Inquiry::Found(outcome.clone()),
                None => Inquiry::NotFound,
            }
        })
    }

    fn statement_file<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>> {
        let empty = StatementFile::with_digest(recon::statement::render(&[]).into_bytes());
        Box::pin(async { Ok(empty) })
    }
}

fn profile(id: &str, fee_bps: u32) -> ChannelProfile {
    ChannelProfile {
        id: ChannelId::new(id).unwrap(),
        operations: Operation::ALL.to_vec(),
        assets: vec![AssetCode::new("CNY").unwrap()],
        amount_min: Amount::new(1).unwrap(),
        amount_max: Amount::new(1_000_000_000).unwrap(),
        account_prefixes: vec![],
        fee_fixed: Amount::ZERO,
        fee_bps,
        timeout_ms: 1_000,
        limits: LimitsConfig::default(),
        breaker: BreakerConfig { calls_min: 5, open_ms: 2_000, ..BreakerConfig::default() },
    }
}

fn request(n: u64) -> ChannelRequest {
    ChannelRequest {
        request_id: RequestId::new(format!("req-{n}")).unwrap(),
        operation: Operation::Payout,
        account: "6222000011112222".into(),
        asset: AssetCode::new("CNY").unwrap(),
        amount: Amount::new(10_000).unwrap(),
        original_request_id: None,
    }
}

struct Fixture {
    clock: Arc<ManualMillis>,
    cheap: Arc<Scripted>,
    dear: Arc<Scripted>,
    gateway: Arc<Gateway>,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualMillis(AtomicU64::new(1_000_000)));
    let (cheap, dear) = (Scripted::new("cheap"), Scripted::new("dear"));
    let gateway = Gateway::new(
        vec![cheap.clone() as Arc<dyn Channel>, dear.clone()],
        vec![profile("cheap", 10), profile("dear", 80)],
        GatewayConfig { health_window_ms: 10_000, ..GatewayConfig::default() },
        clock.clone(),
    )
    .unwrap();
    Fixture { clock, cheap, dear, gateway: Arc::new(gateway) }
}

#[tokio::test]
async fn a_degraded_channel_loses_its_traffic_fast_and_wins_it_back() {
    let f = fixture();
    for n in 0..10 {
        let routed = f.gateway.execute(&request(n)).await;
        assert_eq!(routed.channel.unwrap().as_str(), "cheap");
    }
    f.cheap.set(Behaviour::Down);
    let before = f.cheap.calls();
    for n in 10..110 {
        f.clock.advance(10);
        let routed = f.gateway.execute(&request(n)).await;
        // Every request still succeeds: a refusal (nothing done) fails over.
        assert!(matches!(routed.outcome, Outcome::Succeeded(_)), "{routed:?}");
        assert_eq!(routed.channel.unwrap().as_str(), "dear");
    }
    let wasted = f.cheap.calls() - before;
    assert!(wasted <= 6, "the sick channel still got {wasted} of 100 calls");

    // Recovery: the window empties, the breaker half-opens, probes succeed, traffic returns.
    f.cheap.set(Behaviour::Healthy);
    f.clock.advance(15_000);
    let mut back = 0;
    for n in 110..130 {
        f.clock.advance(10);
        let routed = f.gateway.execute(&request(n)).await;
        back += u32::from(routed.channel.unwrap().as_str() == "cheap");
    }
    assert!(back >= 15, "only {back} of 20 calls went back to the recovered channel");
}

#[tokio::test]
async fn an_unknown_outcome_is_never_sent_elsewhere_and_inquiry_settles_it() {
    let f = fixture();
    f.cheap.set(Behaviour::LosesResponses);
    let routed = f.gateway.execute(&request(1)).await;
    assert!(matches!(routed.outcome, Outcome::Unknown { .. }));
    assert_eq!(routed.attempts.len(), 1);
    assert_eq!(f.dear.calls(), 0, "an unknown outcome must not fail over");

    struct Owner(Mutex<Vec<(String, Outcome)>>);
    impl InquiryOwner for Owner {
        fn deliver<'a>(
            &'a self,
            task: &'a InquiryTask,
            outcome: &'a Outcome,
        ) -> BoxFuture<'a, Result<(), channels::inquiry::DeliveryError>> {
            Box::pin(async move {
                self.0.lock().unwrap().push((task.owner.clone(), outcome.clone()));
                Ok(())
            })
        }
    }
    let owner = Arc::new(Owner(Mutex::default()));
    let store = Arc::new(MemoryInquiryStore::default());
    let inquirer = Inquirer::new(
        f.gateway.clone(),
        store.clone(),
        owner.clone(),
        InquiryPolicy::default(),
        f.clock.clone(),
    );
    let channel = ChannelId::new("cheap").unwrap();
    let id = request(1).request_id;
    assert!(inquirer.open(&channel, Operation::Payout, &id, "payout:1").unwrap());
    assert!(!inquirer.open(&channel, Operation::Payout, &id, "payout:1").unwrap(), "idempotent");
    // Not due yet.
    assert_eq!(inquirer.sweep().await.unwrap().asked, 0);
    f.clock.advance(1_000);
    let report = inquirer.sweep().await.unwrap();
    assert_eq!((report.asked, report.resolved, report.delivered), (1, 1, 1));
    let delivered = owner.0.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert!(matches!(&delivered[0], (who, Outcome::Succeeded(_)) if who == "payout:1"));
    // A late duplicate callback changes nothing and delivers nothing again.
    let again = inquirer.on_callback(&channel, &id, &delivered[0].1).await.unwrap();
    assert!(!again);
    assert_eq!(owner.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn not_found_is_final_only_after_the_late_window_and_attempts_escalate() {
    let f = fixture();
    struct Drop;
    impl InquiryOwner for Drop {
        fn deliver<'a>(
            &'a self,
            _: &'a InquiryTask,
            _: &'a Outcome,
        ) -> BoxFuture<'a, Result<(), channels::inquiry::DeliveryError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let store = Arc::new(MemoryInquiryStore::default());
    let policy = InquiryPolicy {
        attempts_max: 3,
        not_found_final_after_ms: Some(60_000),
        ..InquiryPolicy::default()
    };
    let inquirer =
        Inquirer::new(f.gateway.clone(), store.clone(), Arc::new(Drop), policy, f.clock.clone());
    let channel = ChannelId::new("cheap").unwrap();
    let never = RequestId::new("never-sent").unwrap();
    inquirer.open(&channel, Operation::Debit, &never, "order:9").unwrap();
    f.clock.advance(1_000);
    inquirer.sweep().await.unwrap();
    let task = store.get(&channel, &never).unwrap().unwrap();
    assert_eq!((task.attempts, &task.state), (1, &InquiryState::Open), "too early to decide");
    f.clock.advance(60_000);
    inquirer.sweep().await.unwrap();
    let task = store.get(&channel, &never).unwrap().unwrap();
    assert!(matches!(
        task.state,
        InquiryState::Resolved {
            outcome: Outcome::Failed { reason: FailureReason::NeverReceived, .. },
            ..
        }
    ));

    // A channel that never answers: escalated after three inquiries, still not failed.
    f.cheap.set(Behaviour::Down);
    let stuck = RequestId::new("stuck").unwrap();
    f.cheap.executed.lock().unwrap().insert(stuck.clone(), Outcome::Processing);
    inquirer.open(&channel, Operation::Payout, &stuck, "payout:2").unwrap();
    for _ in 0..3 {
        f.clock.advance(120_000);
        inquirer.sweep().await.unwrap();
    }
    let task = store.get(&channel, &stuck).unwrap().unwrap();
    assert!(matches!(task.state, InquiryState::Escalated { .. }), "{task:?}");
    assert_eq!(store.backlog().unwrap().escalated, 1);

    // Escalated is not abandoned: it is asked again on the slow schedule (hourly), and when
    // the bank is back with its answer, the task resolves by itself.
    let slow_ms = InquiryPolicy::default().escalated_delay_ms;
    assert_eq!(task.next_at_ms, f.clock.now_ms() + slow_ms, "the next ask is an hour away");
    f.clock.advance(slow_ms - 1);
    assert_eq!(inquirer.sweep().await.unwrap().asked, 0, "not before the hour");
    f.cheap.set(Behaviour::Healthy);
    let paid = Outcome::Succeeded(channels::Settled {
        channel_ref: "late".into(),
        fee: money::Amount::ZERO,
    });
    f.cheap.executed.lock().unwrap().insert(stuck.clone(), paid.clone());
    f.clock.advance(1);
    let report = inquirer.sweep().await.unwrap();
    assert_eq!((report.asked, report.resolved, report.escalated), (1, 1, 0));
    let task = store.get(&channel, &stuck).unwrap().unwrap();
    assert!(matches!(&task.state, InquiryState::Resolved { outcome, .. } if *outcome == paid));
    assert_eq!(store.backlog().unwrap().escalated, 0);
}
