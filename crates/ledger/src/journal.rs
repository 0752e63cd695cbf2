//! The tamper-evident journal (数据防篡改): each committed batch carries a SHA-256 over its
//! header, the previous batch's hash and the canonical encoding of every record in it. Editing,
//! inserting, deleting or reordering any record breaks every hash from that batch on, and
//! `verify` names the first batch where the recomputed hash differs.
//!
//! The canonical encoding is written by hand (fixed-width big-endian integers, length-prefixed
//! strings) rather than through serde: it must stay byte-for-byte stable across serde and
//! crate versions for as long as the journal lives, and it is versioned by a domain tag.

use sha2::{Digest, Sha256};

use crate::ids::{BatchSeq, Seq, Timestamp};
use crate::model::{
    Account, AccountLayout, BalanceRule, Fingerprint, NewTransfer, Record, Transfer, TransferAction,
};

const JOURNAL_DOMAIN: &[u8] = b"qianbao.journal.v1";
const REQUEST_DOMAIN: &[u8] = b"qianbao.transfer-request.v1";

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

/// A committed batch: its place in the chain and the records it covers
/// (`first_seq .. first_seq + n_records`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub batch_seq: BatchSeq,
    pub first_seq: Seq,
    pub n_records: u32,
    pub timestamp: Timestamp,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// The chain's tip: what the next batch links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct JournalHead {
    pub batch_seq: BatchSeq,
    /// The last record's sequence number (0 before the first record).
    pub last_seq: Seq,
    pub last_timestamp: Timestamp,
    pub hash: Hash,
}

/// Computes a batch's hash. `records` must be the batch's records in `seq` order.
pub fn batch_hash(
    batch_seq: BatchSeq,
    first_seq: Seq,
    timestamp: Timestamp,
    prev_hash: &Hash,
    records: &[Record],
) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(JOURNAL_DOMAIN);
    hasher.update(batch_seq.0.to_be_bytes());
    hasher.update(first_seq.0.to_be_bytes());
    hasher.update((records.len() as u32).to_be_bytes());
    hasher.update(timestamp.0.to_be_bytes());
    hasher.update(prev_hash.0);
    let mut buffer = Vec::with_capacity(256);
    for record in records {
        buffer.clear();
        encode_record(record, &mut buffer);
        hasher.update(&buffer);
    }
    Hash(hasher.finalize().into())
}

/// The fingerprint of a transfer request: equal for a retry, different for any other request.
pub fn fingerprint(request: &NewTransfer) -> Fingerprint {
    let mut buffer = Vec::with_capacity(128);
    buffer.extend_from_slice(REQUEST_DOMAIN);
    put_u128(&mut buffer, request.id.get());
    match request.action {
        TransferAction::Post(movement) => {
            buffer.push(1);
            put_movement(&mut buffer, &movement);
        }
        TransferAction::Pending { movement, timeout_secs } => {
            buffer.push(2);
            put_movement(&mut buffer, &movement);
            put_option_u64(&mut buffer, timeout_secs.map(u64::from));
        }
        TransferAction::PostPending { pending_id, amount } => {
            buffer.push(3);
            put_u128(&mut buffer, pending_id.get());
            put_option_u64(&mut buffer, amount.map(|amount| amount.minor()));
        }
        TransferAction::VoidPending { pending_id } => {
            buffer.push(4);
            put_u128(&mut buffer, pending_id.get());
        }
    }
    put_u32(&mut buffer, request.business_code.0);
    put_text(&mut buffer, request.order_ref.as_str());
    let digest: [u8; 32] = Sha256::digest(&buffer).into();
    let mut fingerprint = [0u8; 16];
    fingerprint.copy_from_slice(&digest[..16]);
    Fingerprint(fingerprint)
}

fn encode_record(record: &Record, out: &mut Vec<u8>) {
    match record {
        Record::AssetDefined { seq, asset } => {
            out.push(1);
            put_u64(out, seq.0);
            put_text(out, asset.code().as_str());
            out.push(asset.scale());
        }
        Record::ChartDefined { seq, entry } => {
            out.push(2);
            put_u64(out, seq.0);
            put_u32(out, entry.code.0);
            put_text(out, entry.name.as_str());
            out.push(entry.class.code());
        }
        Record::AccountOpened(account) => {
            out.push(3);
            encode_account_opening(account, out);
        }
        Record::AccountStatusSet { seq, account_id, status } => {
            out.push(4);
            put_u64(out, seq.0);
            put_u128(out, account_id.get());
            out.push(status.code());
        }
        Record::Transfer(transfer) => {
            out.push(5);
            encode_transfer(transfer, out);
        }
    }
}

/// Only what the account was opened with: status and balances change later and are covered
/// by their own records.
fn encode_account_opening(account: &Account, out: &mut Vec<u8>) {
    put_u64(out, account.opened_seq.0);
    put_u64(out, account.opened_at.0);
    put_u128(out, account.id.get());
    put_text(out, account.asset.as_str());
    put_u32(out, account.chart_code.0);
    put_rule(out, &account.rule);
    put_text(out, account.metadata.as_str());
    // Nothing for a plain account, so the hashes of batches written before layouts existed
    // stay valid; the markers are distinct from every record tag that could follow.
    match account.layout {
        AccountLayout::Plain => {}
        AccountLayout::SubAccounts { count } => out.extend_from_slice(&[0xA1, count]),
        AccountLayout::Buffered { count } => out.extend_from_slice(&[0xA2, count]),
        AccountLayout::Row { of, row } => {
            out.push(0xA3);
            put_u128(out, of.get());
            out.push(row);
        }
    }
}

fn encode_transfer(transfer: &Transfer, out: &mut Vec<u8>) {
    put_u64(out, transfer.seq.0);
    put_u64(out, transfer.timestamp.0);
    put_u128(out, transfer.id.get());
    out.push(transfer.kind.code());
    put_u128(out, transfer.debit_account_id.get());
    put_u128(out, transfer.credit_account_id.get());
    put_text(out, transfer.asset.as_str());
    put_u64(out, transfer.amount.minor());
    put_u128(out, transfer.pending_id.map_or(0, |id| id.get()));
    put_option_u64(out, transfer.expires_at.map(|at| at.0));
    put_u32(out, transfer.business_code.0);
    put_text(out, transfer.order_ref.as_str());
    out.extend_from_slice(&transfer.fingerprint.0);
}

fn put_rule(out: &mut Vec<u8>, rule: &BalanceRule) {
    match rule {
        BalanceRule::Unbounded => {
            out.push(0);
            put_u64(out, 0);
        }
        BalanceRule::DebitsWithinCredits { overdraft_minor } => {
            out.push(1);
            put_u64(out, overdraft_minor.minor());
        }
        BalanceRule::CreditsWithinDebits { limit_minor } => {
            out.push(2);
            put_u64(out, limit_minor.minor());
        }
    }
}

fn put_movement(out: &mut Vec<u8>, movement: &crate::model::Movement) {
    put_u128(out, movement.debit_account_id.get());
    put_u128(out, movement.credit_account_id.get());
    put_text(out, movement.asset.as_str());
    put_u64(out, movement.amount.minor());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u128(out: &mut Vec<u8>, value: u128) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_option_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_u64(out, value);
        }
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // Every text field is bounded well below u16::MAX by its type.
    put_u32(out, text.len() as u32);
    out.extend_from_slice(text.as_bytes());
}
