//! Authentication: `Authorization: Bearer <secret>` resolves to a [`Caller`] — the key's id,
//! tenant and scopes. Authorization of each resource is done by the handlers through
//! [`Caller::require`] and the ownership checks in `ledger_api`.
//!
//! The console (`console_api`) presents the same keys through a sealed session cookie, which
//! counts only together with its CSRF header.
//!
//! Keys created with `"signed": true` must also sign every request ([`verify_signature`]):
//! an HMAC-SHA256 over method, path, timestamp, nonce and body hash, inside a five-minute
//! window, each nonce once. The scheme is [`access::signature`]; docs/api.md has an example.

use access::signature::{self, NONCE_LEN_MAX, NONCE_LEN_MIN, SIGNATURE_WINDOW_SECS};
use access::{ApiKey, KeyHash, Scope, Secret, TenantId};
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

/// How a request presented its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presented {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// The console's session cookie with its CSRF header (`console::session`).
    Console,
}

/// The live (unrevoked) key of a request: presented in the `Authorization` header or, from
/// the console, named by its session cookie (which counts only with its CSRF header).
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    resolve_presented(state, headers).await.map(|(key, _)| key)
}

async fn resolve_presented(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(ApiKey, Presented), ApiError> {
    if let Some(authorization) = headers.get(axum::http::header::AUTHORIZATION) {
        let presented = authorization
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthenticated)?;
        if presented.len() > PRESENTED_KEY_LEN_MAX {
            return Err(ApiError::unauthenticated());
        }
        let key = live_key(state, Secret::new(presented).hash()).await?;
        same_book(state, &key)?;
        return Ok((key, Presented::Bearer));
    }
    let cookie = headers
        .get(axum::http::header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(console::session::cookie_in)
        .ok_or_else(ApiError::unauthenticated)?;
    let now_ms = state.clock.now().0 / 1_000;
    let session = state
        .console
        .open_with_csrf(cookie, header(headers, console::session::CSRF_HEADER), now_ms)
        .map_err(|_| ApiError::unauthenticated())?;
    let key = live_key(state, KeyHash(session.key_hash)).await?;
    same_book(state, &key)?;
    // Signing keys never get a session (`console_api::sign_in`); one found here is refused
    // rather than let a cookie stand in for its signatures.
    if key.signed {
        return Err(ApiError::unauthenticated());
    }
    Ok((key, Presented::Console))
}

/// A key acts on the book of its mode only (`books`): the dispatch sends test keys to the
/// test book, so this refuses what reaches a book some other way — a test key where no test
/// book runs, or a key named by a console session.
pub(crate) fn same_book(state: &AppState, key: &ApiKey) -> Result<(), ApiError> {
    if key.mode == state.mode {
        return Ok(());
    }
    Err(match key.mode {
        access::KeyMode::Test => ApiError::new(
            StatusCode::FORBIDDEN,
            "test_mode_off",
            "test keys act on the test book, which this service does not run",
        ),
        access::KeyMode::Live => ApiError::new(
            StatusCode::FORBIDDEN,
            "live_key_in_test_mode",
            "a live key acts on the live book only: send it without the /test prefix",
        ),
    })
}

/// The live key with this hash, through the cache.
pub(crate) async fn live_key(state: &AppState, hash: KeyHash) -> Result<ApiKey, ApiError> {
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
    let key = match resolve_presented(&state, request.headers()).await {
        Ok((key, Presented::Bearer)) if key.signed => key,
        Ok((key, _)) => {
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
