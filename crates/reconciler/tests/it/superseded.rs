//! A difference a newer statement no longer showed, and a later one shows again: its break,
//! superseded meanwhile (its suspense booking reversed), is reopened under a new revision —
//! its money is in suspense again and an operator resolves it — never left resolved with the
//! difference nowhere.

use recon::breaks::{BreakState, Resolution};
use recon::{BusinessDay, Class};

use crate::{world, Backend, Internal, Plant};

async fn a_difference_that_comes_back_reopens_its_break(backend: &Backend) {
    let w = world(backend).await;
    let day = BusinessDay::parse("2026-12-05").unwrap();
    w.topup("t1", "card-1", 10_000).await;
    let dropped = w.topup("t2", "card-2", 20_000).await;
    let request = format!("{dropped}:debit");
    let suspense = || w.balance(Internal::ReconSuspense(w.bank.id.clone()));

    // Version 1 lacks t2: a break, its money on suspense.
    *w.bank.plant.lock().unwrap() = vec![Plant::Drop(request.clone())];
    w.reconciler.fetch("bank_a", day, "job").await.unwrap();
    let first = w.reconciler.run("bank_a", day, "job").await.unwrap();
    assert_eq!(first.counts[&Class::MissingExternal], 1);
    let held = suspense();
    assert!(held != 0);
    let query = reconciler::BreakQuery { limit: 10, ..Default::default() };
    let id = w.reconciler.store().breaks(&query).unwrap()[0].id.clone();

    // Version 2 has it: the break is superseded, the suspense empty.
    w.bank.plant.lock().unwrap().clear();
    w.reconciler.fetch("bank_a", day, "job").await.unwrap();
    let second = w.reconciler.run("bank_a", day, "job").await.unwrap();
    assert_eq!(second.superseded, 1);
    assert_eq!(suspense(), 0);

    // Version 3 (one more line) lacks t2 again: the same break, open again, held again.
    w.topup("t3", "card-3", 30_000).await;
    *w.bank.plant.lock().unwrap() = vec![Plant::Drop(request)];
    w.reconciler.fetch("bank_a", day, "job").await.unwrap();
    let third = w.reconciler.run("bank_a", day, "job").await.unwrap();
    assert_eq!(third.counts[&Class::MissingExternal], 1);
    let record = w.reconciler.get_break(&id).unwrap();
    assert_eq!((record.state, record.revision), (BreakState::Open, 1), "{record:?}");
    assert_eq!(suspense(), held, "the money is in suspense again");
    let checked = w.reconciler.cross_check("ops").await.unwrap();
    assert!(checked.checks.iter().all(|c| c.ok), "{checked:?}");
    let trail: Vec<String> =
        w.reconciler.store().break_events(&id).unwrap().into_iter().map(|e| e.action).collect();
    assert!(trail.contains(&"reopened".to_owned()), "{trail:?}");

    // Resolved as any break, under ledger ids of its revision: suspense empty again.
    let proposed =
        w.reconciler.propose(&id, Resolution::WriteOff, "lost at the bank", "maker").await.unwrap();
    assert_eq!(proposed.state, BreakState::PendingApproval);
    let resolved = w.reconciler.approve(&id, "checker").await.unwrap();
    assert_eq!(resolved.state, BreakState::Resolved);
    assert_eq!(suspense(), 0);
    assert!(w.balanced());
    tokio::task::block_in_place(|| drop(w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_that_comes_back_reopens_its_break_on_sqlite() {
    a_difference_that_comes_back_reopens_its_break(&Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_that_comes_back_reopens_its_break_on_postgres() {
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    a_difference_that_comes_back_reopens_its_break(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
}
