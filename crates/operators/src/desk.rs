//! The operators' desk: carries operators' actions out through the ports — the ops store,
//! the status inquiry and the order store. Every change it makes is committed with its audit
//! entry (`OpsStore`), and a money-moving action reaches the books only as the bank's answer
//! would: through the inquiry, to the order's own state machine.

use std::sync::Arc;

use channels::gateway::Millis;
use channels::inquiry::{Inquirer, InquiryError, InquiryState};
use channels::{ChannelId, RequestId};
use executor::{OrderStore, OrderStoreError};
use payments::OrderId;
use sha2::{Digest, Sha256};

use crate::actions::{
    ActionError, ActionKind, ApprovalPolicy, OperatorAction, OutcomeClaim, Proposal,
};
use crate::audit::{verify, AuditEntry, NewAuditEntry, GENESIS_HASH, TEXT_LEN_MAX};
use crate::fx::FxRateState;
use crate::port::{OpsStore, OpsStoreError};
use crate::switches::{Board, Switch, SwitchChange, SwitchError, SwitchState};

/// The longest evidence an operator records, in characters.
pub const EVIDENCE_LEN_MAX: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no inquiry {0}")]
    InquiryNotFound(String),
    #[error("the inquiry {0} is resolved already: the bank's answer stands")]
    InquiryResolved(String),
    #[error("no order {0}")]
    OrderNotFound(String),
    #[error("order {0} is not a suspended top-up: only one goes back to its card")]
    NotSuspended(String),
    #[error("no action {0}")]
    ActionNotFound(String),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Store(#[from] OpsStoreError),
    #[error("orders: {0}")]
    Orders(#[from] OrderStoreError),
    #[error("inquiry: {0}")]
    Inquiry(#[from] InquiryError),
    #[error(transparent)]
    Switch(#[from] SwitchError),
    #[error("a switch changed meanwhile (another node): read the switches again")]
    SwitchContended,
    #[error("switch {key} is at version {current}, not {expected}: read it again")]
    SwitchVersion { key: String, expected: u64, current: u64 },
    #[error("switch {0} was never set")]
    SwitchNotFound(String),
    #[error("the exchange rate changed meanwhile (another node): read it and set it again")]
    FxRateContended,
}

impl DeskError {
    pub fn code(&self) -> &'static str {
        match self {
            DeskError::Invalid { .. } => "invalid_field",
            DeskError::InquiryNotFound(_) => "inquiry_not_found",
            DeskError::InquiryResolved(_) => "inquiry_resolved",
            DeskError::OrderNotFound(_) => "order_not_found",
            DeskError::NotSuspended(_) => "order_not_suspended",
            DeskError::ActionNotFound(_) => "action_not_found",
            DeskError::Action(error) => error.code(),
            DeskError::Switch(error) => error.code(),
            DeskError::SwitchContended | DeskError::SwitchVersion { .. } => "switch_contended",
            DeskError::SwitchNotFound(_) => "switch_not_found",
            DeskError::FxRateContended => "fx_rate_contended",
            DeskError::Store(_) | DeskError::Orders(_) | DeskError::Inquiry(_) => {
                "store_unavailable"
            }
        }
    }
}

/// Return a suspended top-up to its card: why the wallet cannot take it, and the ticket.
#[derive(Clone, Debug)]
pub struct ReturnRequest {
    pub order: OrderId,
    /// Why the money cannot go to the wallet (closed for good, say), as recorded.
    pub evidence: String,
    pub reason: String,
    pub ticket: Option<String>,
}

/// An action's result: carried out, or why not (`code`, `detail`).
type Applied = Result<(), (String, String)>;

/// An operator's word on a status inquiry the bank never answered.
#[derive(Clone, Debug)]
pub struct OutcomeRequest {
    pub channel: ChannelId,
    pub request_id: RequestId,
    pub claim: OutcomeClaim,
    pub evidence: String,
    pub reason: String,
    pub ticket: Option<String>,
}

/// What the audit chain looks like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheck {
    pub entries: u64,
    pub head_hash: String,
    /// The first entry that does not fit, and why; `None` when the chain verifies.
    pub broken: Option<(u64, String)>,
}

/// The JSON of plain data (strings, numbers, enums): it always serialises.
fn plain_json(value: &impl serde::Serialize) -> serde_json::Value {
    match serde_json::to_value(value) {
        Ok(json) => json,
        Err(error) => unreachable!("plain data serialises: {error}"),
    }
}

/// A page of the chain read at once when verifying it.
const AUDIT_PAGE: usize = 1_000;

pub struct Desk {
    store: Arc<dyn OpsStore>,
    orders: Arc<dyn OrderStore>,
    inquirer: Option<Arc<Inquirer>>,
    /// Carries out returns of suspended top-ups; `None` on a desk without the payment core.
    executor: Option<Arc<executor::Executor>>,
    policy: ApprovalPolicy,
    clock: Arc<dyn Millis>,
}

fn text(field: &'static str, raw: &str, max: usize, required: bool) -> Result<(), DeskError> {
    let len = raw.chars().count();
    if (required && raw.trim().is_empty()) || len > max {
        let least = if required { 1 } else { 0 };
        return Err(DeskError::Invalid { field, message: format!("{least} to {max} characters") });
    }
    Ok(())
}

impl Desk {
    pub fn new(
        store: Arc<dyn OpsStore>,
        orders: Arc<dyn OrderStore>,
        inquirer: Option<Arc<Inquirer>>,
        policy: ApprovalPolicy,
        clock: Arc<dyn Millis>,
    ) -> Desk {
        Desk { store, orders, inquirer, executor: None, policy, clock }
    }

    /// Returns suspended top-ups to their cards through `executor`.
    pub fn with_executor(mut self, executor: Arc<executor::Executor>) -> Desk {
        self.executor = Some(executor);
        self
    }

    pub fn policy(&self) -> ApprovalPolicy {
        self.policy
    }

    /// Records an operator's action or configuration change done elsewhere (an inquiry asked
    /// now, a key made): who, what, why, before → after.
    #[allow(clippy::too_many_arguments)] // each is a column of the entry
    pub fn record(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        reason: &str,
        ticket: Option<&str>,
        before: serde_json::Value,
        after: serde_json::Value,
    ) -> Result<AuditEntry, DeskError> {
        Ok(self.store.append_audit(&NewAuditEntry {
            at_ms: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            reason: reason.to_owned(),
            ticket: ticket.map(str::to_owned),
            before,
            after,
        })?)
    }

    fn entry(
        &self,
        actor: &str,
        what: &str,
        before: Option<&OperatorAction>,
        after: &OperatorAction,
        reason: &str,
    ) -> NewAuditEntry {
        let json = |action: &OperatorAction| plain_json(action);
        NewAuditEntry {
            at_ms: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: what.to_owned(),
            subject: after.id.clone(),
            reason: reason.to_owned(),
            ticket: after.ticket.clone(),
            before: before.map(json).unwrap_or_default(),
            after: json(after),
        }
    }

    /// Proposes setting an unanswered inquiry's outcome. Below the approval threshold it is
    /// carried out at once; otherwise it waits for a second key. The same proposal by the
    /// same maker again is the same action (`false`: it existed).
    pub async fn propose_outcome(
        &self,
        maker: &str,
        request: OutcomeRequest,
    ) -> Result<(OperatorAction, bool), DeskError> {
        text("evidence", &request.evidence, EVIDENCE_LEN_MAX, true)?;
        text("reason", &request.reason, TEXT_LEN_MAX, true)?;
        if let Some(ticket) = &request.ticket {
            text("ticket", ticket, TEXT_LEN_MAX, false)?;
        }
        if let OutcomeClaim::Succeeded { channel_ref, .. } = &request.claim {
            text("channel_ref", channel_ref, TEXT_LEN_MAX, true)?;
        }
        let name = format!("{}/{}", request.channel, request.request_id);
        let inquirer =
            self.inquirer.as_ref().ok_or_else(|| DeskError::InquiryNotFound(name.clone()))?;
        let task = inquirer
            .store()
            .get(&request.channel, &request.request_id)?
            .ok_or_else(|| DeskError::InquiryNotFound(name.clone()))?;
        if matches!(task.state, InquiryState::Resolved { .. }) {
            return Err(DeskError::InquiryResolved(name));
        }
        let order_id = OrderId::new(task.owner.as_str())
            .map_err(|_| DeskError::OrderNotFound(task.owner.clone()))?;
        let order = self
            .orders
            .get(&order_id)?
            .ok_or_else(|| DeskError::OrderNotFound(task.owner.clone()))?;
        let claim_json = plain_json(&request.claim).to_string();
        let digest = Sha256::new()
            .chain_update(b"qianbao.ops.action\0")
            .chain_update(&name)
            .chain_update([0])
            .chain_update(&claim_json)
            .chain_update([0])
            .chain_update(maker)
            .finalize();
        let proposal = Proposal {
            kind: ActionKind::SetInquiryOutcome,
            id: format!("opa_{}", &hex::encode(digest)[..24]),
            channel: request.channel,
            request_id: request.request_id,
            order: task.owner.clone(),
            asset: order.order.asset(),
            amount: order.order.amount(),
            claim: request.claim,
            evidence: request.evidence,
            reason: request.reason,
            ticket: request.ticket,
            maker: maker.to_owned(),
        };
        self.file(maker, proposal).await
    }

    /// Proposes returning a suspended top-up to the card it came from (原路退回): the wallet
    /// refused the money, which waits in suspense. Approved, it becomes a card refund from
    /// suspense through the top-up's channel. The same proposal by the same maker again is
    /// the same action; after a return that failed (its money back in suspense) a new
    /// proposal is a new action.
    pub async fn propose_return(
        &self,
        maker: &str,
        request: ReturnRequest,
    ) -> Result<(OperatorAction, bool), DeskError> {
        text("evidence", &request.evidence, EVIDENCE_LEN_MAX, true)?;
        text("reason", &request.reason, TEXT_LEN_MAX, true)?;
        if let Some(ticket) = &request.ticket {
            text("ticket", ticket, TEXT_LEN_MAX, false)?;
        }
        let name = request.order.to_string();
        let record = self
            .orders
            .get(&request.order)?
            .ok_or_else(|| DeskError::OrderNotFound(name.clone()))?;
        let payments::Order::Topup(flow) = &record.order else {
            return Err(DeskError::NotSuspended(name));
        };
        let payments::topup::TopUpState::Suspended { channel, settled, .. } = &flow.state else {
            return Err(DeskError::NotSuspended(name));
        };
        // Returns tried before: after a failed one, the next proposal is another action.
        let tried = self.orders.children_of(&request.order)?.len();
        let digest = Sha256::new()
            .chain_update(b"qianbao.ops.return\0")
            .chain_update(&name)
            .chain_update([0])
            .chain_update(tried.to_string())
            .chain_update([0])
            .chain_update(maker)
            .finalize();
        let id = format!("opa_{}", &hex::encode(digest)[..24]);
        let refund = executor::return_order_id(&record.tenant, &request.order, &id);
        let request_id =
            RequestId::new(format!("{refund}:{}", payments::Step::RefundReturn.as_str()))
                .map_err(|_| DeskError::OrderNotFound(name.clone()))?;
        let proposal = Proposal {
            id,
            kind: ActionKind::ReturnSuspended,
            channel: channel.clone(),
            request_id,
            order: name,
            asset: flow.asset,
            amount: flow.amount,
            claim: OutcomeClaim::Succeeded {
                channel_ref: settled.channel_ref.clone(),
                fee: settled.fee,
            },
            evidence: request.evidence,
            reason: request.reason,
            ticket: request.ticket,
            maker: maker.to_owned(),
        };
        self.file(maker, proposal).await
    }

    /// Stores a proposal with its audit entry, in the state the approval policy gives it,
    /// and carries it out at once when no second key is needed. The same proposal again is
    /// the action already stored (`false`).
    async fn file(
        &self,
        maker: &str,
        proposal: Proposal,
    ) -> Result<(OperatorAction, bool), DeskError> {
        let action = OperatorAction::propose(proposal, self.policy, self.clock.now_ms());
        let said = self.entry(maker, "action.propose", None, &action, &action.reason);
        if !self.store.insert_action(&action, &said)? {
            let existing = self.action(&action.id)?;
            return Ok((existing, false));
        }
        let action = if action.is_due() { self.carry_out(action).await? } else { action };
        Ok((action, true))
    }

    pub fn action(&self, id: &str) -> Result<OperatorAction, DeskError> {
        self.store.action(id)?.ok_or_else(|| DeskError::ActionNotFound(id.to_owned()))
    }

    pub fn actions(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, DeskError> {
        Ok(self.store.actions(state, limit)?)
    }

    /// A second key approves a pending action, which is then carried out.
    pub async fn approve(
        &self,
        checker: &str,
        id: &str,
        reason: &str,
    ) -> Result<OperatorAction, DeskError> {
        text("reason", reason, TEXT_LEN_MAX, true)?;
        let action = self.action(id)?;
        let approved = action.approve(checker, reason, self.clock.now_ms())?;
        let said = self.entry(checker, "action.approve", Some(&action), &approved, reason);
        if !self.store.update_action(&approved, action.version, &said)? {
            // Another approver or a restart got there first: its result stands.
            return self.action(id);
        }
        self.carry_out(approved).await
    }

    pub fn reject(
        &self,
        checker: &str,
        id: &str,
        reason: &str,
    ) -> Result<OperatorAction, DeskError> {
        text("reason", reason, TEXT_LEN_MAX, true)?;
        let action = self.action(id)?;
        let rejected = action.reject(checker, reason, self.clock.now_ms())?;
        let said = self.entry(checker, "action.reject", Some(&action), &rejected, reason);
        if !self.store.update_action(&rejected, action.version, &said)? {
            return self.action(id);
        }
        Ok(rejected)
    }

    /// Hands an approved action's outcome to its inquiry, as the bank's callback would: the
    /// order completes through its own state machine. Idempotent (a resolved inquiry takes
    /// nothing twice), so a crash before the action is marked is resumed safely.
    async fn carry_out(&self, action: OperatorAction) -> Result<OperatorAction, DeskError> {
        let result = match action.kind {
            ActionKind::SetInquiryOutcome => self.answer_inquiry(&action).await?,
            ActionKind::ReturnSuspended => self.return_to_card(&action).await?,
        };
        let what = if result.is_ok() { "action.apply" } else { "action.fail" };
        let finished = action.finished(result, self.clock.now_ms());
        let said = self.entry("system", what, Some(&action), &finished, "carried out");
        if !self.store.update_action(&finished, action.version, &said)? {
            return self.action(&action.id);
        }
        Ok(finished)
    }

    /// Places the return of a suspended top-up: a card refund from suspense, named by the
    /// action (so a retry after a crash finds the same one). `Err((code, detail))`: it
    /// cannot be done (no longer suspended, or a return of it is live already).
    async fn return_to_card(&self, action: &OperatorAction) -> Result<Applied, DeskError> {
        let executor = self.executor.as_ref().ok_or_else(|| {
            DeskError::Orders(OrderStoreError::Backend("this node runs no payment core".into()))
        })?;
        let topup = OrderId::new(action.order.as_str())
            .map_err(|_| DeskError::OrderNotFound(action.order.clone()))?;
        match executor.return_suspended(&topup, &action.id).await {
            Ok(_) => Ok(Ok(())),
            Err(
                error @ (executor::ExecError::NotRefundable(..)
                | executor::ExecError::RefundExceedsPayment),
            ) => Ok(Err(("return_refused".to_owned(), error.to_string()))),
            Err(error) => Err(DeskError::Orders(OrderStoreError::Backend(error.to_string()))),
        }
    }

    /// Hands an inquiry outcome to its inquiry; `Err((code, detail))` when the inquiry took
    /// another answer first.
    async fn answer_inquiry(&self, action: &OperatorAction) -> Result<Applied, DeskError> {
        let name = format!("{}/{}", action.channel, action.request_id);
        let inquirer = self.inquirer.as_ref().ok_or(DeskError::InquiryNotFound(name))?;
        let outcome = action.claim.outcome();
        let taken = inquirer.on_callback(&action.channel, &action.request_id, &outcome).await?;
        let result = if taken {
            Ok(())
        } else {
            match inquirer.store().get(&action.channel, &action.request_id)? {
                // Taken before a crash that came before this action was marked.
                Some(task) if matches!(&task.state, InquiryState::Resolved { outcome: o, .. } if *o == outcome) => {
                    Ok(())
                }
                _ => Err((
                    "inquiry_resolved".to_owned(),
                    "the inquiry was resolved by the bank's own answer first".to_owned(),
                )),
            }
        };
        Ok(result)
    }

    /// Carries out actions approved but not yet carried out (a crash between the two).
    pub async fn resume(&self) -> Result<usize, DeskError> {
        let due = self.store.actions(Some("approved"), 100)?;
        let mut carried = 0;
        // One action that cannot be carried out now does not hold back the others.
        for action in due {
            let id = action.id.clone();
            match self.carry_out(action).await {
                Ok(_) => carried += 1,
                Err(error) => tracing::warn!(action = %id, %error, "an approved action waits"),
            }
        }
        Ok(carried)
    }

    /// Every switch at its current version.
    pub fn board(&self) -> Result<Board, DeskError> {
        Ok(Board::new(self.store.switches()?))
    }

    /// A switch's versions, newest first.
    pub fn switch_versions(&self, key: &str, limit: usize) -> Result<Vec<SwitchState>, DeskError> {
        Ok(self.store.switch_versions(key, limit)?)
    }

    /// Sets switches in one audited step (`what`: `switch.set`, `plan.run`): each becomes its
    /// next version. 409 `switch_contended` if one changed meanwhile (another node).
    #[allow(clippy::too_many_arguments)] // each is a column of the change or its entry
    pub fn set_switches(
        &self,
        actor: &str,
        what: &str,
        subject: &str,
        changes: &[SwitchChange],
        expires_in_ms: Option<u64>,
        reason: &str,
        ticket: Option<&str>,
        plan: Option<&str>,
    ) -> Result<Vec<SwitchState>, DeskError> {
        text("reason", reason, TEXT_LEN_MAX, true)?;
        for change in changes {
            change.switch.check(change.on, change.value)?;
        }
        let now_ms = self.clock.now_ms();
        let current = self.store.switches()?;
        for change in changes {
            let seen = current.iter().find(|state| state.switch == change.switch);
            at_version(&change.switch, seen, change.expected_version)?;
        }
        let next: Vec<SwitchState> = changes
            .iter()
            .map(|change| {
                let before = current.iter().find(|state| state.switch == change.switch);
                SwitchState {
                    switch: change.switch.clone(),
                    on: change.on,
                    value: change.value.filter(|_| change.on),
                    expires_at_ms: expires_in_ms
                        .filter(|_| change.on)
                        .map(|ms| now_ms.saturating_add(ms)),
                    version: before.map_or(1, |state| state.version + 1),
                    set_by: actor.to_owned(),
                    reason: reason.to_owned(),
                    ticket: ticket.map(str::to_owned),
                    plan: plan.map(str::to_owned),
                    set_at_ms: now_ms,
                }
            })
            .collect();
        let before: Vec<&SwitchState> = next
            .iter()
            .filter_map(|state| current.iter().find(|c| c.switch == state.switch))
            .collect();
        self.write_switches(actor, what, subject, &before, next, reason, ticket)
    }

    #[allow(clippy::too_many_arguments)] // each is a column of the entry
    fn write_switches(
        &self,
        actor: &str,
        what: &str,
        subject: &str,
        before: &[&SwitchState],
        next: Vec<SwitchState>,
        reason: &str,
        ticket: Option<&str>,
    ) -> Result<Vec<SwitchState>, DeskError> {
        let said = NewAuditEntry {
            at_ms: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: what.to_owned(),
            subject: subject.to_owned(),
            reason: reason.to_owned(),
            ticket: ticket.map(str::to_owned),
            before: plain_json(&before),
            after: plain_json(&next),
        };
        if !self.store.set_switches(&next, &said)? {
            return Err(DeskError::SwitchContended);
        }
        Ok(next)
    }

    /// Sets each named switch back to its previous version (off, for one set only once), as
    /// its next version, in one audited step (`what`: `switch.rollback`, `plan.rollback`).
    /// Each switch comes with the version its caller saw, checked as in `set_switches`.
    #[allow(clippy::too_many_arguments)] // each is a column of the change or its entry
    pub fn rollback_switches(
        &self,
        actor: &str,
        what: &str,
        subject: &str,
        switches: &[(Switch, Option<u64>)],
        reason: &str,
        ticket: Option<&str>,
        plan: Option<&str>,
    ) -> Result<Vec<SwitchState>, DeskError> {
        text("reason", reason, TEXT_LEN_MAX, true)?;
        let now_ms = self.clock.now_ms();
        let mut before = Vec::new();
        let mut next = Vec::new();
        for (switch, expected_version) in switches {
            let versions = self.store.switch_versions(&switch.key(), 2)?;
            let Some(current) = versions.first() else {
                return Err(DeskError::SwitchNotFound(switch.key()));
            };
            at_version(switch, Some(current), *expected_version)?;
            let previous = versions.get(1);
            next.push(SwitchState {
                switch: switch.clone(),
                on: previous.is_some_and(|p| p.on),
                value: previous.and_then(|p| p.value),
                expires_at_ms: previous.and_then(|p| p.expires_at_ms),
                version: current.version + 1,
                set_by: actor.to_owned(),
                reason: reason.to_owned(),
                ticket: ticket.map(str::to_owned),
                plan: plan.map(str::to_owned),
                set_at_ms: now_ms,
            });
            before.push(current.clone());
        }
        let before: Vec<&SwitchState> = before.iter().collect();
        self.write_switches(actor, what, subject, &before, next, reason, ticket)
    }

    /// Turns off every switch past its expiry (the auto-revert); how many.
    pub fn expire(&self) -> Result<usize, DeskError> {
        let now_ms = self.clock.now_ms();
        let expired: Vec<SwitchState> = self
            .store
            .switches()?
            .into_iter()
            .filter(|state| state.is_expired_at(now_ms))
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        // Each turned off as the next version of the version seen expired: if an operator
        // changed it meanwhile (on another node), the write is refused, never overwrites.
        let next: Vec<SwitchState> = expired
            .iter()
            .map(|state| SwitchState {
                on: false,
                value: None,
                expires_at_ms: None,
                version: state.version + 1,
                set_by: "system".to_owned(),
                reason: "expired".to_owned(),
                ticket: None,
                set_at_ms: now_ms,
                ..state.clone()
            })
            .collect();
        let subject = expired.iter().map(|s| s.switch.key()).collect::<Vec<_>>().join(",");
        let before: Vec<&SwitchState> = expired.iter().collect();
        match self.write_switches(
            "system",
            "switch.expire",
            &subject,
            &before,
            next,
            "expired",
            None,
        ) {
            Ok(states) => Ok(states.len()),
            // Changed meanwhile, or another node reverted it first: read again next pass.
            Err(DeskError::SwitchContended) => Ok(0),
            Err(error) => Err(error),
        }
    }

    /// Every exchange rate ever set, at its current version.
    pub fn fx_rates(&self) -> Result<Vec<FxRateState>, DeskError> {
        Ok(self.store.fx_rates()?)
    }

    /// Sets a pair's exchange rate as its next version, audited (`fx.set`, before → after).
    pub fn set_fx_rate(
        &self,
        actor: &str,
        asset: money::AssetCode,
        funding: money::AssetCode,
        rate: payments::booking::Rate,
        reason: &str,
    ) -> Result<FxRateState, DeskError> {
        text("reason", reason, TEXT_LEN_MAX, true)?;
        let before =
            self.store.fx_rates()?.into_iter().find(|r| r.asset == asset && r.funding == funding);
        let next = FxRateState {
            asset,
            funding,
            rate,
            version: before.as_ref().map_or(1, |r| r.version + 1),
            set_by: actor.to_owned(),
            reason: reason.to_owned(),
            set_at_ms: self.clock.now_ms(),
        };
        let said = NewAuditEntry {
            at_ms: next.set_at_ms,
            actor: actor.to_owned(),
            action: "fx.set".to_owned(),
            subject: next.pair(),
            reason: reason.to_owned(),
            ticket: None,
            before: before.as_ref().map(plain_json).unwrap_or_default(),
            after: plain_json(&next),
        };
        if !self.store.set_fx_rate(&next, &said)? {
            return Err(DeskError::FxRateContended);
        }
        Ok(next)
    }

    /// A page of the audit chain, oldest first.
    pub fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, DeskError> {
        Ok(self.store.audit(after_seq, limit)?)
    }

    /// Recomputes the whole chain from its first entry.
    pub fn verify_audit(&self) -> Result<AuditCheck, DeskError> {
        let (mut seq, mut hash) = (0, GENESIS_HASH.to_owned());
        loop {
            let page = self.store.audit(seq, AUDIT_PAGE)?;
            if page.is_empty() {
                return Ok(AuditCheck { entries: seq, head_hash: hash, broken: None });
            }
            match verify(seq, &hash, &page) {
                Ok(head) => (seq, hash) = head,
                Err(error) => {
                    return Ok(AuditCheck {
                        entries: seq,
                        head_hash: hash,
                        broken: Some((error.seq(), error.to_string())),
                    })
                }
            }
        }
    }
}

/// Refuses a change made on a version of the switch other than the one its caller saw
/// (race-free: the store takes only the version after the one read, see `write_switches`).
fn at_version(
    switch: &Switch,
    current: Option<&SwitchState>,
    expected_version: Option<u64>,
) -> Result<(), DeskError> {
    let current_version = current.map_or(0, |state| state.version);
    match expected_version {
        Some(expected) if expected != current_version => {
            Err(DeskError::SwitchVersion { key: switch.key(), expected, current: current_version })
        }
        _ => Ok(()),
    }
}
