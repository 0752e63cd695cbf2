//! The payment core's orders, outbox events and parties, on SQLite (`orders.db`, its own
//! file, `synchronous = FULL`: an acknowledged order is on disk) and PostgreSQL (the shared
//! schema, migration 5).
//!
//! The order itself is stored as JSON (`payments::Order`, tagged by kind); the columns beside
//! it are what queries filter and sum on. Both backends run the same SQL text: it is written
//! with `?N` parameters and rewritten to `$N` for PostgreSQL.

use std::path::Path;
use std::sync::Mutex;

use channels::ChannelId;
use executor::port::{
    ChannelLegPage, GuardedInsert, Inserted, MerchantTotals, NewEvent, OrderQuery, OrderRecord,
    OrderStore, OrderStoreError, Party, PartyKind, RefundTotals, StoredEvent,
};
use money::{Amount, AssetCode};
use payments::{Order, OrderId, OrderKind};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::pool::Pool;
use crate::postgres::PgTarget;

mod columns;
mod import;
mod legs;
mod queries;
use columns::{event_params, insert_params, update_params};
use queries::{
    created_between_query, cursor_params, list_sql, unfinished_params, MERCHANT_TOTALS,
    NEEDING_OPERATOR, REFUND_TOTALS,
};

pub(crate) const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_orders.sql")),
    (2, include_str!("sqlite/0002_orders_by_created.sql")),
    (3, include_str!("sqlite/0003_orders_channel_legs.sql")),
    (4, include_str!("sqlite/0004_orders_body_version.sql")),
    (5, include_str!("sqlite/0005_orders_needing_operator.sql")),
];

const INSERT: &str =
    "INSERT INTO orders (id, tenant, kind, reference, request_fingerprint, parent, \
     status, is_final, customer, merchant, amount_minor, fee_minor, body, version, created_at_ms, \
     updated_at_ms, asset, leg_minor, from_settled, channel, channel_status, channel_ref, \
     channel_fee_minor, body_version, channel_at_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?14) \
     ON CONFLICT (id) DO NOTHING";
// The amount too: a captured authorisation's amount is what was captured. The channel
// columns are stamped with the version they were computed at (see `legs`).
const UPDATE: &str = "UPDATE orders SET status = ?2, is_final = ?3, fee_minor = ?4, body = ?5, \
     version = ?6, updated_at_ms = ?7, amount_minor = ?9, channel = ?10, channel_status = ?11, \
     channel_ref = ?12, channel_fee_minor = ?13, body_version = ?14, channel_at_version = ?6 \
     WHERE id = ?1 AND version = ?8";
const SELECT: &str = "SELECT tenant, reference, request_fingerprint, parent, body, version, \
     created_at_ms, updated_at_ms, body_version FROM orders";
const INSERT_EVENT: &str = "INSERT INTO order_events (tenant, order_id, event_type, payload, \
     created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Unfinished orders from a cursor `(?2, ?3)`, oldest change first.
const UNFINISHED: &str = "SELECT tenant, reference, request_fingerprint, parent, body, version, \
     created_at_ms, updated_at_ms, body_version FROM orders WHERE is_final = 0 AND updated_at_ms <= ?1 \
     AND (updated_at_ms > ?2 OR (updated_at_ms = ?2 AND id > ?3)) \
     ORDER BY updated_at_ms, id LIMIT ?4";
const SELECT_PARTIES: &str = "SELECT body FROM parties WHERE kind = ?1 ORDER BY tenant, id";
const SELECT_EVENTS: &str = "SELECT seq, tenant, order_id, event_type, payload, created_at_ms \
     FROM order_events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
const INSERT_PARTY: &str = "INSERT INTO parties (tenant, kind, id, body, created_at_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, kind, id) DO NOTHING";
const SELECT_PARTY: &str = "SELECT body FROM parties WHERE tenant = ?1 AND kind = ?2 AND id = ?3";

pub(crate) fn backend(error: impl std::fmt::Display) -> OrderStoreError {
    OrderStoreError::Backend(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> OrderStoreError {
    OrderStoreError::Corrupt(error.to_string())
}

pub(crate) fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

pub(crate) fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A row limit as bound: past `i64::MAX` it is `i64::MAX` (cast, it would turn negative,
/// which SQLite reads as "no limit" and PostgreSQL refuses).
pub(crate) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn u64_of(value: i64) -> Result<u64, OrderStoreError> {
    u64::try_from(value).map_err(corrupt)
}

/// One bound value; both backends bind from these.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(text) => text.to_sql(),
            Param::OptText(text) => text.to_sql(),
            Param::Int(value) => value.to_sql(),
            Param::OptInt(value) => value.to_sql(),
        }
    }
}

pub(crate) fn pg_params(params: &[Param]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn postgres::types::ToSql + Sync) {
            match param {
                Param::Text(text) => text,
                Param::OptText(text) => text,
                Param::Int(value) => value,
                Param::OptInt(value) => value,
            }
        })
        .collect()
}

fn refund_totals([refunded, fee, leg]: [i64; 3]) -> Result<RefundTotals, OrderStoreError> {
    let amount = |value: i64| Amount::from_stored(value).ok_or_else(|| corrupt("refund total"));
    Ok(RefundTotals {
        refunded: amount(refunded)?,
        fee_returned: amount(fee)?,
        leg_returned: amount(leg)?,
    })
}

/// The columns of [`SELECT`], as read.
struct RawOrder {
    tenant: String,
    reference: String,
    request_fingerprint: String,
    parent: Option<String>,
    body: String,
    version: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
    /// The body's stored form (`payments::order::STORED_FORM_VERSION` when this release wrote it).
    body_version: i64,
}

impl RawOrder {
    fn into_record(self) -> Result<OrderRecord, OrderStoreError> {
        Ok(OrderRecord {
            tenant: self.tenant,
            reference: self.reference,
            request_fingerprint: self.request_fingerprint,
            parent: self.parent.map(OrderId::new).transpose().map_err(corrupt)?,
            order: read_body(self.body_version, &self.body)?,
            version: u64_of(self.version)?,
            created_at_ms: u64_of(self.created_at_ms)?,
            updated_at_ms: u64_of(self.updated_at_ms)?,
        })
    }
}

/// A stored body as an order, by the form it was written in.
fn read_body(body_version: i64, body: &str) -> Result<Order, OrderStoreError> {
    let version = u32::try_from(body_version).map_err(corrupt)?;
    payments::order::read_stored(version, body).map_err(corrupt)
}

fn party_body(party: &Party) -> Result<String, OrderStoreError> {
    serde_json::to_string(party).map_err(backend)
}

fn event_of(
    seq: i64,
    tenant: String,
    order_id: String,
    event_type: String,
    payload: String,
    created_at_ms: i64,
) -> Result<StoredEvent, OrderStoreError> {
    Ok(StoredEvent {
        seq: u64_of(seq)?,
        tenant,
        order_id: OrderId::new(order_id).map_err(corrupt)?,
        event_type,
        payload: serde_json::from_str(&payload).map_err(corrupt)?,
        created_at_ms: u64_of(created_at_ms)?,
    })
}

// ---- SQLite --------------------------------------------------------------------------------

/// Orders on SQLite. Inserts and state updates — two per order, each durable before it is
/// acknowledged — go to one writer thread that commits whatever is waiting as one
/// transaction (natural batching, as the ledger's pipeline does): concurrent orders share an
/// fsync instead of queueing for one each. Reads go to a few read connections; parties and
/// the guarded inserts of refunds and settlements to one connection of their own, off the
/// async runtime.
///
/// Why reads and guarded writes are apart (measured, docs/capacity.md): on one shared
/// connection a refund holding SQLite's write lock — or sleeping in its busy handler while
/// the writer commits — held every read behind its mutex, on the runtime's workers; with a
/// hot merchant's refunds the node stalled with its cores idle.
///
/// The writer and the guarded writes take turns (`turn`) rather than meet in SQLite's busy
/// handler: that handler sleeps and polls, and a writer that commits back to back wins
/// almost every poll — a refund at the knee waited over a second. The writer hands the
/// turn on fairly after each commit, so a guarded write waits at most one commit.
pub struct SqliteOrderStore {
    readers: Pool<Connection>,
    guarded: Mutex<Connection>,
    turn: std::sync::Arc<parking_lot::Mutex<()>>,
    writes: std::sync::mpsc::SyncSender<WriteOp>,
}

/// Read connections of one [`SqliteOrderStore`]: WAL readers never wait for the writer, so a
/// few are enough for the runtime's workers and the blocking threads that read.
pub const SQLITE_ORDER_READERS: usize = 4;

/// Most writes committed in one transaction.
const WRITE_BATCH_MAX: usize = 512;
/// Most writes waiting for the writer: past it a writer waits for room (each is off the
/// async runtime), so a slow disk slows the callers instead of growing a queue without end.
const WRITE_QUEUE_MAX: usize = 4 * WRITE_BATCH_MAX;

enum WriteOp {
    Insert {
        id: OrderId,
        params: Vec<Param>,
        reply: std::sync::mpsc::SyncSender<Result<Inserted, OrderStoreError>>,
    },
    Update {
        id: OrderId,
        params: Vec<Param>,
        events: Vec<Vec<Param>>,
        reply: std::sync::mpsc::SyncSender<Result<bool, OrderStoreError>>,
    },
}

impl WriteOp {
    fn order_id(&self) -> &str {
        match self {
            WriteOp::Insert { id, .. } | WriteOp::Update { id, .. } => id.as_str(),
        }
    }
}

enum WriteResult {
    Inserted(Inserted),
    Updated(bool),
}

/// The next group for a writer: the first write waiting, and whatever else is waiting.
fn next_batch(ops: &std::sync::mpsc::Receiver<WriteOp>) -> Option<Vec<WriteOp>> {
    let mut batch = vec![ops.recv().ok()?];
    while batch.len() < WRITE_BATCH_MAX {
        match ops.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Answers each write of a group with its own result.
fn reply(batch: Vec<WriteOp>, results: Vec<Result<WriteResult, OrderStoreError>>) {
    for (op, result) in batch.into_iter().zip(results) {
        match (op, result) {
            (WriteOp::Insert { reply, .. }, Ok(WriteResult::Inserted(inserted))) => {
                let _ = reply.send(Ok(inserted));
            }
            (WriteOp::Update { reply, .. }, Ok(WriteResult::Updated(updated))) => {
                let _ = reply.send(Ok(updated));
            }
            (WriteOp::Insert { reply, .. }, Err(error)) => drop(reply.send(Err(error))),
            (WriteOp::Update { reply, .. }, Err(error)) => drop(reply.send(Err(error))),
            _ => unreachable!("one result per write, of its kind"),
        }
    }
}

/// Hands a write to a writer thread and waits for its commit (off the async runtime's
/// workers).
fn hand_to_writer<T>(
    writes: &std::sync::mpsc::SyncSender<WriteOp>,
    op: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, OrderStoreError>>) -> WriteOp,
) -> Result<T, OrderStoreError> {
    crate::off_runtime(|| {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        writes.send(op(reply)).map_err(|_| backend("the order writer stopped"))?;
        answer.recv().map_err(|_| backend("the order writer stopped"))?
    })
}

fn write_loop(
    mut connection: Connection,
    ops: std::sync::mpsc::Receiver<WriteOp>,
    turn: std::sync::Arc<parking_lot::Mutex<()>>,
) {
    while let Some(batch) = next_batch(&ops) {
        let my_turn = turn.lock();
        let committed = commit_writes(&mut connection, &batch);
        // Fair: a guarded write waiting for the turn gets it before the next batch.
        parking_lot::MutexGuard::unlock_fair(my_turn);
        let results = match committed {
            Ok(results) => results.into_iter().map(Ok).collect(),
            // Nothing of the batch was committed: every writer gets the error.
            Err(error) => {
                batch.iter().map(|_| Err(OrderStoreError::Backend(error.to_string()))).collect()
            }
        };
        reply(batch, results);
    }
}

fn commit_writes(
    connection: &mut Connection,
    batch: &[WriteOp],
) -> Result<Vec<WriteResult>, OrderStoreError> {
    let tx =
        connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        results.push(match op {
            WriteOp::Insert { id, params, .. } => {
                if tx.execute(INSERT, rusqlite::params_from_iter(params)).map_err(backend)? == 0 {
                    let existing = sqlite_get(&tx, id)?
                        .ok_or_else(|| corrupt("an order vanished during its insert"))?;
                    WriteResult::Inserted(Inserted::Existing(Box::new(existing)))
                } else {
                    WriteResult::Inserted(Inserted::Created)
                }
            }
            WriteOp::Update { params, events, .. } => {
                // A version conflict writes nothing, its events neither.
                if tx.execute(UPDATE, rusqlite::params_from_iter(params)).map_err(backend)? == 0 {
                    WriteResult::Updated(false)
                } else {
                    for event in events {
                        tx.execute(INSERT_EVENT, rusqlite::params_from_iter(event))
                            .map_err(backend)?;
                    }
                    WriteResult::Updated(true)
                }
            }
        });
    }
    tx.commit().map_err(backend)?;
    Ok(results)
}

fn sqlite_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawOrder> {
    Ok(RawOrder {
        tenant: row.get(0)?,
        reference: row.get(1)?,
        request_fingerprint: row.get(2)?,
        parent: row.get(3)?,
        body: row.get(4)?,
        version: row.get(5)?,
        created_at_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
        body_version: row.get(8)?,
    })
}

fn sqlite_orders(
    connection: &Connection,
    sql: &str,
    params: &[Param],
) -> Result<Vec<OrderRecord>, OrderStoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), sqlite_order)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter().map(RawOrder::into_record).collect()
}

fn sqlite_get(
    connection: &Connection,
    id: &OrderId,
) -> Result<Option<OrderRecord>, OrderStoreError> {
    Ok(sqlite_orders(
        connection,
        &format!("{SELECT} WHERE id = ?1"),
        &[Param::Text(id.to_string())],
    )?
    .pop())
}

impl SqliteOrderStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteOrderStore, OrderStoreError> {
        let mut connection = Connection::open(path.as_ref()).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(backend)?;
        crate::sqlite::migrate(&mut connection, SQLITE_MIGRATIONS).map_err(backend)?;
        let open = || -> Result<Connection, OrderStoreError> {
            let connection = Connection::open(path.as_ref()).map_err(backend)?;
            connection
                .execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
                )
                .map_err(backend)?;
            Ok(connection)
        };
        let writer = open()?;
        let readers = (0..SQLITE_ORDER_READERS).map(|_| open()).collect::<Result<Vec<_>, _>>()?;
        let (writes, ops) = std::sync::mpsc::sync_channel(WRITE_QUEUE_MAX);
        let turn = std::sync::Arc::new(parking_lot::Mutex::new(()));
        let writer_turn = turn.clone();
        std::thread::Builder::new()
            .name("orders-writer".into())
            .spawn(move || write_loop(writer, ops, writer_turn))
            .map_err(backend)?;
        Ok(SqliteOrderStore {
            readers: Pool::new(readers),
            guarded: Mutex::new(connection),
            turn,
            writes,
        })
    }

    /// Hands `op` to the writer and waits for its commit.
    fn write<T>(
        &self,
        op: impl FnOnce(std::sync::mpsc::SyncSender<Result<T, OrderStoreError>>) -> WriteOp,
    ) -> Result<T, OrderStoreError> {
        hand_to_writer(&self.writes, op)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.readers.lock()
    }

    /// The connection of the guarded writes, and the writer's turn (so SQLite's write lock
    /// is free when it begins); its caller is off the runtime, since the turn may be the
    /// writer's for a commit's while.
    fn guarded(&self) -> (parking_lot::MutexGuard<'_, ()>, std::sync::MutexGuard<'_, Connection>) {
        let connection = self.guarded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (self.turn.lock(), connection)
    }

    /// An insert guarded by totals read in the same IMMEDIATE transaction (SQLite's write
    /// lock held from the start): the order `id` if it exists, else `build` from the totals
    /// inserted, or refused.
    fn guarded_insert<T>(
        &self,
        id: &OrderId,
        totals: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, OrderStoreError>,
        build: &mut dyn FnMut(T) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        crate::off_runtime(|| {
            let (_turn, mut connection) = self.guarded();
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            if let Some(existing) = sqlite_get(&tx, id)? {
                return Ok(GuardedInsert::Existing(existing));
            }
            let Some(record) = build(totals(&tx)?) else {
                return Ok(GuardedInsert::Refused);
            };
            tx.execute(INSERT, rusqlite::params_from_iter(&insert_params(&record)?))
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(GuardedInsert::Created(record))
        })
    }
}

impl OrderStore for SqliteOrderStore {
    fn insert(&self, record: &OrderRecord) -> Result<Inserted, OrderStoreError> {
        let params = insert_params(record)?;
        let id = record.id().clone();
        self.write(|reply| WriteOp::Insert { id, params, reply })
    }

    fn insert_refund(
        &self,
        refund_id: &OrderId,
        payment: &OrderId,
        build: &mut dyn FnMut(RefundTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        // Under the write lock before the totals are read, so two refunds of one payment can
        // never both read the same totals.
        let totals = |tx: &rusqlite::Transaction<'_>| {
            tx.query_row(REFUND_TOTALS, [payment.as_str()], |row| {
                Ok([row.get(0)?, row.get(1)?, row.get(2)?])
            })
            .map_err(backend)
            .and_then(refund_totals)
        };
        self.guarded_insert(refund_id, totals, build)
    }

    fn insert_settlement(
        &self,
        settlement_id: &OrderId,
        merchant: &str,
        asset: AssetCode,
        cutoff_ms: u64,
        build: &mut dyn FnMut(MerchantTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        // Totals and insert under the write lock, so settlement runs never overlap.
        let totals = |tx: &rusqlite::Transaction<'_>| {
            tx.query_row(
                MERCHANT_TOTALS,
                rusqlite::params![merchant, asset.as_str(), i64_of(cutoff_ms)],
                |row| {
                    Ok(MerchantTotals {
                        payments_net_minor: row.get(0)?,
                        refunds_net_minor: row.get(1)?,
                        settled_minor: row.get(2)?,
                    })
                },
            )
            .map_err(backend)
        };
        self.guarded_insert(settlement_id, totals, build)
    }

    fn parties(&self, kind: PartyKind) -> Result<Vec<Party>, OrderStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(SELECT_PARTIES).map_err(backend)?;
        let bodies = statement
            .query_map([kind.as_str()], |row| row.get::<_, String>(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        bodies.iter().map(|body| serde_json::from_str(body).map_err(corrupt)).collect()
    }

    fn update(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<bool, OrderStoreError> {
        let params = update_params(record, expected_version)?;
        let events = events.iter().map(|event| event_params(record, event)).collect();
        let id = record.id().clone();
        self.write(|reply| WriteOp::Update { id, params, events, reply })
    }

    fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, OrderStoreError> {
        sqlite_get(&self.lock(), id)
    }

    fn list(&self, query: &OrderQuery) -> Result<Vec<OrderRecord>, OrderStoreError> {
        let (sql, params) = list_sql(query);
        sqlite_orders(&self.lock(), &sql, &params)
    }

    fn unfinished_after(
        &self,
        updated_before_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        sqlite_orders(&self.lock(), UNFINISHED, &unfinished_params(updated_before_ms, after, limit))
    }

    fn needing_operator(
        &self,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        let records = sqlite_orders(&self.lock(), NEEDING_OPERATOR, &cursor_params(after, limit))?;
        Ok(records.into_iter().filter(|r| r.order.needs_operator()).collect())
    }

    fn created_between(
        &self,
        kinds: &[OrderKind],
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        let (sql, params) =
            created_between_query(queries::Dialect::Sqlite, kinds, from_ms, to_ms, after, limit);
        sqlite_orders(&self.lock(), &sql, &params)
    }

    fn channel_legs_between(
        &self,
        channel: &ChannelId,
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<ChannelLegPage, OrderStoreError> {
        let (sql, params) =
            legs::query(queries::Dialect::Sqlite, channel, from_ms, to_ms, after, limit);
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&sql).map_err(backend)?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(&params), legs::sqlite_leg)
            .map_err(backend)?;
        legs::page(rows.map(|row| row.map_err(backend)), channel, limit)
    }

    fn children_of(&self, parent: &OrderId) -> Result<Vec<OrderRecord>, OrderStoreError> {
        sqlite_orders(
            &self.lock(),
            &format!("{SELECT} WHERE parent = ?1 ORDER BY created_at_ms, id"),
            &[Param::Text(parent.to_string())],
        )
    }

    fn events(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, OrderStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(SELECT_EVENTS).map_err(backend)?;
        let rows = statement
            .query_map(rusqlite::params![tenant, i64_of(after_seq), limit_of(limit)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<(i64, String, String, String, String, i64)>>>()
            .map_err(backend)?;
        rows.into_iter().map(|(a, b, c, d, e, f)| event_of(a, b, c, d, e, f)).collect()
    }

    fn put_party(&self, party: &Party) -> Result<Option<Party>, OrderStoreError> {
        let body = party_body(party)?;
        crate::off_runtime(|| {
            let (_turn, connection) = self.guarded();
            let n = connection
                .execute(
                    INSERT_PARTY,
                    rusqlite::params![
                        party.tenant,
                        party.kind.as_str(),
                        party.id,
                        body,
                        i64_of(party.created_at_ms)
                    ],
                )
                .map_err(backend)?;
            if n == 1 {
                return Ok(None);
            }
            sqlite_party(&connection, &party.tenant, party.kind, &party.id)
        })
    }

    fn get_party(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
    ) -> Result<Option<Party>, OrderStoreError> {
        sqlite_party(&self.lock(), tenant, kind, id)
    }
}

fn sqlite_party(
    connection: &Connection,
    tenant: &str,
    kind: PartyKind,
    id: &str,
) -> Result<Option<Party>, OrderStoreError> {
    let body: Option<String> = connection
        .query_row(SELECT_PARTY, rusqlite::params![tenant, kind.as_str(), id], |row| row.get(0))
        .optional()
        .map_err(backend)?;
    body.map(|body| serde_json::from_str(&body).map_err(corrupt)).transpose()
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/// Orders on PostgreSQL. Inserts and state updates go to one writer connection per node
/// that commits whatever is waiting as one transaction, as on SQLite: concurrent orders
/// share a commit (one WAL flush, one BEGIN and COMMIT) instead of paying one each — on this
/// machine PostgreSQL's CPU is what limits a node (docs/capacity.md). Reads, parties and the
/// guarded inserts use a few more connections.
///
/// Several nodes write to one database, so a group takes its rows' locks in order of order
/// id (no two groups can deadlock on them), and a group that fails — a deadlock all the
/// same, a constraint — is retried one write per transaction, so only the failing write
/// fails.
pub struct PgOrderStore {
    clients: Pool<postgres::Client>,
    writes: std::sync::mpsc::SyncSender<WriteOp>,
}

/// Connections of one [`PgOrderStore`].
pub const PG_ORDER_CONNECTIONS: usize = 8;

fn pg_order(row: &postgres::Row) -> Result<OrderRecord, OrderStoreError> {
    RawOrder {
        tenant: row.try_get(0).map_err(backend)?,
        reference: row.try_get(1).map_err(backend)?,
        request_fingerprint: row.try_get(2).map_err(backend)?,
        parent: row.try_get(3).map_err(backend)?,
        body: row.try_get(4).map_err(backend)?,
        version: row.try_get(5).map_err(backend)?,
        created_at_ms: row.try_get(6).map_err(backend)?,
        updated_at_ms: row.try_get(7).map_err(backend)?,
        body_version: row.try_get(8).map_err(backend)?,
    }
    .into_record()
}

fn pg_orders(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[Param],
) -> Result<Vec<OrderRecord>, OrderStoreError> {
    client.query(&pg(sql), &pg_params(params)).map_err(backend)?.iter().map(pg_order).collect()
}

fn pg_get(
    client: &mut impl postgres::GenericClient,
    id: &OrderId,
) -> Result<Option<OrderRecord>, OrderStoreError> {
    Ok(pg_orders(client, &format!("{SELECT} WHERE id = ?1"), &[Param::Text(id.to_string())])?.pop())
}

fn pg_write_loop(mut client: postgres::Client, ops: std::sync::mpsc::Receiver<WriteOp>) {
    while let Some(batch) = next_batch(&ops) {
        // In order of order id (stable: one order's writes keep their order), so that two
        // nodes' groups lock their rows in one order.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| batch[a].order_id().cmp(batch[b].order_id()));
        let ordered: Vec<&WriteOp> = order.iter().map(|&i| &batch[i]).collect();
        let mut results: Vec<Option<Result<WriteResult, OrderStoreError>>> =
            batch.iter().map(|_| None).collect();
        match pg_commit_writes(&mut client, &ordered) {
            Ok(committed) => {
                for (i, result) in order.iter().zip(committed) {
                    results[*i] = Some(Ok(result));
                }
            }
            // Nothing of the group was committed: each write again on its own.
            Err(_) => {
                for &i in &order {
                    let alone = pg_commit_writes(&mut client, &[&batch[i]]);
                    results[i] = Some(alone.map(|mut one| one.remove(0)));
                }
            }
        }
        let results = results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(backend("a write was not run"))))
            .collect();
        reply(batch, results);
    }
}

fn pg_commit_writes(
    client: &mut postgres::Client,
    batch: &[&WriteOp],
) -> Result<Vec<WriteResult>, OrderStoreError> {
    let mut tx = client.transaction().map_err(backend)?;
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        results.push(match op {
            WriteOp::Insert { id, params, .. } => {
                if tx.execute(&pg(INSERT), &pg_params(params)).map_err(backend)? == 0 {
                    let existing = pg_get(&mut tx, id)?
                        .ok_or_else(|| corrupt("an order vanished during its insert"))?;
                    WriteResult::Inserted(Inserted::Existing(Box::new(existing)))
                } else {
                    WriteResult::Inserted(Inserted::Created)
                }
            }
            WriteOp::Update { params, events, .. } => {
                // A version conflict writes nothing, its events neither.
                if tx.execute(&pg(UPDATE), &pg_params(params)).map_err(backend)? == 0 {
                    WriteResult::Updated(false)
                } else {
                    for event in events {
                        tx.execute(&pg(INSERT_EVENT), &pg_params(event)).map_err(backend)?;
                    }
                    WriteResult::Updated(true)
                }
            }
        });
    }
    tx.commit().map_err(backend)?;
    Ok(results)
}

impl PgOrderStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgOrderStore, OrderStoreError> {
        target.migrate().map_err(backend)?;
        let clients = (0..PG_ORDER_CONNECTIONS)
            .map(|_| target.connect_client().map_err(backend))
            .collect::<Result<Vec<_>, _>>()?;
        let writer = target.connect_client().map_err(backend)?;
        let (writes, ops) = std::sync::mpsc::sync_channel(WRITE_QUEUE_MAX);
        std::thread::Builder::new()
            .name("orders-writer".into())
            .spawn(move || pg_write_loop(writer, ops))
            .map_err(backend)?;
        Ok(PgOrderStore { clients: Pool::new(clients), writes })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, postgres::Client> {
        self.clients.lock()
    }
}

impl OrderStore for PgOrderStore {
    fn insert(&self, record: &OrderRecord) -> Result<Inserted, OrderStoreError> {
        let params = insert_params(record)?;
        let id = record.id().clone();
        hand_to_writer(&self.writes, |reply| WriteOp::Insert { id, params, reply })
    }

    fn insert_refund(
        &self,
        refund_id: &OrderId,
        payment: &OrderId,
        build: &mut dyn FnMut(RefundTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        crate::off_runtime(|| {
            let mut client = self.lock();
            let mut tx = client.transaction().map_err(backend)?;
            // The payment's row lock serialises its refunds across every node.
            tx.execute(&pg("SELECT 1 FROM orders WHERE id = ?1 FOR UPDATE"), &[&payment.as_str()])
                .map_err(backend)?;
            if let Some(existing) = pg_get(&mut tx, refund_id)? {
                return Ok(GuardedInsert::Existing(existing));
            }
            let row = tx.query_one(&pg(REFUND_TOTALS), &[&payment.as_str()]).map_err(backend)?;
            let totals = refund_totals([
                row.try_get(0).map_err(backend)?,
                row.try_get(1).map_err(backend)?,
                row.try_get(2).map_err(backend)?,
            ])?;
            let Some(record) = build(totals) else {
                return Ok(GuardedInsert::Refused);
            };
            tx.execute(&pg(INSERT), &pg_params(&insert_params(&record)?)).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(GuardedInsert::Created(record))
        })
    }

    fn insert_settlement(
        &self,
        settlement_id: &OrderId,
        merchant: &str,
        asset: AssetCode,
        cutoff_ms: u64,
        build: &mut dyn FnMut(MerchantTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError> {
        crate::off_runtime(|| {
            let mut client = self.lock();
            let mut tx = client.transaction().map_err(backend)?;
            // One settlement run per merchant at a time, across every node.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&merchant])
                .map_err(backend)?;
            if let Some(existing) = pg_get(&mut tx, settlement_id)? {
                return Ok(GuardedInsert::Existing(existing));
            }
            let row = tx
                .query_one(&pg(MERCHANT_TOTALS), &[&merchant, &asset.as_str(), &i64_of(cutoff_ms)])
                .map_err(backend)?;
            let totals = MerchantTotals {
                payments_net_minor: row.try_get(0).map_err(backend)?,
                refunds_net_minor: row.try_get(1).map_err(backend)?,
                settled_minor: row.try_get(2).map_err(backend)?,
            };
            let Some(record) = build(totals) else {
                return Ok(GuardedInsert::Refused);
            };
            tx.execute(&pg(INSERT), &pg_params(&insert_params(&record)?)).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(GuardedInsert::Created(record))
        })
    }

    fn parties(&self, kind: PartyKind) -> Result<Vec<Party>, OrderStoreError> {
        crate::off_runtime(|| {
            let rows =
                self.lock().query(&pg(SELECT_PARTIES), &[&kind.as_str()]).map_err(backend)?;
            rows.iter()
                .map(|row| {
                    let body: String = row.try_get(0).map_err(backend)?;
                    serde_json::from_str(&body).map_err(corrupt)
                })
                .collect()
        })
    }

    fn update(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<bool, OrderStoreError> {
        let params = update_params(record, expected_version)?;
        let events = events.iter().map(|event| event_params(record, event)).collect();
        let id = record.id().clone();
        hand_to_writer(&self.writes, |reply| WriteOp::Update { id, params, events, reply })
    }

    fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| pg_get(&mut *self.lock(), id))
    }

    fn list(&self, query: &OrderQuery) -> Result<Vec<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| {
            let (sql, params) = list_sql(query);
            pg_orders(&mut *self.lock(), &sql, &params)
        })
    }

    fn unfinished_after(
        &self,
        updated_before_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| {
            let params = unfinished_params(updated_before_ms, after, limit);
            pg_orders(&mut *self.lock(), UNFINISHED, &params)
        })
    }

    fn needing_operator(
        &self,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| {
            let records =
                pg_orders(&mut *self.lock(), NEEDING_OPERATOR, &cursor_params(after, limit))?;
            Ok(records.into_iter().filter(|r| r.order.needs_operator()).collect())
        })
    }

    fn created_between(
        &self,
        kinds: &[OrderKind],
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| {
            let (sql, params) = created_between_query(
                queries::Dialect::Postgres,
                kinds,
                from_ms,
                to_ms,
                after,
                limit,
            );
            pg_orders(&mut *self.lock(), &sql, &params)
        })
    }

    fn channel_legs_between(
        &self,
        channel: &ChannelId,
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<ChannelLegPage, OrderStoreError> {
        crate::off_runtime(|| {
            let (sql, params) =
                legs::query(queries::Dialect::Postgres, channel, from_ms, to_ms, after, limit);
            // Streamed: rows are decoded as the server sends them, not after the last.
            let mut client = self.lock();
            let rows = client.query_raw(&pg(&sql), pg_params(&params)).map_err(backend)?;
            let rows = postgres::fallible_iterator::FallibleIterator::iterator(rows)
                .map(|row| row.and_then(|row| legs::pg_leg(&row)).map_err(backend));
            legs::page(rows, channel, limit)
        })
    }

    fn children_of(&self, parent: &OrderId) -> Result<Vec<OrderRecord>, OrderStoreError> {
        crate::off_runtime(|| {
            pg_orders(
                &mut *self.lock(),
                &format!("{SELECT} WHERE parent = ?1 ORDER BY created_at_ms, id"),
                &[Param::Text(parent.to_string())],
            )
        })
    }

    fn events(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, OrderStoreError> {
        crate::off_runtime(|| {
            let rows = self
                .lock()
                .query(&pg(SELECT_EVENTS), &[&tenant, &i64_of(after_seq), &limit_of(limit)])
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    event_of(
                        row.try_get(0).map_err(backend)?,
                        row.try_get(1).map_err(backend)?,
                        row.try_get(2).map_err(backend)?,
                        row.try_get(3).map_err(backend)?,
                        row.try_get(4).map_err(backend)?,
                        row.try_get(5).map_err(backend)?,
                    )
                })
                .collect()
        })
    }

    fn put_party(&self, party: &Party) -> Result<Option<Party>, OrderStoreError> {
        crate::off_runtime(|| {
            let body = party_body(party)?;
            let mut client = self.lock();
            let n = client
                .execute(
                    &pg(INSERT_PARTY),
                    &[
                        &party.tenant,
                        &party.kind.as_str(),
                        &party.id,
                        &body,
                        &i64_of(party.created_at_ms),
                    ],
                )
                .map_err(backend)?;
            if n == 1 {
                return Ok(None);
            }
            pg_party(&mut client, &party.tenant, party.kind, &party.id)
        })
    }

    fn get_party(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
    ) -> Result<Option<Party>, OrderStoreError> {
        crate::off_runtime(|| pg_party(&mut self.lock(), tenant, kind, id))
    }
}

fn pg_party(
    client: &mut postgres::Client,
    tenant: &str,
    kind: PartyKind,
    id: &str,
) -> Result<Option<Party>, OrderStoreError> {
    let row =
        client.query_opt(&pg(SELECT_PARTY), &[&tenant, &kind.as_str(), &id]).map_err(backend)?;
    row.map(|row| {
        let body: String = row.try_get(0).map_err(backend)?;
        serde_json::from_str(&body).map_err(corrupt)
    })
    .transpose()
}
