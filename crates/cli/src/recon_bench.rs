//! `qianbao recon bench`: reconciles one statement of `--lines` lines against as many orders,
//! end to end as the service does it — the file parsed whole and stored with its hash, our
//! orders of the day read from the order store, every line matched, the planted differences
//! booked to suspense, the run and its breaks stored — on SQLite or PostgreSQL, and prints
//! lines per second and the peak resident memory of the reconciliation itself.
//!
//! Setup (not timed, with its own progress): N succeeded top-ups through one channel are
//! loaded into the order store in bulk, and the channel's statement of the day is rendered
//! from them with `--differences` lines changed (an amount, a fee, a line dropped, a line
//! printed twice, in turn).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use channels::channel::{DetailLine, LineStatus, StatementFile};
use channels::gateway::{Millis, SystemMillis};
use channels::model::Inquiry;
use channels::router::ChannelProfile;
use channels::{
    BoxFuture, Channel, ChannelError, ChannelId, ChannelRequest, Gateway, GatewayConfig, Operation,
    Outcome, RequestId, Settled,
};
use clap::Args;
use executor::{Executor, ExecutorConfig, OrderRecord, OrderStore};
use ledger::apply::Command;
use money::{Amount, Asset, AssetCode};
use payments::ids::OrderId;
use payments::topup::{TopUp, TopUpState};
use payments::Order;
use reconciler::{ReconConfig, ReconStore, Reconciler};

const CHANNEL: &str = "bench";
/// Orders loaded per transaction during setup.
const LOAD_CHUNK: usize = 50_000;

#[derive(Args)]
pub struct BenchArgs {
    /// Statement lines, and orders.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Lines that differ from our records, spread evenly.
    #[arg(long, default_value_t = 100)]
    differences: u64,
    /// Run on PostgreSQL (a fresh schema, dropped afterwards) instead of SQLite.
    #[arg(long, env = "QIANBAO_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Keep the data (the scratch directory or the PostgreSQL schema) for a look afterwards.
    #[arg(long, hide = true)]
    keep: bool,
}

/// A channel that is only there to be named: the bench uploads its statement.
struct QuietChannel(ChannelId);

impl Channel for QuietChannel {
    fn id(&self) -> &ChannelId {
        &self.0
    }

    fn execute<'a>(&'a self, _: &'a ChannelRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::Unknown { detail: "the bench channel moves nothing".into() } })
    }

    fn inquire<'a>(&'a self, _: Operation, _: &'a RequestId) -> BoxFuture<'a, Inquiry> {
        Box::pin(async { Inquiry::NotFound })
    }

    fn statement_file<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>> {
        Box::pin(async { Err(ChannelError::Protocol("the bench uploads its statement".into())) })
    }
}

/// A memory figure of this process from /proc/self/status (`VmHWM:` the peak since the
/// last reset, `VmRSS:` now), in bytes (Linux; 0 elsewhere).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets the peak so that what follows is measured alone (Linux ≥ 4.0; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn progress(label: &str, done: u64, total: u64, started: Instant) {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '.' }).collect();
    eprint!("\r{label:<10} [{bar}] {done:>9}/{total} {:>6.1}s", started.elapsed().as_secs_f64());
    let _ = std::io::stderr().flush();
    if done >= total {
        eprintln!();
    }
}

fn top_up(
    i: u64,
    day: recon::BusinessDay,
    offset: i32,
    asset: AssetCode,
) -> anyhow::Result<OrderRecord> {
    let id = OrderId::new(format!("top_{i:016x}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let amount = Amount::new(100 + i % 100_000).context("amount")?;
    let channel = ChannelId::new(CHANNEL).map_err(|e| anyhow::anyhow!("{e}"))?;
    let settled =
        Settled { channel_ref: format!("bench-{i:010}"), fee: Amount::new(i % 7).context("fee")? };
    let order = Order::Topup(TopUp {
        order: id,
        customer: "bench/alice".into(),
        card: "6222020000000001".into(),
        asset,
        amount,
        refused_by: Vec::new(),
        merchant: None,
        state: TopUpState::Succeeded { channel, settled },
    });
    // Spread over the day, a millisecond apart at most.
    let created_at_ms = day.start_ms(offset) + i % 86_000_000;
    Ok(OrderRecord {
        tenant: "bench".into(),
        reference: format!("r{i}"),
        request_fingerprint: String::new(),
        parent: None,
        order,
        version: 1,
        created_at_ms,
        updated_at_ms: created_at_ms,
    })
}

/// The channel's line for our record `i`, changed when `i` is one of the differences.
fn lines_of(
    record: &OrderRecord,
    day: recon::BusinessDay,
    differ: bool,
    kind: u64,
    line_no: &mut u64,
    out: &mut Vec<DetailLine>,
) -> anyhow::Result<()> {
    let Some(activity) = record.order.channel_activity(day.days()) else {
        anyhow::bail!("a bench order has no channel activity");
    };
    let ours = activity.record;
    let mut line = DetailLine {
        line_no: 0,
        request_id: Some(ours.request_id),
        channel_ref: ours.channel_ref,
        tx_type: ours.tx_type,
        amount: ours.amount,
        fee: ours.fee.unwrap_or(Amount::ZERO),
        currency: ours.currency,
        booked_at_ms: record.created_at_ms,
        status: LineStatus::Succeeded,
    };
    let copies = match (differ, kind % 4) {
        (false, _) => 1,
        (true, 0) => {
            line.amount =
                line.amount.checked_add(Amount::new(1).context("one")?).context("amount")?;
            1
        }
        (true, 1) => {
            line.fee = line.fee.checked_add(Amount::new(1).context("one")?).context("fee")?;
            1
        }
        (true, 2) => 0,
        (true, _) => 2,
    };
    for _ in 0..copies {
        *line_no += 1;
        out.push(DetailLine { line_no: *line_no, ..line.clone() });
    }
    Ok(())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.lines > 0, "--lines must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scratch = std::env::temp_dir().join(format!("qianbao-recon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let pg = args.database_url.as_ref().map(|url| {
        store::PgTarget::new(url.clone(), format!("qb_recon_bench_{}", std::process::id()))
    });
    let result = runtime.block_on(bench(&args, &scratch, pg.as_ref()));
    drop(runtime);
    if args.keep {
        eprintln!(
            "kept {} (schema {:?})",
            scratch.display(),
            pg.as_ref().map(|t| t.schema.clone())
        );
    } else {
        if let Some(target) = &pg {
            let _ = store::postgres::drop_schema(target);
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

async fn bench(
    args: &BenchArgs,
    scratch: &std::path::Path,
    pg: Option<&store::PgTarget>,
) -> anyhow::Result<()> {
    let asset = Asset::new(AssetCode::new("CNY").map_err(|e| anyhow::anyhow!("{e}"))?, 2)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (ledger, orders, importer, recon_store): (
        ledger::Ledger,
        Arc<dyn OrderStore>,
        Importer,
        Arc<dyn ReconStore>,
    ) = match pg {
        None => {
            let ledger = ledger::Ledger::start(
                store::SqliteStore::open(scratch.join("ledger.db"))?,
                Arc::new(ledger::SystemClock),
                ledger::PipelineConfig::default(),
            );
            let orders = Arc::new(store::SqliteOrderStore::open(scratch.join("orders.db"))?);
            let recon = Arc::new(store::SqliteReconStore::open(scratch.join("recon.db"))?);
            (ledger, orders.clone(), Importer::Sqlite(orders), recon)
        }
        Some(target) => tokio::task::block_in_place(|| -> anyhow::Result<_> {
            let ledger = ledger::Ledger::start(
                store::PgStore::connect(target.clone())?,
                Arc::new(ledger::SystemClock),
                ledger::PipelineConfig::default(),
            );
            let orders = Arc::new(store::PgOrderStore::connect(target)?);
            let recon = Arc::new(store::PgReconStore::connect(target)?);
            Ok((
                ledger,
                orders.clone() as Arc<dyn OrderStore>,
                Importer::Pg(orders),
                recon as Arc<dyn ReconStore>,
            ))
        })?,
    };
    let clock: Arc<dyn Millis> = Arc::new(SystemMillis);
    let channel = ChannelId::new(CHANNEL).map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile = ChannelProfile {
        id: channel.clone(),
        operations: vec![Operation::Debit],
        assets: vec![asset.code()],
        amount_min: Amount::new(1).context("one")?,
        amount_max: Amount::MAX,
        account_prefixes: Vec::new(),
        fee_fixed: Amount::ZERO,
        fee_bps: 0,
        timeout_ms: 1_000,
        limits: Default::default(),
        breaker: Default::default(),
    };
    let gateway = Arc::new(Gateway::new(
        vec![Arc::new(QuietChannel(channel)) as Arc<dyn Channel>],
        vec![profile],
        GatewayConfig::default(),
        clock.clone(),
    )?);
    let executor = Arc::new(Executor::new(
        orders,
        ledger.handle(),
        Some(gateway),
        clock.clone(),
        ExecutorConfig::default(),
    ));
    ledger.handle().execute(vec![Command::DefineAsset(asset)]).await?;
    executor.bootstrap().await.context("the chart of accounts")?;
    let config = ReconConfig::new(vec![asset.code()]);
    let offset = config.utc_offset_minutes;
    let reconciler = Reconciler::new(recon_store, executor, ledger.handle(), clock.clone(), config);
    let day = recon::BusinessDay::of(clock.now_ms(), offset).previous();

    // Setup: the orders, and the channel's statement of them.
    let store_name = if pg.is_some() { "postgres" } else { "sqlite" };
    eprintln!(
        "recon bench: {} lines on {store_name}, {} differences",
        args.lines, args.differences
    );
    let every = args.lines.checked_div(args.differences).unwrap_or(u64::MAX).max(1);
    let started = Instant::now();
    let mut details = Vec::with_capacity(args.lines as usize + args.differences as usize);
    let mut line_no = 1; // the header is line 1
    let mut chunk = Vec::with_capacity(LOAD_CHUNK);
    let mut planted = 0;
    for i in 0..args.lines {
        let record = top_up(i, day, offset, asset.code())?;
        let differ = args.differences > 0 && i % every == every / 2 && planted < args.differences;
        if differ {
            planted += 1;
        }
        lines_of(&record, day, differ, planted, &mut line_no, &mut details)?;
        chunk.push(record);
        if chunk.len() == LOAD_CHUNK || i + 1 == args.lines {
            importer.import(&chunk)?;
            chunk.clear();
            progress("orders", i + 1, args.lines, started);
        }
    }
    let statement = recon::statement::render(&details);
    drop(details);
    eprintln!("statement: {} bytes", statement.len());

    // Timed: what the service does with a statement file.
    reset_peak_rss();
    // What the setup left resident (the allocator keeps freed pages): the run's own growth
    // is the peak less this.
    let baseline_rss = status_bytes("VmRSS:");
    let timed = Instant::now();
    let stored = reconciler.upload(CHANNEL, day, statement.into_bytes(), "bench")?;
    let uploaded = timed.elapsed();
    eprintln!("parsed and stored the file in {:.2}s; reconciling…", uploaded.as_secs_f64());
    let run = reconciler.run(CHANNEL, day, "bench").await?;
    let elapsed = timed.elapsed();
    eprintln!("reconciled in {:.2}s", elapsed.as_secs_f64());
    let peak_rss = status_bytes("VmHWM:");
    let grown_rss = peak_rss.saturating_sub(baseline_rss);
    let lines_per_sec = u128::from(args.lines) * 1_000_000 / elapsed.as_micros().max(1);
    let breaks: u64 = run.counts.iter().filter(|(class, _)| class.is_break()).map(|(_, n)| n).sum();
    let matched = run.counts.get(&recon::Class::Matched).copied().unwrap_or(0);
    let summary = serde_json::json!({
        "store": store_name,
        "lines": args.lines,
        "statement_bytes": match &stored { reconciler::PutStatement::Stored(s) | reconciler::PutStatement::Same(s) => s.size_bytes },
        "matched": matched,
        "breaks": breaks,
        "planted": planted,
        "upload_s": uploaded.as_secs_f64(),
        "total_s": elapsed.as_secs_f64(),
        "lines_per_sec": lines_per_sec as u64,
        "peak_rss_mib": peak_rss / (1024 * 1024),
        "run_growth_mib": grown_rss / (1024 * 1024),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "| store | lines | parse + store file | total | lines/s | breaks (planted) | peak RSS | of which the run |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        println!(
            "| {store_name} | {} | {:.2} s | {:.2} s | {} | {breaks} ({planted}) | {} MiB | {} MiB |",
            args.lines,
            uploaded.as_secs_f64(),
            elapsed.as_secs_f64(),
            lines_per_sec,
            peak_rss / (1024 * 1024),
            grown_rss / (1024 * 1024)
        );
    }
    // The synchronous PostgreSQL clients inside the stores are dropped off the runtime.
    tokio::task::block_in_place(move || {
        drop(reconciler);
        drop(importer);
        ledger.shutdown();
    });
    Ok(())
}

/// The store's bulk import (an inherent method of each backend, not of the port).
enum Importer {
    Sqlite(Arc<store::SqliteOrderStore>),
    Pg(Arc<store::PgOrderStore>),
}

impl Importer {
    fn import(&self, records: &[OrderRecord]) -> anyhow::Result<u64> {
        Ok(match self {
            Importer::Sqlite(store) => store.import(records)?,
            Importer::Pg(store) => tokio::task::block_in_place(|| store.import(records))?,
        })
    }
}
