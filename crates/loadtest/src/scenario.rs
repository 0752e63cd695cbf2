//! Scenario files: what load to offer, in which mix of operations, to which parties, and
//! against which SLO.
//!
//! A scenario is read in two stages. Serde reads the TOML into private `*File` structs that
//! mirror the file and reject unknown keys (a misspelt key must fail, never fall back to a
//! default). [`Scenario::from_toml`] then checks every rule and builds a [`Scenario`] whose
//! fields are private, so nothing downstream ever sees an unchecked value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::profile::ChannelProfile;
use crate::schedule::Arrivals;

mod file;

/// Limits that keep one scenario within what a single load-generating process can hold:
/// the schedule of a step is materialised in memory (8 bytes per arrival).
pub const STEPS_MAX: usize = 1_000;
pub const RATE_PER_S_MAX: u32 = 1_000_000;
pub const STEP_DURATION_S_MAX: u32 = 86_400;
pub const ARRIVALS_PER_STEP_MAX: u64 = 20_000_000;
pub const ZIPF_EXPONENT_PERMILLE_MAX: u32 = 10_000;
pub const NAME_LEN_MAX: usize = 200;

/// A product operation the load tool can issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Topup,
    WalletPayment,
    PointsCashPayment,
    CardPayment,
    Refund,
    WalletTransfer,
    Withdrawal,
    ReadOrder,
    ReadBalance,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::Topup,
        Operation::WalletPayment,
        Operation::PointsCashPayment,
        Operation::CardPayment,
        Operation::Refund,
        Operation::WalletTransfer,
        Operation::Withdrawal,
        Operation::ReadOrder,
        Operation::ReadBalance,
    ];

    /// The name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Topup => "topup",
            Operation::WalletPayment => "wallet_payment",
            Operation::PointsCashPayment => "points_cash_payment",
            Operation::CardPayment => "card_payment",
            Operation::Refund => "refund",
            Operation::WalletTransfer => "wallet_transfer",
            Operation::Withdrawal => "withdrawal",
            Operation::ReadOrder => "read_order",
            Operation::ReadBalance => "read_balance",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scenario was refused. `field` is the dotted path of the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("not a valid scenario file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("{field}: must not be empty")]
    Empty { field: String },
    #[error("{field}: must be greater than zero")]
    Zero { field: String },
    #[error("{field}: {value} is above the limit of {max}")]
    TooLarge { field: String, value: u64, max: u64 },
    #[error("{field}: {first} and {second} are in the wrong order")]
    Reversed { field: String, first: u64, second: u64 },
    #[error("{field}: {text:?} is not a decimal number with at most three decimal places")]
    Decimal { field: String, text: String },
    #[error("{field}: give it either as a decimal or in permille, not both")]
    Both { field: String },
    #[error("{field}: missing; {hint}")]
    Missing { field: String, hint: &'static str },
}

/// One step of offered load: `rate_per_s` requests per second for `duration_s` seconds.
/// Both are at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    rate_per_s: u32,
    duration_s: u32,
}

impl Step {
    pub fn new(rate_per_s: u32, duration_s: u32) -> Result<Step, ScenarioError> {
        check_positive("steps.rate_per_s", rate_per_s, RATE_PER_S_MAX)?;
        check_positive("steps.duration_s", duration_s, STEP_DURATION_S_MAX)?;
        let n_arrivals = u64::from(rate_per_s) * u64::from(duration_s);
        if n_arrivals > ARRIVALS_PER_STEP_MAX {
            let field = "steps.rate_per_s × steps.duration_s".to_owned();
            return Err(ScenarioError::TooLarge {
                field,
                value: n_arrivals,
                max: ARRIVALS_PER_STEP_MAX,
            });
        }
        Ok(Step { rate_per_s, duration_s })
    }

    pub fn rate_per_s(&self) -> u32 {
        self.rate_per_s
    }

    pub fn duration_s(&self) -> u32 {
        self.duration_s
    }
}

/// The weighted mix of operations; weights are relative and add up to more than zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationMix {
    weights: BTreeMap<Operation, u32>,
}

impl OperationMix {
    pub fn new(weights: BTreeMap<Operation, u32>) -> Result<OperationMix, ScenarioError> {
        if weights.values().all(|&weight| weight == 0) {
            return Err(ScenarioError::Zero { field: "mix (sum of weights)".to_owned() });
        }
        Ok(OperationMix { weights })
    }

    /// The operations with a weight above zero, in a fixed order.
    pub fn weights(&self) -> impl Iterator<Item = (Operation, u32)> + '_ {
        self.weights.iter().filter(|(_, &weight)| weight > 0).map(|(&op, &weight)| (op, weight))
    }

    pub fn weight_total(&self) -> u64 {
        self.weights.values().map(|&weight| u64::from(weight)).sum()
    }
}

/// Who takes part: customers `0..n_customers` chosen by a Zipf law (customer 0 the most
/// active), merchants `0..n_merchants` of which merchant 0 is hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parties {
    n_customers: u32,
    n_merchants: u32,
    hot_merchant_share_permille: u32,
    zipf_exponent_permille: u32,
}

impl Parties {
    pub fn n_customers(&self) -> u32 {
        self.n_customers
    }
    pub fn n_merchants(&self) -> u32 {
        self.n_merchants
    }
    /// Share of payments that go to merchant 0, in thousandths.
    pub fn hot_merchant_share_permille(&self) -> u32 {
        self.hot_merchant_share_permille
    }
    /// The Zipf exponent `s` in thousandths: 0 is uniform, 1000 is classic Zipf.
    pub fn zipf_exponent_permille(&self) -> u32 {
        self.zipf_exponent_permille
    }
}

/// A checked scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    name: String,
    seed: u64,
    slo_p99_ms: u32,
    warmup_s: u32,
    arrivals: Arrivals,
    steps: Vec<Step>,
    mix: OperationMix,
    parties: Parties,
    channels: BTreeMap<String, ChannelProfile>,
}

impl Scenario {
    /// Reads and checks a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        file::check(toml::from_str(text)?)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn slo_p99_ms(&self) -> u32 {
        self.slo_p99_ms
    }
    /// Seconds of load at the first step's rate, offered before the first step and left
    /// out of every statistic, so that cold caches and connection set-up do not count
    /// against the service.
    pub fn warmup_s(&self) -> u32 {
        self.warmup_s
    }
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals
    }
    /// At least one step.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    pub fn mix(&self) -> &OperationMix {
        &self.mix
    }
    pub fn parties(&self) -> Parties {
        self.parties
    }
    pub fn channels(&self) -> &BTreeMap<String, ChannelProfile> {
        &self.channels
    }
}

/// Refuses zero and values above `max`, naming the field.
fn check_positive(field: &str, value: u32, max: u32) -> Result<(), ScenarioError> {
    if value == 0 {
        return Err(ScenarioError::Zero { field: field.to_owned() });
    }
    if value > max {
        return Err(ScenarioError::TooLarge {
            field: field.to_owned(),
            value: value.into(),
            max: max.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
