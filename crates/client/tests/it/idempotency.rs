//! Idempotency through the client: the same key twice is one transfer (the second answer
//! replayed), another request under a used key is refused, and [`client::retry`] waits out a
//! rate limit and resends the same key.

use std::num::NonZeroU32;

use client::{retry, IdempotencyKey, Page, RetryPolicy};

use crate::support::*;

#[tokio::test]
async fn the_same_key_twice_moves_money_once() {
    let service = Service::start().await;
    let acme = service.acme_world().await;
    pay(&acme, 1, BANK, ALICE, 1000).await;

    // No transfer id: the service derives it from the idempotency key, so a retry with the
    // same key cannot make a second transfer.
    let key = IdempotencyKey::new("alice-pays-bob-0001").unwrap();
    let body = post(None, ALICE, BOB, 300);
    let first = acme.create_transfer(&body, Some(key.clone())).await.unwrap();
    assert_eq!((first.http_status, first.replayed), (201, false));
    assert_eq!(first.idempotency_key, key);
    let again = acme.create_transfer(&body, Some(key.clone())).await.unwrap();
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.http_status, 201, "the first answer again");
    assert_eq!(again.value, first.value);
    let alice = acme.get_account(id(ALICE)).await.unwrap();
    assert_eq!(alice.balances.debits_posted, minor(300), "moved once");

    // The same key with another request: refused, nothing moves.
    let other = post(None, ALICE, BOB, 301);
    let error = acme.create_transfer(&other, Some(key)).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(422), Some("idempotency_key_reused")));

    // Without a key, each call gets a fresh one: two calls, two transfers.
    let one = acme.create_transfer(&post(None, ALICE, BOB, 1), None).await.unwrap();
    let two = acme.create_transfer(&post(None, ALICE, BOB, 1), None).await.unwrap();
    assert_ne!(one.idempotency_key, two.idempotency_key);
    assert_ne!(one.value.id, two.value.id);
    assert!(!one.replayed && !two.replayed);

    // `retry` with a caller's key on a write that succeeds at once: one attempt, and the
    // same key later replays it.
    let key = IdempotencyKey::new("alice-pays-bob-0002").unwrap();
    let policy = RetryPolicy::default();
    let body = post(None, ALICE, BOB, 5);
    let paid = retry(&policy, Some(key.clone()), |key| acme.create_transfer(&body, Some(key)))
        .await
        .unwrap();
    let replayed =
        retry(&policy, Some(key), |key| acme.create_transfer(&body, Some(key))).await.unwrap();
    assert!(replayed.replayed && !paid.replayed);
    assert_eq!(replayed.value.id, paid.value.id);
}

#[tokio::test]
async fn retry_waits_out_a_rate_limit() {
    let one_per_sec = NonZeroU32::new(1).unwrap();
    let limit = server::limits::KeyRateLimit { per_sec: one_per_sec, burst: one_per_sec };
    let service = Service::start_with(|state| state.with_key_rate_limit(Some(limit))).await;
    let admin = service.admin();

    admin.list_keys(&Page::default()).await.unwrap();
    let error = admin.list_keys(&Page::default()).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(429), Some("rate_limited")));
    assert!(error.is_retryable());
    let wait_secs = error.retry_after_secs().unwrap();
    assert!((1..=2).contains(&wait_secs), "Retry-After: {wait_secs}");

    let page = Page::default();
    let mut n_attempts = 0;
    let keys = retry(&RetryPolicy::default(), None, |_| {
        n_attempts += 1;
        admin.list_keys(&page)
    })
    .await
    .unwrap();
    assert_eq!(keys.data.len(), 1);
    assert!(n_attempts >= 2, "the first attempt was refused: {n_attempts}");

    // A policy that may not wait as long as the service asks gives up with the refusal.
    let impatient =
        RetryPolicy { attempts_max: 2, retry_after_max_ms: 0, ..RetryPolicy::default() };
    let error = retry(&impatient, None, |_| admin.list_keys(&page)).await.unwrap_err();
    assert_eq!(error.code(), Some("rate_limited"));
}
