//! Products that move money inside the platform only: a wallet payment to a merchant
//! (收单, paid from the wallet), a refund of one, and a wallet-to-wallet transfer (转账).
//! Each is one linked ledger group, so each has the same small state machine:
//!
//! ```text
//!  Created ──Submit──► Posting ──posted──► Succeeded
//!                         └──── rejected ──► Failed (nothing was booked)
//! ```
//!
//! Ledger entries (one linked group each, in this order):
//! - payment: `Dr 2241 wallet[customer] amount / Cr 2202 unsettled[merchant] amount`, then
//!   when the merchant's fee is not zero `Dr 2202 unsettled[merchant] fee / Cr 6021 fee income fee`;
//! - refund (from 2203 settled instead of 2202 when the payment was already settled):
//!   when a share of the fee comes back `Dr 6021 fee income share / Cr 2202
//!   unsettled[merchant] share`, then `Dr 2202 unsettled[merchant] amount / Cr 2241
//!   wallet[customer] amount` (the fee share first, so a merchant holding exactly its net
//!   takings can refund in full);
//! - points+cash payment (积分+支付), when `p` points worth `v` pay part of the amount: the
//!   cash leg is `amount − v`, and in the same group `Dr 2242 points[customer] p / Cr 6601
//!   points marketing p` (in the points asset: the points come back) and `Dr 6601 points
//!   marketing v / Cr 2202 unsettled[merchant] v` (in cash: the platform pays the merchant
//!   for them), then the fee on the whole amount;
//! - a refund of it returns along the same legs: a share of the points to the customer's
//!   points account (their value back from the merchant to 6601) and the rest in cash;
//! - points grant: `Dr 6601 points marketing p / Cr 2242 points[customer] p` (points asset);
//! - cross-currency payment (境外, FX), the price `amount` in asset X paid from a wallet in
//!   asset Y at rate `r` (minor units of Y per minor unit of X, recorded on the payment):
//!   `Dr 2241 wallet[customer] (Y) ⌈amount × r⌉ / Cr 1901 FX position (Y)` and `Dr 1901 FX
//!   position (X) amount / Cr 2202 unsettled[merchant] (X) amount`, then the fee in X — the
//!   customer pays the rounding, the platform never funds it; a refund reverses both legs
//!   pro rata at the payment's rate, the last one returning exactly what is left;
//! - wallet transfer: `Dr 2241 wallet[from] amount / Cr 2241 wallet[to] amount`;
//! - merchant settlement (结算): `Dr 2202 unsettled[merchant] amount / Cr 2203 settled[merchant]
//!   amount` — takings become the merchant's to pay out.
//!
//! The fee is `amount × fee_bps / 10,000` rounded half up; a refund returns the fee share
//! `fee × refund / amount` rounded down, and the last refund that completes the amount
//! returns whatever of the fee is left, so the shares of a fully refunded payment sum to its
//! fee exactly.

use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::{AccountId, BusinessCode};
use money::{Amount, AssetCode};

use crate::ids::{transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition};

// One room per product; the state machine, the posting helper and the fee rule they share
// stay here, and every type is reached as `payments::booking::…` as before.
mod payment;
mod refund;
mod settlement;
#[cfg(test)]
mod tests;
mod transfer;

pub(crate) use payment::proportional_share;
pub use payment::{
    Authorization, FxLeg, Payment, PaymentState, PointsLeg, Rate, RefundShares, RefundedSoFar,
    RATE_DECIMALS_MAX, RATE_WHOLE_DIGITS_MAX,
};
pub use refund::{Refund, RefundedFx, RefundedPoints};
pub use settlement::{settlement_cutoff_ms, Settlement, DAY_MS};
pub use transfer::{PointsGrant, WalletTransfer};

pub const BUSINESS_CODE_PAYMENT: BusinessCode = BusinessCode(2001);
pub const BUSINESS_CODE_REFUND: BusinessCode = BusinessCode(2002);
pub const BUSINESS_CODE_WALLET_TRANSFER: BusinessCode = BusinessCode(1003);
pub const BUSINESS_CODE_SETTLEMENT: BusinessCode = BusinessCode(3001);
pub const BUSINESS_CODE_POINTS_GRANT: BusinessCode = BusinessCode(4001);

/// Basis points in one whole.
pub const BPS_ONE: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BookingState {
    Created,
    /// The group is at the ledger.
    Posting,
    Succeeded,
    /// The ledger refused the group (its code: `exceeds_credits`, `account_frozen`, …).
    Failed {
        code: String,
    },
}

impl BookingState {
    pub fn name(&self) -> &'static str {
        match self {
            BookingState::Created => "created",
            BookingState::Posting => "posting",
            BookingState::Succeeded => "succeeded",
            BookingState::Failed { .. } => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, BookingState::Succeeded | BookingState::Failed { .. })
    }

    /// The shared transition: `group` is the order's one linked group.
    fn apply(
        &self,
        order_kind: &'static str,
        event: &Event,
        group: impl FnOnce() -> Vec<NewTransfer>,
    ) -> Result<(BookingState, Vec<Effect>), IllegalTransition> {
        use BookingState as S;
        Ok(match (self, event) {
            (S::Created, Event::Submit) => (S::Posting, vec![Effect::Ledger(group())]),
            (S::Posting, Event::LedgerPosted) => (S::Succeeded, Vec::new()),
            (S::Posting, Event::LedgerRejected { code }) => {
                (S::Failed { code: code.clone() }, Vec::new())
            }
            // Retries and duplicates: already where they would lead.
            (S::Posting | S::Succeeded | S::Failed { .. }, Event::Submit)
            | (S::Succeeded, Event::LedgerPosted)
            | (S::Failed { .. }, Event::LedgerRejected { .. }) => (self.clone(), Vec::new()),
            _ => {
                return Err(IllegalTransition {
                    order_kind,
                    state: self.name(),
                    event: event.name(),
                })
            }
        })
    }

    fn resume(&self, group: impl FnOnce() -> Vec<NewTransfer>) -> Vec<Effect> {
        match self {
            BookingState::Posting => vec![Effect::Ledger(group())],
            _ => Vec::new(),
        }
    }
}

fn post(
    order: &OrderId,
    step: Step,
    code: BusinessCode,
    debit: AccountId,
    credit: AccountId,
    asset: AssetCode,
    amount: Amount,
) -> NewTransfer {
    NewTransfer {
        id: transfer_id(order, step),
        action: TransferAction::Post(Movement {
            debit_account_id: debit,
            credit_account_id: credit,
            asset,
            amount,
        }),
        business_code: code,
        order_ref: order.order_ref(),
    }
}

/// `amount × bps / 10,000`, rounded half up, in minor units.
///
/// A rate is at most 100% (10,000 bps: checked where merchants are opened, `FEE_BPS_MAX`),
/// so the fee is at most the amount; a larger rate is a broken invariant, and stops here
/// rather than charge a wrong fee.
pub fn fee_for(amount: Amount, fee_bps: u32) -> Amount {
    assert!(u64::from(fee_bps) <= BPS_ONE, "a fee rate of {fee_bps} bps is over 100%");
    let fee = (u128::from(amount.minor()) * u128::from(fee_bps) + u128::from(BPS_ONE / 2))
        / u128::from(BPS_ONE);
    match u64::try_from(fee).ok().and_then(Amount::new) {
        Some(fee) => fee,
        None => unreachable!("a fee of at most 100% is at most the amount"),
    }
}
