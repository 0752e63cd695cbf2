//! Refund of a card payment (退款 to the card): the money goes back through the channel the
//! payment came in by, and only that one.
//!
//! ```text
//! Created ──Submit──► Booking ──posted──► Booked ──Route(ch)──► Refunding ──succeeded──► Settling ──posted──► Succeeded
//!                       │ rejected                               │  ▲  │ processing / unknown → stay, inquire
//!                       ▼                                refused │  │  └─ failed (declined, invalid card…) ──► Reversing ──posted──► Failed (reversed)
//!                     Failed                (the channel did     │  │ Route(ch), once due
//!                                           nothing)             ▼  │
//!                                                         AwaitingChannel
//!                                                         (the money stays in flight)
//! Booked ──Abandon (no channels configured)──► Reversing
//! ```
//!
//! Ledger entries — the merchant's money is taken first, so it cannot be spent while the
//! bank pays it back, and every failure is a new reversing transfer, never an edit:
//! - booking (one group): the fee share `Dr 6021 fee income / Cr 2202 unsettled[merchant]`,
//!   then `Dr 2202 unsettled[merchant] amount / Cr 2245 in flight amount`;
//! - success: `Dr 2245 in flight amount / Cr 1122 clearing[ch] amount`, and the channel's fee
//!   `Dr 6602 channel fees / Cr 1122 clearing[ch]`;
//! - failure: the reverse of the booking, `Dr 2245 in flight / Cr 2202 unsettled[merchant]`
//!   and `Dr 2202 unsettled[merchant] share / Cr 6021 fee income share`;
//! - waiting for the channel (`AwaitingChannel`): **no entries**. The money stays in flight
//!   (2245) exactly as booked: it is owed to the customer, so the merchant cannot spend it
//!   and nothing is given back while we wait.
//!
//! **Waiting for the channel.** A refund can only go back the way its payment came, so when
//! that channel certainly did nothing with the send — it refused (down, 503) or our side did
//! not call it (breaker open, rate or concurrency limit; [`FailureReason::retry_elsewhere`])
//! — failing the refund would make the customer ask again for money we owe. Instead the
//! refund waits in `AwaitingChannel` with the time it began waiting (`since_ms`), the number
//! of sends refused so far (`attempts`), the last refusal (`reason`) and the time of the next
//! send (`next_attempt_at_ms`): 1 s after the first refusal, doubling after each, at most
//! 5 min apart ([`channel_retry_delay_ms`]). There is no limit on attempts: a refund is never
//! failed because its channel is away; it waits until the channel answers (an operator can
//! see it, its age and the count of waiting refunds). Every send carries the same request id
//! (`order:return`), which is safe because the bank never saw the refused ones: a send goes
//! out only from `Booked` or `AwaitingChannel`, and the order reaches `AwaitingChannel` only
//! by the refusal of the send just made. A definite answer from the bank — a decline, an
//! invalid card, "never received" after an unknown answer — still fails the refund and
//! reverses the booking as before. Nothing here knows a clock: the caller passes `now_ms`
//! ([`CardRefund::apply_at`]) and drives the retry when [`CardRefund::awaiting_route`] says
//! it is due (the executor's inspection, 巡检).
//!
//! A bank that reports success after we reversed leaves the refund Disputed: an operator
//! books it (loss accounting), as for a withdrawal.
//!
//! The same flow returns a suspended top-up to its card ([`RefundSource::Suspense`]): the
//! money comes from suspense instead of a merchant, `Dr 2299 suspense / Cr 2245 in flight`,
//! with no fee share; success and failure are as above (a failure puts it back in
//! suspense).

use channels::{ChannelId, ChannelRequest, FailureReason, Operation, Outcome, RequestId, Settled};
use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::AccountId;
use money::{Amount, AssetCode};

use crate::booking::BUSINESS_CODE_REFUND;
use crate::chart::{internal_account_id, merchant_account_id, Internal};
use crate::ids::{request_id, transfer_id, OrderId, Step};
use crate::{Effect, Event, IllegalTransition, Transition};

/// Whose money a card refund gives back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundSource {
    /// A card payment's merchant: its takings (unsettled, or settled with `from_settled`).
    #[default]
    Merchant,
    /// A suspended top-up's money, held in suspense (2299) since the wallet refused it:
    /// returned to the card it came from (原路退回). No fee share: the platform took none.
    Suspense,
}

impl RefundSource {
    fn is_merchant(&self) -> bool {
        *self == RefundSource::Merchant
    }
}

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
    /// Whose money goes back: the merchant's (a card payment's refund) or suspense's (a
    /// suspended top-up returned to its card; `merchant` is empty then).
    #[serde(default, skip_serializing_if = "RefundSource::is_merchant")]
    pub source: RefundSource,
    pub state: CardRefundState,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CardRefundState {
    Created,
    Booking,
    /// The merchant's money is in flight; the channel is to be asked.
    Booked,
    /// The refund's channel certainly did nothing with the last send (down, breaker open, at
    /// its limits): the money stays in flight and the same request goes again once
    /// `next_attempt_at_ms` has come. Never failed for waiting: the money is owed.
    AwaitingChannel {
        /// When the first send was refused.
        since_ms: u64,
        /// Sends refused so far (1 after the first refusal).
        attempts: u32,
        next_attempt_at_ms: u64,
        /// The last refusal, as `reason: detail`.
        reason: String,
    },
    /// The request is at the channel. After a wait for it, `waited` says since when and
    /// after how many refused sends.
    Refunding {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited: Option<ChannelWait>,
    },
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

/// How long a refund waited for its channel before the send now at the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelWait {
    pub since_ms: u64,
    /// Sends the channel refused before this one.
    pub attempts: u32,
}

/// The wait after the first refused send of a refund; doubled after each further refusal.
pub const CHANNEL_RETRY_FIRST_DELAY_MS: u64 = 1_000;
/// The longest wait between two sends of a refund whose channel refuses (5 min): an outage
/// of hours costs a dozen sends an hour per waiting refund, and a returning channel is
/// found within five minutes.
pub const CHANNEL_RETRY_DELAY_MAX_MS: u64 = 5 * 60_000;

/// How long to wait before the next send, after `attempts` refused sends (at least 1 s, so a
/// driver that loops until nothing is due always stops).
pub fn channel_retry_delay_ms(attempts: u32) -> u64 {
    // 2^18 s is already past the cap: no shift can overflow.
    let doublings = attempts.saturating_sub(1).min(18);
    (CHANNEL_RETRY_FIRST_DELAY_MS << doublings).min(CHANNEL_RETRY_DELAY_MAX_MS)
}

impl CardRefundState {
    pub fn name(&self) -> &'static str {
        match self {
            CardRefundState::Created => "created",
            CardRefundState::Booking => "booking",
            CardRefundState::Booked => "booked",
            CardRefundState::AwaitingChannel { .. } => "awaiting_channel",
            CardRefundState::Refunding { .. } => "refunding",
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
            order_ref: self.order.order_ref(),
        }
    }

    /// The account the money comes from, in flight (2245), and fee income.
    fn accounts(&self) -> (AccountId, AccountId, AccountId) {
        let source = match self.source {
            RefundSource::Merchant => {
                merchant_account_id(&self.merchant, self.asset, self.from_settled)
            }
            RefundSource::Suspense => internal_account_id(&Internal::Suspense, self.asset),
        };
        (
            source,
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

    /// The refund's one possible channel request, when it is to be sent at `now_ms`: once
    /// the merchant's money is in flight, and again once a wait for the channel is over.
    pub fn awaiting_route(&self, now_ms: u64) -> Option<ChannelRequest> {
        match &self.state {
            CardRefundState::Booked => Some(self.refund_request()),
            CardRefundState::AwaitingChannel { next_attempt_at_ms, .. }
                if now_ms >= *next_attempt_at_ms =>
            {
                Some(self.refund_request())
            }
            _ => None,
        }
    }

    /// When the next send is due, if the refund waits for its channel.
    pub fn next_attempt_at_ms(&self) -> Option<u64> {
        match &self.state {
            CardRefundState::AwaitingChannel { next_attempt_at_ms, .. } => {
                Some(*next_attempt_at_ms)
            }
            _ => None,
        }
    }

    /// Since when the refund has waited for its channel, if it waits.
    pub fn awaiting_channel_since_ms(&self) -> Option<u64> {
        match &self.state {
            CardRefundState::AwaitingChannel { since_ms, .. } => Some(*since_ms),
            _ => None,
        }
    }

    fn inquiry(&self) -> Effect {
        Effect::Inquire {
            channel: self.channel.clone(),
            operation: Operation::Refund,
            request_id: request_id(&self.order, Step::RefundReturn),
        }
    }

    /// The state after a send the channel certainly did nothing with: wait, count it, and
    /// schedule the next send. `waited` is the wait so far, if the refund had waited before.
    fn refused(&self, waited: Option<ChannelWait>, now_ms: u64, reason: String) -> CardRefundState {
        let (since_ms, before) = waited.map_or((now_ms, 0), |wait| (wait.since_ms, wait.attempts));
        let attempts = before.saturating_add(1);
        CardRefundState::AwaitingChannel {
            since_ms,
            attempts,
            next_attempt_at_ms: now_ms.saturating_add(channel_retry_delay_ms(attempts)),
            reason,
        }
    }

    pub fn resume(&self) -> Vec<Effect> {
        use CardRefundState as S;
        match &self.state {
            S::Booking => vec![Effect::Ledger(self.booking_group())],
            // Asked after, never sent again (see `TopUp::resume`).
            S::Refunding { .. } => vec![self.inquiry()],
            S::Settling { settled } => vec![Effect::Ledger(self.success_group(settled))],
            S::Reversing { .. } => vec![Effect::Ledger(self.reversal_group())],
            // Booked and AwaitingChannel wait for routing (`awaiting_route`), not an effect.
            _ => Vec::new(),
        }
    }

    /// The one transition function; `now_ms` dates a wait for the channel and decides
    /// whether its next send is due.
    pub fn apply_at(
        &self,
        event: &Event,
        now_ms: u64,
    ) -> Result<Transition<CardRefund>, IllegalTransition> {
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
        // The same request every time: the channel never saw a refused send.
        let send = |waited: Option<ChannelWait>| {
            next(
                S::Refunding { waited },
                vec![Effect::Channel {
                    channel: Some(self.channel.clone()),
                    request: self.refund_request(),
                }],
            )
        };
        let settle = |settled: &Settled| {
            next(
                S::Settling { settled: settled.clone() },
                vec![Effect::Ledger(self.success_group(settled))],
            )
        };
        Ok(match (&self.state, event) {
            (S::Created, Event::Submit) => {
                next(S::Booking, vec![Effect::Ledger(self.booking_group())])
            }
            (S::Booking, Event::LedgerPosted) => next(S::Booked, Vec::new()),
            (S::Booking, Event::LedgerRejected { code }) => {
                next(S::Failed { reason: code.clone() }, Vec::new())
            }
            (S::Booked, Event::Route { channel }) if *channel == self.channel => send(None),
            (
                S::AwaitingChannel { since_ms, attempts, next_attempt_at_ms, .. },
                Event::Route { channel },
            ) if *channel == self.channel => {
                if now_ms < *next_attempt_at_ms {
                    // Not due: another driver has just sent it and been refused again.
                    stay()
                } else {
                    send(Some(ChannelWait { since_ms: *since_ms, attempts: *attempts }))
                }
            }
            // A routing retried by a driver that lost the race: the send is out already.
            (S::Refunding { .. }, Event::Route { channel }) if *channel == self.channel => stay(),
            (S::Booked, Event::Abandon { reason }) => reverse(reason.clone()),
            // No channel to send to now (none configured on this node): the money is still
            // owed, so this counts as one more refused send.
            (S::AwaitingChannel { since_ms, attempts, .. }, Event::Abandon { reason }) => {
                let waited = ChannelWait { since_ms: *since_ms, attempts: *attempts };
                next(self.refused(Some(waited), now_ms, reason.clone()), Vec::new())
            }
            (S::Refunding { waited }, Event::ChannelAnswered { channel, outcome })
                if *channel == self.channel =>
            {
                match outcome {
                    Outcome::Succeeded(settled) => settle(settled),
                    // The channel did nothing now; a refund has nowhere else to go and the
                    // money is owed: keep it in flight and send again later.
                    Outcome::Failed { reason, detail } if reason.retry_elsewhere() => next(
                        self.refused(*waited, now_ms, format!("{}: {detail}", reason.as_str())),
                        Vec::new(),
                    ),
                    // The bank's own answer (declined, invalid card, never received): give the
                    // money back to the merchant.
                    Outcome::Failed { reason, detail } => {
                        reverse(format!("{}: {detail}", reason.as_str()))
                    }
                    Outcome::Processing | Outcome::Unknown { .. } => {
                        Transition { state: self.clone(), effects: vec![self.inquiry()] }
                    }
                }
            }
            // News while waiting. The last send was refused, so the bank should know nothing
            // of the request; if it says otherwise, its word about the money wins.
            (
                S::AwaitingChannel { since_ms, attempts, .. },
                Event::ChannelAnswered { channel, outcome },
            ) if *channel == self.channel => match outcome {
                Outcome::Succeeded(settled) => settle(settled),
                // A repeat of the refusal that put it here, or "no record of it": nothing new.
                Outcome::Failed { reason, .. }
                    if reason.retry_elsewhere() || *reason == FailureReason::NeverReceived =>
                {
                    stay()
                }
                Outcome::Failed { reason, detail } => {
                    reverse(format!("{}: {detail}", reason.as_str()))
                }
                Outcome::Processing | Outcome::Unknown { .. } => next(
                    S::Refunding {
                        waited: Some(ChannelWait { since_ms: *since_ms, attempts: *attempts }),
                    },
                    vec![self.inquiry()],
                ),
            },
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

#[cfg(test)]
mod tests {
    use channels::FailureReason;

    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn channel() -> ChannelId {
        ChannelId::new("bank_a").unwrap()
    }

    fn booked() -> CardRefund {
        let amount = |minor| Amount::new(minor).unwrap();
        CardRefund {
            source: Default::default(),
            order: OrderId::new("cr_1").unwrap(),
            payment: OrderId::new("cp_1").unwrap(),
            customer: "t/alice".into(),
            merchant: "t/shop".into(),
            card: "6222".into(),
            asset: AssetCode::new("CNY").unwrap(),
            amount: amount(3_000),
            fee_returned: amount(18),
            channel: channel(),
            debit_request_id: RequestId::new("cp_1:debit").unwrap(),
            from_settled: false,
            state: CardRefundState::Booked,
        }
    }

    #[test]
    fn a_suspended_top_up_goes_back_from_suspense_and_a_failure_puts_it_back_there() {
        let returning = CardRefund {
            source: RefundSource::Suspense,
            merchant: String::new(),
            fee_returned: Amount::ZERO,
            ..booked()
        };
        let asset = returning.asset;
        let suspense = internal_account_id(&Internal::Suspense, asset);
        let in_flight = internal_account_id(&Internal::WithdrawalsInFlight, asset);
        let moves = |group: Vec<NewTransfer>| -> Vec<(AccountId, AccountId, u64)> {
            group
                .into_iter()
                .map(|transfer| match transfer.action {
                    TransferAction::Post(m) => {
                        (m.debit_account_id, m.credit_account_id, m.amount.minor())
                    }
                    other => panic!("a posting: {other:?}"),
                })
                .collect()
        };
        assert_eq!(moves(returning.booking_group()), [(suspense, in_flight, 3_000)]);
        assert_eq!(moves(returning.reversal_group()), [(in_flight, suspense, 3_000)]);
        // The stored form of a merchant's refund is as before: no `source` field.
        let stored = serde_json::to_value(booked()).unwrap();
        assert!(stored.get("source").is_none(), "{stored}");
        let stored = serde_json::to_value(&returning).unwrap();
        assert_eq!(stored["source"], serde_json::json!("suspense"));
    }

    fn answered(outcome: Outcome) -> Event {
        Event::ChannelAnswered { channel: channel(), outcome }
    }

    fn refused() -> Event {
        answered(Outcome::failed(FailureReason::ChannelUnavailable, "503 channel_down"))
    }

    fn not_attempted() -> Event {
        answered(Outcome::failed(FailureReason::NotAttempted, "circuit open"))
    }

    fn declined() -> Event {
        answered(Outcome::failed(FailureReason::Declined, "by the issuer"))
    }

    fn settled() -> Settled {
        Settled { channel_ref: "ref-1".into(), fee: Amount::new(2).unwrap() }
    }

    fn route() -> Event {
        Event::Route { channel: channel() }
    }

    /// Applies `event` at `now_ms`, which must be legal.
    fn step(refund: &CardRefund, event: &Event, now_ms: u64) -> Transition<CardRefund> {
        refund.apply_at(event, now_ms).unwrap_or_else(|e| panic!("{e} ({refund:?})"))
    }

    fn send(refund: &CardRefund) -> Effect {
        Effect::Channel { channel: Some(channel()), request: refund.refund_request() }
    }

    /// A refund sent once and refused at `NOW_MS`.
    fn waiting() -> CardRefund {
        let refunding = step(&booked(), &route(), NOW_MS).state;
        step(&refunding, &refused(), NOW_MS).state
    }

    #[test]
    fn the_backoff_doubles_from_one_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(channel_retry_delay_ms).collect();
        assert_eq!(
            delays,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
                300_000
            ]
        );
        assert_eq!(channel_retry_delay_ms(0), 1_000);
        assert_eq!(channel_retry_delay_ms(u32::MAX), CHANNEL_RETRY_DELAY_MAX_MS);
    }

    #[test]
    fn a_refusal_waits_for_the_channel_with_the_money_held() {
        let refunding = step(&booked(), &route(), NOW_MS);
        assert_eq!(refunding.state.state, CardRefundState::Refunding { waited: None });
        assert_eq!(refunding.effects, [send(&booked())]);
        for refusal in [refused(), not_attempted()] {
            let waiting = step(&refunding.state, &refusal, NOW_MS);
            let Event::ChannelAnswered { outcome: Outcome::Failed { reason, detail }, .. } =
                &refusal
            else {
                unreachable!()
            };
            assert_eq!(
                waiting.state.state,
                CardRefundState::AwaitingChannel {
                    since_ms: NOW_MS,
                    attempts: 1,
                    next_attempt_at_ms: NOW_MS + 1_000,
                    reason: format!("{}: {detail}", reason.as_str()),
                }
            );
            // No ledger effect: the booking stays (money in flight), nothing is reversed.
            assert!(waiting.effects.is_empty(), "{:?}", waiting.effects);
            assert_eq!(waiting.state.state.name(), "awaiting_channel");
            assert!(!waiting.state.state.is_final());
            assert!(waiting.state.resume().is_empty(), "nothing to redo but the send");
        }
    }

    #[test]
    fn a_waiting_refund_is_sent_again_when_due_with_the_same_request_and_succeeds() {
        let waiting = waiting();
        assert_eq!(waiting.awaiting_route(NOW_MS + 999), None, "not due yet");
        assert_eq!(waiting.awaiting_route(NOW_MS + 1_000), Some(waiting.refund_request()));
        assert_eq!(waiting.next_attempt_at_ms(), Some(NOW_MS + 1_000));
        assert_eq!(waiting.awaiting_channel_since_ms(), Some(NOW_MS));

        // Refused again: the wait keeps its start, counts the send, and doubles.
        let resent = step(&waiting, &route(), NOW_MS + 1_000);
        assert_eq!(resent.effects, [send(&waiting)]);
        let wait = ChannelWait { since_ms: NOW_MS, attempts: 1 };
        assert_eq!(resent.state.state, CardRefundState::Refunding { waited: Some(wait) });
        let again = step(&resent.state, &not_attempted(), NOW_MS + 1_005).state;
        assert_eq!(
            again.state,
            CardRefundState::AwaitingChannel {
                since_ms: NOW_MS,
                attempts: 2,
                next_attempt_at_ms: NOW_MS + 1_005 + 2_000,
                reason: "not_attempted: circuit open".into(),
            }
        );

        // The channel is back: the same request id goes out, and the success is booked.
        let third = step(&again, &route(), NOW_MS + 3_005);
        let [Effect::Channel { request, .. }] = third.effects.as_slice() else {
            panic!("{:?}", third.effects)
        };
        assert_eq!(request.request_id.as_str(), "cr_1:return");
        assert_eq!(request, &booked().refund_request());
        let settling = step(&third.state, &answered(Outcome::Succeeded(settled())), NOW_MS + 3_100);
        assert_eq!(settling.state.state, CardRefundState::Settling { settled: settled() });
        assert_eq!(settling.effects, [Effect::Ledger(booked().success_group(&settled()))]);
        let done = step(&settling.state, &Event::LedgerPosted, NOW_MS + 3_200);
        assert_eq!(done.state.state, CardRefundState::Succeeded { settled: settled() });
        assert!(done.effects.is_empty());
    }

    #[test]
    fn a_decline_still_fails_the_refund_and_reverses_the_booking() {
        let reversal = Effect::Ledger(booked().reversal_group());
        // On the first send, and on a send after a wait.
        let first = step(&step(&booked(), &route(), NOW_MS).state, &declined(), NOW_MS);
        let resent = step(&waiting(), &route(), NOW_MS + 1_000).state;
        let later = step(&resent, &declined(), NOW_MS + 1_001);
        for reversing in [first, later] {
            assert_eq!(
                reversing.state.state,
                CardRefundState::Reversing { reason: "declined: by the issuer".into() }
            );
            assert_eq!(reversing.effects, std::slice::from_ref(&reversal));
            let failed = step(&reversing.state, &Event::LedgerPosted, NOW_MS + 2_000).state;
            assert_eq!(failed.state.name(), "failed");
        }
        // A bank's decline of the request while it waits is its word too.
        let news = step(&waiting(), &declined(), NOW_MS + 10);
        assert_eq!(news.effects, [reversal]);
    }

    #[test]
    fn duplicate_and_stale_news_change_nothing() {
        let waiting = waiting();
        let unchanged = |event: &Event, now_ms: u64| {
            let transition = step(&waiting, event, now_ms);
            assert_eq!(transition.state, waiting, "{event:?} at {now_ms}");
            assert!(transition.effects.is_empty(), "{event:?}: {:?}", transition.effects);
        };
        // A repeat of the refusal, an inquiry's "never received", a resubmission, and a
        // routing before the next send is due (another driver has just been refused).
        unchanged(&refused(), NOW_MS + 5_000);
        unchanged(&not_attempted(), NOW_MS + 5_000);
        unchanged(&answered(Outcome::failed(FailureReason::NeverReceived, "no record")), NOW_MS);
        unchanged(&Event::Submit, NOW_MS);
        unchanged(&route(), NOW_MS + 999);
        // Another channel is never used.
        let elsewhere = Event::Route { channel: ChannelId::new("bank_b").unwrap() };
        assert!(waiting.apply_at(&elsewhere, NOW_MS + 5_000).is_err());
        // A routing retried after the send went out.
        let refunding = step(&waiting, &route(), NOW_MS + 1_000).state;
        let retried = step(&refunding, &route(), NOW_MS + 1_000);
        assert_eq!((retried.state, retried.effects), (refunding.clone(), Vec::new()));
        // A refusal or a duplicate success after the refund succeeded.
        let settling =
            step(&refunding, &answered(Outcome::Succeeded(settled())), NOW_MS + 1_001).state;
        let done = step(&settling, &Event::LedgerPosted, NOW_MS + 1_002).state;
        for late in [refused(), answered(Outcome::Succeeded(settled()))] {
            let transition = step(&done, &late, NOW_MS + 9_000);
            assert_eq!((transition.state, transition.effects), (done.clone(), Vec::new()));
        }
    }

    #[test]
    fn the_bank_saying_it_has_the_request_while_it_waits_is_believed() {
        let waiting = waiting();
        let paid = step(&waiting, &answered(Outcome::Succeeded(settled())), NOW_MS + 10);
        assert_eq!(paid.state.state, CardRefundState::Settling { settled: settled() });
        let processing = step(&waiting, &answered(Outcome::Processing), NOW_MS + 10);
        let wait = ChannelWait { since_ms: NOW_MS, attempts: 1 };
        assert_eq!(processing.state.state, CardRefundState::Refunding { waited: Some(wait) });
        assert_eq!(processing.effects, [waiting.inquiry()]);
    }

    #[test]
    fn no_channel_configured_keeps_a_waiting_refund_waiting() {
        let abandon = Event::Abandon { reason: "no channels are configured".into() };
        let later = step(&waiting(), &abandon, NOW_MS + 1_000).state;
        assert_eq!(
            later.state,
            CardRefundState::AwaitingChannel {
                since_ms: NOW_MS,
                attempts: 2,
                next_attempt_at_ms: NOW_MS + 3_000,
                reason: "no channels are configured".into(),
            }
        );
    }

    #[test]
    fn the_stored_form_of_a_refunding_refund_is_unchanged() {
        let refunding = step(&booked(), &route(), NOW_MS).state;
        let json = serde_json::to_value(&refunding.state).unwrap();
        assert_eq!(json, serde_json::json!({"state": "refunding"}));
        let read: CardRefundState = serde_json::from_value(json).unwrap();
        assert_eq!(read, refunding.state);
        let waiting = serde_json::to_value(&waiting().state).unwrap();
        assert_eq!(
            waiting,
            serde_json::json!({"state": "awaiting_channel", "since_ms": NOW_MS, "attempts": 1,
                "next_attempt_at_ms": NOW_MS + 1_000, "reason": "channel_unavailable: 503 channel_down"})
        );
    }
}
