//! `banksim`: a bank and payment-channel simulator, run as its own process
//! (`qianbao-banksim serve`), to develop, test and stress-test the channel gateway against
//! something that misbehaves like real channels do — slowly, wrongly, or not at all — but
//! reproducibly.
//!
//! Each channel keeps its own books (customers' accounts, the platform's reserve account at
//! the channel, the channel's fee income) and an operation log keyed by the platform's
//! request id. The protocol is in `docs/banksim.md`.
//!
//! Layers, pure to impure: `fees`, `books`, `faults` and `throttle` are pure (no clock, no
//! I/O: time is an argument); `channel` joins books, faults and the capacity limit under one
//! lock; `api` is the HTTP edge; `callbacks` is the only outgoing I/O; `serve` is the
//! connection loop that can drop a connection on purpose.
//!
//! Refusals at the door (`down = "refuse"`, the capacity limit `capacity_per_s`, a full
//! operation log) are decided before a request touches the books, and answered `503`: the
//! one answer that tells the gateway the bank certainly did nothing, so it may try another
//! channel.

pub mod api;
pub mod books;
pub mod callbacks;
pub mod channel;
pub mod config;
pub mod faults;
pub mod fees;
pub mod ids;
pub mod serve;
pub mod signing;
pub mod statement;
pub mod throttle;
pub mod time;
pub mod view;
