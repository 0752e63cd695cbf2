//! The webhook store port: endpoints, and one delivery per (event, endpoint).

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookStoreError {
    #[error("webhook store: {0}")]
    Backend(String),
}

/// Where a tenant wants its events. `Debug` masks the secret.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// `we_` and 16 hex digits.
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// Signs every delivery (HMAC-SHA256); shown to the tenant once, at creation.
    #[serde(skip)]
    pub secret: String,
    pub enabled: bool,
    pub created_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet acknowledged; tried again at `next_at_ms`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Attempts ran out; a manual redelivery puts it back to pending.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] =
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|state| state.as_str() == raw)
    }
}

/// One event's delivery to one endpoint, as the log shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// `wd_…`: the event's sequence and the endpoint.
    pub id: String,
    pub endpoint_id: String,
    pub event_seq: u64,
    pub event_type: String,
    pub order_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at_ms: u64,
    /// The last attempt's HTTP status (0: no answer) and error, if any.
    pub last_status: u16,
    pub last_error: String,
    pub updated_at_ms: u64,
}

/// A delivery due now, with what sending it needs. `Debug` masks the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub url: String,
    pub secret: String,
    /// The event as the receiver gets it (JSON).
    pub body: String,
}

/// What a secret prints as.
const MASK: &str = "****";

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("secret", &MASK)
            .field("enabled", &self.enabled)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("delivery", &self.delivery)
            .field("url", &self.url)
            .field("secret", &MASK)
            .field("body", &self.body)
            .finish()
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Try again at `next_at_ms`.
    Retry {
        status: u16,
        error: String,
        next_at_ms: u64,
    },
    /// Give up (attempts ran out).
    Failed {
        status: u16,
        error: String,
    },
}

pub trait WebhookStore: Send + Sync + 'static {
    fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), WebhookStoreError>;
    fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, WebhookStoreError>;
    /// Disables the tenant's endpoint; false if it has none with this id.
    fn disable_endpoint(&self, tenant: &str, id: &str) -> Result<bool, WebhookStoreError>;

    /// Creates a pending delivery for every outbox event not yet fanned out and every
    /// enabled endpoint of its tenant, and advances the fan-out cursor, in one transaction.
    /// Returns the number of deliveries created.
    fn fan_out(&self, now_ms: u64, limit: usize) -> Result<u64, WebhookStoreError>;

    /// Pending deliveries due at `now_ms`, soonest first.
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<DueDelivery>, WebhookStoreError>;

    fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: &Attempt,
        now_ms: u64,
    ) -> Result<(), WebhookStoreError>;

    /// The tenant's deliveries, newest first, optionally of one endpoint or state.
    fn deliveries(
        &self,
        tenant: &str,
        endpoint_id: Option<&str>,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, WebhookStoreError>;

    /// Puts one of the tenant's deliveries back to pending, due now; false if not found.
    fn redeliver(
        &self,
        tenant: &str,
        delivery_id: &str,
        now_ms: u64,
    ) -> Result<bool, WebhookStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_a_mask() {
        let endpoint = Endpoint {
            id: "we_1".into(),
            tenant: "acme".into(),
            url: "https://example.com/".into(),
            secret: "whsec_do_not_print".into(),
            enabled: true,
            created_at_ms: 1,
        };
        let printed = format!("{endpoint:?}");
        assert!(printed.contains("****") && !printed.contains("do_not_print"), "{printed}");
        let due = DueDelivery {
            delivery: Delivery {
                id: "wd_1".into(),
                endpoint_id: "we_1".into(),
                event_seq: 1,
                event_type: "payment.succeeded".into(),
                order_id: "pay_1".into(),
                state: DeliveryState::Pending,
                attempts: 0,
                next_at_ms: 0,
                last_status: 0,
                last_error: String::new(),
                updated_at_ms: 0,
            },
            url: endpoint.url.clone(),
            secret: endpoint.secret.clone(),
            body: "{}".into(),
        };
        let printed = format!("{due:?}");
        assert!(printed.contains("****") && !printed.contains("do_not_print"), "{printed}");
    }
}
