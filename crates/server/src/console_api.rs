//! `/console`: the operators' web console (crate `console`) and its sign-in.
//!
//! - `GET /console` and `GET /console/assets/{file}`: the page and its script and style,
//!   every response with a strict Content-Security-Policy, no framing and no caching.
//! - `POST /console/session` with `{"key": "<secret>"}`: signs in. Only a live platform key
//!   holding an operator's scope (`ops:read`, or `admin`) that does not sign its requests
//!   may; the answer sets the session cookie and gives the CSRF token. A request whose
//!   `Origin` is another site is refused, so no page elsewhere can sign a browser in.
//! - `GET /console/session`: who is signed in, and the CSRF token again (a new tab needs it;
//!   the same-origin policy keeps it from other sites).
//! - `DELETE /console/session`: signs out (clears the cookie).
//!
//! From then on the console calls `/v1` like any client, with the cookie and the CSRF
//! header instead of `Authorization` (`auth::resolve`).

use access::{ApiKey, Scope, Secret};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::auth::live_key;
use crate::error::ApiError;
use crate::AppState;

/// Longest key accepted at sign-in, as for `Authorization`.
const KEY_LEN_MAX: usize = 128;

fn with_security_headers(mut response: Response) -> Response {
    for (name, value) in console::assets::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

fn asset_response(asset: console::assets::Asset) -> Response {
    with_security_headers(
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response(),
    )
}

/// The console's page.
pub async fn index() -> Response {
    asset_response(console::assets::INDEX)
}

/// The console's script and style.
pub async fn asset(Path(file): Path<String>) -> Response {
    match console::assets::asset(&file) {
        Some(asset) => asset_response(asset),
        None => with_security_headers(ApiError::not_found("console file").into_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    key: String,
}

#[derive(Serialize)]
struct SessionView {
    object: &'static str,
    key_id: String,
    key_prefix: String,
    tenant: String,
    scopes: Vec<&'static str>,
    csrf: String,
    expires_at_ms: u64,
}

impl SessionView {
    fn of(key: &ApiKey, csrf: String, expires_at_ms: u64) -> SessionView {
        SessionView {
            object: "console_session",
            key_id: key.id.clone(),
            key_prefix: key.prefix.clone(),
            tenant: key.tenant.to_string(),
            scopes: key.scopes.iter().map(|scope| scope.as_str()).collect(),
            csrf,
            expires_at_ms,
        }
    }
}

/// A request from another site (its `Origin` names another host) is refused: the
/// console's own script always sends its own origin.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "the console signs in from its own origin only",
        )),
    }
}

/// Who may sign in: a platform key with an operator's scope that does not sign requests.
fn may_sign_in(state: &AppState, key: &ApiKey) -> Result<(), ApiError> {
    // The console operates the live book (test keys are refused 403 `test_mode_off`).
    crate::auth::same_book(state, key)?;
    if key.signed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "console_signing_key",
            "a key that signs its requests cannot sign in to the console: a session would \
             stand in for its signatures; use an operator's key",
        ));
    }
    let platform =
        key.merchant.is_none() && (key.is_admin() || state.namespaces.is_admin_tenant(&key.tenant));
    if !platform || !key.allows(Scope::OpsRead) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "console_scope",
            "the console is for the platform's operators: a platform key with ops:read",
        ));
    }
    Ok(())
}

/// Signs in with an API key.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let body: SignInBody = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("the body: {error}"))
    })?;
    if body.key.is_empty() || body.key.len() > KEY_LEN_MAX {
        return Err(ApiError::unauthenticated());
    }
    let key = live_key(&state, Secret::new(&body.key).hash()).await?;
    state.rate_limits.check_key(&key.id)?;
    may_sign_in(&state, &key)?;
    let now_ms = state.clock.now().0 / 1_000;
    let issued = state.console.issue(key.hash.0, now_ms);
    let cookie = console::session::set_cookie(&issued, now_ms);
    tracing::info!(key = %key.id, "console sign-in");
    let view = SessionView::of(&key, issued.csrf, issued.expires_at_ms);
    let mut response = (StatusCode::CREATED, axum::Json(view)).into_response();
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(with_security_headers(response))
}

/// Who is signed in.
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(console::session::cookie_in)
        .ok_or_else(ApiError::unauthenticated)?;
    let now_ms = state.clock.now().0 / 1_000;
    let session = state.console.open(cookie, now_ms).map_err(|_| ApiError::unauthenticated())?;
    let key = live_key(&state, access::KeyHash(session.key_hash)).await?;
    may_sign_in(&state, &key)?;
    let view = SessionView::of(&key, state.console.csrf_of(cookie), session.expires_at_ms);
    Ok(with_security_headers(axum::Json(view).into_response()))
}

/// Signs out.
pub async fn sign_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&console::session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    with_security_headers(response)
}
