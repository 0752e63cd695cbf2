//! The accounting core (账务核心) of Qianbao: a double-entry ledger for many assets.
//!
//! - [`model`]: accounts with four balance fields, transfers, holds, journal records.
//! - [`apply`]: the pure function that applies a batch of commands to loaded state.
//! - [`pipeline`]: the single posting path that batches concurrent callers and commits each
//!   batch durably in one transaction.
//! - [`journal`]: the hash chain over committed batches.
//! - [`verify`]: recomputes the chain and every balance from the journal.
//! - [`port`]: the storage port that backends in the `store` crate implement.
//!
//! The ledger does no network or file I/O of its own and knows no SQL; it reaches storage
//! only through [`port`].

pub mod apply;
pub mod ids;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod port;
pub mod rejection;
pub mod verify;

pub use apply::{Applied, Command, Outcome, TransferResult};
pub use ids::{AccountId, BatchSeq, Clock, ManualClock, Seq, SystemClock, Timestamp, TransferId};
pub use model::*;
pub use pipeline::{Ledger, LedgerError, LedgerHandle, PipelineConfig};
pub use rejection::{AccountRejection, TransferRejection};
