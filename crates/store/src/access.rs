//! The access domain's storage port on SQLite and PostgreSQL.
//!
//! On SQLite, access data lives in its own file (`access.db`) with `synchronous = NORMAL`:
//! idempotency records are written on every POST, and sharing the ledger file would make them
//! queue for the ledger's single write lock. Losing the last records in a power cut is safe by
//! construction: every money-moving request carries (or derives) its ledger id, so a retry
//! that finds no record is deduplicated by the ledger itself.

use std::path::Path;
use std::sync::Mutex;

use access::{
    AccessError, AccessStore, ApiKey, Claim, KeyHash, KeyMode, ResourceKind, Scope, TenantId,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::postgres::PgTarget;

fn sqlite_error(error: rusqlite::Error) -> AccessError {
    AccessError::Backend(error.to_string())
}

fn pg_error(error: postgres::Error) -> AccessError {
    AccessError::Backend(error.to_string())
}

fn corrupt(what: &str) -> AccessError {
    AccessError::Backend(format!("corrupt access store: {what}"))
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(",")
}

/// Columns: id, tenant, mode, scopes, hash, prefix, created_at, revoked_at, signed, merchant.
#[allow(clippy::too_many_arguments)]
fn key_from_columns(
    id: String,
    tenant: String,
    mode: String,
    scopes: String,
    hash: Vec<u8>,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
    signed: bool,
    merchant: Option<String>,
) -> Result<ApiKey, AccessError> {
    let hash: [u8; 32] = hash.try_into().map_err(|_| corrupt("key hash"))?;
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| corrupt("scope")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiKey {
        id,
        tenant: TenantId::new(&tenant).map_err(|_| corrupt("tenant"))?,
        mode: KeyMode::parse(&mode).ok_or_else(|| corrupt("mode"))?,
        scopes,
        hash: KeyHash(hash),
        prefix,
        created_at_us: u64::try_from(created_at).map_err(|_| corrupt("created_at"))?,
        revoked_at_us: revoked_at.map(|at| at.max(0) as u64),
        signed,
        merchant,
    })
}

const KEY_COLUMNS: &str =
    "id, tenant, mode, scopes, hash, prefix, created_at, revoked_at, signed, merchant";

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_access.sql")),
    (2, include_str!("sqlite/0002_access_signing.sql")),
    (3, include_str!("sqlite/0003_access_merchant.sql")),
];

/// Access data in `access.db`.
pub struct SqliteAccess {
    connection: Mutex<Connection>,
}

impl SqliteAccess {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteAccess, AccessError> {
        let mut connection = Connection::open(path).map_err(sqlite_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(sqlite_error)?;
        crate::sqlite::migrate(&mut connection, SQLITE_MIGRATIONS)
            .map_err(|error| AccessError::Backend(error.to_string()))?;
        Ok(SqliteAccess { connection: Mutex::new(connection) })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AccessError> {
        let connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run(&connection).map_err(sqlite_error)
    }
}

fn sqlite_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ApiKey, AccessError>> {
    Ok(key_from_columns(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ))
}

impl AccessStore for SqliteAccess {
    fn insert_key(&self, key: &ApiKey) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9)"),
                params![
                    key.id,
                    key.tenant.as_str(),
                    key.mode.as_str(),
                    scopes_text(&key.scopes),
                    &key.hash.0[..],
                    key.prefix,
                    key.created_at_us as i64,
                    key.signed,
                    key.merchant,
                ],
            )
            .map(|_| ())
        })
    }

    fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, AccessError> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = ?1"))?
                .query_row([&hash.0[..]], sqlite_key)
                .optional()
        })?
        .transpose()
    }

    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>, AccessError> {
        let rows = self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![after.unwrap_or(""), limit as i64], sqlite_key)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().collect()
    }

    fn revoke_key(&self, id: &str, now_us: u64) -> Result<bool, AccessError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_us as i64],
            )
            .map(|changed| changed == 1)
        })
    }

    fn count_keys(&self) -> Result<u64, AccessError> {
        self.with(|c| c.query_row("SELECT count(*) FROM api_keys", [], |row| row.get::<_, i64>(0)))
            .map(|n| n as u64)
    }

    fn claim_owner(
        &self,
        kind: ResourceKind,
        id: u128,
        tenant: &TenantId,
    ) -> Result<TenantId, AccessError> {
        let owner: String = self.with(|c| {
            c.prepare_cached(
                "INSERT INTO owners (kind, id, tenant) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![kind.code(), &id.to_be_bytes()[..], tenant.as_str()])?;
            c.prepare_cached("SELECT tenant FROM owners WHERE kind = ?1 AND id = ?2")?
                .query_row(params![kind.code(), &id.to_be_bytes()[..]], |row| row.get(0))
        })?;
        TenantId::new(&owner).map_err(|_| corrupt("owner"))
    }

    fn owner(&self, kind: ResourceKind, id: u128) -> Result<Option<TenantId>, AccessError> {
        let owner: Option<String> = self.with(|c| {
            c.prepare_cached("SELECT tenant FROM owners WHERE kind = ?1 AND id = ?2")?
                .query_row(params![kind.code(), &id.to_be_bytes()[..]], |row| row.get(0))
                .optional()
        })?;
        owner.map(|o| TenantId::new(&o).map_err(|_| corrupt("owner"))).transpose()
    }

    fn claim_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        request_hash: [u8; 32],
        now_us: u64,
    ) -> Result<Claim, AccessError> {
        let stale_before = now_us.saturating_sub(access::IDEMPOTENCY_IN_FLIGHT_MAX_US) as i64;
        self.with(|c| {
            // An abandoned claim (its request crashed) is taken over.
            c.prepare_cached(
                "DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2 AND status IS NULL AND created_at < ?3",
            )?
            .execute(params![tenant.as_str(), key, stale_before])?;
            let inserted = c
                .prepare_cached(
                    "INSERT INTO idempotency (tenant, key, request_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![tenant.as_str(), key, &request_hash[..], now_us as i64])?;
            if inserted == 1 {
                return Ok(Claim::New);
            }
            c.prepare_cached("SELECT request_hash, status, body FROM idempotency WHERE tenant = ?1 AND key = ?2")?
                .query_row(params![tenant.as_str(), key], |row| {
                    let hash: Vec<u8> = row.get(0)?;
                    let status: Option<i64> = row.get(1)?;
                    let body: Option<Vec<u8>> = row.get(2)?;
                    Ok(match status {
                        None => Claim::InFlight,
                        Some(status) => Claim::Done {
                            request_hash: hash.try_into().unwrap_or([0; 32]),
                            status: status as u16,
                            body: body.unwrap_or_default(),
                        },
                    })
                })
        })
    }

    fn complete_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), AccessError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE idempotency SET status = ?3, body = ?4 WHERE tenant = ?1 AND key = ?2",
            )?
            .execute(params![tenant.as_str(), key, i64::from(status), body])
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, tenant: &TenantId, key: &str) -> Result<(), AccessError> {
        self.with(|c| {
            c.prepare_cached(
                "DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2 AND status IS NULL",
            )?
            .execute(params![tenant.as_str(), key])
            .map(|_| ())
        })
    }

    fn purge_idempotency(&self, before_us: u64) -> Result<u64, AccessError> {
        self.with(|c| {
            c.execute("DELETE FROM idempotency WHERE created_at < ?1", [before_us as i64])
                .map(|n| n as u64)
        })
    }

    fn use_nonce(&self, key_id: &str, nonce: &str, now_us: u64) -> Result<bool, AccessError> {
        self.with(|c| {
            c.prepare_cached("INSERT INTO nonces (key_id, nonce, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
                .execute(params![key_id, nonce, now_us as i64])
                .map(|inserted| inserted == 1)
        })
    }

    fn purge_nonces(&self, before_us: u64) -> Result<u64, AccessError> {
        self.with(|c| {
            c.execute("DELETE FROM nonces WHERE seen_at < ?1", [before_us as i64]).map(|n| n as u64)
        })
    }
}

/// Access data in PostgreSQL, in the same schema as the ledger.
pub struct PgAccess {
    client: Mutex<postgres::Client>,
}

impl PgAccess {
    /// Connects; the ledger store's migrations (run by `PgStore::connect`) create the tables.
    pub fn connect(target: &PgTarget) -> Result<PgAccess, AccessError> {
        let client = target.connect_client().map_err(|e| AccessError::Backend(e.to_string()))?;
        Ok(PgAccess { client: Mutex::new(client) })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, AccessError> {
        let mut client = self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run(&mut client).map_err(pg_error)
    }
}

fn pg_key(row: &postgres::Row) -> Result<ApiKey, AccessError> {
    let get = |e: postgres::Error| pg_error(e);
    key_from_columns(
        row.try_get(0).map_err(get)?,
        row.try_get(1).map_err(get)?,
        row.try_get(2).map_err(get)?,
        row.try_get(3).map_err(get)?,
        row.try_get(4).map_err(get)?,
        row.try_get(5).map_err(get)?,
        row.try_get(6).map_err(get)?,
        row.try_get(7).map_err(get)?,
        row.try_get(8).map_err(get)?,
        row.try_get(9).map_err(get)?,
    )
}

impl AccessStore for PgAccess {
    fn insert_key(&self, key: &ApiKey) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)"),
                &[
                    &key.id,
                    &key.tenant.as_str(),
                    &key.mode.as_str(),
                    &scopes_text(&key.scopes),
                    &&key.hash.0[..],
                    &key.prefix,
                    &(key.created_at_us as i64),
                    &key.signed,
                    &key.merchant,
                ],
            )
            .map(|_| ())
        })
    }

    fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, AccessError> {
        let row = self.with(|c| {
            c.query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1"),
                &[&&hash.0[..]],
            )
        })?;
        row.as_ref().map(pg_key).transpose()
    }

    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>, AccessError> {
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after.unwrap_or(""), &(limit as i64)],
            )
        })?;
        rows.iter().map(pg_key).collect()
    }

    fn revoke_key(&self, id: &str, now_us: u64) -> Result<bool, AccessError> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &(now_us as i64)],
            )
            .map(|changed| changed == 1)
        })
    }

    fn count_keys(&self) -> Result<u64, AccessError> {
        self.with(|c| c.query_one("SELECT count(*) FROM api_keys", &[])?.try_get::<_, i64>(0))
            .map(|n| n as u64)
    }

    fn claim_owner(
        &self,
        kind: ResourceKind,
        id: u128,
        tenant: &TenantId,
    ) -> Result<TenantId, AccessError> {
        let owner: String = self.with(|c| {
            let kind = kind.code() as i16;
            let id = id.to_be_bytes();
            c.execute(
                "INSERT INTO owners (kind, id, tenant) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&kind, &&id[..], &tenant.as_str()],
            )?;
            c.query_one(
                "SELECT tenant FROM owners WHERE kind = $1 AND id = $2",
                &[&kind, &&id[..]],
            )?
            .try_get(0)
        })?;
        TenantId::new(&owner).map_err(|_| corrupt("owner"))
    }

    fn owner(&self, kind: ResourceKind, id: u128) -> Result<Option<TenantId>, AccessError> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT tenant FROM owners WHERE kind = $1 AND id = $2",
                &[&(kind.code() as i16), &&id.to_be_bytes()[..]],
            )
        })?;
        match row {
            None => Ok(None),
            Some(row) => {
                let owner: String = row.try_get(0).map_err(pg_error)?;
                TenantId::new(&owner).map(Some).map_err(|_| corrupt("owner"))
            }
        }
    }

    fn claim_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        request_hash: [u8; 32],
        now_us: u64,
    ) -> Result<Claim, AccessError> {
        let stale_before = now_us.saturating_sub(access::IDEMPOTENCY_IN_FLIGHT_MAX_US) as i64;
        self.with(|c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant = $1 AND key = $2 AND status IS NULL AND created_at < $3",
                &[&tenant.as_str(), &key, &stale_before],
            )?;
            let inserted = c.execute(
                "INSERT INTO idempotency (tenant, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&tenant.as_str(), &key, &&request_hash[..], &(now_us as i64)],
            )?;
            if inserted == 1 {
                return Ok(Claim::New);
            }
            let row = c.query_one(
                "SELECT request_hash, status, body FROM idempotency WHERE tenant = $1 AND key = $2",
                &[&tenant.as_str(), &key],
            )?;
            let hash: Vec<u8> = row.try_get(0)?;
            let status: Option<i32> = row.try_get(1)?;
            let body: Option<Vec<u8>> = row.try_get(2)?;
            Ok(match status {
                None => Claim::InFlight,
                Some(status) => Claim::Done {
                    request_hash: hash.try_into().unwrap_or([0; 32]),
                    status: status as u16,
                    body: body.unwrap_or_default(),
                },
            })
        })
    }

    fn complete_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                "UPDATE idempotency SET status = $3, body = $4 WHERE tenant = $1 AND key = $2",
                &[&tenant.as_str(), &key, &i32::from(status), &body],
            )
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, tenant: &TenantId, key: &str) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant = $1 AND key = $2 AND status IS NULL",
                &[&tenant.as_str(), &key],
            )
            .map(|_| ())
        })
    }

    fn purge_idempotency(&self, before_us: u64) -> Result<u64, AccessError> {
        self.with(|c| {
            c.execute("DELETE FROM idempotency WHERE created_at < $1", &[&(before_us as i64)])
        })
    }

    fn use_nonce(&self, key_id: &str, nonce: &str, now_us: u64) -> Result<bool, AccessError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO nonces (key_id, nonce, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&key_id, &nonce, &(now_us as i64)],
            )
            .map(|inserted| inserted == 1)
        })
    }

    fn purge_nonces(&self, before_us: u64) -> Result<u64, AccessError> {
        self.with(|c| c.execute("DELETE FROM nonces WHERE seen_at < $1", &[&(before_us as i64)]))
    }
}
