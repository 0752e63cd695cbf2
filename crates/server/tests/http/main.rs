//! HTTP-level tests of the `server` crate through the real router, on a temporary SQLite
//! store built the way `qianbao serve` builds it. Checked against docs/api.md.

mod admission;
mod console;
mod edge;
mod endpoints;
mod errors;
mod fuzz;
mod idempotency;
mod layouts;
mod signing;
mod ssrf;
mod support;
mod tenancy;
mod test_mode;
