//! What an order that ended with its money moved says the ledger holds for it: the transfers
//! its final state was booked with, built by the same functions that booked them. The
//! cross-check `succeeded_orders_booked_in_full` (reconciler) compares them with the journal,
//! so a posting lost, changed or added under an order's id is found.
//!
//! One arm per product and state, next to nothing else: a new final state with money in it is
//! listed here or the build fails.

use std::collections::BTreeMap;

use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::AccountId;

use crate::booking::{BookingState, PaymentState};
use crate::card::CardRefundState;
use crate::topup::TopUpState;
use crate::withdrawal::WithdrawalState;
use crate::Order;

impl Order {
    /// The transfers a final order that moved money was booked with, in booking order; `None`
    /// for an order still in flight or one that ended without moving money (failed,
    /// canceled, expired, reversed, disputed — whose postings must net to nothing).
    pub fn booked_transfers(&self) -> Option<Vec<NewTransfer>> {
        match self {
            Order::Topup(flow) | Order::CardPayment(flow) => match &flow.state {
                TopUpState::Succeeded { channel, settled } => {
                    Some(flow.credit_group(channel, settled))
                }
                TopUpState::Suspended { channel, settled, .. } => {
                    Some(flow.suspense_group(channel, settled))
                }
                TopUpState::Created
                | TopUpState::Debiting { .. }
                | TopUpState::Crediting { .. }
                | TopUpState::Suspending { .. }
                | TopUpState::Failed { .. } => None,
            },
            Order::Withdrawal(flow) => match &flow.state {
                WithdrawalState::Succeeded { channel, settled } => {
                    let mut booked = vec![flow.hold_transfer()];
                    booked.extend(flow.success_group(channel, settled));
                    Some(booked)
                }
                WithdrawalState::Created
                | WithdrawalState::Holding
                | WithdrawalState::Held
                | WithdrawalState::Paying { .. }
                | WithdrawalState::Posting { .. }
                | WithdrawalState::Voiding { .. }
                | WithdrawalState::Failed { .. }
                | WithdrawalState::Disputed { .. } => None,
            },
            Order::Payment(payment) => match &payment.state {
                PaymentState::Succeeded => Some(payment.booked_group()),
                PaymentState::Created
                | PaymentState::Posting
                | PaymentState::Authorizing
                | PaymentState::Authorized { .. }
                | PaymentState::Capturing { .. }
                | PaymentState::Voiding { .. }
                | PaymentState::Canceled
                | PaymentState::Expired
                | PaymentState::Failed { .. } => None,
            },
            Order::CardRefund(refund) => match &refund.state {
                CardRefundState::Succeeded { settled } => {
                    let mut booked = refund.booking_group();
                    booked.extend(refund.success_group(settled));
                    Some(booked)
                }
                CardRefundState::Created
                | CardRefundState::Booking
                | CardRefundState::Booked
                | CardRefundState::AwaitingChannel { .. }
                | CardRefundState::Refunding { .. }
                | CardRefundState::Settling { .. }
                | CardRefundState::Reversing { .. }
                | CardRefundState::Failed { .. }
                | CardRefundState::Disputed { .. } => None,
            },
            Order::Refund(refund) => booked(&refund.state, || refund.group()),
            Order::WalletTransfer(transfer) => booked(&transfer.state, || transfer.group()),
            Order::Settlement(settlement) => booked(&settlement.state, || settlement.group()),
            Order::PointsGrant(grant) => booked(&grant.state, || grant.group()),
        }
    }
}

fn booked(
    state: &BookingState,
    group: impl FnOnce() -> Vec<NewTransfer>,
) -> Option<Vec<NewTransfer>> {
    match state {
        BookingState::Succeeded => Some(group()),
        BookingState::Created | BookingState::Posting | BookingState::Failed { .. } => None,
    }
}

/// What `transfers` post, net per account (credits less debits), as the journal would show
/// it: a hold moves nothing until posted, a post of a hold moves the held accounts (the whole
/// hold, or the amount named), a void moves nothing. A post of a hold not among `transfers`
/// is left out (the caller compares like with like).
pub fn net_posted(transfers: &[NewTransfer]) -> BTreeMap<AccountId, i128> {
    let holds: BTreeMap<_, &Movement> = transfers
        .iter()
        .filter_map(|t| match &t.action {
            TransferAction::Pending { movement, .. } => Some((t.id, movement)),
            _ => None,
        })
        .collect();
    let mut net: BTreeMap<AccountId, i128> = BTreeMap::new();
    let mut post = |movement: &Movement, minor: u64| {
        *net.entry(movement.debit_account_id).or_default() -= i128::from(minor);
        *net.entry(movement.credit_account_id).or_default() += i128::from(minor);
    };
    for transfer in transfers {
        match &transfer.action {
            TransferAction::Post(movement) => post(movement, movement.amount.minor()),
            TransferAction::PostPending { pending_id, amount } => {
                if let Some(hold) = holds.get(pending_id) {
                    post(hold, amount.unwrap_or(hold.amount).minor());
                }
            }
            TransferAction::Pending { .. } | TransferAction::VoidPending { .. } => {}
        }
    }
    net.retain(|_, minor| *minor != 0);
    net
}

#[cfg(test)]
mod tests {
    use channels::{ChannelId, Outcome, Settled};
    use money::{Amount, AssetCode};

    use super::*;
    use crate::booking::{BookingState, Payment, PointsGrant, Refund, Settlement, WalletTransfer};
    use crate::card::CardRefund;
    use crate::{Effect, Event, OrderId};

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    fn amount(minor: u64) -> Amount {
        Amount::new(minor).unwrap()
    }

    fn bank() -> ChannelId {
        ChannelId::new("bank_a").unwrap()
    }

    /// Drives `order` with `events`, answering every ledger group with success and every
    /// channel request with a settled success; returns the final order and the transfers
    /// booked on the way, in order.
    fn drive(mut order: Order, events: &[Event]) -> (Order, Vec<NewTransfer>) {
        let mut queue: std::collections::VecDeque<Event> = events.iter().cloned().collect();
        let mut booked = Vec::new();
        while let Some(event) = queue.pop_front() {
            let transition = order.apply(&event).unwrap();
            order = transition.state;
            for effect in transition.effects {
                match effect {
                    Effect::Ledger(group) => {
                        booked.extend(group);
                        queue.push_front(Event::LedgerPosted);
                    }
                    Effect::Channel { channel, .. } => {
                        let settled = Settled { channel_ref: "ref-9".into(), fee: amount(3) };
                        queue.push_front(Event::ChannelAnswered {
                            channel: channel.unwrap(),
                            outcome: Outcome::Succeeded(settled),
                        });
                    }
                    Effect::Inquire { .. } => {}
                }
            }
        }
        (order, booked)
    }

    fn says_what_it_booked(order: Order, events: &[Event]) {
        assert_eq!(order.booked_transfers(), None, "not yet final");
        let (order, booked) = drive(order, events);
        assert_eq!(order.status(), "succeeded", "{order:?}");
        assert_eq!(order.booked_transfers(), Some(booked.clone()), "{order:?}");
        assert!(!net_posted(&booked).is_empty());
    }

    #[test]
    fn a_succeeded_order_says_exactly_what_it_was_booked_with() {
        let id = |raw: &str| OrderId::new(raw).unwrap();
        let payment =
            Payment::new(id("pay_1"), "alice".into(), "shop".into(), cny(), amount(1_000), 100);
        says_what_it_booked(Order::Payment(payment.clone()), &[Event::Submit]);
        // An authorisation captured in part: the hold, then the capture of what was taken.
        let authorized = payment.with_authorization(600, 100).unwrap();
        says_what_it_booked(
            Order::Payment(authorized),
            &[Event::Submit, Event::Capture { amount: amount(400) }],
        );
        let refund = Refund {
            order: id("rf_1"),
            payment: id("pay_1"),
            customer: "alice".into(),
            merchant: "shop".into(),
            asset: cny(),
            amount: amount(300),
            fee_returned: amount(3),
            points: None,
            fx: None,
            from_settled: false,
            state: BookingState::Created,
        };
        says_what_it_booked(Order::Refund(refund), &[Event::Submit]);
        let transfer = WalletTransfer {
            order: id("wt_1"),
            from: "alice".into(),
            to: "bob".into(),
            asset: cny(),
            amount: amount(5),
            state: BookingState::Created,
        };
        says_what_it_booked(Order::WalletTransfer(transfer), &[Event::Submit]);
        let settlement = Settlement {
            order: id("st_1"),
            merchant: "shop".into(),
            asset: cny(),
            amount: amount(990),
            cutoff_ms: 1,
            settle_after_days: 1,
            state: BookingState::Created,
        };
        says_what_it_booked(Order::Settlement(settlement), &[Event::Submit]);
        let grant = PointsGrant {
            order: id("pg_1"),
            customer: "alice".into(),
            asset: AssetCode::new("PTS").unwrap(),
            amount: amount(50),
            state: BookingState::Created,
        };
        says_what_it_booked(Order::PointsGrant(grant), &[Event::Submit]);
        let card_refund = CardRefund {
            source: Default::default(),
            order: id("crf_1"),
            payment: id("cp_1"),
            customer: "alice".into(),
            merchant: "shop".into(),
            card: "card-1".into(),
            asset: cny(),
            amount: amount(200),
            fee_returned: amount(2),
            channel: bank(),
            debit_request_id: channels::RequestId::new("cp_1:debit").unwrap(),
            from_settled: false,
            state: crate::card::CardRefundState::Created,
        };
        says_what_it_booked(
            Order::CardRefund(card_refund),
            &[Event::Submit, Event::Route { channel: bank() }],
        );
    }

    #[test]
    fn a_hold_moves_nothing_until_posted_and_then_what_was_taken() {
        let id = OrderId::new("pay_2").unwrap();
        let authorized = Payment::new(id, "alice".into(), "shop".into(), cny(), amount(1_000), 0)
            .with_authorization(600, 0)
            .unwrap();
        let (_, booked) = drive(
            Order::Payment(authorized),
            &[Event::Submit, Event::Capture { amount: amount(400) }],
        );
        let net = net_posted(&booked);
        assert_eq!(net.values().copied().collect::<Vec<_>>().iter().sum::<i128>(), 0);
        assert_eq!(net.values().filter(|v| **v == 400).count(), 1, "{net:?}");
        assert_eq!(net_posted(&booked[..1]), BTreeMap::new(), "the hold alone moves nothing");
    }
}
