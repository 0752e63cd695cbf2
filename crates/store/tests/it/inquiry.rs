//! The inquiry-task store on SQLite and PostgreSQL: idempotent opening, due order, one
//! resolution only, escalation that a callback can still resolve and that is still asked on
//! its slow schedule or at once when an operator says so, at-least-once delivery
//! bookkeeping, and tasks that survive reopening the store (a gateway restart).

use channels::inquiry::{InquiryBacklog, InquiryState, InquiryStore, InquiryTask};
use channels::{ChannelId, FailureReason, Operation, Outcome, RequestId, Settled};
use store::{PgInquiryStore, PgStore, SqliteInquiryStore};

use crate::backends::{drop_schema, pg_target};

fn task(request_id: &str, next_at_ms: u64) -> InquiryTask {
    InquiryTask {
        channel: ChannelId::new("bank_a").expect("channel"),
        operation: Operation::Payout,
        request_id: RequestId::new(request_id).expect("request id"),
        owner: format!("payout:{request_id}"),
        created_at_ms: 1_000,
        attempts: 0,
        next_at_ms,
        state: InquiryState::Open,
    }
}

fn succeeded() -> Outcome {
    Outcome::Succeeded(Settled { channel_ref: "ref-1".into(), fee: money::Amount::ZERO })
}

fn exercise(store: &dyn InquiryStore) {
    let (a, b, c) = (task("a", 3_000), task("b", 2_000), task("c", 9_000));
    for t in [&a, &b, &c] {
        assert!(store.open(t).expect("open"));
    }
    assert!(!store.open(&a).expect("open again"), "opening is idempotent");

    let due: Vec<String> =
        store.due(5_000, 10).expect("due").iter().map(|t| t.request_id.to_string()).collect();
    assert_eq!(due, ["b", "a"], "due tasks, soonest first; c is not due");
    store.reschedule(&a.channel, &a.request_id, 1, 8_000).expect("reschedule");
    let a_now = store.get(&a.channel, &a.request_id).expect("get").expect("a");
    assert_eq!((a_now.attempts, a_now.next_at_ms), (1, 8_000));

    assert!(store.resolve(&b.channel, &b.request_id, &succeeded()).expect("resolve"));
    let failed = Outcome::failed(FailureReason::Declined, "late duplicate says otherwise");
    assert!(
        !store.resolve(&b.channel, &b.request_id, &failed).expect("resolve again"),
        "the first final outcome stands"
    );
    let b_now = store.get(&b.channel, &b.request_id).expect("get").expect("b");
    assert_eq!(b_now.state, InquiryState::Resolved { outcome: succeeded(), delivered: false });

    store.escalate(&c.channel, &c.request_id, "no answer").expect("escalate");
    assert_eq!(
        store.backlog().expect("backlog"),
        InquiryBacklog { open: 1, escalated: 1, undelivered: 1 }
    );
    // An escalated task is listed for operators, is still asked when due (on its slow
    // schedule), keeps its state when rescheduled, and an operator can have it asked now.
    let escalated = store.escalated(10).expect("escalated");
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].request_id, c.request_id);
    assert!(matches!(escalated[0].state, InquiryState::Escalated { .. }));
    let due_ids = |at_ms| -> Vec<String> {
        store.due(at_ms, 10).expect("due").iter().map(|t| t.request_id.to_string()).collect()
    };
    assert_eq!(due_ids(9_000), ["a", "c"], "escalated tasks come due too");
    store.reschedule(&c.channel, &c.request_id, 31, 3_609_000).expect("slow schedule");
    let c_now = store.get(&c.channel, &c.request_id).expect("get").expect("c");
    assert_eq!((c_now.attempts, c_now.next_at_ms), (31, 3_609_000));
    assert!(matches!(c_now.state, InquiryState::Escalated { .. }), "still escalated");
    assert_eq!(due_ids(10_000), ["a"]);
    assert!(store.ask_now(&c.channel, &c.request_id, 10_000).expect("ask now"));
    assert_eq!(due_ids(10_000), ["a", "c"], "asked now");
    assert!(!store.ask_now(&b.channel, &b.request_id, 10_000).expect("ask now"), "resolved");
    let nobody = RequestId::new("nobody").expect("request id");
    assert!(!store.ask_now(&c.channel, &nobody, 10_000).expect("ask now"), "no such task");
    // A callback can still settle an escalated task.
    assert!(store.resolve(&c.channel, &c.request_id, &succeeded()).expect("resolve c"));
    let undelivered: Vec<String> = store
        .undelivered(10)
        .expect("undelivered")
        .iter()
        .map(|t| t.request_id.to_string())
        .collect();
    assert_eq!(undelivered.len(), 2);
    store.mark_delivered(&b.channel, &b.request_id).expect("delivered");
    assert_eq!(
        store.backlog().expect("backlog"),
        InquiryBacklog { open: 1, escalated: 0, undelivered: 1 }
    );
    assert!(store.due(100_000, 10).expect("due").iter().all(|t| t.request_id.as_str() == "a"));
}

#[test]
fn sqlite_inquiry_store_keeps_its_promises_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.db");
    exercise(&SqliteInquiryStore::open(&path).expect("open"));
    let reopened = SqliteInquiryStore::open(&path).expect("reopen");
    assert_eq!(
        reopened.backlog().expect("backlog"),
        InquiryBacklog { open: 1, escalated: 0, undelivered: 1 }
    );
}

#[test]
fn postgres_inquiry_store_keeps_its_promises_across_a_restart() {
    let Some(target) = pg_target("inquiry") else { return };
    drop(PgStore::connect(target.clone()).expect("migrate"));
    exercise(&PgInquiryStore::connect(&target).expect("connect"));
    let reconnected = PgInquiryStore::connect(&target).expect("reconnect");
    assert_eq!(
        reconnected.backlog().expect("backlog"),
        InquiryBacklog { open: 1, escalated: 0, undelivered: 1 }
    );
    drop_schema(&target);
}

#[test]
fn the_in_memory_inquiry_store_keeps_the_same_promises() {
    exercise(&channels::inquiry::MemoryInquiryStore::default());
}
