//! Operators' work (运维), pure: no I/O here.
//!
//! - [`audit`]: the audit log — every operator action and configuration change (who, when,
//!   what, why, the ticket, before → after), append-only and hash-chained so that an edit or
//!   a removed entry is found by [`audit::verify`].
//! - [`actions`]: money-moving operator actions (setting the outcome of a status inquiry the
//!   bank never answered, with its evidence), proposed by one operator and, at or above the
//!   configured amount, approved by a second (maker–checker) before they are carried out.
//! - [`port`]: the store both need (`OpsStore`), implemented on SQLite and PostgreSQL in the
//!   `store` crate.

pub mod actions;
pub mod audit;
pub mod port;

pub use actions::{
    ActionError, ActionState, ApprovalPolicy, OperatorAction, OutcomeClaim, Proposal,
};
pub use audit::{AuditEntry, AuditError, NewAuditEntry};
pub use port::{OpsStore, OpsStoreError};
