//! The knee: the highest offered load the service still keeps up with inside its SLO.
//!
//! A step qualifies when it achieved at least 99% of what it was offered (in integer
//! arithmetic, `achieved × 100 ≥ offered × 99`) and its p99 is within the SLO. "Offered" is
//! what was actually sent when the step knows it: Poisson arrivals send a random number of
//! requests around the nominal rate (±1.8% at 3,000 a step), which alone would fail a step
//! the service kept up with. The knee is
//! the qualifying step with the highest offered rate; its achieved rate is the *sustainable*
//! throughput. The *peak* is the highest achieved rate of any step, qualifying or not: a
//! service overloaded past its knee may still push more requests through, only too slowly
//! or with too many failures, and capacity planning needs both numbers.

use serde::{Deserialize, Serialize};

/// What the knee finder needs of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPoint {
    pub offered_per_s: u32,
    /// Requests actually sent per second, in thousandths; 0 when unknown (then the nominal
    /// `offered_per_s` is what the step must keep up with).
    #[serde(default)]
    pub sent_milli_per_s: u64,
    /// Successful requests per second, in thousandths.
    pub achieved_milli_per_s: u64,
    pub latency_us_p99: u64,
}

impl StepPoint {
    /// Whether the step kept up (≥ 99% of the offered rate) within the SLO.
    pub fn qualifies(&self, slo_p99_ms: u32) -> bool {
        let offered_milli_per_s = match self.sent_milli_per_s {
            0 => u64::from(self.offered_per_s) * 1000,
            sent => sent,
        };
        let keeps_up =
            u128::from(self.achieved_milli_per_s) * 100 >= u128::from(offered_milli_per_s) * 99;
        keeps_up && self.latency_us_p99 <= u64::from(slo_p99_ms) * 1000
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knee {
    /// Index of the knee step in the run.
    pub step_idx: usize,
    pub offered_per_s: u32,
    /// The knee step's achieved rate, in thousandths of a request per second.
    pub sustainable_milli_per_s: u64,
    /// The highest achieved rate of any step, in thousandths of a request per second.
    pub peak_milli_per_s: u64,
}

/// The knee of a run, or `None` when no step qualifies (not even the first: the service
/// cannot carry the smallest load offered within its SLO).
pub fn find_knee(points: &[StepPoint], slo_p99_ms: u32) -> Option<Knee> {
    let (step_idx, knee) = points
        .iter()
        .enumerate()
        .filter(|(_, point)| point.qualifies(slo_p99_ms))
        // The highest offered rate; between equal offers, the one that achieved more.
        .max_by_key(|(_, point)| (point.offered_per_s, point.achieved_milli_per_s))?;
    Some(Knee {
        step_idx,
        offered_per_s: knee.offered_per_s,
        sustainable_milli_per_s: knee.achieved_milli_per_s,
        peak_milli_per_s: peak_milli_per_s(points),
    })
}

/// The highest achieved rate of any step (0 for no steps), in thousandths per second.
pub fn peak_milli_per_s(points: &[StepPoint]) -> u64 {
    points.iter().map(|point| point.achieved_milli_per_s).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO_P99_MS: u32 = 200;

    /// Builds a series from `(offered/s, achieved/s, p99 ms)` and checks the knee's
    /// `(step_idx, sustainable/s, peak/s)`.
    fn check(series: &[(u32, u64, u64)], expected: Option<(usize, u64, u64)>) {
        let points: Vec<StepPoint> = series
            .iter()
            .map(|&(offered_per_s, achieved_per_s, p99_ms)| StepPoint {
                offered_per_s,
                sent_milli_per_s: 0,
                achieved_milli_per_s: achieved_per_s * 1000,
                latency_us_p99: p99_ms * 1000,
            })
            .collect();
        let knee = find_knee(&points, SLO_P99_MS);
        let actual = knee.map(|knee| {
            (knee.step_idx, knee.sustainable_milli_per_s / 1000, knee.peak_milli_per_s / 1000)
        });
        assert_eq!(actual, expected);
        if let Some(knee) = knee {
            assert_eq!(knee.offered_per_s, points[knee.step_idx].offered_per_s);
        }
    }

    #[test]
    fn linear_then_saturating() {
        let series =
            [(100, 100, 20), (200, 200, 25), (400, 399, 60), (800, 610, 900), (1600, 650, 2500)];
        check(&series, Some((2, 399, 650)));
    }

    #[test]
    fn latency_bound() {
        // Throughput keeps up all the way, but p99 crosses the SLO at 400/s.
        let series = [(100, 100, 50), (200, 200, 150), (400, 400, 201), (800, 800, 600)];
        check(&series, Some((1, 200, 800)));
    }

    #[test]
    fn first_step_already_fails() {
        check(&[(100, 50, 20), (200, 60, 30)], None);
        check(&[(100, 100, 300)], None);
        check(&[], None);
    }

    #[test]
    fn non_monotone() {
        // A stall at 400/s, then the service recovers at 600/s: the knee is the highest
        // qualifying step, not the last one before the first failure.
        let series = [(200, 200, 40), (400, 300, 500), (600, 597, 180), (800, 700, 800)];
        check(&series, Some((2, 597, 700)));
        // Steps offered out of order: the highest offer that qualifies wins.
        let shuffled = [(600, 600, 100), (300, 300, 50), (900, 850, 400)];
        check(&shuffled, Some((0, 600, 850)));
    }

    #[test]
    fn the_99_percent_line_is_exact() {
        let point = |achieved_milli_per_s| StepPoint {
            offered_per_s: 5,
            sent_milli_per_s: 0,
            achieved_milli_per_s,
            latency_us_p99: 0,
        };
        // 99% of 5/s is 4.95/s.
        assert!(point(4_950).qualifies(SLO_P99_MS));
        assert!(!point(4_949).qualifies(SLO_P99_MS));
        let at_slo = StepPoint {
            offered_per_s: 1,
            sent_milli_per_s: 0,
            achieved_milli_per_s: 1_000,
            latency_us_p99: 200_000,
        };
        assert!(at_slo.qualifies(SLO_P99_MS));
        assert!(!StepPoint { latency_us_p99: 200_001, ..at_slo }.qualifies(SLO_P99_MS));
    }

    #[test]
    fn a_step_keeps_up_with_what_was_sent_not_the_nominal_rate() {
        // Poisson arrivals sent 2,940 requests in a 10 s step of 300/s, all answered.
        let step = StepPoint {
            offered_per_s: 300,
            sent_milli_per_s: 294_000,
            achieved_milli_per_s: 294_000,
            latency_us_p99: 10_000,
        };
        assert!(step.qualifies(SLO_P99_MS));
        let behind = StepPoint { achieved_milli_per_s: 290_000, ..step };
        assert!(!behind.qualifies(SLO_P99_MS), "1.4% of what was sent went unanswered");
    }
}
