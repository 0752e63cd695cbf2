//! A rejection the executor acted on stays a rejection: after a payment failed for want of
//! funds, a late copy of its ledger group (a second driver of the order, another node) can
//! no longer post, even once the wallet could pay it.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use std::sync::Arc;

use channels::gateway::SystemMillis;
use executor::{Executor, ExecutorConfig, OrderStore, PaymentRequest, WalletTransferRequest};
use ledger::apply::{Command, Outcome as LedgerOutcome};
use ledger::port::LedgerReader;
use ledger::{Ledger, SystemClock, TransferRejection};
use payments::Order;

mod support;
use support::{amount, cny, fund, open_parties, wallet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_a_rejected_group_cannot_post() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.db");
    let ledger = Ledger::start(
        store::SqliteStore::open(&ledger_path).unwrap(),
        Arc::new(SystemClock),
        ledger::PipelineConfig::default(),
    );
    let reader = store::SqliteReader::open(&ledger_path).unwrap();
    let orders: Arc<dyn OrderStore> =
        Arc::new(store::SqliteOrderStore::open(dir.path().join("orders.db")).unwrap());
    let executor = Executor::new(
        orders.clone(),
        ledger.handle(),
        None,
        Arc::new(SystemMillis),
        ExecutorConfig::default(),
    );
    open_parties(&executor, &ledger.handle()).await;

    // Alice has nothing: the payment fails.
    let failed = executor
        .create_payment(
            "t",
            PaymentRequest {
                reference: "o-1".into(),
                customer: "alice".into(),
                merchant: "shop".into(),
                asset: cny(),
                amount: amount(500),
                points: None,
                pay_from: None,
                authorize_for_secs: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.record.order.status(), "failed");
    let Order::Payment(payment) = &failed.record.order else { panic!("a payment") };

    // Bob gives Alice the money; then a late copy of the failed group arrives.
    let moved = executor
        .create_wallet_transfer(
            "t",
            WalletTransferRequest {
                reference: "gift".into(),
                from: "bob".into(),
                to: "alice".into(),
                asset: cny(),
                amount: amount(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.record.order.status(), "failed", "bob has nothing either");
    fund(&ledger.handle(), 77, "alice", 1_000).await;
    let late = ledger.handle().execute(vec![Command::Transfers(payment.group())]).await.unwrap();
    let Some(LedgerOutcome::Transfers(results)) = late.first() else { panic!("{late:?}") };
    assert_eq!(
        results[0].as_ref().err(),
        Some(&TransferRejection::IdExistsWithDifferentFields),
        "the failed payment's id is taken by its tombstone"
    );
    let wallet = reader.account(wallet("alice")).unwrap().unwrap();
    assert_eq!(wallet.balances.net_credit_posted(), 1_000, "nothing moved twice");
    for line in reader.trial_balance().unwrap() {
        assert_eq!(
            line.balances.debits_pending, line.balances.credits_pending,
            "no tombstone holds money"
        );
    }
    ledger.shutdown();
}
