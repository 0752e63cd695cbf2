//! The requests the payment core takes, the limits and checks on their fields, and the
//! order ids derived from a client's reference (so a retried create names the same order).

use ledger::model::AccountLayout;
use money::{Amount, AssetCode};
use payments::{OrderId, OrderKind};
use sha2::{Digest, Sha256};

use super::ExecError;
use crate::port::{OrderRecord, PartyKind};

/// Longest customer, merchant or reference id.
pub const PARTY_ID_LEN_MAX: usize = 64;
/// A merchant's fee can be at most the whole payment.
pub const FEE_BPS_MAX: u32 = payments::booking::BPS_ONE as u32;
/// The longest settlement cycle (T+N) a merchant can have.
pub const SETTLE_AFTER_DAYS_MAX: u32 = 90;
/// The longest customer or merchant name, in characters (as JSON Schema counts them).
pub const PARTY_NAME_LEN_MAX: usize = 200;
/// Assets a customer or merchant holds accounts in, at most.
pub const PARTY_ASSETS_MAX: usize = 16;
/// The longest card or bank account number at a channel, in characters.
pub const BANK_ACCOUNT_LEN_MAX: usize = 64;

pub struct TopUpRequest {
    pub reference: String,
    pub customer: String,
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct WithdrawalRequest {
    pub reference: String,
    pub customer: String,
    pub bank_account: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct PaymentRequest {
    pub reference: String,
    pub customer: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Points paying part of the amount (积分+支付), at the platform's rate.
    pub points: Option<Amount>,
    /// Pay from the customer's wallet in this asset, converted at the platform's rate.
    pub pay_from: Option<AssetCode>,
    /// Authorise now and capture later, the hold living this long; `None`: capture now.
    pub authorize_for_secs: Option<u32>,
}

/// The longest an authorisation may hold money (预授权): 30 days.
pub const AUTHORIZATION_SECS_MAX: u32 = 30 * 86_400;

pub struct CardPaymentRequest {
    pub reference: String,
    pub customer: String,
    pub merchant: String,
    /// The payer's card at the channel.
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct RefundRequest {
    pub reference: String,
    pub payment: OrderId,
    pub amount: Amount,
}

pub struct PayoutItem {
    /// Unique within the batch.
    pub reference: String,
    pub bank_account: String,
    pub amount: Amount,
}

/// A merchant's batch payout (代付): each item is its own payout order.
pub struct PayoutBatchRequest {
    pub reference: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub items: Vec<PayoutItem>,
}

/// Items in one payout batch at most.
pub const PAYOUT_BATCH_ITEMS_MAX: usize = 1_000;
/// Items of a batch carried out at once.
pub(super) const PAYOUT_BATCH_CONCURRENCY: usize = 8;

pub struct WalletTransferRequest {
    pub reference: String,
    pub from: String,
    pub to: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

/// A customer or merchant to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewParty {
    pub kind: PartyKind,
    pub id: String,
    pub name: String,
    pub assets: Vec<AssetCode>,
    /// Merchants: the platform's fee, basis points of each payment.
    pub fee_bps: u32,
    /// Merchants: the settlement cycle (T+N).
    pub settle_after_days: u32,
    /// Merchants: how the unsettled payables, which every payment credits, are spread over
    /// rows (`Plain`, `SubAccounts` or `Buffered`); customers: `Plain`.
    pub unsettled_layout: AccountLayout,
}

/// A created (or, for a retry, found) order.
#[derive(Clone, Debug)]
pub struct Placed {
    pub record: OrderRecord,
    /// False when the order existed: the request was a retry and did nothing.
    pub created: bool,
}

pub(super) fn check_id(field: &'static str, raw: &str) -> Result<(), ExecError> {
    let ok = !raw.is_empty()
        && raw.len() <= PARTY_ID_LEN_MAX
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ExecError::Invalid {
            field,
            message: format!("1 to {PARTY_ID_LEN_MAX} characters of [A-Za-z0-9_.-]"),
        })
    }
}

/// A card or bank account number at a channel: 1 to 64 characters (the channel checks the
/// rest).
pub(super) fn check_bank_account(field: &'static str, raw: &str) -> Result<(), ExecError> {
    if raw.is_empty() || raw.chars().count() > BANK_ACCOUNT_LEN_MAX {
        return Err(ExecError::Invalid {
            field,
            message: format!("1 to {BANK_ACCOUNT_LEN_MAX} characters"),
        });
    }
    Ok(())
}

pub(super) fn check_amount(amount: Amount) -> Result<(), ExecError> {
    if amount.is_zero() {
        return Err(ExecError::Invalid { field: "amount", message: "must be above zero".into() });
    }
    Ok(())
}

/// The order id of a client's reference: derived, so a retried create names the same order
/// even if every other record of the first attempt is lost.
pub(super) fn derive_order_id(
    tenant: &str,
    kind: OrderKind,
    scope: &str,
    reference: &str,
) -> OrderId {
    derive_id(tenant, kind.as_str(), kind.id_prefix(), scope, reference)
}

/// A payout batch's id (`pb_…`), derived like an order's.
pub fn payout_batch_id(tenant: &str, merchant: &str, reference: &str) -> OrderId {
    derive_id(tenant, "payout_batch", "pb", merchant, reference)
}

pub(super) fn derive_id(
    tenant: &str,
    kind: &str,
    prefix: &str,
    scope: &str,
    reference: &str,
) -> OrderId {
    let digest = Sha256::new()
        .chain_update(b"qianbao.order\0")
        .chain_update(tenant)
        .chain_update([0])
        .chain_update(kind)
        .chain_update([0])
        .chain_update(scope)
        .chain_update([0])
        .chain_update(reference)
        .finalize();
    let id = format!("{prefix}_{}", &hex::encode(digest)[..24]);
    match OrderId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("a short prefix and hex digits"),
    }
}

pub(super) fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}
