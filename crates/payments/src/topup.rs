//! Top-up (充值): debit the customer's bank card through a channel, then credit the wallet.
//!
//! ```text
//!  Created ──Route(ch)──► Debiting(ch) ──answer: succeeded──► Crediting ──posted──► Succeeded
//!     ▲                      │  │ answer: processing / unknown → stay, inquire
//!     └── answer: refused ───┘  └─ answer: failed ──► Failed ──late success──► Crediting
//!         (channel did nothing; route elsewhere)
//!  Crediting ──ledger rejected (wallet closed)──► Suspending ──posted──► Suspended
//! ```
//!
//! Ledger entries (one linked group each):
//! - credit, on the channel's success: `Dr 1122 clearing[ch] amount / Cr 2241 wallet amount`,
//!   and when the channel charged a fee, `Dr 6602 channel fees fee / Cr 1122 clearing[ch] fee`:
//!   the customer gets the whole amount; the platform bears the channel's fee.
//! - suspense, if the wallet cannot take the credit: `Dr 1122 clearing[ch] / Cr 2299 suspense`
//!   (the money arrived; an operator returns it to the card).
//!
//! A failure books nothing, so a late success after it is still safe to credit.
//!
//! A card payment (收单 from a bank card) is the same flow whose credit goes to a merchant:
//! `Dr 1122 clearing[ch] amount / Cr 2202 unsettled[merchant] amount`, then the merchant's
//! fee `Dr 2202 unsettled[merchant] fee / Cr 6021 fee income fee`, then the channel's fee as
//! above (see [`MerchantCredit`]).

use channels::{ChannelId, ChannelRequest, Operation, Outcome, Settled};
use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::BusinessCode;
use money::{Amount, AssetCode};

use crate::chart::{internal_account_id, merchant_account_id, wallet_account_id, Internal};
use crate::ids::{request_id, transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

/// The business code on a top-up's ledger transfers.
pub const BUSINESS_CODE_TOPUP: BusinessCode = BusinessCode(1001);

/// Where a card payment's money goes instead of the payer's wallet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MerchantCredit {
    pub merchant: String,
    /// The merchant's fee to the platform.
    pub fee: Amount,
    /// The merchant's fee rate, for refunds' fee shares.
    pub fee_bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopUp {
    pub order: OrderId,
    pub customer: String,
    /// The customer's card or bank account at the channel.
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Channels that refused before doing anything, in order.
    pub refused_by: Vec<ChannelId>,
    /// Set for a card payment: the credit goes to this merchant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<MerchantCredit>,
    pub state: TopUpState,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TopUpState {
    /// Waiting for a channel to be chosen.
    Created,
    /// The debit is at `channel`; an unknown answer waits here with an inquiry open.
    Debiting {
        channel: ChannelId,
    },
    /// The channel took the money; the wallet credit is being booked.
    Crediting {
        channel: ChannelId,
        settled: Settled,
    },
    Succeeded {
        channel: ChannelId,
        settled: Settled,
    },
    /// The channel refused; `channel` is where the debit went (none if no channel took it).
    Failed {
        channel: Option<ChannelId>,
        reason: String,
    },
    /// The wallet refused the credit: the money is being booked to suspense.
    Suspending {
        channel: ChannelId,
        settled: Settled,
        code: String,
    },
    /// In suspense: an operator returns the money to the card.
    Suspended {
        channel: ChannelId,
        settled: Settled,
        code: String,
    },
}

impl TopUpState {
    pub fn name(&self) -> &'static str {
        match self {
            TopUpState::Created => "created",
            TopUpState::Debiting { .. } => "debiting",
            TopUpState::Crediting { .. } => "crediting",
            TopUpState::Succeeded { .. } => "succeeded",
            TopUpState::Failed { .. } => "failed",
            TopUpState::Suspending { .. } => "suspending",
            TopUpState::Suspended { .. } => "suspended",
        }
    }

    /// No event but a late channel success moves a top-up out of these.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TopUpState::Succeeded { .. } | TopUpState::Failed { .. } | TopUpState::Suspended { .. }
        )
    }
}

/// A top-up takes the shared [`Event`]s; `Submit` is a no-op (routing starts it).
pub type TopUpEvent = Event;

impl TopUp {
    pub fn new(
        order: OrderId,
        customer: String,
        card: String,
        asset: AssetCode,
        amount: Amount,
    ) -> TopUp {
        TopUp {
            order,
            customer,
            card,
            asset,
            amount,
            refused_by: Vec::new(),
            merchant: None,
            state: TopUpState::Created,
        }
    }

    /// The same flow paying `merchant` (a card payment).
    pub fn paying(mut self, merchant: MerchantCredit) -> TopUp {
        self.merchant = Some(merchant);
        self
    }

    /// The channel request of this top-up's debit (the same on every retry).
    /// For a card payment: the share of the merchant's fee a refund of `amount` returns,
    /// given what earlier live refunds took (`refunded`, `fee_returned`), by the rule of a
    /// wallet payment's refunds (the shares of a full refund sum to the fee). `None` for a
    /// top-up, or past the amount paid.
    pub fn refund_fee_share(
        &self,
        amount: Amount,
        refunded: Amount,
        fee_returned: Amount,
    ) -> Option<Amount> {
        let credit = self.merchant.as_ref()?;
        crate::booking::proportional_share(credit.fee, self.amount, amount, refunded, fee_returned)
    }

    pub fn debit_request(&self) -> ChannelRequest {
        ChannelRequest {
            request_id: request_id(&self.order, Step::TopUpDebit),
            operation: Operation::Debit,
            account: self.card.clone(),
            asset: self.asset,
            amount: self.amount,
            original_request_id: None,
        }
    }

    fn transfer(
        &self,
        step: Step,
        debit: Internal,
        credit_wallet: bool,
        amount: Amount,
    ) -> NewTransfer {
        let debit_account_id = internal_account_id(&debit, self.asset);
        let credit_account_id = match (&self.merchant, credit_wallet) {
            (Some(credit), true) => merchant_account_id(&credit.merchant, self.asset, false),
            (None, true) => wallet_account_id(&self.customer, self.asset),
            (_, false) => internal_account_id(&Internal::Suspense, self.asset),
        };
        NewTransfer {
            id: transfer_id(&self.order, step),
            action: TransferAction::Post(Movement {
                debit_account_id,
                credit_account_id,
                asset: self.asset,
                amount,
            }),
            business_code: self.business_code(),
            order_ref: self.order.order_ref(),
        }
    }

    fn fee(&self, channel: &ChannelId, settled: &Settled) -> Option<NewTransfer> {
        (!settled.fee.is_zero()).then(|| NewTransfer {
            id: transfer_id(&self.order, Step::TopUpFee),
            action: TransferAction::Post(Movement {
                debit_account_id: internal_account_id(&Internal::ChannelFees, self.asset),
                credit_account_id: internal_account_id(
                    &Internal::ChannelClearing(channel.clone()),
                    self.asset,
                ),
                asset: self.asset,
                amount: settled.fee,
            }),
            business_code: self.business_code(),
            order_ref: self.order.order_ref(),
        })
    }

    /// The credit group: wallet and fee, all or nothing.
    pub fn credit_group(&self, channel: &ChannelId, settled: &Settled) -> Vec<NewTransfer> {
        let clearing = Internal::ChannelClearing(channel.clone());
        let mut group = vec![self.transfer(Step::TopUpCredit, clearing, true, self.amount)];
        if let Some(credit) = self.merchant.as_ref().filter(|credit| !credit.fee.is_zero()) {
            group.push(NewTransfer {
                id: transfer_id(&self.order, Step::PaymentFee),
                action: TransferAction::Post(Movement {
                    debit_account_id: merchant_account_id(&credit.merchant, self.asset, false),
                    credit_account_id: internal_account_id(&Internal::FeeIncome, self.asset),
                    asset: self.asset,
                    amount: credit.fee,
                }),
                business_code: self.business_code(),
                order_ref: self.order.order_ref(),
            });
        }
        group.extend(self.fee(channel, settled));
        group
    }

    fn business_code(&self) -> BusinessCode {
        if self.merchant.is_some() {
            crate::booking::BUSINESS_CODE_PAYMENT
        } else {
            BUSINESS_CODE_TOPUP
        }
    }

    /// The suspense group: the money that arrived goes to suspense instead of the wallet.
    /// The credit and this can never both be booked: the executor marks a rejected credit's
    /// id as used (a tombstone) before the order moves on to suspense.
    pub fn suspense_group(&self, channel: &ChannelId, settled: &Settled) -> Vec<NewTransfer> {
        let clearing = Internal::ChannelClearing(channel.clone());
        let mut group = vec![self.transfer(Step::TopUpSuspense, clearing, false, self.amount)];
        group.extend(self.fee(channel, settled));
        group
    }

    /// The debit waiting for a channel to be chosen, when the state waits for one.
    pub fn awaiting_route(&self) -> Option<ChannelRequest> {
        (self.state == TopUpState::Created).then(|| self.debit_request())
    }

    /// The effects the current state waits on, to carry out again after a crash or a lost
    /// answer. Each is idempotent: the ledger deduplicates by the derived ids, and a request
    /// at a channel is asked after (status inquiry), never sent twice.
    pub fn resume(&self) -> Vec<Effect> {
        use TopUpState as S;
        match &self.state {
            // Never sent again: the first send may have done it, and a second one that the
            // channel refuses ("down", our breaker open) would prove nothing about the first.
            // Status inquiry asks what became of it; a request never sent ends as
            // never-received once the channel's late-arrival window has passed.
            S::Debiting { channel } => vec![Effect::Inquire {
                channel: channel.clone(),
                operation: Operation::Debit,
                request_id: request_id(&self.order, Step::TopUpDebit),
            }],
            S::Crediting { channel, settled } => {
                vec![Effect::Ledger(self.credit_group(channel, settled))]
            }
            S::Suspending { channel, settled, .. } => {
                vec![Effect::Ledger(self.suspense_group(channel, settled))]
            }
            S::Created | S::Succeeded { .. } | S::Failed { .. } | S::Suspended { .. } => Vec::new(),
        }
    }

    /// The one transition function.
    pub fn apply(&self, event: &TopUpEvent) -> Result<Transition<TopUp>, IllegalTransition> {
        use TopUpState as S;
        let illegal = || IllegalTransition {
            order_kind: "top-up",
            state: self.state.name(),
            event: event.name(),
        };
        let stay = || Transition { state: self.clone(), effects: Vec::new() };
        let next = |state: TopUpState, effects: Vec<Effect>| Transition {
            state: TopUp { state, ..self.clone() },
            effects,
        };
        Ok(match (&self.state, event) {
            (S::Created, TopUpEvent::Route { channel }) => {
                if self.refused_by.contains(channel) {
                    return Err(illegal());
                }
                next(
                    S::Debiting { channel: channel.clone() },
                    vec![Effect::Channel {
                        channel: Some(channel.clone()),
                        request: self.debit_request(),
                    }],
                )
            }
            (_, TopUpEvent::Submit) => stay(),
            (S::Created, TopUpEvent::Abandon { reason }) => {
                next(S::Failed { channel: None, reason: reason.clone() }, Vec::new())
            }
            // A retried routing step after the debit went out: the debit stays where it is.
            (S::Debiting { channel: at }, TopUpEvent::Route { channel }) if at == channel => stay(),
            // A repeated refusal from a channel we already left: nothing to do.
            (
                _,
                TopUpEvent::ChannelAnswered { channel, outcome: Outcome::Failed { reason, .. } },
            ) if reason.retry_elsewhere() && self.refused_by.contains(channel) => stay(),
            (S::Debiting { channel }, TopUpEvent::ChannelAnswered { channel: from, outcome })
                if from == channel =>
            {
                match outcome {
                    Outcome::Succeeded(settled) => next(
                        S::Crediting { channel: channel.clone(), settled: settled.clone() },
                        vec![Effect::Ledger(self.credit_group(channel, settled))],
                    ),
                    Outcome::Failed { reason, .. } if reason.retry_elsewhere() => {
                        let mut refused = self.clone();
                        refused.refused_by.push(channel.clone());
                        refused.state = S::Created;
                        Transition { state: refused, effects: Vec::new() }
                    }
                    Outcome::Failed { reason, detail } => next(
                        S::Failed {
                            channel: Some(channel.clone()),
                            reason: format!("{}: {detail}", reason.as_str()),
                        },
                        Vec::new(),
                    ),
                    Outcome::Processing | Outcome::Unknown { .. } => Transition {
                        state: self.clone(),
                        effects: vec![Effect::Inquire {
                            channel: channel.clone(),
                            operation: Operation::Debit,
                            request_id: request_id(&self.order, Step::TopUpDebit),
                        }],
                    },
                }
            }
            // A late success after a failure: nothing was booked, so credit now.
            (
                S::Failed { channel: Some(channel), .. },
                TopUpEvent::ChannelAnswered { channel: from, outcome: Outcome::Succeeded(settled) },
            ) if from == channel => next(
                S::Crediting { channel: channel.clone(), settled: settled.clone() },
                vec![Effect::Ledger(self.credit_group(channel, settled))],
            ),
            // Duplicates and stale news change nothing.
            (
                S::Crediting { .. }
                | S::Succeeded { .. }
                | S::Suspending { .. }
                | S::Suspended { .. },
                TopUpEvent::ChannelAnswered {
                    outcome: Outcome::Succeeded(_) | Outcome::Processing | Outcome::Unknown { .. },
                    ..
                },
            ) => stay(),
            (
                S::Failed { .. },
                TopUpEvent::ChannelAnswered {
                    outcome: Outcome::Failed { .. } | Outcome::Processing | Outcome::Unknown { .. },
                    ..
                },
            ) => stay(),
            (S::Crediting { channel, settled }, TopUpEvent::LedgerPosted) => next(
                S::Succeeded { channel: channel.clone(), settled: settled.clone() },
                Vec::new(),
            ),
            (S::Crediting { channel, settled }, TopUpEvent::LedgerRejected { code }) => next(
                S::Suspending {
                    channel: channel.clone(),
                    settled: settled.clone(),
                    code: code.clone(),
                },
                vec![Effect::Ledger(self.suspense_group(channel, settled))],
            ),
            (S::Suspending { channel, settled, code }, TopUpEvent::LedgerPosted) => next(
                S::Suspended {
                    channel: channel.clone(),
                    settled: settled.clone(),
                    code: code.clone(),
                },
                Vec::new(),
            ),
            (S::Succeeded { .. } | S::Suspended { .. }, TopUpEvent::LedgerPosted) => stay(),
            _ => return Err(illegal()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(minor: u64) -> Amount {
        Amount::new(minor).unwrap()
    }

    #[test]
    fn a_card_payments_refunds_return_its_fee_in_shares_that_sum_to_it() {
        let card = |merchant| {
            let topup = TopUp::new(
                OrderId::new("cp_1").unwrap(),
                "alice".into(),
                "card".into(),
                AssetCode::new("CNY").unwrap(),
                amount(1_000),
            );
            match merchant {
                Some(fee) => topup.paying(MerchantCredit {
                    merchant: "shop".into(),
                    fee: amount(fee),
                    fee_bps: 70,
                }),
                None => topup,
            }
        };
        assert_eq!(card(None).refund_fee_share(amount(10), Amount::ZERO, Amount::ZERO), None);
        let paid = card(Some(7));
        let (mut refunded, mut fee_returned) = (Amount::ZERO, Amount::ZERO);
        for part in [333, 333, 334] {
            let share = paid.refund_fee_share(amount(part), refunded, fee_returned).unwrap();
            refunded = refunded.checked_add(amount(part)).unwrap();
            fee_returned = fee_returned.checked_add(share).unwrap();
        }
        assert_eq!(fee_returned, amount(7), "the last refund takes what is left of the fee");
        assert_eq!(
            paid.refund_fee_share(amount(1), refunded, fee_returned),
            None,
            "past the amount"
        );
    }
}
