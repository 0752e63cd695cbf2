//! Why the payment core refused a request, or could not carry it out, with the API's stable codes.

use money::AssetCode;

use crate::port::{OrderStoreError, PartyKind};

/// Why a request to the payment core was refused, or could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A field is malformed or out of its range: something the API's schema states.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A well-formed field refused by another field of the request (points worth more than
    /// the price) or by the state (no FX rate, more than was authorised): no schema can say it.
    #[error("{field}: {message}")]
    Refused { field: &'static str, message: String },
    #[error("no {kind} {id}", kind = kind.as_str())]
    PartyNotFound { kind: PartyKind, id: String },
    #[error("a {kind} {id} exists with different fields", kind = kind.as_str())]
    PartyExistsWithDifferentFields { kind: PartyKind, id: String },
    #[error("{kind} {id} has no {asset} account", kind = kind.as_str())]
    AssetNotOpened { kind: PartyKind, id: String, asset: AssetCode },
    #[error("an order with this reference exists with different fields")]
    OrderExistsWithDifferentFields,
    #[error("no order {0}")]
    OrderNotFound(String),
    #[error("payment {0} cannot be refunded: {1}")]
    NotRefundable(String, &'static str),
    #[error("the refund would return more than the payment's remaining amount")]
    RefundExceedsPayment,
    #[error("an order in state {state} cannot take {event}")]
    NotAllowed { state: &'static str, event: &'static str },
    #[error("the capture was refused: {0}")]
    CaptureRefused(String),
    #[error("no channel {0}")]
    ChannelNotFound(String),
    #[error("callback refused: {0}")]
    CallbackRefused(String),
    /// An operators' switch refuses this now (`kill/merchant:…`).
    #[error("turned off by the operators' switch {0}; retry later")]
    SwitchedOff(String),
    #[error("ledger setup refused: {0}")]
    LedgerSetup(&'static str),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Store(#[from] OrderStoreError),
}

impl ExecError {
    /// The stable code of the error, for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ExecError::Invalid { .. } => "invalid_field",
            ExecError::Refused { .. } => "field_refused",
            ExecError::PartyNotFound { kind: PartyKind::Customer, .. } => "customer_not_found",
            ExecError::PartyNotFound { kind: PartyKind::Merchant, .. } => "merchant_not_found",
            ExecError::PartyExistsWithDifferentFields { .. } => {
                "party_exists_with_different_fields"
            }
            ExecError::AssetNotOpened { .. } => "asset_not_opened",
            ExecError::OrderExistsWithDifferentFields => "order_exists_with_different_fields",
            ExecError::OrderNotFound(_) => "order_not_found",
            ExecError::NotRefundable(..) => "payment_not_refundable",
            ExecError::RefundExceedsPayment => "refund_exceeds_payment",
            ExecError::NotAllowed { .. } => "order_state_conflict",
            ExecError::CaptureRefused(_) => "capture_refused",
            ExecError::ChannelNotFound(_) => "channel_not_found",
            ExecError::CallbackRefused(_) => "callback_refused",
            ExecError::SwitchedOff(_) => "switched_off",
            ExecError::LedgerSetup(code) => code,
            ExecError::Ledger(_) => "ledger_unavailable",
            ExecError::Store(_) => "store_unavailable",
        }
    }
}
