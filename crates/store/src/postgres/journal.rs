//! The journal-first engine's journal in PostgreSQL (migration 21): one row per batch in
//! `ledger_journal`, appended by the one node that holds the book's lease.
//!
//! - **The lease** (`ledger_journal_lease`, one row) names its holder, a fencing token and when
//!   it expires, by the database's clock (nodes' clocks never compare). A node takes it when
//!   it is free or expired (its holder died or lost the database), or at once when it names
//!   the same holder (a restart); either way the token goes up.
//! - **Every append is fenced**: it inserts only if the lease row still carries the token this
//!   node took, and it locks that row (`FOR SHARE`) until it commits. A takeover's update
//!   therefore waits for an append in flight, and the new holder's replay, which starts after
//!   it, sees every batch the old holder appended. An old holder that appends after a
//!   takeover inserts nothing and stops: [`JournalError::Fenced`].
//! - **The row's key is the batch number**, so two appends of one batch can never both land.
//! - The connection commits with `synchronous_commit = on` whatever the server's default: a
//!   batch is acknowledged only once its row is flushed.

use std::time::{Duration, Instant};

use engine::journal::{Journal, JournalError, Replay, ReplayReport};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Statement};

use super::PgTarget;

/// What [`PgJournal::state`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalState {
    /// A node holds the lease (it has not expired).
    pub leased: bool,
    /// Batches in the journal that the books lack.
    pub batches_ahead: u64,
}

/// The book's journal in PostgreSQL, held by a lease.
pub struct PgJournal {
    client: Client,
    /// The fenced append, and the same with the lease renewed.
    append: Statement,
    append_renewing: Statement,
    holder: String,
    token: i64,
    lease_ms: u64,
    renewed_at: Instant,
}

fn backend(error: postgres::Error) -> JournalError {
    JournalError::Backend(super::described(&error))
}

fn store(error: ledger::port::StoreError) -> JournalError {
    JournalError::Backend(error.to_string())
}

impl PgJournal {
    /// Takes the lease of the book at `target` as `holder`, for `lease_ms` at a time. While
    /// another holder keeps it alive, waits up to `wait` (zero: not at all), then fails with
    /// [`JournalError::Locked`].
    pub fn open(
        target: &PgTarget,
        holder: &str,
        lease_ms: u64,
        wait: Duration,
    ) -> Result<PgJournal, JournalError> {
        target.migrate().map_err(store)?;
        let mut client = target.connect().map_err(store)?;
        client.batch_execute("SET synchronous_commit = on").map_err(backend)?;
        // `Duration::MAX`: wait as long as it takes.
        let deadline = Instant::now().checked_add(wait);
        let mut logged_at: Option<Instant> = None;
        loop {
            let taken = client
                .query_opt(
                    "INSERT INTO ledger_journal_lease (id, holder, token, expires_at) \
                     VALUES (1, $1, 1, now() + $2::bigint * interval '1 millisecond') \
                     ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, \
                     token = ledger_journal_lease.token + 1, expires_at = EXCLUDED.expires_at \
                     WHERE ledger_journal_lease.expires_at <= now() \
                     OR ledger_journal_lease.holder = EXCLUDED.holder \
                     RETURNING token",
                    &[&holder, &(lease_ms as i64)],
                )
                .map_err(backend)?;
            if let Some(row) = taken {
                let token: i64 = row.get(0);
                tracing::info!(holder, token, lease_ms, "took the ledger journal's lease");
                let insert = "INSERT INTO ledger_journal (batch_seq, version, payload) \
                              SELECT $2, $3, $4 FROM fence";
                let append = client
                    .prepare(&format!(
                        "WITH fence AS (SELECT 1 FROM ledger_journal_lease \
                         WHERE id = 1 AND token = $1 FOR SHARE) {insert}"
                    ))
                    .map_err(backend)?;
                let append_renewing = client
                    .prepare(&format!(
                        "WITH fence AS (UPDATE ledger_journal_lease \
                         SET expires_at = now() + $5::bigint * interval '1 millisecond' \
                         WHERE id = 1 AND token = $1 RETURNING 1) {insert}"
                    ))
                    .map_err(backend)?;
                return Ok(PgJournal {
                    client,
                    append,
                    append_renewing,
                    holder: holder.to_string(),
                    token,
                    lease_ms,
                    renewed_at: Instant::now(),
                });
            }
            let (other, expires_in_ms): (String, i64) = client
                .query_opt(
                    "SELECT holder, (EXTRACT(EPOCH FROM expires_at - now()) * 1000)::bigint \
                     FROM ledger_journal_lease WHERE id = 1",
                    &[],
                )
                .map_err(backend)?
                .map_or((String::new(), 0), |row| (row.get(0), row.get(1)));
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(JournalError::Locked(format!(
                    "schema {} (its lease is held by {other}, for {expires_in_ms} ms more unless renewed)",
                    target.schema
                )));
            }
            if logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                tracing::info!(
                    holder = other,
                    expires_in_ms,
                    "another node holds the ledger journal's lease; waiting to take over"
                );
                logged_at = Some(Instant::now());
            }
            let pause = Duration::from_millis((lease_ms / 4).clamp(50, 1_000));
            let left = deadline.map_or(pause, |at| at.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause.min(left));
        }
    }

    /// Whether a node holds the book's lease now, and how many batches the journal holds
    /// beyond the books' head (a journal node crashed before writing them into the books).
    pub fn state(target: &PgTarget) -> Result<JournalState, JournalError> {
        target.migrate().map_err(store)?;
        let mut client = target.connect().map_err(store)?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM ledger_journal_lease WHERE expires_at > now()), \
                 (SELECT count(*) FROM ledger_journal j JOIN journal_head h ON h.id = 1 \
                  WHERE j.batch_seq > h.batch_seq)",
                &[],
            )
            .map_err(backend)?;
        Ok(JournalState { leased: row.get(0), batches_ahead: row.get::<_, i64>(1) as u64 })
    }

    /// The fencing token this node holds.
    pub fn token(&self) -> i64 {
        self.token
    }

    fn renewal_due(&self) -> bool {
        self.renewed_at.elapsed() >= Duration::from_millis(self.lease_ms / 3)
    }

    fn fenced(&self) -> JournalError {
        JournalError::Fenced(format!(
            "{} held token {}, and another node has taken the lease since",
            self.holder, self.token
        ))
    }
}

impl Journal for PgJournal {
    fn replay(
        &mut self,
        after_batch: u64,
        each: &mut Replay<'_>,
    ) -> Result<ReplayReport, JournalError> {
        let after = after_batch as i64;
        let mut rows = self
            .client
            .query_raw(
                "SELECT batch_seq, version, payload FROM ledger_journal WHERE batch_seq > $1 \
                 ORDER BY batch_seq",
                [&after],
            )
            .map_err(backend)?;
        let mut report = ReplayReport::default();
        while let Some(row) = rows.next().map_err(backend)? {
            let batch_seq: i64 = row.get(0);
            let version: i16 = row.get(1);
            let payload: &[u8] = row.get(2);
            let corrupt = |detail: String| JournalError::Corrupt {
                place: format!("ledger_journal row {batch_seq}"),
                detail,
            };
            let version = u8::try_from(version)
                .map_err(|_| corrupt(format!("payload version {version} out of range")))?;
            each(version, payload).map_err(corrupt)?;
            report.n_batches += 1;
        }
        Ok(report)
    }

    fn start_appending(&mut self, _next_batch: u64) -> Result<(), JournalError> {
        Ok(())
    }

    fn append(&mut self, batch_seq: u64, payload: &[u8]) -> Result<u64, JournalError> {
        // Renewing rides on an append when it is due: one statement either way.
        let renewing = self.renewal_due();
        let version = i16::from(engine::codec::PAYLOAD_VERSION);
        let (token, batch_seq, lease_ms) = (self.token, batch_seq as i64, self.lease_ms as i64);
        let started = Instant::now();
        let inserted = if renewing {
            self.client.execute(
                &self.append_renewing,
                &[&token, &batch_seq, &version, &payload, &lease_ms],
            )
        } else {
            self.client.execute(&self.append, &[&token, &batch_seq, &version, &payload])
        }
        .map_err(backend)?;
        if inserted == 0 {
            return Err(self.fenced());
        }
        if renewing {
            self.renewed_at = started;
        }
        Ok(payload.len() as u64)
    }

    fn retire_through(&mut self, batch_seq: u64) -> Result<(), JournalError> {
        self.client
            .execute("DELETE FROM ledger_journal WHERE batch_seq <= $1", &[&(batch_seq as i64)])
            .map_err(backend)?;
        Ok(())
    }

    fn keep_alive(&mut self) -> Result<(), JournalError> {
        if !self.renewal_due() {
            return Ok(());
        }
        let started = Instant::now();
        let renewed = self
            .client
            .execute(
                "UPDATE ledger_journal_lease SET expires_at = now() + $2::bigint * interval '1 millisecond' \
                 WHERE id = 1 AND token = $1",
                &[&self.token, &(self.lease_ms as i64)],
            )
            .map_err(backend)?;
        if renewed == 0 {
            return Err(self.fenced());
        }
        self.renewed_at = started;
        Ok(())
    }

    /// Retires what the books hold and lets the lease go, in one transaction. Its commit
    /// waits for the WAL flush, which makes the books' last unsynced commits durable too.
    fn close(&mut self, projected_through: u64) {
        let token = self.token;
        let result = self.client.transaction().and_then(|mut tx| {
            tx.execute(
                "DELETE FROM ledger_journal WHERE batch_seq <= $1",
                &[&(projected_through as i64)],
            )?;
            tx.execute(
                "UPDATE ledger_journal_lease SET expires_at = now() WHERE id = 1 AND token = $1",
                &[&token],
            )?;
            tx.commit()
        });
        match result {
            Ok(()) => {
                tracing::info!(holder = %self.holder, token, "let the ledger journal's lease go")
            }
            Err(error) => {
                tracing::warn!(%error, "could not let the ledger journal's lease go; it expires")
            }
        }
    }
}
