//! `/v1/recon`: reconciliation (对账) for the platform's operators — channel statements
//! (uploaded or fetched), runs against our orders, and the loss register (损失核算) with its
//! report. Breaks and their resolution are in [`crate::breaks_api`].
//!
//! Reconciliation works on the platform's own books (clearing, suspense, losses), not a
//! tenant's: it needs a `recon:*` scope (or `admin`), which only keys of the platform tenant
//! can hold, so no tenant sees another's money through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use recon::BusinessDay;
use reconciler::{
    DayQuery, LossRecord, PutStatement, ReconError, Reconciler, RunRecord, StatementRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::request::{blocking, limit_within, parse};
use crate::views::{to_value, ErrorBody};
use crate::{formats, idempotency, AppState};

/// Items per page of the reconciliation listings when the caller does not say, and at most.
pub const PAGE_LIMIT_DEFAULT: usize = 50;
pub const PAGE_LIMIT_MAX: usize = 500;

/// The longest statement an operator uploads through the API, in characters (the request
/// body's own bound, 4 MiB, applies first; larger files come from the channel itself).
pub const CONTENT_LEN_MAX: usize = 4_000_000;

impl From<ReconError> for ApiError {
    fn from(error: ReconError) -> ApiError {
        let code = error.code();
        let message = error.to_string();
        let status = match &error {
            ReconError::Statement(_)
            | ReconError::Resolution(_)
            | ReconError::RecoveryExceedsLoss { .. }
            | ReconError::CustomerNeeded => StatusCode::UNPROCESSABLE_ENTITY,
            ReconError::ChannelNotFound(_)
            | ReconError::NoStatement { .. }
            | ReconError::BreakNotFound(_)
            | ReconError::LossNotFound(_)
            | ReconError::DayNotClosed { .. } => StatusCode::NOT_FOUND,
            ReconError::BreakState { .. }
            | ReconError::Contended
            | ReconError::DayNotOver { .. }
            | ReconError::DayOrder { .. } => StatusCode::CONFLICT,
            ReconError::ApproverIsMaker => StatusCode::FORBIDDEN,
            ReconError::ChannelUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ReconError::Store(_) | ReconError::Orders(_) | ReconError::Ledger(_) => {
                tracing::error!(%error, "reconciliation unavailable");
                return ApiError::unavailable(
                    code,
                    "reconciliation cannot reach its store or the ledger; retry",
                );
            }
            _ => return ApiError::internal(error),
        };
        ApiError::new(status, code, message)
    }
}

/// The node's reconciler (503 `recon_disabled` on a node without one).
pub(crate) fn reconciler(state: &AppState) -> Result<Arc<Reconciler>, ApiError> {
    state.recon.clone().ok_or_else(|| {
        ApiError::unavailable("recon_disabled", "this node does not run reconciliation")
    })
}

/// The caller holds `scope` and is the platform's: an admin key, or a key of the platform
/// tenant (a key made offline for another tenant with a `recon:*` scope is refused too).
pub(crate) fn require_platform(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
) -> Result<(), ApiError> {
    caller.require(scope)?;
    let platform = caller.is_admin()
        || (caller.merchant().is_none() && state.namespaces.is_admin_tenant(caller.tenant()));
    if platform {
        Ok(())
    } else {
        Err(ApiError::forbidden(scope))
    }
}

/// A business day of the documented shape (400 otherwise) that the calendar has (422).
pub(crate) fn business_day(raw: &str, param: &str) -> Result<BusinessDay, ApiError> {
    let shaped = day_shaped(raw);
    if !shaped {
        return Err(ApiError::invalid(
            "invalid_day",
            "a business day is YYYY-MM-DD, 1970 or later",
        )
        .with_param(param));
    }
    BusinessDay::parse(raw).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "day_not_in_calendar",
            format!("{raw} is not a day of the calendar"),
        )
        .with_param(param)
    })
}

/// What [`formats::business_day_pattern`] accepts, checked without a regex engine.
pub(crate) fn day_shaped(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = raw.get(range)?;
        part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && digits(0..4).is_some_and(|year| year >= 1970)
        && digits(5..7).is_some_and(|month| (1..=12).contains(&month))
        && digits(8..10).is_some_and(|day| (1..=31).contains(&day))
}

/// A channel name of the documented shape (400 otherwise).
pub(crate) fn channel_name(raw: &str, param: &str) -> Result<String, ApiError> {
    channels::ChannelId::new(raw).map(|id| id.as_str().to_owned()).map_err(|_| {
        ApiError::invalid("invalid_channel", "a channel is 1 to 32 of A-Z a-z 0-9 _ . : -")
            .with_param(param)
    })
}

/// A path id of the documented shape (400 otherwise).
pub(crate) fn recon_id(raw: &str) -> Result<&str, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= formats::RECON_ID_LEN_MAX
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::invalid("invalid_id", "a reconciliation id is 1 to 64 of A-Z a-z 0-9 _"))
    }
}

// ---- views ------------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct StatementView {
    /// `stm_…`: the same file of the same channel and day is the same statement.
    pub id: String,
    pub object: &'static str,
    pub channel: String,
    #[schema(value_type = formats::BusinessDate)]
    pub business_day: String,
    /// 1 for the day's first file, then one more for each different file.
    pub version: u32,
    pub sha256: String,
    pub size_bytes: u64,
    pub detail_lines: u64,
    /// `fetched` from the channel or `uploaded` by an operator.
    pub source: String,
    /// The key that uploaded it, or `schedule`.
    pub received_by: String,
    pub received_at_ms: u64,
}

impl From<StatementRecord> for StatementView {
    fn from(record: StatementRecord) -> StatementView {
        StatementView {
            id: record.id,
            object: "recon_statement",
            channel: record.channel,
            business_day: BusinessDay::from_days(record.business_day).to_string(),
            version: record.version,
            sha256: record.sha256_hex,
            size_bytes: record.size_bytes,
            detail_lines: record.detail_lines,
            source: match record.source {
                reconciler::StatementSource::Fetched => "fetched".into(),
                reconciler::StatementSource::Uploaded => "uploaded".into(),
            },
            received_by: record.received_by,
            received_at_ms: record.received_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatementReceived {
    /// `false` when this very file was stored before (nothing was written).
    pub created: bool,
    pub statement: StatementView,
}

impl From<PutStatement> for StatementReceived {
    fn from(put: PutStatement) -> StatementReceived {
        match put {
            PutStatement::Stored(record) => {
                StatementReceived { created: true, statement: record.into() }
            }
            PutStatement::Same(record) => {
                StatementReceived { created: false, statement: record.into() }
            }
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatementList {
    pub object: &'static str,
    pub data: Vec<StatementView>,
}

/// Totals first (总分对账): count and sum per type and currency, ours against the channel's.
#[derive(Serialize, ToSchema)]
pub struct ReconTotalsView {
    #[schema(value_type = crate::views::wire::TxType)]
    pub tx_type: String,
    #[schema(value_type = formats::AssetCode)]
    pub currency: String,
    pub count_ours: u64,
    /// Decimal string.
    pub sum_ours_minor: String,
    pub count_theirs: u64,
    pub sum_theirs_minor: String,
    pub agrees: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    /// `run_…`
    pub id: String,
    pub object: &'static str,
    pub channel: String,
    #[schema(value_type = formats::BusinessDate)]
    pub business_day: String,
    pub statement_id: String,
    pub statement_sha256: String,
    /// SHA-256 over our records as matched.
    pub ours_sha256: String,
    pub rule_version: u32,
    /// Lines per class (`matched`, `missing_external`, …), every class listed.
    pub counts: BTreeMap<String, u64>,
    pub totals: Vec<ReconTotalsView>,
    /// The same statement, orders and rule version give the same hash.
    pub result_hash: String,
    /// Breaks this run found that no earlier run had.
    pub breaks_new: u64,
    /// Orders of unknown outcome that took the channel's answer from the statement.
    pub auto_resolved: u64,
    /// Open breaks of earlier runs of the day that this run no longer finds.
    pub superseded: u64,
    pub started_by: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

impl From<RunRecord> for RunView {
    fn from(run: RunRecord) -> RunView {
        RunView {
            id: run.id,
            object: "recon_run",
            channel: run.channel,
            business_day: BusinessDay::from_days(run.business_day).to_string(),
            statement_id: run.statement_id,
            statement_sha256: run.statement_sha256,
            ours_sha256: run.ours_sha256,
            rule_version: run.rule_version,
            counts: run
                .counts
                .into_iter()
                .map(|(class, count)| (class.as_str().to_owned(), count))
                .collect(),
            totals: run
                .totals
                .into_iter()
                .map(|row| ReconTotalsView {
                    agrees: row.agrees(),
                    tx_type: row.tx_type.as_str().to_owned(),
                    currency: row.currency.to_string(),
                    count_ours: row.count_ours,
                    sum_ours_minor: row.sum_ours_minor.to_string(),
                    count_theirs: row.count_theirs,
                    sum_theirs_minor: row.sum_theirs_minor.to_string(),
                })
                .collect(),
            result_hash: run.result_hash,
            breaks_new: run.breaks_new,
            auto_resolved: run.auto_resolved,
            superseded: run.superseded,
            started_by: run.started_by,
            started_at_ms: run.started_at_ms,
            finished_at_ms: run.finished_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub object: &'static str,
    pub data: Vec<RunView>,
}

#[derive(Serialize, ToSchema)]
pub struct LossView {
    /// `loss_…`
    pub id: String,
    pub object: &'static str,
    pub break_id: String,
    pub channel: String,
    #[schema(value_type = formats::BusinessDate)]
    pub business_day: String,
    #[schema(value_type = formats::AssetCode)]
    pub currency: String,
    /// Written off, minor units.
    #[schema(value_type = formats::Amount)]
    pub amount: String,
    /// Recovered since, minor units.
    #[schema(value_type = formats::AmountOrZero)]
    pub recovered: String,
    /// The break's class: what kind of difference lost the money.
    #[schema(value_type = crate::views::wire::BreakClass)]
    pub cause: String,
    pub order_id: Option<String>,
    pub reason: String,
    pub maker: String,
    pub approver: Option<String>,
    pub written_off_at_ms: u64,
}

impl From<LossRecord> for LossView {
    fn from(loss: LossRecord) -> LossView {
        LossView {
            id: loss.id,
            object: "recon_loss",
            break_id: loss.break_id,
            channel: loss.channel,
            business_day: BusinessDay::from_days(loss.business_day).to_string(),
            currency: loss.currency.to_string(),
            amount: loss.amount.to_string(),
            recovered: loss.recovered.to_string(),
            cause: loss.cause.as_str().to_owned(),
            order_id: loss.order_id,
            reason: loss.reason,
            maker: loss.maker,
            approver: loss.approver,
            written_off_at_ms: loss.written_off_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LossList {
    pub object: &'static str,
    pub data: Vec<LossView>,
}

/// One row of the loss report: losses of one channel, cause and currency in the period.
#[derive(Serialize, ToSchema)]
pub struct LossReportRow {
    pub channel: String,
    #[schema(value_type = crate::views::wire::BreakClass)]
    pub cause: String,
    #[schema(value_type = formats::AssetCode)]
    pub currency: String,
    pub count: u64,
    /// Decimal strings, minor units.
    pub written_off_minor: String,
    pub recovered_minor: String,
    /// Written off less recovered.
    pub net_minor: String,
}

#[derive(Serialize, ToSchema)]
pub struct LossReport {
    pub object: &'static str,
    /// The period: business days written off, both ends included.
    #[schema(value_type = Option<formats::BusinessDate>)]
    pub from: Option<String>,
    #[schema(value_type = Option<formats::BusinessDate>)]
    pub to: Option<String>,
    /// By channel, cause and currency.
    pub rows: Vec<LossReportRow>,
}

// ---- statements ---------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    #[schema(value_type = formats::ChannelName)]
    channel: String,
    #[schema(value_type = formats::BusinessDate)]
    business_day: String,
    /// The file, in the statement format (docs/recon.md): parsed whole before anything is
    /// stored; a bad file is refused whole (422) with its line number.
    #[schema(min_length = 1, max_length = 4000000)]
    content: String,
}

/// Upload a channel's statement of a business day. The same file again changes nothing
/// (200, `created: false`); a different file for the same channel and day is its next version.
#[utoipa::path(post, path = "/v1/recon/statements", tag = "reconciliation",
    request_body = UploadRequest, params(IdempotencyKey),
    responses((status = 201, body = StatementReceived), (status = 200, body = StatementReceived),
        (status = "4XX", body = ErrorBody)))]
pub async fn upload_statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/recon/statements";
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        let request: UploadRequest = parse(&body)?;
        let channel = channel_name(&request.channel, "channel")?;
        let day = business_day(&request.business_day, "business_day")?;
        if request.content.is_empty() || request.content.chars().count() > CONTENT_LEN_MAX {
            return Err(ApiError::invalid(
                "invalid_content",
                "a statement's content is 1 to 4,000,000 characters",
            )
            .with_param("content"));
        }
        let reconciler = reconciler(&state)?;
        let by = caller.key.id.clone();
        let put = blocking(move || {
            reconciler.upload(&channel, day, request.content.into_bytes(), &by).map_err(|error| {
                match error {
                    // The file itself is at fault: name the field that carried it.
                    ReconError::Statement(_) => ApiError::from(error).with_param("content"),
                    other => ApiError::from(other),
                }
            })
        })
        .await?;
        received(put)
    })
    .await
}

fn received(put: PutStatement) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let status = match put {
        PutStatement::Stored(_) => StatusCode::CREATED,
        PutStatement::Same(_) => StatusCode::OK,
    };
    Ok((status, to_value(StatementReceived::from(put))?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    #[schema(value_type = formats::ChannelName)]
    channel: String,
    #[schema(value_type = formats::BusinessDate)]
    business_day: String,
}

/// Fetch a channel's statement of a business day from the channel now (the schedule does it
/// hourly for the day before), checked against the digest the channel publishes.
#[utoipa::path(post, path = "/v1/recon/statements/fetch", tag = "reconciliation",
    request_body = FetchRequest, params(IdempotencyKey),
    responses((status = 201, body = StatementReceived), (status = 200, body = StatementReceived),
        (status = "4XX", body = ErrorBody)))]
pub async fn fetch_statement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/recon/statements/fetch";
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        let request: FetchRequest = parse(&body)?;
        let channel = channel_name(&request.channel, "channel")?;
        let day = business_day(&request.business_day, "business_day")?;
        let reconciler = reconciler(&state)?;
        let put = reconciler.fetch(&channel, day, &caller.key.id).await?;
        received(put)
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DayListQuery {
    #[param(value_type = Option<formats::ChannelName>, nullable = false)]
    channel: Option<String>,
    #[param(value_type = Option<formats::BusinessDate>, nullable = false)]
    business_day: Option<String>,
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

impl DayListQuery {
    fn query(self) -> Result<DayQuery, ApiError> {
        Ok(DayQuery {
            channel: self.channel.map(|raw| channel_name(&raw, "channel")).transpose()?,
            business_day: self
                .business_day
                .map(|raw| business_day(&raw, "business_day").map(BusinessDay::days))
                .transpose()?,
            limit: limit_within(self.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?,
        })
    }
}

/// Statements received, newest first.
#[utoipa::path(get, path = "/v1/recon/statements", tag = "reconciliation", params(DayListQuery),
    responses((status = 200, body = StatementList), (status = "4XX", body = ErrorBody)))]
pub async fn list_statements(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DayListQuery>,
) -> Result<axum::Json<StatementList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let query = query.query()?;
    let reconciler = reconciler(&state)?;
    let records =
        blocking(move || Ok(reconciler.store().statements(&query).map_err(ReconError::from)?))
            .await?;
    Ok(axum::Json(StatementList {
        object: "list",
        data: records.into_iter().map(StatementView::from).collect(),
    }))
}

/// One statement's record.
#[utoipa::path(get, path = "/v1/recon/statements/{id}", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, body = StatementView), (status = "4XX", body = ErrorBody)))]
pub async fn get_statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<StatementView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    let record =
        blocking(move || Ok(reconciler.store().statement(&id).map_err(ReconError::from)?))
            .await?
            .ok_or_else(statement_missing)?;
    Ok(axum::Json(record.into()))
}

fn statement_missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "statement_not_found", "no such statement")
}

/// The statement file exactly as it was received (`text/csv`).
#[utoipa::path(get, path = "/v1/recon/statements/{id}/content", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, description = "the file as received", content_type = "text/csv"),
        (status = "4XX", body = ErrorBody)))]
pub async fn get_statement_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    let bytes =
        blocking(move || Ok(reconciler.store().statement_bytes(&id).map_err(ReconError::from)?))
            .await?
            .ok_or_else(statement_missing)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv")], bytes).into_response())
}

// ---- runs -----------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[schema(value_type = formats::ChannelName)]
    channel: String,
    #[schema(value_type = formats::BusinessDate)]
    business_day: String,
    /// Fetch the channel's statement first (default `false`: reconcile the newest stored).
    #[serde(default)]
    fetch: bool,
}

/// Reconcile a channel's newest statement of a business day against our orders: totals,
/// then every line matched and classified; unknown orders the statement answers complete,
/// every other difference becomes a break held on the channel's suspense account.
#[utoipa::path(post, path = "/v1/recon/runs", tag = "reconciliation",
    request_body = RunRequest, params(IdempotencyKey),
    responses((status = 201, body = RunView), (status = "4XX", body = ErrorBody)))]
pub async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/recon/runs";
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        let request: RunRequest = parse(&body)?;
        let channel = channel_name(&request.channel, "channel")?;
        let day = business_day(&request.business_day, "business_day")?;
        let reconciler = reconciler(&state)?;
        if request.fetch {
            reconciler.fetch(&channel, day, &caller.key.id).await?;
        }
        let run = reconciler.run(&channel, day, &caller.key.id).await?;
        Ok((StatusCode::CREATED, to_value(RunView::from(run))?))
    })
    .await
}

/// Runs, newest first.
#[utoipa::path(get, path = "/v1/recon/runs", tag = "reconciliation", params(DayListQuery),
    responses((status = 200, body = RunList), (status = "4XX", body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DayListQuery>,
) -> Result<axum::Json<RunList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let query = query.query()?;
    let reconciler = reconciler(&state)?;
    let runs =
        blocking(move || Ok(reconciler.store().runs(&query).map_err(ReconError::from)?)).await?;
    Ok(axum::Json(RunList { object: "list", data: runs.into_iter().map(RunView::from).collect() }))
}

/// One run.
#[utoipa::path(get, path = "/v1/recon/runs/{id}", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, body = RunView), (status = "4XX", body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<RunView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    let run =
        blocking(move || Ok(reconciler.store().run(&id).map_err(ReconError::from)?))
            .await?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "run_not_found", "no such run"))?;
    Ok(axum::Json(run.into()))
}

// ---- the loss register ------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// The first business day of the period (written off on or after it).
    #[param(value_type = Option<formats::BusinessDate>, nullable = false)]
    from: Option<String>,
    /// The last business day of the period (included).
    #[param(value_type = Option<formats::BusinessDate>, nullable = false)]
    to: Option<String>,
}

impl PeriodQuery {
    /// The period as `[from_ms, to_ms)` in the reconciliation zone.
    fn bounds(&self, offset_minutes: i32) -> Result<(u64, u64), ApiError> {
        let from_ms = match &self.from {
            Some(raw) => business_day(raw, "from")?.start_ms(offset_minutes),
            None => 0,
        };
        let to_ms = match &self.to {
            Some(raw) => business_day(raw, "to")?.end_ms(offset_minutes),
            None => u64::MAX,
        };
        Ok((from_ms, to_ms))
    }
}

async fn losses_in(state: &AppState, period: &PeriodQuery) -> Result<Vec<LossRecord>, ApiError> {
    let reconciler = reconciler(state)?;
    let (from_ms, to_ms) = period.bounds(reconciler.config().utc_offset_minutes)?;
    blocking(move || Ok(reconciler.store().losses(from_ms, to_ms).map_err(ReconError::from)?)).await
}

/// The loss register (损失核算): every write-off in the period, oldest first, with what was
/// recovered of it since.
#[utoipa::path(get, path = "/v1/recon/losses", tag = "reconciliation", params(PeriodQuery),
    responses((status = 200, body = LossList), (status = "4XX", body = ErrorBody)))]
pub async fn list_losses(
    State(state): State<AppState>,
    caller: Caller,
    Query(period): Query<PeriodQuery>,
) -> Result<axum::Json<LossList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let losses = losses_in(&state, &period).await?;
    Ok(axum::Json(LossList {
        object: "list",
        data: losses.into_iter().map(LossView::from).collect(),
    }))
}

/// One loss.
#[utoipa::path(get, path = "/v1/recon/losses/{id}", tag = "reconciliation",
    params(("id" = formats::ReconId, Path)),
    responses((status = 200, body = LossView), (status = "4XX", body = ErrorBody)))]
pub async fn get_loss(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<LossView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    recon_id(&id)?;
    let reconciler = reconciler(&state)?;
    let loss_id = id.clone();
    let loss = blocking(move || Ok(reconciler.store().loss(&loss_id).map_err(ReconError::from)?))
        .await?
        .ok_or_else(|| ApiError::from(ReconError::LossNotFound(id)))?;
    Ok(axum::Json(loss.into()))
}

/// The loss report: write-offs and recoveries of the period by channel, cause and currency.
#[utoipa::path(get, path = "/v1/recon/loss-report", tag = "reconciliation", params(PeriodQuery),
    responses((status = 200, body = LossReport), (status = "4XX", body = ErrorBody)))]
pub async fn loss_report(
    State(state): State<AppState>,
    caller: Caller,
    Query(period): Query<PeriodQuery>,
) -> Result<axum::Json<LossReport>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let losses = losses_in(&state, &period).await?;
    // u128 sums: a register of many maximal losses cannot overflow them.
    let mut rows: BTreeMap<(String, &'static str, String), (u64, u128, u128)> = BTreeMap::new();
    for loss in &losses {
        let row = rows
            .entry((loss.channel.clone(), loss.cause.as_str(), loss.currency.to_string()))
            .or_default();
        row.0 += 1;
        row.1 += u128::from(loss.amount.minor());
        row.2 += u128::from(loss.recovered.minor());
    }
    Ok(axum::Json(LossReport {
        object: "loss_report",
        from: period.from,
        to: period.to,
        rows: rows
            .into_iter()
            .map(|((channel, cause, currency), (count, written_off, recovered))| LossReportRow {
                channel,
                cause: cause.to_owned(),
                currency,
                count,
                written_off_minor: written_off.to_string(),
                recovered_minor: recovered.to_string(),
                net_minor: written_off.saturating_sub(recovered).to_string(),
            })
            .collect(),
    }))
}
