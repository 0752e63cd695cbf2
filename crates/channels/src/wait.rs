//! Time a request spends waiting on channels, told to whoever serves the request.
//!
//! The service's admission control (`server::admission`) adapts each class's concurrency
//! to the latency the service itself adds. A money-moving write that waits on a bank would
//! otherwise read as a slow service and shrink the limit for everyone, though the bank's
//! latency says nothing of this node's load. So the admission layer runs each request inside
//! [`scope`], every channel call made by that request's task adds its duration here
//! ([`timed`]), and the admission layer takes it off the request's latency.
//!
//! A task-local, not an argument: the calls are many layers below the HTTP edge (executor,
//! gateway), and none of those layers should know about admission. Work a request hands to
//! another task (none does today) would simply not be counted, and read as service time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

tokio::task_local! {
    static CHANNEL_WAIT_US: Arc<AtomicU64>;
}

/// Runs `future` with channel waits added to `total_us`.
pub async fn scope<F: Future>(total_us: Arc<AtomicU64>, future: F) -> F::Output {
    CHANNEL_WAIT_US.scope(total_us, future).await
}

/// Awaits one channel call, adding its duration to the current scope's total, if any.
pub async fn timed<F: Future>(future: F) -> F::Output {
    let started = Instant::now();
    let output = future.await;
    let waited_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let _ = CHANNEL_WAIT_US.try_with(|total| total.fetch_add(waited_us, Ordering::Relaxed));
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_inside_a_scope_add_up_and_calls_outside_one_are_not_counted() {
        let total = Arc::new(AtomicU64::new(0));
        let nap = || timed(tokio::time::sleep(std::time::Duration::from_millis(20)));
        scope(total.clone(), async {
            nap().await;
            nap().await;
        })
        .await;
        nap().await;
        let waited_us = total.load(Ordering::Relaxed);
        assert!((40_000..200_000).contains(&waited_us), "{waited_us}");
    }
}
