//! The reconciler's storage port: statements as they came (with their hash), runs (append
//! only), breaks with their audit trail, and the loss register.

use std::collections::BTreeMap;

use money::{Amount, AssetCode};
use recon::breaks::{BreakState, Resolution, SuspenseParts};
use recon::{Class, TotalsRow, TxType};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconStoreError {
    #[error("reconciliation store: {0}")]
    Backend(String),
    #[error("corrupt reconciliation row: {0}")]
    Corrupt(String),
}

/// Where a statement came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementSource {
    /// Fetched from the channel by the scheduled job (or on an operator's request).
    Fetched,
    /// Uploaded by an operator.
    Uploaded,
}

/// A statement file as received: its identity is its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementRecord {
    /// `stm_` and the first 24 hex digits of the hash, with the channel and day: the same
    /// file for the same channel and day is the same statement.
    pub id: String,
    pub channel: String,
    /// Days since the epoch.
    pub business_day: i64,
    /// 1 for the first file of the channel and day, then one more per different file.
    pub version: u32,
    pub sha256_hex: String,
    pub size_bytes: u64,
    pub detail_lines: u64,
    pub source: StatementSource,
    /// The API key that uploaded it, or the job that fetched it.
    pub received_by: String,
    pub received_at_ms: u64,
}

/// What storing a statement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutStatement {
    /// A new file (a new version, if the day had one).
    Stored(StatementRecord),
    /// This file was stored before: nothing written.
    Same(StatementRecord),
}

/// One run: what went in (by hash), under which rules, and what came out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub channel: String,
    pub business_day: i64,
    pub statement_id: String,
    pub statement_sha256: String,
    /// SHA-256 over our records as matched (request id, status, amounts), in order.
    pub ours_sha256: String,
    pub rule_version: u32,
    pub counts: BTreeMap<Class, u64>,
    pub totals: Vec<TotalsRow>,
    pub result_hash: String,
    /// Breaks this run found that no earlier run had.
    pub breaks_new: u64,
    /// Lines the platform settled itself (an unknown order taking the channel's answer).
    pub auto_resolved: u64,
    /// Open breaks of earlier runs of this day that this run no longer finds.
    pub superseded: u64,
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

/// A proposed resolution, waiting for approval or being booked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    pub resolution: Resolution,
    pub reason: String,
    /// The key that proposed it.
    pub maker: String,
    /// The key that approved it (when approval was needed).
    pub approver: Option<String>,
    pub proposed_at_ms: u64,
}

/// A break: one difference, from the run that found it to its resolution.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakRecord {
    pub id: String,
    pub channel: String,
    pub business_day: i64,
    pub class: Class,
    pub tx_type: TxType,
    pub currency: AssetCode,
    pub statement_line: Option<u64>,
    pub request_id: Option<String>,
    pub order_id: Option<String>,
    pub amount_ours: Option<Amount>,
    pub amount_theirs: Option<Amount>,
    pub fee_ours: Option<Amount>,
    pub fee_theirs: Option<Amount>,
    /// What the break holds in suspense.
    pub parts: SuspenseParts,
    pub state: BreakState,
    pub assignee: Option<String>,
    pub proposal: Option<Proposal>,
    /// The run that found it first.
    pub found_by_run: String,
    /// How many times it was found again after a newer statement had superseded it: each
    /// revision books its suspense (and its resolution) under ledger ids of its own.
    #[serde(default)]
    pub revision: u32,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

/// One entry of a break's audit trail.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakEvent {
    pub break_id: String,
    pub at_ms: u64,
    /// The API key, or `system`.
    pub actor: String,
    /// `found`, `assigned`, `proposed`, `approved`, `rejected`, `resolved`, …
    pub action: String,
    pub detail: serde_json::Value,
}

impl BreakEvent {
    /// The `found` event of a new break (stores append it with the break).
    pub fn found(record: &BreakRecord) -> BreakEvent {
        BreakEvent {
            break_id: record.id.clone(),
            at_ms: record.created_at_ms,
            actor: "system".into(),
            action: "found".into(),
            detail: serde_json::json!({
                "run": record.found_by_run,
                "class": record.class.as_str(),
                "suspense_minor": record.parts.total_minor().to_string(),
            }),
        }
    }
}

/// A loss written off (损失核算), with what was recovered of it since.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LossRecord {
    pub id: String,
    pub break_id: String,
    pub channel: String,
    pub business_day: i64,
    pub currency: AssetCode,
    pub amount: Amount,
    /// The break's class: what kind of difference lost the money.
    pub cause: Class,
    pub order_id: Option<String>,
    pub reason: String,
    pub maker: String,
    pub approver: Option<String>,
    pub written_off_at_ms: u64,
    pub recovered: Amount,
}

/// What resolving a break also writes to the loss register, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterEntry {
    None,
    Loss(LossRecord),
    /// `amount` recovered against loss `loss_id`.
    Recovery {
        loss_id: String,
        amount: Amount,
    },
}

/// Filters of a break listing, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakQuery {
    pub channel: Option<String>,
    pub business_day: Option<i64>,
    pub class: Option<Class>,
    pub state: Option<BreakState>,
    /// Only breaks created strictly before this `(created_at_ms, id)`: the page cursor.
    pub before: Option<(u64, String)>,
    pub limit: usize,
}

/// Filters of statement and run listings, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayQuery {
    pub channel: Option<String>,
    pub business_day: Option<i64>,
    pub limit: usize,
}

/// Why an update was not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Updated {
    Written,
    /// Another writer changed the break first: read it again.
    Stale,
}

/// One line of a closed day's trial balance: an asset's chart-of-accounts line, posted
/// amounts only (holds are not yet money moved). Nets are debits less credits.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayLine {
    pub asset: AssetCode,
    pub chart_code: u32,
    pub opening_net_minor: i128,
    pub debits_minor: u128,
    pub credits_minor: u128,
    pub closing_net_minor: i128,
}

/// A closed business day (日切): immutable once stored. Its hash covers the day, its
/// journal span, its lines and the hash of the day before, so the closed days form a chain
/// and the same books give the same hash on any store, after any restart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClosedDay {
    pub business_day: i64,
    pub utc_offset_minutes: i32,
    /// The journal positions the day spans: after `from_seq`, up to `to_seq` included.
    pub from_seq: u64,
    pub to_seq: u64,
    pub lines: Vec<DayLine>,
    /// The hash of the closed day before (empty for the first closed day).
    pub previous_hash: String,
    pub hash: String,
    pub closed_by: String,
    pub closed_at_ms: u64,
}

impl ClosedDay {
    /// Whether every asset's posted debits equal its posted credits over the day (试算平衡).
    pub fn is_balanced(&self) -> bool {
        let mut per_asset: std::collections::BTreeMap<AssetCode, (u128, u128)> = Default::default();
        for line in &self.lines {
            let totals = per_asset.entry(line.asset).or_default();
            // Sums of u64 postings over one day's lines: u128 does not overflow.
            totals.0 += line.debits_minor;
            totals.1 += line.credits_minor;
        }
        per_asset.values().all(|(debits, credits)| debits == credits)
    }
}

/// One thing a cross-check found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// What it is about: an order id, an asset, `journal`.
    pub subject: String,
    pub detail: String,
}

/// One check's result in a run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    /// What it looked at (transfers, orders, accounts, records).
    pub examined: u64,
    pub n_findings: u64,
    /// The first findings (at most 100).
    pub findings: Vec<Finding>,
}

/// A run of the internal cross-checks (业务数据核对).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckRun {
    /// `chk_…`
    pub id: String,
    pub ok: bool,
    pub checks: Vec<CheckResult>,
    /// Where the journal's chain was verified to: the next run starts there.
    #[serde(default)]
    pub journal_checkpoint: Option<ledger::verify::ChainCheckpoint>,
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

pub trait ReconStore: Send + Sync + 'static {
    /// Stores an alert as it now stands (a new one, or its new state or measurement).
    fn put_alert(&self, alert: &monitors::Alert) -> Result<(), ReconStoreError>;

    /// Alerts, newest first, of one state or all.
    fn alerts(
        &self,
        state: Option<monitors::AlertState>,
        limit: usize,
    ) -> Result<Vec<monitors::Alert>, ReconStoreError>;

    fn insert_check_run(&self, run: &CheckRun) -> Result<(), ReconStoreError>;

    fn check_run(&self, id: &str) -> Result<Option<CheckRun>, ReconStoreError>;

    /// Cross-check runs, newest first.
    fn check_runs(&self, limit: usize) -> Result<Vec<CheckRun>, ReconStoreError>;

    /// Stores a closed day unless that day is closed already; returns the stored one (the
    /// first close wins: a closed day never changes).
    fn put_closed_day(&self, day: &ClosedDay) -> Result<ClosedDay, ReconStoreError>;

    fn closed_day(&self, business_day: i64) -> Result<Option<ClosedDay>, ReconStoreError>;

    /// Closed days, newest first.
    fn closed_days(&self, limit: usize) -> Result<Vec<ClosedDay>, ReconStoreError>;

    /// Stores a statement file unless the same file (by hash) of the same channel and day
    /// is stored; a different file gets the next version. `record.version` is assigned here.
    fn put_statement(
        &self,
        record: &StatementRecord,
        bytes: Vec<u8>,
    ) -> Result<PutStatement, ReconStoreError>;

    fn statement(&self, id: &str) -> Result<Option<StatementRecord>, ReconStoreError>;

    fn statement_bytes(&self, id: &str) -> Result<Option<Vec<u8>>, ReconStoreError>;

    /// The newest version of the channel's statement of the day.
    fn latest_statement(
        &self,
        channel: &str,
        business_day: i64,
    ) -> Result<Option<StatementRecord>, ReconStoreError>;

    fn statements(&self, query: &DayQuery) -> Result<Vec<StatementRecord>, ReconStoreError>;

    /// Appends a run and, in the same transaction, the breaks it found that are not stored
    /// yet (a break found again keeps its state), each with its `found` event. Returns the
    /// ids of the breaks that were new.
    fn insert_run(
        &self,
        run: &RunRecord,
        breaks: &[BreakRecord],
    ) -> Result<Vec<String>, ReconStoreError>;

    fn run(&self, id: &str) -> Result<Option<RunRecord>, ReconStoreError>;

    fn runs(&self, query: &DayQuery) -> Result<Vec<RunRecord>, ReconStoreError>;

    fn get_break(&self, id: &str) -> Result<Option<BreakRecord>, ReconStoreError>;

    fn breaks(&self, query: &BreakQuery) -> Result<Vec<BreakRecord>, ReconStoreError>;

    /// Breaks in `resolving` (their postings to book after a crash), oldest first.
    fn resolving(&self, limit: usize) -> Result<Vec<BreakRecord>, ReconStoreError>;

    /// Replaces the break if it is still at `expected_version`, appending `event` and the
    /// register entry in the same transaction.
    fn update_break(
        &self,
        record: &BreakRecord,
        expected_version: u64,
        event: &BreakEvent,
        register: &RegisterEntry,
    ) -> Result<Updated, ReconStoreError>;

    fn break_events(&self, id: &str) -> Result<Vec<BreakEvent>, ReconStoreError>;

    fn loss(&self, id: &str) -> Result<Option<LossRecord>, ReconStoreError>;

    /// Losses written off in `[from_ms, to_ms)`, oldest first.
    fn losses(&self, from_ms: u64, to_ms: u64) -> Result<Vec<LossRecord>, ReconStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(asset: &str, chart_code: u32, debits_minor: u128, credits_minor: u128) -> DayLine {
        DayLine {
            asset: AssetCode::new(asset).expect("asset"),
            chart_code,
            opening_net_minor: 0,
            debits_minor,
            credits_minor,
            closing_net_minor: 0,
        }
    }

    #[test]
    fn a_day_balances_per_asset_not_across_assets() {
        let day = |lines| ClosedDay {
            business_day: 0,
            utc_offset_minutes: 480,
            from_seq: 0,
            to_seq: 1,
            lines,
            previous_hash: String::new(),
            hash: String::new(),
            closed_by: "test".into(),
            closed_at_ms: 0,
        };
        assert!(day(vec![line("CNY", 1002, 500, 0), line("CNY", 2241, 0, 500)]).is_balanced());
        assert!(day(vec![]).is_balanced());
        // Each asset is off by the same amount the other way: the sums across assets agree.
        let crossed = vec![
            line("CNY", 1002, 500, 0),
            line("CNY", 2241, 0, 400),
            line("USD", 1002, 400, 0),
            line("USD", 2241, 0, 500),
        ];
        assert!(!day(crossed).is_balanced());
    }
}
