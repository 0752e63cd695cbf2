//! One integration test binary for the store crate: the ledger conformance suite run against
//! every backend, the model-based property test, and multi-writer concurrency on PostgreSQL.

mod access;
mod backends;
mod concurrency;
mod conformance;
mod inquiry;
mod layouts;
mod layouts_props;
mod model;
