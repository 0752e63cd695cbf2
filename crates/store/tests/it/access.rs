//! The access port's conformance suite, run on SQLite and PostgreSQL: keys and their
//! revocation (never the last admin key), owners, idempotency records per key with their
//! node, and the namespace secret.

use access::{
    generate_key, AccessStore, Claim, IdempotencyScope, KeyMode, ResourceKind, Revocation, Scope,
    TenantId,
};
use store::{PgAccess, PgStore, SqliteAccess};

use crate::backends::{drop_schema, pg_target};

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

fn insert(store: &dyn AccessStore, name: &str, scopes: Vec<Scope>) -> access::ApiKey {
    let (key, _) = generate_key(tenant(name), KeyMode::Live, scopes, false, 1).expect("key");
    store.insert_key(&key).expect("insert");
    key
}

fn exercise(store: &dyn AccessStore) {
    // Keys: the last active admin key stays.
    let admin = insert(store, "platform", vec![Scope::Admin]);
    let reader = insert(store, "acme", vec![Scope::LedgerRead]);
    assert_eq!(store.count_keys().expect("count"), 2);
    assert_eq!(store.key_by_hash(&admin.hash).expect("by hash"), Some(admin.clone()));
    assert_eq!(store.revoke_key(&admin.id, 5).expect("revoke"), Revocation::LastAdminKey);
    assert_eq!(store.revoke_key(&reader.id, 5).expect("revoke"), Revocation::Revoked);
    assert_eq!(store.revoke_key(&reader.id, 6).expect("again"), Revocation::Revoked);
    assert_eq!(store.revoke_key("key_absent", 5).expect("absent"), Revocation::NotFound);
    let second = insert(store, "platform", vec![Scope::LedgerRead, Scope::Admin]);
    assert_eq!(store.revoke_key(&admin.id, 7).expect("revoke"), Revocation::Revoked);
    let found = store.key_by_hash(&admin.hash).expect("by hash").expect("kept");
    assert_eq!(found.revoked_at_us, Some(7));
    assert_eq!(store.revoke_key(&second.id, 8).expect("revoke"), Revocation::LastAdminKey);
    // Revoked keys do not count as admins; a revoked admin key is "revoked" again, not refused.
    assert_eq!(store.revoke_key(&admin.id, 9).expect("again"), Revocation::Revoked);
    let listed = store.keys(None, 10).expect("keys");
    assert_eq!(listed.len(), 3);
    assert!(listed.windows(2).all(|pair| pair[0].id < pair[1].id), "in id order");
    assert_eq!(store.keys(Some(&listed[0].id), 1).expect("page").len(), 1);

    // Owners: the first claim wins.
    let (a, b) = (tenant("acme"), tenant("globex"));
    assert_eq!(store.claim_owner(ResourceKind::Account, 42, &a).expect("claim"), a);
    assert_eq!(store.claim_owner(ResourceKind::Account, 42, &b).expect("claim"), a);
    assert_eq!(store.owner(ResourceKind::Account, 42).expect("owner"), Some(a.clone()));
    assert_eq!(store.owner(ResourceKind::PartyAccount, 42).expect("owner"), None);
    assert_eq!(store.claim_owner(ResourceKind::PartyAccount, 42, &b).expect("claim"), b);

    // Idempotency: records are per key; claims name their node.
    let mine = IdempotencyScope { tenant: a.clone(), key_id: "key_1".into() };
    let other = IdempotencyScope { tenant: a.clone(), key_id: "key_2".into() };
    let now = 1_000_000_000;
    assert_eq!(store.claim_idempotency(&mine, "k", [1; 32], now, "n1").expect("claim"), Claim::New);
    assert_eq!(
        store.claim_idempotency(&mine, "k", [1; 32], now, "n1").expect("dup"),
        Claim::InFlight
    );
    assert_eq!(
        store.claim_idempotency(&other, "k", [1; 32], now, "n1").expect("other"),
        Claim::New
    );
    store.complete_idempotency(&mine, "k", 201, b"{\"first\":true}").expect("complete");
    assert_eq!(
        store.claim_idempotency(&mine, "k", [1; 32], now, "n2").expect("done"),
        Claim::Done { request_hash: [1; 32], status: 201, body: b"{\"first\":true}".to_vec() }
    );
    // A node's restart releases its unfinished claims only.
    assert_eq!(store.claim_idempotency(&mine, "j", [2; 32], now, "n2").expect("claim"), Claim::New);
    assert_eq!(store.release_node_claims("n1").expect("release"), 1, "key_2's claim on n1");
    assert_eq!(store.claim_idempotency(&other, "k", [1; 32], now, "n1").expect("free"), Claim::New);
    assert_eq!(
        store.claim_idempotency(&mine, "j", [2; 32], now, "n1").expect("n2's"),
        Claim::InFlight
    );
    // An abandoned claim of a node that never came back is taken over after the limit.
    let later = now + access::IDEMPOTENCY_IN_FLIGHT_MAX_US + 1;
    assert_eq!(
        store.claim_idempotency(&mine, "j", [2; 32], later, "n1").expect("stale"),
        Claim::New
    );
    store.release_idempotency(&mine, "j").expect("release");
    assert_eq!(
        store.claim_idempotency(&mine, "j", [3; 32], later, "n1").expect("again"),
        Claim::New
    );
    assert_eq!(store.purge_idempotency(later).expect("purge"), 2, "the two claimed at `now`");

    // Nonces and the namespace secret.
    assert!(store.use_nonce("key_1", "nonce-1", now).expect("nonce"));
    assert!(!store.use_nonce("key_1", "nonce-1", now).expect("replay"));
    let secret = store.namespace_secret([7; 32]).expect("secret");
    assert_eq!(secret, [7; 32]);
    assert_eq!(store.namespace_secret([8; 32]).expect("kept"), [7; 32], "the first one stays");
}

#[test]
fn sqlite_access_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.db");
    exercise(&SqliteAccess::open(&path).expect("open"));
    let reopened = SqliteAccess::open(&path).expect("reopen");
    assert_eq!(reopened.namespace_secret([9; 32]).expect("secret"), [7; 32]);
}

#[test]
fn postgres_access_store_conforms() {
    let Some(target) = pg_target("access") else { return };
    drop(PgStore::connect(target.clone()).expect("migrate"));
    exercise(&PgAccess::connect(&target).expect("connect"));
    let reconnected = PgAccess::connect(&target).expect("reconnect");
    assert_eq!(reconnected.namespace_secret([9; 32]).expect("secret"), [7; 32]);
    drop_schema(&target);
}

/// Two nodes revoking the last two admin keys at once: one of them is refused.
#[test]
fn postgres_never_revokes_both_of_the_last_two_admin_keys() {
    let Some(target) = pg_target("access_race") else { return };
    drop(PgStore::connect(target.clone()).expect("migrate"));
    let nodes = [
        std::sync::Arc::new(PgAccess::connect(&target).expect("connect")),
        std::sync::Arc::new(PgAccess::connect(&target).expect("connect")),
    ];
    for round in 0..20u64 {
        let keys = [
            insert(nodes[0].as_ref(), "platform", vec![Scope::Admin]),
            insert(nodes[0].as_ref(), "platform", vec![Scope::Admin]),
        ];
        // Leave exactly these two active.
        for key in nodes[0].keys(None, 1_000).expect("keys") {
            if key.revoked_at_us.is_none() && !keys.iter().any(|k| k.id == key.id) {
                let _ = nodes[0].revoke_key(&key.id, round);
            }
        }
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let outcomes: Vec<Revocation> = nodes
            .iter()
            .zip(keys.iter())
            .map(|(node, key)| {
                let (node, id, barrier) = (node.clone(), key.id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    node.revoke_key(&id, round).expect("revoke")
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().expect("join"))
            .collect();
        assert!(outcomes.contains(&Revocation::LastAdminKey), "round {round}: {outcomes:?}");
        let active_admins = nodes[0]
            .keys(None, 1_000)
            .expect("keys")
            .into_iter()
            .filter(|k| k.revoked_at_us.is_none() && k.is_admin())
            .count();
        assert_eq!(active_admins, 1, "round {round}");
    }
    drop_schema(&target);
}
