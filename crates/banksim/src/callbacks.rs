//! Delivery of callbacks: the signed POST that announces the result of an asynchronous
//! operation to the URL the platform registered for the channel.
//!
//! Each event is retried with exponential backoff until the receiver answers 2xx or
//! `attempts_max` attempts have failed; the URL is read again before every attempt, so
//! registering a URL late still delivers pending events. With the `duplicate_callback_rate`
//! fault, a delivered event is delivered once more, as real networks do.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::channel::{Channel, Delivery};
use crate::config::CallbackConfig;
use crate::faults::{stream, Draw};
use crate::ids::RequestId;
use crate::signing::{self, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::time;

pub const HEADER_EVENT_ID: &str = "x-banksim-event-id";
pub const HEADER_CHANNEL: &str = "x-banksim-channel";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatcherError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct CallbackEvent {
    pub event_id: String,
    pub request_id: RequestId,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
    config: CallbackConfig,
    seed: u64,
    in_flight: Arc<Semaphore>,
}

impl Dispatcher {
    pub fn new(config: CallbackConfig, seed: u64) -> Result<Dispatcher, DispatcherError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // A callback is one request; reusing a connection the receiver closed would
            // turn into spurious failures.
            .pool_max_idle_per_host(0)
            .build()?;
        let in_flight = Arc::new(Semaphore::new(config.in_flight_max.max(1)));
        Ok(Dispatcher { client, config, seed, in_flight })
    }

    /// Delivers `event` in the background.
    pub fn dispatch(&self, channel: Arc<Channel>, event: CallbackEvent) {
        let dispatcher = self.clone();
        tokio::spawn(async move {
            // Bounded: further events wait here, not in an unbounded pile of requests.
            let Ok(_permit) = dispatcher.in_flight.clone().acquire_owned().await else { return };
            dispatcher.deliver(&channel, &event).await;
        });
    }

    async fn deliver(&self, channel: &Channel, event: &CallbackEvent) {
        let mut backoff_ms = self.config.backoff_ms;
        for attempt in 1..=self.config.attempts_max {
            if self.attempt(channel, event, attempt, false).await {
                let draw = Draw::new(
                    self.seed,
                    channel.name().as_str(),
                    "callback",
                    event.request_id.as_str(),
                    0,
                );
                let duplicate_rate = channel.lock().faults.duplicate_callback_rate;
                if draw.uniform(stream::DUPLICATE_CALLBACK) < duplicate_rate {
                    self.attempt(channel, event, attempt + 1, true).await;
                }
                return;
            }
            if attempt < self.config.attempts_max {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = backoff_ms.saturating_mul(2).min(self.config.backoff_max_ms);
            }
        }
        tracing::warn!(channel = %channel.name(), event_id = %event.event_id, "callback undelivered after every attempt");
    }

    /// One POST; true on 2xx. Every attempt is logged in the channel's delivery log.
    async fn attempt(
        &self,
        channel: &Channel,
        event: &CallbackEvent,
        attempt: u32,
        duplicate: bool,
    ) -> bool {
        let url = channel.lock().callback_url.clone();
        let mut delivery = Delivery {
            event_id: event.event_id.clone(),
            request_id: event.request_id.clone(),
            attempt,
            duplicate,
            url: url.clone(),
            http_status: None,
            error: None,
            at_ms: time::now_ms(),
        };
        let delivered = match url {
            None => {
                delivery.error = Some("no callback url registered".to_owned());
                false
            }
            Some(url) => {
                let timestamp = (time::now_ms() / 1_000).to_string();
                let signature = signing::sign_callback(channel.secret(), &timestamp, &event.body);
                let sent = self
                    .client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(HEADER_TIMESTAMP, &timestamp)
                    .header(HEADER_SIGNATURE, signature)
                    .header(HEADER_EVENT_ID, &event.event_id)
                    .header(HEADER_CHANNEL, channel.name().as_str())
                    .body(event.body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        delivery.http_status = Some(response.status().as_u16());
                        response.status().is_success()
                    }
                    Err(error) => {
                        delivery.error = Some(error.to_string());
                        false
                    }
                }
            }
        };
        channel.lock().record_delivery(delivery);
        delivered
    }
}
