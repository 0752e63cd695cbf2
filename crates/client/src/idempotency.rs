//! Idempotency keys and retries (docs/api.md, "Idempotency"): every write carries an
//! `Idempotency-Key`; the same key, method, path and body again gets the first answer again
//! (`Idempotent-Replayed: true`) and nothing happens twice. So a write whose answer was lost
//! is retried with the *same* key, and [`retry`] does exactly that.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::error::ClientError;

/// The longest key the service takes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters (0x21 to 0x7e), scoped to the
/// API key that sends it and kept by the service at least 24 hours.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A key the service would refuse (400 `invalid_idempotency_key`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// Your own key, e.g. derived from your order number, so that a retry after a crash of
    /// your process still sends the same key.
    pub fn new(key: impl Into<String>) -> Result<IdempotencyKey, InvalidIdempotencyKey> {
        let key = key.into();
        let visible = key.bytes().all(|byte| (0x21..=0x7e).contains(&byte));
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX || !visible {
            return Err(InvalidIdempotencyKey);
        }
        Ok(IdempotencyKey(key))
    }

    /// A fresh random key (128 bits from the operating system): what a write sends when the
    /// caller gives none.
    pub fn generate() -> Result<IdempotencyKey, ClientError> {
        Ok(IdempotencyKey(format!("qbc_{}", random_hex::<16>()?)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `N` random bytes as hex.
pub(crate) fn random_hex<const N: usize>() -> Result<String, ClientError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| ClientError::Random(error.to_string()))?;
    Ok(hex::encode(bytes))
}

/// How [`retry`] retries: a bounded number of attempts, exponential backoff with jitter, and
/// the service's `Retry-After` honoured up to a cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts_max: u32,
    /// The backoff before the second attempt; it doubles each attempt after.
    pub backoff_initial_ms: u64,
    /// The longest backoff when the service does not say when to come back.
    pub backoff_max_ms: u64,
    /// The longest wait a `Retry-After` can impose (a switch may say "an hour"; a caller
    /// that cannot wait that long gets the error sooner by giving up after its attempts).
    pub retry_after_max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 5,
            backoff_initial_ms: 100,
            backoff_max_ms: 5_000,
            retry_after_max_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt_idx + 1` after `error` ended attempt `attempt_idx`
    /// (0-based): the service's `Retry-After` (capped) if it gave one, else the exponential
    /// backoff with "equal jitter" (half fixed, half random), so that many clients refused
    /// together do not come back together.
    pub fn delay_ms(&self, attempt_idx: u32, error: &ClientError) -> u64 {
        if let Some(secs) = error.retry_after_secs() {
            return secs.saturating_mul(1000).min(self.retry_after_max_ms);
        }
        let factor = 1u64.checked_shl(attempt_idx.min(32)).unwrap_or(u64::MAX);
        let backoff_ms = self.backoff_initial_ms.saturating_mul(factor).min(self.backoff_max_ms);
        let half_ms = backoff_ms / 2;
        // Without randomness the wait is simply the backoff: a retry still happens.
        let jitter_ms = random_u64().map_or(half_ms, |random| random % (half_ms + 1));
        (backoff_ms - half_ms).saturating_add(jitter_ms)
    }
}

fn random_u64() -> Option<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Calls `call` until it succeeds, fails with an error that is not
/// [retryable](ClientError::is_retryable), or `policy.attempts_max` attempts are spent;
/// every attempt gets the same idempotency key (`idempotency_key`, or one generated once),
/// so however many attempts reach the service, the write happens once.
///
/// ```no_run
/// # async fn example(client: client::Client, body: client::transfers::TransferRequest)
/// # -> Result<(), client::ClientError> {
/// use client::{retry, RetryPolicy};
/// let transfer = retry(&RetryPolicy::default(), None, |key| {
///     client.create_transfer(&body, Some(key))
/// })
/// .await?;
/// println!("transfer {} (replayed: {})", transfer.id, transfer.replayed);
/// # Ok(()) }
/// ```
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    idempotency_key: Option<IdempotencyKey>,
    mut call: F,
) -> Result<T, ClientError>
where
    F: FnMut(IdempotencyKey) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let key = match idempotency_key {
        Some(key) => key,
        None => IdempotencyKey::generate()?,
    };
    let attempts_max = policy.attempts_max.max(1);
    let mut attempt_idx = 0;
    loop {
        match call(key.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_retryable() && attempt_idx + 1 < attempts_max => {
                let delay_ms = policy.delay_ms(attempt_idx, &error);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                attempt_idx += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::ApiError;

    fn refused(status: u16, code: &str, retry_after_secs: Option<u64>) -> ClientError {
        ClientError::Api(Box::new(ApiError {
            status,
            error_type: "api_error".into(),
            code: code.into(),
            message: String::new(),
            param: None,
            request_id: None,
            retry_after_secs,
        }))
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::new("topup-2026-0001").is_ok());
        assert!(IdempotencyKey::new("x".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(256)] {
            assert_eq!(IdempotencyKey::new(bad), Err(InvalidIdempotencyKey), "{bad:?}");
        }
        let (a, b) = (IdempotencyKey::generate().unwrap(), IdempotencyKey::generate().unwrap());
        assert_ne!(a, b);
        assert!(IdempotencyKey::new(a.as_str()).is_ok());
    }

    #[test]
    fn delays_follow_retry_after_up_to_the_cap_else_back_off() {
        let policy = RetryPolicy {
            attempts_max: 5,
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            retry_after_max_ms: 3_000,
        };
        assert_eq!(policy.delay_ms(0, &refused(429, "rate_limited", Some(2))), 2_000);
        assert_eq!(policy.delay_ms(0, &refused(503, "switched_off", Some(3600))), 3_000);
        for attempt_idx in 0..40 {
            let delay_ms = policy.delay_ms(attempt_idx, &refused(503, "overloaded", None));
            let backoff_ms = (100u64 << attempt_idx.min(10)).min(1_000);
            assert!((backoff_ms / 2..=backoff_ms).contains(&delay_ms), "{attempt_idx}: {delay_ms}");
        }
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        assert!(refused(429, "rate_limited", Some(1)).is_retryable());
        assert!(refused(503, "overloaded", Some(1)).is_retryable());
        assert!(refused(500, "internal_error", None).is_retryable());
        assert!(refused(409, "idempotency_key_in_use", None).is_retryable());
        assert!(!refused(422, "exceeds_credits", None).is_retryable());
        assert!(!refused(404, "resource_missing", None).is_retryable());
        assert!(!refused(409, "id_exists_with_different_fields", None).is_retryable());
    }

    #[tokio::test]
    async fn retry_sends_one_key_until_success_or_a_final_error() {
        let policy = RetryPolicy {
            attempts_max: 4,
            backoff_initial_ms: 1,
            backoff_max_ms: 2,
            retry_after_max_ms: 0,
        };
        let mut keys = Vec::new();
        let result = retry(&policy, None, |key| {
            keys.push(key);
            let n_calls = keys.len();
            async move {
                if n_calls < 3 {
                    Err(refused(503, "overloaded", Some(1)))
                } else {
                    Ok(n_calls)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "{keys:?}");

        let mut n_calls = 0;
        let result: Result<(), _> = retry(&policy, None, |_| {
            n_calls += 1;
            async { Err(refused(422, "exceeds_credits", None)) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Some("exceeds_credits"));
        assert_eq!(n_calls, 1);

        let mut n_calls = 0;
        let given = IdempotencyKey::new("mine").unwrap();
        let result: Result<(), _> = retry(&policy, Some(given.clone()), |key| {
            n_calls += 1;
            assert_eq!(key, given);
            async { Err(refused(429, "rate_limited", Some(1))) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Some("rate_limited"));
        assert_eq!(n_calls, policy.attempts_max);
    }
}
