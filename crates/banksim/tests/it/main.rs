//! Integration tests: each starts the real `qianbao-banksim` binary as a process and drives
//! it over HTTP, as the channel gateway will.

#![allow(clippy::unwrap_used)] // test fixtures and helpers: a failed unwrap is a failed test

mod basics;
mod callbacks;
mod cli;
mod conservation;
mod faults;
mod gateway;
mod harness;
mod statements;
