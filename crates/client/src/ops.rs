//! The operators' desk (tag `operations`, `ops:*` scopes): status inquiries the bank never
//! answered, orders that need an operator, money-moving actions with maker–checker approval,
//! and the hash-chained audit log. Switches and plans are in [`crate::switches`], the node's
//! overview and the balance sheet in [`crate::overview`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::orders::OrderKind;
use crate::routes;
use crate::wire::{wire_enum, Amount, List};

/// A status inquiry (调单) task.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct InquiryView {
    pub channel: String,
    pub request_id: String,
    pub operation: String,
    /// The order it asks about.
    pub owner: String,
    pub state: String,
    #[serde(default)]
    pub detail: Option<String>,
    pub attempts: u32,
    pub created_at_ms: u64,
    pub next_at_ms: u64,
}

/// An order that needs an operator: unfinished past its deadline (`object` `overdue_order`),
/// or final in a state an operator must act on (`order_exception`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OverdueOrderView {
    pub object: String,
    pub id: String,
    pub tenant: String,
    pub kind: OrderKind,
    pub status: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// A suspended top-up's return under way.
    #[serde(default)]
    pub return_order: Option<String>,
    #[serde(default)]
    pub return_status: Option<String>,
}

/// What the bank did, by the operator's evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OutcomeBody {
    /// The money moved: the bank's reference and fee.
    Succeeded {
        channel_ref: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        fee: Option<Amount>,
    },
    /// It did not.
    Failed,
}

/// `POST /v1/ops/inquiries/{channel}/{request_id}/outcome`: the maker's claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutcomeRequestBody {
    pub result: OutcomeBody,
    /// 1 to 2,000 characters: where the bank's answer is.
    pub evidence: String,
    /// 1 to 500 characters.
    pub reason: String,
    /// 1 to 64 of `A-Z a-z 0-9 _ . : # / -`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// `POST /v1/ops/orders/{id}/return`: a suspended top-up back to its card (原路退回).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReturnRequestBody {
    pub evidence: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// The checker's approval or rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionBody {
    pub reason: String,
}

wire_enum! {
    /// The states of an operator's action.
    pub enum ActionStateName {
        PendingApproval = "pending_approval",
        /// Being carried out.
        Approved = "approved",
        Applied = "applied",
        Rejected = "rejected",
        Failed = "failed",
    }
}

/// An operator's money-moving action.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ActionView {
    /// `opa_…`.
    pub id: String,
    /// `set_inquiry_outcome` or `return_suspended`.
    pub kind: String,
    pub channel: String,
    pub request_id: String,
    /// The order the action answers.
    pub order: String,
    pub asset: String,
    /// What the order moves: what the approval threshold weighs.
    pub amount: Amount,
    /// `succeeded` or `failed`.
    pub outcome: String,
    #[serde(default)]
    pub channel_ref: Option<String>,
    #[serde(default)]
    pub fee: Option<Amount>,
    pub evidence: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// The key that proposed it.
    pub maker: String,
    /// The key that approved or rejected it (the maker's own below the threshold).
    #[serde(default)]
    pub checker: Option<String>,
    #[serde(default)]
    pub checker_reason: Option<String>,
    pub state: ActionStateName,
    /// `inquiry_resolved`: the bank's own answer came first, nothing moved.
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_detail: Option<String>,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One entry of the audit chain.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AuditEntryView {
    /// No gaps.
    pub seq: u64,
    pub at_ms: u64,
    /// The key.
    pub actor: String,
    /// `action.propose`, `switch.set`, `key.revoke`…
    pub action: String,
    pub subject: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    pub before: Value,
    pub after: Value,
    pub previous_hash: String,
    pub hash: String,
}

/// A page of the audit log; `next_after_seq` pages on.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct AuditList {
    pub data: Vec<AuditEntryView>,
    #[serde(default)]
    pub next_after_seq: Option<u64>,
}

/// The audit chain recomputed from its first entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AuditCheckView {
    pub ok: bool,
    pub entries: u64,
    /// Keep it elsewhere: a cut tail is found only against it.
    pub head_hash: String,
    #[serde(default)]
    pub broken_seq: Option<u64>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Client {
    /// Inquiries whose attempts ran out, oldest first (`limit` 1 to 500).
    pub async fn list_escalated(
        &self,
        limit: Option<u32>,
    ) -> Result<List<InquiryView>, ClientError> {
        self.read(routes::LIST_ESCALATED, &[], Query::new().opt("limit", limit)).await
    }

    /// Has an open or escalated inquiry asked at the next sweep.
    pub async fn ask_now(
        &self,
        channel: &str,
        request_id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<InquiryView>, ClientError> {
        self.write::<(), _>(routes::ASK_NOW, &[channel, request_id], None, idempotency_key).await
    }

    /// Proposes the outcome of an inquiry the bank never answered (the maker): 201 with the
    /// action, 200 for the same proposal by the same key again.
    pub async fn propose_outcome(
        &self,
        channel: &str,
        request_id: &str,
        outcome: &OutcomeRequestBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ActionView>, ClientError> {
        let params = [channel, request_id];
        self.write(routes::PROPOSE_OUTCOME, &params, Some(outcome), idempotency_key).await
    }

    /// Orders of every tenant unfinished past their deadline, the longest unmoved first.
    pub async fn list_overdue(
        &self,
        limit: Option<u32>,
    ) -> Result<List<OverdueOrderView>, ClientError> {
        self.read(routes::LIST_OVERDUE, &[], Query::new().opt("limit", limit)).await
    }

    /// Final orders an operator must act on (异常单), oldest change first.
    pub async fn list_exceptions(
        &self,
        limit: Option<u32>,
    ) -> Result<List<OverdueOrderView>, ClientError> {
        self.read(routes::LIST_EXCEPTIONS, &[], Query::new().opt("limit", limit)).await
    }

    /// Proposes returning a suspended top-up to its card (the maker).
    pub async fn propose_return(
        &self,
        order_id: &str,
        request: &ReturnRequestBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ActionView>, ClientError> {
        self.write(routes::PROPOSE_RETURN, &[order_id], Some(request), idempotency_key).await
    }

    /// Operators' actions, newest first.
    pub async fn list_actions(
        &self,
        state: Option<&ActionStateName>,
        limit: Option<u32>,
    ) -> Result<List<ActionView>, ClientError> {
        let query = Query::new().opt("state", state).opt("limit", limit);
        self.read(routes::LIST_ACTIONS, &[], query).await
    }

    pub async fn get_action(&self, id: &str) -> Result<ActionView, ClientError> {
        self.read(routes::GET_ACTION, &[id], Query::new()).await
    }

    /// Approves another key's action (the checker); it is carried out at once.
    pub async fn approve_action(
        &self,
        id: &str,
        reason: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ActionView>, ClientError> {
        let body = DecisionBody { reason: reason.to_string() };
        self.write(routes::APPROVE_ACTION, &[id], Some(&body), idempotency_key).await
    }

    /// Rejects another key's action (the checker).
    pub async fn reject_action(
        &self,
        id: &str,
        reason: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ActionView>, ClientError> {
        let body = DecisionBody { reason: reason.to_string() };
        self.write(routes::REJECT_ACTION, &[id], Some(&body), idempotency_key).await
    }

    /// The audit log after `after_seq`, oldest first.
    pub async fn list_audit(
        &self,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<AuditList, ClientError> {
        let query = Query::new().opt("after_seq", after_seq).opt("limit", limit);
        self.read(routes::LIST_AUDIT, &[], query).await
    }

    /// Recomputes the audit chain.
    pub async fn verify_audit(&self) -> Result<AuditCheckView, ClientError> {
        self.read(routes::VERIFY_AUDIT, &[], Query::new()).await
    }
}
