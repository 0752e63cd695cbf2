//! Access control for the service: tenants, API keys with scopes, ownership of ledger
//! resources by tenants, and idempotency records for retried requests.
//!
//! Keys: a secret is `qb_<mode>_<64 hex chars>` (256 bits from the OS), shown once at creation.
//! Only its SHA-256 is stored; a request's key is found by the hash of what it presents, and the
//! stored hash is compared in constant time. A plain SHA-256 (not a password hash) is enough
//! because the secret is random and long: there is no dictionary to try.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A tenant: the owner of keys and of the accounts and transfers they create.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TenantId(String);

pub const TENANT_LEN_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant must be 1 to {TENANT_LEN_MAX} characters of a-z, 0-9, _ and -")]
pub struct TenantIdError;

impl TenantId {
    pub fn new(raw: &str) -> Result<TenantId, TenantIdError> {
        let valid = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
        if raw.is_empty() || raw.len() > TENANT_LEN_MAX || !raw.bytes().all(valid) {
            return Err(TenantIdError);
        }
        Ok(TenantId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key may do. `Admin` implies the others and sees every tenant's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    #[serde(rename = "ledger:read")]
    LedgerRead,
    #[serde(rename = "ledger:write")]
    LedgerWrite,
    #[serde(rename = "admin")]
    Admin,
    /// Reconciliation (对账): read statements, runs, breaks and the loss register.
    #[serde(rename = "recon:read")]
    ReconRead,
    /// Reconciliation: upload and fetch statements, start runs, assign breaks and propose
    /// their resolutions (the maker).
    #[serde(rename = "recon:write")]
    ReconWrite,
    /// Reconciliation: approve or reject another key's proposed resolution (the checker).
    #[serde(rename = "recon:approve")]
    ReconApprove,
    /// Operations (运维): read what needs an operator (escalated inquiries, stuck orders).
    #[serde(rename = "ops:read")]
    OpsRead,
    /// Operations: act on it (have an inquiry asked now, propose an inquiry's outcome).
    #[serde(rename = "ops:write")]
    OpsWrite,
    /// Operations: approve or reject another key's money-moving action (the checker).
    #[serde(rename = "ops:approve")]
    OpsApprove,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LedgerRead => "ledger:read",
            Scope::LedgerWrite => "ledger:write",
            Scope::Admin => "admin",
            Scope::ReconRead => "recon:read",
            Scope::ReconWrite => "recon:write",
            Scope::ReconApprove => "recon:approve",
            Scope::OpsRead => "ops:read",
            Scope::OpsWrite => "ops:write",
            Scope::OpsApprove => "ops:approve",
        }
    }

    /// Every scope, in the order the documentation lists them.
    pub const ALL: [Scope; 9] = [
        Scope::LedgerRead,
        Scope::LedgerWrite,
        Scope::Admin,
        Scope::ReconRead,
        Scope::ReconWrite,
        Scope::ReconApprove,
        Scope::OpsRead,
        Scope::OpsWrite,
        Scope::OpsApprove,
    ];

    /// Scopes over the platform's own books and operations (reconciliation, operators'
    /// work), not a tenant's: only keys of the platform (admin) tenant may hold them.
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Scope::ReconRead
                | Scope::ReconWrite
                | Scope::ReconApprove
                | Scope::OpsRead
                | Scope::OpsWrite
                | Scope::OpsApprove
        )
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The platform's operators' roles, each a set of scopes a key is made with: a viewer reads
/// the books and what needs an operator; an operator also acts (the maker); an approver also
/// approves or rejects another key's money-moving action (the checker); an admin does all.
/// A maker and a checker are two keys, so two people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == raw)
    }

    pub fn scopes(self) -> Vec<Scope> {
        let viewer = [Scope::LedgerRead, Scope::ReconRead, Scope::OpsRead];
        match self {
            Role::Viewer => viewer.to_vec(),
            Role::Operator => [&viewer[..], &[Scope::ReconWrite, Scope::OpsWrite]].concat(),
            Role::Approver => [&viewer[..], &[Scope::ReconApprove, Scope::OpsApprove]].concat(),
            Role::Admin => vec![Scope::Admin],
        }
    }
}

/// Live keys move real money; test keys are for integration environments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }

    pub fn parse(raw: &str) -> Option<KeyMode> {
        [KeyMode::Live, KeyMode::Test].into_iter().find(|m| m.as_str() == raw)
    }
}

/// A key's secret. `Debug` and `Display` print a mask, so it cannot leak into a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(raw: impl Into<String>) -> Secret {
        Secret(raw.into())
    }

    /// The secret itself: call only to show it to its owner once, or to sign with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// SHA-256 of a key's secret: what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A stored API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// `key_` and 16 hex chars: safe to log and to show in lists.
    pub id: String,
    pub tenant: TenantId,
    pub mode: KeyMode,
    pub scopes: Vec<Scope>,
    pub hash: KeyHash,
    /// The secret's first 12 characters, so operators can tell keys apart.
    pub prefix: String,
    pub created_at_us: u64,
    pub revoked_at_us: Option<u64>,
    /// Every request with this key must carry a valid signature (see [`signature`]).
    pub signed: bool,
    /// A merchant's key: in the payment core it sees and acts on this merchant's orders
    /// only (payments to it, their refunds, its settlements and payouts), and nothing else.
    pub merchant: Option<String>,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// Creates a key: the stored record and the secret to show once.
pub fn generate_key(
    tenant: TenantId,
    mode: KeyMode,
    scopes: Vec<Scope>,
    signed: bool,
    now_us: u64,
) -> Result<(ApiKey, Secret), RandomError> {
    let mut raw = [0u8; 40];
    getrandom::fill(&mut raw).map_err(|e| RandomError(e.to_string()))?;
    let secret = Secret(format!("qb_{}_{}", mode.as_str(), hex::encode(&raw[..32])));
    let key = ApiKey {
        id: format!("key_{}", hex::encode(&raw[32..])),
        tenant,
        mode,
        scopes,
        hash: secret.hash(),
        prefix: secret.0[..12].to_string(),
        created_at_us: now_us,
        revoked_at_us: None,
        signed,
        merchant: None,
    };
    Ok((key, secret))
}

/// Request signing for server-to-server callers.
///
/// `signature = hex(HMAC-SHA256(key, string_to_sign))` where `key = SHA-256(secret)` — the
/// value the server stores, so no recoverable secret is kept — and
/// `string_to_sign = "v1\n" + METHOD + "\n" + path_and_query + "\n" + timestamp + "\n" + nonce
/// + "\n" + hex(SHA-256(body))`. The timestamp is Unix seconds within
/// [`SIGNATURE_WINDOW_SECS`] of the server's clock; each nonce is accepted once per key.
pub mod namespace;

pub mod signature {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    use super::KeyHash;

    pub const SIGNATURE_WINDOW_SECS: u64 = 300;
    pub const NONCE_LEN_MIN: usize = 16;
    pub const NONCE_LEN_MAX: usize = 64;

    pub fn string_to_sign(
        method: &str,
        path_and_query: &str,
        timestamp: u64,
        nonce: &str,
        body: &[u8],
    ) -> String {
        let body_hash = hex::encode(Sha256::digest(body));
        format!("v1\n{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body_hash}")
    }

    /// The hex signature a client sends for `string_to_sign`, keyed by the SHA-256 of its secret.
    pub fn sign(key: &KeyHash, string_to_sign: &str) -> String {
        hex::encode(mac(key, string_to_sign).finalize().into_bytes())
    }

    /// Constant-time check of a presented hex signature.
    pub fn verify(key: &KeyHash, string_to_sign: &str, presented_hex: &str) -> bool {
        match hex::decode(presented_hex) {
            Ok(bytes) => mac(key, string_to_sign).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    fn mac(key: &KeyHash, string_to_sign: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(string_to_sign.as_bytes());
        mac
    }
}

/// Kinds of resources that tenants own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A ledger account opened through the ledger API: its owner reads and writes it.
    Account,
    Transfer,
    /// A customer's or merchant's ledger account, opened by the payment core: the party's
    /// tenant reads it; money on it moves through the payment core only.
    PartyAccount,
}

impl ResourceKind {
    pub fn code(self) -> i64 {
        match self {
            ResourceKind::Account => 1,
            ResourceKind::Transfer => 2,
            ResourceKind::PartyAccount => 3,
        }
    }
}

/// What a claim on an idempotency key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: the caller runs the request, then completes or releases the claim.
    New,
    /// Another request with this key is running.
    InFlight,
    /// A request with this key finished: its request hash and response.
    Done { request_hash: [u8; 32], status: u16, body: Vec<u8> },
}

/// Whose idempotency record it is: the API key that made the request, within its tenant.
/// A stored answer is replayed only to the key that made it; another key repeating the same
/// `Idempotency-Key` makes a request of its own, authorised on its own (a merchant's key
/// cannot read the tenant's stored answers by guessing their keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub tenant: TenantId,
    pub key_id: String,
}

/// What revoking a key did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now, or already revoked before (revoking is idempotent).
    Revoked,
    NotFound,
    /// Refused: it is the last active admin key, and without one nobody could create keys.
    LastAdminKey,
}

/// Operating failures of an access store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    #[error("access store: {0}")]
    Backend(String),
    #[error("corrupt access store: {0}")]
    Corrupt(String),
}

/// How long idempotency records are kept at least.
pub const IDEMPOTENCY_RETENTION_US: u64 = 24 * 3600 * 1_000_000;
/// A claim older than this with no completion is treated as abandoned. The backstop for a
/// node that died and never came back: a node that restarts releases its predecessors'
/// claims at once ([`AccessStore::release_node_claims`]).
pub const IDEMPOTENCY_IN_FLIGHT_MAX_US: u64 = 60 * 1_000_000;

/// The access domain's storage port.
pub trait AccessStore: Send + Sync + 'static {
    fn insert_key(&self, key: &ApiKey) -> Result<(), AccessError>;
    fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, AccessError>;
    /// Keys in id order after the cursor, at most `limit`.
    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<ApiKey>, AccessError>;
    /// Revokes a key, unless it is the last active admin key. The check and the revocation
    /// are one atomic step, so two nodes revoking the last two admin keys at once cannot
    /// both succeed.
    fn revoke_key(&self, id: &str, now_us: u64) -> Result<Revocation, AccessError>;
    fn count_keys(&self) -> Result<u64, AccessError>;

    /// Records `tenant` as the owner unless the resource already has one; returns the owner.
    fn claim_owner(
        &self,
        kind: ResourceKind,
        id: u128,
        tenant: &TenantId,
    ) -> Result<TenantId, AccessError>;
    fn owner(&self, kind: ResourceKind, id: u128) -> Result<Option<TenantId>, AccessError>;

    /// Claims `key` for a request of `scope`, made on `node`.
    fn claim_idempotency(
        &self,
        scope: &IdempotencyScope,
        key: &str,
        request_hash: [u8; 32],
        now_us: u64,
        node: &str,
    ) -> Result<Claim, AccessError>;
    fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), AccessError>;
    /// Forgets an unfinished claim, so the request can be retried (after a server error).
    fn release_idempotency(&self, scope: &IdempotencyScope, key: &str) -> Result<(), AccessError>;
    /// Forgets every unfinished claim made on `node`: called once as a node starts, before it
    /// serves, so the claims its dead predecessor left do not block the clients' retries.
    /// Returns how many.
    fn release_node_claims(&self, node: &str) -> Result<u64, AccessError>;
    /// Deletes records created before `before_us`; returns how many.
    fn purge_idempotency(&self, before_us: u64) -> Result<u64, AccessError>;

    /// Records a signed request's nonce; false if this key already used it (a replay).
    fn use_nonce(&self, key_id: &str, nonce: &str, now_us: u64) -> Result<bool, AccessError>;
    /// Forgets nonces older than `before_us` (they fall outside the signature window anyway).
    fn purge_nonces(&self, before_us: u64) -> Result<u64, AccessError>;

    /// The installation's secret for tenants' id namespaces ([`namespace`]): the stored one,
    /// or `candidate` if none is stored yet (the first caller's candidate wins, on every node).
    fn namespace_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AccessError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_prefixed_and_only_hashed() {
        let tenant = TenantId::new("acme").unwrap();
        let (key, secret) =
            generate_key(tenant.clone(), KeyMode::Test, vec![Scope::LedgerRead], false, 1).unwrap();
        assert!(secret.expose().starts_with("qb_test_"));
        assert_eq!(secret.expose().len(), "qb_test_".len() + 64);
        assert_eq!(format!("{secret:?}"), "Secret(****)");
        assert!(key.hash.matches(&secret.hash()));
        assert!(!key.hash.matches(&Secret::new("qb_test_guess").hash()));
        let (other, _) = generate_key(tenant, KeyMode::Live, vec![], false, 1).unwrap();
        assert_ne!(key.id, other.id);
        assert!(key.allows(Scope::LedgerRead) && !key.allows(Scope::LedgerWrite));
    }

    #[test]
    fn signatures_cover_every_part_of_the_request() {
        // A worked example, the same as in docs/api.md.
        let secret =
            Secret::new("qb_test_0000000000000000000000000000000000000000000000000000000000000000");
        let key = secret.hash();
        let base = signature::string_to_sign(
            "POST",
            "/v1/transfers",
            1_764_000_000,
            "nonce-0123456789ab",
            b"{}",
        );
        assert_eq!(
            base,
            "v1\nPOST\n/v1/transfers\n1764000000\nnonce-0123456789ab\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let signed = signature::sign(&key, &base);
        assert_eq!(signed, "5fa144aa1cb839e7b41a89f6a342d2b8fd0fc6a7270ed16a412607e948bf77fe");
        assert!(signature::verify(&key, &base, &signed));
        for other in [
            signature::string_to_sign(
                "GET",
                "/v1/transfers",
                1_764_000_000,
                "nonce-0123456789ab",
                b"{}",
            ),
            signature::string_to_sign(
                "POST",
                "/v1/accounts",
                1_764_000_000,
                "nonce-0123456789ab",
                b"{}",
            ),
            signature::string_to_sign(
                "POST",
                "/v1/transfers",
                1_764_000_001,
                "nonce-0123456789ab",
                b"{}",
            ),
            signature::string_to_sign(
                "POST",
                "/v1/transfers",
                1_764_000_000,
                "nonce-0123456789ac",
                b"{}",
            ),
            signature::string_to_sign(
                "POST",
                "/v1/transfers",
                1_764_000_000,
                "nonce-0123456789ab",
                b"{ }",
            ),
        ] {
            assert!(!signature::verify(&key, &other, &signed));
        }
        assert!(!signature::verify(&Secret::new("other").hash(), &base, &signed));
        assert!(!signature::verify(&key, &base, "not hex"));
    }

    #[test]
    fn tenant_ids_are_validated() {
        assert!(TenantId::new("tenant-1_a").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("Upper").is_err());
        assert!(TenantId::new(&"a".repeat(65)).is_err());
    }
}
