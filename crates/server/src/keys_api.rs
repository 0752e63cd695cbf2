//! `/v1/keys` (admin): create (the secret is in this response only), list, revoke.

use access::{KeyMode, Scope, TenantId};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::ledger_api::PageQuery;
use crate::{idempotency, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    tenant: String,
    mode: KeyMode,
    scopes: Vec<Scope>,
    /// Require every request with this key to be signed.
    #[serde(default)]
    signed: bool,
}

pub fn key_json(key: &access::ApiKey) -> Value {
    json!({
        "object": "api_key",
        "id": key.id,
        "tenant": key.tenant,
        "mode": key.mode,
        "scopes": key.scopes,
        "prefix": key.prefix,
        "revoked": key.revoked_at_us.is_some(),
        "signed": key.signed,
    })
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/keys", &body, async {
        caller.require(Scope::Admin)?;
        let request: KeyRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
        let tenant = TenantId::new(&request.tenant)
            .map_err(|e| ApiError::invalid("invalid_tenant", e.to_string()).with_param("tenant"))?;
        if request.scopes.is_empty() {
            return Err(ApiError::invalid("invalid_scopes", "a key needs at least one scope")
                .with_param("scopes"));
        }
        let (key, secret) = access::generate_key(
            tenant,
            request.mode,
            request.scopes,
            request.signed,
            state.clock.now().0,
        )
        .map_err(ApiError::internal)?;
        let access = state.access.clone();
        let stored = key.clone();
        tokio::task::spawn_blocking(move || access.insert_key(&stored))
            .await
            .map_err(ApiError::internal)??;
        tracing::info!(key_id = %key.id, tenant = %key.tenant, "api key created");
        let mut body = key_json(&key);
        body["secret"] = json!(secret.expose());
        Ok((StatusCode::CREATED, body))
    })
    .await
}

pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let (limit, after) = query.parts()?;
    let access = state.access.clone();
    let mut keys = tokio::task::spawn_blocking(move || access.keys(after.as_deref(), limit + 1))
        .await
        .map_err(ApiError::internal)??;
    let has_more = keys.len() > limit;
    keys.truncate(limit);
    Ok(axum::Json(
        json!({"object": "list", "data": keys.iter().map(key_json).collect::<Vec<_>>(), "has_more": has_more}),
    ))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let access = state.access.clone();
    let now = state.clock.now().0;
    let lookup = id.clone();
    let revoked = tokio::task::spawn_blocking(move || access.revoke_key(&lookup, now))
        .await
        .map_err(ApiError::internal)??;
    if !revoked {
        return Err(ApiError::not_found("api key"));
    }
    state.caches.forget_key(&id);
    tracing::info!(key_id = %id, "api key revoked");
    Ok(axum::Json(json!({"object": "api_key", "id": id, "revoked": true})))
}
