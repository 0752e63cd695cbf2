//! `qianbao ledger bench`: durable transfers per second and latency percentiles for the
//! workloads that matter to a wallet (uniform, one hot credit account, one hot debit
//! account), in the two ways callers submit (many concurrent single-transfer submitters, as
//! an API server does; and bulk requests), on SQLite and PostgreSQL, side by side with a
//! naive one-transaction-per-transfer baseline on the same PostgreSQL.
#![allow(clippy::float_arithmetic)] // throughput and percentiles, never money

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use ledger::apply::{Command, Outcome};
use ledger::model::{
    AccountClass, AccountLayout, BalanceRule, ChartCode, ChartEntry, Movement, NewAccount,
};
use ledger::{
    AccountId, BoundedText, BusinessCode, Ledger, LedgerHandle, NewTransfer, PipelineConfig,
    SystemClock, TransferAction, TransferId,
};
use money::{Amount, Asset, AssetCode};
use store::PgTarget;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Stores to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<StoreKind>,
    /// PostgreSQL server for the postgres store and the baseline (a fresh schema is used and dropped).
    #[arg(
        long,
        env = "QIANBAO_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// Accounts in the uniform workload.
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    #[arg(long, value_delimiter = ',', default_value = "uniform,hot-credit,hot-debit")]
    workloads: Vec<Workload>,
    /// Submission modes: a number of concurrent single-transfer submitters, or `bulk`.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,bulk")]
    modes: Vec<Mode>,
    /// Measured seconds per cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Transfers per bulk request.
    #[arg(long, default_value_t = 8_000)]
    bulk_size: usize,
    /// Posting pipelines ("service nodes") sharing the store, each with its own connection;
    /// submitters are spread over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Layouts of the hot account to measure the hot workloads with, side by side: `plain`,
    /// `sub:N` (sub-accounts, 子账户) and `buffered:N` (buffered posting, 缓冲记账).
    #[arg(long, value_delimiter = ',', default_value = "plain")]
    hot_layouts: Vec<HotLayout>,
    /// The journal engine's bound on records not yet in the books (`journal` store): the
    /// default bounds memory; a larger one measures the journal's own path over a burst.
    #[arg(long, default_value_t = engine::EngineLimits::default().projection_lag_records_max)]
    journal_lag_max: u64,
    /// Skip the naive baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Also write the table as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write the table as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum StoreKind {
    Sqlite,
    /// SQLite books behind the journal-first engine (`engine`).
    Journal,
    Postgres,
    /// PostgreSQL books behind the journal-first engine, its journal a table.
    PgJournal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Workload {
    Uniform,
    HotCredit,
    HotDebit,
}

/// A hot account's layout, as `plain`, `sub:N` or `buffered:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HotLayout(AccountLayout);

impl FromStr for HotLayout {
    type Err = String;
    fn from_str(raw: &str) -> Result<HotLayout, String> {
        let layout = match raw.split_once(':') {
            None if raw == "plain" => AccountLayout::Plain,
            Some(("sub", n)) => AccountLayout::SubAccounts { count: n.parse().map_err(|_| raw)? },
            Some(("buffered", n)) => AccountLayout::Buffered { count: n.parse().map_err(|_| raw)? },
            _ => return Err(format!("layout must be plain, sub:N or buffered:N, not {raw:?}")),
        };
        if !layout.is_valid() {
            return Err(format!("{raw:?}: sub-accounts take 2-64 rows, buffers 1-64"));
        }
        Ok(HotLayout(layout))
    }
}

impl fmt::Display for HotLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AccountLayout::SubAccounts { count } => write!(f, "sub:{count}"),
            AccountLayout::Buffered { count } => write!(f, "buffered:{count}"),
            _ => f.write_str("plain"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
enum Mode {
    Submitters(usize),
    Bulk,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(raw: &str) -> Result<Mode, String> {
        if raw == "bulk" {
            return Ok(Mode::Bulk);
        }
        match raw.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(Mode::Submitters(n)),
            _ => {
                Err(format!("mode must be `bulk` or a submitter count from 1 to 1024, not {raw:?}"))
            }
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Submitters(n) => write!(f, "{n} x 1"),
            Mode::Bulk => write!(f, "bulk"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Uniform => "uniform",
            Workload::HotCredit => "hot-credit",
            Workload::HotDebit => "hot-debit",
        })
    }
}

/// One line of the result table.
#[derive(Clone, Debug, serde::Serialize)]
struct Row {
    system: String,
    workload: String,
    mode: String,
    transfers: u64,
    rejected: u64,
    seconds: f64,
    /// Acknowledged transfers per second of the cell.
    transfers_per_second: f64,
    /// The journal engine: how long its books took to catch up after the cell (0 elsewhere).
    catch_up_seconds: f64,
    /// Transfers over the cell and its catch-up: what the store sustains, with nothing left
    /// owed to the books. Ratios are of this figure.
    sustained_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_p999: f64,
    mean_batch: f64,
    baseline_per_second: Option<f64>,
    ratio_to_baseline: Option<f64>,
}

/// Bulk submitters kept in flight, so the pipeline always has the next request queued.
const BULK_SUBMITTERS: usize = 2;
/// Opening balance of every benchmark account: never the limit on a run.
const FUNDING_MINOR: u64 = 1_000_000_000_000;
const CHART_WALLETS: u32 = 2241;
const CHART_BANK: u32 = 1002;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut rows = Vec::new();
    let run_id = format!("{}_{}", std::process::id(), unix_secs());
    // The hot workloads run once per hot-account layout; uniform once.
    let layouts_of = |workload: Workload| -> Vec<(usize, HotLayout)> {
        match workload {
            Workload::Uniform => vec![(0, HotLayout(AccountLayout::Plain))],
            _ => args.hot_layouts.iter().copied().enumerate().collect(),
        }
    };
    let cells: usize =
        args.workloads.iter().map(|w| layouts_of(*w).len()).sum::<usize>() * args.modes.len();
    let groups: Vec<(Workload, usize, HotLayout)> = args
        .workloads
        .iter()
        .flat_map(|w| layouts_of(*w).into_iter().map(move |(index, layout)| (*w, index, layout)))
        .collect();
    for kind in &args.stores {
        let name = match args.nodes {
            0 | 1 => format!("qianbao/{kind:?}").to_lowercase(),
            n => format!("qianbao/{kind:?} x{n}").to_lowercase(),
        };
        let mut cell = 0;
        // Every workload (and layout) starts from fresh books of the same size: a store that
        // had grown by the earlier cells' transfers would make the later workloads look slower.
        for (group, (workload, layout_index, layout)) in groups.iter().copied().enumerate() {
            let books = Books::open(*kind, &args, &format!("{run_id}_{group}"))?;
            let handles: Vec<LedgerHandle> = books.ledgers.iter().map(Ledger::handle).collect();
            let batches_committed = || -> u64 {
                handles.iter().map(|h| h.metrics().batches_committed.load(Ordering::Relaxed)).sum()
            };
            let setup_started = Instant::now();
            setup_accounts(&handles[0], args.accounts, &args.hot_layouts)?;
            eprintln!(
                "{name}: {} accounts opened and funded in {:.1}s",
                args.accounts,
                setup_started.elapsed().as_secs_f64()
            );
            books.catch_up();
            let ids = Arc::new(AtomicU64::new(10_000_000_000));
            let hot = hot_account(args.accounts, layout_index);
            for mode in &args.modes {
                cell += 1;
                let batches_before = batches_committed();
                let target = Target { workload, hot };
                let row = runtime.block_on(measure(&handles, &args, target, *mode, ids.clone()))?;
                let catch_up = books.catch_up().as_secs_f64();
                let row = Row {
                    catch_up_seconds: catch_up,
                    sustained_per_second: row.transfers as f64 / (row.seconds + catch_up),
                    ..row
                };
                let row = match layout.0 {
                    AccountLayout::Plain => row,
                    _ => Row { workload: format!("{workload} {layout}"), ..row },
                };
                let batches = batches_committed() - batches_before;
                let row = Row {
                    system: name.clone(),
                    mean_batch: if batches == 0 {
                        0.0
                    } else {
                        row.transfers as f64 / batches as f64
                    },
                    ..row
                };
                eprintln!(
                    "[{cell}/{cells}] {name} {} {mode}: {:.0} transfers/s ({:.0} sustained), \
                     p99 {:.2} ms",
                    row.workload,
                    row.transfers_per_second,
                    row.sustained_per_second,
                    row.latency_ms_p99
                );
                rows.push(row);
            }
            drop(handles);
            books.close();
        }
    }
    if !args.no_baseline {
        let target = PgTarget::new(args.database_url.clone(), format!("qianbao_naive_{run_id}"));
        rows.extend(run_baseline(&args, &target)?);
        drop_schema(&target);
    }
    attach_ratios(&mut rows);
    print_table(&rows);
    if let Some(path) = &args.csv {
        std::fs::write(path, to_csv(&rows))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The ledgers ("nodes") of one run on fresh books, and what to remove afterwards.
struct Books {
    ledgers: Vec<Ledger>,
    schema: Option<PgTarget>,
    scratch: PathBuf,
    /// The journal engine's figures (its projection's lag).
    engine: Option<engine::EngineStats>,
}

impl Books {
    fn open(kind: StoreKind, args: &BenchArgs, run_id: &str) -> anyhow::Result<Books> {
        let scratch = std::env::temp_dir().join(format!("qianbao-bench-{run_id}"));
        std::fs::create_dir_all(&scratch)?;
        let mut books = Books { ledgers: Vec::new(), schema: None, scratch, engine: None };
        for _ in 0..args.nodes.max(1) {
            let ledger = match kind {
                StoreKind::Sqlite => {
                    let store = store::SqliteStore::open(books.scratch.join("bench.db"))
                        .context("opening SQLite")?;
                    Ledger::start(store, Arc::new(SystemClock), PipelineConfig::default())
                }
                StoreKind::Journal => {
                    anyhow::ensure!(args.nodes <= 1, "the journal engine has one writer per book");
                    let db = books.scratch.join("bench.db");
                    let projection = store::SqliteStore::open(&db).context("opening SQLite")?;
                    let reader =
                        Arc::new(store::SqliteReader::open(&db).context("opening SQLite")?);
                    let mut config = engine::EngineConfig::new(books.scratch.join("journal"));
                    config.limits.projection_lag_records_max = args.journal_lag_max;
                    let engine = engine::Engine::open(config, projection, reader)?;
                    books.engine = Some(engine.stats());
                    Ledger::start(engine, Arc::new(SystemClock), PipelineConfig::default())
                }
                StoreKind::Postgres => {
                    let target =
                        PgTarget::new(args.database_url.clone(), format!("qianbao_bench_{run_id}"));
                    let store = store::PgStore::connect(target.clone())
                        .context("connecting to PostgreSQL")?;
                    books.schema = Some(target);
                    Ledger::start(store, Arc::new(SystemClock), PipelineConfig::default())
                }
                StoreKind::PgJournal => {
                    anyhow::ensure!(args.nodes <= 1, "the journal engine has one writer per book");
                    let target =
                        PgTarget::new(args.database_url.clone(), format!("qianbao_bench_{run_id}"));
                    let journal = store::PgJournal::open(&target, "bench", 10_000, Duration::ZERO)
                        .map_err(engine::OpenError::from)?;
                    let projection = store::PgStore::connect_projection(target.clone())
                        .context("connecting to PostgreSQL")?;
                    let reader = Arc::new(
                        store::PgReader::connect(target.clone())
                            .context("connecting to PostgreSQL")?,
                    );
                    let limits = engine::EngineLimits {
                        projection_lag_records_max: args.journal_lag_max,
                        ..engine::EngineLimits::default()
                    };
                    let engine =
                        engine::Engine::open_on(Box::new(journal), limits, projection, reader)?;
                    books.engine = Some(engine.stats());
                    books.schema = Some(target);
                    Ledger::start(engine, Arc::new(SystemClock), PipelineConfig::default())
                }
            };
            books.ledgers.push(ledger);
        }
        Ok(books)
    }

    /// Waits until the journal engine's books hold every acknowledged batch (at once on the
    /// direct stores) and returns how long that took: a cell that ends owing the books work
    /// neither counts as sustained throughput nor passes its debt to the next cell.
    fn catch_up(&self) -> Duration {
        let started = Instant::now();
        if let Some(stats) = &self.engine {
            while stats.lag_batches() > 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        started.elapsed()
    }

    fn close(self) {
        for ledger in self.ledgers {
            ledger.shutdown();
        }
        if let Some(target) = self.schema {
            drop_schema(&target);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn drop_schema(target: &PgTarget) {
    if let Err(error) = store::postgres::drop_schema(target) {
        eprintln!("could not drop benchmark schema {}: {error}", target.schema);
    }
}

fn account_id(raw: u64) -> AccountId {
    AccountId::new(u128::from(raw)).unwrap_or_else(|_| unreachable!("benchmark ids start at 1"))
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap_or_else(|_| unreachable!("valid code"))
}

/// The hot account for the `index`th of `--hot-layouts`: the first is `n + 1`, the others
/// follow the bank reserve.
fn hot_account(n_accounts: u64, index: usize) -> u64 {
    match index {
        0 => n_accounts + 1,
        i => n_accounts + 2 + i as u64,
    }
}

/// Wallets `1..=n`, the hot merchants (`n + 1` with the first layout, `n + 3…` with the
/// others), the bank reserve `n + 2`; every wallet and merchant funded from the bank (a
/// buffered merchant's funding folded in before the run).
pub(crate) fn setup_accounts(
    handle: &LedgerHandle,
    n_accounts: u64,
    layouts: &[HotLayout],
) -> anyhow::Result<()> {
    let bank = n_accounts + 2;
    let chart = |code, name: &str, class| {
        Command::DefineChart(ChartEntry {
            code: ChartCode(code),
            name: BoundedText::new(name).unwrap_or_default(),
            class,
        })
    };
    let asset = Asset::new(cny(), 2).map_err(|e| anyhow::anyhow!("{e}"))?;
    let open = |id, chart, rule, layout| {
        Command::OpenAccount(NewAccount {
            id: account_id(id),
            asset: cny(),
            chart_code: ChartCode(chart),
            rule,
            metadata: BoundedText::default(),
            layout,
        })
    };
    let plain = AccountLayout::Plain;
    let mut hot: Vec<(u64, AccountLayout)> = layouts
        .iter()
        .enumerate()
        .map(|(index, layout)| (hot_account(n_accounts, index), layout.0))
        .collect();
    if hot.is_empty() {
        hot.push((hot_account(n_accounts, 0), plain));
    }
    let funded: Vec<u64> = (1..=n_accounts).chain(hot.iter().map(|(id, _)| *id)).collect();
    let mut commands = vec![
        Command::DefineAsset(asset),
        chart(CHART_BANK, "bank deposits", AccountClass::Asset),
        chart(CHART_WALLETS, "customer wallets", AccountClass::Liability),
        open(bank, CHART_BANK, BalanceRule::Unbounded, plain),
    ];
    let chunk = 8_000;
    let opening = (1..=n_accounts).map(|id| (id, plain)).chain(hot.iter().copied());
    for (id, layout) in opening {
        commands.push(open(id, CHART_WALLETS, BalanceRule::NO_OVERDRAFT, layout));
        if commands.len() >= chunk {
            submit_setup(handle, std::mem::take(&mut commands))?;
        }
    }
    submit_setup(handle, std::mem::take(&mut commands))?;
    for id in funded {
        let transfer = NewTransfer {
            id: TransferId::new(u128::from(id)).unwrap_or_else(|_| unreachable!()),
            action: TransferAction::Post(Movement {
                debit_account_id: account_id(bank),
                credit_account_id: account_id(id),
                asset: cny(),
                amount: Amount::new(FUNDING_MINOR).unwrap_or(Amount::MAX),
            }),
            business_code: BusinessCode(1),
            order_ref: BoundedText::default(),
        };
        commands.push(Command::Transfers(vec![transfer]));
        if commands.len() >= chunk {
            submit_setup(handle, std::mem::take(&mut commands))?;
        }
    }
    submit_setup(handle, commands)?;
    // A buffered merchant's funding is spendable once folded (hot-debit draws on it).
    let folds = hot.iter().map(|(id, _)| Command::FoldBuffers { account_id: account_id(*id) });
    submit_setup(handle, folds.collect())
}

fn submit_setup(handle: &LedgerHandle, commands: Vec<Command>) -> anyhow::Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    for outcome in handle.execute_blocking(commands)? {
        let ok = match &outcome {
            Outcome::Asset(result) => result.is_ok(),
            Outcome::Chart(result) => result.is_ok(),
            Outcome::Account(result) => result.is_ok(),
            Outcome::Status(result) => result.is_ok(),
            Outcome::Fold(result) => result.is_ok(),
            Outcome::Transfers(results) => results.iter().all(Result::is_ok),
        };
        anyhow::ensure!(ok, "benchmark setup was rejected: {outcome:?}");
    }
    Ok(())
}

/// A small, fast PRNG (xorshift64*) for picking accounts. Written here because the bench
/// needs only uniform picks, and a dependency for that would be heavier than these lines.
pub(crate) struct Picker(u64);

impl Picker {
    pub(crate) fn new(seed: u64) -> Picker {
        Picker(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Two distinct accounts in `1..=n` (or the hot one on one side) for `target`.
    fn pair(&mut self, target: Target, n_accounts: u64) -> (u64, u64) {
        let Target { workload, hot } = target;
        let a = self.next() % n_accounts + 1;
        match workload {
            Workload::HotCredit => (a, hot),
            Workload::HotDebit => (hot, a),
            Workload::Uniform => {
                let mut b = self.next() % n_accounts + 1;
                if b == a {
                    b = a % n_accounts + 1;
                }
                (a, b)
            }
        }
    }
}

pub(crate) fn bench_transfer(id: u64, debit: u64, credit: u64, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id: TransferId::new(u128::from(id)).unwrap_or_else(|_| unreachable!("ids start high")),
        action: TransferAction::Post(Movement {
            debit_account_id: account_id(debit),
            credit_account_id: account_id(credit),
            asset: cny(),
            amount: Amount::new(amount_minor).unwrap_or(Amount::ZERO),
        }),
        business_code: BusinessCode(9),
        order_ref: BoundedText::default(),
    }
}

/// A workload and the hot account it hits.
#[derive(Clone, Copy, Debug)]
struct Target {
    workload: Workload,
    hot: u64,
}

struct Tally {
    latency_us: Histogram<u64>,
    transfers: u64,
    rejected: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|_| unreachable!("valid bounds")),
            transfers: 0,
            rejected: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        self.transfers += other.transfers;
        self.rejected += other.rejected;
    }

    fn row(&self, system: &str, workload: Workload, mode: Mode, elapsed: Duration) -> Row {
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Row {
            system: system.to_string(),
            workload: workload.to_string(),
            mode: mode.to_string(),
            transfers: self.transfers,
            rejected: self.rejected,
            seconds: elapsed.as_secs_f64(),
            transfers_per_second: self.transfers as f64 / elapsed.as_secs_f64(),
            catch_up_seconds: 0.0,
            sustained_per_second: self.transfers as f64 / elapsed.as_secs_f64(),
            latency_ms_p50: ms(0.50),
            latency_ms_p99: ms(0.99),
            latency_ms_p999: ms(0.999),
            mean_batch: 0.0,
            baseline_per_second: None,
            ratio_to_baseline: None,
        }
    }
}

async fn measure(
    handles: &[LedgerHandle],
    args: &BenchArgs,
    target: Target,
    mode: Mode,
    ids: Arc<AtomicU64>,
) -> anyhow::Result<Row> {
    let (n_tasks, per_request) = match mode {
        Mode::Submitters(n) => (n, 1),
        Mode::Bulk => (BULK_SUBMITTERS, args.bulk_size),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::with_capacity(n_tasks);
    for task in 0..n_tasks {
        let handle = handles[task % handles.len()].clone();
        let ids = ids.clone();
        let n_accounts = args.accounts;
        tasks.push(tokio::spawn(async move {
            let mut picker = Picker::new(task as u64 + 1 + ids.load(Ordering::Relaxed));
            let mut tally = Tally::new();
            while Instant::now() < deadline {
                let first = ids.fetch_add(per_request as u64, Ordering::Relaxed);
                let commands: Vec<Command> = (0..per_request as u64)
                    .map(|offset| {
                        let (debit, credit) = picker.pair(target, n_accounts);
                        let amount = picker.next() % 100 + 1;
                        Command::Transfers(vec![bench_transfer(
                            first + offset,
                            debit,
                            credit,
                            amount,
                        )])
                    })
                    .collect();
                let sent = Instant::now();
                let outcomes = handle.execute(commands).await?;
                let _ = tally.latency_us.record(sent.elapsed().as_micros().max(1) as u64);
                for outcome in outcomes {
                    match outcome {
                        Outcome::Transfers(results) if results.iter().all(Result::is_ok) => {
                            tally.transfers += 1
                        }
                        _ => tally.rejected += 1,
                    }
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await??);
    }
    Ok(total.row("", target.workload, mode, started.elapsed()))
}

fn run_baseline(args: &BenchArgs, target: &PgTarget) -> anyhow::Result<Vec<Row>> {
    eprintln!("naive baseline: creating {} accounts…", args.accounts + 1);
    store::naive::create(target, args.accounts + 1, FUNDING_MINOR as i64)?;
    let ids = Arc::new(AtomicU64::new(1));
    let mut rows = Vec::new();
    for workload in &args.workloads {
        for mode in &args.modes {
            let Mode::Submitters(n_clients) = *mode else { continue };
            let started = Instant::now();
            let deadline = started + Duration::from_secs_f64(args.seconds);
            let threads: Vec<_> = (0..n_clients)
                .map(|client_index| {
                    let target = target.clone();
                    let ids = ids.clone();
                    let (workload, n_accounts) = (*workload, args.accounts);
                    std::thread::spawn(move || -> anyhow::Result<Tally> {
                        let mut client = store::naive::NaiveClient::connect(&target)?;
                        let mut picker = Picker::new(client_index as u64 + 7);
                        let mut tally = Tally::new();
                        while Instant::now() < deadline {
                            let id = ids.fetch_add(1, Ordering::Relaxed) as i64;
                            let target = Target { workload, hot: hot_account(n_accounts, 0) };
                            let (debit, credit) = picker.pair(target, n_accounts);
                            let amount = (picker.next() % 100 + 1) as i64;
                            let sent = Instant::now();
                            // A deadlock between two transfers crossing the same accounts is
                            // part of what the naive design costs: count it as a rejection.
                            match client.transfer(id, debit as i64, credit as i64, amount) {
                                Ok(true) => tally.transfers += 1,
                                Ok(false) | Err(_) => tally.rejected += 1,
                            }
                            let _ =
                                tally.latency_us.record(sent.elapsed().as_micros().max(1) as u64);
                        }
                        Ok(tally)
                    })
                })
                .collect();
            let mut total = Tally::new();
            for thread in threads {
                total.merge(
                    thread.join().map_err(|_| anyhow::anyhow!("baseline thread panicked"))??,
                );
            }
            let row = total.row("naive/postgres", *workload, *mode, started.elapsed());
            eprintln!(
                "naive/postgres {workload} {mode}: {:.0} transfers/s, p99 {:.2} ms",
                row.transfers_per_second, row.latency_ms_p99
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Each Qianbao row's ratio to the baseline with the same workload and mode; bulk rows are
/// compared with the baseline's best single-transfer figure for the workload.
fn attach_ratios(rows: &mut [Row]) {
    let baseline: Vec<Row> =
        rows.iter().filter(|row| row.system.starts_with("naive")).cloned().collect();
    for row in rows.iter_mut().filter(|row| !row.system.starts_with("naive")) {
        // A hot workload run with a layout ("hot-credit sub:8") compares with the plain one.
        let workload = row.workload.split(' ').next().unwrap_or_default();
        let same_workload = baseline.iter().filter(|b| b.workload == workload);
        let base = if row.mode == Mode::Bulk.to_string() {
            same_workload
                .map(|b| b.sustained_per_second)
                .fold(None, |best: Option<f64>, tps| Some(best.map_or(tps, |b| b.max(tps))))
        } else {
            same_workload.filter(|b| b.mode == row.mode).map(|b| b.sustained_per_second).next()
        };
        if let Some(base) = base.filter(|base| *base > 0.0) {
            row.baseline_per_second = Some(base);
            row.ratio_to_baseline = Some(row.sustained_per_second / base);
        }
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<17} {:<21} {:<7} {:>10} {:>12} {:>12} {:>8} {:>8} {:>8} {:>8} {:>11} {:>7}",
        "system",
        "workload",
        "mode",
        "transfers",
        "transfers/s",
        "sustained/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "batch",
        "baseline/s",
        "ratio"
    );
    for row in rows {
        println!(
            "{:<17} {:<21} {:<7} {:>10} {:>12.0} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>11} {:>7}",
            row.system,
            row.workload,
            row.mode,
            row.transfers,
            row.transfers_per_second,
            row.sustained_per_second,
            row.latency_ms_p50,
            row.latency_ms_p99,
            row.latency_ms_p999,
            row.mean_batch,
            row.baseline_per_second.map_or("-".to_string(), |b| format!("{b:.0}")),
            row.ratio_to_baseline.map_or("-".to_string(), |r| format!("{r:.1}x")),
        );
    }
}

fn to_csv(rows: &[Row]) -> String {
    let mut csv = String::from(
        "system,workload,mode,transfers,rejected,seconds,transfers_per_second,latency_ms_p50,latency_ms_p99,latency_ms_p999,mean_batch,baseline_per_second,ratio_to_baseline,catch_up_seconds,sustained_per_second\n",
    );
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{:.3},{:.1},{:.3},{:.3},{:.3},{:.1},{},{},{:.3},{:.1}\n",
            r.system,
            r.workload,
            r.mode,
            r.transfers,
            r.rejected,
            r.seconds,
            r.transfers_per_second,
            r.latency_ms_p50,
            r.latency_ms_p99,
            r.latency_ms_p999,
            r.mean_batch,
            r.baseline_per_second.map_or(String::new(), |b| format!("{b:.1}")),
            r.ratio_to_baseline.map_or(String::new(), |b| format!("{b:.2}")),
            r.catch_up_seconds,
            r.sustained_per_second,
        ));
    }
    csv
}
