//! Routing (路由): which channels may carry a request (rules), in which order (a live score
//! from success rate, latency and cost over the health window), and what operators changed at
//! run time (pin, weight, disable: the contingency plans, 预案), each change recorded.
//!
//! The score is a ranking heuristic, not money, so it is a float. Success dominates (it is
//! raised to a high power): a channel whose error rate climbs loses its traffic after a few
//! calls. A channel that gets no traffic has its window empty out, falls back to the prior,
//! and is tried again, which is how a recovered channel wins its traffic back.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;

use money::{Amount, AssetCode};
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::health::HealthSnapshot;
use crate::limits::LimitsConfig;
use crate::model::{ChannelId, ChannelRequest, Operation};

/// What a channel can carry and what it costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelProfile {
    pub id: ChannelId,
    pub operations: Vec<Operation>,
    pub assets: Vec<AssetCode>,
    pub amount_min: Amount,
    pub amount_max: Amount,
    /// Prefixes of the accounts (bank identification numbers) it reaches; empty: all.
    #[serde(default)]
    pub account_prefixes: Vec<String>,
    pub fee_fixed: Amount,
    pub fee_bps: u32,
    /// How long a call may take before its outcome is unknown.
    pub timeout_ms: u64,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
}

impl ChannelProfile {
    /// Whether the rules let this channel carry `request`.
    pub fn accepts(&self, request: &ChannelRequest) -> bool {
        self.operations.contains(&request.operation)
            && self.assets.contains(&request.asset)
            && request.amount >= self.amount_min
            && request.amount <= self.amount_max
            && (self.account_prefixes.is_empty()
                || self.account_prefixes.iter().any(|prefix| request.account.starts_with(prefix)))
    }

    /// The fee for `amount`, in minor units, rounded up (a channel never charges a fraction
    /// of a minor unit less than its rate).
    pub fn fee_minor(&self, amount: Amount) -> u128 {
        let variable = (u128::from(amount.minor()) * u128::from(self.fee_bps)).div_ceil(10_000);
        u128::from(self.fee_fixed.minor()) + variable
    }
}

/// Operators' run-time controls of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelControl {
    pub disabled: bool,
    /// Pinned channels are the only candidates while any pinned one accepts a request.
    pub pinned: bool,
    /// Multiplies the score; 1000 is neutral.
    pub weight_permille: u32,
}

impl Default for ChannelControl {
    fn default() -> ChannelControl {
        ChannelControl { disabled: false, pinned: false, weight_permille: 1000 }
    }
}

/// One operator action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlAction {
    Disable,
    Enable,
    Pin,
    Unpin,
    Weight { permille: u32 },
}

/// A recorded change: who did what to which channel, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlChange {
    pub at_ms: u64,
    pub channel: ChannelId,
    pub action: ControlAction,
    pub operator: String,
    pub reason: String,
}

/// How the score weighs its parts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoringConfig {
    /// Calls the prior is worth, and its success rate in permille: a channel with no
    /// recent calls is assumed this good.
    pub prior_calls: u64,
    pub prior_success_permille: u64,
    /// Power the success rate is raised to.
    pub success_exponent: i32,
    /// Latency at which the latency factor is one half.
    pub latency_ref_ms: u64,
    /// Effective cost (basis points of the amount) at which the cost factor is one half.
    pub cost_ref_bps: u64,
}

impl Default for ScoringConfig {
    fn default() -> ScoringConfig {
        ScoringConfig {
            prior_calls: 20,
            prior_success_permille: 950,
            success_exponent: 8,
            latency_ref_ms: 500,
            cost_ref_bps: 100,
        }
    }
}

/// A candidate for a request, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    pub channel: ChannelId,
    pub score: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    #[error("no channel {0}")]
    UnknownChannel(ChannelId),
    #[error("a weight must be 1 to 100000 permille")]
    InvalidWeight,
}

#[derive(Clone, Debug, Default)]
pub struct Router {
    profiles: BTreeMap<ChannelId, ChannelProfile>,
    controls: BTreeMap<ChannelId, ChannelControl>,
    changes: Vec<ControlChange>,
    scoring: ScoringConfig,
}

impl Router {
    pub fn new(profiles: Vec<ChannelProfile>, scoring: ScoringConfig) -> Router {
        Router {
            controls: profiles.iter().map(|p| (p.id.clone(), ChannelControl::default())).collect(),
            profiles: profiles.into_iter().map(|p| (p.id.clone(), p)).collect(),
            changes: Vec::new(),
            scoring,
        }
    }

    pub fn profile(&self, channel: &ChannelId) -> Option<&ChannelProfile> {
        self.profiles.get(channel)
    }

    /// Routes by this fee rate for `channel` (what it charges us, per 10,000) instead of
    /// its configured one; `None` restores the configured rate. An operator's switch, for
    /// a channel that announced new prices before its configuration is changed.
    pub fn set_fee_bps(&mut self, channel: &ChannelId, fee_bps: u32) {
        if let Some(profile) = self.profiles.get_mut(channel) {
            profile.fee_bps = fee_bps;
        }
    }

    pub fn profiles(&self) -> impl Iterator<Item = &ChannelProfile> {
        self.profiles.values()
    }

    pub fn control(&self, channel: &ChannelId) -> Option<ChannelControl> {
        self.controls.get(channel).copied()
    }

    /// Every operator change so far, oldest first.
    pub fn changes(&self) -> &[ControlChange] {
        &self.changes
    }

    /// Applies and records an operator's action.
    pub fn apply(&mut self, change: ControlChange) -> Result<ChannelControl, RouterError> {
        let control = self
            .controls
            .get_mut(&change.channel)
            .ok_or_else(|| RouterError::UnknownChannel(change.channel.clone()))?;
        match change.action {
            ControlAction::Disable => control.disabled = true,
            ControlAction::Enable => control.disabled = false,
            ControlAction::Pin => control.pinned = true,
            ControlAction::Unpin => control.pinned = false,
            ControlAction::Weight { permille } => {
                if !(1..=100_000).contains(&permille) {
                    return Err(RouterError::InvalidWeight);
                }
                control.weight_permille = permille;
            }
        }
        let control = *control;
        tracing::info!(
            channel = %change.channel, action = ?change.action, operator = %change.operator,
            reason = %change.reason, "channel control changed"
        );
        self.changes.push(change);
        Ok(control)
    }

    /// The channels that may carry `request`, best first. `health` gives each channel's
    /// current window.
    pub fn rank(
        &self,
        request: &ChannelRequest,
        health: impl Fn(&ChannelId) -> HealthSnapshot,
    ) -> Vec<Ranked> {
        let eligible: Vec<(&ChannelProfile, ChannelControl)> = self
            .profiles
            .values()
            .filter(|profile| profile.accepts(request))
            .filter_map(|profile| {
                let control = self.controls.get(&profile.id).copied().unwrap_or_default();
                (!control.disabled).then_some((profile, control))
            })
            .collect();
        let any_pinned = eligible.iter().any(|(_, control)| control.pinned);
        let mut ranked: Vec<Ranked> = eligible
            .into_iter()
            .filter(|(_, control)| !any_pinned || control.pinned)
            .map(|(profile, control)| Ranked {
                channel: profile.id.clone(),
                score: self.score(profile, control, request.amount, health(&profile.id)),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.channel.cmp(&b.channel)));
        ranked
    }

    fn score(
        &self,
        profile: &ChannelProfile,
        control: ChannelControl,
        amount: Amount,
        health: HealthSnapshot,
    ) -> f64 {
        let scoring = &self.scoring;
        let successes = health.calls.saturating_sub(health.errors) as f64
            + (scoring.prior_calls * scoring.prior_success_permille) as f64 / 1000.0;
        let calls = (health.calls + scoring.prior_calls).max(1) as f64;
        let success = (successes / calls).clamp(0.0, 1.0).powi(scoring.success_exponent);
        let latency_ms = health.mean_latency_ms().unwrap_or(scoring.latency_ref_ms) as f64;
        let latency = scoring.latency_ref_ms as f64 / (scoring.latency_ref_ms as f64 + latency_ms);
        let cost_bps = (profile.fee_minor(amount) * 10_000)
            .checked_div(u128::from(amount.minor()))
            .unwrap_or(0) as f64;
        let cost = scoring.cost_ref_bps as f64 / (scoring.cost_ref_bps as f64 + cost_bps);
        success * latency * cost * f64::from(control.weight_permille) / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RequestId;

    fn profile(id: &str, fee_bps: u32) -> ChannelProfile {
        ChannelProfile {
            id: ChannelId::new(id).unwrap(),
            operations: vec![Operation::Debit, Operation::Payout],
            assets: vec![AssetCode::new("CNY").unwrap()],
            amount_min: Amount::new(1).unwrap(),
            amount_max: Amount::new(1_000_000).unwrap(),
            account_prefixes: vec![],
            fee_fixed: Amount::ZERO,
            fee_bps,
            timeout_ms: 1_000,
            limits: LimitsConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }

    fn request(amount: u64) -> ChannelRequest {
        ChannelRequest {
            request_id: RequestId::new("r1").unwrap(),
            operation: Operation::Debit,
            account: "6222000011112222".into(),
            asset: AssetCode::new("CNY").unwrap(),
            amount: Amount::new(amount).unwrap(),
            original_request_id: None,
        }
    }

    fn names(ranked: &[Ranked]) -> Vec<&str> {
        ranked.iter().map(|r| r.channel.as_str()).collect()
    }

    fn change(channel: &str, action: ControlAction) -> ControlChange {
        ControlChange {
            at_ms: 1,
            channel: ChannelId::new(channel).unwrap(),
            action,
            operator: "ops".into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn cheaper_wins_when_equally_healthy_and_errors_outweigh_price() {
        let router =
            Router::new(vec![profile("cheap", 10), profile("dear", 60)], ScoringConfig::default());
        let quiet = |_: &ChannelId| HealthSnapshot::default();
        assert_eq!(names(&router.rank(&request(10_000), quiet)), ["cheap", "dear"]);
        let cheap_failing = |id: &ChannelId| {
            if id.as_str() == "cheap" {
                HealthSnapshot { calls: 10, errors: 5, slow_calls: 0, latency_ms_sum: 1_000 }
            } else {
                HealthSnapshot { calls: 10, errors: 0, slow_calls: 0, latency_ms_sum: 1_000 }
            }
        };
        assert_eq!(names(&router.rank(&request(10_000), cheap_failing)), ["dear", "cheap"]);
    }

    #[test]
    fn rules_filter_and_operators_disable_pin_and_weigh() {
        let mut narrow = profile("narrow", 0);
        narrow.amount_max = Amount::new(100).unwrap();
        narrow.account_prefixes = vec!["6222".into()];
        let mut router = Router::new(vec![narrow, profile("wide", 50)], ScoringConfig::default());
        let quiet = |_: &ChannelId| HealthSnapshot::default();
        assert_eq!(names(&router.rank(&request(100), quiet)), ["narrow", "wide"]);
        assert_eq!(names(&router.rank(&request(101), quiet)), ["wide"], "amount rule");
        let mut other_bank = request(50);
        other_bank.account = "4000".into();
        assert_eq!(names(&router.rank(&other_bank, quiet)), ["wide"], "bank rule");

        router.apply(change("narrow", ControlAction::Disable)).unwrap();
        assert_eq!(names(&router.rank(&request(100), quiet)), ["wide"]);
        router.apply(change("narrow", ControlAction::Enable)).unwrap();
        router.apply(change("wide", ControlAction::Pin)).unwrap();
        assert_eq!(names(&router.rank(&request(100), quiet)), ["wide"], "pinned only");
        router.apply(change("wide", ControlAction::Unpin)).unwrap();
        router.apply(change("wide", ControlAction::Weight { permille: 100_000 })).unwrap();
        assert_eq!(names(&router.rank(&request(100), quiet)), ["wide", "narrow"]);
        assert_eq!(router.changes().len(), 5, "every change is recorded");
        assert_eq!(
            router.apply(change("nope", ControlAction::Pin)),
            Err(RouterError::UnknownChannel(ChannelId::new("nope").unwrap()))
        );
    }

    #[test]
    fn fees_round_up() {
        let mut p = profile("p", 25);
        p.fee_fixed = Amount::new(30).unwrap();
        assert_eq!(p.fee_minor(Amount::new(10_000).unwrap()), 30 + 25);
        assert_eq!(p.fee_minor(Amount::new(1).unwrap()), 30 + 1);
    }
}
