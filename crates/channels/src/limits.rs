//! Per-channel rate and concurrency limits (限流), so that one slow or sick bank cannot take
//! every worker of the platform with it, and no bank sees more than it agreed to take.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Calls per second to this channel; `None`: unlimited.
    pub rate_per_sec: Option<NonZeroU32>,
    /// Calls in flight at once.
    pub concurrency_max: u32,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig { rate_per_sec: None, concurrency_max: 256 }
    }
}

pub struct Limits {
    rate: Option<DefaultDirectRateLimiter>,
    in_flight: Arc<Semaphore>,
}

/// Held for the duration of one call.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            rate: config
                .rate_per_sec
                .map(|rate| DefaultDirectRateLimiter::direct(Quota::per_second(rate))),
            in_flight: Arc::new(Semaphore::new(config.concurrency_max as usize)),
        }
    }

    /// A slot for one call now, or `None` if the channel is at its rate or concurrency
    /// limit (the caller fails over instead of queueing behind a slow bank).
    pub fn try_acquire(&self) -> Option<Slot> {
        let permit = self.in_flight.clone().try_acquire_owned().ok()?;
        if let Some(rate) = &self.rate {
            rate.check().ok()?;
        }
        Some(Slot { _permit: permit })
    }

    pub fn in_flight(&self, concurrency_max: u32) -> u32 {
        concurrency_max.saturating_sub(self.in_flight.available_permits() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_and_rate_are_bounded() {
        let limits = Limits::new(LimitsConfig { rate_per_sec: None, concurrency_max: 2 });
        let a = limits.try_acquire();
        let b = limits.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limits.try_acquire().is_none());
        drop(a);
        assert!(limits.try_acquire().is_some());

        let limits =
            Limits::new(LimitsConfig { rate_per_sec: NonZeroU32::new(1), concurrency_max: 10 });
        assert!(limits.try_acquire().is_some());
        assert!(limits.try_acquire().is_none(), "one per second");
    }
}
