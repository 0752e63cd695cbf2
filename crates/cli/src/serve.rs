//! `qianbao serve`: the HTTP service on the embedded store (default) or PostgreSQL.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ledger::{Clock, PipelineConfig, SystemClock};

use crate::StoreArgs;

/// Admission's default latency targets by store (milliseconds), chosen by measurement
/// (docs/bench/overload.md): on the embedded store 50 ms gave a higher knee and a lower p99
/// under overload than 100 ms; on PostgreSQL, where an order is three round trips, 50 ms
/// shed 8 % at its knee, so it keeps 100 ms.
const ADMISSION_TARGET_MS_EMBEDDED: u64 = 50;
const ADMISSION_TARGET_MS_POSTGRES: u64 = 100;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Each channel's terms, from the config file's `[channel_terms.<name>]` tables.
    #[arg(skip)]
    channel_settings: std::collections::BTreeMap<String, crate::payments::ChannelSettings>,
    /// Address to listen on.
    #[arg(long, env = "QIANBAO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Tenant of the admin key created on first start.
    #[arg(long, env = "QIANBAO_ADMIN_TENANT", default_value = "platform")]
    admin_tenant: String,
    /// Requests per second allowed to each API key on this node; 0 turns the limit off.
    #[arg(long, env = "QIANBAO_RATE_LIMIT_PER_SEC", default_value_t = 2_000)]
    rate_limit_per_sec: u32,
    /// Requests a key may send at once above its rate; 0 means twice the rate.
    #[arg(long, env = "QIANBAO_RATE_LIMIT_BURST", default_value_t = 0)]
    rate_limit_burst: u32,
    /// The bank simulator's address (`http://127.0.0.1:9090`): top-ups and withdrawals go
    /// through its channels. Without it, wallet payments, refunds and transfers still work.
    #[arg(long, env = "QIANBAO_BANKSIM_URL")]
    banksim_url: Option<String>,
    /// The bank simulator the test book's channels go to (test mode: requests made with
    /// `qb_test_…` keys act on a book of their own). It must be another simulator than
    /// `--banksim-url`'s: the books must not share a channel's statements, callbacks or
    /// request ids. Without it, test top-ups and withdrawals have no channel.
    #[arg(long, env = "QIANBAO_TEST_BANKSIM_URL")]
    test_banksim_url: Option<String>,
    /// Run no test book: test keys are then refused (403 `test_mode_off`).
    #[arg(long, env = "QIANBAO_NO_TEST_BOOK")]
    no_test_book: bool,
    /// The simulator's channels to use (their secrets: `QIANBAO_CHANNEL_SECRET_<NAME>`, else
    /// the simulator's development secret).
    #[arg(
        long,
        env = "QIANBAO_CHANNELS",
        value_delimiter = ',',
        default_value = "bank_a,bank_b,fastpay"
    )]
    channels: Vec<String>,
    /// Assets defined at start, `CODE:SCALE` (idempotent).
    #[arg(long, env = "QIANBAO_ASSETS", value_delimiter = ',', default_value = "CNY:2,POINTS:0")]
    assets: Vec<String>,
    /// A channel's "no such request" ends an inquiry only after this long (late arrivals).
    #[arg(long, env = "QIANBAO_INQUIRY_NOT_FOUND_FINAL_MS", default_value_t = 600_000)]
    inquiry_not_found_final_ms: u64,
    /// Inquiries made about an unknown outcome before it is escalated to an operator.
    #[arg(long, env = "QIANBAO_INQUIRY_ATTEMPTS_MAX", default_value_t = 30)]
    inquiry_attempts_max: u32,
    /// An escalated inquiry is still asked, this long apart, until the bank answers.
    #[arg(long, env = "QIANBAO_INQUIRY_ESCALATED_DELAY_MS", default_value_t = 3_600_000)]
    inquiry_escalated_delay_ms: u64,
    /// Inspection resumes an unfinished order once it has not moved for this long.
    #[arg(long, env = "QIANBAO_INSPECT_AFTER_MS", default_value_t = 30_000)]
    inspect_after_ms: u64,
    /// An unfinished order without a deadline is overdue (for operators, the cross-check and
    /// the monitor) once it has not moved for this long.
    #[arg(long, env = "QIANBAO_STUCK_AFTER_MS", default_value_t = 3_600_000)]
    stuck_after_ms: u64,
    /// The scheduled settlement run (T+N): the first pass at start, then this often; 0
    /// runs none, for a deployment whose own batch scheduler calls
    /// `POST /v1/merchants/{id}/settlements`.
    #[arg(long, env = "QIANBAO_SETTLEMENT_EVERY_SECS", default_value_t = 3_600)]
    settlement_every_secs: u64,
    /// Do not shed load by priority class (on by default: under overload, bulk and then
    /// reads are refused with 503 `overloaded` before money-moving writes).
    #[arg(long, env = "QIANBAO_NO_ADMISSION")]
    no_admission: bool,
    /// Admission's latency target for money-moving writes, milliseconds of the service's own
    /// time (channels' waits taken off): answered slower, a write shrinks the writes' limit.
    /// Default: 50 on the embedded store, 100 on PostgreSQL, whose orders take three round
    /// trips (docs/bench/overload.md).
    #[arg(long, env = "QIANBAO_ADMISSION_WRITE_TARGET_MS",
        value_parser = clap::value_parser!(u64).range(1..))]
    admission_write_target_ms: Option<u64>,
    /// Admission's latency target for reads, milliseconds; defaults as for writes.
    #[arg(long, env = "QIANBAO_ADMISSION_READ_TARGET_MS",
        value_parser = clap::value_parser!(u64).range(1..))]
    admission_read_target_ms: Option<u64>,
    /// Operators' money-moving actions moving this much or more (minor units) need a second
    /// key's approval (maker–checker); 0: every one does.
    #[arg(long, env = "QIANBAO_OPS_APPROVAL_MINOR", default_value_t = 0)]
    ops_approval_minor: u64,
    /// The secret (64 hex characters) the web console's sessions are sealed under. Give
    /// every node the same one so that a session signed in on one is good on all, and
    /// survives a restart; without it each process draws its own. Keep it out of the
    /// database: whoever holds it can forge an operator's session.
    #[arg(long, env = "QIANBAO_CONSOLE_SECRET", hide_env_values = true)]
    console_secret: Option<String>,
    /// Points (积分): `POINTS_ASSET:CASH_ASSET:MINOR_PER_POINT`; empty for none.
    #[arg(long, env = "QIANBAO_POINTS", default_value = "POINTS:CNY:1")]
    points: String,
    /// Exchange rates at start, `ASSET/FUNDING=RATE` (`USD/CNY=7.1234`: a payment in USD
    /// from a CNY wallet costs 7.1234 fen per cent), for pairs never set at run time:
    /// `PUT /v1/fx-rates` stores a pair's rate (versioned, audited) and every node follows it.
    #[arg(long, env = "QIANBAO_FX_RATES", value_delimiter = ',')]
    fx_rates: Vec<String>,
    /// Wait before the second attempt of a webhook delivery; doubles per attempt (to 1 h).
    #[arg(long, env = "QIANBAO_WEBHOOK_RETRY_FIRST_MS", default_value_t = 1_000)]
    webhook_retry_first_ms: u64,
    /// Let webhook endpoints name, and deliveries reach, loopback, private and other
    /// non-public addresses (development only).
    #[arg(long, env = "QIANBAO_WEBHOOK_PRIVATE_URLS")]
    webhook_private_urls: bool,
    /// Deliver webhooks through this egress proxy (`http://host:port`), which then resolves
    /// names and must refuse non-public addresses itself; address hosts are still checked.
    #[arg(long, env = "QIANBAO_WEBHOOK_EGRESS_PROXY")]
    webhook_egress_proxy: Option<String>,
    /// The platform operations endpoint: every fund-safety alert that fires or resolves is
    /// POSTed there as JSON, signed like webhooks (`Qianbao-Signature`) with
    /// `--ops-webhook-secret`.
    #[arg(long, env = "QIANBAO_OPS_WEBHOOK_URL")]
    ops_webhook_url: Option<String>,
    /// The secret signing alerts sent to `--ops-webhook-url`.
    #[arg(long, env = "QIANBAO_OPS_WEBHOOK_SECRET", hide_env_values = true)]
    ops_webhook_secret: Option<String>,
    /// This node's name, the same across its restarts: idempotency claims carry it, and a
    /// node that starts releases the claims its crashed predecessor left. Nodes sharing one
    /// PostgreSQL need distinct names. Default: the host name and the listen port.
    #[arg(long, env = "QIANBAO_NODE_NAME")]
    node_name: Option<String>,
    /// A TOML file with any of the settings above (keys as the long flags, with `_` for
    /// `-`). Flags win over environment variables, which win over the file.
    #[arg(long, env = "QIANBAO_CONFIG")]
    config: Option<PathBuf>,
}

/// The optional configuration file: every key is optional and named as its flag.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_schema: Option<String>,
    admin_tenant: Option<String>,
    rate_limit_per_sec: Option<u32>,
    rate_limit_burst: Option<u32>,
    banksim_url: Option<String>,
    test_banksim_url: Option<String>,
    no_test_book: Option<bool>,
    admission_write_target_ms: Option<u64>,
    admission_read_target_ms: Option<u64>,
    channels: Option<Vec<String>>,
    assets: Option<Vec<String>>,
    inquiry_not_found_final_ms: Option<u64>,
    inquiry_attempts_max: Option<u32>,
    inquiry_escalated_delay_ms: Option<u64>,
    inspect_after_ms: Option<u64>,
    stuck_after_ms: Option<u64>,
    settlement_every_secs: Option<u64>,
    ops_approval_minor: Option<u64>,
    webhook_retry_first_ms: Option<u64>,
    webhook_private_urls: Option<bool>,
    webhook_egress_proxy: Option<String>,
    ops_webhook_url: Option<String>,
    ops_webhook_secret: Option<String>,
    points: Option<String>,
    fx_rates: Option<Vec<String>>,
    node_name: Option<String>,
    /// Each channel's terms (`[channel_terms.bank_a]`: fees, amounts, timeout, limits,
    /// breaker); only in the file.
    #[serde(default)]
    channel_terms: std::collections::BTreeMap<String, crate::payments::ChannelSettings>,
}

impl ServeArgs {
    /// Fills every setting that neither a flag nor an environment variable gave from the
    /// `--config` file, if there is one.
    pub fn apply_config_file(&mut self, matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let Some(path) = &self.config else { return Ok(()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let file: ConfigFile = toml::from_str(&text)
            .with_context(|| format!("parsing the config file {}", path.display()))?;
        self.channel_settings = file.channel_terms;
        // Only values clap took from a default (or nowhere) yield to the file.
        let unset = |id: &str| {
            matches!(matches.value_source(id), None | Some(clap::parser::ValueSource::DefaultValue))
        };
        if let (true, Some(value)) = (unset("listen"), file.listen) {
            self.listen = value;
        }
        if let (true, Some(value)) = (unset("data_dir"), file.data_dir) {
            self.store.data_dir = value;
        }
        if let (true, Some(value)) = (unset("database_url"), file.database_url) {
            self.store.database_url = Some(value);
        }
        if let (true, Some(value)) = (unset("database_schema"), file.database_schema) {
            self.store.database_schema = value;
        }
        if let (true, Some(value)) = (unset("node_name"), file.node_name) {
            self.node_name = Some(value);
        }
        if let (true, Some(value)) = (unset("admin_tenant"), file.admin_tenant) {
            self.admin_tenant = value;
        }
        if let (true, Some(value)) = (unset("rate_limit_per_sec"), file.rate_limit_per_sec) {
            self.rate_limit_per_sec = value;
        }
        if let (true, Some(value)) = (unset("rate_limit_burst"), file.rate_limit_burst) {
            self.rate_limit_burst = value;
        }
        if let (true, Some(value)) = (unset("banksim_url"), file.banksim_url) {
            self.banksim_url = Some(value);
        }
        if let (true, Some(value)) = (unset("test_banksim_url"), file.test_banksim_url) {
            self.test_banksim_url = Some(value);
        }
        if let (true, Some(value)) = (unset("no_test_book"), file.no_test_book) {
            self.no_test_book = value;
        }
        if let (true, Some(value)) =
            (unset("admission_write_target_ms"), file.admission_write_target_ms)
        {
            self.admission_write_target_ms = Some(value);
        }
        if let (true, Some(value)) =
            (unset("admission_read_target_ms"), file.admission_read_target_ms)
        {
            self.admission_read_target_ms = Some(value);
        }
        if let (true, Some(value)) = (unset("channels"), file.channels) {
            self.channels = value;
        }
        if let (true, Some(value)) = (unset("assets"), file.assets) {
            self.assets = value;
        }
        if let (true, Some(value)) =
            (unset("inquiry_not_found_final_ms"), file.inquiry_not_found_final_ms)
        {
            self.inquiry_not_found_final_ms = value;
        }
        if let (true, Some(value)) = (unset("inquiry_attempts_max"), file.inquiry_attempts_max) {
            self.inquiry_attempts_max = value;
        }
        if let (true, Some(value)) =
            (unset("inquiry_escalated_delay_ms"), file.inquiry_escalated_delay_ms)
        {
            self.inquiry_escalated_delay_ms = value;
        }
        if let (true, Some(value)) = (unset("inspect_after_ms"), file.inspect_after_ms) {
            self.inspect_after_ms = value;
        }
        if let (true, Some(value)) = (unset("stuck_after_ms"), file.stuck_after_ms) {
            self.stuck_after_ms = value;
        }
        if let (true, Some(value)) = (unset("settlement_every_secs"), file.settlement_every_secs) {
            self.settlement_every_secs = value;
        }
        if let (true, Some(value)) = (unset("ops_approval_minor"), file.ops_approval_minor) {
            self.ops_approval_minor = value;
        }
        if let (true, Some(value)) = (unset("webhook_retry_first_ms"), file.webhook_retry_first_ms)
        {
            self.webhook_retry_first_ms = value;
        }
        if let (true, Some(value)) = (unset("webhook_egress_proxy"), file.webhook_egress_proxy) {
            self.webhook_egress_proxy = Some(value);
        }
        if let (true, Some(value)) = (unset("ops_webhook_url"), file.ops_webhook_url) {
            self.ops_webhook_url = Some(value);
        }
        if let (true, Some(value)) = (unset("ops_webhook_secret"), file.ops_webhook_secret) {
            self.ops_webhook_secret = Some(value);
        }
        if let (true, Some(value)) = (unset("webhook_private_urls"), file.webhook_private_urls) {
            self.webhook_private_urls = value;
        }
        if let (true, Some(value)) = (unset("points"), file.points) {
            self.points = value;
        }
        if let (true, Some(value)) = (unset("fx_rates"), file.fx_rates) {
            self.fx_rates = value;
        }
        Ok(())
    }

    fn admission(&self) -> server::admission::AdmissionConfig {
        let default_target_ms = if self.store.database_url.is_some() {
            ADMISSION_TARGET_MS_POSTGRES
        } else {
            ADMISSION_TARGET_MS_EMBEDDED
        };
        let target_us = |ms: Option<u64>| Some(ms.unwrap_or(default_target_ms).max(1) * 1_000);
        let mut config = server::admission::AdmissionConfig {
            enabled: !self.no_admission,
            ..Default::default()
        };
        let [writes, reads, _] = &mut config.classes;
        writes.target_latency_us = target_us(self.admission_write_target_ms);
        reads.target_latency_us = target_us(self.admission_read_target_ms);
        config
    }

    fn key_rate_limit(&self) -> Option<server::limits::KeyRateLimit> {
        let per_sec = NonZeroU32::new(self.rate_limit_per_sec)?;
        let burst = NonZeroU32::new(self.rate_limit_burst)
            .unwrap_or_else(|| per_sec.saturating_mul(NonZeroU32::MIN.saturating_add(1)));
        Some(server::limits::KeyRateLimit { per_sec, burst })
    }
}

/// The standby's server (`server::standby`) on a copy of the node's listener, until the
/// books are open; then the service's own router serves the listener.
struct StandingBy {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

/// How long a standby's open connections may take to finish once the books are open.
const STANDBY_HANDOVER_MAX: Duration = Duration::from_secs(5);

impl StandingBy {
    fn start(
        runtime: &tokio::runtime::Runtime,
        listener: &std::net::TcpListener,
    ) -> anyhow::Result<StandingBy> {
        let copy = listener.try_clone()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(copy) {
                Ok(listener) => listener,
                Err(error) => return tracing::warn!(%error, "the standby could not listen"),
            };
            let serving = axum::serve(listener, server::standby::standby_router())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
            if let Err(error) = serving.await {
                tracing::warn!(%error, "the standby's server stopped");
            }
        });
        Ok(StandingBy { stop, served })
    }

    fn stop(self, runtime: &tokio::runtime::Runtime) {
        let _ = self.stop.send(());
        let served = self.served;
        runtime.block_on(async {
            let abort = served.abort_handle();
            if tokio::time::timeout(STANDBY_HANDOVER_MAX, served).await.is_err() {
                abort.abort();
            }
        });
    }
}

/// How often expired idempotency records are purged.
const IDEMPOTENCY_PURGE_INTERVAL_SECS: u64 = 3600;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let node = args.node_name.clone().unwrap_or_else(|| default_node_name(args.listen));
    // Bound before the books open: a standby (the journal-first engine on PostgreSQL, another
    // node holding the book) answers health checks while it waits for the book.
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "qianbao bound to http://{}; serving once the books are open",
        listener.local_addr()?
    );
    let standing_by = StandingBy::start(&runtime, &listener)?;
    let books = args.store.start_books_as(PipelineConfig::default(), &node)?;
    let storage_metrics = books.storage_metrics();
    let crate::Books { ledger, reader, engine } = books;
    let access: Arc<dyn access::AccessStore> = Arc::from(args.store.access()?);
    let admin_tenant = access::TenantId::new(&args.admin_tenant)
        .map_err(|e| anyhow::anyhow!("--admin-tenant: {e}"))?;
    tracing::info!(
        listen = %args.listen,
        store = if args.store.database_url.is_some() { "postgres" } else { "sqlite" },
        ledger_engine = if engine.is_some() { "journal" } else { "direct" },
        data_dir = %args.store.data_dir.display(),
        database_url = args.store.database_url.as_deref().map(store::postgres::masked_url).unwrap_or_default(),
        database_schema = %args.store.database_schema,
        admin_tenant = %args.admin_tenant,
        node = %node,
        rate_limit_per_sec = args.rate_limit_per_sec,
        rate_limit_burst = args.key_rate_limit().map_or(0, |limit| limit.burst.get()),
        banksim_url = args.banksim_url.as_deref().unwrap_or("-"),
        webhook_egress_proxy = args.webhook_egress_proxy.as_deref().map(store::postgres::masked_url).unwrap_or_default(),
        channels = %args.channels.join(","),
        assets = %args.assets.join(","),
        webhook_private_urls = args.webhook_private_urls,
        ops_approval_minor = args.ops_approval_minor,
        stuck_after_ms = args.stuck_after_ms,
        settlement_every_secs = args.settlement_every_secs,
        config = args.config.as_ref().map(|path| path.display().to_string()).unwrap_or_default(),
        "effective configuration"
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    bootstrap_admin_key(access.as_ref(), &args.admin_tenant, clock.now().0)?;
    // Before serving: whatever this node had claimed when it last stopped is abandoned.
    let released = access.release_node_claims(&node)?;
    if released > 0 {
        tracing::info!(released, %node, "released idempotency claims of this node's previous run");
    }
    // The blocking PostgreSQL clients inside the reader and the access store must not be
    // dropped on a runtime thread (their Drop blocks on a runtime of their own): these two
    // references keep them alive until the runtime is gone.
    let keep_alive = (reader.clone(), access.clone());
    let settings = crate::payments::PaymentSettings {
        banksim_url: args.banksim_url.clone(),
        channels: args.channels.clone(),
        assets: args.assets.clone(),
        inquiry_not_found_final_ms: args.inquiry_not_found_final_ms,
        inquiry_attempts_max: args.inquiry_attempts_max,
        inquiry_escalated_delay_ms: args.inquiry_escalated_delay_ms,
        inspect_after_ms: args.inspect_after_ms,
        stuck_after_ms: args.stuck_after_ms,
        settlement_every_secs: args.settlement_every_secs,
        ops_approval_minor: args.ops_approval_minor,
        webhook_retry_first_ms: args.webhook_retry_first_ms,
        webhook_private_urls: args.webhook_private_urls,
        webhook_egress_proxy: args.webhook_egress_proxy.clone(),
        ops_webhook: match (&args.ops_webhook_url, &args.ops_webhook_secret) {
            (Some(url), Some(secret)) => Some((url.clone(), secret.clone())),
            (None, None) => None,
            _ => anyhow::bail!("--ops-webhook-url and --ops-webhook-secret go together"),
        },
        points: Some(args.points.clone()),
        fx_rates: args.fx_rates.clone(),
        channel_settings: args.channel_settings.clone(),
        livemode: true,
    };
    let core =
        crate::payments::start(&args.store, &settings, ledger.handle(), reader.clone(), &runtime)?;
    // Likewise the payment core's stores (orders, webhooks, inquiries, reconciliation, the
    // operators' desk).
    let keep_alive = (
        keep_alive,
        core.executor.clone(),
        core.webhooks.clone(),
        core.inquirer.clone(),
        core.reconciler.clone(),
        core.desk.clone(),
    );
    let mut state = server::AppState::new(ledger.handle(), reader, access.clone(), clock.clone())?
        .with_storage_metrics(storage_metrics);
    if let Some(secret) = &args.console_secret {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(secret.trim(), &mut bytes)
            .context("--console-secret must be 64 hex characters (32 bytes)")?;
        state = state.with_console_secret(bytes);
    }
    let state = state
        .with_admin_tenant(admin_tenant)
        .with_node(node)
        .with_key_rate_limit(args.key_rate_limit())
        .with_payments(core.executor.clone())
        .with_recon(core.reconciler.clone())
        .with_desk(core.desk.clone(), core.switches.clone())
        .with_admission(args.admission())
        .with_webhooks(core.webhooks.clone(), args.webhook_private_urls);
    let rate_limits = state.rate_limits.clone();
    let test_book = if args.no_test_book {
        None
    } else {
        Some(TestBook::start(&args, settings, &state, &runtime)?)
    };
    let app = match &test_book {
        Some(book) => server::books::router_with_test_book(state, book.state.clone()),
        None => server::router(state),
    };
    // Both books are open (the test book's lease too): the service takes the listener over.
    standing_by.stop(&runtime);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        eprintln!("qianbao listening on http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let executor = core.executor.clone();
        let background = tokio::spawn(crate::payments::run_background(core, stopped.clone()));
        let test_background = test_book.as_ref().map(|book| book.run_background(stopped.clone()));
        let purge = tokio::spawn(purge_idempotency(access, rate_limits, clock, stopped));
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        executor.finish_batches(PAYOUT_BATCHES_GRACE).await;
        if let Some(book) = &test_book {
            book.executor.finish_batches(PAYOUT_BATCHES_GRACE).await;
        }
        let _ = stop.send(true);
        let _ = purge.await;
        let _ = background.await;
        if let Some(test_background) = test_background {
            let _ = test_background.await;
        }
        anyhow::Ok(())
    })?;
    drop(runtime);
    drop(keep_alive);
    // In-flight requests are answered; now drain the posting pipelines.
    ledger.shutdown();
    if let Some(book) = test_book {
        book.shutdown();
    }
    eprintln!("qianbao stopped");
    Ok(())
}

/// The test book (test mode, `server::books`): a ledger and payment core of its own, in
/// `StoreArgs::test_book`, whose channels are only the simulator at `--test-banksim-url`.
struct TestBook {
    state: server::AppState,
    executor: Arc<executor::Executor>,
    core: std::sync::Mutex<Option<crate::payments::PaymentCore>>,
    ledger: ledger::Ledger,
    /// The blocking PostgreSQL clients must not be dropped on a runtime thread.
    keep_alive: Vec<Arc<dyn std::any::Any + Send + Sync>>,
}

impl TestBook {
    fn start(
        args: &ServeArgs,
        live: crate::payments::PaymentSettings,
        live_state: &server::AppState,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<TestBook> {
        if let (Some(test), Some(live)) = (&args.test_banksim_url, &args.banksim_url) {
            anyhow::ensure!(
                test.trim_end_matches('/') != live.trim_end_matches('/'),
                "--test-banksim-url must be another simulator than --banksim-url: the books \
                 must not share a channel's statements, callbacks or request ids"
            );
        }
        let store = args.store.test_book();
        let node = args.node_name.clone().unwrap_or_else(|| default_node_name(args.listen));
        let crate::Books { ledger, reader, .. } =
            store.start_books_as(PipelineConfig::default(), &node)?;
        let settings = crate::payments::PaymentSettings {
            banksim_url: args.test_banksim_url.clone(),
            // Fund-safety alerts of the test book page no one.
            ops_webhook: None,
            livemode: false,
            ..live
        };
        let core =
            crate::payments::start(&store, &settings, ledger.handle(), reader.clone(), runtime)
                .context("starting the test book")?;
        let state = live_state
            .test_book(ledger.handle(), reader.clone())
            .with_payments(core.executor.clone())
            .with_recon(core.reconciler.clone())
            .with_desk(core.desk.clone(), core.switches.clone())
            .with_webhooks(core.webhooks.clone(), args.webhook_private_urls);
        tracing::info!(
            data_dir = %store.data_dir.display(),
            database_schema = %store.database_schema,
            banksim_url = args.test_banksim_url.as_deref().unwrap_or("-"),
            "test book started"
        );
        let keep_alive: Vec<Arc<dyn std::any::Any + Send + Sync>> = vec![
            Arc::new(reader),
            Arc::new(core.webhooks.clone()),
            Arc::new(core.inquirer.clone()),
            Arc::new(core.reconciler.clone()),
            Arc::new(core.desk.clone()),
        ];
        Ok(TestBook {
            state,
            executor: core.executor.clone(),
            core: std::sync::Mutex::new(Some(core)),
            ledger,
            keep_alive,
        })
    }

    /// The test book's background loops, their log lines marked `mode=test`.
    fn run_background(
        &self,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        use tracing::Instrument;
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner()).take();
        tokio::spawn(
            async move {
                if let Some(core) = core {
                    crate::payments::run_background(core, stopped).await;
                }
            }
            .instrument(tracing::info_span!("book", mode = "test")),
        )
    }

    /// Drains the test book's posting pipeline (after the runtime is gone).
    fn shutdown(self) {
        drop(self.state);
        drop(self.keep_alive);
        self.ledger.shutdown();
    }
}

/// How long a stopping server lets payout batches already accepted carry on before it stops
/// them (inspection resumes their items at the next start).
const PAYOUT_BATCHES_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// `<host name>:<listen port>`: stable across restarts of the same service on the same host.
fn default_node_name(listen: SocketAddr) -> String {
    format!("{}:{}", crate::host_name(), listen.port())
}

/// On first start (no keys at all) creates an admin key and prints it once.
fn bootstrap_admin_key(
    access: &dyn access::AccessStore,
    tenant: &str,
    now_us: u64,
) -> anyhow::Result<()> {
    if access.count_keys()? > 0 {
        return Ok(());
    }
    let tenant =
        access::TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--admin-tenant: {e}"))?;
    let (key, secret) = access::generate_key(
        tenant,
        access::KeyMode::Live,
        vec![access::Scope::Admin],
        false,
        now_us,
    )?;
    access.insert_key(&key)?;
    println!("Created the admin API key (shown once, store it now):\n{}", secret.expose());
    tracing::info!(key_id = %key.id, "admin key created");
    Ok(())
}

async fn purge_idempotency(
    access: Arc<dyn access::AccessStore>,
    rate_limits: Arc<server::limits::RateLimits>,
    clock: Arc<dyn Clock>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let interval = std::time::Duration::from_secs(IDEMPOTENCY_PURGE_INTERVAL_SECS);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        rate_limits.shrink();
        let now = clock.now().0;
        let before = now.saturating_sub(access::IDEMPOTENCY_RETENTION_US);
        let nonces_before =
            now.saturating_sub(2 * access::signature::SIGNATURE_WINDOW_SECS * 1_000_000);
        let access = access.clone();
        let purged = tokio::task::spawn_blocking(move || {
            let n = access.purge_idempotency(before)?;
            Ok::<u64, access::AccessError>(n + access.purge_nonces(nonces_before)?)
        });
        match purged.await {
            Ok(Ok(n)) => tracing::info!(n, "purged expired idempotency records"),
            Ok(Err(error)) => tracing::warn!(%error, "idempotency purge failed"),
            Err(error) => tracing::warn!(%error, "idempotency purge task failed"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received; draining");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_store_arguments_print_the_database_password_masked() {
        let args = crate::StoreArgs {
            data_dir: "./data".into(),
            database_url: Some("postgres://qb:hunter2@db:5432/x".into()),
            database_schema: "qianbao".into(),
            ledger_engine: Some(crate::LedgerEngine::Journal),
            ledger_lease_ms: 10_000,
        };
        let printed = format!("{args:?}");
        assert!(printed.contains("postgres://qb:****@db:5432/x"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
