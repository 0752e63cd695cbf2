//! The simulator profile of one channel in a scenario: how slow, how picky, how big and
//! when broken the simulated bank should be while the load runs.
//!
//! The profile is plain data read from the scenario file; [`crate::scenario::Scenario`]
//! checks it (see `ChannelProfile::check`) before anyone else sees it.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::scenario::ScenarioError;

/// The simulated answer time of a channel, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyMs {
    /// Always the same.
    Fixed { ms: u32 },
    /// Uniform over `[min_ms, max_ms]`.
    Uniform { min_ms: u32, max_ms: u32 },
    /// Log-normal, fitted so that its median is `p50_ms` and its 99th percentile `p99_ms`:
    /// the long right tail real banks have, described by the two numbers people quote.
    Lognormal { p50_ms: u32, p99_ms: u32 },
}

/// The standard normal's 99th percentile: a log-normal's p99 is `p50 * exp(Z_P99 * sigma)`.
const Z_P99: f64 = 2.326_347_874_040_840_8;

impl LatencyMs {
    /// Draws one answer time.
    // Sampling a continuous distribution: the floats never touch money, and the result is
    // rounded to whole milliseconds at once.
    #[allow(clippy::float_arithmetic)]
    pub fn sample_ms(&self, rng: &mut impl Rng) -> u32 {
        match *self {
            LatencyMs::Fixed { ms } => ms,
            LatencyMs::Uniform { min_ms, max_ms } => rng.random_range(min_ms..=max_ms),
            LatencyMs::Lognormal { p50_ms, p99_ms } => {
                let median_ms = f64::from(p50_ms.max(1));
                let sigma = (f64::from(p99_ms.max(1)) / median_ms).ln().max(0.0) / Z_P99;
                let normal: f64 = StandardNormal.sample(rng);
                let ms = median_ms * (sigma * normal).exp();
                // `as` saturates, so a freak draw becomes u32::MAX rather than wrapping.
                ms.round() as u32
            }
        }
    }

    fn check(&self, field: &str) -> Result<(), ScenarioError> {
        match *self {
            LatencyMs::Fixed { .. } => Ok(()),
            LatencyMs::Uniform { min_ms, max_ms } if min_ms > max_ms => {
                Err(ScenarioError::Reversed {
                    field: format!("{field}.min_ms/max_ms"),
                    first: min_ms.into(),
                    second: max_ms.into(),
                })
            }
            LatencyMs::Uniform { .. } => Ok(()),
            LatencyMs::Lognormal { p50_ms: 0, .. } => {
                Err(ScenarioError::Zero { field: format!("{field}.p50_ms") })
            }
            // A log-normal needs a spread; equal percentiles mean `fixed`.
            LatencyMs::Lognormal { p50_ms, p99_ms } if p50_ms >= p99_ms => {
                Err(ScenarioError::Reversed {
                    field: format!("{field}.p50_ms/p99_ms"),
                    first: p50_ms.into(),
                    second: p99_ms.into(),
                })
            }
            LatencyMs::Lognormal { .. } => Ok(()),
        }
    }
}

/// A window in which the channel is down, in seconds from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u32; 2]", into = "[u32; 2]")]
pub struct Outage {
    pub start_s: u32,
    pub end_s: u32,
}

impl From<[u32; 2]> for Outage {
    fn from([start_s, end_s]: [u32; 2]) -> Outage {
        Outage { start_s, end_s }
    }
}

impl From<Outage> for [u32; 2] {
    fn from(outage: Outage) -> [u32; 2] {
        [outage.start_s, outage.end_s]
    }
}

/// How the simulated channel behaves during the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelProfile {
    pub latency: LatencyMs,
    /// Share of requests the channel declines, in thousandths.
    #[serde(default)]
    pub decline_rate_permille: u32,
    /// Debits, payouts and refunds per second above which the channel refuses work (`503`
    /// before doing anything, so the gateway may fail over); status queries do not count.
    /// None means unlimited.
    #[serde(default)]
    pub capacity_per_s: Option<u32>,
    /// Windows `[start_s, end_s)` in which every request fails.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

impl ChannelProfile {
    pub(crate) fn check(&self, channel: &str) -> Result<(), ScenarioError> {
        let field = format!("channels.{channel}");
        if channel.is_empty() {
            return Err(ScenarioError::Empty { field: "channels.<name>".to_owned() });
        }
        self.latency.check(&format!("{field}.latency"))?;
        if self.decline_rate_permille > 1000 {
            return Err(ScenarioError::TooLarge {
                field: format!("{field}.decline_rate_permille"),
                value: self.decline_rate_permille.into(),
                max: 1000,
            });
        }
        if self.capacity_per_s == Some(0) {
            return Err(ScenarioError::Zero { field: format!("{field}.capacity_per_s") });
        }
        for (outage_idx, outage) in self.outages.iter().enumerate() {
            if outage.start_s >= outage.end_s {
                return Err(ScenarioError::Reversed {
                    field: format!("{field}.outages[{outage_idx}]"),
                    first: outage.start_s.into(),
                    second: outage.end_s.into(),
                });
            }
        }
        Ok(())
    }

    /// Whether the channel is down at `at_s` seconds from the start of the run.
    pub fn is_down_at(&self, at_s: u32) -> bool {
        self.outages.iter().any(|outage| outage.start_s <= at_s && at_s < outage.end_s)
    }

    /// The bank simulator's faults that play this profile (`PUT
    /// /admin/channels/{channel}/faults`), `down` as given (outages are played by switching
    /// it over time). The simulator draws a latency as a base plus an exponential tail, so
    /// each distribution is fitted by its shape: a fixed latency exactly; a uniform one by
    /// its minimum and a tail of half its width, capped at its maximum; a lognormal one by
    /// the exponential through its p50 and p99 (`p = base + mean·ln(1/(1-q))`).
    /// `capacity_per_s` is played as is (the simulator's token bucket holds one second's
    /// worth), outages included: the PUT replaces every fault, and the simulator keeps its
    /// bucket across PUTs that leave the capacity unchanged.
    pub fn banksim_faults(&self, down: bool) -> serde_json::Value {
        let (base_ms, tail_mean_ms, max_ms) = match self.latency {
            LatencyMs::Fixed { ms } => (ms, 0, ms),
            LatencyMs::Uniform { min_ms, max_ms } => (min_ms, (max_ms - min_ms) / 2, max_ms),
            LatencyMs::Lognormal { p50_ms, p99_ms } => {
                // ln(100) − ln(2) = 3.912; ln(2) = 0.693, both in thousandths.
                let mean_ms = (p99_ms - p50_ms) * 1000 / 3912;
                let base_ms = p50_ms.saturating_sub(mean_ms * 693 / 1000);
                (base_ms, mean_ms, p99_ms.saturating_mul(4))
            }
        };
        let operation = serde_json::json!({
            "latency": {"base_ms": base_ms, "tail_mean_ms": tail_mean_ms, "max_ms": max_ms},
            "declined_rate": rate(self.decline_rate_permille),
        });
        serde_json::json!({
            "down": if down { "refuse" } else { "off" },
            "debit": operation,
            "payout": operation,
            "refund": operation,
            "query": {"latency": operation["latency"]},
            "capacity_per_s": self.capacity_per_s,
        })
    }
}

/// A permille as the simulator's probability.
// A probability for the simulator's draws, never money.
#[allow(clippy::float_arithmetic)]
fn rate(permille: u32) -> f64 {
    f64::from(permille) / 1000.0
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn sorted_samples(latency: LatencyMs, n_samples: usize) -> Vec<u32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut samples: Vec<u32> = (0..n_samples).map(|_| latency.sample_ms(&mut rng)).collect();
        samples.sort_unstable();
        samples
    }

    #[test]
    fn lognormal_hits_its_percentiles() {
        let samples = sorted_samples(LatencyMs::Lognormal { p50_ms: 80, p99_ms: 400 }, 100_000);
        let p50_ms = samples[50_000];
        let p99_ms = samples[99_000];
        assert!((76..=84).contains(&p50_ms), "p50 {p50_ms}");
        assert!((370..=430).contains(&p99_ms), "p99 {p99_ms}");
    }

    #[test]
    fn uniform_and_fixed_stay_in_bounds() {
        let samples = sorted_samples(LatencyMs::Uniform { min_ms: 10, max_ms: 20 }, 10_000);
        assert_eq!((samples[0], samples[9_999]), (10, 20));
        assert_eq!(sorted_samples(LatencyMs::Fixed { ms: 5 }, 10), vec![5; 10]);
    }

    #[test]
    fn outages_are_half_open() {
        let profile = ChannelProfile {
            latency: LatencyMs::Fixed { ms: 1 },
            decline_rate_permille: 0,
            capacity_per_s: None,
            outages: vec![Outage { start_s: 10, end_s: 20 }],
        };
        let down: Vec<bool> = [9, 10, 19, 20].iter().map(|&s| profile.is_down_at(s)).collect();
        assert_eq!(down, [false, true, true, false]);
    }

    #[test]
    fn a_profile_becomes_the_simulators_faults() {
        let profile = ChannelProfile {
            latency: LatencyMs::Lognormal { p50_ms: 100, p99_ms: 500 },
            decline_rate_permille: 30,
            capacity_per_s: None,
            outages: Vec::new(),
        };
        let faults = profile.banksim_faults(false);
        assert_eq!(faults["down"], serde_json::json!("off"));
        assert_eq!(faults["debit"]["declined_rate"], serde_json::json!(0.03));
        // mean = 400 / 3.912 = 102; base = 100 − 0.693 × 102 = 30.
        assert_eq!(faults["payout"]["latency"]["tail_mean_ms"], serde_json::json!(102));
        assert_eq!(faults["payout"]["latency"]["base_ms"], serde_json::json!(30));
        assert_eq!(profile.banksim_faults(true)["down"], serde_json::json!("refuse"));
        assert_eq!(faults["capacity_per_s"], serde_json::Value::Null, "unlimited");
        let fixed = ChannelProfile { latency: LatencyMs::Fixed { ms: 40 }, ..profile };
        assert_eq!(
            fixed.banksim_faults(false)["refund"]["latency"],
            serde_json::json!({"base_ms": 40, "tail_mean_ms": 0, "max_ms": 40})
        );
    }

    #[test]
    fn the_capacity_is_played_in_and_out_of_outages() {
        let profile = ChannelProfile {
            latency: LatencyMs::Fixed { ms: 1 },
            decline_rate_permille: 0,
            capacity_per_s: Some(250),
            outages: vec![Outage { start_s: 10, end_s: 20 }],
        };
        for down in [false, true] {
            let faults = profile.banksim_faults(down);
            assert_eq!(faults["capacity_per_s"], serde_json::json!(250), "down: {down}");
        }
    }
}
