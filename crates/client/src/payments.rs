//! The payment core's products (tag `payments`): top-ups, withdrawals, wallet transfers,
//! payments with their captures, cancels and refunds, points, settlements, payout batches and
//! exchange rates. Each money-moving request names an order `reference` of yours: a retry
//! with the same reference is the same order, whatever the idempotency key.

use serde::{Deserialize, Serialize};

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::orders::OrderView;
use crate::routes;
use crate::wire::{Amount, List};

/// The most items a payout batch may carry.
pub const PAYOUT_ITEMS_MAX: usize = 1_000;
/// The longest authorisation: 30 days.
pub const AUTHORIZE_FOR_SECS_MAX: u32 = 2_592_000;

/// `POST /v1/topups`: a wallet topped up from a card through a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopUpBody {
    /// Your order number: 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub reference: String,
    pub customer: String,
    /// The card number, 1 to 64 characters.
    pub card: String,
    pub asset: String,
    pub amount: Amount,
}

/// `POST /v1/withdrawals`: a wallet paid out to a bank account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WithdrawalBody {
    pub reference: String,
    pub customer: String,
    /// 1 to 64 characters.
    pub bank_account: String,
    pub asset: String,
    pub amount: Amount,
}

/// `POST /v1/wallet-transfers`: wallet to wallet, between two customers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletTransferBody {
    pub reference: String,
    /// The paying customer.
    pub from: String,
    /// The receiving customer (not `from`).
    pub to: String,
    pub asset: String,
    pub amount: Amount,
}

/// `POST /v1/payments`: a customer pays a merchant — from the wallet, partly in points, from
/// a wallet in another asset, from a card, or an authorisation only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentBody {
    /// The merchant's order number, unique per merchant.
    pub reference: String,
    pub customer: String,
    pub merchant: String,
    pub asset: String,
    /// The whole price; the merchant is credited with all of it.
    pub amount: Amount,
    /// Points paying part of it (积分+支付), at the platform's rate; the rest is cash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<Amount>,
    /// Pay from the customer's wallet in this asset, converted at the platform's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_from: Option<String>,
    /// Pay from this card through a channel (收单). Not with points, FX or authorisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Authorise only (预授权): hold the money this many seconds (1 to
    /// [`AUTHORIZE_FOR_SECS_MAX`]) for a later capture or cancel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_for_secs: Option<u32>,
}

impl PaymentBody {
    /// A payment from the customer's wallet in `asset`, captured at once.
    pub fn new(
        reference: &str,
        customer: &str,
        merchant: &str,
        asset: &str,
        amount: Amount,
    ) -> PaymentBody {
        PaymentBody {
            reference: reference.to_string(),
            customer: customer.to_string(),
            merchant: merchant.to_string(),
            asset: asset.to_string(),
            amount,
            points: None,
            pay_from: None,
            card: None,
            authorize_for_secs: None,
        }
    }
}

/// `POST /v1/payments/{id}/capture`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureBody {
    /// At most what was authorised; all of it if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
}

/// `POST /v1/payments/{id}/refunds`: along the payment's legs, never past what was captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefundBody {
    /// Unique per payment.
    pub reference: String,
    pub amount: Amount,
}

/// `POST /v1/customers/{id}/points`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PointsGrantBody {
    pub reference: String,
    pub points: Amount,
}

/// `POST /v1/merchants/{id}/settlements`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettlementBody {
    pub asset: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SettlementRunView {
    /// False when there was nothing to settle up to the cut-off.
    pub settled: bool,
    #[serde(default)]
    pub settlement: Option<OrderView>,
}

/// One payout of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayoutItemBody {
    pub reference: String,
    pub bank_account: String,
    pub amount: Amount,
}

/// `POST /v1/merchants/{id}/payout-batches`: payouts from the merchant's settled takings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayoutBatchBody {
    pub reference: String,
    pub asset: String,
    /// 1 to [`PAYOUT_ITEMS_MAX`].
    pub items: Vec<PayoutItemBody>,
}

/// A count of payouts and their sum.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PayoutTotal {
    pub count: u64,
    pub amount: Amount,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PayoutBatchView {
    /// `pb_…`.
    pub id: String,
    pub merchant: String,
    /// `processing` while any item is not final, then `completed`.
    pub status: String,
    pub succeeded: PayoutTotal,
    /// Their money is back in the merchant's settled balance.
    pub failed: PayoutTotal,
    pub processing: PayoutTotal,
    pub items: Vec<OrderView>,
}

/// `PUT /v1/fx-rates`: an exchange rate, and why (kept in the audit log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FxRateRequest {
    /// The payment's asset.
    pub asset: String,
    /// The wallet's asset the customer pays from.
    pub funding: String,
    /// Minor units of `funding` per minor unit of `asset`: a positive decimal below 10^9 with
    /// at most 10 decimals (`"7.1234"`). A string, never a float.
    pub rate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct FxRateView {
    pub asset: String,
    pub funding: String,
    pub rate: String,
}

impl Client {
    /// Tops up a wallet from a card: 201 with the order (200 for its reference again).
    pub async fn create_topup(
        &self,
        topup: &TopUpBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CREATE_TOPUP, &[], Some(topup), idempotency_key).await
    }

    /// Withdraws from a wallet to a bank account.
    pub async fn create_withdrawal(
        &self,
        withdrawal: &WithdrawalBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CREATE_WITHDRAWAL, &[], Some(withdrawal), idempotency_key).await
    }

    /// Moves money from one customer's wallet to another's.
    pub async fn create_wallet_transfer(
        &self,
        transfer: &WalletTransferBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CREATE_WALLET_TRANSFER, &[], Some(transfer), idempotency_key).await
    }

    /// Pays a merchant.
    pub async fn create_payment(
        &self,
        payment: &PaymentBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CREATE_PAYMENT, &[], Some(payment), idempotency_key).await
    }

    /// Captures an authorisation, all of it or `amount`.
    pub async fn capture_payment(
        &self,
        payment_id: &str,
        capture: &CaptureBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CAPTURE_PAYMENT, &[payment_id], Some(capture), idempotency_key).await
    }

    /// Cancels an authorisation (its hold is released).
    pub async fn cancel_payment(
        &self,
        payment_id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write::<(), _>(routes::CANCEL_PAYMENT, &[payment_id], None, idempotency_key).await
    }

    /// Refunds a succeeded payment, in part or whole.
    pub async fn create_refund(
        &self,
        payment_id: &str,
        refund: &RefundBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::CREATE_REFUND, &[payment_id], Some(refund), idempotency_key).await
    }

    /// Grants a customer points.
    pub async fn grant_points(
        &self,
        customer_id: &str,
        grant: &PointsGrantBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<OrderView>, ClientError> {
        self.write(routes::GRANT_POINTS, &[customer_id], Some(grant), idempotency_key).await
    }

    /// Settles a merchant's takings in `asset` up to the T+N cut-off, now.
    pub async fn settle_merchant(
        &self,
        merchant_id: &str,
        asset: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<SettlementRunView>, ClientError> {
        let body = SettlementBody { asset: asset.to_string() };
        self.write(routes::SETTLE_MERCHANT, &[merchant_id], Some(&body), idempotency_key).await
    }

    /// Pays out from a merchant's settled takings: 202, the items carried out in the
    /// background ([`Client::get_payout_batch`] follows them).
    pub async fn create_payout_batch(
        &self,
        merchant_id: &str,
        batch: &PayoutBatchBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<PayoutBatchView>, ClientError> {
        self.write(routes::CREATE_PAYOUT_BATCH, &[merchant_id], Some(batch), idempotency_key).await
    }

    pub async fn get_payout_batch(&self, id: &str) -> Result<PayoutBatchView, ClientError> {
        self.read(routes::GET_PAYOUT_BATCH, &[id], Query::new()).await
    }

    /// Sets an exchange rate (admin): the pair's next version, audited.
    pub async fn set_fx_rate(
        &self,
        rate: &FxRateRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<FxRateView>, ClientError> {
        self.write(routes::SET_FX_RATE, &[], Some(rate), idempotency_key).await
    }

    pub async fn list_fx_rates(&self) -> Result<List<FxRateView>, ClientError> {
        self.read(routes::LIST_FX_RATES, &[], Query::new()).await
    }
}
