//! Authentication: `Authorization: Bearer <secret>` resolves to a [`Caller`] — the key's id,
//! tenant and scopes. Authorization of each resource is done by the handlers through
//! [`Caller::require`] and the ownership checks in `ledger_api`.

use access::{ApiKey, Scope, Secret, TenantId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::AppState;

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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(ApiError::unauthenticated)?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthenticated)?;
        // Bound the work an unauthenticated caller can cause.
        if presented.len() > 128 {
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
            Some(key) if key.revoked_at_us.is_none() && key.hash.matches(&hash) => {
                Ok(Caller { key })
            }
            _ => Err(ApiError::unauthenticated()),
        }
    }
}
