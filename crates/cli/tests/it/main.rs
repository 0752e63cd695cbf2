//! Tests of the `qianbao` binary as a process.

mod config;
mod console;
mod crash;
mod edge;
mod exceptions;
mod hot_merchant;
mod loadtest;
mod monitoring;
mod ops;
mod outcomes;
mod payments;
mod products;
mod recon;
mod refund_outage;
mod serve;
mod settlement;
mod switches;
mod tenancy;
mod test_mode;
