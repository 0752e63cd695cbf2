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
//! - refund: when a share of the fee comes back `Dr 6021 fee income share / Cr 2202
//!   unsettled[merchant] share`, then `Dr 2202 unsettled[merchant] amount / Cr 2241
//!   wallet[customer] amount` (the fee share first, so a merchant holding exactly its net
//!   takings can refund in full);
//! - wallet transfer: `Dr 2241 wallet[from] amount / Cr 2241 wallet[to] amount`;
//! - merchant settlement (结算): `Dr 2202 unsettled[merchant] amount / Cr 2203 settled[merchant]
//!   amount` — takings become the merchant's to pay out.
//!
//! The fee is `amount × fee_bps / 10,000` rounded half up; a refund returns the fee share
//! `fee × refund / amount` rounded down, and the last refund that completes the amount
//! returns whatever of the fee is left, so the shares of a fully refunded payment sum to its
//! fee exactly.

use ledger::model::{BoundedText, Movement, NewTransfer, TransferAction};
use ledger::{AccountId, BusinessCode};
use money::{Amount, AssetCode};

use crate::chart::{internal_account_id, merchant_account_id, wallet_account_id, Internal};
use crate::ids::{transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

pub const BUSINESS_CODE_PAYMENT: BusinessCode = BusinessCode(2001);
pub const BUSINESS_CODE_REFUND: BusinessCode = BusinessCode(2002);
pub const BUSINESS_CODE_WALLET_TRANSFER: BusinessCode = BusinessCode(1003);
pub const BUSINESS_CODE_SETTLEMENT: BusinessCode = BusinessCode(3001);

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
        order_ref: BoundedText::new(order.as_str()).unwrap_or_default(),
    }
}

/// `amount × bps / 10,000`, rounded half up, in minor units.
pub fn fee_for(amount: Amount, fee_bps: u32) -> Amount {
    let fee = (u128::from(amount.minor()) * u128::from(fee_bps) + u128::from(BPS_ONE / 2))
        / u128::from(BPS_ONE);
    // fee_bps ≤ 10,000 (checked where merchants are opened), so fee ≤ amount.
    u64::try_from(fee).ok().and_then(Amount::new).unwrap_or(amount)
}

/// A customer pays a merchant from the wallet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub order: OrderId,
    pub customer: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// The platform's fee, fixed when the payment is created.
    pub fee: Amount,
    pub state: BookingState,
}

impl Payment {
    pub fn new(
        order: OrderId,
        customer: String,
        merchant: String,
        asset: AssetCode,
        amount: Amount,
        fee_bps: u32,
    ) -> Payment {
        let fee = fee_for(amount, fee_bps);
        Payment { order, customer, merchant, asset, amount, fee, state: BookingState::Created }
    }

    pub fn group(&self) -> Vec<NewTransfer> {
        let unsettled = merchant_account_id(&self.merchant, self.asset, false);
        let mut group = vec![post(
            &self.order,
            Step::PaymentCapture,
            BUSINESS_CODE_PAYMENT,
            wallet_account_id(&self.customer, self.asset),
            unsettled,
            self.asset,
            self.amount,
        )];
        if !self.fee.is_zero() {
            group.push(post(
                &self.order,
                Step::PaymentFee,
                BUSINESS_CODE_PAYMENT,
                unsettled,
                internal_account_id(&Internal::FeeIncome, self.asset),
                self.asset,
                self.fee,
            ));
        }
        group
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Payment>, IllegalTransition> {
        let (state, effects) = self.state.apply("payment", event, || self.group())?;
        Ok(Transition { state: Payment { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }

    /// The fee share a refund of `amount` returns, given what earlier live refunds of this
    /// payment took (`refunded`, `fee_returned`). `None` if it would refund more than was paid.
    pub fn refund_fee_share(
        &self,
        amount: Amount,
        refunded: Amount,
        fee_returned: Amount,
    ) -> Option<Amount> {
        let refunded_after = refunded.checked_add(amount)?;
        if refunded_after > self.amount {
            return None;
        }
        let fee_left = self.fee.checked_sub(fee_returned)?;
        if refunded_after == self.amount {
            return Some(fee_left);
        }
        let share = u128::from(self.fee.minor()) * u128::from(amount.minor())
            / u128::from(self.amount.minor());
        let share = Amount::new(u64::try_from(share).ok()?)?;
        Some(share.min(fee_left))
    }
}

/// Money going back from a merchant to the customer's wallet, along the payment's legs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refund {
    pub order: OrderId,
    pub payment: OrderId,
    pub customer: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// The part of the payment's fee the platform gives back to the merchant.
    pub fee_returned: Amount,
    pub state: BookingState,
}

impl Refund {
    pub fn group(&self) -> Vec<NewTransfer> {
        let unsettled = merchant_account_id(&self.merchant, self.asset, false);
        let mut group = Vec::new();
        if !self.fee_returned.is_zero() {
            group.push(post(
                &self.order,
                Step::RefundFee,
                BUSINESS_CODE_REFUND,
                internal_account_id(&Internal::FeeIncome, self.asset),
                unsettled,
                self.asset,
                self.fee_returned,
            ));
        }
        group.push(post(
            &self.order,
            Step::RefundReturn,
            BUSINESS_CODE_REFUND,
            unsettled,
            wallet_account_id(&self.customer, self.asset),
            self.asset,
            self.amount,
        ));
        group
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Refund>, IllegalTransition> {
        let (state, effects) = self.state.apply("refund", event, || self.group())?;
        Ok(Transition { state: Refund { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}

/// Wallet to wallet, same asset, immediate.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalletTransfer {
    pub order: OrderId,
    pub from: String,
    pub to: String,
    pub asset: AssetCode,
    pub amount: Amount,
    pub state: BookingState,
}

impl WalletTransfer {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::WalletTransfer,
            BUSINESS_CODE_WALLET_TRANSFER,
            wallet_account_id(&self.from, self.asset),
            wallet_account_id(&self.to, self.asset),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<WalletTransfer>, IllegalTransition> {
        let (state, effects) = self.state.apply("wallet transfer", event, || self.group())?;
        Ok(Transition { state: WalletTransfer { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}

/// Moves a merchant's takings up to a cut-off from unsettled to settled (T+N).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settlement {
    pub order: OrderId,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Payments made before this instant are in it (milliseconds since the epoch).
    pub cutoff_ms: u64,
    /// The merchant's terms when it ran: payments settle this many days after their day.
    pub settle_after_days: u32,
    pub state: BookingState,
}

impl Settlement {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::Settle,
            BUSINESS_CODE_SETTLEMENT,
            merchant_account_id(&self.merchant, self.asset, false),
            merchant_account_id(&self.merchant, self.asset, true),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Settlement>, IllegalTransition> {
        let (state, effects) = self.state.apply("settlement", event, || self.group())?;
        Ok(Transition { state: Settlement { state, ..self.clone() }, effects })
    }

    pub fn resume(&self) -> Vec<Effect> {
        self.state.resume(|| self.group())
    }
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The cut-off of a T+N settlement run at `now_ms`: payments of day T are settled on day
/// T+N, so a run on day D takes payments made before the start of day D−N+1 (UTC days).
/// T+0 takes everything up to now.
pub fn settlement_cutoff_ms(now_ms: u64, settle_after_days: u32) -> u64 {
    if settle_after_days == 0 {
        return now_ms;
    }
    let today_start_ms = now_ms - now_ms % DAY_MS;
    today_start_ms.saturating_sub(u64::from(settle_after_days - 1) * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(minor: u64) -> Amount {
        Amount::new(minor).unwrap()
    }

    fn payment(amount_minor: u64, fee_bps: u32) -> Payment {
        Payment::new(
            OrderId::new("pay_1").unwrap(),
            "alice".into(),
            "shop".into(),
            AssetCode::new("CNY").unwrap(),
            amount(amount_minor),
            fee_bps,
        )
    }

    #[test]
    fn a_t_plus_n_cutoff_is_the_start_of_a_utc_day() {
        let day_3_noon = 3 * DAY_MS + DAY_MS / 2;
        assert_eq!(settlement_cutoff_ms(day_3_noon, 0), day_3_noon, "T+0: everything");
        assert_eq!(settlement_cutoff_ms(day_3_noon, 1), 3 * DAY_MS, "T+1: up to yesterday");
        assert_eq!(settlement_cutoff_ms(day_3_noon, 2), 2 * DAY_MS);
        assert_eq!(settlement_cutoff_ms(DAY_MS / 2, 9), 0);
    }

    #[test]
    fn fees_round_half_up() {
        assert_eq!(fee_for(amount(10_000), 60), amount(60));
        assert_eq!(fee_for(amount(25), 200), amount(1), "0.5 rounds up");
        assert_eq!(fee_for(amount(24), 200), amount(0), "0.48 rounds down");
        assert_eq!(fee_for(amount(1), 10_000), amount(1));
    }

    #[test]
    fn refund_fee_shares_sum_to_the_fee_and_never_past_the_amount() {
        let paid = payment(1_001, 60); // fee 6
        assert_eq!(paid.fee, amount(6));
        let (mut refunded, mut returned) = (Amount::ZERO, Amount::ZERO);
        for part in [333, 333, 335] {
            let share = paid.refund_fee_share(amount(part), refunded, returned).unwrap();
            refunded = refunded.checked_add(amount(part)).unwrap();
            returned = returned.checked_add(share).unwrap();
        }
        assert_eq!((refunded, returned), (paid.amount, paid.fee));
        assert_eq!(paid.refund_fee_share(amount(1), refunded, returned), None);
        assert_eq!(paid.refund_fee_share(amount(1_002), Amount::ZERO, Amount::ZERO), None);
    }

    #[test]
    fn booking_is_idempotent_and_final() {
        let created = payment(500, 100);
        let posting = created.apply(&Event::Submit).unwrap();
        assert_eq!(posting.state.state, BookingState::Posting);
        assert_eq!(posting.effects, vec![Effect::Ledger(created.group())]);
        assert_eq!(posting.state.resume(), posting.effects, "a crash re-books the same group");
        let again = posting.state.apply(&Event::Submit).unwrap();
        assert!(again.effects.is_empty());
        let done = posting.state.apply(&Event::LedgerPosted).unwrap().state;
        assert_eq!(done.state, BookingState::Succeeded);
        assert!(done.apply(&Event::LedgerPosted).unwrap().effects.is_empty());
        assert!(done.apply(&Event::LedgerRejected { code: "x".into() }).is_err());
        assert!(done.resume().is_empty());
    }
}
