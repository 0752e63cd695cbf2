//! Authentication: `Authorization: Bearer <secret>` resolves to a [`Caller`] — the key's id,
//! tenant and scopes. Authorization of each resource is done by the handlers through
//! [`Caller::require`] and the ownership checks in `ledger_api`.
//!
//! Keys created with `"signed": true` must also sign every request ([`verify_signature`]):
//! an HMAC-SHA256 over method, path, timestamp, nonce and body hash, inside a five-minute
//! window, each nonce once. The scheme is [`access::signature`]; docs/api.md has an example.

use access::signature::{self, NONCE_LEN_MAX, NONCE_LEN_MIN, SIGNATURE_WINDOW_SECS};
use access::{ApiKey, Scope, Secret, TenantId};
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::{AppState, BODY_BYTES_MAX};

/// Header carrying the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "qianbao-timestamp";
/// Header carrying a fresh random nonce, 16 to 64 characters.
pub const NONCE_HEADER: &str = "qianbao-nonce";
/// Header carrying `v1=<hex signature>`.
pub const SIGNATURE_HEADER: &str = "qianbao-signature";

/// Longest presented secret; bounds the work an unauthenticated caller can cause.
const PRESENTED_KEY_LEN_MAX: usize = 128;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    pub fn tenant(&self) -> &TenantId {
        &self.key.tenant
    }

    pub fn is_admin(&self) -> bool {
        self.key.is_admin()
    }

    /// The merchant a merchant's key is bound to.
    pub fn merchant(&self) -> Option<&str> {
        self.key.merchant.as_deref()
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let key = match parts.extensions.remove::<Resolved>() {
            Some(Resolved(key)) => key,
            None => resolve(state, &parts.headers).await?,
        };
        state.rate_limits.check_key(&key.id)?;
        Ok(Caller { key })
    }
}

/// A key the signature middleware already resolved (and, if it signs, verified).
#[derive(Clone)]
struct Resolved(ApiKey);

/// The live (unrevoked) key presented in the `Authorization` header.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthenticated)?;
    if presented.len() > PRESENTED_KEY_LEN_MAX {
        return Err(ApiError::unauthenticated());
    }
    let hash = Secret::new(presented).hash();
    let key = match state.caches.key(&hash) {
        Some(key) => Some(key),
        None => {
            let access = state.access.clone();
            let key = tokio::task::spawn_blocking(move || access.key_by_hash(&hash))
                .await
                .map_err(ApiError::internal)??;
            if let Some(key) = &key {
                state.caches.put_key(key.clone());
            }
            key
        }
    };
    match key {
        Some(key) if key.revoked_at_us.is_none() && key.hash.matches(&hash) => Ok(key),
        _ => Err(ApiError::unauthenticated()),
    }
}

fn signature_error(code: &str, message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Middleware on `/v1`: requests made with a signing key must carry a valid, fresh, unused
/// signature. Requests with other keys (or none) pass through to the handlers, whose own
/// authentication answers them.
pub async fn verify_signature(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut request = request;
    let key = match resolve(&state, request.headers()).await {
        Ok(key) if key.signed => key,
        Ok(key) => {
            // Resolved once per request: the `Caller` extractor takes it from here.
            request.extensions_mut().insert(Resolved(key));
            return next.run(request).await;
        }
        Err(_) => return next.run(request).await,
    };
    let headers = request.headers();
    let (Some(timestamp), Some(nonce), Some(presented)) = (
        header(headers, TIMESTAMP_HEADER),
        header(headers, NONCE_HEADER),
        header(headers, SIGNATURE_HEADER),
    ) else {
        return signature_error(
            "signature_missing",
            format!(
                "this key signs its requests: send {TIMESTAMP_HEADER}, {NONCE_HEADER} and \
                 {SIGNATURE_HEADER}"
            ),
        );
    };
    let Ok(timestamp_secs) = timestamp.parse::<u64>() else {
        return signature_error("signature_invalid", "the timestamp is not Unix seconds");
    };
    let now_secs = state.clock.now().0 / 1_000_000;
    if now_secs.abs_diff(timestamp_secs) > SIGNATURE_WINDOW_SECS {
        return signature_error(
            "signature_expired",
            format!("the timestamp is more than {SIGNATURE_WINDOW_SECS} s from the server's clock"),
        );
    }
    if !(NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        || !nonce.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return signature_error(
            "signature_invalid",
            format!(
                "the nonce must be {NONCE_LEN_MIN} to {NONCE_LEN_MAX} characters of [A-Za-z0-9_-]"
            ),
        );
    }
    let Some(presented) = presented.strip_prefix("v1=").map(str::to_owned) else {
        return signature_error("signature_invalid", "the signature must read v1=<hex>");
    };
    let nonce = nonce.to_owned();

    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_BYTES_MAX).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {BODY_BYTES_MAX} bytes"),
        )
        .into_response();
    };
    // The path as the client sent it: inside the nested `/v1` router `parts.uri` has lost
    // its prefix, the original URI has not.
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
    let path_and_query = uri.path_and_query().map_or("/", |value| value.as_str());
    let string_to_sign = signature::string_to_sign(
        parts.method.as_str(),
        path_and_query,
        timestamp_secs,
        &nonce,
        &body,
    );
    if !signature::verify(&key.hash, &string_to_sign, &presented) {
        return signature_error(
            "signature_invalid",
            "the signature does not match the request (see docs/api.md, Signed requests)",
        );
    }
    // Only a valid signature spends the nonce, so garbage cannot burn a client's nonces.
    let access = state.access.clone();
    let key_id = key.id.clone();
    let now_us = state.clock.now().0;
    let fresh = match tokio::task::spawn_blocking(move || access.use_nonce(&key_id, &nonce, now_us))
        .await
    {
        Ok(Ok(fresh)) => fresh,
        Ok(Err(error)) => return ApiError::from(error).into_response(),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    if !fresh {
        return signature_error("signature_replayed", "this nonce was already used by this key");
    }
    let mut request = Request::from_parts(parts, axum::body::Body::from(body));
    request.extensions_mut().insert(Resolved(key));
    next.run(request).await
}
