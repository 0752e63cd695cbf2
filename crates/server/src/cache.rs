//! In-memory caches that keep the access store off the hot path of every request.
//!
//! - API keys by secret hash, for [`KEY_TTL`]: a key revoked on another node stops working
//!   within that time; on the node that revokes it, at once.
//! - Owners of accounts and transfers: an owner never changes once set, so entries never go
//!   stale; the map is bounded and starts afresh when full.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use access::{ApiKey, KeyHash, ResourceKind, TenantId};

pub const KEY_TTL: Duration = Duration::from_secs(5);
pub const KEYS_CACHED_MAX: usize = 10_000;
pub const OWNERS_CACHED_MAX: usize = 262_144;

#[derive(Default)]
pub struct Caches {
    keys: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    owners: Mutex<HashMap<(ResourceKind, u128), TenantId>>,
}

impl Caches {
    pub fn key(&self, hash: &KeyHash) -> Option<ApiKey> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(&hash.0).filter(|(_, at)| at.elapsed() < KEY_TTL).map(|(key, _)| key.clone())
    }

    pub fn put_key(&self, key: ApiKey) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= KEYS_CACHED_MAX {
            keys.clear();
        }
        keys.insert(key.hash.0, (key, Instant::now()));
    }

    pub fn forget_key(&self, id: &str) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (key, _)| key.id != id);
    }

    pub fn owner(&self, kind: ResourceKind, id: u128) -> Option<TenantId> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).get(&(kind, id)).cloned()
    }

    pub fn put_owner(&self, kind: ResourceKind, id: u128, owner: TenantId) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.len() >= OWNERS_CACHED_MAX {
            owners.clear();
        }
        owners.insert((kind, id), owner);
    }
}
