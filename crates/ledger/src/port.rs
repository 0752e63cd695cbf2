//! The ledger's storage port: the narrow set of operations the posting pipeline and the
//! queries need. Backends (SQLite, PostgreSQL) live in the `store` crate; the ledger knows no
//! SQL.
//!
//! Lock order, which every backend must follow to stay free of deadlocks when several
//! processes post to one database: holds (sorted by id, one statement), then due holds
//! (skipping locked rows, never waiting), then accounts (sorted by id, one statement), then
//! the journal head. A transaction only ever waits for a lock of a later stage than the ones
//! it holds, so no cycle can form.

use std::collections::HashMap;

use money::{Asset, AssetCode};

use crate::apply::BatchWrite;
use crate::ids::{AccountId, Seq, Timestamp, TransferId};
use crate::journal::{BatchHeader, JournalHead};
use crate::model::{Account, ChartCode, ChartEntry, Entry, Hold, Record, Transfer};

/// An operating failure of a store. Expected rejections are never errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A conflict with a concurrent writer (deadlock, serialization failure, a duplicate id
    /// inserted by another node). Nothing was written; the batch can be retried as a whole.
    #[error("conflict with a concurrent writer: {0}")]
    Conflict(String),
    /// The connection failed while the commit was in flight: the batch may or may not have
    /// been written. Callers must retry with the same ids; idempotency makes that safe.
    #[error("commit outcome unknown: {0}")]
    CommitOutcomeUnknown(String),
    /// The store holds something the ledger cannot have written: stop, do not guess.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

/// A store the posting pipeline writes through. One pipeline owns one instance.
pub trait LedgerStore: Send + 'static {
    type Tx<'a>: LedgerTx
    where
        Self: 'a;

    /// Starts a write transaction.
    fn begin(&mut self) -> Result<Self::Tx<'_>, StoreError>;

    /// Whether each commit waits until it is on disk (the default, and always so where the
    /// store cannot relax it). A store written behind a journal of its own (the journal-first
    /// engine's books) turns it off and on again: one durable commit makes every commit
    /// before it durable too, and the journal holds anything a crash could lose in between.
    fn set_sync_each_commit(&mut self, sync: bool) -> Result<(), StoreError> {
        let _ = sync;
        Ok(())
    }
}

/// The assets and the chart of accounts.
#[derive(Clone, Debug, Default)]
pub struct ReferenceData {
    pub assets: HashMap<AssetCode, Asset>,
    pub charts: HashMap<ChartCode, ChartEntry>,
}

/// One write transaction. Dropping it without `commit` rolls back.
pub trait LedgerTx {
    /// Existing transfers among `ids`; no lock (transfers never change).
    fn find_transfers(&mut self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError>;
    /// Holds among `pending_ids` (sorted), locked.
    fn lock_holds(&mut self, pending_ids: &[TransferId]) -> Result<Vec<Hold>, StoreError>;
    /// Up to `limit` pending holds with `expires_at <= now`, skipping any another writer holds.
    fn lock_due_holds(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, StoreError>;
    /// Accounts among `ids` (sorted), locked.
    fn lock_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError>;
    /// All assets and chart lines (small, rarely changed tables).
    fn reference_data(&mut self) -> Result<ReferenceData, StoreError>;
    /// Every account opened with more than one row (sub-accounts, buffers), and its layout.
    fn account_layouts(
        &mut self,
    ) -> Result<Vec<(AccountId, crate::model::AccountLayout)>, StoreError>;
    /// Buffered accounts whose buffers hold posted credit not yet folded.
    fn buffered_with_credit(&mut self) -> Result<Vec<AccountId>, StoreError>;
    /// The chain's tip, locked until commit: this serialises batches across nodes.
    fn lock_head(&mut self) -> Result<JournalHead, StoreError>;
    /// Writes a batch and moves the head to it.
    fn write(&mut self, batch: &BatchWrite) -> Result<(), StoreError>;
    /// Writes consecutive batches, in order, and moves the head to the last: the rows they
    /// leave are those of writing each in turn (the default), which a store may reach in fewer
    /// statements (each account once, in its final state).
    fn write_group(&mut self, batches: &[&BatchWrite]) -> Result<(), StoreError> {
        batches.iter().try_for_each(|batch| self.write(batch))
    }
    /// Makes the transaction durable. Only after this returns may results be acknowledged.
    fn commit(self) -> Result<(), StoreError>;
}

/// A page request: at most `limit` items after the cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<C> {
    pub after: Option<C>,
    pub limit: usize,
}

/// The largest page a caller may ask for.
pub const PAGE_LIMIT_MAX: usize = 1000;
/// The most rows one query returns: a full page and one more, so a caller asking for
/// `limit + 1` learns whether another page follows even at [`PAGE_LIMIT_MAX`].
pub const PAGE_ROWS_MAX: usize = PAGE_LIMIT_MAX + 1;

/// Totals of one chart line in one asset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TrialBalanceLine {
    pub asset: AssetCode,
    pub chart_code: ChartCode,
    pub n_accounts: u64,
    pub balances: BalanceTotals,
}

fn summed_overflow(id: AccountId) -> StoreError {
    StoreError::Backend(format!("the rows of account {id} sum past the largest amount"))
}

/// The trial balance's totals of one asset (试算平衡): every chart line of the asset added.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AssetTotals {
    pub asset: AssetCode,
    pub totals: BalanceTotals,
}

impl AssetTotals {
    /// Per asset, in asset order, over the lines of a trial balance.
    pub fn of(lines: &[TrialBalanceLine]) -> Vec<AssetTotals> {
        let mut by_asset: std::collections::BTreeMap<String, AssetTotals> = Default::default();
        for line in lines {
            by_asset
                .entry(line.asset.to_string())
                .or_insert_with(|| AssetTotals {
                    asset: line.asset,
                    totals: BalanceTotals::default(),
                })
                .totals
                .add(&line.balances);
        }
        by_asset.into_values().collect()
    }

    /// Debits equal credits, posted and pending: double entry holds for this asset.
    pub fn balanced(&self) -> bool {
        self.totals.debits_posted == self.totals.credits_posted
            && self.totals.debits_pending == self.totals.credits_pending
    }
}

/// Balances summed over many accounts. Each account's balance fits an `Amount`; their sum
/// may not, so totals are 128-bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BalanceTotals {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl BalanceTotals {
    pub fn add(&mut self, other: &BalanceTotals) {
        self.debits_pending += other.debits_pending;
        self.debits_posted += other.debits_posted;
        self.credits_pending += other.credits_pending;
        self.credits_posted += other.credits_posted;
    }

    /// Signed: credits posted minus debits posted and pending.
    pub fn available_credit(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128 - self.debits_pending as i128
    }
}

impl From<&crate::model::Balances> for BalanceTotals {
    fn from(balances: &crate::model::Balances) -> BalanceTotals {
        BalanceTotals {
            debits_pending: u128::from(balances.debits_pending.minor()),
            debits_posted: u128::from(balances.debits_posted.minor()),
            credits_pending: u128::from(balances.credits_pending.minor()),
            credits_posted: u128::from(balances.credits_posted.minor()),
        }
    }
}

/// Read-only queries. Backends answer them on their own connections, outside the pipeline.
pub trait LedgerReader: Send + Sync {
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError>;
    fn hold(&self, pending_id: TransferId) -> Result<Option<Hold>, StoreError>;
    /// The transfers among `ids` that exist, in no particular order. A backend answers many
    /// in one read where it can: the journal-first engine asks for every id of a batch that
    /// its memory does not hold.
    fn transfers(&self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        let mut found = Vec::new();
        for id in ids {
            found.extend(self.transfer(*id)?);
        }
        Ok(found)
    }
    /// An account's entries in journal order, after the cursor.
    fn entries(&self, account_id: AccountId, page: Page<Seq>) -> Result<Vec<Entry>, StoreError>;
    /// The account's last entry at or before `seq`: its balances as of that point.
    fn entry_as_of(&self, account_id: AccountId, seq: Seq) -> Result<Option<Entry>, StoreError>;
    /// The last record sequence committed at or before `at`.
    fn seq_at(&self, at: Timestamp) -> Result<Seq, StoreError>;
    /// Sums per asset and chart code over all accounts.
    fn trial_balance(&self) -> Result<Vec<TrialBalanceLine>, StoreError>;
    fn head(&self) -> Result<JournalHead, StoreError>;
    /// Batch headers in chain order, after the cursor.
    fn batches(&self, page: Page<crate::ids::BatchSeq>) -> Result<Vec<BatchHeader>, StoreError>;
    /// Every record and entry with `first <= seq <= last`, in `seq` order.
    fn records(&self, first: Seq, last: Seq) -> Result<(Vec<Record>, Vec<Entry>), StoreError>;
    /// Accounts in id order, after the cursor.
    fn accounts(&self, page: Page<AccountId>) -> Result<Vec<Account>, StoreError>;
    /// Holds still pending, in id order, after the cursor.
    fn pending_holds(&self, page: Page<TransferId>) -> Result<Vec<Hold>, StoreError>;
    /// The accounts with these ids, read at one instant (one statement), so that the rows of
    /// one layout add up even while a fold or sweep commits between them.
    fn accounts_at_once(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError>;

    /// An account as its owner sees it. For sub-accounts, `balances` sums every row (reads
    /// are summed, 子账户); for a buffered account, `balances` is its own row (what it can
    /// spend) and the second value sums what waits in its buffers; otherwise the second
    /// value is zero. Any row is read as it is.
    fn account_summed(
        &self,
        id: AccountId,
    ) -> Result<Option<(Account, crate::model::Balances)>, StoreError> {
        let Some(account) = self.account(id)? else { return Ok(None) };
        if account.layout.derived_rows().is_empty() {
            return Ok(Some((account, crate::model::Balances::default())));
        }
        // The own row again with the others: reading it apart from them could straddle a
        // fold and miss (or twice count) the amount moving between rows.
        let ids: Vec<AccountId> = account.layout.row_ids(id).collect();
        let mut rows: HashMap<AccountId, Account> =
            self.accounts_at_once(&ids)?.into_iter().map(|row| (row.id, row)).collect();
        let Some(mut account) = rows.remove(&id) else { return Ok(None) };
        let mut buffered = crate::model::Balances::default();
        for row in account.layout.derived_rows() {
            let Some(row) = rows.remove(&id.row(row)) else {
                return Err(StoreError::Backend(format!("row {row} of account {id} is missing")));
            };
            let into = match account.layout {
                crate::model::AccountLayout::Buffered { .. } => &mut buffered,
                _ => &mut account.balances,
            };
            *into = into.checked_plus(&row.balances).ok_or_else(|| summed_overflow(id))?;
        }
        Ok(Some((account, buffered)))
    }

    /// An account's balances as its owner sees them after journal point `seq`: for
    /// sub-accounts the sum over rows, each as of the same point (exact, as every row's
    /// history is in journal order); otherwise (a buffered account included) its own row,
    /// the part it can spend. `None` if no such account.
    fn balances_as_of(
        &self,
        id: AccountId,
        seq: Seq,
    ) -> Result<Option<(Account, crate::model::Balances)>, StoreError> {
        let Some(account) = self.account(id)? else { return Ok(None) };
        let rows: Vec<AccountId> = match account.layout {
            crate::model::AccountLayout::SubAccounts { .. } => account.layout.row_ids(id).collect(),
            _ => vec![id],
        };
        let mut sum = crate::model::Balances::default();
        for row in rows {
            if let Some(entry) = self.entry_as_of(row, seq)? {
                sum = sum.checked_plus(&entry.balances_after).ok_or_else(|| summed_overflow(id))?;
            }
        }
        Ok(Some((account, sum)))
    }

    /// The trial balance per asset (see [`AssetTotals`]): double entry holds when each is
    /// [`AssetTotals::balanced`]. The books are checked so by the service, the end of day and
    /// every test that moves money.
    fn asset_totals(&self) -> Result<Vec<AssetTotals>, StoreError> {
        Ok(AssetTotals::of(&self.trial_balance()?))
    }
}

#[cfg(test)]
mod tests {
    use money::{Amount, AssetCode};

    use super::{AssetTotals, BalanceTotals, TrialBalanceLine};
    use crate::model::{Balances, ChartCode};

    fn line(
        asset: &str,
        chart: u32,
        debits: u128,
        credits: u128,
        pending: u128,
    ) -> TrialBalanceLine {
        TrialBalanceLine {
            asset: AssetCode::new(asset).expect("asset"),
            chart_code: ChartCode(chart),
            n_accounts: 1,
            balances: BalanceTotals {
                debits_pending: pending,
                debits_posted: debits,
                credits_pending: pending,
                credits_posted: credits,
            },
        }
    }

    #[test]
    fn totals_per_asset_add_every_line_and_say_whether_they_balance() {
        let lines = [
            line("USD", 1002, 500, 0, 0),
            line("CNY", 1002, 1_000, 0, 7),
            line("CNY", 2241, 0, 1_000, 0),
            line("USD", 2241, 0, 499, 0),
            // Past u64: totals are 128-bit.
            line("PTS", 1, u128::from(u64::MAX), 0, 0),
            line("PTS", 2, 0, u128::from(u64::MAX), 0),
        ];
        let totals = AssetTotals::of(&lines);
        let summary: Vec<(String, u128, u128, bool)> = totals
            .iter()
            .map(|t| {
                (t.asset.to_string(), t.totals.debits_posted, t.totals.credits_posted, t.balanced())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("CNY".into(), 1_000, 1_000, true),
                ("PTS".into(), u128::from(u64::MAX), u128::from(u64::MAX), true),
                ("USD".into(), 500, 499, false),
            ]
        );
        assert_eq!(totals[0].totals.debits_pending, 7);
    }

    #[test]
    fn summed_balances_refuse_to_pass_the_largest_amount() {
        let one = Balances { credits_posted: Amount::new(1).expect("1"), ..Balances::default() };
        let max = Balances { credits_posted: Amount::MAX, ..Balances::default() };
        assert_eq!(one.checked_plus(&one).map(|b| b.credits_posted.minor()), Some(2));
        assert_eq!(max.checked_plus(&one), None);
    }
}
