//! The stored form of an order's body is versioned (`body_version` beside it): a row of a form
//! this release knows reads as the order, a row an older release wrote without the column
//! is form 1, and a row of a newer form (a newer release wrote it) is refused as corrupt,
//! never guessed at — on both backends.

use executor::port::{OrderStore, OrderStoreError};
use payments::Order;
use store::{PgOrderStore, SqliteOrderStore};

use crate::backends::{drop_schema, pg_target};
use crate::orders::{oid, record, topup};

/// `raw(sql)` runs SQL on the store's own tables, as another release would.
fn forms(store: &dyn OrderStore, raw: &dyn Fn(&str)) {
    let written = record("sf", Order::Topup(topup("top_sf1", "alice")), 1_000);
    store.insert(&written).expect("insert");
    assert_eq!(store.get(&oid("top_sf1")).expect("get"), Some(written.clone()));
    // An older release's row: it knows no `body_version`, which reads as form 1.
    raw("UPDATE orders SET body_version = DEFAULT WHERE id = 'top_sf1'");
    assert_eq!(store.get(&oid("top_sf1")).expect("get"), Some(written));
    // A newer release's row.
    raw("UPDATE orders SET body_version = 2 WHERE id = 'top_sf1'");
    match store.get(&oid("top_sf1")) {
        Err(OrderStoreError::Corrupt(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("a newer form was read: {other:?}"),
    }
}

#[test]
fn sqlite_orders_are_read_by_their_stored_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let store = SqliteOrderStore::open(&path).expect("open");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    // SQLite has no `DEFAULT` in an UPDATE: the default is 1.
    forms(&store, &|sql| {
        raw.execute(&sql.replace("= DEFAULT", "= 1"), []).expect("raw");
    });
}

#[test]
fn postgres_orders_are_read_by_their_stored_form() {
    let Some(target) = pg_target("stored_form") else { return };
    let store = PgOrderStore::connect(&target).expect("connect");
    let raw = std::sync::Mutex::new(target.connect_client().expect("raw"));
    forms(&store, &|sql| {
        raw.lock().expect("raw client").batch_execute(sql).expect("raw");
    });
    drop_schema(&target);
}
