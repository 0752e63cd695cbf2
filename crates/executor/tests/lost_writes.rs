//! The order states a store may lose in a machine crash are the ones driving the order again
//! reaches again. A store that forgets every `Durability::Recomputable` write (as if the
//! machine died before its log was flushed) leaves wallet payments and transfers acknowledged
//! as succeeded but stored short of it; inspection then drives each to the state its client
//! was told, and the ledger posted each group once.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use channels::gateway::SystemMillis;
use channels::{BoxFuture, ChannelId};
use executor::port::{
    ChannelLegPage, Durability, GuardedInsert, Inserted, MerchantTotals, NewEvent, OrderQuery,
    OrderStoreError, Party, RefundTotals, StoredEvent,
};
use executor::{
    Executor, ExecutorConfig, OrderRecord, OrderStore, PartyKind, PaymentRequest,
    WalletTransferRequest,
};
use ledger::port::LedgerReader;
use ledger::{Ledger, SystemClock};
use money::AssetCode;
use payments::{OrderId, OrderKind};

mod support;
use support::{amount, cny, fund, open_parties, wallet};

/// The SQLite order store, except that while `forgetting` it answers a recomputable update
/// as committed and writes nothing; and it keeps what durability each write asked for.
struct Forgetful {
    inner: store::SqliteOrderStore,
    forgetting: AtomicBool,
    asked: Mutex<Vec<(OrderKind, &'static str, Durability)>>,
}

impl Forgetful {
    fn note(&self, record: &OrderRecord, write: &'static str, durability: Durability) {
        self.asked.lock().unwrap().push((record.order.kind(), write, durability));
    }
}

impl OrderStore for Forgetful {
    fn insert(&self, record: &OrderRecord) -> Result<Inserted, OrderStoreError> {
        self.inner.insert(record)
    }

    fn insert_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        durability: Durability,
    ) -> BoxFuture<'a, Result<Inserted, OrderStoreError>> {
        self.note(record, "insert", durability);
        self.inner.insert_as(record, durability)
    }

    fn insert_refund(
        &self,
        refund_id: &OrderId,
        payment: &OrderId,
        build: &mut dyn FnMut(RefundTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        self.inner.insert_refund(refund_id, payment, build)
    }

    fn insert_settlement(
        &self,
        settlement_id: &OrderId,
        merchant: &str,
        asset: AssetCode,
        cutoff_ms: u64,
        build: &mut dyn FnMut(MerchantTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        self.inner.insert_settlement(settlement_id, merchant, asset, cutoff_ms, build)
    }

    fn parties(&self, kind: PartyKind) -> Result<Vec<Party>, OrderStoreError> {
        self.inner.parties(kind)
    }

    fn update(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<bool, OrderStoreError> {
        self.inner.update(record, expected_version, events)
    }

    fn update_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        expected_version: u64,
        events: &'a [NewEvent],
        durability: Durability,
    ) -> BoxFuture<'a, Result<bool, OrderStoreError>> {
        self.note(record, "update", durability);
        if durability == Durability::Recomputable && self.forgetting.load(Ordering::SeqCst) {
            return Box::pin(async { Ok(true) });
        }
        self.inner.update_as(record, expected_version, events, durability)
    }

    fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, OrderStoreError> {
        self.inner.get(id)
    }

    fn list(&self, query: &OrderQuery) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.inner.list(query)
    }

    fn unfinished_after(
        &self,
        updated_before_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.inner.unfinished_after(updated_before_ms, after, limit)
    }

    fn needing_operator(
        &self,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.inner.needing_operator(after, limit)
    }

    fn created_between(
        &self,
        kinds: &[OrderKind],
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.inner.created_between(kinds, from_ms, to_ms, after, limit)
    }

    fn channel_legs_between(
        &self,
        channel: &ChannelId,
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<ChannelLegPage, OrderStoreError> {
        self.inner.channel_legs_between(channel, from_ms, to_ms, after, limit)
    }

    fn children_of(&self, parent: &OrderId) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.inner.children_of(parent)
    }

    fn events(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, OrderStoreError> {
        self.inner.events(tenant, after_seq, limit)
    }

    fn put_party(&self, party: &Party) -> Result<Option<Party>, OrderStoreError> {
        self.inner.put_party(party)
    }

    fn get_party(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
    ) -> Result<Option<Party>, OrderStoreError> {
        self.inner.get_party(tenant, kind, id)
    }
}

const PAYMENTS: u64 = 20;
const TRANSFERS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_lost_in_a_crash_are_driven_again_to_what_the_client_was_told() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger.db");
    let ledger = Ledger::start(
        store::SqliteStore::open(&ledger_path).unwrap(),
        Arc::new(SystemClock),
        ledger::PipelineConfig::default(),
    );
    let reader = store::SqliteReader::open(&ledger_path).unwrap();
    let orders = Arc::new(Forgetful {
        inner: store::SqliteOrderStore::open(dir.path().join("orders.db")).unwrap(),
        forgetting: AtomicBool::new(false),
        asked: Mutex::new(Vec::new()),
    });
    let config = ExecutorConfig { inspect_after_ms: 0, ..ExecutorConfig::default() };
    let executor =
        Executor::new(orders.clone(), ledger.handle(), None, Arc::new(SystemMillis), config);
    open_parties(&executor, &ledger.handle()).await;
    let alice = wallet("alice");
    fund(&ledger.handle(), 77, "alice", 1_000_000).await;

    // The machine "crashes" under every order: each is acknowledged as succeeded, and its
    // succeeded state is lost.
    orders.forgetting.store(true, Ordering::SeqCst);
    let mut told = Vec::new();
    for n in 0..PAYMENTS {
        let request = PaymentRequest {
            reference: format!("pay-{n}"),
            customer: "alice".into(),
            merchant: "shop".into(),
            asset: cny(),
            amount: amount(100),
            points: None,
            pay_from: None,
            authorize_for_secs: None,
        };
        told.push(executor.create_payment("t", request).await.unwrap().record);
    }
    for n in 0..TRANSFERS {
        let request = WalletTransferRequest {
            reference: format!("gift-{n}"),
            from: "alice".into(),
            to: "bob".into(),
            asset: cny(),
            amount: amount(7),
        };
        told.push(executor.create_wallet_transfer("t", request).await.unwrap().record);
    }
    // A rejection is news only the order keeps: it is stored durably, never forgotten.
    let refused = PaymentRequest {
        reference: "too-much".into(),
        customer: "bob".into(),
        merchant: "shop".into(),
        asset: cny(),
        amount: amount(1_000_000),
        points: None,
        pay_from: None,
        authorize_for_secs: None,
    };
    let refused = executor.create_payment("t", refused).await.unwrap().record;
    assert_eq!(refused.order.status(), "failed");
    assert_eq!(orders.get(refused.id()).unwrap().unwrap().order.status(), "failed");
    for record in &told {
        assert_eq!(record.order.status(), "succeeded", "the client was told it succeeded");
        let stored = orders.get(record.id()).unwrap().unwrap();
        assert!(!stored.order.is_final(), "the lost write left {} short", record.id());
    }
    let asked = orders.asked.lock().unwrap().clone();
    for kind in [OrderKind::Payment, OrderKind::WalletTransfer] {
        assert!(
            asked.contains(&(kind, "insert", Durability::BeforeLedger)),
            "a {kind:?} that starts with a ledger write rides its commit: {asked:?}"
        );
        assert!(
            asked.contains(&(kind, "update", Durability::Recomputable)),
            "a {kind:?}'s posted state is recomputable: {asked:?}"
        );
    }

    // Restarted: inspection drives every order again.
    orders.forgetting.store(false, Ordering::SeqCst);
    let report = executor.inspect(7).await;
    assert_eq!(report.examined, PAYMENTS + TRANSFERS, "{report:?}");
    for record in &told {
        let stored = orders.get(record.id()).unwrap().unwrap();
        assert_eq!(stored.order.status(), "succeeded", "{} as its client was told", record.id());
    }
    let wallet = reader.account(alice).unwrap().unwrap();
    assert_eq!(
        wallet.balances.net_credit_posted(),
        1_000_000 - 100 * i128::from(PAYMENTS) - 7 * i128::from(TRANSFERS),
        "each order's group posted once, however often it was driven"
    );
    ledger.shutdown();
}
