//! The client's tests, in one binary: its coverage of docs/openapi.json, the shapes of its
//! bodies against the document's schemas, and calls through it to the real service started
//! in-process.

#![allow(clippy::unwrap_used)]

mod document;
mod errors;
mod idempotency;
mod keys;
mod ledger;
mod operations;
mod requests;
mod responses;
mod signing;
mod support;
