//! Fund-safety monitoring (资金安全监控) on real stores: quiet books fire nothing; an order
//! stuck past its deadline, an escalated inquiry and one account debited past the hourly
//! limit each fire their alert (stored, and in the metrics); when the condition passes the
//! alert resolves, and one still true keeps firing.

use std::sync::atomic::Ordering;

use executor::{NewParty, PartyKind, WalletTransferRequest};
use monitors::{AlertState, Rule};
use payments::chart::wallet_account_id;
use reconciler::monitoring::Outside;

use crate::{amount, cny, world, Backend, TENANT};

const HOUR_MS: u64 = 3_600_000;

async fn alerts_fire_and_resolve(backend: &Backend) {
    let w = world(backend).await;
    let quiet = w.reconciler.monitor(Outside::default()).await.unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");
    let mut metrics = String::new();
    w.reconciler.render_metrics(&mut metrics);
    assert!(
        metrics
            .contains("qianbao_fund_alerts_firing{rule=\"books_unbalanced\",urgency=\"page\"} 0"),
        "{metrics}"
    );

    let bob = NewParty {
        kind: PartyKind::Customer,
        id: "bob".into(),
        name: "Bob".into(),
        assets: vec![cny()],
        fee_bps: 0,
        settle_after_days: 0,
        unsettled_layout: Default::default(),
    };
    w.executor.open_party(TENANT, bob).await.unwrap();
    w.topup("big", "card-1", 200_000_000).await;
    let request = WalletTransferRequest {
        reference: "drain".into(),
        from: "alice".into(),
        to: "bob".into(),
        asset: cny(),
        amount: amount(150_000_000),
    };
    let moved = w.executor.create_wallet_transfer(TENANT, request).await.unwrap();
    assert_eq!(moved.record.order.status(), "succeeded");
    let stuck = w.topup("stuck", "lost", 700).await;
    // Within the hour: the drained wallet fires; the stuck order is not yet overdue.
    let fired = w.reconciler.monitor(Outside { escalated_inquiries: 1 }).await.unwrap();
    let alice = wallet_account_id(&executor::party_key(TENANT, "alice"), cny()).to_string();
    let mut rules: Vec<(Rule, String)> =
        fired.iter().map(|a| (a.rule, a.subject.clone())).collect();
    rules.sort();
    assert_eq!(
        rules,
        vec![(Rule::EscalatedInquiries, "platform".into()), (Rule::AccountDebitLimit, alice)]
    );
    assert!(fired.iter().all(|a| a.state == AlertState::Firing));

    // Two hours on: the debit is out of the window, the inquiry answered, the order overdue.
    w.clock.0.fetch_add(2 * HOUR_MS, Ordering::Relaxed);
    let changed = w.reconciler.monitor(Outside::default()).await.unwrap();
    let mut states: Vec<(Rule, AlertState)> = changed.iter().map(|a| (a.rule, a.state)).collect();
    states.sort_by_key(|(rule, _)| *rule);
    assert_eq!(
        states,
        vec![
            (Rule::EscalatedInquiries, AlertState::Resolved),
            (Rule::OverdueOrders, AlertState::Firing),
            (Rule::AccountDebitLimit, AlertState::Resolved),
        ],
        "order {stuck} overdue"
    );
    let firing = w.reconciler.store().alerts(Some(AlertState::Firing), 10).unwrap();
    assert_eq!(firing.iter().map(|a| a.rule).collect::<Vec<_>>(), vec![Rule::OverdueOrders]);
    assert_eq!(w.reconciler.store().alerts(None, 10).unwrap().len(), 3, "resolved ones are kept");
    let mut metrics = String::new();
    w.reconciler.render_metrics(&mut metrics);
    assert!(
        metrics.contains("qianbao_fund_alerts_firing{rule=\"overdue_orders\",urgency=\"warn\"} 1"),
        "{metrics}"
    );
    // Nothing changed since: nothing to say.
    assert!(w.reconciler.monitor(Outside::default()).await.unwrap().is_empty());
    tokio::task::block_in_place(|| drop(w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_on_sqlite() {
    alerts_fire_and_resolve(&Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_on_postgres() {
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    alerts_fire_and_resolve(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
}
