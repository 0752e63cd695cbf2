//! Degradation under overload (降级, 限流): every request is admitted by its priority class —
//! money-moving writes, then reads, then bulk and reporting — each under a concurrency limit
//! that adapts to the latency it sees (AIMD: up by one per limit's worth of requests answered
//! within the class's target, down by a tenth when one is slower or the ledger says it is
//! overloaded). Pressure flows down: a slow or overloaded answer of a class also halves the
//! limits of every class below it, so as the service slows bulk is shed first, then reads,
//! and money-moving writes keep their latency. What is over its class's limit is answered at
//! once with 503 `overloaded` and `Retry-After`, never left to time out.
//!
//! Written here rather than taken from a crate: tower offers fixed limits (`ConcurrencyLimit`)
//! and load shedding without classes; no well-kept crate adapts a limit per priority class.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

pub mod early;

/// A request's priority, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Money-moving writes: payments, top-ups, withdrawals, transfers, refunds…
    Write,
    /// Reads of one thing or a page.
    Read,
    /// Bulk and reporting: ledger batches, payout batches, statements, exports, history.
    Bulk,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Write, Class::Read, Class::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Write => "write",
            Class::Read => "read",
            Class::Bulk => "bulk",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Class::Write => 0,
            Class::Read => 1,
            Class::Bulk => 2,
        }
    }
}

/// What a request is, by method and path; `None`: never shed (operators' endpoints, keys,
/// channel callbacks, health, metrics, the document).
pub fn class_of(method: &Method, path: &str) -> Option<Class> {
    // The first five segments, without allocating: this runs for every request, refused ones
    // included. A longer path is seen as its first five, which only the `..` patterns match.
    let mut segments = [""; 5];
    let mut n_segments = 0;
    for (slot, segment) in segments.iter_mut().zip(path.trim_end_matches('/').split('/').skip(1)) {
        *slot = segment;
        n_segments += 1;
    }
    match &segments[..n_segments] {
        ["v1", "ops", ..] | ["v1", "keys", ..] | ["v1", "openapi.json"] => None,
        ["v1", "transfers", "batch"]
        | ["v1", "merchants", _, "payout-batches"]
        | ["v1", "recon", "statements", ..]
        | ["v1", "recon", "runs"]
        | ["v1", "recon", "checks"]
        | ["v1", "recon", "days", ..]
        | ["v1", "journal", "verify"]
        | ["v1", "trial-balance"] => Some(Class::Bulk),
        ["v1", "orders"] | ["v1", "events"] | ["v1", "accounts", _, "entries"]
            if *method == Method::GET =>
        {
            Some(Class::Bulk)
        }
        ["v1", ..] if *method == Method::GET => Some(Class::Read),
        ["v1", ..] => Some(Class::Write),
        _ => None,
    }
}

/// One class's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassConfig {
    /// The limit never goes below this (the class always gets some service) nor above `max`;
    /// while a class above is under pressure, the class admits no more than this.
    pub min: u64,
    pub max: u64,
    /// Answered within this, a request lets the limit grow; slower, it shrinks. `None`: only
    /// an overloaded answer shrinks it. The latency is the service's own: the time the
    /// request waited on channels (a bank's latency says nothing of this node's load) is
    /// taken off first (`channels::wait`).
    pub target_latency_us: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    pub enabled: bool,
    /// Indexed by [`Class`]: writes, reads, bulk.
    pub classes: [ClassConfig; 3],
}

impl Default for AdmissionConfig {
    /// Targets well above this service's normal latencies (single-digit milliseconds,
    /// without the banks'), so the limits stay at their top until the service is really
    /// slowed, and then hold the queue inside the service to about the target's worth of
    /// work: beyond it, a request waits longer than a client should, and is better answered
    /// `overloaded` at once.
    fn default() -> AdmissionConfig {
        AdmissionConfig {
            enabled: true,
            classes: [
                ClassConfig { min: 8, max: 1_024, target_latency_us: Some(100_000) },
                ClassConfig { min: 2, max: 512, target_latency_us: Some(100_000) },
                ClassConfig { min: 1, max: 64, target_latency_us: Some(2_000_000) },
            ],
        }
    }
}

/// The AIMD limit of one class, in thousandths of a request (so growth by 1/limit is exact
/// enough in integers).
#[derive(Debug)]
struct Limit {
    milli: u64,
    config: ClassConfig,
}

impl Limit {
    fn new(config: ClassConfig) -> Limit {
        Limit { milli: config.max.saturating_mul(1_000), config }
    }

    fn whole(&self) -> u64 {
        self.milli / 1_000
    }

    /// Whether an answer this slow (or overloaded) is pressure for this class.
    fn is_pressure(&self, latency_us: u64, overloaded: bool) -> bool {
        overloaded || self.config.target_latency_us.is_some_and(|target| latency_us > target)
    }

    /// One good answer: a limit's worth of them grows the limit by one.
    fn grow(&mut self) {
        let max = self.config.max * 1_000;
        self.milli = (self.milli + 1_000 / self.whole().max(1)).min(max);
    }

    /// Shrinks by `tenths` tenths, never below the floor.
    fn shrink(&mut self, tenths: u64) {
        let min = self.config.min * 1_000;
        self.milli = (self.milli - self.milli / 10 * tenths).max(min);
    }
}

/// How long pressure on a class keeps the classes below it from growing back: without this
/// hold, cheap reads answered quickly regrow their limit within milliseconds of being cut,
/// and take back the capacity the writes above them were short of.
pub const PRESSURE_HOLD_MS: u64 = 1_000;

/// Each class's limit, and when each last met pressure.
#[derive(Debug)]
struct Limits {
    limits: [Limit; 3],
    pressure_at: [Option<Instant>; 3],
}

impl Limits {
    /// Whether a class above `class` met pressure within [`PRESSURE_HOLD_MS`] of `now`.
    fn held(&self, class: Class, now: Instant) -> bool {
        let hold = std::time::Duration::from_millis(PRESSURE_HOLD_MS);
        self.pressure_at[..class.index()]
            .iter()
            .flatten()
            .any(|at| now.saturating_duration_since(*at) < hold)
    }

    /// What `class` may have in flight now: its limit, or while a class above it is under
    /// pressure, its floor. Measured (docs/bench/overload.md): admitting nothing below a
    /// class under pressure starves the lower class and does not help the one above, whose
    /// latency under overload comes from refusing the excess, not from the few cheap reads.
    fn admitting(&self, class: Class, now: Instant) -> u64 {
        let limit = &self.limits[class.index()];
        if self.held(class, now) {
            limit.whole().min(limit.config.min)
        } else {
            limit.whole()
        }
    }
}

/// The admission of one node: each class's in-flight count and limit.
#[derive(Debug)]
pub struct Admission {
    enabled: bool,
    in_flight: [AtomicU64; 3],
    /// Together: an answer of one class changes the classes below it too.
    limits: Mutex<Limits>,
    /// What each class admits ([`Limits::admitting`]) as of the last answer, so admitting
    /// takes no lock: with requests in flight answers come often, and with none in flight
    /// every class admits at least its floor.
    admitting: [AtomicU64; 3],
    rejected: [AtomicU64; 3],
}

/// A request admitted: released (and its latency recorded) when dropped or finished.
pub struct Permit<'a> {
    admission: &'a Admission,
    class: Class,
    started: Instant,
}

impl Permit<'_> {
    /// The request is answered: `overloaded` when the ledger or the store said so;
    /// `channel_wait_us` of its latency was spent waiting on channels, not on this service.
    pub fn finish(self, overloaded: bool, channel_wait_us: u64) {
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let service_us = latency_us.saturating_sub(channel_wait_us);
        self.admission.record(self.class, service_us, overloaded);
        // Dropped below: released.
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.in_flight[self.class.index()].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Admission {
        Admission {
            enabled: config.enabled,
            in_flight: Default::default(),
            limits: Mutex::new(Limits {
                limits: config.classes.map(Limit::new),
                pressure_at: [None; 3],
            }),
            admitting: config.classes.map(|class| AtomicU64::new(class.max)),
            rejected: Default::default(),
        }
    }

    pub fn limit(&self, class: Class) -> u64 {
        self.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).limits[class.index()]
            .whole()
    }

    /// Records one answer of `class`: its limit grows or shrinks by a tenth; pressure also
    /// halves every class below it, and keeps them from growing for [`PRESSURE_HOLD_MS`].
    fn record(&self, class: Class, latency_us: u64, overloaded: bool) {
        self.record_at(class, latency_us, overloaded, Instant::now());
    }

    fn record_at(&self, class: Class, latency_us: u64, overloaded: bool, now: Instant) {
        let mut state = self.limits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = class.index();
        if !state.limits[index].is_pressure(latency_us, overloaded) {
            if !state.held(class, now) {
                state.limits[index].grow();
            }
        } else {
            state.pressure_at[index] = Some(now);
            state.limits[index].shrink(1);
            for lower in state.limits.iter_mut().skip(index + 1) {
                lower.shrink(5);
            }
        }
        for class in Class::ALL {
            self.admitting[class.index()].store(state.admitting(class, now), Ordering::Release);
        }
    }

    /// Whether a request of `class` would be refused now: its class is at what it admits.
    /// Lock-free, for [`early::ShedEarlyLayer`], which refuses before any other work.
    pub fn refuses_now(&self, class: Class) -> bool {
        let index = class.index();
        self.enabled
            && self.in_flight[index].load(Ordering::Acquire)
                >= self.admitting[index].load(Ordering::Acquire)
    }

    /// Admits a request of `class` if its class is under its limit.
    pub fn admit(&self, class: Class) -> Option<Permit<'_>> {
        let index = class.index();
        let limit = self.admitting[index].load(Ordering::Acquire);
        let admitted = self.in_flight[index]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (!self.enabled || n < limit).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.count_refused(class);
            return None;
        }
        Some(Permit { admission: self, class, started: Instant::now() })
    }

    /// Counts a request of `class` refused, here or by [`early::ShedEarlyLayer`].
    pub(crate) fn count_refused(&self, class: Class) {
        self.rejected[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text: each class's limit, requests in flight and requests shed.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE qianbao_admission_limit gauge");
        for class in Class::ALL {
            let _ = writeln!(
                out,
                "qianbao_admission_limit{{class=\"{}\"}} {}",
                class.as_str(),
                self.limit(class)
            );
        }
        let _ = writeln!(out, "# TYPE qianbao_admission_in_flight gauge");
        for class in Class::ALL {
            let n = self.in_flight[class.index()].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "qianbao_admission_in_flight{{class=\"{}\"}} {n}", class.as_str());
        }
        let _ = writeln!(out, "# TYPE qianbao_admission_shed_total counter");
        for class in Class::ALL {
            let n = self.rejected[class.index()].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "qianbao_admission_shed_total{{class=\"{}\"}} {n}", class.as_str());
        }
    }
}

/// Admits each request by its class, or answers 503 `overloaded` with `Retry-After: 1`.
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(class) = class_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let Some(permit) = state.admission.admit(class) else {
        return overloaded(class).into_response();
    };
    let channel_wait_us = std::sync::Arc::new(AtomicU64::new(0));
    let response = channels::wait::scope(channel_wait_us.clone(), next.run(request)).await;
    permit.finish(is_overload(&response), channel_wait_us.load(Ordering::Relaxed));
    response
}

/// The answer to a request of `class` refused: 503 `overloaded`, `Retry-After: 1`.
fn overloaded(class: Class) -> ApiError {
    let mut error = ApiError::unavailable(
        "overloaded",
        format!("the service is shedding {} requests under load; retry shortly", class.as_str()),
    );
    error.retry_after_secs = Some(1);
    error
}

/// Whether an answer says the service is overloaded: the ledger's queue full, a store or the
/// ledger unreachable. A refusal by a switch, a rate limit or a rule is not.
fn is_overload(response: &Response) -> bool {
    response.extensions().get::<crate::error::ErrorCode>().is_some_and(|code| {
        matches!(code.0.as_str(), "ledger_overloaded" | "ledger_unavailable" | "store_unavailable")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: u64) -> AdmissionConfig {
        let class = ClassConfig { min: 1, max, target_latency_us: Some(1_000) };
        AdmissionConfig { enabled: true, classes: [class; 3] }
    }

    #[test]
    fn a_class_over_its_limit_is_shed_and_the_others_are_not() {
        let admission = Admission::new(config(2));
        let first = admission.admit(Class::Bulk).expect("first");
        let _second = admission.admit(Class::Bulk).expect("second");
        assert!(admission.admit(Class::Bulk).is_none(), "over the bulk limit");
        assert!(admission.admit(Class::Write).is_some(), "writes have their own limit");
        drop(first);
        assert!(admission.admit(Class::Bulk).is_some(), "released");
        let mut text = String::new();
        admission.render_metrics(&mut text);
        assert!(text.contains("qianbao_admission_shed_total{class=\"bulk\"} 1"), "{text}");
    }

    #[test]
    fn slow_answers_shrink_a_limit_and_fast_ones_grow_it_back_within_bounds() {
        let admission = Admission::new(config(10));
        assert_eq!(admission.limit(Class::Write), 10);
        for _ in 0..100 {
            admission.record(Class::Write, 5_000, false);
        }
        assert_eq!(admission.limit(Class::Write), 1, "down to its floor, never below");
        admission.record(Class::Write, 10, true);
        assert_eq!(admission.limit(Class::Write), 1, "overloaded at the floor stays there");
        admission.record(Class::Write, 10, false);
        assert_eq!(admission.limit(Class::Write), 2, "one more after a limit's worth");
        for _ in 0..1_000 {
            admission.record(Class::Write, 10, false);
        }
        assert_eq!(admission.limit(Class::Write), 10, "back to its ceiling, never above");
    }

    #[test]
    fn pressure_flows_down_bulk_is_shed_first_then_reads_and_writes_last() {
        let admission = Admission::new(AdmissionConfig::default());
        // Reads slow to 150 ms (over their 100 ms target); writes wait seconds on a bank
        // but take 20 ms of the service's own (the middleware takes the bank's part off);
        // bulk answers are within their own (seconds) target. Reads shrink, bulk shrinks
        // faster, writes keep their whole limit.
        for _ in 0..20 {
            admission.record(Class::Write, 20_000, false);
            admission.record(Class::Bulk, 150_000, false);
            admission.record(Class::Read, 150_000, false);
        }
        let (write, read, bulk) = (
            admission.limit(Class::Write),
            admission.limit(Class::Read),
            admission.limit(Class::Bulk),
        );
        assert_eq!(write, 1_024, "writes keep their limit");
        assert!(read < 512 && read > 4, "reads shed some: {read}");
        assert_eq!(bulk, 1, "bulk shed to its floor: {bulk}");
        // Writes overloaded too (the ledger's queue full): everything below at its floor.
        for _ in 0..50 {
            admission.record(Class::Write, 5_000, true);
        }
        assert_eq!(
            (
                admission.limit(Class::Write),
                admission.limit(Class::Read),
                admission.limit(Class::Bulk)
            ),
            (8, 2, 1)
        );
    }

    #[test]
    fn writes_slowed_by_the_service_itself_shrink_and_a_banks_wait_does_not_count() {
        let admission = Admission::new(AdmissionConfig::default());
        for _ in 0..20 {
            admission.record(Class::Write, 400_000, false);
        }
        assert!(admission.limit(Class::Write) < 200, "{}", admission.limit(Class::Write));
        // Through a permit: 2 s waited on a bank, the rest quick — no pressure.
        let admission = Admission::new(AdmissionConfig::default());
        for _ in 0..20 {
            let permit = admission.admit(Class::Write).expect("admitted");
            permit.finish(false, 2_000_000);
        }
        assert_eq!(admission.limit(Class::Write), 1_024);
    }

    #[test]
    fn below_a_class_under_pressure_nothing_grows_back_until_the_pressure_is_over() {
        let admission = Admission::new(AdmissionConfig::default());
        let start = Instant::now();
        admission.record_at(Class::Write, 400_000, false, start);
        let read_cut = admission.limit(Class::Read);
        assert!(read_cut <= 256, "halved: {read_cut}");
        // Reads answered fast right after: held where they are.
        for _ in 0..10_000 {
            admission.record_at(Class::Read, 1_000, false, start);
        }
        assert_eq!(admission.limit(Class::Read), read_cut);
        // Writes themselves may grow back meanwhile; reads once the hold is over.
        let later = start + std::time::Duration::from_millis(PRESSURE_HOLD_MS + 1);
        for _ in 0..10_000 {
            admission.record_at(Class::Read, 1_000, false, later);
        }
        assert!(admission.limit(Class::Read) > read_cut);
    }

    #[test]
    fn while_writes_are_under_pressure_reads_are_admitted_only_to_their_floor() {
        let admission = Admission::new(AdmissionConfig::default());
        admission.record(Class::Write, 400_000, false);
        let floor = AdmissionConfig::default().classes[Class::Read.index()].min;
        let admitted: Vec<_> = (0..10).map_while(|_| admission.admit(Class::Read)).collect();
        assert_eq!(admitted.len() as u64, floor);
        assert!(admission.admit(Class::Write).is_some(), "writes are not held by themselves");
    }

    #[test]
    fn only_overload_answers_count_as_overload() {
        let answer = |code: &str| ApiError::unavailable(code, "x").into_response();
        assert!(is_overload(&answer("store_unavailable")));
        assert!(is_overload(&answer("ledger_unavailable")));
        assert!(is_overload(
            &ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "ledger_overloaded", "x")
                .into_response()
        ));
        // A switch's refusal, a per-key rate limit: not this service being overloaded.
        assert!(!is_overload(&answer("switched_off")));
        assert!(!is_overload(
            &ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", "x")
                .into_response()
        ));
    }

    #[test]
    fn requests_are_classed_by_priority() {
        assert_eq!(class_of(&Method::POST, "/v1/payments"), Some(Class::Write));
        assert_eq!(class_of(&Method::POST, "/v1/transfers"), Some(Class::Write));
        assert_eq!(class_of(&Method::GET, "/v1/orders/pay_1"), Some(Class::Read));
        assert_eq!(class_of(&Method::GET, "/v1/accounts/1/balance"), Some(Class::Read));
        assert_eq!(class_of(&Method::GET, "/v1/orders"), Some(Class::Bulk));
        assert_eq!(class_of(&Method::POST, "/v1/transfers/batch"), Some(Class::Bulk));
        assert_eq!(
            class_of(&Method::GET, "/v1/recon/days/2026-12-06/merchants.csv"),
            Some(Class::Bulk)
        );
        // Paths longer than the five segments looked at, and trailing slashes.
        assert_eq!(
            class_of(&Method::POST, "/v1/ops/inquiries/bank_a/req_1/outcome"),
            None,
            "operators' endpoints are never shed"
        );
        assert_eq!(class_of(&Method::GET, "/v1/a/b/c/d/e/f"), Some(Class::Read));
        assert_eq!(class_of(&Method::POST, "/v1/merchants/m_1/payout-batches/"), Some(Class::Bulk));
        assert_eq!(
            class_of(&Method::POST, "/v1/merchants/m_1/payout-batches/x"),
            Some(Class::Write)
        );
        for (method, path) in [
            (Method::POST, "/v1/ops/switches"),
            (Method::GET, "/healthz"),
            (Method::GET, "/metrics"),
            (Method::POST, "/channel-callbacks/bank_a"),
            (Method::POST, "/v1/keys"),
        ] {
            assert_eq!(class_of(&method, path), None, "{path}");
        }
    }
}
