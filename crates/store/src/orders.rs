//! The payment core's orders, outbox events and parties, on SQLite (`orders.db`, its own
//! file, `synchronous = FULL`: an acknowledged order is on disk) and PostgreSQL (the shared
//! schema, migration 5).
//!
//! The order itself is stored as JSON (`payments::Order`, tagged by kind); the columns beside
//! it are what queries filter and sum on. Both backends run the same SQL text: it is written
//! with `?N` parameters and rewritten to `$N` for PostgreSQL.

use executor::port::{OrderRecord, OrderStoreError, Party, RefundTotals, StoredEvent};
use money::Amount;
use payments::{Order, OrderId};

mod columns;
mod import;
mod legs;
mod pg_store;
mod pg_writer;
mod queries;
mod sqlite_store;
mod writer;
use columns::insert_params;
pub use pg_store::{PgOrderStore, PG_ORDER_CONNECTIONS};
pub use sqlite_store::{SqliteOrderStore, SQLITE_ORDER_READERS};

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
