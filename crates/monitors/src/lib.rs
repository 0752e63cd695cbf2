//! Fund-safety monitors (资金安全监控), pure. The service takes a [`Snapshot`] of the books,
//! the breaks, the inquiries and the orders every pass; [`evaluate`] says which rules fire
//! (each with its subject: an asset, a channel, an account); [`transitions`] compares that
//! with the alerts firing before and says which fired and which resolved. The service
//! stores each alert (firing → resolved), exports it as a Prometheus metric, and sends it to
//! the platform's operations endpoint.
//!
//! | rule | fires when | severity |
//! | --- | --- | --- |
//! | `books_unbalanced` | an asset's debits differ from its credits | page |
//! | `suspense_aged` | a channel's reconciliation suspense holds money of a break older than T+1 | page |
//! | `critical_breaks` | an open break is critical | page |
//! | `high_breaks` | an open break is high | warn |
//! | `escalated_inquiries` | status inquiry gave up on an unknown outcome | warn |
//! | `overdue_orders` | an order is unfinished past its deadline | warn |
//! | `withdrawal_spike` | withdrawals of the last hour pass a multiple of the trailing hourly average | page |
//! | `account_debit_limit` | one account is debited more than the limit within the last hour | page |
//! | `clearing_drift` | a channel's reconciliation suspense differs from its open breaks: its clearing moved against its statements by something no break explains | page |

use std::collections::{BTreeMap, BTreeSet};

use money::AssetCode;
use sha2::{Digest, Sha256};

/// How loud an alert is: `page` wakes someone, `warn` waits for office hours.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Warn,
    Page,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Warn => "warn",
            Urgency::Page => "page",
        }
    }
}

/// The rules, named as metrics and records name them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    BooksUnbalanced,
    SuspenseAged,
    CriticalBreaks,
    HighBreaks,
    EscalatedInquiries,
    OverdueOrders,
    WithdrawalSpike,
    AccountDebitLimit,
    ClearingDrift,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::BooksUnbalanced,
        Rule::SuspenseAged,
        Rule::CriticalBreaks,
        Rule::HighBreaks,
        Rule::EscalatedInquiries,
        Rule::OverdueOrders,
        Rule::WithdrawalSpike,
        Rule::AccountDebitLimit,
        Rule::ClearingDrift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BooksUnbalanced => "books_unbalanced",
            Rule::SuspenseAged => "suspense_aged",
            Rule::CriticalBreaks => "critical_breaks",
            Rule::HighBreaks => "high_breaks",
            Rule::EscalatedInquiries => "escalated_inquiries",
            Rule::OverdueOrders => "overdue_orders",
            Rule::WithdrawalSpike => "withdrawal_spike",
            Rule::AccountDebitLimit => "account_debit_limit",
            Rule::ClearingDrift => "clearing_drift",
        }
    }

    pub fn parse(raw: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.as_str() == raw)
    }

    pub fn urgency(self) -> Urgency {
        match self {
            Rule::HighBreaks | Rule::EscalatedInquiries | Rule::OverdueOrders => Urgency::Warn,
            _ => Urgency::Page,
        }
    }
}

/// Thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonitorConfig {
    /// Withdrawals of the last hour fire above this many times the trailing hourly average…
    pub withdrawal_spike_multiple: u64,
    /// …and above this floor (minor units), so a quiet night's first withdrawal is no spike.
    pub withdrawal_spike_floor_minor: u64,
    /// One account debited more than this (minor units) within the last hour fires.
    pub account_debit_limit_minor: u64,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            withdrawal_spike_multiple: 3,
            withdrawal_spike_floor_minor: 1_000_000,
            account_debit_limit_minor: 100_000_000,
        }
    }
}

/// What the service saw, at `now_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub now_ms: u64,
    /// Per asset: debits and credits over every account that must be equal — the posted
    /// ones, or, when those agree, the pending ones.
    pub totals: BTreeMap<AssetCode, (u128, u128)>,
    /// Per channel: suspense money (absolute minor units) of open breaks older than T+1.
    pub aged_suspense: BTreeMap<String, u128>,
    /// Open breaks that are critical, and that are high.
    pub critical_breaks: u64,
    pub high_breaks: u64,
    pub escalated_inquiries: u64,
    pub overdue_orders: u64,
    /// Per asset: withdrawals requested in the last hour, and the hourly average of the 24
    /// hours before it (minor units).
    pub withdrawals_last_hour: BTreeMap<AssetCode, u128>,
    pub withdrawals_hourly_average: BTreeMap<AssetCode, u128>,
    /// Per account (as the ledger names it): posted debits of the last hour.
    pub account_debits_last_hour: BTreeMap<String, u128>,
    /// Per channel and currency (`channel/CUR`): the reconciliation suspense less the money
    /// of its open breaks (zero when every movement is explained).
    pub clearing_drift: BTreeMap<String, i128>,
}

/// A rule firing for a subject.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    pub rule: Rule,
    /// What it fires for: an asset, a channel, an account, or `platform`.
    pub subject: String,
    /// What was measured, and the bound it passed (decimal strings).
    pub value: String,
    pub threshold: String,
    pub message: String,
}

/// Every rule that fires on `snapshot`, in rule order then subject order.
pub fn evaluate(snapshot: &Snapshot, config: &MonitorConfig) -> Vec<Signal> {
    let mut signals = Vec::new();
    let mut fire =
        |rule: Rule, subject: &str, value: String, threshold: String, message: String| {
            signals.push(Signal { rule, subject: subject.to_owned(), value, threshold, message });
        };
    for (asset, (debits, credits)) in &snapshot.totals {
        if debits != credits {
            fire(
                Rule::BooksUnbalanced,
                asset.as_str(),
                debits.abs_diff(*credits).to_string(),
                "0".into(),
                format!("{asset}: debits {debits} and credits {credits} differ"),
            );
        }
    }
    for (channel, held) in &snapshot.aged_suspense {
        if *held > 0 {
            fire(
                Rule::SuspenseAged,
                channel,
                held.to_string(),
                "0".into(),
                format!("{channel}: {held} in reconciliation suspense past T+1"),
            );
        }
    }
    let platform_count = |rule: Rule, count: u64, what: &str| {
        (count > 0).then(|| (rule, count.to_string(), format!("{count} {what}")))
    };
    for (rule, count, what) in [
        (Rule::CriticalBreaks, snapshot.critical_breaks, "open critical breaks"),
        (Rule::HighBreaks, snapshot.high_breaks, "open high breaks"),
        (
            Rule::EscalatedInquiries,
            snapshot.escalated_inquiries,
            "inquiries escalated to an operator",
        ),
        (Rule::OverdueOrders, snapshot.overdue_orders, "orders unfinished past their deadline"),
    ] {
        if let Some((rule, value, message)) = platform_count(rule, count, what) {
            fire(rule, "platform", value, "0".into(), message);
        }
    }
    for (asset, last_hour) in &snapshot.withdrawals_last_hour {
        let average = snapshot.withdrawals_hourly_average.get(asset).copied().unwrap_or(0);
        let bound = average
            .saturating_mul(u128::from(config.withdrawal_spike_multiple))
            .max(u128::from(config.withdrawal_spike_floor_minor));
        if *last_hour > bound {
            fire(
                Rule::WithdrawalSpike,
                asset.as_str(),
                last_hour.to_string(),
                bound.to_string(),
                format!(
                    "{asset}: {last_hour} withdrawn in the last hour, the hourly average is {average}"
                ),
            );
        }
    }
    for (account, debited) in &snapshot.account_debits_last_hour {
        if *debited > u128::from(config.account_debit_limit_minor) {
            fire(
                Rule::AccountDebitLimit,
                account,
                debited.to_string(),
                config.account_debit_limit_minor.to_string(),
                format!("account {account} debited {debited} in the last hour"),
            );
        }
    }
    for (subject, drift) in &snapshot.clearing_drift {
        if *drift != 0 {
            fire(
                Rule::ClearingDrift,
                subject,
                drift.to_string(),
                "0".into(),
                format!("{subject}: suspense differs from the open breaks by {drift}"),
            );
        }
    }
    signals
}

/// Where an alert stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert, from the pass that fired it to the pass that found it resolved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// `alr_…`: derived from the rule, subject and first firing.
    pub id: String,
    pub rule: Rule,
    pub subject: String,
    pub urgency: Urgency,
    pub state: AlertState,
    /// The latest measurement while firing.
    pub value: String,
    pub threshold: String,
    pub message: String,
    pub fired_at_ms: u64,
    pub resolved_at_ms: Option<u64>,
}

/// What changed since the alerts firing before: new alerts (firing), alerts still firing
/// with a new measurement, and alerts resolved. Each is the alert as it now stands.
pub fn transitions(firing_before: &[Alert], signals: &[Signal], now_ms: u64) -> Vec<Alert> {
    let now_firing: BTreeSet<(Rule, &str)> =
        signals.iter().map(|s| (s.rule, s.subject.as_str())).collect();
    let before: BTreeMap<(Rule, &str), &Alert> =
        firing_before.iter().map(|a| ((a.rule, a.subject.as_str()), a)).collect();
    let mut changed = Vec::new();
    for signal in signals {
        match before.get(&(signal.rule, signal.subject.as_str())) {
            Some(alert) if alert.value == signal.value && alert.message == signal.message => {}
            Some(alert) => changed.push(Alert {
                value: signal.value.clone(),
                threshold: signal.threshold.clone(),
                message: signal.message.clone(),
                ..(*alert).clone()
            }),
            None => changed.push(Alert {
                id: alert_id(signal.rule, &signal.subject, now_ms),
                rule: signal.rule,
                subject: signal.subject.clone(),
                urgency: signal.rule.urgency(),
                state: AlertState::Firing,
                value: signal.value.clone(),
                threshold: signal.threshold.clone(),
                message: signal.message.clone(),
                fired_at_ms: now_ms,
                resolved_at_ms: None,
            }),
        }
    }
    for alert in firing_before {
        if !now_firing.contains(&(alert.rule, alert.subject.as_str())) {
            changed.push(Alert {
                state: AlertState::Resolved,
                resolved_at_ms: Some(now_ms),
                ..alert.clone()
            });
        }
    }
    changed
}

fn alert_id(rule: Rule, subject: &str, fired_at_ms: u64) -> String {
    let digest = Sha256::new()
        .chain_update(b"qianbao.monitors.alert\0")
        .chain_update(rule.as_str())
        .chain_update([0])
        .chain_update(subject)
        .chain_update(fired_at_ms.to_be_bytes())
        .finalize();
    format!("alr_{}", hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cny() -> AssetCode {
        AssetCode::new("CNY").unwrap()
    }

    #[test]
    fn each_rule_fires_on_its_condition_and_not_below_it() {
        let config = MonitorConfig::default();
        assert!(evaluate(&Snapshot::default(), &config).is_empty());
        let mut snapshot = Snapshot {
            totals: BTreeMap::from([(cny(), (100, 100))]),
            withdrawals_last_hour: BTreeMap::from([(cny(), 3_000_000)]),
            withdrawals_hourly_average: BTreeMap::from([(cny(), 1_000_000)]),
            account_debits_last_hour: BTreeMap::from([("7".into(), 100_000_000)]),
            ..Snapshot::default()
        };
        assert!(evaluate(&snapshot, &config).is_empty(), "at the bounds nothing fires");
        snapshot.totals.insert(cny(), (101, 100));
        snapshot.aged_suspense.insert("bank_a".into(), 5);
        snapshot.critical_breaks = 1;
        snapshot.high_breaks = 2;
        snapshot.escalated_inquiries = 1;
        snapshot.overdue_orders = 4;
        snapshot.withdrawals_last_hour.insert(cny(), 3_000_001);
        snapshot.account_debits_last_hour.insert("7".into(), 100_000_001);
        snapshot.clearing_drift.insert("bank_a/CNY".into(), -3);
        let fired: Vec<Rule> = evaluate(&snapshot, &config).iter().map(|s| s.rule).collect();
        assert_eq!(fired, Rule::ALL.to_vec());
    }

    #[test]
    fn the_floor_keeps_a_quiet_hour_from_spiking() {
        let snapshot = Snapshot {
            withdrawals_last_hour: BTreeMap::from([(cny(), 999_999)]),
            ..Snapshot::default()
        };
        assert!(evaluate(&snapshot, &MonitorConfig::default()).is_empty());
    }

    #[test]
    fn an_alert_fires_once_updates_its_value_and_resolves() {
        let config = MonitorConfig::default();
        let mut snapshot = Snapshot { critical_breaks: 1, ..Snapshot::default() };
        let fired = transitions(&[], &evaluate(&snapshot, &config), 10);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].state, fired[0].fired_at_ms), (AlertState::Firing, 10));
        // The same measurement again changes nothing.
        assert!(transitions(&fired, &evaluate(&snapshot, &config), 20).is_empty());
        snapshot.critical_breaks = 2;
        let updated = transitions(&fired, &evaluate(&snapshot, &config), 30);
        assert_eq!(
            (updated[0].id.as_str(), updated[0].value.as_str()),
            (fired[0].id.as_str(), "2")
        );
        let resolved = transitions(&updated, &evaluate(&Snapshot::default(), &config), 40);
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].state, resolved[0].resolved_at_ms),
            (AlertState::Resolved, Some(40))
        );
        assert_eq!(resolved[0].id, fired[0].id);
    }

    #[test]
    fn rule_names_round_trip() {
        for rule in Rule::ALL {
            assert_eq!(Rule::parse(rule.as_str()), Some(rule));
        }
    }
}
