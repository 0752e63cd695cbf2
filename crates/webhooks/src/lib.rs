//! Webhooks (事件通知): every order event of the outbox goes to each enabled endpoint of its
//! tenant, signed, retried with backoff until the endpoint answers 2xx or the attempts run
//! out, with every attempt in a delivery log and a manual redelivery for the rest.
//!
//! Delivery is at least once: a receiver may see an event twice (a retry after a lost 2xx)
//! and must dedupe on the event id, which every attempt repeats.
//!
//! Deliveries reach only globally routable addresses (`egress`), checked where the
//! connection is made, so an endpoint cannot point the platform at its own network.

pub mod egress;
pub mod port;
pub mod signing;
pub mod worker;

pub use egress::EgressPolicy;
pub use port::{
    Attempt, Delivery, DeliveryState, DueDelivery, Endpoint, WebhookStore, WebhookStoreError,
};
pub use worker::{Deliverer, RetryPolicy, WorkerError};
