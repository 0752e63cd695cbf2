//! One integration test binary for the store crate: the ledger conformance suite run against
//! every backend, the model-based property test, multi-writer concurrency on PostgreSQL, and
//! the conformance suites of the other ports (access, inquiry, orders, webhooks).

mod access;
mod backends;
mod channel_legs;
mod concurrency;
mod conformance;
mod inquiry;
mod layouts;
mod layouts_props;
mod model;
mod ops;
mod order_groups;
mod orders;
mod pg_journal;
mod recon;
mod stored_form;
mod webhooks;
