//! The pure core of `qianbao loadtest`: everything a product-aware load test decides and
//! computes, with no network I/O, so that each part can be tested on its own and the
//! command that drives a running service stays a thin loop.
//!
//! - [`scenario`]: the TOML scenario file (SLO, warm-up, steps of offered load, the
//!   weighted mix of product operations, the customers and merchants, and an optional
//!   simulator profile per channel in [`profile`]), checked into a [`Scenario`].
//! - [`schedule`]: open-loop arrivals per step (evenly spaced or Poisson, seeded), the
//!   seeded pickers of operation, customer (Zipf) and merchant (one hot merchant), and
//!   [`Completion`], the only way to record a finished request.
//! - [`stats`]: per step and per operation, HDR histograms of latency in microseconds, ok
//!   and error counts by stable [`ErrorCode`], achieved throughput and percentiles.
//! - [`knee`]: the highest step that keeps up (≥ 99% of offered) within the SLO, reported
//!   as the sustainable rate next to the peak rate.
//! - [`report`]: the run as JSON and as one self-contained HTML page with three plots.
//! - [`safety`]: the fund-safety check after a run: the run's book balances, and the live
//!   journal did not move.
//!
//! # No coordinated omission
//!
//! Load is offered open-loop: every send instant of a step is fixed before the step starts,
//! and a slow answer never postpones the next request. Latency is measured from the
//! *intended* send instant, not from when the request actually left: if the service (or
//! the load generator) stalls, the requests that should have gone out during the stall
//! are charged the time they waited, as real customers would be. A closed loop that waits
//! for each answer before sending the next, or a clock started at the actual send, silently
//! drops exactly those requests and reports a p99 that never happened. Here
//! [`Completion::new`] takes the [`schedule::Arrival`] that only the schedule hands out,
//! so no other starting point can be recorded.
//!
//! Integer arithmetic is used for every decision (rates, shares, the 99% line, the SLO);
//! floats appear only where sampling or plotting needs them, each place marked.

pub mod knee;
pub mod profile;
pub mod report;
pub mod safety;
pub mod scenario;
pub mod schedule;
pub mod stats;

pub use knee::{find_knee, Knee, StepPoint};
pub use report::{Report, ReportError};
pub use scenario::{Operation, Scenario, ScenarioError, Step};
pub use schedule::{Arrival, Arrivals, Completion};
pub use stats::{ErrorCode, Outcome, StepStats, StepSummary};
