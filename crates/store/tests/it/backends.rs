//! Backends under test. SQLite always runs. PostgreSQL runs when reachable at
//! `QIANBAO_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`); under `CI=true`
//! an unreachable server fails the test instead of skipping it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ledger::port::LedgerReader;
use ledger::{Ledger, LedgerHandle, ManualClock, PipelineConfig, Timestamp};
use store::{PgReader, PgStore, PgTarget, SqliteReader, SqliteStore};

pub const PG_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_url() -> String {
    std::env::var("QIANBAO_TEST_PG_URL").unwrap_or_else(|_| PG_URL_DEFAULT.to_string())
}

/// A fresh schema name per test, so tests run in parallel on one database.
pub fn fresh_schema(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("qb_test_{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// The PostgreSQL target for a test, or `None` to skip (never under CI).
pub fn pg_target(prefix: &str) -> Option<PgTarget> {
    let url = pg_url();
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(_) => Some(PgTarget::new(url, fresh_schema(prefix))),
        Err(error) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("PostgreSQL at {url} is unreachable under CI=true: {error}")
        }
        Err(error) => {
            eprintln!("skipping PostgreSQL test: {url} unreachable: {error}");
            None
        }
    }
}

pub fn drop_schema(target: &PgTarget) {
    if let Ok(mut client) = postgres::Client::connect(&target.url, postgres::NoTls) {
        let _ =
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", target.schema));
    }
}

pub enum Kind {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    /// The journal-first engine in front of SQLite books (`engine`).
    Journaled {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Postgres(PgTarget),
    /// The journal-first engine on PostgreSQL: its journal a table held by a lease, its
    /// books the direct store's tables.
    PgJournaled(PgTarget),
}

/// A running ledger over one backend, with a reader and a clock the test controls.
pub struct Backend {
    pub name: &'static str,
    pub kind: Kind,
    pub clock: Arc<ManualClock>,
    pub ledger: Option<Ledger>,
    pub reader: Box<dyn LedgerReader>,
}

pub fn test_config() -> PipelineConfig {
    // A long poll: tests trigger expiry and folds by submitting work, never by waiting (a
    // writer's first fold runs at start-up, so a restart folds what was buffered).
    PipelineConfig {
        expiry_poll_interval_ms: 60_000,
        fold_interval_ms: 60_000,
        ..PipelineConfig::default()
    }
}

impl Backend {
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let store = SqliteStore::open(&path).expect("open sqlite");
        let reader = Box::new(SqliteReader::open(&path).expect("open reader"));
        let ledger = Ledger::start(store, clock.clone(), test_config());
        Backend {
            name: "sqlite",
            kind: Kind::Sqlite { _dir: dir, path },
            clock,
            ledger: Some(ledger),
            reader,
        }
    }

    /// The journal-first engine over SQLite books in `dir`: the journal in `dir/journal`.
    pub fn journaled() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let (ledger, reader) = start_journaled(&path, clock.clone());
        Backend {
            name: "journaled",
            kind: Kind::Journaled { _dir: dir, path },
            clock,
            ledger: Some(ledger),
            reader,
        }
    }

    pub fn postgres(prefix: &str) -> Option<Backend> {
        let target = pg_target(prefix)?;
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let store = PgStore::connect(target.clone()).expect("connect postgres");
        let reader = Box::new(PgReader::connect(target.clone()).expect("reader"));
        let ledger = Ledger::start(store, clock.clone(), test_config());
        Some(Backend {
            name: "postgres",
            kind: Kind::Postgres(target),
            clock,
            ledger: Some(ledger),
            reader,
        })
    }

    pub fn pg_journaled(prefix: &str) -> Option<Backend> {
        let target = pg_target(prefix)?;
        let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
        let (ledger, reader) = start_pg_journaled(&target, clock.clone());
        Some(Backend {
            name: "pg-journaled",
            kind: Kind::PgJournaled(target),
            clock,
            ledger: Some(ledger),
            reader,
        })
    }

    pub fn handle(&self) -> LedgerHandle {
        self.ledger.as_ref().expect("ledger running").handle()
    }

    /// Stops the pipeline and starts a new one on the same data: a process restart.
    pub fn restart(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown();
        }
        let ledger = match &self.kind {
            Kind::Sqlite { path, .. } => Ledger::start(
                SqliteStore::open(path).expect("reopen"),
                self.clock.clone(),
                test_config(),
            ),
            Kind::Postgres(target) => Ledger::start(
                PgStore::connect(target.clone()).expect("reconnect"),
                self.clock.clone(),
                test_config(),
            ),
            Kind::Journaled { path, .. } => {
                let (ledger, reader) = start_journaled(path, self.clock.clone());
                self.reader = reader;
                ledger
            }
            Kind::PgJournaled(target) => {
                let (ledger, reader) = start_pg_journaled(target, self.clock.clone());
                self.reader = reader;
                ledger
            }
        };
        self.ledger = Some(ledger);
    }

    /// Runs raw SQL behind the ledger's back, as an attacker with database access would.
    pub fn tamper(&self, sql: &str) {
        if let Kind::Journaled { .. } | Kind::PgJournaled(_) = &self.kind {
            // The engine writes the books behind its journal: edit them once they hold every
            // batch, or the projector would write over the edit. A history read waits so.
            self.reader.trial_balance().expect("the books catch up");
        }
        match &self.kind {
            Kind::Sqlite { path, .. } | Kind::Journaled { path, .. } => {
                let connection = rusqlite::Connection::open(path).expect("open");
                connection.execute_batch(sql).expect("tamper");
            }
            Kind::Postgres(target) | Kind::PgJournaled(target) => {
                let mut client =
                    postgres::Client::connect(&target.url, postgres::NoTls).expect("connect");
                client
                    .batch_execute(&format!("SET search_path TO \"{}\"; {sql}", target.schema))
                    .expect("tamper");
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown();
        }
        if let Kind::Postgres(target) | Kind::PgJournaled(target) = &self.kind {
            drop_schema(target);
        }
    }
}

/// The engine over the SQLite books at `path`, and a reader of it.
pub fn start_journaled(
    path: &std::path::Path,
    clock: Arc<ManualClock>,
) -> (Ledger, Box<dyn LedgerReader>) {
    let journal = path.with_file_name("journal");
    let projection = SqliteStore::open(path).expect("open sqlite");
    let projection_reader = Arc::new(SqliteReader::open(path).expect("open reader"));
    // Small segments: the tests rotate through spare segments, and a spare costs 64 KiB.
    let config =
        engine::EngineConfig { segment_bytes_max: 64 << 10, ..engine::EngineConfig::new(journal) };
    let engine = engine::Engine::open(config, projection, projection_reader).expect("open engine");
    let reader = Box::new(engine.reader());
    (Ledger::start(engine, clock, test_config()), reader)
}

/// The engine on PostgreSQL at `target`, holding its journal's lease, and a reader of it.
pub fn start_pg_journaled(
    target: &PgTarget,
    clock: Arc<ManualClock>,
) -> (Ledger, Box<dyn LedgerReader>) {
    let journal = store::PgJournal::open(target, "test-node", 10_000, std::time::Duration::ZERO)
        .expect("take the journal's lease");
    let projection = PgStore::connect_projection(target.clone()).expect("connect postgres");
    let projection_reader = Arc::new(PgReader::connect(target.clone()).expect("reader"));
    let engine = engine::Engine::open_on(
        Box::new(journal),
        engine::EngineLimits::default(),
        projection,
        projection_reader,
    )
    .expect("open engine");
    let reader = Box::new(engine.reader());
    (Ledger::start(engine, clock, test_config()), reader)
}

/// Runs `scenario` on every available backend.
pub fn each_backend(prefix: &str, scenario: impl Fn(&mut Backend)) {
    scenario(&mut Backend::sqlite());
    scenario(&mut Backend::journaled());
    if let Some(mut backend) = Backend::postgres(prefix) {
        scenario(&mut backend);
    }
    if let Some(mut backend) = Backend::pg_journaled(prefix) {
        scenario(&mut backend);
    }
}
