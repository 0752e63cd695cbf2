//! Refund of a card payment (退款 to the card): the money goes back through the channel the
//! payment came in by, and only that one.
//!
//! ```text
//!  Created ──Submit──► Booking ──posted──► Booked ──Route(ch)──► Refunding(ch) ──succeeded──► Settling ──posted──► Succeeded
//!                         │ rejected                    ▲            │ processing / unknown → stay, inquire
//!                         ▼                             │ refused    │ failed
//!                       Failed   (channel did nothing) ─┘            ▼
//!                                                             Reversing ──posted──► Failed (reversed)
//! ```
//!
//! Ledger entries — the merchant's money is taken first, so it cannot be spent while the
//! bank pays it back, and every failure is a new reversing transfer, never an edit:
//! - booking (one group): the fee share `Dr 6021 fee income / Cr 2202 unsettled[merchant]`,
//!   then `Dr 2202 unsettled[merchant] amount / Cr 2245 in flight amount`;
//! - success: `Dr 2245 in flight amount / Cr 1122 clearing[ch] amount`, and the channel's fee
//!   `Dr 6602 channel fees / Cr 1122 clearing[ch]`;
//! - failure: the reverse of the booking, `Dr 2245 in flight / Cr 2202 unsettled[merchant]`
//!   and `Dr 2202 unsettled[merchant] share / Cr 6021 fee income share`.
//!
//! A bank that reports success after we reversed leaves the refund Disputed: an operator
//! books it (loss accounting), as for a withdrawal.

use channels::{ChannelId, ChannelRequest, Operation, Outcome, RequestId, Settled};
use ledger::model::{BoundedText, Movement, NewTransfer, TransferAction};
use ledger::AccountId;
use money::{Amount, AssetCode};

use crate::booking::BUSINESS_CODE_REFUND;
use crate::chart::{internal_account_id, merchant_account_id, Internal};
use crate::ids::{request_id, transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardRefund {
    pub order: OrderId,
    /// The card payment it refunds.
    pub payment: OrderId,
    pub customer: String,
    pub merchant: String,
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
    pub fee_returned: Amount,
    /// The channel the payment came by, and its debit's request id there.
    pub channel: ChannelId,
    pub debit_request_id: RequestId,
    /// The payment was already settled: the refund takes from settled takings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_settled: bool,
    pub state: CardRefundState,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CardRefundState {
    Created,
    Booking,
    /// The merchant's money is in flight; the channel is to be asked.
    Booked,
    Refunding,
    Settling {
        settled: Settled,
    },
    Succeeded {
        settled: Settled,
    },
    Reversing {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Disputed {
        settled: Settled,
    },
}

impl CardRefundState {
    pub fn name(&self) -> &'static str {
        match self {
            CardRefundState::Created => "created",
            CardRefundState::Booking => "booking",
            CardRefundState::Booked => "booked",
            CardRefundState::Refunding => "refunding",
            CardRefundState::Settling { .. } => "settling",
            CardRefundState::Succeeded { .. } => "succeeded",
            CardRefundState::Reversing { .. } => "reversing",
            CardRefundState::Failed { .. } => "failed",
            CardRefundState::Disputed { .. } => "disputed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CardRefundState::Succeeded { .. }
                | CardRefundState::Failed { .. }
                | CardRefundState::Disputed { .. }
        )
    }
}

impl CardRefund {
    fn post(&self, step: Step, debit: AccountId, credit: AccountId, amount: Amount) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, step),
            action: TransferAction::Post(Movement {
                debit_account_id: debit,
                credit_account_id: credit,
                asset: self.asset,
                amount,
            }),
            business_code: BUSINESS_CODE_REFUND,
            order_ref: BoundedText::new(self.order.as_str()).unwrap_or_default(),
        }
    }

    fn accounts(&self) -> (AccountId, AccountId, AccountId) {
        (
            merchant_account_id(&self.merchant, self.asset, self.from_settled),
            internal_account_id(&Internal::WithdrawalsInFlight, self.asset),
            internal_account_id(&Internal::FeeIncome, self.asset),
        )
    }

    pub fn booking_group(&self) -> Vec<NewTransfer> {
        let (unsettled, in_flight, fee_income) = self.accounts();
        let mut group = Vec::new();
        if !self.fee_returned.is_zero() {
            group.push(self.post(Step::RefundFee, fee_income, unsettled, self.fee_returned));
        }
        group.push(self.post(Step::RefundReturn, unsettled, in_flight, self.amount));
        group
    }

    pub fn success_group(&self, settled: &Settled) -> Vec<NewTransfer> {
        let (_, in_flight, _) = self.accounts();
        let clearing =
            internal_account_id(&Internal::ChannelClearing(self.channel.clone()), self.asset);
        let mut group = vec![self.post(Step::CardRefundSettle, in_flight, clearing, self.amount)];
        if !settled.fee.is_zero() {
            let fees = internal_account_id(&Internal::ChannelFees, self.asset);
            group.push(self.post(Step::CardRefundChannelFee, fees, clearing, settled.fee));
        }
        group
    }

    pub fn reversal_group(&self) -> Vec<NewTransfer> {
        let (unsettled, in_flight, fee_income) = self.accounts();
        let mut group = vec![self.post(Step::CardRefundReverse, in_flight, unsettled, self.amount)];
        if !self.fee_returned.is_zero() {
            group.push(self.post(
                Step::CardRefundReverseFee,
                unsettled,
                fee_income,
                self.fee_returned,
            ));
        }
        group
    }

    pub fn refund_request(&self) -> ChannelRequest {
        ChannelRequest {
            request_id: request_id(&self.order, Step::RefundReturn),
            operation: Operation::Refund,
            account: self.card.clone(),
            asset: self.asset,
            amount: self.amount,
            original_request_id: Some(self.debit_request_id.clone()),
        }
    }

    /// The refund's one possible channel, once the merchant's money is in flight.
    pub fn awaiting_route(&self) -> Option<ChannelRequest> {
        (self.state == CardRefundState::Booked).then(|| self.refund_request())
    }

    pub fn resume(&self) -> Vec<Effect> {
        use CardRefundState as S;
        match &self.state {
            S::Booking => vec![Effect::Ledger(self.booking_group())],
            // Asked after, never sent again (see `TopUp::resume`).
            S::Refunding => vec![Effect::Inquire {
                channel: self.channel.clone(),
                operation: Operation::Refund,
                request_id: request_id(&self.order, Step::RefundReturn),
            }],
            S::Settling { settled } => vec![Effect::Ledger(self.success_group(settled))],
            S::Reversing { .. } => vec![Effect::Ledger(self.reversal_group())],
            _ => Vec::new(),
        }
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<CardRefund>, IllegalTransition> {
        use CardRefundState as S;
        let illegal = || IllegalTransition {
            order_kind: "card refund",
            state: self.state.name(),
            event: event.name(),
        };
        let stay = || Transition { state: self.clone(), effects: Vec::new() };
        let next = |state: CardRefundState, effects: Vec<Effect>| Transition {
            state: CardRefund { state, ..self.clone() },
            effects,
        };
        let reverse = |reason: String| {
            next(S::Reversing { reason }, vec![Effect::Ledger(self.reversal_group())])
        };
        Ok(match (&self.state, event) {
            (S::Created, Event::Submit) => {
                next(S::Booking, vec![Effect::Ledger(self.booking_group())])
            }
            (S::Booking, Event::LedgerPosted) => next(S::Booked, Vec::new()),
            (S::Booking, Event::LedgerRejected { code }) => {
                next(S::Failed { reason: code.clone() }, Vec::new())
            }
            (S::Booked, Event::Route { channel }) if *channel == self.channel => next(
                S::Refunding,
                vec![Effect::Channel {
                    channel: Some(channel.clone()),
                    request: self.refund_request(),
                }],
            ),
            (S::Booked, Event::Abandon { reason }) => reverse(reason.clone()),
            (S::Refunding, Event::ChannelAnswered { channel, outcome })
                if *channel == self.channel =>
            {
                match outcome {
                    Outcome::Succeeded(settled) => next(
                        S::Settling { settled: settled.clone() },
                        vec![Effect::Ledger(self.success_group(settled))],
                    ),
                    // The channel did nothing now; its breaker or limits may pass later, but a
                    // refund has nowhere else to go: give the money back to the merchant.
                    Outcome::Failed { reason, detail } => {
                        reverse(format!("{}: {detail}", reason.as_str()))
                    }
                    Outcome::Processing | Outcome::Unknown { .. } => Transition {
                        state: self.clone(),
                        effects: vec![Effect::Inquire {
                            channel: self.channel.clone(),
                            operation: Operation::Refund,
                            request_id: request_id(&self.order, Step::RefundReturn),
                        }],
                    },
                }
            }
            (S::Settling { settled }, Event::LedgerPosted) => {
                next(S::Succeeded { settled: settled.clone() }, Vec::new())
            }
            (S::Reversing { reason }, Event::LedgerPosted) => {
                next(S::Failed { reason: reason.clone() }, Vec::new())
            }
            (
                S::Reversing { .. } | S::Failed { .. },
                Event::ChannelAnswered { channel, outcome: Outcome::Succeeded(settled) },
            ) if *channel == self.channel => {
                next(S::Disputed { settled: settled.clone() }, Vec::new())
            }
            (_, Event::Submit) => stay(),
            (
                S::Settling { .. } | S::Succeeded { .. } | S::Disputed { .. },
                Event::ChannelAnswered { .. } | Event::LedgerPosted,
            )
            | (S::Reversing { .. } | S::Failed { .. }, Event::ChannelAnswered { .. })
            | (S::Failed { .. }, Event::LedgerPosted) => stay(),
            _ => return Err(illegal()),
        })
    }
}
