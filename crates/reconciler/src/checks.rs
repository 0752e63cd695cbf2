//! Internal cross-checks (业务数据核对): our own records against each other, no channel
//! involved. Each check reads the books and the orders and reports findings; a run stores
//! every check's result, so an operator (and the monitors) see when a check started failing.
//!
//! - `transfers_have_orders`: every ledger transfer under a payment business code names an
//!   order we have. A transfer booked around the payment core (by hand, under an order's
//!   code) is found here.
//! - `succeeded_orders_booked_in_full`: every order that ended with its money moved
//!   (succeeded, or a top-up held in suspense) has in the journal, under its id, exactly the
//!   postings its final state says it was booked with (`Order::booked_transfers`, built by the
//!   functions that booked them), net per account to the minor unit: a posting lost, changed
//!   or added by hand under an order's id is found here.
//! - `failed_orders_move_nothing`: an order that ended failed, canceled or expired moved no
//!   money: the posted movements under its id net to zero on every account.
//! - `final_orders_hold_nothing`: no hold of a final order is still pending.
//! - `wallets_equal_their_line`: per asset, the customers' wallets add up to the wallet
//!   liability line (2241) of the trial balance: nothing else sits on that line.
//! - `settled_takings_are_settlements`: money reaches a merchant's settled takings (2203)
//!   only by a settlement, and each succeeded settlement put exactly its amount there.
//! - `suspense_holds_open_breaks`: per channel and currency, the reconciliation suspense
//!   (2298) holds exactly the money of the breaks not yet resolved: nothing else moved the
//!   channel's clearing against its statements.
//! - `no_overdue_orders`: no order is still unfinished past its deadline (or, without one,
//!   an hour after it last moved).
//! - `journal_verifies`: the journal's hash chain verifies, incrementally: the batches
//!   written since the last run's checkpoint (every balance is replayed in full by
//!   `qianbao ledger verify` and `POST /v1/journal/verify`).

use std::collections::{BTreeMap, HashMap, HashSet};

use executor::OrderStore;
use ledger::model::{Record, TransferKind};
use ledger::port::{LedgerReader, Page, StoreError};
use ledger::verify::ChainCheckpoint;
use ledger::{AccountId, BusinessCode, Seq};
use money::AssetCode;
use payments::chart::{merchant_account_id, wallet_account_id, CUSTOMER_WALLETS};
use payments::{OrderId, OrderKind};
use sha2::{Digest, Sha256};

use crate::port::{CheckResult, CheckRun, Finding};
use crate::{ReconError, Reconciler};

/// Findings kept per check and run (the count says how many there were in all).
const FINDINGS_KEPT_MAX: usize = 100;
/// Journal records read per query.
const RECORDS_PER_READ: u64 = 20_000;
/// Accounts, holds and orders read per page.
const PAGE: usize = 1_000;
/// An order without a deadline is overdue this long after it last moved, by default
/// ([`ReconConfig::stuck_after_ms`](crate::ReconConfig::stuck_after_ms)).
pub const STUCK_AFTER_MS: u64 = 3_600_000;

/// The business codes under which the payment core books orders.
pub const ORDER_BUSINESS_CODES: [BusinessCode; 8] = [
    payments::topup::BUSINESS_CODE_TOPUP,
    payments::withdrawal::BUSINESS_CODE_WITHDRAWAL,
    payments::booking::BUSINESS_CODE_WALLET_TRANSFER,
    payments::booking::BUSINESS_CODE_PAYMENT,
    payments::booking::BUSINESS_CODE_REFUND,
    payments::booking::BUSINESS_CODE_SETTLEMENT,
    payments::withdrawal::BUSINESS_CODE_PAYOUT,
    payments::booking::BUSINESS_CODE_POINTS_GRANT,
];

/// The names of the checks, in the order a run reports them.
pub const CHECKS: [&str; 9] = [
    "transfers_have_orders",
    "succeeded_orders_booked_in_full",
    "failed_orders_move_nothing",
    "final_orders_hold_nothing",
    "wallets_equal_their_line",
    "settled_takings_are_settlements",
    "suspense_holds_open_breaks",
    "no_overdue_orders",
    "journal_verifies",
];

fn books_error(error: StoreError) -> ReconError {
    ReconError::Ledger(error.to_string())
}

/// One check's findings as they are collected.
#[derive(Default)]
struct Collect {
    examined: u64,
    findings: Vec<Finding>,
    n_findings: u64,
}

impl Collect {
    fn find(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.n_findings += 1;
        if self.findings.len() < FINDINGS_KEPT_MAX {
            self.findings.push(Finding { subject: subject.into(), detail: detail.into() });
        }
    }

    fn result(self, name: &str) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            ok: self.n_findings == 0,
            examined: self.examined,
            n_findings: self.n_findings,
            findings: self.findings,
        }
    }
}

impl Reconciler {
    /// The unfinished orders past their deadline (or without one, `stuck_after_ms` after they
    /// last moved), at most `limit`, the longest waiting first: the orders an operator looks
    /// at when inspection has not finished them.
    pub async fn overdue_orders(
        &self,
        limit: usize,
    ) -> Result<Vec<executor::OrderRecord>, ReconError> {
        let orders = self.orders.clone();
        let now_ms = self.clock.now_ms();
        let stuck_after_ms = self.config.stuck_after_ms;
        tokio::task::spawn_blocking(move || {
            let mut late = Vec::new();
            overdue_orders(orders.as_ref(), now_ms, stuck_after_ms, |record| {
                if late.len() < limit {
                    late.push(record.clone());
                }
            })?;
            Ok(late)
        })
        .await
        .map_err(|error| ReconError::Ledger(error.to_string()))?
    }

    /// Runs every cross-check now and stores the run.
    pub async fn cross_check(&self, by: &str) -> Result<CheckRun, ReconError> {
        let books = self.books.clone().ok_or_else(|| {
            ReconError::Ledger("this node has no reader of the books to check".into())
        })?;
        let orders = self.orders.clone();
        let started_at_ms = self.clock.now_ms();
        // The journal is verified from where the last run left it.
        let from = self
            .store
            .check_runs(1)?
            .first()
            .and_then(|run| run.journal_checkpoint)
            .unwrap_or_default();
        // The readers block (PostgreSQL's client drives a runtime of its own).
        let store = self.store.clone();
        let channels: Vec<String> = self.channels().iter().map(|c| c.as_str().to_owned()).collect();
        let currencies = self.config.currencies.clone();
        let stuck_after_ms = self.config.stuck_after_ms;
        let (checks, checkpoint) = tokio::task::spawn_blocking(move || {
            let mut results =
                run_checks(books.as_ref(), orders.as_ref(), started_at_ms, stuck_after_ms, from)?;
            let suspense = suspense_check(books.as_ref(), store.as_ref(), channels, &currencies)?;
            results.0.insert(6, suspense.result(CHECKS[6]));
            Ok::<_, ReconError>(results)
        })
        .await
        .map_err(|error| ReconError::Ledger(error.to_string()))??;
        let finished_at_ms = self.clock.now_ms();
        // Runs started in the same millisecond by the same key still get their own ids.
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = {
            let digest = Sha256::new()
                .chain_update(b"qianbao.recon.check\0")
                .chain_update(started_at_ms.to_be_bytes())
                .chain_update(n.to_be_bytes())
                .chain_update(std::process::id().to_be_bytes())
                .chain_update(by)
                .finalize();
            format!("chk_{}", hex::encode(&digest[..12]))
        };
        let run = CheckRun {
            id,
            ok: checks.iter().all(|check| check.ok),
            checks,
            journal_checkpoint: Some(checkpoint),
            started_by: by.to_owned(),
            started_at_ms,
            finished_at_ms,
        };
        self.store.insert_check_run(&run)?;
        Ok(run)
    }
}

/// A channel's suspense in one currency that does not hold what its open breaks hold.
pub(crate) struct SuspenseDifference {
    /// `channel/CUR`
    pub subject: String,
    /// The suspense account's posted balance (credits less debits).
    pub booked: i128,
    /// The money of the channel's breaks not yet resolved, in that currency.
    pub held: i128,
}

/// Per channel and currency: the reconciliation suspense as booked against the money of the
/// breaks not yet resolved; how many were compared, and those that differ.
pub(crate) fn suspense_differences(
    books: &dyn LedgerReader,
    store: &dyn crate::port::ReconStore,
    mut channels: Vec<String>,
    currencies: &[AssetCode],
) -> Result<(u64, Vec<SuspenseDifference>), ReconError> {
    let mut held: BTreeMap<(String, AssetCode), i128> = BTreeMap::new();
    for state in [
        recon::breaks::BreakState::Open,
        recon::breaks::BreakState::Assigned,
        recon::breaks::BreakState::PendingApproval,
        recon::breaks::BreakState::Resolving,
    ] {
        let query = crate::port::BreakQuery {
            state: Some(state),
            limit: usize::MAX >> 1,
            ..Default::default()
        };
        for record in store.breaks(&query)? {
            *held.entry((record.channel.clone(), record.currency)).or_default() +=
                record.parts.total_minor();
            channels.push(record.channel);
        }
    }
    channels.sort();
    channels.dedup();
    let mut compared = 0;
    let mut differ = Vec::new();
    for channel in &channels {
        let Ok(id) = channels::ChannelId::new(channel.as_str()) else { continue };
        for asset in currencies {
            compared += 1;
            let account = payments::chart::internal_account_id(
                &payments::chart::Internal::ReconSuspense(id.clone()),
                *asset,
            );
            let booked = books
                .account(account)
                .map_err(books_error)?
                .map_or(0, |a| a.balances.net_credit_posted());
            let expected = held.get(&(channel.clone(), *asset)).copied().unwrap_or(0);
            if booked != expected {
                differ.push(SuspenseDifference {
                    subject: format!("{channel}/{asset}"),
                    booked,
                    held: expected,
                });
            }
        }
    }
    Ok((compared, differ))
}

fn suspense_check(
    books: &dyn LedgerReader,
    store: &dyn crate::port::ReconStore,
    channels: Vec<String>,
    currencies: &[AssetCode],
) -> Result<Collect, ReconError> {
    let (compared, differ) = suspense_differences(books, store, channels, currencies)?;
    let mut check = Collect { examined: compared, ..Collect::default() };
    for d in differ {
        check.find(d.subject, format!("suspense holds {}, the open breaks {}", d.booked, d.held));
    }
    Ok(check)
}

/// An unfinished order past its deadline (or, without one, `stuck_after_ms` after it last
/// moved).
pub(crate) fn is_overdue(record: &executor::OrderRecord, now_ms: u64, stuck_after_ms: u64) -> bool {
    match record.order.deadline_ms() {
        Some(deadline) => deadline < now_ms,
        None => record.updated_at_ms.saturating_add(stuck_after_ms) < now_ms,
    }
}

/// The unfinished orders past their deadline, and how many unfinished orders were read.
pub(crate) fn overdue_orders(
    orders: &dyn OrderStore,
    now_ms: u64,
    stuck_after_ms: u64,
    mut each: impl FnMut(&executor::OrderRecord),
) -> Result<u64, ReconError> {
    let mut examined = 0;
    let mut cursor = None;
    loop {
        let page = orders.unfinished_after(now_ms, cursor, PAGE)?;
        for record in &page {
            examined += 1;
            if is_overdue(record, now_ms, stuck_after_ms) {
                each(record);
            }
        }
        cursor = page.last().map(|r| (r.updated_at_ms, r.id().clone()));
        if page.len() < PAGE {
            return Ok(examined);
        }
    }
}

fn run_checks(
    books: &dyn LedgerReader,
    orders: &dyn OrderStore,
    now_ms: u64,
    stuck_after_ms: u64,
    journal_from: ChainCheckpoint,
) -> Result<(Vec<CheckResult>, ChainCheckpoint), ReconError> {
    let codes: HashSet<BusinessCode> = ORDER_BUSINESS_CODES.into_iter().collect();
    // One pass over the journal: each order's posted movement per account.
    let mut moved: HashMap<String, HashMap<AccountId, i128>> = HashMap::new();
    let mut has_orders = Collect::default();
    // Every merchant's settled takings, to see what credits them.
    let merchants = orders.parties(executor::PartyKind::Merchant)?;
    let settled_accounts: HashSet<AccountId> = merchants
        .iter()
        .flat_map(|party| {
            let key = executor::party_key(&party.tenant, &party.id);
            party.assets.iter().map(move |asset| merchant_account_id(&key, *asset, true))
        })
        .collect();
    let mut settled = Collect::default();
    // The journal names the rows a movement touched (a hot merchant's sub-accounts or
    // buffers); an order was booked to the account, so each row counts as its account. Rows
    // are opened with their account, before any movement names them.
    let mut row_of: HashMap<AccountId, AccountId> = HashMap::new();
    let head = books.head().map_err(books_error)?;
    let mut first = 1;
    while first <= head.last_seq.0 {
        let through = head.last_seq.0.min(first + RECORDS_PER_READ - 1);
        let (records, _) = books.records(Seq(first), Seq(through)).map_err(books_error)?;
        for record in records {
            let mut transfer = match record {
                Record::Transfer(transfer) => transfer,
                Record::AccountOpened(account) => {
                    if let ledger::model::AccountLayout::Row { of, .. } = account.layout {
                        row_of.insert(account.id, of);
                    }
                    continue;
                }
                _ => continue,
            };
            let owner = |id: AccountId| row_of.get(&id).copied().unwrap_or(id);
            transfer.debit_account_id = owner(transfer.debit_account_id);
            transfer.credit_account_id = owner(transfer.credit_account_id);
            let posted = matches!(transfer.kind, TransferKind::Posted | TransferKind::PostPending);
            if posted
                && settled_accounts.contains(&transfer.credit_account_id)
                && transfer.business_code != payments::booking::BUSINESS_CODE_SETTLEMENT
            {
                settled.find(
                    transfer.credit_account_id.to_string(),
                    format!(
                        "credited {} by transfer {} under code {}, not a settlement",
                        transfer.amount, transfer.id, transfer.business_code.0
                    ),
                );
            }
            if !codes.contains(&transfer.business_code) {
                continue;
            }
            has_orders.examined += 1;
            let order_ref = transfer.order_ref.as_str().to_owned();
            if matches!(transfer.kind, TransferKind::Posted | TransferKind::PostPending) {
                let amount = i128::from(transfer.amount.minor());
                let accounts = moved.entry(order_ref).or_default();
                *accounts.entry(transfer.debit_account_id).or_default() -= amount;
                *accounts.entry(transfer.credit_account_id).or_default() += amount;
            } else {
                moved.entry(order_ref).or_default();
            }
        }
        first = through + 1;
    }
    let booked = booked_in_full(orders, &moved)?;
    // Orders named by the journal: exist, and when they failed, moved nothing.
    let mut failed_nothing = Collect::default();
    let mut refs: Vec<&String> = moved.keys().collect();
    refs.sort();
    for order_ref in refs {
        let record = match OrderId::new(order_ref.as_str()) {
            Ok(id) => orders.get(&id)?,
            Err(_) => None,
        };
        let Some(record) = record else {
            has_orders
                .find(order_ref.clone(), "ledger transfers under a payment code name no order");
            continue;
        };
        let status = record.order.status();
        if record.order.kind() == payments::OrderKind::Settlement && status == "succeeded" {
            settled.examined += 1;
            let merchant = record.order.merchant().unwrap_or_default();
            let account = merchant_account_id(merchant, record.order.asset(), true);
            let credited = moved[order_ref].get(&account).copied().unwrap_or(0);
            let amount = i128::from(record.order.amount().minor());
            if credited != amount {
                settled.find(
                    order_ref.clone(),
                    format!("a settlement of {amount} put {credited} in the settled takings"),
                );
            }
        }
        if !record.order.is_final() || !matches!(status, "failed" | "canceled" | "expired") {
            continue;
        }
        failed_nothing.examined += 1;
        let mut unbalanced: Vec<(AccountId, i128)> = moved[order_ref]
            .iter()
            .filter(|(_, net)| **net != 0)
            .map(|(account, net)| (*account, *net))
            .collect();
        unbalanced.sort();
        if let Some((account, net)) = unbalanced.first() {
            failed_nothing.find(
                order_ref.clone(),
                format!(
                    "{status}, yet moved {net} on account {account} (and {} more)",
                    unbalanced.len() - 1
                ),
            );
        }
    }
    // Holds of final orders.
    let mut holds = Collect::default();
    let mut after = None;
    loop {
        let page = books.pending_holds(Page { after, limit: PAGE }).map_err(books_error)?;
        for hold in &page {
            if !codes.contains(&hold.business_code) {
                continue;
            }
            holds.examined += 1;
            let Some(transfer) = books.transfer(hold.pending_id).map_err(books_error)? else {
                continue;
            };
            let Ok(id) = OrderId::new(transfer.order_ref.as_str()) else { continue };
            if let Some(record) = orders.get(&id)? {
                if record.order.is_final() {
                    holds.find(
                        id.to_string(),
                        format!(
                            "{}, yet hold {} is still pending",
                            record.order.status(),
                            hold.pending_id
                        ),
                    );
                }
            }
        }
        after = page.last().map(|hold| hold.pending_id);
        if page.len() < PAGE {
            break;
        }
    }
    // The wallet line against the customers' wallets.
    let mut wallets = Collect::default();
    let mut by_wallets: BTreeMap<AssetCode, i128> = BTreeMap::new();
    let customers = orders.parties(executor::PartyKind::Customer)?;
    for party in &customers {
        let key = executor::party_key(&party.tenant, &party.id);
        for asset in &party.assets {
            wallets.examined += 1;
            let id = wallet_account_id(&key, *asset);
            // A points asset's account has a wallet's id but sits on the points line.
            if let Some(account) = books.account(id).map_err(books_error)? {
                if account.chart_code.0 == CUSTOMER_WALLETS.code {
                    *by_wallets.entry(*asset).or_default() += account.balances.net_credit_posted();
                }
            }
        }
    }
    let mut by_line: BTreeMap<AssetCode, i128> = BTreeMap::new();
    for line in books.trial_balance().map_err(books_error)? {
        if line.chart_code.0 == CUSTOMER_WALLETS.code {
            let credits = i128::try_from(line.balances.credits_posted).unwrap_or(i128::MAX);
            let debits = i128::try_from(line.balances.debits_posted).unwrap_or(i128::MAX);
            *by_line.entry(line.asset).or_default() += credits - debits;
        }
    }
    let assets: std::collections::BTreeSet<AssetCode> =
        by_wallets.keys().chain(by_line.keys()).copied().collect();
    for asset in assets {
        let (ours, line) = (
            by_wallets.get(&asset).copied().unwrap_or(0),
            by_line.get(&asset).copied().unwrap_or(0),
        );
        if ours != line {
            wallets.find(
                asset.to_string(),
                format!("customers' wallets hold {ours}, the wallet line {line}"),
            );
        }
    }
    // Orders past their deadline.
    let mut overdue = Collect::default();
    let mut late = Vec::new();
    overdue.examined = overdue_orders(orders, now_ms, stuck_after_ms, |record| {
        late.push((
            record.id().to_string(),
            format!(
                "{} {} since {}",
                record.order.kind().as_str(),
                record.order.status(),
                record.updated_at_ms
            ),
        ));
    })?;
    for (id, detail) in late {
        overdue.find(id, detail);
    }
    // The journal's chain, from where the last run left it (a divergence keeps the
    // checkpoint where it was, so every run finds it again until it is dealt with).
    let mut journal = Collect::default();
    let report = ledger::verify::verify_chain_from(books, journal_from).map_err(books_error)?;
    journal.examined = report.n_records;
    if let Some(divergence) = &report.divergence {
        journal.find("journal", serde_json::to_string(divergence).unwrap_or_default());
    }
    let checkpoint = report.checkpoint;
    let results = vec![
        has_orders.result(CHECKS[0]),
        booked.result(CHECKS[1]),
        failed_nothing.result(CHECKS[2]),
        holds.result(CHECKS[3]),
        wallets.result(CHECKS[4]),
        settled.result(CHECKS[5]),
        overdue.result(CHECKS[7]),
        journal.result(CHECKS[8]),
    ];
    Ok((results, checkpoint))
}

/// Every order that ended with its money moved, against what the journal posted under its
/// id (`moved`: net per account, under the payment core's business codes).
fn booked_in_full(
    orders: &dyn OrderStore,
    moved: &HashMap<String, HashMap<AccountId, i128>>,
) -> Result<Collect, ReconError> {
    let mut booked = Collect::default();
    let mut after = None;
    loop {
        let page = orders.created_between(&OrderKind::ALL, 0, u64::MAX, after, PAGE)?;
        for record in &page {
            let Some(transfers) = record.order.booked_transfers() else { continue };
            booked.examined += 1;
            let expected = payments::booked::net_posted(&transfers);
            let posted: BTreeMap<AccountId, i128> = moved
                .get(record.id().as_str())
                .into_iter()
                .flatten()
                .filter(|(_, net)| **net != 0)
                .map(|(account, net)| (*account, *net))
                .collect();
            if posted == expected {
                continue;
            }
            let accounts: std::collections::BTreeSet<&AccountId> =
                expected.keys().chain(posted.keys()).collect();
            let differing: Vec<String> = accounts
                .into_iter()
                .filter(|account| expected.get(*account) != posted.get(*account))
                .map(|account| {
                    format!(
                        "account {account}: posted {}, booked as {}",
                        posted.get(account).copied().unwrap_or(0),
                        expected.get(account).copied().unwrap_or(0)
                    )
                })
                .collect();
            booked.find(
                record.id().to_string(),
                format!(
                    "{} {}: {}",
                    record.order.kind().as_str(),
                    record.order.status(),
                    differing.join("; ")
                ),
            );
        }
        after = match page.last() {
            Some(last) if page.len() == PAGE => Some((last.created_at_ms, last.id().clone())),
            _ => break,
        };
    }
    Ok(booked)
}
