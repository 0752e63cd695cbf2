//! A wallet payment to a merchant (收单): immediate or authorised then captured, in cash, in
//! points and cash, or from a wallet in another asset; and how its refunds share its legs.

use ledger::model::{Movement, NewTransfer, TransferAction};
use money::{Amount, AssetCode};

use super::{
    fee_for, post, BookingState, Refund, RefundedFx, RefundedPoints, BUSINESS_CODE_PAYMENT,
};
use crate::chart::{internal_account_id, merchant_account_id, wallet_account_id, Internal};
use crate::ids::{transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

/// Points paying part of a payment (积分+支付).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointsLeg {
    /// The points asset (`POINTS`).
    pub asset: AssetCode,
    pub points: Amount,
    /// What one point is worth, in minor units of the payment's asset (the platform's rate
    /// when the payment was made).
    pub value_minor_per_point: u64,
}

impl PointsLeg {
    /// The cash value of `points`; `None` past the largest amount.
    pub fn value_of(&self, points: Amount) -> Option<Amount> {
        Amount::new(points.minor().checked_mul(self.value_minor_per_point)?)
    }
}

/// An exchange rate: `units / 10^decimals` minor units of the funding asset per minor unit
/// of the payment's asset. Decimal, never floating point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    pub units: u64,
    pub decimals: u32,
}

/// Most decimals a rate may have.
pub const RATE_DECIMALS_MAX: u32 = 10;
/// A rate's whole part has at most this many digits (leading zeros aside): below 10^9 minor
/// units per minor unit, far past any real rate, and with [`RATE_DECIMALS_MAX`] decimals the
/// rate always fits its `u64` (the limit is a plain digit count that a schema can state).
pub const RATE_WHOLE_DIGITS_MAX: u32 = 9;

impl Rate {
    /// Parses `7.1234`; `None` for anything but a positive decimal below 10^9 with at most
    /// [`RATE_DECIMALS_MAX`] decimals.
    pub fn parse(raw: &str) -> Option<Rate> {
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        let dangling_point = raw.ends_with('.');
        if whole.is_empty() || dangling_point || !digits(whole) || !digits(fraction) {
            return None;
        }
        let decimals = u32::try_from(fraction.len()).ok().filter(|d| *d <= RATE_DECIMALS_MAX)?;
        if whole.trim_start_matches('0').len() > RATE_WHOLE_DIGITS_MAX as usize {
            return None;
        }
        let units: u64 = format!("{whole}{fraction}").parse().ok()?;
        (units > 0).then_some(Rate { units, decimals })
    }

    /// `amount × rate`, rounded up; `None` past the largest amount.
    pub fn convert_up(&self, amount: Amount) -> Option<Amount> {
        let scale = 10u128.checked_pow(self.decimals)?;
        let product = u128::from(amount.minor()) * u128::from(self.units);
        Amount::new(u64::try_from(product.div_ceil(scale)).ok()?)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = 10u64.pow(self.decimals);
        if self.decimals == 0 {
            write!(f, "{}", self.units)
        } else {
            write!(
                f,
                "{}.{:0width$}",
                self.units / scale,
                self.units % scale,
                width = self.decimals as usize
            )
        }
    }
}

/// A payment funded from a wallet in another asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FxLeg {
    /// The wallet's asset.
    pub from_asset: AssetCode,
    /// What the wallet pays: the amount at `rate`, rounded up.
    pub from_amount: Amount,
    pub rate: Rate,
}

/// A payment's states. An immediate payment goes Created → Posting → Succeeded | Failed,
/// like every booking. One made with `capture: false` is authorised first (预授权):
///
/// ```text
///  Created ──Submit──► Authorizing ──posted──► Authorized ──Capture(a)──► Capturing ──posted──► Succeeded
///                          │ rejected             │  Cancel / Deadline         │ rejected: pending_expired ──► Expired
///                          ▼                      ▼                            │ rejected: other ──► Authorized
///                        Failed                Voiding ──posted──► Canceled (Expired after a Deadline)
///                                                 └── rejected: pending_expired ──► Expired
/// ```
///
/// Authorisation holds `Dr 2241 wallet / Cr 2202 unsettled[merchant]` (pending, with the
/// authorisation's timeout, so the ledger itself releases it if nobody acts); capture posts
/// `a` of it (the rest is released) and books the fee on `a`; cancel voids it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PaymentState {
    Created,
    Posting,
    Authorizing,
    /// The money is held until `until_ms`.
    Authorized {
        until_ms: u64,
    },
    Capturing {
        until_ms: u64,
        amount: Amount,
    },
    Voiding {
        expired: bool,
    },
    Succeeded,
    Canceled,
    Expired,
    Failed {
        code: String,
    },
}

impl PaymentState {
    pub fn name(&self) -> &'static str {
        match self {
            PaymentState::Created => "created",
            PaymentState::Posting => "posting",
            PaymentState::Authorizing => "authorizing",
            PaymentState::Authorized { .. } => "authorized",
            PaymentState::Capturing { .. } => "capturing",
            PaymentState::Voiding { .. } => "voiding",
            PaymentState::Succeeded => "succeeded",
            PaymentState::Canceled => "canceled",
            PaymentState::Expired => "expired",
            PaymentState::Failed { .. } => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PaymentState::Succeeded
                | PaymentState::Canceled
                | PaymentState::Expired
                | PaymentState::Failed { .. }
        )
    }
}

/// How a payment is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Authorization {
    /// What was authorised (`amount` becomes what is captured).
    pub authorized: Amount,
    /// The hold lives this long unless captured or canceled.
    pub expires_after_secs: u32,
    /// The merchant's fee rate, applied to the captured amount.
    pub fee_bps: u32,
}

/// A customer pays a merchant from the wallet, optionally partly in points, or from a wallet
/// in another asset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub(crate) order: OrderId,
    pub(crate) customer: String,
    pub(crate) merchant: String,
    pub(crate) asset: AssetCode,
    /// The whole price, which the merchant is credited with.
    pub(crate) amount: Amount,
    /// The platform's fee on the whole amount, fixed when the payment is created.
    pub(crate) fee: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) points: Option<PointsLeg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) fx: Option<FxLeg>,
    /// Present when the payment is authorised first and captured later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) authorization: Option<Authorization>,
    pub(crate) state: PaymentState,
}

/// What earlier live refunds of a payment took: of its amount, its fee, and its second leg
/// (points, or the funding asset of a cross-currency payment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefundedSoFar {
    pub amount: Amount,
    pub fee: Amount,
    pub second_leg: Amount,
}

/// How a refund goes back along a payment's legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundShares {
    pub fee_returned: Amount,
    pub points_returned: Amount,
    /// The cash value of `points_returned`; the rest of the refund goes back in cash.
    pub points_value_returned: Amount,
    /// For a cross-currency payment: what goes back to the wallet, in its asset.
    pub fx_returned: Amount,
}

impl Payment {
    pub fn order(&self) -> &OrderId {
        &self.order
    }

    /// The paying customer's party key.
    pub fn customer(&self) -> &str {
        &self.customer
    }

    /// The paid merchant's party key.
    pub fn merchant(&self) -> &str {
        &self.merchant
    }

    pub fn asset(&self) -> AssetCode {
        self.asset
    }

    /// The whole price, which the merchant is credited with.
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// The platform's fee on the whole amount.
    pub fn fee(&self) -> Amount {
        self.fee
    }

    pub fn points(&self) -> Option<&PointsLeg> {
        self.points.as_ref()
    }

    pub fn fx(&self) -> Option<&FxLeg> {
        self.fx.as_ref()
    }

    pub fn authorization(&self) -> Option<&Authorization> {
        self.authorization.as_ref()
    }

    pub fn state(&self) -> &PaymentState {
        &self.state
    }

    /// What a capture that names no amount takes: everything authorised.
    pub fn capturable(&self) -> Amount {
        self.authorization.map_or(self.amount, |auth| auth.authorized)
    }

    pub fn new(
        order: OrderId,
        customer: String,
        merchant: String,
        asset: AssetCode,
        amount: Amount,
        fee_bps: u32,
    ) -> Payment {
        let fee = fee_for(amount, fee_bps);
        Payment {
            order,
            customer,
            merchant,
            asset,
            amount,
            fee,
            points: None,
            fx: None,
            authorization: None,
            state: PaymentState::Created,
        }
    }

    /// Authorises now, captures later (at most the amount); `None` with points or FX.
    pub fn with_authorization(mut self, expires_after_secs: u32, fee_bps: u32) -> Option<Payment> {
        if self.points.is_some() || self.fx.is_some() {
            return None;
        }
        self.authorization =
            Some(Authorization { authorized: self.amount, expires_after_secs, fee_bps });
        Some(self)
    }

    fn authorize_transfer(&self, auth: &Authorization) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, Step::PaymentAuthorize),
            action: TransferAction::Pending {
                movement: Movement {
                    debit_account_id: wallet_account_id(&self.customer, self.asset),
                    credit_account_id: merchant_account_id(&self.merchant, self.asset, false),
                    asset: self.asset,
                    amount: auth.authorized,
                },
                timeout_secs: Some(auth.expires_after_secs),
            },
            business_code: BUSINESS_CODE_PAYMENT,
            order_ref: self.order.order_ref(),
        }
    }

    /// The transfers a succeeded payment was booked with: its one group, or the hold of an
    /// authorisation and its capture (of `amount`, which a capture sets to what it took).
    pub fn booked_group(&self) -> Vec<NewTransfer> {
        match &self.authorization {
            None => self.group(),
            Some(auth) => {
                let mut booked = vec![self.authorize_transfer(auth)];
                booked.extend(self.capture_group(auth, self.amount));
                booked
            }
        }
    }

    /// Posts `amount` of the authorisation and books the fee on it.
    fn capture_group(&self, auth: &Authorization, amount: Amount) -> Vec<NewTransfer> {
        let mut group = vec![NewTransfer {
            id: transfer_id(&self.order, Step::PaymentCapture),
            action: TransferAction::PostPending {
                pending_id: transfer_id(&self.order, Step::PaymentAuthorize),
                amount: Some(amount),
            },
            business_code: BUSINESS_CODE_PAYMENT,
            order_ref: self.order.order_ref(),
        }];
        let fee = fee_for(amount, auth.fee_bps);
        if !fee.is_zero() {
            group.push(post(
                &self.order,
                Step::PaymentFee,
                BUSINESS_CODE_PAYMENT,
                merchant_account_id(&self.merchant, self.asset, false),
                internal_account_id(&Internal::FeeIncome, self.asset),
                self.asset,
                fee,
            ));
        }
        group
    }

    fn void_transfer(&self) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, Step::PaymentVoid),
            action: TransferAction::VoidPending {
                pending_id: transfer_id(&self.order, Step::PaymentAuthorize),
            },
            business_code: BUSINESS_CODE_PAYMENT,
            order_ref: self.order.order_ref(),
        }
    }

    /// When an authorised payment's hold runs out.
    pub fn deadline_ms(&self) -> Option<u64> {
        match self.state {
            PaymentState::Authorized { until_ms } => Some(until_ms),
            _ => None,
        }
    }

    /// Funds the payment from the customer's wallet in `from_asset` at `rate`; `None` if
    /// the converted amount is past the largest amount, or points already pay part of it.
    pub fn with_fx(mut self, from_asset: AssetCode, rate: Rate) -> Option<Payment> {
        if self.points.is_some() || from_asset == self.asset {
            return None;
        }
        let from_amount = rate.convert_up(self.amount).filter(|a| !a.is_zero())?;
        self.fx = Some(FxLeg { from_asset, from_amount, rate });
        Some(self)
    }

    /// The second funding leg's amount: points, or the FX funding asset (zero if none).
    pub fn second_leg(&self) -> Amount {
        match (self.points, self.fx) {
            (Some(points), _) => points.points,
            (None, Some(fx)) => fx.from_amount,
            (None, None) => Amount::ZERO,
        }
    }

    /// Pays `points` of the amount in points; `None` if they are worth more than it (or the
    /// payment is cross-currency).
    pub fn with_points(mut self, points: PointsLeg) -> Option<Payment> {
        (self.fx.is_none() && points.value_of(points.points)? <= self.amount).then(|| {
            self.points = Some(points);
            self
        })
    }

    /// What the customer pays in cash: the amount less the points' value.
    pub fn cash(&self) -> Amount {
        let value = self.points.and_then(|leg| leg.value_of(leg.points)).unwrap_or(Amount::ZERO);
        self.amount.saturating_sub(value)
    }

    pub fn group(&self) -> Vec<NewTransfer> {
        let unsettled = merchant_account_id(&self.merchant, self.asset, false);
        let mut group = Vec::new();
        let cash = self.cash();
        if let Some(fx) = self.fx {
            group.push(post(
                &self.order,
                Step::PaymentFxSell,
                BUSINESS_CODE_PAYMENT,
                wallet_account_id(&self.customer, fx.from_asset),
                internal_account_id(&Internal::FxPosition, fx.from_asset),
                fx.from_asset,
                fx.from_amount,
            ));
            group.push(post(
                &self.order,
                Step::PaymentCapture,
                BUSINESS_CODE_PAYMENT,
                internal_account_id(&Internal::FxPosition, self.asset),
                unsettled,
                self.asset,
                self.amount,
            ));
        } else if !cash.is_zero() {
            group.push(post(
                &self.order,
                Step::PaymentCapture,
                BUSINESS_CODE_PAYMENT,
                wallet_account_id(&self.customer, self.asset),
                unsettled,
                self.asset,
                cash,
            ));
        }
        if let Some(leg) = self.points {
            let value = self.amount.saturating_sub(cash);
            group.push(post(
                &self.order,
                Step::PaymentPoints,
                BUSINESS_CODE_PAYMENT,
                wallet_account_id(&self.customer, leg.asset),
                internal_account_id(&Internal::PointsMarketing, leg.asset),
                leg.asset,
                leg.points,
            ));
            group.push(post(
                &self.order,
                Step::PaymentPointsValue,
                BUSINESS_CODE_PAYMENT,
                internal_account_id(&Internal::PointsMarketing, self.asset),
                unsettled,
                self.asset,
                value,
            ));
        }
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

    /// The transition function. `now_ms` is only read when an authorisation is booked (to
    /// record its expiry) — the executor passes its clock.
    pub fn apply_at(
        &self,
        event: &Event,
        now_ms: u64,
    ) -> Result<Transition<Payment>, IllegalTransition> {
        use PaymentState as S;
        let illegal = || IllegalTransition {
            order_kind: "payment",
            state: self.state.name(),
            event: event.name(),
        };
        let stay = || Transition { state: self.clone(), effects: Vec::new() };
        let next = |state: PaymentState, effects: Vec<Effect>| Transition {
            state: Payment { state, ..self.clone() },
            effects,
        };
        let auth = self.authorization;
        Ok(match (&self.state, event, auth) {
            (S::Created, Event::Submit, None) => {
                next(S::Posting, vec![Effect::Ledger(self.group())])
            }
            (S::Created, Event::Submit, Some(auth)) => {
                next(S::Authorizing, vec![Effect::Ledger(vec![self.authorize_transfer(&auth)])])
            }
            (S::Posting, Event::LedgerPosted, _) => next(S::Succeeded, Vec::new()),
            (S::Posting | S::Authorizing, Event::LedgerRejected { code }, _) => {
                next(S::Failed { code: code.clone() }, Vec::new())
            }
            (S::Authorizing, Event::LedgerPosted, Some(auth)) => {
                let until_ms = now_ms.saturating_add(u64::from(auth.expires_after_secs) * 1_000);
                next(S::Authorized { until_ms }, Vec::new())
            }
            (S::Authorized { until_ms }, Event::Capture { amount }, Some(auth)) => {
                if amount.is_zero() || *amount > auth.authorized {
                    return Err(illegal());
                }
                next(
                    S::Capturing { until_ms: *until_ms, amount: *amount },
                    vec![Effect::Ledger(self.capture_group(&auth, *amount))],
                )
            }
            (S::Capturing { amount, .. }, Event::LedgerPosted, Some(auth)) => Transition {
                state: Payment {
                    amount: *amount,
                    fee: fee_for(*amount, auth.fee_bps),
                    state: S::Succeeded,
                    ..self.clone()
                },
                effects: Vec::new(),
            },
            (S::Capturing { .. } | S::Voiding { .. }, Event::LedgerRejected { code }, _)
                if code == "pending_expired" =>
            {
                next(S::Expired, Vec::new())
            }
            (S::Capturing { until_ms, .. }, Event::LedgerRejected { .. }, _) => {
                next(S::Authorized { until_ms: *until_ms }, Vec::new())
            }
            (S::Authorized { .. }, Event::Cancel, _) => next(
                S::Voiding { expired: false },
                vec![Effect::Ledger(vec![self.void_transfer()])],
            ),
            (S::Authorized { .. }, Event::Deadline, _) => {
                next(S::Voiding { expired: true }, vec![Effect::Ledger(vec![self.void_transfer()])])
            }
            (S::Voiding { expired }, Event::LedgerPosted, _) => {
                next(if *expired { S::Expired } else { S::Canceled }, Vec::new())
            }
            (S::Voiding { expired }, Event::LedgerRejected { .. }, _) => {
                // Already released (posted or voided by a racing request): look again.
                next(if *expired { S::Expired } else { S::Canceled }, Vec::new())
            }
            // Retries and duplicates: already where they would lead.
            (_, Event::Submit, _) if self.state != S::Created => stay(),
            (S::Succeeded | S::Canceled | S::Expired, Event::LedgerPosted, _)
            | (S::Failed { .. } | S::Expired, Event::LedgerRejected { .. }, _)
            | (S::Canceled | S::Voiding { .. }, Event::Cancel, _)
            | (S::Expired | S::Voiding { .. } | S::Canceled | S::Succeeded, Event::Deadline, _) => {
                stay()
            }
            _ => return Err(illegal()),
        })
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Payment>, IllegalTransition> {
        self.apply_at(event, 0)
    }

    pub fn resume(&self) -> Vec<Effect> {
        match (&self.state, self.authorization) {
            (PaymentState::Posting, _) => vec![Effect::Ledger(self.group())],
            (PaymentState::Authorizing, Some(auth)) => {
                vec![Effect::Ledger(vec![self.authorize_transfer(&auth)])]
            }
            (PaymentState::Capturing { amount, .. }, Some(auth)) => {
                vec![Effect::Ledger(self.capture_group(&auth, *amount))]
            }
            (PaymentState::Voiding { .. }, _) => vec![Effect::Ledger(vec![self.void_transfer()])],
            _ => Vec::new(),
        }
    }

    /// The fee share a refund of `amount` returns, given what earlier live refunds of this
    /// payment took (`refunded`, `fee_returned`). `None` if it would refund more than was paid.
    pub fn refund_fee_share(
        &self,
        amount: Amount,
        refunded: Amount,
        fee_returned: Amount,
    ) -> Option<Amount> {
        proportional_share(self.fee, self.amount, amount, refunded, fee_returned)
    }

    /// A refund of `amount` of this payment, given what earlier live refunds took (of the
    /// amount, the fee, and the second leg): each leg gives back its share
    /// ([`Payment::refund_shares`]). `None` unless the payment succeeded, or past what is left.
    pub fn refund(
        &self,
        order: OrderId,
        amount: Amount,
        earlier: RefundedSoFar,
        from_settled: bool,
    ) -> Option<Refund> {
        if self.state != PaymentState::Succeeded {
            return None;
        }
        let shares = self.refund_shares(amount, earlier.amount, earlier.fee, earlier.second_leg)?;
        Some(Refund {
            from_settled,
            order,
            payment: self.order.clone(),
            customer: self.customer.clone(),
            merchant: self.merchant.clone(),
            asset: self.asset,
            amount,
            fee_returned: shares.fee_returned,
            points: self.points.map(|leg| RefundedPoints {
                asset: leg.asset,
                points: shares.points_returned,
                value: shares.points_value_returned,
            }),
            fx: self
                .fx
                .map(|fx| RefundedFx { from_asset: fx.from_asset, amount: shares.fx_returned }),
            state: BookingState::Created,
        })
    }

    /// How a refund of `amount` goes back, given what earlier live refunds took (of the
    /// amount, the fee, and the second leg): the fee share; for a points+cash payment the
    /// points share (rounded down, the last refund takes the rest) with its value, the
    /// remainder in cash; for a cross-currency one the funding asset's share, pro rata at
    /// the payment's rate. `None` past the amount.
    pub fn refund_shares(
        &self,
        amount: Amount,
        refunded: Amount,
        fee_returned: Amount,
        points_returned: Amount,
    ) -> Option<RefundShares> {
        let fee_returned = self.refund_fee_share(amount, refunded, fee_returned)?;
        let none = RefundShares {
            fee_returned,
            points_returned: Amount::ZERO,
            points_value_returned: Amount::ZERO,
            fx_returned: Amount::ZERO,
        };
        if let Some(fx) = self.fx {
            let back =
                proportional_share(fx.from_amount, self.amount, amount, refunded, points_returned)?;
            return Some(RefundShares { fx_returned: back, ..none });
        }
        let Some(leg) = self.points else {
            return Some(none);
        };
        // The split must keep both legs within what they paid: never more points back than
        // were spent, never more cash back than was paid in cash (or points would turn into
        // withdrawable cash). Within those bounds the points follow the proportional share.
        let rate = leg.value_minor_per_point.max(1);
        let points_left = leg.points.checked_sub(points_returned)?;
        let value_returned = leg.value_of(points_returned)?;
        let cash_returned = refunded.checked_sub(value_returned)?;
        let cash_left = self.cash().checked_sub(cash_returned)?;
        // Fewest points that keep the cash within what is left; most that fit the refund.
        let least = amount.minor().saturating_sub(cash_left.minor()).div_ceil(rate);
        let most = (amount.minor() / rate).min(points_left.minor());
        if least > most {
            // Not divisible into whole points within both legs (a point worth more than
            // the refund): refused rather than paid in the wrong currency.
            return None;
        }
        let share = proportional_share(leg.points, self.amount, amount, refunded, points_returned)?;
        let points = Amount::new(share.minor().clamp(least, most))?;
        Some(RefundShares {
            points_returned: points,
            points_value_returned: leg.value_of(points)?,
            ..none
        })
    }
}

/// `part` of `total`'s share of `whole`, rounded down; the part that completes `whole` takes
/// what is left, so the shares of a whole sum to `total` exactly. `None` past the whole.
pub(crate) fn proportional_share(
    total: Amount,
    whole: Amount,
    part: Amount,
    parts_before: Amount,
    taken_before: Amount,
) -> Option<Amount> {
    let parts_after = parts_before.checked_add(part)?;
    if parts_after > whole {
        return None;
    }
    let left = total.checked_sub(taken_before)?;
    if parts_after == whole {
        return Some(left);
    }
    let share = u128::from(total.minor()) * u128::from(part.minor()) / u128::from(whole.minor());
    Some(Amount::new(u64::try_from(share).ok()?)?.min(left))
}
