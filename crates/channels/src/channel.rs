//! The port every channel adapter implements: the simulator's HTTP protocol today, a bank's
//! or a network's tomorrow.

use std::future::Future;
use std::pin::Pin;

use money::AssetCode;

use crate::model::{ChannelId, ChannelRequest, Inquiry, Operation, Outcome, RequestId};

// A channel's statement (对账单) is the platform's one statement format, from `recon`:
// adapters turn whatever a channel publishes into it, so reconciliation reads one shape.
pub use recon::statement::{DetailLine, LineStatus, Statement, StatementError, TxType};

/// A boxed future, so that channels of different types sit behind one `dyn Channel`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
    /// The statement file was refused whole (bad row, summary or checksum): never half-loaded.
    #[error("statement refused: {0}")]
    Statement(#[from] StatementError),
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

    /// The statement of one business day (`YYYY-MM-DD`, days turning at midnight in the
    /// channel's own time zone), fetched, checked against its published digest and parsed
    /// whole. `currencies` are the assets the channel may state; any other refuses the file.
    fn statement<'a>(
        &'a self,
        day: &'a str,
        currencies: &'a [AssetCode],
    ) -> BoxFuture<'a, Result<Statement, ChannelError>>;
}
