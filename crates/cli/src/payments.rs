//! Wiring of the payment core for `qianbao serve`: the order store beside the ledger, the
//! channel gateway (to the bank simulator when `--banksim-url` is set), status inquiry, and
//! the background loops (inquiry sweeps, inspection 巡检, settlement, and reconciliation
//! 对账: each channel's statement of the day before, fetched and reconciled every hour until
//! it is, and again whenever the channel publishes a new version).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use channels::banksim::{SimulatorChannel, SimulatorChannelConfig};
use channels::gateway::{Millis, SystemMillis};
use channels::inquiry::{Inquirer, InquiryPolicy, InquiryStore};
use channels::router::ChannelProfile;
use channels::{Channel, ChannelId, Gateway, GatewayConfig, Operation};
use executor::{Executor, ExecutorConfig, InquiryOwnerAdapter, OrderStore, PointsConfig};
use ledger::apply::Command;
use money::{Amount, Asset, AssetCode};
use reconciler::{DayQuery, PutStatement, ReconConfig, ReconStore, Reconciler};
use webhooks::{Deliverer, EgressPolicy, RetryPolicy, WebhookStore};

use crate::StoreArgs;

/// How often inquiry and webhook sweeps run, and how often inspection looks for stuck orders.
const INQUIRY_POLL_MS: u64 = 500;
const WEBHOOK_POLL_MS: u64 = 200;
const INSPECTION_INTERVAL_MS: u64 = 10_000;
/// How often each node reads the operators' switches: a change is obeyed within this.
const SWITCH_POLL_MS: u64 = 1_000;
/// How often yesterday's statements are fetched: the first pass at start, then hourly, so a
/// statement published late (or republished) is picked up the same day.
const RECONCILIATION_INTERVAL: Duration = Duration::from_secs(3_600);
/// A channel call's limit before its outcome counts as unknown.
const CHANNEL_TIMEOUT_MS: u64 = 5_000;

/// What the payment core needs from the command line.
pub struct PaymentSettings {
    pub banksim_url: Option<String>,
    pub channels: Vec<String>,
    pub assets: Vec<String>,
    pub inquiry_not_found_final_ms: u64,
    pub inquiry_attempts_max: u32,
    pub inquiry_escalated_delay_ms: u64,
    pub inspect_after_ms: u64,
    pub stuck_after_ms: u64,
    /// The scheduled settlement run's interval; 0: none.
    pub settlement_every_secs: u64,
    /// Operators' actions moving this much or more need a second key.
    pub ops_approval_minor: u64,
    pub webhook_retry_first_ms: u64,
    /// Let webhook deliveries reach loopback and private addresses (development only).
    pub webhook_private_urls: bool,
    /// Deliver webhooks through this egress proxy (`http://host:port`).
    pub webhook_egress_proxy: Option<String>,
    /// Where fund-safety alerts are sent, and the secret signing them.
    pub ops_webhook: Option<(String, String)>,
    pub points: Option<String>,
    pub fx_rates: Vec<String>,
    /// Each channel's terms, from the configuration file.
    pub channel_settings: std::collections::BTreeMap<String, ChannelSettings>,
    /// False for the test book: its orders and events say so.
    pub livemode: bool,
}

pub struct PaymentCore {
    pub executor: Arc<Executor>,
    /// Reconciliation and end of day, on every node.
    pub reconciler: Arc<Reconciler>,
    /// Where fund-safety alerts go (URL and signing secret), if anywhere.
    pub ops_webhook: Option<(String, String)>,
    pub inquirer: Option<Arc<Inquirer>>,
    pub webhooks: Arc<dyn WebhookStore>,
    /// The operators' desk: their actions with approval, the switches, the audit log.
    pub desk: Arc<operators::Desk>,
    /// The switches as this node last read them (every `SWITCH_POLL_MS`).
    pub switches: Arc<operators::SharedBoard>,
    /// The scheduled settlement run's interval; `None`: no scheduled run.
    settlement_every: Option<Duration>,
    deliverer: Arc<Deliverer>,
}

/// `CNY:2` → the asset CNY with 2 decimals.
fn parse_asset(raw: &str) -> anyhow::Result<Asset> {
    let (code, scale) =
        raw.split_once(':').with_context(|| format!("--assets: {raw:?} is not CODE:SCALE"))?;
    let code = AssetCode::new(code).map_err(|e| anyhow::anyhow!("--assets {raw:?}: {e}"))?;
    let scale: u8 = scale.parse().with_context(|| format!("--assets {raw:?}: scale"))?;
    Asset::new(code, scale).map_err(|e| anyhow::anyhow!("--assets {raw:?}: {e}"))
}

/// `POINTS:CNY:1` → points in the asset POINTS, each worth 1 minor unit of CNY.
fn parse_points(raw: &str) -> anyhow::Result<PointsConfig> {
    let mut parts = raw.split(':');
    let (Some(asset), Some(cash), Some(value), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        anyhow::bail!("--points {raw:?}: expected POINTS_ASSET:CASH_ASSET:MINOR_PER_POINT");
    };
    let asset = AssetCode::new(asset).map_err(|e| anyhow::anyhow!("--points {raw:?}: {e}"))?;
    let cash_asset = AssetCode::new(cash).map_err(|e| anyhow::anyhow!("--points {raw:?}: {e}"))?;
    let value_minor_per_point: u64 =
        value.parse().with_context(|| format!("--points {raw:?}: value per point"))?;
    anyhow::ensure!(value_minor_per_point > 0, "--points {raw:?}: a point must be worth something");
    Ok(PointsConfig { asset, cash_asset, value_minor_per_point })
}

/// `USD/CNY=7.1234` → payments in USD funded from CNY at 7.1234 fen per cent.
fn parse_fx_rate(raw: &str) -> anyhow::Result<(AssetCode, AssetCode, payments::booking::Rate)> {
    let bad = || anyhow::anyhow!("--fx-rates {raw:?}: expected ASSET/FUNDING=RATE");
    let (pair, rate) = raw.split_once('=').ok_or_else(bad)?;
    let (asset, funding) = pair.split_once('/').ok_or_else(bad)?;
    let asset = AssetCode::new(asset).map_err(|_| bad())?;
    let funding = AssetCode::new(funding).map_err(|_| bad())?;
    let rate = payments::booking::Rate::parse(rate).ok_or_else(bad)?;
    anyhow::ensure!(asset != funding, "--fx-rates {raw:?}: the two assets must differ");
    Ok((asset, funding, rate))
}

/// The secret shared with a simulated channel: `QIANBAO_CHANNEL_SECRET_<NAME>`, else the
/// simulator's built-in development secret.
fn channel_secret(name: &str) -> String {
    std::env::var(format!("QIANBAO_CHANNEL_SECRET_{}", name.to_ascii_uppercase()))
        .unwrap_or_else(|_| format!("{name}-dev-secret"))
}

/// A channel's terms from the configuration file (`[channel_terms.<name>]`): what it charges,
/// the amounts and accounts it takes, how long a call may take, its limits (限流) and its
/// breaker. Unset keys keep the defaults (no fee, any amount, 5 s, 256 calls at once, the
/// breaker's defaults). Routing by cost uses the fees.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    pub fee_bps: Option<u32>,
    pub fee_fixed_minor: Option<u64>,
    pub amount_min_minor: Option<u64>,
    pub amount_max_minor: Option<u64>,
    pub account_prefixes: Option<Vec<String>>,
    pub timeout_ms: Option<u64>,
    pub limits: Option<channels::limits::LimitsConfig>,
    pub breaker: Option<channels::breaker::BreakerConfig>,
}

fn amount_of(key: &str, minor: u64) -> anyhow::Result<Amount> {
    Amount::new(minor).ok_or_else(|| anyhow::anyhow!("{key}: {minor} is past the largest amount"))
}

fn profile(
    id: ChannelId,
    assets: &[AssetCode],
    settings: &ChannelSettings,
) -> anyhow::Result<ChannelProfile> {
    let table = format!("[channel_terms.{id}]");
    let key = |name: &str| format!("{table} {name}");
    let fee_bps = settings.fee_bps.unwrap_or(0);
    anyhow::ensure!(fee_bps <= 10_000, "{}: at most 10000 (the whole amount)", key("fee_bps"));
    let timeout_ms = settings.timeout_ms.unwrap_or(CHANNEL_TIMEOUT_MS);
    anyhow::ensure!(timeout_ms > 0, "{}: above zero", key("timeout_ms"));
    let amount_min = amount_of(&key("amount_min_minor"), settings.amount_min_minor.unwrap_or(1))?;
    let amount_max = match settings.amount_max_minor {
        Some(minor) => amount_of(&key("amount_max_minor"), minor)?,
        None => Amount::MAX,
    };
    anyhow::ensure!(
        amount_min <= amount_max,
        "{}: below amount_min_minor",
        key("amount_max_minor")
    );
    Ok(ChannelProfile {
        id,
        operations: Operation::ALL.to_vec(),
        assets: assets.to_vec(),
        amount_min,
        amount_max,
        account_prefixes: settings.account_prefixes.clone().unwrap_or_default(),
        fee_fixed: amount_of(&key("fee_fixed_minor"), settings.fee_fixed_minor.unwrap_or(0))?,
        fee_bps,
        timeout_ms,
        limits: settings.limits.unwrap_or_default(),
        breaker: settings.breaker.unwrap_or_default(),
    })
}

pub fn start(
    store: &StoreArgs,
    settings: &PaymentSettings,
    ledger: ledger::LedgerHandle,
    books: Arc<dyn ledger::port::LedgerReader>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<PaymentCore> {
    let orders: Arc<dyn OrderStore> = match store.pg_target() {
        Some(target) => {
            Arc::new(store::PgOrderStore::connect(&target).context("connecting the order store")?)
        }
        None => Arc::new(
            store::SqliteOrderStore::open(store.data_dir.join("orders.db"))
                .context("opening orders.db")?,
        ),
    };
    let webhooks: Arc<dyn WebhookStore> = match store.pg_target() {
        Some(target) => Arc::new(
            store::PgWebhookStore::connect(&target).context("connecting the webhook store")?,
        ),
        None => Arc::new(
            store::SqliteWebhookStore::open(store.data_dir.join("orders.db"))
                .context("opening orders.db for webhooks")?,
        ),
    };
    let policy =
        RetryPolicy { first_delay_ms: settings.webhook_retry_first_ms, ..RetryPolicy::default() };
    let egress = EgressPolicy { allow_private: settings.webhook_private_urls };
    let deliverer = match &settings.webhook_egress_proxy {
        None => Deliverer::new(webhooks.clone(), policy, egress),
        Some(proxy) => Deliverer::through_proxy(webhooks.clone(), policy, egress, proxy),
    };
    let deliverer = Arc::new(deliverer.map_err(anyhow::Error::msg)?);
    let assets =
        settings.assets.iter().map(|raw| parse_asset(raw)).collect::<Result<Vec<_>, _>>()?;
    if let Some(stray) =
        settings.channel_settings.keys().find(|name| !settings.channels.contains(name))
    {
        anyhow::bail!("[channel_terms.{stray}] in the config file names no channel of --channels");
    }
    let clock: Arc<dyn Millis> = Arc::new(SystemMillis);
    let gateway = match &settings.banksim_url {
        None => None,
        Some(base_url) => {
            let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
            let mut profiles = Vec::new();
            let codes: Vec<AssetCode> = assets.iter().map(Asset::code).collect();
            for name in &settings.channels {
                let id = ChannelId::new(name.as_str())
                    .map_err(|e| anyhow::anyhow!("--channels {name:?}: {e}"))?;
                let terms = settings.channel_settings.get(name).cloned().unwrap_or_default();
                let profile = profile(id.clone(), &codes, &terms)?;
                channels.push(Arc::new(SimulatorChannel::new(SimulatorChannelConfig {
                    id,
                    base_url: base_url.trim_end_matches('/').to_owned(),
                    secret: channel_secret(name),
                    timeout_ms: profile.timeout_ms,
                })?));
                profiles.push(profile);
            }
            Some(Arc::new(Gateway::new(
                channels,
                profiles,
                GatewayConfig::default(),
                clock.clone(),
            )?))
        }
    };
    let points = match settings.points.as_deref().filter(|raw| !raw.is_empty()) {
        None => None,
        Some(raw) => Some(parse_points(raw)?),
    };
    let config = ExecutorConfig {
        points,
        inspect_after_ms: settings.inspect_after_ms,
        livemode: settings.livemode,
        ..ExecutorConfig::default()
    };
    let executor =
        Arc::new(Executor::new(orders, ledger.clone(), gateway.clone(), clock.clone(), config));
    let inquirer = match &gateway {
        None => None,
        Some(gateway) => {
            let tasks: Arc<dyn InquiryStore> = match store.pg_target() {
                Some(target) => Arc::new(
                    store::PgInquiryStore::connect(&target)
                        .context("connecting the inquiry store")?,
                ),
                None => Arc::new(
                    store::SqliteInquiryStore::open(store.data_dir.join("gateway.db"))
                        .context("opening gateway.db")?,
                ),
            };
            let policy = InquiryPolicy {
                not_found_final_after_ms: Some(settings.inquiry_not_found_final_ms),
                attempts_max: settings.inquiry_attempts_max,
                escalated_delay_ms: settings.inquiry_escalated_delay_ms,
                ..InquiryPolicy::default()
            };
            let inquirer = Arc::new(Inquirer::new(
                gateway.clone(),
                tasks,
                Arc::new(InquiryOwnerAdapter(executor.clone())),
                policy,
                clock,
            ));
            executor.set_inquirer(inquirer.clone());
            Some(inquirer)
        }
    };
    for raw in settings.fx_rates.iter().filter(|raw| !raw.is_empty()) {
        let (asset, funding, rate) = parse_fx_rate(raw)?;
        executor.set_fx_rate(asset, funding, rate);
    }
    runtime.block_on(async {
        let commands = assets.iter().map(|asset| Command::DefineAsset(*asset)).collect();
        for outcome in ledger.execute(commands).await? {
            if let ledger::Outcome::Asset(Err(rejection)) = outcome {
                anyhow::bail!("--assets: the ledger refused an asset: {}", rejection.code());
            }
        }
        executor.bootstrap().await.context("defining the chart of accounts")?;
        anyhow::Ok(())
    })?;
    // Always there: without channels there are no statements to fetch or upload (each names
    // a channel), but the break and loss registers are read and days close (日切) all the same.
    let recon_store: Arc<dyn ReconStore> = match store.pg_target() {
        Some(target) => Arc::new(
            store::PgReconStore::connect(&target).context("connecting the reconciliation store")?,
        ),
        None => Arc::new(
            store::SqliteReconStore::open(store.data_dir.join("recon.db"))
                .context("opening recon.db")?,
        ),
    };
    let config = ReconConfig {
        stuck_after_ms: settings.stuck_after_ms,
        ..ReconConfig::new(assets.iter().map(Asset::code).collect())
    };
    let reconciler = Arc::new(
        Reconciler::new(
            recon_store,
            executor.clone(),
            ledger.clone(),
            Arc::new(SystemMillis),
            config,
        )
        .with_books(books),
    );
    let ops_store: Arc<dyn operators::OpsStore> = match store.pg_target() {
        Some(target) => Arc::new(
            store::PgOpsStore::connect(&target).context("connecting the operators' store")?,
        ),
        None => Arc::new(
            store::SqliteOpsStore::open(store.data_dir.join("ops.db")).context("opening ops.db")?,
        ),
    };
    let desk = Arc::new(
        operators::Desk::new(
            ops_store,
            executor.store().clone(),
            inquirer.clone(),
            operators::ApprovalPolicy { approval_minor: settings.ops_approval_minor },
            Arc::new(SystemMillis),
        )
        .with_executor(executor.clone()),
    );
    // The switches and rates in force before the first request: a node must never serve
    // (or settle, or send a payout) with none of them obeyed.
    let switches: Arc<operators::SharedBoard> = Arc::default();
    let board = desk.board().context("reading the operators' switches")?;
    let rates = desk.fx_rates().context("reading the stored exchange rates")?;
    obey(Ok(board), Ok(rates), switches.changes(), &executor, &deliverer, &switches);
    Ok(PaymentCore {
        executor,
        reconciler,
        ops_webhook: settings.ops_webhook.clone(),
        inquirer,
        webhooks,
        desk,
        switches,
        settlement_every: (settings.settlement_every_secs > 0)
            .then(|| Duration::from_secs(settings.settlement_every_secs)),
        deliverer,
    })
}

/// Fetches every channel's statement of the business day before today and reconciles it,
/// unless it was reconciled already and the channel published nothing new.
async fn reconcile_yesterday(reconciler: &Reconciler) {
    let offset = reconciler.config().utc_offset_minutes;
    let yesterday = recon::BusinessDay::of(SystemMillis.now_ms(), offset).previous();
    for channel in reconciler.channels() {
        let channel = channel.as_str();
        let fetched = match reconciler.fetch(channel, yesterday, "schedule").await {
            Ok(fetched) => fetched,
            Err(error) => {
                tracing::warn!(channel, day = %yesterday, code = error.code(), %error, "statement not fetched");
                continue;
            }
        };
        let query = DayQuery {
            channel: Some(channel.to_owned()),
            business_day: Some(yesterday.days()),
            limit: 1,
        };
        let reconciled = reconciler.store().runs(&query).map(|runs| !runs.is_empty());
        if matches!(fetched, PutStatement::Same(_)) && matches!(reconciled, Ok(true)) {
            continue;
        }
        match reconciler.run(channel, yesterday, "schedule").await {
            Ok(run) => tracing::info!(
                channel, day = %yesterday, run = %run.id, counts = ?run.counts,
                breaks_new = run.breaks_new, auto_resolved = run.auto_resolved,
                "reconciled"
            ),
            Err(error) => {
                tracing::warn!(channel, day = %yesterday, code = error.code(), %error, "reconciliation failed")
            }
        }
    }
}

/// End of day (日切): closes every day after the last closed one up to yesterday, in order
/// (on a new installation, yesterday only).
async fn close_past_days(reconciler: &Reconciler) {
    let offset = reconciler.config().utc_offset_minutes;
    let yesterday = recon::BusinessDay::of(SystemMillis.now_ms(), offset).previous();
    let first = match reconciler.store().closed_days(1) {
        Ok(mut days) => match days.pop() {
            Some(last) => recon::BusinessDay::from_days(last.business_day).next(),
            None => yesterday,
        },
        Err(error) => {
            tracing::warn!(%error, "reading closed days");
            return;
        }
    };
    let mut day = first;
    while day <= yesterday {
        match reconciler.close_day(day, "schedule").await {
            Ok(closed) => tracing::info!(day = %day, hash = %closed.hash, "day closed"),
            Err(error) => {
                tracing::warn!(day = %day, code = error.code(), %error, "closing the day failed");
                return;
            }
        }
        day = day.next();
    }
}

/// One monitoring pass (资金安全监控): the rules evaluated, changes stored, and each change
/// handed to the notifier (which sends them on its own, so a slow endpoint never holds up
/// inspection, reconciliation or settlement).
async fn monitor(core: &PaymentCore, notify: Option<&tokio::sync::mpsc::Sender<monitors::Alert>>) {
    let escalated = core
        .inquirer
        .as_ref()
        .and_then(|inquirer| inquirer.store().backlog().ok())
        .map_or(0, |backlog| backlog.escalated);
    let outside = reconciler::monitoring::Outside { escalated_inquiries: escalated };
    let changed = match core.reconciler.monitor(outside).await {
        Ok(changed) => changed,
        Err(error) => {
            tracing::warn!(code = error.code(), %error, "monitoring pass failed");
            return;
        }
    };
    for alert in changed {
        match alert.state {
            monitors::AlertState::Firing => tracing::warn!(
                rule = alert.rule.as_str(), subject = %alert.subject,
                urgency = alert.urgency.as_str(), message = %alert.message, "fund alert firing"
            ),
            monitors::AlertState::Resolved => tracing::info!(
                rule = alert.rule.as_str(), subject = %alert.subject, "fund alert resolved"
            ),
        }
        if let Some(notify) = notify {
            if notify.try_send(alert).is_err() {
                tracing::warn!("the operations endpoint is behind: an alert change was not sent");
            }
        }
    }
}

/// Alert changes waiting for the operations endpoint, at most.
const OPS_QUEUE_MAX: usize = 1_024;

/// Sends alert changes to the operations endpoint in the order they happened, each signed
/// (`Qianbao-Signature`, as webhooks are). A refused or failed send is tried again, with
/// backoff, before anything after it: a receiver never sees a resolution before its firing.
async fn notify_ops(
    mut changes: tokio::sync::mpsc::Receiver<monitors::Alert>,
    url: String,
    secret: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "no HTTP client for the operations endpoint");
            return;
        }
    };
    loop {
        let alert = tokio::select! {
            _ = stop.changed() => return,
            next = changes.recv() => match next { Some(alert) => alert, None => return },
        };
        // A new measurement of a firing alert is a change of its own: its event id says so,
        // so a receiver that drops repeated ids still gets it.
        let event_id = format!("{}:{}:{}", alert.id, alert.state.as_str(), alert.value);
        let body =
            serde_json::json!({"type": format!("alert.{}", alert.state.as_str()), "data": alert})
                .to_string();
        let mut delay = Duration::from_secs(1);
        loop {
            let now_secs = SystemMillis.now_ms() / 1_000;
            let signature = webhooks::signing::sign(&secret, now_secs, body.as_bytes());
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header(webhooks::signing::HEADER_SIGNATURE, signature)
                .header(webhooks::signing::HEADER_EVENT_ID, &event_id)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => tracing::warn!(
                    status = response.status().as_u16(),
                    "the operations endpoint refused an alert"
                ),
                Err(error) => tracing::warn!(%error, "the operations endpoint is unreachable"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
}

/// Inquiry sweeps and inspection passes until `stop`.
pub async fn run_background(core: PaymentCore, stop: tokio::sync::watch::Receiver<bool>) {
    let inquiry = core
        .inquirer
        .clone()
        .map(|inquirer| tokio::spawn(inquirer.run(INQUIRY_POLL_MS, stop.clone())));
    let webhooks = tokio::spawn(core.deliverer.clone().run(WEBHOOK_POLL_MS, stop.clone()));
    let switches = tokio::spawn(obey_switches(
        core.desk.clone(),
        core.switches.clone(),
        core.executor.clone(),
        core.deliverer.clone(),
        stop.clone(),
    ));
    let mut stop = stop;
    let mut last_settlement_run = None;
    let mut last_reconciliation = None;
    let ops = core.ops_webhook.clone().map(|(url, secret)| {
        let (sender, changes) = tokio::sync::mpsc::channel(OPS_QUEUE_MAX);
        (sender, tokio::spawn(notify_ops(changes, url, secret, stop.clone())))
    });
    loop {
        monitor(&core, ops.as_ref().map(|(sender, _)| sender)).await;
        if let Err(error) = core.reconciler.resume().await {
            tracing::warn!(%error, "finishing breaks' resolutions");
        }
        if last_reconciliation
            .is_none_or(|at: std::time::Instant| at.elapsed() >= RECONCILIATION_INTERVAL)
        {
            last_reconciliation = Some(std::time::Instant::now());
            reconcile_yesterday(&core.reconciler).await;
            close_past_days(&core.reconciler).await;
            match core.reconciler.cross_check("schedule").await {
                Ok(run) if run.ok => tracing::info!(run = %run.id, "cross-checks passed"),
                Ok(run) => {
                    let failed: Vec<&str> =
                        run.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
                    tracing::warn!(run = %run.id, ?failed, "cross-checks found inconsistencies")
                }
                Err(error) => tracing::warn!(code = error.code(), %error, "cross-checks failed"),
            }
        }
        // Operators' actions approved but not carried out (a crash between the two).
        match core.desk.resume().await {
            Ok(0) => {}
            Ok(resumed) => tracing::info!(resumed, "operators' approved actions carried out"),
            Err(error) => tracing::warn!(%error, "carrying out operators' approved actions"),
        }
        let report = core.executor.inspect(1_000).await;
        if report.examined > 0 {
            tracing::info!(?report, "inspection pass");
        }
        // Settlement (T+N) runs at the first pass, then every `settlement_every` (an hour by
        // default; none at all when the deployment's own scheduler settles). Each run
        // settles each merchant at most once per cut-off day, so a restart or a second node
        // changes nothing. An operators' switch pauses it; it runs at the first pass after
        // the switch is off.
        let paused =
            core.switches.is_on(&operators::Switch::SettlementPaused, SystemMillis.now_ms());
        let due = |every: Duration| {
            last_settlement_run.is_none_or(|at: std::time::Instant| at.elapsed() >= every)
        };
        if paused {
            tracing::debug!("settlement paused by an operators' switch");
        } else if core.settlement_every.is_some_and(due) {
            last_settlement_run = Some(std::time::Instant::now());
            let made = core.executor.settle_all().await;
            if made > 0 {
                tracing::info!(settlements = made, "settlement run");
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(INSPECTION_INTERVAL_MS)) => {}
        }
    }
    if let Some(inquiry) = inquiry {
        let _ = inquiry.await;
    }
    let _ = webhooks.await;
    let _ = switches.await;
    if let Some((sender, notifier)) = ops {
        drop(sender);
        let _ = notifier.await;
    }
}

/// Reads the operators' switches and exchange rates every `SWITCH_POLL_MS` (so every node
/// obeys a change within a second or so), turns off the expired switches, and applies what is
/// not obeyed at the edge: channels' routing controls, payouts frozen on a channel, webhooks
/// held, and the rates payments are priced at.
async fn obey_switches(
    desk: Arc<operators::Desk>,
    switches: Arc<operators::SharedBoard>,
    executor: Arc<Executor>,
    deliverer: Arc<Deliverer>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let seen = switches.changes();
        let read = {
            let desk = desk.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(error) = desk.expire() {
                    tracing::warn!(%error, "expiring operators' switches");
                }
                (desk.board(), desk.fx_rates())
            })
            .await
        };
        match read {
            Ok((board, rates)) => obey(board, rates, seen, &executor, &deliverer, &switches),
            Err(error) => tracing::warn!(%error, "reading the operators' switches"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(SWITCH_POLL_MS)) => {}
        }
    }
}

/// Applies what was read: the switches (each part on its own, so a failure to read one
/// leaves the other in force). A board read before an operator's change through this node
/// is older than the one that change set: it is left for the next read (`seen`).
fn obey(
    board: Result<operators::Board, operators::DeskError>,
    rates: Result<Vec<operators::FxRateState>, operators::DeskError>,
    seen: u64,
    executor: &Executor,
    deliverer: &Deliverer,
    switches: &operators::SharedBoard,
) {
    match board {
        Ok(_) if switches.changes() != seen => {}
        Ok(board) => {
            let now_ms = SystemMillis.now_ms();
            apply_routes(&board, executor, now_ms);
            executor.set_frozen_payout_channels(board.frozen_payout_channels(now_ms));
            executor.set_held_orders(board.held_orders(now_ms));
            executor.set_killed_merchants(board.killed_merchants(now_ms));
            executor
                .set_settlement_paused(board.is_on(&operators::Switch::SettlementPaused, now_ms));
            deliverer.set_paused(board.is_on(&operators::Switch::WebhooksDelayed, now_ms));
            switches.set_read(board, seen);
        }
        Err(error) => tracing::warn!(%error, "reading the operators' switches"),
    }
    // The stored exchange rates, as operators last set them on any node.
    match rates {
        Ok(rates) => {
            for stored in rates {
                if executor.fx_rate(stored.asset, stored.funding) != Some(stored.rate) {
                    executor.set_fx_rate(stored.asset, stored.funding, stored.rate);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "reading the exchange rates"),
    }
}

/// Brings each channel's routing controls to what the switches say (only what differs).
fn apply_routes(board: &operators::Board, executor: &Executor, now_ms: u64) {
    use channels::router::{ControlAction, ControlChange};
    let Some(gateway) = executor.gateway() else { return };
    for channel in gateway.channel_ids() {
        let terms = board.channel_terms(&channel, now_ms);
        gateway.set_terms(
            &channel,
            terms.fee_bps,
            terms.breaker_error_permille,
            terms.rate_per_sec,
        );
        let (disabled, pinned, weight_permille) = board.route(&channel, now_ms);
        let current = gateway.channel_control(&channel).unwrap_or_default();
        let mut actions = Vec::new();
        if current.disabled != disabled {
            actions.push(if disabled { ControlAction::Disable } else { ControlAction::Enable });
        }
        if current.pinned != pinned {
            actions.push(if pinned { ControlAction::Pin } else { ControlAction::Unpin });
        }
        if current.weight_permille != weight_permille {
            actions.push(ControlAction::Weight { permille: weight_permille });
        }
        for action in actions {
            let change = ControlChange {
                at_ms: now_ms,
                channel: channel.clone(),
                action,
                operator: "switches".into(),
                reason: "the operators' switches".into(),
            };
            if let Err(error) = gateway.control(change) {
                tracing::warn!(%channel, %error, "applying a routing switch");
            }
        }
    }
}
