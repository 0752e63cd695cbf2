//! Group commit, shared by both backends: a writer thread per store takes whatever writes
//! are waiting and commits them as one transaction, answering each with its own result.

use executor::port::{Durability, Inserted, NewEvent, OrderRecord, OrderStoreError};
use payments::OrderId;

use super::columns::{event_params, insert_params, update_params};
use super::{backend, Param};

/// Most writes committed in one transaction.
pub(super) const WRITE_BATCH_MAX: usize = 512;
/// Most writes waiting for the writer: past it a writer waits for room (each is off the
/// async runtime), so a slow disk slows the callers instead of growing a queue without end.
pub(super) const WRITE_QUEUE_MAX: usize = 4 * WRITE_BATCH_MAX;

/// Where a write's answer goes: a oneshot, which an async caller awaits and a thread
/// blocks on.
pub(super) type Reply<T> = tokio::sync::oneshot::Sender<Result<T, OrderStoreError>>;

pub(super) enum WriteOp {
    Insert {
        id: OrderId,
        params: Vec<Param>,
        durability: Durability,
        reply: Reply<Inserted>,
    },
    Update {
        id: OrderId,
        params: Vec<Param>,
        events: Vec<Vec<Param>>,
        durability: Durability,
        reply: Reply<bool>,
    },
}

impl WriteOp {
    pub(super) fn order_id(&self) -> &str {
        match self {
            WriteOp::Insert { id, .. } | WriteOp::Update { id, .. } => id.as_str(),
        }
    }
}

/// Whether a group's commit must wait for the log's flush: when one of its writes must be
/// durable now. `shares_ledger_log`: the store's log is the ledger's (PostgreSQL), so a
/// write the ledger's next durable commit carries need not wait (see [`Durability`]).
pub(super) fn must_flush<'a>(
    batch: impl IntoIterator<Item = &'a WriteOp>,
    shares_ledger_log: bool,
) -> bool {
    batch.into_iter().any(|op| {
        let durability = match op {
            WriteOp::Insert { durability, .. } | WriteOp::Update { durability, .. } => *durability,
        };
        match durability {
            Durability::Now => true,
            Durability::BeforeLedger => !shares_ledger_log,
            Durability::Recomputable => false,
        }
    })
}

pub(super) enum WriteResult {
    Inserted(Inserted),
    Updated(bool),
}

/// The write that stores `record` as a new order, waiting for its answer.
fn insert_op(
    record: &OrderRecord,
    durability: Durability,
) -> Result<impl FnOnce(Reply<Inserted>) -> WriteOp, OrderStoreError> {
    let params = insert_params(record)?;
    let id = record.id().clone();
    Ok(move |reply| WriteOp::Insert { id, params, durability, reply })
}

/// The write that moves `record` on from `expected_version`, with its outbox events.
fn update_op(
    record: &OrderRecord,
    expected_version: u64,
    events: &[NewEvent],
    durability: Durability,
) -> Result<impl FnOnce(Reply<bool>) -> WriteOp, OrderStoreError> {
    let params = update_params(record, expected_version)?;
    let events = events.iter().map(|event| event_params(record, event)).collect();
    let id = record.id().clone();
    Ok(move |reply| WriteOp::Update { id, params, events, durability, reply })
}

/// The callers' end of a store's writer thread: each order write handed over, and waited for
/// (blocking off the runtime, or awaited on it).
pub(super) struct WriterHandle(pub(super) std::sync::mpsc::SyncSender<WriteOp>);

impl WriterHandle {
    pub(super) fn insert(
        &self,
        record: &OrderRecord,
        durability: Durability,
    ) -> Result<Inserted, OrderStoreError> {
        hand_to_writer(&self.0, insert_op(record, durability)?)
    }

    pub(super) async fn insert_async(
        &self,
        record: &OrderRecord,
        durability: Durability,
    ) -> Result<Inserted, OrderStoreError> {
        hand_to_writer_async(&self.0, insert_op(record, durability)?).await
    }

    pub(super) fn update(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
        durability: Durability,
    ) -> Result<bool, OrderStoreError> {
        hand_to_writer(&self.0, update_op(record, expected_version, events, durability)?)
    }

    pub(super) async fn update_async(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
        durability: Durability,
    ) -> Result<bool, OrderStoreError> {
        let op = update_op(record, expected_version, events, durability)?;
        hand_to_writer_async(&self.0, op).await
    }
}

/// The next group for a writer: the first write waiting, and whatever else is waiting.
pub(super) fn next_batch(ops: &std::sync::mpsc::Receiver<WriteOp>) -> Option<Vec<WriteOp>> {
    let mut batch = vec![ops.recv().ok()?];
    while batch.len() < WRITE_BATCH_MAX {
        match ops.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Answers each write of a group with its own result.
pub(super) fn reply(batch: Vec<WriteOp>, results: Vec<Result<WriteResult, OrderStoreError>>) {
    for (op, result) in batch.into_iter().zip(results) {
        match (op, result) {
            (WriteOp::Insert { reply, .. }, Ok(WriteResult::Inserted(inserted))) => {
                let _ = reply.send(Ok(inserted));
            }
            (WriteOp::Update { reply, .. }, Ok(WriteResult::Updated(updated))) => {
                let _ = reply.send(Ok(updated));
            }
            (WriteOp::Insert { reply, .. }, Err(error)) => drop(reply.send(Err(error))),
            (WriteOp::Update { reply, .. }, Err(error)) => drop(reply.send(Err(error))),
            _ => unreachable!("one result per write, of its kind"),
        }
    }
}

/// Hands a write to a writer thread and waits for its commit (off the async runtime's
/// workers).
fn hand_to_writer<T>(
    writes: &std::sync::mpsc::SyncSender<WriteOp>,
    op: impl FnOnce(Reply<T>) -> WriteOp,
) -> Result<T, OrderStoreError> {
    crate::off_runtime(|| {
        let (reply, answer) = tokio::sync::oneshot::channel();
        writes.send(op(reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    })
}

/// [`hand_to_writer`] from the async runtime: the worker awaits the answer rather than
/// handing its core to another thread (`block_in_place`) for the commit's while, which cost
/// more than the write's own work on the payment path. Only a full queue blocks, as it
/// should: a slow disk slows the callers.
async fn hand_to_writer_async<T>(
    writes: &std::sync::mpsc::SyncSender<WriteOp>,
    op: impl FnOnce(Reply<T>) -> WriteOp,
) -> Result<T, OrderStoreError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    match writes.try_send(op(reply)) {
        Ok(()) => {}
        Err(std::sync::mpsc::TrySendError::Full(op)) => {
            crate::off_runtime(|| writes.send(op)).map_err(|_| stopped())?;
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
    }
    answer.await.map_err(|_| stopped())?
}

fn stopped() -> OrderStoreError {
    backend("the order writer stopped")
}
