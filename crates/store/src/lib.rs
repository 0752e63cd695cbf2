//! Storage backends. Each domain crate defines a narrow storage port; this crate implements
//! them for SQLite (the embedded default) and PostgreSQL (production). It is the only crate
//! that knows SQL.

pub mod access;
mod codec;
pub mod inquiry;
pub mod naive;
pub mod orders;
pub mod postgres;
pub mod sqlite;
pub mod webhooks;

pub use access::{PgAccess, SqliteAccess};
pub use inquiry::{PgInquiryStore, SqliteInquiryStore};
pub use orders::{PgOrderStore, SqliteOrderStore};
pub use postgres::{PgReader, PgStore, PgTarget};
pub use sqlite::{SqliteReader, SqliteStore};
pub use webhooks::{PgWebhookStore, SqliteWebhookStore};
