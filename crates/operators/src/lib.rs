//! Operators' work (运维). `audit` and `actions` are pure; `desk` carries actions out
//! through the ports.
//!
//! - [`audit`]: the audit log — every operator action and configuration change (who, when,
//!   what, why, the ticket, before → after), append-only and hash-chained so that an edit or
//!   a removed entry is found by [`audit::verify`].
//! - [`actions`]: money-moving operator actions (setting the outcome of a status inquiry the
//!   bank never answered, with its evidence), proposed by one operator and, at or above the
//!   configured amount, approved by a second (maker–checker) before they are carried out.
//! - [`desk`]: the operators' desk: proposes, approves, rejects and carries out actions,
//!   each change committed with its audit entry.
//! - [`switches`]: run-time switches (kill, degrade, route) with versions and expiry, and the
//!   contingency plans (预案) made of them, pure.
//! - [`fx`]: exchange rates as operators set them, versioned.
//! - [`port`]: the store they all need (`OpsStore`), implemented on SQLite and PostgreSQL in the
//!   `store` crate.

pub mod actions;
pub mod audit;
pub mod desk;
pub mod fx;
pub mod port;
pub mod switches;

pub use actions::{
    ActionError, ActionKind, ActionState, ApprovalPolicy, OperatorAction, OutcomeClaim, Proposal,
};
pub use audit::{AuditEntry, AuditError, NewAuditEntry};
pub use desk::{AuditCheck, Desk, DeskError, OutcomeRequest, ReturnRequest};
pub use fx::FxRateState;
pub use port::{OpsStore, OpsStoreError};
pub use switches::{
    Board, ChannelTerms, Plan, SharedBoard, Switch, SwitchChange, SwitchError, SwitchState, Traffic,
};
