//! A refund of a wallet payment, back along the payment's legs.

use ledger::model::NewTransfer;
use money::{Amount, AssetCode};

use super::{post, BookingState, BUSINESS_CODE_REFUND};
use crate::chart::{internal_account_id, merchant_account_id, wallet_account_id, Internal};
use crate::ids::{OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

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
    /// For a points+cash payment: the points going back, and their asset and cash value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<RefundedPoints>,
    /// For a cross-currency payment: what goes back to the wallet, in its asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx: Option<RefundedFx>,
    /// The payment was already settled: the refund takes from the merchant's settled
    /// takings (2203) instead of the unsettled ones (2202).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_settled: bool,
    pub state: BookingState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefundedFx {
    pub from_asset: AssetCode,
    pub amount: Amount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefundedPoints {
    pub asset: AssetCode,
    pub points: Amount,
    pub value: Amount,
}

impl Refund {
    /// What this refund returns of its payment's second funding leg.
    pub fn second_leg(&self) -> Amount {
        match (self.points, self.fx) {
            (Some(points), _) => points.points,
            (None, Some(fx)) => fx.amount,
            (None, None) => Amount::ZERO,
        }
    }

    pub fn group(&self) -> Vec<NewTransfer> {
        // Named for the usual case; a refund of a settled payment takes from settled.
        let unsettled = merchant_account_id(&self.merchant, self.asset, self.from_settled);
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
        let value = self.points.map_or(Amount::ZERO, |points| points.value);
        let cash = self.amount.saturating_sub(value);
        if let Some(fx) = self.fx {
            group.push(post(
                &self.order,
                Step::RefundReturn,
                BUSINESS_CODE_REFUND,
                unsettled,
                internal_account_id(&Internal::FxPosition, self.asset),
                self.asset,
                self.amount,
            ));
            if !fx.amount.is_zero() {
                group.push(post(
                    &self.order,
                    Step::RefundFxBuy,
                    BUSINESS_CODE_REFUND,
                    internal_account_id(&Internal::FxPosition, fx.from_asset),
                    wallet_account_id(&self.customer, fx.from_asset),
                    fx.from_asset,
                    fx.amount,
                ));
            }
            return group;
        }
        if !cash.is_zero() {
            group.push(post(
                &self.order,
                Step::RefundReturn,
                BUSINESS_CODE_REFUND,
                unsettled,
                wallet_account_id(&self.customer, self.asset),
                self.asset,
                cash,
            ));
        }
        if let Some(points) = self.points.filter(|points| !points.points.is_zero()) {
            if !points.value.is_zero() {
                group.push(post(
                    &self.order,
                    Step::RefundPointsValue,
                    BUSINESS_CODE_REFUND,
                    unsettled,
                    internal_account_id(&Internal::PointsMarketing, self.asset),
                    self.asset,
                    points.value,
                ));
            }
            group.push(post(
                &self.order,
                Step::RefundPoints,
                BUSINESS_CODE_REFUND,
                internal_account_id(&Internal::PointsMarketing, points.asset),
                wallet_account_id(&self.customer, points.asset),
                points.asset,
                points.points,
            ));
        }
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
