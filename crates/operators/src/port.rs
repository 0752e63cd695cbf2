//! The store operators' work needs: the audit chain and the actions, each change of an action
//! committed with its audit entry. One port, implemented
//! on SQLite and PostgreSQL by the `store` crate, with one conformance suite for both.

use crate::actions::OperatorAction;
use crate::audit::{AuditEntry, NewAuditEntry};
use crate::fx::FxRateState;
use crate::switches::SwitchState;

#[derive(Debug, thiserror::Error)]
pub enum OpsStoreError {
    #[error("ops store unavailable: {0}")]
    Backend(String),
    #[error("ops store corrupt: {0}")]
    Corrupt(String),
}

pub trait OpsStore: Send + Sync {
    /// Appends `entry` at the end of the chain (numbered and linked in the same transaction:
    /// concurrent appenders from any node form one chain).
    fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, OpsStoreError>;

    /// Entries after `after_seq`, oldest first, at most `limit`.
    fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, OpsStoreError>;

    /// Inserts a new action and appends `audit` in the same transaction; `false` (and
    /// nothing written) when its id exists.
    fn insert_action(
        &self,
        action: &OperatorAction,
        audit: &NewAuditEntry,
    ) -> Result<bool, OpsStoreError>;

    fn action(&self, id: &str) -> Result<Option<OperatorAction>, OpsStoreError>;

    /// Replaces the action if it is still at `expected_version`, appending `audit` in the
    /// same transaction; `false` (and nothing written) when another writer got there first.
    fn update_action(
        &self,
        action: &OperatorAction,
        expected_version: u64,
        audit: &NewAuditEntry,
    ) -> Result<bool, OpsStoreError>;

    /// Actions in `state` (any when `None`), newest first, at most `limit`.
    fn actions(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, OpsStoreError>;

    /// Every switch ever set, at its current version.
    fn switches(&self) -> Result<Vec<SwitchState>, OpsStoreError>;

    /// The versions of the switch `key`, newest first, at most `limit`.
    fn switch_versions(&self, key: &str, limit: usize) -> Result<Vec<SwitchState>, OpsStoreError>;

    /// Writes each state as the next version of its switch — if every switch is still at the
    /// version before (none for version 1) — all or none, with `audit` in the same
    /// transaction; `false` (nothing written) when a switch moved meanwhile.
    fn set_switches(
        &self,
        states: &[SwitchState],
        audit: &NewAuditEntry,
    ) -> Result<bool, OpsStoreError>;

    /// Every exchange rate ever set, at its current version.
    fn fx_rates(&self) -> Result<Vec<FxRateState>, OpsStoreError>;

    /// Writes `rate` as the next version of its pair if the pair is still at the version
    /// before (none for version 1), with `audit` in the same transaction; `false` (nothing
    /// written) when it moved meanwhile.
    fn set_fx_rate(&self, rate: &FxRateState, audit: &NewAuditEntry)
        -> Result<bool, OpsStoreError>;
}
