//! Deterministic ids. Every ledger transfer and channel request of an order is named by the
//! order and the step, so a retry at any layer — the API, the executor after a crash, the
//! gateway — reuses the id, and the ledger or the bank deduplicates it.

use std::fmt;

use channels::RequestId;
use ledger::model::{BoundedText, ORDER_REF_LEN_MAX};
use ledger::TransferId;
use sha2::{Digest, Sha256};

/// Longest order id: room for `:` and the longest step name within a channel request id.
pub const ORDER_ID_LEN_MAX: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order id is 1 to {ORDER_ID_LEN_MAX} characters of [A-Za-z0-9_-]")]
pub struct OrderIdError;

/// An order's id (`top_…`, `wd_…`), unique per platform.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OrderId(String);

impl OrderId {
    pub fn new(raw: impl Into<String>) -> Result<OrderId, OrderIdError> {
        let raw = raw.into();
        let ok = !raw.is_empty()
            && raw.len() <= ORDER_ID_LEN_MAX
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(OrderId(raw))
        } else {
            Err(OrderIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The order's reference on its ledger transfers: the id itself, which always fits (an
    /// id the journal could not hold would leave its transfers without their order).
    pub fn order_ref(&self) -> BoundedText<ORDER_REF_LEN_MAX> {
        const _: () = assert!(ORDER_ID_LEN_MAX <= ORDER_REF_LEN_MAX);
        match BoundedText::new(self.as_str()) {
            Ok(text) => text,
            Err(_) => unreachable!("an order id fits an order reference (asserted above)"),
        }
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The steps of orders that have ids of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A top-up's channel debit of the customer's card.
    TopUpDebit,
    /// A top-up's ledger credit of the wallet.
    TopUpCredit,
    /// A top-up's ledger entry of the channel's fee.
    TopUpFee,
    /// A withdrawal's hold on the wallet.
    WithdrawalHold,
    /// A withdrawal's channel payout.
    WithdrawalPayout,
    /// A withdrawal's posting of the hold.
    WithdrawalPost,
    /// A withdrawal's release of the hold.
    WithdrawalVoid,
    /// A withdrawal's move from in-flight to the channel's clearing account.
    WithdrawalSettle,
    /// A withdrawal's ledger entry of the channel's fee.
    WithdrawalFee,
    /// A payment's move from the wallet to the merchant.
    PaymentCapture,
    /// A payment's fee from the merchant to the platform.
    PaymentFee,
    /// A refund's move from the merchant back to the wallet.
    RefundReturn,
    /// A refund's return of the platform's fee share to the merchant.
    RefundFee,
    /// A wallet-to-wallet transfer.
    WalletTransfer,
    /// A merchant settlement's move from unsettled to settled.
    Settle,
    /// A points+cash payment's points leg (points back to the platform).
    PaymentPoints,
    /// A points+cash payment's cash value of the points, from the platform to the merchant.
    PaymentPointsValue,
    /// A refund's points going back to the customer.
    RefundPoints,
    /// A refund's cash value of the points going back to the platform.
    RefundPointsValue,
    /// Points granted to a customer.
    PointsGrant,
    /// A payment's authorization: the hold on the wallet.
    PaymentAuthorize,
    /// Releasing a payment's authorization (cancel, expiry).
    PaymentVoid,
    /// A cross-currency payment's funding leg: the wallet's asset sold to the platform.
    PaymentFxSell,
    /// A cross-currency refund's funding leg: the wallet's asset bought back.
    RefundFxBuy,
    /// A card refund's move from in flight to the channel, once the bank paid it back.
    CardRefundSettle,
    /// A card refund's channel fee.
    CardRefundChannelFee,
    /// A card refund's reversal: the money back to the merchant.
    CardRefundReverse,
    /// A card refund's reversal of the returned fee share.
    CardRefundReverseFee,
    /// A top-up's booking to suspense when the wallet refused the credit.
    TopUpSuspense,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::TopUpDebit => "debit",
            Step::TopUpCredit => "credit",
            Step::TopUpFee => "fee",
            Step::WithdrawalHold => "hold",
            Step::WithdrawalPayout => "payout",
            Step::WithdrawalPost => "post",
            Step::WithdrawalVoid => "void",
            Step::WithdrawalSettle => "settle",
            Step::WithdrawalFee => "wfee",
            Step::PaymentCapture => "capture",
            Step::PaymentFee => "pfee",
            Step::RefundReturn => "return",
            Step::RefundFee => "rfee",
            Step::WalletTransfer => "move",
            Step::Settle => "settle",
            Step::PaymentPoints => "ppts",
            Step::PaymentPointsValue => "pval",
            Step::RefundPoints => "rpts",
            Step::RefundPointsValue => "rval",
            Step::PointsGrant => "grant",
            Step::PaymentFxSell => "fxsell",
            Step::PaymentAuthorize => "auth",
            Step::PaymentVoid => "void",
            Step::RefundFxBuy => "fxbuy",
            Step::CardRefundSettle => "crsettle",
            Step::CardRefundChannelFee => "crfee",
            Step::CardRefundReverse => "crrev",
            Step::CardRefundReverseFee => "crrevfee",
            Step::TopUpSuspense => "suspense",
        }
    }
}

/// The ledger id of `step` of `order`: SHA-256 of both, below 2^127 (the ledger keeps the
/// top half for its own records), never zero.
pub fn transfer_id(order: &OrderId, step: Step) -> TransferId {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"qianbao.payments.transfer\0")
        .chain_update(order.as_str())
        .chain_update([0])
        .chain_update(step.as_str())
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    let id = (u128::from_be_bytes(raw) >> 1) | 1;
    match TransferId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("odd, so not zero"),
    }
}

/// The channel request id of `step` of `order`: readable, `order:step`.
pub fn request_id(order: &OrderId, step: Step) -> RequestId {
    match RequestId::new(request_id_text(order, step)) {
        Ok(id) => id,
        Err(_) => unreachable!("order ids are short and plain, step names too"),
    }
}

/// [`request_id`] as text, built without the formatting machinery: reconciliation makes a
/// million of them for a day of one channel.
pub fn request_id_text(order: &OrderId, step: Step) -> String {
    let (order, step) = (order.as_str(), step.as_str());
    let mut text = String::with_capacity(order.len() + 1 + step.len());
    text.push_str(order);
    text.push(':');
    text.push_str(step);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_in_the_clients_range() {
        let order = OrderId::new("top_1").unwrap();
        let credit = transfer_id(&order, Step::TopUpCredit);
        assert_eq!(credit, transfer_id(&order, Step::TopUpCredit), "deterministic");
        assert_ne!(credit, transfer_id(&order, Step::TopUpFee));
        assert_ne!(credit, transfer_id(&OrderId::new("top_2").unwrap(), Step::TopUpCredit));
        assert!(!credit.is_reserved());
        assert_eq!(request_id(&order, Step::TopUpDebit).as_str(), "top_1:debit");
        assert!(OrderId::new("x".repeat(49)).is_err());
        assert!(OrderId::new("a:b").is_err());
    }
}
