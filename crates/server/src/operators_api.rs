//! `/v1/ops`: what needs the platform's operators. Platform keys only (`ops:read`,
//! `ops:write`).
//!
//! - `/v1/ops/inquiries`: status inquiries (调单) that need an operator. An inquiry whose
//!   attempts ran out is escalated — still unknown, never assumed failed — and still asked on
//!   a slow schedule until the bank answers; an operator lists them and can have one asked
//!   now (after a bank says it is back, say).
//! - `/v1/ops/orders/overdue`: orders unfinished past their deadline (or, without one, an hour
//!   after they last moved: `--stuck-after-ms`) that inspection has not finished.
//! - `/v1/ops/orders/exceptions`: final orders an operator must act on (异常单): suspended
//!   top-ups, disputed withdrawals and card refunds.

use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use channels::inquiry::{Inquirer, InquiryState, InquiryTask};
use channels::{ChannelId, RequestId};
use executor::ExecError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::payments_api::executor;
use crate::recon_api::{require_platform, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use crate::request::{blocking, limit_within};
use crate::views::{to_value, ErrorBody};
use crate::{idempotency, AppState};

/// One inquiry task.
#[derive(Serialize, ToSchema)]
pub struct InquiryView {
    #[schema(example = "inquiry")]
    pub object: &'static str,
    pub channel: String,
    /// The request id we sent the channel (`<order>:<step>`).
    pub request_id: String,
    /// `debit`, `payout` or `refund`.
    pub operation: String,
    /// Who gets the answer: the order's id.
    pub owner: String,
    /// `open`, `escalated` or `resolved`.
    pub state: String,
    /// Why it was escalated.
    pub detail: Option<String>,
    /// Inquiries made so far.
    pub attempts: u32,
    pub created_at_ms: u64,
    /// When it is asked next (milliseconds since the epoch).
    pub next_at_ms: u64,
}

impl From<InquiryTask> for InquiryView {
    fn from(task: InquiryTask) -> InquiryView {
        let (state, detail) = match task.state {
            InquiryState::Open => ("open", None),
            InquiryState::Escalated { detail } => ("escalated", Some(detail)),
            InquiryState::Resolved { .. } => ("resolved", None),
        };
        InquiryView {
            object: "inquiry",
            channel: task.channel.to_string(),
            request_id: task.request_id.to_string(),
            operation: task.operation.as_str().to_owned(),
            owner: task.owner,
            state: state.to_owned(),
            detail,
            attempts: task.attempts,
            created_at_ms: task.created_at_ms,
            next_at_ms: task.next_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InquiryList {
    pub object: &'static str,
    pub data: Vec<InquiryView>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
/// The one parameter of the operators' lists.
pub struct OpsListQuery {
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The node's status inquiry; `None` on a node without channels, which has no inquiries.
fn inquirer(state: &AppState) -> Result<Option<Arc<Inquirer>>, ApiError> {
    Ok(executor(state)?.inquirer().cloned())
}

/// Escalated inquiries, oldest first: requests whose outcome no inquiry has settled, each
/// still asked on the slow schedule.
#[utoipa::path(get, path = "/v1/ops/inquiries/escalated", tag = "operations",
    params(OpsListQuery),
    responses((status = 200, body = InquiryList), (status = "4XX", body = ErrorBody)))]
pub async fn list_escalated(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OpsListQuery>,
) -> Result<axum::Json<InquiryList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let Some(inquirer) = inquirer(&state)? else {
        return Ok(axum::Json(InquiryList { object: "list", data: Vec::new() }));
    };
    let tasks =
        blocking(move || inquirer.store().escalated(limit).map_err(ApiError::internal)).await?;
    Ok(axum::Json(InquiryList {
        object: "list",
        data: tasks.into_iter().map(InquiryView::from).collect(),
    }))
}

/// Have an open or escalated inquiry asked now (its next sweep, within seconds), not at its
/// scheduled time: after the bank says it is back, say. The answer, when final, reaches the
/// order as a callback would.
#[utoipa::path(post, path = "/v1/ops/inquiries/{channel}/{request_id}/ask", tag = "operations",
    params(("channel" = String, Path), ("request_id" = String, Path), IdempotencyKey),
    responses((status = 200, body = InquiryView), (status = "4XX", body = ErrorBody)))]
pub async fn ask_now(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((channel, request_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/ops/inquiries/{channel}/{request_id}/ask");
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let missing = || ApiError::not_found("inquiry");
        let channel = ChannelId::new(channel.as_str()).map_err(|_| missing())?;
        let request_id = RequestId::new(request_id.as_str()).map_err(|_| missing())?;
        let inquirer = inquirer(&state)?.ok_or_else(missing)?;
        let now_ms = state.clock.now().0 / 1_000;
        let task = blocking(move || {
            let store = inquirer.store();
            let internal = |error: channels::inquiry::InquiryError| ApiError::internal(error);
            if !store.ask_now(&channel, &request_id, now_ms).map_err(internal)? {
                return Err(missing());
            }
            store.get(&channel, &request_id).map_err(internal)?.ok_or_else(missing)
        })
        .await?;
        tracing::info!(
            channel = %task.channel, request_id = %task.request_id, by = %caller.key.id,
            "an operator had an inquiry asked now"
        );
        let subject = format!("{}/{}", task.channel, task.request_id);
        let view = to_value(InquiryView::from(task))?;
        crate::actions_api::audit(
            &state,
            &caller,
            "inquiry.ask",
            subject,
            serde_json::Value::Null,
            view.clone(),
        )
        .await?;
        Ok((StatusCode::OK, view))
    })
    .await
}

/// An order that needs an operator: unfinished past its deadline (`overdue_order`), or final
/// in a state an operator must act on (`order_exception`).
#[derive(Serialize, ToSchema)]
pub struct OverdueOrderView {
    /// `overdue_order` or `order_exception`.
    #[schema(example = "overdue_order")]
    pub object: &'static str,
    pub id: String,
    pub tenant: String,
    #[schema(value_type = crate::views::wire::OrderKind)]
    pub kind: String,
    /// The state it waits in (docs/payments.md).
    pub status: String,
    pub created_at_ms: u64,
    /// When it last moved.
    pub updated_at_ms: u64,
    /// Its own deadline (an authorisation's expiry), if it has one.
    pub deadline_ms: Option<u64>,
    /// A suspended top-up being returned to its card: the return (a card refund) and its
    /// status. A top-up whose return succeeded is no longer listed.
    pub return_order: Option<String>,
    pub return_status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OverdueOrderList {
    pub object: &'static str,
    pub data: Vec<OverdueOrderView>,
}

/// Orders unfinished past their deadline, of every tenant, the longest unmoved first: what
/// inspection (巡检) has not finished — a bank that never answered, a refund waiting for its
/// channel. The same orders make the cross-check `no_overdue_orders` fail and the fund alert
/// `overdue_orders` fire.
#[utoipa::path(get, path = "/v1/ops/orders/overdue", tag = "operations", params(OpsListQuery),
    responses((status = 200, body = OverdueOrderList), (status = "4XX", body = ErrorBody)))]
pub async fn list_overdue(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OpsListQuery>,
) -> Result<axum::Json<OverdueOrderList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let reconciler = crate::recon_api::reconciler(&state)?;
    let records = reconciler.overdue_orders(limit).await?;
    let data = records.into_iter().map(|record| order_view(record, "overdue_order")).collect();
    Ok(axum::Json(OverdueOrderList { object: "list", data }))
}

/// Final orders an operator must act on (异常单), of every tenant, oldest change first: a
/// top-up `suspended` because the wallet refused the money (it sits in suspense, to go back
/// to the card), a withdrawal or card refund `disputed` because the bank paid after the money
/// had been released (to recover). Each as `/v1/ops/orders/overdue` shows an order.
#[utoipa::path(get, path = "/v1/ops/orders/exceptions", tag = "operations",
    params(OpsListQuery),
    responses((status = 200, body = OverdueOrderList), (status = "4XX", body = ErrorBody)))]
pub async fn list_exceptions(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OpsListQuery>,
) -> Result<axum::Json<OverdueOrderList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let executor = executor(&state)?;
    let data = blocking(move || {
        let store = executor.store();
        let failed = |e| ApiError::from(ExecError::from(e));
        let mut data = Vec::new();
        for record in store.needing_operator(None, limit).map_err(failed)? {
            let returns = if record.order.kind() == payments::OrderKind::Topup {
                store.children_of(record.id()).map_err(failed)?
            } else {
                Vec::new()
            };
            // A top-up back on its card is done; a return under way is shown with it.
            if returns.iter().any(|r| r.order.status() == "succeeded") {
                continue;
            }
            let live = returns.iter().find(|r| r.order.status() != "failed");
            let (return_order, return_status) = match live {
                Some(r) => (Some(r.id().to_string()), Some(r.order.status().to_owned())),
                None => (None, None),
            };
            data.push(OverdueOrderView {
                return_order,
                return_status,
                ..order_view(record, "order_exception")
            });
        }
        Ok(data)
    })
    .await?;
    Ok(axum::Json(OverdueOrderList { object: "list", data }))
}

fn order_view(record: executor::OrderRecord, object: &'static str) -> OverdueOrderView {
    OverdueOrderView {
        object,
        id: record.id().to_string(),
        kind: record.order.kind().as_str().to_owned(),
        status: record.order.status().to_owned(),
        deadline_ms: record.order.deadline_ms(),
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
        tenant: record.tenant,
        return_order: None,
        return_status: None,
    }
}
