//! Applying a batch of commands to the state loaded for it. Pure: no I/O, no clock, no
//! randomness, so the same snapshot and commands always give the same records, and tests can
//! drive it directly.
//!
//! Posting optimisation (登账优化) happens here by construction: every transfer updates the
//! in-memory copy of its accounts, and the batch hands storage each touched account once,
//! with its final balances. A hot account costs one row write per batch, however many
//! transfers hit it.

use std::collections::{HashMap, HashSet};

use money::{Amount, Asset, AssetCode};

use crate::ids::{AccountId, BatchSeq, Seq, Timestamp, TransferId};
use crate::journal::{batch_hash, fingerprint, BatchHeader, JournalHead};
use crate::model::{
    Account, AccountLayout, AccountStatus, BalanceRule, Balances, BoundedText, BusinessCode,
    ChartCode, ChartEntry, Entry, Hold, HoldState, Movement, NewAccount, NewTransfer, Record, Side,
    Transfer, TransferAction, TransferKind,
};
use crate::rejection::{AccountRejection, TransferRejection};

/// The business code of the ledger's own movements between the rows of one account (sweeps
/// and folds).
pub const INTERNAL_BUSINESS_CODE: BusinessCode = BusinessCode(0);

/// One unit of work for the posting pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    DefineAsset(Asset),
    DefineChart(ChartEntry),
    OpenAccount(NewAccount),
    SetAccountStatus {
        account_id: AccountId,
        status: AccountStatus,
    },
    /// One transfer, or a linked group that commits all or nothing (a payment with a fee
    /// split is three legs in one group).
    Transfers(Vec<NewTransfer>),
    /// Move what a buffered account's buffers hold into its own row (the pipeline sends these
    /// itself; anyone may, it is idempotent and never fails on a buffered account).
    FoldBuffers {
        account_id: AccountId,
    },
}

/// A successful result, and whether this call created it (`false`: an idempotent replay or a
/// no-op, nothing was written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<T> {
    pub value: T,
    pub created: bool,
}

pub type TransferResult = Result<Applied<Transfer>, TransferRejection>;

/// The result of one [`Command`], in the same shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Asset(Result<Applied<Asset>, AccountRejection>),
    Chart(Result<Applied<ChartEntry>, AccountRejection>),
    Account(Result<Applied<Account>, AccountRejection>),
    Status(Result<Applied<AccountStatus>, AccountRejection>),
    Transfers(Vec<TransferResult>),
    /// What a fold moved into the account's own row (`created: false` when nothing).
    Fold(Result<Applied<Amount>, AccountRejection>),
}

/// What storage loaded (and, where it can, locked) for a batch.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub accounts: HashMap<AccountId, Account>,
    pub holds: HashMap<TransferId, Hold>,
    /// Existing transfers whose ids the batch uses.
    pub transfers: HashMap<TransferId, Transfer>,
    pub assets: HashMap<AssetCode, Asset>,
    pub charts: HashMap<ChartCode, ChartEntry>,
    /// Holds whose timeout has passed, to expire in this batch.
    pub due_holds: Vec<TransferId>,
    /// The layouts of accounts with more than one row that the batch names, whether or not
    /// their own row was loaded (a batch that only credits one locks just one of its rows).
    pub layouts: HashMap<AccountId, AccountLayout>,
}

/// Everything storage must write for one batch, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchWrite {
    pub header: BatchHeader,
    pub records: Vec<Record>,
    pub entries: Vec<Entry>,
    /// Accounts opened in this batch, with their balances as of the batch's end.
    pub opened_accounts: Vec<Account>,
    /// Existing accounts whose balances or status changed: each once, final state.
    pub updated_accounts: Vec<Account>,
    /// New and changed holds, each once, final state.
    pub holds: Vec<Hold>,
}

impl BatchWrite {
    pub fn head(&self) -> JournalHead {
        JournalHead {
            batch_seq: self.header.batch_seq,
            last_seq: Seq(self.header.first_seq.0 + u64::from(self.header.n_records) - 1),
            last_timestamp: self.header.timestamp,
            hash: self.header.hash,
        }
    }
}

/// The ids a batch of commands needs loaded, so storage can fetch them in a few queries.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub account_ids: Vec<AccountId>,
    pub transfer_ids: Vec<TransferId>,
    pub pending_ids: Vec<TransferId>,
    pub reference_data: bool,
    /// Accounts debited by a new transfer or hold (a layout decides which rows that locks).
    pub debited: HashSet<AccountId>,
    /// Accounts credited by a new transfer or hold.
    pub credited: HashSet<AccountId>,
    /// Accounts whose every row the batch needs: status changes and folds.
    pub all_rows: HashSet<AccountId>,
}

impl Needs {
    /// The physical rows to lock for account `id` with `layout`. A credit locks the one row
    /// `turn` picks; a debit locks every row of sub-accounts, or the own row of a buffered
    /// account; a status change or fold locks every row.
    pub fn rows(&self, id: AccountId, layout: AccountLayout, turn: u64) -> Vec<AccountId> {
        if layout.is_plain() {
            return vec![id];
        }
        let debited = self.debited.contains(&id);
        if self.all_rows.contains(&id)
            || (debited && matches!(layout, AccountLayout::SubAccounts { .. }))
        {
            return layout.row_ids(id).collect();
        }
        let mut rows = Vec::with_capacity(2);
        if debited {
            rows.push(id);
        }
        if self.credited.contains(&id) {
            rows.push(id.row(layout.credit_row(turn)));
        }
        rows
    }
}

/// The ids `commands` refer to, sorted and deduplicated (sorted ids are also the lock order).
pub fn needs<'a>(commands: impl IntoIterator<Item = &'a Command>) -> Needs {
    let mut needs = Needs::default();
    for command in commands {
        match command {
            Command::DefineAsset(_) | Command::DefineChart(_) => needs.reference_data = true,
            Command::OpenAccount(account) => {
                needs.reference_data = true;
                needs.account_ids.push(account.id);
                needs.all_rows.insert(account.id);
                // Its rows too: a re-open must see them, a first open must find them free.
                needs
                    .account_ids
                    .extend(account.layout.derived_rows().map(|row| account.id.row(row)));
            }
            Command::SetAccountStatus { account_id, .. } | Command::FoldBuffers { account_id } => {
                needs.account_ids.push(*account_id);
                needs.all_rows.insert(*account_id);
            }
            Command::Transfers(group) => {
                for transfer in group {
                    needs.transfer_ids.push(transfer.id);
                    match transfer.action {
                        TransferAction::Post(movement)
                        | TransferAction::Pending { movement, .. } => {
                            needs.account_ids.push(movement.debit_account_id);
                            needs.account_ids.push(movement.credit_account_id);
                            needs.debited.insert(movement.debit_account_id);
                            needs.credited.insert(movement.credit_account_id);
                        }
                        TransferAction::PostPending { pending_id, .. }
                        | TransferAction::VoidPending { pending_id } => {
                            needs.pending_ids.push(pending_id)
                        }
                    }
                }
            }
        }
    }
    for ids in [&mut needs.transfer_ids, &mut needs.pending_ids] {
        ids.sort_unstable();
        ids.dedup();
    }
    needs.account_ids.sort_unstable();
    needs.account_ids.dedup();
    needs
}

/// The id of the record that expires a hold: derived, so that two nodes expiring the same
/// hold write the same id, and the second is a duplicate rather than a second release.
pub fn expiry_transfer_id(pending_id: TransferId) -> TransferId {
    derived_transfer_id(b"qianbao.expire", &pending_id.to_bytes(), 0).unwrap_or(pending_id)
}

/// A transfer id in the reserved range (so no client can have used it), derived from what
/// the record is for, so that a retry or a second node derives the same one.
fn derived_transfer_id(tag: &[u8], base: &[u8; 16], detail: u64) -> Option<TransferId> {
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::new()
        .chain_update(tag)
        .chain_update(base)
        .chain_update(detail.to_be_bytes())
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    // Non-zero by construction: the reserved bit is set.
    TransferId::new(u128::from_be_bytes(raw) | TransferId::RESERVED_BIT).ok()
}

/// Applies `commands` to `snapshot` on top of `head` at time `now`. Returns one outcome per
/// command, and the write for storage (`None` when nothing changed).
pub fn apply_batch(
    snapshot: Snapshot,
    head: &JournalHead,
    now: Timestamp,
    commands: &[Command],
) -> (Vec<Outcome>, Option<BatchWrite>) {
    // Timestamps never go backwards, even if this node's clock is behind another's.
    let timestamp = Timestamp(now.0.max(head.last_timestamp.0.saturating_add(1)));
    let mut engine = Engine::new(snapshot, head.last_seq, timestamp);
    engine.expire_due_holds();
    let outcomes = commands.iter().map(|command| engine.apply(command)).collect();
    (outcomes, engine.finish(head))
}

enum Undo {
    Account(AccountId, Balances),
    Hold(TransferId, Option<Hold>),
    Transfer(TransferId),
}

struct Engine {
    snapshot: Snapshot,
    timestamp: Timestamp,
    last_seq: Seq,
    records: Vec<Record>,
    entries: Vec<Entry>,
    opened: Vec<AccountId>,
    touched_accounts: HashSet<AccountId>,
    touched_holds: HashSet<TransferId>,
    undo: Vec<Undo>,
}

impl Engine {
    fn new(snapshot: Snapshot, last_seq: Seq, timestamp: Timestamp) -> Engine {
        Engine {
            snapshot,
            timestamp,
            last_seq,
            records: Vec::new(),
            entries: Vec::new(),
            opened: Vec::new(),
            touched_accounts: HashSet::new(),
            touched_holds: HashSet::new(),
            undo: Vec::new(),
        }
    }

    fn next_seq(&mut self) -> Seq {
        self.last_seq = Seq(self.last_seq.0 + 1);
        self.last_seq
    }

    fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::DefineAsset(asset) => Outcome::Asset(self.define_asset(*asset)),
            Command::DefineChart(entry) => Outcome::Chart(self.define_chart(entry)),
            Command::OpenAccount(account) => Outcome::Account(self.open_account(account)),
            Command::SetAccountStatus { account_id, status } => {
                Outcome::Status(self.set_status(*account_id, *status))
            }
            Command::Transfers(group) => Outcome::Transfers(self.apply_group(group)),
            Command::FoldBuffers { account_id } => Outcome::Fold(self.fold(*account_id)),
        }
    }

    /// An account's layout: from its own row if loaded, else from what the pipeline knew.
    fn layout_of(&self, id: AccountId) -> AccountLayout {
        match self.snapshot.accounts.get(&id) {
            Some(account) => account.layout,
            None => self.snapshot.layouts.get(&id).copied().unwrap_or_default(),
        }
    }

    /// The loaded rows of `id` (its own first), for a layout of more than one row.
    fn loaded_rows(&self, id: AccountId, layout: AccountLayout) -> Vec<AccountId> {
        layout.row_ids(id).filter(|row| self.snapshot.accounts.contains_key(row)).collect()
    }

    /// The row a credit to `id` lands on: the one loaded row a credit may use.
    fn credit_row(&self, id: AccountId) -> AccountId {
        let layout = self.layout_of(id);
        let rows = self.loaded_rows(id, layout);
        let usable = |row: &&AccountId| match layout {
            AccountLayout::Buffered { .. } => **row != id,
            _ => true,
        };
        match layout {
            AccountLayout::Plain => id,
            // The pipeline loaded the row it picked (and for a debit of sub-accounts, all of
            // them: any will do, the last spreads credits best when only these are loaded).
            _ => rows.iter().rfind(usable).copied().unwrap_or(id),
        }
    }

    /// The row a debit of `amount` from `id` is served from. For sub-accounts: the row with
    /// the most available, topped up from the others by sweep transfers when it falls short
    /// (each sweep an ordinary transfer between two rows of the account, undone with the
    /// group if the debit still fails).
    fn debit_row(
        &mut self,
        id: AccountId,
        amount: Amount,
        request_id: TransferId,
    ) -> Result<AccountId, TransferRejection> {
        let layout = self.layout_of(id);
        let AccountLayout::SubAccounts { .. } = layout else { return Ok(id) };
        let available = |engine: &Engine, row: &AccountId| {
            engine.snapshot.accounts.get(row).map_or(i128::MIN, |a| a.balances.available_credit())
        };
        let mut rows = self.loaded_rows(id, layout);
        // Most available first; the own row wins ties, so an idle account debits one row.
        rows.sort_by_key(|row| std::cmp::Reverse(available(self, row)));
        let Some(&target) = rows.first() else {
            return Err(TransferRejection::DebitAccountNotFound);
        };
        let rule = self.snapshot.accounts.get(&target).map(|a| a.rule);
        if !matches!(rule, Some(BalanceRule::DebitsWithinCredits { .. })) {
            return Ok(target);
        }
        let mut short = i128::from(amount.minor()) - available(self, &target);
        for (source_index, source) in rows.iter().copied().enumerate().skip(1) {
            if short <= 0 {
                break;
            }
            let spare = available(self, &source);
            if spare <= 0 {
                break;
            }
            let moved = spare.min(short);
            let Ok(moved_minor) = u64::try_from(moved) else { break };
            let Some(moved) = Amount::new(moved_minor) else { break };
            let Some(sweep_id) =
                derived_transfer_id(b"qianbao.sweep", &request_id.to_bytes(), source_index as u64)
            else {
                break;
            };
            self.internal_transfer(sweep_id, source, target, moved)?;
            short -= i128::from(moved_minor);
        }
        Ok(target)
    }

    /// A movement between two rows of one account (a sweep or a fold): no limits to check
    /// beyond the source row's own, no status (a freeze must not trap a fold).
    fn internal_transfer(
        &mut self,
        id: TransferId,
        debit_row: AccountId,
        credit_row: AccountId,
        amount: Amount,
    ) -> Result<Transfer, TransferRejection> {
        let (Some(debit), Some(credit)) =
            (self.snapshot.accounts.get(&debit_row), self.snapshot.accounts.get(&credit_row))
        else {
            return Err(TransferRejection::DebitAccountNotFound);
        };
        let mut debit_after = debit.balances;
        let mut credit_after = credit.balances;
        debit_after.debits_posted = add(debit_after.debits_posted, amount)?;
        credit_after.credits_posted = add(credit_after.credits_posted, amount)?;
        check_debit_limit(&debit.rule, &debit_after)?;
        check_credit_limit(&credit.rule, &credit_after)?;
        let transfer = Transfer {
            id,
            kind: TransferKind::Posted,
            debit_account_id: debit_row,
            credit_account_id: credit_row,
            asset: debit.asset,
            amount,
            pending_id: None,
            expires_at: None,
            business_code: INTERNAL_BUSINESS_CODE,
            order_ref: Default::default(),
            seq: self.next_seq(),
            timestamp: self.timestamp,
            fingerprint: Default::default(),
        };
        self.commit_transfer(transfer, debit_after, credit_after)
    }

    /// Moves each buffer's posted net credit into the account's own row: one transfer per
    /// non-empty buffer, whose id is derived from the buffer and how much it had already
    /// folded, so a second node folding the same buffer derives the same id.
    fn fold(&mut self, id: AccountId) -> Result<Applied<Amount>, AccountRejection> {
        match self.snapshot.accounts.get(&id) {
            Some(account) if !account.layout.is_row() => {}
            _ => return Err(AccountRejection::AccountNotFound),
        }
        let layout = self.layout_of(id);
        let AccountLayout::Buffered { .. } = layout else {
            return Ok(Applied { value: Amount::ZERO, created: false });
        };
        let mut total = Amount::ZERO;
        for row in layout.derived_rows().map(|row| id.row(row)) {
            let Some(buffer) = self.snapshot.accounts.get(&row) else { continue };
            let net = buffer.balances.net_credit_posted();
            let folded = buffer.balances.debits_posted.minor();
            let (Some(net), Some(fold_id)) = (
                u64::try_from(net).ok().and_then(Amount::new),
                derived_transfer_id(b"qianbao.fold", &row.to_bytes(), folded),
            ) else {
                continue;
            };
            if net.is_zero() || self.snapshot.transfers.contains_key(&fold_id) {
                continue;
            }
            if self.internal_transfer(fold_id, row, id, net).is_ok() {
                total = total.checked_add(net).unwrap_or(total);
            }
        }
        Ok(Applied { value: total, created: !total.is_zero() })
    }

    fn define_asset(&mut self, asset: Asset) -> Result<Applied<Asset>, AccountRejection> {
        if let Some(existing) = self.snapshot.assets.get(&asset.code()) {
            return if *existing == asset {
                Ok(Applied { value: asset, created: false })
            } else {
                Err(AccountRejection::AssetExistsWithDifferentScale)
            };
        }
        let seq = self.next_seq();
        self.snapshot.assets.insert(asset.code(), asset);
        self.records.push(Record::AssetDefined { seq, asset });
        Ok(Applied { value: asset, created: true })
    }

    fn define_chart(
        &mut self,
        entry: &ChartEntry,
    ) -> Result<Applied<ChartEntry>, AccountRejection> {
        if let Some(existing) = self.snapshot.charts.get(&entry.code) {
            return if existing == entry {
                Ok(Applied { value: entry.clone(), created: false })
            } else {
                Err(AccountRejection::ChartExistsWithDifferentFields)
            };
        }
        let seq = self.next_seq();
        self.snapshot.charts.insert(entry.code, entry.clone());
        self.records.push(Record::ChartDefined { seq, entry: entry.clone() });
        Ok(Applied { value: entry.clone(), created: true })
    }

    fn open_account(&mut self, request: &NewAccount) -> Result<Applied<Account>, AccountRejection> {
        if let Some(existing) = self.snapshot.accounts.get(&request.id) {
            return if existing.matches(request) {
                Ok(Applied { value: existing.clone(), created: false })
            } else {
                Err(AccountRejection::IdExistsWithDifferentFields)
            };
        }
        if !self.snapshot.assets.contains_key(&request.asset) {
            return Err(AccountRejection::AssetNotFound);
        }
        if !self.snapshot.charts.contains_key(&request.chart_code) {
            return Err(AccountRejection::ChartCodeNotFound);
        }
        let simple_rule = matches!(request.rule, BalanceRule::Unbounded)
            || request.rule == BalanceRule::NO_OVERDRAFT;
        let rows_taken = request
            .layout
            .derived_rows()
            .any(|row| self.snapshot.accounts.contains_key(&request.id.row(row)));
        if !request.layout.is_valid() || (request.layout != AccountLayout::Plain && !simple_rule) {
            return Err(AccountRejection::LayoutInvalid);
        }
        if rows_taken {
            return Err(AccountRejection::IdExistsWithDifferentFields);
        }
        let account = Account {
            id: request.id,
            asset: request.asset,
            chart_code: request.chart_code,
            rule: request.rule,
            metadata: request.metadata.clone(),
            layout: request.layout,
            status: AccountStatus::Active,
            balances: Balances::default(),
            opened_seq: self.next_seq(),
            opened_at: self.timestamp,
        };
        self.snapshot.accounts.insert(account.id, account.clone());
        self.opened.push(account.id);
        self.records.push(Record::AccountOpened(account.clone()));
        for row in request.layout.derived_rows() {
            // A buffer only ever gives what it was credited; a sub-account row keeps the
            // account's own rule (no overdraft, or none at all).
            let rule = match request.layout {
                AccountLayout::Buffered { .. } => BalanceRule::NO_OVERDRAFT,
                _ => request.rule,
            };
            let metadata = BoundedText::new(format!("row {row} of account {}", request.id))
                .unwrap_or_default();
            let row_account = Account {
                id: request.id.row(row),
                rule,
                metadata,
                layout: AccountLayout::Row { of: request.id, row },
                opened_seq: self.next_seq(),
                ..account.clone()
            };
            self.snapshot.accounts.insert(row_account.id, row_account.clone());
            self.opened.push(row_account.id);
            self.records.push(Record::AccountOpened(row_account));
        }
        Ok(Applied { value: account, created: true })
    }

    fn set_status(
        &mut self,
        account_id: AccountId,
        status: AccountStatus,
    ) -> Result<Applied<AccountStatus>, AccountRejection> {
        let account = match self.snapshot.accounts.get(&account_id) {
            Some(account) if !account.layout.is_row() => account,
            _ => return Err(AccountRejection::AccountNotFound),
        };
        if account.status == status {
            return Ok(Applied { value: status, created: false });
        }
        if account.status == AccountStatus::Closed {
            return Err(AccountRejection::AccountClosed);
        }
        // An account with a layout changes status on every row (each row checks its own
        // status when it moves money) and closes only when every row is empty.
        let rows = self.loaded_rows(account_id, account.layout);
        if status == AccountStatus::Closed
            && rows
                .iter()
                .any(|row| self.snapshot.accounts.get(row).is_some_and(|a| !a.balances.is_zero()))
        {
            return Err(AccountRejection::BalanceNotZero);
        }
        for row in rows {
            if let Some(account) = self.snapshot.accounts.get_mut(&row) {
                account.status = status;
                self.touched_accounts.insert(row);
                let seq = self.next_seq();
                self.records.push(Record::AccountStatusSet { seq, account_id: row, status });
            }
        }
        Ok(Applied { value: status, created: true })
    }

    fn expire_due_holds(&mut self) {
        let due = std::mem::take(&mut self.snapshot.due_holds);
        for pending_id in due {
            self.expire_if_due(pending_id);
        }
    }

    /// Writes the expiry of a pending hold whose timeout has passed (nothing otherwise).
    fn expire_if_due(&mut self, pending_id: TransferId) {
        let Some(hold) = self.snapshot.holds.get(&pending_id).copied() else { return };
        let expired = hold.expires_at.is_some_and(|at| at <= self.timestamp);
        if hold.state != HoldState::Pending || !expired {
            return;
        }
        let id = expiry_transfer_id(pending_id);
        if self.snapshot.transfers.contains_key(&id) {
            return;
        }
        // Releasing a hold only lowers pending balances: it cannot fail.
        let _ = self.release_hold(
            id,
            hold,
            TransferKind::ExpirePending,
            hold.business_code,
            Default::default(),
            Default::default(),
        );
    }

    /// Applies a linked group: all transfers or none. The first failure keeps its own reason;
    /// the others report `LinkedTransferFailed`.
    fn apply_group(&mut self, group: &[NewTransfer]) -> Vec<TransferResult> {
        // A hold the group posts or voids after its timeout is released first, whatever
        // becomes of the group: the money is free as soon as anyone notices, not at the next
        // expiry scan. (The post or void itself is still refused as expired.)
        for request in group {
            if let TransferAction::PostPending { pending_id, .. }
            | TransferAction::VoidPending { pending_id } = request.action
            {
                self.expire_if_due(pending_id);
            }
        }
        let records_mark = self.records.len();
        let entries_mark = self.entries.len();
        let seq_mark = self.last_seq;
        self.undo.clear();
        let mut results = Vec::with_capacity(group.len());
        for (index, request) in group.iter().enumerate() {
            match self.apply_transfer(request) {
                Ok(applied) => results.push(Ok(applied)),
                Err(rejection) => {
                    self.rollback(records_mark, entries_mark, seq_mark);
                    let mut failed: Vec<TransferResult> =
                        vec![Err(TransferRejection::LinkedTransferFailed); group.len()];
                    failed[index] = Err(rejection);
                    return failed;
                }
            }
        }
        results
    }

    fn rollback(&mut self, records_mark: usize, entries_mark: usize, seq_mark: Seq) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Account(id, balances) => {
                    if let Some(account) = self.snapshot.accounts.get_mut(&id) {
                        account.balances = balances;
                    }
                }
                Undo::Hold(id, Some(hold)) => {
                    self.snapshot.holds.insert(id, hold);
                }
                Undo::Hold(id, None) => {
                    self.snapshot.holds.remove(&id);
                }
                Undo::Transfer(id) => {
                    self.snapshot.transfers.remove(&id);
                }
            }
        }
        self.records.truncate(records_mark);
        self.entries.truncate(entries_mark);
        self.last_seq = seq_mark;
    }

    fn apply_transfer(&mut self, request: &NewTransfer) -> TransferResult {
        if request.id.is_reserved() {
            return Err(TransferRejection::IdReserved);
        }
        let print = fingerprint(request);
        if let Some(existing) = self.snapshot.transfers.get(&request.id) {
            return if existing.fingerprint == print {
                Ok(Applied { value: existing.clone(), created: false })
            } else {
                Err(TransferRejection::IdExistsWithDifferentFields)
            };
        }
        let transfer = match request.action {
            TransferAction::Post(movement) => {
                self.move_money(request, movement, TransferKind::Posted, None, print)?
            }
            TransferAction::Pending { movement, timeout_secs } => {
                let expires_at = timeout_secs.map(|secs| self.timestamp.plus_secs(secs));
                self.move_money(request, movement, TransferKind::Pending, expires_at, print)?
            }
            TransferAction::PostPending { pending_id, amount } => {
                self.post_pending(request, pending_id, amount, print)?
            }
            TransferAction::VoidPending { pending_id } => {
                let hold = self.live_hold(pending_id)?;
                self.release_hold(
                    request.id,
                    hold,
                    TransferKind::VoidPending,
                    request.business_code,
                    request.order_ref.clone(),
                    print,
                )?
            }
        };
        Ok(Applied { value: transfer, created: true })
    }

    /// A posted transfer or a new hold.
    fn move_money(
        &mut self,
        request: &NewTransfer,
        movement: Movement,
        kind: TransferKind,
        expires_at: Option<Timestamp>,
        print: crate::model::Fingerprint,
    ) -> Result<Transfer, TransferRejection> {
        use TransferRejection as R;
        if movement.debit_account_id == movement.credit_account_id {
            return Err(R::AccountsMustDiffer);
        }
        if movement.amount.is_zero() {
            return Err(R::AmountMustNotBeZero);
        }
        // Rows of a layout are the ledger's own: a client names the account, never a row
        // (else it could spend a buffer before it is folded).
        let is_row =
            |id| self.snapshot.accounts.get(&id).is_some_and(|a: &Account| a.layout.is_row());
        if is_row(movement.debit_account_id) {
            return Err(R::DebitAccountNotFound);
        }
        if is_row(movement.credit_account_id) {
            return Err(R::CreditAccountNotFound);
        }
        let credit_row = self.credit_row(movement.credit_account_id);
        // A sweep made here for a debit that then fails is undone with the group.
        let debit_row = self.debit_row(movement.debit_account_id, movement.amount, request.id)?;
        let debit = self.snapshot.accounts.get(&debit_row).ok_or(R::DebitAccountNotFound)?;
        let credit = self.snapshot.accounts.get(&credit_row).ok_or(R::CreditAccountNotFound)?;
        if debit.asset != movement.asset || credit.asset != movement.asset {
            return Err(R::AssetMismatch);
        }
        match debit.status {
            AccountStatus::Active => {}
            AccountStatus::FrozenDebits => return Err(R::DebitAccountFrozen),
            AccountStatus::Closed => return Err(R::DebitAccountClosed),
        }
        if credit.status == AccountStatus::Closed {
            return Err(R::CreditAccountClosed);
        }
        let amount = movement.amount;
        let pending = kind == TransferKind::Pending;
        let mut debit_after = debit.balances;
        let mut credit_after = credit.balances;
        if pending {
            debit_after.debits_pending = add(debit_after.debits_pending, amount)?;
            credit_after.credits_pending = add(credit_after.credits_pending, amount)?;
        } else {
            debit_after.debits_posted = add(debit_after.debits_posted, amount)?;
            credit_after.credits_posted = add(credit_after.credits_posted, amount)?;
        }
        check_debit_limit(&debit.rule, &debit_after)?;
        check_credit_limit(&credit.rule, &credit_after)?;

        // The journal names the rows that moved, so replaying it needs no routing.
        let movement =
            Movement { debit_account_id: debit_row, credit_account_id: credit_row, ..movement };
        let transfer = Transfer {
            id: request.id,
            kind,
            debit_account_id: movement.debit_account_id,
            credit_account_id: movement.credit_account_id,
            asset: movement.asset,
            amount,
            pending_id: None,
            expires_at,
            business_code: request.business_code,
            order_ref: request.order_ref.clone(),
            seq: self.next_seq(),
            timestamp: self.timestamp,
            fingerprint: print,
        };
        if pending {
            let hold = Hold {
                pending_id: request.id,
                movement,
                expires_at,
                state: HoldState::Pending,
                business_code: request.business_code,
            };
            self.set_hold(hold);
        }
        self.commit_transfer(transfer, debit_after, credit_after)
    }

    fn live_hold(&self, pending_id: TransferId) -> Result<Hold, TransferRejection> {
        let hold =
            self.snapshot.holds.get(&pending_id).ok_or(TransferRejection::PendingNotFound)?;
        match hold.state {
            HoldState::Pending if hold.expires_at.is_some_and(|at| at <= self.timestamp) => {
                Err(TransferRejection::PendingExpired)
            }
            HoldState::Pending => Ok(*hold),
            HoldState::Posted => Err(TransferRejection::PendingAlreadyPosted),
            HoldState::Voided => Err(TransferRejection::PendingAlreadyVoided),
            HoldState::Expired => Err(TransferRejection::PendingExpired),
        }
    }

    fn post_pending(
        &mut self,
        request: &NewTransfer,
        pending_id: TransferId,
        amount: Option<Amount>,
        print: crate::model::Fingerprint,
    ) -> Result<Transfer, TransferRejection> {
        use TransferRejection as R;
        let hold = self.live_hold(pending_id)?;
        let held = hold.movement.amount;
        let amount = amount.unwrap_or(held);
        if amount.is_zero() {
            return Err(R::AmountMustNotBeZero);
        }
        if amount > held {
            return Err(R::ExceedsPendingAmount);
        }
        let (debit, credit) = self.hold_accounts(&hold)?;
        if debit.status == AccountStatus::FrozenDebits {
            return Err(R::DebitAccountFrozen);
        }
        let mut debit_after = debit.balances;
        let mut credit_after = credit.balances;
        debit_after.debits_pending = sub(debit_after.debits_pending, held)?;
        debit_after.debits_posted = add(debit_after.debits_posted, amount)?;
        credit_after.credits_pending = sub(credit_after.credits_pending, held)?;
        credit_after.credits_posted = add(credit_after.credits_posted, amount)?;

        let transfer = Transfer {
            id: request.id,
            kind: TransferKind::PostPending,
            debit_account_id: hold.movement.debit_account_id,
            credit_account_id: hold.movement.credit_account_id,
            asset: hold.movement.asset,
            amount,
            pending_id: Some(pending_id),
            expires_at: None,
            business_code: request.business_code,
            order_ref: request.order_ref.clone(),
            seq: self.next_seq(),
            timestamp: self.timestamp,
            fingerprint: print,
        };
        self.set_hold(Hold { state: HoldState::Posted, ..hold });
        self.commit_transfer(transfer, debit_after, credit_after)
    }

    /// Void or expiry: the held amount leaves both pending balances.
    fn release_hold(
        &mut self,
        id: TransferId,
        hold: Hold,
        kind: TransferKind,
        business_code: crate::model::BusinessCode,
        order_ref: crate::model::BoundedText<{ crate::model::ORDER_REF_LEN_MAX }>,
        print: crate::model::Fingerprint,
    ) -> Result<Transfer, TransferRejection> {
        let held = hold.movement.amount;
        let (debit, credit) = self.hold_accounts(&hold)?;
        let mut debit_after = debit.balances;
        let mut credit_after = credit.balances;
        debit_after.debits_pending = sub(debit_after.debits_pending, held)?;
        credit_after.credits_pending = sub(credit_after.credits_pending, held)?;
        let transfer = Transfer {
            id,
            kind,
            debit_account_id: hold.movement.debit_account_id,
            credit_account_id: hold.movement.credit_account_id,
            asset: hold.movement.asset,
            amount: held,
            pending_id: Some(hold.pending_id),
            expires_at: None,
            business_code,
            order_ref,
            seq: self.next_seq(),
            timestamp: self.timestamp,
            fingerprint: print,
        };
        let state = if kind == TransferKind::ExpirePending {
            HoldState::Expired
        } else {
            HoldState::Voided
        };
        self.set_hold(Hold { state, ..hold });
        self.commit_transfer(transfer, debit_after, credit_after)
    }

    fn hold_accounts(&self, hold: &Hold) -> Result<(&Account, &Account), TransferRejection> {
        // Storage loads a hold's accounts with the hold; a missing one is a broken store.
        let debit = self.snapshot.accounts.get(&hold.movement.debit_account_id);
        let credit = self.snapshot.accounts.get(&hold.movement.credit_account_id);
        match (debit, credit) {
            (Some(debit), Some(credit)) => Ok((debit, credit)),
            (None, _) => Err(TransferRejection::DebitAccountNotFound),
            (_, None) => Err(TransferRejection::CreditAccountNotFound),
        }
    }

    fn set_hold(&mut self, hold: Hold) {
        let previous = self.snapshot.holds.insert(hold.pending_id, hold);
        self.undo.push(Undo::Hold(hold.pending_id, previous));
        self.touched_holds.insert(hold.pending_id);
    }

    fn commit_transfer(
        &mut self,
        transfer: Transfer,
        debit_after: Balances,
        credit_after: Balances,
    ) -> Result<Transfer, TransferRejection> {
        for (account_id, side, after) in [
            (transfer.debit_account_id, Side::Debit, debit_after),
            (transfer.credit_account_id, Side::Credit, credit_after),
        ] {
            if let Some(account) = self.snapshot.accounts.get_mut(&account_id) {
                self.undo.push(Undo::Account(account_id, account.balances));
                account.balances = after;
                self.touched_accounts.insert(account_id);
            }
            self.entries.push(Entry {
                account_id,
                seq: transfer.seq,
                transfer_id: transfer.id,
                side,
                amount: transfer.amount,
                balances_after: after,
            });
        }
        self.undo.push(Undo::Transfer(transfer.id));
        self.snapshot.transfers.insert(transfer.id, transfer.clone());
        self.records.push(Record::Transfer(transfer.clone()));
        Ok(transfer)
    }

    fn finish(mut self, head: &JournalHead) -> Option<BatchWrite> {
        if self.records.is_empty() {
            return None;
        }
        let batch_seq = BatchSeq(head.batch_seq.0 + 1);
        let first_seq = Seq(head.last_seq.0 + 1);
        let hash = batch_hash(batch_seq, first_seq, self.timestamp, &head.hash, &self.records);
        let opened: HashSet<AccountId> = self.opened.iter().copied().collect();
        let opened_accounts =
            self.opened.iter().filter_map(|id| self.snapshot.accounts.get(id).cloned()).collect();
        let mut updated_ids: Vec<AccountId> =
            self.touched_accounts.iter().filter(|id| !opened.contains(id)).copied().collect();
        updated_ids.sort_unstable();
        let updated_accounts =
            updated_ids.iter().filter_map(|id| self.snapshot.accounts.get(id).cloned()).collect();
        let mut hold_ids: Vec<TransferId> = self.touched_holds.drain().collect();
        hold_ids.sort_unstable();
        let holds = hold_ids.iter().filter_map(|id| self.snapshot.holds.get(id).copied()).collect();
        Some(BatchWrite {
            header: BatchHeader {
                batch_seq,
                first_seq,
                n_records: self.records.len() as u32,
                timestamp: self.timestamp,
                prev_hash: head.hash,
                hash,
            },
            records: self.records,
            entries: self.entries,
            opened_accounts,
            updated_accounts,
            holds,
        })
    }
}

fn add(balance: Amount, amount: Amount) -> Result<Amount, TransferRejection> {
    balance.checked_add(amount).ok_or(TransferRejection::OverflowsBalance)
}

/// Releasing more than is pending means the store is inconsistent: crash rather than write.
fn sub(balance: Amount, amount: Amount) -> Result<Amount, TransferRejection> {
    let result = balance.checked_sub(amount);
    assert!(result.is_some(), "pending balance {balance} is below a live hold of {amount}");
    result.ok_or(TransferRejection::OverflowsBalance)
}

fn check_debit_limit(rule: &BalanceRule, after: &Balances) -> Result<(), TransferRejection> {
    if let BalanceRule::DebitsWithinCredits { overdraft_minor } = rule {
        let debits =
            u128::from(after.debits_posted.minor()) + u128::from(after.debits_pending.minor());
        let ceiling =
            u128::from(after.credits_posted.minor()) + u128::from(overdraft_minor.minor());
        if debits > ceiling {
            return Err(TransferRejection::ExceedsCredits);
        }
    }
    Ok(())
}

fn check_credit_limit(rule: &BalanceRule, after: &Balances) -> Result<(), TransferRejection> {
    if let BalanceRule::CreditsWithinDebits { limit_minor } = rule {
        let credits =
            u128::from(after.credits_posted.minor()) + u128::from(after.credits_pending.minor());
        let ceiling = u128::from(after.debits_posted.minor()) + u128::from(limit_minor.minor());
        if credits > ceiling {
            return Err(TransferRejection::ExceedsDebits);
        }
    }
    Ok(())
}
