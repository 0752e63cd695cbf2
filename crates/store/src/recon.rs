//! The reconciler's port (`reconciler::ReconStore`) on SQLite (`recon.db`, `synchronous =
//! FULL`) and PostgreSQL (migration 10). Runs and breaks are few and written rarely, so the
//! logic is written once over a two-method SQL adapter ([`Db`]) that each backend implements
//! on its own transaction; records are stored as JSON bodies beside the columns queries use.

use std::path::Path;

use reconciler::port::{
    BreakEvent, BreakQuery, BreakRecord, CheckRun, ClosedDay, DayQuery, LossRecord, PutStatement,
    ReconStore, ReconStoreError, RegisterEntry, RunRecord, StatementRecord, Updated,
};

use crate::postgres::PgTarget;
use crate::sql::{bodies, int, json, pg_transaction, Db, PgKit, SqlError, SqliteKit, V};

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/0001_recon.sql")),
    (2, include_str!("sqlite/0002_recon_closed_days.sql")),
    (3, include_str!("sqlite/0003_recon_checks.sql")),
    (4, include_str!("sqlite/0004_recon_alerts.sql")),
];

fn backend(error: impl std::fmt::Display) -> ReconStoreError {
    ReconStoreError::Backend(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> ReconStoreError {
    ReconStoreError::Corrupt(error.to_string())
}

impl From<SqlError> for ReconStoreError {
    fn from(error: SqlError) -> ReconStoreError {
        match error {
            SqlError::Backend(detail) => ReconStoreError::Backend(detail),
            SqlError::Corrupt(detail) => ReconStoreError::Corrupt(detail),
        }
    }
}

fn put_statement(
    db: &mut dyn Db,
    record: &StatementRecord,
    bytes: Vec<u8>,
) -> Result<PutStatement, ReconStoreError> {
    db.lock_key(&format!("qianbao.recon.statement.{}.{}", record.channel, record.business_day))?;
    let same = db.rows(
        "SELECT body FROM recon_statements WHERE channel = ?1 AND business_day = ?2 AND sha256 = ?3",
        &[V::Text(record.channel.clone()), V::Int(record.business_day), V::Text(record.sha256_hex.clone())],
    )?;
    if let Some(existing) = bodies::<StatementRecord>(same)?.pop() {
        return Ok(PutStatement::Same(existing));
    }
    let latest = db.rows(
        "SELECT COALESCE(MAX(version), 0) FROM recon_statements WHERE channel = ?1 AND business_day = ?2",
        &[V::Text(record.channel.clone()), V::Int(record.business_day)],
    )?;
    let latest = latest.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(V::Int(0));
    let version = u32::try_from(latest.int()?).map_err(corrupt)? + 1;
    let stored = StatementRecord { version, ..record.clone() };
    db.exec(
        "INSERT INTO recon_statements (id, channel, business_day, version, sha256, received_at_ms, body, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            V::Text(stored.id.clone()),
            V::Text(stored.channel.clone()),
            V::Int(stored.business_day),
            V::Int(i64::from(version)),
            V::Text(stored.sha256_hex.clone()),
            int(stored.received_at_ms),
            json(&stored)?,
            V::Blob(bytes),
        ],
    )?;
    Ok(PutStatement::Stored(stored))
}

fn day_filter(query: &DayQuery) -> (String, Vec<V>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut params = Vec::new();
    if let Some(channel) = &query.channel {
        params.push(V::Text(channel.clone()));
        clauses.push(format!("channel = ?{}", params.len()));
    }
    if let Some(day) = query.business_day {
        params.push(V::Int(day));
        clauses.push(format!("business_day = ?{}", params.len()));
    }
    params.push(V::Int(crate::orders::limit_of(query.limit)));
    (clauses.join(" AND "), params)
}

fn insert_run(
    db: &mut dyn Db,
    run: &RunRecord,
    breaks: &[BreakRecord],
) -> Result<Vec<String>, ReconStoreError> {
    db.exec(
        "INSERT INTO recon_runs (id, channel, business_day, started_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            V::Text(run.id.clone()),
            V::Text(run.channel.clone()),
            V::Int(run.business_day),
            int(run.started_at_ms),
            json(run)?,
        ],
    )?;
    let mut new = Vec::new();
    for record in breaks {
        let inserted = db.exec(
            "INSERT INTO recon_breaks (id, channel, business_day, class, state, version, created_at_ms, updated_at_ms, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
            &[
                V::Text(record.id.clone()),
                V::Text(record.channel.clone()),
                V::Int(record.business_day),
                V::Text(record.class.as_str().into()),
                V::Text(record.state.as_str().into()),
                int(record.version),
                int(record.created_at_ms),
                int(record.updated_at_ms),
                json(record)?,
            ],
        )?;
        if inserted == 1 {
            insert_event(db, &BreakEvent::found(record))?;
            new.push(record.id.clone());
        }
    }
    Ok(new)
}

fn insert_event(db: &mut dyn Db, event: &BreakEvent) -> Result<(), ReconStoreError> {
    db.exec(
        "INSERT INTO recon_break_events (break_id, at_ms, body) VALUES (?1, ?2, ?3)",
        &[V::Text(event.break_id.clone()), int(event.at_ms), json(event)?],
    )?;
    Ok(())
}

fn breaks(db: &mut dyn Db, query: &BreakQuery) -> Result<Vec<BreakRecord>, ReconStoreError> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut params = Vec::new();
    let mut push = |clause: &str, value: V, params: &mut Vec<V>| {
        params.push(value);
        clauses.push(clause.replace("?N", &format!("?{}", params.len())));
    };
    if let Some(channel) = &query.channel {
        push("channel = ?N", V::Text(channel.clone()), &mut params);
    }
    if let Some(day) = query.business_day {
        push("business_day = ?N", V::Int(day), &mut params);
    }
    if let Some(class) = query.class {
        push("class = ?N", V::Text(class.as_str().into()), &mut params);
    }
    if let Some(state) = query.state {
        push("state = ?N", V::Text(state.as_str().into()), &mut params);
    }
    if let Some((at_ms, id)) = &query.before {
        params.push(int(*at_ms));
        let at = params.len();
        params.push(V::Text(id.clone()));
        clauses.push(format!(
            "(created_at_ms < ?{at} OR (created_at_ms = ?{at} AND id < ?{}))",
            params.len()
        ));
    }
    params.push(V::Int(crate::orders::limit_of(query.limit)));
    let sql = format!(
        "SELECT body FROM recon_breaks WHERE {} ORDER BY created_at_ms DESC, id DESC LIMIT ?{}",
        clauses.join(" AND "),
        params.len()
    );
    Ok(bodies(db.rows(&sql, &params)?)?)
}

fn update_break(
    db: &mut dyn Db,
    record: &BreakRecord,
    expected_version: u64,
    event: &BreakEvent,
    register: &RegisterEntry,
) -> Result<Updated, ReconStoreError> {
    let written = db.exec(
        "UPDATE recon_breaks SET state = ?1, version = ?2, updated_at_ms = ?3, body = ?4 \
         WHERE id = ?5 AND version = ?6",
        &[
            V::Text(record.state.as_str().into()),
            int(record.version),
            int(record.updated_at_ms),
            json(record)?,
            V::Text(record.id.clone()),
            int(expected_version),
        ],
    )?;
    if written == 0 {
        return Ok(Updated::Stale);
    }
    insert_event(db, event)?;
    match register {
        RegisterEntry::None => {}
        RegisterEntry::Loss(loss) => {
            db.exec(
                "INSERT INTO recon_losses (id, written_off_at_ms, body) VALUES (?1, ?2, ?3)",
                &[V::Text(loss.id.clone()), int(loss.written_off_at_ms), json(loss)?],
            )?;
        }
        RegisterEntry::Recovery { loss_id, amount } => {
            db.lock_key(&format!("qianbao.recon.loss.{loss_id}"))?;
            let rows = db
                .rows("SELECT body FROM recon_losses WHERE id = ?1", &[V::Text(loss_id.clone())])?;
            let Some(mut loss) = bodies::<LossRecord>(rows)?.pop() else {
                return Err(corrupt(format!("a recovery of loss {loss_id}, which is not stored")));
            };
            loss.recovered = loss
                .recovered
                .checked_add(*amount)
                .ok_or_else(|| corrupt(format!("loss {loss_id}: recoveries overflow")))?;
            db.exec(
                "UPDATE recon_losses SET body = ?1 WHERE id = ?2",
                &[json(&loss)?, V::Text(loss_id.clone())],
            )?;
        }
    }
    Ok(Updated::Written)
}

/// Every port method, over a [`Db`] the backend opens per call.
trait Backend: Send + Sync + 'static {
    fn with<T>(
        &self,
        write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, ReconStoreError>,
    ) -> Result<T, ReconStoreError>;

    /// A write carrying a large value (a statement file): by default as any write.
    fn with_large<T>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> Result<T, ReconStoreError>,
    ) -> Result<T, ReconStoreError> {
        self.with(true, work)
    }
}

macro_rules! recon_store {
    ($store:ty) => {
        impl ReconStore for $store {
            fn put_alert(&self, alert: &monitors::Alert) -> Result<(), ReconStoreError> {
                self.with(true, |db| {
                    db.exec(
                        "INSERT INTO recon_alerts (id, state, fired_at_ms, body) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
                        &[
                            V::Text(alert.id.clone()),
                            V::Text(alert.state.as_str().into()),
                            int(alert.fired_at_ms),
                            json(alert)?,
                        ],
                    )?;
                    Ok(())
                })
            }

            fn alerts(
                &self,
                state: Option<monitors::AlertState>,
                limit: usize,
            ) -> Result<Vec<monitors::Alert>, ReconStoreError> {
                self.with(false, |db| {
                    let limit = int(limit.min(i64::MAX as usize) as u64);
                    let rows = match state {
                        Some(state) => db.rows(
                            "SELECT body FROM recon_alerts WHERE state = ?1 \
                             ORDER BY fired_at_ms DESC, id DESC LIMIT ?2",
                            &[V::Text(state.as_str().into()), limit],
                        )?,
                        None => db.rows(
                            "SELECT body FROM recon_alerts ORDER BY fired_at_ms DESC, id DESC LIMIT ?1",
                            &[limit],
                        )?,
                    };
                    Ok(bodies(rows)?)
                })
            }

            fn insert_check_run(&self, run: &CheckRun) -> Result<(), ReconStoreError> {
                self.with(true, |db| {
                    db.exec(
                        "INSERT INTO recon_check_runs (id, started_at_ms, body) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (id) DO NOTHING",
                        &[V::Text(run.id.clone()), int(run.started_at_ms), json(run)?],
                    )?;
                    Ok(())
                })
            }

            fn check_run(&self, id: &str) -> Result<Option<CheckRun>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_check_runs WHERE id = ?1",
                        &[V::Text(id.into())],
                    )?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn check_runs(&self, limit: usize) -> Result<Vec<CheckRun>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_check_runs ORDER BY started_at_ms DESC, id DESC LIMIT ?1",
                        &[int(limit as u64)],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn put_closed_day(&self, day: &ClosedDay) -> Result<ClosedDay, ReconStoreError> {
                self.with(true, |db| {
                    db.lock_key("qianbao.recon.closed_days")?;
                    let rows = db.rows(
                        "SELECT body FROM recon_closed_days WHERE business_day = ?1",
                        &[V::Int(day.business_day)],
                    )?;
                    if let Some(existing) = bodies::<ClosedDay>(rows)?.pop() {
                        return Ok(existing);
                    }
                    db.exec(
                        "INSERT INTO recon_closed_days (business_day, hash, body) VALUES (?1, ?2, ?3)",
                        &[V::Int(day.business_day), V::Text(day.hash.clone()), json(day)?],
                    )?;
                    Ok(day.clone())
                })
            }

            fn closed_day(&self, business_day: i64) -> Result<Option<ClosedDay>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_closed_days WHERE business_day = ?1",
                        &[V::Int(business_day)],
                    )?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn closed_days(&self, limit: usize) -> Result<Vec<ClosedDay>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_closed_days ORDER BY business_day DESC LIMIT ?1",
                        &[int(limit as u64)],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn put_statement(
                &self,
                record: &StatementRecord,
                bytes: Vec<u8>,
            ) -> Result<PutStatement, ReconStoreError> {
                self.with_large(|db| put_statement(db, record, bytes))
            }

            fn statement(&self, id: &str) -> Result<Option<StatementRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_statements WHERE id = ?1",
                        &[V::Text(id.into())],
                    )?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn statement_bytes(&self, id: &str) -> Result<Option<Vec<u8>>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT bytes FROM recon_statements WHERE id = ?1",
                        &[V::Text(id.into())],
                    )?;
                    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
                        None => Ok(None),
                        Some(V::Blob(bytes)) => Ok(Some(bytes)),
                        Some(other) => Err(corrupt(format!("statement bytes read as {other:?}"))),
                    }
                })
            }

            fn latest_statement(
                &self,
                channel: &str,
                business_day: i64,
            ) -> Result<Option<StatementRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_statements WHERE channel = ?1 AND business_day = ?2 \
                         ORDER BY version DESC LIMIT 1",
                        &[V::Text(channel.into()), V::Int(business_day)],
                    )?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn statements(&self, query: &DayQuery) -> Result<Vec<StatementRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let (filter, params) = day_filter(query);
                    let sql = format!(
                        "SELECT body FROM recon_statements WHERE {filter} \
                         ORDER BY received_at_ms DESC, id DESC LIMIT ?{}",
                        params.len()
                    );
                    Ok(bodies(db.rows(&sql, &params)?)?)
                })
            }

            fn insert_run(
                &self,
                run: &RunRecord,
                breaks: &[BreakRecord],
            ) -> Result<Vec<String>, ReconStoreError> {
                self.with(true, |db| insert_run(db, run, breaks))
            }

            fn run(&self, id: &str) -> Result<Option<RunRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows =
                        db.rows("SELECT body FROM recon_runs WHERE id = ?1", &[V::Text(id.into())])?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn runs(&self, query: &DayQuery) -> Result<Vec<RunRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let (filter, params) = day_filter(query);
                    let sql = format!(
                        "SELECT body FROM recon_runs WHERE {filter} \
                         ORDER BY started_at_ms DESC, id DESC LIMIT ?{}",
                        params.len()
                    );
                    Ok(bodies(db.rows(&sql, &params)?)?)
                })
            }

            fn get_break(&self, id: &str) -> Result<Option<BreakRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db
                        .rows("SELECT body FROM recon_breaks WHERE id = ?1", &[V::Text(id.into())])?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn breaks(&self, query: &BreakQuery) -> Result<Vec<BreakRecord>, ReconStoreError> {
                self.with(false, |db| breaks(db, query))
            }

            fn resolving(&self, limit: usize) -> Result<Vec<BreakRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_breaks WHERE state = 'resolving' \
                         ORDER BY updated_at_ms, id LIMIT ?1",
                        &[V::Int(crate::orders::limit_of(limit))],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn update_break(
                &self,
                record: &BreakRecord,
                expected_version: u64,
                event: &BreakEvent,
                register: &RegisterEntry,
            ) -> Result<Updated, ReconStoreError> {
                self.with(true, |db| update_break(db, record, expected_version, event, register))
            }

            fn break_events(&self, id: &str) -> Result<Vec<BreakEvent>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_break_events WHERE break_id = ?1 ORDER BY seq",
                        &[V::Text(id.into())],
                    )?;
                    Ok(bodies(rows)?)
                })
            }

            fn loss(&self, id: &str) -> Result<Option<LossRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db
                        .rows("SELECT body FROM recon_losses WHERE id = ?1", &[V::Text(id.into())])?;
                    Ok(bodies(rows)?.pop())
                })
            }

            fn losses(&self, from_ms: u64, to_ms: u64) -> Result<Vec<LossRecord>, ReconStoreError> {
                self.with(false, |db| {
                    let rows = db.rows(
                        "SELECT body FROM recon_losses WHERE written_off_at_ms >= ?1 \
                         AND written_off_at_ms < ?2 ORDER BY written_off_at_ms, id",
                        &[int(from_ms), int(to_ms)],
                    )?;
                    Ok(bodies(rows)?)
                })
            }
        }
    };
}

/// Reconciliation on SQLite: `recon.db` beside the ledger, `synchronous = FULL`.
pub struct SqliteReconStore {
    kit: SqliteKit,
}

impl SqliteReconStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteReconStore, ReconStoreError> {
        Ok(SqliteReconStore { kit: SqliteKit::open(path.as_ref(), SQLITE_MIGRATIONS)? })
    }
}

impl Backend for SqliteReconStore {
    fn with<T>(
        &self,
        write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, ReconStoreError>,
    ) -> Result<T, ReconStoreError> {
        self.kit.with(write, work)
    }
}

recon_store!(SqliteReconStore);

/// Reconciliation on PostgreSQL, beside the other domains' tables.
pub struct PgReconStore {
    kit: PgKit,
    target: PgTarget,
}

impl PgReconStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgReconStore, ReconStoreError> {
        target.migrate().map_err(backend)?;
        let client = target.connect_client().map_err(backend)?;
        Ok(PgReconStore { kit: PgKit::new(client, target.clone()), target: target.clone() })
    }
}

impl Backend for PgReconStore {
    fn with<T>(
        &self,
        _write: bool,
        work: impl FnOnce(&mut dyn Db) -> Result<T, ReconStoreError>,
    ) -> Result<T, ReconStoreError> {
        self.kit.with(work)
    }

    /// On a connection of its own, closed afterwards: the client keeps its send buffer as
    /// large as the largest message it ever sent, and a statement file would stay resident
    /// in it (hundreds of megabytes) for the life of the store's connection.
    fn with_large<T>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> Result<T, ReconStoreError>,
    ) -> Result<T, ReconStoreError> {
        crate::off_runtime(|| {
            let mut client = self.target.connect_client().map_err(backend)?;
            pg_transaction(&mut client, work)
        })
    }
}

recon_store!(PgReconStore);
