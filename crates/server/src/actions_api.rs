//! `/v1/ops/actions` and `/v1/ops/audit`: operators' money-moving actions with maker–checker
//! approval, and the hash-chained audit log of every operator action. Platform keys only.
//!
//! - `POST /v1/ops/inquiries/{channel}/{request_id}/outcome` (`ops:write`, the maker): set the
//!   outcome of an inquiry the bank never answered, with the bank's evidence. At or above
//!   `--ops-approval-minor` it waits for a second key; then it reaches the order as the bank's
//!   callback would, so the order completes through its own state machine.
//! - `POST /v1/ops/actions/{id}/approve` and `/reject` (`ops:approve`, the checker; never the
//!   maker: 403 `approver_is_maker`).
//! - `GET /v1/ops/audit` (a page of the chain, to list and export) and `/v1/ops/audit/verify`.

use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use channels::{ChannelId, RequestId};
use money::Amount;
use operators::{
    ActionState, Desk, DeskError, OperatorAction, OutcomeClaim, OutcomeRequest, ReturnRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::recon_api::{require_platform, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::request::{blocking, checked_words, limit_within, parse};
use crate::views::{to_value, ErrorBody};
use crate::{idempotency, AppState};

impl From<DeskError> for ApiError {
    fn from(error: DeskError) -> ApiError {
        let code = error.code();
        let status = match &error {
            DeskError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            DeskError::InquiryNotFound(_)
            | DeskError::OrderNotFound(_)
            | DeskError::ActionNotFound(_) => StatusCode::NOT_FOUND,
            DeskError::InquiryResolved(_) | DeskError::NotSuspended(_) => StatusCode::CONFLICT,
            DeskError::Action(operators::ActionError::ApproverIsMaker) => StatusCode::FORBIDDEN,
            DeskError::Action(_)
            | DeskError::SwitchContended
            | DeskError::SwitchVersion { .. }
            | DeskError::FxRateContended => StatusCode::CONFLICT,
            DeskError::SwitchNotFound(_) => StatusCode::NOT_FOUND,
            DeskError::Switch(error) => return ApiError::from(error.clone()),
            DeskError::Store(_) | DeskError::Orders(_) | DeskError::Inquiry(_) => {
                tracing::error!(%error, "operators' desk unavailable");
                return ApiError::unavailable(code, "the operators' store is unreachable; retry");
            }
        };
        let mut api = ApiError::new(status, code, error.to_string());
        if let DeskError::Invalid { field, .. } = &error {
            api = api.with_param(*field);
        }
        api
    }
}

pub(crate) fn desk(state: &AppState) -> Result<Arc<Desk>, ApiError> {
    state.desk.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "operations_disabled",
            "this node does not run the operators' desk",
        )
    })
}

/// What the operator says the bank did.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutcomeBody {
    /// The money moved: the bank's reference and fee (minor units, a decimal string).
    Succeeded {
        #[schema(value_type = formats::Reason)]
        channel_ref: String,
        #[serde(default)]
        #[schema(value_type = Option<formats::AmountOrZero>)]
        fee: Option<Amount>,
    },
    /// The bank never carried it out.
    Failed {},
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequestBody {
    /// What the bank did.
    result: OutcomeBody,
    #[schema(value_type = formats::Evidence)]
    evidence: String,
    #[schema(value_type = formats::Reason)]
    reason: String,
    #[serde(default)]
    #[schema(value_type = Option<formats::Ticket>)]
    ticket: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequestBody {
    /// Why the money cannot go to the wallet (closed for good, say).
    #[schema(value_type = formats::Evidence)]
    evidence: String,
    #[schema(value_type = formats::Reason)]
    reason: String,
    #[serde(default)]
    #[schema(value_type = Option<formats::Ticket>)]
    ticket: Option<String>,
}

/// An operator's money-moving action.
#[derive(Serialize, ToSchema)]
pub struct ActionView {
    #[schema(example = "operator_action")]
    pub object: &'static str,
    /// `opa_…`.
    pub id: String,
    /// `set_inquiry_outcome` (an inquiry's outcome, from the bank's evidence) or
    /// `return_suspended` (a suspended top-up back to its card: `channel` is the one it came
    /// by, `request_id` the return's request there, `outcome` what the bank did with the
    /// top-up).
    pub kind: &'static str,
    pub channel: String,
    pub request_id: String,
    /// The order the inquiry answers.
    pub order: String,
    pub asset: String,
    /// What the order moves (minor units): what the approval threshold weighs.
    pub amount: String,
    /// `succeeded` or `failed`.
    pub outcome: &'static str,
    /// For a success: the bank's reference and fee.
    pub channel_ref: Option<String>,
    pub fee: Option<String>,
    pub evidence: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// The key that proposed it.
    pub maker: String,
    /// The key that approved or rejected it (the maker's own below the threshold).
    pub checker: Option<String>,
    pub checker_reason: Option<String>,
    /// `pending_approval`, `approved`, `applied`, `rejected` or `failed`.
    pub state: &'static str,
    /// Why it failed (`inquiry_resolved`: the bank's own answer came first).
    pub failure_code: Option<String>,
    pub failure_detail: Option<String>,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl From<OperatorAction> for ActionView {
    fn from(action: OperatorAction) -> ActionView {
        let (outcome, channel_ref, fee) = match &action.claim {
            OutcomeClaim::Succeeded { channel_ref, fee } => {
                ("succeeded", Some(channel_ref.clone()), Some(fee.minor().to_string()))
            }
            OutcomeClaim::Failed { .. } => ("failed", None, None),
        };
        let (failure_code, failure_detail) = match &action.state {
            ActionState::Failed { code, detail } => (Some(code.clone()), Some(detail.clone())),
            _ => (None, None),
        };
        ActionView {
            object: "operator_action",
            kind: action.kind.as_str(),
            channel: action.channel.to_string(),
            request_id: action.request_id.to_string(),
            asset: action.asset.to_string(),
            amount: action.amount.minor().to_string(),
            outcome,
            channel_ref,
            fee,
            state: action.state.name(),
            failure_code,
            failure_detail,
            id: action.id,
            order: action.order,
            evidence: action.evidence,
            reason: action.reason,
            ticket: action.ticket,
            maker: action.maker,
            checker: action.checker,
            checker_reason: action.checker_reason,
            version: action.version,
            created_at_ms: action.created_at_ms,
            updated_at_ms: action.updated_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ActionList {
    pub object: &'static str,
    pub data: Vec<ActionView>,
}

fn checked_text(ok: bool, code: &str, param: &str, message: &str) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(code, message).with_param(param))
    }
}

/// What every proposal carries: the evidence, the reason and the ticket, checked.
fn checked_proposal(evidence: &str, reason: &str, ticket: Option<&str>) -> Result<(), ApiError> {
    checked_text(
        formats::is_evidence(evidence),
        "invalid_evidence",
        "evidence",
        "evidence is 1 to 2,000 characters, without control characters",
    )?;
    checked_words(reason, ticket)
}

/// Return a suspended top-up to the card it came from (原路退回; `ops:write`: the maker):
/// the wallet refused the money, which waits in suspense. With approval as for an
/// inquiry's outcome; carried out, it is a card refund from suspense through the top-up's
/// channel (an order of its own, whose id is the action's `request_id` before `:`). 409
/// `order_not_suspended` for any other order; the action fails with `return_refused` if a
/// return of it is under way already.
#[utoipa::path(post, path = "/v1/ops/orders/{id}/return", tag = "operations",
    request_body = ReturnRequestBody, params(("id" = String, Path), IdempotencyKey),
    responses((status = 201, body = ActionView),
        (status = 200, description = "the same proposal again", body = ActionView),
        (status = "4XX", body = ErrorBody)))]
pub async fn propose_return(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/ops/orders/{id}/return");
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let request: ReturnRequestBody = parse(&body)?;
        checked_proposal(&request.evidence, &request.reason, request.ticket.as_deref())?;
        let order = payments::OrderId::new(id.as_str())
            .map_err(|_| DeskError::OrderNotFound(id.clone()))?;
        let desk = desk(&state)?;
        let proposal = ReturnRequest {
            order,
            evidence: request.evidence,
            reason: request.reason,
            ticket: request.ticket,
        };
        let (action, created) = desk.propose_return(caller.key.id.as_str(), proposal).await?;
        tracing::info!(
            action = %action.id, order = %action.order, state = action.state.name(),
            by = %caller.key.id, "an operator proposed returning a suspended top-up"
        );
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, to_value(ActionView::from(action))?))
    })
    .await
}

/// Set the outcome of a status inquiry the bank never answered, from the bank's evidence
/// (`ops:write`: the maker). At or above the approval threshold the action waits for a
/// second key (`pending_approval`); below it, it is carried out at once. Carried out, the
/// outcome reaches the order as the bank's callback would. 409 `inquiry_resolved` when the
/// bank has answered already.
#[utoipa::path(post, path = "/v1/ops/inquiries/{channel}/{request_id}/outcome",
    tag = "operations", request_body = OutcomeRequestBody,
    params(("channel" = String, Path), ("request_id" = String, Path), IdempotencyKey),
    responses((status = 201, body = ActionView),
        (status = 200, description = "the same proposal again", body = ActionView),
        (status = "4XX", body = ErrorBody)))]
pub async fn propose_outcome(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((channel, request_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/ops/inquiries/{channel}/{request_id}/outcome");
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let request: OutcomeRequestBody = parse(&body)?;
        checked_proposal(&request.evidence, &request.reason, request.ticket.as_deref())?;
        let claim = match request.result {
            OutcomeBody::Succeeded { channel_ref, fee } => {
                checked_text(
                    formats::is_reason(&channel_ref),
                    "invalid_channel_ref",
                    "result.channel_ref",
                    "a channel reference is 1 to 500 characters, without control characters",
                )?;
                OutcomeClaim::Succeeded { channel_ref, fee: fee.unwrap_or(Amount::ZERO) }
            }
            OutcomeBody::Failed {} => OutcomeClaim::Failed { detail: request.reason.clone() },
        };
        let missing = || DeskError::InquiryNotFound(format!("{channel}/{request_id}"));
        let channel = ChannelId::new(channel.as_str()).map_err(|_| missing())?;
        let request_id = RequestId::new(request_id.as_str()).map_err(|_| missing())?;
        let desk = desk(&state)?;
        let proposal = OutcomeRequest {
            channel,
            request_id,
            claim,
            evidence: request.evidence,
            reason: request.reason,
            ticket: request.ticket,
        };
        let (action, created) = desk.propose_outcome(caller.key.id.as_str(), proposal).await?;
        tracing::info!(
            action = %action.id, order = %action.order, state = action.state.name(),
            by = %caller.key.id, "an operator proposed an inquiry's outcome"
        );
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((status, to_value(ActionView::from(action))?))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionQuery {
    /// Only actions in this state.
    #[param(value_type = Option<ActionStateName>)]
    state: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The states an action can be in.
#[derive(ToSchema)]
#[allow(dead_code)] // the document's enum of `ActionState::NAMES`, tied by a test
#[schema(rename_all = "snake_case")]
pub enum ActionStateName {
    PendingApproval,
    Approved,
    Applied,
    Rejected,
    Failed,
}

/// Operators' actions, newest first; `state=pending_approval` is what waits for a checker.
#[utoipa::path(get, path = "/v1/ops/actions", tag = "operations", params(ActionQuery),
    responses((status = 200, body = ActionList), (status = "4XX", body = ErrorBody)))]
pub async fn list_actions(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ActionQuery>,
) -> Result<axum::Json<ActionList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    if let Some(name) = &query.state {
        if !ActionState::NAMES.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                "invalid_state",
                format!("state is one of {}", ActionState::NAMES.join(", ")),
            )
            .with_param("state"));
        }
    }
    let desk = desk(&state)?;
    let actions = blocking(move || Ok(desk.actions(query.state.as_deref(), limit)?)).await?;
    Ok(axum::Json(ActionList {
        object: "list",
        data: actions.into_iter().map(ActionView::from).collect(),
    }))
}

/// One action.
#[utoipa::path(get, path = "/v1/ops/actions/{id}", tag = "operations",
    params(("id" = String, Path)),
    responses((status = 200, body = ActionView), (status = "4XX", body = ErrorBody)))]
pub async fn get_action(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ActionView>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let desk = desk(&state)?;
    let action = blocking(move || Ok(desk.action(&id)?)).await?;
    Ok(axum::Json(ActionView::from(action)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[schema(value_type = formats::Reason)]
    reason: String,
}

/// Approve another key's pending action (`ops:approve`: the checker; the maker cannot:
/// 403 `approver_is_maker`). It is carried out at once: `applied`, or `failed` when the
/// bank's own answer came first.
#[utoipa::path(post, path = "/v1/ops/actions/{id}/approve", tag = "operations",
    request_body = DecisionBody, params(("id" = String, Path), IdempotencyKey),
    responses((status = 200, body = ActionView), (status = "4XX", body = ErrorBody)))]
pub async fn approve_action(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, caller, headers, id, body, true).await
}

/// Reject another key's pending action (`ops:approve`; never the maker's own).
#[utoipa::path(post, path = "/v1/ops/actions/{id}/reject", tag = "operations",
    request_body = DecisionBody, params(("id" = String, Path), IdempotencyKey),
    responses((status = 200, body = ActionView), (status = "4XX", body = ErrorBody)))]
pub async fn reject_action(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, caller, headers, id, body, false).await
}

async fn decide(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    approve: bool,
) -> Response {
    let verb = if approve { "approve" } else { "reject" };
    let route = format!("POST /v1/ops/actions/{id}/{verb}");
    idempotency::once(&state, &caller, Scope::OpsApprove, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::OpsApprove)?;
        let request: DecisionBody = parse(&body)?;
        checked_words(&request.reason, None)?;
        let desk = desk(&state)?;
        let checker = caller.key.id.as_str();
        let action = if approve {
            desk.approve(checker, &id, &request.reason).await?
        } else {
            desk.reject(checker, &id, &request.reason)?
        };
        tracing::info!(action = %action.id, state = action.state.name(), by = %checker, "an operator decided an action");
        Ok((StatusCode::OK, to_value(ActionView::from(action))?))
    })
    .await
}

/// One entry of the audit chain.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryView {
    #[schema(example = "audit_entry")]
    pub object: &'static str,
    /// 1, 2, 3…: no gaps.
    pub seq: u64,
    pub at_ms: u64,
    /// The key that did it.
    pub actor: String,
    /// What was done: `inquiry.ask`, `action.propose`, `action.approve`, `action.reject`,
    /// `action.apply`, `action.fail`, `key.create`, `key.revoke`.
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// What it was before: an object, a list (of switches) or `null` (nothing).
    #[schema(value_type = Value)]
    pub before: serde_json::Value,
    #[schema(value_type = Value)]
    pub after: serde_json::Value,
    pub previous_hash: String,
    /// SHA-256 (hex) over the previous hash, the sequence number and every field.
    pub hash: String,
}

impl From<operators::AuditEntry> for AuditEntryView {
    fn from(entry: operators::AuditEntry) -> AuditEntryView {
        let operators::AuditEntry { seq, entry, previous_hash, hash } = entry;
        AuditEntryView {
            object: "audit_entry",
            seq,
            at_ms: entry.at_ms,
            actor: entry.actor,
            action: entry.action,
            subject: entry.subject,
            reason: entry.reason,
            ticket: entry.ticket,
            before: entry.before,
            after: entry.after,
            previous_hash,
            hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub object: &'static str,
    pub data: Vec<AuditEntryView>,
    /// Pass as `after_seq` for the next page; `null` at the end.
    pub next_after_seq: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this sequence number (0 by default: from the first).
    after_seq: Option<u64>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A page of the audit log, oldest first: every operator action and configuration change
/// (who, when, what, why, the ticket, before → after), each entry hash-chained to the one
/// before. Page through it with `after_seq` to export it whole.
#[utoipa::path(get, path = "/v1/ops/audit", tag = "operations", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = "4XX", body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let desk = desk(&state)?;
    let after_seq = query.after_seq.unwrap_or(0);
    let entries = blocking(move || Ok(desk.audit(after_seq, limit)?)).await?;
    let next_after_seq = (entries.len() == limit).then(|| entries.last().map(|e| e.seq)).flatten();
    Ok(axum::Json(AuditList {
        object: "list",
        data: entries.into_iter().map(AuditEntryView::from).collect(),
        next_after_seq,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AuditCheckView {
    #[schema(example = "audit_check")]
    pub object: &'static str,
    /// Whether every entry is linked to the one before and its hash matches its fields.
    pub ok: bool,
    /// Entries verified (up to the first that does not fit).
    pub entries: u64,
    /// The hash of the last verified entry: keep it elsewhere to detect a truncated tail.
    pub head_hash: String,
    /// The first entry that does not fit, and why.
    pub broken_seq: Option<u64>,
    pub detail: Option<String>,
}

/// Recompute the audit chain from its first entry.
#[utoipa::path(get, path = "/v1/ops/audit/verify", tag = "operations",
    responses((status = 200, body = AuditCheckView), (status = "4XX", body = ErrorBody)))]
pub async fn verify_audit(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<AuditCheckView>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let desk = desk(&state)?;
    let check = blocking(move || Ok(desk.verify_audit()?)).await?;
    let (broken_seq, detail) =
        check.broken.map_or((None, None), |(seq, why)| (Some(seq), Some(why)));
    Ok(axum::Json(AuditCheckView {
        object: "audit_check",
        ok: broken_seq.is_none(),
        entries: check.entries,
        head_hash: check.head_hash,
        broken_seq,
        detail,
    }))
}

/// Records an operator's action in the audit log when this node runs the desk; a failure to
/// record is the request's failure (an unaudited action must not pass silently).
pub(crate) async fn audit(
    state: &AppState,
    caller: &Caller,
    what: &str,
    subject: String,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let Some(desk) = state.desk.clone() else { return Ok(()) };
    let (actor, what) = (caller.key.id.to_string(), what.to_owned());
    blocking(move || {
        desk.record(&actor, &what, &subject, "", None, before, after)?;
        Ok(())
    })
    .await
}
