//! What an order says it did at a channel, in reconciliation's terms (`recon::OurRecord`):
//! the record a channel's statement is matched against. One function per product, next to
//! the states it reads, so a new state is classified here or the build fails.
//!
//! `Succeeded` means more than "the bank said yes": it means **our ledger booked the
//! channel's movement** (clearing moved). So a withdrawal or card refund that the bank paid
//! after we had released the money (`disputed`) is `Failed` here: our books do not hold it, and
//! reconciliation must flag the bank's line (`missing_internal`) for an operator.

use channels::{ChannelId, Settled};
use money::{Amount, AssetCode};
use recon::{OurRecord, OurStatus, TxType};

use crate::card::CardRefundState;
use crate::ids::{request_id_text, Step};
use crate::topup::{TopUp, TopUpState};
use crate::withdrawal::{Withdrawal, WithdrawalState};
use crate::{Order, OrderId, OrderKind};

/// The order kinds that send requests to channels: the only kinds with a [`ChannelLeg`].
pub const CHANNEL_KINDS: [OrderKind; 4] =
    [OrderKind::Topup, OrderKind::CardPayment, OrderKind::Withdrawal, OrderKind::CardRefund];

/// One channel request of an order and what our books say of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelActivity {
    pub channel: ChannelId,
    pub record: OurRecord,
}

/// What an order's state says of its channel request: the part of [`ChannelActivity`] that
/// the state alone decides. The order store keeps it in columns beside the order, so that
/// reconciliation reads a channel's day without decoding a million orders; the rest (the
/// request id, type, amount and currency) follows from the order's id, kind and columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelLeg {
    pub channel: ChannelId,
    pub status: OurStatus,
    /// The channel's answer, once our books hold it.
    pub settled: Option<Settled>,
}

impl ChannelLeg {
    /// The reconciliation record of this leg of order `order` of `kind`; `None` for a kind
    /// that sends nothing to a channel.
    pub fn record(
        &self,
        order: &OrderId,
        kind: OrderKind,
        amount: Amount,
        currency: AssetCode,
        business_day: i64,
    ) -> Option<OurRecord> {
        self.clone().into_record(order.clone(), kind, amount, currency, business_day)
    }

    /// [`ChannelLeg::record`], taking the leg and the id instead of copying them.
    pub fn into_record(
        self,
        order: OrderId,
        kind: OrderKind,
        amount: Amount,
        currency: AssetCode,
        business_day: i64,
    ) -> Option<OurRecord> {
        let (step, tx_type) = channel_step(kind)?;
        let (channel_ref, fee) = match self.settled {
            Some(settled) => (Some(settled.channel_ref), Some(settled.fee)),
            None => (None, None),
        };
        Some(OurRecord {
            request_id: request_id_text(&order, step),
            channel_ref,
            tx_type,
            amount,
            fee,
            currency,
            business_day,
            status: self.status,
            order_id: order.into_string(),
        })
    }
}

/// The request step and statement type of a kind that sends requests to channels.
fn channel_step(kind: OrderKind) -> Option<(Step, TxType)> {
    match kind {
        OrderKind::Topup | OrderKind::CardPayment => Some((Step::TopUpDebit, TxType::Debit)),
        OrderKind::Withdrawal => Some((Step::WithdrawalPayout, TxType::Payout)),
        OrderKind::CardRefund => Some((Step::RefundReturn, TxType::Refund)),
        OrderKind::Payment
        | OrderKind::Refund
        | OrderKind::WalletTransfer
        | OrderKind::Settlement
        | OrderKind::PointsGrant => None,
    }
}

impl Order {
    /// The order's request at a channel, if it sent one; `business_day` is the day (days
    /// since the epoch in the cut-over zone) the caller books it on.
    pub fn channel_activity(&self, business_day: i64) -> Option<ChannelActivity> {
        let leg = self.channel_leg()?;
        let record =
            leg.record(self.id(), self.kind(), self.amount(), self.asset(), business_day)?;
        Some(ChannelActivity { channel: leg.channel, record })
    }

    /// What the order's state says of its channel request, if it sent one.
    pub fn channel_leg(&self) -> Option<ChannelLeg> {
        let (channel, status, settled) = match self {
            Order::Topup(flow) | Order::CardPayment(flow) => topup(flow)?,
            Order::Withdrawal(flow) => withdrawal(flow)?,
            Order::CardRefund(refund) => {
                let (status, settled) = match &refund.state {
                    CardRefundState::Created
                    | CardRefundState::Booking
                    | CardRefundState::Booked
                    | CardRefundState::AwaitingChannel { .. } => return None,
                    CardRefundState::Refunding { .. } => (OurStatus::Unknown, None),
                    CardRefundState::Settling { settled }
                    | CardRefundState::Succeeded { settled } => {
                        (OurStatus::Succeeded, Some(settled))
                    }
                    CardRefundState::Reversing { .. }
                    | CardRefundState::Failed { .. }
                    | CardRefundState::Disputed { .. } => (OurStatus::Failed, None),
                };
                (&refund.channel, status, settled)
            }
            Order::Payment(_)
            | Order::Refund(_)
            | Order::WalletTransfer(_)
            | Order::Settlement(_)
            | Order::PointsGrant(_) => return None,
        };
        Some(ChannelLeg { channel: channel.clone(), status, settled: settled.cloned() })
    }
}

type Activity<'a> = (&'a ChannelId, OurStatus, Option<&'a Settled>);

fn topup(flow: &TopUp) -> Option<Activity<'_>> {
    let (channel, status, settled) = match &flow.state {
        TopUpState::Created => return None,
        TopUpState::Failed { channel: None, .. } => return None,
        TopUpState::Debiting { channel } => (channel, OurStatus::Unknown, None),
        TopUpState::Crediting { channel, settled }
        | TopUpState::Succeeded { channel, settled }
        | TopUpState::Suspending { channel, settled, .. }
        | TopUpState::Suspended { channel, settled, .. } => {
            (channel, OurStatus::Succeeded, Some(settled))
        }
        TopUpState::Failed { channel: Some(channel), .. } => (channel, OurStatus::Failed, None),
    };
    Some((channel, status, settled))
}

fn withdrawal(flow: &Withdrawal) -> Option<Activity<'_>> {
    let (channel, status, settled) = match &flow.state {
        WithdrawalState::Created | WithdrawalState::Holding | WithdrawalState::Held => return None,
        WithdrawalState::Voiding { channel: None, .. }
        | WithdrawalState::Failed { channel: None, .. } => return None,
        WithdrawalState::Paying { channel } => (channel, OurStatus::Unknown, None),
        WithdrawalState::Posting { channel, settled }
        | WithdrawalState::Succeeded { channel, settled } => {
            (channel, OurStatus::Succeeded, Some(settled))
        }
        // The bank paid after we released the money: our books do not hold the payout.
        WithdrawalState::Disputed { channel, .. } => (channel, OurStatus::Failed, None),
        WithdrawalState::Voiding { channel: Some(channel), .. }
        | WithdrawalState::Failed { channel: Some(channel), .. } => {
            (channel, OurStatus::Failed, None)
        }
    };
    Some((channel, status, settled))
}

#[cfg(test)]
mod tests {
    use money::{Amount, AssetCode};

    use super::*;
    use crate::OrderId;

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    fn bank() -> ChannelId {
        ChannelId::new("bank_a").unwrap()
    }

    fn settled() -> Settled {
        Settled { channel_ref: "ref_1".into(), fee: Amount::new(60).unwrap() }
    }

    fn topup_in(state: TopUpState) -> Order {
        let mut flow = TopUp::new(
            OrderId::new("top_1").unwrap(),
            "alice".into(),
            "card".into(),
            cny(),
            Amount::new(10_000).unwrap(),
        );
        flow.state = state;
        Order::Topup(flow)
    }

    #[test]
    fn a_topup_is_a_debit_booked_only_once_the_channel_took_the_money() {
        assert_eq!(topup_in(TopUpState::Created).channel_activity(1), None);
        let debiting = topup_in(TopUpState::Debiting { channel: bank() }).channel_activity(1);
        assert_eq!(debiting.map(|a| a.record.status), Some(OurStatus::Unknown));
        let done = topup_in(TopUpState::Succeeded { channel: bank(), settled: settled() })
            .channel_activity(7)
            .unwrap();
        assert_eq!(done.channel, bank());
        assert_eq!(done.record.request_id, "top_1:debit");
        assert_eq!(done.record.tx_type, TxType::Debit);
        assert_eq!(done.record.status, OurStatus::Succeeded);
        assert_eq!(done.record.channel_ref.as_deref(), Some("ref_1"));
        assert_eq!(done.record.fee, Amount::new(60));
        assert_eq!(done.record.business_day, 7);
        let failed = topup_in(TopUpState::Failed { channel: Some(bank()), reason: "x".into() });
        assert_eq!(failed.channel_activity(1).map(|a| a.record.status), Some(OurStatus::Failed));
        let never_sent = topup_in(TopUpState::Failed { channel: None, reason: "x".into() });
        assert_eq!(never_sent.channel_activity(1), None);
    }
}
