//! The HTTP API of Qianbao, built by [`router`] from an [`AppState`]: the only crate that
//! serves HTTP. Handlers parse, authorise, call the domains and shape the answer; the rules
//! about money live in the domain crates.
//!
//! Conventions (see `docs/api.md`): JSON under `/v1`; amounts and ids as decimal strings;
//! timestamps RFC 3339 UTC; one error shape; `Idempotency-Key` on every POST; cursor
//! pagination with `limit` and `starting_after`.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use ledger::port::LedgerReader;
use ledger::{Clock, LedgerHandle};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub mod actions_api;
pub mod admission;
pub mod auth;
pub mod books;
pub mod breaks_api;
pub mod cache;
pub mod checks_api;
pub mod console_api;
pub mod days_api;
pub mod error;
pub mod formats;
pub mod idempotency;
pub mod keys_api;
pub mod ledger_api;
pub mod limits;
pub mod openapi;
pub mod operators_api;
pub mod ops;
pub mod orders_api;
pub mod overview_api;
pub mod parties_api;
pub mod payments_api;
pub mod recon_api;
pub mod request;
pub mod standby;
pub mod switches_api;
pub mod tenancy;
pub mod views;
pub mod webhooks_api;

/// The largest request body, in bytes (a full batch of transfers fits).
pub const BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// What every handler shares, behind one `Arc`: axum clones the state for each middleware
/// and the handler of every request, and cloning the fields one by one (a score of reference
/// counts bouncing between cores, and the node's name) took 7% of a node's time on the
/// payment path (perf, docs/bench/payment-path.md). Fields read through `Deref`; the `with_*`
/// builders write through `DerefMut`, which copies the fields first if the state is shared
/// (`Arc::make_mut`), so a clone handed out never changes under its holder.
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

impl std::ops::Deref for AppState {
    type Target = AppStateFields;

    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppStateFields {
        Arc::make_mut(&mut self.0)
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct AppStateFields {
    pub ledger: LedgerHandle,
    pub reader: Arc<dyn LedgerReader>,
    pub access: Arc<dyn access::AccessStore>,
    pub clock: Arc<dyn Clock>,
    pub http_metrics: Arc<ops::HttpMetrics>,
    pub caches: Arc<cache::Caches>,
    pub rate_limits: Arc<limits::RateLimits>,
    /// The payment core; `None` on a node that serves the ledger API only.
    pub payments: Option<Arc<executor::Executor>>,
    /// Webhook endpoints and deliveries; `None` on a node without them.
    pub webhooks: Option<Arc<dyn webhooks::WebhookStore>>,
    /// Whether webhook URLs may name loopback, private or link-local addresses (development
    /// and tests; never in production, where a tenant could probe the platform's network).
    pub webhook_private_urls: bool,
    /// This node's stable name (the same across its restarts): idempotency claims carry it.
    pub node: String,
    /// Tenants' id namespaces (`access::namespace`).
    pub namespaces: Arc<access::namespace::Namespaces>,
    /// Reconciliation (对账); `None` on a node that does not run it.
    pub recon: Option<Arc<reconciler::Reconciler>>,
    /// The operators' desk (actions with approval, the audit log); `None` on a node that
    /// does not run it.
    pub desk: Option<Arc<operators::Desk>>,
    /// The operators' switches as this node last read them: the edge obeys them.
    pub switches: Arc<operators::SharedBoard>,
    /// Admission by priority class under overload (降级, 限流).
    pub admission: Arc<admission::Admission>,
    /// Seals the console's session cookies (`console_api`).
    pub console: Arc<console::session::Sealer>,
    /// The book this state serves: live money, or the test book (`books`) that test keys
    /// act on. A key of the other mode is refused here.
    pub mode: access::KeyMode,
    /// Renders the storage engine's own figures into `/metrics` (the journal-first engine's
    /// journal and projection lag), where the binary wires one.
    pub storage_metrics: Option<StorageMetrics>,
}

/// Appends Prometheus text about the storage engine.
pub type StorageMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The admin tenant when none is configured, as `qianbao serve` defaults it.
pub const ADMIN_TENANT_DEFAULT: &str = "platform";
/// The node name when none is configured.
pub const NODE_DEFAULT: &str = "local";

impl AppState {
    /// Reads (or, on a new installation, creates) the id-namespace secret from `access`.
    pub fn new(
        ledger: LedgerHandle,
        reader: Arc<dyn LedgerReader>,
        access: Arc<dyn access::AccessStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, access::AccessError> {
        let mut candidate = [0u8; 32];
        getrandom::fill(&mut candidate).map_err(|e| access::AccessError::Backend(e.to_string()))?;
        let secret = access.namespace_secret(candidate)?;
        let admin_tenant = access::TenantId::new(ADMIN_TENANT_DEFAULT).ok();
        // The console's sessions are sealed under a secret of this process unless one is
        // configured (`with_console_secret`): never one kept in the store, so that reading
        // the database is not enough to forge an operator's session.
        let mut console_secret = [0u8; 32];
        getrandom::fill(&mut console_secret)
            .map_err(|e| access::AccessError::Backend(e.to_string()))?;
        Ok(AppState(Arc::new(AppStateFields {
            ledger,
            reader,
            access,
            clock,
            http_metrics: Arc::default(),
            caches: Arc::default(),
            rate_limits: Arc::default(),
            payments: None,
            webhooks: None,
            webhook_private_urls: false,
            node: NODE_DEFAULT.to_string(),
            namespaces: Arc::new(access::namespace::Namespaces::new(secret, admin_tenant)),
            recon: None,
            desk: None,
            switches: Arc::default(),
            admission: Arc::new(admission::Admission::new(Default::default())),
            console: Arc::new(console::session::Sealer::new(console_secret)),
            mode: access::KeyMode::Live,
            storage_metrics: None,
        })))
    }

    /// The admin tenant: its keys see ledger ids as they are (no namespace).
    pub fn with_admin_tenant(mut self, tenant: access::TenantId) -> AppState {
        let secret = self.namespaces.secret();
        self.namespaces = Arc::new(access::namespace::Namespaces::new(secret, Some(tenant)));
        self
    }

    /// This node's name, stable across its restarts (see [`AppState::node`]).
    pub fn with_node(mut self, node: impl Into<String>) -> AppState {
        self.node = node.into();
        self
    }

    /// Serves the webhook endpoints and delivery log from `store`; `private_urls` allows
    /// endpoints on loopback and private addresses.
    pub fn with_webhooks(
        mut self,
        store: Arc<dyn webhooks::WebhookStore>,
        private_urls: bool,
    ) -> AppState {
        self.webhooks = Some(store);
        self.webhook_private_urls = private_urls;
        self
    }

    /// Serves the payment core's endpoints through `executor`.
    pub fn with_payments(mut self, executor: Arc<executor::Executor>) -> AppState {
        self.payments = Some(executor);
        self
    }

    /// Serves reconciliation (`/v1/recon`) through `reconciler`.
    pub fn with_recon(mut self, reconciler: Arc<reconciler::Reconciler>) -> AppState {
        self.recon = Some(reconciler);
        self
    }

    /// Serves operators' actions and the audit log (`/v1/ops/actions`, `/v1/ops/audit`)
    /// through `desk`, and audits operators' other actions there.
    pub fn with_desk(
        mut self,
        desk: Arc<operators::Desk>,
        switches: Arc<operators::SharedBoard>,
    ) -> AppState {
        self.desk = Some(desk);
        self.switches = switches;
        self
    }

    /// Adds the storage engine's figures to `/metrics`.
    pub fn with_storage_metrics(mut self, render: Option<StorageMetrics>) -> AppState {
        self.storage_metrics = render;
        self
    }

    /// Seals console sessions under `secret`, so that every node that shares it accepts a
    /// session signed in on any of them, and sessions outlive a restart.
    pub fn with_console_secret(mut self, secret: [u8; 32]) -> AppState {
        self.console = Arc::new(console::session::Sealer::new(secret));
        self
    }

    /// Admits requests by priority class with these limits (on by default).
    pub fn with_admission(mut self, config: admission::AdmissionConfig) -> AppState {
        self.admission = Arc::new(admission::Admission::new(config));
        self
    }

    /// Limits each API key to `limit` requests per second (none by default).
    pub fn with_key_rate_limit(mut self, limit: Option<limits::KeyRateLimit>) -> AppState {
        self.rate_limits = Arc::new(limits::RateLimits::new(limit));
        self
    }
}

/// Request ids: `req_` and 16 random hex characters, on every response and log line.
#[derive(Clone, Copy, Default)]
pub(crate) struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).ok()?;
        axum::http::HeaderValue::from_str(&format!("req_{}", hex::encode(raw)))
            .ok()
            .map(RequestId::new)
    }
}

/// The span of one request: its id, the book it acts on (`live` or `test`), method and
/// path (never headers or body: they may hold keys and signatures).
fn request_span<B>(request: &axum::http::Request<B>, mode: access::KeyMode) -> tracing::Span {
    let request_id =
        request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %request_id,
        mode = mode.as_str(),
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Logs a failed request, except a 503: a request shed under load or refused by an
/// operators' switch is the service working as meant, and at thousands a second their log
/// lines would cost the very CPU the shedding saves. Internal errors are logged where they
/// happen (`error::ApiError::internal`), with their cause.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    if matches!(class, ServerErrorsFailureClass::StatusCode(status) if status.as_u16() == 503) {
        return;
    }
    tracing::error!(classification = %class, latency_ms = latency.as_millis() as u64, "response failed");
}

pub fn router(state: AppState) -> Router {
    let mode = state.mode;
    let v1 = Router::new()
        .route("/assets", post(ledger_api::create_asset))
        .route("/chart", post(ledger_api::create_chart))
        .route("/accounts", post(ledger_api::create_account))
        .route("/accounts/{id}", get(ledger_api::get_account))
        .route("/accounts/{id}/status", post(ledger_api::set_account_status))
        .route("/accounts/{id}/entries", get(ledger_api::list_entries))
        .route("/accounts/{id}/balance", get(ledger_api::get_balance))
        .route("/transfers", post(ledger_api::create_transfer))
        .route("/transfers/batch", post(ledger_api::create_batch))
        .route("/transfers/{id}", get(ledger_api::get_transfer))
        .route("/transfers/{id}/post", post(ledger_api::post_pending))
        .route("/transfers/{id}/void", post(ledger_api::void_pending))
        .route("/trial-balance", get(ledger_api::trial_balance))
        .route("/journal/verify", post(ledger_api::verify_journal))
        .route("/journal/head", get(overview_api::journal_head))
        .route("/customers", post(parties_api::create_customer))
        .route("/customers/{id}", get(parties_api::get_customer))
        .route("/customers/{id}/points", post(payments_api::grant_points))
        .route("/merchants", post(parties_api::create_merchant))
        .route("/merchants/{id}", get(parties_api::get_merchant))
        .route("/merchants/{id}/settlements", post(payments_api::settle_merchant))
        .route("/merchants/{id}/payout-batches", post(payments_api::create_payout_batch))
        .route("/payout-batches/{id}", get(payments_api::get_payout_batch))
        .route("/topups", post(payments_api::create_topup))
        .route("/withdrawals", post(payments_api::create_withdrawal))
        .route("/payments", post(payments_api::create_payment))
        .route("/payments/{id}/refunds", post(payments_api::create_refund))
        .route("/payments/{id}/capture", post(payments_api::capture_payment))
        .route("/payments/{id}/cancel", post(payments_api::cancel_payment))
        .route("/wallet-transfers", post(payments_api::create_wallet_transfer))
        .route("/fx-rates", get(payments_api::list_fx_rates).put(payments_api::set_fx_rate))
        .route("/orders", get(orders_api::list_orders))
        .route("/orders/{id}", get(orders_api::get_order))
        .route("/events", get(orders_api::list_events))
        .route("/inspection", post(orders_api::run_inspection))
        .route(
            "/webhook-endpoints",
            post(webhooks_api::create_endpoint).get(webhooks_api::list_endpoints),
        )
        .route("/webhook-endpoints/{id}", delete(webhooks_api::disable_endpoint))
        .route("/webhook-deliveries", get(webhooks_api::list_deliveries))
        .route("/webhook-deliveries/{id}/retry", post(webhooks_api::retry_delivery))
        .route(
            "/recon/statements",
            post(recon_api::upload_statement).get(recon_api::list_statements),
        )
        .route("/recon/statements/fetch", post(recon_api::fetch_statement))
        .route("/recon/statements/{id}", get(recon_api::get_statement))
        .route("/recon/statements/{id}/content", get(recon_api::get_statement_content))
        .route("/recon/runs", post(recon_api::start_run).get(recon_api::list_runs))
        .route("/recon/runs/{id}", get(recon_api::get_run))
        .route("/recon/breaks", get(breaks_api::list_breaks))
        .route("/recon/breaks/{id}", get(breaks_api::get_break))
        .route("/recon/breaks/{id}/assign", post(breaks_api::assign_break))
        .route("/recon/breaks/{id}/propose", post(breaks_api::propose_resolution))
        .route("/recon/breaks/{id}/approve", post(breaks_api::approve_resolution))
        .route("/recon/breaks/{id}/reject", post(breaks_api::reject_resolution))
        .route("/recon/losses", get(recon_api::list_losses))
        .route("/recon/losses/{id}", get(recon_api::get_loss))
        .route("/recon/loss-report", get(recon_api::loss_report))
        .route("/recon/checks", post(checks_api::run_checks).get(checks_api::list_checks))
        .route("/recon/checks/{id}", get(checks_api::get_check))
        .route("/recon/alerts", get(checks_api::list_alerts))
        .route("/recon/days", get(days_api::list_days))
        .route("/recon/days/{day}", get(days_api::get_day))
        .route("/recon/days/{day}/close", post(days_api::close_day))
        .route("/recon/days/{day}/trial-balance.csv", get(days_api::get_day_csv))
        .route("/recon/days/{day}/merchants.csv", get(days_api::get_merchants_csv))
        .route("/recon/days/{day}/channels.csv", get(days_api::get_channels_csv))
        .route("/ops/inquiries/escalated", get(operators_api::list_escalated))
        .route("/ops/inquiries/{channel}/{request_id}/ask", post(operators_api::ask_now))
        .route("/ops/orders/overdue", get(operators_api::list_overdue))
        .route("/ops/orders/exceptions", get(operators_api::list_exceptions))
        .route("/ops/orders/{id}/return", post(actions_api::propose_return))
        .route("/ops/overview", get(overview_api::overview))
        .route("/ops/balance-sheet", get(overview_api::balance_sheet_view))
        .route("/ops/inquiries/{channel}/{request_id}/outcome", post(actions_api::propose_outcome))
        .route("/ops/actions", get(actions_api::list_actions))
        .route("/ops/actions/{id}", get(actions_api::get_action))
        .route("/ops/actions/{id}/approve", post(actions_api::approve_action))
        .route("/ops/actions/{id}/reject", post(actions_api::reject_action))
        .route("/ops/audit", get(actions_api::list_audit))
        .route("/ops/audit/verify", get(actions_api::verify_audit))
        .route("/ops/switches", get(switches_api::list_switches).post(switches_api::set_switch))
        .route("/ops/switches/versions", get(switches_api::switch_versions))
        .route("/ops/switches/rollback", post(switches_api::rollback_switch))
        .route("/ops/plans", get(switches_api::list_plans))
        .route("/ops/plans/{name}/run", post(switches_api::run_plan))
        .route("/ops/plans/{name}/rollback", post(switches_api::rollback_plan))
        .route("/keys", post(keys_api::create_key).get(keys_api::list_keys))
        .route("/keys/{id}", delete(keys_api::revoke_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::verify_signature));
    Router::new()
        .route("/v1/openapi.json", get(openapi::openapi_json))
        .route("/channel-callbacks/{channel}", post(orders_api::channel_callback))
        .nest("/v1", v1)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/console", get(console_api::index))
        .route("/console/", get(console_api::index))
        .route("/console/assets/{file}", get(console_api::asset))
        .route(
            "/console/session",
            post(console_api::sign_in).get(console_api::current).delete(console_api::sign_out),
        )
        .fallback(|| async { error::ApiError::not_found("route") })
        // Admission inside the switches: what a switch refuses never reaches admission (and
        // never counts as overload).
        .layer(axum::middleware::from_fn_with_state(state.clone(), admission::admit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), switches_api::obey_switches))
        .layer(axum::middleware::from_fn(request::refuse_control_characters))
        .layer(axum::middleware::from_fn(ops::uniform_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::track))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        // Inside the layer that sets the request id, so every log line of a request carries it.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &axum::http::Request<_>| request_span(request, mode))
                .on_failure(log_failure),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        // Outermost: a request its class has no room for is refused before any work above.
        .layer(admission::early::ShedEarlyLayer::new(
            state.admission.clone(),
            state.http_metrics.clone(),
            mode,
        ))
        .with_state(state)
}
