//! The production store: PostgreSQL with durable commits (`synchronous_commit` as the server
//! sets it; the default, `on`, waits for the WAL flush).
//!
//! Several service nodes may post to one database at once. Correctness across them rests on
//! row locks taken in the port's lock order (holds, due holds with `SKIP LOCKED`, accounts,
//! the journal head), each stage in one statement sorted by id, so no two transactions can
//! wait on each other in a cycle. Batches are written set-wise with `UNNEST`, a handful of
//! statements per batch whatever its size.

use std::collections::HashMap;
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
use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Row};

use crate::codec::{
    self, ACCOUNT_COLUMNS, BATCH_COLUMNS, ENTRY_COLUMNS, HOLD_COLUMNS, TRANSFER_COLUMNS,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("postgres/0001_ledger.sql")),
    (2, include_str!("postgres/0002_access.sql")),
    (3, include_str!("postgres/0003_access_signing.sql")),
    (4, include_str!("postgres/0004_gateway.sql")),
    (5, include_str!("postgres/0005_orders.sql")),
    (6, include_str!("postgres/0006_access_merchant.sql")),
    (7, include_str!("postgres/0007_ledger_layouts.sql")),
    (8, include_str!("postgres/0008_access_idempotency_per_key.sql")),
    (9, include_str!("postgres/0009_orders_by_created.sql")),
    (10, include_str!("postgres/0010_recon.sql")),
    (11, include_str!("postgres/0011_recon_closed_days.sql")),
    (12, include_str!("postgres/0012_recon_checks.sql")),
    (13, include_str!("postgres/0013_recon_alerts.sql")),
    (14, include_str!("postgres/0014_orders_channel_legs.sql")),
    (15, include_str!("postgres/0015_recon_statement_lz4.sql")),
    (16, include_str!("postgres/0016_orders_body_version.sql")),
    (17, include_str!("postgres/0017_orders_needing_operator.sql")),
    (18, include_str!("postgres/0018_ops.sql")),
    (19, include_str!("postgres/0019_ops_switches.sql")),
    (20, include_str!("postgres/0020_ops_fx_rates.sql")),
    (21, include_str!("postgres/0021_ledger_journal.sql")),
];

fn backend(error: postgres::Error) -> StoreError {
    let text = described(&error);
    match error.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::UNIQUE_VIOLATION =>
        {
            StoreError::Conflict(text)
        }
        _ => StoreError::Backend(text),
    }
}

/// The error with the server's own message: `postgres::Error` prints only "db error" for
/// an error the server raised.
pub(crate) fn described(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{error}: {} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

pub mod journal;
mod target;
mod write;
pub use journal::PgJournal;
pub use target::{masked_url, PgTarget};
use write::Writer;

/// Drops a schema and everything in it (benchmarks and tests clean up with this).
pub fn drop_schema(target: &PgTarget) -> Result<(), StoreError> {
    let mut client = Client::connect(&target.url, NoTls).map_err(backend)?;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_identifier(&target.schema)
        ))
        .map_err(backend)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(backend)?;
    // Nodes starting together must not migrate twice.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("qianbao.migrate.{schema}")],
    )
    .map_err(backend)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(backend)?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt("SELECT version FROM schema_migrations WHERE version = $1", &[version])
            .map_err(backend)?;
        if applied.is_none() {
            tx.batch_execute(sql).map_err(backend)?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
                .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)
}

/// The write side: owned by one posting pipeline. Reconnects after a lost connection.
///
/// Statements are prepared once per connection and reused: PostgreSQL then skips parsing and,
/// after a few runs, planning, which is most of its work for small batches.
pub struct PgStore {
    target: PgTarget,
    client: Client,
    statements: StatementCache,
    writer: Writer,
    /// Whether a commit waits for the WAL flush (`synchronous_commit`); see
    /// [`LedgerStore::set_sync_each_commit`].
    sync_each_commit: bool,
}

/// Prepared statements by SQL text. Batch writes vary in shape (which tables a batch
/// touches), so the cache holds one statement per shape; there are a few dozen at most.
#[derive(Default)]
struct StatementCache(HashMap<String, postgres::Statement>);

/// Statement shapes kept prepared at most; past it the cache starts afresh.
const STATEMENT_CACHE_MAX: usize = 256;

impl StatementCache {
    fn get(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        sql: &str,
    ) -> Result<postgres::Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        if self.0.len() >= STATEMENT_CACHE_MAX {
            self.0.clear();
        }
        let statement = tx.prepare(sql)?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl PgStore {
    /// The write side of a direct node: each batch committed to the books.
    pub fn connect(target: PgTarget) -> Result<PgStore, StoreError> {
        Self::connect_as(target, Writer::Direct)
    }

    /// The write side of the journal engine's projector: it writes batches its journal
    /// holds, so it is not refused while a node holds the journal's lease (a direct node is).
    pub fn connect_projection(target: PgTarget) -> Result<PgStore, StoreError> {
        Self::connect_as(target, Writer::Projector)
    }

    fn connect_as(target: PgTarget, writer: Writer) -> Result<PgStore, StoreError> {
        let mut client = Self::writer_connection(&target)?;
        migrate(&mut client, &target.schema)?;
        Ok(PgStore {
            target,
            client,
            statements: StatementCache::default(),
            writer,
            sync_each_commit: true,
        })
    }

    /// Prepared statements save parsing; planning stays per execution
    /// (`force_custom_plan`). A generic plan is fixed when it is first chosen, and a ledger
    /// starts with empty tables: a plan chosen then scans whole tables once they have grown,
    /// which was measured slowing a growing ledger many times over.
    fn writer_connection(target: &PgTarget) -> Result<Client, StoreError> {
        let mut client = target.connect()?;
        client.batch_execute("SET plan_cache_mode = force_custom_plan").map_err(backend)?;
        Ok(client)
    }
}

impl LedgerStore for PgStore {
    type Tx<'a> = PgTx<'a>;

    fn begin(&mut self) -> Result<PgTx<'_>, StoreError> {
        if self.client.is_closed() {
            tracing::warn!("ledger store connection lost; reconnecting");
            self.client = Self::writer_connection(&self.target)?;
            self.statements = StatementCache::default();
        }
        let mut tx = self.client.transaction().map_err(backend)?;
        if !self.sync_each_commit {
            tx.batch_execute("SET LOCAL synchronous_commit = off").map_err(backend)?;
        }
        Ok(PgTx { tx, statements: &mut self.statements, writer: self.writer })
    }

    /// Off: the commit returns before its WAL is flushed. The next commit that waits for the
    /// flush makes every earlier one durable too (the WAL is one sequence).
    fn set_sync_each_commit(&mut self, sync: bool) -> Result<(), StoreError> {
        self.sync_each_commit = sync;
        Ok(())
    }
}

pub struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut StatementCache,
    writer: Writer,
}

impl PgTx<'_> {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.statements.get(&mut self.tx, sql).map_err(backend)?;
        self.tx.query(&statement, params).map_err(backend)
    }
}

fn id_array<I: Copy>(ids: &[I], bytes: impl Fn(I) -> [u8; 16]) -> Vec<Vec<u8>> {
    ids.iter().map(|id| bytes(*id).to_vec()).collect()
}

impl LedgerTx for PgTx<'_> {
    fn find_transfers(&mut self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY($1)");
        let rows = self.query(&sql, &[&id_array(ids, TransferId::to_bytes)])?;
        rows.iter().map(transfer_from_row).collect()
    }

    fn lock_holds(&mut self, pending_ids: &[TransferId]) -> Result<Vec<Hold>, StoreError> {
        if pending_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE pending_id = ANY($1) ORDER BY pending_id FOR UPDATE"
        );
        let rows = self
            .tx
            .query(&sql, &[&id_array(pending_ids, TransferId::to_bytes)])
            .map_err(backend)?;
        rows.iter().map(hold_from_row).collect()
    }

    fn lock_due_holds(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, StoreError> {
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE state = 1 AND expires_at IS NOT NULL \
             AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        let rows = self.query(&sql, &[&(now.0 as i64), &(limit as i64)])?;
        rows.iter().map(hold_from_row).collect()
    }

    fn lock_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        );
        let rows = self.query(&sql, &[&id_array(ids, AccountId::to_bytes)])?;
        rows.iter().map(account_from_row).collect()
    }

    fn reference_data(&mut self) -> Result<ReferenceData, StoreError> {
        reference_data(&mut self.tx)
    }

    fn buffered_with_credit(&mut self) -> Result<Vec<AccountId>, StoreError> {
        let rows = self.query(
            "SELECT DISTINCT r.layout_owner FROM accounts r JOIN accounts o ON o.id = r.layout_owner \
             WHERE r.layout_kind <> 0 AND r.layout_kind = 3 AND o.layout_kind = 2 AND r.credits_posted > r.debits_posted",
            &[],
        )?;
        rows.iter().map(|row| codec::account_id(get(row, 0)?)).collect()
    }

    fn account_layouts(&mut self) -> Result<Vec<(AccountId, AccountLayout)>, StoreError> {
        let rows = self.query(
            "SELECT id, layout_kind, layout_rows FROM accounts WHERE layout_kind <> 0 AND layout_kind IN (1, 2)",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok((
                    codec::account_id(get(row, 0)?)?,
                    codec::layout(
                        i64::from(get::<i16>(row, 1)?),
                        i64::from(get::<i16>(row, 2)?),
                        None,
                    )?,
                ))
            })
            .collect()
    }

    fn lock_head(&mut self) -> Result<JournalHead, StoreError> {
        let rows = self.query(
            "SELECT batch_seq, last_seq, last_timestamp, hash FROM journal_head WHERE id = 1 FOR UPDATE",
            &[],
        )?;
        head_from_row(rows.first().ok_or_else(|| codec::corrupt("journal head row missing"))?)
    }

    fn write(&mut self, batch: &BatchWrite) -> Result<(), StoreError> {
        write::write_group(&mut self.tx, self.statements, &[batch], self.writer).map_err(backend)
    }

    fn write_group(&mut self, batches: &[&BatchWrite]) -> Result<(), StoreError> {
        write::write_group(&mut self.tx, self.statements, batches, self.writer).map_err(backend)
    }

    fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().map_err(|error| {
            if error.code().is_some() {
                backend(error)
            } else {
                // No answer from the server: the commit may or may not have happened.
                StoreError::CommitOutcomeUnknown(error.to_string())
            }
        })
    }
}

fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(backend)
}

fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        id: codec::account_id(get(row, 0)?)?,
        asset: codec::asset_code(get(row, 1)?)?,
        chart_code: ChartCode(codec::u32_column(get(row, 2)?, "chart code")?),
        rule: codec::rule(i64::from(get::<i16>(row, 3)?), get(row, 4)?)?,
        metadata: codec::text(get(row, 5)?)?,
        status: codec::status(i64::from(get::<i16>(row, 6)?))?,
        balances: ledger::Balances {
            debits_pending: codec::amount(get(row, 7)?)?,
            debits_posted: codec::amount(get(row, 8)?)?,
            credits_pending: codec::amount(get(row, 9)?)?,
            credits_posted: codec::amount(get(row, 10)?)?,
        },
        opened_seq: Seq(codec::u64_column(get(row, 11)?, "seq")?),
        opened_at: Timestamp(codec::u64_column(get(row, 12)?, "timestamp")?),
        layout: codec::layout(
            i64::from(get::<i16>(row, 13)?),
            i64::from(get::<i16>(row, 14)?),
            get::<Option<&[u8]>>(row, 15)?,
        )?,
    })
}

fn optional_timestamp(value: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    value.map(|at| codec::u64_column(at, "timestamp").map(Timestamp)).transpose()
}

fn transfer_from_row(row: &Row) -> Result<Transfer, StoreError> {
    let pending: Option<&[u8]> = get(row, 7)?;
    Ok(Transfer {
        seq: Seq(codec::u64_column(get(row, 0)?, "seq")?),
        id: codec::transfer_id(get(row, 1)?)?,
        kind: codec::kind(i64::from(get::<i16>(row, 2)?))?,
        debit_account_id: codec::account_id(get(row, 3)?)?,
        credit_account_id: codec::account_id(get(row, 4)?)?,
        asset: codec::asset_code(get(row, 5)?)?,
        amount: codec::amount(get(row, 6)?)?,
        pending_id: pending.map(codec::transfer_id).transpose()?,
        expires_at: optional_timestamp(get(row, 8)?)?,
        business_code: BusinessCode(codec::u32_column(get(row, 9)?, "business code")?),
        order_ref: codec::text(get(row, 10)?)?,
        timestamp: Timestamp(codec::u64_column(get(row, 11)?, "timestamp")?),
        fingerprint: codec::fingerprint(get(row, 12)?)?,
    })
}

fn hold_from_row(row: &Row) -> Result<Hold, StoreError> {
    Ok(Hold {
        pending_id: codec::transfer_id(get(row, 0)?)?,
        movement: Movement {
            debit_account_id: codec::account_id(get(row, 1)?)?,
            credit_account_id: codec::account_id(get(row, 2)?)?,
            asset: codec::asset_code(get(row, 3)?)?,
            amount: codec::amount(get(row, 4)?)?,
        },
        expires_at: optional_timestamp(get(row, 5)?)?,
        state: codec::hold_state(i64::from(get::<i16>(row, 6)?))?,
        business_code: BusinessCode(codec::u32_column(get(row, 7)?, "business code")?),
    })
}

fn entry_from_row(row: &Row) -> Result<Entry, StoreError> {
    let side = match get::<i16>(row, 2)? {
        1 => Side::Debit,
        2 => Side::Credit,
        other => return Err(codec::corrupt(format!("bad entry side {other}"))),
    };
    Ok(Entry {
        account_id: codec::account_id(get(row, 0)?)?,
        seq: Seq(codec::u64_column(get(row, 1)?, "seq")?),
        side,
        transfer_id: codec::transfer_id(get(row, 3)?)?,
        amount: codec::amount(get(row, 4)?)?,
        balances_after: ledger::Balances {
            debits_pending: codec::amount(get(row, 5)?)?,
            debits_posted: codec::amount(get(row, 6)?)?,
            credits_pending: codec::amount(get(row, 7)?)?,
            credits_posted: codec::amount(get(row, 8)?)?,
        },
    })
}

fn batch_from_row(row: &Row) -> Result<BatchHeader, StoreError> {
    Ok(BatchHeader {
        batch_seq: BatchSeq(codec::u64_column(get(row, 0)?, "batch seq")?),
        first_seq: Seq(codec::u64_column(get(row, 1)?, "seq")?),
        n_records: codec::u32_column(get(row, 2)?, "n_records")?,
        timestamp: Timestamp(codec::u64_column(get(row, 3)?, "timestamp")?),
        prev_hash: codec::hash(get(row, 4)?)?,
        hash: codec::hash(get(row, 5)?)?,
    })
}

fn head_from_row(row: &Row) -> Result<JournalHead, StoreError> {
    Ok(JournalHead {
        batch_seq: BatchSeq(codec::u64_column(get(row, 0)?, "batch seq")?),
        last_seq: Seq(codec::u64_column(get(row, 1)?, "seq")?),
        last_timestamp: Timestamp(codec::u64_column(get(row, 2)?, "timestamp")?),
        hash: codec::hash(get(row, 3)?)?,
    })
}

fn reference_data(client: &mut impl GenericClient) -> Result<ReferenceData, StoreError> {
    let mut assets = HashMap::new();
    for row in client.query("SELECT code, scale FROM assets", &[]).map_err(backend)? {
        let code = codec::asset_code(get(&row, 0)?)?;
        let scale = u8::try_from(get::<i16>(&row, 1)?).map_err(codec::corrupt)?;
        assets.insert(code, Asset::new(code, scale).map_err(codec::corrupt)?);
    }
    let mut charts = HashMap::new();
    for row in client.query("SELECT code, name, class FROM chart", &[]).map_err(backend)? {
        let code = ChartCode(codec::u32_column(get(&row, 0)?, "chart code")?);
        let entry = ChartEntry {
            code,
            name: codec::text(get(&row, 1)?)?,
            class: codec::class(i64::from(get::<i16>(&row, 2)?))?,
        };
        charts.insert(code, entry);
    }
    Ok(ReferenceData { assets, charts })
}

/// The read side: a small pool of connections.
pub struct PgReader {
    target: PgTarget,
    idle: Mutex<Vec<Client>>,
    /// A connection of its own with the lookup of transfers by id prepared: the journal
    /// engine's writer asks it for every batch's ids, and a prepared statement saves a round
    /// trip each time.
    lookup: Mutex<Option<(Client, postgres::Statement)>>,
}

/// Idle reader connections kept for reuse.
const READER_IDLE_MAX: usize = 8;

impl PgReader {
    pub fn connect(target: PgTarget) -> Result<PgReader, StoreError> {
        let reader = PgReader { target, idle: Mutex::new(Vec::new()), lookup: Mutex::new(None) };
        let client = reader.checkout()?;
        reader.checkin(client);
        Ok(reader)
    }

    fn checkout(&self) -> Result<Client, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        match idle {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.target.connect(),
        }
    }

    fn checkin(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < READER_IDLE_MAX && !client.is_closed() {
            idle.push(client);
        }
    }

    /// Runs `read` in one repeatable-read transaction, so multi-query reads see one snapshot.
    fn read<T>(
        &self,
        read: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.checkout()?;
        let result = (|| {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(backend)?;
            let result = read(&mut tx);
            tx.rollback().map_err(backend)?;
            result
        })();
        self.checkin(client);
        result
    }
}

fn limit(page_limit: usize) -> i64 {
    page_limit.clamp(1, ledger::port::PAGE_ROWS_MAX) as i64
}

fn query_all<T>(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    map: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    tx.query(sql, params).map_err(backend)?.iter().map(map).collect()
}

impl LedgerReader for PgReader {
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
            Ok(query_all(tx, &sql, &[&&id.to_bytes()[..]], account_from_row)?.pop())
        })
    }

    fn accounts_at_once(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        self.read(|tx| {
            // One statement is one snapshot, even under READ COMMITTED.
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1)");
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();
            query_all(tx, &sql, &[&keys], account_from_row)
        })
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1");
            Ok(query_all(tx, &sql, &[&&id.to_bytes()[..]], transfer_from_row)?.pop())
        })
    }

    /// One read for every id (the journal engine asks for a batch's ids at once).
    fn transfers(&self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One statement sees one snapshot: no transaction around it, two round trips fewer.
        let ids = id_array(ids, TransferId::to_bytes);
        let mut lookup = self.lookup.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lookup.as_ref().is_none_or(|(client, _)| client.is_closed()) {
            // One generic plan, and an index lookup whatever the table's size: a plan chosen
            // while the table is small would otherwise scan it whole once it has grown, and
            // planning each execution (the writer's way) costs more than the lookup, because
            // the planner estimates `= ANY` element by element.
            let mut client = self.target.connect()?;
            client
                .batch_execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
                .map_err(backend)?;
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY($1)");
            let statement = client.prepare(&sql).map_err(backend)?;
            *lookup = Some((client, statement));
        }
        let Some((client, statement)) = lookup.as_mut() else {
            return Err(StoreError::Backend("the transfer lookup has no connection".into()));
        };
        let rows = client.query(&*statement, &[&ids]).map_err(backend)?;
        rows.iter().map(transfer_from_row).collect()
    }

    fn hold(&self, pending_id: TransferId) -> Result<Option<Hold>, StoreError> {
        self.read(|tx| {
            let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE pending_id = $1");
            Ok(query_all(tx, &sql, &[&&pending_id.to_bytes()[..]], hold_from_row)?.pop())
        })
    }

    fn entries(&self, account_id: AccountId, page: Page<Seq>) -> Result<Vec<Entry>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            );
            let after = page.after.map_or(0, |seq| seq.0 as i64);
            query_all(tx, &sql, &[&&account_id.to_bytes()[..], &after, &limit(page.limit)], entry_from_row)
        })
    }

    fn entry_as_of(&self, account_id: AccountId, seq: Seq) -> Result<Option<Entry>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1"
            );
            Ok(query_all(tx, &sql, &[&&account_id.to_bytes()[..], &(seq.0 as i64)], entry_from_row)?.pop())
        })
    }

    fn seq_at(&self, at: Timestamp) -> Result<Seq, StoreError> {
        self.read(|tx| {
            let row = tx
                .query_opt(
                    "SELECT first_seq + n_records - 1 FROM journal_batches WHERE timestamp <= $1 \
                     ORDER BY batch_seq DESC LIMIT 1",
                    &[&(at.0 as i64)],
                )
                .map_err(backend)?;
            match row {
                Some(row) => Ok(Seq(codec::u64_column(get(&row, 0)?, "seq")?)),
                None => Ok(Seq(0)),
            }
        })
    }

    fn trial_balance(&self) -> Result<Vec<TrialBalanceLine>, StoreError> {
        self.read(|tx| {
            let rows = tx
                .query(
                    // sum(bigint) is numeric: exact past i64::MAX, read as text.
                    "SELECT asset, chart_code, count(*)::bigint, sum(debits_pending)::text, \
                     sum(debits_posted)::text, sum(credits_pending)::text, sum(credits_posted)::text \
                     FROM accounts GROUP BY asset, chart_code ORDER BY asset, chart_code",
                    &[],
                )
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    Ok(TrialBalanceLine {
                        asset: codec::asset_code(get(row, 0)?)?,
                        chart_code: ChartCode(codec::u32_column(get(row, 1)?, "chart code")?),
                        n_accounts: codec::u64_column(get(row, 2)?, "count")?,
                        balances: BalanceTotals {
                            debits_pending: codec::decimal_total(get(row, 3)?)?,
                            debits_posted: codec::decimal_total(get(row, 4)?)?,
                            credits_pending: codec::decimal_total(get(row, 5)?)?,
                            credits_posted: codec::decimal_total(get(row, 6)?)?,
                        },
                    })
                })
                .collect()
        })
    }

    fn head(&self) -> Result<JournalHead, StoreError> {
        self.read(|tx| {
            let row = tx
                .query_one("SELECT batch_seq, last_seq, last_timestamp, hash FROM journal_head WHERE id = 1", &[])
                .map_err(backend)?;
            head_from_row(&row)
        })
    }

    fn batches(&self, page: Page<BatchSeq>) -> Result<Vec<BatchHeader>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {BATCH_COLUMNS} FROM journal_batches WHERE batch_seq > $1 ORDER BY batch_seq LIMIT $2"
            );
            let after = page.after.map_or(0, |seq| seq.0 as i64);
            query_all(tx, &sql, &[&after, &limit(page.limit)], batch_from_row)
        })
    }

    fn records(&self, first: Seq, last: Seq) -> Result<(Vec<Record>, Vec<Entry>), StoreError> {
        self.read(|tx| {
            let (first, last) = (first.0 as i64, last.0 as i64);
            let ReferenceData { assets, charts } = reference_data(tx)?;
            let mut records = Vec::new();
            for row in tx
                .query("SELECT code, seq FROM assets WHERE seq BETWEEN $1 AND $2", &[&first, &last])
                .map_err(backend)?
            {
                let code = codec::asset_code(get(&row, 0)?)?;
                let asset = assets.get(&code).copied().ok_or_else(|| codec::corrupt("asset"))?;
                records.push(Record::AssetDefined { seq: Seq(codec::u64_column(get(&row, 1)?, "seq")?), asset });
            }
            for row in tx
                .query("SELECT code, seq FROM chart WHERE seq BETWEEN $1 AND $2", &[&first, &last])
                .map_err(backend)?
            {
                let code = ChartCode(codec::u32_column(get(&row, 0)?, "chart code")?);
                let entry = charts.get(&code).cloned().ok_or_else(|| codec::corrupt("chart"))?;
                records.push(Record::ChartDefined { seq: Seq(codec::u64_column(get(&row, 1)?, "seq")?), entry });
            }
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE opened_seq BETWEEN $1 AND $2");
            records.extend(query_all(tx, &sql, &[&first, &last], account_from_row)?.into_iter().map(Record::AccountOpened));
            for row in tx
                .query(
                    "SELECT seq, account_id, status FROM account_status_log WHERE seq BETWEEN $1 AND $2",
                    &[&first, &last],
                )
                .map_err(backend)?
            {
                records.push(Record::AccountStatusSet {
                    seq: Seq(codec::u64_column(get(&row, 0)?, "seq")?),
                    account_id: codec::account_id(get(&row, 1)?)?,
                    status: codec::status(i64::from(get::<i16>(&row, 2)?))?,
                });
            }
            let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE seq BETWEEN $1 AND $2");
            records.extend(query_all(tx, &sql, &[&first, &last], transfer_from_row)?.into_iter().map(Record::Transfer));
            records.sort_by_key(Record::seq);
            let sql = format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq BETWEEN $1 AND $2");
            let entries = query_all(tx, &sql, &[&first, &last], entry_from_row)?;
            Ok((records, entries))
        })
    }

    fn accounts(&self, page: Page<AccountId>) -> Result<Vec<Account>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id > $1 ORDER BY id LIMIT $2"
            );
            let after = page.after.map_or([0u8; 16], |id| id.to_bytes());
            query_all(tx, &sql, &[&&after[..], &limit(page.limit)], account_from_row)
        })
    }

    fn pending_holds(&self, page: Page<TransferId>) -> Result<Vec<Hold>, StoreError> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE state = 1 AND pending_id > $1 ORDER BY pending_id LIMIT $2"
            );
            let after = page.after.map_or([0u8; 16], |id| id.to_bytes());
            query_all(tx, &sql, &[&&after[..], &limit(page.limit)], hold_from_row)
        })
    }
}
