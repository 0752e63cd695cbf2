//! The engine's recovery on real files and real SQLite books: replay from the journal equals
//! the live state, the projection equals the journal once caught up, the same commands give
//! the same chain as the direct store, a torn tail is cut, corruption stops the start, and a
//! failed sync stops the writes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use engine::log::Durability;
use engine::{Engine, EngineConfig, OpenError};
use ledger::model::{
    Account, AccountClass, AccountLayout, BalanceRule, BoundedText, ChartCode, ChartEntry, Hold,
    Movement, NewAccount, NewTransfer, TransferAction,
};
use ledger::port::{LedgerReader, LedgerStore, Page, StoreError};
use ledger::{
    AccountId, Command, Ledger, ManualClock, Outcome, PipelineConfig, Seq, Timestamp, TransferId,
};
use money::{Amount, Asset, AssetCode};
use store::{SqliteReader, SqliteStore};

const ACCOUNTS: u128 = 20;
const BANK: u128 = 1;
const HOT: u128 = 2;

/// A projection that refuses to write while its gate is shut: the projector then lags, as a
/// crash would leave it, and the journal alone holds the batches.
struct Gated {
    inner: SqliteStore,
    open: Arc<AtomicBool>,
}

impl LedgerStore for Gated {
    type Tx<'a> = store::sqlite::SqliteTx<'a>;

    fn begin(&mut self) -> Result<Self::Tx<'_>, StoreError> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the test shut the projection's gate".into()));
        }
        self.inner.begin()
    }
}

/// Syncs until `budget` runs out, then fails every sync.
struct FailAfter(Arc<AtomicU32>);

impl Durability for FailAfter {
    fn sync(&mut self, file: &File) -> io::Result<()> {
        let left = self.0.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.0.store(left - 1, Ordering::SeqCst);
        file.sync_data()
    }
}

struct Books {
    dir: tempfile::TempDir,
}

impl Books {
    fn new() -> Books {
        Books { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    fn open(
        &self,
        gate: &Arc<AtomicBool>,
        durability: Box<dyn Durability>,
    ) -> Result<(Ledger, Box<dyn LedgerReader>), OpenError> {
        let projection = Gated { inner: SqliteStore::open(self.db())?, open: gate.clone() };
        let reader = Arc::new(SqliteReader::open(self.db())?);
        // Small segments, so recovery reads across rotations into spare segments.
        let engine_config =
            EngineConfig { segment_bytes_max: 16 << 10, ..EngineConfig::new(self.journal()) };
        let engine = Engine::open_with(engine_config, projection, reader, durability)?;
        let reader = Box::new(engine.reader());
        Ok((Ledger::start(engine, clock(), config()), reader))
    }

    /// Opened, then the projection's gate shut: what runs next is in the journal only.
    fn open_gated(&self) -> (Ledger, Box<dyn LedgerReader>) {
        let gate = Arc::new(AtomicBool::new(true));
        let opened = self.open(&gate, Box::new(engine::log::DataSync)).expect("open");
        gate.store(false, Ordering::SeqCst);
        opened
    }

    fn open_ok(&self) -> (Ledger, Box<dyn LedgerReader>) {
        self.open(&Arc::new(AtomicBool::new(true)), Box::new(engine::log::DataSync))
            .expect("open engine")
    }

    /// The projection alone, read directly.
    fn projection(&self) -> SqliteReader {
        SqliteReader::open(self.db()).expect("projection reader")
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)))
}

fn config() -> PipelineConfig {
    PipelineConfig {
        expiry_poll_interval_ms: 60_000,
        fold_interval_ms: 60_000,
        ..Default::default()
    }
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").expect("code")
}

fn account_id(raw: u128) -> AccountId {
    AccountId::new(raw).expect("id")
}

fn transfer_id(raw: u128) -> TransferId {
    TransferId::new(raw).expect("id")
}

fn setup() -> Vec<Command> {
    setup_with(AccountLayout::Buffered { count: 2 })
}

/// The books with account `HOT` laid out as `hot`.
fn setup_with(hot: AccountLayout) -> Vec<Command> {
    let mut commands = vec![
        Command::DefineAsset(Asset::new(cny(), 2).expect("asset")),
        Command::DefineChart(ChartEntry {
            code: ChartCode(1002),
            name: BoundedText::new("bank").expect("name"),
            class: AccountClass::Asset,
        }),
        Command::DefineChart(ChartEntry {
            code: ChartCode(2241),
            name: BoundedText::new("wallets").expect("name"),
            class: AccountClass::Liability,
        }),
    ];
    for raw in 1..=ACCOUNTS {
        let (chart, rule, layout) = match raw {
            BANK => (1002, BalanceRule::Unbounded, AccountLayout::Plain),
            HOT => (2241, BalanceRule::NO_OVERDRAFT, hot),
            _ => (2241, BalanceRule::NO_OVERDRAFT, AccountLayout::Plain),
        };
        commands.push(Command::OpenAccount(NewAccount {
            id: account_id(raw),
            asset: cny(),
            chart_code: ChartCode(chart),
            rule,
            metadata: BoundedText::default(),
            layout,
        }));
    }
    commands
}

fn movement(debit: u128, credit: u128, minor: u64) -> Movement {
    Movement {
        debit_account_id: account_id(debit),
        credit_account_id: account_id(credit),
        asset: cny(),
        amount: Amount::new(minor).expect("amount"),
    }
}

fn transfer(id: u128, action: TransferAction) -> Command {
    Command::Transfers(vec![NewTransfer {
        id: transfer_id(id),
        action,
        business_code: Default::default(),
        order_ref: BoundedText::default(),
    }])
}

/// A day's work, one request at a time so that batches (and hashes) are the same on every
/// store: funding, transfers among wallets and to the buffered account, holds posted,
/// voided and left pending, a fold.
fn workload(round: u128) -> Vec<Vec<Command>> {
    let base = round * 1_000;
    let mut requests = Vec::new();
    for raw in 3..=ACCOUNTS {
        requests
            .push(vec![transfer(base + raw, TransferAction::Post(movement(BANK, raw, 10_000)))]);
    }
    for n in 0..40u128 {
        let from = 3 + n % (ACCOUNTS - 2);
        let to = if n % 3 == 0 { HOT } else { 3 + (n * 7) % (ACCOUNTS - 2) };
        let action = match n % 5 {
            0..=2 => TransferAction::Post(movement(from, to, 10 + n as u64)),
            _ => TransferAction::Pending { movement: movement(from, BANK, 5), timeout_secs: None },
        };
        requests.push(vec![transfer(base + 100 + n, action)]);
    }
    requests.push(vec![transfer(
        base + 300,
        TransferAction::PostPending { pending_id: transfer_id(base + 103), amount: None },
    )]);
    requests.push(vec![transfer(
        base + 301,
        TransferAction::VoidPending { pending_id: transfer_id(base + 104) },
    )]);
    requests.push(vec![Command::FoldBuffers { account_id: account_id(HOT) }]);
    requests
}

fn run(ledger: &Ledger, requests: Vec<Vec<Command>>) {
    let handle = ledger.handle();
    for commands in requests {
        for outcome in handle.execute_blocking(commands).expect("execute") {
            if let Outcome::Transfers(results) = outcome {
                for result in results {
                    result.expect("transfer applied");
                }
            }
        }
    }
}

/// What a reader shows of the books: every account row, every pending hold, the head.
#[derive(Debug, PartialEq)]
struct Seen {
    accounts: Vec<Account>,
    holds: Vec<Hold>,
    head: ledger::journal::JournalHead,
}

fn seen(reader: &dyn LedgerReader) -> Seen {
    let mut accounts = Vec::new();
    let mut after = None;
    loop {
        let page = reader.accounts(Page { after, limit: 1000 }).expect("accounts");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        accounts.extend(page);
    }
    let holds = reader.pending_holds(Page { after: None, limit: 1000 }).expect("holds");
    Seen { accounts, holds, head: reader.head().expect("head") }
}

fn assert_verified(reader: &dyn LedgerReader) {
    let report = ledger::verify::verify(reader, &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.divergence);
    for totals in reader.asset_totals().expect("totals") {
        assert!(totals.balanced(), "{totals:?}");
    }
}

/// Plain accounts only: which row of a multi-row account a credit lands on depends on a turn
/// each process seeds differently, so two runs of one layout differ by design.
#[test]
fn the_same_commands_give_the_same_chain_as_the_direct_store() {
    let direct_dir = tempfile::tempdir().expect("dir");
    let direct_db = direct_dir.path().join("ledger.db");
    let direct = Ledger::start(SqliteStore::open(&direct_db).expect("open"), clock(), config());
    run(&direct, vec![setup_with(AccountLayout::Plain)]);
    run(&direct, workload(1));
    direct.shutdown();
    let direct = seen(&SqliteReader::open(&direct_db).expect("reader"));

    let books = Books::new();
    let (ledger, _) = books.open_gated();
    run(&ledger, vec![setup_with(AccountLayout::Plain)]);
    run(&ledger, workload(1));
    ledger.shutdown();
    // Every batch replayed at once: the projector writes them as one group.
    let (ledger, reader) = books.open_ok();
    assert_eq!(seen(reader.as_ref()), direct, "the engine's reads");
    ledger.shutdown();
    assert_eq!(seen(&books.projection()), direct, "the projection");
    // Row for row: a group writes what its batches would one by one.
    for table in [
        "accounts",
        "transfers",
        "entries",
        "holds",
        "journal_batches",
        "journal_head",
        "assets",
        "chart",
        "account_status_log",
    ] {
        assert_eq!(rows(&books.db(), table), rows(&direct_db, table), "table {table}");
    }
}

/// Every row of `table`, in the order of its columns.
fn rows(db: &Path, table: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let connection = rusqlite::Connection::open(db).expect("open");
    let mut statement =
        connection.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2")).expect("prepare");
    let n_columns = statement.column_count();
    let found = statement
        .query_map([], |row| (0..n_columns).map(|at| row.get(at)).collect())
        .expect("query")
        .collect::<Result<Vec<Vec<rusqlite::types::Value>>, _>>()
        .expect("rows");
    found
}

#[test]
fn replay_from_the_journal_equals_the_live_state_and_the_projection_catches_up() {
    let books = Books::new();
    let (ledger, _) = books.open_ok();
    run(&ledger, vec![setup()]);
    run(&ledger, workload(1));
    ledger.shutdown();
    let projected_before = books.projection().head().expect("head");

    // The projection stops taking batches: only the journal has round 2.
    let (ledger, reader) = books.open_gated();
    run(&ledger, workload(2));
    let live = Seen {
        head: reader.head().expect("head"),
        ..seen_in_memory(reader.as_ref(), &seen(&books.projection()).accounts)
    };
    ledger.shutdown();
    assert_eq!(books.projection().head().expect("head"), projected_before, "nothing projected");
    assert!(live.head.batch_seq > projected_before.batch_seq);

    // Replayed at the next start, and written to the projection behind it.
    let (ledger, reader) = books.open_ok();
    let replayed = Seen {
        head: reader.head().expect("head"),
        ..seen_in_memory(reader.as_ref(), &live.accounts)
    };
    assert_eq!(replayed, live, "replay equals the live state");
    assert_eq!(seen(reader.as_ref()), seen(&books.projection()), "projection caught up");
    assert_verified(&books.projection());
    run(&ledger, workload(3));
    ledger.shutdown();
    assert_verified(&books.projection());
}

/// The accounts of `like` and the holds of round 2 as the engine holds them in memory.
fn seen_in_memory(reader: &dyn LedgerReader, like: &[Account]) -> Seen {
    let mut accounts: Vec<Account> =
        like.iter().filter_map(|account| reader.account(account.id).expect("account")).collect();
    accounts.sort_by_key(|account| account.id);
    let mut holds: Vec<Hold> = (2_100..2_140u128)
        .filter_map(|raw| reader.hold(transfer_id(raw)).expect("hold"))
        .filter(|hold| hold.state == ledger::model::HoldState::Pending)
        .collect();
    holds.sort_by_key(|hold| hold.pending_id);
    Seen { accounts, holds, head: Default::default() }
}

fn last_segment(journal: &Path) -> PathBuf {
    engine::log::segments(journal).expect("segments").pop().expect("a segment").1
}

#[test]
fn a_torn_tail_is_cut_and_every_acknowledged_batch_survives() {
    let books = Books::new();
    let (ledger, reader) = books.open_gated();
    run(&ledger, vec![setup()]);
    run(&ledger, workload(1));
    let head = reader.head().expect("head");
    ledger.shutdown();
    // A crash in the middle of the next append.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(&books.journal()))
        .expect("open");
    file.write_all(b"QBJ1\x10\x00\x00\x00\x01half a fr").expect("write");
    drop(file);

    let (ledger, reader) = books.open_ok();
    assert_eq!(reader.head().expect("head"), head);
    run(&ledger, workload(2));
    ledger.shutdown();
    assert_verified(&books.projection());
}

#[test]
fn corruption_before_the_tail_stops_the_start_and_names_the_place() {
    let books = Books::new();
    let (ledger, _) = books.open_gated();
    run(&ledger, vec![setup()]);
    run(&ledger, workload(1));
    ledger.shutdown();
    // The first segment, in the middle of its frames (a segment may end in unwritten zeros,
    // where a flipped byte would be a torn tail: nothing acknowledged is there).
    let segment = engine::log::segments(&books.journal()).expect("segments")[0].1.clone();
    let mut bytes = std::fs::read(&segment).expect("read");
    let written = bytes.iter().rposition(|byte| *byte != 0).map_or(0, |at| at + 1);
    let middle = written / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("write");

    match books.open(&Arc::new(AtomicBool::new(true)), Box::new(engine::log::DataSync)) {
        Err(OpenError::Journal(engine::JournalError::Log(engine::log::LogError::Corrupt {
            segment: named,
            offset,
            ..
        }))) => {
            assert_eq!(named, segment);
            assert!(offset <= middle as u64, "{offset} after the flipped byte {middle}");
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("expected corruption, the engine started"),
    }
}

#[test]
fn a_failed_sync_refuses_every_later_write_and_recovery_keeps_the_books_exact() {
    let books = Books::new();
    let budget = Arc::new(AtomicU32::new(u32::MAX));
    let gate = Arc::new(AtomicBool::new(true));
    let (ledger, reader) = books.open(&gate, Box::new(FailAfter(budget.clone()))).expect("open");
    run(&ledger, vec![setup()]);
    run(&ledger, workload(1));
    let acknowledged = reader.head().expect("head");
    budget.store(0, Ordering::SeqCst);
    let handle = ledger.handle();
    let fund = |id| vec![transfer(id, TransferAction::Post(movement(BANK, 3, 1)))];
    let failed = handle.execute_blocking(fund(9_001));
    assert!(failed.is_err(), "the batch whose sync failed is not acknowledged");
    budget.store(u32::MAX, Ordering::SeqCst);
    let refused = handle.execute_blocking(fund(9_002));
    assert!(refused.is_err(), "no write after a failed sync, even once syncs work again");
    assert!(reader.head().is_err(), "the head fails, so the node is not ready");
    ledger.shutdown();

    let (ledger, reader) = books.open_ok();
    let head = reader.head().expect("head");
    // The failed batch may or may not be on disk: either way the books are whole.
    assert!(head.batch_seq.0 - acknowledged.batch_seq.0 <= 1, "{head:?} after {acknowledged:?}");
    run(&ledger, vec![fund(9_003)]);
    ledger.shutdown();
    assert_verified(&books.projection());
}

/// A read as of a point the books already hold is answered at once, however far the
/// projection lags behind the head (a day close reads every account as of the day's end).
#[test]
fn a_read_as_of_a_point_the_books_hold_does_not_wait_for_the_head() {
    let books = Books::new();
    let (ledger, reader) = books.open_ok();
    run(&ledger, vec![setup()]);
    run(&ledger, workload(1));
    ledger.shutdown();
    drop(reader);
    let held = books.projection().head().expect("head");
    let account = account_id(3);
    let then = books.projection().entry_as_of(account, held.last_seq).expect("read");
    assert!(then.is_some(), "account 3 moved in round 1");

    // The projection stops; round 2 is in the journal only.
    let (ledger, reader) = books.open_gated();
    run(&ledger, workload(2));
    assert!(reader.head().expect("head").last_seq > held.last_seq);
    let started = std::time::Instant::now();
    assert_eq!(reader.entry_as_of(account, held.last_seq).expect("as of"), then);
    let (_, entries) = reader.records(Seq(1), held.last_seq).expect("records");
    assert!(!entries.is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "waited {:?} for a head the read does not need",
        started.elapsed()
    );
    ledger.shutdown();
}
