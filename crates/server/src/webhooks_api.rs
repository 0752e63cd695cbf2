//! `/v1` webhook endpoints and the delivery log. Every order event of the tenant goes to each
//! of its enabled endpoints, signed with the endpoint's secret (`Qianbao-Signature`, see
//! docs/api.md), retried with backoff; a failed delivery can be sent again by hand.

use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use webhooks::egress::{self, EgressPolicy};
use webhooks::{Delivery, DeliveryState, Endpoint, WebhookStore, WebhookStoreError};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::payments_api::not_for_merchant_keys;
use crate::request::{limit_within, parse};
use crate::views::{to_value, ErrorBody};
use crate::{idempotency, AppState};

/// The longest webhook URL, in characters (as JSON Schema's `maxLength` counts them).
pub const URL_LEN_MAX: usize = 2_048;
/// Endpoints per tenant at most.
pub const ENDPOINTS_MAX: usize = 16;

impl From<WebhookStoreError> for ApiError {
    fn from(error: WebhookStoreError) -> ApiError {
        ApiError::internal(error)
    }
}

fn store(state: &AppState) -> Result<Arc<dyn WebhookStore>, ApiError> {
    state.webhooks.clone().ok_or_else(|| {
        ApiError::unavailable("webhooks_disabled", "this node does not deliver webhooks")
    })
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).map_err(ApiError::internal)?;
    Ok(hex::encode(raw))
}

fn now_ms(state: &AppState) -> u64 {
    state.clock.now().0 / 1_000
}

#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    /// `we_…`
    pub id: String,
    pub object: &'static str,
    pub url: String,
    /// Only in the answer that creates the endpoint: keep it to verify signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub enabled: bool,
    pub created_at_ms: u64,
}

impl EndpointView {
    fn of(endpoint: Endpoint, with_secret: bool) -> EndpointView {
        EndpointView {
            id: endpoint.id,
            object: "webhook_endpoint",
            url: endpoint.url,
            secret: with_secret.then_some(endpoint.secret),
            enabled: endpoint.enabled,
            created_at_ms: endpoint.created_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub object: &'static str,
    pub data: Vec<EndpointView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// `whd_<event seq>_<endpoint id>`
    pub id: String,
    pub endpoint_id: String,
    /// The event's id as receivers see it (`evt_<seq>`): the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    pub order_id: String,
    #[schema(value_type = crate::views::wire::DeliveryState)]
    pub state: String,
    pub attempts: u32,
    pub next_at_ms: u64,
    /// The last attempt's HTTP status; 0 when the endpoint did not answer.
    pub last_status: u16,
    pub last_error: String,
    pub updated_at_ms: u64,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> DeliveryView {
        DeliveryView {
            id: delivery.id,
            endpoint_id: delivery.endpoint_id,
            event_id: format!("evt_{}", delivery.event_seq),
            event_type: delivery.event_type,
            order_id: delivery.order_id,
            state: delivery.state.as_str().to_owned(),
            attempts: delivery.attempts,
            next_at_ms: delivery.next_at_ms,
            last_status: delivery.last_status,
            last_error: delivery.last_error,
            updated_at_ms: delivery.updated_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub object: &'static str,
    pub data: Vec<DeliveryView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// `http://` or `https://` and no whitespace, at most 2,048 characters. This node may
    /// refuse loopback, private and link-local hosts (422 `url_not_allowed`).
    #[schema(value_type = formats::WebhookUrl)]
    url: String,
}

/// Register a webhook endpoint; the answer holds its signing secret, once.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", request_body = EndpointRequest,
    params(IdempotencyKey),
    responses((status = 201, body = EndpointView), (status = "4XX", body = ErrorBody)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(
        &state,
        &caller,
        Scope::LedgerWrite,
        &headers,
        "POST /v1/webhook-endpoints",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: EndpointRequest = parse(&body)?;
            // What the document states (scheme, a non-empty authority, length, no
            // whitespace) is a 400; a URL of that shape whose host the delivery client's own
            // parser refuses is a 422, as no schema can state what parses.
            let shaped = ["http://", "https://"]
                .iter()
                .filter_map(|scheme| request.url.strip_prefix(scheme))
                .next()
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with(['/', '?', '#']))
                && request.url.chars().count() <= URL_LEN_MAX
                && !request.url.chars().any(char::is_whitespace);
            if !shaped {
                return Err(ApiError::invalid(
                    "invalid_url",
                    "an http:// or https:// URL with a host, of at most 2,048 characters, \
                     without whitespace",
                )
                .with_param("url"));
            }
            // Parsed as the delivery client parses it, so the host judged here is the host it
            // would connect to, however it is spelled (`2130706433`, `127.1`, `0x7f…`).
            let url = egress::parse_url(&request.url).map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "url_unparseable",
                    "the URL's host or port does not parse as a URL parser reads it",
                )
                .with_param("url")
            })?;
            // An address host is judged now; a DNS name only at delivery, where the
            // deliverer checks each answer it connects to (an answer can change later).
            // Well-formed, refused by this node's policy (no schema can list the
            // non-public networks): 422, not 400.
            let egress = EgressPolicy { allow_private: state.webhook_private_urls };
            if egress.check_url(&url).is_err() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "url_not_allowed",
                    "webhook URLs may not name localhost or a loopback, private, link-local or \
                     other non-public address",
                )
                .with_param("url"));
            }
            let store = store(&state)?;
            let tenant = caller.tenant().as_str().to_owned();
            if store.endpoints(&tenant)?.iter().filter(|e| e.enabled).count() >= ENDPOINTS_MAX {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "too_many_endpoints",
                    format!("at most {ENDPOINTS_MAX} enabled endpoints"),
                ));
            }
            let endpoint = Endpoint {
                id: format!("we_{}", random_hex(8)?),
                tenant,
                url: request.url,
                secret: format!("whsec_{}", random_hex(24)?),
                enabled: true,
                created_at_ms: now_ms(&state),
            };
            store.create_endpoint(&endpoint)?;
            Ok((StatusCode::CREATED, to_value(EndpointView::of(endpoint, true))?))
        },
    )
    .await
}

/// The tenant's webhook endpoints (without secrets).
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks",
    responses((status = 200, body = EndpointList), (status = "4XX", body = ErrorBody)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<EndpointList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    not_for_merchant_keys(&caller)?;
    let endpoints = store(&state)?.endpoints(caller.tenant().as_str())?;
    let data = endpoints.into_iter().map(|e| EndpointView::of(e, false)).collect();
    Ok(axum::Json(EndpointList { object: "list", data }))
}

/// Disable an endpoint: it gets no new events (deliveries already made stay in the log).
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn disable_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    caller.require(Scope::LedgerWrite)?;
    not_for_merchant_keys(&caller)?;
    if !store(&state)?.disable_endpoint(caller.tenant().as_str(), &id)? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    Ok(axum::Json(serde_json::json!({ "id": id, "object": "webhook_endpoint", "enabled": false })))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// An endpoint's id; any other matches nothing.
    #[param(nullable = false)]
    endpoint: Option<String>,
    #[param(value_type = Option<crate::views::wire::DeliveryState>, nullable = false)]
    state: Option<String>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The delivery log, newest event first.
#[utoipa::path(get, path = "/v1/webhook-deliveries", tag = "webhooks", params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = "4XX", body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DeliveryQuery>,
) -> Result<axum::Json<DeliveryList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    not_for_merchant_keys(&caller)?;
    let limit = limit_within(query.limit, 50, 500)?;
    let delivery_state = match &query.state {
        Some(raw) => Some(DeliveryState::parse(raw).ok_or_else(|| {
            ApiError::invalid("invalid_state", "state is pending, delivered or failed")
                .with_param("state")
        })?),
        None => None,
    };
    let deliveries = store(&state)?.deliveries(
        caller.tenant().as_str(),
        query.endpoint.as_deref(),
        delivery_state,
        limit,
    )?;
    Ok(axum::Json(DeliveryList {
        object: "list",
        data: deliveries.into_iter().map(Into::into).collect(),
    }))
}

/// Send a delivery again now (any state): for a receiver that was down past the retries.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/retry", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    caller.require(Scope::LedgerWrite)?;
    not_for_merchant_keys(&caller)?;
    if !store(&state)?.redeliver(caller.tenant().as_str(), &id, now_ms(&state))? {
        return Err(ApiError::not_found("webhook delivery"));
    }
    Ok(axum::Json(serde_json::json!({ "id": id, "state": "pending" })))
}
