//! Operations endpoints: `/healthz` (alive), `/readyz` (store reachable, pipeline not
//! saturated), `/metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger::metrics::Histogram;

use crate::admission::Class;
use crate::AppState;

/// Queue fill above which the service reports not ready, so balancers send traffic elsewhere.
pub const READY_QUEUE_FILL_MAX: f32 = 0.9;

/// Request counts and latency by book (`live` or `test`), route and status. The books
/// share one (`books`): test traffic is told apart by its `mode` label.
#[derive(Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<(&'static str, String, u16), Histogram>>,
    /// Requests refused before routing (`admission::early`), by book and class: counted
    /// without a lock, and shown as the route `shed:{class}` with status 503.
    shed: [[Histogram; 3]; 2],
}

const MODES: [access::KeyMode; 2] = [access::KeyMode::Live, access::KeyMode::Test];

fn mode_index(mode: access::KeyMode) -> usize {
    match mode {
        access::KeyMode::Live => 0,
        access::KeyMode::Test => 1,
    }
}

impl HttpMetrics {
    fn record(&self, mode: access::KeyMode, route: String, status: u16, latency_us: u64) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.entry((mode.as_str(), route, status)).or_default().record(latency_us);
    }

    /// One request of `class` refused before routing; it took no measurable time.
    pub fn record_shed(&self, mode: access::KeyMode, class: Class) {
        self.shed[mode_index(mode)][class.index()].record(0);
    }

    /// The routes `shed:{class}` of `mode` that refused anything, with their histograms.
    fn shed_routes(&self, mode: access::KeyMode) -> impl Iterator<Item = (String, &Histogram)> {
        Class::ALL.into_iter().filter_map(move |class| {
            let histogram = &self.shed[mode_index(mode)][class.index()];
            (histogram.count() > 0).then(|| (format!("shed:{}", class.as_str()), histogram))
        })
    }

    /// Per route of the book of `mode` since the node started: requests, client and server
    /// errors, and the latency bound of its 99th percentile (RED, as the console shows it).
    pub fn summary(&self, mode: access::KeyMode) -> Vec<RouteSummary> {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        // Per route: its summary, and its histograms' cumulative buckets added up.
        type Merged = (RouteSummary, Vec<(u64, u64)>);
        let mut by_route: BTreeMap<&str, Merged> = BTreeMap::new();
        let shed = self.shed_routes(mode).collect::<Vec<_>>();
        let of_mode = routes
            .iter()
            .filter(|((of, _, _), _)| *of == mode.as_str())
            .map(|((_, route, status), histogram)| (route, *status, histogram))
            .chain(shed.iter().map(|(route, histogram)| (route, 503, *histogram)));
        for (route, status, histogram) in of_mode {
            let (summary, merged) = by_route.entry(route).or_insert_with(|| {
                (RouteSummary { route: route.clone(), ..Default::default() }, Vec::new())
            });
            let count = histogram.count();
            summary.requests += count;
            match status {
                400..=499 => summary.client_errors += count,
                500..=599 => summary.server_errors += count,
                _ => {}
            }
            let cumulative = histogram.cumulative();
            if merged.is_empty() {
                *merged = cumulative;
            } else {
                for (into, (_, add)) in merged.iter_mut().zip(cumulative) {
                    into.1 += add;
                }
            }
        }
        by_route
            .into_values()
            .map(|(mut summary, merged)| {
                summary.p99_us_at_most = ledger::metrics::quantile_bound(&merged, 990);
                summary
            })
            .collect()
    }
}

/// One route's requests since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSummary {
    /// `METHOD /path/{param}`.
    pub route: String,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// An upper bound (within a factor of two) on the 99th percentile, microseconds.
    pub p99_us_at_most: Option<u64>,
}

pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_string(),
        |path| format!("{} {}", request.method(), path.as_str()),
    );
    let started = Instant::now();
    let response = next.run(request).await;
    state.http_metrics.record(
        state.mode,
        route,
        response.status().as_u16(),
        started.elapsed().as_micros() as u64,
    );
    response
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the store answers and the posting queue is below 90% full.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "store unreachable or queue saturated", body = String, content_type = "text/plain")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let reader = state.reader.clone();
    let store_ok =
        tokio::task::spawn_blocking(move || reader.head().is_ok()).await.unwrap_or(false);
    let fill = state.ledger.queue_fill();
    if store_ok && fill < READY_QUEUE_FILL_MAX {
        (StatusCode::OK, "ready").into_response()
    } else {
        let reason = if store_ok { "posting queue saturated" } else { "store unreachable" };
        (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram, scale: f64) {
    #![allow(clippy::float_arithmetic)]
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in histogram.cumulative() {
        let _ =
            writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{}\"}} {count}", bound as f64 * scale);
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", histogram.count());
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum() as f64 * scale);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count());
}

/// Prometheus metrics: requests by route and status, posting batches, queue depth, commit
/// latency.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE qianbao_http_request_duration_seconds histogram");
    {
        let routes = state.http_metrics.routes.lock().unwrap_or_else(|p| p.into_inner());
        for ((mode, route, status), h) in routes.iter() {
            let labels = format!("mode=\"{mode}\",route=\"{route}\",status=\"{status}\"");
            histogram(&mut out, "qianbao_http_request_duration_seconds", &labels, h, 1e-6);
        }
        for mode in MODES {
            for (route, h) in state.http_metrics.shed_routes(mode) {
                let mode = mode.as_str();
                let labels = format!("mode=\"{mode}\",route=\"{route}\",status=\"503\"");
                histogram(&mut out, "qianbao_http_request_duration_seconds", &labels, h, 1e-6);
            }
        }
    }
    if let Some(payments) = &state.payments {
        payments.render_metrics(&mut out);
        if let Some(gateway) = payments.gateway() {
            gateway.render_metrics(&mut out);
        }
        // Open, escalated and undelivered inquiries: escalated ones need an operator.
        if let Some(inquirer) = payments.inquirer().cloned() {
            let backlog = tokio::task::spawn_blocking(move || inquirer.store().backlog()).await;
            match backlog {
                Ok(Ok(backlog)) => backlog.render_metrics(&mut out),
                Ok(Err(error)) => tracing::warn!(%error, "the inquiry backlog could not be read"),
                Err(error) => tracing::warn!(%error, "the inquiry backlog could not be read"),
            }
        }
    }
    if let Some(reconciler) = &state.recon {
        reconciler.render_metrics(&mut out);
    }
    crate::switches_api::render_metrics(&state, &mut out);
    state.admission.render_metrics(&mut out);
    if let Some(render) = &state.storage_metrics {
        render(&mut out);
    }
    let pipeline = state.ledger.metrics();
    for (name, value) in [
        (
            "qianbao_ledger_batches_committed_total",
            pipeline.batches_committed.load(Ordering::Relaxed),
        ),
        (
            "qianbao_ledger_records_committed_total",
            pipeline.records_committed.load(Ordering::Relaxed),
        ),
        ("qianbao_ledger_batch_conflicts_total", pipeline.batch_conflicts.load(Ordering::Relaxed)),
        ("qianbao_ledger_batch_failures_total", pipeline.batch_failures.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
    }
    let _ = writeln!(
        out,
        "# TYPE qianbao_ledger_queue_depth gauge\nqianbao_ledger_queue_depth {}",
        pipeline.queue_depth.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE qianbao_ledger_batch_commands histogram");
    histogram(&mut out, "qianbao_ledger_batch_commands", "", &pipeline.batch_commands, 1.0);
    let _ = writeln!(out, "# TYPE qianbao_ledger_commit_duration_seconds histogram");
    histogram(
        &mut out,
        "qianbao_ledger_commit_duration_seconds",
        "",
        &pipeline.commit_latency_us,
        1e-6,
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Gives framework rejections (oversize body, malformed path or query, wrong method) the
/// API's one error shape, so every 4xx a client sees is machine-readable.
pub async fn uniform_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let code = match status.as_u16() {
        405 => "method_not_allowed",
        413 => "body_too_large",
        415 => "unsupported_media_type",
        _ => "invalid_request",
    };
    let (parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut error =
        crate::error::ApiError::new(status, code, String::from_utf8_lossy(&detail).to_string());
    if error.message.is_empty() {
        error.message = status.canonical_reason().unwrap_or("invalid request").to_string();
    }
    let mut rebuilt = error.into_response();
    for name in ["x-request-id", "idempotent-replayed"] {
        if let Some(value) = parts.headers.get(name) {
            rebuilt.headers_mut().insert(name, value.clone());
        }
    }
    rebuilt
}
