//! Webhook endpoints and deliveries, beside the orders and their outbox (SQLite `orders.db`,
//! PostgreSQL migration 5): the fan-out reads the outbox and writes deliveries in one
//! transaction. Both backends run the same SQL (`?N` rewritten to `$N` for PostgreSQL).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, TransactionBehavior};
use webhooks::{
    Attempt, Delivery, DeliveryState, DueDelivery, Endpoint, WebhookStore, WebhookStoreError,
};

use crate::orders::{i64_of, limit_of, pg, pg_params, Param, SQLITE_MIGRATIONS};
use crate::postgres::PgTarget;

fn backend(error: impl std::fmt::Display) -> WebhookStoreError {
    WebhookStoreError::Backend(error.to_string())
}

const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, tenant, url, secret, enabled, \
     created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const SELECT_ENDPOINTS: &str = "SELECT id, tenant, url, secret, enabled, created_at_ms \
     FROM webhook_endpoints WHERE tenant = ?1 ORDER BY created_at_ms, id";
const DISABLE_ENDPOINT: &str =
    "UPDATE webhook_endpoints SET enabled = 0 WHERE tenant = ?1 AND id = ?2";
/// Claims up to `?1` events not yet fanned out, returning exactly those: the deliveries are
/// then made for these and no others. (Selecting and marking in separate statements could
/// mark an event that committed in between, under PostgreSQL's read committed, with no
/// delivery made for it.)
const CLAIM_UNFANNED: &str = "UPDATE order_events SET fanned_out = 1 WHERE seq IN \
     (SELECT seq FROM order_events WHERE fanned_out = 0 ORDER BY seq LIMIT ?1) RETURNING seq";

/// One delivery per claimed event and enabled endpoint of its tenant; the list holds the
/// claimed sequence numbers (integers read back from the database, never user input).
fn fan_out_sql(seqs: &[i64]) -> String {
    let list = seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    format!(
        "INSERT INTO webhook_deliveries (id, tenant, endpoint_id, event_seq, state, attempts, \
         next_at_ms, last_status, last_error, updated_at_ms) \
         SELECT 'whd_' || CAST(e.seq AS TEXT) || '_' || w.id, e.tenant, w.id, e.seq, 'pending', \
         0, ?1, 0, '', ?1 \
         FROM order_events e JOIN webhook_endpoints w ON w.tenant = e.tenant AND w.enabled = 1 \
         WHERE e.seq IN ({list}) ON CONFLICT (id) DO NOTHING"
    )
}
const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_seq, e.event_type, e.order_id, \
     d.state, d.attempts, d.next_at_ms, d.last_status, d.last_error, d.updated_at_ms";
const RECORD_ATTEMPT: &str = "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, \
     next_at_ms = ?3, last_status = ?4, last_error = ?5, updated_at_ms = ?6 \
     WHERE id = ?1 AND state = 'pending'";
const REDELIVER: &str = "UPDATE webhook_deliveries SET state = 'pending', next_at_ms = ?3, \
     updated_at_ms = ?3 WHERE tenant = ?1 AND id = ?2";

fn due_sql() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS}, w.url, w.secret, e.payload, e.created_at_ms \
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
         JOIN order_events e ON e.seq = d.event_seq \
         WHERE d.state = 'pending' AND d.next_at_ms <= ?1 AND w.enabled = 1 \
         ORDER BY d.next_at_ms LIMIT ?2"
    )
}

fn deliveries_sql(endpoint: bool, state: bool) -> String {
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
         JOIN order_events e ON e.seq = d.event_seq WHERE d.tenant = ?1"
    );
    let mut n = 1;
    if endpoint {
        n += 1;
        sql.push_str(&format!(" AND d.endpoint_id = ?{n}"));
    }
    if state {
        n += 1;
        sql.push_str(&format!(" AND d.state = ?{n}"));
    }
    sql.push_str(&format!(" ORDER BY d.event_seq DESC, d.id LIMIT ?{}", n + 1));
    sql
}

fn deliveries_params(
    tenant: &str,
    endpoint_id: Option<&str>,
    state: Option<DeliveryState>,
    limit: usize,
) -> Vec<Param> {
    let mut params = vec![Param::Text(tenant.to_owned())];
    params.extend(endpoint_id.map(|id| Param::Text(id.to_owned())));
    params.extend(state.map(|state| Param::Text(state.as_str().to_owned())));
    params.push(Param::Int(limit_of(limit)));
    params
}

/// The columns of a delivery, as read.
struct RawDelivery {
    id: String,
    endpoint_id: String,
    event_seq: i64,
    event_type: String,
    order_id: String,
    state: String,
    attempts: i64,
    next_at_ms: i64,
    last_status: i64,
    last_error: String,
    updated_at_ms: i64,
}

impl RawDelivery {
    fn into_delivery(self) -> Result<Delivery, WebhookStoreError> {
        let non_negative = |value: i64| u64::try_from(value).map_err(backend);
        Ok(Delivery {
            id: self.id,
            endpoint_id: self.endpoint_id,
            event_seq: non_negative(self.event_seq)?,
            event_type: self.event_type,
            order_id: self.order_id,
            state: DeliveryState::parse(&self.state)
                .ok_or_else(|| backend(format!("corrupt delivery state {:?}", self.state)))?,
            attempts: u32::try_from(self.attempts).map_err(backend)?,
            next_at_ms: non_negative(self.next_at_ms)?,
            last_status: u16::try_from(self.last_status).map_err(backend)?,
            last_error: self.last_error,
            updated_at_ms: non_negative(self.updated_at_ms)?,
        })
    }
}

/// The body a receiver gets for an event.
fn event_body(delivery: &Delivery, payload: &str, created_at_ms: i64) -> String {
    let data: serde_json::Value = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": format!("evt_{}", delivery.event_seq),
        "object": "event",
        "type": delivery.event_type,
        "created_at_ms": created_at_ms,
        "data": data,
    })
    .to_string()
}

fn attempt_params(delivery_id: &str, attempt: &Attempt, now_ms: u64) -> Vec<Param> {
    let (state, next_at_ms, status, error) = match attempt {
        Attempt::Delivered { status } => (DeliveryState::Delivered, now_ms, *status, String::new()),
        Attempt::Retry { status, error, next_at_ms } => {
            (DeliveryState::Pending, *next_at_ms, *status, error.clone())
        }
        Attempt::Failed { status, error } => {
            (DeliveryState::Failed, now_ms, *status, error.clone())
        }
    };
    // Error texts come from HTTP clients and peers: bounded before they are stored, and
    // without NUL, which PostgreSQL text cannot hold (SQLite would store it).
    let error: String = error
        .chars()
        .take(500)
        .map(|c| if c == '\0' { char::REPLACEMENT_CHARACTER } else { c })
        .collect();
    vec![
        Param::Text(delivery_id.to_owned()),
        Param::Text(state.as_str().to_owned()),
        Param::Int(i64_of(next_at_ms)),
        Param::Int(i64::from(status)),
        Param::Text(error),
        Param::Int(i64_of(now_ms)),
    ]
}

fn endpoint_params(endpoint: &Endpoint) -> Vec<Param> {
    vec![
        Param::Text(endpoint.id.clone()),
        Param::Text(endpoint.tenant.clone()),
        Param::Text(endpoint.url.clone()),
        Param::Text(endpoint.secret.clone()),
        Param::Int(i64::from(endpoint.enabled)),
        Param::Int(i64_of(endpoint.created_at_ms)),
    ]
}

fn endpoint_of(
    id: String,
    tenant: String,
    url: String,
    secret: String,
    enabled: i64,
    created_at_ms: i64,
) -> Result<Endpoint, WebhookStoreError> {
    Ok(Endpoint {
        id,
        tenant,
        url,
        secret,
        enabled: enabled != 0,
        created_at_ms: u64::try_from(created_at_ms).map_err(backend)?,
    })
}

// ---- SQLite --------------------------------------------------------------------------------

pub struct SqliteWebhookStore {
    connection: Mutex<Connection>,
}

impl SqliteWebhookStore {
    /// Opens `orders.db` (the outbox's file), migrating it if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteWebhookStore, WebhookStoreError> {
        let mut connection = Connection::open(path).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(backend)?;
        crate::sqlite::migrate(&mut connection, SQLITE_MIGRATIONS).map_err(backend)?;
        Ok(SqliteWebhookStore { connection: Mutex::new(connection) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn sqlite_delivery(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok(RawDelivery {
        id: row.get(0)?,
        endpoint_id: row.get(1)?,
        event_seq: row.get(2)?,
        event_type: row.get(3)?,
        order_id: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        next_at_ms: row.get(7)?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
        updated_at_ms: row.get(10)?,
    })
}

impl WebhookStore for SqliteWebhookStore {
    fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), WebhookStoreError> {
        self.lock()
            .execute(INSERT_ENDPOINT, rusqlite::params_from_iter(&endpoint_params(endpoint)))
            .map_err(backend)?;
        Ok(())
    }

    fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, WebhookStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(SELECT_ENDPOINTS).map_err(backend)?;
        let rows = statement
            .query_map([tenant], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<(String, String, String, String, i64, i64)>>>()
            .map_err(backend)?;
        rows.into_iter().map(|(a, b, c, d, e, f)| endpoint_of(a, b, c, d, e, f)).collect()
    }

    fn disable_endpoint(&self, tenant: &str, id: &str) -> Result<bool, WebhookStoreError> {
        Ok(self.lock().execute(DISABLE_ENDPOINT, [tenant, id]).map_err(backend)? == 1)
    }

    fn fan_out(&self, now_ms: u64, limit: usize) -> Result<u64, WebhookStoreError> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let seqs: Vec<i64> = {
            let mut statement = tx.prepare_cached(CLAIM_UNFANNED).map_err(backend)?;
            let rows = statement
                .query_map([limit_of(limit)], |row| row.get(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<i64>>>()
                .map_err(backend)?;
            rows
        };
        if seqs.is_empty() {
            return Ok(0);
        }
        let created = tx.execute(&fan_out_sql(&seqs), [i64_of(now_ms)]).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(created as u64)
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<DueDelivery>, WebhookStoreError> {
        let connection = self.lock();
        let mut statement = connection.prepare_cached(&due_sql()).map_err(backend)?;
        let rows = statement
            .query_map(rusqlite::params![i64_of(now_ms), limit_of(limit)], |row| {
                Ok((
                    sqlite_delivery(row)?,
                    row.get::<_, String>(11)?,
                    row.get::<_, String>(12)?,
                    row.get::<_, String>(13)?,
                    row.get::<_, i64>(14)?,
                ))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        rows.into_iter()
            .map(|(raw, url, secret, payload, created_at_ms)| {
                let delivery = raw.into_delivery()?;
                let body = event_body(&delivery, &payload, created_at_ms);
                Ok(DueDelivery { delivery, url, secret, body })
            })
            .collect()
    }

    fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        now_ms: u64,
    ) -> Result<(), WebhookStoreError> {
        self.lock()
            .execute(
                RECORD_ATTEMPT,
                rusqlite::params_from_iter(&attempt_params(delivery_id, attempt, now_ms)),
            )
            .map_err(backend)?;
        Ok(())
    }

    fn deliveries(
        &self,
        tenant: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookStoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(&deliveries_sql(endpoint_id.is_some(), state.is_some()))
            .map_err(backend)?;
        let rows = statement
            .query_map(
                rusqlite::params_from_iter(&deliveries_params(tenant, endpoint_id, state, limit)),
                sqlite_delivery,
            )
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        rows.into_iter().map(RawDelivery::into_delivery).collect()
    }

    fn redeliver(
        &self,
        tenant: &str,
        delivery_id: &str,
        now_ms: u64,
    ) -> Result<bool, WebhookStoreError> {
        let n = self
            .lock()
            .execute(REDELIVER, rusqlite::params![tenant, delivery_id, i64_of(now_ms)])
            .map_err(backend)?;
        Ok(n == 1)
    }
}

// ---- PostgreSQL ----------------------------------------------------------------------------

pub struct PgWebhookStore {
    client: Mutex<postgres::Client>,
}

impl PgWebhookStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgWebhookStore, WebhookStoreError> {
        target.migrate().map_err(backend)?;
        let client = target.connect_client().map_err(backend)?;
        Ok(PgWebhookStore { client: Mutex::new(client) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, postgres::Client> {
        self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn pg_delivery(row: &postgres::Row) -> Result<RawDelivery, WebhookStoreError> {
    Ok(RawDelivery {
        id: row.try_get(0).map_err(backend)?,
        endpoint_id: row.try_get(1).map_err(backend)?,
        event_seq: row.try_get(2).map_err(backend)?,
        event_type: row.try_get(3).map_err(backend)?,
        order_id: row.try_get(4).map_err(backend)?,
        state: row.try_get(5).map_err(backend)?,
        attempts: row.try_get(6).map_err(backend)?,
        next_at_ms: row.try_get(7).map_err(backend)?,
        last_status: row.try_get(8).map_err(backend)?,
        last_error: row.try_get(9).map_err(backend)?,
        updated_at_ms: row.try_get(10).map_err(backend)?,
    })
}

impl WebhookStore for PgWebhookStore {
    fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), WebhookStoreError> {
        crate::off_runtime(|| {
            self.lock()
                .execute(&pg(INSERT_ENDPOINT), &pg_params(&endpoint_params(endpoint)))
                .map_err(backend)?;
            Ok(())
        })
    }

    fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, WebhookStoreError> {
        crate::off_runtime(|| {
            let rows = self.lock().query(&pg(SELECT_ENDPOINTS), &[&tenant]).map_err(backend)?;
            rows.iter()
                .map(|row| {
                    endpoint_of(
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

    fn disable_endpoint(&self, tenant: &str, id: &str) -> Result<bool, WebhookStoreError> {
        crate::off_runtime(|| {
            Ok(self.lock().execute(&pg(DISABLE_ENDPOINT), &[&tenant, &id]).map_err(backend)? == 1)
        })
    }

    fn fan_out(&self, now_ms: u64, limit: usize) -> Result<u64, WebhookStoreError> {
        crate::off_runtime(|| {
            let mut client = self.lock();
            let mut tx = client.transaction().map_err(backend)?;
            let rows = tx.query(&pg(CLAIM_UNFANNED), &[&limit_of(limit)]).map_err(backend)?;
            let seqs = rows
                .iter()
                .map(|row| row.try_get::<_, i64>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            if seqs.is_empty() {
                return Ok(0);
            }
            let created =
                tx.execute(&pg(&fan_out_sql(&seqs)), &[&i64_of(now_ms)]).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(created)
        })
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<DueDelivery>, WebhookStoreError> {
        crate::off_runtime(|| {
            let rows = self
                .lock()
                .query(&pg(&due_sql()), &[&i64_of(now_ms), &limit_of(limit)])
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    let delivery = pg_delivery(row)?.into_delivery()?;
                    let payload: String = row.try_get(13).map_err(backend)?;
                    let created_at_ms: i64 = row.try_get(14).map_err(backend)?;
                    let body = event_body(&delivery, &payload, created_at_ms);
                    Ok(DueDelivery {
                        delivery,
                        url: row.try_get(11).map_err(backend)?,
                        secret: row.try_get(12).map_err(backend)?,
                        body,
                    })
                })
                .collect()
        })
    }

    fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        now_ms: u64,
    ) -> Result<(), WebhookStoreError> {
        crate::off_runtime(|| {
            self.lock()
                .execute(
                    &pg(RECORD_ATTEMPT),
                    &pg_params(&attempt_params(delivery_id, attempt, now_ms)),
                )
                .map_err(backend)?;
            Ok(())
        })
    }

    fn deliveries(
        &self,
        tenant: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookStoreError> {
        crate::off_runtime(|| {
            let params = deliveries_params(tenant, endpoint_id, state, limit);
            let rows = self
                .lock()
                .query(
                    &pg(&deliveries_sql(endpoint_id.is_some(), state.is_some())),
                    &pg_params(&params),
                )
                .map_err(backend)?;
            rows.iter().map(|row| pg_delivery(row)?.into_delivery()).collect()
        })
    }

    fn redeliver(
        &self,
        tenant: &str,
        delivery_id: &str,
        now_ms: u64,
    ) -> Result<bool, WebhookStoreError> {
        crate::off_runtime(|| {
            let n = self
                .lock()
                .execute(&pg(REDELIVER), &[&tenant, &delivery_id, &i64_of(now_ms)])
                .map_err(backend)?;
            Ok(n == 1)
        })
    }
}
