//! `Idempotency-Key` for every POST: a retry with the same key and the same request returns
//! the first response (with `Idempotent-Replayed: true`) and does nothing twice; the same key
//! with a different request is rejected (422 `idempotency_key_reused`); a duplicate while the
//! first is still running gets 409 `idempotency_key_in_use`. Records are kept 24 hours at least.
//!
//! Server errors (5xx) are not recorded: the claim is released so that the retry runs again,
//! which is safe because every ledger write underneath is idempotent by its own id.
//!
//! A record belongs to the API key that made the request: the same Idempotency-Key sent with
//! another key (of the same tenant or not) is a request of its own, authorised on its own, and
//! never receives the first key's stored answer.
//!
//! Secrets are never stored: a response field named `secret` (a new API key's, a new webhook
//! endpoint's signing secret) is removed from the stored copy, so a replay answers the same
//! status and fields without it. A secret is shown once; a client whose first answer was lost
//! revokes what it created and creates another.
//!
//! A claim names the node that made it. A request whose connection closes before it answers
//! releases its claim; a node that starts releases the claims its dead predecessor left
//! (see `AccessStore::release_node_claims`), so a client retrying after a crash is served at
//! once. A claim of a node that never comes back is taken over after
//! `access::IDEMPOTENCY_IN_FLIGHT_MAX_US`.

use std::future::Future;

use access::{Claim, IdempotencyScope, Scope};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// The header, for the OpenAPI document.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 1 to 255 visible ASCII characters (0x21 to 0x7e), scoped per API key, kept at least
    /// 24 hours: a retry with the same key and body returns the first response and does
    /// nothing twice.
    #[serde(rename = "Idempotency-Key")]
    #[param(value_type = Option<crate::formats::IdempotencyKey>, nullable = false)]
    pub idempotency_key: Option<String>,
}
const REPLAYED: &str = "idempotent-replayed";

/// The caller's idempotency key, validated, if it sent one.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| bad_key())?;
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_LEN_MAX
        || !key.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(bad_key());
    }
    Ok(Some(key.to_string()))
}

fn bad_key() -> ApiError {
    ApiError::invalid(
        "invalid_idempotency_key",
        format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"),
    )
    .with_param("Idempotency-Key")
}

/// Runs `run` at most once per (tenant, Idempotency-Key, request). Handlers that need the
/// key itself (to derive ids) read it with [`key`]; it is validated here first.
///
/// The caller must hold `scope` before anything else happens: a stored response is only
/// ever replayed to a key that could have made the request itself.
pub async fn once<F>(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    run: F,
) -> Response
where
    F: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    if let Err(error) = caller.require(scope) {
        return error.into_response();
    }
    let key = match key(headers) {
        Ok(Some(key)) => key,
        Ok(None) => return respond(run.await, false),
        Err(error) => return error.into_response(),
    };
    let request_hash: [u8; 32] = Sha256::new()
        .chain_update(route.as_bytes())
        .chain_update([0])
        .chain_update(body)
        .finalize()
        .into();
    let scope = IdempotencyScope { tenant: caller.tenant().clone(), key_id: caller.key.id.clone() };
    let access = state.access.clone();
    let now_us = state.clock.now().0;
    let node = state.node.clone();
    let (claim_key, claim_scope) = (key.clone(), scope.clone());
    let claim = tokio::task::spawn_blocking(move || {
        access.claim_idempotency(&claim_scope, &claim_key, request_hash, now_us, &node)
    })
    .await;
    let claim = match claim {
        Ok(Ok(claim)) => claim,
        Ok(Err(error)) => return ApiError::from(error).into_response(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    match claim {
        Claim::InFlight => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed",
        )
        .into_response(),
        Claim::Done { request_hash: first, .. } if first != request_hash => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Claim::Done { status, body, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response =
                (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body)
                    .into_response();
            response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Claim::New => {
            // Released if this future is dropped before it records an answer (the client
            // closed the connection): the retry must not wait for the claim to go stale.
            let mut guard =
                ReleaseOnDrop { state: Some((state.clone(), scope.clone(), key.clone())) };
            let result = run.await;
            guard.state = None;
            let access = state.access.clone();
            let record = match &result {
                Ok((status, value)) => Some((status.as_u16(), without_secrets(value).to_string())),
                // A 429 says "later", not "no": the retry with the same key must run.
                Err(error)
                    if error.status.is_client_error()
                        && error.status != StatusCode::TOO_MANY_REQUESTS =>
                {
                    Some((error.status.as_u16(), error.body().to_string()))
                }
                Err(_) => None,
            };
            let stored = tokio::task::spawn_blocking(move || match record {
                Some((status, body)) => {
                    access.complete_idempotency(&scope, &key, status, body.as_bytes())
                }
                None => access.release_idempotency(&scope, &key),
            })
            .await;
            if let Ok(Err(error)) | Err(error) =
                stored.map_err(|e| access::AccessError::Backend(e.to_string()))
            {
                tracing::error!(%error, "could not record an idempotency result");
            }
            respond(result, false)
        }
    }
}

/// The name of every response field that carries a secret.
pub const SECRET_FIELD: &str = "secret";

/// The copy of a response that may be stored: every `secret` field removed, at any depth.
pub fn without_secrets(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .filter(|(name, _)| name.as_str() != SECRET_FIELD)
                .map(|(name, field)| (name.clone(), without_secrets(field)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(without_secrets).collect())
        }
        other => other.clone(),
    }
}

/// Releases a claim whose request was abandoned mid-way.
struct ReleaseOnDrop {
    state: Option<(AppState, IdempotencyScope, String)>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some((state, scope, key)) = self.state.take() else { return };
        // Drop cannot wait: the release runs on the blocking pool. If the runtime is already
        // gone, the node's next start releases the claim instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || {
                if let Err(error) = state.access.release_idempotency(&scope, &key) {
                    tracing::warn!(%error, "could not release an abandoned idempotency claim");
                }
            });
        }
    }
}

fn respond(result: Result<(StatusCode, serde_json::Value), ApiError>, replayed: bool) -> Response {
    let mut response = match result {
        Ok((status, value)) => (status, axum::Json(value)).into_response(),
        Err(error) => error.into_response(),
    };
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static(if replayed { "true" } else { "false" }));
    response
}
