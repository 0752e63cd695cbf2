//! `qianbao loadtest`: drives a running deployment with a scenario's product mix at fixed
//! arrival rates, in steps, and writes a JSON and an HTML report (crate `loadtest`).
//!
//! Open loop: each request is sent at its intended instant whether or not earlier ones have
//! answered, and its latency is counted from that instant (never from when it was actually
//! sent), so a slow service cannot hide its queueing by slowing the load down (no
//! coordinated omission). Every write carries its own idempotency key, so a retry would be
//! safe; the tool does not retry, it counts.
//!
//! Set-up, before the first step: customers `<prefix>_c<i>` and merchants `<prefix>_m<j>`
//! are created (an existing one is kept) and each customer is topped up through a channel,
//! so that payments, transfers and withdrawals have money to move. A rerun with the same
//! prefix reuses them.
//!
//! The run goes through a test key, so it acts on the test book and cannot reach live
//! money; afterwards the fund-safety check (`loadtest::safety`) proves it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use loadtest::report::Report;
use loadtest::scenario::{Operation, Scenario};
use loadtest::schedule::{self, Completion, CustomerPicker, MerchantPicker, OperationPicker};
use loadtest::stats::{ErrorCode, Outcome, StepStats, StepSummary};
use rand::Rng;

mod safety;

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// The scenario file (TOML; `crates/loadtest/scenarios/` has examples).
    #[arg(long)]
    scenario: PathBuf,
    /// The service; several nodes comma-separated, each taking requests in turn.
    #[arg(
        long,
        env = "QIANBAO_URL",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    url: Vec<String>,
    /// A test key (`qb_test_…`) that creates parties and moves money in the test book (an
    /// admin test key of the platform, or a tenant's test key with the payment scopes). A
    /// live key is refused without `--live`.
    #[arg(long, env = "QIANBAO_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Load the live book with a live key, on purpose: it moves real money.
    #[arg(long)]
    live: bool,
    /// A live key with `ops:read`: the live journal's head is read before the set-up and
    /// after the run, and the fund-safety check fails if it moved.
    #[arg(long, env = "QIANBAO_LIVE_KEY", hide_env_values = true)]
    live_key: Option<String>,
    /// Live traffic runs beside the test: a moved live head is reported, not failed.
    #[arg(long)]
    live_traffic: bool,
    /// After the last step, how long orders acknowledged before they were final (a top-up
    /// waiting on its bank) may take to become final; one still not final fails the check.
    #[arg(long, default_value_t = 30)]
    settle_s: u64,
    /// Where `report.json` and `report.html` go.
    #[arg(long, default_value = "target/loadtest")]
    out: PathBuf,
    /// The asset every order moves.
    #[arg(long, default_value = "CNY")]
    asset: String,
    /// The service's points asset (customers get one account of it, and points to pay
    /// with); empty: none, and points+cash payments fail.
    #[arg(long, default_value = "POINTS")]
    points_asset: String,
    /// The card or bank account at the channel for top-ups, card payments and withdrawals.
    #[arg(long, default_value = "6222020000000001")]
    card: String,
    /// Instead of the scenario's steps: these rates per second, one step each.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u32>,
    /// Instead of the scenario's step duration, seconds.
    #[arg(long)]
    step_duration_s: Option<u32>,
    /// Instead of the scenario's warm-up, seconds (at the first step's rate, not counted).
    #[arg(long)]
    warmup_s: Option<u32>,
    /// Instead of the scenario's numbers of customers and merchants.
    #[arg(long)]
    customers: Option<u32>,
    #[arg(long)]
    merchants: Option<u32>,
    /// A request not answered within this long counts as a `timeout`.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The parties' id prefix: runs with another prefix use other parties.
    #[arg(long, default_value = "lt")]
    prefix: String,
    /// Each customer's top-up at set-up, minor units.
    #[arg(long, default_value_t = 10_000_000)]
    fund_minor: u64,
    /// Skip the set-up (the parties exist and have money).
    #[arg(long)]
    no_setup: bool,
    /// The bank simulator the key's book's channels are (for a test key, the service's
    /// `--test-banksim-url`): the scenario's `[channels.<name>]` profiles (latency,
    /// declines, capacity, outages) are played on it for the run, after the set-up, and
    /// cleared at the end. Without it, the profiles are not played.
    #[arg(long, env = "QIANBAO_BANKSIM_URL")]
    banksim_url: Option<String>,
}

/// Plays the scenario's channel profiles on the simulator: each channel's faults now, its
/// outages on a timer from `started`; `restore` clears them.
struct Profiles {
    http: reqwest::Client,
    base: String,
    channels: Vec<(String, loadtest::profile::ChannelProfile)>,
}

impl Profiles {
    async fn put(&self, channel: &str, faults: &serde_json::Value) -> anyhow::Result<()> {
        let url = format!("{}/admin/channels/{channel}/faults", self.base);
        let response = self.http.put(&url).json(faults).send().await.context("the simulator")?;
        anyhow::ensure!(response.status().is_success(), "{url}: {}", response.status());
        Ok(())
    }

    async fn apply(&self) -> anyhow::Result<()> {
        for (channel, profile) in &self.channels {
            self.put(channel, &profile.banksim_faults(false)).await?;
        }
        Ok(())
    }

    /// Each outage as a task: down at its start, the profile again at its end.
    fn outages(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let started = tokio::time::Instant::now();
        let mut timers = Vec::new();
        for (channel, profile) in &self.channels {
            for outage in &profile.outages {
                let (profiles, channel, profile) = (self.clone(), channel.clone(), profile.clone());
                let (start_s, end_s) = (outage.start_s, outage.end_s);
                timers.push(tokio::spawn(async move {
                    tokio::time::sleep_until(started + Duration::from_secs(start_s.into())).await;
                    eprintln!("  {channel}: outage from {start_s} s");
                    if let Err(error) = profiles.put(&channel, &profile.banksim_faults(true)).await
                    {
                        eprintln!("  {channel}: the outage could not start: {error:#}");
                    }
                    tokio::time::sleep_until(started + Duration::from_secs(end_s.into())).await;
                    eprintln!("  {channel}: back at {end_s} s");
                    if let Err(error) = profiles.put(&channel, &profile.banksim_faults(false)).await
                    {
                        eprintln!("  {channel}: the outage could not end: {error:#}");
                    }
                }));
            }
        }
        timers
    }

    async fn restore(&self) {
        for (channel, _) in &self.channels {
            if let Err(error) = self.put(channel, &serde_json::json!({})).await {
                eprintln!("profile {channel}: could not clear its faults: {error:#}");
            }
        }
    }
}

/// The scenario file with the command line's overrides, checked as the file would be.
fn scenario_of(args: &LoadtestArgs) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))?;
    let mut file: toml::Table = toml::from_str(&text).context("the scenario is not TOML")?;
    let table = |file: &mut toml::Table, name: &str| -> anyhow::Result<toml::Table> {
        match file.remove(name) {
            Some(toml::Value::Table(table)) => Ok(table),
            None => Ok(toml::Table::new()),
            Some(_) => anyhow::bail!("[{name}] must be a table"),
        }
    };
    let mut steps = table(&mut file, "steps")?;
    if !args.rates.is_empty() {
        for key in ["start_rate_per_s", "factor", "factor_permille", "n_steps"] {
            steps.remove(key);
        }
        let rates = args.rates.iter().map(|r| toml::Value::Integer(i64::from(*r))).collect();
        steps.insert("rates_per_s".into(), toml::Value::Array(rates));
    }
    if let Some(duration_s) = args.step_duration_s {
        steps.insert("duration_s".into(), toml::Value::Integer(i64::from(duration_s)));
    }
    file.insert("steps".into(), toml::Value::Table(steps));
    let mut parties = table(&mut file, "parties")?;
    for (key, value) in [("n_customers", args.customers), ("n_merchants", args.merchants)] {
        if let Some(value) = value {
            parties.insert(key.into(), toml::Value::Integer(i64::from(value)));
        }
    }
    file.insert("parties".into(), toml::Value::Table(parties));
    if let Some(warmup_s) = args.warmup_s {
        file.insert("warmup_s".into(), toml::Value::Integer(i64::from(warmup_s)));
    }
    let text = toml::to_string(&file).context("the scenario with its overrides")?;
    Ok(Scenario::from_toml(&text)?)
}

/// The service, as the load sees it: through the typed client users have too.
#[derive(Clone)]
struct Target {
    /// One per node; the set-up uses the first.
    clients: Vec<client::Client>,
    asset: String,
    points_asset: String,
    card: String,
    prefix: String,
}

impl Target {
    fn customer(&self, index: u32) -> String {
        format!("{}_c{index}", self.prefix)
    }

    fn merchant(&self, index: u32) -> String {
        format!("{}_m{index}", self.prefix)
    }
}

/// What a call's answer counts as in the report.
fn outcome_of<T>(answer: &Result<T, client::ClientError>) -> Outcome {
    let error = match answer {
        Ok(_) => return Outcome::Ok,
        Err(error) => error,
    };
    match error {
        client::ClientError::Transport(transport) if transport.is_timeout() => {
            Outcome::Failed(ErrorCode::TIMEOUT)
        }
        client::ClientError::Transport(_) => Outcome::Failed(ErrorCode::CONNECTION),
        other => Outcome::Failed(
            other
                .code()
                .and_then(|code| ErrorCode::new(code).ok())
                .unwrap_or_else(|| ErrorCode::http_status(other.status().unwrap_or(0))),
        ),
    }
}

/// The idempotency key of a request: its reference, so a retry would be the same request.
fn key_of(reference: &str) -> Option<client::IdempotencyKey> {
    client::IdempotencyKey::new(reference).ok()
}

fn minor(amount_minor: u64) -> client::Amount {
    client::Amount::new(amount_minor).unwrap_or(client::Amount::ZERO)
}

fn fresh_key() -> String {
    let mut raw = [0u8; 12];
    // A key that cannot be drawn is a key that collides: fall back on the clock.
    if getrandom::fill(&mut raw).is_err() {
        return format!("lt-{}", now_ms());
    }
    format!("lt-{}", hex::encode(raw))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// How the set-up retries what the service sheds or cannot answer now.
const SETUP_RETRY: client::RetryPolicy = client::RetryPolicy {
    attempts_max: 20,
    backoff_initial_ms: 100,
    backoff_max_ms: 2_000,
    retry_after_max_ms: 2_000,
};

/// Creates the parties (an existing one is kept) and funds each customer.
async fn set_up(target: &Target, scenario: &Scenario, fund_minor: u64) -> anyhow::Result<()> {
    let parties = scenario.parties();
    let total = u64::from(parties.n_customers()) + u64::from(parties.n_merchants());
    eprintln!(
        "set-up: {} customers (each topped up with {fund_minor}), {} merchants",
        parties.n_customers(),
        parties.n_merchants()
    );
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut jobs = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    for index in 0..parties.n_merchants() {
        let (target, limit, done) = (target.clone(), limit.clone(), done.clone());
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut merchant = client::parties::MerchantRequest::new(
                &target.merchant(index),
                &[target.asset.as_str()],
            );
            merchant.fee_bps = Some(60);
            let client = &target.clients[0];
            // The set-up is not measured: what the service sheds is sent again, same key.
            client::retry(&SETUP_RETRY, None, |key| client.create_merchant(&merchant, Some(key)))
                .await?;
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<(), anyhow::Error>(())
        });
    }
    for index in 0..parties.n_customers() {
        let (target, limit, done) = (target.clone(), limit.clone(), done.clone());
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let customer = target.customer(index);
            let mut assets = vec![target.asset.as_str()];
            if !target.points_asset.is_empty() {
                assets.push(target.points_asset.as_str());
            }
            let client = &target.clients[0];
            let request = client::parties::CustomerRequest::new(&customer, &assets);
            client::retry(&SETUP_RETRY, None, |key| client.create_customer(&request, Some(key)))
                .await?;
            let reference = format!("{customer}-fund");
            let topup = client::payments::TopUpBody {
                reference: reference.clone(),
                customer: customer.clone(),
                card: target.card.clone(),
                asset: target.asset.clone(),
                amount: minor(fund_minor),
            };
            client::retry(&SETUP_RETRY, key_of(&reference), |key| {
                client.create_topup(&topup, Some(key))
            })
            .await?;
            // Points for points+cash payments (the service's points asset, when it has one).
            if !target.points_asset.is_empty() {
                let reference = format!("{customer}-points");
                let grant = client::payments::PointsGrantBody {
                    reference: reference.clone(),
                    points: minor(1_000_000),
                };
                client::retry(&SETUP_RETRY, key_of(&reference), |key| {
                    client.grant_points(&customer, &grant, Some(key))
                })
                .await?;
            }
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        });
    }
    let ticker = progress("set-up", total, done.clone());
    while let Some(joined) = jobs.join_next().await {
        joined.context("a set-up task")?.context("setting up the parties")?;
    }
    ticker.abort();
    eprintln!("set-up: done");
    Ok(())
}

/// Prints `done of total` each second to stderr until aborted.
fn progress(
    what: &'static str,
    total: u64,
    done: Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let done = done.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("  {what}: {done} of {total}");
        }
    })
}

/// Orders made during the run: the most recent few thousand, for refunds and reads, and
/// every one acknowledged, for the fund-safety check.
#[derive(Default)]
struct Recent {
    payments: VecDeque<String>,
    orders: VecDeque<String>,
    acknowledged: safety::Acknowledged,
}

const RECENT_MAX: usize = 4096;

impl Recent {
    fn push(queue: &mut VecDeque<String>, id: String) {
        if queue.len() == RECENT_MAX {
            queue.pop_front();
        }
        queue.push_back(id);
    }
}

/// One request, typed.
enum Call {
    Topup(client::payments::TopUpBody),
    Payment(client::payments::PaymentBody),
    Refund(String, client::payments::RefundBody),
    WalletTransfer(client::payments::WalletTransferBody),
    Withdrawal(client::payments::WithdrawalBody),
    ReadOrder(String),
    ReadCustomer(String),
}

/// An order a write made (or found, retried).
struct Written {
    id: String,
    succeeded: bool,
    is_final: bool,
}

/// A write's outcome, and the order it made.
fn written(
    answer: Result<client::Reply<client::orders::OrderView>, client::ClientError>,
) -> (Outcome, Option<Written>) {
    let outcome = outcome_of(&answer);
    let order = answer.ok().map(|reply| Written {
        succeeded: reply.value.status == "succeeded",
        is_final: reply.value.is_final,
        id: reply.value.id,
    });
    (outcome, order)
}

impl Call {
    /// Sends it: what the report counts, and the order made.
    async fn send(self, client: &client::Client) -> (Outcome, Option<Written>) {
        match self {
            Call::Topup(body) => written(client.create_topup(&body, key_of(&body.reference)).await),
            Call::Payment(body) => {
                written(client.create_payment(&body, key_of(&body.reference)).await)
            }
            Call::Refund(payment, body) => {
                written(client.create_refund(&payment, &body, key_of(&body.reference)).await)
            }
            Call::WalletTransfer(body) => {
                written(client.create_wallet_transfer(&body, key_of(&body.reference)).await)
            }
            Call::Withdrawal(body) => {
                written(client.create_withdrawal(&body, key_of(&body.reference)).await)
            }
            Call::ReadOrder(id) => (outcome_of(&client.get_order(&id).await), None),
            Call::ReadCustomer(id) => (outcome_of(&client.get_customer(&id).await), None),
        }
    }
}

/// The request for `operation`, with parties drawn by the scenario's laws.
fn plan(
    target: &Target,
    operation: Operation,
    reference: String,
    rng: &mut impl Rng,
    customers: &CustomerPicker,
    merchants: &MerchantPicker,
    recent: &Mutex<Recent>,
) -> Call {
    let customer_index = customers.pick(rng);
    let customer = target.customer(customer_index);
    let merchant = target.merchant(merchants.pick(rng));
    let asset = target.asset.clone();
    let recent_of = |pick: fn(&Recent) -> &VecDeque<String>, rng: &mut dyn rand::RngCore| {
        let recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        let queue = pick(&recent);
        (!queue.is_empty()).then(|| queue[rng.random_range(0..queue.len())].clone())
    };
    let payment = |amount_minor| {
        client::payments::PaymentBody::new(
            &reference,
            &customer,
            &merchant,
            &asset,
            minor(amount_minor),
        )
    };
    match operation {
        Operation::Topup => Call::Topup(client::payments::TopUpBody {
            reference: reference.clone(),
            customer: customer.clone(),
            card: target.card.clone(),
            asset: asset.clone(),
            amount: minor(500),
        }),
        Operation::WalletPayment => Call::Payment(payment(100)),
        Operation::PointsCashPayment => {
            Call::Payment(client::payments::PaymentBody { points: Some(minor(10)), ..payment(100) })
        }
        Operation::CardPayment => Call::Payment(client::payments::PaymentBody {
            card: Some(target.card.clone()),
            ..payment(300)
        }),
        Operation::Refund => match recent_of(|r| &r.payments, rng) {
            Some(paid) => Call::Refund(
                paid,
                client::payments::RefundBody { reference: reference.clone(), amount: minor(1) },
            ),
            // Nothing to refund yet: a payment instead, so the offered rate holds.
            None => Call::Payment(payment(100)),
        },
        Operation::WalletTransfer => {
            // Never to oneself (refused as such): the next customer instead.
            let mut to_index = customers.pick(rng);
            if to_index == customer_index {
                to_index = (customer_index + 1) % customers.n_customers().max(1);
            }
            Call::WalletTransfer(client::payments::WalletTransferBody {
                reference: reference.clone(),
                from: customer.clone(),
                to: target.customer(to_index),
                asset: asset.clone(),
                amount: minor(10),
            })
        }
        Operation::Withdrawal => Call::Withdrawal(client::payments::WithdrawalBody {
            reference: reference.clone(),
            customer: customer.clone(),
            bank_account: target.card.clone(),
            asset: asset.clone(),
            amount: minor(200),
        }),
        Operation::ReadOrder => match recent_of(|r| &r.orders, rng) {
            Some(order) => Call::ReadOrder(order),
            None => Call::ReadCustomer(customer.clone()),
        },
        Operation::ReadBalance => Call::ReadCustomer(customer.clone()),
    }
}

/// Runs one step (or the warm-up, `record: false`): requests at their intended instants,
/// each recorded from that instant.
#[allow(clippy::too_many_arguments)] // the run's shared parts, passed down once per step
async fn run_step(
    target: &Target,
    step: loadtest::scenario::Step,
    scenario: &Scenario,
    step_idx: usize,
    rng: &mut rand::rngs::StdRng,
    recent: &Arc<Mutex<Recent>>,
    run_id: &str,
    label: &str,
) -> StepStats {
    let operations = OperationPicker::new(scenario.mix());
    let customers = CustomerPicker::new(scenario.parties());
    let merchants = MerchantPicker::new(scenario.parties());
    let arrivals = schedule::arrivals(step, scenario.arrivals(), rng);
    let total = arrivals.len() as u64;
    let stats = Arc::new(Mutex::new(StepStats::new(step)));
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = progress_step(label.to_owned(), total, done.clone());
    let started = tokio::time::Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for (index, arrival) in arrivals.into_iter().enumerate() {
        let intended = started + Duration::from_micros(arrival.intended_us());
        tokio::time::sleep_until(intended).await;
        let operation = operations.pick(rng);
        let reference = format!("{run_id}-{step_idx}-{index}");
        let planned = plan(target, operation, reference, rng, &customers, &merchants, recent);
        let node = &target.clients[index % target.clients.len()];
        let (client, stats, done, recent) =
            (node.clone(), stats.clone(), done.clone(), recent.clone());
        in_flight.spawn(async move {
            let (outcome, order) = planned.send(&client).await;
            let completed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if let Some(Written { id, succeeded, is_final }) = order {
                let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
                recent.acknowledged.n += 1;
                if !is_final {
                    recent.acknowledged.unfinished.push(id.clone());
                }
                // Only a succeeded payment can be refunded.
                if succeeded && matches!(operation, Operation::WalletPayment) {
                    Recent::push(&mut recent.payments, id.clone());
                }
                Recent::push(&mut recent.orders, id);
            }
            let completion = Completion::new(arrival, completed_us, outcome);
            stats.lock().unwrap_or_else(|p| p.into_inner()).record(operation, &completion);
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        // Reap what has finished as we go, so the set holds only what is in flight.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    ticker.abort();
    let stats = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    stats
}

fn progress_step(
    label: String,
    total: u64,
    done: Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let done = done.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("  {label}: {done} of {total} answered");
        }
    })
}

fn print_step(summary: &StepSummary) {
    let all = &summary.all;
    let errors: Vec<String> =
        all.n_errors_by_code.iter().map(|(code, n)| format!("{}={n}", code.as_str())).collect();
    eprintln!(
        "  offered {:>6}/s  achieved {:>9.1}/s  p50 {:>7.1} ms  p99 {:>7.1} ms  errors {}",
        summary.offered_per_s,
        milli(all.achieved_milli_per_s),
        micros_ms(all.latency_us_p50),
        micros_ms(all.latency_us_p99),
        if errors.is_empty() { "none".to_owned() } else { errors.join(" ") },
    );
}

// Display only: thousandths and microseconds as decimals for a person to read.
#[allow(clippy::float_arithmetic)]
fn milli(value: u64) -> f64 {
    value as f64 / 1000.0
}

#[allow(clippy::float_arithmetic)]
fn micros_ms(value: u64) -> f64 {
    value as f64 / 1000.0
}

pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let key = args.key.clone().context("an API key is needed: --key or QIANBAO_API_KEY")?;
    let book = if key.starts_with("qb_test_") { "test" } else { "live" };
    anyhow::ensure!(
        book == "test" || args.live,
        "--key is not a test key (qb_test_…): a load run with a live key moves real money. \
         Create a test key (POST /v1/keys with \"mode\": \"test\"), or pass --live to load the \
         live book on purpose"
    );
    let scenario = scenario_of(&args)?;
    let clients = args
        .url
        .iter()
        .map(|url| {
            client::Client::builder(url, &key)
                .timeout(Duration::from_millis(args.timeout_ms))
                .user_agent("qianbao-loadtest")
                .build()
                .with_context(|| format!("a client of {url}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!clients.is_empty(), "--url names no service");
    let target = Target {
        clients,
        asset: args.asset.clone(),
        points_asset: args.points_asset.clone(),
        card: args.card.clone(),
        prefix: args.prefix.clone(),
    };
    let live = match &args.live_key {
        Some(live_key) => {
            anyhow::ensure!(live_key.starts_with("qb_live_"), "--live-key is not a live key");
            let url = args.url.first().context("--url names no service")?;
            Some(client::Client::new(url, live_key).context("a client for --live-key")?)
        }
        None => None,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("a runtime")?;
    runtime.block_on(async {
        let live_head_before = match &live {
            Some(live) => Some(safety::live_head(live).await?),
            None => None,
        };
        if !args.no_setup {
            set_up(&target, &scenario, args.fund_minor).await?;
        }
        let profiles = match (&args.banksim_url, scenario.channels().is_empty()) {
            (Some(base), false) => {
                let profiles = Arc::new(Profiles {
                    http: reqwest::Client::new(),
                    base: base.trim_end_matches('/').to_owned(),
                    channels: scenario
                        .channels()
                        .iter()
                        .map(|(name, profile)| (name.clone(), profile.clone()))
                        .collect(),
                });
                profiles.apply().await?;
                eprintln!("profiles played on the simulator: {}", scenario.channels().len());
                Some(profiles)
            }
            (None, false) => {
                eprintln!("the scenario's channel profiles are not played: no --banksim-url");
                None
            }
            _ => None,
        };
        let mut rng = schedule::seeded_rng(scenario.seed());
        let recent = Arc::new(Mutex::new(Recent::default()));
        let run_id = format!("{}-{}", args.prefix, fresh_key());
        if let (true, Some(first)) = (scenario.warmup_s() > 0, scenario.steps().first()) {
            let warmup = loadtest::scenario::Step::new(first.rate_per_s(), scenario.warmup_s())?;
            eprintln!(
                "warm-up: {}/s for {} s (not counted)",
                first.rate_per_s(),
                scenario.warmup_s()
            );
            run_step(&target, warmup, &scenario, usize::MAX, &mut rng, &recent, &run_id, "warm-up")
                .await;
        }
        let outage_timers = profiles.as_ref().map(|p| p.outages()).unwrap_or_default();
        let started_at_ms = now_ms();
        let wall = Instant::now();
        let mut summaries = Vec::new();
        let n_steps = scenario.steps().len();
        for (step_idx, step) in scenario.steps().iter().enumerate() {
            eprintln!(
                "step {} of {n_steps}: {}/s for {} s",
                step_idx + 1,
                step.rate_per_s(),
                step.duration_s()
            );
            let label = format!("step {}", step_idx + 1);
            let stats =
                run_step(&target, *step, &scenario, step_idx, &mut rng, &recent, &run_id, &label)
                    .await;
            let summary = stats.summary();
            print_step(&summary);
            summaries.push(summary);
        }
        for timer in outage_timers {
            timer.abort();
        }
        if let Some(profiles) = &profiles {
            profiles.restore().await;
        }
        let mut report = Report::new(&scenario, started_at_ms, summaries);
        let acknowledged =
            std::mem::take(&mut recent.lock().unwrap_or_else(|p| p.into_inner()).acknowledged);
        if !acknowledged.unfinished.is_empty() {
            eprintln!(
                "waiting up to {} s for {} orders acknowledged unfinished",
                args.settle_s,
                acknowledged.unfinished.len()
            );
        }
        let settle = Duration::from_secs(args.settle_s);
        let check = safety::check(
            &target.clients[0],
            book,
            live.as_ref(),
            live_head_before,
            acknowledged,
            settle,
        )
        .await
        .map(|check| loadtest::safety::FundCheck { live_traffic: args.live_traffic, ..check });
        let check = match check {
            Ok(check) => check,
            Err(error) => {
                eprintln!("fund-safety check could not be made: {error:#}");
                return Err(error);
            }
        };
        eprintln!("{}", check.verdict());
        let passed = check.passed();
        report.fund_check = Some(check);
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let json_path = args.out.join("report.json");
        let html_path = args.out.join("report.html");
        std::fs::write(&json_path, report.to_json()?).context("writing report.json")?;
        std::fs::write(&html_path, report.to_html()?).context("writing report.html")?;
        match &report.knee {
            Some(knee) => eprintln!(
                "knee: step {} at {}/s offered, sustainable {:.1}/s; peak {:.1}/s (SLO p99 {} ms)",
                knee.step_idx + 1,
                knee.offered_per_s,
                milli(knee.sustainable_milli_per_s),
                milli(report.peak_milli_per_s),
                report.slo_p99_ms
            ),
            None => eprintln!(
                "knee: no step kept up within the SLO (p99 {} ms); peak {:.1}/s",
                report.slo_p99_ms,
                milli(report.peak_milli_per_s)
            ),
        }
        eprintln!(
            "{} steps in {} s; report: {} and {}",
            n_steps,
            wall.elapsed().as_secs(),
            json_path.display(),
            html_path.display()
        );
        anyhow::ensure!(passed, "the fund-safety check failed (see above and the report)");
        Ok(())
    })
}
