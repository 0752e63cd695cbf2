//! API keys through the client: created with their secret shown once, listed page by page
//! without secrets, revoked.

use std::collections::BTreeSet;

use client::keys::{KeyMode, KeyRequest, Scope};
use client::Page;

use crate::support::*;

#[tokio::test]
async fn keys_are_created_listed_in_pages_and_revoked() {
    let service = Service::start().await;
    let admin = service.admin();

    let mut created = Vec::new();
    for tenant in ["acme", "globex", "initech"] {
        let request = KeyRequest::new(tenant, KeyMode::Live, vec![Scope::LedgerRead]);
        let reply = admin.create_key(&request, None).await.unwrap();
        assert_eq!(reply.http_status, 201);
        let key = reply.into_value();
        let secret = key.secret.clone().unwrap();
        assert!(secret.expose().starts_with("qb_live_"), "{key:?}");
        assert!(secret.expose().starts_with(&key.prefix));
        assert!(!format!("{key:?}").contains(secret.expose()), "the secret is masked");
        assert_eq!((key.tenant.as_str(), key.mode.clone()), (tenant, KeyMode::Live));
        assert_eq!(key.scopes, vec![Scope::LedgerRead]);
        assert!(!key.revoked && !key.signed && key.merchant.is_none());
        created.push((key.id, secret));
    }

    // Pages of two, in id order, never with a secret: the three and the first admin key.
    let mut listed = Vec::new();
    let mut page = Page::first(2);
    loop {
        let keys = admin.list_keys(&page).await.unwrap();
        assert!(keys.data.len() <= 2);
        assert!(keys.data.iter().all(|key| key.secret.is_none()));
        listed.extend(keys.data.iter().map(|key| key.id.clone()));
        match keys.next_starting_after() {
            Some(cursor) => page = Page::after(2, cursor),
            None => break,
        }
    }
    assert_eq!(listed.len(), 4, "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    let listed: BTreeSet<_> = listed.into_iter().collect();
    assert!(created.iter().all(|(id, _)| listed.contains(id)));

    // Revoked: it stops working at once on this node.
    let (revoked_id, revoked_secret) = &created[0];
    let reader = service.client(revoked_secret.expose());
    let before = reader.get_account(id(1)).await.unwrap_err();
    assert_eq!(before.code(), Some("resource_missing"), "the key works; there is no account 1");
    let reply = admin.revoke_key(revoked_id, None).await.unwrap();
    assert!(reply.revoked);
    assert_eq!(&reply.id, revoked_id);
    let error = reader.get_account(id(1)).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(401), Some("invalid_api_key")));
    let listed = admin.list_keys(&Page::default()).await.unwrap();
    assert!(listed.data.iter().any(|key| &key.id == revoked_id && key.revoked));

    let error = admin.revoke_key("key_0000000000000000", None).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(404), Some("resource_missing")));
}
