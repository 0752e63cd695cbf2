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
    pub order: OrderId,
    pub customer: String,
    pub merchant: String,
    pub asset: AssetCode,
    /// The whole price, which the merchant is credited with.
    pub amount: Amount,
    /// The platform's fee on the whole amount, fixed when the payment is created.
    pub fee: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsLeg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx: Option<FxLeg>,
    /// Present when the payment is authorised first and captured later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    pub state: PaymentState,
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
            order_ref: BoundedText::new(self.order.as_str()).unwrap_or_default(),
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
            order_ref: BoundedText::new(self.order.as_str()).unwrap_or_default(),
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
            order_ref: BoundedText::new(self.order.as_str()).unwrap_or_default(),
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
fn proportional_share(
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

/// Points given to a customer (a reward, a promotion): the platform's marketing expense.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointsGrant {
    pub order: OrderId,
    pub customer: String,
    /// The points asset.
    pub asset: AssetCode,
    pub amount: Amount,
    pub state: BookingState,
}

impl PointsGrant {
    pub fn group(&self) -> Vec<NewTransfer> {
        vec![post(
            &self.order,
            Step::PointsGrant,
            BUSINESS_CODE_POINTS_GRANT,
            internal_account_id(&Internal::PointsMarketing, self.asset),
            wallet_account_id(&self.customer, self.asset),
            self.asset,
            self.amount,
        )]
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<PointsGrant>, IllegalTransition> {
        let (state, effects) = self.state.apply("points grant", event, || self.group())?;
        Ok(Transition { state: PointsGrant { state, ..self.clone() }, effects })
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
    fn a_points_and_cash_payment_refunds_along_its_legs_to_the_last_point() {
        let leg = PointsLeg {
            asset: AssetCode::new("POINTS").unwrap(),
            points: amount(333),
            value_minor_per_point: 1,
        };
        let paid = payment(1_000, 0).with_points(leg).unwrap();
        assert_eq!(paid.cash(), amount(667));
        assert_eq!(paid.group().len(), 3, "cash, points, points' value");
        let (mut refunded, mut points_back) = (Amount::ZERO, Amount::ZERO);
        for part in [500, 499, 1] {
            let shares =
                paid.refund_shares(amount(part), refunded, Amount::ZERO, points_back).unwrap();
            assert!(shares.points_value_returned <= amount(part));
            refunded = refunded.checked_add(amount(part)).unwrap();
            points_back = points_back.checked_add(shares.points_returned).unwrap();
        }
        assert_eq!(points_back, amount(333), "every point comes back");
        // Points never turn into cash: a price paid wholly in points refunds wholly in
        // points, and a split that whole points cannot make is refused.
        let dear = PointsLeg { points: amount(1), value_minor_per_point: 100, ..leg };
        let all_points = payment(100, 0).with_points(dear).unwrap();
        assert_eq!(
            all_points.refund_shares(amount(50), Amount::ZERO, Amount::ZERO, Amount::ZERO),
            None
        );
        let whole = all_points
            .refund_shares(amount(100), Amount::ZERO, Amount::ZERO, Amount::ZERO)
            .unwrap();
        assert_eq!(whole.points_returned, amount(1));
        let small = payment(3, 0).with_points(PointsLeg { points: amount(1), ..leg }).unwrap();
        let (mut refunded, mut points_back, mut cash_back) = (Amount::ZERO, Amount::ZERO, 0);
        for _ in 0..3 {
            let shares =
                small.refund_shares(amount(1), refunded, Amount::ZERO, points_back).unwrap();
            cash_back += 1 - shares.points_value_returned.minor();
            refunded = refunded.checked_add(amount(1)).unwrap();
            points_back = points_back.checked_add(shares.points_returned).unwrap();
        }
        assert_eq!((points_back, cash_back), (amount(1), 2), "each leg back exactly once");
        let too_dear = PointsLeg { value_minor_per_point: 10, ..leg };
        assert!(payment(1_000, 0).with_points(too_dear).is_none(), "worth more than the price");
    }

    #[test]
    fn rates_parse_exactly_and_convert_rounding_up() {
        let rate = Rate::parse("7.1234").unwrap();
        assert_eq!(rate, Rate { units: 71_234, decimals: 4 });
        assert_eq!(rate.to_string(), "7.1234");
        assert_eq!(rate.convert_up(amount(1_000)), Some(amount(7_124)), "7123.4 rounds up");
        assert_eq!(rate.convert_up(amount(10_000)), Some(amount(71_234)));
        for bad in ["", "0", "0.000", "-1", "1e3", "7.", ".5", "1.12345678901", "NaN"] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Rate::parse("0.048").unwrap().convert_up(amount(1)), Some(amount(1)));
    }

    #[test]
    fn a_cross_currency_refund_returns_exactly_what_was_paid() {
        let usd = AssetCode::new("USD").unwrap();
        let paid = Payment::new(
            OrderId::new("pay_fx").unwrap(),
            "alice".into(),
            "shop".into(),
            usd,
            amount(1_001),
            0,
        )
        .with_fx(AssetCode::new("CNY").unwrap(), Rate::parse("7.1234").unwrap())
        .unwrap();
        let fx = paid.fx.unwrap();
        assert_eq!(fx.from_amount, amount(7_131), "7130.52… up");
        let (mut refunded, mut back) = (Amount::ZERO, Amount::ZERO);
        for part in [333, 333, 335] {
            let shares = paid.refund_shares(amount(part), refunded, Amount::ZERO, back).unwrap();
            refunded = refunded.checked_add(amount(part)).unwrap();
            back = back.checked_add(shares.fx_returned).unwrap();
        }
        assert_eq!(back, fx.from_amount);
    }

    #[test]
    fn an_authorization_captures_part_and_releases_the_rest_or_expires() {
        let authorized = payment(1_000, 100).with_authorization(60, 100).unwrap();
        let holding = authorized.apply(&Event::Submit).unwrap();
        assert_eq!(holding.state.state, PaymentState::Authorizing);
        let held = holding.state.apply_at(&Event::LedgerPosted, 5_000).unwrap().state;
        assert_eq!(held.state, PaymentState::Authorized { until_ms: 65_000 });
        assert!(held.apply(&Event::Capture { amount: amount(1_001) }).is_err(), "past the hold");
        let capturing = held.apply(&Event::Capture { amount: amount(600) }).unwrap();
        assert_eq!(capturing.state.resume(), capturing.effects, "a crash captures the same");
        let captured = capturing.state.apply(&Event::LedgerPosted).unwrap().state;
        assert_eq!(
            (captured.state.clone(), captured.amount, captured.fee),
            (PaymentState::Succeeded, amount(600), amount(6))
        );
        let late = held.apply(&Event::Capture { amount: amount(600) }).unwrap().state;
        let gone = late.apply(&Event::LedgerRejected { code: "pending_expired".into() }).unwrap();
        assert_eq!(gone.state.state, PaymentState::Expired);
        let expiring = held.apply(&Event::Deadline).unwrap().state;
        assert_eq!(
            expiring.apply(&Event::LedgerPosted).unwrap().state.state,
            PaymentState::Expired
        );
        let canceling = held.apply(&Event::Cancel).unwrap().state;
        assert_eq!(
            canceling.apply(&Event::LedgerPosted).unwrap().state.state,
            PaymentState::Canceled
        );
    }

    #[test]
    fn booking_is_idempotent_and_final() {
        let created = payment(500, 100);
        let posting = created.apply(&Event::Submit).unwrap();
        assert_eq!(posting.state.state, PaymentState::Posting);
        assert_eq!(posting.effects, vec![Effect::Ledger(created.group())]);
        assert_eq!(posting.state.resume(), posting.effects, "a crash re-books the same group");
        let again = posting.state.apply(&Event::Submit).unwrap();
        assert!(again.effects.is_empty());
        let done = posting.state.apply(&Event::LedgerPosted).unwrap().state;
        assert_eq!(done.state, PaymentState::Succeeded);
        assert!(done.apply(&Event::LedgerPosted).unwrap().effects.is_empty());
        assert!(done.apply(&Event::LedgerRejected { code: "x".into() }).is_err());
        assert!(done.resume().is_empty());
    }
}
