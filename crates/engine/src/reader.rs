//! Reads on the engine. What memory holds exactly is answered from memory at once: account
//! rows, pending holds, the head, and transfers and holds the projection lacks. Everything
//! else — history, as-of balances, the trial balance, the journal's records, pages of
//! accounts and holds — is answered by the projection once it holds every batch that was
//! durable when the read began, so a read never misses a write acknowledged before it.

use std::sync::Arc;
use std::time::Duration;

use ledger::ids::BatchSeq;
use ledger::journal::{BatchHeader, JournalHead};
use ledger::model::{Account, Entry, Hold, Record, Transfer};
use ledger::port::{LedgerReader, Page, StoreError, TrialBalanceLine};
use ledger::{AccountId, Seq, Timestamp, TransferId};

use crate::engine::Shared;

pub struct EngineReader {
    shared: Arc<Shared>,
    wait: Duration,
}

impl EngineReader {
    pub(crate) fn new(shared: Arc<Shared>, wait_ms: u64) -> EngineReader {
        EngineReader { shared, wait: Duration::from_millis(wait_ms) }
    }

    /// The projection, once it holds every batch durable now.
    fn caught_up(&self) -> Result<&dyn LedgerReader, StoreError> {
        let durable = self.shared.state.read().head.batch_seq;
        self.shared.wait_projected(durable, self.wait)?;
        Ok(&*self.shared.projection)
    }

    /// The projection, once it holds record `seq` and every one before it: enough for a read
    /// of the books as of `seq`, which no later batch changes. A day close reads every
    /// account as of the day's end; under load it must not wait for the head each time.
    fn through(&self, seq: Seq) -> Result<&dyn LedgerReader, StoreError> {
        // Past the head: "as of now", which is every durable batch.
        let head = self.shared.state.read().head;
        let seq = seq.min(head.last_seq);
        self.shared.wait_projected_seq(seq, self.wait)?;
        Ok(&*self.shared.projection)
    }
}

impl LedgerReader for EngineReader {
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.shared.state.read().accounts.get(&id).cloned())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        if let Some(transfer) = self.shared.state.read().transfers.get(&id) {
            return Ok(Some(transfer.clone()));
        }
        // Forgotten by memory only once the projection holds it.
        self.shared.projection.transfer(id)
    }

    fn hold(&self, pending_id: TransferId) -> Result<Option<Hold>, StoreError> {
        if let Some(hold) = self.shared.state.read().holds.get(&pending_id) {
            return Ok(Some(*hold));
        }
        self.shared.projection.hold(pending_id)
    }

    fn entries(&self, account_id: AccountId, page: Page<Seq>) -> Result<Vec<Entry>, StoreError> {
        self.caught_up()?.entries(account_id, page)
    }

    fn entry_as_of(&self, account_id: AccountId, seq: Seq) -> Result<Option<Entry>, StoreError> {
        self.through(seq)?.entry_as_of(account_id, seq)
    }

    fn seq_at(&self, at: Timestamp) -> Result<Seq, StoreError> {
        self.caught_up()?.seq_at(at)
    }

    fn trial_balance(&self) -> Result<Vec<TrialBalanceLine>, StoreError> {
        self.caught_up()?.trial_balance()
    }

    fn head(&self) -> Result<JournalHead, StoreError> {
        // A journal that failed makes the node unready (`/readyz` reads the head).
        self.shared.check_usable()?;
        Ok(self.shared.state.read().head)
    }

    fn batches(&self, page: Page<BatchSeq>) -> Result<Vec<BatchHeader>, StoreError> {
        self.caught_up()?.batches(page)
    }

    fn records(&self, first: Seq, last: Seq) -> Result<(Vec<Record>, Vec<Entry>), StoreError> {
        self.through(last)?.records(first, last)
    }

    fn accounts(&self, page: Page<AccountId>) -> Result<Vec<Account>, StoreError> {
        self.caught_up()?.accounts(page)
    }

    fn pending_holds(&self, page: Page<TransferId>) -> Result<Vec<Hold>, StoreError> {
        self.caught_up()?.pending_holds(page)
    }

    fn accounts_at_once(&self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let state = self.shared.state.read();
        Ok(ids.iter().filter_map(|id| state.accounts.get(id).cloned()).collect())
    }
}
