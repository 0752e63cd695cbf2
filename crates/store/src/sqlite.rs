//! The embedded store: one SQLite file in WAL mode.
//!
//! Durability: `synchronous = FULL` makes every commit fsync the WAL before `COMMIT`
//! returns, so an acknowledged batch survives a crash or power loss. Write transactions are
//! `BEGIN IMMEDIATE`, which takes SQLite's single write lock up front; that is the whole of
//! the "lock" stages of the port here, and it also keeps a second process on the same file
//! correct (it waits for the lock, up to the busy timeout).
//!
//! Checkpoints: SQLite copies WAL frames back into the database file inside the commit that
//! crosses `wal_autocheckpoint` frames. At 10,000 frames (about 40 MiB) a page that hot
//! accounts dirty over and over is copied once per checkpoint instead of many times, which
//! measured +45% transfers/s with 64 submitters over the default 1,000; the price is a
//! checkpoint stall of some 10–30 ms in the tail (p99.9). Moving checkpoints to a background
//! PASSIVE checkpointer was measured too and did not remove the stall: the WAL can only
//! restart inside a writer's transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ledger::apply::BatchWrite;
use ledger::journal::{BatchHeader, JournalHead};
use ledger::model::{
    Account, AccountLayout, ChartCode, ChartEntry, Entry, Hold, Movement, Record, Side, Transfer,
};
use ledger::port::{
    BalanceTotals, LedgerReader, LedgerStore, LedgerTx, Page, ReferenceData, StoreError,
    TrialBalanceLine,
};
use ledger::{AccountId, BatchSeq, BusinessCode, Seq, Timestamp, TransferId};
use money::Asset;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::codec::{
    self, ACCOUNT_COLUMNS, BATCH_COLUMNS, ENTRY_COLUMNS, HOLD_COLUMNS, TRANSFER_COLUMNS,
};

mod write;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_ledger.sql")),
    (2, include_str!("sqlite/0002_ledger_layouts.sql")),
];

fn backend(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &error {
        if failure.code == rusqlite::ErrorCode::DatabaseBusy
            || failure.code == rusqlite::ErrorCode::DatabaseLocked
        {
            return StoreError::Conflict(error.to_string());
        }
    }
    StoreError::Backend(error.to_string())
}

/// The writer's page cache, KiB: the B-tree pages of accounts, entries and the transfer-id
/// index that batches touch stay cached between batches.
const WRITER_CACHE_KIB: u32 = 131_072;

/// Each reader connection's page cache, KiB. Readers read the same file the writer keeps
/// warm in the OS's page cache; a large private cache per reader only copies those pages
/// again. With 128 MiB each, the idle pool ([`READER_IDLE_MAX`]) held up to 1 GiB once a
/// load had warmed it, on a book of 100,000 accounts (docs/bench/scale.md). Together the
/// ledger's caches are bounded by `WRITER_CACHE_KIB + READER_IDLE_MAX × READER_CACHE_KIB`
/// (256 MiB), whatever the size of the books.
const READER_CACHE_KIB: u32 = 16_384;

/// Opens a connection with the settings every connection to the file needs, and a page
/// cache of `cache_kib`.
fn connect(path: &Path, cache_kib: u32) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(backend)?;
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = OFF;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{cache_kib};
             PRAGMA busy_timeout = 10000;
             PRAGMA wal_autocheckpoint = 10000;"
        ))
        .map_err(backend)?;
    Ok(connection)
}

/// Applies the `migrations` (version, SQL) not yet recorded in `schema_migrations`, in one
/// transaction.
pub(crate) fn migrate(
    connection: &mut Connection,
    migrations: &[(i64, &str)],
) -> Result<(), StoreError> {
    let tx =
        connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(backend)?;
    for (version, sql) in migrations {
        let applied: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        if applied.is_none() {
            tx.execute_batch(sql).map_err(backend)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))",
                [version],
            )
            .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)
}

/// The write side: owned by one posting pipeline.
pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let mut connection = connect(path.as_ref(), WRITER_CACHE_KIB)?;
        migrate(&mut connection, MIGRATIONS)?;
        Ok(SqliteStore { connection })
    }

    /// Copies the whole write-ahead log into the database file and syncs both: every commit
    /// so far is durable, whatever `synchronous` it was made with. Fails if another
    /// connection kept part of the log from being copied.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        let busy: i64 = self
            .connection
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |row| row.get(0))
            .map_err(backend)?;
        if busy != 0 {
            return Err(StoreError::Backend(
                "the checkpoint was blocked by another connection".into(),
            ));
        }
        Ok(())
    }
}

impl LedgerStore for SqliteStore {
    type Tx<'a> = SqliteTx<'a>;

    /// `synchronous = NORMAL` when off: in WAL mode a commit then reaches the log without a
    /// sync, and the next `FULL` commit syncs the log with every commit before it.
    fn set_sync_each_commit(&mut self, sync: bool) -> Result<(), StoreError> {
        let level = if sync { "FULL" } else { "NORMAL" };
        self.connection.execute_batch(&format!("PRAGMA synchronous = {level};")).map_err(backend)
    }

    fn begin(&mut self) -> Result<SqliteTx<'_>, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        Ok(SqliteTx { tx })
    }
}

pub struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl LedgerTx for SqliteTx<'_> {
    fn find_transfers(&mut self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1");
        let mut statement = self.tx.prepare_cached(&sql).map_err(backend)?;
        let mut found = Vec::new();
        for id in ids {
            let row = statement
                .query_row([&id.to_bytes()[..]], |row| Ok(transfer_from_row(row)))
                .optional()
                .map_err(backend)?;
            if let Some(transfer) = row {
                found.push(transfer?);
            }
        }
        Ok(found)
    }

    fn lock_holds(&mut self, pending_ids: &[TransferId]) -> Result<Vec<Hold>, StoreError> {
        let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE pending_id = ?1");
        let mut statement = self.tx.prepare_cached(&sql).map_err(backend)?;
        let mut found = Vec::new();
        for id in pending_ids {
            let row = statement
                .query_row([&id.to_bytes()[..]], |row| Ok(hold_from_row(row)))
                .optional()
                .map_err(backend)?;
            if let Some(hold) = row {
                found.push(hold?);
            }
        }
        Ok(found)
    }

    fn lock_due_holds(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, StoreError> {
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE state = 1 AND expires_at IS NOT NULL \
             AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
        );
        let mut statement = self.tx.prepare_cached(&sql).map_err(backend)?;
        let rows = statement
            .query_map(params![now.0 as i64, limit as i64], |row| Ok(hold_from_row(row)))
            .map_err(backend)?;
        rows.map(|row| row.map_err(backend)?).collect()
    }

    fn lock_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1");
        let mut statement = self.tx.prepare_cached(&sql).map_err(backend)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let row = statement
                .query_row([&id.to_bytes()[..]], |row| Ok(account_from_row(row)))
                .optional()
                .map_err(backend)?;
            if let Some(account) = row {
                found.push(account?);
            }
        }
        Ok(found)
    }

    fn reference_data(&mut self) -> Result<ReferenceData, StoreError> {
        reference_data(&self.tx)
    }

    fn lock_head(&mut self) -> Result<JournalHead, StoreError> {
        head(&self.tx)
    }

    fn buffered_with_credit(&mut self) -> Result<Vec<AccountId>, StoreError> {
        let mut statement = self
            .tx
            .prepare_cached(
                "SELECT DISTINCT r.layout_owner FROM accounts r JOIN accounts o ON o.id = r.layout_owner \
             WHERE r.layout_kind <> 0 AND r.layout_kind = 3 AND o.layout_kind = 2 AND r.credits_posted > r.debits_posted",
            )
            .map_err(backend)?;
        let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0)).map_err(backend)?;
        rows.map(|row| codec::account_id(&row.map_err(backend)?)).collect()
    }

    fn account_layouts(&mut self) -> Result<Vec<(AccountId, AccountLayout)>, StoreError> {
        let mut statement = self
            .tx
            .prepare_cached(
                "SELECT id, layout_kind, layout_rows FROM accounts WHERE layout_kind <> 0 AND layout_kind IN (1, 2)",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (id, kind, count) = row.map_err(backend)?;
            Ok((codec::account_id(&id)?, codec::layout(kind, count, None)?))
        })
        .collect()
    }

    fn write(&mut self, batch: &BatchWrite) -> Result<(), StoreError> {
        write::write_batch(&self.tx, batch).map_err(backend)
    }

    fn write_group(&mut self, batches: &[&BatchWrite]) -> Result<(), StoreError> {
        write::write_group(&self.tx, batches).map_err(backend)
    }

    fn commit(self) -> Result<(), StoreError> {
        // SQLite either commits or leaves the transaction open and rolls it back on drop; an
        // I/O error during the WAL fsync is reported as a failed commit, not an unknown one.
        self.tx.commit().map_err(backend)
    }
}

fn side(code: i64) -> Result<Side, StoreError> {
    match code {
        1 => Ok(Side::Debit),
        2 => Ok(Side::Credit),
        other => Err(codec::corrupt(format!("bad entry side {other}"))),
    }
}

fn account_from_row(row: &Row<'_>) -> Result<Account, StoreError> {
    let get = |e: rusqlite::Error| backend(e);
    Ok(Account {
        id: codec::account_id(&row.get::<_, Vec<u8>>(0).map_err(get)?)?,
        asset: codec::asset_code(&row.get::<_, String>(1).map_err(get)?)?,
        chart_code: ChartCode(codec::u32_column(row.get(2).map_err(get)?, "chart code")?),
        rule: codec::rule(row.get(3).map_err(get)?, row.get(4).map_err(get)?)?,
        metadata: codec::text(row.get::<_, String>(5).map_err(get)?)?,
        status: codec::status(row.get(6).map_err(get)?)?,
        balances: ledger::Balances {
            debits_pending: codec::amount(row.get(7).map_err(get)?)?,
            debits_posted: codec::amount(row.get(8).map_err(get)?)?,
            credits_pending: codec::amount(row.get(9).map_err(get)?)?,
            credits_posted: codec::amount(row.get(10).map_err(get)?)?,
        },
        opened_seq: Seq(codec::u64_column(row.get(11).map_err(get)?, "seq")?),
        opened_at: Timestamp(codec::u64_column(row.get(12).map_err(get)?, "timestamp")?),
        layout: codec::layout(
            row.get(13).map_err(get)?,
            row.get(14).map_err(get)?,
            row.get::<_, Option<Vec<u8>>>(15).map_err(get)?.as_deref(),
        )?,
    })
}

fn transfer_from_row(row: &Row<'_>) -> Result<Transfer, StoreError> {
    let get = |e: rusqlite::Error| backend(e);
    let pending: Option<Vec<u8>> = row.get(7).map_err(get)?;
    let expires_at: Option<i64> = row.get(8).map_err(get)?;
    Ok(Transfer {
        seq: Seq(codec::u64_column(row.get(0).map_err(get)?, "seq")?),
        id: codec::transfer_id(&row.get::<_, Vec<u8>>(1).map_err(get)?)?,
        kind: codec::kind(row.get(2).map_err(get)?)?,
        debit_account_id: codec::account_id(&row.get::<_, Vec<u8>>(3).map_err(get)?)?,
        credit_account_id: codec::account_id(&row.get::<_, Vec<u8>>(4).map_err(get)?)?,
        asset: codec::asset_code(&row.get::<_, String>(5).map_err(get)?)?,
        amount: codec::amount(row.get(6).map_err(get)?)?,
        pending_id: pending.map(|bytes| codec::transfer_id(&bytes)).transpose()?,
        expires_at: expires_at
            .map(|at| codec::u64_column(at, "expires_at").map(Timestamp))
            .transpose()?,
        business_code: BusinessCode(codec::u32_column(row.get(9).map_err(get)?, "business code")?),
        order_ref: codec::text(row.get::<_, String>(10).map_err(get)?)?,
        timestamp: Timestamp(codec::u64_column(row.get(11).map_err(get)?, "timestamp")?),
        fingerprint: codec::fingerprint(&row.get::<_, Vec<u8>>(12).map_err(get)?)?,
    })
}

fn hold_from_row(row: &Row<'_>) -> Result<Hold, StoreError> {
    let get = |e: rusqlite::Error| backend(e);
    let expires_at: Option<i64> = row.get(5).map_err(get)?;
    Ok(Hold {
        pending_id: codec::transfer_id(&row.get::<_, Vec<u8>>(0).map_err(get)?)?,
        movement: Movement {
            debit_account_id: codec::account_id(&row.get::<_, Vec<u8>>(1).map_err(get)?)?,
            credit_account_id: codec::account_id(&row.get::<_, Vec<u8>>(2).map_err(get)?)?,
            asset: codec::asset_code(&row.get::<_, String>(3).map_err(get)?)?,
            amount: codec::amount(row.get(4).map_err(get)?)?,
        },
        expires_at: expires_at
            .map(|at| codec::u64_column(at, "expires_at").map(Timestamp))
            .transpose()?,
        state: codec::hold_state(row.get(6).map_err(get)?)?,
        business_code: BusinessCode(codec::u32_column(row.get(7).map_err(get)?, "business code")?),
    })
}

fn entry_from_row(row: &Row<'_>) -> Result<Entry, StoreError> {
    let get = |e: rusqlite::Error| backend(e);
    Ok(Entry {
        account_id: codec::account_id(&row.get::<_, Vec<u8>>(0).map_err(get)?)?,
        seq: Seq(codec::u64_column(row.get(1).map_err(get)?, "seq")?),
        side: side(row.get(2).map_err(get)?)?,
        transfer_id: codec::transfer_id(&row.get::<_, Vec<u8>>(3).map_err(get)?)?,
        amount: codec::amount(row.get(4).map_err(get)?)?,
        balances_after: ledger::Balances {
            debits_pending: codec::amount(row.get(5).map_err(get)?)?,
            debits_posted: codec::amount(row.get(6).map_err(get)?)?,
            credits_pending: codec::amount(row.get(7).map_err(get)?)?,
            credits_posted: codec::amount(row.get(8).map_err(get)?)?,
        },
    })
}

fn batch_from_row(row: &Row<'_>) -> Result<BatchHeader, StoreError> {
    let get = |e: rusqlite::Error| backend(e);
    Ok(BatchHeader {
        batch_seq: BatchSeq(codec::u64_column(row.get(0).map_err(get)?, "batch seq")?),
        first_seq: Seq(codec::u64_column(row.get(1).map_err(get)?, "seq")?),
        n_records: codec::u32_column(row.get(2).map_err(get)?, "n_records")?,
        timestamp: Timestamp(codec::u64_column(row.get(3).map_err(get)?, "timestamp")?),
        prev_hash: codec::hash(&row.get::<_, Vec<u8>>(4).map_err(get)?)?,
        hash: codec::hash(&row.get::<_, Vec<u8>>(5).map_err(get)?)?,
    })
}

fn reference_data(connection: &Connection) -> Result<ReferenceData, StoreError> {
    let mut assets = HashMap::new();
    let mut statement =
        connection.prepare_cached("SELECT code, scale FROM assets").map_err(backend)?;
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
        .map_err(backend)?;
    for row in rows {
        let (code, scale) = row.map_err(backend)?;
        let code = codec::asset_code(&code)?;
        let scale = u8::try_from(scale).map_err(codec::corrupt)?;
        assets.insert(code, Asset::new(code, scale).map_err(codec::corrupt)?);
    }
    let mut charts = HashMap::new();
    let mut statement =
        connection.prepare_cached("SELECT code, name, class FROM chart").map_err(backend)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
        })
        .map_err(backend)?;
    for row in rows {
        let (code, name, class) = row.map_err(backend)?;
        let code = ChartCode(codec::u32_column(code, "chart code")?);
        charts.insert(
            code,
            ChartEntry { code, name: codec::text(name)?, class: codec::class(class)? },
        );
    }
    Ok(ReferenceData { assets, charts })
}

fn head(connection: &Connection) -> Result<JournalHead, StoreError> {
    let row = connection
        .prepare_cached(
            "SELECT batch_seq, last_seq, last_timestamp, hash FROM journal_head WHERE id = 1",
        )
        .map_err(backend)?
        .query_row([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })
        .map_err(backend)?;
    Ok(JournalHead {
        batch_seq: BatchSeq(codec::u64_column(row.0, "batch seq")?),
        last_seq: Seq(codec::u64_column(row.1, "seq")?),
        last_timestamp: Timestamp(codec::u64_column(row.2, "timestamp")?),
        hash: codec::hash(&row.3)?,
    })
}

/// The read side: a small pool of connections, each reading a consistent WAL snapshot.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle reader connections kept for reuse.
const READER_IDLE_MAX: usize = 8;

impl SqliteReader {
    /// Opens a reader on a database that [`SqliteStore::open`] has created.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteReader, StoreError> {
        let reader =
            SqliteReader { path: path.as_ref().to_path_buf(), idle: Mutex::new(Vec::new()) };
        let connection = reader.checkout()?;
        reader.checkin(connection);
        Ok(reader)
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => connect(&self.path, READER_CACHE_KIB),
        }
    }

    fn checkin(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < READER_IDLE_MAX {
            idle.push(connection);
        }
    }

    /// Runs `read` in one read transaction, so multi-query reads see one snapshot.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.checkout()?;
        let result = {
            let tx = connection.transaction().map_err(backend)?;
            let result = read(&tx);
            drop(tx);
            result
        };
        self.checkin(connection);
        result
    }
}

fn query_all<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    let rows = statement.query_map(params, |row| Ok(map(row))).map_err(backend)?;
    rows.map(|row| row.map_err(backend)?).collect()
}

fn query_one<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    Ok(query_all(connection, sql, params, map)?.into_iter().next())
}

fn limit(page_limit: usize) -> i64 {
    page_limit.clamp(1, ledger::port::PAGE_ROWS_MAX) as i64
}

impl LedgerReader for SqliteReader {
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1");
            query_one(c, &sql, [&id.to_bytes()[..]], account_from_row)
        })
    }

    fn accounts_at_once(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        self.read(|c| {
            // One statement is one read snapshot in WAL mode.
            let placeholders = vec!["?"; ids.len()].join(", ");
            let sql =
                format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({placeholders})");
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();
            query_all(c, &sql, rusqlite::params_from_iter(keys), account_from_row)
        })
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1");
            query_one(c, &sql, [&id.to_bytes()[..]], transfer_from_row)
        })
    }

    fn transfers(&self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?1");
            let mut found = Vec::new();
            for id in ids {
                found.extend(query_one(c, &sql, [&id.to_bytes()[..]], transfer_from_row)?);
            }
            Ok(found)
        })
    }

    fn hold(&self, pending_id: TransferId) -> Result<Option<Hold>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE pending_id = ?1");
            query_one(c, &sql, [&pending_id.to_bytes()[..]], hold_from_row)
        })
    }

    fn entries(&self, account_id: AccountId, page: Page<Seq>) -> Result<Vec<Entry>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            );
            let after = page.after.map_or(0, |seq| seq.0 as i64);
            query_all(c, &sql, params![&account_id.to_bytes()[..], after, limit(page.limit)], entry_from_row)
        })
    }

    fn entry_as_of(&self, account_id: AccountId, seq: Seq) -> Result<Option<Entry>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1"
            );
            query_one(c, &sql, params![&account_id.to_bytes()[..], seq.0 as i64], entry_from_row)
        })
    }

    fn seq_at(&self, at: Timestamp) -> Result<Seq, StoreError> {
        self.read(|c| {
            let last: Option<i64> = c
                .prepare_cached(
                    "SELECT first_seq + n_records - 1 FROM journal_batches WHERE timestamp <= ?1 \
                     ORDER BY batch_seq DESC LIMIT 1",
                )
                .map_err(backend)?
                .query_row([at.0 as i64], |row| row.get(0))
                .optional()
                .map_err(backend)?;
            Ok(Seq(last.map_or(Ok(0), |seq| codec::u64_column(seq, "seq"))?))
        })
    }

    fn trial_balance(&self) -> Result<Vec<TrialBalanceLine>, StoreError> {
        self.read(|c| {
            let mut statement = c
                .prepare_cached(
                    // SQLite's sum() fails past i64::MAX, and many valid balances can add up
                    // to more: each column is summed as its high and low 32 bits, which
                    // cannot overflow below 2^31 accounts, and joined in 128 bits.
                    "SELECT asset, chart_code, count(*), \
                     sum(debits_pending >> 32), sum(debits_pending & 4294967295), \
                     sum(debits_posted >> 32), sum(debits_posted & 4294967295), \
                     sum(credits_pending >> 32), sum(credits_pending & 4294967295), \
                     sum(credits_posted >> 32), sum(credits_posted & 4294967295) \
                     FROM accounts GROUP BY asset, chart_code ORDER BY asset, chart_code",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        [
                            row.get::<_, i64>(3)?,
                            row.get(4)?,
                            row.get(5)?,
                            row.get(6)?,
                            row.get(7)?,
                            row.get(8)?,
                            row.get(9)?,
                            row.get(10)?,
                        ],
                    ))
                })
                .map_err(backend)?;
            let mut lines = Vec::new();
            for row in rows {
                let (asset, chart, count, sums) = row.map_err(backend)?;
                lines.push(TrialBalanceLine {
                    asset: codec::asset_code(&asset)?,
                    chart_code: ChartCode(codec::u32_column(chart, "chart code")?),
                    n_accounts: codec::u64_column(count, "count")?,
                    balances: BalanceTotals {
                        debits_pending: codec::split_sum(sums[0], sums[1])?,
                        debits_posted: codec::split_sum(sums[2], sums[3])?,
                        credits_pending: codec::split_sum(sums[4], sums[5])?,
                        credits_posted: codec::split_sum(sums[6], sums[7])?,
                    },
                });
            }
            Ok(lines)
        })
    }

    fn head(&self) -> Result<JournalHead, StoreError> {
        self.read(head)
    }

    fn batches(&self, page: Page<BatchSeq>) -> Result<Vec<BatchHeader>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {BATCH_COLUMNS} FROM journal_batches WHERE batch_seq > ?1 ORDER BY batch_seq LIMIT ?2"
            );
            let after = page.after.map_or(0, |seq| seq.0 as i64);
            query_all(c, &sql, params![after, limit(page.limit)], batch_from_row)
        })
    }

    fn records(&self, first: Seq, last: Seq) -> Result<(Vec<Record>, Vec<Entry>), StoreError> {
        self.read(|c| {
            let range = params![first.0 as i64, last.0 as i64];
            let mut records = Vec::new();
            let ReferenceData { assets, charts } = reference_data(c)?;
            let mut statement = c
                .prepare_cached("SELECT code, seq FROM assets WHERE seq BETWEEN ?1 AND ?2")
                .map_err(backend)?;
            let rows = statement
                .query_map(range, |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (code, seq) = row.map_err(backend)?;
                let asset = assets.get(&codec::asset_code(&code)?).copied().ok_or_else(|| codec::corrupt("asset"))?;
                records.push(Record::AssetDefined { seq: Seq(codec::u64_column(seq, "seq")?), asset });
            }
            let mut statement = c
                .prepare_cached("SELECT code, seq FROM chart WHERE seq BETWEEN ?1 AND ?2")
                .map_err(backend)?;
            let rows = statement
                .query_map(range, |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (code, seq) = row.map_err(backend)?;
                let code = ChartCode(codec::u32_column(code, "chart code")?);
                let entry = charts.get(&code).cloned().ok_or_else(|| codec::corrupt("chart"))?;
                records.push(Record::ChartDefined { seq: Seq(codec::u64_column(seq, "seq")?), entry });
            }
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE opened_seq BETWEEN ?1 AND ?2");
            records.extend(query_all(c, &sql, range, account_from_row)?.into_iter().map(Record::AccountOpened));
            let mut statement = c
                .prepare_cached(
                    "SELECT seq, account_id, status FROM account_status_log WHERE seq BETWEEN ?1 AND ?2",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(range, |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, i64>(2)?)))
                .map_err(backend)?;
            for row in rows {
                let (seq, account_id, status) = row.map_err(backend)?;
                records.push(Record::AccountStatusSet {
                    seq: Seq(codec::u64_column(seq, "seq")?),
                    account_id: codec::account_id(&account_id)?,
                    status: codec::status(status)?,
                });
            }
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE seq BETWEEN ?1 AND ?2");
            records.extend(query_all(c, &sql, range, transfer_from_row)?.into_iter().map(Record::Transfer));
            records.sort_by_key(Record::seq);
            let sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq BETWEEN ?1 AND ?2");
            let entries = query_all(c, &sql, range, entry_from_row)?;
            Ok((records, entries))
        })
    }

    fn accounts(&self, page: Page<AccountId>) -> Result<Vec<Account>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2"
            );
            let after = page.after.map_or([0u8; 16], |id| id.to_bytes());
            query_all(c, &sql, params![&after[..], limit(page.limit)], account_from_row)
        })
    }

    fn pending_holds(&self, page: Page<TransferId>) -> Result<Vec<Hold>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE state = 1 AND pending_id > ?1 ORDER BY pending_id LIMIT ?2"
            );
            let after = page.after.map_or([0u8; 16], |id| id.to_bytes());
            query_all(c, &sql, params![&after[..], limit(page.limit)], hold_from_row)
        })
    }
}
