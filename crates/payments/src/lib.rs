//! The payment core (支付核心): each wallet product is an explicit state machine. A
//! transition takes the order's state and an event (the customer asked, the channel
//! answered, the ledger posted) and returns the next state and the effects to carry out:
//! ledger transfers and channel calls, every one with an id derived from the order and the
//! step, so that carrying an effect out twice has no second effect anywhere.
//!
//! Pure: no I/O, no clock, no randomness. The executor that stores orders and performs
//! effects durably (an outbox) is a separate layer; this crate decides *what* happens.

pub mod booked;
pub mod booking;
pub mod card;
pub mod chart;
pub mod ids;
pub mod order;
pub mod reconciled;
pub mod sheet;
pub mod tombstone;
pub mod topup;
pub mod withdrawal;

pub use ids::{OrderId, Step};
pub use order::{Order, OrderKind};

use channels::{ChannelId, ChannelRequest, Operation, RequestId};
use ledger::NewTransfer;

/// Something a transition asks the executor to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Submit these transfers to the ledger as one linked group (all or nothing).
    Ledger(Vec<NewTransfer>),
    /// Send this request to a channel (routed by the gateway, or to `channel` when set).
    Channel { channel: Option<ChannelId>, request: ChannelRequest },
    /// The channel's answer is not final: start status inquiry on it.
    Inquire { channel: ChannelId, operation: Operation, request_id: RequestId },
}

/// What happened to an order: the one event type of every flow. A flow ignores (as a
/// no-op) or refuses (as illegal) the events that mean nothing to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start the order (place a hold, book a payment). Repeating it is a no-op.
    Submit,
    /// The executor chose `channel` (the gateway's best, not among the order's refusals).
    Route { channel: ChannelId },
    /// The channel (or status inquiry, or a callback) reported on the order's request.
    ChannelAnswered { channel: ChannelId, outcome: channels::Outcome },
    /// The ledger booked the group the current state asked for (or had booked it before).
    LedgerPosted,
    /// The ledger rejected it, with its stable code.
    LedgerRejected { code: String },
    /// No channel is left to try (all refused, or none accepts the request).
    Abandon { reason: String },
    /// The merchant captures `amount` of an authorization (at most what was authorized).
    Capture { amount: money::Amount },
    /// The merchant cancels an authorization.
    Cancel,
    /// The order's deadline passed (an authorization's expiry): inspection says so.
    Deadline,
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Submit => "submit",
            Event::Route { .. } => "route",
            Event::ChannelAnswered { .. } => "channel_answered",
            Event::LedgerPosted => "ledger_posted",
            Event::LedgerRejected { .. } => "ledger_rejected",
            Event::Abandon { .. } => "abandon",
            Event::Capture { .. } => "capture",
            Event::Cancel => "cancel",
            Event::Deadline => "deadline",
        }
    }
}

/// An event that the order's current state does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{order_kind} in state {state} cannot take {event}")]
pub struct IllegalTransition {
    pub order_kind: &'static str,
    pub state: &'static str,
    pub event: &'static str,
}

/// The result of a legal transition. `effects` is empty for an idempotent no-op (a duplicate
/// callback, a retried step that finds the order already where it would go).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<S> {
    pub state: S,
    pub effects: Vec<Effect>,
}
