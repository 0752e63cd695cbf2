//! Rate limits (限流): a token bucket per API key (GCRA, from `governor`), checked when the
//! caller is authenticated, before any work. Past it a key gets 429 `rate_limited` with
//! `Retry-After`. The posting queue has its own bound (429 `ledger_overloaded`), so the
//! ledger is protected even when the per-key limits add up to more than it can take.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// Requests per second and burst allowed to each API key; `None` is no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRateLimit {
    pub per_sec: NonZeroU32,
    pub burst: NonZeroU32,
}

/// The limiters of one node. Limits are per node: behind a balancer over N nodes a key gets
/// up to N times its rate, which is the usual trade for not sharing state on the hot path.
pub struct RateLimits {
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits::new(None)
    }
}

impl RateLimits {
    pub fn new(per_key: Option<KeyRateLimit>) -> RateLimits {
        RateLimits {
            per_key: per_key.map(|limit| {
                DefaultKeyedRateLimiter::keyed(
                    Quota::per_second(limit.per_sec).allow_burst(limit.burst),
                )
            }),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key_id`'s bucket.
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_key else { return Ok(()) };
        match limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "this API key is over its rate limit; retry in {} ms",
                        wait.as_millis()
                    ),
                );
                error.retry_after_secs = Some(wait.max(Duration::from_secs(1)).as_secs());
                Err(error)
            }
        }
    }

    /// Forgets buckets that are full again (keys idle long enough), bounding memory.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_bucket_and_is_told_when_to_retry() {
        let one = NonZeroU32::MIN;
        let limits =
            RateLimits::new(Some(KeyRateLimit { per_sec: one, burst: one.saturating_add(1) }));
        assert!(limits.check_key("key_a").is_ok());
        assert!(limits.check_key("key_a").is_ok());
        let refused = limits.check_key("key_a").expect_err("over the burst");
        assert_eq!((refused.status.as_u16(), refused.code.as_str()), (429, "rate_limited"));
        assert_eq!(refused.retry_after_secs, Some(1));
        assert!(limits.check_key("key_b").is_ok(), "another key is not limited by key_a");
        assert!(RateLimits::new(None).check_key("key_a").is_ok());
    }
}
