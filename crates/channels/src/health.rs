//! Live health of a channel over a sliding time window: calls, errors, latency. It feeds
//! both the router's score and the circuit breaker. Pure: time comes in as `now_ms`.

/// Buckets per window: the window slides in steps of `window_ms / WINDOW_BUCKETS`.
pub const WINDOW_BUCKETS: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// Which step of time this bucket holds (`now_ms / step_ms`).
    step: u64,
    calls: u64,
    errors: u64,
    slow_calls: u64,
    latency_ms_sum: u64,
}

/// What one call tells about the channel's health. Customer-side refusals (declined,
/// insufficient funds) are healthy answers; errors are the channel's own failures: refusals
/// to serve, timeouts, unknown outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEvent {
    pub error: bool,
    pub latency_ms: u64,
}

/// The numbers of the current window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    pub calls: u64,
    pub errors: u64,
    pub slow_calls: u64,
    pub latency_ms_sum: u64,
}

impl HealthSnapshot {
    /// Mean latency of the window's calls, if there were any.
    pub fn mean_latency_ms(&self) -> Option<u64> {
        self.latency_ms_sum.checked_div(self.calls)
    }

    /// Errors per thousand calls (0 with no calls).
    pub fn error_permille(&self) -> u64 {
        (self.errors * 1000).checked_div(self.calls).unwrap_or(0)
    }

    /// Slow calls per thousand calls (0 with no calls).
    pub fn slow_permille(&self) -> u64 {
        (self.slow_calls * 1000).checked_div(self.calls).unwrap_or(0)
    }
}

/// A sliding window of call outcomes.
#[derive(Clone, Debug)]
pub struct Window {
    step_ms: u64,
    slow_call_ms: u64,
    buckets: [Bucket; WINDOW_BUCKETS],
}

impl Window {
    /// A window of `window_ms` (at least one step of 1 ms per bucket); calls slower than
    /// `slow_call_ms` count as slow.
    pub fn new(window_ms: u64, slow_call_ms: u64) -> Window {
        Window {
            step_ms: (window_ms / WINDOW_BUCKETS as u64).max(1),
            slow_call_ms,
            buckets: [Bucket::default(); WINDOW_BUCKETS],
        }
    }

    pub fn record(&mut self, now_ms: u64, event: CallEvent) {
        let step = now_ms / self.step_ms;
        let bucket = &mut self.buckets[(step % WINDOW_BUCKETS as u64) as usize];
        if bucket.step != step {
            *bucket = Bucket { step, ..Bucket::default() };
        }
        bucket.calls += 1;
        bucket.errors += u64::from(event.error);
        bucket.slow_calls += u64::from(event.latency_ms >= self.slow_call_ms);
        bucket.latency_ms_sum = bucket.latency_ms_sum.saturating_add(event.latency_ms);
    }

    /// Sums the buckets still inside the window at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> HealthSnapshot {
        let step = now_ms / self.step_ms;
        let oldest = step.saturating_sub(WINDOW_BUCKETS as u64 - 1);
        self.buckets.iter().filter(|b| b.calls > 0 && b.step >= oldest && b.step <= step).fold(
            HealthSnapshot::default(),
            |sum, b| HealthSnapshot {
                calls: sum.calls + b.calls,
                errors: sum.errors + b.errors,
                slow_calls: sum.slow_calls + b.slow_calls,
                latency_ms_sum: sum.latency_ms_sum.saturating_add(b.latency_ms_sum),
            },
        )
    }

    /// Forgets everything (a breaker closing after successful probes starts afresh).
    pub fn reset(&mut self) {
        self.buckets = [Bucket::default(); WINDOW_BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_calls_leave_the_window() {
        let mut window = Window::new(10_000, 1_000);
        window.record(0, CallEvent { error: true, latency_ms: 2_000 });
        window.record(5_000, CallEvent { error: false, latency_ms: 100 });
        let now = window.snapshot(5_000);
        assert_eq!((now.calls, now.errors, now.slow_calls), (2, 1, 1));
        assert_eq!(now.error_permille(), 500);
        assert_eq!(now.mean_latency_ms(), Some(1_050));
        // 10.5 s later the first call is out, the second still in.
        let later = window.snapshot(10_500);
        assert_eq!((later.calls, later.errors), (1, 0));
        assert_eq!(window.snapshot(30_000), HealthSnapshot::default());
    }
}
