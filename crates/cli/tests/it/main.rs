//! Tests of the `qianbao` binary as a process.

mod crash;
mod serve;
