//! A small SQL kit for the stores whose records are few and written rarely (reconciliation,
//! operators' work): their logic is written once over a two-method adapter ([`Db`]) that each
//! backend implements on its own transaction, with records kept as JSON bodies beside the
//! columns queries filter on. SQL is written with SQLite's `?N` placeholders; the PostgreSQL
//! adapter rewrites them (`crate::orders::pg`).

use std::sync::Mutex;

use rusqlite::{Connection, TransactionBehavior};

/// Why a statement failed: the database (unavailable) or what it held (corrupt).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Corrupt(String),
}

pub(crate) fn backend(error: impl std::fmt::Display) -> SqlError {
    SqlError::Backend(error.to_string())
}

pub(crate) fn corrupt(error: impl std::fmt::Display) -> SqlError {
    SqlError::Corrupt(error.to_string())
}

/// A bound value or a read column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum V {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl V {
    pub(crate) fn text(self) -> Result<String, SqlError> {
        match self {
            V::Text(text) => Ok(text),
            other => Err(corrupt(format!("expected text, read {other:?}"))),
        }
    }

    pub(crate) fn int(self) -> Result<i64, SqlError> {
        match self {
            V::Int(value) => Ok(value),
            other => Err(corrupt(format!("expected an integer, read {other:?}"))),
        }
    }
}

pub(crate) fn int(value: u64) -> V {
    V::Int(crate::orders::i64_of(value))
}

/// What the shared logic needs of a transaction: run a statement, read rows.
pub(crate) trait Db {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, SqlError>;
    fn rows(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, SqlError>;
    /// Serialises writers of one key until commit (PostgreSQL; SQLite has one writer).
    fn lock_key(&mut self, key: &str) -> Result<(), SqlError>;
}

pub(crate) fn body<T: serde::de::DeserializeOwned>(value: V) -> Result<T, SqlError> {
    serde_json::from_str(&value.text()?).map_err(corrupt)
}

pub(crate) fn json(value: &impl serde::Serialize) -> Result<V, SqlError> {
    serde_json::to_string(value).map(V::Text).map_err(backend)
}

/// The first column of each row, a JSON body, read as `T`.
pub(crate) fn bodies<T: serde::de::DeserializeOwned>(
    rows: Vec<Vec<V>>,
) -> Result<Vec<T>, SqlError> {
    rows.into_iter().map(|row| body(row.into_iter().next().unwrap_or(V::Null))).collect()
}

pub(crate) struct SqliteDb<'a>(pub(crate) &'a rusqlite::Transaction<'a>);

/// Bound by reference: a statement file (up to a gigabyte) is not copied to be bound.
impl rusqlite::ToSql for V {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            V::Null => ValueRef::Null,
            V::Int(v) => ValueRef::Integer(*v),
            V::Text(v) => ValueRef::Text(v.as_bytes()),
            V::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl Db for SqliteDb<'_> {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, SqlError> {
        let mut statement = self.0.prepare_cached(sql).map_err(backend)?;
        let changed = statement.execute(rusqlite::params_from_iter(params)).map_err(backend)?;
        Ok(changed as u64)
    }

    fn rows(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, SqlError> {
        let mut statement = self.0.prepare_cached(sql).map_err(backend)?;
        let columns = statement.column_count();
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get::<_, rusqlite::types::Value>(i)? {
                            rusqlite::types::Value::Null => V::Null,
                            rusqlite::types::Value::Integer(v) => V::Int(v),
                            rusqlite::types::Value::Text(v) => V::Text(v),
                            rusqlite::types::Value::Blob(v) => V::Blob(v),
                            rusqlite::types::Value::Real(v) => V::Text(v.to_string()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<V>>>()
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(rows)
    }

    fn lock_key(&mut self, _key: &str) -> Result<(), SqlError> {
        // An immediate transaction already holds the database's one write lock.
        Ok(())
    }
}

pub(crate) struct PgDb<'a, 'b>(pub(crate) &'a mut postgres::Transaction<'b>);

/// Bound by reference, as on SQLite: each variant writes itself as its own type does.
impl postgres::types::ToSql for V {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            V::Null => Ok(postgres::types::IsNull::Yes),
            V::Int(v) => v.to_sql_checked(ty, out),
            V::Text(v) => v.to_sql_checked(ty, out),
            V::Blob(v) => v.as_slice().to_sql_checked(ty, out),
        }
    }

    /// Any column type: each variant checks its own in `to_sql`.
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(params: &[V]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|value| value as &(dyn postgres::types::ToSql + Sync)).collect()
}

impl Db for PgDb<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, SqlError> {
        let refs = pg_params(params);
        self.0.execute(&crate::orders::pg(sql), &refs).map_err(backend)
    }

    fn rows(&mut self, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>, SqlError> {
        use postgres::types::Type;
        let refs = pg_params(params);
        let rows = self.0.query(&crate::orders::pg(sql), &refs).map_err(backend)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let kind = row.columns()[i].type_().clone();
                        Ok(if kind == Type::INT8 {
                            row.try_get::<_, Option<i64>>(i)
                                .map_err(corrupt)?
                                .map_or(V::Null, V::Int)
                        } else if kind == Type::INT4 {
                            row.try_get::<_, Option<i32>>(i)
                                .map_err(corrupt)?
                                .map_or(V::Null, |v| V::Int(i64::from(v)))
                        } else if kind == Type::BYTEA {
                            row.try_get::<_, Option<Vec<u8>>>(i)
                                .map_err(corrupt)?
                                .map_or(V::Null, V::Blob)
                        } else {
                            row.try_get::<_, Option<String>>(i)
                                .map_err(corrupt)?
                                .map_or(V::Null, V::Text)
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn lock_key(&mut self, key: &str) -> Result<(), SqlError> {
        self.0.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key]).map_err(backend)?;
        Ok(())
    }
}

/// One SQLite connection, each unit of work a transaction on it (`IMMEDIATE` for writes: the
/// database's one write lock is taken up front, so two writers never deadlock on upgrade).
pub(crate) struct SqliteKit {
    connection: Mutex<Connection>,
}

impl SqliteKit {
    /// Opens (or creates) the database file: WAL, `synchronous = FULL` (a commit is on disk
    /// before it is acknowledged), then its migrations.
    pub(crate) fn open(
        path: &std::path::Path,
        migrations: &[(i64, &str)],
    ) -> Result<SqliteKit, SqlError> {
        let mut connection = Connection::open(path).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(backend)?;
        crate::sqlite::migrate(&mut connection, migrations).map_err(backend)?;
        Ok(SqliteKit { connection: Mutex::new(connection) })
    }

    pub(crate) fn with<T, E: From<SqlError>>(
        &self,
        write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, E>,
    ) -> Result<T, E> {
        crate::off_runtime(|| {
            let mut connection =
                self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let behavior =
                if write { TransactionBehavior::Immediate } else { TransactionBehavior::Deferred };
            let tx = connection.transaction_with_behavior(behavior).map_err(backend)?;
            let result = work(&mut SqliteDb(&tx))?;
            tx.commit().map_err(backend)?;
            Ok(result)
        })
    }
}

/// One PostgreSQL client, each unit of work a transaction on it; a connection found closed
/// (a failover, a restarted server, an idle timeout) is opened again before the next unit.
pub(crate) struct PgKit {
    /// `None` only while dropping.
    client: Mutex<Option<postgres::Client>>,
    target: crate::postgres::PgTarget,
}

/// The blocking client's drop blocks on a runtime of its own, which panics on a tokio worker
/// (a store is often dropped with the last task holding it): dropped off the runtime.
impl Drop for PgKit {
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        crate::off_runtime(move || drop(client));
    }
}

impl PgKit {
    pub(crate) fn new(client: postgres::Client, target: crate::postgres::PgTarget) -> PgKit {
        PgKit { client: Mutex::new(Some(client)), target }
    }

    pub(crate) fn with<T, E: From<SqlError>>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> Result<T, E>,
    ) -> Result<T, E> {
        crate::off_runtime(|| {
            let mut slot = self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if slot.as_ref().is_none_or(postgres::Client::is_closed) {
                *slot = Some(self.target.connect_client().map_err(backend)?);
            }
            let client = slot.as_mut().ok_or_else(|| backend("the store is closing"))?;
            pg_transaction(client, work)
        })
    }
}

/// `work` in one transaction on `client`, committed when it succeeds.
pub(crate) fn pg_transaction<T, E: From<SqlError>>(
    client: &mut postgres::Client,
    work: impl FnOnce(&mut dyn Db) -> Result<T, E>,
) -> Result<T, E> {
    let mut tx = client.transaction().map_err(backend)?;
    let result = work(&mut PgDb(&mut tx))?;
    tx.commit().map_err(backend)?;
    Ok(result)
}
