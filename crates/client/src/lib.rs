//! A typed async client of Qianbao's HTTP API: what users and `qianbao loadtest` call the
//! service through.
//!
//! The contract is docs/api.md and the OpenAPI document docs/openapi.json; this crate is a
//! thin, typed mirror of it. Every operation of the document is one method of [`Client`],
//! named after its `operationId` and grouped in a module by subject ([`ledger`],
//! [`transfers`], [`keys`], [`parties`], [`payments`], [`orders`], [`webhooks`], [`recon`],
//! [`breaks`], [`days`], [`checks`], [`ops`], [`overview`], [`switches`], [`health`]); a test
//! fails when the document gains an operation the client lacks ([`OPERATIONS`]).
//!
//! What it takes care of, so that callers cannot get it wrong:
//!
//! - **Money and ids as decimal strings**: [`Amount`] (minor units, at most `i64::MAX`),
//!   [`SignedAmount`], [`AccountId`], [`TransferId`] read and write the strings; no float
//!   anywhere.
//! - **Idempotency**: every write carries an `Idempotency-Key`, the caller's or a fresh
//!   random one, and says in its [`Reply`] which key it sent and whether the service
//!   replayed an earlier answer. [`retry`] retries what may succeed later (429, 5xx,
//!   transport failures) with the *same* key, honouring `Retry-After` up to a cap, so a
//!   write whose answer was lost is never carried out twice.
//! - **Errors**: one [`ClientError`]; a refusal by the service carries its stable `code`,
//!   status, message, `param`, request id and `Retry-After` ([`ApiError`]).
//! - **Signed requests** for keys created with `"signed": true`
//!   ([`ClientBuilder::sign_requests`]), with the scheme of `access::signature`, the same
//!   code the server verifies with.
//! - **Forward compatibility**: responses ignore fields they do not know, and enums keep
//!   values they do not know (`Unknown`), so a newer service does not break an older client.
//!
//! It speaks plain HTTP only (reqwest without a TLS stack, as the `qianbao` binary): put a
//! TLS-terminating proxy in front of the service, or reach it on a private network.
//!
//! # Example: a customer tops up and pays a merchant
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use client::parties::{CustomerRequest, MerchantRequest};
//! use client::payments::{PaymentBody, TopUpBody};
//! use client::{retry, Amount, Client, ClientError, IdempotencyKey, RetryPolicy};
//!
//! # async fn example() -> Result<(), ClientError> {
//! let client = Client::builder("http://127.0.0.1:8080", "qb_live_…")
//!     .timeout(Duration::from_secs(10))
//!     .build()?;
//! client.create_customer(&CustomerRequest::new("alice", &["CNY"]), None).await?;
//! client.create_merchant(&MerchantRequest::new("tea-house", &["CNY"]), None).await?;
//!
//! // 100.00 CNY from Alice's card into her wallet. The reference makes the order; the
//! // idempotency key makes a retry of this very request safe.
//! let topup = TopUpBody {
//!     reference: "topup-0001".to_string(),
//!     customer: "alice".to_string(),
//!     card: "6222020000000001".to_string(),
//!     asset: "CNY".to_string(),
//!     amount: Amount::from(10_000u32),
//! };
//! let mut order = client.create_topup(&topup, None).await?.into_value();
//! // The bank answers asynchronously: the order is final once it has.
//! while !order.is_final {
//!     tokio::time::sleep(Duration::from_millis(200)).await;
//!     order = client.get_order(&order.id).await?;
//! }
//!
//! // 25.00 CNY to the tea house, retried on overload or a lost answer, paid once.
//! let payment = PaymentBody::new("tea-0001", "alice", "tea-house", "CNY", Amount::from(2_500u32));
//! let key = IdempotencyKey::new("pay-tea-0001")?;
//! let paid = retry(&RetryPolicy::default(), Some(key), |key| {
//!     client.create_payment(&payment, Some(key))
//! })
//! .await?;
//! println!("payment {} is {}", paid.value.id, paid.value.status);
//! let alice = client.get_customer("alice").await?;
//! if let Some(wallet) = alice.balance("wallet", "CNY") {
//!     println!("Alice has {} fen left", wallet.available);
//! }
//! # Ok(())
//! # }
//! ```

pub mod breaks;
pub mod checks;
mod client;
pub mod days;
mod error;
pub mod health;
mod idempotency;
pub mod keys;
pub mod ledger;
pub mod ops;
pub mod orders;
pub mod overview;
pub mod parties;
pub mod payments;
pub mod recon;
pub mod routes;
pub mod switches;
pub mod transfers;
pub mod webhooks;
mod wire;

pub use client::{Client, ClientBuilder, Reply, TIMEOUT_DEFAULT};
pub use error::{ApiError, ClientError};
pub use idempotency::{
    retry, IdempotencyKey, InvalidIdempotencyKey, RetryPolicy, IDEMPOTENCY_KEY_LEN_MAX,
};
pub use routes::{Route, OPERATIONS};
pub use wire::{
    AccountId, Amount, AmountSum, List, Page, Paged, ParseError, Secret, Seq, SignedAmount,
    TransferId, AMOUNT_MINOR_MAX,
};
