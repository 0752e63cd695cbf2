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

/// A statement file as a channel published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementFile {
    pub bytes: Vec<u8>,
    /// The hex SHA-256 the channel published beside the file.
    pub sha256_hex: Option<String>,
}

impl StatementFile {
    /// Checks the file against the digest published with it and parses it whole
    /// (`recon::statement`). A file without a digest is refused: a channel that publishes
    /// one always sends it, so its absence means the file is not the one the channel meant.
    pub fn read(&self, currencies: &[AssetCode]) -> Result<Statement, ChannelError> {
        let Some(sha256_hex) = self.sha256_hex.as_deref() else {
            return Err(ChannelError::Protocol("statement without its published digest".into()));
        };
        Ok(recon::statement::parse(&self.bytes, Some(sha256_hex), currencies)?)
    }

    /// A file and its digest (for channels that compute theirs, and tests).
    pub fn with_digest(bytes: Vec<u8>) -> StatementFile {
        use sha2::Digest;
        let sha256_hex = hex::encode(sha2::Sha256::digest(&bytes));
        StatementFile { bytes, sha256_hex: Some(sha256_hex) }
    }
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

    /// The statement file of one business day (`YYYY-MM-DD`, days turning at midnight in the
    /// channel's own time zone), as the channel published it, with the digest it published
    /// beside it. Reconciliation stores the file as it came and parses it whole.
    fn statement_file<'a>(
        &'a self,
        day: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>>;

    /// [`Channel::statement_file`], checked against its digest and parsed whole.
    /// `currencies` are the assets the channel may state; any other refuses the file.
    fn statement<'a>(
        &'a self,
        day: &'a str,
        currencies: &'a [AssetCode],
    ) -> BoxFuture<'a, Result<Statement, ChannelError>> {
        Box::pin(async move { self.statement_file(day).await?.read(currencies) })
    }
}
