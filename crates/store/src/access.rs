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
    AccessError, AccessStore, ApiKey, Claim, IdempotencyScope, KeyHash, KeyMode, ResourceKind,
    Revocation, Scope, TenantId,
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
    AccessError::Corrupt(what.to_string())
}

/// A stored request hash, which is always 32 bytes.
fn request_hash(raw: Vec<u8>) -> Result<[u8; 32], AccessError> {
    raw.try_into().map_err(|_| corrupt("idempotency request hash"))
}

/// Whether the stored scopes text names the admin scope.
fn names_admin(scopes: &str) -> bool {
    scopes.split(',').any(|scope| scope == Scope::Admin.as_str())
}

const NAMESPACE_SECRET: &str = "namespace_secret";

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
    (4, include_str!("sqlite/0004_access_idempotency_per_key.sql")),
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

/// What a claim's insert found: nothing (the claim is new), or the stored row's request hash,
/// status and body.
type FoundClaim = Option<(Vec<u8>, Option<i64>, Option<Vec<u8>>)>;

fn claim_of(found: FoundClaim) -> Result<Claim, AccessError> {
    Ok(match found {
        None => Claim::New,
        Some((_, None, _)) => Claim::InFlight,
        Some((hash, Some(status), body)) => Claim::Done {
            request_hash: request_hash(hash)?,
            status: u16::try_from(status).map_err(|_| corrupt("idempotency status"))?,
            body: body.unwrap_or_default(),
        },
    })
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

    fn revoke_key(&self, id: &str, now_us: u64) -> Result<Revocation, AccessError> {
        // One connection per process behind a mutex, and access.db belongs to one process:
        // the check and the update cannot interleave with another revocation.
        self.with(|c| {
            let Some((scopes, revoked)) = c
                .prepare_cached(
                    "SELECT scopes, revoked_at IS NOT NULL FROM api_keys WHERE id = ?1",
                )?
                .query_row([id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)))
                .optional()?
            else {
                return Ok(Revocation::NotFound);
            };
            if !revoked && names_admin(&scopes) {
                let other_admins = c
                    .prepare_cached(
                        "SELECT scopes FROM api_keys WHERE revoked_at IS NULL AND id <> ?1",
                    )?
                    .query_map([id], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                    .iter()
                    .filter(|scopes| names_admin(scopes))
                    .count();
                if other_admins == 0 {
                    return Ok(Revocation::LastAdminKey);
                }
            }
            c.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_us as i64],
            )?;
            Ok(Revocation::Revoked)
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
        scope: &IdempotencyScope,
        key: &str,
        request_hash: [u8; 32],
        now_us: u64,
        node: &str,
    ) -> Result<Claim, AccessError> {
        let stale_before = now_us.saturating_sub(access::IDEMPOTENCY_IN_FLIGHT_MAX_US) as i64;
        let (tenant, key_id) = (scope.tenant.as_str(), scope.key_id.as_str());
        let found = self.with(|c| {
            // An abandoned claim (its node died and never came back) is taken over.
            c.prepare_cached(
                "DELETE FROM idempotency WHERE tenant = ?1 AND key_id = ?2 AND key = ?3 \
                 AND status IS NULL AND created_at < ?4",
            )?
            .execute(params![tenant, key_id, key, stale_before])?;
            let inserted = c
                .prepare_cached(
                    "INSERT INTO idempotency (tenant, key_id, key, request_hash, created_at, node) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                )?
                .execute(params![tenant, key_id, key, &request_hash[..], now_us as i64, node])?;
            if inserted == 1 {
                return Ok(None);
            }
            c.prepare_cached(
                "SELECT request_hash, status, body FROM idempotency \
                 WHERE tenant = ?1 AND key_id = ?2 AND key = ?3",
            )?
            .query_row(params![tenant, key_id, key], |row| {
                Ok(Some((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, Option<Vec<u8>>>(2)?,
                )))
            })
        })?;
        claim_of(found)
    }

    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), AccessError> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE idempotency SET status = ?4, body = ?5 \
                 WHERE tenant = ?1 AND key_id = ?2 AND key = ?3",
            )?
            .execute(params![scope.tenant.as_str(), scope.key_id, key, i64::from(status), body])
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, scope: &IdempotencyScope, key: &str) -> Result<(), AccessError> {
        self.with(|c| {
            c.prepare_cached(
                "DELETE FROM idempotency WHERE tenant = ?1 AND key_id = ?2 AND key = ?3 \
                 AND status IS NULL",
            )?
            .execute(params![scope.tenant.as_str(), scope.key_id, key])
            .map(|_| ())
        })
    }

    fn release_node_claims(&self, node: &str) -> Result<u64, AccessError> {
        self.with(|c| {
            c.execute("DELETE FROM idempotency WHERE node = ?1 AND status IS NULL", [node])
                .map(|n| n as u64)
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

    fn namespace_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AccessError> {
        let stored: Vec<u8> = self.with(|c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![NAMESPACE_SECRET, &candidate[..]],
            )?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [NAMESPACE_SECRET], |row| {
                row.get(0)
            })
        })?;
        stored.try_into().map_err(|_| corrupt("namespace secret"))
    }
}

/// Access data in PostgreSQL, in the same schema as the ledger.
pub struct PgAccess {
    client: Mutex<postgres::Client>,
}

impl PgAccess {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgAccess, AccessError> {
        target.migrate().map_err(|e| AccessError::Backend(e.to_string()))?;
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

    fn revoke_key(&self, id: &str, now_us: u64) -> Result<Revocation, AccessError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // Every active admin key is locked first (in id order, so two revocations take
            // the locks in one order): of two nodes revoking the last two admin keys at once,
            // the second sees the first's revocation and is refused.
            let admins: Vec<String> = tx
                .query(
                    "SELECT id, scopes FROM api_keys WHERE revoked_at IS NULL ORDER BY id FOR UPDATE",
                    &[],
                )?
                .iter()
                .map(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?)))
                .collect::<Result<Vec<_>, postgres::Error>>()?
                .into_iter()
                .filter(|(_, scopes)| names_admin(scopes))
                .map(|(id, _)| id)
                .collect();
            if admins.len() == 1 && admins[0] == id {
                return Ok(Revocation::LastAdminKey);
            }
            let changed = tx.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &(now_us as i64)],
            )?;
            tx.commit()?;
            Ok(if changed == 1 { Revocation::Revoked } else { Revocation::NotFound })
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
        scope: &IdempotencyScope,
        key: &str,
        request_hash: [u8; 32],
        now_us: u64,
        node: &str,
    ) -> Result<Claim, AccessError> {
        let stale_before = now_us.saturating_sub(access::IDEMPOTENCY_IN_FLIGHT_MAX_US) as i64;
        let (tenant, key_id) = (scope.tenant.as_str(), scope.key_id.as_str());
        let found = self.with(|c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant = $1 AND key_id = $2 AND key = $3 \
                 AND status IS NULL AND created_at < $4",
                &[&tenant, &key_id, &key, &stale_before],
            )?;
            let inserted = c.execute(
                "INSERT INTO idempotency (tenant, key_id, key, request_hash, created_at, node) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&tenant, &key_id, &key, &&request_hash[..], &(now_us as i64), &node],
            )?;
            if inserted == 1 {
                return Ok(None);
            }
            // The claim may have been released between the insert and this read: then it is
            // in flight from this caller's point of view (a retry will find it free).
            let row = c.query_opt(
                "SELECT request_hash, status, body FROM idempotency \
                 WHERE tenant = $1 AND key_id = $2 AND key = $3",
                &[&tenant, &key_id, &key],
            )?;
            match row {
                None => Ok(Some((request_hash.to_vec(), None, None))),
                Some(row) => Ok(Some((
                    row.try_get::<_, Vec<u8>>(0)?,
                    row.try_get::<_, Option<i32>>(1)?.map(i64::from),
                    row.try_get::<_, Option<Vec<u8>>>(2)?,
                ))),
            }
        })?;
        claim_of(found)
    }

    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                "UPDATE idempotency SET status = $4, body = $5 \
                 WHERE tenant = $1 AND key_id = $2 AND key = $3",
                &[&scope.tenant.as_str(), &scope.key_id, &key, &i32::from(status), &body],
            )
            .map(|_| ())
        })
    }

    fn release_idempotency(&self, scope: &IdempotencyScope, key: &str) -> Result<(), AccessError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM idempotency WHERE tenant = $1 AND key_id = $2 AND key = $3 \
                 AND status IS NULL",
                &[&scope.tenant.as_str(), &scope.key_id, &key],
            )
            .map(|_| ())
        })
    }

    fn release_node_claims(&self, node: &str) -> Result<u64, AccessError> {
        self.with(|c| {
            c.execute("DELETE FROM idempotency WHERE node = $1 AND status IS NULL", &[&node])
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

    fn namespace_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AccessError> {
        let stored: Vec<u8> = self.with(|c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&NAMESPACE_SECRET, &&candidate[..]],
            )?;
            c.query_one("SELECT value FROM settings WHERE name = $1", &[&NAMESPACE_SECRET])?
                .try_get(0)
        })?;
        stored.try_into().map_err(|_| corrupt("namespace secret"))
    }
}
