//! The PostgreSQL order writer: one connection that commits whatever writes are waiting as
//! one transaction, with the group's statements pipelined.
//!
//! Why the async client here: the synchronous one waits for each statement's answer before
//! it sends the next, so a group of n writes cost n round trips, each a send and a receive
//! on both sides — a third of a node's time on the payment path (perf, 2026-12-08). The
//! async client sends every statement of a group before it reads an answer: a group costs
//! two round trips (BEGIN, then the writes and COMMIT), whatever its size.
//!
//! Why the group's COMMIT may go out before its writes are answered: inside a transaction a
//! failed statement aborts the transaction, and PostgreSQL answers a COMMIT of an aborted
//! transaction by rolling back. Every write's answer is read before any is acknowledged, so
//! a group is trusted only when all of its writes and its COMMIT succeeded.

use executor::port::{Inserted, OrderStoreError};
use futures_util::future::{join, try_join_all};
use tokio_postgres::types::ToSql;

use super::writer::{must_flush, next_batch, reply, WriteOp, WriteResult};
use super::{backend, corrupt, pg, pg_params, Param, INSERT, SELECT, UPDATE};
use crate::postgres::PgTarget;

/// An update and its outbox events as one statement: the events are written only if the
/// update was (a version conflict writes neither). It answers 1 when the order was updated.
fn update_with_events() -> String {
    format!(
        "WITH updated AS ({} RETURNING tenant, id), \
         written AS (INSERT INTO order_events (tenant, order_id, event_type, payload, created_at_ms) \
         SELECT updated.tenant, updated.id, e.event_type, e.payload, $7 FROM updated, \
         unnest($15::text[], $16::text[]) WITH ORDINALITY AS e(event_type, payload, n) ORDER BY e.n) \
         SELECT count(*) FROM updated",
        pg(UPDATE)
    )
}

/// The writer's statements, prepared once on its connection.
struct Statements {
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    get: tokio_postgres::Statement,
}

/// Starts the writer thread for `target`: connected and prepared before it returns, so a
/// store that connects has a writer that works.
pub(super) fn spawn(
    target: &PgTarget,
    ops: std::sync::mpsc::Receiver<WriteOp>,
) -> Result<(), OrderStoreError> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(backend)?;
    let (client, statements) = runtime.block_on(async {
        let client = target.connect_async().await.map_err(backend)?;
        let statements = Statements {
            insert: client.prepare(&pg(INSERT)).await.map_err(backend)?,
            update: client.prepare(&update_with_events()).await.map_err(backend)?,
            get: client.prepare(&pg(&format!("{SELECT} WHERE id = ?1"))).await.map_err(backend)?,
        };
        Ok::<_, OrderStoreError>((client, statements))
    })?;
    std::thread::Builder::new()
        .name("orders-writer".into())
        .spawn(move || write_loop(&runtime, &client, &statements, &ops))
        .map_err(backend)?;
    Ok(())
}

fn write_loop(
    runtime: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    statements: &Statements,
    ops: &std::sync::mpsc::Receiver<WriteOp>,
) {
    while let Some(batch) = next_batch(ops) {
        // In order of order id (stable: one order's writes keep their order), so that two
        // nodes' groups lock their rows in one order.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| batch[a].order_id().cmp(batch[b].order_id()));
        let ordered: Vec<&WriteOp> = order.iter().map(|&i| &batch[i]).collect();
        let mut results: Vec<Option<Result<WriteResult, OrderStoreError>>> =
            batch.iter().map(|_| None).collect();
        match runtime.block_on(commit(client, statements, &ordered)) {
            Ok(committed) => {
                for (i, result) in order.iter().zip(committed) {
                    results[*i] = Some(Ok(result));
                }
            }
            // Nothing of the group was committed: each write again on its own.
            Err(_) => {
                for &i in &order {
                    let alone = runtime.block_on(commit(client, statements, &[&batch[i]]));
                    results[i] = Some(alone.map(|mut one| one.remove(0)));
                }
            }
        }
        let results = results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(backend("a write was not run"))))
            .collect();
        reply(batch, results);
    }
}

/// What one write asked of the server, before its answer is read.
enum Sent {
    Inserted(u64),
    Updated(i64),
}

async fn commit(
    client: &tokio_postgres::Client,
    statements: &Statements,
    batch: &[&WriteOp],
) -> Result<Vec<WriteResult>, OrderStoreError> {
    // PostgreSQL's WAL is the ledger's too: a write the ledger's next durable commit carries
    // need not wait for the flush (see `Durability`).
    let begin = if must_flush(batch.iter().copied(), true) {
        "BEGIN"
    } else {
        "BEGIN; SET LOCAL synchronous_commit = off"
    };
    // Awaited alone: were BEGIN to fail, pipelined writes would each commit on their own.
    client.batch_execute(begin).await.map_err(backend)?;
    let writes = try_join_all(batch.iter().map(|op| send(client, statements, op)));
    let (sent, committed) = join(writes, client.batch_execute("COMMIT")).await;
    // A write that failed aborted the transaction, and the COMMIT rolled it back.
    let sent = sent?;
    committed.map_err(backend)?;
    let mut results = Vec::with_capacity(batch.len());
    for (op, sent) in batch.iter().zip(sent) {
        results.push(match (op, sent) {
            (WriteOp::Insert { .. }, Sent::Inserted(1)) => WriteResult::Inserted(Inserted::Created),
            // Taken by an order committed before this group: it stays.
            (WriteOp::Insert { id, .. }, Sent::Inserted(_)) => {
                let row = client
                    .query_opt(&statements.get, &[&id.as_str()])
                    .await
                    .map_err(backend)?
                    .ok_or_else(|| corrupt("an order vanished during its insert"))?;
                WriteResult::Inserted(Inserted::Existing(Box::new(super::pg_store::pg_order(
                    &row,
                )?)))
            }
            (WriteOp::Update { .. }, Sent::Updated(count)) => WriteResult::Updated(count == 1),
            _ => return Err(backend("a write's answer was not of its kind")),
        });
    }
    Ok(results)
}

async fn send(
    client: &tokio_postgres::Client,
    statements: &Statements,
    op: &WriteOp,
) -> Result<Sent, OrderStoreError> {
    match op {
        WriteOp::Insert { params, .. } => {
            let params = pg_params(params);
            client.execute(&statements.insert, &params).await.map(Sent::Inserted).map_err(backend)
        }
        WriteOp::Update { params, events, .. } => {
            let (types, payloads) = event_columns(events)?;
            let mut all: Vec<&(dyn ToSql + Sync)> = pg_params(params);
            all.push(&types);
            all.push(&payloads);
            let row = client.query_one(&statements.update, &all).await.map_err(backend)?;
            row.try_get(0).map(Sent::Updated).map_err(backend)
        }
    }
}

/// The event type and payload of each outbox event, as the update statement's arrays (the
/// tenant, order and time are the order's own; see `columns::event_params`).
fn event_columns(events: &[Vec<Param>]) -> Result<(Vec<String>, Vec<String>), OrderStoreError> {
    let mut types = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for event in events {
        match (event.get(2), event.get(3)) {
            (Some(Param::Text(event_type)), Some(Param::Text(payload))) => {
                types.push(event_type.clone());
                payloads.push(payload.clone());
            }
            _ => return Err(backend("an outbox event without its type and payload")),
        }
    }
    Ok((types, payloads))
}
