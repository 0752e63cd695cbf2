//! End of day (日切) on real stores: a day closes with its trial balance (opening, debits,
//! credits, closing per chart line); a posting after the cut-over is the next day's; days
//! close in order and only once over; a closed day never changes; and the same books give
//! the same hash on SQLite and on PostgreSQL.

use std::sync::atomic::Ordering;

use ledger::{Clock, Timestamp};
use payments::chart::CUSTOMER_WALLETS;
use recon::BusinessDay;
use reconciler::closing::day_hash;
use reconciler::{ClosedDay, ReconError};

use crate::{world, Backend, NOON_MS};

const HOUR_MS: u64 = 3_600_000;

fn wallet_line(day: &ClosedDay) -> (i128, u128, u128, i128) {
    let line = day
        .lines
        .iter()
        .find(|line| line.chart_code == CUSTOMER_WALLETS.code)
        .expect("a wallet line");
    (line.opening_net_minor, line.debits_minor, line.credits_minor, line.closing_net_minor)
}

fn balanced(day: &ClosedDay) -> bool {
    let debits: u128 = day.lines.iter().map(|l| l.debits_minor).sum();
    let credits: u128 = day.lines.iter().map(|l| l.credits_minor).sum();
    debits == credits
}

/// Runs the days on `backend`; returns the first closed day's hash.
async fn days_close_in_order(backend: &Backend) -> String {
    let w = world(backend).await;
    let dec5 = BusinessDay::parse("2026-12-05").unwrap();
    let dec6 = dec5.next();
    w.topup("t1", "card-1", 10_000).await;
    let shop = executor::NewParty {
        kind: executor::PartyKind::Merchant,
        id: "shop".into(),
        name: "Shop".into(),
        assets: vec![crate::cny()],
        fee_bps: 60,
        settle_after_days: 1,
        unsettled_layout: Default::default(),
    };
    w.executor.open_party(crate::TENANT, shop).await.unwrap();
    let payment = executor::PaymentRequest {
        reference: "p1".into(),
        customer: "alice".into(),
        merchant: "shop".into(),
        asset: crate::cny(),
        amount: crate::amount(2_500),
        points: None,
        pay_from: None,
        authorize_for_secs: None,
    };
    let paid = w.executor.create_payment(crate::TENANT, payment).await.unwrap();
    assert_eq!(paid.record.order.status(), "succeeded");
    // 00:00:00.000 on 6 December in Shanghai: the cut-over. What commits from now on is the
    // next day's.
    let cutover_ms = dec5.end_ms(480);
    assert_eq!(cutover_ms, NOON_MS + 12 * HOUR_MS);
    w.ledger_clock.advance_secs(12 * 3_600);
    assert_eq!(w.ledger_clock.now(), Timestamp(cutover_ms * 1_000));
    w.clock.0.store(cutover_ms, Ordering::Relaxed);
    w.topup("t2", "card-2", 20_000).await;
    // A day closes a grace period after its cut-over, not before.
    let early = w.reconciler.close_day(dec5, "ops").await.unwrap_err();
    assert!(matches!(early, ReconError::DayNotOver { .. }), "{early}");
    w.clock.0.store(cutover_ms + reconciler::closing::CLOSE_GRACE_MS, Ordering::Relaxed);

    let closed = w.reconciler.close_day(dec5, "ops").await.unwrap();
    assert_eq!(closed.business_day, dec5.days());
    assert!(balanced(&closed), "{closed:?}");
    // The wallet is a liability: credits make its net negative.
    // Alice's top-up, less what she paid the shop: t2 is not the 5th's.
    assert_eq!(wallet_line(&closed), (0, 2_500, 10_000, -7_500), "t2 is not the 5th's");
    // The day's reports: the shop's statement (fee 2,500 × 60 bp = 15), no channel runs.
    let statements = w.reconciler.merchant_statements(dec5).await.unwrap();
    assert_eq!(statements.len(), 1, "{statements:?}");
    let shop = &statements[0];
    assert_eq!(
        (shop.merchant.as_str(), shop.payments_count, shop.payments_minor, shop.fees_minor),
        ("shop", 1, 2_500, 15)
    );
    assert_eq!((shop.unsettled_closing_minor, shop.settled_closing_minor), (2_485, 0));
    assert!(w.reconciler.channel_summaries(dec5).unwrap().is_empty());
    let open = w.reconciler.channel_summaries(dec6).unwrap_err();
    assert!(matches!(open, ReconError::DayNotClosed { .. }), "{open}");
    assert_eq!(closed.previous_hash, "");
    assert_eq!(
        closed.hash,
        day_hash(dec5, 480, closed.from_seq, closed.to_seq, &closed.lines, ""),
        "the hash is what the stored day says"
    );

    // The 6th is not over; the 7th cannot close before the 6th.
    let refused = w.reconciler.close_day(dec6, "ops").await.unwrap_err();
    assert!(matches!(refused, ReconError::DayNotOver { .. }), "{refused}");
    w.clock
        .0
        .store(cutover_ms + 48 * HOUR_MS + reconciler::closing::CLOSE_GRACE_MS, Ordering::Relaxed);
    let refused = w.reconciler.close_day(dec6.next(), "ops").await.unwrap_err();
    assert!(matches!(refused, ReconError::DayOrder { .. }), "{refused}");

    let next = w.reconciler.close_day(dec6, "ops").await.unwrap();
    assert_eq!(wallet_line(&next), (-7_500, 0, 20_000, -27_500));
    assert_eq!(next.previous_hash, closed.hash, "closed days are chained");
    assert_eq!(next.from_seq, closed.to_seq);
    assert!(balanced(&next));

    // A closed day never changes: closing it again answers it as it was.
    let again = w.reconciler.close_day(dec5, "someone else").await.unwrap();
    assert_eq!(again, closed);
    // The synchronous PostgreSQL clients are dropped off the runtime's worker.
    tokio::task::block_in_place(|| drop(w));
    closed.hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_close_in_order_with_the_same_hash_on_both_stores() {
    let sqlite = days_close_in_order(&Backend::Sqlite).await;
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    let postgres = days_close_in_order(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
    assert_eq!(sqlite, postgres, "the same books give the same closed day on either store");
}
