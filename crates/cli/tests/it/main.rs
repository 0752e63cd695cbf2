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
mod payments;
mod recon;
mod refund_outage;
mod serve;
mod settlement;
mod switches;
mod test_mode;
