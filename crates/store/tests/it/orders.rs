//! The executor's order store on SQLite and PostgreSQL: inserts that a retry finds, updates
//! guarded by the version with their events in the outbox (one sequence, in commit order),
//! listings with every filter and the page cursor, the unfinished orders from a cursor, a
//! payment's children, refunds and settlements checked against totals read in their own
//! transaction (and serialised when they race), and parties — all surviving a reopen.
//!
//! Each part of the suite uses tenants of its own; the unfinished orders, which are listed
//! across tenants, are the only ones changed before 1,000 ms.

use std::sync::Barrier;

use channels::{ChannelId, RequestId, Settled};
use executor::port::{
    GuardedInsert, Inserted, MerchantTotals, NewEvent, OrderQuery, OrderRecord, OrderStore, Party,
    PartyKind, RefundTotals,
};
use money::{Amount, AssetCode};
use payments::booking::{BookingState, Payment, PointsLeg, Refund, RefundedPoints, Settlement};
use payments::card::{CardRefund, CardRefundState};
use payments::topup::{MerchantCredit, TopUp, TopUpState};
use payments::withdrawal::{Withdrawal, WithdrawalState};
use payments::{Event, Order, OrderId, OrderKind};
use serde_json::json;
use store::{PgOrderStore, SqliteOrderStore};

use crate::backends::{drop_schema, pg_target};

fn code(raw: &str) -> AssetCode {
    AssetCode::new(raw).expect("asset code")
}

fn cny() -> AssetCode {
    code("CNY")
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).expect("amount")
}

pub(crate) fn oid(raw: &str) -> OrderId {
    OrderId::new(raw).expect("order id")
}

fn channel() -> ChannelId {
    ChannelId::new("bank_a").expect("channel")
}

fn settled() -> Settled {
    Settled { channel_ref: "ref-1".into(), fee: Amount::ZERO }
}

/// A new order of `tenant`, created (and last changed) at `at_ms`.
pub(crate) fn record(tenant: &str, order: Order, at_ms: u64) -> OrderRecord {
    OrderRecord {
        tenant: tenant.into(),
        reference: format!("ref-{}", order.id()),
        request_fingerprint: format!("fp-{}", order.id()),
        parent: None,
        order,
        version: 1,
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
    }
}

/// A new order with a parent (a refund of its payment).
fn child(tenant: &str, order: Order, parent: &OrderId, at_ms: u64) -> OrderRecord {
    OrderRecord { parent: Some(parent.clone()), ..record(tenant, order, at_ms) }
}

/// `record` moved on to `order`: the next version, changed at `at_ms`.
pub(crate) fn advanced(record: &OrderRecord, order: Order, at_ms: u64) -> OrderRecord {
    OrderRecord { order, version: record.version + 1, updated_at_ms: at_ms, ..record.clone() }
}

pub(crate) fn topup(id: &str, customer: &str) -> TopUp {
    TopUp::new(oid(id), customer.into(), "card-1".into(), cny(), amount(100))
}

fn withdrawal(id: &str, customer: &str) -> Withdrawal {
    Withdrawal::new(oid(id), customer.into(), "acct-1".into(), cny(), amount(100))
}

fn payment(id: &str, customer: &str, merchant: &str, minor: u64) -> Payment {
    // 100 basis points: the fee is 1% of the amount.
    Payment::new(oid(id), customer.into(), merchant.into(), cny(), amount(minor), 100)
}

/// `payment` after `events`: a payment reaches its states through its own machine.
fn through(payment: Payment, events: &[Event]) -> Payment {
    events.iter().fold(payment, |payment, event| payment.apply(event).expect("legal").state)
}

fn succeeded(payment: Payment) -> Payment {
    through(payment, &[Event::Submit, Event::LedgerPosted])
}

fn refund(id: &str, payment: &Payment, minor: u64, fee_returned: u64) -> Refund {
    Refund {
        order: oid(id),
        payment: payment.order().clone(),
        customer: payment.customer().to_owned(),
        merchant: payment.merchant().to_owned(),
        asset: payment.asset(),
        amount: amount(minor),
        fee_returned: amount(fee_returned),
        points: None,
        fx: None,
        from_settled: false,
        state: BookingState::Created,
    }
}

fn card_payment(id: &str, merchant: &str, minor: u64, fee: u64) -> TopUp {
    TopUp {
        state: TopUpState::Succeeded { channel: channel(), settled: settled() },
        ..TopUp::new(oid(id), "alice".into(), "card-1".into(), cny(), amount(minor))
            .paying(MerchantCredit { merchant: merchant.into(), fee: amount(fee), fee_bps: 100 })
    }
}

fn card_refund(id: &str, payment: &TopUp, minor: u64, fee: u64, state: CardRefundState) -> Order {
    let merchant = payment.merchant.as_ref().expect("a card payment");
    Order::CardRefund(CardRefund {
        source: Default::default(),
        order: oid(id),
        payment: payment.order.clone(),
        customer: payment.customer.clone(),
        merchant: merchant.merchant.clone(),
        card: payment.card.clone(),
        asset: payment.asset,
        amount: amount(minor),
        fee_returned: amount(fee),
        channel: channel(),
        debit_request_id: RequestId::new(format!("{}:debit", payment.order)).expect("request"),
        from_settled: false,
        state,
    })
}

fn settlement(id: &str, merchant: &str, minor: u64, cutoff_ms: u64) -> Order {
    Order::Settlement(Settlement {
        order: oid(id),
        merchant: merchant.into(),
        asset: cny(),
        amount: amount(minor),
        cutoff_ms,
        settle_after_days: 1,
        state: BookingState::Created,
    })
}

fn event(event_type: &str, n: u64) -> NewEvent {
    NewEvent { event_type: event_type.into(), payload: payload(n) }
}

fn payload(n: u64) -> serde_json::Value {
    json!({ "n": n, "note": "退款 \"quoted\" ✓", "nested": { "list": [1, 2.5, null, true] } })
}

fn insert(store: &dyn OrderStore, record: &OrderRecord) {
    assert_eq!(store.insert(record).expect("insert"), Inserted::Created, "{}", record.id());
}

fn update(store: &dyn OrderStore, next: &OrderRecord, events: &[NewEvent]) {
    assert!(store.update(next, next.version - 1, events).expect("update"), "{}", next.id());
}

fn ids(records: &[OrderRecord]) -> Vec<&str> {
    records.iter().map(|record| record.id().as_str()).collect()
}

fn exercise(store: &dyn OrderStore) {
    inserts_updates_and_the_outbox(store);
    listings(store);
    unfinished_orders(store);
    refunds(store);
    settlements(store);
    parties(store);
    needing_operator(store);
}

fn needing_operator(store: &dyn OrderStore) {
    // Final orders an operator must act on, of every tenant, oldest change first; nothing else.
    let suspended = TopUp {
        state: TopUpState::Suspended {
            channel: channel(),
            settled: settled(),
            code: "account_frozen".into(),
        },
        ..topup("top_no1", "alice")
    };
    let disputed = Withdrawal {
        state: WithdrawalState::Disputed { channel: channel(), settled: settled() },
        ..withdrawal("wd_no1", "bob")
    };
    let succeeded = TopUp {
        state: TopUpState::Succeeded { channel: channel(), settled: settled() },
        ..topup("top_no2", "alice")
    };
    let failed = Withdrawal {
        state: WithdrawalState::Failed { channel: None, reason: "no channel".into() },
        ..withdrawal("wd_no2", "bob")
    };
    for (tenant, order, at_ms) in [
        ("no_a", Order::Topup(suspended), 2_000_002),
        ("no_b", Order::Withdrawal(disputed), 2_000_001),
        ("no_a", Order::Topup(succeeded), 2_000_000),
        ("no_b", Order::Withdrawal(failed), 2_000_003),
    ] {
        insert(store, &record(tenant, order, at_ms));
    }
    let listed = |after, limit| -> Vec<String> {
        store
            .needing_operator(after, limit)
            .expect("needing operator")
            .iter()
            .filter(|r| r.tenant.starts_with("no_"))
            .map(|r| r.id().to_string())
            .collect()
    };
    assert_eq!(listed(None, 100), ["wd_no1", "top_no1"]);
    assert_eq!(listed(Some((2_000_001, oid("wd_no1"))), 100), ["top_no1"], "after the cursor");
    assert!(store.needing_operator(None, 1).expect("page").len() <= 1);
}

fn inserts_updates_and_the_outbox(store: &dyn OrderStore) {
    let original = record("ox_a", Order::Topup(topup("top_ox1", "alice")), 1_000);
    insert(store, &original);
    let retry = OrderRecord {
        reference: "another".into(),
        request_fingerprint: "another".into(),
        created_at_ms: 9_000,
        updated_at_ms: 9_000,
        ..original.clone()
    };
    assert_eq!(
        store.insert(&retry).expect("retry"),
        Inserted::Existing(Box::new(original.clone())),
        "a retry writes nothing and gets the stored order"
    );
    assert_eq!(store.get(original.id()).expect("get"), Some(original.clone()));
    assert_eq!(store.get(&oid("top_absent")).expect("get absent"), None);

    // An update names the version it read; its events go to the outbox with it.
    let debiting = advanced(
        &original,
        Order::Topup(TopUp {
            state: TopUpState::Debiting { channel: channel() },
            ..topup("top_ox1", "alice")
        }),
        1_500,
    );
    assert!(store
        .update(&debiting, 1, &[event("topup.debiting", 1), event("topup.noted", 2)])
        .expect("update"));
    assert_eq!(store.get(original.id()).expect("get"), Some(debiting.clone()));
    let stale = advanced(
        &original,
        Order::Topup(TopUp {
            state: TopUpState::Failed { channel: None, reason: "stale".into() },
            ..topup("top_ox1", "alice")
        }),
        1_600,
    );
    assert!(
        !store.update(&stale, 1, &[event("topup.failed", 99)]).expect("stale update"),
        "version 1 is gone"
    );
    assert_eq!(store.get(original.id()).expect("get"), Some(debiting.clone()), "nothing written");
    let ghost = record("ox_a", Order::Topup(topup("top_ox_ghost", "alice")), 1_000);
    assert!(
        !store
            .update(&advanced(&ghost, ghost.order.clone(), 1_100), 1, &[event("ghost", 98)])
            .expect("update absent"),
        "no order, no update"
    );
    assert_eq!(store.get(ghost.id()).expect("get"), None, "an update never inserts");

    // Another tenant's event commits between two of ox_a's.
    let other = record("ox_b", Order::Topup(topup("top_ox2", "alice")), 1_200);
    insert(store, &other);
    update(store, &advanced(&other, other.order.clone(), 1_700), &[event("topup.debiting", 10)]);
    let done = advanced(
        &debiting,
        Order::Topup(TopUp {
            state: TopUpState::Succeeded { channel: channel(), settled: settled() },
            ..topup("top_ox1", "alice")
        }),
        2_000,
    );
    update(store, &done, &[event("topup.succeeded", 3)]);
    assert!(
        !store.update(&done, 2, &[]).expect("update"),
        "version 2 is gone too, with no events to write either"
    );
    assert_eq!(store.get(original.id()).expect("get").map(|r| r.version), Some(3));

    let ox_a = store.events("ox_a", 0, 100).expect("events");
    let seen: Vec<_> = ox_a
        .iter()
        .map(|e| {
            (
                e.tenant.as_str(),
                e.order_id.as_str(),
                e.event_type.as_str(),
                &e.payload,
                e.created_at_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ox_a", "top_ox1", "topup.debiting", &payload(1), 1_500),
            ("ox_a", "top_ox1", "topup.noted", &payload(2), 1_500),
            ("ox_a", "top_ox1", "topup.succeeded", &payload(3), 2_000),
        ],
        "the events of committed updates only, in order, stamped with the update's time"
    );
    let ox_b = store.events("ox_b", 0, 100).expect("events");
    assert_eq!(ox_b.len(), 1);
    assert_eq!((ox_b[0].order_id.as_str(), &ox_b[0].payload), ("top_ox2", &payload(10)));
    assert!(
        ox_a[0].seq < ox_a[1].seq && ox_a[1].seq < ox_b[0].seq && ox_b[0].seq < ox_a[2].seq,
        "one sequence per store, in commit order: {ox_a:?} {ox_b:?}"
    );
    assert_eq!(store.events("ox_a", ox_a[0].seq, 100).expect("after"), ox_a[1..]);
    assert_eq!(store.events("ox_a", ox_a[0].seq, 1).expect("limit"), ox_a[1..2]);
    assert_eq!(store.events("ox_a", ox_a[1].seq, 100).expect("after"), ox_a[2..]);
    assert!(store.events("ox_a", ox_a[2].seq, 100).expect("past the end").is_empty());
    assert!(store.events("ox_a", 0, 0).expect("limit 0").is_empty());
    assert_eq!(store.events("ox_a", 0, usize::MAX).expect("no limit"), ox_a, "the largest limit");
    assert!(store.events("nobody", 0, 100).expect("no tenant").is_empty());
}

fn query(tenant: &str) -> OrderQuery {
    OrderQuery { tenant: tenant.into(), limit: 100, ..OrderQuery::default() }
}

fn listed(store: &dyn OrderStore, query: OrderQuery) -> Vec<String> {
    ids(&store.list(&query).expect("list")).into_iter().map(str::to_owned).collect()
}

fn listings(store: &dyn OrderStore) {
    let records = [
        record("acme", Order::Payment(payment("pay_l2", "bob", "shop", 500)), 3_000),
        record("acme", Order::Topup(topup("top_l1", "alice")), 1_000),
        record("acme", Order::Payment(payment("pay_l1", "alice", "shop", 500)), 3_000),
        record("acme", Order::Withdrawal(withdrawal("wd_l1", "alice")), 2_000),
        record("acme", Order::Payment(payment("pay_l3", "bob", "mall", 500)), 4_000),
        // A merchant's payout: no customer, the merchant's orders list it.
        record("acme", Order::Withdrawal(withdrawal("wd_l2", "shop").from_merchant()), 5_000),
        // Another tenant with a customer of the same name.
        record("globex", Order::Topup(topup("top_l2", "alice")), 2_500),
    ];
    for record in &records {
        insert(store, record);
    }
    let pay_l1 = &records[2];
    let Order::Payment(flow) = &pay_l1.order else { unreachable!("a payment") };
    update(store, &advanced(pay_l1, Order::Payment(succeeded(flow.clone())), 3_500), &[]);

    // Newest first; orders created at the same time by id, descending.
    let everything = store.list(&query("acme")).expect("list");
    assert_eq!(ids(&everything), ["wd_l2", "pay_l3", "pay_l2", "pay_l1", "wd_l1", "top_l1"]);
    for listed in &everything {
        assert_eq!(store.get(listed.id()).expect("get").as_ref(), Some(listed), "as stored");
    }
    assert_eq!(listed(store, query("globex")), ["top_l2"]);
    assert_eq!(listed(store, query("nobody")), Vec::<String>::new());

    let kind = |kind| OrderQuery { kind: Some(kind), ..query("acme") };
    assert_eq!(listed(store, kind(OrderKind::Payment)), ["pay_l3", "pay_l2", "pay_l1"]);
    assert_eq!(listed(store, kind(OrderKind::Withdrawal)), ["wd_l2", "wd_l1"]);
    assert_eq!(listed(store, kind(OrderKind::Refund)), Vec::<String>::new());

    let status = |status: &str| OrderQuery { status: Some(status.into()), ..query("acme") };
    assert_eq!(listed(store, status("succeeded")), ["pay_l1"], "the status as updated");
    assert_eq!(
        listed(store, OrderQuery { kind: Some(OrderKind::Payment), ..status("created") }),
        ["pay_l3", "pay_l2"]
    );

    let customer = |who: &str| OrderQuery { customer: Some(who.into()), ..query("acme") };
    assert_eq!(listed(store, customer("alice")), ["pay_l1", "wd_l1", "top_l1"], "not globex's");
    assert_eq!(listed(store, customer("bob")), ["pay_l3", "pay_l2"]);
    assert_eq!(listed(store, customer("shop")), Vec::<String>::new(), "a payout has none");
    let merchant = |who: &str| OrderQuery { merchant: Some(who.into()), ..query("acme") };
    assert_eq!(listed(store, merchant("shop")), ["wd_l2", "pay_l2", "pay_l1"]);
    assert_eq!(listed(store, merchant("mall")), ["pay_l3"]);
    assert_eq!(
        listed(store, OrderQuery { customer: Some("bob".into()), ..merchant("shop") }),
        ["pay_l2"]
    );

    // The created range: from inclusive, to exclusive.
    let range = |from: Option<u64>, to: Option<u64>| OrderQuery {
        created_from_ms: from,
        created_to_ms: to,
        ..query("acme")
    };
    assert_eq!(
        listed(store, range(Some(2_000), None)),
        ["wd_l2", "pay_l3", "pay_l2", "pay_l1", "wd_l1"]
    );
    assert_eq!(listed(store, range(None, Some(3_000))), ["wd_l1", "top_l1"]);
    assert_eq!(listed(store, range(Some(2_000), Some(4_000))), ["pay_l2", "pay_l1", "wd_l1"]);
    assert_eq!(listed(store, range(Some(3_000), Some(3_001))), ["pay_l2", "pay_l1"]);
    assert_eq!(listed(store, range(Some(3_001), Some(3_001))), Vec::<String>::new());

    // The cursor: strictly before (created_at_ms, id).
    let before =
        |at_ms: u64, id: &str| OrderQuery { before: Some((at_ms, oid(id))), ..query("acme") };
    assert_eq!(listed(store, before(3_000, "pay_l2")), ["pay_l1", "wd_l1", "top_l1"]);
    assert_eq!(listed(store, before(3_000, "pay_l1")), ["wd_l1", "top_l1"]);
    assert_eq!(listed(store, before(3_000, "pay_l9")), ["pay_l2", "pay_l1", "wd_l1", "top_l1"]);
    assert_eq!(listed(store, before(1_000, "top_l1")), Vec::<String>::new());
    assert_eq!(
        listed(store, OrderQuery { kind: Some(OrderKind::Payment), ..before(4_000, "pay_l3") }),
        ["pay_l2", "pay_l1"]
    );

    assert_eq!(listed(store, OrderQuery { limit: 2, ..query("acme") }), ["wd_l2", "pay_l3"]);
    assert_eq!(listed(store, OrderQuery { limit: 0, ..query("acme") }), Vec::<String>::new());
    assert_eq!(
        store.list(&OrderQuery { limit: usize::MAX, ..query("acme") }).expect("the largest limit"),
        everything
    );
    // Paging by the last order of each page lists every order once.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(&OrderQuery { before: cursor.clone(), limit: 2, ..query("acme") })
            .expect("page");
        let Some(last) = page.last() else { break };
        cursor = Some((last.created_at_ms, last.id().clone()));
        paged.extend(ids(&page).into_iter().map(str::to_owned));
    }
    assert_eq!(paged, ids(&everything));
}

fn unfinished_orders(store: &dyn OrderStore) {
    // Listed across tenants by their last change, then id; final ones never.
    let records = [
        record("u1", Order::Topup(topup("top_u1", "alice")), 10),
        record("u2", Order::Withdrawal(withdrawal("wd_u1", "alice")), 20),
        record("u2", Order::Payment(payment("pay_u2", "bob", "shop", 100)), 30),
        record("u1", Order::Payment(payment("pay_u1", "alice", "shop", 100)), 30),
        record("u1", Order::Payment(payment("pay_u3", "alice", "shop", 100)), 35),
        record("u1", Order::Topup(topup("top_u2", "alice")), 5),
        record("u2", Order::Topup(topup("top_u3", "alice")), 60),
        record("u2", Order::Withdrawal(withdrawal("wd_u2", "alice")), 15),
    ];
    for record in &records {
        insert(store, record);
    }
    let Order::Payment(flow) = &records[4].order else { unreachable!("a payment") };
    update(store, &advanced(&records[4], Order::Payment(succeeded(flow.clone())), 36), &[]);
    // Created first, changed last.
    let debiting =
        TopUp { state: TopUpState::Debiting { channel: channel() }, ..topup("top_u2", "alice") };
    update(store, &advanced(&records[5], Order::Topup(debiting), 40), &[]);
    // Final: a failed withdrawal.
    let failed = Withdrawal {
        state: WithdrawalState::Failed { channel: None, reason: "no channel".into() },
        ..withdrawal("wd_u2", "alice")
    };
    update(store, &advanced(&records[7], Order::Withdrawal(failed), 16), &[]);

    let unfinished = |before_ms, limit| {
        ids(&store.unfinished(before_ms, limit).expect("unfinished"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let after = |before_ms, at_ms, id: &str, limit| {
        ids(&store.unfinished_after(before_ms, Some((at_ms, oid(id))), limit).expect("after"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(unfinished(50, 100), ["top_u1", "wd_u1", "pay_u1", "pay_u2", "top_u2"]);
    assert_eq!(
        unfinished(30, 100),
        ["top_u1", "wd_u1", "pay_u1", "pay_u2"],
        "up to and at the bound"
    );
    assert_eq!(unfinished(29, 100), ["top_u1", "wd_u1"]);
    assert_eq!(unfinished(9, 100), Vec::<String>::new(), "top_u2 was changed at 40");
    assert_eq!(unfinished(50, 2), ["top_u1", "wd_u1"]);
    assert_eq!(unfinished(50, usize::MAX), unfinished(50, 100), "the largest limit");
    assert_eq!(
        ids(&store.unfinished_after(50, None, 100).expect("from the start")),
        ["top_u1", "wd_u1", "pay_u1", "pay_u2", "top_u2"]
    );
    assert_eq!(after(50, 30, "pay_u1", 100), ["pay_u2", "top_u2"], "the same time, a later id");
    assert_eq!(after(50, 20, "wd_u1", 2), ["pay_u1", "pay_u2"]);
    assert_eq!(after(50, 25, "a", 100), ["pay_u1", "pay_u2", "top_u2"]);
    assert_eq!(after(50, 40, "top_u2", 100), Vec::<String>::new());
    let stored = store.unfinished(50, 100).expect("unfinished");
    for record in &stored {
        assert_eq!(store.get(record.id()).expect("get").as_ref(), Some(record), "as stored");
    }
    assert_eq!(stored[4].updated_at_ms, 40);
    assert_eq!(stored[4].version, 2);
}

/// Runs `insert_refund`: what it returned, and the totals `build` saw (none if not called).
fn try_refund(
    store: &dyn OrderStore,
    refund_id: &str,
    payment: &OrderId,
    answer: Option<&OrderRecord>,
) -> (GuardedInsert, Option<RefundTotals>) {
    let mut seen = None;
    let result = store
        .insert_refund(&oid(refund_id), payment, &mut |totals| {
            seen = Some(totals);
            answer.cloned()
        })
        .expect("insert refund");
    (result, seen)
}

fn totals(refunded: u64, fee_returned: u64, leg_returned: u64) -> Option<RefundTotals> {
    Some(RefundTotals {
        refunded: amount(refunded),
        fee_returned: amount(fee_returned),
        leg_returned: amount(leg_returned),
    })
}

fn with_points(mut refund: Refund, points: u64) -> Refund {
    refund.points = Some(RefundedPoints {
        asset: code("POINTS"),
        points: amount(points),
        value: amount(points * 2),
    });
    refund
}

fn refunds(store: &dyn OrderStore) {
    // A points+cash payment: its refunds return points too (the second leg).
    let paid = payment("pay_r1", "alice", "shop", 1_000)
        .with_points(PointsLeg {
            asset: code("POINTS"),
            points: amount(50),
            value_minor_per_point: 2,
        })
        .expect("points");
    let paid = succeeded(paid);
    let other = succeeded(payment("pay_r2", "bob", "shop", 500));
    insert(store, &record("r", Order::Payment(paid.clone()), 1_000));
    insert(store, &record("r", Order::Payment(other.clone()), 1_000));

    let first = child(
        "r",
        Order::Refund(with_points(refund("rf_r1", &paid, 300, 3), 15)),
        paid.order(),
        1_100,
    );
    assert_eq!(
        try_refund(store, "rf_r1", paid.order(), Some(&first)),
        (GuardedInsert::Created(first.clone()), totals(0, 0, 0))
    );
    assert_eq!(store.get(first.id()).expect("get"), Some(first.clone()));
    let changed = child("r", Order::Refund(refund("rf_r1", &paid, 999, 9)), paid.order(), 1_150);
    assert_eq!(
        try_refund(store, "rf_r1", paid.order(), Some(&changed)),
        (GuardedInsert::Existing(first.clone()), None),
        "a retry gets the stored refund without building another"
    );

    let second = child(
        "r",
        Order::Refund(with_points(refund("rf_r5", &paid, 200, 2), 10)),
        paid.order(),
        1_200,
    );
    assert_eq!(
        try_refund(store, "rf_r5", paid.order(), Some(&second)),
        (GuardedInsert::Created(second.clone()), totals(300, 3, 15))
    );
    assert_eq!(
        try_refund(store, "rf_r3", paid.order(), None),
        (GuardedInsert::Refused, totals(500, 5, 25))
    );
    assert_eq!(store.get(&oid("rf_r3")).expect("get"), None, "a refused refund is not stored");

    // A failed refund gave nothing back.
    let Order::Refund(flow) = &second.order else { unreachable!("a refund") };
    let failed =
        Refund { state: BookingState::Failed { code: "exceeds_credits".into() }, ..flow.clone() };
    let second = advanced(&second, Order::Refund(failed), 1_250);
    update(store, &second, &[]);
    let third = child("r", Order::Refund(refund("rf_r3", &paid, 100, 1)), paid.order(), 1_200);
    assert_eq!(
        try_refund(store, "rf_r3", paid.order(), Some(&third)),
        (GuardedInsert::Created(third.clone()), totals(300, 3, 15)),
        "the failed refund does not count; the refused one was never there"
    );
    assert_eq!(
        try_refund(store, "rf_r9", paid.order(), None),
        (GuardedInsert::Refused, totals(400, 4, 15))
    );

    // Another payment's refunds are its own.
    let fourth = child("r", Order::Refund(refund("rf_r4", &other, 500, 5)), other.order(), 1_300);
    assert_eq!(
        try_refund(store, "rf_r4", other.order(), Some(&fourth)),
        (GuardedInsert::Created(fourth.clone()), totals(0, 0, 0))
    );
    assert_eq!(
        try_refund(store, "rf_r9", other.order(), None),
        (GuardedInsert::Refused, totals(500, 5, 0))
    );

    // Card refunds count the same way; a disputed one was not a failure.
    let card = card_payment("cp_r1", "shop", 2_000, 20);
    insert(store, &record("r", Order::CardPayment(card.clone()), 1_000));
    let disputed = child(
        "r",
        card_refund("cr_r1", &card, 400, 4, CardRefundState::Disputed { settled: settled() }),
        &card.order,
        1_400,
    );
    assert_eq!(
        try_refund(store, "cr_r1", &card.order, Some(&disputed)),
        (GuardedInsert::Created(disputed.clone()), totals(0, 0, 0))
    );
    assert_eq!(
        try_refund(store, "cr_r2", &card.order, None),
        (GuardedInsert::Refused, totals(400, 4, 0))
    );

    // A payment's children, oldest first (by id at the same time).
    assert_eq!(store.children_of(paid.order()).expect("children"), [first, third, second]);
    assert_eq!(store.children_of(other.order()).expect("children"), [fourth]);
    assert_eq!(store.children_of(&card.order).expect("children"), [disputed]);
    assert!(store.children_of(&oid("rf_r1")).expect("children").is_empty());
}

/// Runs `insert_settlement` for `merchant` in CNY: what it returned, and the totals `build`
/// saw (none if not called).
fn try_settle(
    store: &dyn OrderStore,
    settlement_id: &str,
    merchant: &str,
    asset: AssetCode,
    cutoff_ms: u64,
    answer: Option<&OrderRecord>,
) -> (GuardedInsert, Option<MerchantTotals>) {
    let mut seen = None;
    let result = store
        .insert_settlement(&oid(settlement_id), merchant, asset, cutoff_ms, &mut |totals| {
            seen = Some(totals);
            answer.cloned()
        })
        .expect("insert settlement");
    (result, seen)
}

fn merchant_totals(payments: i64, refunds: i64, settled: i64) -> Option<MerchantTotals> {
    Some(MerchantTotals {
        payments_net_minor: payments,
        refunds_net_minor: refunds,
        settled_minor: settled,
    })
}

fn settlements(store: &dyn OrderStore) {
    let pay_s1 = succeeded(payment("pay_s1", "alice", "cafe", 10_000));
    let usd = succeeded(Payment::new(
        oid("pay_s4"),
        "alice".into(),
        "cafe".into(),
        code("USD"),
        amount(9_000),
        100,
    ));
    let failed = through(
        payment("pay_s3", "alice", "cafe", 7_000),
        &[Event::Submit, Event::LedgerRejected { code: "exceeds_credits".into() }],
    );
    let card = card_payment("cp_s1", "cafe", 2_000, 20);
    let from_settled = Refund { from_settled: true, ..refund("rf_s2", &pay_s1, 500, 5) };
    let failed_refund = Refund {
        state: BookingState::Failed { code: "exceeds_credits".into() },
        ..refund("rf_s3", &pay_s1, 700, 7)
    };
    let authorised =
        payment("pay_s2", "bob", "cafe", 6_000).with_authorization(60, 100).expect("auth");
    let pay_s2 = record("s", Order::Payment(authorised.clone()), 20_000);
    for record in [
        record("s", Order::Payment(pay_s1.clone()), 10_000),
        pay_s2.clone(),
        record("s", Order::Payment(failed), 11_000),
        record("s", Order::Payment(usd), 10_000),
        record("s", Order::Payment(succeeded(payment("pay_s5", "alice", "bakery", 8_000))), 10_000),
        record("s", Order::CardPayment(card.clone()), 12_000),
        // Refunds count whenever they were made: each takes from what is unsettled.
        child("s", Order::Refund(refund("rf_s1", &pay_s1, 1_000, 10)), pay_s1.order(), 30_000),
        child("s", Order::Refund(from_settled), pay_s1.order(), 30_000),
        child("s", Order::Refund(failed_refund), pay_s1.order(), 30_000),
        child(
            "s",
            card_refund("cr_s1", &card, 200, 2, CardRefundState::Booked),
            &card.order,
            30_000,
        ),
        child(
            "s",
            card_refund("cr_s2", &card, 100, 1, CardRefundState::Disputed { settled: settled() }),
            &card.order,
            30_000,
        ),
    ] {
        insert(store, &record);
    }
    // Succeeded payments before the cut-off, net of fees: 9,900 + 1,980; live refunds
    // not from settled takings, net of returned fees: 990 + 198.
    assert_eq!(
        try_settle(store, "st_s9", "cafe", cny(), 20_001, None),
        (GuardedInsert::Refused, merchant_totals(11_880, 1_188, 0)),
        "pay_s2 is only authorised"
    );
    // Captured for less than authorised: the update rewrites the amount and the fee.
    let captured = through(
        authorised,
        &[
            Event::Submit,
            Event::LedgerPosted,
            Event::Capture { amount: amount(5_000) },
            Event::LedgerPosted,
        ],
    );
    assert_eq!((captured.amount(), captured.fee()), (amount(5_000), amount(50)));
    update(store, &advanced(&pay_s2, Order::Payment(captured), 21_000), &[]);

    let first = record("s", settlement("st_s1", "cafe", 10_692, 15_000), 40_000);
    assert_eq!(
        try_settle(store, "st_s1", "cafe", cny(), 15_000, Some(&first)),
        (GuardedInsert::Created(first.clone()), merchant_totals(11_880, 1_188, 0))
    );
    assert_eq!(store.get(first.id()).expect("get"), Some(first.clone()));
    let changed = record("s", settlement("st_s1", "cafe", 1, 15_000), 40_500);
    assert_eq!(
        try_settle(store, "st_s1", "cafe", cny(), 15_000, Some(&changed)),
        (GuardedInsert::Existing(first.clone()), None),
        "a retry gets the stored settlement without building another"
    );
    assert_eq!(
        try_settle(store, "st_s2", "cafe", cny(), 15_000, None),
        (GuardedInsert::Refused, merchant_totals(11_880, 1_188, 10_692)),
        "nothing left to settle"
    );
    assert_eq!(store.get(&oid("st_s2")).expect("get"), None);
    assert_eq!(
        try_settle(store, "st_s2", "cafe", cny(), 20_000, None).1,
        merchant_totals(11_880, 1_188, 10_692),
        "the cut-off is exclusive"
    );
    let second = record("s", settlement("st_s2", "cafe", 4_950, 20_001), 41_000);
    assert_eq!(
        try_settle(store, "st_s2", "cafe", cny(), 20_001, Some(&second)),
        (GuardedInsert::Created(second.clone()), merchant_totals(16_830, 1_188, 10_692)),
        "pay_s2 as captured: 5,000 less 50"
    );
    // A failed settlement settled nothing.
    let Order::Settlement(flow) = &first.order else { unreachable!("a settlement") };
    let failed =
        Settlement { state: BookingState::Failed { code: "frozen".into() }, ..flow.clone() };
    update(store, &advanced(&first, Order::Settlement(failed), 42_000), &[]);
    assert_eq!(
        try_settle(store, "st_s3", "cafe", cny(), 20_001, None).1,
        merchant_totals(16_830, 1_188, 4_950)
    );
    // Per merchant and asset.
    assert_eq!(
        try_settle(store, "st_s3", "cafe", code("USD"), 20_001, None).1,
        merchant_totals(8_910, 0, 0)
    );
    assert_eq!(
        try_settle(store, "st_s3", "bakery", cny(), 20_001, None).1,
        merchant_totals(7_920, 0, 0)
    );
    assert_eq!(
        try_settle(store, "st_s3", "nobody", cny(), 20_001, None).1,
        merchant_totals(0, 0, 0)
    );
    assert_eq!(store.get(&oid("st_s3")).expect("get"), None);
    let listed = store
        .list(&OrderQuery {
            kind: Some(OrderKind::Settlement),
            merchant: Some("cafe".into()),
            ..query("s")
        })
        .expect("list");
    assert_eq!(ids(&listed), ["st_s2", "st_s1"]);
}

fn party(tenant: &str, kind: PartyKind, id: &str, name: &str) -> Party {
    Party {
        tenant: tenant.into(),
        kind,
        id: id.into(),
        name: name.into(),
        assets: vec![cny(), code("POINTS")],
        fee_bps: if kind == PartyKind::Merchant { 150 } else { 0 },
        settle_after_days: if kind == PartyKind::Merchant { 2 } else { 0 },
        created_at_ms: 1_000,
        // A hot merchant's layout is stored with it (and read back equal, below).
        unsettled_layout: if kind == PartyKind::Merchant {
            ledger::model::AccountLayout::SubAccounts { count: 4 }
        } else {
            ledger::model::AccountLayout::Plain
        },
    }
}

fn parties(store: &dyn OrderStore) {
    let shop = party("acme", PartyKind::Merchant, "shop", "Shop 商店");
    assert_eq!(store.put_party(&shop).expect("put"), None, "new");
    let renamed =
        Party { name: "Renamed".into(), fee_bps: 9, created_at_ms: 2_000, ..shop.clone() };
    assert_eq!(
        store.put_party(&renamed).expect("put again"),
        Some(shop.clone()),
        "the first stays"
    );
    assert_eq!(
        store.get_party("acme", PartyKind::Merchant, "shop").expect("get"),
        Some(shop.clone())
    );
    assert_eq!(store.get_party("acme", PartyKind::Customer, "shop").expect("get"), None);
    assert_eq!(store.get_party("globex", PartyKind::Merchant, "shop").expect("get"), None);
    assert_eq!(store.get_party("acme", PartyKind::Merchant, "absent").expect("get"), None);

    // (tenant, kind, id) is the key.
    let customer = party("acme", PartyKind::Customer, "shop", "A customer named shop");
    let elsewhere = party("globex", PartyKind::Merchant, "shop", "Globex shop");
    let cafe = party("acme", PartyKind::Merchant, "cafe", "Cafe");
    let alice = party("acme", PartyKind::Customer, "alice", "Alice");
    for new in [&customer, &elsewhere, &cafe, &alice] {
        assert_eq!(store.put_party(new).expect("put"), None, "{new:?}");
    }
    assert_eq!(
        store.get_party("acme", PartyKind::Customer, "shop").expect("get"),
        Some(customer.clone())
    );
    assert_eq!(
        store.get_party("globex", PartyKind::Merchant, "shop").expect("get"),
        Some(elsewhere.clone())
    );
    // Every tenant's, by tenant then id.
    assert_eq!(store.parties(PartyKind::Merchant).expect("merchants"), [cafe, shop, elsewhere]);
    assert_eq!(store.parties(PartyKind::Customer).expect("customers"), [alice, customer]);
}

/// What `exercise` left, as a reopened store reads it.
fn survives(store: &dyn OrderStore) {
    let events = store.events("ox_a", 0, 100).expect("events");
    assert_eq!(
        events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(),
        ["topup.debiting", "topup.noted", "topup.succeeded"]
    );
    assert_eq!(store.get(&oid("top_ox1")).expect("get").map(|r| r.version), Some(3));
    assert_eq!(store.list(&query("acme")).expect("list").len(), 6);
    assert_eq!(store.parties(PartyKind::Merchant).expect("parties").len(), 3);
    assert_eq!(
        try_settle(store, "st_s3", "cafe", cny(), 20_001, None).1,
        merchant_totals(16_830, 1_188, 4_950)
    );
}

/// Runs `racer` on `n` threads at once.
fn race<T: Send>(n: usize, racer: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, racer) = (&barrier, &racer);
                scope.spawn(move || {
                    barrier.wait();
                    racer(i)
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().expect("join")).collect()
    })
}

/// Refunds of one payment, settlements of one merchant and updates of one order, racing:
/// the refunds never pass the payment, one settlement takes everything, one update wins.
fn races(store: &dyn OrderStore) {
    const RACERS: usize = 12;
    // Several rounds: a window left open between reading the totals and inserting is
    // short, and one round may miss it.
    const ROUNDS: u64 = 8;
    for round in 0..ROUNDS {
        let merchant = format!("race{round}");
        let paid = succeeded(payment(&format!("pay_x{round}_1"), "alice", &merchant, 1_000));
        insert(store, &record("x", Order::Payment(paid.clone()), 1_000));
        for n in 2..=3 {
            let other = payment(&format!("pay_x{round}_{n}"), "bob", &merchant, 1_000);
            insert(store, &record("x", Order::Payment(succeeded(other)), 1_000));
        }

        let refunds = race(RACERS, |n| {
            let refund_id = format!("rf_x{round}_{n}");
            store
                .insert_refund(&oid(&refund_id), paid.order(), &mut |totals| {
                    (totals.refunded.minor() + 150 <= 1_000).then(|| {
                        let refund = refund(&refund_id, &paid, 150, 0);
                        child("x", Order::Refund(refund), paid.order(), 2_000 + n as u64)
                    })
                })
                .expect("refund")
        });
        let created = refunds.iter().filter(|r| matches!(r, GuardedInsert::Created(_))).count();
        assert_eq!(created, 6, "round {round}: six refunds of 150 fit in 1,000: {refunds:?}");
        assert!(refunds
            .iter()
            .all(|r| matches!(r, GuardedInsert::Created(_) | GuardedInsert::Refused)));
        let children = store.children_of(paid.order()).expect("children");
        assert_eq!(children.iter().map(|r| r.order.amount().minor()).sum::<u64>(), 900);

        let settlements = race(RACERS, |n| {
            let settlement_id = format!("st_x{round}_{n}");
            store
                .insert_settlement(&oid(&settlement_id), &merchant, cny(), 5_000, &mut |totals| {
                    let due =
                        totals.payments_net_minor - totals.refunds_net_minor - totals.settled_minor;
                    let due = u64::try_from(due).ok().filter(|due| *due > 0)?;
                    Some(record("x", settlement(&settlement_id, &merchant, due, 5_000), 3_000))
                })
                .expect("settle")
        });
        let created = settlements.iter().filter(|s| matches!(s, GuardedInsert::Created(_))).count();
        assert_eq!(created, 1, "round {round}: one settlement takes everything: {settlements:?}");
        let settled = store
            .list(&OrderQuery {
                kind: Some(OrderKind::Settlement),
                merchant: Some(merchant.clone()),
                ..query("x")
            })
            .expect("settlements");
        // 3 × 990 of payments, less 6 × 150 refunded.
        let amounts: Vec<u64> = settled.iter().map(|s| s.order.amount().minor()).collect();
        assert_eq!(amounts, [2_070], "round {round}");

        let contested = record("x", Order::Topup(topup(&format!("top_x{round}"), "alice")), 1_000);
        insert(store, &contested);
        let updates = race(RACERS, |n| {
            let mine = advanced(&contested, contested.order.clone(), 4_000 + n as u64);
            store.update(&mine, 1, &[event("topup.raced", n as u64)]).expect("update")
        });
        let won = updates.iter().filter(|won| **won).count();
        assert_eq!(won, 1, "round {round}: one update of version 1 wins");
        let winner = store.get(contested.id()).expect("get").expect("stored");
        assert_eq!(winner.version, 2);
        let events: Vec<_> = store
            .events("x", 0, 1_000)
            .expect("events")
            .into_iter()
            .filter(|event| event.order_id == *contested.id())
            .collect();
        assert_eq!(events.len(), 1, "round {round}: only the winner's event: {events:?}");
        assert_eq!(events[0].payload, payload(winner.updated_at_ms - 4_000));
    }
}

#[test]
fn sqlite_order_store_conforms_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    exercise(&SqliteOrderStore::open(&path).expect("open"));
    survives(&SqliteOrderStore::open(&path).expect("reopen"));
}

#[test]
fn postgres_order_store_conforms_across_a_reconnect() {
    let Some(target) = pg_target("orders") else { return };
    exercise(&PgOrderStore::connect(&target).expect("connect"));
    survives(&PgOrderStore::connect(&target).expect("reconnect"));
    drop_schema(&target);
}

#[test]
fn sqlite_order_store_serialises_racing_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    races(&SqliteOrderStore::open(dir.path().join("orders.db")).expect("open"));
}

#[test]
fn postgres_order_store_serialises_racing_writers() {
    let Some(target) = pg_target("orders_race") else { return };
    races(&PgOrderStore::connect(&target).expect("connect"));
    drop_schema(&target);
}

/// KNOWN BACKEND DIFFERENCE of the stores (run with `--ignored`): PostgreSQL text cannot hold
/// NUL, so a listing filtered by a status, customer or merchant with one fails there and
/// finds nothing on SQLite. No request reaches it: the server refuses a control character in
/// a URL or a body (422 `invalid_character`, `server/src/request.rs`, tested in
/// `server/tests/http/errors.rs`).
#[test]
#[ignore = "known backend difference: NUL in text (see the comment)"]
fn nul_in_filters_is_treated_alike_by_both_backends() {
    fn outcomes(store: &dyn OrderStore) -> Vec<String> {
        let filters = [
            OrderQuery { status: Some("\0".into()), ..query("acme") },
            OrderQuery { customer: Some("acme/\0".into()), ..query("acme") },
            OrderQuery { merchant: Some("acme/\0".into()), ..query("acme") },
        ];
        filters
            .iter()
            .map(|filter| format!("{:?}", store.list(filter).map(|r| r.len()).map_err(|_| "error")))
            .collect()
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = outcomes(&SqliteOrderStore::open(dir.path().join("orders.db")).expect("open"));
    let Some(target) = pg_target("orders_nul") else { return };
    let postgres = outcomes(&PgOrderStore::connect(&target).expect("connect"));
    drop_schema(&target);
    assert_eq!(sqlite, postgres, "SQLite, then PostgreSQL");
}
