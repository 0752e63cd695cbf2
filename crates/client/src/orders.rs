//! Orders of every product and their events (tag `payments`), the inspection pass, and the
//! channels' callbacks.

use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, Amount, List, Paged};

wire_enum! {
    /// The kind of an order.
    pub enum OrderKind {
        Topup = "topup",
        Withdrawal = "withdrawal",
        Payment = "payment",
        Refund = "refund",
        WalletTransfer = "wallet_transfer",
        Settlement = "settlement",
        PointsGrant = "points_grant",
        CardPayment = "card_payment",
        CardRefund = "card_refund",
    }
}

/// An order of any product. Webhook events carry the same object.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct OrderView {
    /// `top_…`, `wd_…`, `pay_…`, `rf_…`, `wt_…`: derived from the tenant and `reference`.
    pub id: String,
    pub kind: OrderKind,
    /// The state machine's state (docs/payments.md lists each kind's).
    pub status: String,
    /// True once no event but an operator's can change the order.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub reference: String,
    /// `None` for a settlement.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub merchant: Option<String>,
    pub asset: String,
    pub amount: Amount,
    /// A refund's payment.
    #[serde(default)]
    pub parent: Option<String>,
    /// The state with its details (channel, channel reference and fee, failure reason).
    pub state: Value,
    /// The kind's own terms (a payment's fee and points, a top-up's card…).
    pub detail: Value,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// False for an order of the test book (made with a test key).
    #[serde(default = "live")]
    pub livemode: bool,
}

fn live() -> bool {
    true
}

impl Paged for OrderView {
    type Cursor = String;
    fn cursor(&self) -> String {
        self.id.clone()
    }
}

/// Which orders `GET /v1/orders` lists, newest first; every field narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub kind: Option<OrderKind>,
    pub status: Option<String>,
    pub customer: Option<String>,
    pub merchant: Option<String>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
    /// An order id: the last one you have.
    pub starting_after: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

/// An outbox event: a final state of an order.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct EventView {
    /// The cursor for `after`.
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub order_id: String,
    pub data: OrderView,
    pub created_at_ms: u64,
}

impl Client {
    /// The tenant's orders, newest first.
    pub async fn list_orders(&self, filter: &OrderFilter) -> Result<List<OrderView>, ClientError> {
        let query = Query::new()
            .opt("kind", filter.kind.as_ref())
            .opt("status", filter.status.as_ref())
            .opt("customer", filter.customer.as_ref())
            .opt("merchant", filter.merchant.as_ref())
            .opt("created_from_ms", filter.created_from_ms)
            .opt("created_to_ms", filter.created_to_ms)
            .opt("starting_after", filter.starting_after.as_ref())
            .opt("limit", filter.limit);
        self.read(routes::LIST_ORDERS, &[], query).await
    }

    pub async fn get_order(&self, id: &str) -> Result<OrderView, ClientError> {
        self.read(routes::GET_ORDER, &[id], Query::new()).await
    }

    /// The outbox after event `after_seq`, oldest first (`limit` 1 to 500, default 50).
    pub async fn list_events(
        &self,
        after_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<List<EventView>, ClientError> {
        let query = Query::new().opt("after", after_seq).opt("limit", limit);
        self.read(routes::LIST_EVENTS, &[], query).await
    }

    /// Runs an inspection pass (巡检) now (admin); its report as the service writes it.
    pub async fn run_inspection(
        &self,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<Value>, ClientError> {
        self.write::<(), _>(routes::RUN_INSPECTION, &[], None, idempotency_key).await
    }

    /// Delivers a channel's asynchronous result as the channel would: `body` and `headers`
    /// in the channel's own protocol and signature (a bank simulator's, a test's).
    pub async fn channel_callback(
        &self,
        channel: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<Value>, ClientError> {
        let body = Some(body.to_vec());
        self.write_bytes(routes::CHANNEL_CALLBACK, &[channel], body, idempotency_key, headers).await
    }
}
