//! Fund-safety monitoring (资金安全监控): each pass takes a [`monitors::Snapshot`] of the books,
//! the breaks, the inquiries and the orders, evaluates the rules, and stores what changed —
//! an alert firing, its new measurement, its resolution. The alerts firing now are kept for
//! the metrics endpoint; the changes are returned for the caller to send on.

use std::collections::{BTreeMap, HashMap};

use executor::OrderStore;
use ledger::model::{Record, TransferKind};
use ledger::port::{LedgerReader, StoreError};
use ledger::{AccountId, Seq, Timestamp};
use monitors::{Alert, AlertState, Rule, Snapshot};
use payments::chart::{CUSTOMER_WALLETS, MERCHANT_SETTLED, MERCHANT_UNSETTLED};
use payments::OrderKind;
use recon::breaks::{BreakState, Severity};
use recon::BusinessDay;

use crate::port::{BreakQuery, ReconStore};
use crate::{ReconError, Reconciler};

const HOUR_MS: u64 = 3_600_000;
/// Open breaks read per state for one pass.
const BREAKS_READ_MAX: usize = 10_000;
/// Withdrawals read per page.
const ORDERS_PAGE: usize = 1_000;
const RECORDS_PER_READ: u64 = 20_000;

/// The chart lines whose accounts are customers' and merchants' money: the one-account
/// debit limit watches these (internal accounts such as clearing move in bulk by design).
const WATCHED_LINES: [u32; 3] =
    [CUSTOMER_WALLETS.code, MERCHANT_UNSETTLED.code, MERCHANT_SETTLED.code];

fn books_error(error: StoreError) -> ReconError {
    ReconError::Ledger(error.to_string())
}

/// What the service knows that the reconciler does not read itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outside {
    /// Inquiries that gave up and wait for an operator.
    pub escalated_inquiries: u64,
}

impl Reconciler {
    /// One monitoring pass: evaluates every rule, stores what changed and returns it.
    pub async fn monitor(&self, outside: Outside) -> Result<Vec<Alert>, ReconError> {
        let books = self.books.clone().ok_or_else(|| {
            ReconError::Ledger("this node has no reader of the books to monitor".into())
        })?;
        let orders = self.orders.clone();
        let store = self.store.clone();
        let now_ms = self.clock.now_ms();
        let config = self.config.clone();
        let channels: Vec<String> = self.channels().iter().map(|c| c.as_str().to_owned()).collect();
        let snapshot = tokio::task::spawn_blocking(move || {
            let mut snapshot = snapshot(
                books.as_ref(),
                orders.as_ref(),
                store.as_ref(),
                &config,
                outside,
                now_ms,
            )?;
            let (_, differ) = crate::checks::suspense_differences(
                books.as_ref(),
                store.as_ref(),
                channels,
                &config.currencies,
            )?;
            snapshot.clearing_drift =
                differ.into_iter().map(|d| (d.subject, d.booked - d.held)).collect();
            Ok::<_, ReconError>(snapshot)
        })
        .await
        .map_err(|error| ReconError::Ledger(error.to_string()))??;
        let signals = monitors::evaluate(&snapshot, &self.config.monitors);
        let firing_before = self.store.alerts(Some(AlertState::Firing), usize::MAX)?;
        let changed = monitors::transitions(&firing_before, &signals, now_ms);
        for alert in &changed {
            self.store.put_alert(alert)?;
        }
        let firing_now = self.store.alerts(Some(AlertState::Firing), usize::MAX)?;
        *self.firing.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(firing_now);
        Ok(changed)
    }

    /// The monitors as Prometheus text: per rule how many alerts fire, and each firing
    /// alert with its subject (nothing before the first pass).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let firing = self.firing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(firing) = firing.as_ref() else { return };
        let _ = writeln!(out, "# TYPE qianbao_fund_alerts_firing gauge");
        for rule in Rule::ALL {
            let count = firing.iter().filter(|alert| alert.rule == rule).count();
            let _ = writeln!(
                out,
                "qianbao_fund_alerts_firing{{rule=\"{}\",urgency=\"{}\"}} {count}",
                rule.as_str(),
                rule.urgency().as_str()
            );
        }
        let _ = writeln!(out, "# TYPE qianbao_fund_alert gauge");
        for alert in firing.iter() {
            // Subjects are assets, channels, account ids or `platform`: no quotes or
            // backslashes to escape, but escaped all the same.
            let subject = alert.subject.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "qianbao_fund_alert{{rule=\"{}\",subject=\"{subject}\",urgency=\"{}\"}} 1",
                alert.rule.as_str(),
                alert.urgency.as_str()
            );
        }
    }
}

fn snapshot(
    books: &dyn LedgerReader,
    orders: &dyn OrderStore,
    store: &dyn ReconStore,
    config: &crate::ReconConfig,
    outside: Outside,
    now_ms: u64,
) -> Result<Snapshot, ReconError> {
    let mut snapshot = Snapshot {
        now_ms,
        escalated_inquiries: outside.escalated_inquiries,
        ..Snapshot::default()
    };
    // Posted and pending alike: a hold is a debit and a credit too, and both must balance.
    // The measurement is the posted difference, or else the pending one.
    for totals in books.asset_totals().map_err(books_error)? {
        let t = totals.totals;
        let side = if t.debits_posted != t.credits_posted {
            (t.debits_posted, t.credits_posted)
        } else {
            (t.debits_pending, t.credits_pending)
        };
        snapshot.totals.insert(totals.asset, side);
    }
    // Open breaks: their severity, and suspense held past T+1.
    let today = BusinessDay::of(now_ms, config.utc_offset_minutes);
    for state in
        [BreakState::Open, BreakState::Assigned, BreakState::PendingApproval, BreakState::Resolving]
    {
        let query =
            BreakQuery { state: Some(state), limit: BREAKS_READ_MAX, ..BreakQuery::default() };
        for record in store.breaks(&query)? {
            let day = BusinessDay::from_days(record.business_day);
            match config.policy.severity(record.parts, day, today) {
                Severity::Critical => snapshot.critical_breaks += 1,
                Severity::High => snapshot.high_breaks += 1,
                Severity::Low | Severity::Medium => {}
            }
            if record.business_day < today.days() - 1 {
                *snapshot.aged_suspense.entry(record.channel.clone()).or_default() +=
                    record.parts.total_minor().unsigned_abs();
            }
        }
    }
    snapshot.overdue_orders = {
        let mut late = 0;
        crate::checks::overdue_orders(orders, now_ms, config.stuck_after_ms, |_| late += 1)?;
        late
    };
    // Withdrawals: the last hour against the hourly average of the 24 before it.
    let from_ms = now_ms.saturating_sub(25 * HOUR_MS);
    let last_hour_from = now_ms.saturating_sub(HOUR_MS);
    let mut trailing: BTreeMap<money::AssetCode, u128> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = orders.created_between(
            &[OrderKind::Withdrawal],
            from_ms,
            now_ms,
            after,
            ORDERS_PAGE,
        )?;
        for record in &page {
            let amount = u128::from(record.order.amount().minor());
            let asset = record.order.asset();
            if record.created_at_ms >= last_hour_from {
                *snapshot.withdrawals_last_hour.entry(asset).or_default() += amount;
            } else {
                *trailing.entry(asset).or_default() += amount;
            }
        }
        after = page.last().map(|r| (r.created_at_ms, r.id().clone()));
        if page.len() < ORDERS_PAGE {
            break;
        }
    }
    snapshot.withdrawals_hourly_average =
        trailing.into_iter().map(|(asset, sum)| (asset, sum / 24)).collect();
    // Debits of customers' and merchants' accounts in the last hour, from the journal.
    let first =
        books.seq_at(Timestamp(last_hour_from.saturating_mul(1_000))).map_err(books_error)?.0 + 1;
    let last = books.head().map_err(books_error)?.last_seq.0;
    // A hot merchant's unsettled payables are spread over rows, which the journal names;
    // the limit is the account's, and a sweep or fold between its own rows is no debit.
    let mut row_of: HashMap<AccountId, AccountId> = HashMap::new();
    for party in orders.parties(executor::PartyKind::Merchant)? {
        let key = executor::party_key(&party.tenant, &party.id);
        for asset in &party.assets {
            let account = payments::chart::merchant_account_id(&key, *asset, false);
            for row in party.unsettled_layout.derived_rows() {
                row_of.insert(account.row(row), account);
            }
        }
    }
    let owner = |id: AccountId| row_of.get(&id).copied().unwrap_or(id);
    let mut debited: HashMap<AccountId, u128> = HashMap::new();
    let mut start = first;
    while start <= last {
        let through = last.min(start + RECORDS_PER_READ - 1);
        let (records, _) = books.records(Seq(start), Seq(through)).map_err(books_error)?;
        for record in records {
            let Record::Transfer(transfer) = record else { continue };
            let (debit, credit) =
                (owner(transfer.debit_account_id), owner(transfer.credit_account_id));
            if debit != credit
                && matches!(transfer.kind, TransferKind::Posted | TransferKind::PostPending)
            {
                *debited.entry(debit).or_default() += u128::from(transfer.amount.minor());
            }
        }
        start = through + 1;
    }
    let limit = u128::from(config.monitors.account_debit_limit_minor);
    for (id, amount) in debited {
        // Only accounts over the limit are worth a lookup of their line.
        if amount <= limit {
            continue;
        }
        let watched = books
            .account(id)
            .map_err(books_error)?
            .is_some_and(|account| WATCHED_LINES.contains(&account.chart_code.0));
        if watched {
            snapshot.account_debits_last_hour.insert(id.to_string(), amount);
        }
    }
    Ok(snapshot)
}
