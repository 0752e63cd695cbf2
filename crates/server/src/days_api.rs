//! `/v1/recon/days`: end of day (日切). A business day closes after its cut-over (the
//! service closes each past day by itself, hourly); a closed day's trial balance — opening,
//! debits, credits and closing per asset and chart line — is stored with a hash chained to
//! the day before, and never changes. Readable as JSON and as CSV.

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use recon::BusinessDay;
use reconciler::{ClosedDay, ReconError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::recon_api::{
    business_day, reconciler, require_platform, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX,
};
use crate::request::{blocking, limit_within};
use crate::views::{to_value, ErrorBody};
use crate::{formats, idempotency, AppState};

#[derive(Serialize, ToSchema)]
pub struct DayLineView {
    #[schema(value_type = formats::AssetCode)]
    pub asset: String,
    pub chart_code: u32,
    /// Debits less credits at the day's start, posted only; a signed decimal string.
    pub opening_net_minor: String,
    /// Posted during the day.
    pub debits_minor: String,
    pub credits_minor: String,
    /// Debits less credits at the day's end.
    pub closing_net_minor: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClosedDayView {
    #[schema(value_type = formats::BusinessDate)]
    pub business_day: String,
    pub object: &'static str,
    /// Minutes east of UTC where the day turns.
    pub utc_offset_minutes: i32,
    /// The journal the day spans: after `from_seq`, through `to_seq`.
    pub from_seq: u64,
    pub to_seq: u64,
    /// Each asset's debits equal its credits over the day.
    pub balanced: bool,
    /// SHA-256 over the day, its span, its lines and `previous_hash`.
    pub hash: String,
    /// The hash of the day closed before (empty for the first).
    pub previous_hash: String,
    pub closed_by: String,
    pub closed_at_ms: u64,
    /// The day's trial balance (`GET /v1/recon/days/{day}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<DayLineView>>,
}

impl ClosedDayView {
    fn of(day: ClosedDay, with_lines: bool) -> ClosedDayView {
        ClosedDayView {
            business_day: BusinessDay::from_days(day.business_day).to_string(),
            object: "recon_day",
            utc_offset_minutes: day.utc_offset_minutes,
            from_seq: day.from_seq,
            to_seq: day.to_seq,
            balanced: day.is_balanced(),
            hash: day.hash,
            previous_hash: day.previous_hash,
            closed_by: day.closed_by,
            closed_at_ms: day.closed_at_ms,
            lines: with_lines.then(|| {
                day.lines
                    .into_iter()
                    .map(|line| DayLineView {
                        asset: line.asset.to_string(),
                        chart_code: line.chart_code,
                        opening_net_minor: line.opening_net_minor.to_string(),
                        debits_minor: line.debits_minor.to_string(),
                        credits_minor: line.credits_minor.to_string(),
                        closing_net_minor: line.closing_net_minor.to_string(),
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClosedDayList {
    pub object: &'static str,
    pub data: Vec<ClosedDayView>,
}

fn day_not_closed(day: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "day_not_closed", format!("{day} is not closed"))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// 1 to 500, default 50.
    #[param(nullable = false, minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Closed days, newest first.
#[utoipa::path(get, path = "/v1/recon/days", tag = "reconciliation", params(DaysQuery),
    responses((status = 200, body = ClosedDayList), (status = "4XX", body = ErrorBody)))]
pub async fn list_days(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DaysQuery>,
) -> Result<axum::Json<ClosedDayList>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let limit = limit_within(query.limit, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let reconciler = reconciler(&state)?;
    let days =
        blocking(move || Ok(reconciler.store().closed_days(limit).map_err(ReconError::from)?))
            .await?;
    Ok(axum::Json(ClosedDayList {
        object: "list",
        data: days.into_iter().map(|day| ClosedDayView::of(day, false)).collect(),
    }))
}

async fn closed(state: &AppState, raw: &str) -> Result<ClosedDay, ApiError> {
    let day = business_day(raw, "day")?;
    let reconciler = reconciler(state)?;
    blocking(move || Ok(reconciler.store().closed_day(day.days()).map_err(ReconError::from)?))
        .await?
        .ok_or_else(|| day_not_closed(raw))
}

/// A closed day with its trial balance.
#[utoipa::path(get, path = "/v1/recon/days/{day}", tag = "reconciliation",
    params(("day" = formats::BusinessDate, Path)),
    responses((status = 200, body = ClosedDayView), (status = "4XX", body = ErrorBody)))]
pub async fn get_day(
    State(state): State<AppState>,
    caller: Caller,
    Path(day): Path<String>,
) -> Result<axum::Json<ClosedDayView>, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    Ok(axum::Json(ClosedDayView::of(closed(&state, &day).await?, true)))
}

/// A closed day's trial balance as CSV: `asset,chart_code,opening_net_minor,debits_minor,
/// credits_minor,closing_net_minor`, one row per line.
#[utoipa::path(get, path = "/v1/recon/days/{day}/trial-balance.csv", tag = "reconciliation",
    params(("day" = formats::BusinessDate, Path)),
    responses((status = 200, description = "the day's trial balance", content_type = "text/csv"),
        (status = "4XX", body = ErrorBody)))]
pub async fn get_day_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(day): Path<String>,
) -> Result<Response, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let closed = closed(&state, &day).await?;
    let mut csv = String::from(
        "asset,chart_code,opening_net_minor,debits_minor,credits_minor,closing_net_minor\n",
    );
    for line in &closed.lines {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            line.asset,
            line.chart_code,
            line.opening_net_minor,
            line.debits_minor,
            line.credits_minor,
            line.closing_net_minor
        ));
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv")], csv).into_response())
}

/// Close a business day now (after its cut-over; days close in order). Closing a closed day
/// answers it as it was closed.
#[utoipa::path(post, path = "/v1/recon/days/{day}/close", tag = "reconciliation",
    params(("day" = formats::BusinessDate, Path), IdempotencyKey),
    responses((status = 200, body = ClosedDayView), (status = "4XX", body = ErrorBody)))]
pub async fn close_day(
    State(state): State<AppState>,
    caller: Caller,
    Path(day): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/recon/days/{day}/close");
    idempotency::once(&state, &caller, Scope::ReconWrite, &headers, &route, &body, async {
        require_platform(&state, &caller, Scope::ReconWrite)?;
        let business_day = business_day(&day, "day")?;
        let reconciler = reconciler(&state)?;
        let closed = reconciler.close_day(business_day, &caller.key.id).await?;
        Ok((StatusCode::OK, to_value(ClosedDayView::of(closed, true))?))
    })
    .await
}

fn csv_response(csv: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/csv")], csv).into_response()
}

/// Every merchant's daily statement of a closed day, as CSV (merchants without movement or
/// balance left out): `tenant,merchant,asset,payments_count,payments_minor,fees_minor,
/// refunds_count,refunds_minor,fees_returned_minor,settled_minor,payouts_count,payouts_minor,
/// unsettled_closing_minor,settled_closing_minor`.
#[utoipa::path(get, path = "/v1/recon/days/{day}/merchants.csv", tag = "reconciliation",
    params(("day" = formats::BusinessDate, Path)),
    responses((status = 200, description = "the merchants' statements", content_type = "text/csv"),
        (status = "4XX", body = ErrorBody)))]
pub async fn get_merchants_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(day): Path<String>,
) -> Result<Response, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let business_day = business_day(&day, "day")?;
    let rows = reconciler(&state)?.merchant_statements(business_day).await?;
    let mut csv = String::from(
        "tenant,merchant,asset,payments_count,payments_minor,fees_minor,refunds_count,\
         refunds_minor,fees_returned_minor,settled_minor,payouts_count,payouts_minor,\
         unsettled_closing_minor,settled_closing_minor\n",
    );
    for row in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            row.tenant,
            row.merchant,
            row.asset,
            row.payments_count,
            row.payments_minor,
            row.fees_minor,
            row.refunds_count,
            row.refunds_minor,
            row.fees_returned_minor,
            row.settled_minor,
            row.payouts_count,
            row.payouts_minor,
            row.unsettled_closing_minor,
            row.settled_closing_minor
        ));
    }
    Ok(csv_response(csv))
}

/// Every channel's daily summary of a closed day, as CSV, from the channel's newest run of
/// that day: `channel,tx_type,currency,count_ours,sum_ours_minor,count_theirs,
/// sum_theirs_minor,agrees,run_id,breaks_open,breaks_resolved`.
#[utoipa::path(get, path = "/v1/recon/days/{day}/channels.csv", tag = "reconciliation",
    params(("day" = formats::BusinessDate, Path)),
    responses((status = 200, description = "the channels' summaries", content_type = "text/csv"),
        (status = "4XX", body = ErrorBody)))]
pub async fn get_channels_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(day): Path<String>,
) -> Result<Response, ApiError> {
    require_platform(&state, &caller, Scope::ReconRead)?;
    let business_day = business_day(&day, "day")?;
    let reconciler = reconciler(&state)?;
    let rows = blocking(move || Ok(reconciler.channel_summaries(business_day)?)).await?;
    let mut csv = String::from(
        "channel,tx_type,currency,count_ours,sum_ours_minor,count_theirs,sum_theirs_minor,\
         agrees,run_id,breaks_open,breaks_resolved\n",
    );
    for row in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            row.channel,
            row.tx_type.as_str(),
            row.currency,
            row.count_ours,
            row.sum_ours_minor,
            row.count_theirs,
            row.sum_theirs_minor,
            row.agrees,
            row.run_id,
            row.breaks_open,
            row.breaks_resolved
        ));
    }
    Ok(csv_response(csv))
}
