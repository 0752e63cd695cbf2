//! Orders on SQLite (`orders.db`).

use std::path::Path;
use std::sync::Mutex;

use channels::{BoxFuture, ChannelId};
use executor::port::{
    ChannelLegPage, Durability, GuardedInsert, Inserted, MerchantTotals, NewEvent, OrderQuery,
    OrderRecord, OrderStore, OrderStoreError, Party, PartyKind, RefundTotals, StoredEvent,
};
use money::AssetCode;
use payments::{OrderId, OrderKind};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::columns::insert_params;
use super::legs;
use super::queries::{
    self, created_between_query, cursor_params, list_sql, unfinished_params, MERCHANT_TOTALS,
    NEEDING_OPERATOR, REFUND_TOTALS,
};
use super::writer::{
    must_flush, next_batch, reply, WriteOp, WriteResult, WriterHandle, WRITE_QUEUE_MAX,
};
use super::{
    backend, corrupt, event_of, i64_of, limit_of, party_body, refund_totals, Param, RawOrder,
    INSERT, INSERT_EVENT, INSERT_PARTY, SELECT, SELECT_EVENTS, SELECT_PARTIES, SELECT_PARTY,
    SQLITE_MIGRATIONS, UNFINISHED, UPDATE,
};
use crate::pool::Pool;

/// Orders on SQLite. Inserts and state updates — two per order, each durable as its
/// [`Durability`] asks — go to one writer thread that commits whatever is waiting as one
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
    writer: WriterHandle,
}

/// Read connections of one [`SqliteOrderStore`]: WAL readers never wait for the writer, so a
/// few are enough for the runtime's workers and the blocking threads that read.
pub const SQLITE_ORDER_READERS: usize = 4;

fn write_loop(
    mut connection: Connection,
    ops: std::sync::mpsc::Receiver<WriteOp>,
    turn: std::sync::Arc<parking_lot::Mutex<()>>,
) {
    // The connection's `synchronous` now: FULL (a commit waits for the WAL's fsync) or
    // NORMAL (it does not, and the next FULL commit's fsync of the same WAL file, or a
    // checkpoint, makes it durable).
    let mut flushing = true;
    while let Some(batch) = next_batch(&ops) {
        let my_turn = turn.lock();
        let flush = must_flush(&batch, false);
        let committed = set_flushing(&connection, &mut flushing, flush)
            .and_then(|()| commit_writes(&mut connection, &batch));
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

fn set_flushing(
    connection: &Connection,
    flushing: &mut bool,
    flush: bool,
) -> Result<(), OrderStoreError> {
    if *flushing != flush {
        let mode = if flush { "FULL" } else { "NORMAL" };
        connection.execute_batch(&format!("PRAGMA synchronous = {mode}")).map_err(backend)?;
        *flushing = flush;
    }
    Ok(())
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
                let mut insert = tx.prepare_cached(INSERT).map_err(backend)?;
                if insert.execute(rusqlite::params_from_iter(params)).map_err(backend)? == 0 {
                    let existing = sqlite_get(&tx, id)?
                        .ok_or_else(|| corrupt("an order vanished during its insert"))?;
                    WriteResult::Inserted(Inserted::Existing(Box::new(existing)))
                } else {
                    WriteResult::Inserted(Inserted::Created)
                }
            }
            WriteOp::Update { params, events, .. } => {
                // A version conflict writes nothing, its events neither.
                let mut update = tx.prepare_cached(UPDATE).map_err(backend)?;
                if update.execute(rusqlite::params_from_iter(params)).map_err(backend)? == 0 {
                    WriteResult::Updated(false)
                } else {
                    let mut insert_event = tx.prepare_cached(INSERT_EVENT).map_err(backend)?;
                    for event in events {
                        insert_event.execute(rusqlite::params_from_iter(event)).map_err(backend)?;
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
            writer: WriterHandle(writes),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.readers.lock()
    }

    /// The connection of the guarded writes, and the writer's turn (so SQLite's write lock
    /// is free when it begins); its caller is off the runtime, since the turn may be the
    /// writer's for a commit's while.
    pub(super) fn guarded(
        &self,
    ) -> (parking_lot::MutexGuard<'_, ()>, std::sync::MutexGuard<'_, Connection>) {
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
        self.writer.insert(record, Durability::Now)
    }

    fn insert_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        durability: Durability,
    ) -> BoxFuture<'a, Result<Inserted, OrderStoreError>> {
        Box::pin(self.writer.insert_async(record, durability))
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
        self.writer.update(record, expected_version, events, Durability::Now)
    }

    fn update_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        expected_version: u64,
        events: &'a [NewEvent],
        durability: Durability,
    ) -> BoxFuture<'a, Result<bool, OrderStoreError>> {
        Box::pin(self.writer.update_async(record, expected_version, events, durability))
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
