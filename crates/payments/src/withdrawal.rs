//! Withdrawal (提现): hold the wallet amount, pay out through a channel, post the hold on
//! success, void it on failure. An unknown outcome goes to status inquiry and the money stays
//! held: it is never released on a guess, because a payout the bank did make, released and
//! spent again, is money lost.
//!
//! ```text
//!  Created ──Submit──► Holding ──posted──► Held ──Route(ch)──► Paying(ch)
//!                         │ rejected                  ▲           │ processing / unknown → stay, inquire
//!                         ▼                           │ refused   │ succeeded ──► Posting ──posted──► Succeeded
//!                       Failed          (did nothing) └───────────┤ failed ────► Voiding ──posted──► Failed
//!  Failed (hold voided) ──late success──► Disputed (an operator must act: loss accounting)
//! ```
//!
//! Ledger entries:
//! - hold: pending `Dr 2241 wallet amount / Cr 2245 withdrawals in flight amount` — the money
//!   cannot be spent, and is not yet at any channel (a merchant's payout, 代付, holds
//!   `Dr 2203 settled[merchant]` instead; everything else is the same);
//! - success, one linked group: post the hold; `Dr 2245 in flight / Cr 1122 clearing[ch]`
//!   (the channel paid it out of our reserve); and when the channel charged a fee,
//!   `Dr 6602 channel fees / Cr 1122 clearing[ch]`;
//! - failure: void the hold (the wallet has its money back).

use channels::{ChannelId, ChannelRequest, Operation, Outcome, Settled};
use ledger::model::{BoundedText, Movement, NewTransfer, TransferAction};
use ledger::BusinessCode;
use money::{Amount, AssetCode};

use crate::chart::{internal_account_id, merchant_account_id, wallet_account_id, Internal};
use crate::ids::{request_id, transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

pub const BUSINESS_CODE_WITHDRAWAL: BusinessCode = BusinessCode(1002);
/// A merchant's payout (代付): the same flow from the merchant's settled takings.
pub const BUSINESS_CODE_PAYOUT: BusinessCode = BusinessCode(3002);

/// Whose money a withdrawal pays out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutSource {
    /// A customer's wallet (提现).
    #[default]
    Wallet,
    /// A merchant's settled takings (代付, batch payouts); a failed item's hold is voided,
    /// so its money is back with the merchant.
    MerchantSettled,
}

/// Longest time a withdrawal hold lives without being posted or voided: none. A hold that
/// expired by itself would release money the bank may have paid out.
pub const HOLD_TIMEOUT_SECS: Option<u32> = None;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Withdrawal {
    pub order: OrderId,
    /// The owner of the money: a customer, or for a payout (代付) a merchant.
    pub customer: String,
    /// Where the money comes from: the customer's wallet, or the merchant's settled takings.
    #[serde(default)]
    pub source: PayoutSource,
    /// The customer's bank account at the channel.
    pub bank_account: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Channels that refused before doing anything, in order.
    pub refused_by: Vec<ChannelId>,
    pub state: WithdrawalState,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WithdrawalState {
    Created,
    /// The hold is being placed.
    Holding,
    /// The money is held; waiting for a channel to be chosen.
    Held,
    /// The payout is at `channel`; unknown answers wait here, money held, inquiry open.
    Paying {
        channel: ChannelId,
    },
    /// The bank paid; the hold is being posted.
    Posting {
        channel: ChannelId,
        settled: Settled,
    },
    Succeeded {
        channel: ChannelId,
        settled: Settled,
    },
    /// The bank refused (or no channel could be tried); the hold is being voided.
    Voiding {
        channel: Option<ChannelId>,
        reason: String,
    },
    /// `channel`: where the payout went, if any channel took it.
    Failed {
        channel: Option<ChannelId>,
        reason: String,
    },
    /// The bank reports a payout after we released the hold: an operator must act.
    Disputed {
        channel: ChannelId,
        settled: Settled,
    },
}

impl WithdrawalState {
    pub fn name(&self) -> &'static str {
        match self {
            WithdrawalState::Created => "created",
            WithdrawalState::Holding => "holding",
            WithdrawalState::Held => "held",
            WithdrawalState::Paying { .. } => "paying",
            WithdrawalState::Posting { .. } => "posting",
            WithdrawalState::Succeeded { .. } => "succeeded",
            WithdrawalState::Voiding { .. } => "voiding",
            WithdrawalState::Failed { .. } => "failed",
            WithdrawalState::Disputed { .. } => "disputed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            WithdrawalState::Succeeded { .. }
                | WithdrawalState::Failed { .. }
                | WithdrawalState::Disputed { .. }
        )
    }
}

pub type WithdrawalEvent = Event;

impl Withdrawal {
    pub fn new(
        order: OrderId,
        customer: String,
        bank_account: String,
        asset: AssetCode,
        amount: Amount,
    ) -> Withdrawal {
        Withdrawal {
            order,
            customer,
            source: PayoutSource::Wallet,
            bank_account,
            asset,
            amount,
            refused_by: Vec::new(),
            state: WithdrawalState::Created,
        }
    }

    /// The same withdrawal paying out a merchant's settled takings.
    pub fn from_merchant(mut self) -> Withdrawal {
        self.source = PayoutSource::MerchantSettled;
        self
    }

    fn business_code(&self) -> BusinessCode {
        match self.source {
            PayoutSource::Wallet => BUSINESS_CODE_WITHDRAWAL,
            PayoutSource::MerchantSettled => BUSINESS_CODE_PAYOUT,
        }
    }

    /// The account the hold is on.
    pub fn source_account(&self) -> ledger::AccountId {
        match self.source {
            PayoutSource::Wallet => wallet_account_id(&self.customer, self.asset),
            PayoutSource::MerchantSettled => merchant_account_id(&self.customer, self.asset, true),
        }
    }

    pub fn payout_request(&self) -> ChannelRequest {
        ChannelRequest {
            request_id: request_id(&self.order, Step::WithdrawalPayout),
            operation: Operation::Payout,
            account: self.bank_account.clone(),
            asset: self.asset,
            amount: self.amount,
            original_request_id: None,
        }
    }

    fn order_ref(&self) -> BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }> {
        self.order.order_ref()
    }

    fn post(
        &self,
        step: Step,
        debit: ledger::AccountId,
        credit: ledger::AccountId,
        amount: Amount,
    ) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, step),
            action: TransferAction::Post(Movement {
                debit_account_id: debit,
                credit_account_id: credit,
                asset: self.asset,
                amount,
            }),
            business_code: self.business_code(),
            order_ref: self.order_ref(),
        }
    }

    pub fn hold_transfer(&self) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, Step::WithdrawalHold),
            action: TransferAction::Pending {
                movement: Movement {
                    debit_account_id: self.source_account(),
                    credit_account_id: internal_account_id(
                        &Internal::WithdrawalsInFlight,
                        self.asset,
                    ),
                    asset: self.asset,
                    amount: self.amount,
                },
                timeout_secs: HOLD_TIMEOUT_SECS,
            },
            business_code: self.business_code(),
            order_ref: self.order_ref(),
        }
    }

    /// Post the hold, move it from in-flight to the channel, book the channel's fee.
    pub fn success_group(&self, channel: &ChannelId, settled: &Settled) -> Vec<NewTransfer> {
        let clearing = internal_account_id(&Internal::ChannelClearing(channel.clone()), self.asset);
        let in_flight = internal_account_id(&Internal::WithdrawalsInFlight, self.asset);
        let mut group = vec![
            NewTransfer {
                id: transfer_id(&self.order, Step::WithdrawalPost),
                action: TransferAction::PostPending {
                    pending_id: transfer_id(&self.order, Step::WithdrawalHold),
                    amount: None,
                },
                business_code: self.business_code(),
                order_ref: self.order_ref(),
            },
            self.post(Step::WithdrawalSettle, in_flight, clearing, self.amount),
        ];
        if !settled.fee.is_zero() {
            let fees = internal_account_id(&Internal::ChannelFees, self.asset);
            group.push(self.post(Step::WithdrawalFee, fees, clearing, settled.fee));
        }
        group
    }

    pub fn void_transfer(&self) -> NewTransfer {
        NewTransfer {
            id: transfer_id(&self.order, Step::WithdrawalVoid),
            action: TransferAction::VoidPending {
                pending_id: transfer_id(&self.order, Step::WithdrawalHold),
            },
            business_code: self.business_code(),
            order_ref: self.order_ref(),
        }
    }

    /// The payout waiting for a channel to be chosen, when the state waits for one.
    pub fn awaiting_route(&self) -> Option<ChannelRequest> {
        (self.state == WithdrawalState::Held).then(|| self.payout_request())
    }

    /// The effects the current state waits on, to carry out again after a crash or a lost
    /// answer. Each is idempotent: the ledger deduplicates by the derived ids, and a request
    /// at a channel is asked after (status inquiry), never sent twice.
    pub fn resume(&self) -> Vec<Effect> {
        use WithdrawalState as S;
        match &self.state {
            S::Holding => vec![Effect::Ledger(vec![self.hold_transfer()])],
            // Asked after, never sent again (see `TopUp::resume`).
            S::Paying { channel } => vec![Effect::Inquire {
                channel: channel.clone(),
                operation: Operation::Payout,
                request_id: request_id(&self.order, Step::WithdrawalPayout),
            }],
            S::Posting { channel, settled } => {
                vec![Effect::Ledger(self.success_group(channel, settled))]
            }
            S::Voiding { .. } => vec![Effect::Ledger(vec![self.void_transfer()])],
            S::Created | S::Held | S::Succeeded { .. } | S::Failed { .. } | S::Disputed { .. } => {
                Vec::new()
            }
        }
    }

    pub fn apply(
        &self,
        event: &WithdrawalEvent,
    ) -> Result<Transition<Withdrawal>, IllegalTransition> {
        use WithdrawalEvent as E;
        use WithdrawalState as S;
        let illegal = || IllegalTransition {
            order_kind: "withdrawal",
            state: self.state.name(),
            event: event.name(),
        };
        let stay = || Transition { state: self.clone(), effects: Vec::new() };
        let next = |state: WithdrawalState, effects: Vec<Effect>| Transition {
            state: Withdrawal { state, ..self.clone() },
            effects,
        };
        Ok(match (&self.state, event) {
            (S::Created, E::Submit) => {
                next(S::Holding, vec![Effect::Ledger(vec![self.hold_transfer()])])
            }
            (S::Holding, E::Submit) => stay(),
            (_, E::Submit) => stay(),
            (S::Holding, E::LedgerPosted) => next(S::Held, Vec::new()),
            // The wallet lacks the money, is frozen or closed: nothing was held.
            (S::Holding, E::LedgerRejected { code }) => {
                next(S::Failed { channel: None, reason: code.clone() }, Vec::new())
            }
            (S::Held, E::Route { channel }) => {
                if self.refused_by.contains(channel) {
                    return Err(illegal());
                }
                next(
                    S::Paying { channel: channel.clone() },
                    vec![Effect::Channel {
                        channel: Some(channel.clone()),
                        request: self.payout_request(),
                    }],
                )
            }
            (S::Paying { channel: at }, E::Route { channel }) if at == channel => stay(),
            (S::Held, E::Abandon { reason }) => next(
                S::Voiding { channel: None, reason: reason.clone() },
                vec![Effect::Ledger(vec![self.void_transfer()])],
            ),
            // A repeated refusal from a channel we already left: nothing to do.
            (_, E::ChannelAnswered { channel, outcome: Outcome::Failed { reason, .. } })
                if reason.retry_elsewhere() && self.refused_by.contains(channel) =>
            {
                stay()
            }
            (S::Paying { channel }, E::ChannelAnswered { channel: from, outcome })
                if from == channel =>
            {
                match outcome {
                    Outcome::Succeeded(settled) => next(
                        S::Posting { channel: channel.clone(), settled: settled.clone() },
                        vec![Effect::Ledger(self.success_group(channel, settled))],
                    ),
                    Outcome::Failed { reason, .. } if reason.retry_elsewhere() => {
                        let mut refused = self.clone();
                        refused.refused_by.push(channel.clone());
                        refused.state = S::Held;
                        Transition { state: refused, effects: Vec::new() }
                    }
                    Outcome::Failed { reason, detail } => next(
                        S::Voiding {
                            channel: Some(channel.clone()),
                            reason: format!("{}: {detail}", reason.as_str()),
                        },
                        vec![Effect::Ledger(vec![self.void_transfer()])],
                    ),
                    Outcome::Processing | Outcome::Unknown { .. } => Transition {
                        state: self.clone(),
                        effects: vec![Effect::Inquire {
                            channel: channel.clone(),
                            operation: Operation::Payout,
                            request_id: request_id(&self.order, Step::WithdrawalPayout),
                        }],
                    },
                }
            }
            (S::Posting { channel, settled }, E::LedgerPosted) => next(
                S::Succeeded { channel: channel.clone(), settled: settled.clone() },
                Vec::new(),
            ),
            (S::Voiding { channel, reason }, E::LedgerPosted) => {
                next(S::Failed { channel: channel.clone(), reason: reason.clone() }, Vec::new())
            }
            // Duplicates and stale news change nothing.
            (
                S::Posting { .. } | S::Succeeded { .. } | S::Disputed { .. },
                E::ChannelAnswered {
                    outcome: Outcome::Succeeded(_) | Outcome::Processing | Outcome::Unknown { .. },
                    ..
                },
            ) => stay(),
            (
                S::Voiding { .. } | S::Failed { .. },
                E::ChannelAnswered {
                    outcome: Outcome::Failed { .. } | Outcome::Processing | Outcome::Unknown { .. },
                    ..
                },
            ) => stay(),
            (S::Succeeded { .. } | S::Failed { .. } | S::Disputed { .. }, E::LedgerPosted) => {
                stay()
            }
            // The bank paid after all, but the hold is gone: never re-debit on a guess (the
            // wallet may be spent); an operator resolves it and books the loss if there is one.
            (
                S::Voiding { channel: Some(channel), .. },
                E::ChannelAnswered { channel: from, outcome: Outcome::Succeeded(settled) },
            ) if from == channel => {
                next(S::Disputed { channel: channel.clone(), settled: settled.clone() }, Vec::new())
            }
            (
                S::Failed { channel: Some(channel), .. },
                E::ChannelAnswered { channel: from, outcome: Outcome::Succeeded(settled) },
            ) if from == channel => {
                next(S::Disputed { channel: channel.clone(), settled: settled.clone() }, Vec::new())
            }
            _ => return Err(illegal()),
        })
    }
}
