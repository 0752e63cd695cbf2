//! The gateway's vocabulary: channels, operations, our request ids, and typed outcomes.

use std::fmt;

use money::{Amount, AssetCode};
use serde::{Deserialize, Serialize};

/// Longest channel id.
pub const CHANNEL_ID_LEN_MAX: usize = 32;
/// Longest request id (ours, sent to the channel, which deduplicates on it).
pub const REQUEST_ID_LEN_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("must be 1 to {max} characters of [A-Za-z0-9_.:-]")]
    Syntax { max: usize },
}

fn valid(raw: &str, max: usize) -> Result<(), IdError> {
    let ok = !raw.is_empty()
        && raw.len() <= max
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Syntax { max })
    }
}

/// A channel: one bank or payment network connection (`bank_a`, `fastpay`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelId(String);

impl ChannelId {
    pub fn new(raw: impl Into<String>) -> Result<ChannelId, IdError> {
        let raw = raw.into();
        valid(&raw, CHANNEL_ID_LEN_MAX)?;
        Ok(ChannelId(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<ChannelId, IdError> {
        ChannelId::new(raw)
    }
}

impl From<ChannelId> for String {
    fn from(id: ChannelId) -> String {
        id.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Our id for one channel operation, derived by the caller from its order and step, and
/// reused on every retry and inquiry so that the channel can deduplicate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn new(raw: impl Into<String>) -> Result<RequestId, IdError> {
        let raw = raw.into();
        valid(&raw, REQUEST_ID_LEN_MAX)?;
        Ok(RequestId(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequestId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<RequestId, IdError> {
        RequestId::new(raw)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a channel is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Take money from a customer's card or bank account (top-up, card payment).
    Debit,
    /// Send money to a customer's bank account (withdrawal, payout).
    Payout,
    /// Return (part of) an earlier debit.
    Refund,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Debit, Operation::Payout, Operation::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Debit => "debit",
            Operation::Payout => "payout",
            Operation::Refund => "refund",
        }
    }

    /// The statement's word for it: the same three kinds of money movement.
    pub fn tx_type(self) -> recon::TxType {
        match self {
            Operation::Debit => recon::TxType::Debit,
            Operation::Payout => recon::TxType::Payout,
            Operation::Refund => recon::TxType::Refund,
        }
    }
}

/// One request to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    pub request_id: RequestId,
    pub operation: Operation,
    /// The customer's bank account or card at the channel.
    pub account: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// For a refund: the debit it returns. A refund goes to the debit's channel only.
    pub original_request_id: Option<RequestId>,
}

/// Why a channel refused an operation. Each reason says whether another channel may be tried
/// with the same request: only when this channel certainly did nothing and the reason is
/// about the channel, not the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The issuer or bank said no (risk, limits, card blocked).
    Declined,
    InsufficientFunds,
    InvalidAccount,
    /// The channel refused before doing anything: down, maintenance, overloaded (503).
    ChannelUnavailable,
    /// Our side refused to call: breaker open, rate or concurrency limit reached.
    NotAttempted,
    /// The channel rejected the request as malformed or unauthenticated (our bug).
    RequestRejected,
    /// No channel can carry this request (no rule matches, all disabled).
    NoRoute,
    /// Status inquiry: the channel still has no record of the request after its window for
    /// late arrivals, so it never executed it.
    NeverReceived,
}

impl FailureReason {
    /// Whether the same request may go to another channel: true only when this channel did
    /// nothing and another might succeed.
    pub fn retry_elsewhere(self) -> bool {
        matches!(self, FailureReason::ChannelUnavailable | FailureReason::NotAttempted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Declined => "declined",
            FailureReason::InsufficientFunds => "insufficient_funds",
            FailureReason::InvalidAccount => "invalid_account",
            FailureReason::ChannelUnavailable => "channel_unavailable",
            FailureReason::NotAttempted => "not_attempted",
            FailureReason::RequestRejected => "request_rejected",
            FailureReason::NoRoute => "no_route",
            FailureReason::NeverReceived => "never_received",
        }
    }
}

/// What the channel did with a request that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// The channel's own reference, as its statement shows it.
    pub channel_ref: String,
    /// The channel's fee, in minor units of the request's asset.
    pub fee: Amount,
}

/// The typed result of a channel call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Done: the money moved.
    Succeeded(Settled),
    /// Final refusal: the money did not move.
    Failed { reason: FailureReason, detail: String },
    /// Accepted; the final result comes by callback or inquiry.
    Processing,
    /// We do not know whether the money moved (timeout, lost response, garbled answer). Never
    /// a failure, never retried elsewhere: status inquiry settles it.
    Unknown { detail: String },
}

impl Outcome {
    /// Final: succeeded or failed. Processing and unknown are not.
    pub fn is_final(&self) -> bool {
        matches!(self, Outcome::Succeeded(_) | Outcome::Failed { .. })
    }

    pub fn failed(reason: FailureReason, detail: impl Into<String>) -> Outcome {
        Outcome::Failed { reason, detail: detail.into() }
    }

    /// The label used in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Processing => "processing",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// What an inquiry found: the final outcome, or that the channel never saw the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "found", rename_all = "snake_case")]
pub enum Inquiry {
    /// The channel has a record: its current outcome (maybe still processing).
    Found(Outcome),
    /// The channel has no record of this request id. Only final once the channel's own
    /// window for late arrivals has passed (see `inquiry::InquiryPolicy`).
    NotFound,
    /// The inquiry itself failed (timeout, channel down): ask again later.
    Unreachable { detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_channel_side_refusals_may_go_elsewhere() {
        assert!(FailureReason::ChannelUnavailable.retry_elsewhere());
        assert!(FailureReason::NotAttempted.retry_elsewhere());
        for reason in [
            FailureReason::Declined,
            FailureReason::InsufficientFunds,
            FailureReason::InvalidAccount,
            FailureReason::RequestRejected,
            FailureReason::NoRoute,
            FailureReason::NeverReceived,
        ] {
            assert!(!reason.retry_elsewhere(), "{reason:?}");
        }
    }

    #[test]
    fn ids_are_bounded_and_plain() {
        assert!(RequestId::new("ord_1:debit").is_ok());
        assert!(RequestId::new("").is_err());
        assert!(RequestId::new("a b").is_err());
        assert!(RequestId::new("x".repeat(65)).is_err());
        assert!(ChannelId::new("bank_a").is_ok());
    }
}
