//! The gateway: routes a request to the best channel that may carry it, guards every call
//! with the channel's breaker, limits and timeout, fails over only when the channel certainly
//! did nothing, and reports a typed outcome. An unknown outcome stops the search at once: the
//! request is never sent to a second channel, because the first may have moved the money.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::breaker::{Breaker, BreakerState};
use crate::channel::Channel;
use crate::health::{CallEvent, HealthSnapshot, Window};
use crate::limits::Limits;
use crate::model::{ChannelId, ChannelRequest, FailureReason, Inquiry, Outcome};
use crate::router::{
    ChannelControl, ChannelProfile, ControlChange, Router, RouterError, ScoringConfig,
};

/// Where time comes from, in milliseconds; injected so tests can drive windows and breakers.
pub trait Millis: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// Wall-clock milliseconds since the Unix epoch.
pub struct SystemMillis;

impl Millis for SystemMillis {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatewayConfig {
    /// The window the router scores health over.
    pub health_window_ms: u64,
    pub scoring: ScoringConfig,
    /// At most this many channels are tried for one request.
    pub attempts_max: usize,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            health_window_ms: 30_000,
            scoring: ScoringConfig::default(),
            attempts_max: 3,
        }
    }
}

/// Counters of one channel and operation, for `/metrics`.
#[derive(Debug, Default)]
pub struct OutcomeCounters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub processing: AtomicU64,
    pub unknown: AtomicU64,
    /// Calls our side refused to make (breaker open, limits).
    pub not_attempted: AtomicU64,
}

struct Slot {
    channel: Arc<dyn Channel>,
    breaker: Mutex<Breaker>,
    health: Mutex<Window>,
    limits: Limits,
    counters: BTreeMap<crate::model::Operation, OutcomeCounters>,
    latency_ms: latency_histogram::Histogram,
}

/// A small power-of-two latency histogram, kept here so the gateway does not depend on the
/// ledger crate for one type.
pub mod latency_histogram {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Buckets: <1, <2, <4, … < 2^(BUCKETS-1) ms, and the rest.
    pub const BUCKETS: usize = 18;

    #[derive(Debug, Default)]
    pub struct Histogram {
        buckets: [AtomicU64; BUCKETS],
        sum_ms: AtomicU64,
    }

    impl Histogram {
        pub fn record(&self, value_ms: u64) {
            let index = (u64::BITS - value_ms.leading_zeros()) as usize;
            self.buckets[index.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
            self.sum_ms.fetch_add(value_ms, Ordering::Relaxed);
        }

        /// (upper bound in ms, cumulative count), the last bound being `u64::MAX`.
        pub fn cumulative(&self) -> Vec<(u64, u64)> {
            let mut total = 0;
            (0..BUCKETS)
                .map(|i| {
                    total += self.buckets[i].load(Ordering::Relaxed);
                    let bound = if i == BUCKETS - 1 { u64::MAX } else { 1u64 << i };
                    (bound, total)
                })
                .collect()
        }

        pub fn sum_ms(&self) -> u64 {
            self.sum_ms.load(Ordering::Relaxed)
        }
    }
}

/// The result of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The channel that gave the outcome (`None`: no channel was called).
    pub channel: Option<ChannelId>,
    pub outcome: Outcome,
    /// Every channel tried, in order, with what it answered.
    pub attempts: Vec<(ChannelId, Outcome)>,
}

/// A channel's state as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelStatus {
    pub channel: ChannelId,
    pub breaker: BreakerState,
    pub control: ChannelControl,
    pub window_calls: u64,
    pub window_errors: u64,
    pub window_mean_latency_ms: Option<u64>,
    /// The fee rate routing weighs (per 10,000), as configured or set by a switch.
    pub fee_bps: u32,
    /// Errors per thousand calls that open the breaker, as configured or set by a switch.
    pub breaker_error_permille_open: u64,
    /// Calls a second it takes at most (`None`: unlimited), as configured or set by a switch.
    pub rate_per_sec: Option<u32>,
}

pub struct Gateway {
    slots: BTreeMap<ChannelId, Slot>,
    /// Each channel's profile as configured, so a switch turned off restores it.
    configured: BTreeMap<ChannelId, ChannelProfile>,
    router: RwLock<Router>,
    config: GatewayConfig,
    clock: Arc<dyn Millis>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("channel {0} has no profile")]
    MissingProfile(ChannelId),
    #[error("profile {0} has no channel")]
    MissingChannel(ChannelId),
}

impl Gateway {
    /// A gateway over `channels`, each described by the profile with its id.
    pub fn new(
        channels: Vec<Arc<dyn Channel>>,
        profiles: Vec<ChannelProfile>,
        config: GatewayConfig,
        clock: Arc<dyn Millis>,
    ) -> Result<Gateway, GatewayError> {
        let by_id: BTreeMap<ChannelId, &ChannelProfile> =
            profiles.iter().map(|p| (p.id.clone(), p)).collect();
        let mut slots = BTreeMap::new();
        for channel in channels {
            let id = channel.id().clone();
            let profile = by_id.get(&id).ok_or_else(|| GatewayError::MissingProfile(id.clone()))?;
            slots.insert(
                id,
                Slot {
                    channel,
                    breaker: Mutex::new(Breaker::new(profile.breaker)),
                    health: Mutex::new(Window::new(
                        config.health_window_ms,
                        profile.breaker.slow_call_ms,
                    )),
                    limits: Limits::new(profile.limits),
                    counters: crate::model::Operation::ALL
                        .into_iter()
                        .map(|operation| (operation, OutcomeCounters::default()))
                        .collect(),
                    latency_ms: Default::default(),
                },
            );
        }
        if let Some(orphan) = by_id.keys().find(|id| !slots.contains_key(*id)) {
            return Err(GatewayError::MissingChannel(orphan.clone()));
        }
        Ok(Gateway {
            slots,
            configured: profiles.iter().map(|p| (p.id.clone(), p.clone())).collect(),
            router: RwLock::new(Router::new(profiles, config.scoring)),
            config,
            clock,
        })
    }

    fn router(&self) -> std::sync::RwLockReadGuard<'_, Router> {
        self.router.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn health(&self, channel: &ChannelId, now_ms: u64) -> HealthSnapshot {
        self.slots
            .get(channel)
            .map_or_else(HealthSnapshot::default, |slot| lock(&slot.health).snapshot(now_ms))
    }

    /// The best channel for `request` now, other than those in `excluding`: what a caller
    /// that must record its choice before calling (an order's state names its channel) uses.
    pub fn choose(&self, request: &ChannelRequest, excluding: &[ChannelId]) -> Option<ChannelId> {
        let now_ms = self.clock.now_ms();
        self.router()
            .rank(request, |channel| self.health(channel, now_ms))
            .into_iter()
            .map(|ranked| ranked.channel)
            .find(|channel| !excluding.contains(channel))
    }

    /// Authenticates and reads a callback that `channel` POSTed (its adapter knows how).
    pub fn read_callback(
        &self,
        channel: &ChannelId,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Option<Result<crate::channel::CallbackReport, crate::channel::ChannelError>> {
        self.slots.get(channel).map(|slot| slot.channel.read_callback(headers, body))
    }

    /// `channel`'s statement file of `day` (`YYYY-MM-DD`), as it published it; `None` for a
    /// channel the gateway does not have.
    pub async fn statement_file(
        &self,
        channel: &ChannelId,
        day: &str,
    ) -> Option<Result<crate::channel::StatementFile, crate::channel::ChannelError>> {
        let slot = self.slots.get(channel)?;
        Some(slot.channel.statement_file(day).await)
    }

    /// The ids of every channel the gateway has.
    pub fn channel_ids(&self) -> Vec<ChannelId> {
        self.slots.keys().cloned().collect()
    }

    /// Routes `request`: the best channel first, failing over while a channel certainly did
    /// nothing, stopping at the first answer that is final, processing or unknown.
    pub async fn execute(&self, request: &ChannelRequest) -> Routed {
        let now_ms = self.clock.now_ms();
        let ranked = self.router().rank(request, |channel| self.health(channel, now_ms));
        let mut attempts = Vec::new();
        for candidate in ranked.into_iter().take(self.config.attempts_max) {
            let outcome = self.call(&candidate.channel, request).await;
            attempts.push((candidate.channel.clone(), outcome.clone()));
            match &outcome {
                Outcome::Failed { reason, .. } if reason.retry_elsewhere() => continue,
                _ => return Routed { channel: Some(candidate.channel), outcome, attempts },
            }
        }
        let outcome = match attempts.last() {
            Some((_, outcome)) => outcome.clone(),
            None => Outcome::failed(FailureReason::NoRoute, "no channel accepts this request"),
        };
        Routed { channel: attempts.last().map(|(channel, _)| channel.clone()), outcome, attempts }
    }

    /// Sends `request` to one named channel (a refund goes where its debit went), with the
    /// same guards and no failover.
    pub async fn execute_on(&self, channel: &ChannelId, request: &ChannelRequest) -> Routed {
        let outcome = self.call(channel, request).await;
        Routed {
            channel: Some(channel.clone()),
            outcome: outcome.clone(),
            attempts: vec![(channel.clone(), outcome)],
        }
    }

    /// One guarded call.
    async fn call(&self, channel: &ChannelId, request: &ChannelRequest) -> Outcome {
        let Some(slot) = self.slots.get(channel) else {
            return Outcome::failed(FailureReason::NoRoute, format!("no channel {channel}"));
        };
        let counters = &slot.counters[&request.operation];
        let timeout_ms = self.router().profile(channel).map_or(10_000, |p| p.timeout_ms);
        let Some(permit) = lock(&slot.breaker).permit(self.clock.now_ms()) else {
            counters.not_attempted.fetch_add(1, Ordering::Relaxed);
            return Outcome::failed(FailureReason::NotAttempted, "circuit open");
        };
        let Some(_slot) = slot.limits.try_acquire() else {
            // The permit is given back as a non-event: a full channel is not a sick one.
            lock(&slot.breaker).record(
                self.clock.now_ms(),
                permit,
                CallEvent { error: false, latency_ms: 0 },
            );
            counters.not_attempted.fetch_add(1, Ordering::Relaxed);
            return Outcome::failed(
                FailureReason::NotAttempted,
                "channel at its rate or concurrency limit",
            );
        };
        let started = Instant::now();
        let outcome = match crate::wait::timed(tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            slot.channel.execute(request),
        ))
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Unknown { detail: format!("no answer within {timeout_ms} ms") },
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let error = matches!(
            outcome,
            Outcome::Unknown { .. }
                | Outcome::Failed { reason: FailureReason::ChannelUnavailable, .. }
        );
        let now_ms = self.clock.now_ms();
        lock(&slot.breaker).record(now_ms, permit, CallEvent { error, latency_ms });
        lock(&slot.health).record(now_ms, CallEvent { error, latency_ms });
        slot.latency_ms.record(latency_ms);
        let counter = match outcome {
            Outcome::Succeeded(_) => &counters.succeeded,
            Outcome::Failed { .. } => &counters.failed,
            Outcome::Processing => &counters.processing,
            Outcome::Unknown { .. } => &counters.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            channel = %channel, request_id = %request.request_id,
            operation = request.operation.as_str(), outcome = outcome.label(), latency_ms,
            "channel call"
        );
        outcome
    }

    /// Asks `channel` what became of `request_id` (status inquiry), bounded by its timeout.
    pub async fn inquire(
        &self,
        channel: &ChannelId,
        operation: crate::model::Operation,
        request_id: &crate::model::RequestId,
    ) -> Inquiry {
        let Some(slot) = self.slots.get(channel) else {
            return Inquiry::Unreachable { detail: format!("no channel {channel}") };
        };
        let timeout_ms = self.router().profile(channel).map_or(10_000, |p| p.timeout_ms);
        match tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            slot.channel.inquire(operation, request_id),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Inquiry::Unreachable { detail: format!("no answer within {timeout_ms} ms") },
        }
    }

    /// Applies an operator's change (pin, weight, disable…); it is logged and recorded.
    pub fn control(&self, change: ControlChange) -> Result<ChannelControl, RouterError> {
        self.router.write().unwrap_or_else(|poisoned| poisoned.into_inner()).apply(change)
    }

    /// Sets a channel's terms from the operators' switches: the fee rate routing weighs
    /// (per 10,000), the error rate (per thousand calls) that opens its breaker and the
    /// calls a second it takes; `None` for any restores the configured value. Idempotent: called on every read of the
    /// switches.
    pub fn set_terms(
        &self,
        channel: &ChannelId,
        fee_bps: Option<u32>,
        breaker_error_permille: Option<u64>,
        rate_per_sec: Option<u32>,
    ) {
        let Some(configured) = self.configured.get(channel) else { return };
        let fee_bps = fee_bps.unwrap_or(configured.fee_bps);
        if self.router().profile(channel).is_some_and(|p| p.fee_bps != fee_bps) {
            let mut router = self.router.write().unwrap_or_else(|p| p.into_inner());
            router.set_fee_bps(channel, fee_bps);
            tracing::info!(%channel, fee_bps, "channel fee rate set");
        }
        if let Some(slot) = self.slots.get(channel) {
            let permille = breaker_error_permille.unwrap_or(configured.breaker.error_permille_open);
            let mut breaker = lock(&slot.breaker);
            if breaker.error_permille_open() != permille {
                breaker.set_error_permille_open(permille);
                tracing::info!(%channel, permille, "channel breaker threshold set");
            }
            drop(breaker);
            let rate =
                rate_per_sec.and_then(std::num::NonZeroU32::new).or(configured.limits.rate_per_sec);
            if slot.limits.rate_per_sec() != rate {
                slot.limits.set_rate_per_sec(rate);
                tracing::info!(%channel, rate_per_sec = ?rate, "channel rate limit set");
            }
        }
    }

    /// A channel's configured profile, before any operator's switch.
    pub fn configured_profile(&self, channel: &ChannelId) -> Option<&ChannelProfile> {
        self.configured.get(channel)
    }

    /// A channel's operator controls now.
    pub fn channel_control(&self, channel: &ChannelId) -> Option<ChannelControl> {
        self.router().control(channel)
    }

    /// Every operator change so far.
    pub fn control_changes(&self) -> Vec<ControlChange> {
        self.router().changes().to_vec()
    }

    /// Every channel's breaker, controls and window.
    pub fn status(&self) -> Vec<ChannelStatus> {
        let now_ms = self.clock.now_ms();
        let router = self.router();
        self.slots
            .iter()
            .map(|(id, slot)| {
                let health = lock(&slot.health).snapshot(now_ms);
                let breaker = lock(&slot.breaker);
                ChannelStatus {
                    channel: id.clone(),
                    breaker: breaker.state(now_ms),
                    breaker_error_permille_open: breaker.error_permille_open(),
                    fee_bps: router.profile(id).map_or(0, |profile| profile.fee_bps),
                    rate_per_sec: slot.limits.rate_per_sec().map(|rate| rate.get()),
                    control: router.control(id).unwrap_or_default(),
                    window_calls: health.calls,
                    window_errors: health.errors,
                    window_mean_latency_ms: health.mean_latency_ms(),
                }
            })
            .collect()
    }

    /// Prometheus text: calls by channel, operation and outcome; latency; breaker state.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let now_ms = self.clock.now_ms();
        let _ = writeln!(out, "# TYPE qianbao_channel_calls_total counter");
        for (id, slot) in &self.slots {
            for (operation, counters) in &slot.counters {
                for (label, counter) in [
                    ("succeeded", &counters.succeeded),
                    ("failed", &counters.failed),
                    ("processing", &counters.processing),
                    ("unknown", &counters.unknown),
                    ("not_attempted", &counters.not_attempted),
                ] {
                    let _ = writeln!(
                        out,
                        "qianbao_channel_calls_total{{channel=\"{id}\",operation=\"{}\",outcome=\"{label}\"}} {}",
                        operation.as_str(),
                        counter.load(Ordering::Relaxed)
                    );
                }
            }
        }
        // In seconds, Prometheus's base unit; the window keeps milliseconds.
        let _ = writeln!(out, "# TYPE qianbao_channel_call_duration_seconds histogram");
        for (id, slot) in &self.slots {
            let cumulative = slot.latency_ms.cumulative();
            for (bound, count) in &cumulative {
                let le =
                    if *bound == u64::MAX { "+Inf".to_string() } else { seconds_of_ms(*bound) };
                let _ = writeln!(
                    out,
                    "qianbao_channel_call_duration_seconds_bucket{{channel=\"{id}\",le=\"{le}\"}} {count}"
                );
            }
            let count = cumulative.last().map_or(0, |(_, count)| *count);
            let _ = writeln!(
                out,
                "qianbao_channel_call_duration_seconds_sum{{channel=\"{id}\"}} {}",
                seconds_of_ms(slot.latency_ms.sum_ms())
            );
            let _ = writeln!(
                out,
                "qianbao_channel_call_duration_seconds_count{{channel=\"{id}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# TYPE qianbao_channel_breaker_state gauge");
        for (id, slot) in &self.slots {
            let _ = writeln!(
                out,
                "qianbao_channel_breaker_state{{channel=\"{id}\"}} {}",
                lock(&slot.breaker).state(now_ms).gauge()
            );
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds as decimal seconds, exactly (`1500` → `1.5`, `5` → `0.005`): integer
/// arithmetic, no float rounding in what Prometheus reads.
pub fn seconds_of_ms(ms: u64) -> String {
    let (whole, millis) = (ms / 1_000, ms % 1_000);
    if millis == 0 {
        return whole.to_string();
    }
    let fraction = format!("{millis:03}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod seconds_tests {
    use super::seconds_of_ms;

    #[test]
    fn milliseconds_print_as_exact_seconds() {
        for (ms, seconds) in
            [(0, "0"), (5, "0.005"), (50, "0.05"), (1_000, "1"), (1_500, "1.5"), (60_001, "60.001")]
        {
            assert_eq!(seconds_of_ms(ms), seconds);
        }
    }
}
