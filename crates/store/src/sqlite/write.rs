//! Writing committed batches into the books: one batch at a time (the direct store), or a
//! group of batches in one transaction (the journal engine's projector).
//!
//! A group writes the same rows as its batches one by one would, in fewer and cheaper
//! statements: each account and hold once, in its state after the group's last batch, and
//! the entries in key order (account, seq), so consecutive inserts land on the same B-tree
//! pages instead of seeking across the table for every one.

use std::collections::HashMap;

use ledger::apply::BatchWrite;
use ledger::model::{Account, Entry, Hold, Record, Side, Transfer};
use ledger::{AccountId, TransferId};
use rusqlite::params;

use crate::codec::{
    self, ACCOUNT_COLUMNS, BATCH_COLUMNS, ENTRY_COLUMNS, HOLD_COLUMNS, TRANSFER_COLUMNS,
};

type Tx<'a> = rusqlite::Transaction<'a>;

/// Writes `batch` and moves the head to it.
pub(super) fn write_batch(tx: &Tx<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    write_records(tx, batch)?;
    insert_opened(tx, &batch.opened_accounts)?;
    update_accounts(tx, batch.updated_accounts.iter())?;
    insert_entries(tx, batch.entries.iter())?;
    upsert_holds(tx, batch.holds.iter())?;
    insert_header(tx, batch)?;
    move_head(tx, batch)
}

/// Writes `batches` (consecutive, in order) as [`write_batch`] would one by one, and moves the
/// head to the last.
pub(super) fn write_group(tx: &Tx<'_>, batches: &[&BatchWrite]) -> rusqlite::Result<()> {
    let Some(last) = batches.last() else { return Ok(()) };
    // Opened before any update: an account opened in one batch may change in a later one.
    for batch in batches {
        write_records(tx, batch)?;
        insert_opened(tx, &batch.opened_accounts)?;
        insert_header(tx, batch)?;
    }
    let mut accounts: HashMap<AccountId, &Account> = HashMap::new();
    let mut holds: HashMap<TransferId, &Hold> = HashMap::new();
    for batch in batches {
        accounts.extend(batch.updated_accounts.iter().map(|account| (account.id, account)));
        holds.extend(batch.holds.iter().map(|hold| (hold.pending_id, hold)));
    }
    let mut accounts: Vec<&Account> = accounts.into_values().collect();
    accounts.sort_unstable_by_key(|account| account.id);
    update_accounts(tx, accounts.into_iter())?;
    let mut entries: Vec<&Entry> = batches.iter().flat_map(|batch| &batch.entries).collect();
    entries.sort_unstable_by_key(|entry| (entry.account_id, entry.seq));
    insert_entries(tx, entries.into_iter())?;
    let mut holds: Vec<&Hold> = holds.into_values().collect();
    holds.sort_unstable_by_key(|hold| hold.pending_id);
    upsert_holds(tx, holds.into_iter())?;
    move_head(tx, last)
}

fn write_records(tx: &Tx<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    for record in &batch.records {
        match record {
            Record::AssetDefined { seq, asset } => {
                tx.prepare_cached("INSERT INTO assets (code, scale, seq) VALUES (?1, ?2, ?3)")?
                    .execute(params![asset.code().as_str(), asset.scale(), seq.0 as i64])?;
            }
            Record::ChartDefined { seq, entry } => {
                tx.prepare_cached(
                    "INSERT INTO chart (code, name, class, seq) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    entry.code.0,
                    entry.name.as_str(),
                    entry.class.code(),
                    seq.0 as i64
                ])?;
            }
            Record::AccountOpened(_) => {}
            Record::AccountStatusSet { seq, account_id, status } => {
                tx.prepare_cached(
                    "INSERT INTO account_status_log (seq, account_id, status) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    seq.0 as i64,
                    &account_id.to_bytes()[..],
                    status.code()
                ])?;
            }
            Record::Transfer(transfer) => insert_transfer(tx, transfer)?,
        }
    }
    Ok(())
}

fn insert_opened(tx: &Tx<'_>, opened: &[Account]) -> rusqlite::Result<()> {
    for account in opened {
        let (rule_kind, rule_limit) = codec::rule_columns(&account.rule);
        let (layout_kind, layout_rows, layout_owner) = codec::layout_columns(&account.layout);
        let b = &account.balances;
        tx.prepare_cached(&format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ))?
        .execute(params![
            &account.id.to_bytes()[..],
            account.asset.as_str(),
            account.chart_code.0,
            rule_kind,
            rule_limit,
            account.metadata.as_str(),
            account.status.code(),
            b.debits_pending.to_stored(),
            b.debits_posted.to_stored(),
            b.credits_pending.to_stored(),
            b.credits_posted.to_stored(),
            account.opened_seq.0 as i64,
            account.opened_at.0 as i64,
            layout_kind,
            layout_rows,
            layout_owner.as_ref().map(|owner| &owner[..]),
        ])?;
    }
    Ok(())
}

fn update_accounts<'a>(
    tx: &Tx<'_>,
    accounts: impl Iterator<Item = &'a Account>,
) -> rusqlite::Result<()> {
    let mut update = tx.prepare_cached(
        "UPDATE accounts SET status = ?2, debits_pending = ?3, debits_posted = ?4, \
         credits_pending = ?5, credits_posted = ?6 WHERE id = ?1",
    )?;
    for account in accounts {
        let b = &account.balances;
        let changed = update.execute(params![
            &account.id.to_bytes()[..],
            account.status.code(),
            b.debits_pending.to_stored(),
            b.debits_posted.to_stored(),
            b.credits_pending.to_stored(),
            b.credits_posted.to_stored(),
        ])?;
        assert_eq!(changed, 1, "updated account {} is not stored", account.id);
    }
    Ok(())
}

fn insert_entries<'a>(
    tx: &Tx<'_>,
    entries: impl Iterator<Item = &'a Entry>,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?;
    for entry in entries {
        let b = &entry.balances_after;
        insert.execute(params![
            &entry.account_id.to_bytes()[..],
            entry.seq.0 as i64,
            side_code(entry.side),
            &entry.transfer_id.to_bytes()[..],
            entry.amount.to_stored(),
            b.debits_pending.to_stored(),
            b.debits_posted.to_stored(),
            b.credits_pending.to_stored(),
            b.credits_posted.to_stored(),
        ])?;
    }
    Ok(())
}

fn upsert_holds<'a>(tx: &Tx<'_>, holds: impl Iterator<Item = &'a Hold>) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO holds ({HOLD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (pending_id) DO UPDATE SET state = excluded.state"
    ))?;
    for hold in holds {
        upsert.execute(params![
            &hold.pending_id.to_bytes()[..],
            &hold.movement.debit_account_id.to_bytes()[..],
            &hold.movement.credit_account_id.to_bytes()[..],
            hold.movement.asset.as_str(),
            hold.movement.amount.to_stored(),
            hold.expires_at.map(|at| at.0 as i64),
            hold.state.code(),
            hold.business_code.0,
        ])?;
    }
    Ok(())
}

fn insert_header(tx: &Tx<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    let header = &batch.header;
    tx.prepare_cached(&format!(
        "INSERT INTO journal_batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![
        header.batch_seq.0 as i64,
        header.first_seq.0 as i64,
        header.n_records,
        header.timestamp.0 as i64,
        &header.prev_hash.0[..],
        &header.hash.0[..],
    ])?;
    Ok(())
}

fn move_head(tx: &Tx<'_>, batch: &BatchWrite) -> rusqlite::Result<()> {
    let head = batch.head();
    tx.prepare_cached(
        "UPDATE journal_head SET batch_seq = ?1, last_seq = ?2, last_timestamp = ?3, hash = ?4 WHERE id = 1",
    )?
    .execute(params![
        head.batch_seq.0 as i64,
        head.last_seq.0 as i64,
        head.last_timestamp.0 as i64,
        &head.hash.0[..]
    ])?;
    Ok(())
}

fn insert_transfer(tx: &Tx<'_>, transfer: &Transfer) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO transfers ({TRANSFER_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        transfer.seq.0 as i64,
        &transfer.id.to_bytes()[..],
        transfer.kind.code(),
        &transfer.debit_account_id.to_bytes()[..],
        &transfer.credit_account_id.to_bytes()[..],
        transfer.asset.as_str(),
        transfer.amount.to_stored(),
        transfer.pending_id.map(|id| id.to_bytes().to_vec()),
        transfer.expires_at.map(|at| at.0 as i64),
        transfer.business_code.0,
        transfer.order_ref.as_str(),
        transfer.timestamp.0 as i64,
        &transfer.fingerprint.0[..],
    ])?;
    Ok(())
}

fn side_code(side: Side) -> i64 {
    match side {
        Side::Debit => 1,
        Side::Credit => 2,
    }
}
