//! What the engine keeps in memory: every account row, every pending hold, the assets and
//! chart, the journal head, and the transfers and resolved holds of batches the projection
//! does not hold yet. Pure: batches go in, lookups come out.
//!
//! Bounds: accounts and pending holds are the books' own size (each account row is about
//! 200 bytes here); transfers and resolved holds are kept only until the projection holds
//! them, and the engine bounds that lag ([`crate::EngineConfig::projection_lag_records_max`]).

use std::collections::{BTreeSet, HashMap, VecDeque};

use ledger::apply::BatchWrite;
use ledger::journal::JournalHead;
use ledger::model::{Account, AccountLayout, Hold, HoldState, Record, Transfer};
use ledger::port::ReferenceData;
use ledger::{AccountId, BatchSeq, Timestamp, TransferId};

/// One batch's ids, kept until the projection holds the batch.
struct Unprojected {
    batch_seq: BatchSeq,
    transfers: Vec<TransferId>,
    resolved_holds: Vec<TransferId>,
}

#[derive(Default)]
pub struct State {
    pub head: JournalHead,
    pub reference: ReferenceData,
    pub accounts: HashMap<AccountId, Account>,
    /// Pending holds, and resolved ones the projection does not hold yet.
    pub holds: HashMap<TransferId, Hold>,
    /// Pending holds with a timeout, by when they expire.
    due: BTreeSet<(Timestamp, TransferId)>,
    /// Transfers the projection does not hold yet.
    pub transfers: HashMap<TransferId, Transfer>,
    /// Accounts opened with more than one row.
    pub layouts: HashMap<AccountId, AccountLayout>,
    unprojected: VecDeque<Unprojected>,
}

impl State {
    /// Adds an account row as loaded from the projection.
    pub fn load_account(&mut self, account: Account) {
        if !account.layout.is_plain() {
            self.layouts.insert(account.id, account.layout);
        }
        self.accounts.insert(account.id, account);
    }

    /// Adds a pending hold as loaded from the projection.
    pub fn load_hold(&mut self, hold: Hold) {
        if hold.state == HoldState::Pending {
            if let Some(at) = hold.expires_at {
                self.due.insert((at, hold.pending_id));
            }
        }
        self.holds.insert(hold.pending_id, hold);
    }

    /// Applies a durable batch.
    pub fn apply(&mut self, batch: &BatchWrite) {
        let mut transfers = Vec::new();
        for record in &batch.records {
            match record {
                Record::AssetDefined { asset, .. } => {
                    self.reference.assets.insert(asset.code(), *asset);
                }
                Record::ChartDefined { entry, .. } => {
                    self.reference.charts.insert(entry.code, entry.clone());
                }
                Record::Transfer(transfer) => {
                    transfers.push(transfer.id);
                    self.transfers.insert(transfer.id, transfer.clone());
                }
                Record::AccountOpened(_) | Record::AccountStatusSet { .. } => {}
            }
        }
        for account in batch.opened_accounts.iter().chain(&batch.updated_accounts) {
            if !account.layout.is_plain() {
                self.layouts.insert(account.id, account.layout);
            }
            self.accounts.insert(account.id, account.clone());
        }
        let mut resolved_holds = Vec::new();
        for hold in &batch.holds {
            if let Some(before) = self.holds.get(&hold.pending_id) {
                if let Some(at) = before.expires_at {
                    self.due.remove(&(at, before.pending_id));
                }
            }
            if hold.state == HoldState::Pending {
                if let Some(at) = hold.expires_at {
                    self.due.insert((at, hold.pending_id));
                }
            } else {
                resolved_holds.push(hold.pending_id);
            }
            self.holds.insert(hold.pending_id, *hold);
        }
        self.head = batch.head();
        self.unprojected.push_back(Unprojected {
            batch_seq: batch.header.batch_seq,
            transfers,
            resolved_holds,
        });
    }

    /// Forgets what the projection now holds, through batch `projected`.
    pub fn forget_projected(&mut self, projected: BatchSeq) {
        while self.unprojected.front().is_some_and(|batch| batch.batch_seq <= projected) {
            let Some(batch) = self.unprojected.pop_front() else { break };
            for id in batch.transfers {
                self.transfers.remove(&id);
            }
            for id in batch.resolved_holds {
                if self.holds.get(&id).is_some_and(|hold| hold.state != HoldState::Pending) {
                    self.holds.remove(&id);
                }
            }
        }
    }

    /// Up to `limit` pending holds due at `now`, earliest first.
    pub fn due_holds(&self, now: Timestamp, limit: usize) -> Vec<Hold> {
        self.due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| self.holds.get(id).copied())
            .take(limit)
            .collect()
    }

    /// Buffered accounts whose buffers hold posted credit not yet folded.
    pub fn buffered_with_credit(&self) -> Vec<AccountId> {
        let mut found: Vec<AccountId> = self
            .layouts
            .iter()
            .filter(|(_, layout)| matches!(layout, AccountLayout::Buffered { .. }))
            .filter(|(id, layout)| {
                layout.derived_rows().any(|row| {
                    self.accounts.get(&id.row(row)).is_some_and(|account| {
                        account.balances.credits_posted > account.balances.debits_posted
                    })
                })
            })
            .map(|(id, _)| *id)
            .collect();
        found.sort_unstable();
        found
    }

    /// Accounts with more than one row (rows themselves excluded).
    pub fn multi_row_layouts(&self) -> Vec<(AccountId, AccountLayout)> {
        let mut layouts: Vec<(AccountId, AccountLayout)> = self
            .layouts
            .iter()
            .filter(|(_, layout)| !layout.is_row())
            .map(|(id, layout)| (*id, *layout))
            .collect();
        layouts.sort_unstable_by_key(|(id, _)| *id);
        layouts
    }
}
