//! The JSON shapes of the protocol. Amounts are decimal strings (`"12345"`): JavaScript
//! clients lose precision above 2^53. Times are RFC 3339 UTC with milliseconds.

use money::{Amount, AssetCode};

use crate::books::{FailureReason, Operation, OperationKind, OperationRequest, Status};
use crate::channel::Channel;
use crate::ids::{AccountName, ChannelName, RequestId};
use crate::time;

/// An operation as the channel reports it: the answer to a request, a query, a callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OperationView {
    pub channel: ChannelName,
    pub request_id: RequestId,
    pub channel_ref: String,
    pub operation: OperationKind,
    pub account: Option<AccountName>,
    /// For refunds: the refunded debit's request id.
    pub debit_request_id: Option<RequestId>,
    pub amount_minor: Amount,
    pub fee_minor: Amount,
    pub currency: AssetCode,
    pub status: Status,
    pub failure_reason: Option<FailureReason>,
    /// Which attempt of the request id created the operation (0 = the first).
    pub attempt: u32,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl OperationView {
    pub fn new(channel: &Channel, op: &Operation) -> OperationView {
        let debit_request_id = match &op.request {
            OperationRequest::Refund { debit_request_id, .. } => Some(debit_request_id.clone()),
            _ => None,
        };
        OperationView {
            channel: channel.name().clone(),
            request_id: op.request_id.clone(),
            channel_ref: op.channel_ref.clone(),
            operation: op.request.kind(),
            account: op.account.clone(),
            debit_request_id,
            amount_minor: op.request.amount(),
            fee_minor: op.fee,
            currency: channel.currency(),
            status: op.status,
            failure_reason: op.failure_reason,
            attempt: op.attempt,
            created_at: time::rfc3339_ms(op.created_at_ms),
            completed_at: op.completed_at_ms.map(time::rfc3339_ms),
        }
    }
}

/// The body of a callback: which event, and the operation's final state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallbackBody {
    /// Unique per event; a duplicate delivery repeats it, so receivers dedupe on it.
    pub event_id: String,
    pub data: OperationView,
}
