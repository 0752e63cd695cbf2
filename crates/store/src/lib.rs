//! Storage backends. Each domain crate defines a narrow storage port; this crate implements
//! them for SQLite (the embedded default) and PostgreSQL (production). It is the only crate
//! that knows SQL.

pub mod access;
mod codec;
pub mod inquiry;
pub mod naive;
pub mod ops;
pub mod orders;
mod pool;
pub mod postgres;
pub mod recon;
mod sql;
pub mod sqlite;
pub mod webhooks;

pub use access::{PgAccess, SqliteAccess};
pub use inquiry::{PgInquiryStore, SqliteInquiryStore};
pub use ops::{PgOpsStore, SqliteOpsStore};
pub use orders::{PgOrderStore, SqliteOrderStore};
pub use postgres::{PgJournal, PgReader, PgStore, PgTarget};
pub use recon::{PgReconStore, SqliteReconStore};
pub use sqlite::{SqliteReader, SqliteStore};
pub use webhooks::{PgWebhookStore, SqliteWebhookStore};

/// Runs blocking store work (a synchronous PostgreSQL client, which drives a runtime of its
/// own and panics inside tokio's) from wherever it is called: on a worker of a
/// multi-threaded tokio runtime the worker is handed off first (`block_in_place`); anywhere
/// else it just runs.
pub(crate) fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
