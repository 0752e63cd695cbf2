//! Reconciliation breaks and their maker–checker resolution (tag `reconciliation`):
//! `open → assigned → pending_approval → resolving → resolved`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::recon::{BreakClass, TxType};
use crate::routes;
use crate::wire::{wire_enum, Amount, List, Paged, SignedAmount};

wire_enum! {
    /// Where a break is in its resolution.
    pub enum BreakState {
        Open = "open",
        Assigned = "assigned",
        PendingApproval = "pending_approval",
        Resolving = "resolving",
        Resolved = "resolved",
    }
}

wire_enum! {
    /// By amount (`high` from 100,000 minor units, `critical` from 1,000,000), raised a level
    /// every two days open.
    pub enum Severity {
        Low = "low",
        Medium = "medium",
        High = "high",
        Critical = "critical",
    }
}

/// A resolution to propose (recon.md, "Resolutions").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResolutionRequest {
    /// 补单: credit the payer's wallet. Name `tenant` and `customer` when the break's order
    /// names no customer.
    CreditCustomer {
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        customer: Option<String>,
    },
    /// Return the money to the payer through the channel.
    RefundPayer,
    /// Book our side to the channel's.
    Adjust,
    /// Write the difference off as a loss (always waits for approval).
    WriteOff,
    /// Book money recovered against an earlier write-off.
    Recover { loss_id: String },
    /// Declare the lines matched.
    ForceMatch,
}

/// A resolution as the service shows it, including its own kinds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resolution {
    /// The payer's wallet (`tenant/customer`) is credited.
    CreditCustomer {
        customer: String,
    },
    RefundPayer,
    Adjust,
    WriteOff,
    Recover {
        loss_id: String,
    },
    ForceMatch,
    /// The order completed by itself (the platform's own).
    OrderCompleted,
    /// A later run replaced the break (the platform's own).
    Superseded,
    /// A kind this client does not know (a newer service's).
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ProposalView {
    pub resolution: Resolution,
    pub reason: String,
    pub maker: String,
    #[serde(default)]
    pub approver: Option<String>,
    pub proposed_at_ms: u64,
}

/// One entry of a break's audit trail.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BreakEventView {
    pub at_ms: u64,
    pub actor: String,
    pub action: String,
    pub detail: Value,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BreakView {
    /// `brk_…`.
    pub id: String,
    pub channel: String,
    pub business_day: String,
    pub class: BreakClass,
    pub tx_type: TxType,
    pub currency: String,
    #[serde(default)]
    pub statement_line: Option<u64>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub amount_ours: Option<Amount>,
    #[serde(default)]
    pub amount_theirs: Option<Amount>,
    #[serde(default)]
    pub fee_ours: Option<Amount>,
    #[serde(default)]
    pub fee_theirs: Option<Amount>,
    /// What sits in suspense for this break.
    pub suspense_amount_minor: SignedAmount,
    pub suspense_fee_minor: SignedAmount,
    pub severity: Severity,
    pub state: BreakState,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub proposal: Option<ProposalView>,
    pub found_by_run: String,
    pub revision: u32,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default)]
    pub resolved_at_ms: Option<u64>,
    /// The audit trail: in `GET /v1/recon/breaks/{id}` only.
    #[serde(default)]
    pub events: Option<Vec<BreakEventView>>,
}

impl Paged for BreakView {
    type Cursor = String;
    fn cursor(&self) -> String {
        self.id.clone()
    }
}

/// Which breaks `GET /v1/recon/breaks` lists, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BreakFilter {
    pub channel: Option<String>,
    pub business_day: Option<String>,
    pub class: Option<BreakClass>,
    pub state: Option<BreakState>,
    pub starting_after: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

/// `POST /v1/recon/breaks/{id}/assign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssignRequest {
    /// 1 to 64 of `A-Z a-z 0-9 _ . @ : -` (a name, an e-mail, a key id).
    pub assignee: String,
}

/// `POST /v1/recon/breaks/{id}/propose`: the maker's proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposeRequest {
    pub resolution: ResolutionRequest,
    /// 1 to 500 characters without control characters.
    pub reason: String,
}

/// `POST /v1/recon/breaks/{id}/approve`: no fields (the proposal approved is the break's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApproveRequest {}

/// `POST /v1/recon/breaks/{id}/reject`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectRequest {
    pub reason: String,
}

impl Client {
    pub async fn list_breaks(&self, filter: &BreakFilter) -> Result<List<BreakView>, ClientError> {
        let query = Query::new()
            .opt("channel", filter.channel.as_ref())
            .opt("business_day", filter.business_day.as_ref())
            .opt("class", filter.class.as_ref())
            .opt("state", filter.state.as_ref())
            .opt("starting_after", filter.starting_after.as_ref())
            .opt("limit", filter.limit);
        self.read(routes::LIST_BREAKS, &[], query).await
    }

    /// A break with its suspense, severity, proposal and audit trail.
    pub async fn get_break(&self, id: &str) -> Result<BreakView, ClientError> {
        self.read(routes::GET_BREAK, &[id], Query::new()).await
    }

    /// Gives an open (or assigned) break to an operator.
    pub async fn assign_break(
        &self,
        id: &str,
        assignee: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<BreakView>, ClientError> {
        let body = AssignRequest { assignee: assignee.to_string() };
        self.write(routes::ASSIGN_BREAK, &[id], Some(&body), idempotency_key).await
    }

    /// Proposes a resolution (the maker): booked at once below the approval threshold,
    /// otherwise `pending_approval`.
    pub async fn propose_resolution(
        &self,
        id: &str,
        proposal: &ProposeRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<BreakView>, ClientError> {
        self.write(routes::PROPOSE_RESOLUTION, &[id], Some(proposal), idempotency_key).await
    }

    /// Approves another key's proposal (the checker; 403 `approver_is_maker` for its own).
    pub async fn approve_resolution(
        &self,
        id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<BreakView>, ClientError> {
        let body = ApproveRequest {};
        self.write(routes::APPROVE_RESOLUTION, &[id], Some(&body), idempotency_key).await
    }

    /// Turns a proposal down: the break is open (or assigned) again.
    pub async fn reject_resolution(
        &self,
        id: &str,
        reason: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<BreakView>, ClientError> {
        let body = RejectRequest { reason: reason.to_string() };
        self.write(routes::REJECT_RESOLUTION, &[id], Some(&body), idempotency_key).await
    }
}
