//! The delivery loop: fan the outbox out to endpoints, then send what is due, each attempt
//! bounded by a timeout, concurrently up to the batch size.
//!
//! Every attempt goes through the egress policy (`egress`) where the connection is made: an
//! address host is checked before sending (the client connects to it without resolving), a
//! DNS name by the client's resolver, which hands the client only checked addresses. A
//! refused attempt records [`REFUSED`] with status 0 and never touches the target. It is
//! failed at once when the URL names an address (that cannot change), and retried with the
//! usual backoff when a DNS answer was refused (the answer can change).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::egress::{self, EgressPolicy, PublicResolver, REFUSED};
use crate::port::{Attempt, DueDelivery, WebhookStore};
use crate::signing::{self, HEADER_EVENT_ID, HEADER_SIGNATURE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failed attempt; doubles after each, up to `delay_max_ms`.
    pub first_delay_ms: u64,
    pub delay_max_ms: u64,
    /// After this many failed attempts the delivery is failed (redeliverable by hand).
    pub attempts_max: u32,
    /// One attempt's limit, connection to last byte.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    /// 12 attempts over about 9 hours: 1 s, 2 s, 4 s … capped at 1 h.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay_ms: 1_000,
            delay_max_ms: 3_600_000,
            attempts_max: 12,
            timeout_ms: 10_000,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt (1-based).
    pub fn delay_ms(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(40);
        self.first_delay_ms.saturating_mul(1u64 << doublings).min(self.delay_max_ms)
    }

    /// What a failed attempt number `attempts` (1-based) leads to.
    pub fn after_failure(&self, attempts: u32, status: u16, error: String, now_ms: u64) -> Attempt {
        if attempts >= self.attempts_max {
            Attempt::Failed { status, error }
        } else {
            Attempt::Retry {
                status,
                error,
                next_at_ms: now_ms.saturating_add(self.delay_ms(attempts)),
            }
        }
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub fanned_out: u64,
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
}

pub struct Deliverer {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    policy: RetryPolicy,
    egress: EgressPolicy,
    batch: usize,
    /// Deliveries held back by an operators' switch.
    paused: std::sync::atomic::AtomicBool,
}

/// Why an attempt got no answer.
enum SendError {
    /// The egress policy refused the target; nothing was sent.
    Refused(Refusal),
    /// Anything else: connection, timeout, protocol.
    Failed(String),
}

#[derive(Clone, Copy)]
enum Refusal {
    /// The URL names a non-public address: no later attempt can do better.
    Address,
    /// The name's DNS answer held a non-public address: a later answer may not.
    Answer,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Why the worker could not start or finish a sweep.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The HTTP client (or the proxy's address) could not be set up.
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] crate::port::WebhookStoreError),
}

impl Deliverer {
    /// Delivers `store`'s outbox with `policy`'s retries, to the addresses `egress` permits.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        policy: RetryPolicy,
        egress: EgressPolicy,
    ) -> Result<Deliverer, WorkerError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(policy.timeout_ms))
            // A redirect would be a second target, unchecked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment (HTTP_PROXY…) would resolve and connect on our
            // behalf, past the resolver's check.
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver::new(egress)))
            .build()?;
        Ok(Deliverer { store, client, policy, egress, batch: 64, paused: Default::default() })
    }

    /// Delivers through an egress proxy (`http://host:port`): every delivery goes to the
    /// proxy, which resolves and connects. Address hosts are still checked here; a DNS name
    /// is then the proxy's to check, so the proxy must refuse non-public addresses itself
    /// (as an egress proxy such as smokescreen does). Only the configured proxy is used,
    /// never one from the environment.
    pub fn through_proxy(
        store: Arc<dyn WebhookStore>,
        policy: RetryPolicy,
        egress: EgressPolicy,
        proxy_url: &str,
    ) -> Result<Deliverer, WorkerError> {
        let proxy = reqwest::Proxy::all(proxy_url)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(policy.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .proxy(proxy)
            .dns_resolver(Arc::new(PublicResolver::new(egress)))
            .build()?;
        Ok(Deliverer { store, client, policy, egress, batch: 64, paused: Default::default() })
    }

    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.store
    }

    /// Fans out new events, then sends every due delivery (up to one batch).
    pub async fn sweep(&self) -> Result<SweepCounts, WorkerError> {
        let mut counts = SweepCounts::default();
        let now = now_ms();
        counts.fanned_out = self.store.fan_out(now, 1_000)?;
        let due = self.store.due(now, self.batch)?;
        let mut sending = JoinSet::new();
        for item in due {
            let client = self.client.clone();
            let egress = self.egress;
            sending.spawn(async move {
                let result = send(&client, egress, &item).await;
                (item, result)
            });
        }
        while let Some(joined) = sending.join_next().await {
            let Ok((item, result)) = joined else { continue };
            let attempts = item.delivery.attempts.saturating_add(1);
            let attempt = match result {
                Ok(status) if (200..300).contains(&status) => Attempt::Delivered { status },
                Ok(status) => {
                    self.policy.after_failure(attempts, status, format!("HTTP {status}"), now_ms())
                }
                Err(SendError::Failed(error)) => {
                    self.policy.after_failure(attempts, 0, error, now_ms())
                }
                Err(SendError::Refused(Refusal::Address)) => {
                    Attempt::Failed { status: 0, error: REFUSED.to_owned() }
                }
                Err(SendError::Refused(Refusal::Answer)) => {
                    self.policy.after_failure(attempts, 0, REFUSED.to_owned(), now_ms())
                }
            };
            match &attempt {
                Attempt::Delivered { .. } => counts.delivered += 1,
                Attempt::Retry { .. } => counts.retried += 1,
                Attempt::Failed { .. } => {
                    counts.failed += 1;
                    tracing::warn!(delivery = %item.delivery.id, url = %item.url, "webhook delivery failed for good");
                }
            }
            self.store.record_attempt(&item.delivery.id, &attempt, now_ms())?;
        }
        Ok(counts)
    }

    /// Holds deliveries back (an operators' switch: the database is slow, say) or lets
    /// them go again. Held deliveries stay in the outbox and are sent once released.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sweeps every `poll_ms` until `stop` turns true (none while paused).
    pub async fn run(self: Arc<Self>, poll_ms: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if self.paused.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!("webhook deliveries held by a switch");
            } else if let Err(error) = self.sweep().await {
                tracing::error!(%error, "webhook sweep failed");
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(poll_ms)) => {}
            }
        }
    }
}

/// One attempt: the URL parsed once, checked, and that same parsed URL sent.
async fn send(
    client: &reqwest::Client,
    egress: EgressPolicy,
    item: &DueDelivery,
) -> Result<u16, SendError> {
    let url = egress::parse_url(&item.url).map_err(|error| SendError::Failed(error.to_string()))?;
    egress.check_address_host(&url).map_err(|_| SendError::Refused(Refusal::Address))?;
    let timestamp_secs = now_ms() / 1_000;
    let signature = signing::sign(&item.secret, timestamp_secs, item.body.as_bytes());
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(HEADER_SIGNATURE, signature)
        .header(HEADER_EVENT_ID, format!("evt_{}", item.delivery.event_seq))
        .body(item.body.clone())
        .send()
        .await
        .map_err(|error| {
            if egress::is_refusal(&error) {
                SendError::Refused(Refusal::Answer)
            } else {
                SendError::Failed(error.to_string())
            }
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_attempts_run_out() {
        let policy = RetryPolicy {
            first_delay_ms: 100,
            delay_max_ms: 1_000,
            attempts_max: 4,
            timeout_ms: 1,
        };
        assert_eq!([1, 2, 3, 4, 5].map(|n| policy.delay_ms(n)), [100, 200, 400, 800, 1_000]);
        assert!(matches!(
            policy.after_failure(3, 500, "x".into(), 10),
            Attempt::Retry { next_at_ms: 410, .. }
        ));
        assert!(matches!(policy.after_failure(4, 500, "x".into(), 10), Attempt::Failed { .. }));
    }
}
