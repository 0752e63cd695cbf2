//! A closed day's reports (日切报表): each merchant's daily statement and each channel's
//! daily summary. Both are read from what the day froze — the merchant statement from the
//! journal span of the closed day, the channel summary from the day's reconciliation runs —
//! so the same closed day always gives the same report.
//!
//! A merchant's statement, per asset, from its two payables (unsettled 2202, settled 2203):
//! payments credited, the platform's fees taken, refunds returned to payers, settlements
//! (unsettled → settled), payouts from settled takings, and both balances at the day's end.

use std::collections::{BTreeMap, HashMap, HashSet};

use executor::{OrderStore, PartyKind};
use ledger::model::{Record, TransferKind};
use ledger::port::{LedgerReader, StoreError};
use ledger::{AccountId, Seq};
use money::AssetCode;
use payments::chart::merchant_account_id;
use recon::breaks::BreakState;
use recon::{BusinessDay, TxType};

use crate::port::{BreakQuery, ClosedDay, DayQuery, ReconStore};
use crate::{ReconError, Reconciler};

const RECORDS_PER_READ: u64 = 20_000;

fn books_error(error: StoreError) -> ReconError {
    ReconError::Ledger(error.to_string())
}

/// One merchant's day in one asset.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MerchantDay {
    pub tenant: String,
    pub merchant: String,
    pub asset: String,
    pub payments_count: u64,
    pub payments_minor: u128,
    pub fees_minor: u128,
    pub refunds_count: u64,
    pub refunds_minor: u128,
    /// Fees given back with refunds.
    pub fees_returned_minor: u128,
    pub settled_minor: u128,
    pub payouts_count: u64,
    pub payouts_minor: u128,
    /// Balances at the day's end (credits less debits, posted).
    pub unsettled_closing_minor: i128,
    pub settled_closing_minor: i128,
}

/// One channel's day: the newest run's totals per type and currency, and its breaks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChannelDay {
    pub channel: String,
    pub tx_type: TxType,
    pub currency: AssetCode,
    pub count_ours: u64,
    pub sum_ours_minor: u128,
    pub count_theirs: u64,
    pub sum_theirs_minor: u128,
    pub agrees: bool,
    /// The run the row comes from.
    pub run_id: String,
    /// Breaks of the channel and day (all types): still open, and resolved.
    pub breaks_open: u64,
    pub breaks_resolved: u64,
}

impl Reconciler {
    fn closed(&self, day: BusinessDay) -> Result<ClosedDay, ReconError> {
        self.store.closed_day(day.days())?.ok_or(ReconError::DayNotClosed { day: day.to_string() })
    }

    /// Every merchant's statement of a closed day (merchants with no movement and no
    /// balance left out), ordered by tenant, merchant and asset.
    pub async fn merchant_statements(
        &self,
        day: BusinessDay,
    ) -> Result<Vec<MerchantDay>, ReconError> {
        let closed = self.closed(day)?;
        let books = self.books.clone().ok_or_else(|| {
            ReconError::Ledger("this node has no reader of the books for reports".into())
        })?;
        let orders = self.orders.clone();
        tokio::task::spawn_blocking(move || merchants(books.as_ref(), orders.as_ref(), &closed))
            .await
            .map_err(|error| ReconError::Ledger(error.to_string()))?
    }

    /// Every channel's summary of a closed day, from its newest run of that day.
    pub fn channel_summaries(&self, day: BusinessDay) -> Result<Vec<ChannelDay>, ReconError> {
        self.closed(day)?;
        channels(self.store.as_ref(), day)
    }
}

/// Which merchant payable an account is.
#[derive(Clone, Copy)]
enum Payable {
    Unsettled(usize),
    Settled(usize),
}

fn merchants(
    books: &dyn LedgerReader,
    orders: &dyn OrderStore,
    closed: &ClosedDay,
) -> Result<Vec<MerchantDay>, ReconError> {
    let mut rows: Vec<MerchantDay> = Vec::new();
    let mut payables: HashMap<AccountId, Payable> = HashMap::new();
    for party in orders.parties(PartyKind::Merchant)? {
        let key = executor::party_key(&party.tenant, &party.id);
        for asset in &party.assets {
            let index = rows.len();
            rows.push(MerchantDay {
                tenant: party.tenant.clone(),
                merchant: party.id.clone(),
                asset: asset.to_string(),
                ..MerchantDay::default()
            });
            // A hot merchant's unsettled payables are spread over rows, which the journal names.
            let unsettled = merchant_account_id(&key, *asset, false);
            for row in party.unsettled_layout.row_ids(unsettled) {
                payables.insert(row, Payable::Unsettled(index));
            }
            payables.insert(merchant_account_id(&key, *asset, true), Payable::Settled(index));
        }
    }
    // Wallet and card payments book the merchant's credit under the payment code.
    let payment = payments::booking::BUSINESS_CODE_PAYMENT;
    // Counts are of orders, not transfers: a points+cash payment credits the merchant twice.
    let mut paid_by: Vec<HashSet<String>> = vec![HashSet::new(); rows.len()];
    let mut refunded_by: Vec<HashSet<String>> = vec![HashSet::new(); rows.len()];
    let refund = payments::booking::BUSINESS_CODE_REFUND;
    let settlement = payments::booking::BUSINESS_CODE_SETTLEMENT;
    let payout = payments::withdrawal::BUSINESS_CODE_PAYOUT;
    let mut start = closed.from_seq + 1;
    while start <= closed.to_seq {
        let through = closed.to_seq.min(start + RECORDS_PER_READ - 1);
        let (records, _) = books.records(Seq(start), Seq(through)).map_err(books_error)?;
        for record in records {
            let Record::Transfer(transfer) = record else { continue };
            if !matches!(transfer.kind, TransferKind::Posted | TransferKind::PostPending) {
                continue;
            }
            let amount = u128::from(transfer.amount.minor());
            let business = transfer.business_code;
            if let Some(Payable::Unsettled(i)) = payables.get(&transfer.credit_account_id) {
                let row = &mut rows[*i];
                if business == payment {
                    paid_by[*i].insert(transfer.order_ref.as_str().to_owned());
                    row.payments_minor += amount;
                } else if business == refund {
                    row.fees_returned_minor += amount;
                }
            }
            if let Some(Payable::Unsettled(i)) = payables.get(&transfer.debit_account_id) {
                let row = &mut rows[*i];
                if business == payment {
                    row.fees_minor += amount;
                } else if business == refund {
                    refunded_by[*i].insert(transfer.order_ref.as_str().to_owned());
                    row.refunds_minor += amount;
                } else if business == settlement {
                    row.settled_minor += amount;
                }
            }
            if let Some(Payable::Settled(i)) = payables.get(&transfer.debit_account_id) {
                if business == payout {
                    rows[*i].payouts_count += 1;
                    rows[*i].payouts_minor += amount;
                }
            }
        }
        start = through + 1;
    }
    for (row, (paid, refunded)) in rows.iter_mut().zip(paid_by.iter().zip(&refunded_by)) {
        row.payments_count = paid.len() as u64;
        row.refunds_count = refunded.len() as u64;
    }
    for (id, payable) in &payables {
        let closing = books
            .entry_as_of(*id, Seq(closed.to_seq))
            .map_err(books_error)?
            .map_or(0, |entry| entry.balances_after.net_credit_posted());
        // Summed: an account spread over rows closes at the sum of its rows.
        match payable {
            Payable::Unsettled(i) => rows[*i].unsettled_closing_minor += closing,
            Payable::Settled(i) => rows[*i].settled_closing_minor += closing,
        }
    }
    rows.retain(|row| {
        row.payments_count + row.refunds_count + row.payouts_count > 0
            || row.settled_minor > 0
            || row.unsettled_closing_minor != 0
            || row.settled_closing_minor != 0
    });
    rows.sort_by(|a, b| {
        (&a.tenant, &a.merchant, &a.asset).cmp(&(&b.tenant, &b.merchant, &b.asset))
    });
    Ok(rows)
}

fn channels(store: &dyn ReconStore, day: BusinessDay) -> Result<Vec<ChannelDay>, ReconError> {
    // Newest first: the first run of each channel is its newest.
    let runs =
        store.runs(&DayQuery { channel: None, business_day: Some(day.days()), limit: 10_000 })?;
    let mut newest: BTreeMap<String, crate::port::RunRecord> = BTreeMap::new();
    for run in runs {
        newest.entry(run.channel.clone()).or_insert(run);
    }
    let mut rows = Vec::new();
    for (channel, run) in newest {
        let query = BreakQuery {
            channel: Some(channel.clone()),
            business_day: Some(day.days()),
            limit: 100_000,
            ..BreakQuery::default()
        };
        let breaks = store.breaks(&query)?;
        let resolved = breaks.iter().filter(|b| b.state == BreakState::Resolved).count() as u64;
        let open = breaks.len() as u64 - resolved;
        for totals in &run.totals {
            rows.push(ChannelDay {
                channel: channel.clone(),
                tx_type: totals.tx_type,
                currency: totals.currency,
                count_ours: totals.count_ours,
                sum_ours_minor: totals.sum_ours_minor,
                count_theirs: totals.count_theirs,
                sum_theirs_minor: totals.sum_theirs_minor,
                agrees: totals.agrees(),
                run_id: run.id.clone(),
                breaks_open: open,
                breaks_resolved: resolved,
            });
        }
    }
    Ok(rows)
}
