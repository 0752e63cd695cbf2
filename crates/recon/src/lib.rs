//! Reconciliation (对账): find every cent that differs between a channel's statement and our
//! records of the same channel and business day.
//!
//! This crate is pure — statements and records in, classified lines out — so that the rules
//! that decide where money went wrong can be read, tested and replayed without a database or a
//! network. Storage, scheduling, the API and the postings that resolve breaks live elsewhere.
//!
//! - [`statement`]: the documented statement file (detail and summary rows), parsed whole or
//!   refused whole with the line number, and checked against its published SHA-256.
//! - [`matching`]: totals first (总分对账), then detail matching by a hash join on a ladder of
//!   keys (our request id → the channel's reference → amount within a date window), then
//!   rules (exact, tolerance, date lag across the cut-over). Every line ends in one [`Class`].
//!   The same inputs and rule version give the same result and the same result hash.
//!
//! - [`breaks`]: what a break holds in suspense (挂账), its severity, its states, and the
//!   balanced postings each resolution books (credit the customer, refund the payer, adjust,
//!   write off, recover, force-match).
//! - [`day`]: business days that turn at midnight in a fixed zone (default Asia/Shanghai).
//!
//! Breaks are named by side, never by 长款/短款 (the industry uses those words in opposite
//! senses): `missing_external` — we record a success the channel does not; `missing_internal`
//! — the channel records a success we do not have.

pub mod breaks;
pub mod day;
pub mod matching;
pub mod statement;

pub use day::BusinessDay;
pub use matching::{
    reconcile, Class, Classified, OurRecord, OurStatus, Reconciliation, Rule, Rules, TotalsRow,
    RULE_VERSION,
};
pub use statement::{parse, DetailLine, LineStatus, Statement, StatementError, TxType};
