//! A circuit breaker per channel: it opens when the channel's error rate or slow-call rate
//! over the window passes a threshold, refuses calls while open (so a sick bank gets no
//! traffic and our threads are not tied up waiting for it), then lets a few probe calls
//! through (half-open) and closes again only if they all succeed. Pure: time is `now_ms`.

use crate::health::{CallEvent, HealthSnapshot, Window};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    pub window_ms: u64,
    /// No verdict on fewer calls than this in the window.
    pub calls_min: u64,
    /// Open when errors per thousand calls reach this.
    pub error_permille_open: u64,
    /// A call this slow counts as slow.
    pub slow_call_ms: u64,
    /// Open when slow calls per thousand reach this.
    pub slow_permille_open: u64,
    /// How long to stay open before probing.
    pub open_ms: u64,
    /// Probe calls allowed at once while half-open; this many successes close the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            window_ms: 10_000,
            calls_min: 20,
            error_permille_open: 500,
            slow_call_ms: 5_000,
            slow_permille_open: 800,
            open_ms: 5_000,
            half_open_probes: 3,
        }
    }
}

/// The breaker's state, as metrics and operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The gauge value in metrics: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until_ms: u64 },
    HalfOpen { probes_in_flight: u32, successes: u32 },
}

/// Permission to make one call; give it back through [`Breaker::record`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Permit {
    probe: bool,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    window: Window,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            window: Window::new(config.window_ms, config.slow_call_ms),
            state: State::Closed,
        }
    }

    /// Opens at `permille` errors per thousand calls from now on (an operator's switch);
    /// the window and the state are kept.
    pub fn set_error_permille_open(&mut self, permille: u64) {
        self.config.error_permille_open = permille;
    }

    pub fn error_permille_open(&self) -> u64 {
        self.config.error_permille_open
    }

    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until_ms } if now_ms < until_ms => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out now.
    pub fn permit(&mut self, now_ms: u64) -> Option<Permit> {
        match self.state {
            State::Closed => Some(Permit { probe: false }),
            State::Open { until_ms } if now_ms < until_ms => None,
            State::Open { .. } => {
                self.state = State::HalfOpen { probes_in_flight: 1, successes: 0 };
                Some(Permit { probe: true })
            }
            State::HalfOpen { probes_in_flight, successes } => {
                if probes_in_flight + successes < self.config.half_open_probes {
                    self.state =
                        State::HalfOpen { probes_in_flight: probes_in_flight + 1, successes };
                    Some(Permit { probe: true })
                } else {
                    None
                }
            }
        }
    }

    /// Records the call made under `permit`.
    pub fn record(&mut self, now_ms: u64, permit: Permit, event: CallEvent) {
        self.window.record(now_ms, event);
        match (self.state, permit.probe) {
            (State::HalfOpen { probes_in_flight, successes }, true) => {
                if event.error {
                    self.trip(now_ms);
                } else if successes + 1 >= self.config.half_open_probes {
                    self.window.reset();
                    self.state = State::Closed;
                } else {
                    self.state = State::HalfOpen {
                        probes_in_flight: probes_in_flight.saturating_sub(1),
                        successes: successes + 1,
                    };
                }
            }
            (State::Closed, _) if self.should_open(self.window.snapshot(now_ms)) => {
                self.trip(now_ms);
            }
            // A call permitted before the breaker opened, answering late: counted in the
            // window, no change of state.
            _ => {}
        }
    }

    fn should_open(&self, health: HealthSnapshot) -> bool {
        health.calls >= self.config.calls_min
            && (health.error_permille() >= self.config.error_permille_open
                || health.slow_permille() >= self.config.slow_permille_open)
    }

    fn trip(&mut self, now_ms: u64) {
        self.state = State::Open { until_ms: now_ms.saturating_add(self.config.open_ms) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: CallEvent = CallEvent { error: false, latency_ms: 10 };
    const ERR: CallEvent = CallEvent { error: true, latency_ms: 10 };

    fn config() -> BreakerConfig {
        BreakerConfig { calls_min: 10, ..BreakerConfig::default() }
    }

    fn call(breaker: &mut Breaker, now_ms: u64, event: CallEvent) -> bool {
        match breaker.permit(now_ms) {
            Some(permit) => {
                breaker.record(now_ms, permit, event);
                true
            }
            None => false,
        }
    }

    #[test]
    fn opens_on_errors_probes_and_closes() {
        let mut breaker = Breaker::new(config());
        for i in 0..9 {
            assert!(call(&mut breaker, i, ERR));
        }
        // Nine calls: below calls_min, no verdict yet.
        assert_eq!(breaker.state(9), BreakerState::Closed);
        assert!(call(&mut breaker, 9, ERR));
        assert_eq!(breaker.state(10), BreakerState::Open);
        assert!(!call(&mut breaker, 100, OK), "open: no calls");
        // After open_ms: half-open, three probes at most at once.
        let at = 9 + config().open_ms;
        assert_eq!(breaker.state(at), BreakerState::HalfOpen);
        let probes: Vec<_> = (0..4).map(|_| breaker.permit(at)).collect();
        assert_eq!(probes.iter().filter(|p| p.is_some()).count(), 3);
        for permit in probes.into_iter().flatten() {
            breaker.record(at, permit, OK);
        }
        assert_eq!(breaker.state(at), BreakerState::Closed);
        assert!(call(&mut breaker, at + 1, OK));
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let mut breaker = Breaker::new(config());
        for i in 0..10 {
            call(&mut breaker, i, ERR);
        }
        let at = 9 + config().open_ms;
        assert!(call(&mut breaker, at, ERR));
        assert_eq!(breaker.state(at + 1), BreakerState::Open);
        assert_eq!(breaker.state(at + config().open_ms), BreakerState::HalfOpen);
    }

    #[test]
    fn slow_calls_open_it_too_and_healthy_traffic_does_not() {
        let mut breaker = Breaker::new(config());
        for i in 0..100 {
            let event = if i % 10 == 0 { ERR } else { OK };
            assert!(call(&mut breaker, i, event));
        }
        assert_eq!(breaker.state(100), BreakerState::Closed, "10% errors stay closed");
        let slow = CallEvent { error: false, latency_ms: config().slow_call_ms };
        let mut slow_breaker = Breaker::new(config());
        for i in 0..10 {
            call(&mut slow_breaker, i, slow);
        }
        assert_eq!(slow_breaker.state(10), BreakerState::Open);
    }
}
