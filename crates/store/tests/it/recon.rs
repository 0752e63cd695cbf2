#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test
//! The reconciler's port (`ReconStore`) on both backends: statements by hash and version,
//! append-only runs whose breaks are inserted once, versioned break updates with their audit
//! trail, and the loss register with recoveries.

use std::collections::BTreeMap;

use money::{Amount, AssetCode};
use recon::breaks::{BreakState, SuspenseParts};
use recon::{Class, TxType};
use reconciler::port::{
    BreakEvent, BreakQuery, BreakRecord, DayQuery, LossRecord, PutStatement, ReconStore,
    RegisterEntry, RunRecord, StatementRecord, StatementSource, Updated,
};
use store::{PgReconStore, SqliteReconStore};

use crate::backends::{drop_schema, pg_target};

const DAY: i64 = 20_600;

fn cny() -> AssetCode {
    AssetCode::new("CNY").expect("asset")
}

fn statement(id: &str, channel: &str, sha: &str, at_ms: u64) -> StatementRecord {
    StatementRecord {
        id: id.into(),
        channel: channel.into(),
        business_day: DAY,
        version: 0,
        sha256_hex: sha.into(),
        size_bytes: 3,
        detail_lines: 1,
        source: StatementSource::Uploaded,
        received_by: "key_1".into(),
        received_at_ms: at_ms,
    }
}

fn run(id: &str, at_ms: u64) -> RunRecord {
    RunRecord {
        id: id.into(),
        channel: "bank_a".into(),
        business_day: DAY,
        statement_id: "stm_1".into(),
        statement_sha256: "aa".into(),
        ours_sha256: "bb".into(),
        rule_version: 1,
        counts: BTreeMap::from([(Class::Matched, 3), (Class::MissingExternal, 1)]),
        totals: Vec::new(),
        result_hash: "cc".into(),
        breaks_new: 0,
        auto_resolved: 0,
        superseded: 0,
        started_by: "system".into(),
        started_at_ms: at_ms,
        finished_at_ms: at_ms + 1,
    }
}

fn found(id: &str, class: Class, at_ms: u64) -> BreakRecord {
    BreakRecord {
        id: id.into(),
        channel: "bank_a".into(),
        business_day: DAY,
        class,
        tx_type: TxType::Debit,
        currency: cny(),
        statement_line: Some(2),
        request_id: Some("top_1:debit".into()),
        order_id: Some("top_1".into()),
        amount_ours: Amount::new(500),
        amount_theirs: None,
        fee_ours: None,
        fee_theirs: None,
        parts: SuspenseParts { amount_minor: -500, fee_minor: 0 },
        state: BreakState::Open,
        assignee: None,
        proposal: None,
        found_by_run: "run_1".into(),
        revision: 0,
        version: 1,
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
        resolved_at_ms: None,
    }
}

fn event(id: &str, action: &str, at_ms: u64) -> BreakEvent {
    BreakEvent {
        break_id: id.into(),
        at_ms,
        actor: "key_1".into(),
        action: action.into(),
        detail: serde_json::json!({}),
    }
}

fn exercise(store: &dyn ReconStore) {
    // Statements: the same file is a no-op, another is the next version.
    let first =
        store.put_statement(&statement("stm_1", "bank_a", "aa", 10), b"one".to_vec()).unwrap();
    let PutStatement::Stored(first) = first else { panic!("stored") };
    assert_eq!(first.version, 1);
    let again =
        store.put_statement(&statement("stm_1", "bank_a", "aa", 11), b"one".to_vec()).unwrap();
    assert_eq!(again, PutStatement::Same(first.clone()));
    let second =
        store.put_statement(&statement("stm_2", "bank_a", "dd", 12), b"two".to_vec()).unwrap();
    let PutStatement::Stored(second) = second else { panic!("stored") };
    assert_eq!(second.version, 2);
    let other =
        store.put_statement(&statement("stm_3", "bank_b", "aa", 13), b"one".to_vec()).unwrap();
    assert!(matches!(other, PutStatement::Stored(ref s) if s.version == 1));
    assert_eq!(store.latest_statement("bank_a", DAY).unwrap(), Some(second.clone()));
    assert_eq!(store.latest_statement("bank_a", DAY + 1).unwrap(), None);
    assert_eq!(store.statement("stm_1").unwrap(), Some(first));
    assert_eq!(store.statement_bytes("stm_2").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(store.statement_bytes("stm_9").unwrap(), None);
    let listed = store
        .statements(&DayQuery { channel: Some("bank_a".into()), business_day: None, limit: 10 })
        .unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["stm_2", "stm_1"]);
    assert_eq!(store.statements(&DayQuery { limit: 1, ..Default::default() }).unwrap().len(), 1);

    // Runs are appended; a break found again keeps its state and is not new.
    let breaks = [found("brk_a", Class::MissingExternal, 20), found("brk_b", Class::Duplicate, 21)];
    assert_eq!(store.insert_run(&run("run_1", 20), &breaks).unwrap(), ["brk_a", "brk_b"]);
    assert_eq!(store.insert_run(&run("run_2", 30), &breaks[..1]).unwrap(), Vec::<String>::new());
    assert!(store.insert_run(&run("run_2", 31), &[]).is_err(), "a run is written once");
    assert_eq!(store.run("run_1").unwrap(), Some(run("run_1", 20)));
    let runs = store.runs(&DayQuery { business_day: Some(DAY), limit: 10, ..Default::default() });
    assert_eq!(runs.unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run_2", "run_1"]);

    // Listing, newest first, with filters and a cursor.
    let all = store.breaks(&BreakQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["brk_b", "brk_a"]);
    let by_class = BreakQuery { class: Some(Class::Duplicate), limit: 10, ..Default::default() };
    assert_eq!(store.breaks(&by_class).unwrap().len(), 1);
    let page = BreakQuery { before: Some((21, "brk_b".into())), limit: 10, ..Default::default() };
    assert_eq!(store.breaks(&page).unwrap()[0].id, "brk_a");
    let other_day = BreakQuery { business_day: Some(DAY + 1), limit: 10, ..Default::default() };
    assert!(store.breaks(&other_day).unwrap().is_empty());

    // Updates are versioned and leave an audit trail.
    let mut record = store.get_break("brk_a").unwrap().expect("stored");
    record.state = BreakState::Resolving;
    record.version = 2;
    record.updated_at_ms = 40;
    let resolving = event("brk_a", "proposed", 40);
    assert_eq!(
        store.update_break(&record, 1, &resolving, &RegisterEntry::None).unwrap(),
        Updated::Written
    );
    assert_eq!(
        store.update_break(&record, 1, &resolving, &RegisterEntry::None).unwrap(),
        Updated::Stale
    );
    assert_eq!(store.resolving(10).unwrap(), vec![record.clone()]);
    let resolving_state =
        BreakQuery { state: Some(BreakState::Resolving), limit: 10, ..Default::default() };
    assert_eq!(store.breaks(&resolving_state).unwrap().len(), 1);

    // A write-off enters the register in the same transaction; a recovery adds to it.
    let loss = LossRecord {
        id: "loss_a".into(),
        break_id: "brk_a".into(),
        channel: "bank_a".into(),
        business_day: DAY,
        currency: cny(),
        amount: Amount::new(500).unwrap(),
        cause: Class::MissingExternal,
        order_id: Some("top_1".into()),
        reason: "bank will not pay".into(),
        maker: "key_1".into(),
        approver: Some("key_2".into()),
        written_off_at_ms: 50,
        recovered: Amount::ZERO,
    };
    record.state = BreakState::Resolved;
    record.version = 3;
    let resolved = event("brk_a", "resolved", 50);
    assert_eq!(
        store.update_break(&record, 2, &resolved, &RegisterEntry::Loss(loss.clone())).unwrap(),
        Updated::Written
    );
    assert!(store.resolving(10).unwrap().is_empty());
    let mut recovering = store.get_break("brk_b").unwrap().expect("stored");
    recovering.version = 2;
    let recovery =
        RegisterEntry::Recovery { loss_id: "loss_a".into(), amount: Amount::new(200).unwrap() };
    let recovered = event("brk_b", "resolved", 60);
    assert_eq!(
        store.update_break(&recovering, 1, &recovered, &recovery).unwrap(),
        Updated::Written
    );
    let stored = store.loss("loss_a").unwrap().expect("loss");
    assert_eq!(stored.recovered, Amount::new(200).unwrap());
    assert_eq!(store.losses(50, 51).unwrap().len(), 1);
    assert!(store.losses(51, 100).unwrap().is_empty());
    let trail: Vec<String> =
        store.break_events("brk_a").unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(trail, ["found", "proposed", "resolved"]);
    assert_eq!(store.get_break("brk_a").unwrap(), Some(record));
}

#[test]
fn sqlite_recon_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recon.db");
    exercise(&SqliteReconStore::open(&path).expect("open"));
    let reopened = SqliteReconStore::open(&path).expect("reopen");
    assert_eq!(reopened.break_events("brk_b").unwrap().len(), 2);
}

#[test]
fn postgres_recon_store_conforms() {
    let Some(target) = pg_target("recon") else { return };
    exercise(&PgReconStore::connect(&target).expect("connect"));
    let reconnected = PgReconStore::connect(&target).expect("reconnect");
    assert_eq!(reconnected.break_events("brk_b").unwrap().len(), 2);
    drop_schema(&target);
}
