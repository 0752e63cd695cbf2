//! The engine: the write side the posting pipeline runs on ([`Engine`], a `LedgerStore`), its
//! recovery, and the projector thread that writes committed batches into the projection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::apply::BatchWrite;
use ledger::journal::{batch_hash, JournalHead};
use ledger::model::{Account, AccountLayout, Hold, Transfer};
use ledger::port::{LedgerReader, LedgerStore, LedgerTx, Page, ReferenceData, StoreError};
use ledger::{AccountId, BatchSeq, Seq, Timestamp, TransferId};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::journal::{FileJournal, Journal, JournalError};
use crate::log::{DataSync, Durability, LogError};
use crate::state::State;
use crate::{codec, EngineConfig, EngineLimits};

/// How far the projection reaches: its last batch, and that batch's last record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) batch_seq: BatchSeq,
    pub(crate) last_seq: Seq,
}

/// What the writer, the readers and the projector share.
pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    /// How far the projection reaches (visible to its readers).
    pub(crate) projected: Mutex<Reach>,
    /// The last batch the projection holds durably: journal segments up to it may go.
    pub(crate) projected_durably: AtomicU64,
    pub(crate) projected_changed: Condvar,
    /// Records written to the journal and not yet to the projection.
    pub(crate) lag_records: AtomicU64,
    /// Set when the projection fails; cleared when it writes again.
    pub(crate) projection_failing: AtomicBool,
    /// Set as the engine closes: a projector that cannot write gives up instead of holding
    /// the close forever (the journal keeps what it did not write, for the next start).
    pub(crate) closing: AtomicBool,
    pub(crate) projection: Arc<dyn LedgerReader>,
    pub(crate) metrics: EngineMetrics,
    /// Set by a failed append: nothing more is written until the process recovers, and the
    /// reader's head fails, so `/readyz` tells the orchestrator to restart the node.
    pub(crate) failed: Mutex<Option<String>>,
}

/// The engine's own figures, readable while it runs.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub journal_bytes: AtomicU64,
    pub journal_syncs: AtomicU64,
    pub projected_batches: AtomicU64,
    pub projection_groups: AtomicU64,
    /// Times the writer waited for the projection to catch up.
    pub lag_waits: AtomicU64,
}

impl Shared {
    pub(crate) fn check_usable(&self) -> Result<(), StoreError> {
        match &*self.failed.lock() {
            Some(reason) => Err(StoreError::Backend(format!(
                "the journal failed and takes no more writes until the process restarts: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the projection holds batch `batch_seq`, or fails after `timeout`.
    pub(crate) fn wait_projected(
        &self,
        batch_seq: BatchSeq,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.wait_reach(
            |reach| reach.batch_seq >= batch_seq,
            timeout,
            || format!("batch {}", batch_seq.0),
        )
    }

    /// Waits until the projection holds record `seq` (and every one before it), or fails
    /// after `timeout`.
    pub(crate) fn wait_projected_seq(&self, seq: Seq, timeout: Duration) -> Result<(), StoreError> {
        self.wait_reach(|reach| reach.last_seq >= seq, timeout, || format!("record {}", seq.0))
    }

    fn wait_reach(
        &self,
        reached: impl Fn(Reach) -> bool,
        timeout: Duration,
        what: impl Fn() -> String,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + timeout;
        let mut projected = self.projected.lock();
        while !reached(*projected) {
            if self.projected_changed.wait_until(&mut projected, deadline).timed_out() {
                return Err(StoreError::Backend(format!(
                    "the projection holds batch {} and has not reached {} in {} ms",
                    projected.batch_seq.0,
                    what(),
                    timeout.as_millis()
                )));
            }
        }
        Ok(())
    }
}

/// The journal-first store. The pipeline's writer thread owns it.
pub struct Engine {
    shared: Arc<Shared>,
    journal: Box<dyn Journal>,
    limits: EngineLimits,
    projector: Option<(mpsc::Sender<Arc<BatchWrite>>, std::thread::JoinHandle<()>)>,
    /// What memory has forgotten (the projection holds it) and what the journal has retired
    /// (the projection holds it durably).
    forgotten_through: BatchSeq,
    retired_through: u64,
    payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LogError> for OpenError {
    fn from(error: LogError) -> OpenError {
        OpenError::Journal(error.into())
    }
}

impl Engine {
    /// Opens the journal file in `config.dir` in front of a projection (the store's write side
    /// and a reader of it): see [`Engine::open_on`].
    pub fn open<P: LedgerStore>(
        config: EngineConfig,
        projection: P,
        reader: Arc<dyn LedgerReader>,
    ) -> Result<Engine, OpenError> {
        Engine::open_with(config, projection, reader, Box::new(DataSync))
    }

    /// [`Engine::open`] with the journal's syncs made by `durability` (tests inject failures).
    pub fn open_with<P: LedgerStore>(
        config: EngineConfig,
        projection: P,
        reader: Arc<dyn LedgerReader>,
        durability: Box<dyn Durability>,
    ) -> Result<Engine, OpenError> {
        let journal = FileJournal::open(&config, durability)?;
        Engine::open_on(Box::new(journal), config.limits, projection, reader)
    }

    /// Opens `journal` in front of a projection: loads the books from the projection, replays
    /// every journal batch the projection lacks into memory, and starts the projector, which
    /// writes them there.
    pub fn open_on<P: LedgerStore>(
        mut journal: Box<dyn Journal>,
        limits: EngineLimits,
        mut projection: P,
        reader: Arc<dyn LedgerReader>,
    ) -> Result<Engine, OpenError> {
        let started = Instant::now();
        let mut state = State::default();
        {
            let mut tx = projection.begin()?;
            state.head = tx.lock_head()?;
            state.reference = tx.reference_data()?;
        }
        let projected_head = state.head;
        load_pages(
            |page| reader.accounts(page),
            |account: &Account| account.id,
            |account| state.load_account(account),
        )?;
        load_pages(
            |page| reader.pending_holds(page),
            |hold: &Hold| hold.pending_id,
            |hold| state.load_hold(hold),
        )?;
        let n_accounts = state.accounts.len();
        let mut replayed: Vec<Arc<BatchWrite>> = Vec::new();
        let report = journal.replay(projected_head.batch_seq.0, &mut |version, payload| {
            let batch_seq = codec::peek_batch_seq(payload);
            if version != codec::PAYLOAD_VERSION {
                return Err(format!(
                    "batch {batch_seq} is in payload version {version}, which this release \
                     does not read (it reads {}): start the release that wrote it once, \
                     and stop it cleanly",
                    codec::PAYLOAD_VERSION
                ));
            }
            let batch =
                codec::decode(payload).map_err(|error| format!("batch {batch_seq}: {error}"))?;
            follows(&state.head, &batch).map_err(|detail| {
                format!("batch {batch_seq} does not follow the books: {detail}")
            })?;
            state.apply(&batch);
            replayed.push(Arc::new(batch));
            Ok(())
        })?;
        let n_replayed = replayed.len();
        let lag_records: u64 = replayed.iter().map(|batch| u64::from(batch.header.n_records)).sum();
        tracing::info!(
            accounts = n_accounts,
            replayed_batches = n_replayed,
            torn_tail_bytes = report.torn_tail_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger engine recovered"
        );
        journal.start_appending(state.head.batch_seq.0 + 1)?;
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            projected: Mutex::new(Reach {
                batch_seq: projected_head.batch_seq,
                last_seq: projected_head.last_seq,
            }),
            projected_durably: AtomicU64::new(projected_head.batch_seq.0),
            projected_changed: Condvar::new(),
            lag_records: AtomicU64::new(lag_records),
            projection_failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            projection: reader,
            metrics: EngineMetrics::default(),
            failed: Mutex::new(None),
        });
        // Unbounded as a channel: the writer bounds the lag by records before it sends.
        let (sender, receiver) = mpsc::channel();
        for batch in replayed {
            let _ = sender.send(batch);
        }
        let projector = Projector {
            store: projection,
            shared: shared.clone(),
            receiver,
            group_records_max: limits.projection_group_records_max,
            // The first group is durable: what recovery replayed may then be retired.
            last_durable: Instant::now().checked_sub(DURABLE_EVERY).unwrap_or_else(Instant::now),
        };
        let thread = std::thread::Builder::new()
            .name("ledger-projector".into())
            .spawn(move || projector.run())
            .map_err(|error| StoreError::Backend(format!("spawning the projector: {error}")))?;
        Ok(Engine {
            shared,
            journal,
            limits,
            projector: Some((sender, thread)),
            forgotten_through: projected_head.batch_seq,
            retired_through: projected_head.batch_seq.0,
            payload: Vec::new(),
        })
    }

    /// A reader answering from memory what is exact there and from the projection the rest.
    pub fn reader(&self) -> crate::EngineReader {
        crate::EngineReader::new(self.shared.clone(), self.limits.read_wait_ms)
    }

    /// The engine's figures.
    pub fn stats(&self) -> crate::EngineStats {
        crate::EngineStats { shared: self.shared.clone() }
    }

    /// Keeps the journal held, lets the projection catch up when it lags too far, and retires
    /// what it holds durably from the journal.
    fn before_batch(&mut self) -> Result<(), StoreError> {
        if let Err(error) = self.journal.keep_alive() {
            if matches!(error, JournalError::Fenced(_)) {
                tracing::error!(%error, "the ledger takes no more writes");
                *self.shared.failed.lock() = Some(error.to_string());
            }
            return Err(StoreError::Backend(error.to_string()));
        }
        let lag_max = self.limits.projection_lag_records_max;
        if self.shared.lag_records.load(Ordering::Acquire) > lag_max {
            self.shared.metrics.lag_waits.fetch_add(1, Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_millis(self.limits.read_wait_ms);
            let mut projected = self.shared.projected.lock();
            while self.shared.lag_records.load(Ordering::Acquire) > lag_max {
                if self.shared.projected_changed.wait_until(&mut projected, deadline).timed_out() {
                    return Err(StoreError::Backend(
                        "the projection is too far behind the journal".into(),
                    ));
                }
            }
        }
        let projected = self.shared.projected.lock().batch_seq;
        if projected > self.forgotten_through {
            self.shared.state.write().forget_projected(projected);
            self.forgotten_through = projected;
        }
        let durably = self.shared.projected_durably.load(Ordering::Acquire);
        if durably > self.retired_through {
            self.journal.retire_through(durably).map_err(|error| {
                StoreError::Backend(format!("retiring journal batches: {error}"))
            })?;
            self.retired_through = durably;
        }
        Ok(())
    }
}

fn load_pages<T, C: Copy>(
    mut page: impl FnMut(Page<C>) -> Result<Vec<T>, StoreError>,
    cursor: impl Fn(&T) -> C,
    mut each: impl FnMut(T),
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let items = page(Page { after, limit: ledger::port::PAGE_LIMIT_MAX })?;
        let Some(last) = items.last() else { return Ok(()) };
        after = Some(cursor(last));
        let full = items.len() >= ledger::port::PAGE_LIMIT_MAX;
        items.into_iter().for_each(&mut each);
        if !full {
            return Ok(());
        }
    }
}

/// Whether `batch` is the next link after `head`, with a hash its records produce.
fn follows(head: &JournalHead, batch: &BatchWrite) -> Result<(), String> {
    let header = &batch.header;
    if header.batch_seq.0 != head.batch_seq.0 + 1 {
        return Err(format!("the books end at batch {}", head.batch_seq.0));
    }
    if header.first_seq.0 != head.last_seq.0 + 1 {
        return Err(format!(
            "it starts at seq {}, the books end at {}",
            header.first_seq.0, head.last_seq.0
        ));
    }
    if header.prev_hash != head.hash {
        return Err("it links to another hash than the books' last".into());
    }
    if header.n_records as usize != batch.records.len() {
        return Err(format!(
            "it says {} records and holds {}",
            header.n_records,
            batch.records.len()
        ));
    }
    let recomputed = batch_hash(
        header.batch_seq,
        header.first_seq,
        header.timestamp,
        &header.prev_hash,
        &batch.records,
    );
    if recomputed != header.hash {
        return Err("its records do not hash to its hash".into());
    }
    Ok(())
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the channel lets the projector write what is queued, then stop: a clean
        // stop leaves the projection holding the whole journal.
        if let Some((sender, thread)) = self.projector.take() {
            self.shared.closing.store(true, Ordering::Release);
            drop(sender);
            let _ = thread.join();
        }
        if self.shared.failed.lock().is_none()
            && !self.shared.projection_failing.load(Ordering::Acquire)
        {
            let projected = self.shared.projected.lock().batch_seq.0;
            self.journal.close(projected);
        }
    }
}

impl LedgerStore for Engine {
    type Tx<'a> = EngineTx<'a>;

    fn begin(&mut self) -> Result<EngineTx<'_>, StoreError> {
        self.shared.check_usable()?;
        self.before_batch()?;
        Ok(EngineTx { engine: self, batch: None })
    }
}

/// One batch: read from memory, written to the journal at commit.
pub struct EngineTx<'a> {
    engine: &'a mut Engine,
    batch: Option<BatchWrite>,
}

impl LedgerTx for EngineTx<'_> {
    fn find_transfers(&mut self, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        {
            let state = self.engine.shared.state.read();
            for id in ids {
                match state.transfers.get(id) {
                    Some(transfer) => found.push(transfer.clone()),
                    None => missing.push(*id),
                }
            }
        }
        // Evicted from memory only once projected, so the projection has every other one.
        if !missing.is_empty() {
            found.extend(self.engine.shared.projection.transfers(&missing)?);
        }
        Ok(found)
    }

    fn lock_holds(&mut self, pending_ids: &[TransferId]) -> Result<Vec<Hold>, StoreError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        {
            let state = self.engine.shared.state.read();
            for id in pending_ids {
                match state.holds.get(id) {
                    Some(hold) => found.push(*hold),
                    None => missing.push(*id),
                }
            }
        }
        for id in missing {
            if let Some(hold) = self.engine.shared.projection.hold(id)? {
                found.push(hold);
            }
        }
        Ok(found)
    }

    fn lock_due_holds(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Hold>, StoreError> {
        Ok(self.engine.shared.state.read().due_holds(now, limit))
    }

    fn lock_accounts(&mut self, ids: &[AccountId]) -> Result<Vec<Account>, StoreError> {
        let state = self.engine.shared.state.read();
        Ok(ids.iter().filter_map(|id| state.accounts.get(id).cloned()).collect())
    }

    fn reference_data(&mut self) -> Result<ReferenceData, StoreError> {
        Ok(self.engine.shared.state.read().reference.clone())
    }

    fn account_layouts(&mut self) -> Result<Vec<(AccountId, AccountLayout)>, StoreError> {
        Ok(self.engine.shared.state.read().multi_row_layouts())
    }

    fn buffered_with_credit(&mut self) -> Result<Vec<AccountId>, StoreError> {
        Ok(self.engine.shared.state.read().buffered_with_credit())
    }

    fn lock_head(&mut self) -> Result<JournalHead, StoreError> {
        Ok(self.engine.shared.state.read().head)
    }

    fn write(&mut self, batch: &BatchWrite) -> Result<(), StoreError> {
        self.batch = Some(batch.clone());
        Ok(())
    }

    fn commit(self) -> Result<(), StoreError> {
        let Some(batch) = self.batch else { return Ok(()) };
        let engine = self.engine;
        engine.payload.clear();
        codec::encode(&batch, &mut engine.payload);
        let written = match engine.journal.append(batch.header.batch_seq.0, &engine.payload) {
            Ok(written) => written,
            Err(error) => {
                // The batch may be in the journal or not; after a failed fsync (or a lost
                // answer from the database) nothing can tell. Stop writing: recovery reads
                // what is there.
                tracing::error!(%error, "journal append failed; the ledger takes no more writes");
                *engine.shared.failed.lock() = Some(error.to_string());
                return Err(StoreError::CommitOutcomeUnknown(error.to_string()));
            }
        };
        let metrics = &engine.shared.metrics;
        metrics.journal_bytes.fetch_add(written, Ordering::Relaxed);
        metrics.journal_syncs.fetch_add(1, Ordering::Relaxed);
        engine.shared.state.write().apply(&batch);
        engine.shared.lag_records.fetch_add(u64::from(batch.header.n_records), Ordering::AcqRel);
        if let Some((sender, _)) = &engine.projector {
            // Only fails if the projector died, which it does only on a broken invariant.
            let _ = sender.send(Arc::new(batch));
        }
        Ok(())
    }
}

/// Writes committed batches into the projection, many per transaction.
struct Projector<P: LedgerStore> {
    store: P,
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Arc<BatchWrite>>,
    group_records_max: u64,
    last_durable: Instant,
}

/// How often the projector makes the books durable. Between, their commits need no sync:
/// the journal holds every batch until a durable commit covers it.
const DURABLE_EVERY: Duration = Duration::from_millis(200);

impl<P: LedgerStore> Projector<P> {
    fn run(mut self) {
        lowest_cpu_priority();
        let mut group: Vec<Arc<BatchWrite>> = Vec::new();
        loop {
            if group.is_empty() {
                match self.receiver.recv() {
                    Ok(batch) => group.push(batch),
                    Err(_) => return,
                }
            }
            let mut records: u64 = group.iter().map(|b| u64::from(b.header.n_records)).sum();
            while records < self.group_records_max {
                let Ok(batch) = self.receiver.try_recv() else { break };
                records += u64::from(batch.header.n_records);
                group.push(batch);
            }
            // Commits reach the books' log without a sync, except one every
            // `DURABLE_EVERY`, which syncs the log with every commit before it.
            let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
            match self.write(&group, durable) {
                Ok(()) => {
                    let last = group.last().map_or(BatchSeq(0), |batch| batch.header.batch_seq);
                    let last_seq = group.last().map_or(Seq(0), |batch| batch.head().last_seq);
                    self.shared.projection_failing.store(false, Ordering::Release);
                    self.shared.lag_records.fetch_sub(records, Ordering::AcqRel);
                    let metrics = &self.shared.metrics;
                    metrics.projected_batches.fetch_add(group.len() as u64, Ordering::Relaxed);
                    metrics.projection_groups.fetch_add(1, Ordering::Relaxed);
                    *self.shared.projected.lock() = Reach { batch_seq: last, last_seq };
                    self.shared.projected_changed.notify_all();
                    if durable {
                        self.shared.projected_durably.store(last.0, Ordering::Release);
                        self.last_durable = Instant::now();
                    }
                    group.clear();
                }
                Err(error) => {
                    // Kept and tried again: the journal holds them, and nothing may skip one.
                    self.shared.projection_failing.store(true, Ordering::Release);
                    if self.shared.closing.load(Ordering::Acquire) {
                        tracing::warn!(%error, "projection failed while closing; the journal keeps the rest");
                        return;
                    }
                    tracing::error!(%error, batches = group.len(), "projection failed; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn write(&mut self, group: &[Arc<BatchWrite>], durable: bool) -> Result<(), StoreError> {
        self.store.set_sync_each_commit(durable)?;
        let mut tx = self.store.begin()?;
        let mut expected = tx.lock_head()?.batch_seq.0 + 1;
        let mut to_write = Vec::with_capacity(group.len());
        for batch in group {
            let batch_seq = batch.header.batch_seq.0;
            // Held already: projected before a crash, and replayed from the journal again.
            if batch_seq < expected {
                continue;
            }
            if batch_seq != expected {
                return Err(StoreError::Corrupt(format!(
                    "the projection ends before batch {expected}, and batch {batch_seq} came next"
                )));
            }
            to_write.push(&**batch);
            expected += 1;
        }
        tx.write_group(&to_write)?;
        tx.commit()
    }
}

/// Puts the calling thread (the projector) at the lowest CPU priority, nice 19. On two cores
/// the projector's B-tree writes take most of the CPU; at equal priority they delay the
/// writer, whose latency every caller waits for. Idle cores still run it at full speed, and
/// the lag bound stops the writer when it falls behind, so it cannot starve. Measured:
/// docs/bench/engine.md.
#[cfg(target_os = "linux")]
fn lowest_cpu_priority() {
    // On Linux, setpriority(2) given a thread id sets that thread's nice value alone.
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(%error, "the projector keeps the default CPU priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lowest_cpu_priority() {}
