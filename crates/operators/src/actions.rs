//! Money-moving operator actions, with maker–checker approval.
//!
//! Two kinds ([`ActionKind`]), each carried out through the orders' own state machines —
//! never by a direct ledger edit:
//! - the outcome of a status inquiry (调单) that the bank never answered, set by an operator
//!   from the bank's evidence (a statement line, a call with the bank's operations desk),
//!   handed to the inquiry as if the bank had called back;
//! - a suspended top-up (the wallet refused the money, now in suspense) returned to the card
//!   it came from (原路退回): a card refund from suspense, through the channel it came by.
//!
//! States: `pending_approval` → `approved` → `applied` | `failed`, or `pending_approval` →
//! `rejected`. Below [`ApprovalPolicy::approval_minor`] a proposal is approved as it is made
//! (the maker's own); at or above it a second key must approve, never the maker.

use channels::{ChannelId, FailureReason, Outcome, RequestId, Settled};
use money::{Amount, AssetCode};
use serde::{Deserialize, Serialize};

/// What the operator says the bank did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OutcomeClaim {
    /// The money moved: the bank's reference and its fee.
    Succeeded { channel_ref: String, fee: Amount },
    /// The bank did nothing (no record, or a refusal).
    Failed { detail: String },
}

impl OutcomeClaim {
    /// The channel outcome the inquiry receives.
    pub fn outcome(&self) -> Outcome {
        match self {
            OutcomeClaim::Succeeded { channel_ref, fee } => {
                Outcome::Succeeded(Settled { channel_ref: channel_ref.clone(), fee: *fee })
            }
            OutcomeClaim::Failed { detail } => Outcome::Failed {
                // Set by an operator from the bank's word: the bank never carried it out.
                reason: FailureReason::NeverReceived,
                detail: format!("set by an operator: {detail}"),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActionState {
    PendingApproval,
    /// Approved; being carried out (a crash here is resumed: carrying it out is idempotent).
    Approved,
    Applied,
    Rejected,
    /// Approved, but the inquiry would not take it (resolved meanwhile by the bank's own
    /// answer, say): nothing moved by this action.
    Failed {
        code: String,
        detail: String,
    },
}

impl ActionState {
    pub fn name(&self) -> &'static str {
        match self {
            ActionState::PendingApproval => "pending_approval",
            ActionState::Approved => "approved",
            ActionState::Applied => "applied",
            ActionState::Rejected => "rejected",
            ActionState::Failed { .. } => "failed",
        }
    }

    pub const NAMES: [&'static str; 5] =
        ["pending_approval", "approved", "applied", "rejected", "failed"];
}

/// What an action does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Set the outcome of an inquiry the bank never answered (`claim`).
    #[default]
    SetInquiryOutcome,
    /// Return a suspended top-up (`order`) to its card. `channel` is the channel it came
    /// by, `request_id` the return's request there, and `claim` what the bank did with the
    /// top-up (it took the money: its reference).
    ReturnSuspended,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::SetInquiryOutcome => "set_inquiry_outcome",
            ActionKind::ReturnSuspended => "return_suspended",
        }
    }
}

/// An operator's money-moving action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAction {
    /// `opa_…`, derived from what it acts on and the maker's idempotency: see the server.
    pub id: String,
    /// Actions stored before there were two kinds are inquiry outcomes.
    #[serde(default)]
    pub kind: ActionKind,
    pub channel: ChannelId,
    pub request_id: RequestId,
    /// The order the inquiry answers.
    pub order: String,
    pub asset: AssetCode,
    /// What the order moves: the amount the approval policy weighs.
    pub amount: Amount,
    pub claim: OutcomeClaim,
    /// The bank's evidence, as the operator recorded it.
    pub evidence: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// The key that proposed it.
    pub maker: String,
    /// The key that approved or rejected it (the maker's own for one below the threshold).
    pub checker: Option<String>,
    pub checker_reason: Option<String>,
    pub state: ActionState,
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// What an operator proposes: the fields of an action before a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub id: String,
    pub kind: ActionKind,
    pub channel: ChannelId,
    pub request_id: RequestId,
    pub order: String,
    pub asset: AssetCode,
    pub amount: Amount,
    pub claim: OutcomeClaim,
    pub evidence: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub maker: String,
}

/// Why an operator's step on an action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("the maker of an action cannot approve or reject it")]
    ApproverIsMaker,
    #[error("the action is {state}, not pending approval")]
    NotPending { state: &'static str },
}

impl ActionError {
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::ApproverIsMaker => "approver_is_maker",
            ActionError::NotPending { .. } => "action_not_pending",
        }
    }
}

/// When a second person must approve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Actions moving this much or more (minor units of their asset) need a second key; `0`:
    /// every one does.
    pub approval_minor: u64,
}

impl Default for ApprovalPolicy {
    /// Every money-moving action needs a second person.
    fn default() -> ApprovalPolicy {
        ApprovalPolicy { approval_minor: 0 }
    }
}

impl ApprovalPolicy {
    pub fn needs_approval(&self, amount: Amount) -> bool {
        amount.minor() >= self.approval_minor
    }
}

impl OperatorAction {
    /// A new proposal, in the state the policy gives it: pending a second key, or approved
    /// by its maker when it is below the threshold.
    pub fn propose(proposal: Proposal, policy: ApprovalPolicy, now_ms: u64) -> OperatorAction {
        let needs = policy.needs_approval(proposal.amount);
        let Proposal {
            id,
            kind,
            channel,
            request_id,
            order,
            asset,
            amount,
            claim,
            evidence,
            reason,
            ticket,
            maker,
        } = proposal;
        OperatorAction {
            id,
            kind,
            channel,
            request_id,
            order,
            asset,
            amount,
            claim,
            evidence,
            reason,
            ticket,
            checker: (!needs).then(|| maker.clone()),
            checker_reason: (!needs).then(|| "below the approval threshold".to_owned()),
            maker,
            state: if needs { ActionState::PendingApproval } else { ActionState::Approved },
            version: 1,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    fn decided(
        &self,
        checker: &str,
        reason: &str,
        state: ActionState,
        now_ms: u64,
    ) -> Result<OperatorAction, ActionError> {
        if self.state != ActionState::PendingApproval {
            return Err(ActionError::NotPending { state: self.state.name() });
        }
        if checker == self.maker {
            return Err(ActionError::ApproverIsMaker);
        }
        Ok(OperatorAction {
            checker: Some(checker.to_owned()),
            checker_reason: Some(reason.to_owned()),
            state,
            version: self.version + 1,
            updated_at_ms: now_ms,
            ..self.clone()
        })
    }

    /// A second key approves: the action is to be carried out.
    pub fn approve(
        &self,
        checker: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<OperatorAction, ActionError> {
        self.decided(checker, reason, ActionState::Approved, now_ms)
    }

    pub fn reject(
        &self,
        checker: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<OperatorAction, ActionError> {
        self.decided(checker, reason, ActionState::Rejected, now_ms)
    }

    /// Carried out (`Ok`) or refused by the inquiry (`Err((code, detail))`).
    pub fn finished(&self, result: Result<(), (String, String)>, now_ms: u64) -> OperatorAction {
        let state = match result {
            Ok(()) => ActionState::Applied,
            Err((code, detail)) => ActionState::Failed { code, detail },
        };
        OperatorAction { state, version: self.version + 1, updated_at_ms: now_ms, ..self.clone() }
    }

    /// Approved and not yet carried out: what a restart resumes.
    pub fn is_due(&self) -> bool {
        self.state == ActionState::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(minor: u64) -> Amount {
        Amount::new(minor).expect("amount")
    }

    fn proposal(minor: u64, policy: ApprovalPolicy) -> OperatorAction {
        let proposal = Proposal {
            kind: ActionKind::SetInquiryOutcome,
            id: "opa_1".into(),
            channel: ChannelId::new("bank_a").expect("channel"),
            request_id: RequestId::new("wd_1:payout").expect("request"),
            order: "wd_1".into(),
            asset: AssetCode::new("CNY").expect("asset"),
            amount: amount(minor),
            claim: OutcomeClaim::Succeeded { channel_ref: "a-1".into(), fee: amount(2) },
            evidence: "bank statement line 42".into(),
            reason: "bank confirmed by phone".into(),
            ticket: Some("INC-7".into()),
            maker: "key_maker".into(),
        };
        OperatorAction::propose(proposal, policy, 1_000)
    }

    #[test]
    fn at_or_above_the_threshold_a_second_key_approves_and_never_the_maker() {
        let policy = ApprovalPolicy { approval_minor: 10_000 };
        let pending = proposal(10_000, policy);
        assert_eq!(pending.state, ActionState::PendingApproval);
        assert_eq!(pending.approve("key_maker", "me", 2_000), Err(ActionError::ApproverIsMaker));
        assert_eq!(pending.reject("key_maker", "me", 2_000), Err(ActionError::ApproverIsMaker));
        let approved = pending.approve("key_checker", "seen the statement", 2_000).expect("ok");
        assert_eq!(approved.state, ActionState::Approved);
        assert_eq!(approved.version, 2);
        assert!(approved.is_due());
        assert_eq!(
            approved.approve("key_third", "again", 3_000),
            Err(ActionError::NotPending { state: "approved" })
        );
        let applied = approved.finished(Ok(()), 3_000);
        assert_eq!((applied.state.name(), applied.version), ("applied", 3));
        assert!(!applied.is_due());
    }

    #[test]
    fn below_the_threshold_the_makers_proposal_is_approved_at_once() {
        let action = proposal(9_999, ApprovalPolicy { approval_minor: 10_000 });
        assert_eq!(action.state, ActionState::Approved);
        assert_eq!(action.checker.as_deref(), Some("key_maker"));
        // The default: every money-moving action needs a second person.
        assert_eq!(proposal(1, ApprovalPolicy::default()).state, ActionState::PendingApproval);
    }

    #[test]
    fn a_rejected_action_stays_rejected_and_a_refused_one_says_why() {
        let pending = proposal(500, ApprovalPolicy::default());
        let rejected = pending.reject("key_checker", "wrong order", 2_000).expect("rejected");
        assert_eq!(rejected.state, ActionState::Rejected);
        assert!(rejected.approve("key_checker", "oops", 3_000).is_err());
        let failed = pending
            .approve("key_checker", "ok", 2_000)
            .expect("approved")
            .finished(Err(("inquiry_resolved".into(), "the bank answered".into())), 3_000);
        assert_eq!(failed.state.name(), "failed");
    }

    #[test]
    fn a_claim_becomes_the_channels_final_outcome() {
        let success = OutcomeClaim::Succeeded { channel_ref: "a-9".into(), fee: amount(3) };
        assert_eq!(
            success.outcome(),
            Outcome::Succeeded(Settled { channel_ref: "a-9".into(), fee: amount(3) })
        );
        let failure = OutcomeClaim::Failed { detail: "no record at the bank".into() }.outcome();
        assert!(failure.is_final());
        assert!(matches!(failure, Outcome::Failed { reason: FailureReason::NeverReceived, .. }));
    }
}
