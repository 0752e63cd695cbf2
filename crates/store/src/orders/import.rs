//! Bulk import of orders, for loading and benchmarks (`qianbao recon bench`): one
//! transaction for many orders. Not the payment path, whose orders go through
//! [`executor::OrderStore::insert`] one by one.

use executor::{OrderRecord, OrderStoreError};
use rusqlite::TransactionBehavior;

use super::{backend, corrupt, insert_params, pg_params, PgOrderStore, SqliteOrderStore, INSERT};

impl SqliteOrderStore {
    /// Loads orders in one transaction (an order whose id is stored is left as it is);
    /// returns how many were new. For imports and benchmarks, not the payment path: the
    /// payment core's orders go through [`executor::OrderStore::insert`].
    pub fn import(&self, records: &[OrderRecord]) -> Result<u64, OrderStoreError> {
        // The guarded connection, in the writer's turn: a write on a reader would meet the
        // writer in SQLite's busy handler.
        let (_turn, mut connection) = self.guarded();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let mut created = 0;
        {
            let mut statement = tx.prepare_cached(INSERT).map_err(backend)?;
            for record in records {
                created += statement
                    .execute(rusqlite::params_from_iter(&insert_params(record)?))
                    .map_err(backend)? as u64;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(created)
    }
}

impl PgOrderStore {
    /// Loads orders in one transaction, many rows per statement (an order whose id is
    /// stored is left as it is); returns how many were new. For imports and benchmarks, not
    /// the payment path: the payment core's orders go through [`executor::OrderStore::insert`].
    pub fn import(&self, records: &[OrderRecord]) -> Result<u64, OrderStoreError> {
        // 24 parameters a row; PostgreSQL takes at most 65,535 per statement.
        const ROWS_PER_STATEMENT: usize = 1_000;
        let (head, tail) = INSERT.split_once(" VALUES ").ok_or_else(|| corrupt("INSERT"))?;
        let (tuple, conflict) = tail.split_once(") ").ok_or_else(|| corrupt("INSERT"))?;
        // The row's placeholders as INSERT writes them (`?14` appears twice): each row's are
        // its own numbers shifted past the rows before it.
        let numbers: Vec<usize> = tuple
            .trim_start_matches('(')
            .split(", ")
            .map(|p| p.trim_start_matches('?').parse::<usize>().map_err(|_| corrupt("INSERT")))
            .collect::<Result<_, _>>()?;
        crate::off_runtime(|| {
            let mut client = self.lock();
            let mut tx = client.transaction().map_err(backend)?;
            let mut created = 0;
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                let mut params = Vec::with_capacity(chunk.len() * 24);
                let mut rows = Vec::with_capacity(chunk.len());
                for record in chunk {
                    let row = insert_params(record)?;
                    let first = params.len();
                    let placeholders: Vec<String> =
                        numbers.iter().map(|n| format!("${}", first + n)).collect();
                    rows.push(format!("({})", placeholders.join(", ")));
                    params.extend(row);
                }
                let sql = format!("{head} VALUES {} {conflict}", rows.join(", "));
                created += tx.execute(&sql, &pg_params(&params)).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            // Fresh statistics: planned on the empty table's, a day's read sorts every row
            // of the day for each page instead of walking `orders_by_created`.
            client.batch_execute("ANALYZE orders").map_err(backend)?;
            Ok(created)
        })
    }
}
