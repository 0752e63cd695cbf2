//! Operators' work (`operators::OpsStore`) on SQLite (`ops.db`, `synchronous = FULL`) and
//! PostgreSQL (migrations 18–20): the audit chain, the actions, the switches and the
//! exchange rates, through the SQL kit
//! ([`crate::sql`]). An entry is numbered and linked to the one before inside the transaction
//! that appends it, under a lock every node takes (PostgreSQL: an advisory lock; SQLite: its
//! one writer), so appenders on any node form one chain.

use std::path::Path;

use operators::audit::{link, GENESIS_HASH};
use operators::{
    AuditEntry, FxRateState, NewAuditEntry, OperatorAction, OpsStore, OpsStoreError, SwitchState,
};

use crate::postgres::PgTarget;
use crate::sql::{bodies, int, json, Db, PgKit, SqlError, SqliteKit, V};

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_ops.sql")),
    (2, include_str!("sqlite/0002_ops_switches.sql")),
    (3, include_str!("sqlite/0003_ops_fx_rates.sql")),
];

impl From<SqlError> for OpsStoreError {
    fn from(error: SqlError) -> OpsStoreError {
        match error {
            SqlError::Backend(detail) => OpsStoreError::Backend(detail),
            SqlError::Corrupt(detail) => OpsStoreError::Corrupt(detail),
        }
    }
}

fn backend(error: impl std::fmt::Display) -> OpsStoreError {
    OpsStoreError::Backend(error.to_string())
}

fn append_audit(db: &mut dyn Db, entry: &NewAuditEntry) -> Result<AuditEntry, OpsStoreError> {
    db.lock_key("qianbao.ops.audit")?;
    let last = db.rows("SELECT seq, hash FROM ops_audit ORDER BY seq DESC LIMIT 1", &[])?;
    let (seq, hash) = match last.into_iter().next() {
        Some(row) => {
            let mut row = row.into_iter();
            let seq = row.next().unwrap_or(V::Null).int()?;
            let hash = row.next().unwrap_or(V::Null).text()?;
            (u64::try_from(seq).map_err(|e| SqlError::Corrupt(e.to_string()))?, hash)
        }
        None => (0, GENESIS_HASH.to_owned()),
    };
    let linked = link(seq, &hash, entry.clone());
    db.exec(
        "INSERT INTO ops_audit (seq, at_ms, actor, action, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            int(linked.seq),
            int(linked.entry.at_ms),
            V::Text(linked.entry.actor.clone()),
            V::Text(linked.entry.action.clone()),
            V::Text(linked.hash.clone()),
            json(&linked)?,
        ],
    )?;
    Ok(linked)
}

fn action_params(action: &OperatorAction) -> Result<Vec<V>, SqlError> {
    Ok(vec![
        V::Text(action.id.clone()),
        V::Text(action.state.name().into()),
        int(action.version),
        int(action.created_at_ms),
        json(action)?,
    ])
}

/// A setting kept with every version: the current row per key and the history, written
/// under one lock. (Table and column names are constants, never input.)
struct Versioned {
    current: &'static str,
    history: &'static str,
    key: &'static str,
    lock: &'static str,
}

const SWITCHES: Versioned = Versioned {
    current: "ops_switches",
    history: "ops_switch_versions",
    key: "key",
    lock: "qianbao.ops.switches",
};

const FX_RATES: Versioned = Versioned {
    current: "ops_fx_rates",
    history: "ops_fx_rate_versions",
    key: "pair",
    lock: "qianbao.ops.fx_rates",
};

/// Writes each (key, version, body) as the next version of its key — if every key is still
/// at the version before (none for version 1) — all or none, with `audit`.
fn write_versions(
    db: &mut dyn Db,
    table: &Versioned,
    rows: Vec<(String, u64, V)>,
    audit: &NewAuditEntry,
) -> Result<bool, OpsStoreError> {
    db.lock_key(table.lock)?;
    let read = format!("SELECT version FROM {} WHERE {} = ?1", table.current, table.key);
    // Every key checked before anything is written.
    for (key, version, _) in &rows {
        let found = db.rows(&read, &[V::Text(key.clone())])?;
        let current = match found.into_iter().next().and_then(|row| row.into_iter().next()) {
            Some(version) => version.int()?,
            None => 0,
        };
        if current != crate::orders::i64_of(*version) - 1 {
            return Ok(false);
        }
    }
    let upsert = format!(
        "INSERT INTO {current} ({key}, version, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT ({key}) DO UPDATE SET version = excluded.version, body = excluded.body",
        current = table.current,
        key = table.key,
    );
    let append =
        format!("INSERT INTO {} ({}, version, body) VALUES (?1, ?2, ?3)", table.history, table.key);
    for (key, version, body) in rows {
        let params = [V::Text(key), int(version), body];
        db.exec(&upsert, &params)?;
        db.exec(&append, &params)?;
    }
    append_audit(db, audit)?;
    Ok(true)
}

fn set_switches(
    db: &mut dyn Db,
    states: &[SwitchState],
    audit: &NewAuditEntry,
) -> Result<bool, OpsStoreError> {
    let rows = states
        .iter()
        .map(|state| Ok((state.switch.key(), state.version, json(state)?)))
        .collect::<Result<Vec<_>, SqlError>>()?;
    write_versions(db, &SWITCHES, rows, audit)
}

fn set_fx_rate(
    db: &mut dyn Db,
    rate: &FxRateState,
    audit: &NewAuditEntry,
) -> Result<bool, OpsStoreError> {
    write_versions(db, &FX_RATES, vec![(rate.pair(), rate.version, json(rate)?)], audit)
}

macro_rules! ops_store {
    ($store:ty) => {
        impl OpsStore for $store {
            fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, OpsStoreError> {
                self.with(true, |db| append_audit(db, entry))
            }

            fn audit(
                &self,
                after_seq: u64,
                limit: usize,
            ) -> Result<Vec<AuditEntry>, OpsStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM ops_audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                        &[int(after_seq), V::Int(crate::orders::limit_of(limit))],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn insert_action(
                &self,
                action: &OperatorAction,
                audit: &NewAuditEntry,
            ) -> Result<bool, OpsStoreError> {
                self.with(true, |db| {
                    let inserted = db.exec(
                        "INSERT INTO ops_actions (id, state, version, created_at_ms, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                        &action_params(action)?,
                    )?;
                    if inserted == 1 {
                        append_audit(db, audit)?;
                    }
                    Ok(inserted == 1)
                })
            }

            fn action(&self, id: &str) -> Result<Option<OperatorAction>, OpsStoreError> {
                self.with(false, |db| {
                    let rows = db
                        .rows("SELECT body FROM ops_actions WHERE id = ?1", &[V::Text(id.into())])?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn update_action(
                &self,
                action: &OperatorAction,
                expected_version: u64,
                audit: &NewAuditEntry,
            ) -> Result<bool, OpsStoreError> {
                self.with(true, |db| {
                    let mut params = action_params(action)?;
                    params.push(int(expected_version));
                    let updated = db.exec(
                        "UPDATE ops_actions SET state = ?2, version = ?3, created_at_ms = ?4, body = ?5 \
                         WHERE id = ?1 AND version = ?6",
                        &params,
                    )?;
                    if updated == 1 {
                        append_audit(db, audit)?;
                    }
                    Ok(updated == 1)
                })
            }

            fn actions(
                &self,
                state: Option<&str>,
                limit: usize,
            ) -> Result<Vec<OperatorAction>, OpsStoreError> {
                self.with(false, |db| {
                    let limit = V::Int(crate::orders::limit_of(limit));
                    let rows = match state {
                        Some(state) => db.rows(
                            "SELECT body FROM ops_actions WHERE state = ?1 \
                             ORDER BY created_at_ms DESC, id DESC LIMIT ?2",
                            &[V::Text(state.into()), limit],
                        )?,
                        None => db.rows(
                            "SELECT body FROM ops_actions ORDER BY created_at_ms DESC, id DESC LIMIT ?1",
                            &[limit],
                        )?,
                    };
                    Ok(bodies(rows)?)
                })
            }

            fn switches(&self) -> Result<Vec<SwitchState>, OpsStoreError> {
                self.with(false, |db| {
                    let rows = db.rows("SELECT body FROM ops_switches ORDER BY key", &[])?;
                    Ok(bodies(rows)?)
                })
            }

            fn switch_versions(
                &self,
                key: &str,
                limit: usize,
            ) -> Result<Vec<SwitchState>, OpsStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM ops_switch_versions WHERE key = ?1 \
                         ORDER BY version DESC LIMIT ?2",
                        &[V::Text(key.into()), V::Int(crate::orders::limit_of(limit))],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn set_switches(
                &self,
                states: &[SwitchState],
                audit: &NewAuditEntry,
            ) -> Result<bool, OpsStoreError> {
                self.with(true, |db| set_switches(db, states, audit))
            }

            fn fx_rates(&self) -> Result<Vec<FxRateState>, OpsStoreError> {
                self.with(false, |db| {
                    let rows = db.rows("SELECT body FROM ops_fx_rates ORDER BY pair", &[])?;
                    Ok(bodies(rows)?)
                })
            }

            fn set_fx_rate(
                &self,
                rate: &FxRateState,
                audit: &NewAuditEntry,
            ) -> Result<bool, OpsStoreError> {
                self.with(true, |db| set_fx_rate(db, rate, audit))
            }
        }
    };
}

/// Operators' work on SQLite: `ops.db` beside the ledger, `synchronous = FULL`.
pub struct SqliteOpsStore {
    kit: SqliteKit,
}

impl SqliteOpsStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteOpsStore, OpsStoreError> {
        Ok(SqliteOpsStore { kit: SqliteKit::open(path.as_ref(), SQLITE_MIGRATIONS)? })
    }

    fn with<T>(
        &self,
        write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, OpsStoreError>,
    ) -> Result<T, OpsStoreError> {
        self.kit.with(write, work)
    }
}

ops_store!(SqliteOpsStore);

/// Operators' work on PostgreSQL, beside the other domains' tables.
pub struct PgOpsStore {
    kit: PgKit,
}

impl PgOpsStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgOpsStore, OpsStoreError> {
        target.migrate().map_err(backend)?;
        let client = target.connect_client().map_err(backend)?;
        Ok(PgOpsStore { kit: PgKit::new(client, target.clone()) })
    }

    fn with<T>(
        &self,
        _write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, OpsStoreError>,
    ) -> Result<T, OpsStoreError> {
        self.kit.with(work)
    }
}

ops_store!(PgOpsStore);
