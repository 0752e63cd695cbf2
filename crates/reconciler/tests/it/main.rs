#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test
//! Reconciliation end to end on real stores (SQLite): orders go through a channel that keeps
//! its own books, the channel's statement has planted differences, and a run finds each one
//! with its class and nothing else; unknown orders complete from the statement; every break's
//! money sits on suspense; each is resolved through the workflow (with approval where the
//! policy asks); afterwards suspense is zero, the books balance and the loss register holds
//! the write-off.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use channels::channel::{DetailLine, LineStatus, StatementFile};
use channels::gateway::Millis;
use channels::model::Inquiry;
use channels::router::ChannelProfile;
use channels::{
    BoxFuture, Channel, ChannelError, ChannelId, ChannelRequest, Gateway, GatewayConfig, Operation,
    Outcome, RequestId, Settled,
};
use executor::{Executor, ExecutorConfig, NewParty, OrderStore, PartyKind, TopUpRequest};
use ledger::apply::Command;
use ledger::port::LedgerReader;
use ledger::{Ledger, ManualClock, Timestamp};
use money::{Amount, Asset, AssetCode};
use payments::chart::{internal_account_id, Internal};
use recon::breaks::{BreakState, Resolution};
use recon::{BusinessDay, Class, TxType};
use reconciler::{PutStatement, ReconConfig, Reconciler};

const TENANT: &str = "acme";
/// 2026-12-05 12:00 in Shanghai.
const NOON_MS: u64 = 1_796_443_200_000;
const FEE: u64 = 6;

fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap()
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap()
}

struct Clock(AtomicU64);

impl Millis for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A bank: does every debit; a card named `lost` is debited but the answer is lost. Its
/// statement is its books with the planted differences.
struct Bank {
    id: ChannelId,
    books: Mutex<BTreeMap<String, (Amount, u64)>>,
    plant: Mutex<Vec<Plant>>,
}

#[derive(Clone, Debug)]
enum Plant {
    Drop(String),
    Amount(String, u64),
    Extra(u64),
}

impl Channel for Bank {
    fn id(&self) -> &ChannelId {
        &self.id
    }

    fn execute<'a>(&'a self, request: &'a ChannelRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let line = self.books.lock().unwrap().len() as u64;
            self.books
                .lock()
                .unwrap()
                .entry(request.request_id.to_string())
                .or_insert((request.amount, line));
            if request.account == "lost" {
                return Outcome::Unknown { detail: "the answer was lost".into() };
            }
            Outcome::Succeeded(Settled {
                channel_ref: format!("ref-{}", request.request_id),
                fee: amount(FEE),
            })
        })
    }

    fn inquire<'a>(&'a self, _: Operation, _: &'a RequestId) -> BoxFuture<'a, Inquiry> {
        Box::pin(async { Inquiry::NotFound })
    }

    fn statement_file<'a>(
        &'a self,
        _day: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>> {
        let plants = self.plant.lock().unwrap().clone();
        let mut details: Vec<DetailLine> = self
            .books
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| !plants.iter().any(|p| matches!(p, Plant::Drop(d) if d == *id)))
            .map(|(id, (paid, _))| {
                let paid = plants
                    .iter()
                    .find_map(|p| match p {
                        Plant::Amount(d, a) if d == id => Some(amount(*a)),
                        _ => None,
                    })
                    .unwrap_or(*paid);
                line(Some(id.clone()), format!("ref-{id}"), paid)
            })
            .collect();
        for plant in &plants {
            if let Plant::Extra(minor) = plant {
                details.push(line(None, "ref-nobody".into(), amount(*minor)));
            }
        }
        let file = StatementFile::with_digest(recon::statement::render(&details).into_bytes());
        Box::pin(async move { Ok(file) })
    }
}

fn line(request_id: Option<String>, channel_ref: String, paid: Amount) -> DetailLine {
    DetailLine {
        line_no: 0,
        request_id,
        channel_ref: Some(channel_ref),
        tx_type: TxType::Debit,
        amount: paid,
        fee: amount(FEE),
        currency: cny(),
        booked_at_ms: NOON_MS,
        status: LineStatus::Succeeded,
    }
}

/// Where a world keeps its books.
enum Backend {
    Sqlite,
    Postgres(store::PgTarget),
}

impl Backend {
    /// PostgreSQL at `QIANBAO_TEST_PG_URL` in a fresh schema; `None` (skip) when it is
    /// unreachable, except under `CI=true`, where that is a failure.
    fn postgres() -> Option<Backend> {
        let url = std::env::var("QIANBAO_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let target = store::PgTarget::new(url, format!("recon_it_{}_{nanos}", std::process::id()));
        match store::PgStore::connect(target.clone()) {
            Ok(_) => Some(Backend::Postgres(target)),
            Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("PostgreSQL is unreachable under CI=true: {error}")
            }
            Err(error) => {
                eprintln!("skipping the PostgreSQL run: {error}");
                None
            }
        }
    }
}

mod checks;
mod closing;
mod hot_merchant;
mod monitoring;
mod superseded;

struct World {
    _dir: tempfile::TempDir,
    /// The ledger's commit clock (end of day reads the journal by it), microseconds.
    ledger_clock: Arc<ManualClock>,
    /// The orders' and reconciliation's clock, milliseconds.
    clock: Arc<Clock>,
    reader: Box<dyn LedgerReader>,
    executor: Arc<Executor>,
    reconciler: Reconciler,
    bank: Arc<Bank>,
    _ledger: Ledger,
}

/// A world's ledger, its reader, and the order and reconciliation stores.
type Stores = (Ledger, Box<dyn LedgerReader>, Arc<dyn OrderStore>, Arc<dyn reconciler::ReconStore>);

async fn world(backend: &Backend) -> World {
    world_with(backend, ReconConfig::new(vec![cny()])).await
}

/// A world whose reconciler has `config`.
async fn world_with(backend: &Backend, recon_config: ReconConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let ledger_clock = Arc::new(ManualClock::new(Timestamp(NOON_MS * 1_000)));
    let config = ledger::PipelineConfig::default();
    let (ledger, reader, orders, recon_store): Stores = match backend {
        Backend::Sqlite => {
            let ledger_path = dir.path().join("ledger.db");
            (
                Ledger::start(
                    store::SqliteStore::open(&ledger_path).unwrap(),
                    ledger_clock.clone(),
                    config,
                ),
                Box::new(store::SqliteReader::open(&ledger_path).unwrap()),
                Arc::new(store::SqliteOrderStore::open(dir.path().join("orders.db")).unwrap()),
                Arc::new(store::SqliteReconStore::open(dir.path().join("recon.db")).unwrap()),
            )
        }
        // The synchronous PostgreSQL client must not block a runtime worker.
        Backend::Postgres(target) => tokio::task::block_in_place(|| {
            (
                Ledger::start(
                    store::PgStore::connect(target.clone()).unwrap(),
                    ledger_clock.clone(),
                    config,
                ),
                Box::new(store::PgReader::connect(target.clone()).unwrap())
                    as Box<dyn LedgerReader>,
                Arc::new(store::PgOrderStore::connect(target).unwrap()) as Arc<dyn OrderStore>,
                Arc::new(store::PgReconStore::connect(target).unwrap())
                    as Arc<dyn reconciler::ReconStore>,
            )
        }),
    };
    let clock = Arc::new(Clock(AtomicU64::new(NOON_MS)));
    let bank = Arc::new(Bank {
        id: ChannelId::new("bank_a").unwrap(),
        books: Mutex::new(BTreeMap::new()),
        plant: Mutex::new(Vec::new()),
    });
    let profile = ChannelProfile {
        id: bank.id.clone(),
        operations: vec![Operation::Debit],
        assets: vec![cny()],
        amount_min: amount(1),
        amount_max: Amount::MAX,
        account_prefixes: Vec::new(),
        fee_fixed: Amount::ZERO,
        fee_bps: 0,
        timeout_ms: 1_000,
        limits: Default::default(),
        breaker: Default::default(),
    };
    let gateway = Arc::new(
        Gateway::new(
            vec![bank.clone() as Arc<dyn Channel>],
            vec![profile],
            GatewayConfig::default(),
            clock.clone(),
        )
        .unwrap(),
    );
    let executor = Arc::new(Executor::new(
        orders,
        ledger.handle(),
        Some(gateway),
        clock.clone(),
        ExecutorConfig::default(),
    ));
    ledger
        .handle()
        .execute(vec![Command::DefineAsset(Asset::new(cny(), 2).unwrap())])
        .await
        .unwrap();
    executor.bootstrap().await.unwrap();
    let party = NewParty {
        kind: PartyKind::Customer,
        id: "alice".into(),
        name: "Alice".into(),
        assets: vec![cny()],
        fee_bps: 0,
        settle_after_days: 0,
        unsettled_layout: Default::default(),
    };
    executor.open_party(TENANT, party).await.unwrap();
    // End of day reads the books through a reader of its own, as `qianbao serve` gives it.
    let books: Arc<dyn LedgerReader> = match backend {
        Backend::Sqlite => {
            Arc::new(store::SqliteReader::open(dir.path().join("ledger.db")).unwrap())
        }
        Backend::Postgres(target) => tokio::task::block_in_place(|| {
            Arc::new(store::PgReader::connect(target.clone()).unwrap()) as Arc<dyn LedgerReader>
        }),
    };
    let reconciler = Reconciler::new(
        recon_store,
        executor.clone(),
        ledger.handle(),
        clock.clone(),
        recon_config,
    )
    .with_books(books);
    World { _dir: dir, ledger_clock, clock, reader, executor, reconciler, bank, _ledger: ledger }
}

impl World {
    fn ledger(&self) -> ledger::LedgerHandle {
        self._ledger.handle()
    }

    async fn topup(&self, reference: &str, card: &str, minor: u64) -> String {
        let request = TopUpRequest {
            reference: reference.into(),
            customer: "alice".into(),
            card: card.into(),
            asset: cny(),
            amount: amount(minor),
        };
        self.executor.create_topup(TENANT, request).await.unwrap().record.id().to_string()
    }

    fn balance(&self, account: Internal) -> i128 {
        let id = internal_account_id(&account, cny());
        // Readers use the synchronous client: off the runtime's worker.
        let account = tokio::task::block_in_place(|| self.reader.account(id).unwrap());
        account.map_or(0, |a| a.balances.net_credit_posted())
    }

    fn balanced(&self) -> bool {
        let totals = tokio::task::block_in_place(|| self.reader.asset_totals().unwrap());
        totals.iter().all(|t| t.balanced())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_reconciled_and_every_break_resolved_through_the_workflow_on_sqlite() {
    a_day_is_reconciled_and_every_break_resolved(&Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_reconciled_and_every_break_resolved_through_the_workflow_on_postgres() {
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    a_day_is_reconciled_and_every_break_resolved(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
}

async fn a_day_is_reconciled_and_every_break_resolved(backend: &Backend) {
    let w = world(backend).await;
    let day = BusinessDay::parse("2026-12-05").unwrap();
    let _matched = w.topup("t1", "card-1", 10_000).await;
    let dropped = w.topup("t2", "card-2", 20_000).await;
    let short = w.topup("t3", "card-3", 30_000).await;
    let unknown = w.topup("t4", "lost", 40_000).await;
    let request = |order: &str| format!("{order}:debit");
    *w.bank.plant.lock().unwrap() = vec![
        Plant::Drop(request(&dropped)),
        Plant::Amount(request(&short), 29_990),
        Plant::Extra(500),
    ];
    let status = |order: &str| {
        let id = payments::OrderId::new(order).unwrap();
        w.executor.store().get(&id).unwrap().unwrap().order.status()
    };
    assert_eq!(status(&unknown), "debiting");

    // The statement: fetched, stored; the same file again is a no-op.
    let stored = w.reconciler.fetch("bank_a", day, "job").await.unwrap();
    assert!(matches!(stored, PutStatement::Stored(ref s) if s.version == 1 && s.detail_lines == 4));
    assert!(matches!(
        w.reconciler.fetch("bank_a", day, "job").await.unwrap(),
        PutStatement::Same(_)
    ));

    let run = w.reconciler.run("bank_a", day, "job").await.unwrap();
    assert_eq!(run.counts[&Class::Matched], 1, "{run:?}");
    assert_eq!(run.counts[&Class::MissingExternal], 1);
    assert_eq!(run.counts[&Class::AmountMismatch], 1);
    assert_eq!(run.counts[&Class::MissingInternal], 2, "the unknown order and the extra line");
    assert_eq!(run.auto_resolved, 1);
    assert_eq!(run.breaks_new, 3);
    assert_eq!(status(&unknown), "succeeded", "the statement's answer completed the order");

    // Every break's money is on suspense: the extra 500 (less its fee) against the dropped
    // 20,000 (and its fee) and the short 10.
    let suspense = w.balance(Internal::ReconSuspense(w.bank.id.clone()));
    assert_eq!(suspense, (500 - FEE as i128) - (20_000 - FEE as i128) - 10);
    // The suspense holds exactly the open breaks' money (a cross-check says so too).
    let checked = w.reconciler.cross_check("ops").await.unwrap();
    let held = checked.checks.iter().find(|c| c.name == "suspense_holds_open_breaks").unwrap();
    assert!(held.ok && held.examined > 0, "{held:?}");
    assert!(w.balanced());

    let breaks = w
        .reconciler
        .store()
        .breaks(&reconciler::BreakQuery { limit: 100, ..Default::default() })
        .unwrap();
    assert_eq!(breaks.len(), 3);
    let of = |class: Class| breaks.iter().find(|b| b.class == class).unwrap().id.clone();

    // The dropped debit: the bank never took it — written off, which needs a second key.
    let missing = of(Class::MissingExternal);
    let pending = w
        .reconciler
        .propose(&missing, Resolution::WriteOff, "bank confirms no debit", "key_maker")
        .await
        .unwrap();
    assert_eq!(pending.state, BreakState::PendingApproval);
    let same = w.reconciler.approve(&missing, "key_maker").await.unwrap_err();
    assert_eq!(same.code(), "approver_is_maker");
    let resolved = w.reconciler.approve(&missing, "key_checker").await.unwrap();
    assert_eq!(resolved.state, BreakState::Resolved);

    // The short payment: 10 taken to channel fees at once (below the approval amount).
    let short_break = of(Class::AmountMismatch);
    let adjusted = w
        .reconciler
        .propose(&short_break, Resolution::Adjust, "rounding", "key_maker")
        .await
        .unwrap();
    assert_eq!(adjusted.state, BreakState::Resolved);

    // The bank's extra success: nobody's order — back to the payer.
    let extra = of(Class::MissingInternal);
    let wrong =
        w.reconciler.propose(&extra, Resolution::WriteOff, "no", "key_maker").await.unwrap_err();
    assert_eq!(wrong.code(), "resolution_needs_negative_break");
    let refunded = w
        .reconciler
        .propose(&extra, Resolution::RefundPayer, "unknown payer", "key_maker")
        .await
        .unwrap();
    assert_eq!(refunded.state, BreakState::Resolved);

    assert_eq!(w.balance(Internal::ReconSuspense(w.bank.id.clone())), 0, "suspense is empty");
    assert!(w.balanced());
    let losses = w.reconciler.store().losses(0, u64::MAX).unwrap();
    assert_eq!(losses.len(), 1);
    assert_eq!(losses[0].amount, amount(20_000));
    assert_eq!(losses[0].approver.as_deref(), Some("key_checker"));
    assert_eq!(-w.balance(Internal::FundLosses), 20_000, "the loss is on 6711");
    let trail: Vec<String> = w
        .reconciler
        .store()
        .break_events(&missing)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(trail, ["found", "proposed", "approved", "resolved"]);

    // The same day again: nothing new, nothing booked twice.
    let again = w.reconciler.run("bank_a", day, "job").await.unwrap();
    assert_eq!(again.breaks_new, 0);
    assert_eq!(again.superseded, 0);
    assert_eq!(again.counts[&Class::Matched], 2, "the completed order now matches");
    assert_eq!(w.balance(Internal::ReconSuspense(w.bank.id.clone())), 0);
    // Its PostgreSQL clients close synchronously.
    tokio::task::block_in_place(|| drop(w));
}
