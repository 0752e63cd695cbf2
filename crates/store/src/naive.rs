//! The naive baseline for `qianbao ledger bench`: what most teams write first. One database
//! transaction per transfer: insert the transfer and its two entries, then
//! `UPDATE … SET balance = balance - $amount WHERE id = $1 AND balance >= $amount` on the
//! debit account and the matching credit update. Every transfer takes the row locks of both
//! accounts until its commit, so a hot account serialises everyone who touches it.
//!
//! It exists only to be measured against; nothing else uses it.

use postgres::{Client, NoTls};

use crate::postgres::PgTarget;

#[derive(Debug, thiserror::Error)]
#[error("naive baseline: {0}")]
pub struct NaiveError(#[from] postgres::Error);

/// One client connection of the baseline.
pub struct NaiveClient {
    client: Client,
}

/// Creates the baseline's tables in `target.schema` with `n_accounts` accounts (ids
/// `1..=n_accounts`), each holding `balance` minor units.
pub fn create(target: &PgTarget, n_accounts: u64, balance: i64) -> Result<(), NaiveError> {
    let mut client = connect(target)?;
    client.batch_execute(
        "DROP TABLE IF EXISTS naive_entries, naive_transfers, naive_accounts;
         CREATE TABLE naive_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
         CREATE TABLE naive_transfers (id BIGINT PRIMARY KEY, debit_id BIGINT NOT NULL,
             credit_id BIGINT NOT NULL, amount BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
         CREATE TABLE naive_entries (transfer_id BIGINT NOT NULL, account_id BIGINT NOT NULL,
             amount BIGINT NOT NULL, PRIMARY KEY (transfer_id, account_id));",
    )?;
    client.execute(
        "INSERT INTO naive_accounts SELECT g, $2 FROM generate_series(1, $1::bigint) AS g",
        &[&(n_accounts as i64), &balance],
    )?;
    Ok(())
}

fn connect(target: &PgTarget) -> Result<Client, NaiveError> {
    let mut client = Client::connect(&target.url, NoTls)?;
    let schema = format!("\"{}\"", target.schema.replace('"', "\"\""));
    client.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
    ))?;
    Ok(client)
}

impl NaiveClient {
    pub fn connect(target: &PgTarget) -> Result<NaiveClient, NaiveError> {
        Ok(NaiveClient { client: connect(target)? })
    }

    /// Moves `amount` from `debit_id` to `credit_id`; `Ok(false)` when the debit account lacks
    /// the funds (the transaction is rolled back).
    pub fn transfer(
        &mut self,
        id: i64,
        debit_id: i64,
        credit_id: i64,
        amount: i64,
    ) -> Result<bool, NaiveError> {
        let mut tx = self.client.transaction()?;
        tx.execute(
            "INSERT INTO naive_transfers (id, debit_id, credit_id, amount) VALUES ($1, $2, $3, $4)",
            &[&id, &debit_id, &credit_id, &amount],
        )?;
        tx.execute(
            "INSERT INTO naive_entries (transfer_id, account_id, amount) VALUES ($1, $2, $3), ($1, $4, $5)",
            &[&id, &debit_id, &(-amount), &credit_id, &amount],
        )?;
        let debited = tx.execute(
            "UPDATE naive_accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2",
            &[&debit_id, &amount],
        )?;
        if debited == 0 {
            tx.rollback()?;
            return Ok(false);
        }
        tx.execute(
            "UPDATE naive_accounts SET balance = balance + $2 WHERE id = $1",
            &[&credit_id, &amount],
        )?;
        tx.commit()?;
        Ok(true)
    }
}
