//! The port every channel adapter implements: the simulator's HTTP protocol today, a bank's
//! or a network's tomorrow.

use std::future::Future;
use std::pin::Pin;

use crate::model::{ChannelId, ChannelRequest, Inquiry, Operation, Outcome, RequestId};

/// A boxed future, so that channels of different types sit behind one `dyn Channel`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One line of a channel's daily statement (对账单): an operation the channel considers done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementLine {
    pub request_id: RequestId,
    pub channel_ref: String,
    pub operation: Operation,
    pub account: String,
    pub asset: money::AssetCode,
    pub amount: money::Amount,
    pub fee: money::Amount,
    /// RFC 3339 UTC, as the channel wrote it.
    pub completed_at: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    #[error("channel unreachable: {0}")]
    Unreachable(String),
    #[error("channel answered something we cannot read: {0}")]
    Protocol(String),
    /// A callback whose signature or timestamp does not check out.
    #[error("callback not authentic: {0}")]
    Unauthentic(String),
}

/// A channel's asynchronous report, authenticated and read: which request, what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackReport {
    /// The channel's id for this event; duplicate deliveries repeat it.
    pub event_id: String,
    pub request_id: RequestId,
    pub outcome: Outcome,
}

/// A channel. Implementations must send `request.request_id` as the channel's
/// deduplication key on every call, so that a retry can never move money twice, and must
/// map every answer they cannot be sure of to [`Outcome::Unknown`].
pub trait Channel: Send + Sync + 'static {
    fn id(&self) -> &ChannelId;

    /// Asks the channel to do `request`. The gateway bounds the call with its own timeout.
    fn execute<'a>(&'a self, request: &'a ChannelRequest) -> BoxFuture<'a, Outcome>;

    /// Asks what became of an earlier request.
    fn inquire<'a>(
        &'a self,
        operation: Operation,
        request_id: &'a RequestId,
    ) -> BoxFuture<'a, Inquiry>;

    /// Authenticates and reads a callback the channel POSTed to us. `headers` are lower-case
    /// names with their values. Channels without callbacks keep the default.
    fn read_callback(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<CallbackReport, ChannelError> {
        let _ = (headers, body);
        Err(ChannelError::Protocol("this channel sends no callbacks".into()))
    }

    /// The statement of one UTC day (`YYYY-MM-DD`).
    fn statement<'a>(
        &'a self,
        day: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StatementLine>, ChannelError>>;
}
