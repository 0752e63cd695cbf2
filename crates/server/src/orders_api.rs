//! `/v1/orders` and `/v1/events`: every order of the caller's tenant (a merchant's key: its
//! merchant's only) and the outbox of their final states; the inspection pass (巡检) on
//! demand; and channels' signed callbacks.

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use executor::{party_key, ExecError, OrderQuery};
use payments::{OrderId, OrderKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::payments_api::{
    executor, own_order, view, OrderView, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX,
};
use crate::request::limit_within;
use crate::views::ErrorBody;
use crate::{formats, AppState};

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<OrderView>,
    /// Pass the last id as `starting_after` for the next page.
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// Increasing per tenant; pass the last one as `after` to read on.
    pub seq: u64,
    /// `payment.succeeded`, `refund.failed`, `withdrawal.succeeded`, …
    #[serde(rename = "type")]
    pub event_type: String,
    pub order_id: String,
    pub data: OrderView,
    pub created_at_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<EventView>,
}

// ---- orders and events ---------------------------------------------------------------------

/// One order of any kind.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "payments",
    params(("id" = formats::OrderId, Path)),
    responses((status = 200, body = OrderView), (status = "4XX", body = ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    Ok(axum::Json(view(&state, &own_order(&state, &caller, &id)?)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    #[param(value_type = Option<crate::views::wire::OrderKind>, nullable = false)]
    kind: Option<String>,
    /// A state of the order's kind (docs/payments.md); any other matches nothing.
    #[param(nullable = false)]
    status: Option<String>,
    /// A customer's id; any other matches nothing.
    #[param(nullable = false)]
    customer: Option<String>,
    /// A merchant's id; any other matches nothing.
    #[param(nullable = false)]
    merchant: Option<String>,
    /// Created at or after this (milliseconds since the epoch).
    #[param(nullable = false, maximum = 18446744073709551615u64)]
    created_from_ms: Option<u64>,
    /// Created before this.
    #[param(nullable = false, maximum = 18446744073709551615u64)]
    created_to_ms: Option<u64>,
    /// The last order id of the previous page (404 `order_not_found` if no order of yours).
    #[param(value_type = Option<formats::OrderId>, nullable = false)]
    starting_after: Option<String>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The tenant's orders, newest first, filtered.
#[utoipa::path(get, path = "/v1/orders", tag = "payments", params(OrderListQuery),
    responses((status = 200, body = OrderList), (status = "4XX", body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OrderListQuery>,
) -> Result<axum::Json<OrderList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let executor = executor(&state)?;
    let tenant = caller.tenant().as_str();
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let kind = match &query.kind {
        Some(raw) => Some(OrderKind::parse(raw).ok_or_else(|| {
            ApiError::invalid("invalid_kind", format!("no order kind {raw:?}")).with_param("kind")
        })?),
        None => None,
    };
    let before = match &query.starting_after {
        Some(id) => {
            // A malformed cursor breaks the schema (400); a well-formed one that names no
            // order of the caller's is a 404, as for `GET /v1/orders/{id}`.
            OrderId::new(id.as_str()).map_err(|_| {
                ApiError::invalid("invalid_cursor", "starting_after must be an order id")
                    .with_param("starting_after")
            })?;
            let after =
                own_order(&state, &caller, id).map_err(|e| e.with_param("starting_after"))?;
            Some((after.created_at_ms, after.id().clone()))
        }
        None => None,
    };
    let mut records = executor
        .store()
        .list(&OrderQuery {
            tenant: tenant.to_owned(),
            kind,
            status: query.status,
            customer: query.customer.map(|id| party_key(tenant, &id)),
            // A merchant's key lists its own merchant's orders, whatever it asks.
            merchant: caller
                .merchant()
                .map(str::to_owned)
                .or(query.merchant)
                .map(|id| party_key(tenant, &id)),
            created_from_ms: query.created_from_ms,
            created_to_ms: query.created_to_ms,
            before,
            limit: limit + 1,
        })
        .map_err(ExecError::from)?;
    let has_more = records.len() > limit;
    records.truncate(limit);
    let data = records.iter().map(|record| view(&state, record)).collect::<Vec<_>>();
    Ok(axum::Json(OrderList { object: "list", data, has_more }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events after this sequence number (default 0: from the start).
    #[param(nullable = false, maximum = 18446744073709551615u64)]
    after: Option<u64>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The tenant's order events (the outbox), oldest first: each final state of each order,
/// written in the same transaction as the state.
#[utoipa::path(get, path = "/v1/events", tag = "payments", params(EventQuery),
    responses((status = 200, body = EventList), (status = "4XX", body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventQuery>,
) -> Result<axum::Json<EventList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let events = executor(&state)?
        .store()
        .events(caller.tenant().as_str(), query.after.unwrap_or(0), limit)
        .map_err(ExecError::from)?;
    // A merchant's key reads its merchant's events only (a page may then hold fewer).
    let own = caller.merchant().map(str::to_owned);
    let events = events.into_iter().filter(|event| match &own {
        None => true,
        Some(own) => event.payload.get("merchant").and_then(|m| m.as_str()) == Some(own.as_str()),
    });
    let data = events
        .into_iter()
        .map(|event| {
            Ok(EventView {
                seq: event.seq,
                event_type: event.event_type,
                order_id: event.order_id.to_string(),
                data: serde_json::from_value(event.payload).map_err(ApiError::internal)?,
                created_at_ms: event.created_at_ms,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(axum::Json(EventList { object: "list", data }))
}

/// Run one inspection pass now (admin): resume every unfinished order that has not moved
/// for a while, and count those past their deadline.
#[utoipa::path(post, path = "/v1/inspection", tag = "payments",
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn run_inspection(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(error) = caller.require(Scope::Admin) {
        return error.into_response();
    }
    match executor(&state) {
        Ok(executor) => axum::Json(executor.inspect(10_000).await).into_response(),
        Err(error) => error.into_response(),
    }
}

/// A channel's asynchronous result (no API key: the channel's own signature authenticates
/// it). Any 2xx tells the channel it arrived; duplicates are harmless.
#[utoipa::path(post, path = "/channel-callbacks/{channel}", tag = "payments",
    params(("channel" = String, Path)),
    security(()),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn channel_callback(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    executor(&state)?.on_callback(&channel, &headers, &body).await?;
    Ok(axum::Json(serde_json::json!({ "received": true })))
}
