//! What an order says it did at a channel, in reconciliation's terms (`recon::OurRecord`):
//! the record a channel's statement is matched against. One function per product, next to
//! the states it reads, so a new state is classified here or the build fails.
//!
//! `Succeeded` means more than "the bank said yes": it means **our ledger booked the
//! channel's movement** (clearing moved). So a withdrawal or card refund that the bank paid
//! after we had released the money (`disputed`) is `Failed` here: our books do not hold it, and
//! reconciliation must flag the bank's line (`missing_internal`) for an operator.

use channels::{ChannelId, Settled};
use recon::{OurRecord, OurStatus, TxType};

use crate::card::CardRefundState;
use crate::ids::{request_id, Step};
use crate::topup::{TopUp, TopUpState};
use crate::withdrawal::{Withdrawal, WithdrawalState};
use crate::Order;

/// One channel request of an order and what our books say of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelActivity {
    pub channel: ChannelId,
    pub record: OurRecord,
}

impl Order {
    /// The order's request at a channel, if it sent one; `business_day` is the day (days
    /// since the epoch in the cut-over zone) the caller books it on.
    pub fn channel_activity(&self, business_day: i64) -> Option<ChannelActivity> {
        let (channel, step, tx_type, status, settled) = match self {
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
                (refund.channel.clone(), Step::RefundReturn, TxType::Refund, status, settled)
            }
            Order::Payment(_)
            | Order::Refund(_)
            | Order::WalletTransfer(_)
            | Order::Settlement(_)
            | Order::PointsGrant(_) => return None,
        };
        Some(ChannelActivity {
            channel,
            record: OurRecord {
                request_id: request_id(self.id(), step).to_string(),
                channel_ref: settled.map(|s| s.channel_ref.clone()),
                tx_type,
                amount: self.amount(),
                fee: settled.map(|s| s.fee),
                currency: self.asset(),
                business_day,
                status,
                order_id: self.id().to_string(),
            },
        })
    }
}

type Activity<'a> = (ChannelId, Step, TxType, OurStatus, Option<&'a Settled>);

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
    Some((channel.clone(), Step::TopUpDebit, TxType::Debit, status, settled))
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
    Some((channel.clone(), Step::WithdrawalPayout, TxType::Payout, status, settled))
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
