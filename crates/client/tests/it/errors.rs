//! Refusals reach the caller as typed errors with the service's stable code, status, type,
//! param and request id; failures to reach the service are transport errors, retryable.

use client::ledger::{AccountRequest, AssetRequest, BalanceRule};
use client::parties::CustomerRequest;
use client::ClientError;

use crate::support::*;

fn api(error: &ClientError) -> &client::ApiError {
    match error {
        ClientError::Api(api) => api,
        other => panic!("not a refusal by the service: {other:?}"),
    }
}

#[tokio::test]
async fn refusals_decode_into_their_codes() {
    let service = Service::start().await;
    let acme = service.acme_world().await;

    // 404: no such account (or not yours).
    let error = acme.get_account(id(999)).await.unwrap_err();
    let refusal = api(&error);
    assert_eq!((refusal.status, refusal.code.as_str()), (404, "resource_missing"));
    assert_eq!(refusal.error_type, "not_found_error");
    assert!(refusal.request_id.as_deref().is_some_and(|id| id.starts_with("req_")), "{refusal:?}");
    assert_eq!(error.request_id(), refusal.request_id.as_deref());
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("resource_missing"), "{error}");

    // 422: the debit would overdraw the wallet.
    let error = acme.create_transfer(&post(Some(1), ALICE, BOB, 5), None).await.unwrap_err();
    let refusal = api(&error);
    assert_eq!((refusal.status, refusal.code.as_str()), (422, "exceeds_credits"));
    assert_eq!(refusal.error_type, "rejected_error");
    assert!(!error.is_retryable());

    // 422: well-formed fields, refused together.
    let error = acme.create_transfer(&post(Some(2), ALICE, ALICE, 5), None).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(422), Some("accounts_must_differ")));

    // 400: a scale out of range, with the field to blame.
    let asset = AssetRequest { code: "USD".into(), scale: 19 };
    let error = service.admin().create_asset(&asset, None).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(api(&error).error_type, "invalid_request_error");

    // 409: the same account id with other fields.
    let other = AccountRequest::new(id(ALICE), CNY, BANK_CHART, BalanceRule::Unbounded);
    let error = acme.create_account(&other, None).await.unwrap_err();
    assert_eq!(error.status(), Some(409), "{error:?}");

    // 403: a read-only key writes.
    let secret = service.key("acme", vec![client::keys::Scope::LedgerRead], false).await;
    let error = service.client(&secret).create_transfer(&post(None, BANK, ALICE, 1), None).await;
    assert_eq!(error.unwrap_err().code(), Some("missing_scope"));

    // 401: an unknown key.
    let stranger = service.client(&format!("qb_test_{}", "0".repeat(64)));
    let error = stranger.get_account(id(ALICE)).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(401), Some("invalid_api_key")));
    assert_eq!(api(&error).error_type, "authentication_error");

    // 503: this node runs no payment core; retry later (with the same idempotency key).
    let error =
        acme.create_customer(&CustomerRequest::new("alice", &[CNY]), None).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(503), Some("payments_disabled")));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn no_answer_is_a_retryable_transport_error() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = client::Client::new(&format!("http://{address}"), "qb_test_key").unwrap();
    let error = client.get_account(id(1)).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!((error.code(), error.status()), (None, None));
}

#[tokio::test]
async fn the_service_is_healthy_ready_and_serves_the_checked_in_document() {
    let service = Service::start().await;
    let anonymous = service.client("qb_test_none");
    anonymous.healthz().await.unwrap();
    let readiness = anonymous.readyz().await.unwrap();
    assert!(readiness.ready, "{readiness:?}");
    assert!(anonymous.metrics().await.unwrap().contains("qianbao_"));
    assert_eq!(anonymous.openapi_json().await.unwrap(), crate::document::load());
}
