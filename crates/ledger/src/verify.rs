//! Verification: recompute the hash chain and every balance from the journal alone, and
//! compare with what the store holds. The journal (records) is the ground truth; account
//! rows, holds and entries are projections that must agree with it.

use std::collections::HashMap;

use money::AssetCode;

use crate::ids::{AccountId, BatchSeq, Seq, TransferId};
use crate::journal::{batch_hash, Hash};
use crate::model::{AccountStatus, Balances, Entry, Record, Side, Transfer, TransferKind};
use crate::port::{LedgerReader, Page, StoreError};

/// Batch headers read per query while verifying.
pub const VERIFY_PAGE_BATCHES: usize = 1000;

/// Records read per page at most (a page holds at least one batch, however large): a
/// thousand batches of bulk requests are millions of records, and a page of them held
/// 1.6 GiB while a node checked a 10,000,000-transfer journal (docs/bench/scale.md).
pub const VERIFY_PAGE_RECORDS: u64 = 50_000;

/// The first batches of `headers` that hold at most [`VERIFY_PAGE_RECORDS`] records
/// together, and never none.
fn bounded(mut headers: Vec<crate::journal::BatchHeader>) -> Vec<crate::journal::BatchHeader> {
    let mut records = 0u64;
    let keep = headers
        .iter()
        .position(|header| {
            records += u64::from(header.n_records);
            records > VERIFY_PAGE_RECORDS
        })
        .map_or(headers.len(), |over| over.max(1));
    headers.truncate(keep);
    headers
}

/// The first place where the store disagrees with its own journal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Divergence {
    /// A batch does not link to the hash of the batch before it, or a batch is missing.
    ChainBroken { batch_seq: u64, detail: String },
    /// The records of a batch do not hash to its stored hash: a record was changed, added or
    /// removed.
    HashMismatch { batch_seq: u64, stored: String, recomputed: String },
    /// A record that cannot follow from the records before it (a post of an unknown hold, a
    /// transfer on an unknown account, a balance below zero).
    ImpossibleRecord { seq: u64, detail: String },
    /// An entry's running balance differs from the replayed one.
    EntryMismatch { seq: u64, account_id: String, detail: String },
    /// An account row's balances or status differ from the replayed ones.
    AccountMismatch { account_id: String, detail: String },
    /// The head does not point at the last batch.
    HeadMismatch { detail: String },
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub n_batches: u64,
    pub n_records: u64,
    pub n_accounts: u64,
    pub head_hash: String,
    pub divergence: Option<Divergence>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.divergence.is_none()
    }
}

#[derive(Clone, Copy)]
struct Replayed {
    asset: AssetCode,
    status: AccountStatus,
    balances: Balances,
}

#[derive(Default)]
struct Replay {
    accounts: HashMap<AccountId, Replayed>,
    holds: HashMap<TransferId, Transfer>,
}

/// Verifies the whole journal. `progress` is called after each page with the number of
/// batches verified so far.
pub fn verify(
    reader: &dyn LedgerReader,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut replay = Replay::default();
    let mut prev_hash = Hash::default();
    let mut prev_batch = BatchSeq(0);
    let mut next_seq = Seq(1);
    loop {
        let headers =
            bounded(reader.batches(Page { after: Some(prev_batch), limit: VERIFY_PAGE_BATCHES })?);
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else { break };
        let last_seq = Seq(last.first_seq.0 + u64::from(last.n_records) - 1);
        let (records, entries) = reader.records(first.first_seq, last_seq)?;
        let mut records = records.into_iter().peekable();
        let entries = index_entries(entries);
        for header in &headers {
            let diverged = |divergence| Ok(finish(report.clone(), divergence));
            let batch_records =
                match check_batch(header, (prev_batch, prev_hash, next_seq), &mut records) {
                    Ok(batch_records) => batch_records,
                    Err(divergence) => return diverged(divergence),
                };
            let end = header.first_seq.0 + u64::from(header.n_records);
            for record in &batch_records {
                if let Err(divergence) = replay.apply(record, &entries) {
                    return diverged(divergence);
                }
            }
            report.n_batches += 1;
            report.n_records += u64::from(header.n_records);
            prev_hash = header.hash;
            prev_batch = header.batch_seq;
            next_seq = Seq(end);
        }
        progress(report.n_batches);
    }
    let head = reader.head()?;
    if head.batch_seq != prev_batch || head.hash != prev_hash || head.last_seq.0 + 1 != next_seq.0 {
        let detail = format!(
            "head at batch {} seq {}, journal ends at batch {} seq {}",
            head.batch_seq.0,
            head.last_seq.0,
            prev_batch.0,
            next_seq.0 - 1
        );
        return Ok(finish(report, Divergence::HeadMismatch { detail }));
    }
    report.head_hash = prev_hash.to_hex();
    if let Some(divergence) = compare_accounts(reader, &replay, &mut report)? {
        return Ok(finish(report, divergence));
    }
    Ok(report)
}

/// Where an incremental verification of the chain stopped: the last batch checked, its
/// hash, and the first record after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainCheckpoint {
    pub batch_seq: u64,
    pub hash: [u8; 32],
    pub next_seq: u64,
}

/// What [`verify_chain_from`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Where to start next time (where this one started, if it diverged).
    pub checkpoint: ChainCheckpoint,
    pub n_batches: u64,
    pub n_records: u64,
    pub divergence: Option<Divergence>,
}

/// Verifies the hash chain from `from` (the journal's start when `Default`) to the head:
/// each batch links to the one before it, starts where it ended, and its records hash to its
/// stored hash. Incremental — only the batches written since the checkpoint are read — and
/// the chain only: [`verify`] also replays every balance, which needs the whole journal.
pub fn verify_chain_from(
    reader: &dyn LedgerReader,
    from: ChainCheckpoint,
) -> Result<ChainReport, StoreError> {
    let mut report = ChainReport { checkpoint: from, ..ChainReport::default() };
    let mut prev_batch = BatchSeq(from.batch_seq);
    let mut prev_hash = Hash(from.hash);
    let mut next_seq = Seq(from.next_seq.max(1));
    loop {
        let headers =
            bounded(reader.batches(Page { after: Some(prev_batch), limit: VERIFY_PAGE_BATCHES })?);
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else { break };
        let last_seq = Seq(last.first_seq.0 + u64::from(last.n_records) - 1);
        let (records, _) = reader.records(first.first_seq, last_seq)?;
        let mut records = records.into_iter().peekable();
        for header in &headers {
            if let Err(divergence) =
                check_batch(header, (prev_batch, prev_hash, next_seq), &mut records)
            {
                report.divergence = Some(divergence);
                return Ok(report);
            }
            let end = header.first_seq.0 + u64::from(header.n_records);
            report.n_batches += 1;
            report.n_records += u64::from(header.n_records);
            prev_hash = header.hash;
            prev_batch = header.batch_seq;
            next_seq = Seq(end);
        }
    }
    report.checkpoint =
        ChainCheckpoint { batch_seq: prev_batch.0, hash: prev_hash.0, next_seq: next_seq.0 };
    Ok(report)
}

/// Checks one batch against the chain's tip `(batch, hash, next seq)`: it is the next batch,
/// links to the tip's hash, starts at the next seq, and its records — taken from `records` —
/// hash to its stored hash. Returns those records.
fn check_batch(
    header: &crate::journal::BatchHeader,
    (prev_batch, prev_hash, next_seq): (BatchSeq, Hash, Seq),
    records: &mut std::iter::Peekable<std::vec::IntoIter<Record>>,
) -> Result<Vec<Record>, Divergence> {
    if header.batch_seq.0 != prev_batch.0 + 1 || header.prev_hash != prev_hash {
        let detail = format!("expected batch {} after {}", prev_batch.0 + 1, prev_batch.0);
        return Err(Divergence::ChainBroken { batch_seq: header.batch_seq.0, detail });
    }
    if header.first_seq != next_seq {
        let detail = format!("batch starts at seq {}, expected {}", header.first_seq.0, next_seq.0);
        return Err(Divergence::ChainBroken { batch_seq: header.batch_seq.0, detail });
    }
    let end = header.first_seq.0 + u64::from(header.n_records);
    let mut batch_records = Vec::with_capacity(header.n_records as usize);
    while let Some(record) = records.next_if(|record| record.seq().0 < end) {
        batch_records.push(record);
    }
    let recomputed = batch_hash(
        header.batch_seq,
        header.first_seq,
        header.timestamp,
        &header.prev_hash,
        &batch_records,
    );
    let contiguous = batch_records
        .iter()
        .enumerate()
        .all(|(index, record)| record.seq().0 == header.first_seq.0 + index as u64);
    if recomputed != header.hash || !contiguous {
        return Err(Divergence::HashMismatch {
            batch_seq: header.batch_seq.0,
            stored: header.hash.to_hex(),
            recomputed: recomputed.to_hex(),
        });
    }
    Ok(batch_records)
}

fn finish(mut report: VerifyReport, divergence: Divergence) -> VerifyReport {
    report.divergence = Some(divergence);
    report
}

fn index_entries(entries: Vec<Entry>) -> HashMap<(Seq, Side), Entry> {
    entries.into_iter().map(|entry| ((entry.seq, entry.side), entry)).collect()
}

impl Replay {
    fn apply(
        &mut self,
        record: &Record,
        entries: &HashMap<(Seq, Side), Entry>,
    ) -> Result<(), Divergence> {
        let impossible =
            |detail: String| Divergence::ImpossibleRecord { seq: record.seq().0, detail };
        match record {
            Record::AssetDefined { .. } | Record::ChartDefined { .. } => Ok(()),
            Record::AccountOpened(account) => {
                let replayed = Replayed {
                    asset: account.asset,
                    status: AccountStatus::Active,
                    balances: Balances::default(),
                };
                if self.accounts.insert(account.id, replayed).is_some() {
                    return Err(impossible(format!("account {} opened twice", account.id)));
                }
                Ok(())
            }
            Record::AccountStatusSet { account_id, status, .. } => {
                let account = self
                    .accounts
                    .get_mut(account_id)
                    .ok_or_else(|| impossible(format!("status of unknown account {account_id}")))?;
                account.status = *status;
                Ok(())
            }
            Record::Transfer(transfer) => {
                self.apply_transfer(transfer).map_err(impossible)?;
                self.check_entries(transfer, entries)
            }
        }
    }

    fn apply_transfer(&mut self, transfer: &Transfer) -> Result<(), String> {
        let amount = transfer.amount.minor();
        // (debit pending, debit posted, credit pending, credit posted) changes, signed.
        let (pending_change, posted_change): (i128, i128) = match transfer.kind {
            TransferKind::Posted => (0, i128::from(amount)),
            TransferKind::Pending => {
                self.holds.insert(transfer.id, transfer.clone());
                (i128::from(amount), 0)
            }
            TransferKind::PostPending | TransferKind::VoidPending | TransferKind::ExpirePending => {
                let pending_id = transfer.pending_id.ok_or("post or void without a pending id")?;
                let hold = self
                    .holds
                    .remove(&pending_id)
                    .ok_or_else(|| format!("hold {pending_id} is not pending"))?;
                let held = i128::from(hold.amount.minor());
                let posted =
                    if transfer.kind == TransferKind::PostPending { i128::from(amount) } else { 0 };
                (-held, posted)
            }
        };
        for (account_id, side) in
            [(transfer.debit_account_id, Side::Debit), (transfer.credit_account_id, Side::Credit)]
        {
            let account = self
                .accounts
                .get_mut(&account_id)
                .ok_or_else(|| format!("transfer on unknown account {account_id}"))?;
            if account.asset != transfer.asset {
                return Err(format!(
                    "transfer in {} on a {} account",
                    transfer.asset, account.asset
                ));
            }
            let (pending, posted) = match side {
                Side::Debit => {
                    (&mut account.balances.debits_pending, &mut account.balances.debits_posted)
                }
                Side::Credit => {
                    (&mut account.balances.credits_pending, &mut account.balances.credits_posted)
                }
            };
            *pending = shift(*pending, pending_change).ok_or("pending balance out of range")?;
            *posted = shift(*posted, posted_change).ok_or("posted balance out of range")?;
        }
        Ok(())
    }

    fn check_entries(
        &self,
        transfer: &Transfer,
        entries: &HashMap<(Seq, Side), Entry>,
    ) -> Result<(), Divergence> {
        for (account_id, side) in
            [(transfer.debit_account_id, Side::Debit), (transfer.credit_account_id, Side::Credit)]
        {
            let expected = self.accounts.get(&account_id).map(|account| account.balances);
            let stored = entries.get(&(transfer.seq, side));
            let detail = match stored {
                None => "entry missing".to_string(),
                Some(entry)
                    if entry.account_id != account_id || entry.transfer_id != transfer.id =>
                {
                    format!(
                        "entry belongs to account {} transfer {}",
                        entry.account_id, entry.transfer_id
                    )
                }
                Some(entry) if Some(entry.balances_after) != expected => {
                    format!("stored {:?}, replayed {:?}", entry.balances_after, expected)
                }
                Some(_) => continue,
            };
            return Err(Divergence::EntryMismatch {
                seq: transfer.seq.0,
                account_id: account_id.to_string(),
                detail,
            });
        }
        Ok(())
    }
}

fn shift(amount: money::Amount, change: i128) -> Option<money::Amount> {
    let value = i128::from(amount.minor()) + change;
    u64::try_from(value).ok().and_then(money::Amount::new)
}

fn compare_accounts(
    reader: &dyn LedgerReader,
    replay: &Replay,
    report: &mut VerifyReport,
) -> Result<Option<Divergence>, StoreError> {
    let mut after = None;
    loop {
        let page = reader.accounts(Page { after, limit: crate::port::PAGE_LIMIT_MAX })?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for account in &page {
            report.n_accounts += 1;
            let mismatch = |detail: String| {
                Some(Divergence::AccountMismatch { account_id: account.id.to_string(), detail })
            };
            let Some(replayed) = replay.accounts.get(&account.id) else {
                return Ok(mismatch("account has no opening record".into()));
            };
            if replayed.balances != account.balances || replayed.status != account.status {
                return Ok(mismatch(format!(
                    "stored {:?} {:?}, replayed {:?} {:?}",
                    account.status, account.balances, replayed.status, replayed.balances
                )));
            }
        }
    }
    if report.n_accounts != replay.accounts.len() as u64 {
        let detail = format!(
            "{} account rows, {} opening records",
            report.n_accounts,
            replay.accounts.len()
        );
        return Ok(Some(Divergence::AccountMismatch { account_id: "*".into(), detail }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BatchSeq, Timestamp};

    fn header(batch: u64, n_records: u32) -> crate::journal::BatchHeader {
        crate::journal::BatchHeader {
            batch_seq: BatchSeq(batch),
            first_seq: Seq(batch * 100_000),
            n_records,
            timestamp: Timestamp(0),
            prev_hash: Hash::default(),
            hash: Hash::default(),
        }
    }

    #[test]
    fn a_page_holds_a_bounded_number_of_records_and_at_least_one_batch() {
        let cap = VERIFY_PAGE_RECORDS as u32;
        let n = |headers: Vec<_>| bounded(headers).len();
        assert_eq!(n(vec![header(1, 10), header(2, 10), header(3, 10)]), 3, "all fit");
        assert_eq!(n(vec![header(1, cap / 2), header(2, cap / 2), header(3, 1)]), 2);
        assert_eq!(n(vec![header(1, cap * 3), header(2, 1)]), 1, "one batch, however large");
        assert_eq!(n(vec![]), 0);
    }
}
