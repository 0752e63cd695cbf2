//! Webhook endpoints and the delivery log (tag `webhooks`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, List, Secret};

/// `POST /v1/webhook-endpoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointRequest {
    /// `http://` or `https://`, at most 2,048 characters, a globally routable host.
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EndpointView {
    /// `we_…`.
    pub id: String,
    pub url: String,
    /// The signing secret of deliveries: only in the answer that created the endpoint.
    #[serde(default)]
    pub secret: Option<Secret>,
    pub enabled: bool,
    pub created_at_ms: u64,
}

wire_enum! {
    /// Where a delivery is.
    pub enum DeliveryState {
        /// Tried again at `next_at_ms`.
        Pending = "pending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Attempts ran out.
        Failed = "failed",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct DeliveryView {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub order_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at_ms: u64,
    /// The endpoint's last HTTP status; 0 when nothing was sent.
    pub last_status: u16,
    pub last_error: String,
    pub updated_at_ms: u64,
}

/// Which deliveries `GET /v1/webhook-deliveries` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub state: Option<DeliveryState>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

impl Client {
    /// Adds an endpoint: 201 with its signing secret, shown only this once.
    pub async fn create_endpoint(
        &self,
        endpoint: &EndpointRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<EndpointView>, ClientError> {
        self.write(routes::CREATE_ENDPOINT, &[], Some(endpoint), idempotency_key).await
    }

    pub async fn list_endpoints(&self) -> Result<List<EndpointView>, ClientError> {
        self.read(routes::LIST_ENDPOINTS, &[], Query::new()).await
    }

    /// Disables an endpoint: nothing more is sent to it.
    pub async fn disable_endpoint(
        &self,
        id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<Value>, ClientError> {
        self.write::<(), _>(routes::DISABLE_ENDPOINT, &[id], None, idempotency_key).await
    }

    /// The delivery log.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<List<DeliveryView>, ClientError> {
        let query = Query::new()
            .opt("endpoint", filter.endpoint.as_ref())
            .opt("state", filter.state.as_ref())
            .opt("limit", filter.limit);
        self.read(routes::LIST_DELIVERIES, &[], query).await
    }

    /// Sends a delivery again.
    pub async fn retry_delivery(
        &self,
        id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<Value>, ClientError> {
        self.write::<(), _>(routes::RETRY_DELIVERY, &[id], None, idempotency_key).await
    }
}
