//! Conversions between ledger types and column values, shared by both backends. Every
//! conversion from storage is checked: a value the ledger could not have written is reported
//! as corruption, never silently mapped.

use ledger::model::{AccountClass, AccountLayout, BalanceRule, HoldState, TransferKind};
use ledger::port::StoreError;
use ledger::{AccountId, AccountStatus, TransferId};
use money::{Amount, AssetCode};

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub fn amount(value: i64) -> Result<Amount, StoreError> {
    Amount::from_stored(value).ok_or_else(|| corrupt(format!("negative amount {value}")))
}

/// A sum split into the sums of its high and low 32-bit halves (see the SQLite trial
/// balance), joined again.
pub fn split_sum(high: i64, low: i64) -> Result<u128, StoreError> {
    let high = u128::try_from(high).map_err(|_| corrupt(format!("negative sum {high}")))?;
    let low = u128::try_from(low).map_err(|_| corrupt(format!("negative sum {low}")))?;
    Ok((high << 32) + low)
}

/// A non-negative decimal total (PostgreSQL's numeric sum as text; NULL-free by `sum` over
/// at least one row).
pub fn decimal_total(text: &str) -> Result<u128, StoreError> {
    text.parse().map_err(|_| corrupt(format!("total {text:?} is not a non-negative integer")))
}

pub fn account_id(bytes: &[u8]) -> Result<AccountId, StoreError> {
    AccountId::from_bytes(bytes).map_err(corrupt)
}

pub fn transfer_id(bytes: &[u8]) -> Result<TransferId, StoreError> {
    TransferId::from_bytes(bytes).map_err(corrupt)
}

pub fn asset_code(text: &str) -> Result<AssetCode, StoreError> {
    AssetCode::new(text).map_err(corrupt)
}

pub fn small<T>(value: i64, decode: impl Fn(u8) -> Option<T>, what: &str) -> Result<T, StoreError> {
    u8::try_from(value).ok().and_then(decode).ok_or_else(|| corrupt(format!("bad {what} {value}")))
}

pub fn status(value: i64) -> Result<AccountStatus, StoreError> {
    small(value, AccountStatus::from_code, "account status")
}

pub fn kind(value: i64) -> Result<TransferKind, StoreError> {
    small(value, TransferKind::from_code, "transfer kind")
}

pub fn hold_state(value: i64) -> Result<HoldState, StoreError> {
    small(value, HoldState::from_code, "hold state")
}

pub fn class(value: i64) -> Result<AccountClass, StoreError> {
    small(value, AccountClass::from_code, "account class")
}

pub fn u32_column(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(format!("bad {what} {value}")))
}

pub fn u64_column(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("bad {what} {value}")))
}

/// (kind, limit) columns of a balance rule.
pub fn rule_columns(rule: &BalanceRule) -> (i64, i64) {
    match rule {
        BalanceRule::Unbounded => (0, 0),
        BalanceRule::DebitsWithinCredits { overdraft_minor } => (1, overdraft_minor.to_stored()),
        BalanceRule::CreditsWithinDebits { limit_minor } => (2, limit_minor.to_stored()),
    }
}

/// An account layout as (kind, row count or row number, owner of a row).
pub fn layout_columns(layout: &AccountLayout) -> (i64, i64, Option<[u8; 16]>) {
    match layout {
        AccountLayout::Plain => (0, 0, None),
        AccountLayout::SubAccounts { count } => (1, i64::from(*count), None),
        AccountLayout::Buffered { count } => (2, i64::from(*count), None),
        AccountLayout::Row { of, row } => (3, i64::from(*row), Some(of.to_bytes())),
    }
}

pub fn layout(kind: i64, rows: i64, owner: Option<&[u8]>) -> Result<AccountLayout, StoreError> {
    let count = u8::try_from(rows).map_err(|_| corrupt(format!("bad layout row count {rows}")))?;
    match (kind, owner) {
        (0, _) => Ok(AccountLayout::Plain),
        (1, _) => Ok(AccountLayout::SubAccounts { count }),
        (2, _) => Ok(AccountLayout::Buffered { count }),
        (3, Some(owner)) => Ok(AccountLayout::Row { of: account_id(owner)?, row: count }),
        (other, _) => Err(corrupt(format!("bad account layout {other}"))),
    }
}

pub fn rule(kind: i64, limit: i64) -> Result<BalanceRule, StoreError> {
    let limit = amount(limit)?;
    match kind {
        0 => Ok(BalanceRule::Unbounded),
        1 => Ok(BalanceRule::DebitsWithinCredits { overdraft_minor: limit }),
        2 => Ok(BalanceRule::CreditsWithinDebits { limit_minor: limit }),
        other => Err(corrupt(format!("bad balance rule {other}"))),
    }
}

pub fn hash(bytes: &[u8]) -> Result<ledger::journal::Hash, StoreError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?;
    Ok(ledger::journal::Hash(array))
}

pub fn fingerprint(bytes: &[u8]) -> Result<ledger::model::Fingerprint, StoreError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| corrupt("fingerprint is not 16 bytes"))?;
    Ok(ledger::model::Fingerprint(array))
}

pub fn text<const N: usize>(value: String) -> Result<ledger::model::BoundedText<N>, StoreError> {
    ledger::model::BoundedText::new(value).map_err(corrupt)
}

// Column lists, in the order the row decoders of both backends read them.
pub const ACCOUNT_COLUMNS: &str =
    "id, asset, chart_code, rule_kind, rule_limit, metadata, status, \
     debits_pending, debits_posted, credits_pending, credits_posted, opened_seq, opened_at, \
     layout_kind, layout_rows, layout_owner";
pub const TRANSFER_COLUMNS: &str = "seq, id, kind, debit_account_id, credit_account_id, asset, \
     amount, pending_id, expires_at, business_code, order_ref, timestamp, fingerprint";
pub const HOLD_COLUMNS: &str = "pending_id, debit_account_id, credit_account_id, asset, amount, \
     expires_at, state, business_code";
pub const ENTRY_COLUMNS: &str = "account_id, seq, side, transfer_id, amount, debits_pending, \
     debits_posted, credits_pending, credits_posted";
pub const BATCH_COLUMNS: &str = "batch_seq, first_seq, n_records, timestamp, prev_hash, hash";
