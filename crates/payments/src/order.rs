//! Every product's order behind one type, so the executor stores, drives and resumes them
//! all the same way. The stored form is this enum as JSON (tagged by `kind`), versioned
//! ([`STORED_FORM_VERSION`], kept beside each stored body): a new product is a new variant and
//! old rows keep reading; a change to what an existing field means or is called is a new
//! version, read by [`read_stored`] (tests/stored_form.rs holds a body of every shape as each
//! version wrote it).

use channels::ChannelRequest;
use money::{Amount, AssetCode};

use crate::booking::{Payment, PointsGrant, Refund, Settlement, WalletTransfer};
use crate::card::CardRefund;
use crate::topup::TopUp;
use crate::withdrawal::Withdrawal;
use crate::{Effect, Event, IllegalTransition, OrderId, Transition};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    Topup,
    Withdrawal,
    Payment,
    Refund,
    WalletTransfer,
    Settlement,
    PointsGrant,
    CardPayment,
    CardRefund,
}

impl OrderKind {
    pub const ALL: [OrderKind; 9] = [
        OrderKind::Topup,
        OrderKind::Withdrawal,
        OrderKind::Payment,
        OrderKind::Refund,
        OrderKind::WalletTransfer,
        OrderKind::Settlement,
        OrderKind::PointsGrant,
        OrderKind::CardPayment,
        OrderKind::CardRefund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Topup => "topup",
            OrderKind::Withdrawal => "withdrawal",
            OrderKind::Payment => "payment",
            OrderKind::Refund => "refund",
            OrderKind::WalletTransfer => "wallet_transfer",
            OrderKind::Settlement => "settlement",
            OrderKind::PointsGrant => "points_grant",
            OrderKind::CardPayment => "card_payment",
            OrderKind::CardRefund => "card_refund",
        }
    }

    pub fn parse(raw: &str) -> Option<OrderKind> {
        OrderKind::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// The prefix of this kind's order ids (`pay_…`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            OrderKind::Topup => "top",
            OrderKind::Withdrawal => "wd",
            OrderKind::Payment => "pay",
            OrderKind::Refund => "rf",
            OrderKind::WalletTransfer => "wt",
            OrderKind::Settlement => "st",
            OrderKind::PointsGrant => "pg",
            OrderKind::CardPayment => "cp",
            OrderKind::CardRefund => "cr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Order {
    Topup(TopUp),
    Withdrawal(Withdrawal),
    Payment(Payment),
    Refund(Refund),
    WalletTransfer(WalletTransfer),
    Settlement(Settlement),
    PointsGrant(PointsGrant),
    /// A card payment: the top-up flow with its credit going to a merchant.
    CardPayment(TopUp),
    CardRefund(CardRefund),
}

macro_rules! each {
    ($order:expr, $flow:ident => $body:expr) => {
        match $order {
            Order::Topup($flow) => $body,
            Order::Withdrawal($flow) => $body,
            Order::Payment($flow) => $body,
            Order::Refund($flow) => $body,
            Order::WalletTransfer($flow) => $body,
            Order::Settlement($flow) => $body,
            Order::PointsGrant($flow) => $body,
            Order::CardPayment($flow) => $body,
            Order::CardRefund($flow) => $body,
        }
    };
}

impl Order {
    pub fn kind(&self) -> OrderKind {
        match self {
            Order::Topup(_) => OrderKind::Topup,
            Order::Withdrawal(_) => OrderKind::Withdrawal,
            Order::Payment(_) => OrderKind::Payment,
            Order::Refund(_) => OrderKind::Refund,
            Order::WalletTransfer(_) => OrderKind::WalletTransfer,
            Order::Settlement(_) => OrderKind::Settlement,
            Order::PointsGrant(_) => OrderKind::PointsGrant,
            Order::CardPayment(_) => OrderKind::CardPayment,
            Order::CardRefund(_) => OrderKind::CardRefund,
        }
    }

    pub fn id(&self) -> &OrderId {
        each!(self, flow => &flow.order)
    }

    pub fn asset(&self) -> AssetCode {
        each!(self, flow => flow.asset)
    }

    pub fn amount(&self) -> Amount {
        each!(self, flow => flow.amount)
    }

    /// The customer whose wallet the order touches (the payer of a wallet transfer); empty
    /// for a settlement or a merchant's payout, which touch only their merchant.
    pub fn customer(&self) -> &str {
        each!(self, flow => flow.customer())
    }

    pub fn merchant(&self) -> Option<&str> {
        match self {
            Order::Payment(payment) => Some(&payment.merchant),
            Order::Refund(refund) => Some(&refund.merchant),
            Order::Settlement(settlement) => Some(&settlement.merchant),
            Order::CardPayment(flow) => {
                flow.merchant.as_ref().map(|credit| credit.merchant.as_str())
            }
            Order::CardRefund(refund) => Some(&refund.merchant),
            Order::Withdrawal(payout)
                if payout.source == crate::withdrawal::PayoutSource::MerchantSettled =>
            {
                Some(&payout.customer)
            }
            _ => None,
        }
    }

    pub fn status(&self) -> &'static str {
        each!(self, flow => flow.state.name())
    }

    pub fn is_final(&self) -> bool {
        each!(self, flow => flow.state.is_final())
    }

    pub fn apply(&self, event: &Event) -> Result<Transition<Order>, IllegalTransition> {
        self.apply_at(event, 0)
    }

    /// [`Order::apply`] for a caller with a clock (an authorisation records its expiry).
    pub fn apply_at(
        &self,
        event: &Event,
        now_ms: u64,
    ) -> Result<Transition<Order>, IllegalTransition> {
        if let Order::Payment(flow) = self {
            return Ok(wrap(flow.apply_at(event, now_ms)?, Order::Payment));
        }
        Ok(match self {
            Order::Topup(flow) => wrap(flow.apply(event)?, Order::Topup),
            Order::Withdrawal(flow) => wrap(flow.apply(event)?, Order::Withdrawal),
            Order::Payment(flow) => wrap(flow.apply(event)?, Order::Payment),
            Order::Refund(flow) => wrap(flow.apply(event)?, Order::Refund),
            Order::WalletTransfer(flow) => wrap(flow.apply(event)?, Order::WalletTransfer),
            Order::Settlement(flow) => wrap(flow.apply(event)?, Order::Settlement),
            Order::PointsGrant(flow) => wrap(flow.apply(event)?, Order::PointsGrant),
            Order::CardPayment(flow) => wrap(flow.apply(event)?, Order::CardPayment),
            Order::CardRefund(flow) => wrap(flow.apply_at(event, now_ms)?, Order::CardRefund),
        })
    }

    /// The channel request that waits for a channel to be chosen at `now_ms`, and the
    /// channels that already refused it. A card refund waiting for its channel asks again
    /// only once its next send is due.
    pub fn awaiting_route(&self, now_ms: u64) -> Option<(ChannelRequest, &[channels::ChannelId])> {
        match self {
            Order::Topup(flow) => flow.awaiting_route().map(|r| (r, flow.refused_by.as_slice())),
            Order::Withdrawal(flow) => {
                flow.awaiting_route().map(|r| (r, flow.refused_by.as_slice()))
            }
            Order::CardPayment(flow) => {
                flow.awaiting_route().map(|r| (r, flow.refused_by.as_slice()))
            }
            Order::CardRefund(flow) => flow.awaiting_route(now_ms).map(|r| (r, &[][..])),
            _ => None,
        }
    }

    /// The one channel the order may use (a refund goes back the way its payment came).
    pub fn pinned_channel(&self) -> Option<&channels::ChannelId> {
        match self {
            Order::CardRefund(refund) => Some(&refund.channel),
            _ => None,
        }
    }

    /// Since when the order has waited for its channel to come back (a card refund whose
    /// channel refused), if it waits.
    pub fn awaiting_channel_since_ms(&self) -> Option<u64> {
        match self {
            Order::CardRefund(refund) => refund.awaiting_channel_since_ms(),
            _ => None,
        }
    }

    /// When the order's next send to its channel is due, if it waits for the channel.
    pub fn next_attempt_at_ms(&self) -> Option<u64> {
        match self {
            Order::CardRefund(refund) => refund.next_attempt_at_ms(),
            _ => None,
        }
    }

    /// Final, yet an operator must act: a top-up whose money sits in suspense because the
    /// wallet refused it (`suspended`: return it to the card), a withdrawal or card refund the
    /// bank paid after we had released the money (`disputed`: recover it). The order store
    /// lists them by these states' names (`NEEDS_OPERATOR`).
    pub fn needs_operator(&self) -> bool {
        use crate::card::CardRefundState;
        use crate::topup::TopUpState;
        use crate::withdrawal::WithdrawalState;
        match self {
            Order::Topup(flow) | Order::CardPayment(flow) => {
                matches!(flow.state, TopUpState::Suspended { .. })
            }
            Order::Withdrawal(flow) => matches!(flow.state, WithdrawalState::Disputed { .. }),
            Order::CardRefund(refund) => matches!(refund.state, CardRefundState::Disputed { .. }),
            Order::Payment(_)
            | Order::Refund(_)
            | Order::WalletTransfer(_)
            | Order::Settlement(_)
            | Order::PointsGrant(_) => false,
        }
    }

    /// When the order must be acted on by itself (an authorisation's expiry), if ever.
    pub fn deadline_ms(&self) -> Option<u64> {
        match self {
            Order::Payment(payment) => payment.deadline_ms(),
            _ => None,
        }
    }

    /// What the current state waits on, to carry out again (idempotently) after a crash.
    pub fn resume(&self) -> Vec<Effect> {
        each!(self, flow => flow.resume())
    }
}

trait HasCustomer {
    fn customer(&self) -> &str;
}

macro_rules! has_customer {
    ($($flow:ty),*) => {$(
        impl HasCustomer for $flow {
            fn customer(&self) -> &str {
                &self.customer
            }
        }
    )*};
}
has_customer!(TopUp, Payment, Refund, PointsGrant, CardRefund);

impl HasCustomer for Withdrawal {
    fn customer(&self) -> &str {
        match self.source {
            crate::withdrawal::PayoutSource::Wallet => &self.customer,
            crate::withdrawal::PayoutSource::MerchantSettled => "",
        }
    }
}

impl HasCustomer for WalletTransfer {
    fn customer(&self) -> &str {
        &self.from
    }
}

impl HasCustomer for Settlement {
    fn customer(&self) -> &str {
        ""
    }
}

fn wrap<F>(transition: Transition<F>, into: fn(F) -> Order) -> Transition<Order> {
    Transition { state: into(transition.state), effects: transition.effects }
}

/// The version of the stored form this release writes.
pub const STORED_FORM_VERSION: u32 = 1;

/// A stored body that this release cannot read as an order.
#[derive(Debug, thiserror::Error)]
pub enum StoredFormError {
    #[error("stored form {0} is newer than this release's ({STORED_FORM_VERSION})")]
    Newer(u32),
    #[error("no stored form {0}")]
    Unknown(u32),
    #[error("stored form {version}: {error}")]
    Json { version: u32, error: serde_json::Error },
}

/// An order stored in form `version`, as this release's [`Order`]: each older form is
/// upgraded here; a newer one (a newer release wrote it) is refused, never guessed at.
pub fn read_stored(version: u32, body: &str) -> Result<Order, StoredFormError> {
    match version {
        1 => serde_json::from_str(body).map_err(|error| StoredFormError::Json { version, error }),
        0 => Err(StoredFormError::Unknown(version)),
        newer => Err(StoredFormError::Newer(newer)),
    }
}

/// The body of `order` in this release's stored form ([`STORED_FORM_VERSION`]).
pub fn write_stored(order: &Order) -> Result<String, serde_json::Error> {
    serde_json::to_string(order)
}
