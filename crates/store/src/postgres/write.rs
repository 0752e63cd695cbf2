//! Writing committed batches into the PostgreSQL books: one batch at a time (a direct node),
//! or a group of batches in one statement (the journal engine's projector).
//!
//! Either way the write is one statement: each table's rows go in one `UNNEST`, and each
//! part is a data-modifying CTE ([`OneStatement`]).

use std::collections::HashMap;

use ledger::apply::BatchWrite;
use ledger::model::{Account, Entry, Hold, Record, Side, Transfer};
use ledger::{AccountId, TransferId};

use super::StatementCache;
use crate::codec::{
    self, ACCOUNT_COLUMNS, BATCH_COLUMNS, ENTRY_COLUMNS, HOLD_COLUMNS, TRANSFER_COLUMNS,
};

/// Who writes. A direct node's write must not move the head while a node runs the books on
/// the journal, or while the journal holds batches the books lack: it checks in the statement
/// that moves the head (`ledger_direct_write_allowed`, migration 21), so a lease taken after
/// that statement began still finds the head locked by it. The journal engine's projector
/// writes only what its journal already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Writer {
    Direct,
    Projector,
}

/// Writes `batches` (consecutive, in order) as one statement, and moves the head to the last.
/// A group writes the same rows as its batches one by one would: each account and hold once,
/// in its state after the group's last batch; the entries in key order (account, seq).
pub(super) fn write_group(
    tx: &mut postgres::Transaction<'_>,
    statements: &mut StatementCache,
    batches: &[&BatchWrite],
    writer: Writer,
) -> Result<(), postgres::Error> {
    let Some(last) = batches.last() else { return Ok(()) };
    let mut statement = OneStatement::default();
    let mut transfers = Vec::new();
    for batch in batches {
        write_records(&mut statement, batch, &mut transfers);
    }
    let mut updated: HashMap<AccountId, &Account> = HashMap::new();
    let mut holds: HashMap<TransferId, &Hold> = HashMap::new();
    for batch in batches {
        updated.extend(batch.updated_accounts.iter().map(|account| (account.id, account)));
        holds.extend(batch.holds.iter().map(|hold| (hold.pending_id, hold)));
    }
    // An account opened in the group is inserted in its final state: the statement's update
    // cannot see a row that a sibling part inserts.
    let opened: Vec<Account> = batches
        .iter()
        .flat_map(|batch| &batch.opened_accounts)
        .map(|account| (*updated.remove(&account.id).unwrap_or(account)).clone())
        .collect();
    let mut updated: Vec<Account> = updated.into_values().cloned().collect();
    updated.sort_unstable_by_key(|account| account.id);
    let mut entries: Vec<&Entry> = batches.iter().flat_map(|batch| &batch.entries).collect();
    entries.sort_unstable_by_key(|entry| (entry.account_id, entry.seq));
    let mut holds: Vec<Hold> = holds.into_values().copied().collect();
    holds.sort_unstable_by_key(|hold| hold.pending_id);
    insert_accounts(&mut statement, &opened);
    insert_transfers(&mut statement, &transfers);
    insert_entries(&mut statement, &entries);
    upsert_holds(&mut statement, &holds);
    insert_headers(&mut statement, batches);
    let head = last.head();
    let values = [
        statement.param(head.batch_seq.0 as i64),
        statement.param(head.last_seq.0 as i64),
        statement.param(head.last_timestamp.0 as i64),
        statement.param(head.hash.0.to_vec()),
    ];
    let guard = match writer {
        Writer::Direct => " AND ledger_direct_write_allowed()",
        Writer::Projector => "",
    };
    statement.part(format!(
        "UPDATE journal_head SET batch_seq = {}, last_seq = {}, last_timestamp = {}, hash = {} WHERE id = 1{guard}",
        values[0], values[1], values[2], values[3]
    ));
    let counted = update_accounts(&mut statement, &updated);
    let n_updated = statement.execute(tx, statements, counted)?;
    assert_eq!(n_updated as usize, updated.len(), "an updated account is not stored");
    Ok(())
}

/// The batch's records other than transfers as parts; its transfers pushed to `transfers`.
fn write_records<'a>(
    statement: &mut OneStatement,
    batch: &'a BatchWrite,
    transfers: &mut Vec<&'a Transfer>,
) {
    for record in &batch.records {
        match record {
            Record::AssetDefined { seq, asset } => {
                let values = [
                    statement.param(asset.code().as_str().to_string()),
                    statement.param(i16::from(asset.scale())),
                    statement.param(seq.0 as i64),
                ];
                statement.part(format!(
                    "INSERT INTO assets (code, scale, seq) VALUES ({})",
                    values.join(", ")
                ));
            }
            Record::ChartDefined { seq, entry } => {
                let values = [
                    statement.param(i64::from(entry.code.0)),
                    statement.param(entry.name.as_str().to_string()),
                    statement.param(i16::from(entry.class.code())),
                    statement.param(seq.0 as i64),
                ];
                statement.part(format!(
                    "INSERT INTO chart (code, name, class, seq) VALUES ({})",
                    values.join(", ")
                ));
            }
            Record::AccountOpened(_) => {}
            Record::AccountStatusSet { seq, account_id, status } => {
                let values = [
                    statement.param(seq.0 as i64),
                    statement.param(account_id.to_bytes().to_vec()),
                    statement.param(i16::from(status.code())),
                ];
                statement.part(format!(
                    "INSERT INTO account_status_log (seq, account_id, status) VALUES ({})",
                    values.join(", ")
                ));
            }
            Record::Transfer(transfer) => transfers.push(transfer),
        }
    }
}

fn insert_headers(statement: &mut OneStatement, batches: &[&BatchWrite]) {
    let headers: Vec<_> = batches.iter().map(|batch| &batch.header).collect();
    let p = [
        statement.param(headers.iter().map(|h| h.batch_seq.0 as i64).collect::<Vec<_>>()),
        statement.param(headers.iter().map(|h| h.first_seq.0 as i64).collect::<Vec<_>>()),
        statement.param(headers.iter().map(|h| i64::from(h.n_records)).collect::<Vec<_>>()),
        statement.param(headers.iter().map(|h| h.timestamp.0 as i64).collect::<Vec<_>>()),
        statement.param(headers.iter().map(|h| h.prev_hash.0.to_vec()).collect::<Vec<_>>()),
        statement.param(headers.iter().map(|h| h.hash.0.to_vec()).collect::<Vec<_>>()),
    ];
    statement.part(format!(
        "INSERT INTO journal_batches ({BATCH_COLUMNS}) SELECT * FROM UNNEST({}::bigint[], \
         {}::bigint[], {}::bigint[], {}::bigint[], {}::bytea[], {}::bytea[])",
        p[0], p[1], p[2], p[3], p[4], p[5]
    ));
}

/// A whole batch write as one statement: each part is a data-modifying CTE. PostgreSQL runs
/// every such CTE exactly once, whether or not the outer query reads it, so one round trip
/// replaces one per table.
#[derive(Default)]
struct OneStatement {
    parts: Vec<String>,
    params: Vec<Box<dyn postgres::types::ToSql + Sync>>,
}

impl OneStatement {
    /// Adds a parameter and returns its placeholder.
    fn param(&mut self, value: impl postgres::types::ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Adds a part; returns its CTE name.
    fn part(&mut self, sql: String) -> String {
        self.parts.push(sql);
        format!("w{}", self.parts.len() - 1)
    }

    /// Runs every part; returns the number of rows the `counted` part returned.
    fn execute(
        self,
        tx: &mut postgres::Transaction<'_>,
        statements: &mut StatementCache,
        counted: Option<String>,
    ) -> Result<i64, postgres::Error> {
        let ctes: Vec<String> = self
            .parts
            .iter()
            .enumerate()
            .map(|(index, sql)| format!("w{index} AS ({sql})"))
            .collect();
        let count = counted
            .map_or("0::bigint".to_string(), |name| format!("(SELECT count(*) FROM {name})"));
        let sql = format!("WITH {} SELECT {count}", ctes.join(",\n"));
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            self.params.iter().map(|param| param.as_ref()).collect();
        let prepared = statements.get(tx, &sql)?;
        tx.query_one(&prepared, &params)?.try_get(0)
    }
}

/// Balance columns of many rows, as four arrays.
fn balance_arrays<'a>(balances: impl Iterator<Item = &'a ledger::Balances>) -> [Vec<i64>; 4] {
    let mut arrays: [Vec<i64>; 4] = Default::default();
    for b in balances {
        arrays[0].push(b.debits_pending.to_stored());
        arrays[1].push(b.debits_posted.to_stored());
        arrays[2].push(b.credits_pending.to_stored());
        arrays[3].push(b.credits_posted.to_stored());
    }
    arrays
}

fn bytes<T>(rows: &[T], id: impl Fn(&T) -> [u8; 16]) -> Vec<Vec<u8>> {
    rows.iter().map(|row| id(row).to_vec()).collect()
}

fn strings<T>(rows: &[T], text: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|row| text(row).to_string()).collect()
}

fn insert_accounts(statement: &mut OneStatement, accounts: &[Account]) {
    if accounts.is_empty() {
        return;
    }
    let rules: Vec<(i64, i64)> = accounts.iter().map(|a| codec::rule_columns(&a.rule)).collect();
    let layouts: Vec<(i64, i64, Option<[u8; 16]>)> =
        accounts.iter().map(|a| codec::layout_columns(&a.layout)).collect();
    let [dp, dpo, cp, cpo] = balance_arrays(accounts.iter().map(|a| &a.balances));
    let p = [
        statement.param(bytes(accounts, |a| a.id.to_bytes())),
        statement.param(strings(accounts, |a| a.asset.as_str())),
        statement.param(accounts.iter().map(|a| i64::from(a.chart_code.0)).collect::<Vec<_>>()),
        statement.param(rules.iter().map(|r| r.0 as i16).collect::<Vec<_>>()),
        statement.param(rules.iter().map(|r| r.1).collect::<Vec<_>>()),
        statement.param(strings(accounts, |a| a.metadata.as_str())),
        statement.param(accounts.iter().map(|a| i16::from(a.status.code())).collect::<Vec<_>>()),
        statement.param(dp),
        statement.param(dpo),
        statement.param(cp),
        statement.param(cpo),
        statement.param(accounts.iter().map(|a| a.opened_seq.0 as i64).collect::<Vec<_>>()),
        statement.param(accounts.iter().map(|a| a.opened_at.0 as i64).collect::<Vec<_>>()),
        statement.param(layouts.iter().map(|l| l.0 as i16).collect::<Vec<_>>()),
        statement.param(layouts.iter().map(|l| l.1 as i16).collect::<Vec<_>>()),
        statement
            .param(layouts.iter().map(|l| l.2.map(|owner| owner.to_vec())).collect::<Vec<_>>()),
    ];
    statement.part(format!(
        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) SELECT * FROM UNNEST({}::bytea[], {}::text[], \
         {}::bigint[], {}::smallint[], {}::bigint[], {}::text[], {}::smallint[], {}::bigint[], \
         {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::smallint[], \
         {}::smallint[], {}::bytea[])",
        p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        p[5],
        p[6],
        p[7],
        p[8],
        p[9],
        p[10],
        p[11],
        p[12],
        p[13],
        p[14],
        p[15]
    ));
}

fn insert_transfers(statement: &mut OneStatement, transfers: &[&Transfer]) {
    if transfers.is_empty() {
        return;
    }
    let p = [
        statement.param(transfers.iter().map(|t| t.seq.0 as i64).collect::<Vec<_>>()),
        statement.param(bytes(transfers, |t| t.id.to_bytes())),
        statement.param(transfers.iter().map(|t| i16::from(t.kind.code())).collect::<Vec<_>>()),
        statement.param(bytes(transfers, |t| t.debit_account_id.to_bytes())),
        statement.param(bytes(transfers, |t| t.credit_account_id.to_bytes())),
        statement.param(strings(transfers, |t| t.asset.as_str())),
        statement.param(transfers.iter().map(|t| t.amount.to_stored()).collect::<Vec<_>>()),
        statement.param(
            transfers
                .iter()
                .map(|t| t.pending_id.map(|id| id.to_bytes().to_vec()))
                .collect::<Vec<_>>(),
        ),
        statement.param(
            transfers.iter().map(|t| t.expires_at.map(|at| at.0 as i64)).collect::<Vec<_>>(),
        ),
        statement.param(transfers.iter().map(|t| i64::from(t.business_code.0)).collect::<Vec<_>>()),
        statement.param(strings(transfers, |t| t.order_ref.as_str())),
        statement.param(transfers.iter().map(|t| t.timestamp.0 as i64).collect::<Vec<_>>()),
        statement.param(transfers.iter().map(|t| t.fingerprint.0.to_vec()).collect::<Vec<_>>()),
    ];
    statement.part(format!(
        "INSERT INTO transfers ({TRANSFER_COLUMNS}) SELECT * FROM UNNEST({}::bigint[], {}::bytea[], \
         {}::smallint[], {}::bytea[], {}::bytea[], {}::text[], {}::bigint[], {}::bytea[], \
         {}::bigint[], {}::bigint[], {}::text[], {}::bigint[], {}::bytea[])",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
    ));
}

fn insert_entries(statement: &mut OneStatement, entries: &[&Entry]) {
    if entries.is_empty() {
        return;
    }
    let [dp, dpo, cp, cpo] = balance_arrays(entries.iter().map(|e| &e.balances_after));
    let p = [
        statement.param(bytes(entries, |e| e.account_id.to_bytes())),
        statement.param(entries.iter().map(|e| e.seq.0 as i64).collect::<Vec<_>>()),
        statement.param(entries.iter().map(|e| side_code(e.side)).collect::<Vec<_>>()),
        statement.param(bytes(entries, |e| e.transfer_id.to_bytes())),
        statement.param(entries.iter().map(|e| e.amount.to_stored()).collect::<Vec<_>>()),
        statement.param(dp),
        statement.param(dpo),
        statement.param(cp),
        statement.param(cpo),
    ];
    statement.part(format!(
        "INSERT INTO entries ({ENTRY_COLUMNS}) SELECT * FROM UNNEST({}::bytea[], {}::bigint[], \
         {}::smallint[], {}::bytea[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[])",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    ));
}

/// Returns the CTE name whose row count is the number of accounts updated.
fn update_accounts(statement: &mut OneStatement, accounts: &[Account]) -> Option<String> {
    if accounts.is_empty() {
        return None;
    }
    let [dp, dpo, cp, cpo] = balance_arrays(accounts.iter().map(|a| &a.balances));
    let p = [
        statement.param(bytes(accounts, |a| a.id.to_bytes())),
        statement.param(accounts.iter().map(|a| i16::from(a.status.code())).collect::<Vec<_>>()),
        statement.param(dp),
        statement.param(dpo),
        statement.param(cp),
        statement.param(cpo),
    ];
    Some(statement.part(format!(
        "UPDATE accounts AS a SET status = u.status, debits_pending = u.dp, debits_posted = u.dpo, \
         credits_pending = u.cp, credits_posted = u.cpo \
         FROM UNNEST({}::bytea[], {}::smallint[], {}::bigint[], {}::bigint[], {}::bigint[], {}::bigint[]) \
         AS u(id, status, dp, dpo, cp, cpo) WHERE a.id = u.id RETURNING 1",
        p[0], p[1], p[2], p[3], p[4], p[5]
    )))
}

fn upsert_holds(statement: &mut OneStatement, holds: &[Hold]) {
    if holds.is_empty() {
        return;
    }
    let p = [
        statement.param(bytes(holds, |h| h.pending_id.to_bytes())),
        statement.param(bytes(holds, |h| h.movement.debit_account_id.to_bytes())),
        statement.param(bytes(holds, |h| h.movement.credit_account_id.to_bytes())),
        statement.param(strings(holds, |h| h.movement.asset.as_str())),
        statement.param(holds.iter().map(|h| h.movement.amount.to_stored()).collect::<Vec<_>>()),
        statement
            .param(holds.iter().map(|h| h.expires_at.map(|at| at.0 as i64)).collect::<Vec<_>>()),
        statement.param(holds.iter().map(|h| i16::from(h.state.code())).collect::<Vec<_>>()),
        statement.param(holds.iter().map(|h| i64::from(h.business_code.0)).collect::<Vec<_>>()),
    ];
    statement.part(format!(
        "INSERT INTO holds ({HOLD_COLUMNS}) SELECT * FROM UNNEST({}::bytea[], {}::bytea[], \
         {}::bytea[], {}::text[], {}::bigint[], {}::bigint[], {}::smallint[], {}::bigint[]) \
         ON CONFLICT (pending_id) DO UPDATE SET state = EXCLUDED.state",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    ));
}

fn side_code(side: Side) -> i16 {
    match side {
        Side::Debit => 1,
        Side::Credit => 2,
    }
}
