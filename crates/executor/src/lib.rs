//! The payment executor: the layer between the pure state machines of `payments` and the
//! world. For each order it
//! 1. stores the order's next state, and the outbox events that state emits, in one
//!    transaction, *before* carrying out what the transition asks;
//! 2. carries out the effects — ledger groups through the posting pipeline, channel calls
//!    through the gateway, status inquiries — and feeds each answer back as an event;
//! 3. after a crash, or when an order sits unfinished too long (巡检, inspection), re-derives
//!    what the order's state waits on (`Order::resume`) and carries it out again. Every
//!    ledger transfer and channel request id is derived from the order and step, so doing an
//!    effect twice has no second effect.
//!
//! Two writers on one order (a customer's request and a late callback) are serialised by
//! the stored version: the loser reloads and applies its event to the winner's state.

mod engine;
pub mod port;

pub use engine::{
    order_payload, party_key, payout_batch_id, return_order_id, CardPaymentRequest, ExecError,
    Executor, ExecutorConfig, InquiryOwnerAdapter, InspectionReport, NewParty, OrderPayload,
    PaymentRequest, PayoutBatchRequest, PayoutBatchTotals, PayoutItem, PayoutTotal, Placed,
    PointsConfig, RefundRequest, TopUpRequest, WalletTransferRequest, WithdrawalRequest,
    AUTHORIZATION_SECS_MAX, BANK_ACCOUNT_LEN_MAX, FEE_BPS_MAX, PARTY_ASSETS_MAX, PARTY_ID_LEN_MAX,
    PARTY_NAME_LEN_MAX, PAYOUT_BATCH_ITEMS_MAX, SETTLE_AFTER_DAYS_MAX,
};
pub use port::{
    ChannelLegPage, ChannelLegRecord, GuardedInsert, Inserted, MerchantTotals, NewEvent,
    OrderQuery, OrderRecord, OrderStore, OrderStoreError, Party, PartyKind, RefundTotals,
    StoredEvent,
};
