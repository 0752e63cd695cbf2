//! Per step and per operation: a latency histogram, the ok count, error counts by stable
//! code, and the summary that goes into the report.
//!
//! Only successful requests enter the latency histogram. A service that sheds load answers
//! `overloaded` in a millisecond; counting those answers would make percentiles look better
//! the more it refuses. Failures show up instead as error counts and as a lower achieved
//! rate, which counts successes only.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::knee::StepPoint;
use crate::scenario::{Operation, Step};
use crate::schedule::Completion;

/// The histogram's range: 1 µs to one hour at 3 significant digits. A slower answer is
/// recorded as one hour; no load test waits that long for one.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Error codes are short identifiers, so reports stay readable and groupable.
pub const ERROR_CODE_LEN_MAX: usize = 64;

/// A stable, machine-readable reason a request failed: lowercase ASCII letters, digits
/// and `_`, such as `overloaded` or `http_500`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ErrorCode(Cow<'static, str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error code {0:?} is not 1 to 64 characters of a-z, 0-9 and _")]
pub struct InvalidErrorCode(pub String);

impl ErrorCode {
    /// The service refused the request to protect itself (HTTP 429 or 503 with that code).
    pub const OVERLOADED: ErrorCode = ErrorCode(Cow::Borrowed("overloaded"));
    /// An operator switch turned the product or channel off.
    pub const SWITCHED_OFF: ErrorCode = ErrorCode(Cow::Borrowed("switched_off"));
    /// No answer within the client's deadline.
    pub const TIMEOUT: ErrorCode = ErrorCode(Cow::Borrowed("timeout"));
    /// The connection could not be made or broke before an answer.
    pub const CONNECTION: ErrorCode = ErrorCode(Cow::Borrowed("connection"));

    pub fn new(code: impl Into<String>) -> Result<ErrorCode, InvalidErrorCode> {
        let code = code.into();
        let allowed = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_';
        if code.is_empty() || code.len() > ERROR_CODE_LEN_MAX || !code.bytes().all(allowed) {
            return Err(InvalidErrorCode(code));
        }
        Ok(ErrorCode(Cow::Owned(code)))
    }

    /// An HTTP status without a more specific code, as `http_500`.
    pub fn http_status(status: u16) -> ErrorCode {
        ErrorCode(Cow::Owned(format!("http_{status}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ErrorCode {
    type Error = InvalidErrorCode;
    fn try_from(code: String) -> Result<ErrorCode, InvalidErrorCode> {
        ErrorCode::new(code)
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> String {
        code.0.into_owned()
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(ErrorCode),
}

/// What one operation (or all of them) did in one step, as it goes into the report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OperationSummary {
    pub n_ok: u64,
    pub n_errors_by_code: BTreeMap<ErrorCode, u64>,
    /// Successes per second of the step, in thousandths: whole requests per second would
    /// round a 5/s step's 4.98/s down to 4 and fail it at the 99% line.
    pub achieved_milli_per_s: u64,
    pub latency_us_p50: u64,
    pub latency_us_p90: u64,
    pub latency_us_p99: u64,
    pub latency_us_p999: u64,
    pub latency_us_max: u64,
}

impl OperationSummary {
    pub fn n_errors(&self) -> u64 {
        self.n_errors_by_code.values().sum()
    }
}

/// The running counts of one operation in one step.
#[derive(Debug, Clone)]
pub struct OperationStats {
    latency_us: Histogram<u64>,
    n_ok: u64,
    n_errors_by_code: BTreeMap<ErrorCode, u64>,
}

impl Default for OperationStats {
    fn default() -> OperationStats {
        OperationStats::new()
    }
}

impl OperationStats {
    pub fn new() -> OperationStats {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("constant bounds: 1 ≤ low, 2 × low ≤ high, 3 significant digits");
        OperationStats { latency_us, n_ok: 0, n_errors_by_code: BTreeMap::new() }
    }

    pub fn record(&mut self, completion: &Completion) {
        match completion.outcome() {
            Outcome::Ok => {
                self.n_ok += 1;
                self.latency_us.saturating_record(completion.latency_us());
            }
            Outcome::Failed(code) => *self.n_errors_by_code.entry(code.clone()).or_insert(0) += 1,
        }
    }

    /// The summary over a step of `duration_s` seconds (at least 1).
    pub fn summary(&self, duration_s: u32) -> OperationSummary {
        let latency = &self.latency_us;
        OperationSummary {
            n_ok: self.n_ok,
            n_errors_by_code: self.n_errors_by_code.clone(),
            achieved_milli_per_s: self.n_ok * 1000 / u64::from(duration_s.max(1)),
            latency_us_p50: latency.value_at_quantile(0.5),
            latency_us_p90: latency.value_at_quantile(0.9),
            latency_us_p99: latency.value_at_quantile(0.99),
            latency_us_p999: latency.value_at_quantile(0.999),
            latency_us_max: latency.max(),
        }
    }
}

/// The running counts of one step: every operation alone and all of them together.
#[derive(Debug, Clone)]
pub struct StepStats {
    step: Step,
    all: OperationStats,
    by_operation: BTreeMap<Operation, OperationStats>,
}

impl StepStats {
    pub fn new(step: Step) -> StepStats {
        StepStats { step, all: OperationStats::new(), by_operation: BTreeMap::new() }
    }

    pub fn record(&mut self, operation: Operation, completion: &Completion) {
        self.all.record(completion);
        self.by_operation.entry(operation).or_default().record(completion);
    }

    pub fn summary(&self) -> StepSummary {
        let duration_s = self.step.duration_s();
        StepSummary {
            offered_per_s: self.step.rate_per_s(),
            duration_s,
            all: self.all.summary(duration_s),
            by_operation: self
                .by_operation
                .iter()
                .map(|(&op, stats)| (op, stats.summary(duration_s)))
                .collect(),
        }
    }
}

/// What one step did, as it goes into the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    pub offered_per_s: u32,
    pub duration_s: u32,
    pub all: OperationSummary,
    pub by_operation: BTreeMap<Operation, OperationSummary>,
}

impl StepSummary {
    /// The numbers the knee finder looks at.
    pub fn point(&self) -> StepPoint {
        // Every arrival of a step is answered (or timed out) before the step ends: the
        // answers counted are the requests sent.
        let sent = self.all.n_ok + self.all.n_errors();
        StepPoint {
            offered_per_s: self.offered_per_s,
            sent_milli_per_s: sent * 1000 / u64::from(self.duration_s.max(1)),
            achieved_milli_per_s: self.all.achieved_milli_per_s,
            latency_us_p99: self.all.latency_us_p99,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::schedule::Arrival;

    fn completion(intended_us: u64, latency_us: u64, outcome: Outcome) -> Completion {
        Completion::new(Arrival::at_us(intended_us), intended_us + latency_us, outcome)
    }

    #[test]
    fn step_summary_counts_percentiles_and_rate() {
        let mut stats = StepStats::new(Step::new(100, 10).unwrap());
        // 990 successes at 1..=990 ms, spread over the step's 10 s.
        for request_idx in 0..990u64 {
            let latency_us = (request_idx + 1) * 1_000;
            stats.record(
                Operation::WalletPayment,
                &completion(request_idx * 10_000, latency_us, Outcome::Ok),
            );
        }
        for _ in 0..7 {
            stats.record(
                Operation::Topup,
                &completion(0, 5, Outcome::Failed(ErrorCode::OVERLOADED)),
            );
        }
        let http_500 = ErrorCode::http_status(500);
        for _ in 0..3 {
            stats.record(
                Operation::WalletPayment,
                &completion(0, 5, Outcome::Failed(http_500.clone())),
            );
        }
        let summary = stats.summary();
        assert_eq!((summary.offered_per_s, summary.duration_s), (100, 10));
        assert_eq!(summary.all.n_ok, 990);
        assert_eq!(summary.all.achieved_milli_per_s, 99_000);
        assert_eq!(summary.all.n_errors(), 10);
        assert_eq!(summary.all.n_errors_by_code[&ErrorCode::OVERLOADED], 7);
        assert_eq!(summary.by_operation[&Operation::WalletPayment].n_errors_by_code[&http_500], 3);
        assert_eq!(summary.by_operation[&Operation::Topup].n_ok, 0);
        // Fast failures stay out of the latencies: the lowest is the 1 ms success.
        let within =
            |actual: u64, expected_ms: u64| actual.abs_diff(expected_ms * 1_000) <= expected_ms;
        let all = &summary.all;
        assert!(within(all.latency_us_p50, 495), "p50 {}", all.latency_us_p50);
        assert!(within(all.latency_us_p90, 891), "p90 {}", all.latency_us_p90);
        assert!(within(all.latency_us_p99, 981), "p99 {}", all.latency_us_p99);
        assert!(within(all.latency_us_max, 990), "max {}", all.latency_us_max);
        assert!(
            all.latency_us_p999 >= all.latency_us_p99 && all.latency_us_p999 <= all.latency_us_max
        );
        assert_eq!(summary.point().achieved_milli_per_s, 99_000);
    }

    #[test]
    fn empty_stats_summarise_to_zeros() {
        let summary = OperationStats::new().summary(30);
        assert_eq!(summary, OperationSummary::default());
    }

    #[test]
    fn absurd_latencies_are_clamped_not_lost() {
        let mut stats = OperationStats::new();
        stats.record(&completion(0, u64::MAX / 2, Outcome::Ok));
        let summary = stats.summary(1);
        assert_eq!(summary.n_ok, 1);
        assert!(summary.latency_us_max >= LATENCY_US_MAX);
    }

    #[test]
    fn error_codes_are_checked() {
        assert_eq!(ErrorCode::new("switched_off").unwrap(), ErrorCode::SWITCHED_OFF);
        assert_eq!(ErrorCode::http_status(503).as_str(), "http_503");
        for bad in ["", "Overloaded", "http-500", "a b", &"x".repeat(65)] {
            assert!(ErrorCode::new(bad).is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&ErrorCode::TIMEOUT).unwrap();
        assert_eq!(json, "\"timeout\"");
        assert!(serde_json::from_str::<ErrorCode>("\"<b>\"").is_err());
    }
}
