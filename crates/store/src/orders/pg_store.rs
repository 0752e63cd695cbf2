//! Orders on PostgreSQL (the shared schema, migration 5).

use channels::{BoxFuture, ChannelId};
use executor::port::{
    ChannelLegPage, Durability, GuardedInsert, Inserted, MerchantTotals, NewEvent, OrderQuery,
    OrderRecord, OrderStore, OrderStoreError, Party, PartyKind, RefundTotals, StoredEvent,
};
use money::AssetCode;
use payments::{OrderId, OrderKind};

use super::columns::insert_params;
use super::legs;
use super::queries::{
    self, created_between_query, cursor_params, list_sql, unfinished_params, MERCHANT_TOTALS,
    NEEDING_OPERATOR, REFUND_TOTALS,
};
use super::writer::{WriterHandle, WRITE_QUEUE_MAX};
use super::{
    backend, corrupt, event_of, i64_of, limit_of, party_body, pg, pg_params, refund_totals, Param,
    RawOrder, INSERT, INSERT_PARTY, SELECT, SELECT_EVENTS, SELECT_PARTIES, SELECT_PARTY,
    UNFINISHED,
};
use crate::pool::Pool;
use crate::postgres::PgTarget;

/// Orders on PostgreSQL. Inserts and state updates go to one writer connection per node
/// that commits whatever is waiting as one transaction, as on SQLite: concurrent orders
/// share a commit (one WAL flush, one BEGIN and COMMIT) instead of paying one each — on this
/// machine PostgreSQL's CPU is what limits a node (docs/capacity.md). The writer pipelines a
/// group's statements (`pg_writer`), and a group whose writes need not be durable yet
/// (`Durability`) commits without waiting for the WAL's flush. Reads, parties and the
/// guarded inserts use a few more connections.
///
/// Several nodes write to one database, so a group takes its rows' locks in order of order
/// id (no two groups can deadlock on them), and a group that fails — a deadlock all the
/// same, a constraint — is retried one write per transaction, so only the failing write
/// fails.
pub struct PgOrderStore {
    clients: Pool<postgres::Client>,
    writer: WriterHandle,
}

/// Connections of one [`PgOrderStore`].
pub const PG_ORDER_CONNECTIONS: usize = 8;

pub(super) fn pg_order(row: &postgres::Row) -> Result<OrderRecord, OrderStoreError> {
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

impl PgOrderStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgOrderStore, OrderStoreError> {
        target.migrate().map_err(backend)?;
        let clients = (0..PG_ORDER_CONNECTIONS)
            .map(|_| target.connect_client().map_err(backend))
            .collect::<Result<Vec<_>, _>>()?;
        let (writes, ops) = std::sync::mpsc::sync_channel(WRITE_QUEUE_MAX);
        super::pg_writer::spawn(target, ops)?;
        Ok(PgOrderStore { clients: Pool::new(clients), writer: WriterHandle(writes) })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, postgres::Client> {
        self.clients.lock()
    }
}

impl OrderStore for PgOrderStore {
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
