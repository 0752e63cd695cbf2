//! `/v1/keys` (admin): create (the secret is in this response only), list, revoke.

use access::{KeyMode, Scope, TenantId};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::request::PageQuery;
use crate::views::{to_value, wire, ErrorBody, KeyList, KeyView, RevokedKeyView};
use crate::{idempotency, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The owner of everything the key creates.
    #[schema(value_type = formats::TenantName)]
    tenant: String,
    #[schema(value_type = wire::KeyMode)]
    mode: KeyMode,
    /// 1 to 9 different scopes; a merchant's key cannot hold `admin` (422
    /// `merchant_key_admin`); the `recon:*` and `ops:*` scopes are for keys of the platform tenant only
    /// (422 `platform_scope`).
    #[schema(value_type = wire::NewKeyScopes)]
    scopes: Vec<Scope>,
    /// Require every request with this key to be signed.
    #[serde(default)]
    signed: bool,
    /// Bind the key to one merchant of the tenant: in the payment core it sees and acts on
    /// that merchant's orders only.
    #[serde(default)]
    #[schema(value_type = Option<formats::PartyId>)]
    merchant: Option<String>,
}

/// Keys are managed from the live book only: a test key able to create keys could create a
/// live one, and test mode must never reach live money.
fn from_the_live_book(state: &AppState) -> Result<(), ApiError> {
    match state.mode {
        KeyMode::Live => Ok(()),
        KeyMode::Test => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "keys_live_only",
            "API keys are created, listed and revoked with a live admin key, not a test key",
        )),
    }
}

/// Create an API key (admin). The secret is in this response only. A test key cannot
/// manage keys (403 `keys_live_only`).
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyRequest,
    params(IdempotencyKey),
    responses((status = 201, body = KeyView), (status = "4XX", body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = from_the_live_book(&state) {
        return axum::response::IntoResponse::into_response(refused);
    }
    idempotency::once(&state, &caller, Scope::Admin, &headers, "POST /v1/keys", &body, async {
        let request: KeyRequest = crate::request::parse(&body)?;
        let tenant = TenantId::new(&request.tenant)
            .map_err(|e| ApiError::invalid("invalid_tenant", e.to_string()).with_param("tenant"))?;
        let mut distinct = request.scopes.clone();
        distinct.sort_by_key(|scope| scope.as_str());
        distinct.dedup();
        if request.scopes.is_empty() || distinct.len() != request.scopes.len() {
            return Err(ApiError::invalid(
                "invalid_scopes",
                "a key needs at least one scope, each named once",
            )
            .with_param("scopes"));
        }
        if let Some(merchant) = &request.merchant {
            let ok = !merchant.is_empty()
                && merchant.len() <= 64
                && merchant.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(ApiError::invalid(
                    "invalid_merchant",
                    "a merchant id of 1 to 64 of [A-Za-z0-9_.-]",
                )
                .with_param("merchant"));
            }
            // Each field is well-formed; together they are refused: 422, not 400.
            if request.scopes.contains(&Scope::Admin) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "merchant_key_admin",
                    "a merchant's key cannot be an admin key",
                )
                .with_param("scopes"));
            }
        }
        // Reconciliation works on the platform's own books: a tenant's key never holds it.
        let platform_tenant = state.namespaces.is_admin_tenant(&tenant);
        if request.scopes.iter().any(|scope| scope.is_platform())
            && (!platform_tenant || request.merchant.is_some())
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "platform_scope",
                "the recon:* and ops:* scopes are for keys of the platform tenant (not a merchant's)",
            )
            .with_param("scopes"));
        }
        let (mut key, secret) = access::generate_key(
            tenant,
            request.mode,
            request.scopes,
            request.signed,
            state.clock.now().0,
        )
        .map_err(ApiError::internal)?;
        key.merchant = request.merchant;
        let access = state.access.clone();
        let stored = key.clone();
        tokio::task::spawn_blocking(move || access.insert_key(&stored))
            .await
            .map_err(ApiError::internal)??;
        tracing::info!(key_id = %key.id, tenant = %key.tenant, "api key created");
        // The key's view without its secret: what it may do, never how to use it.
        let said = serde_json::to_value(KeyView::from(&key)).map_err(ApiError::internal)?;
        crate::actions_api::audit(&state, &caller, "key.create", key.id.to_string(), serde_json::Value::Null, said).await?;
        let view = KeyView { secret: Some(secret.expose().to_string()), ..KeyView::from(&key) };
        Ok((StatusCode::CREATED, to_value(view)?))
    })
    .await
}

/// List API keys (admin), never their secrets.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageQuery),
    responses((status = 200, body = KeyList), (status = "4XX", body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<KeyList>, ApiError> {
    from_the_live_book(&state)?;
    caller.require(Scope::Admin)?;
    let (limit, after) = query.parts()?;
    let access = state.access.clone();
    let mut keys = tokio::task::spawn_blocking(move || access.keys(after.as_deref(), limit + 1))
        .await
        .map_err(ApiError::internal)??;
    let has_more = keys.len() > limit;
    keys.truncate(limit);
    Ok(axum::Json(KeyList {
        object: "list",
        data: keys.iter().map(KeyView::from).collect(),
        has_more,
    }))
}

/// Revoke an API key (admin): it stops working at once on this node, within 5 s on others.
/// The last active admin key cannot be revoked (409 `last_admin_key`).
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = RevokedKeyView), (status = "4XX", body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<RevokedKeyView>, ApiError> {
    from_the_live_book(&state)?;
    caller.require(Scope::Admin)?;
    let access = state.access.clone();
    let now = state.clock.now().0;
    let lookup = id.clone();
    let revocation = tokio::task::spawn_blocking(move || access.revoke_key(&lookup, now))
        .await
        .map_err(ApiError::internal)??;
    match revocation {
        access::Revocation::Revoked => {}
        access::Revocation::NotFound => return Err(ApiError::not_found("api key")),
        access::Revocation::LastAdminKey => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last_admin_key",
                "this is the last active admin key: create another admin key before revoking it",
            )
            .with_param("id"))
        }
    }
    state.caches.forget_key(&id);
    tracing::info!(key_id = %id, "api key revoked");
    let after = serde_json::json!({ "revoked": true });
    crate::actions_api::audit(
        &state,
        &caller,
        "key.revoke",
        id.clone(),
        serde_json::Value::Null,
        after,
    )
    .await?;
    Ok(axum::Json(RevokedKeyView { object: "api_key", id, revoked: true }))
}
