//! `qianbao ledger fill`: grows a book to a given size — accounts opened and funded, then
//! uniform transfers in bulk — so that what depends on the size of the books (restart time,
//! resident memory, the cost of a transfer) can be measured on a book of that size
//! (`scripts/scale-bench`, docs/bench/scale.md). The accounts and chart are the ledger
//! bench's; a `qianbao serve` can then run on the same data directory.

#![allow(clippy::float_arithmetic)] // rates shown as progress, never money

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use ledger::apply::{Command, Outcome};
use ledger::PipelineConfig;

use crate::bench::{bench_transfer, setup_accounts, Picker};
use crate::StoreArgs;

#[derive(Args, Debug)]
pub struct FillArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Wallets to open and fund (ids 1..=N, as in `ledger bench`).
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
    /// Transfers to post after the funding, between accounts picked uniformly.
    #[arg(long, default_value_t = 10_000_000)]
    transfers: u64,
    /// Transfers per request.
    #[arg(long, default_value_t = 8_000)]
    bulk_size: u64,
    /// Concurrent submitters of bulk requests.
    #[arg(long, default_value_t = 2)]
    submitters: u64,
}

/// Transfer ids start here: above the funding transfers' (which are the account ids).
const FIRST_TRANSFER_ID: u64 = 10_000_000_000;

/// Progress is printed each time this many more transfers are posted.
const PROGRESS_EVERY: u64 = 1_000_000;

pub fn run(args: FillArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2");
    anyhow::ensure!(args.bulk_size >= 1 && args.submitters >= 1, "--bulk-size and --submitters");
    let ledger = args.store.start_books(PipelineConfig::default())?.ledger;
    let handle = ledger.handle();
    let started = Instant::now();
    setup_accounts(&handle, args.accounts, &[])?;
    eprintln!(
        "{} accounts opened and funded in {:.1} s",
        args.accounts,
        started.elapsed().as_secs_f64()
    );
    let posting = Instant::now();
    let next_id = Arc::new(AtomicU64::new(FIRST_TRANSFER_ID));
    let done = Arc::new(AtomicU64::new(0));
    let last_id = FIRST_TRANSFER_ID + args.transfers;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let posted = runtime.block_on(async {
        let mut submitters = Vec::new();
        for submitter in 0..args.submitters {
            let (handle, next_id, done) = (handle.clone(), next_id.clone(), done.clone());
            let (accounts, bulk_size) = (args.accounts, args.bulk_size);
            submitters.push(tokio::spawn(async move {
                let mut picker = Picker::new(submitter + 1);
                let mut posted = 0u64;
                loop {
                    let first = next_id.fetch_add(bulk_size, Ordering::Relaxed);
                    if first >= last_id {
                        return anyhow::Ok(posted);
                    }
                    let commands: Vec<Command> = (first..(first + bulk_size).min(last_id))
                        .map(|id| {
                            // Two distinct accounts in 1..=accounts: the credit is 1 to
                            // accounts - 1 places after the debit, round the ring.
                            let debit = picker.next() % accounts + 1;
                            let credit = (debit + picker.next() % (accounts - 1)) % accounts + 1;
                            let amount = picker.next() % 100 + 1;
                            Command::Transfers(vec![bench_transfer(id, debit, credit, amount)])
                        })
                        .collect();
                    let n = commands.len() as u64;
                    for outcome in handle.execute(commands).await? {
                        let ok = matches!(&outcome, Outcome::Transfers(r) if r.iter().all(Result::is_ok));
                        anyhow::ensure!(ok, "a fill transfer was rejected: {outcome:?}");
                    }
                    posted += n;
                    let total = done.fetch_add(n, Ordering::Relaxed) + n;
                    if (total - n) / PROGRESS_EVERY != total / PROGRESS_EVERY {
                        eprintln!(
                            "{total} of {} transfers posted, {:.0}/s",
                            last_id - FIRST_TRANSFER_ID,
                            total as f64 / posting.elapsed().as_secs_f64()
                        );
                    }
                }
            }));
        }
        let mut posted = 0;
        for submitter in submitters {
            posted += submitter.await??;
        }
        anyhow::Ok(posted)
    })?;
    let seconds = posting.elapsed().as_secs_f64();
    eprintln!("{posted} transfers posted in {seconds:.1} s ({:.0}/s)", posted as f64 / seconds);
    drop(runtime);
    drop(handle);
    ledger.shutdown();
    println!("filled: {} accounts, {posted} transfers", args.accounts);
    Ok(())
}
