//! The operators' switches (kill, degrade, route) and contingency plans (预案) (tag
//! `operations`). Every change is a switch's next version, audited; every node reads them
//! each second.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{wire_enum, List};

wire_enum! {
    /// The products a kill switch can name.
    pub enum ProductName {
        Topup = "topup",
        Withdrawal = "withdrawal",
        /// With captures.
        Payment = "payment",
        Refund = "refund",
        PayoutBatch = "payout_batch",
        Settlement = "settlement",
        WalletTransfer = "wallet_transfer",
        PointsGrant = "points_grant",
        /// With posting a pending one.
        Transfer = "transfer",
    }
}

/// Which switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "switch", rename_all = "snake_case")]
pub enum SwitchBody {
    /// Refuse every new money-moving request (503 `switched_off`).
    KillAll,
    KillProduct {
        product: ProductName,
    },
    /// New payments to one merchant, its payout batches and settlements.
    KillMerchant {
        tenant: String,
        merchant: String,
    },
    /// History and list reads answer 503 `degraded`.
    HistoryReadsOff,
    /// Bulk endpoints answer 503 `degraded`.
    BulkOff,
    SettlementPaused,
    /// Webhooks kept, sent once off.
    WebhooksDelayed,
    PayoutsFrozen {
        channel: String,
    },
    ChannelDisabled {
        channel: String,
    },
    ChannelPinned {
        channel: String,
    },
    /// With `value` the weight in permille.
    ChannelWeight {
        channel: String,
    },
}

/// `POST /v1/ops/switches`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetSwitchBody {
    pub target: SwitchBody,
    pub on: bool,
    /// A channel weight's permille (1 to 100,000; 1,000 is neutral).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u32>,
    /// Turns itself back off after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The version you saw (0: never set): 409 `switch_contended` if it is at another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

impl SetSwitchBody {
    pub fn new(target: SwitchBody, on: bool, reason: &str) -> SetSwitchBody {
        SetSwitchBody {
            target,
            on,
            value: None,
            expires_in_ms: None,
            reason: reason.to_string(),
            ticket: None,
            expected_version: None,
        }
    }
}

/// `POST /v1/ops/switches/rollback`: the switch's previous version again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RollbackSwitchBody {
    pub target: SwitchBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// `POST /v1/ops/plans/{name}/run` and `…/rollback`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanBody {
    /// For a per-channel plan (`channel_down`, `recon_shortfall`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Run: turn the plan's switches back off after this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A switch's current version.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct SwitchView {
    /// Its stable name: `kill/all`, `kill/product:topup`, `route/disabled:bank_a`…
    pub key: String,
    /// `kill`, `degrade` or `route`.
    pub kind: String,
    /// The switch as a request names it (`{"switch": "kill_product", "product": "topup"}`).
    pub target: Value,
    /// As last set.
    pub on: bool,
    /// On and not past its expiry: what the service obeys now.
    pub in_force: bool,
    #[serde(default)]
    pub value: Option<u32>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    pub version: u64,
    pub set_by: String,
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// The plan that set it, if one did.
    #[serde(default)]
    pub plan: Option<String>,
    pub set_at_ms: u64,
}

/// A contingency plan.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PlanView {
    /// `channel_down`, `inquiry_backlog`, `database_slow`, `recon_shortfall`.
    pub name: String,
    pub description: String,
    /// The alert that calls for it.
    pub alert: String,
    /// Run for one channel.
    pub per_channel: bool,
    /// The switches it turns on.
    pub switches: Vec<String>,
}

impl Client {
    /// Every switch ever set, at its current version.
    pub async fn list_switches(&self) -> Result<List<SwitchView>, ClientError> {
        self.read(routes::LIST_SWITCHES, &[], Query::new()).await
    }

    /// One switch's versions, newest first; `key` as [`SwitchView::key`].
    pub async fn switch_versions(&self, key: &str) -> Result<List<SwitchView>, ClientError> {
        self.read(routes::SWITCH_VERSIONS, &[], Query::new().opt("key", Some(key))).await
    }

    /// Sets a switch (its next version); the answer lists the switches it changed.
    pub async fn set_switch(
        &self,
        switch: &SetSwitchBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<List<SwitchView>>, ClientError> {
        self.write(routes::SET_SWITCH, &[], Some(switch), idempotency_key).await
    }

    /// Sets a switch back to its previous version, as its next version.
    pub async fn rollback_switch(
        &self,
        rollback: &RollbackSwitchBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<List<SwitchView>>, ClientError> {
        self.write(routes::ROLLBACK_SWITCH, &[], Some(rollback), idempotency_key).await
    }

    pub async fn list_plans(&self) -> Result<List<PlanView>, ClientError> {
        self.read(routes::LIST_PLANS, &[], Query::new()).await
    }

    /// Turns every switch of the plan on in one step and one audit entry.
    pub async fn run_plan(
        &self,
        name: &str,
        plan: &PlanBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<List<SwitchView>>, ClientError> {
        self.write(routes::RUN_PLAN, &[name], Some(plan), idempotency_key).await
    }

    /// Sets every switch of the plan back to its previous version.
    pub async fn rollback_plan(
        &self,
        name: &str,
        plan: &PlanBody,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<List<SwitchView>>, ClientError> {
        self.write(routes::ROLLBACK_PLAN, &[name], Some(plan), idempotency_key).await
    }
}
