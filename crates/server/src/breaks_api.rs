//! `/v1/recon/breaks`: the differences reconciliation found, and their resolution — assign,
//! propose, approve or reject (maker–checker). Every change is an event of the break's audit
//! trail; every resolution is a new balanced entry that empties the break's suspense. The
//! rules are `reconciler::workflow`'s; this module parses, authorises and shapes.

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use recon::breaks::{BreakState, Resolution};
use recon::{BusinessDay, Class};
use reconciler::{BreakEvent, BreakQuery, BreakRecord, ReconError, Reconciler};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::recon_api::{
    business_day, channel_name, recon_id, reconciler, require_platform, PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
};
use crate::request::{blocking, limit_within, parse};
use crate::views::{to_value, wire, ErrorBody};
use crate::{formats, idempotency, AppState};

#[derive(Serialize, ToSchema)]
pub struct ProposalView {
    #[schema(value_type = wire::Resolution)]
    pub resolution: serde_json::Value,
    pub reason: String,
    /// The key that proposed it.
    pub maker: String,
    /// The key that approved it, when approval was needed.
    pub approver: Option<String>,
    pub proposed_at_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct BreakEventView {
    pub at_ms: u64,
    /// The API key, or `system`.
    pub actor: String,
    /// `found`, `assigned`, `proposed`, `approved`, `rejected`, `resolution_refused`,
    /// `resolved`.
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<BreakEvent> for BreakEventView {
    fn from(event: BreakEvent) -> BreakEventView {
        BreakEventView {
            at_ms: event.at_ms,
            actor: event.actor,
            action: event.action,
            detail: event.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BreakView {
    /// `brk_…`: derived from the channel, day and line, so a re-run finds the same break.
    pub id: String,
    pub object: &'static str,
    pub channel: String,
    #[schema(value_type = formats::BusinessDate)]
    pub business_day: String,
    #[schema(value_type = wire::BreakClass)]
    pub class: String,
    #[schema(value_type = wire::TxType)]
    pub tx_type: String,
    #[schema(value_type = formats::AssetCode)]
    pub currency: String,
    /// The statement's line, when the channel shows the line.
    pub statement_line: Option<u64>,
    /// Our request id, when either side has one.
    pub request_id: Option<String>,
    pub order_id: Option<String>,
    /// Decimal strings, minor units; `null` where a side has no line.
    pub amount_ours: Option<String>,
    pub amount_theirs: Option<String>,
    pub fee_ours: Option<String>,
    pub fee_theirs: Option<String>,
    /// What the break holds on the channel's suspense account (挂账), signed: positive when
    /// the channel shows more owed to us than our books do. Amount and fee apart.
    pub suspense_amount_minor: String,
    pub suspense_fee_minor: String,
    /// By amount and by age (a level up every two days open).
    #[schema(value_type = wire::Severity)]
    pub severity: String,
    #[schema(value_type = wire::BreakState)]
    pub state: String,
    pub assignee: Option<String>,
    pub proposal: Option<ProposalView>,
    /// The run that found it.
    pub found_by_run: String,
    /// How many times a newer statement superseded it and a later one showed it again
    /// (each time it is reopened, its suspense booked anew).
    pub revision: u32,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
    /// The audit trail, oldest first (`GET /v1/recon/breaks/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<BreakEventView>>,
}

impl BreakView {
    fn of(record: BreakRecord, reconciler: &Reconciler, now_ms: u64) -> BreakView {
        let config = reconciler.config();
        let today = BusinessDay::of(now_ms, config.utc_offset_minutes);
        let day = BusinessDay::from_days(record.business_day);
        let severity = if record.state == BreakState::Resolved {
            // A resolved break is weighed by its amount alone: age no longer counts.
            config.policy.severity(record.parts, day, day)
        } else {
            config.policy.severity(record.parts, day, today)
        };
        let text = |amount: Option<money::Amount>| amount.map(|a| a.to_string());
        BreakView {
            id: record.id,
            object: "recon_break",
            channel: record.channel,
            business_day: day.to_string(),
            class: record.class.as_str().to_owned(),
            tx_type: record.tx_type.as_str().to_owned(),
            currency: record.currency.to_string(),
            statement_line: record.statement_line,
            request_id: record.request_id,
            order_id: record.order_id,
            amount_ours: text(record.amount_ours),
            amount_theirs: text(record.amount_theirs),
            fee_ours: text(record.fee_ours),
            fee_theirs: text(record.fee_theirs),
            suspense_amount_minor: record.parts.amount_minor.to_string(),
            suspense_fee_minor: record.parts.fee_minor.to_string(),
            severity: severity.as_str().to_owned(),
            state: record.state.as_str().to_owned(),
            assignee: record.assignee,
            proposal: record.proposal.map(|proposal| ProposalView {
                resolution: serde_json::to_value(&proposal.resolution)
                    .unwrap_or(serde_json::Value::Null),
                reason: proposal.reason,
                maker: proposal.maker,
                approver: proposal.approver,
                proposed_at_ms: proposal.proposed_at_ms,
            }),
            found_by_run: record.found_by_run,
            revision: record.revision,
            version: record.version,
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
            resolved_at_ms: record.resolved_at_ms,
            events: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BreakList {
    pub object: &'static str,
    pub data: Vec<BreakView>,
    /// Pass the last id as `starting_after` for the next page.
    pub has_more: bool,
}

fn now_ms(state: &AppState) -> u64 {
    state.clock.now().0 / 1_000
}

fn break_missing(id: &str) -> ApiError {
    ApiError::from(ReconError::BreakNotFound(id.to_owned()))
}

// ---- reading ----------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BreakListQuery {
    #[param(value_type = Option<formats::ChannelName>, nullable = false)]
    channel: Option<String>,
    #[param(value_type = Option<formats::BusinessDate>, nullable = false)]
    business_day: Option<String>,
    #[param(value_type = Option<wire::BreakClass>, nullable = false)]
    class: Option<String>,
    #[param(value_type = Option<wire::BreakState>, nullable = false)]
    state: Option<String>,
    /// The last break id of the previous page (404 `break_not_found` if there is none).
    #[param(value_type = Option<formats::ReconId>, nullable = false)]
    starting_after: Option<String>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Breaks, newest first, filtered.
#[utoipa::path(get, path = "/v1/recon/breaks", tag = "reconciliation", params(BreakListQuery),
    responses((status = 200, body = BreakList), (status = "4XX", body = ErrorBody)))]
pub async fn list_breaks(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<BreakListQuery>,
) -> Result<axum::Json<BreakList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let class = match &query.class {
        Some(raw) => Some(Class::ALL.into_iter().find(|c| c.as_str() == raw).ok_or_else(|| {
            ApiError::invalid("invalid_class", format!("no class {raw:?}")).with_param("class")
        })?),
        None => None,
    };
    let break_state = match &query.state {
        Some(raw) => Some(BreakState::parse(raw).ok_or_else(|| {
            ApiError::invalid("invalid_state", format!("no break state {raw:?}"))
                .with_param("state")
        })?),
        None => None,
    };
    let channel = query.channel.as_deref().map(|raw| channel_name(raw, "channel")).transpose()?;
    let day = query
        .business_day
        .as_deref()
        .map(|raw| business_day(raw, "business_day").map(BusinessDay::days))
        .transpose()?;
    let after = query
        .starting_after
        .as_deref()
        .map(|raw| recon_id(raw).map(str::to_owned).map_err(|e| e.with_param("starting_after")))
        .transpose()?;
    let reconciler = reconciler(&state)?;
    let store_side = reconciler.clone();
    let (records, has_more) = blocking(move || {
        let before = match after {
            Some(id) => {
                let record = store_side.store().get_break(&id).map_err(ReconError::from)?;
                let record =
                    record.ok_or_else(|| break_missing(&id).with_param("starting_after"))?;
                Some((record.created_at_ms, record.id))
            }
            None => None,
        };
        let mut records = store_side
            .store()
            .breaks(&BreakQuery {
                channel,
                business_day: day,
                class,
                state: break_state,
                before,
                limit: limit + 1,
            })
            .map_err(ReconError::from)?;
        let has_more = records.len() > limit;
        records.truncate(limit);
        Ok((records, has_more))
    })
    .await?;
    let now_ms = now_ms(&state);
    Ok(axum::Json(BreakList {
        object: "list",
        data: records.into_iter().map(|r| BreakView::of(r, &reconciler, now_ms)).collect(),
        has_more,
    }))
}

/// One break with its audit trail.
#[utoipa::path(get, path = "/v1/recon/breaks/{id}", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, body = BreakView), (status = "4XX", body = ErrorBody)))]
pub async fn get_break(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<BreakView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    Ok(axum::Json(with_trail(&state, &reconciler, id).await?))
}

async fn with_trail(
    state: &AppState,
    reconciler: &std::sync::Arc<Reconciler>,
    id: String,
) -> Result<BreakView, ApiError> {
    let store_side = reconciler.clone();
    let (record, events) = blocking(move || {
        let record = store_side.store().get_break(&id).map_err(ReconError::from)?;
        let record = record.ok_or_else(|| break_missing(&id))?;
        let events = store_side.store().break_events(&id).map_err(ReconError::from)?;
        Ok((record, events))
    })
    .await?;
    let mut view = BreakView::of(record, reconciler, now_ms(state));
    view.events = Some(events.into_iter().map(BreakEventView::from).collect());
    Ok(view)
}

// ---- the workflow -------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    #[schema(value_type = formats::Assignee)]
    assignee: String,
}

/// Give an open (or assigned) break to an operator.
#[utoipa::path(post, path = "/v1/recon/breaks/{id}/assign", tag = "reconciliation",
    request_body = AssignRequest, params(("id" = formats::ReconId, Path), IdempotencyKey),
    responses((status = 200, body = BreakView), (status = "4XX", body = ErrorBody)))]
pub async fn assign_break(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/recon/breaks/{id}/assign");
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        recon_id(&id)?;
        let request: AssignRequest = parse(&body)?;
        let shaped = !request.assignee.is_empty()
            && request.assignee.len() <= formats::ASSIGNEE_LEN_MAX
            && request.assignee.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@:-".contains(&b));
        if !shaped {
            return Err(ApiError::invalid(
                "invalid_assignee",
                "an assignee is 1 to 64 of A-Z a-z 0-9 _ . @ : -",
            )
            .with_param("assignee"));
        }
        let reconciler = reconciler(&state)?;
        reconciler.assign(&id, &request.assignee, &caller.key.id).await?;
        Ok((StatusCode::OK, to_value(with_trail(&state, &reconciler, id.clone()).await?)?))
    })
    .await
}

/// A resolution as an operator asks for it.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResolutionRequest {
    /// 补单: credit the payer's wallet (a debit the channel took that we never booked). The
    /// customer is the order's unless named (`tenant` and `customer` together).
    CreditCustomer {
        #[serde(default)]
        #[schema(value_type = Option<formats::TenantName>)]
        tenant: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<formats::PartyId>)]
        customer: Option<String>,
    },
    /// Return the money to the payer through the channel.
    RefundPayer {},
    /// A fee, FX or rounding difference, taken to channel fees.
    Adjust {},
    /// The money is lost: booked to fund losses (6711) and entered in the loss register.
    /// Always needs a second key's approval.
    WriteOff {},
    /// Money received against an earlier write-off (`loss_id`), booked to loss recoveries.
    Recover {
        #[schema(value_type = formats::ReconId)]
        loss_id: String,
    },
    /// Our books are right and the statement wrong: the suspense booking is reversed and no
    /// money moves.
    ForceMatch {},
}

impl ResolutionRequest {
    fn into_resolution(self) -> Result<Resolution, ApiError> {
        Ok(match self {
            ResolutionRequest::CreditCustomer { tenant, customer } => {
                let customer = match (tenant, customer) {
                    (None, None) => String::new(),
                    (Some(tenant), Some(customer)) => {
                        let tenant_ok = access::TenantId::new(&tenant).is_ok();
                        let customer_ok = !customer.is_empty()
                            && customer.len() <= executor::PARTY_ID_LEN_MAX
                            && customer
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                        if !tenant_ok || !customer_ok {
                            return Err(ApiError::invalid(
                                "invalid_field",
                                "a tenant (1 to 64 of a-z 0-9 _ -) and a customer id (1 to 64 \
                                 of A-Z a-z 0-9 _ . -)",
                            )
                            .with_param("resolution"));
                        }
                        executor::party_key(&tenant, &customer)
                    }
                    _ => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "field_refused",
                            "name the customer with both `tenant` and `customer`, or neither \
                             (the order's customer)",
                        )
                        .with_param("resolution"))
                    }
                };
                Resolution::CreditCustomer { customer }
            }
            ResolutionRequest::RefundPayer {} => Resolution::RefundPayer,
            ResolutionRequest::Adjust {} => Resolution::Adjust,
            ResolutionRequest::WriteOff {} => Resolution::WriteOff,
            ResolutionRequest::Recover { loss_id } => {
                recon_id(&loss_id).map_err(|e| e.with_param("resolution"))?;
                Resolution::Recover { loss_id }
            }
            ResolutionRequest::ForceMatch {} => Resolution::ForceMatch,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    resolution: ResolutionRequest,
    #[schema(value_type = formats::Reason)]
    reason: String,
}

/// The answer after a resolution was decided: a booking the ledger refused (a closed wallet,
/// say) sent the break back to its operator, and is a 422 with the ledger's code.
async fn decided(
    state: &AppState,
    reconciler: &std::sync::Arc<Reconciler>,
    record: BreakRecord,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let view = with_trail(state, reconciler, record.id.clone()).await?;
    let booked = matches!(
        record.state,
        BreakState::PendingApproval | BreakState::Resolving | BreakState::Resolved
    );
    if !booked {
        let code = view
            .events
            .as_deref()
            .and_then(|events| events.last())
            .filter(|event| event.action == "resolution_refused")
            .and_then(|event| event.detail["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "resolution_refused",
            format!(
                "the ledger refused the resolution's booking ({code}); the break is open again"
            ),
        ));
    }
    Ok((StatusCode::OK, to_value(view)?))
}

/// Propose a resolution. Below the approval threshold (10,000 minor units by default) and
/// never for a write-off, it is booked at once (`resolved`); otherwise the break waits in
/// `pending_approval` for another key with `recon:approve`.
#[utoipa::path(post, path = "/v1/recon/breaks/{id}/propose", tag = "reconciliation",
    request_body = ProposeRequest, params(("id" = formats::ReconId, Path), IdempotencyKey),
    responses((status = 200, body = BreakView), (status = "4XX", body = ErrorBody)))]
pub async fn propose_resolution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/recon/breaks/{id}/propose");
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        recon_id(&id)?;
        let request: ProposeRequest = parse(&body)?;
        crate::request::checked_words(&request.reason, None)?;
        let resolution = request.resolution.into_resolution()?;
        let reconciler = reconciler(&state)?;
        let record = reconciler.propose(&id, resolution, &request.reason, &caller.key.id).await?;
        decided(&state, &reconciler, record).await
    })
    .await
}

/// Approval takes no fields: the proposal it approves is the break's (an empty body is `{}`).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {}

/// Approve another key's proposed resolution (needs `recon:approve`; the maker cannot
/// approve its own: 403 `approver_is_maker`). The resolution is booked.
#[utoipa::path(post, path = "/v1/recon/breaks/{id}/approve", tag = "reconciliation",
    request_body = ApproveRequest, params(("id" = formats::ReconId, Path), IdempotencyKey),
    responses((status = 200, body = BreakView), (status = "4XX", body = ErrorBody)))]
pub async fn approve_resolution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/recon/breaks/{id}/approve");
    idempotency::once(&state, &caller, Scope::ReconApprove, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::ReconApprove)?;
        recon_id(&id)?;
        let ApproveRequest {} =
            if body.is_empty() { ApproveRequest::default() } else { parse(&body)? };
        let reconciler = reconciler(&state)?;
        let record = reconciler.approve(&id, &caller.key.id).await?;
        decided(&state, &reconciler, record).await
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[schema(value_type = formats::Reason)]
    reason: String,
}

/// Turn a proposed resolution down (needs `recon:approve`): the break is open (or assigned)
/// again, and the proposal is kept in its trail.
#[utoipa::path(post, path = "/v1/recon/breaks/{id}/reject", tag = "reconciliation",
    request_body = RejectRequest, params(("id" = formats::ReconId, Path), IdempotencyKey),
    responses((status = 200, body = BreakView), (status = "4XX", body = ErrorBody)))]
pub async fn reject_resolution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/recon/breaks/{id}/reject");
    idempotency::once(&state, &caller, Scope::ReconApprove, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::ReconApprove)?;
        recon_id(&id)?;
        let request: RejectRequest = parse(&body)?;
        crate::request::checked_words(&request.reason, None)?;
        let reconciler = reconciler(&state)?;
        reconciler.reject(&id, &request.reason, &caller.key.id).await?;
        Ok((StatusCode::OK, to_value(with_trail(&state, &reconciler, id.clone()).await?)?))
    })
    .await
}
