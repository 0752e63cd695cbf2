//! End of day (日切): closing a business day stores its trial balance — per asset and chart
//! line, the opening net, the day's posted debits and credits, and the closing net — with a
//! hash chained to the day before. A closed day never changes: a correction is posted in the
//! open day (a break's resolution names the day it corrects).
//!
//! The day is the journal between two cut-overs: every record committed at or after the
//! day's start (00:00) and before the next day's. A posting after the cut-over is the next day's, whatever
//! it corrects. Days close in order; the first close computes its opening from every
//! account's balances at the start, every later one takes the day before's closing.

use std::collections::{BTreeMap, HashMap};

use ledger::model::{Account, Balances};
use ledger::port::{LedgerReader, Page, StoreError};
use ledger::{AccountId, Seq, Timestamp};
use money::AssetCode;
use recon::BusinessDay;
use sha2::{Digest, Sha256};

use crate::port::{ClosedDay, DayLine};
use crate::{ReconError, Reconciler};

/// A day closes this long after its cut-over at the earliest: a batch stamped just before
/// midnight is committed by then. (One committed later still is counted in the next day:
/// each day starts where the day before ended in the journal, so nothing falls between.)
pub const CLOSE_GRACE_MS: u64 = 60_000;
/// Journal records read per query while summing a day.
const RECORDS_PER_READ: u64 = 20_000;
/// Accounts read per page for the first opening.
const ACCOUNTS_PER_PAGE: usize = 1_000;

fn books_error(error: StoreError) -> ReconError {
    ReconError::Ledger(error.to_string())
}

/// Posted debits and credits of a line (cumulative counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Posted {
    debits: u128,
    credits: u128,
}

impl Posted {
    fn of(balances: &Balances) -> Posted {
        Posted {
            debits: u128::from(balances.debits_posted.minor()),
            credits: u128::from(balances.credits_posted.minor()),
        }
    }
}

type LineKey = (AssetCode, u32);

impl Reconciler {
    /// Closes `day`, or returns it as closed before. Refused while the day is not over, and
    /// while an earlier day after the first closed one is still open.
    pub async fn close_day(&self, day: BusinessDay, by: &str) -> Result<ClosedDay, ReconError> {
        let _serial = self.serial.lock().await;
        if let Some(closed) = self.store.closed_day(day.days())? {
            return Ok(closed);
        }
        let offset = self.config.utc_offset_minutes;
        let now_ms = self.clock.now_ms();
        if now_ms < day.end_ms(offset).saturating_add(CLOSE_GRACE_MS) {
            return Err(ReconError::DayNotOver { day: day.to_string() });
        }
        let previous = self.store.closed_days(1)?.pop();
        if let Some(previous) = &previous {
            if previous.business_day > day.days() {
                return Err(ReconError::DayOrder {
                    day: day.to_string(),
                    needs: "a day after the last closed one".into(),
                });
            }
            if previous.business_day + 1 != day.days() {
                let open = BusinessDay::from_days(previous.business_day + 1);
                return Err(ReconError::DayOrder {
                    day: day.to_string(),
                    needs: format!("{open} closed first"),
                });
            }
        }
        let books = self.books.clone().ok_or_else(|| {
            ReconError::Ledger("this node has no reader of the books to close a day".into())
        })?;
        // The reader's clients block (PostgreSQL's drives a runtime of its own): off the
        // async workers.
        let by = by.to_owned();
        let closed = tokio::task::spawn_blocking(move || {
            compute(books.as_ref(), day, offset, previous.as_ref(), &by, now_ms)
        })
        .await
        .map_err(|error| ReconError::Ledger(error.to_string()))??;
        Ok(self.store.put_closed_day(&closed)?)
    }
}

/// The day's lines and hash from the journal (blocking reads).
fn compute(
    books: &dyn LedgerReader,
    day: BusinessDay,
    offset: i32,
    previous: Option<&ClosedDay>,
    by: &str,
    now_ms: u64,
) -> Result<ClosedDay, ReconError> {
    // The last record committed before the instant: a commit at 00:00:00.000000 exactly is
    // the new day's, as `BusinessDay::of` says.
    let at = |ms: u64| Timestamp(ms.saturating_mul(1_000).saturating_sub(1));
    // Where the day before ended, so that days tile the journal without a gap.
    let from_seq = match previous {
        Some(previous) => Seq(previous.to_seq),
        None => books.seq_at(at(day.start_ms(offset))).map_err(books_error)?,
    };
    let to_seq = books.seq_at(at(day.end_ms(offset))).map_err(books_error)?;
    let mut accounts: HashMap<AccountId, LineKey> = HashMap::new();
    // Opening posted counters per line: the day before's closing, or every account at the
    // start for the first close.
    let mut opening: BTreeMap<LineKey, i128> = BTreeMap::new();
    match previous {
        Some(previous) => {
            for line in &previous.lines {
                opening.insert((line.asset, line.chart_code), line.closing_net_minor);
            }
        }
        None => {
            let mut after = None;
            loop {
                let page = books
                    .accounts(Page { after, limit: ACCOUNTS_PER_PAGE })
                    .map_err(books_error)?;
                for account in &page {
                    let key = line_key(account);
                    accounts.insert(account.id, key);
                    let posted = books
                        .entry_as_of(account.id, Seq(from_seq.0))
                        .map_err(books_error)?
                        .map(|entry| Posted::of(&entry.balances_after))
                        .unwrap_or_default();
                    *opening.entry(key).or_default() += net(posted);
                }
                after = page.last().map(|account| account.id);
                if page.len() < ACCOUNTS_PER_PAGE {
                    break;
                }
            }
        }
    }
    // The day's movement: each touched account's last balances in the day less its
    // balances at the start (posted counters only grow, so the differences are the day's).
    let mut last: HashMap<AccountId, Posted> = HashMap::new();
    let mut first = from_seq.0 + 1;
    while first <= to_seq.0 {
        let through = to_seq.0.min(first + RECORDS_PER_READ - 1);
        let (_, entries) = books.records(Seq(first), Seq(through)).map_err(books_error)?;
        for entry in entries {
            last.insert(entry.account_id, Posted::of(&entry.balances_after));
        }
        first = through + 1;
    }
    let mut moved: BTreeMap<LineKey, Posted> = BTreeMap::new();
    for (id, end) in &last {
        let key = match accounts.get(id) {
            Some(key) => *key,
            None => {
                let account = books.account(*id).map_err(books_error)?.ok_or_else(|| {
                    ReconError::Ledger(format!("the journal names account {id}, which is gone"))
                })?;
                let key = line_key(&account);
                accounts.insert(*id, key);
                key
            }
        };
        let start = books
            .entry_as_of(*id, Seq(from_seq.0))
            .map_err(books_error)?
            .map(|entry| Posted::of(&entry.balances_after))
            .unwrap_or_default();
        let line = moved.entry(key).or_default();
        line.debits += end.debits.saturating_sub(start.debits);
        line.credits += end.credits.saturating_sub(start.credits);
    }
    let keys: std::collections::BTreeSet<LineKey> =
        opening.keys().chain(moved.keys()).copied().collect();
    let lines: Vec<DayLine> = keys
        .into_iter()
        .map(|key| {
            let opening_net = opening.get(&key).copied().unwrap_or(0);
            let day_moved = moved.get(&key).copied().unwrap_or_default();
            DayLine {
                asset: key.0,
                chart_code: key.1,
                opening_net_minor: opening_net,
                debits_minor: day_moved.debits,
                credits_minor: day_moved.credits,
                closing_net_minor: opening_net + net(day_moved),
            }
        })
        .collect();
    let previous_hash = previous.map(|p| p.hash.clone()).unwrap_or_default();
    let hash = day_hash(day, offset, from_seq.0, to_seq.0, &lines, &previous_hash);
    Ok(ClosedDay {
        business_day: day.days(),
        utc_offset_minutes: offset,
        from_seq: from_seq.0,
        to_seq: to_seq.0,
        lines,
        previous_hash,
        hash,
        closed_by: by.to_owned(),
        closed_at_ms: now_ms,
    })
}

fn line_key(account: &Account) -> LineKey {
    (account.asset, account.chart_code.0)
}

/// Debits less credits. A line's counters sum accounts of at most `Amount::MAX` (< 2^63)
/// each: below 2^127 for any number of accounts a store can hold, so both conversions are
/// exact and the difference cannot overflow.
fn net(posted: Posted) -> i128 {
    let signed = |value: u128| i128::try_from(value).unwrap_or(i128::MAX);
    signed(posted.debits) - signed(posted.credits)
}

/// SHA-256 over what the day is (never when or by whom it was closed), as hex.
pub fn day_hash(
    day: BusinessDay,
    offset: i32,
    from_seq: u64,
    to_seq: u64,
    lines: &[DayLine],
    previous_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"qianbao.recon.closed_day\0");
    hasher.update(previous_hash.as_bytes());
    hasher.update([0]);
    hasher.update(day.days().to_be_bytes());
    hasher.update(offset.to_be_bytes());
    hasher.update(from_seq.to_be_bytes());
    hasher.update(to_seq.to_be_bytes());
    for line in lines {
        hasher.update(line.asset.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(line.chart_code.to_be_bytes());
        hasher.update(line.opening_net_minor.to_be_bytes());
        hasher.update(line.debits_minor.to_be_bytes());
        hasher.update(line.credits_minor.to_be_bytes());
        hasher.update(line.closing_net_minor.to_be_bytes());
    }
    hex::encode(hasher.finalize())
}
