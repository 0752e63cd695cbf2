//! Reconciliation (对账, tag `reconciliation`, `recon:*` scopes): channels' statements, runs
//! against our orders, and the loss register. Breaks are in [`crate::breaks`], closed days in
//! [`crate::days`], cross-checks and alerts in [`crate::checks`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, Amount, AmountSum, List, SignedAmount};

wire_enum! {
    /// Where a statement line or one of our records ended.
    pub enum BreakClass {
        Matched = "matched",
        /// We record a success the channel does not.
        MissingExternal = "missing_external",
        /// The channel records one we do not.
        MissingInternal = "missing_internal",
        AmountMismatch = "amount_mismatch",
        FeeMismatch = "fee_mismatch",
        StatusMismatch = "status_mismatch",
        Duplicate = "duplicate",
    }
}

wire_enum! {
    /// The direction of a channel transaction.
    pub enum TxType {
        /// Money in from a payer.
        Debit = "debit",
        Payout = "payout",
        Refund = "refund",
    }
}

/// `POST /v1/recon/statements`: a channel's statement of a business day (recon.md's CSV).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UploadRequest {
    pub channel: String,
    /// `YYYY-MM-DD`.
    pub business_day: String,
    /// The file: 1 to 4,000,000 characters.
    pub content: String,
}

/// `POST /v1/recon/statements/fetch`: fetch the statement from the channel now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FetchRequest {
    pub channel: String,
    pub business_day: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StatementView {
    /// `stm_…`.
    pub id: String,
    pub channel: String,
    pub business_day: String,
    /// The day's statements are numbered from 1.
    pub version: u32,
    pub sha256: String,
    pub size_bytes: u64,
    pub detail_lines: u64,
    /// `upload` or `fetch`.
    pub source: String,
    pub received_by: String,
    pub received_at_ms: u64,
}

/// 201 stored, or 200 `created: false` for a file stored before.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct StatementReceived {
    pub created: bool,
    pub statement: StatementView,
}

/// Which statements or runs to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconFilter {
    pub channel: Option<String>,
    pub business_day: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

impl ReconFilter {
    fn query(&self) -> Query {
        Query::new()
            .opt("channel", self.channel.as_ref())
            .opt("business_day", self.business_day.as_ref())
            .opt("limit", self.limit)
    }
}

/// `POST /v1/recon/runs`: reconcile the newest stored statement of a channel and day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRequest {
    pub channel: String,
    pub business_day: String,
    /// Fetch the statement from the channel first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fetch: bool,
}

/// Totals first (总分对账): count and sum per type and currency, ours against the channel's.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ReconTotalsView {
    pub tx_type: TxType,
    pub currency: String,
    pub count_ours: u64,
    pub sum_ours_minor: AmountSum,
    pub count_theirs: u64,
    pub sum_theirs_minor: AmountSum,
    pub agrees: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RunView {
    /// `run_…`.
    pub id: String,
    pub channel: String,
    pub business_day: String,
    pub statement_id: String,
    pub statement_sha256: String,
    pub ours_sha256: String,
    pub rule_version: u32,
    /// Lines per class.
    pub counts: BTreeMap<String, u64>,
    pub totals: Vec<ReconTotalsView>,
    pub result_hash: String,
    pub breaks_new: u64,
    pub auto_resolved: u64,
    pub superseded: u64,
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

/// A write-off in the loss register (损失核算), with what was recovered since.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LossView {
    /// `loss_…`.
    pub id: String,
    pub break_id: String,
    pub channel: String,
    pub business_day: String,
    pub currency: String,
    pub amount: Amount,
    pub recovered: Amount,
    pub cause: BreakClass,
    #[serde(default)]
    pub order_id: Option<String>,
    pub reason: String,
    pub maker: String,
    #[serde(default)]
    pub approver: Option<String>,
    pub written_off_at_ms: u64,
}

/// Losses of one channel, cause and currency in the period.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LossReportRow {
    pub channel: String,
    pub cause: BreakClass,
    pub currency: String,
    pub count: u64,
    pub written_off_minor: AmountSum,
    pub recovered_minor: AmountSum,
    pub net_minor: SignedAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LossReport {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    pub rows: Vec<LossReportRow>,
}

impl Client {
    /// Uploads a channel's statement: 201 stored as the day's next version, 200 `created:
    /// false` if this very file was stored before; a bad file is refused whole (422).
    pub async fn upload_statement(
        &self,
        upload: &UploadRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<StatementReceived>, ClientError> {
        self.write(routes::UPLOAD_STATEMENT, &[], Some(upload), idempotency_key).await
    }

    /// Fetches the statement from the channel now, checked against its published digest.
    pub async fn fetch_statement(
        &self,
        fetch: &FetchRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<StatementReceived>, ClientError> {
        self.write(routes::FETCH_STATEMENT, &[], Some(fetch), idempotency_key).await
    }

    pub async fn list_statements(
        &self,
        filter: &ReconFilter,
    ) -> Result<List<StatementView>, ClientError> {
        self.read(routes::LIST_STATEMENTS, &[], filter.query()).await
    }

    pub async fn get_statement(&self, id: &str) -> Result<StatementView, ClientError> {
        self.read(routes::GET_STATEMENT, &[id], Query::new()).await
    }

    /// The statement file exactly as received (CSV).
    pub async fn get_statement_content(&self, id: &str) -> Result<String, ClientError> {
        self.read_text(routes::GET_STATEMENT_CONTENT, &[id]).await
    }

    /// Reconciles a channel's day: 201 with totals, lines per class and breaks.
    pub async fn start_run(
        &self,
        run: &RunRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<RunView>, ClientError> {
        self.write(routes::START_RUN, &[], Some(run), idempotency_key).await
    }

    pub async fn list_runs(&self, filter: &ReconFilter) -> Result<List<RunView>, ClientError> {
        self.read(routes::LIST_RUNS, &[], filter.query()).await
    }

    pub async fn get_run(&self, id: &str) -> Result<RunView, ClientError> {
        self.read(routes::GET_RUN, &[id], Query::new()).await
    }

    /// Write-offs of the business days `from` to `to` (both included), oldest first.
    pub async fn list_losses(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<List<LossView>, ClientError> {
        self.read(routes::LIST_LOSSES, &[], Query::new().opt("from", from).opt("to", to)).await
    }

    pub async fn get_loss(&self, id: &str) -> Result<LossView, ClientError> {
        self.read(routes::GET_LOSS, &[id], Query::new()).await
    }

    /// Write-offs of the period by channel, cause and currency.
    pub async fn loss_report(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<LossReport, ClientError> {
        self.read(routes::LOSS_REPORT, &[], Query::new().opt("from", from).opt("to", to)).await
    }
}
