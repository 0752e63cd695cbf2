//! Test mode (测试模式): the live book and the test book in one service.
//!
//! A test key (`qb_test_…`) acts on a book of its own: another ledger, order store, webhook
//! store, reconciliation and operators' desk, whose channels are only ever a simulator's.
//! Test traffic therefore cannot touch a live party, account, order, webhook or channel: a
//! live id named by a test key is not there (404), and nothing a test key does moves the
//! live journal. This is isolation by construction, not by a filter on every query that a
//! new endpoint could forget.
//!
//! Each request is handed to one book's router before anything else runs:
//! - by the key's prefix: `qb_test_` is part of the secret (its SHA-256 is what is stored),
//!   so no live key can carry it;
//! - by the path prefix [`TEST_PREFIX`], stripped before the test book routes it: a test
//!   channel's callbacks (`/test/channel-callbacks/{channel}`), and the test book's own
//!   `readyz`.
//!
//! Each book's router then authenticates as always and refuses a key of the other mode
//! (`auth`), so no way around the dispatch crosses books either. What the books share: the
//! access store (keys, idempotency records, ownership — a tenant's test ids live in a
//! namespace of their own, `access::namespace`), admission (one machine's capacity), and the
//! HTTP metrics, labelled by mode.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use axum::Router;
use ledger::port::LedgerReader;
use tower::ServiceExt;

use crate::AppState;

/// Paths under this prefix are the test book's.
pub const TEST_PREFIX: &str = "/test";

impl AppState {
    /// This state serves the book of `mode`.
    pub fn with_mode(mut self, mode: access::KeyMode) -> AppState {
        self.mode = mode;
        self
    }

    /// The state of a test book on `ledger` and `reader` beside this (live) one. It shares
    /// what is one per service — the access store and its caches (a revoked key stops at
    /// once in both books), rate limits, admission, the HTTP metrics, the id-namespace
    /// secret, the node's name — and has none of the live book's payment core, webhooks,
    /// reconciliation, desk or switches: give it its own with the `with_*` methods.
    pub fn test_book(
        &self,
        ledger: ledger::LedgerHandle,
        reader: Arc<dyn LedgerReader>,
    ) -> AppState {
        AppState(Arc::new(crate::AppStateFields {
            ledger,
            reader,
            payments: None,
            webhooks: None,
            recon: None,
            desk: None,
            switches: Arc::default(),
            mode: access::KeyMode::Test,
            storage_metrics: None,
            ..crate::AppStateFields::clone(self)
        }))
    }
}

/// The service's router with a test book beside the live one: test keys' requests (and
/// paths under [`TEST_PREFIX`]) go to `test`'s router, every other request to `live`'s.
/// `test`'s switches, desk and stores must be its own.
pub fn router_with_test_book(live: AppState, test: AppState) -> Router {
    let live = crate::router(live.with_mode(access::KeyMode::Live));
    let test = crate::router(test.with_mode(access::KeyMode::Test));
    let dispatch = tower::service_fn(move |mut request: Request| {
        let (live, test) = (live.clone(), test.clone());
        async move {
            if let Some(inner) = strip_test_prefix(request.uri()) {
                *request.uri_mut() = inner;
                return test.oneshot(request).await;
            }
            if presents_test_key(&request) {
                return test.oneshot(request).await;
            }
            live.oneshot(request).await
        }
    });
    Router::new().fallback_service(dispatch)
}

/// Whether the request presents a test key in its `Authorization` header.
fn presents_test_key(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|secret| secret.starts_with("qb_test_"))
}

/// `/test/x?q` → `/x?q`; `None` for a path outside the prefix.
fn strip_test_prefix(uri: &Uri) -> Option<Uri> {
    let rest = uri.path().strip_prefix(TEST_PREFIX)?;
    if !rest.starts_with('/') {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    path_and_query.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_prefix_are_stripped() {
        let strip = |raw: &str| strip_test_prefix(&raw.parse::<Uri>().expect("uri"));
        assert_eq!(
            strip("/test/channel-callbacks/bank_a").map(|u| u.to_string()),
            Some("/channel-callbacks/bank_a".to_string())
        );
        assert_eq!(strip("/test/readyz?x=1").map(|u| u.to_string()), Some("/readyz?x=1".into()));
        assert_eq!(strip("/testing/readyz"), None);
        assert_eq!(strip("/test"), None);
        assert_eq!(strip("/v1/test/x"), None);
    }
}
