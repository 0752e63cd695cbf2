//! The cross-checks (业务数据核对) and fund-safety alerts (资金安全监控) of reconciliation
//! (tag `reconciliation`).

use serde::Deserialize;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, List};

/// Something a check found.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct FindingView {
    /// An order id, an account id…
    pub subject: String,
    pub detail: String,
}

/// One check of a run.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CheckResultView {
    pub name: String,
    pub ok: bool,
    pub examined: u64,
    pub n_findings: u64,
    /// The first 100.
    pub findings: Vec<FindingView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CheckRunView {
    pub id: String,
    pub ok: bool,
    pub checks: Vec<CheckResultView>,
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

wire_enum! {
    /// A fund-safety monitor.
    pub enum AlertRule {
        BooksUnbalanced = "books_unbalanced",
        SuspenseAged = "suspense_aged",
        CriticalBreaks = "critical_breaks",
        HighBreaks = "high_breaks",
        EscalatedInquiries = "escalated_inquiries",
        OverdueOrders = "overdue_orders",
        WithdrawalSpike = "withdrawal_spike",
        AccountDebitLimit = "account_debit_limit",
        ClearingDrift = "clearing_drift",
    }
}

wire_enum! {
    /// Whether an alert fires now.
    pub enum AlertState {
        Firing = "firing",
        Resolved = "resolved",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AlertView {
    pub id: String,
    pub rule: AlertRule,
    pub subject: String,
    /// `page` or `warn`.
    pub urgency: String,
    pub state: AlertState,
    pub value: String,
    pub threshold: String,
    pub message: String,
    pub fired_at_ms: u64,
    #[serde(default)]
    pub resolved_at_ms: Option<u64>,
}

impl Client {
    /// Runs the six cross-checks now: 201 with the stored run. It reads the whole journal.
    pub async fn run_checks(
        &self,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<CheckRunView>, ClientError> {
        self.write::<(), _>(routes::RUN_CHECKS, &[], None, idempotency_key).await
    }

    /// Cross-check runs, newest first (`limit` 1 to 500, default 50).
    pub async fn list_checks(&self, limit: Option<u32>) -> Result<List<CheckRunView>, ClientError> {
        self.read(routes::LIST_CHECKS, &[], Query::new().opt("limit", limit)).await
    }

    pub async fn get_check(&self, id: &str) -> Result<CheckRunView, ClientError> {
        self.read(routes::GET_CHECK, &[id], Query::new()).await
    }

    /// Alerts, newest first; both states when `state` is absent.
    pub async fn list_alerts(
        &self,
        state: Option<&AlertState>,
        limit: Option<u32>,
    ) -> Result<List<AlertView>, ClientError> {
        let query = Query::new().opt("state", state).opt("limit", limit);
        self.read(routes::LIST_ALERTS, &[], query).await
    }
}
