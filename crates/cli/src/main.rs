//! `qianbao`: the one binary of the platform.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod api_client;
mod bench;
mod fill;
mod keys;
mod load;
mod loadtest;
mod ops;
mod payments;
mod recon;
mod recon_bench;
mod serve;

/// See the dependency's comment in Cargo.toml: measured, not assumed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "qianbao", version, about = "Qianbao: a wallet and payment platform")]
struct Cli {
    /// Log as JSON lines (one object per event, with its span's fields).
    #[arg(long, global = true, env = "QIANBAO_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service.
    // Boxed: the service's flags outweigh every other command's.
    Serve(Box<serve::ServeArgs>),
    /// API keys, offline, on the host (recovery when no admin key is left).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Reconciliation (对账), over the API of a running service.
    Recon(recon::ReconArgs),
    /// Operators' actions (escalated inquiries), over the API of a running service.
    Ops(ops::OpsArgs),
    /// Loads a running service with a scenario's product mix in steps of fixed arrival
    /// rates (open loop), and writes a JSON and an HTML report with the knee.
    Loadtest(Box<loadtest::LoadtestArgs>),
    /// The accounting core.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Measures durable transfers per second and latency against a naive baseline.
    Bench(bench::BenchArgs),
    /// Recomputes the hash chain and every balance from the journal.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grows a book to a size: accounts opened and funded, then transfers in bulk (scale
    /// tests: restart time and memory on big books).
    Fill(fill::FillArgs),
    /// Posts a steady stream of transfers and prints each acknowledged id (crash tests).
    #[command(hide = true)]
    Load(load::LoadArgs),
}

/// Where the books are: the embedded SQLite file in a data directory, or PostgreSQL.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded store (ledger.db inside it).
    #[arg(long, env = "QIANBAO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL; when set, PostgreSQL is used instead of the embedded store.
    #[arg(long, env = "QIANBAO_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL schema holding the books.
    #[arg(long, env = "QIANBAO_DATABASE_SCHEMA", default_value = "qianbao")]
    pub database_schema: String,
    /// The ledger engine: `journal` appends each batch to a journal and writes the books
    /// behind it; `direct` commits each batch to the books. Either opens the other's data.
    /// The journal is a file (`journal/` in the data directory) on the embedded store, a
    /// table on PostgreSQL, where one node holds the book by a lease and others wait to take
    /// over. Default: `journal` on the embedded store, `direct` on PostgreSQL (where several
    /// direct nodes may write one book).
    #[arg(long, env = "QIANBAO_LEDGER_ENGINE", value_enum)]
    pub ledger_engine: Option<LedgerEngine>,
    /// On PostgreSQL with `--ledger-engine journal`: how long the journal's lease lasts
    /// unless renewed. A node that takes over waits this long after its holder dies.
    #[arg(long, env = "QIANBAO_LEDGER_LEASE_MS", default_value_t = 10_000)]
    pub ledger_lease_ms: u64,
}

/// How the embedded store's ledger commits a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerEngine {
    /// The journal-first engine (`engine`): books in memory, one journal append per batch.
    Journal,
    /// Each batch committed to `ledger.db`.
    Direct,
}

/// Whether opening the engine failed because another process holds its journal.
fn is_locked(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<engine::OpenError>().is_some_and(|error| {
            matches!(error, engine::OpenError::Journal(engine::JournalError::Locked(_)))
        })
    })
}

/// Who holds a journal's lease when no node name is given: this host and process.
fn default_holder() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

/// This machine's host name, or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A running ledger and what reads it.
pub struct Books {
    pub ledger: ledger::Ledger,
    pub reader: std::sync::Arc<dyn ledger::port::LedgerReader>,
    /// The journal-first engine's figures, when it runs.
    pub engine: Option<engine::EngineStats>,
}

impl Books {
    /// Renders the engine's figures into `/metrics`.
    pub fn storage_metrics(&self) -> Option<server::StorageMetrics> {
        let stats = self.engine.clone()?;
        Some(std::sync::Arc::new(move |out: &mut String| stats.render_metrics(out)))
    }
}

/// By hand: the database URL may carry a password, printed masked.
impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(store::postgres::masked_url))
            .field("database_schema", &self.database_schema)
            .field("ledger_engine", &self.ledger_engine)
            .field("ledger_lease_ms", &self.ledger_lease_ms)
            .finish()
    }
}

impl StoreArgs {
    /// Where the test book is (test mode, `server::books`): the directory `test` inside the
    /// data directory, or the schema `<schema>_test` beside the live one.
    pub fn test_book(&self) -> StoreArgs {
        StoreArgs {
            data_dir: self.data_dir.join("test"),
            database_url: self.database_url.clone(),
            database_schema: format!("{}_test", self.database_schema),
            ledger_engine: self.ledger_engine,
            ledger_lease_ms: self.ledger_lease_ms,
        }
    }

    /// The ledger engine this store runs: as set, or the store's default.
    pub fn engine(&self) -> LedgerEngine {
        self.ledger_engine.unwrap_or(match self.database_url {
            Some(_) => LedgerEngine::Direct,
            None => LedgerEngine::Journal,
        })
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("ledger.db")
    }

    /// The journal-first engine's journal: `journal/` in the data directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// Writes into the books every journal batch they lack (after a crash of a node on the
    /// journal-first engine), so that they can be read or run directly; then makes them
    /// durable and removes what the journal held. Without that, every later direct start
    /// would open the engine (and load every account) again, and on PostgreSQL a direct node
    /// would be refused. A journal another process holds is left alone: `false`.
    pub fn catch_up_journal(&self) -> anyhow::Result<bool> {
        if let Some(target) = self.pg_target() {
            let state = store::PgJournal::state(&target).context("reading the ledger journal")?;
            if state.leased {
                return Ok(false);
            }
            if state.batches_ahead > 0 {
                tracing::info!(batches = state.batches_ahead, "writing the journal into the books");
                // Closing the engine retires what the books hold and lets the lease go, in
                // a commit that makes the books durable.
                match self.open_pg_engine(&target, &default_holder(), Duration::ZERO) {
                    Ok(engine) => drop(engine),
                    Err(error) if is_locked(&error) => return Ok(false),
                    Err(error) => return Err(error),
                }
            }
            return Ok(true);
        }
        let dir = self.journal_dir();
        if engine::log::segments(&dir)?.is_empty() {
            return Ok(true);
        }
        // Opened only to replay into the books and closed: it needs no spare segments.
        match self.open_engine(false) {
            // Dropping the engine waits for the projector to write what it replayed.
            Ok(engine) => drop(engine),
            Err(error) if is_locked(&error) => return Ok(false),
            Err(error) => return Err(error),
        }
        // The books' last commits may not be synced (the engine syncs them every 200 ms):
        // the journal may go only once they are.
        store::SqliteStore::open(self.sqlite_path())
            .and_then(|mut books| books.checkpoint())
            .context("making the books durable")?;
        for (_, segment) in engine::log::segments(&dir)? {
            std::fs::remove_file(&segment)
                .with_context(|| format!("removing {}", segment.display()))?;
        }
        engine::log::remove_spares(&dir)?;
        Ok(true)
    }

    /// The journal-first engine on this data directory; `preallocate`: make spare journal
    /// segments ahead (for an engine that will take writes).
    fn open_engine(&self, preallocate: bool) -> anyhow::Result<engine::Engine> {
        let path = self.sqlite_path();
        let projection = store::SqliteStore::open(&path).context("opening the embedded store")?;
        let reader = std::sync::Arc::new(
            store::SqliteReader::open(&path).context("opening the embedded store")?,
        );
        let config = engine::EngineConfig {
            preallocate_segments: preallocate,
            ..engine::EngineConfig::new(self.journal_dir())
        };
        engine::Engine::open(config, projection, reader).context("opening the ledger journal")
    }

    /// The journal-first engine on PostgreSQL, once `holder` has the journal's lease (waiting
    /// up to `wait` for another holder to let it go or die).
    fn open_pg_engine(
        &self,
        target: &store::PgTarget,
        holder: &str,
        wait: Duration,
    ) -> anyhow::Result<engine::Engine> {
        let journal = store::PgJournal::open(target, holder, self.ledger_lease_ms, wait)
            .map_err(engine::OpenError::from)
            .context("taking the ledger journal's lease")?;
        let projection = store::PgStore::connect_projection(target.clone())
            .context("connecting to PostgreSQL")?;
        let reader = std::sync::Arc::new(
            store::PgReader::connect(target.clone()).context("connecting to PostgreSQL")?,
        );
        engine::Engine::open_on(
            Box::new(journal),
            engine::EngineLimits::default(),
            projection,
            reader,
        )
        .context("opening the ledger journal")
    }

    /// Starts a posting pipeline on the configured store and engine, creating the books if
    /// needed, with a reader of them.
    pub fn start_books(&self, config: ledger::PipelineConfig) -> anyhow::Result<Books> {
        self.start_books_as(config, &default_holder())
    }

    /// [`StoreArgs::start_books`] for the node `node`: on PostgreSQL with the journal engine,
    /// it holds the journal's lease under that name (waiting for as long as another node
    /// holds it: a standby), and takes it back at once when it restarts.
    pub fn start_books_as(
        &self,
        config: ledger::PipelineConfig,
        node: &str,
    ) -> anyhow::Result<Books> {
        let engine = match (self.pg_target(), self.engine()) {
            (Some(target), LedgerEngine::Journal) => {
                Some(self.open_pg_engine(&target, node, Duration::MAX)?)
            }
            (None, LedgerEngine::Journal) => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                Some(self.open_engine(true)?)
            }
            (_, LedgerEngine::Direct) => None,
        };
        if let Some(engine) = engine {
            let reader = std::sync::Arc::new(engine.reader());
            let stats = engine.stats();
            let clock = std::sync::Arc::new(ledger::SystemClock);
            let ledger = ledger::Ledger::start(engine, clock, config);
            return Ok(Books { ledger, reader, engine: Some(stats) });
        }
        anyhow::ensure!(
            self.catch_up_journal()?,
            "the ledger journal is held by another process ({}): a node runs these books on \
             the journal-first engine; start this one with --ledger-engine journal",
            match self.pg_target() {
                Some(target) => format!("schema {}", target.schema),
                None => self.journal_dir().display().to_string(),
            }
        );
        let ledger = self.start_ledger(config)?;
        let reader = std::sync::Arc::from(self.reader()?);
        Ok(Books { ledger, reader, engine: None })
    }

    pub fn pg_target(&self) -> Option<store::PgTarget> {
        self.database_url
            .as_ref()
            .map(|url| store::PgTarget::new(url.clone(), self.database_schema.clone()))
    }

    pub fn reader(&self) -> anyhow::Result<Box<dyn ledger::port::LedgerReader>> {
        match self.pg_target() {
            Some(target) => {
                Ok(Box::new(store::PgReader::connect(target).context("connecting to PostgreSQL")?))
            }
            None => {
                let path = self.sqlite_path();
                anyhow::ensure!(path.exists(), "no ledger at {}", path.display());
                Ok(Box::new(
                    store::SqliteReader::open(&path).context("opening the embedded store")?,
                ))
            }
        }
    }

    /// The access store (keys, owners, idempotency): `access.db` in the data directory, or
    /// tables beside the ledger's in PostgreSQL (migrated by connecting the ledger store).
    pub fn access(&self) -> anyhow::Result<Box<dyn access::AccessStore>> {
        match self.pg_target() {
            Some(target) => {
                // The ledger store's connection applies every PostgreSQL migration.
                drop(store::PgStore::connect(target.clone()).context("connecting to PostgreSQL")?);
                Ok(Box::new(
                    store::PgAccess::connect(&target).context("connecting the access store")?,
                ))
            }
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                Ok(Box::new(
                    store::SqliteAccess::open(self.data_dir.join("access.db"))
                        .context("opening access.db")?,
                ))
            }
        }
    }

    /// Starts a posting pipeline on the configured store, committing directly, creating it if
    /// needed. [`StoreArgs::start_books`] is what a node runs.
    fn start_ledger(&self, config: ledger::PipelineConfig) -> anyhow::Result<ledger::Ledger> {
        let clock = std::sync::Arc::new(ledger::SystemClock);
        match self.pg_target() {
            Some(target) => {
                let store = store::PgStore::connect(target).context("connecting to PostgreSQL")?;
                Ok(ledger::Ledger::start(store, clock, config))
            }
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                let store = store::SqliteStore::open(self.sqlite_path())
                    .context("opening the embedded store")?;
                Ok(ledger::Ledger::start(store, clock, config))
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if let (Command::Serve(args), Some(serve_matches)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        args.apply_config_file(serve_matches)?;
    }
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Keys { command } => keys::run(command),
        Command::Recon(args) => recon::run(args),
        Command::Ops(args) => ops::run(args),
        Command::Loadtest(args) => loadtest::run(*args),
        Command::Ledger { command: LedgerCommand::Bench(args) } => bench::run(args),
        Command::Ledger { command: LedgerCommand::Verify { store, json } } => verify(&store, json),
        Command::Ledger { command: LedgerCommand::Load(args) } => load::run(args),
        Command::Ledger { command: LedgerCommand::Fill(args) } => fill::run(args),
    }
}

fn verify(store: &StoreArgs, json: bool) -> anyhow::Result<()> {
    // The journal's batches that the books lack, written there first; a journal held by a
    // running node is its own to write, and the books are verified as they stand.
    if !store.catch_up_journal()? {
        eprintln!("the journal is held by a running node: verifying the books it has written");
    }
    let reader = store.reader()?;
    let started = std::time::Instant::now();
    let report = ledger::verify::verify(reader.as_ref(), &mut |n_batches| {
        eprint!("\rverified {n_batches} batches");
    })?;
    eprintln!();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "batches {}  records {}  accounts {}  in {:.2}s",
            report.n_batches,
            report.n_records,
            report.n_accounts,
            started.elapsed().as_secs_f64()
        );
        match &report.divergence {
            None => println!(
                "OK: hash chain intact, every balance matches the journal; head {}",
                report.head_hash
            ),
            Some(divergence) => println!("DIVERGENCE: {}", serde_json::to_string(divergence)?),
        }
    }
    if !report.is_ok() {
        std::process::exit(1);
    }
    Ok(())
}
