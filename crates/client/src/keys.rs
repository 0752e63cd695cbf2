//! API keys (tag `keys`, admin only): create one (its secret is shown once), list them,
//! revoke one.

use serde::{Deserialize, Serialize};

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, List, Page, Paged, Secret};

wire_enum! {
    /// What a key may do (docs/api.md, "Authentication and authorisation").
    pub enum Scope {
        LedgerRead = "ledger:read",
        LedgerWrite = "ledger:write",
        /// Everything, for every tenant.
        Admin = "admin",
        ReconRead = "recon:read",
        /// The maker of reconciliation.
        ReconWrite = "recon:write",
        /// The checker of reconciliation.
        ReconApprove = "recon:approve",
        OpsRead = "ops:read",
        /// The maker of operators' actions.
        OpsWrite = "ops:write",
        /// The checker of operators' actions.
        OpsApprove = "ops:approve",
    }
}

wire_enum! {
    /// `qb_live_…` or `qb_test_…`.
    pub enum KeyMode {
        Live = "live",
        Test = "test",
    }
}

/// `POST /v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRequest {
    /// The owner of everything the key creates: 1 to 64 of `a-z 0-9 _ -`.
    pub tenant: String,
    pub mode: KeyMode,
    /// 1 to 9 different scopes.
    pub scopes: Vec<Scope>,
    /// Every request with the key must be signed ([`crate::ClientBuilder::sign_requests`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
    /// Binds the key to one merchant of the tenant (its payments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
}

impl KeyRequest {
    pub fn new(tenant: &str, mode: KeyMode, scopes: Vec<Scope>) -> KeyRequest {
        KeyRequest { tenant: tenant.to_string(), mode, scopes, signed: false, merchant: None }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct KeyView {
    /// `key_…`: safe to log and show.
    pub id: String,
    pub tenant: String,
    pub mode: KeyMode,
    pub scopes: Vec<Scope>,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub revoked: bool,
    pub signed: bool,
    #[serde(default)]
    pub merchant: Option<String>,
    /// Only in the answer that created the key, never in its replay: if that answer is
    /// lost, revoke the key and create another.
    #[serde(default)]
    pub secret: Option<Secret>,
}

impl Paged for KeyView {
    type Cursor = String;
    fn cursor(&self) -> String {
        self.id.clone()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RevokedKeyView {
    pub id: String,
    pub revoked: bool,
}

impl Client {
    /// Creates a key: 201 with its secret, shown only this once.
    pub async fn create_key(
        &self,
        key: &KeyRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<KeyView>, ClientError> {
        self.write(routes::CREATE_KEY, &[], Some(key), idempotency_key).await
    }

    /// Keys in id order, never their secrets.
    pub async fn list_keys(&self, page: &Page<String>) -> Result<List<KeyView>, ClientError> {
        let query = Query::new()
            .opt("limit", page.limit)
            .opt("starting_after", page.starting_after.as_ref());
        self.read(routes::LIST_KEYS, &[], query).await
    }

    /// Revokes a key: at once on the node that answers, within 5 s on the others. The last
    /// active admin key cannot be revoked (409 `last_admin_key`).
    pub async fn revoke_key(
        &self,
        id: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<RevokedKeyView>, ClientError> {
        self.write::<(), _>(routes::REVOKE_KEY, &[id], None, idempotency_key).await
    }
}
