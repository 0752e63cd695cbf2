//! `qianbao ledger load` (hidden): posts a steady stream of transfers from several submitters
//! and prints `ack <id>` for each one the ledger acknowledged, flushed at once. The crash
//! test SIGKILLs this process mid-stream and checks that every printed id survived.

use std::io::Write;

use clap::Args;
use ledger::apply::{Command, Outcome};
use ledger::model::{AccountClass, BalanceRule, ChartCode, ChartEntry, Movement, NewAccount};
use ledger::{
    AccountId, BoundedText, BusinessCode, NewTransfer, PipelineConfig, TransferAction, TransferId,
};
use money::{Amount, Asset, AssetCode};

use crate::StoreArgs;

#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 8)]
    submitters: u64,
    /// Transfers per submitter (the run is bounded by count).
    #[arg(long, default_value_t = 100_000)]
    transfers: u64,
    /// First transfer id; runs after a restart use a fresh range.
    #[arg(long, default_value_t = 1_000_000)]
    first_id: u64,
    /// Transfers per request: each submitter sends this many at once (bulk load), each its
    /// own command, acknowledged one by one.
    #[arg(long, default_value_t = 1)]
    bulk_size: u64,
}

const BANK: u128 = 1;
const WALLETS: u128 = 8;

fn id<T>(make: fn(u128) -> Result<T, ledger::ids::IdError>, raw: u128) -> T {
    make(raw).unwrap_or_else(|_| unreachable!("load ids are non-zero"))
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let ledger = args.store.start_books(PipelineConfig::default())?.ledger;
    let handle = ledger.handle();
    let cny = AssetCode::new("CNY").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut setup = vec![
        Command::DefineAsset(Asset::new(cny, 2).map_err(|e| anyhow::anyhow!("{e}"))?),
        Command::DefineChart(ChartEntry {
            code: ChartCode(1002),
            name: BoundedText::new("bank deposits")?,
            class: AccountClass::Asset,
        }),
        Command::DefineChart(ChartEntry {
            code: ChartCode(2241),
            name: BoundedText::new("customer wallets")?,
            class: AccountClass::Liability,
        }),
    ];
    for raw in 1..=(1 + WALLETS) {
        let (chart, rule) = if raw == BANK {
            (1002, BalanceRule::Unbounded)
        } else {
            (2241, BalanceRule::NO_OVERDRAFT)
        };
        setup.push(Command::OpenAccount(NewAccount {
            id: id(AccountId::new, raw),
            asset: cny,
            chart_code: ChartCode(chart),
            rule,
            metadata: BoundedText::default(),
            layout: Default::default(),
        }));
    }
    handle.execute_blocking(setup)?;
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for submitter in 0..args.submitters {
            let handle = handle.clone();
            let stdout = &stdout;
            let first = args.first_id + submitter * args.transfers;
            scope.spawn(move || -> anyhow::Result<()> {
                let bulk_size = args.bulk_size.max(1);
                let mut n = 0;
                while n < args.transfers {
                    let mut ids = Vec::new();
                    let mut commands = Vec::new();
                    while n < args.transfers && (ids.len() as u64) < bulk_size {
                        let transfer_id = u128::from(first + n);
                        let wallet = 2 + u128::from(n % WALLETS as u64);
                        commands.push(Command::Transfers(vec![NewTransfer {
                            id: id(TransferId::new, transfer_id),
                            action: TransferAction::Post(Movement {
                                debit_account_id: id(AccountId::new, BANK),
                                credit_account_id: id(AccountId::new, wallet),
                                asset: cny,
                                amount: Amount::new(1 + n % 100).unwrap_or(Amount::ZERO),
                            }),
                            business_code: BusinessCode(1),
                            order_ref: BoundedText::default(),
                        }]));
                        ids.push(transfer_id);
                        n += 1;
                    }
                    let outcomes = handle.execute_blocking(commands)?;
                    let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                    for (transfer_id, outcome) in ids.iter().zip(&outcomes) {
                        if let Outcome::Transfers(results) = outcome {
                            if results.iter().all(Result::is_ok) {
                                writeln!(out, "ack {transfer_id}")?;
                            }
                        }
                    }
                    out.flush()?;
                }
                Ok(())
            });
        }
    });
    ledger.shutdown();
    Ok(())
}
