//! Statements in, runs out: ingest, our records of a day, matching, automatic handling of
//! unknown orders, and the suspense booking of every break.

use std::collections::{BTreeMap, HashMap, HashSet};

use channels::{ChannelId, Outcome, Settled};
use executor::ChannelLegRecord;
use payments::OrderId;
use recon::breaks::{found_breaks, BreakState, FoundBreak, Resolution};
use recon::{BusinessDay, Class, OurRecord, OurStatus, Rules, Statement};
use sha2::{Digest, Sha256};

use crate::port::{
    BreakQuery, BreakRecord, PutStatement, RunRecord, StatementRecord, StatementSource,
};
use crate::postings::{self, BUSINESS_CODE_RECON_SUSPENSE};
use crate::{ReconError, Reconciler};

/// Orders read per page when gathering a day's records.
const ORDERS_PAGE: usize = 10_000;

impl Reconciler {
    /// Fetches `channel`'s statement of `day` and stores it (see [`Reconciler::upload`]).
    pub async fn fetch(
        &self,
        channel: &str,
        day: BusinessDay,
        by: &str,
    ) -> Result<PutStatement, ReconError> {
        let unknown = || ReconError::ChannelNotFound(channel.to_owned());
        let id = ChannelId::new(channel).map_err(|_| unknown())?;
        let gateway = self.executor.gateway().ok_or_else(unknown)?;
        let file =
            gateway.statement_file(&id, &day.to_string()).await.ok_or_else(unknown)?.map_err(
                |error| match error {
                    channels::ChannelError::Statement(error) => ReconError::Statement(error),
                    other => ReconError::ChannelUnavailable(other.to_string()),
                },
            )?;
        let Some(digest) = file.sha256_hex else {
            return Err(ReconError::ChannelUnavailable(
                "the channel sent its statement without a digest".into(),
            ));
        };
        self.ingest(channel, day, file.bytes, Some(&digest), StatementSource::Fetched, by)
    }

    /// Stores an operator's statement file of `channel` and `day`: parsed whole first (a bad
    /// file is refused whole with its line); the same file again is a no-op.
    pub fn upload(
        &self,
        channel: &str,
        day: BusinessDay,
        bytes: Vec<u8>,
        by: &str,
    ) -> Result<PutStatement, ReconError> {
        if !self.channels().iter().any(|c| c.as_str() == channel) {
            return Err(ReconError::ChannelNotFound(channel.to_owned()));
        }
        self.ingest(channel, day, bytes, None, StatementSource::Uploaded, by)
    }

    fn ingest(
        &self,
        channel: &str,
        day: BusinessDay,
        // Owned: stored as it is, never copied (a statement can be a gigabyte).
        bytes: Vec<u8>,
        digest: Option<&str>,
        source: StatementSource,
        by: &str,
    ) -> Result<PutStatement, ReconError> {
        let statement = recon::statement::parse(&bytes, digest, &self.config.currencies)?;
        let sha256_hex = hex::encode(statement.sha256);
        let record = StatementRecord {
            id: statement_id(channel, day, &sha256_hex),
            channel: channel.to_owned(),
            business_day: day.days(),
            version: 0,
            sha256_hex,
            size_bytes: bytes.len() as u64,
            detail_lines: statement.details.len() as u64,
            source,
            received_by: by.to_owned(),
            received_at_ms: self.clock.now_ms(),
        };
        let put = self.store.put_statement(&record, bytes)?;
        // A run usually follows a new file at once (the schedule, `fetch: true`): it takes
        // the parsed file from here instead of reading and parsing it again. (A file seen
        // before is usually not run again, so it is not kept in memory.)
        let kept = match &put {
            PutStatement::Stored(stored) => Some((stored.id.clone(), statement)),
            PutStatement::Same(_) => None,
        };
        *self.parsed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = kept;
        Ok(put)
    }

    /// Our records of `channel` for the days around `day` (the date window), in creation
    /// order, and the hash of what was read.
    pub fn our_records(
        &self,
        channel: &str,
        day: BusinessDay,
    ) -> Result<(Vec<OurRecord>, [u8; 32]), ReconError> {
        let offset = self.config.utc_offset_minutes;
        let window = self.config.date_window_days;
        let from_ms = BusinessDay::from_days(day.days() - window).start_ms(offset);
        let to_ms = BusinessDay::from_days(day.days() + window).end_ms(offset);
        let channel =
            ChannelId::new(channel).map_err(|_| ReconError::ChannelNotFound(channel.to_owned()))?;
        let mut records = Vec::new();
        let mut hasher = Sha256::new();
        hasher.update(b"qianbao.recon.ours\0");
        // The store reads the next page while this thread maps the last one: on two cores
        // the two overlap.
        let orders = &self.orders;
        let channel = &channel;
        std::thread::scope(|scope| -> Result<(), ReconError> {
            let (pages, received) =
                std::sync::mpsc::sync_channel::<Result<Vec<ChannelLegRecord>, ReconError>>(2);
            scope.spawn(move || {
                let mut after: Option<(u64, OrderId)> = None;
                loop {
                    let page = orders
                        .channel_legs_between(channel, from_ms, to_ms, after, ORDERS_PAGE)
                        .map_err(ReconError::from);
                    let (legs, next) = match page {
                        Ok(page) => (Ok(page.legs), page.next),
                        Err(error) => (Err(error), None),
                    };
                    // A closed receiver: the reader stopped (an error), so stop too.
                    if pages.send(legs).is_err() {
                        return;
                    }
                    match next {
                        Some(cursor) => after = Some(cursor),
                        None => return,
                    }
                }
            });
            for page in received {
                for row in page? {
                    let booked = BusinessDay::of(row.created_at_ms, offset).days();
                    let Some(record) =
                        row.leg.into_record(row.order_id, row.kind, row.amount, row.asset, booked)
                    else {
                        continue;
                    };
                    hash_record(&mut hasher, &record);
                    records.push(record);
                }
            }
            Ok(())
        })?;
        Ok((records, hasher.finalize().into()))
    }

    /// Reconciles the newest statement of `channel` and `day` against our records.
    pub async fn run(
        &self,
        channel: &str,
        day: BusinessDay,
        by: &str,
    ) -> Result<RunRecord, ReconError> {
        let serial = self.serial.lock().await;
        let clock = std::time::Instant::now();
        let started_at_ms = self.clock.now_ms();
        let no_statement =
            || ReconError::NoStatement { channel: channel.to_owned(), day: day.to_string() };
        let statement_record =
            self.store.latest_statement(channel, day.days())?.ok_or_else(no_statement)?;
        let cached = self
            .parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .filter(|(id, _)| *id == statement_record.id);
        let statement = match cached {
            Some((_, statement)) => statement,
            None => {
                let bytes =
                    self.store.statement_bytes(&statement_record.id)?.ok_or_else(no_statement)?;
                recon::statement::parse(
                    &bytes,
                    Some(&statement_record.sha256_hex),
                    &self.config.currencies,
                )?
            }
        };
        let channel_id =
            ChannelId::new(channel).map_err(|_| ReconError::ChannelNotFound(channel.into()))?;
        let parsed = clock.elapsed();
        let (ours, ours_sha256) = self.our_records(channel, day)?;
        let read = clock.elapsed();
        let rules = Rules {
            business_day: day.days(),
            date_window_days: self.config.date_window_days,
            amount_tolerance_minor: self.config.amount_tolerance_minor,
        };
        let result = recon::reconcile(&ours, &statement.details, rules);
        let matched = clock.elapsed();
        drop(ours);

        // The channel's answer for orders still unknown: the order takes it as it would a
        // callback, and the line is settled.
        let mut auto_resolved = 0u64;
        let mut settled_lines = HashSet::new();
        for line in result.lines.iter().filter(|l| {
            l.class == Class::MissingInternal && l.status_ours == Some(OurStatus::Unknown)
        }) {
            if self.complete_unknown(&channel_id, &statement, line).await {
                auto_resolved += 1;
                settled_lines.insert(line.statement_line);
            }
        }
        let found: Vec<FoundBreak> = found_breaks(channel, day, &result.lines)
            .into_iter()
            .filter(|b| {
                !(b.class == Class::MissingInternal
                    && b.line.status_ours == Some(OurStatus::Unknown)
                    && settled_lines.contains(&b.line.statement_line))
            })
            .collect();

        // A break a newer statement had superseded, found again, is open again: its
        // suspense is booked anew under its next revision (the first booking was reversed).
        let mut revisions: HashMap<String, u32> = HashMap::new();
        for found in &found {
            if let Some(revision) = self.reopen_if_superseded(found, started_at_ms)? {
                revisions.insert(found.id.clone(), revision);
            }
        }
        // Money first (ids derived from the break and its revision: a re-run books nothing
        // twice), then the run and its breaks.
        for found in &found {
            let revision = match revisions.get(&found.id) {
                Some(revision) => *revision,
                None => self.store.get_break(&found.id)?.map_or(0, |stored| stored.revision),
            };
            self.book_suspense(&channel_id, found, revision).await?;
        }
        let now_ms = self.clock.now_ms();
        let run_id = run_id(channel, day, started_at_ms, &result.result_hash);
        let breaks: Vec<BreakRecord> =
            found.iter().map(|f| break_record(f, channel, day, &run_id, now_ms)).collect();
        let found_ids: HashSet<&str> = found.iter().map(|f| f.id.as_str()).collect();
        let stale = self.open_breaks_of(channel, day)?;
        let superseded: Vec<BreakRecord> =
            stale.into_iter().filter(|b| !found_ids.contains(b.id.as_str())).collect();
        let mut counts: BTreeMap<Class, u64> = result.counts.clone();
        counts.entry(Class::Matched).or_default();
        let mut run = RunRecord {
            id: run_id,
            channel: channel.to_owned(),
            business_day: day.days(),
            statement_id: statement_record.id.clone(),
            statement_sha256: statement_record.sha256_hex.clone(),
            ours_sha256: hex::encode(ours_sha256),
            rule_version: result.rule_version,
            counts,
            totals: result.totals.clone(),
            result_hash: hex::encode(result.result_hash),
            breaks_new: 0,
            auto_resolved,
            superseded: superseded.len() as u64,
            started_by: by.to_owned(),
            started_at_ms,
            finished_at_ms: now_ms,
        };
        let new_ids = self.store.insert_run(&run, &breaks)?;
        run.breaks_new = new_ids.len() as u64;
        // Resolving takes the lock itself (as an operator's resolution does): held here, the
        // first superseded break would wait for it forever.
        drop(serial);
        for record in superseded {
            self.resolve_by_system(record, Resolution::Superseded, &run.id).await?;
        }
        tracing::info!(
            channel, day = %day, run = %run.id, breaks = found.len(), new = run.breaks_new,
            auto_resolved, "reconciliation run"
        );
        // Where a run's time goes, cumulative (`qianbao recon bench` reads these).
        tracing::debug!(
            parsed_ms = parsed.as_millis() as u64,
            orders_read_ms = read.as_millis() as u64,
            matched_ms = matched.as_millis() as u64,
            done_ms = clock.elapsed().as_millis() as u64,
            "reconciliation run phases"
        );
        Ok(run)
    }

    /// Feeds the statement's success to an order still unknown; true if the order now
    /// records the success.
    async fn complete_unknown(
        &self,
        channel: &ChannelId,
        statement: &Statement,
        line: &recon::Classified,
    ) -> bool {
        let Some(order) = line.order_id.as_deref().and_then(|id| OrderId::new(id).ok()) else {
            return false;
        };
        let Some(detail) =
            statement.details.iter().find(|d| Some(d.line_no) == line.statement_line)
        else {
            return false;
        };
        let settled = Settled {
            channel_ref: detail.channel_ref.clone().unwrap_or_default(),
            fee: detail.fee,
        };
        match self
            .executor
            .on_channel_answer(&order, channel.clone(), Outcome::Succeeded(settled))
            .await
        {
            Ok(record) => record
                .order
                .channel_activity(0)
                .is_some_and(|a| a.record.status == OurStatus::Succeeded),
            Err(error) => {
                tracing::warn!(%order, %error, "a statement's answer did not reach its order");
                false
            }
        }
    }

    /// Reopens the stored break of `found` if a newer statement had superseded it; its new
    /// revision, or `None` when there was nothing to reopen.
    fn reopen_if_superseded(
        &self,
        found: &FoundBreak,
        now_ms: u64,
    ) -> Result<Option<u32>, ReconError> {
        let Some(mut record) = self.store.get_break(&found.id)? else { return Ok(None) };
        let superseded = record.state == BreakState::Resolved
            && record.proposal.as_ref().is_some_and(|p| p.resolution == Resolution::Superseded);
        if !superseded {
            return Ok(None);
        }
        let expected = record.version;
        record.revision += 1;
        record.state = BreakState::Open;
        record.assignee = None;
        record.proposal = None;
        record.resolved_at_ms = None;
        record.parts = found.parts;
        record.version = expected + 1;
        record.updated_at_ms = now_ms;
        let event = crate::port::BreakEvent {
            break_id: record.id.clone(),
            at_ms: now_ms,
            actor: "system".into(),
            action: "reopened".into(),
            detail: serde_json::json!({
                "revision": record.revision,
                "suspense_minor": record.parts.total_minor().to_string(),
            }),
        };
        match self.store.update_break(
            &record,
            expected,
            &event,
            &crate::port::RegisterEntry::None,
        )? {
            crate::port::Updated::Written => Ok(Some(record.revision)),
            crate::port::Updated::Stale => Err(ReconError::Contended),
        }
    }

    async fn book_suspense(
        &self,
        channel: &ChannelId,
        found: &FoundBreak,
        revision: u32,
    ) -> Result<(), ReconError> {
        let booking = found.parts.booking();
        let open = postings::open_accounts(&booking, channel, found.currency);
        let step = postings::step("suspense", revision);
        let group = postings::transfers(
            &booking,
            &found.id,
            &step,
            BUSINESS_CODE_RECON_SUSPENSE,
            channel,
            found.currency,
        );
        match self.post(open, group).await? {
            None => Ok(()),
            // Internal accounts are unbounded: a refusal here is a broken set-up.
            Some(code) => Err(ReconError::Ledger(format!("suspense booking refused: {code}"))),
        }
    }

    /// Breaks of the channel and day not yet resolved nor being resolved.
    fn open_breaks_of(
        &self,
        channel: &str,
        day: BusinessDay,
    ) -> Result<Vec<BreakRecord>, ReconError> {
        let mut open = Vec::new();
        for state in [BreakState::Open, BreakState::Assigned, BreakState::PendingApproval] {
            let query = BreakQuery {
                channel: Some(channel.to_owned()),
                business_day: Some(day.days()),
                state: Some(state),
                limit: usize::MAX >> 1,
                ..Default::default()
            };
            open.extend(self.store.breaks(&query)?);
        }
        Ok(open)
    }

    /// The suspense each open break of a channel holds, by currency (for cross-checks).
    pub fn open_suspense(
        &self,
        channel: &str,
    ) -> Result<HashMap<money::AssetCode, i128>, ReconError> {
        let mut totals = HashMap::new();
        for state in [
            BreakState::Open,
            BreakState::Assigned,
            BreakState::PendingApproval,
            BreakState::Resolving,
        ] {
            let query = BreakQuery {
                channel: Some(channel.to_owned()),
                state: Some(state),
                limit: usize::MAX >> 1,
                ..Default::default()
            };
            for record in self.store.breaks(&query)? {
                *totals.entry(record.currency).or_default() += record.parts.total_minor();
            }
        }
        Ok(totals)
    }
}

fn statement_id(channel: &str, day: BusinessDay, sha256_hex: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"qianbao.recon.statement\0")
        .chain_update(channel)
        .chain_update([0])
        .chain_update(day.to_string())
        .chain_update([0])
        .chain_update(sha256_hex)
        .finalize();
    format!("stm_{}", hex::encode(&digest[..12]))
}

fn run_id(channel: &str, day: BusinessDay, started_at_ms: u64, result_hash: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"qianbao.recon.run\0")
        .chain_update(channel)
        .chain_update([0])
        .chain_update(day.to_string())
        .chain_update(started_at_ms.to_be_bytes())
        .chain_update(result_hash)
        .finalize();
    format!("run_{}", hex::encode(&digest[..12]))
}

fn hash_record(hasher: &mut Sha256, record: &OurRecord) {
    let text = |hasher: &mut Sha256, value: &str| {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    };
    text(hasher, &record.request_id);
    text(hasher, record.channel_ref.as_deref().unwrap_or(""));
    text(hasher, record.tx_type.as_str());
    hasher.update(record.amount.minor().to_be_bytes());
    hasher.update(record.fee.map_or(u64::MAX, |f| f.minor()).to_be_bytes());
    text(hasher, record.currency.as_str());
    hasher.update(record.business_day.to_be_bytes());
    hasher.update([record.status as u8]);
}

fn break_record(
    found: &FoundBreak,
    channel: &str,
    day: BusinessDay,
    run_id: &str,
    now_ms: u64,
) -> BreakRecord {
    let line = &found.line;
    BreakRecord {
        id: found.id.clone(),
        channel: channel.to_owned(),
        business_day: day.days(),
        class: found.class,
        tx_type: line.tx_type,
        currency: found.currency,
        statement_line: line.statement_line,
        request_id: line.request_id.clone(),
        order_id: line.order_id.clone(),
        amount_ours: line.amount_ours,
        amount_theirs: line.amount_theirs,
        fee_ours: line.fee_ours,
        fee_theirs: line.fee_theirs,
        parts: found.parts,
        state: BreakState::Open,
        assignee: None,
        proposal: None,
        found_by_run: run_id.to_owned(),
        revision: 0,
        version: 1,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        resolved_at_ms: None,
    }
}
