//! Signed requests through the client: a key created with `"signed": true` works only with
//! `sign_requests`, for reads with queries, writes with bodies, and encoded path parameters.

use client::keys::Scope;
use client::{Client, Page};

use crate::support::*;

#[tokio::test]
async fn a_signing_key_signs_every_request() {
    let service = Service::start().await;
    let acme = service.acme_world().await;
    pay(&acme, 1, BANK, ALICE, 600).await;
    pay(&acme, 3, BANK, ALICE, 400).await;

    let secret = service.key("acme", vec![Scope::LedgerRead, Scope::LedgerWrite], true).await;
    let signed = Client::builder(&service.base_url, &secret).sign_requests().build().unwrap();
    let unsigned = service.client(&secret);

    // Without a signature even the right key is refused.
    let error = unsigned.get_account(id(ALICE)).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(401), Some("signature_missing")));

    // A read, a read with a query (signed as sent), a write with a body.
    let alice = signed.get_account(id(ALICE)).await.unwrap();
    assert_eq!(alice.balances.credits_posted, minor(1000));
    let entries = signed.list_entries(id(ALICE), &Page::first(1)).await.unwrap();
    assert_eq!(entries.data.len(), 1);
    assert!(entries.has_more);
    let page = Page::after(1, entries.next_starting_after().unwrap());
    signed.list_entries(id(ALICE), &page).await.unwrap();
    let moved = signed.create_transfer(&post(Some(2), ALICE, BOB, 250), None).await.unwrap();
    assert_eq!(moved.http_status, 201);
    // Each request has its own nonce: the same call again is not a replay of the signature.
    let again = signed.create_transfer(&post(Some(2), ALICE, BOB, 250), None).await.unwrap();
    assert_eq!((again.http_status, again.value.id), (200, moved.value.id));

    // A path parameter that needs percent-encoding is signed as it is sent: the answer is
    // about the (missing) customer, not the signature.
    let error = signed.get_customer("alice smith/2").await.unwrap_err();
    assert_ne!(error.status(), Some(401), "{error:?}");

    // Signing with a key that need not sign is harmless: the service checks only signing keys.
    let plain = service.key("acme", vec![Scope::LedgerRead], false).await;
    let over_careful = Client::builder(&service.base_url, &plain).sign_requests().build().unwrap();
    over_careful.get_transfer(moved.value.id).await.unwrap();
}
