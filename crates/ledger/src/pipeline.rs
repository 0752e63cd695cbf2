//! The posting pipeline: the one way writes reach the books.
//!
//! Callers enqueue requests on a bounded queue. One writer thread takes whatever is waiting
//! (natural batching: a lone request is taken at once, there is no timer to fill a batch),
//! loads and locks what the batch touches, applies it in memory, and commits it in one
//! storage transaction. Only after the commit is durable are the callers answered.
//!
//! Why a dedicated thread rather than a task: the store clients are synchronous and the
//! commit blocks on fsync; a thread keeps that off the async runtime and makes the single
//! writer explicit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::apply::{apply_batch, needs, Applied, Command, Outcome, Snapshot, TransferResult};
use crate::ids::AccountId;
use crate::ids::Clock;
use crate::metrics::Histogram;
use crate::model::{Account, AccountLayout, NewTransfer};
use crate::port::{LedgerStore, LedgerTx, StoreError};
use crate::rejection::AccountRejection;

/// Bounds and intervals of the pipeline. Every queue and batch has a named limit.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Requests waiting for the writer; senders wait (or `try_execute` fails) beyond it.
    pub queue_depth_max: usize,
    /// Commands per batch (a linked group counts its transfers). Also the largest request.
    pub batch_commands_max: usize,
    /// How often an idle writer looks for expired holds.
    pub expiry_poll_interval_ms: u64,
    /// Holds expired per batch at most.
    pub expiry_batch_max: usize,
    /// Whole-batch retries after a conflict with another writer.
    pub conflict_retries_max: u32,
    /// How long a credit may wait in a buffered account's buffer before the writer folds it
    /// into the account's own row (缓冲记账).
    pub fold_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            queue_depth_max: 16_384,
            batch_commands_max: 8_190,
            expiry_poll_interval_ms: 1_000,
            expiry_batch_max: 1_024,
            conflict_retries_max: 16,
            fold_interval_ms: 100,
        }
    }
}

/// An operating failure of the pipeline. Rejections of individual commands are in the
/// [`Outcome`]s, never here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the ledger is shutting down")]
    ShuttingDown,
    #[error("the posting queue is full")]
    Overloaded,
    #[error("request has {n_commands} commands, more than the limit of {limit}")]
    RequestTooLarge { n_commands: usize, limit: usize },
}

/// Counters and histograms of the pipeline, readable while it runs.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    pub batches_committed: AtomicU64,
    pub records_committed: AtomicU64,
    pub batch_conflicts: AtomicU64,
    pub batch_failures: AtomicU64,
    pub queue_depth: AtomicU64,
    pub batch_commands: Histogram,
    pub commit_latency_us: Histogram,
}

type Answer = oneshot::Receiver<Result<Vec<Outcome>, LedgerError>>;

struct Request {
    commands: Vec<Command>,
    reply: oneshot::Sender<Result<Vec<Outcome>, LedgerError>>,
}

impl Request {
    fn weight(&self) -> usize {
        self.commands.iter().map(command_weight).sum()
    }
}

fn command_weight(command: &Command) -> usize {
    match command {
        Command::Transfers(group) => group.len().max(1),
        _ => 1,
    }
}

/// A cheap, cloneable way to submit to a running pipeline.
#[derive(Clone)]
pub struct LedgerHandle {
    sender: mpsc::Sender<Request>,
    stopping: Arc<AtomicBool>,
    metrics: Arc<PipelineMetrics>,
    batch_commands_max: usize,
}

/// The running pipeline. Dropping it without [`Ledger::shutdown`] also stops the writer
/// once every queued request is answered.
pub struct Ledger {
    handle: LedgerHandle,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Ledger {
    /// Starts the writer thread on `store`.
    pub fn start<S: LedgerStore>(
        store: S,
        clock: Arc<dyn Clock>,
        config: PipelineConfig,
    ) -> Ledger {
        let (sender, receiver) = mpsc::channel(config.queue_depth_max.max(1));
        let metrics = Arc::new(PipelineMetrics::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = LedgerHandle {
            sender,
            stopping: stopping.clone(),
            metrics: metrics.clone(),
            batch_commands_max: config.batch_commands_max,
        };
        let writer = Writer {
            store,
            clock,
            config,
            receiver,
            metrics,
            stopping,
            carry: None,
            next_expiry_scan: crate::ids::Timestamp(0),
            layouts: HashMap::new(),
            unfolded: HashSet::new(),
            next_fold_at: Instant::now(),
            next_buffer_scan: Instant::now(),
            // Different on every node (process id and start time: containers all have pid
            // 1), so two writers rotate over an account's rows out of step.
            turn: start_turn(),
        };
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .expect("spawning the ledger writer thread");
        Ledger { handle, writer: Some(thread) }
    }

    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Stops accepting requests, answers every queued one, and waits for the writer.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.stopping.store(true, Ordering::SeqCst);
        // Wake an idle writer so it notices.
        let (reply, _) = oneshot::channel();
        let _ = self.handle.sender.try_send(Request { commands: Vec::new(), reply });
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LedgerHandle {
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.metrics
    }

    /// Applies `commands` in one batch (possibly with other callers' commands) and returns
    /// one outcome per command once the batch is durable.
    pub async fn execute(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, LedgerError> {
        let (request, answer) = self.request(commands)?;
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(request).await.is_err() {
            self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(LedgerError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(LedgerError::ShuttingDown))
    }

    /// Like [`LedgerHandle::execute`], but fails at once with `Overloaded` when the queue is
    /// full, for callers that shed load instead of waiting.
    pub async fn try_execute(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, LedgerError> {
        let (request, answer) = self.request(commands)?;
        match self.sender.try_send(request) {
            Ok(()) => self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(_)) => return Err(LedgerError::Overloaded),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LedgerError::ShuttingDown),
        };
        answer.await.unwrap_or(Err(LedgerError::ShuttingDown))
    }

    /// For synchronous callers (tools, tests). Must not be called from an async task.
    pub fn execute_blocking(&self, commands: Vec<Command>) -> Result<Vec<Outcome>, LedgerError> {
        let (request, answer) = self.request(commands)?;
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.sender.blocking_send(request).is_err() {
            self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(LedgerError::ShuttingDown);
        }
        answer.blocking_recv().unwrap_or(Err(LedgerError::ShuttingDown))
    }

    /// How full the queue is, from 0.0 to 1.0, for readiness checks.
    pub fn queue_fill(&self) -> f32 {
        let max = self.sender.max_capacity() as f32;
        #[allow(clippy::float_arithmetic)]
        let fill = (max - self.sender.capacity() as f32) / max;
        fill
    }

    fn request(&self, commands: Vec<Command>) -> Result<(Request, Answer), LedgerError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(LedgerError::ShuttingDown);
        }
        let weight: usize = commands.iter().map(command_weight).sum();
        if weight > self.batch_commands_max {
            return Err(LedgerError::RequestTooLarge {
                n_commands: weight,
                limit: self.batch_commands_max,
            });
        }
        let (reply, answer) = oneshot::channel();
        Ok((Request { commands, reply }, answer))
    }

    /// One transfer (a group of one).
    pub async fn transfer(&self, transfer: NewTransfer) -> Result<TransferResult, LedgerError> {
        let outcomes = self.execute(vec![Command::Transfers(vec![transfer])]).await?;
        Ok(single_transfer(outcomes))
    }

    pub fn transfer_blocking(&self, transfer: NewTransfer) -> Result<TransferResult, LedgerError> {
        let outcomes = self.execute_blocking(vec![Command::Transfers(vec![transfer])])?;
        Ok(single_transfer(outcomes))
    }

    pub async fn open_account(
        &self,
        account: crate::model::NewAccount,
    ) -> Result<Result<Applied<Account>, AccountRejection>, LedgerError> {
        let outcomes = self.execute(vec![Command::OpenAccount(account)]).await?;
        match outcomes.into_iter().next() {
            Some(Outcome::Account(result)) => Ok(result),
            _ => unreachable!("one OpenAccount command yields one Account outcome"),
        }
    }
}

fn single_transfer(outcomes: Vec<Outcome>) -> TransferResult {
    match outcomes.into_iter().next() {
        Some(Outcome::Transfers(mut results)) if results.len() == 1 => {
            results.pop().unwrap_or_else(|| unreachable!())
        }
        _ => unreachable!("a group of one transfer yields one result"),
    }
}

/// Folds per batch at most; more wait for the next fold interval.
const FOLDS_PER_BATCH_MAX: usize = 256;
/// Storage is searched for buffers holding credit every this many fold intervals.
const BUFFER_SCAN_EVERY: u32 = 10;

fn start_turn() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    (u64::from(std::process::id()) << 32 ^ u64::from(nanos)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct Writer<S: LedgerStore> {
    store: S,
    clock: Arc<dyn Clock>,
    config: PipelineConfig,
    receiver: mpsc::Receiver<Request>,
    metrics: Arc<PipelineMetrics>,
    stopping: Arc<AtomicBool>,
    /// A request taken from the queue that did not fit the previous batch.
    carry: Option<Request>,
    /// When the next batch should look for expired holds. Scanning on every batch would cost
    /// a round trip per batch; correctness does not depend on it, because posting or voiding
    /// a hold past its timeout is rejected whether or not the expiry has been written yet.
    next_expiry_scan: crate::ids::Timestamp,
    /// Accounts known to have more than one row. A layout never changes once the account is
    /// open, so this cache cannot go stale; an account it misses is found when its own row
    /// is loaded, and that batch is run again with the right rows locked.
    layouts: HashMap<AccountId, AccountLayout>,
    /// Buffered accounts whose buffers may hold credits to fold.
    unfolded: HashSet<AccountId>,
    next_fold_at: Instant,
    /// When the writer next looks in storage for buffers holding credit.
    next_buffer_scan: Instant,
    /// Picks the row a credit to a multi-row account locks; advances every batch.
    turn: u64,
}

impl<S: LedgerStore> Writer<S> {
    fn run(mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("building the writer's timer runtime");
        let expiry_poll = Duration::from_millis(self.config.expiry_poll_interval_ms.max(1));
        let fold_interval = Duration::from_millis(self.config.fold_interval_ms.max(1));
        self.load_layouts();
        loop {
            let now = Instant::now();
            let mut poll = expiry_poll.min(self.next_buffer_scan.saturating_duration_since(now));
            if !self.unfolded.is_empty() {
                poll = poll.min(self.next_fold_at.saturating_duration_since(now));
            }
            let mut batch = Vec::new();
            let mut weight = 0;
            if let Some(request) = self.carry.take() {
                weight += request.weight();
                batch.push(request);
            } else {
                let receiver = &mut self.receiver;
                match runtime.block_on(async { tokio::time::timeout(poll, receiver.recv()).await })
                {
                    Ok(Some(request)) => {
                        weight += request.weight();
                        batch.push(request);
                    }
                    Ok(None) => return,
                    Err(_elapsed) => {}
                }
            }
            while weight < self.config.batch_commands_max {
                let Ok(request) = self.receiver.try_recv() else { break };
                if weight + request.weight() > self.config.batch_commands_max {
                    self.carry = Some(request);
                    break;
                }
                weight += request.weight();
                batch.push(request);
            }
            self.metrics.queue_depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            batch.retain(|request| !request.commands.is_empty() || !request.reply.is_closed());
            if Instant::now() >= self.next_buffer_scan {
                // Buffers another node credited and never folded (it may have died), or a
                // fold that failed here: found in storage, so no credit waits forever.
                self.next_buffer_scan = Instant::now() + fold_interval * BUFFER_SCAN_EVERY;
                match self.store.begin().and_then(|mut tx| tx.buffered_with_credit()) {
                    Ok(accounts) => self.unfolded.extend(accounts),
                    Err(error) => tracing::warn!(%error, "could not look for unfolded buffers"),
                }
            }
            let mut folding = Vec::new();
            if !self.unfolded.is_empty() && Instant::now() >= self.next_fold_at {
                self.next_fold_at = Instant::now() + fold_interval;
                let mut waiting: Vec<AccountId> = self.unfolded.drain().collect();
                waiting.sort_unstable();
                // A bounded share of the batch; the rest wait for the next interval.
                let rest = waiting.split_off(waiting.len().min(FOLDS_PER_BATCH_MAX));
                self.unfolded.extend(rest);
                folding = waiting;
                let commands = folding
                    .iter()
                    .map(|account_id| Command::FoldBuffers { account_id: *account_id })
                    .collect();
                // Nobody waits for the answer; a batch that fails marks them again below.
                let (reply, _) = oneshot::channel();
                batch.push(Request { commands, reply });
            }
            if !self.process(batch) {
                self.unfolded.extend(folding);
            }
            if self.stopping.load(Ordering::SeqCst)
                && self.carry.is_none()
                && self.receiver.is_empty()
            {
                self.receiver.close();
                // Answer anything that raced in after the check.
                while let Ok(request) = self.receiver.try_recv() {
                    let _ = request.reply.send(Err(LedgerError::ShuttingDown));
                }
                return;
            }
        }
    }

    /// Commits one batch (the expiry pass runs even for an empty one) and answers its callers.
    /// Returns whether the batch committed.
    fn process(&mut self, batch: Vec<Request>) -> bool {
        let commands: Vec<Command> =
            batch.iter().flat_map(|request| request.commands.iter().cloned()).collect();
        let mut attempt = 0;
        let result = loop {
            let started = Instant::now();
            match self.try_commit(&commands) {
                Ok((outcomes, n_records)) => {
                    if n_records > 0 {
                        self.metrics.commit_latency_us.record(started.elapsed().as_micros() as u64);
                        self.metrics.batches_committed.fetch_add(1, Ordering::Relaxed);
                        self.metrics.records_committed.fetch_add(n_records, Ordering::Relaxed);
                    }
                    self.metrics.batch_commands.record(commands.len() as u64);
                    break Ok(outcomes);
                }
                // Not a conflict: nothing was written, and the next try locks the rows it
                // now knows of. Each such try learns a new account's layout, so they end.
                Err(Attempt::LayoutsLearned) => continue,
                Err(Attempt::Store(StoreError::Conflict(reason)))
                    if attempt < self.config.conflict_retries_max =>
                {
                    self.metrics.batch_conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%reason, attempt, "batch conflicted with another writer; retrying");
                    attempt += 1;
                    // Back off a little so two nodes do not collide in lockstep.
                    std::thread::sleep(Duration::from_micros(200 * u64::from(attempt)));
                }
                Err(Attempt::Store(error)) => {
                    self.metrics.batch_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, n_commands = commands.len(), "batch failed");
                    break Err(error);
                }
            }
        };
        match result {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for request in batch {
                    let mine: Vec<Outcome> =
                        outcomes.by_ref().take(request.commands.len()).collect();
                    let _ = request.reply.send(Ok(mine));
                }
                true
            }
            Err(error) => {
                let message = error.to_string();
                let unknown = matches!(error, StoreError::CommitOutcomeUnknown(_));
                for request in batch {
                    let error = if unknown {
                        StoreError::CommitOutcomeUnknown(message.clone())
                    } else {
                        StoreError::Backend(message.clone())
                    };
                    let _ = request.reply.send(Err(LedgerError::Store(error)));
                }
                false
            }
        }
    }

    /// Learns every multi-row account at start-up (the first buffer scan, at once, finds
    /// what was buffered before a restart).
    fn load_layouts(&mut self) {
        let loaded = self.store.begin().and_then(|mut tx| tx.account_layouts());
        match loaded {
            Ok(layouts) => self.layouts.extend(layouts),
            Err(error) => {
                tracing::warn!(%error, "could not load account layouts; learning them as used")
            }
        }
    }

    fn try_commit(&mut self, commands: &[Command]) -> Result<(Vec<Outcome>, u64), Attempt> {
        let needs = needs(commands);
        self.turn = self.turn.wrapping_add(1);
        let expiry_batch_max = self.config.expiry_batch_max;
        let now = self.clock.now();
        let mut tx = self.store.begin()?;
        let mut snapshot = Snapshot::default();
        let mut holds = tx.lock_holds(&needs.pending_ids)?;
        let due = if now >= self.next_expiry_scan {
            let due = tx.lock_due_holds(now, expiry_batch_max)?;
            // A full page means more are due: look again on the next batch.
            if due.len() < expiry_batch_max {
                let interval_us = self.config.expiry_poll_interval_ms.saturating_mul(1000);
                self.next_expiry_scan = crate::ids::Timestamp(now.0.saturating_add(interval_us));
            }
            due
        } else {
            Vec::new()
        };
        snapshot.due_holds = due.iter().map(|hold| hold.pending_id).collect();
        holds.extend(due);
        let mut account_ids = Vec::with_capacity(needs.account_ids.len());
        for id in &needs.account_ids {
            match self.layouts.get(id) {
                Some(layout) => account_ids.extend(needs.rows(*id, *layout, self.turn)),
                None => account_ids.push(*id),
            }
        }
        for hold in &holds {
            account_ids.push(hold.movement.debit_account_id);
            account_ids.push(hold.movement.credit_account_id);
        }
        account_ids.sort_unstable();
        account_ids.dedup();
        snapshot.holds = holds.into_iter().map(|hold| (hold.pending_id, hold)).collect();
        let mut discovered = false;
        for account in tx.lock_accounts(&account_ids)? {
            if !account.layout.is_plain() && !self.layouts.contains_key(&account.id) {
                self.layouts.insert(account.id, account.layout);
                discovered = true;
            }
            snapshot.accounts.insert(account.id, account);
        }
        if discovered {
            // The batch locked the account's own row only; run it again with its rows.
            return Err(Attempt::LayoutsLearned);
        }
        for id in &needs.account_ids {
            if let Some(layout) = self.layouts.get(id) {
                snapshot.layouts.insert(*id, *layout);
            }
        }
        // Existing transfers are read only now, under the locks: a node that raced us with
        // the same transfer id has committed by the time we hold its accounts (or its hold),
        // so a duplicate is answered as the replay it is, not judged against balances that
        // already include its own effect.
        for transfer in tx.find_transfers(&needs.transfer_ids)? {
            snapshot.transfers.insert(transfer.id, transfer);
        }
        if needs.reference_data {
            let reference = tx.reference_data()?;
            (snapshot.assets, snapshot.charts) = (reference.assets, reference.charts);
        }
        if commands.is_empty() && snapshot.due_holds.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let before = balances_before(&snapshot.accounts);
        let head = tx.lock_head()?;
        let (outcomes, write) = apply_batch(snapshot, &head, now, commands);
        let Some(write) = write else { return Ok((outcomes, 0)) };
        assert_batch_balances(&before, &write);
        tx.write(&write)?;
        tx.commit()?;
        for account in &write.opened_accounts {
            if !account.layout.is_plain() {
                self.layouts.insert(account.id, account.layout);
            }
        }
        if self.unfolded.is_empty() {
            // The first credit to wait starts the clock: it waits one interval at most.
            self.next_fold_at =
                Instant::now() + Duration::from_millis(self.config.fold_interval_ms);
        }
        for account in write.updated_accounts.iter().chain(&write.opened_accounts) {
            if let AccountLayout::Row { of, .. } = account.layout {
                let buffered =
                    matches!(self.layouts.get(&of), Some(AccountLayout::Buffered { .. }));
                if buffered && account.balances.net_credit_posted() > 0 {
                    self.unfolded.insert(of);
                }
            }
        }
        Ok((outcomes, u64::from(write.header.n_records)))
    }
}

/// Per account: asset and balances before the batch, for the batch's trial balance.
type Before = HashMap<crate::ids::AccountId, (money::AssetCode, crate::model::Balances)>;

fn balances_before(accounts: &HashMap<crate::ids::AccountId, Account>) -> Before {
    accounts.iter().map(|(id, account)| (*id, (account.asset, account.balances))).collect()
}

/// The batch's trial balance (试算平衡): per asset, the debits-minus-credits of the accounts
/// it touched must not change, for posted and for pending amounts. Accounts it did not touch
/// did not change either, so the whole book still balances. A failure is a bug in the posting
/// code: crash before writing rather than commit unbalanced books.
fn assert_batch_balances(before: &Before, write: &crate::apply::BatchWrite) {
    let mut delta: HashMap<money::AssetCode, (i128, i128)> = HashMap::new();
    let net = |b: &crate::model::Balances| {
        (
            i128::from(b.debits_posted.minor()) - i128::from(b.credits_posted.minor()),
            i128::from(b.debits_pending.minor()) - i128::from(b.credits_pending.minor()),
        )
    };
    for account in write.opened_accounts.iter().chain(&write.updated_accounts) {
        let (posted_after, pending_after) = net(&account.balances);
        let (posted_before, pending_before) =
            before.get(&account.id).map_or((0, 0), |(_, balances)| net(balances));
        let entry = delta.entry(account.asset).or_default();
        entry.0 += posted_after - posted_before;
        entry.1 += pending_after - pending_before;
    }
    for (asset, (posted, pending)) in delta {
        assert!(
            posted == 0 && pending == 0,
            "batch {:?} does not balance in {asset}: posted {posted}, pending {pending}",
            write.header.batch_seq
        );
    }
}
/// Why one try of a batch did not commit.
enum Attempt {
    /// The store refused it (a conflict is tried again, up to its bound).
    Store(StoreError),
    /// An account with a layout was first seen: the batch had locked its own row only, so it
    /// runs again, locking the rows it now knows of. Nothing was written.
    LayoutsLearned,
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Attempt {
        Attempt::Store(error)
    }
}
