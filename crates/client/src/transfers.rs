//! Transfers of the ledger API (tag `transfers`): posted transfers, holds (two-phase:
//! `pending → post | void`) and batches of up to 8,000.

use serde::{Deserialize, Serialize};

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, AccountId, Amount, Seq, TransferId};

/// The most transfers one batch may carry (`BATCH_TRANSFERS_MAX`).
pub const BATCH_TRANSFERS_MAX: usize = 8_000;

/// The fields every transfer has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewTransfer {
    /// Choose it before sending and a retry can never move money twice. Absent: derived
    /// from the request's idempotency key (so retries with the same key derive the same id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<TransferId>,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub asset: String,
    pub amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_code: Option<u32>,
    /// At most 64 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
}

impl NewTransfer {
    pub fn new(
        id: Option<TransferId>,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        asset: &str,
        amount: Amount,
    ) -> NewTransfer {
        NewTransfer {
            id,
            debit_account_id,
            credit_account_id,
            asset: asset.to_string(),
            amount,
            business_code: None,
            order_ref: None,
        }
    }
}

/// A hold: the amount is reserved until posted, voided or expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingTransfer {
    #[serde(flatten)]
    pub transfer: NewTransfer,
    /// Released by itself after this many seconds; never, if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u32>,
}

/// `POST /v1/transfers` and each item of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferRequest {
    /// Move money now.
    Post(NewTransfer),
    /// Hold money for a later post or void.
    Pending(PendingTransfer),
}

wire_enum! {
    /// What a stored transfer did.
    pub enum TransferKind {
        Posted = "posted",
        Pending = "pending",
        PostPending = "post_pending",
        VoidPending = "void_pending",
        ExpirePending = "expire_pending",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TransferView {
    pub id: TransferId,
    pub kind: TransferKind,
    /// For a hot account: the row that actually moved.
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub asset: String,
    pub amount: Amount,
    /// For post, void and expire: the hold this transfer resolves.
    #[serde(default)]
    pub pending_id: Option<TransferId>,
    /// A pending transfer with a timeout: when it expires (RFC 3339 UTC).
    #[serde(default)]
    pub expires_at: Option<String>,
    pub business_code: u32,
    pub order_ref: String,
    pub seq: Seq,
    /// When it was committed (RFC 3339 UTC).
    pub timestamp: String,
}

/// `POST /v1/transfers/batch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchRequest {
    /// 1 to [`BATCH_TRANSFERS_MAX`].
    pub transfers: Vec<TransferRequest>,
    /// All or nothing: one refusal fails every item (`linked_transfer_failed`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub linked: bool,
}

wire_enum! {
    /// What became of one item of a batch.
    pub enum BatchItemStatus {
        Created = "created",
        Replayed = "replayed",
        Rejected = "rejected",
    }
}

/// A refusal inside a batch: the one error shape, per item.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub error_type: String,
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub param: Option<String>,
}

/// One item of a batch: `created` or `replayed` with the transfer, `rejected` with the error.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BatchItemView {
    pub status: BatchItemStatus,
    #[serde(default)]
    pub transfer: Option<TransferView>,
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

/// One result per transfer of the batch, in order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BatchResultView {
    pub data: Vec<BatchItemView>,
}

/// Posting a hold, whole or in part (the rest is released). Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResolveRequest {
    /// The posting transfer's own id; derived from the idempotency key if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<TransferId>,
    /// At most the held amount; all of it if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
}

/// Voiding a hold: it releases the whole hold, so there is no amount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VoidRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<TransferId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
}

impl Client {
    /// Posts a transfer or places a hold: 201; 200 with the stored transfer if this id was
    /// sent before with the same fields (409 `id_exists_with_different_fields` otherwise).
    pub async fn create_transfer(
        &self,
        transfer: &TransferRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<TransferView>, ClientError> {
        self.write(routes::CREATE_TRANSFER, &[], Some(transfer), idempotency_key).await
    }

    /// Up to [`BATCH_TRANSFERS_MAX`] transfers, one result per item.
    pub async fn create_batch(
        &self,
        batch: &BatchRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<BatchResultView>, ClientError> {
        self.write(routes::CREATE_BATCH, &[], Some(batch), idempotency_key).await
    }

    pub async fn get_transfer(&self, id: TransferId) -> Result<TransferView, ClientError> {
        self.read(routes::GET_TRANSFER, &[&id.to_string()], Query::new()).await
    }

    /// Posts the hold `pending_id`, whole or in part.
    pub async fn post_pending(
        &self,
        pending_id: TransferId,
        resolve: &ResolveRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<TransferView>, ClientError> {
        let params = [pending_id.to_string()];
        self.write(routes::POST_PENDING, &[&params[0]], Some(resolve), idempotency_key).await
    }

    /// Releases the hold `pending_id`.
    pub async fn void_pending(
        &self,
        pending_id: TransferId,
        void: &VoidRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<TransferView>, ClientError> {
        let params = [pending_id.to_string()];
        self.write(routes::VOID_PENDING, &[&params[0]], Some(void), idempotency_key).await
    }
}
