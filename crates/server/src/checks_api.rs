//! `/v1/recon/checks`: the internal cross-checks (业务数据核对) — our orders against our
//! ledger, wallets against their chart line, overdue orders, the journal replayed. The
//! service runs them hourly; an operator runs them now and reads past runs.
//!
//! `/v1/recon/alerts`: the fund-safety monitors' alerts (资金安全监控), firing and resolved.

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use reconciler::{CheckRun, ReconError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::recon_api::{
    recon_id, reconciler, require_platform, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX,
};
use crate::request::{blocking, limit_within};
use crate::views::{to_value, ErrorBody};
use crate::{formats, idempotency, AppState};

#[derive(Serialize, ToSchema)]
pub struct FindingView {
    /// What it is about: an order id, an asset, `journal`.
    pub subject: String,
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckResultView {
    /// `transfers_have_orders`, `succeeded_orders_booked_in_full`,
    /// `failed_orders_move_nothing`, `final_orders_hold_nothing`, `wallets_equal_their_line`,
    /// `settled_takings_are_settlements`, `suspense_holds_open_breaks`, `no_overdue_orders`,
    /// `journal_verifies`.
    pub name: String,
    pub ok: bool,
    /// What the check looked at: transfers, orders, holds, wallets, journal records.
    pub examined: u64,
    pub n_findings: u64,
    /// The first 100 findings.
    pub findings: Vec<FindingView>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckRunView {
    /// `chk_…`
    pub id: String,
    pub object: &'static str,
    /// Every check passed.
    pub ok: bool,
    pub checks: Vec<CheckResultView>,
    /// The key that ran it, or `schedule`.
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

impl From<CheckRun> for CheckRunView {
    fn from(run: CheckRun) -> CheckRunView {
        CheckRunView {
            id: run.id,
            object: "recon_check_run",
            ok: run.ok,
            checks: run
                .checks
                .into_iter()
                .map(|check| CheckResultView {
                    name: check.name,
                    ok: check.ok,
                    examined: check.examined,
                    n_findings: check.n_findings,
                    findings: check
                        .findings
                        .into_iter()
                        .map(|f| FindingView { subject: f.subject, detail: f.detail })
                        .collect(),
                })
                .collect(),
            started_by: run.started_by,
            started_at_ms: run.started_at_ms,
            finished_at_ms: run.finished_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckRunList {
    pub object: &'static str,
    pub data: Vec<CheckRunView>,
}

/// Run every cross-check now (it reads the whole journal once: seconds on large books).
#[utoipa::path(post, path = "/v1/recon/checks", tag = "reconciliation", params(IdempotencyKey),
    responses((status = 201, body = CheckRunView), (status = "4XX", body = ErrorBody)))]
pub async fn run_checks(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/recon/checks";
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        let reconciler = reconciler(&state)?;
        let run = reconciler.cross_check(&caller.key.id).await?;
        Ok((StatusCode::CREATED, to_value(CheckRunView::from(run))?))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChecksQuery {
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Cross-check runs, newest first.
#[utoipa::path(get, path = "/v1/recon/checks", tag = "reconciliation", params(ChecksQuery),
    responses((status = 200, body = CheckRunList), (status = "4XX", body = ErrorBody)))]
pub async fn list_checks(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ChecksQuery>,
) -> Result<axum::Json<CheckRunList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let reconciler = reconciler(&state)?;
    let runs =
        blocking(move || Ok(reconciler.store().check_runs(limit).map_err(ReconError::from)?))
            .await?;
    Ok(axum::Json(CheckRunList {
        object: "list",
        data: runs.into_iter().map(CheckRunView::from).collect(),
    }))
}

/// One cross-check run.
#[utoipa::path(get, path = "/v1/recon/checks/{id}", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, body = CheckRunView), (status = "4XX", body = ErrorBody)))]
pub async fn get_check(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CheckRunView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    let run = blocking(move || Ok(reconciler.store().check_run(&id).map_err(ReconError::from)?))
        .await?
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "check_not_found", "no such cross-check run")
        })?;
    Ok(axum::Json(run.into()))
}

#[derive(Serialize, ToSchema)]
pub struct AlertView {
    /// `alr_…`
    pub id: String,
    pub object: &'static str,
    #[schema(value_type = crate::views::wire::AlertRule)]
    pub rule: String,
    /// What it fires for: an asset, a channel, an account id, or `platform`.
    pub subject: String,
    /// `page` (wake someone) or `warn`.
    pub urgency: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// The latest measurement while firing, and the bound it passed (decimal strings).
    pub value: String,
    pub threshold: String,
    pub message: String,
    pub fired_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

impl From<monitors::Alert> for AlertView {
    fn from(alert: monitors::Alert) -> AlertView {
        AlertView {
            id: alert.id,
            object: "recon_alert",
            rule: alert.rule.as_str().to_owned(),
            subject: alert.subject,
            urgency: alert.urgency.as_str().to_owned(),
            state: alert.state.as_str().to_owned(),
            value: alert.value,
            threshold: alert.threshold,
            message: alert.message,
            fired_at_ms: alert.fired_at_ms,
            resolved_at_ms: alert.resolved_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub object: &'static str,
    pub data: Vec<AlertView>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// `firing` or `resolved`; both when absent.
    #[param(value_type = Option<crate::views::wire::AlertState>, nullable = false)]
    state: Option<String>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Fund-safety alerts, newest first (the service evaluates the monitors every ten seconds).
#[utoipa::path(get, path = "/v1/recon/alerts", tag = "reconciliation", params(AlertsQuery),
    responses((status = 200, body = AlertList), (status = "4XX", body = ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AlertsQuery>,
) -> Result<axum::Json<AlertList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some("firing") => Some(monitors::AlertState::Firing),
        Some("resolved") => Some(monitors::AlertState::Resolved),
        Some(other) => {
            return Err(ApiError::invalid("invalid_state", format!("no alert state {other:?}"))
                .with_param("state"))
        }
    };
    let reconciler = reconciler(&state)?;
    let alerts =
        blocking(move || Ok(reconciler.store().alerts(wanted, limit).map_err(ReconError::from)?))
            .await?;
    Ok(axum::Json(AlertList {
        object: "list",
        data: alerts.into_iter().map(AlertView::from).collect(),
    }))
}
