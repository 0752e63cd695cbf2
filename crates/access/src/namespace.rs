//! Tenants' id namespaces. Clients choose the ids of their ledger accounts, transfers and
//! holds (TigerBeetle's model: the id is the idempotency key). The ledger has one id space,
//! so without namespaces tenant B posting id 9001 that tenant A used learns that A used it,
//! and B can take the ids A will use next.
//!
//! Each tenant therefore sees the ledger through a keyed permutation of the 128-bit id space:
//! the id a tenant sends is mapped to a ledger id by [`Namespace::to_ledger`], and every
//! ledger id it is shown is mapped back by [`Namespace::to_client`]. Two tenants' 9001 are two
//! different ledger ids; neither can compute the other's (the permutation is keyed by an
//! installation secret kept in the access store), so neither can squat the other's ids, nor
//! the derived rows of the other's hot accounts. Being a bijection it needs no table: no
//! lookup on the write path, and no id is ever shown to a tenant in a form it cannot send back.
//!
//! The admin tenant's namespace, and every admin key's, is the identity: operators see and
//! name ledger ids as they are.
//!
//! The permutation keeps the top bit (so the ledger's reserved transfer range, ids of 2^127
//! and above, stays reserved after mapping, and `id_reserved` still answers a client that
//! names one) and never yields zero. The rest is a 4-round Feistel network over the low 127
//! bits (63 + 64) with SHA-256 as the round function: four rounds of a pseudo-random function
//! make a strong pseudo-random permutation (Luby–Rackoff). It is written here because no
//! well-kept crate offers a keyed permutation of `u128` (format-preserving encryption crates
//! work on digit strings); it is short and its properties are tested below.

use sha2::{Digest, Sha256};

use crate::{KeyMode, TenantId};

const TOP_BIT: u128 = 1 << 127;
const LOW_MASK: u128 = TOP_BIT - 1;
const RIGHT_BITS: u32 = 64;
const LEFT_MASK: u128 = (1 << 63) - 1;
const ROUNDS: u8 = 4;

/// How one caller's ids map to the ledger's.
#[derive(Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Ledger ids as they are: the admin tenant and admin keys.
    Identity,
    /// A tenant's own namespace.
    Keyed([u8; 32]),
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Namespace::Identity => f.write_str("Namespace::Identity"),
            Namespace::Keyed(_) => f.write_str("Namespace::Keyed(****)"),
        }
    }
}

/// The installation's namespaces: the secret and the admin tenant.
#[derive(Clone)]
pub struct Namespaces {
    secret: [u8; 32],
    admin_tenant: Option<TenantId>,
}

impl std::fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaces")
            .field("secret", &"****")
            .field("admin_tenant", &self.admin_tenant)
            .finish()
    }
}

impl Namespaces {
    /// `secret` from [`crate::AccessStore::namespace_secret`]; `admin_tenant` sees ledger
    /// ids as they are.
    pub fn new(secret: [u8; 32], admin_tenant: Option<TenantId>) -> Namespaces {
        Namespaces { secret, admin_tenant }
    }

    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// Whether `tenant` is the platform's own (admin) tenant.
    pub fn is_admin_tenant(&self, tenant: &TenantId) -> bool {
        self.admin_tenant.as_ref() == Some(tenant)
    }

    /// The namespace of a live key of `tenant`; `is_admin` for a key with the admin scope.
    pub fn of(&self, tenant: &TenantId, is_admin: bool) -> Namespace {
        self.of_mode(tenant, is_admin, KeyMode::Live)
    }

    /// The namespace of a key of `tenant` in `mode`. A tenant's test keys get a namespace
    /// of their own: the test book is another ledger, and giving it other ledger ids too
    /// means the ownership records both books keep in the one access store never name
    /// the same id for a live and a test account.
    pub fn of_mode(&self, tenant: &TenantId, is_admin: bool, mode: KeyMode) -> Namespace {
        if is_admin || self.admin_tenant.as_ref() == Some(tenant) {
            return Namespace::Identity;
        }
        let mut hasher = Sha256::new()
            .chain_update(b"qianbao.access.namespace\0")
            .chain_update(self.secret)
            .chain_update(tenant.as_str());
        // Live keeps the derivation it always had, so live ids do not move.
        if mode == KeyMode::Test {
            hasher = hasher.chain_update(b"\0test");
        }
        Namespace::Keyed(hasher.finalize().into())
    }
}

impl Namespace {
    /// The ledger id of the client's id `id` (non-zero in, non-zero out).
    pub fn to_ledger(&self, id: u128) -> u128 {
        match self {
            Namespace::Identity => id,
            Namespace::Keyed(key) => {
                let top = id & TOP_BIT;
                let mut low = permute(key, id & LOW_MASK);
                // Cycle-walk past zero, so a non-zero id never maps to the invalid id 0:
                // the id whose image is 0 takes 0's image instead (see `to_client`).
                if top == 0 && low == 0 {
                    low = permute(key, 0);
                }
                top | low
            }
        }
    }

    /// The client's id for the ledger id `id`: the inverse of [`Namespace::to_ledger`].
    pub fn to_client(&self, id: u128) -> u128 {
        match self {
            Namespace::Identity => id,
            Namespace::Keyed(key) => {
                let top = id & TOP_BIT;
                let mut low = unpermute(key, id & LOW_MASK);
                if top == 0 && low == 0 {
                    low = unpermute(key, 0);
                }
                top | low
            }
        }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self, Namespace::Identity)
    }
}

fn round(key: &[u8; 32], round: u8, half: u128) -> u128 {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(key)
        .chain_update([round])
        .chain_update(half.to_be_bytes())
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(raw)
}

/// A permutation of `0..2^127`: even rounds change the left 63 bits from the right 64,
/// odd rounds the right from the left.
fn permute(key: &[u8; 32], value: u128) -> u128 {
    let (mut left, mut right) = (value >> RIGHT_BITS, value & u128::from(u64::MAX));
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            left ^= round(key, r, right) & LEFT_MASK;
        } else {
            right ^= round(key, r, left) & u128::from(u64::MAX);
        }
    }
    (left << RIGHT_BITS) | right
}

fn unpermute(key: &[u8; 32], value: u128) -> u128 {
    let (mut left, mut right) = (value >> RIGHT_BITS, value & u128::from(u64::MAX));
    for r in (0..ROUNDS).rev() {
        if r % 2 == 0 {
            left ^= round(key, r, right) & LEFT_MASK;
        } else {
            right ^= round(key, r, left) & u128::from(u64::MAX);
        }
    }
    (left << RIGHT_BITS) | right
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_tenants_test_keys_map_its_ids_elsewhere_than_its_live_keys() {
        let n = namespaces();
        let live = n.of_mode(&tenant("a"), false, KeyMode::Live);
        let test = n.of_mode(&tenant("a"), false, KeyMode::Test);
        assert_eq!(live, n.of(&tenant("a"), false));
        assert_ne!(live.to_ledger(9001), test.to_ledger(9001));
        assert_eq!(test.to_client(test.to_ledger(9001)), 9001);
    }

    fn namespaces() -> Namespaces {
        Namespaces::new([7; 32], Some(TenantId::new("platform").unwrap()))
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    #[test]
    fn the_admin_tenant_and_admin_keys_see_ledger_ids() {
        let n = namespaces();
        assert!(n.of(&tenant("platform"), false).is_identity());
        assert!(n.of(&tenant("acme"), true).is_identity());
        assert!(!n.of(&tenant("acme"), false).is_identity());
        assert_eq!(n.of(&tenant("acme"), true).to_ledger(9001), 9001);
    }

    #[test]
    fn two_tenants_same_id_two_ledger_ids() {
        let n = namespaces();
        let (a, b) = (n.of(&tenant("a"), false), n.of(&tenant("b"), false));
        assert_ne!(a.to_ledger(9001), b.to_ledger(9001));
        assert_ne!(a.to_ledger(9001), 9001);
        // Another installation (another secret) maps the same tenant elsewhere.
        let other = Namespaces::new([8; 32], None).of(&tenant("a"), false);
        assert_ne!(a.to_ledger(9001), other.to_ledger(9001));
        assert_eq!(format!("{a:?}"), "Namespace::Keyed(****)");
    }

    #[test]
    fn zero_is_never_an_image_and_edges_round_trip() {
        let a = namespaces().of(&tenant("a"), false);
        // The id whose plain image would be zero maps to zero's image instead.
        let key = match &a {
            Namespace::Keyed(key) => *key,
            Namespace::Identity => unreachable!(),
        };
        let preimage_of_zero = unpermute(&key, 0);
        assert_eq!(a.to_ledger(preimage_of_zero), permute(&key, 0));
        assert_eq!(a.to_client(permute(&key, 0)), preimage_of_zero);
        for id in [1, 2, LOW_MASK, TOP_BIT, TOP_BIT | 1, u128::MAX, preimage_of_zero] {
            let ledger = a.to_ledger(id);
            assert_ne!(ledger, 0, "{id}");
            assert_eq!(ledger & TOP_BIT, id & TOP_BIT, "the reserved bit is kept");
            assert_eq!(a.to_client(ledger), id, "{id}");
        }
    }

    proptest! {
        #[test]
        fn a_bijection_that_keeps_the_top_bit(id in 1..=u128::MAX, name in "[a-z]{1,8}") {
            let space = namespaces().of(&tenant(&name), false);
            let ledger = space.to_ledger(id);
            prop_assert_ne!(ledger, 0);
            prop_assert_eq!(ledger & TOP_BIT, id & TOP_BIT);
            prop_assert_eq!(space.to_client(ledger), id);
        }

        #[test]
        fn distinct_ids_stay_distinct(x in 1..=u128::MAX, y in 1..=u128::MAX) {
            prop_assume!(x != y);
            let space = namespaces().of(&tenant("a"), false);
            prop_assert_ne!(space.to_ledger(x), space.to_ledger(y));
        }
    }
}
