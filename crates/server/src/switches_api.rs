//! `/v1/ops/switches` and `/v1/ops/plans`: run-time switches (开关) and contingency plans
//! (预案), and the edge that obeys them (`obey_switches`). Platform keys only: `ops:read` to
//! read, `ops:write` to change. Every change is a new version of each switch it touches, in
//! one audited step; every node reads the switches each second, so all obey within seconds.

use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use channels::ChannelId;
use operators::switches::{plan, plans, Traffic};
use operators::{Switch, SwitchChange, SwitchError, SwitchState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actions_api::desk;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::recon_api::require_platform;
use crate::request::{blocking, checked_words, parse};
use crate::views::{to_value, ErrorBody};
use crate::{idempotency, AppState};

/// How long a refused client should wait before trying again, in seconds.
const SWITCHED_OFF_RETRY_AFTER_SECS: u64 = 30;

impl From<SwitchError> for ApiError {
    fn from(error: SwitchError) -> ApiError {
        let status = match error {
            SwitchError::UnknownChannel(_) | SwitchError::UnknownPlan(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

/// What a request is to the switches: the product of a money-moving write, a history read,
/// a bulk endpoint. Operators' own endpoints, keys, callbacks and health are never refused.
pub fn traffic(method: &Method, path: &str) -> Vec<Traffic<'static>> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let write = |product: &'static str| Traffic::Write { product };
    if *method == Method::POST {
        return match parts.as_slice() {
            ["v1", "topups"] => vec![write("topup")],
            ["v1", "withdrawals"] => vec![write("withdrawal")],
            // A capture completes a payment (money moves); a cancel only releases a hold.
            ["v1", "payments"] | ["v1", "payments", _, "capture"] => vec![write("payment")],
            ["v1", "payments", _, "refunds"] => vec![write("refund")],
            ["v1", "wallet-transfers"] => vec![write("wallet_transfer")],
            ["v1", "customers", _, "points"] => vec![write("points_grant")],
            // Posting a pending transfer moves money; voiding one only releases it.
            ["v1", "transfers"] | ["v1", "transfers", _, "post"] => vec![write("transfer")],
            ["v1", "merchants", _, "settlements"] => vec![write("settlement")],
            ["v1", "transfers", "batch"] => vec![Traffic::Bulk, write("transfer")],
            ["v1", "merchants", _, "payout-batches"] => {
                vec![Traffic::Bulk, write("payout_batch")]
            }
            ["v1", "recon", "statements"] => vec![Traffic::Bulk],
            _ => Vec::new(),
        };
    }
    if *method == Method::GET {
        return match parts.as_slice() {
            ["v1", "orders"]
            | ["v1", "events"]
            | ["v1", "accounts", _, "entries"]
            | ["v1", "webhook-deliveries"] => vec![Traffic::HistoryRead],
            ["v1", "recon", "days", _, file] if file.ends_with(".csv") => vec![Traffic::Bulk],
            _ => Vec::new(),
        };
    }
    Vec::new()
}

/// Refuses what a switch turns off: 503 `switched_off` (a kill switch) or `degraded` (a
/// degradation), with `Retry-After`, before the request reaches its handler.
pub async fn obey_switches(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let now_ms = state.clock.now().0 / 1_000;
    for asked in traffic(request.method(), request.uri().path()) {
        if let Some(refusal) = state.switches.refuses(asked, now_ms) {
            let mut error = ApiError::unavailable(
                refusal.code,
                format!("turned off by the operators' switch {}; retry later", refusal.switch),
            );
            error.retry_after_secs = Some(SWITCHED_OFF_RETRY_AFTER_SECS);
            return error.into_response();
        }
    }
    next.run(request).await
}

/// A switch, as a request names it.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "switch", rename_all = "snake_case", deny_unknown_fields)]
pub enum SwitchBody {
    /// Kill: refuse every new money-moving request.
    KillAll {},
    /// Kill: refuse new requests of one product.
    KillProduct {
        #[schema(value_type = ProductName)]
        product: String,
    },
    /// Kill: refuse new payments to one merchant of a tenant, its payout batches and
    /// settlements (refunds to its customers still go).
    KillMerchant {
        #[schema(value_type = formats::TenantName)]
        tenant: String,
        #[schema(value_type = formats::PartyId)]
        merchant: String,
    },
    /// Degrade: list and history reads answer 503 `degraded`.
    HistoryReadsOff {},
    /// Degrade: bulk endpoints (ledger batches, payout batches, statement uploads, CSV
    /// exports) answer 503 `degraded`.
    BulkOff {},
    /// Degrade: the hourly settlement run is skipped.
    SettlementPaused {},
    /// Degrade: webhook deliveries wait (kept, and sent once this is off).
    WebhooksDelayed {},
    /// Degrade: no payout is sent to this channel (others take them).
    PayoutsFrozen {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: the channel takes no new request.
    ChannelDisabled {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: the channel is preferred over every unpinned one.
    ChannelPinned {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: the channel's routing score times `value` / 1000.
    ChannelWeight {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: routing weighs this fee rate for the channel (`value`: per 10,000, 1 to
    /// 10,000) instead of its configured one.
    ChannelFee {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: the channel's breaker opens at `value` errors per thousand calls (1 to 1,000)
    /// instead of its configured threshold.
    ChannelBreakerErrors {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Route: at most `value` calls a second go to the channel (1 to 100,000) instead of
    /// its configured limit.
    ChannelRateLimit {
        #[schema(value_type = formats::ChannelName)]
        channel: String,
    },
    /// Hold: pause one order. Nothing new is sent to a channel for it (no first send, retry
    /// or failover); what is under way completes, a bank's answer is still taken and
    /// status inquiry keeps asking. Off, the order resumes at the next inspection.
    OrderHeld {
        #[schema(value_type = formats::OrderId)]
        order: String,
    },
}

/// The products a kill switch can name.
#[derive(ToSchema)]
#[allow(dead_code)] // the document's enum of `operators::switches::PRODUCTS`, tied by a test
#[schema(rename_all = "snake_case")]
pub enum ProductName {
    Topup,
    Withdrawal,
    Payment,
    Refund,
    PayoutBatch,
    Settlement,
    WalletTransfer,
    PointsGrant,
    Transfer,
}

fn channel_of(state: &AppState, raw: &str) -> Result<ChannelId, ApiError> {
    let channel = ChannelId::new(raw).map_err(|_| {
        ApiError::invalid("invalid_channel", "a channel is 1 to 32 of A-Z a-z 0-9 _ . : -")
            .with_param("channel")
    })?;
    let known = state
        .payments
        .as_ref()
        .and_then(|executor| executor.gateway())
        .is_some_and(|gateway| gateway.channel_ids().contains(&channel));
    if known {
        Ok(channel)
    } else {
        Err(SwitchError::UnknownChannel(channel.to_string()).into())
    }
}

impl SwitchBody {
    fn switch(self, state: &AppState) -> Result<Switch, ApiError> {
        Ok(match self {
            SwitchBody::KillAll {} => Switch::KillAll,
            SwitchBody::KillProduct { product } => Switch::KillProduct { product },
            SwitchBody::KillMerchant { tenant, merchant } => {
                access::TenantId::new(&tenant).map_err(|e| {
                    ApiError::invalid("invalid_tenant", e.to_string()).with_param("tenant")
                })?;
                let ok = !merchant.is_empty()
                    && merchant.len() <= 64
                    && merchant.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    return Err(ApiError::invalid(
                        "invalid_merchant",
                        "a merchant id of 1 to 64 of [A-Za-z0-9_.-]",
                    )
                    .with_param("merchant"));
                }
                Switch::KillMerchant { tenant, merchant }
            }
            SwitchBody::HistoryReadsOff {} => Switch::HistoryReadsOff,
            SwitchBody::BulkOff {} => Switch::BulkOff,
            SwitchBody::SettlementPaused {} => Switch::SettlementPaused,
            SwitchBody::WebhooksDelayed {} => Switch::WebhooksDelayed,
            SwitchBody::PayoutsFrozen { channel } => {
                Switch::PayoutsFrozen { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelDisabled { channel } => {
                Switch::ChannelDisabled { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelPinned { channel } => {
                Switch::ChannelPinned { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelWeight { channel } => {
                Switch::ChannelWeight { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelFee { channel } => {
                Switch::ChannelFee { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelBreakerErrors { channel } => {
                Switch::ChannelBreakerErrors { channel: channel_of(state, &channel)? }
            }
            SwitchBody::ChannelRateLimit { channel } => {
                Switch::ChannelRateLimit { channel: channel_of(state, &channel)? }
            }
            SwitchBody::OrderHeld { order } => {
                let id = payments::OrderId::new(order.as_str()).map_err(|_| {
                    ApiError::invalid("invalid_order_id", "an order's id: 1 to 48 of [A-Za-z0-9_-]")
                        .with_param("order")
                })?;
                Switch::OrderHeld { order: id.to_string() }
            }
        })
    }
}

/// A switch's current version.
#[derive(Serialize, ToSchema)]
pub struct SwitchView {
    #[schema(example = "switch")]
    pub object: &'static str,
    /// Its stable name: `kill/all`, `kill/product:topup`, `degrade/bulk`,
    /// `route/disabled:bank_a`…
    pub key: String,
    /// `kill`, `degrade`, `route` or `hold`.
    pub kind: &'static str,
    /// The switch as a request names it (`{"switch": "kill_product", "product": "topup"}`).
    #[schema(value_type = Object)]
    pub target: serde_json::Value,
    /// As last set.
    pub on: bool,
    /// On and not past its expiry: what the service obeys now.
    pub in_force: bool,
    /// A channel weight's permille.
    pub value: Option<u32>,
    pub expires_at_ms: Option<u64>,
    pub version: u64,
    pub set_by: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// The plan that set it, if one did.
    pub plan: Option<String>,
    pub set_at_ms: u64,
}

fn switch_view(state: SwitchState, now_ms: u64) -> SwitchView {
    let target = match serde_json::to_value(&state.switch) {
        Ok(value) => value,
        Err(error) => unreachable!("a switch is plain data: {error}"),
    };
    SwitchView {
        object: "switch",
        key: state.switch.key(),
        kind: state.switch.kind(),
        in_force: state.is_on_at(now_ms),
        target,
        on: state.on,
        value: state.value,
        expires_at_ms: state.expires_at_ms,
        version: state.version,
        set_by: state.set_by,
        reason: state.reason,
        ticket: state.ticket,
        plan: state.plan,
        set_at_ms: state.set_at_ms,
    }
}

#[derive(Serialize, ToSchema)]
pub struct SwitchList {
    pub object: &'static str,
    pub data: Vec<SwitchView>,
}

fn now_ms(state: &AppState) -> u64 {
    state.clock.now().0 / 1_000
}

/// Every switch ever set, at its current version (`in_force`: obeyed now).
#[utoipa::path(get, path = "/v1/ops/switches", tag = "operations",
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn list_switches(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<SwitchList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let desk = desk(&state)?;
    let board = blocking(move || Ok(desk.board()?)).await?;
    let now_ms = now_ms(&state);
    Ok(axum::Json(SwitchList {
        object: "list",
        data: board.switches().iter().cloned().map(|s| switch_view(s, now_ms)).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// The switch's key (`kill/product:topup`).
    key: String,
}

/// A switch's versions, newest first (at most 100).
#[utoipa::path(get, path = "/v1/ops/switches/versions", tag = "operations", params(VersionsQuery),
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn switch_versions(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<VersionsQuery>,
) -> Result<axum::Json<SwitchList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let desk = desk(&state)?;
    let versions = blocking(move || Ok(desk.switch_versions(&query.key, 100)?)).await?;
    let now_ms = now_ms(&state);
    Ok(axum::Json(SwitchList {
        object: "list",
        data: versions.into_iter().map(|s| switch_view(s, now_ms)).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSwitchBody {
    target: SwitchBody,
    on: bool,
    /// A channel weight's permille (1 to 100,000; 1,000 is neutral); a channel fee's rate per
    /// 10,000 (1 to 10,000); a breaker's error threshold per thousand calls (1 to 1,000); a
    /// channel's rate limit in calls a second (1 to 100,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    value: Option<u32>,
    /// Turn it back off after this long (milliseconds); none: until changed.
    #[serde(default)]
    #[schema(minimum = 1)]
    expires_in_ms: Option<u64>,
    #[schema(value_type = formats::Reason)]
    reason: String,
    #[serde(default)]
    #[schema(value_type = Option<formats::Ticket>)]
    ticket: Option<String>,
    /// The version of the switch you saw (0: never set): 409 `switch_contended` if it is at
    /// another, so no one overwrites a change they have not seen. None: no check.
    #[serde(default)]
    expected_version: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackSwitchBody {
    target: SwitchBody,
    /// The version of the switch you saw: 409 `switch_contended` if it is at another.
    #[serde(default)]
    expected_version: Option<u64>,
    #[schema(value_type = formats::Reason)]
    reason: String,
    #[serde(default)]
    #[schema(value_type = Option<formats::Ticket>)]
    ticket: Option<String>,
}

/// What the document states of `value` and `expires_in_ms`: 400 otherwise.
fn checked_numbers(value: Option<u32>, expires_in_ms: Option<u64>) -> Result<(), ApiError> {
    if value.is_some_and(|permille| !(1..=100_000).contains(&permille)) {
        return Err(ApiError::invalid("invalid_value", "a weight is 1 to 100000 permille")
            .with_param("value"));
    }
    if expires_in_ms == Some(0) {
        return Err(ApiError::invalid("invalid_expiry", "expires_in_ms is above zero")
            .with_param("expires_in_ms"));
    }
    Ok(())
}

/// After a change here: this node obeys at once (the others within a second).
async fn refresh(state: &AppState) -> Result<(), ApiError> {
    let desk = desk(state)?;
    let board = blocking(move || Ok(desk.board()?)).await?;
    state.switches.set(board);
    Ok(())
}

async fn answer(
    state: &AppState,
    states: Vec<SwitchState>,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    refresh(state).await?;
    let now_ms = now_ms(state);
    let data = states.into_iter().map(|s| switch_view(s, now_ms)).collect();
    Ok((StatusCode::OK, to_value(SwitchList { object: "list", data })?))
}

/// Set a switch on or off (a new version; `expires_in_ms` turns it back off by itself).
/// Kill: new requests of its scope get 503 `switched_off` with `Retry-After`. Degrade and
/// route: see each switch. Answers the switch's new version (a list of one).
#[utoipa::path(post, path = "/v1/ops/switches", tag = "operations", request_body = SetSwitchBody,
    params(IdempotencyKey),
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn set_switch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, "POST /v1/ops/switches", &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let request: SetSwitchBody = parse(&body)?;
        checked_words(&request.reason, request.ticket.as_deref())?;
        checked_numbers(request.value, request.expires_in_ms)?;
        let switch = request.target.switch(&state)?;
        let change = SwitchChange {
            switch,
            on: request.on,
            value: request.value,
            expected_version: request.expected_version,
        };
        let desk = desk(&state)?;
        let actor = caller.key.id.to_string();
        let states = blocking(move || {
            let subject = change.switch.key();
            Ok(desk.set_switches(
                &actor,
                "switch.set",
                &subject,
                &[change],
                request.expires_in_ms,
                &request.reason,
                request.ticket.as_deref(),
                None,
            )?)
        })
        .await?;
        tracing::warn!(switch = %states[0].switch.key(), on = states[0].on, by = %caller.key.id, "switch set");
        answer(&state, states).await
    })
    .await
}

/// Set a switch back to its previous version (off, if it was set only once), as its next
/// version.
#[utoipa::path(post, path = "/v1/ops/switches/rollback", tag = "operations",
    request_body = RollbackSwitchBody, params(IdempotencyKey),
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn rollback_switch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/ops/switches/rollback";
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, route, &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let request: RollbackSwitchBody = parse(&body)?;
        checked_words(&request.reason, request.ticket.as_deref())?;
        let switch = request.target.switch(&state)?;
        let desk = desk(&state)?;
        let actor = caller.key.id.to_string();
        let states = blocking(move || {
            let subject = switch.key();
            Ok(desk.rollback_switches(
                &actor,
                "switch.rollback",
                &subject,
                &[(switch, request.expected_version)],
                &request.reason,
                request.ticket.as_deref(),
                None,
            )?)
        })
        .await?;
        answer(&state, states).await
    })
    .await
}

/// A contingency plan.
#[derive(Serialize, ToSchema)]
pub struct PlanView {
    #[schema(example = "plan")]
    pub object: &'static str,
    /// `channel_down`, `inquiry_backlog`, `database_slow`, `recon_shortfall`.
    pub name: &'static str,
    pub description: &'static str,
    /// The alert that calls for it.
    pub alert: &'static str,
    /// Run for one channel (`channel` in the request).
    pub per_channel: bool,
    /// The switches it turns on (for the channel asked, or `<channel>`).
    pub switches: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PlanList {
    pub object: &'static str,
    pub data: Vec<PlanView>,
}

/// The shipped contingency plans (预案), each a named set of switch changes.
#[utoipa::path(get, path = "/v1/ops/plans", tag = "operations",
    responses((status = 200, body = PlanList), (status = "4XX", body = ErrorBody)))]
pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<PlanList>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let placeholder = ChannelId::new("channel").map_err(ApiError::internal)?;
    let data = plans(Some(&placeholder))
        .into_iter()
        .map(|plan| PlanView {
            object: "plan",
            name: plan.name,
            description: plan.description,
            alert: plan.alert,
            per_channel: plan.per_channel,
            switches: plan
                .changes
                .iter()
                .map(|change| change.switch.key().replace(":channel", ":<channel>"))
                .collect(),
        })
        .collect();
    Ok(axum::Json(PlanList { object: "list", data }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// For a per-channel plan: the channel.
    #[serde(default)]
    #[schema(value_type = Option<formats::ChannelName>)]
    channel: Option<String>,
    /// Run: turn the plan's switches back off after this long (milliseconds).
    #[serde(default)]
    #[schema(minimum = 1)]
    expires_in_ms: Option<u64>,
    #[schema(value_type = formats::Reason)]
    reason: String,
    #[serde(default)]
    #[schema(value_type = Option<formats::Ticket>)]
    ticket: Option<String>,
}

/// Run a plan: every switch of it on, in one audited step. Answers the switches' new
/// versions.
#[utoipa::path(post, path = "/v1/ops/plans/{name}/run", tag = "operations", request_body = PlanBody,
    params(("name" = String, Path), IdempotencyKey),
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn run_plan(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    plan_step(state, caller, headers, name, body, true).await
}

/// Roll a plan back: every switch of it to its previous version, in one audited step.
#[utoipa::path(post, path = "/v1/ops/plans/{name}/rollback", tag = "operations",
    request_body = PlanBody, params(("name" = String, Path), IdempotencyKey),
    responses((status = 200, body = SwitchList), (status = "4XX", body = ErrorBody)))]
pub async fn rollback_plan(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    plan_step(state, caller, headers, name, body, false).await
}

async fn plan_step(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    name: String,
    body: Bytes,
    run: bool,
) -> Response {
    let route = format!("POST /v1/ops/plans/{name}/{}", if run { "run" } else { "rollback" });
    idempotency::once(&state, &caller, Scope::OpsWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::OpsWrite)?;
        let request: PlanBody = parse(&body)?;
        checked_words(&request.reason, request.ticket.as_deref())?;
        checked_numbers(None, request.expires_in_ms)?;
        let channel = request.channel.as_deref().map(|raw| channel_of(&state, raw)).transpose()?;
        let plan = plan(&name, channel.as_ref())?;
        let subject = match &channel {
            Some(channel) => format!("{}:{channel}", plan.name),
            None => plan.name.to_owned(),
        };
        let desk: Arc<operators::Desk> = desk(&state)?;
        let actor = caller.key.id.to_string();
        let states = blocking(move || {
            let ticket = request.ticket.as_deref();
            Ok(if run {
                desk.set_switches(
                    &actor,
                    "plan.run",
                    &subject,
                    &plan.changes,
                    request.expires_in_ms,
                    &request.reason,
                    ticket,
                    Some(plan.name),
                )?
            } else {
                let switches: Vec<(Switch, Option<u64>)> =
                    plan.changes.iter().map(|change| (change.switch.clone(), None)).collect();
                desk.rollback_switches(
                    &actor,
                    "plan.rollback",
                    &subject,
                    &switches,
                    &request.reason,
                    ticket,
                    Some(plan.name),
                )?
            })
        })
        .await?;
        tracing::warn!(plan = %name, run, by = %caller.key.id, "contingency plan");
        answer(&state, states).await
    })
    .await
}

/// The switches in force, for `/metrics`: `qianbao_switch_in_force{switch="…"} 1`.
pub fn render_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write;
    let now_ms = now_ms(state);
    let board = state.switches.get();
    let _ = writeln!(
        out,
        "# HELP qianbao_switch_in_force Whether an operators' switch is in force (1) or not (0)."
    );
    let _ = writeln!(out, "# TYPE qianbao_switch_in_force gauge");
    for switch in board.switches() {
        let _ = writeln!(
            out,
            "qianbao_switch_in_force{{switch=\"{}\"}} {}",
            switch.switch.key(),
            u8::from(switch.is_on_at(now_ms))
        );
    }
}

#[cfg(test)]
mod tests {
    use operators::switches::PRODUCTS;

    use super::*;

    #[test]
    fn the_product_names_in_the_document_are_the_products() {
        let document =
            serde_json::to_value(<ProductName as utoipa::PartialSchema>::schema()).expect("schema");
        let names: Vec<String> = document["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect();
        assert_eq!(names, PRODUCTS);
    }

    #[test]
    fn requests_are_classified_for_the_switches() {
        let write = |product| vec![Traffic::Write { product }];
        assert_eq!(traffic(&Method::POST, "/v1/topups"), write("topup"));
        assert_eq!(traffic(&Method::POST, "/v1/payments/pay_1/refunds"), write("refund"));
        assert_eq!(traffic(&Method::POST, "/v1/payments/pay_1/cancel"), vec![], "releases only");
        assert_eq!(traffic(&Method::POST, "/v1/payments/pay_1/capture"), write("payment"));
        assert_eq!(traffic(&Method::POST, "/v1/transfers/7/post"), write("transfer"));
        assert_eq!(traffic(&Method::POST, "/v1/transfers/7/void"), vec![], "releases only");
        assert_eq!(traffic(&Method::POST, "/v1/merchants/shop/settlements"), write("settlement"));
        assert_eq!(
            traffic(&Method::POST, "/v1/merchants/m/payout-batches"),
            vec![Traffic::Bulk, Traffic::Write { product: "payout_batch" }]
        );
        assert_eq!(traffic(&Method::GET, "/v1/orders"), vec![Traffic::HistoryRead]);
        assert_eq!(traffic(&Method::GET, "/v1/orders/top_1"), vec![], "one order is not history");
        assert_eq!(
            traffic(&Method::GET, "/v1/recon/days/2026-12-06/merchants.csv"),
            vec![Traffic::Bulk]
        );
        // Operators' own endpoints, callbacks and health are never switched off.
        for path in ["/v1/ops/switches", "/v1/ops/switches/rollback", "/channel-callbacks/bank_a"] {
            assert_eq!(traffic(&Method::POST, path), vec![]);
        }
        assert_eq!(traffic(&Method::GET, "/healthz"), vec![]);
    }
}
