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
    /// The rate limit in force and its limiter; swapped whole when an operator's switch
    /// changes the rate (`set_rate_per_sec`), so a call never sees half a change.
    rate: std::sync::RwLock<Option<(NonZeroU32, Arc<DefaultDirectRateLimiter>)>>,
    in_flight: Arc<Semaphore>,
}

fn limiter(rate: NonZeroU32) -> (NonZeroU32, Arc<DefaultDirectRateLimiter>) {
    (rate, Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(rate))))
}

/// Held for the duration of one call.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            rate: std::sync::RwLock::new(config.rate_per_sec.map(limiter)),
            in_flight: Arc::new(Semaphore::new(config.concurrency_max as usize)),
        }
    }

    /// The calls per second allowed now (`None`: unlimited).
    pub fn rate_per_sec(&self) -> Option<NonZeroU32> {
        self.rate.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(rate, _)| *rate)
    }

    /// Allows `rate` calls per second from now on (`None`: unlimited). A new limiter starts
    /// only when the rate changes: reading the switches each second keeps its state.
    pub fn set_rate_per_sec(&self, rate: Option<NonZeroU32>) {
        let mut current = self.rate.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().map(|(rate, _)| *rate) != rate {
            *current = rate.map(limiter);
        }
    }

    /// A slot for one call now, or `None` if the channel is at its rate or concurrency
    /// limit (the caller fails over instead of queueing behind a slow bank).
    pub fn try_acquire(&self) -> Option<Slot> {
        let permit = self.in_flight.clone().try_acquire_owned().ok()?;
        let rate = self.rate.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, limiter)) = rate {
            limiter.check().ok()?;
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
    #[test]
    fn a_rate_set_at_run_time_applies_to_the_next_call_and_unset_lifts_it() {
        let limits = Limits::new(LimitsConfig { rate_per_sec: None, concurrency_max: 100 });
        for _ in 0..50 {
            assert!(limits.try_acquire().is_some(), "unlimited");
        }
        limits.set_rate_per_sec(NonZeroU32::new(2));
        let admitted = (0..10).filter(|_| limits.try_acquire().is_some()).count();
        assert!(admitted <= 2, "{admitted} within the same second");
        assert_eq!(limits.rate_per_sec(), NonZeroU32::new(2));
        limits.set_rate_per_sec(None);
        assert!((0..10).all(|_| limits.try_acquire().is_some()));
    }
}
