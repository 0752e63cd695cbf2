//! The journal-first engine on PostgreSQL: the journal's lease (one holder, takeover after
//! expiry, fencing of a holder that lost it), direct writers refused while a journal node
//! holds the book or its journal is ahead of the books, and recovery from the journal table
//! alone. The ledger's own behaviour on this backend is the conformance suite's
//! (`Backend::pg_journaled`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::journal::{Journal, JournalError};
use ledger::port::{LedgerReader, LedgerStore, StoreError};
use ledger::{Ledger, ManualClock, Timestamp};
use store::{PgJournal, PgReader, PgStore, PgTarget};

use crate::backends::{drop_schema, pg_target, test_config};
use crate::conformance::{account, post, setup, submit, tid, ALICE, BANK, BOB};

fn open(target: &PgTarget, holder: &str, lease_ms: u64) -> Result<PgJournal, JournalError> {
    PgJournal::open(target, holder, lease_ms, Duration::ZERO)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)))
}

/// Drops the schema however the test ends.
struct Schema(PgTarget);

impl Drop for Schema {
    fn drop(&mut self) {
        drop_schema(&self.0);
    }
}

#[test]
fn one_node_holds_the_journal_and_another_takes_it_once_it_is_let_go() {
    let Some(target) = pg_target("journal_lease") else { return };
    let _schema = Schema(target.clone());
    let mut first = open(&target, "node-a", 10_000).expect("the first node takes the lease");
    match open(&target, "node-b", 10_000) {
        Err(JournalError::Locked(detail)) => assert!(detail.contains("node-a"), "{detail}"),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second node took a lease that is held"),
    }
    first.append(1, b"batch one").expect("the holder appends");
    first.close(1);
    let second = open(&target, "node-b", 10_000).expect("taken at once once let go");
    assert!(second.token() > first.token(), "every takeover raises the token");
    // A node that restarts under its own name takes its lease back at once.
    drop(second);
    let again = open(&target, "node-b", 10_000).expect("the same holder takes it back");
    assert!(again.token() > first.token());
}

#[test]
fn a_node_that_lost_its_lease_cannot_append_after_the_takeover() {
    let Some(target) = pg_target("journal_fence") else { return };
    let _schema = Schema(target.clone());
    let mut old = open(&target, "node-a", 200).expect("lease");
    old.append(1, b"one").expect("append while held");
    std::thread::sleep(Duration::from_millis(400));
    let mut new = open(&target, "node-b", 10_000).expect("an expired lease is taken over");
    match old.append(2, b"two, from the old holder") {
        Err(JournalError::Fenced(_)) => {}
        other => panic!("expected Fenced, got {other:?}"),
    }
    match old.keep_alive() {
        Err(JournalError::Fenced(_)) => {}
        other => panic!("expected Fenced on renewal too, got {other:?}"),
    }
    // The new holder sees the old one's acknowledged batch and continues after it; a second
    // append of one batch number cannot land.
    let mut seen = Vec::new();
    new.replay(0, &mut |_, payload| {
        seen.push(payload.to_vec());
        Ok(())
    })
    .expect("replay");
    assert_eq!(seen, vec![b"one".to_vec()]);
    new.append(2, b"two").expect("the new holder appends");
    assert!(new.append(2, b"two again").is_err(), "a batch number is appended once");
}

/// A direct node (`--ledger-engine direct`) must not write books that a journal node runs,
/// nor books whose journal holds batches they lack: either would fork the chain.
#[test]
fn direct_writes_are_refused_while_a_journal_node_holds_the_books_or_the_journal_is_ahead() {
    let Some(target) = pg_target("journal_guard") else { return };
    let _schema = Schema(target.clone());
    let direct =
        Ledger::start(PgStore::connect(target.clone()).expect("connect"), clock(), test_config());
    let handle = direct.handle();
    setup(&handle);
    submit(&handle, post(1, BANK, ALICE, 100)).expect("posts before any journal node");

    let mut journal = open(&target, "journal-node", 300).expect("lease");
    let refused = handle.transfer_blocking(post(2, BANK, ALICE, 100));
    let message = format!("{refused:?}");
    assert!(message.contains("journal-first engine"), "{message}");

    // The journal node dies with a batch in its journal that the books lack.
    let head = PgReader::connect(target.clone()).expect("reader").head().expect("head");
    journal.append(head.batch_seq.0 + 1, b"a batch the books lack").expect("append");
    drop(journal);
    std::thread::sleep(Duration::from_millis(400));
    let state = PgJournal::state(&target).expect("state");
    assert!(!state.leased, "the dead node's lease expired");
    assert_eq!(state.batches_ahead, 1);
    let refused = handle.transfer_blocking(post(3, BANK, ALICE, 100));
    let message = format!("{refused:?}");
    assert!(message.contains("journal holds batches the books lack"), "{message}");
    direct.shutdown();
    let reader = PgReader::connect(target.clone()).expect("reader");
    assert!(reader.transfer(tid(2)).expect("read").is_none(), "a refused write wrote nothing");
    assert!(reader.transfer(tid(3)).expect("read").is_none(), "a refused write wrote nothing");
}

/// A projection that refuses to write while its gate is shut, so the journal table alone
/// holds what the engine acknowledges, as after a crash.
struct Gated {
    inner: PgStore,
    open: Arc<AtomicBool>,
}

impl LedgerStore for Gated {
    type Tx<'a> = store::postgres::PgTx<'a>;

    fn begin(&mut self) -> Result<Self::Tx<'_>, StoreError> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the test shut the projection's gate".into()));
        }
        self.inner.begin()
    }

    fn set_sync_each_commit(&mut self, sync: bool) -> Result<(), StoreError> {
        self.inner.set_sync_each_commit(sync)
    }
}

fn start_engine(
    target: &PgTarget,
    holder: &str,
    gate: &Arc<AtomicBool>,
) -> (Ledger, engine::EngineReader) {
    let journal = PgJournal::open(target, holder, 300, Duration::from_secs(5)).expect("lease");
    let projection = Gated {
        inner: PgStore::connect_projection(target.clone()).expect("connect"),
        open: gate.clone(),
    };
    let books = Arc::new(PgReader::connect(target.clone()).expect("reader"));
    let engine = engine::Engine::open_on(
        Box::new(journal),
        engine::EngineLimits::default(),
        projection,
        books,
    )
    .expect("open engine");
    let reader = engine.reader();
    (Ledger::start(engine, clock(), test_config()), reader)
}

/// Batches acknowledged while the books took nothing are recovered from the journal table by
/// the next holder (another node, after the lease expired), and written into the books.
#[test]
fn another_node_recovers_from_the_journal_table_what_the_books_never_got() {
    let Some(target) = pg_target("journal_takeover") else { return };
    let _schema = Schema(target.clone());
    let gate = Arc::new(AtomicBool::new(true));
    let (ledger, reader) = start_engine(&target, "node-a", &gate);
    let handle = ledger.handle();
    setup(&handle);
    submit(&handle, post(1, BANK, ALICE, 1_000)).expect("posted");
    let books = PgReader::connect(target.clone()).expect("reader");
    // The books catch up; then the gate shuts and the rest is in the journal only.
    reader.trial_balance().expect("caught up");
    gate.store(false, Ordering::SeqCst);
    for id in 2..=20u128 {
        submit(&handle, post(id, ALICE, BOB, 10)).expect("posted");
    }
    let live = reader.account(account(BOB)).expect("read").expect("bob");
    assert!(books.transfer(tid(20)).expect("read").is_none(), "the books lack the last batches");
    // The node stops without writing them (its projection fails) and lets its lease expire.
    ledger.shutdown();
    drop(reader);

    let open_gate = Arc::new(AtomicBool::new(true));
    let (ledger, reader) = start_engine(&target, "node-b", &open_gate);
    let recovered = reader.account(account(BOB)).expect("read").expect("bob");
    assert_eq!(recovered.balances, live.balances, "replay from the journal equals the live state");
    reader.trial_balance().expect("the books catch up");
    assert!(books.transfer(tid(20)).expect("read").is_some(), "the books hold every batch now");
    let report = ledger::verify::verify(&books, &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.divergence);
    ledger.shutdown();
    let state = PgJournal::state(&target).expect("state");
    assert!(!state.leased, "a clean stop lets the lease go");
    assert_eq!(state.batches_ahead, 0);
}
