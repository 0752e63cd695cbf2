//! Open-loop arrivals, the one way to record a completed request, and the seeded choices of
//! what each arrival does and for whom.
//!
//! Open loop: a step's send instants are fixed before it starts, from the offered rate
//! alone, so a slow answer never delays the next send. Latency runs from the *intended*
//! instant: a request that waited 300 ms for a free connection and then took 5 ms was a
//! 305 ms request for the customer. Measuring from the actual send would hide exactly the
//! stalls a load test is there to find (coordinated omission). [`Completion::new`] takes an
//! [`Arrival`], which only this module makes, so a latency cannot be taken from anywhere else.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Zipf};
use serde::{Deserialize, Serialize};

use crate::scenario::{Operation, OperationMix, Parties, Step};
use crate::stats::Outcome;

pub const MICROS_PER_S: u64 = 1_000_000;

/// How the arrivals of a step are spread over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Exactly `1 / rate` apart: repeatable, but gentler than real traffic.
    Even,
    /// Exponential gaps with mean `1 / rate`: the bursts that independent customers make.
    #[default]
    Poisson,
}

/// The random stream of a run. `StdRng` is reproducible for a given seed as long as the
/// locked `rand` version does not change, which is all a rerun of a scenario needs.
pub fn seeded_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// An intended send instant, in microseconds from the start of its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrival {
    intended_us: u64,
}

impl Arrival {
    /// Only the schedule (and this crate's tests) set intended instants.
    pub(crate) fn at_us(intended_us: u64) -> Arrival {
        Arrival { intended_us }
    }

    pub fn intended_us(self) -> u64 {
        self.intended_us
    }
}

/// The intended send instants of one step, sorted, each within `[0, duration)`.
pub fn arrivals(step: Step, arrivals: Arrivals, rng: &mut impl Rng) -> Vec<Arrival> {
    match arrivals {
        Arrivals::Even => arrivals_even(step),
        Arrivals::Poisson => arrivals_poisson(step, rng),
    }
}

/// `rate × duration` instants, the i-th at `i / rate` seconds, in integer microseconds.
pub fn arrivals_even(step: Step) -> Vec<Arrival> {
    let rate_per_s = u64::from(step.rate_per_s());
    let n_arrivals = rate_per_s * u64::from(step.duration_s());
    (0..n_arrivals)
        .map(|arrival_idx| Arrival::at_us(arrival_idx * MICROS_PER_S / rate_per_s))
        .collect()
}

/// A Poisson process of the step's rate: `rate × duration` instants on average.
// Exponential gaps need a logarithm, so this is sampling in floats; the instants leave as
// whole microseconds, far finer than any service answers.
#[allow(clippy::float_arithmetic)]
pub fn arrivals_poisson(step: Step, rng: &mut impl Rng) -> Vec<Arrival> {
    let duration_us = u64::from(step.duration_s()) * MICROS_PER_S;
    let n_expected = u64::from(step.rate_per_s()) * u64::from(step.duration_s());
    // A bound on the loop: a Poisson count this far above its mean does not happen.
    let n_arrivals_max = n_expected.saturating_mul(2).saturating_add(1_000);
    let mean_gap_us = MICROS_PER_S as f64 / f64::from(step.rate_per_s());
    let mut arrivals = Vec::with_capacity(usize::try_from(n_expected).unwrap_or(0));
    // Accumulated in f64 so that rounding does not drift over millions of gaps.
    let mut at_us = 0.0_f64;
    while (arrivals.len() as u64) < n_arrivals_max {
        let gap: f64 = Exp1.sample(rng);
        at_us += gap * mean_gap_us;
        if at_us >= duration_us as f64 {
            break;
        }
        arrivals.push(Arrival::at_us(at_us as u64));
    }
    arrivals
}

/// A finished request: when it should have been sent, when its answer came (on the same
/// clock, in microseconds from the start of the step), and how it ended. A request belongs
/// to the step of its intended instant, even if its answer comes after the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    intended_us: u64,
    completed_us: u64,
    outcome: Outcome,
}

impl Completion {
    pub fn new(arrival: Arrival, completed_us: u64, outcome: Outcome) -> Completion {
        Completion { intended_us: arrival.intended_us, completed_us, outcome }
    }

    pub fn intended_us(&self) -> u64 {
        self.intended_us
    }
    pub fn completed_us(&self) -> u64 {
        self.completed_us
    }
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// From the intended instant to the answer. An answer stamped before its intended
    /// instant (a clock that stepped back) counts as zero rather than wrapping.
    pub fn latency_us(&self) -> u64 {
        self.completed_us.saturating_sub(self.intended_us)
    }
}

/// Picks operations in proportion to the mix's weights.
#[derive(Debug, Clone)]
pub struct OperationPicker {
    operations: Vec<Operation>,
    /// `weight_ends[i]` is the sum of the weights of `operations[..=i]`.
    weight_ends: Vec<u64>,
}

impl OperationPicker {
    pub fn new(mix: &OperationMix) -> OperationPicker {
        let mut weight_total = 0;
        let (operations, weight_ends) = mix
            .weights()
            .map(|(operation, weight)| {
                weight_total += u64::from(weight);
                (operation, weight_total)
            })
            .unzip();
        OperationPicker { operations, weight_ends }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> Operation {
        // The mix guarantees a positive total, so both the range and the index are valid.
        let weight_total = self.weight_ends.last().copied().unwrap_or(1);
        let draw = rng.random_range(0..weight_total);
        let operation_idx = self.weight_ends.partition_point(|&weight_end| weight_end <= draw);
        self.operations[operation_idx]
    }
}

/// Picks customers `0..n_customers` by a Zipf law: customer `k` (from 0) is chosen in
/// proportion to `1 / (k + 1)^s`, so a few customers make much of the traffic.
#[derive(Debug, Clone, Copy)]
pub struct CustomerPicker {
    zipf: Zipf<f64>,
    n_customers: u32,
}

impl CustomerPicker {
    // The exponent is a sampling parameter, never money.
    #[allow(clippy::float_arithmetic)]
    pub fn new(parties: Parties) -> CustomerPicker {
        let exponent = f64::from(parties.zipf_exponent_permille()) / 1000.0;
        let zipf = Zipf::new(f64::from(parties.n_customers()), exponent)
            .expect("Parties guarantees at least one customer and a non-negative exponent");
        CustomerPicker { zipf, n_customers: parties.n_customers() }
    }

    /// Customers are `0..n_customers`.
    pub fn n_customers(&self) -> u32 {
        self.n_customers
    }

    pub fn pick(&self, rng: &mut impl Rng) -> u32 {
        // Zipf draws a whole number in [1, n] as a float; `as` is exact for those.
        let rank = self.zipf.sample(rng) as u32;
        rank.saturating_sub(1)
    }
}

/// Picks the merchant of a payment: merchant 0 takes the hot share, the rest is spread
/// evenly over merchants `1..n_merchants` (all to merchant 0 when there is only one).
#[derive(Debug, Clone, Copy)]
pub struct MerchantPicker {
    n_merchants: u32,
    hot_merchant_share_permille: u32,
}

impl MerchantPicker {
    pub fn new(parties: Parties) -> MerchantPicker {
        MerchantPicker {
            n_merchants: parties.n_merchants(),
            hot_merchant_share_permille: parties.hot_merchant_share_permille(),
        }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> u32 {
        if self.n_merchants <= 1 || rng.random_range(0..1000) < self.hot_merchant_share_permille {
            return 0;
        }
        rng.random_range(1..self.n_merchants)
    }
}

#[cfg(test)]
mod tests;
