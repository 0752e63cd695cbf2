//! The channel gateway (渠道网关): how money enters and leaves through banks and payment
//! networks. The payment core calls [`Gateway::execute`] with a [`ChannelRequest`] that
//! carries its own request id; the gateway picks a channel by rules and live health
//! ([`router`]), guards each channel with a circuit breaker and limits ([`breaker`],
//! [`limits`]), and returns a typed [`Outcome`].
//!
//! The expensive case is the unknown outcome: a timeout after the bank may have moved the
//! money. It is never retried on another channel and never treated as a failure; it goes to
//! status inquiry ([`inquiry`], 调单), which asks the channel until the result is final.
//!
//! Nothing here knows ledgers or orders: the gateway moves requests and reports outcomes.

pub mod banksim;
pub mod breaker;
pub mod channel;
pub mod gateway;
pub mod health;
pub mod inquiry;
pub mod limits;
pub mod model;
pub mod router;
pub mod wait;

pub use channel::{BoxFuture, CallbackReport, Channel, ChannelError, StatementFile};
pub use gateway::{Gateway, GatewayConfig, Routed};
pub use model::{ChannelId, ChannelRequest, FailureReason, Operation, Outcome, RequestId, Settled};
