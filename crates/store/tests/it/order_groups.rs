//! The order writers' groups: many callers' writes committed as one transaction (on
//! PostgreSQL with the statements pipelined), each caller answered with its own result; and
//! writes that need not wait for the log's flush (`Durability`) are committed all the same.

use std::sync::Barrier;

use executor::port::{Durability, Inserted, OrderStore};
use payments::Order;
use store::{PgOrderStore, SqliteOrderStore};

use crate::backends::{drop_schema, pg_target};
use crate::orders::{advanced, record, topup};

/// One write of a group fails (PostgreSQL text cannot hold NUL): it alone fails, and every
/// other write racing with it into the same groups is committed and answered as created.
#[test]
fn a_failing_write_fails_alone_in_its_pipelined_group() {
    let Some(target) = pg_target("order_groups") else { return };
    let store = PgOrderStore::connect(&target).expect("connect");
    const RACERS: usize = 32;
    let barrier = Barrier::new(RACERS);
    let results: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    let mut mine = record("t", Order::Topup(topup(&format!("top_g{n}"), "c")), 1);
                    if n == 7 {
                        mine.reference = "bad\0reference".into();
                    }
                    barrier.wait();
                    (mine.clone(), store.insert(&mine))
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().expect("join")).collect()
    });
    for (n, (mine, result)) in results.iter().enumerate() {
        let stored = store.get(mine.id()).expect("get");
        if n == 7 {
            assert!(result.is_err(), "the NUL reference is refused: {result:?}");
            assert!(stored.is_none(), "and nothing of it is stored");
        } else {
            assert_eq!(result.as_ref().ok(), Some(&Inserted::Created), "{}", mine.id());
            assert_eq!(stored.as_ref(), Some(mine), "{} is stored as written", mine.id());
        }
    }
    drop_schema(&target);
}

/// A write that need not be durable yet is still committed when it returns: a store opened
/// afresh reads it (a crash of the process alone loses nothing).
fn lazy_writes_are_committed(open: &dyn Fn() -> Box<dyn OrderStore>) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let store = open();
    let first = record("t", Order::Topup(topup("top_lazy", "c")), 10);
    let inserted = runtime.block_on(store.insert_as(&first, Durability::BeforeLedger));
    assert_eq!(inserted.expect("insert"), Inserted::Created);
    let next = advanced(&first, first.order.clone(), 20);
    let updated = runtime.block_on(store.update_as(&next, 1, &[], Durability::Recomputable));
    assert!(updated.expect("update"));
    drop(store);
    let stored = open().get(first.id()).expect("get").expect("stored");
    assert_eq!((stored.version, stored.updated_at_ms), (2, 20));
}

#[test]
fn sqlite_lazy_writes_are_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    lazy_writes_are_committed(&|| Box::new(SqliteOrderStore::open(&path).expect("open")));
}

#[test]
fn postgres_lazy_writes_are_committed() {
    let Some(target) = pg_target("order_lazy") else { return };
    lazy_writes_are_committed(&|| Box::new(PgOrderStore::connect(&target).expect("connect")));
    drop_schema(&target);
}
