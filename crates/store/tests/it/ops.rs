#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test
//! Operators' port (`OpsStore`) on both backends: one audit chain however many appenders,
//! readable in pages and verifiable from any entry; actions inserted once, updated only at
//! their version, listed by state.

use std::sync::Arc;

use channels::{ChannelId, RequestId};
use money::{Amount, AssetCode};
use operators::actions::Proposal;
use operators::audit::{verify, GENESIS_HASH};
use operators::{
    ApprovalPolicy, FxRateState, NewAuditEntry, OperatorAction, OpsStore, OutcomeClaim, Switch,
    SwitchState,
};
use store::{PgOpsStore, SqliteOpsStore};

use crate::backends::{drop_schema, pg_target};

fn entry(actor: &str, n: u64) -> NewAuditEntry {
    NewAuditEntry {
        at_ms: 1_000 + n,
        actor: actor.into(),
        action: "inquiry.ask".into(),
        subject: format!("bank_a/wd_{n}:payout"),
        reason: "the bank is back".into(),
        ticket: Some(format!("INC-{n}")),
        before: serde_json::json!({"state": "escalated"}),
        after: serde_json::Value::Null,
    }
}

fn proposal(id: &str, at_ms: u64) -> OperatorAction {
    let proposal = Proposal {
        kind: operators::ActionKind::SetInquiryOutcome,
        id: id.into(),
        channel: ChannelId::new("bank_a").unwrap(),
        request_id: RequestId::new(format!("{id}:payout")).unwrap(),
        order: format!("wd_{id}"),
        asset: AssetCode::new("CNY").unwrap(),
        amount: Amount::new(50_000).unwrap(),
        claim: OutcomeClaim::Failed { detail: "no record at the bank".into() },
        evidence: "bank_a ops desk, call 10:02".into(),
        reason: "escalated for 3 days".into(),
        ticket: None,
        maker: "key_maker".into(),
    };
    OperatorAction::propose(proposal, ApprovalPolicy::default(), at_ms)
}

fn exercise(store: Arc<dyn OpsStore>) {
    // Appenders on several threads: one chain, numbered without gaps.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..10 {
                    store.append_audit(&entry(&format!("key_{t}"), n)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let all = store.audit(0, 1_000).unwrap();
    assert_eq!(all.len(), 40);
    assert_eq!(verify(0, GENESIS_HASH, &all).unwrap(), (40, all[39].hash.clone()));
    // Pages continue the chain: verified from the last entry of the page before.
    let page = store.audit(25, 10).unwrap();
    assert_eq!(page.first().map(|e| e.seq), Some(26));
    assert_eq!(verify(25, &all[24].hash, &page).unwrap().0, 35);
    assert_eq!(store.audit(40, 10).unwrap(), []);

    let said = |what: &str, id: &str| NewAuditEntry {
        action: what.into(),
        subject: id.into(),
        ..entry("key_maker", 0)
    };
    let pending = proposal("opa_a", 5_000);
    assert!(store.insert_action(&pending, &said("action.propose", "opa_a")).unwrap());
    assert!(
        !store.insert_action(&proposal("opa_a", 6_000), &said("action.propose", "again")).unwrap(),
        "the id exists"
    );
    assert_eq!(store.action("opa_a").unwrap(), Some(pending.clone()));
    assert_eq!(store.action("opa_none").unwrap(), None);
    let later = proposal("opa_b", 7_000);
    assert!(store.insert_action(&later, &said("action.propose", "opa_b")).unwrap());

    let approved = pending.approve("key_checker", "statement seen", 8_000).unwrap();
    assert!(store.update_action(&approved, 1, &said("action.approve", "opa_a")).unwrap());
    assert!(
        !store.update_action(&approved, 1, &said("action.approve", "stale")).unwrap(),
        "a stale version changes nothing"
    );
    // Each change that took is in the chain, in order; the refused ones are not.
    let trail: Vec<(String, String)> = store
        .audit(40, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.entry.action, e.entry.subject))
        .collect();
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        trail,
        [
            pair("action.propose", "opa_a"),
            pair("action.propose", "opa_b"),
            pair("action.approve", "opa_a")
        ]
    );
    assert_eq!(store.action("opa_a").unwrap(), Some(approved.clone()));

    let ids = |state| -> Vec<String> {
        store.actions(state, 10).unwrap().into_iter().map(|a| a.id).collect()
    };
    assert_eq!(ids(Some("pending_approval")), ["opa_b"]);
    assert_eq!(ids(Some("approved")), ["opa_a"]);
    assert_eq!(ids(None), ["opa_b", "opa_a"], "newest first");

    // Switches: each change is the next version, all of a set or none, with its entry.
    let switch = |on: bool, version: u64, plan: Option<&str>| SwitchState {
        switch: Switch::BulkOff,
        on,
        value: None,
        expires_at_ms: None,
        version,
        set_by: "key_ops".into(),
        reason: "drill".into(),
        ticket: None,
        plan: plan.map(str::to_owned),
        set_at_ms: 9_000 + version,
    };
    let disabled = |version: u64| SwitchState {
        switch: Switch::ChannelDisabled { channel: ChannelId::new("bank_a").unwrap() },
        ..switch(true, version, Some("channel_down"))
    };
    assert!(store.switches().unwrap().is_empty());
    assert!(store.set_switches(&[switch(true, 1, None)], &said("switch.set", "bulk")).unwrap());
    assert!(
        !store.set_switches(&[switch(false, 1, None)], &said("switch.set", "stale")).unwrap(),
        "version 1 exists"
    );
    // A plan: one switch new, one at a stale version: nothing of it is written.
    assert!(!store
        .set_switches(&[disabled(1), switch(true, 5, None)], &said("plan.run", "stale"))
        .unwrap());
    assert_eq!(store.switches().unwrap(), [switch(true, 1, None)]);
    assert!(store
        .set_switches(&[disabled(1), switch(false, 2, None)], &said("plan.run", "down"))
        .unwrap());
    let keys: Vec<String> = store.switches().unwrap().into_iter().map(|s| s.switch.key()).collect();
    assert_eq!(keys, ["degrade/bulk", "route/disabled:bank_a"]);
    assert_eq!(
        store.switch_versions("degrade/bulk", 10).unwrap(),
        [switch(false, 2, None), switch(true, 1, None)],
        "newest first"
    );
    assert_eq!(store.switch_versions("degrade/bulk", 1).unwrap().len(), 1);
    let trail: Vec<String> =
        store.audit(43, 100).unwrap().into_iter().map(|e| e.entry.subject).collect();
    assert_eq!(trail, ["bulk", "down"], "only the changes that took are in the chain");

    // Exchange rates: versioned per pair, each change with its entry.
    let rate = |raw: &str, version: u64| FxRateState {
        asset: AssetCode::new("USD").unwrap(),
        funding: AssetCode::new("CNY").unwrap(),
        rate: payments::booking::Rate::parse(raw).unwrap(),
        version,
        set_by: "key_admin".into(),
        reason: "morning fixing".into(),
        set_at_ms: 10_000 + version,
    };
    assert!(store.fx_rates().unwrap().is_empty());
    assert!(store.set_fx_rate(&rate("7.1", 1), &said("fx.set", "USD/CNY")).unwrap());
    assert!(!store.set_fx_rate(&rate("7.3", 1), &said("fx.set", "stale")).unwrap());
    assert!(store.set_fx_rate(&rate("7.2", 2), &said("fx.set", "USD/CNY")).unwrap());
    assert_eq!(store.fx_rates().unwrap(), [rate("7.2", 2)]);
}

#[test]
fn sqlite_ops_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ops.db");
    exercise(Arc::new(SqliteOpsStore::open(&path).expect("open")));
    let reopened = SqliteOpsStore::open(&path).expect("reopen");
    assert_eq!(reopened.audit(0, 100).unwrap().len(), 47);
    // Someone with the database file rewrites an entry's reason: the chain names the entry.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let changed = raw
        .execute(
            "UPDATE ops_audit SET body = replace(body, 'the bank is back', 'the bank is gone') \
             WHERE seq = 7",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let error = verify(0, GENESIS_HASH, &reopened.audit(0, 100).unwrap()).unwrap_err();
    assert_eq!(error.seq(), 7, "{error}");
}

#[test]
fn postgres_ops_store_conforms() {
    let Some(target) = pg_target("ops") else { return };
    exercise(Arc::new(PgOpsStore::connect(&target).expect("connect")));
    // A second node's store continues the same chain.
    let other = PgOpsStore::connect(&target).expect("reconnect");
    let appended = other.append_audit(&entry("key_other", 99)).unwrap();
    assert_eq!(appended.seq, 48);
    drop_schema(&target);
}

/// A store is often dropped by the last task holding it, on a runtime worker: its blocking
/// client must not panic there (it blocks on a runtime of its own as it closes).
#[test]
fn a_postgres_ops_store_drops_on_a_runtime_worker() {
    let Some(target) = pg_target("ops_drop") else { return };
    let store = PgOpsStore::connect(&target).expect("connect");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    runtime.block_on(async move {
        tokio::spawn(async move { drop(store) }).await.expect("dropped without a panic")
    });
    drop_schema(&target);
}
