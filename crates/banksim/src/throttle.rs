//! The capacity limit of a channel (fault `capacity_per_s`): a token bucket, so that stress
//! runs can model a bank that takes only so many requests a second and refuses the rest at
//! the door.
//!
//! Why a token bucket and not a fixed one-second window: a window admits two seconds' worth
//! of requests across its edge and then nothing, a pattern no bank shows; a bucket admits a
//! steady `capacity_per_s` with a burst of at most one second's worth after a quiet spell
//! (so the first second after a quiet spell can see up to twice the capacity: the burst,
//! then the refill).
//!
//! Pure: time is the caller's `now_ms` (the simulator passes its wall clock, tests pass
//! made-up instants), and the arithmetic is in integers, so the same instants give the same
//! answers on every run.

use std::num::NonZeroU32;

/// Thousandths of a token: the bucket refills `capacity_per_s` thousandths every
/// millisecond, which integer arithmetic does exactly at any capacity.
const MILLI_PER_TOKEN: u64 = 1_000;

/// A channel's admission budget; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    capacity_per_s: NonZeroU32,
    /// The tokens left, in thousandths; at most one second's worth.
    level_milli: u64,
    /// The instant `level_milli` was last brought up to date.
    refilled_at_ms: u64,
}

/// The request was refused: the channel has had its `capacity_per_s` for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the channel takes at most {capacity_per_s} requests a second; next in {retry_after_ms} ms"
)]
pub struct OverCapacity {
    pub capacity_per_s: u32,
    /// How long until the bucket holds a whole token again.
    pub retry_after_ms: u64,
}

impl TokenBucket {
    /// A full bucket, as a bank that has been idle: one second's worth of requests at once.
    pub fn full(capacity_per_s: NonZeroU32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            capacity_per_s,
            level_milli: Self::level_max_milli(capacity_per_s),
            refilled_at_ms: now_ms,
        }
    }

    pub fn capacity_per_s(&self) -> NonZeroU32 {
        self.capacity_per_s
    }

    /// Takes one token for a request at `now_ms`. A refusal takes nothing, so refused
    /// requests do not push the next admission further away (a bank's throttle answers
    /// them without doing any work).
    pub fn take(&mut self, now_ms: u64) -> Result<(), OverCapacity> {
        self.refill(now_ms);
        if self.level_milli >= MILLI_PER_TOKEN {
            self.level_milli -= MILLI_PER_TOKEN;
            return Ok(());
        }
        let missing_milli = MILLI_PER_TOKEN - self.level_milli;
        let gained_milli_per_ms = u64::from(self.capacity_per_s.get());
        Err(OverCapacity {
            capacity_per_s: self.capacity_per_s.get(),
            retry_after_ms: missing_milli.div_ceil(gained_milli_per_ms),
        })
    }

    fn refill(&mut self, now_ms: u64) {
        // A wall clock can step back; time then stands still until it catches up, rather
        // than refilling twice for the same milliseconds.
        let elapsed_ms = now_ms.saturating_sub(self.refilled_at_ms);
        self.refilled_at_ms = self.refilled_at_ms.max(now_ms);
        let gained_milli = elapsed_ms.saturating_mul(u64::from(self.capacity_per_s.get()));
        self.level_milli = self
            .level_milli
            .saturating_add(gained_milli)
            .min(Self::level_max_milli(self.capacity_per_s));
    }

    /// One second's worth: the largest burst.
    fn level_max_milli(capacity_per_s: NonZeroU32) -> u64 {
        u64::from(capacity_per_s.get()) * MILLI_PER_TOKEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0_MS: u64 = 1_700_000_000_000;

    fn bucket(capacity_per_s: u32) -> TokenBucket {
        TokenBucket::full(NonZeroU32::new(capacity_per_s).unwrap(), T0_MS)
    }

    /// How many of `n_requests` sent at one instant are admitted.
    fn admitted(bucket: &mut TokenBucket, n_requests: u32, now_ms: u64) -> u32 {
        (0..n_requests).map(|_| u32::from(bucket.take(now_ms).is_ok())).sum()
    }

    #[test]
    fn admits_n_in_a_second_and_refuses_the_next() {
        let mut bucket = bucket(5);
        assert_eq!(admitted(&mut bucket, 5, T0_MS), 5);
        assert_eq!(
            bucket.take(T0_MS),
            Err(OverCapacity { capacity_per_s: 5, retry_after_ms: 200 }),
            "the sixth within the second"
        );
        assert_eq!(admitted(&mut bucket, 1, T0_MS + 199), 0);
    }

    #[test]
    fn steady_overload_gets_the_burst_then_the_capacity() {
        // Twenty a second against a capacity of five, for ten seconds (the last at 9 950 ms):
        // the one-second burst, then five a second (49.75 tokens refilled, 49 whole).
        let mut bucket = bucket(5);
        let n_admitted: u32 = (0..200).map(|i| admitted(&mut bucket, 1, T0_MS + i * 50)).sum();
        assert_eq!(n_admitted, 5 + 49);
    }

    #[test]
    fn refills_with_time_up_to_one_seconds_worth() {
        let mut bucket = bucket(4);
        assert_eq!(admitted(&mut bucket, 10, T0_MS), 4);
        assert_eq!(admitted(&mut bucket, 1, T0_MS + 249), 0, "not yet a whole token");
        assert_eq!(admitted(&mut bucket, 10, T0_MS + 250), 1);
        assert_eq!(admitted(&mut bucket, 10, T0_MS + 1_250), 4, "a second later, four more");
        // After a long quiet spell the burst is still one second's worth, no more.
        assert_eq!(admitted(&mut bucket, 10, T0_MS + 3_600_000), 4);
    }

    #[test]
    fn refusals_take_nothing() {
        let mut bucket = bucket(2);
        assert_eq!(admitted(&mut bucket, 2, T0_MS), 2);
        assert_eq!(admitted(&mut bucket, 100, T0_MS + 100), 0);
        assert_eq!(admitted(&mut bucket, 1, T0_MS + 500), 1, "as if the refusals never came");
    }

    #[test]
    fn a_clock_that_steps_back_does_not_refill() {
        let mut bucket = bucket(1);
        assert_eq!(admitted(&mut bucket, 1, T0_MS), 1);
        assert_eq!(admitted(&mut bucket, 1, T0_MS - 60_000), 0);
        assert_eq!(admitted(&mut bucket, 1, T0_MS + 999), 0);
        assert_eq!(admitted(&mut bucket, 1, T0_MS + 1_000), 1);
    }

    #[test]
    fn extreme_capacities_and_instants_do_not_overflow() {
        let mut bucket = bucket(u32::MAX);
        assert_eq!(admitted(&mut bucket, 3, u64::MAX), 3);
        let mut bucket = self::bucket(1);
        assert_eq!(bucket.take(T0_MS), Ok(()));
        let refused = bucket.take(T0_MS);
        assert_eq!(refused, Err(OverCapacity { capacity_per_s: 1, retry_after_ms: 1_000 }));
    }
}
