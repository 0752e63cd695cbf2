//! The gateway's status-inquiry tasks on SQLite (`gateway.db`, its own file, `synchronous =
//! FULL`: an open task is the only thing standing between an unknown outcome and a stuck
//! order) and PostgreSQL (the shared schema).

use std::path::Path;
use std::sync::Mutex;

use channels::inquiry::{InquiryBacklog, InquiryError, InquiryState, InquiryStore, InquiryTask};
use channels::{ChannelId, Operation, Outcome, RequestId};
use rusqlite::{params, Connection, OptionalExtension};

use crate::orders::limit_of;
use crate::postgres::PgTarget;

const SQLITE_MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("sqlite/0001_gateway.sql"))];

const COLUMNS: &str =
    "channel, request_id, operation, owner, created_at_ms, attempts, next_at_ms, state, outcome, delivered, detail";

fn store_error(error: impl std::fmt::Display) -> InquiryError {
    InquiryError::Store(error.to_string())
}

fn operation_from(text: &str) -> Result<Operation, InquiryError> {
    Operation::ALL
        .into_iter()
        .find(|operation| operation.as_str() == text)
        .ok_or_else(|| store_error(format!("corrupt inquiry: operation {text:?}")))
}

/// The stored columns of one task, in [`COLUMNS`] order.
struct Columns {
    channel: String,
    request_id: String,
    operation: String,
    owner: String,
    created_at_ms: i64,
    attempts: i64,
    next_at_ms: i64,
    state: String,
    outcome: Option<String>,
    delivered: bool,
    detail: String,
}

impl Columns {
    fn into_task(self) -> Result<InquiryTask, InquiryError> {
        let state = match (self.state.as_str(), self.outcome) {
            ("open", _) => InquiryState::Open,
            ("escalated", _) => InquiryState::Escalated { detail: self.detail },
            ("resolved", Some(outcome)) => InquiryState::Resolved {
                outcome: serde_json::from_str(&outcome).map_err(store_error)?,
                delivered: self.delivered,
            },
            (state, _) => return Err(store_error(format!("corrupt inquiry: state {state:?}"))),
        };
        let non_negative = |value: i64| u64::try_from(value).map_err(store_error);
        Ok(InquiryTask {
            channel: ChannelId::new(self.channel).map_err(store_error)?,
            request_id: RequestId::new(self.request_id).map_err(store_error)?,
            operation: operation_from(&self.operation)?,
            owner: self.owner,
            created_at_ms: non_negative(self.created_at_ms)?,
            attempts: u32::try_from(self.attempts).map_err(store_error)?,
            next_at_ms: non_negative(self.next_at_ms)?,
            state,
        })
    }
}

fn outcome_text(outcome: &Outcome) -> Result<String, InquiryError> {
    serde_json::to_string(outcome).map_err(store_error)
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub struct SqliteInquiryStore {
    connection: Mutex<Connection>,
}

impl SqliteInquiryStore {
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteInquiryStore, InquiryError> {
        let mut connection = Connection::open(path).map_err(store_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
            )
            .map_err(store_error)?;
        crate::sqlite::migrate(&mut connection, SQLITE_MIGRATIONS).map_err(store_error)?;
        Ok(SqliteInquiryStore { connection: Mutex::new(connection) })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, InquiryError> {
        let connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run(&connection).map_err(store_error)
    }

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<InquiryTask>, InquiryError> {
        let rows = self.with(|c| {
            let mut statement = c.prepare_cached(sql)?;
            let rows = statement.query_map(params, |row| {
                Ok(Columns {
                    channel: row.get(0)?,
                    request_id: row.get(1)?,
                    operation: row.get(2)?,
                    owner: row.get(3)?,
                    created_at_ms: row.get(4)?,
                    attempts: row.get(5)?,
                    next_at_ms: row.get(6)?,
                    state: row.get(7)?,
                    outcome: row.get(8)?,
                    delivered: row.get(9)?,
                    detail: row.get(10)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(Columns::into_task).collect()
    }
}

impl InquiryStore for SqliteInquiryStore {
    fn open(&self, task: &InquiryTask) -> Result<bool, InquiryError> {
        let n = self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO inquiries ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', NULL, 0, '') \
                     ON CONFLICT (channel, request_id) DO NOTHING"
                ),
                params![
                    task.channel.as_str(),
                    task.request_id.as_str(),
                    task.operation.as_str(),
                    task.owner,
                    ms(task.created_at_ms),
                    i64::from(task.attempts),
                    ms(task.next_at_ms),
                ],
            )
        })?;
        Ok(n == 1)
    }

    fn get(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<Option<InquiryTask>, InquiryError> {
        let mut found = self.query(
            &format!("SELECT {COLUMNS} FROM inquiries WHERE channel = ?1 AND request_id = ?2"),
            params![channel.as_str(), request_id.as_str()],
        )?;
        Ok(found.pop())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM inquiries WHERE state IN ('open', 'escalated') AND next_at_ms <= ?1 \
                 ORDER BY next_at_ms LIMIT ?2"
            ),
            params![ms(now_ms), limit as i64],
        )
    }

    fn reschedule(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        attempts: u32,
        next_at_ms: u64,
    ) -> Result<(), InquiryError> {
        self.with(|c| {
            c.execute(
                "UPDATE inquiries SET attempts = ?3, next_at_ms = ?4 \
                 WHERE channel = ?1 AND request_id = ?2 AND state IN ('open', 'escalated')",
                params![channel.as_str(), request_id.as_str(), i64::from(attempts), ms(next_at_ms)],
            )
        })?;
        Ok(())
    }

    fn resolve(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<bool, InquiryError> {
        let outcome = outcome_text(outcome)?;
        let n = self.with(|c| {
            c.execute(
                "UPDATE inquiries SET state = 'resolved', outcome = ?3, delivered = 0 \
                 WHERE channel = ?1 AND request_id = ?2 AND state <> 'resolved'",
                params![channel.as_str(), request_id.as_str(), outcome],
            )
        })?;
        Ok(n == 1)
    }

    fn escalate(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        detail: &str,
    ) -> Result<(), InquiryError> {
        self.with(|c| {
            c.execute(
                "UPDATE inquiries SET state = 'escalated', detail = ?3 \
                 WHERE channel = ?1 AND request_id = ?2 AND state = 'open'",
                params![channel.as_str(), request_id.as_str(), detail],
            )
        })?;
        Ok(())
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM inquiries WHERE state = 'resolved' AND delivered = 0 LIMIT ?1"
            ),
            params![limit as i64],
        )
    }

    fn mark_delivered(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<(), InquiryError> {
        self.with(|c| {
            c.execute(
                "UPDATE inquiries SET delivered = 1 WHERE channel = ?1 AND request_id = ?2",
                params![channel.as_str(), request_id.as_str()],
            )
        })?;
        Ok(())
    }

    fn backlog(&self) -> Result<InquiryBacklog, InquiryError> {
        self.with(|c| {
            c.query_row(
                "SELECT count(*) FILTER (WHERE state = 'open'), \
                        count(*) FILTER (WHERE state = 'escalated'), \
                        count(*) FILTER (WHERE state = 'resolved' AND delivered = 0) FROM inquiries",
                [],
                |row| {
                    Ok(InquiryBacklog {
                        open: row.get::<_, i64>(0)?.max(0) as u64,
                        escalated: row.get::<_, i64>(1)?.max(0) as u64,
                        undelivered: row.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
    }

    fn escalated(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM inquiries WHERE state = 'escalated' \
                 ORDER BY created_at_ms, channel, request_id LIMIT ?1"
            ),
            params![limit_of(limit)],
        )
    }

    fn ask_now(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        now_ms: u64,
    ) -> Result<bool, InquiryError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE inquiries SET next_at_ms = ?3 \
                 WHERE channel = ?1 AND request_id = ?2 AND state IN ('open', 'escalated')",
                params![channel.as_str(), request_id.as_str(), ms(now_ms)],
            )
        })?;
        Ok(n == 1)
    }
}

pub struct PgInquiryStore {
    client: Mutex<postgres::Client>,
}

impl PgInquiryStore {
    /// Connects, migrating the schema first.
    pub fn connect(target: &PgTarget) -> Result<PgInquiryStore, InquiryError> {
        target.migrate().map_err(store_error)?;
        let client = target.connect_client().map_err(store_error)?;
        Ok(PgInquiryStore { client: Mutex::new(client) })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, InquiryError> {
        let mut client = self.client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run(&mut client).map_err(store_error)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<InquiryTask>, InquiryError> {
        let rows = self.with(|c| c.query(sql, params))?;
        rows.iter()
            .map(|row| {
                Columns {
                    channel: row.try_get(0).map_err(store_error)?,
                    request_id: row.try_get(1).map_err(store_error)?,
                    operation: row.try_get(2).map_err(store_error)?,
                    owner: row.try_get(3).map_err(store_error)?,
                    created_at_ms: row.try_get(4).map_err(store_error)?,
                    attempts: row.try_get(5).map_err(store_error)?,
                    next_at_ms: row.try_get(6).map_err(store_error)?,
                    state: row.try_get(7).map_err(store_error)?,
                    outcome: row.try_get(8).map_err(store_error)?,
                    delivered: row.try_get(9).map_err(store_error)?,
                    detail: row.try_get(10).map_err(store_error)?,
                }
                .into_task()
            })
            .collect()
    }
}

impl InquiryStore for PgInquiryStore {
    fn open(&self, task: &InquiryTask) -> Result<bool, InquiryError> {
        crate::off_runtime(|| {
            let n = self.with(|c| {
                c.execute(
                    &format!(
                        "INSERT INTO inquiries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', NULL, false, '') \
                         ON CONFLICT (channel, request_id) DO NOTHING"
                    ),
                    &[
                        &task.channel.as_str(),
                        &task.request_id.as_str(),
                        &task.operation.as_str(),
                        &task.owner,
                        &ms(task.created_at_ms),
                        &i64::from(task.attempts),
                        &ms(task.next_at_ms),
                    ],
                )
            })?;
            Ok(n == 1)
        })
    }

    fn get(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<Option<InquiryTask>, InquiryError> {
        crate::off_runtime(|| {
            let mut found = self.query(
                &format!("SELECT {COLUMNS} FROM inquiries WHERE channel = $1 AND request_id = $2"),
                &[&channel.as_str(), &request_id.as_str()],
            )?;
            Ok(found.pop())
        })
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        crate::off_runtime(|| {
            self.query(
                &format!(
                    "SELECT {COLUMNS} FROM inquiries WHERE state IN ('open', 'escalated') \
                     AND next_at_ms <= $1 \
                     ORDER BY next_at_ms LIMIT $2"
                ),
                &[&ms(now_ms), &(limit as i64)],
            )
        })
    }

    fn reschedule(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        attempts: u32,
        next_at_ms: u64,
    ) -> Result<(), InquiryError> {
        crate::off_runtime(|| {
            self.with(|c| {
                c.execute(
                    "UPDATE inquiries SET attempts = $3, next_at_ms = $4 \
                     WHERE channel = $1 AND request_id = $2 AND state IN ('open', 'escalated')",
                    &[
                        &channel.as_str(),
                        &request_id.as_str(),
                        &i64::from(attempts),
                        &ms(next_at_ms),
                    ],
                )
            })?;
            Ok(())
        })
    }

    fn resolve(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<bool, InquiryError> {
        crate::off_runtime(|| {
            let outcome = outcome_text(outcome)?;
            let n = self.with(|c| {
                c.execute(
                    "UPDATE inquiries SET state = 'resolved', outcome = $3, delivered = false \
                     WHERE channel = $1 AND request_id = $2 AND state <> 'resolved'",
                    &[&channel.as_str(), &request_id.as_str(), &outcome],
                )
            })?;
            Ok(n == 1)
        })
    }

    fn escalate(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        detail: &str,
    ) -> Result<(), InquiryError> {
        crate::off_runtime(|| {
            self.with(|c| {
                c.execute(
                    "UPDATE inquiries SET state = 'escalated', detail = $3 \
                     WHERE channel = $1 AND request_id = $2 AND state = 'open'",
                    &[&channel.as_str(), &request_id.as_str(), &detail],
                )
            })?;
            Ok(())
        })
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        crate::off_runtime(|| {
            self.query(
                &format!(
                    "SELECT {COLUMNS} FROM inquiries WHERE state = 'resolved' AND NOT delivered LIMIT $1"
                ),
                &[&(limit as i64)],
            )
        })
    }

    fn mark_delivered(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<(), InquiryError> {
        crate::off_runtime(|| {
            self.with(|c| {
                c.execute(
                    "UPDATE inquiries SET delivered = true WHERE channel = $1 AND request_id = $2",
                    &[&channel.as_str(), &request_id.as_str()],
                )
            })?;
            Ok(())
        })
    }

    fn backlog(&self) -> Result<InquiryBacklog, InquiryError> {
        crate::off_runtime(|| {
            let row = self.with(|c| {
                c.query_one(
                    "SELECT count(*) FILTER (WHERE state = 'open'), \
                            count(*) FILTER (WHERE state = 'escalated'), \
                            count(*) FILTER (WHERE state = 'resolved' AND NOT delivered) FROM inquiries",
                    &[],
                )
            })?;
            let count = |index: usize| -> Result<u64, InquiryError> {
                Ok(row.try_get::<_, i64>(index).map_err(store_error)?.max(0) as u64)
            };
            Ok(InquiryBacklog { open: count(0)?, escalated: count(1)?, undelivered: count(2)? })
        })
    }

    fn escalated(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        crate::off_runtime(|| {
            self.query(
                &format!(
                    "SELECT {COLUMNS} FROM inquiries WHERE state = 'escalated' \
                     ORDER BY created_at_ms, channel, request_id LIMIT $1"
                ),
                &[&limit_of(limit)],
            )
        })
    }

    fn ask_now(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        now_ms: u64,
    ) -> Result<bool, InquiryError> {
        crate::off_runtime(|| {
            let n = self.with(|c| {
                c.execute(
                    "UPDATE inquiries SET next_at_ms = $3 \
                     WHERE channel = $1 AND request_id = $2 AND state IN ('open', 'escalated')",
                    &[&channel.as_str(), &request_id.as_str(), &ms(now_ms)],
                )
            })?;
            Ok(n == 1)
        })
    }
}
