//! A hot merchant (热点账户) whose unsettled payables are spread over sub-accounts: the
//! journal names the rows each payment credited, and the day's merchant statement and the
//! cross-checks (orders against the journal) still see one merchant and one account.

use std::sync::atomic::Ordering;

use ledger::model::AccountLayout;
use recon::BusinessDay;

use crate::{amount, cny, world_with, Backend, World, NOON_MS, TENANT};

const HOUR_MS: u64 = 3_600_000;

const PAYMENTS: u64 = 6;

async fn pay(w: &World, reference: &str, minor: u64) -> executor::OrderRecord {
    let payment = executor::PaymentRequest {
        reference: reference.into(),
        customer: "alice".into(),
        merchant: "hot".into(),
        asset: cny(),
        amount: amount(minor),
        points: None,
        pay_from: None,
        authorize_for_secs: None,
    };
    let paid = w.executor.create_payment(TENANT, payment).await.unwrap();
    assert_eq!(paid.record.order.status(), "succeeded", "{:?}", paid.record);
    paid.record
}

async fn a_hot_merchants_rows_count_as_its_account(backend: &Backend) {
    // A debit limit below the refund below: the monitor must name the merchant's account,
    // not the row the refund was served from.
    let mut config = reconciler::ReconConfig::new(vec![cny()]);
    config.monitors.account_debit_limit_minor = 500;
    let w = world_with(backend, config).await;
    let dec5 = BusinessDay::parse("2026-12-05").unwrap();
    w.topup("t1", "card-1", 100_000).await;
    let layout = AccountLayout::SubAccounts { count: 4 };
    let hot = executor::NewParty {
        kind: executor::PartyKind::Merchant,
        id: "hot".into(),
        name: "Hot".into(),
        assets: vec![cny()],
        fee_bps: 60,
        settle_after_days: 1,
        unsettled_layout: layout,
    };
    w.executor.open_party(TENANT, hot.clone()).await.unwrap();
    // The same merchant again is the same merchant; with another layout it is refused.
    assert_eq!(w.executor.open_party(TENANT, hot.clone()).await.unwrap().unsettled_layout, layout);
    let plain = executor::NewParty { unsettled_layout: AccountLayout::Plain, ..hot.clone() };
    let refused = w.executor.open_party(TENANT, plain).await.unwrap_err();
    assert!(
        matches!(refused, executor::ExecError::PartyExistsWithDifferentFields { .. }),
        "{refused}"
    );

    // Payments one after another: each credits one row (which one is the ledger's choice:
    // on one node, whichever row it holds; across nodes, a different one per batch).
    let mut last = None;
    for i in 0..PAYMENTS {
        last = Some(pay(&w, &format!("p{i}"), 1_000).await);
    }
    let unsettled =
        payments::chart::merchant_account_id(&executor::party_key(TENANT, "hot"), cny(), false);
    let rows = tokio::task::block_in_place(|| {
        layout
            .row_ids(unsettled)
            .map(|row| w.reader.account(row).unwrap().expect("row").balances.net_credit_posted())
            .collect::<Vec<_>>()
    });
    assert_eq!(rows.iter().sum::<i128>(), PAYMENTS as i128 * 994, "fee 1,000 × 60 bp = 6");
    // A refund right after: the rows are spent together (swept when one falls short).
    let refund = executor::RefundRequest {
        reference: "r1".into(),
        payment: last.expect("paid").id().clone(),
        amount: amount(1_000),
    };
    let refunded = w.executor.create_refund(TENANT, refund).await.unwrap();
    assert_eq!(refunded.record.order.status(), "succeeded", "{:?}", refunded.record);

    let alerts = w.reconciler.monitor(reconciler::monitoring::Outside::default()).await.unwrap();
    let fired = |subject: &str| {
        alerts
            .iter()
            .find(|a| a.rule == monitors::Rule::AccountDebitLimit && a.subject == subject)
            .map(|a| a.value.clone())
    };
    // The refund, and the fee leg of each payment (6 each): no sweep between rows counts.
    assert_eq!(fired(&unsettled.to_string()), Some("1036".into()), "{alerts:?}");
    for row in layout.derived_rows() {
        assert_eq!(fired(&unsettled.row(row).to_string()), None, "a row named: {alerts:?}");
    }

    let clean = w.reconciler.cross_check("ops").await.unwrap();
    let failing: Vec<_> = clean.checks.iter().filter(|c| !c.ok).collect();
    assert!(clean.ok, "orders against the journal, rows as their account: {failing:?}");

    let cutover_ms = dec5.end_ms(480);
    assert_eq!(cutover_ms, NOON_MS + 12 * HOUR_MS);
    w.ledger_clock.advance_secs(12 * 3_600);
    w.clock.0.store(cutover_ms + reconciler::closing::CLOSE_GRACE_MS, Ordering::Relaxed);
    w.reconciler.close_day(dec5, "ops").await.unwrap();
    let statements = w.reconciler.merchant_statements(dec5).await.unwrap();
    let hot = statements.iter().find(|s| s.merchant == "hot").expect("the hot merchant");
    assert_eq!(
        (hot.payments_count, hot.payments_minor, hot.fees_minor),
        (PAYMENTS, u128::from(PAYMENTS) * 1_000, u128::from(PAYMENTS) * 6),
        "{hot:?}"
    );
    assert_eq!((hot.refunds_count, hot.refunds_minor, hot.fees_returned_minor), (1, 1_000, 6));
    assert_eq!(hot.unsettled_closing_minor, (PAYMENTS as i128 - 1) * 994, "summed over rows");
    // The synchronous PostgreSQL clients are dropped off the runtime's worker.
    tokio::task::block_in_place(|| drop(w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_merchants_rows_count_as_its_account_on_both_stores() {
    a_hot_merchants_rows_count_as_its_account(&Backend::Sqlite).await;
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    a_hot_merchants_rows_count_as_its_account(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
}
