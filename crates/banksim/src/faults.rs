//! Fault injection: what can go wrong on a channel, how often, and the reproducible draws
//! that decide it for each request.
//!
//! Why draws come from a hash and not from one seeded random stream: concurrent requests
//! arrive in a different order on every run, and a shared stream would hand them different
//! numbers each time. Hashing `(seed, channel, operation, request_id, attempt)` gives every
//! request its own numbers, so the same seed and the same requests give the same faults
//! however they interleave. `attempt` counts how often this channel has seen the request id
//! for this operation, so a retry gets fresh draws (a timed-out request can succeed on retry).

use sha2::{Digest, Sha256};

use crate::books::{FailureReason, OperationKind};

/// The random numbers of one request: an endless family of independent uniform draws,
/// addressed by a stream number.
#[derive(Debug, Clone)]
pub struct Draw {
    digest: [u8; 32],
}

/// Stream numbers of [`Draw::uniform`]: each decision reads its own stream, so adding a
/// decision never shifts the others.
pub mod stream {
    pub const FATE: u32 = 0;
    pub const LATENCY: u32 = 1;
    pub const DUPLICATE_CALLBACK: u32 = 2;
    /// The ids of an extra statement row.
    pub const EXTRA_ROW_ID: u32 = 3;
}

impl Draw {
    pub fn new(seed: u64, channel: &str, operation: &str, request_id: &str, attempt: u32) -> Draw {
        let mut hasher = Sha256::new();
        hasher.update(b"qianbao-banksim-draw-v1");
        hasher.update(seed.to_be_bytes());
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        for part in [channel, operation, request_id] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.update(attempt.to_be_bytes());
        Draw { digest: hasher.finalize().into() }
    }

    /// A uniform number in [0, 1) from the given stream.
    #[allow(clippy::float_arithmetic)] // probabilities, not money
    pub fn uniform(&self, stream: u32) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.bits(stream) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 64 uniform bits from the given stream (for made-up ids).
    pub fn bits(&self, stream: u32) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.digest);
        hasher.update(stream.to_be_bytes());
        let bytes: [u8; 32] = hasher.finalize().into();
        let mut head = [0u8; 8];
        head.copy_from_slice(&bytes[..8]);
        u64::from_be_bytes(head)
    }
}

/// Latency: `base_ms` plus an exponential tail with mean `tail_mean_ms`, capped at `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Latency {
    pub base_ms: u64,
    pub tail_mean_ms: u64,
    pub max_ms: u64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency { base_ms: 0, tail_mean_ms: 0, max_ms: 10_000 }
    }
}

impl Latency {
    #[allow(clippy::float_arithmetic)] // a duration, not money
    pub fn sample_ms(&self, uniform: f64) -> u64 {
        // Inverse CDF of the exponential distribution; 1 - u is in (0, 1], so ln is finite.
        let tail_ms = -(self.tail_mean_ms as f64) * (1.0 - uniform).ln();
        let tail_ms = if tail_ms.is_finite() { tail_ms.round() as u64 } else { 0 };
        self.base_ms.saturating_add(tail_ms).min(self.max_ms.max(self.base_ms))
    }
}

/// What the first answer to a late success is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateAnswer {
    /// `202` with status `processing`.
    #[default]
    Processing,
    /// No answer: the connection is held for `hold_ms`, then dropped.
    Timeout,
}

/// The faults of one operation kind on one channel. Rates are probabilities per request;
/// the six outcome rates are tried in the order listed and must add up to at most 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationFaults {
    pub latency: Latency,
    /// Failed with `declined`; logged, no money moves.
    pub declined_rate: f64,
    /// Failed with `insufficient_funds` whatever the balance.
    pub insufficient_funds_rate: f64,
    /// Failed with `invalid_account` whatever the account.
    pub invalid_account_rate: f64,
    /// Not executed and not logged; no answer (held `hold_ms`, then dropped).
    pub timeout_rate: f64,
    /// Executed and logged; no answer (held `hold_ms`, then dropped).
    pub lost_response_rate: f64,
    /// Logged as processing, answered as `late_answer` says, executed `late_delay_ms` later.
    pub late_success_rate: f64,
    pub late_answer: LateAnswer,
    pub late_delay_ms: u64,
    /// How long a request without an answer keeps its connection open: longer than the
    /// gateway's client timeout, to look like a bank that hangs.
    pub hold_ms: u64,
}

impl Default for OperationFaults {
    fn default() -> OperationFaults {
        OperationFaults {
            latency: Latency::default(),
            declined_rate: 0.0,
            insufficient_funds_rate: 0.0,
            invalid_account_rate: 0.0,
            timeout_rate: 0.0,
            lost_response_rate: 0.0,
            late_success_rate: 0.0,
            late_answer: LateAnswer::Processing,
            late_delay_ms: 1_000,
            hold_ms: 30_000,
        }
    }
}

/// Whether the channel answers at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Down {
    #[default]
    Off,
    /// Every channel request gets `503 channel_down`.
    Refuse,
    /// Every channel request's connection is closed without an answer.
    Drop,
}

/// All faults of one channel; replaced whole by `PUT /admin/channels/{channel}/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelFaults {
    pub down: Down,
    pub debit: OperationFaults,
    pub payout: OperationFaults,
    pub refund: OperationFaults,
    /// Only `latency`, `timeout_rate` and `hold_ms` apply to queries.
    pub query: OperationFaults,
    /// Probability that a delivered callback is delivered once more.
    pub duplicate_callback_rate: f64,
    /// What goes wrong on the daily statement.
    pub statement: StatementFaults,
    /// The most debits, payouts and refunds (together) the channel takes a second; `None` is
    /// no limit, and 0 is refused (a channel that takes nothing is `down`). A token bucket
    /// (`crate::throttle`) holding one second's worth: a request over capacity is answered
    /// `503 capacity_exceeded` before anything else happens to it (not logged, no money
    /// moved, no attempt counted), so the same request id sent later is a first execution.
    /// Status queries, statements and callback registrations do not count: real banks
    /// throttle inquiries apart from payments, and the gateway must be able to ask about an
    /// unknown outcome while the channel is saturated.
    pub capacity_per_s: Option<u32>,
}

/// Faults of the daily statement (对账单): the bill disagrees with the bank's own books, the
/// way real bills do, so that reconciliation has something to find. Each succeeded
/// operation draws once, from `(seed, channel, "statement", request id)`, so the same seed
/// and the same operations print the same bill; the rates are tried in the order listed and
/// must add up to at most 1. Summary rows always add up the rows actually printed.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatementFaults {
    /// The operation's row is not printed.
    pub missing_rate: f64,
    /// After the operation's row, a success nobody requested: a fresh request id and
    /// channel reference, the operation's type, amount, fee and time.
    pub extra_rate: f64,
    /// The row's amount is one minor unit more than the operation's.
    pub amount_rate: f64,
    /// The row's fee is one minor unit more than the fee charged.
    pub fee_rate: f64,
    /// The row is printed twice.
    pub duplicate_rate: f64,
    /// The row is printed on the next business day's bill instead (its time unchanged).
    pub next_day_rate: f64,
    /// The published SHA-256 is not the file's.
    pub bad_checksum: bool,
}

/// What the statement does with one succeeded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFate {
    Printed,
    Missing,
    Extra,
    Amount,
    Fee,
    Duplicate,
    NextDay,
}

impl StatementFaults {
    fn rates(&self) -> [(&'static str, f64, RowFate); 6] {
        [
            ("missing_rate", self.missing_rate, RowFate::Missing),
            ("extra_rate", self.extra_rate, RowFate::Extra),
            ("amount_rate", self.amount_rate, RowFate::Amount),
            ("fee_rate", self.fee_rate, RowFate::Fee),
            ("duplicate_rate", self.duplicate_rate, RowFate::Duplicate),
            ("next_day_rate", self.next_day_rate, RowFate::NextDay),
        ]
    }

    /// The fate of one operation's row; `draw` is the operation's statement draw.
    #[allow(clippy::float_arithmetic)] // probabilities, not money
    pub fn decide(&self, draw: &Draw) -> RowFate {
        let u = draw.uniform(stream::FATE);
        let mut cumulative = 0.0;
        for (_, rate, fate) in self.rates() {
            cumulative += rate;
            if u < cumulative {
                return fate;
            }
        }
        RowFate::Printed
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultConfigError {
    #[error("{field} must be between 0 and 1, got {value}")]
    Rate { field: String, value: f64 },
    #[error("the outcome rates of {operation} add up to {sum}, more than 1")]
    RateSum { operation: &'static str, sum: f64 },
    #[error(
        "capacity_per_s must be at least 1 (leave it out for no limit, or set down = \"refuse\" \
         for a channel that takes nothing), got 0"
    )]
    ZeroCapacity,
}

impl ChannelFaults {
    #[allow(clippy::float_arithmetic)] // probabilities, not money
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        if self.capacity_per_s == Some(0) {
            return Err(FaultConfigError::ZeroCapacity);
        }
        check_rate("duplicate_callback_rate", self.duplicate_callback_rate)?;
        let operations = [
            ("debit", &self.debit),
            ("payout", &self.payout),
            ("refund", &self.refund),
            ("query", &self.query),
        ];
        for (operation, faults) in operations {
            let rates = faults.outcome_rates();
            for (name, rate) in rates {
                check_rate(&format!("{operation}.{name}"), rate)?;
            }
            let sum: f64 = rates.iter().map(|(_, rate)| rate).sum();
            // A little slack for decimal fractions such as 0.1 + 0.2.
            if sum > 1.0 + 1e-9 {
                return Err(FaultConfigError::RateSum { operation, sum });
            }
        }
        let rates = self.statement.rates();
        for (name, rate, _) in rates {
            check_rate(&format!("statement.{name}"), rate)?;
        }
        let sum: f64 = rates.iter().map(|(_, rate, _)| rate).sum();
        if sum > 1.0 + 1e-9 {
            return Err(FaultConfigError::RateSum { operation: "statement", sum });
        }
        Ok(())
    }

    /// Every rate zero, every latency zero, no capacity limit: a channel that behaves
    /// perfectly.
    pub fn none() -> ChannelFaults {
        let zero = OperationFaults::default();
        ChannelFaults {
            down: Down::Off,
            debit: zero,
            payout: zero,
            refund: zero,
            query: zero,
            duplicate_callback_rate: 0.0,
            statement: StatementFaults::default(),
            capacity_per_s: None,
        }
    }
}

fn check_rate(field: &str, value: f64) -> Result<(), FaultConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(FaultConfigError::Rate { field: field.to_owned(), value })
    }
}

/// What fault injection does with one new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Execute now and answer.
    Execute,
    /// Log as failed with this reason and answer.
    Fail(FailureReason),
    /// Neither execute nor answer.
    Timeout,
    /// Execute, never answer.
    LostResponse,
    /// Log as processing, answer as `late_answer` says, execute later.
    LateSuccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub fate: Fate,
    pub latency_ms: u64,
}

impl OperationFaults {
    fn outcome_rates(&self) -> [(&'static str, f64); 6] {
        [
            ("declined_rate", self.declined_rate),
            ("insufficient_funds_rate", self.insufficient_funds_rate),
            ("invalid_account_rate", self.invalid_account_rate),
            ("timeout_rate", self.timeout_rate),
            ("lost_response_rate", self.lost_response_rate),
            ("late_success_rate", self.late_success_rate),
        ]
    }

    /// The fate of a debit, payout or refund.
    #[allow(clippy::float_arithmetic)] // probabilities, not money
    pub fn decide(&self, draw: &Draw) -> Decision {
        let latency_ms = self.latency.sample_ms(draw.uniform(stream::LATENCY));
        let fates = [
            Fate::Fail(FailureReason::Declined),
            Fate::Fail(FailureReason::InsufficientFunds),
            Fate::Fail(FailureReason::InvalidAccount),
            Fate::Timeout,
            Fate::LostResponse,
            Fate::LateSuccess,
        ];
        let u = draw.uniform(stream::FATE);
        let mut cumulative = 0.0;
        for ((_, rate), fate) in self.outcome_rates().into_iter().zip(fates) {
            cumulative += rate;
            if u < cumulative {
                return Decision { fate, latency_ms };
            }
        }
        Decision { fate: Fate::Execute, latency_ms }
    }

    /// The fate of a query: it is answered or it times out.
    pub fn decide_query(&self, draw: &Draw) -> Decision {
        let latency_ms = self.latency.sample_ms(draw.uniform(stream::LATENCY));
        let fate = if draw.uniform(stream::FATE) < self.timeout_rate {
            Fate::Timeout
        } else {
            Fate::Execute
        };
        Decision { fate, latency_ms }
    }
}

impl ChannelFaults {
    /// The faults of one operation kind.
    pub fn operation(&self, kind: OperationKind) -> &OperationFaults {
        match kind {
            OperationKind::Debit => &self.debit,
            OperationKind::Payout => &self.payout,
            OperationKind::Refund => &self.refund,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_every_part() {
        let base = Draw::new(42, "bank_a", "debit", "r1", 0).uniform(0);
        assert_eq!(base, Draw::new(42, "bank_a", "debit", "r1", 0).uniform(0));
        assert_ne!(base, Draw::new(43, "bank_a", "debit", "r1", 0).uniform(0));
        assert_ne!(base, Draw::new(42, "bank_b", "debit", "r1", 0).uniform(0));
        assert_ne!(base, Draw::new(42, "bank_a", "payout", "r1", 0).uniform(0));
        assert_ne!(base, Draw::new(42, "bank_a", "debit", "r2", 0).uniform(0));
        assert_ne!(base, Draw::new(42, "bank_a", "debit", "r1", 1).uniform(0));
        assert_ne!(base, Draw::new(42, "bank_a", "debit", "r1", 0).uniform(1));
    }

    #[test]
    #[allow(clippy::float_arithmetic)]
    fn rates_are_honoured_roughly() {
        let faults = OperationFaults { timeout_rate: 0.25, ..OperationFaults::default() };
        let n_timeouts = (0..4_000)
            .filter(|i| {
                faults.decide(&Draw::new(7, "c", "debit", &i.to_string(), 0)).fate == Fate::Timeout
            })
            .count();
        assert!((800..1_200).contains(&n_timeouts), "{n_timeouts}");
    }

    #[test]
    fn latency_is_capped() {
        let latency = Latency { base_ms: 10, tail_mean_ms: 1_000, max_ms: 50 };
        assert_eq!(latency.sample_ms(0.0), 10);
        assert_eq!(latency.sample_ms(0.999_999), 50);
    }
}
