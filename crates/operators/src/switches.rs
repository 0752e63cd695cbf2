//! Run-time switches (开关) and contingency plans (预案), pure.
//!
//! A switch is one typed lever with a scope: kill (refuse new requests of a product, or of
//! every product, with a clear code and `Retry-After`), degrade (turn history reads or bulk
//! endpoints off, pause settlement, delay webhooks, freeze payouts on a channel) or route
//! (disable, pin or weigh a channel). Each change makes a new version of the switch (the
//! store keeps every one: rollback sets the previous version again, as a new version) and may
//! carry an expiry, after which the switch reads as off and the serve loop reverts it.
//!
//! A plan is a named set of switch changes, with the alert that calls for it, run (and
//! rolled back) in one audited step. [`plans`] ships four.

use channels::ChannelId;
use serde::{Deserialize, Serialize};

/// The products a kill switch can name: the API's money-moving writes.
pub const PRODUCTS: [&str; 9] = [
    "topup",
    "withdrawal",
    "payment",
    "refund",
    "payout_batch",
    "settlement",
    "wallet_transfer",
    "points_grant",
    "transfer",
];

/// One lever. Its [`Switch::key`] names it in the store; at most one row per key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "switch", rename_all = "snake_case")]
pub enum Switch {
    /// Refuse every new money-moving request (not reads, not operators' own endpoints).
    KillAll,
    /// Refuse new requests of one product (`PRODUCTS`).
    KillProduct { product: String },
    /// Refuse new payments to one merchant, and its payout batches and settlements (refunds
    /// to its customers still go).
    KillMerchant { tenant: String, merchant: String },
    /// Degrade: history and list reads answer 503 (balances and single reads stay).
    HistoryReadsOff,
    /// Degrade: bulk endpoints (ledger batches, payout batches, statement uploads) answer 503.
    BulkOff,
    /// Degrade: the hourly settlement run is skipped.
    SettlementPaused,
    /// Degrade: webhook deliveries wait (they are kept, and sent once this is off).
    WebhooksDelayed,
    /// Degrade: no payout (withdrawal, merchant payout) is sent to this channel.
    PayoutsFrozen { channel: ChannelId },
    /// Route: the channel takes no new request.
    ChannelDisabled { channel: ChannelId },
    /// Route: the channel is preferred over every unpinned one.
    ChannelPinned { channel: ChannelId },
    /// Route: the channel's routing score is multiplied by `permille` / 1000 (a switch's value).
    ChannelWeight { channel: ChannelId },
    /// Route: routing weighs this fee rate for the channel (per 10,000 of the amount, the
    /// switch's value) instead of its configured one.
    ChannelFee { channel: ChannelId },
    /// Route: the channel's breaker opens at this many errors per thousand calls (the
    /// switch's value) instead of its configured threshold.
    ChannelBreakerErrors { channel: ChannelId },
    /// Route: at most this many calls a second go to the channel (the switch's value)
    /// instead of its configured limit: a bank that asked for less, for now.
    ChannelRateLimit { channel: ChannelId },
    /// Hold: one order is paused. Nothing new is sent to a channel for it — no first send,
    /// no retry, no failover — while what is under way completes: a bank's answer is taken
    /// and booked, and status inquiry keeps asking. Turned off, the order resumes at the
    /// next inspection. For an order under investigation (a suspected fraud, a customer's
    /// dispute).
    OrderHeld { order: String },
}

impl Switch {
    /// The stable name of the switch: `kill/all`, `kill/product:topup`,
    /// `degrade/history_reads`, `route/disabled:bank_a`…
    pub fn key(&self) -> String {
        match self {
            Switch::KillAll => "kill/all".into(),
            Switch::KillProduct { product } => format!("kill/product:{product}"),
            Switch::KillMerchant { tenant, merchant } => {
                format!("kill/merchant:{tenant}/{merchant}")
            }
            Switch::HistoryReadsOff => "degrade/history_reads".into(),
            Switch::BulkOff => "degrade/bulk".into(),
            Switch::SettlementPaused => "degrade/settlement".into(),
            Switch::WebhooksDelayed => "degrade/webhooks".into(),
            Switch::PayoutsFrozen { channel } => format!("degrade/payouts_frozen:{channel}"),
            Switch::ChannelDisabled { channel } => format!("route/disabled:{channel}"),
            Switch::ChannelPinned { channel } => format!("route/pinned:{channel}"),
            Switch::ChannelWeight { channel } => format!("route/weight:{channel}"),
            Switch::ChannelFee { channel } => format!("route/fee:{channel}"),
            Switch::ChannelBreakerErrors { channel } => format!("route/breaker_errors:{channel}"),
            Switch::ChannelRateLimit { channel } => format!("route/rate_limit:{channel}"),
            Switch::OrderHeld { order } => format!("hold/order:{order}"),
        }
    }

    /// `kill`, `degrade`, `route` or `hold`.
    pub fn kind(&self) -> &'static str {
        match self {
            Switch::KillAll | Switch::KillProduct { .. } | Switch::KillMerchant { .. } => "kill",
            Switch::OrderHeld { .. } => "hold",
            Switch::ChannelDisabled { .. }
            | Switch::ChannelPinned { .. }
            | Switch::ChannelWeight { .. }
            | Switch::ChannelFee { .. }
            | Switch::ChannelBreakerErrors { .. }
            | Switch::ChannelRateLimit { .. } => "route",
            _ => "degrade",
        }
    }

    /// The channel a switch is about, if any.
    pub fn channel(&self) -> Option<&ChannelId> {
        match self {
            Switch::PayoutsFrozen { channel }
            | Switch::ChannelDisabled { channel }
            | Switch::ChannelPinned { channel }
            | Switch::ChannelWeight { channel }
            | Switch::ChannelFee { channel }
            | Switch::ChannelBreakerErrors { channel }
            | Switch::ChannelRateLimit { channel } => Some(channel),
            _ => None,
        }
    }

    /// Whether a change to the switch is well formed: a known product; a weight switch
    /// turned on with a value (turned off, it needs none).
    pub fn check(&self, on: bool, value: Option<u32>) -> Result<(), SwitchError> {
        match self {
            Switch::KillProduct { product } if !PRODUCTS.contains(&product.as_str()) => {
                Err(SwitchError::UnknownProduct(product.clone()))
            }
            Switch::ChannelWeight { .. } if on => match value {
                Some(permille) if (1..=100_000).contains(&permille) => Ok(()),
                _ => Err(SwitchError::WeightNeeded),
            },
            Switch::ChannelFee { .. } if on => match value {
                Some(bps) if (1..=10_000).contains(&bps) => Ok(()),
                _ => Err(SwitchError::ValueNeeded("a fee rate of 1 to 10000 per 10,000")),
            },
            Switch::ChannelRateLimit { .. } if on => match value {
                Some(rate) if (1..=100_000).contains(&rate) => Ok(()),
                _ => Err(SwitchError::ValueNeeded("a rate of 1 to 100000 calls a second")),
            },
            Switch::ChannelBreakerErrors { .. } if on => match value {
                Some(permille) if (1..=1_000).contains(&permille) => Ok(()),
                _ => Err(SwitchError::ValueNeeded("an error rate of 1 to 1000 per thousand calls")),
            },
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("no product {0} (one of: topup, withdrawal, payment, refund, payout_batch, settlement, wallet_transfer, points_grant, transfer)")]
    UnknownProduct(String),
    #[error("a channel weight needs a value of 1 to 100000 permille")]
    WeightNeeded,
    #[error("this switch needs a value: {0}")]
    ValueNeeded(&'static str),
    #[error("no channel {0}")]
    UnknownChannel(String),
    #[error("no plan {0}")]
    UnknownPlan(String),
    #[error("the plan {0} needs a channel")]
    ChannelNeeded(String),
}

impl SwitchError {
    pub fn code(&self) -> &'static str {
        match self {
            SwitchError::UnknownProduct(_) => "unknown_product",
            SwitchError::WeightNeeded => "weight_needed",
            SwitchError::ValueNeeded(_) => "value_needed",
            SwitchError::UnknownChannel(_) => "channel_not_found",
            SwitchError::UnknownPlan(_) => "plan_not_found",
            SwitchError::ChannelNeeded(_) => "channel_needed",
        }
    }
}

/// A switch's state at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchState {
    #[serde(flatten)]
    pub switch: Switch,
    pub on: bool,
    /// A weight's permille; none for the others.
    pub value: Option<u32>,
    /// Reverts to off at this time (milliseconds since the epoch).
    pub expires_at_ms: Option<u64>,
    /// 1, 2, 3… per switch.
    pub version: u64,
    pub set_by: String,
    pub reason: String,
    pub ticket: Option<String>,
    /// The plan that set it, if one did.
    pub plan: Option<String>,
    pub set_at_ms: u64,
}

impl SwitchState {
    /// On, and not past its expiry.
    pub fn is_on_at(&self, now_ms: u64) -> bool {
        self.on && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// On, but past its expiry: the serve loop reverts it.
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.on && self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A change to make: the switch, on or off, its value and expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchChange {
    #[serde(flatten)]
    pub switch: Switch,
    pub on: bool,
    #[serde(default)]
    pub value: Option<u32>,
    /// The version the operator saw (0: never set); the change is refused if the switch is
    /// at another one, so that no one overwrites a change they have not seen. `None`: no
    /// check (a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// A channel's terms set by switches over its configured ones (`None`: as configured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelTerms {
    /// The fee rate routing weighs, per 10,000.
    pub fee_bps: Option<u32>,
    /// Errors per thousand calls that open the breaker.
    pub breaker_error_permille: Option<u64>,
    /// Calls a second the channel takes at most.
    pub rate_per_sec: Option<u32>,
}

/// Every switch as this node last read it: what the service obeys.
#[derive(Clone, Debug, Default)]
pub struct Board {
    switches: Vec<SwitchState>,
}

/// What a request is, for kill and degrade switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic<'a> {
    /// A money-moving write of a product (`PRODUCTS`).
    Write { product: &'a str },
    /// A list or history read.
    HistoryRead,
    /// A bulk endpoint.
    Bulk,
}

/// Why a request is refused by a switch: the key of the switch, for the API's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub switch: String,
}

impl Board {
    pub fn new(switches: Vec<SwitchState>) -> Board {
        Board { switches }
    }

    pub fn switches(&self) -> &[SwitchState] {
        &self.switches
    }

    fn on(&self, now_ms: u64) -> impl Iterator<Item = &SwitchState> {
        self.switches.iter().filter(move |state| state.is_on_at(now_ms))
    }

    pub fn is_on(&self, switch: &Switch, now_ms: u64) -> bool {
        self.on(now_ms).any(|state| state.switch == *switch)
    }

    /// Whether a switch refuses `traffic` now, and which.
    pub fn refuses(&self, traffic: Traffic<'_>, now_ms: u64) -> Option<Refusal> {
        self.on(now_ms).find_map(|state| {
            let refused = match (&state.switch, traffic) {
                (Switch::KillAll, Traffic::Write { .. }) => "switched_off",
                (Switch::KillProduct { product }, Traffic::Write { product: asked })
                    if product == asked =>
                {
                    "switched_off"
                }
                (Switch::HistoryReadsOff, Traffic::HistoryRead) => "degraded",
                (Switch::BulkOff, Traffic::Bulk) => "degraded",
                _ => return None,
            };
            Some(Refusal { code: refused, switch: state.switch.key() })
        })
    }

    /// Merchants (`tenant/merchant`, their party keys) refused new business now.
    pub fn killed_merchants(&self, now_ms: u64) -> Vec<String> {
        self.on(now_ms)
            .filter_map(|state| match &state.switch {
                Switch::KillMerchant { tenant, merchant } => Some(format!("{tenant}/{merchant}")),
                _ => None,
            })
            .collect()
    }

    /// A channel's terms as the switches set them; each `None`: as configured.
    pub fn channel_terms(&self, channel: &ChannelId, now_ms: u64) -> ChannelTerms {
        let mut terms = ChannelTerms::default();
        for state in self.on(now_ms) {
            match &state.switch {
                Switch::ChannelFee { channel: c } if c == channel => terms.fee_bps = state.value,
                Switch::ChannelBreakerErrors { channel: c } if c == channel => {
                    terms.breaker_error_permille = state.value.map(u64::from)
                }
                Switch::ChannelRateLimit { channel: c } if c == channel => {
                    terms.rate_per_sec = state.value
                }
                _ => {}
            }
        }
        terms
    }

    /// Orders paused now: nothing new goes to a channel for them.
    pub fn held_orders(&self, now_ms: u64) -> Vec<String> {
        self.on(now_ms)
            .filter_map(|state| match &state.switch {
                Switch::OrderHeld { order } => Some(order.clone()),
                _ => None,
            })
            .collect()
    }

    /// Channels no payout may be sent to now.
    pub fn frozen_payout_channels(&self, now_ms: u64) -> Vec<ChannelId> {
        self.on(now_ms)
            .filter_map(|state| match &state.switch {
                Switch::PayoutsFrozen { channel } => Some(channel.clone()),
                _ => None,
            })
            .collect()
    }

    /// A channel's routing controls as the switches set them: (disabled, pinned, weight
    /// permille; 1000 when no weight switch is on).
    pub fn route(&self, channel: &ChannelId, now_ms: u64) -> (bool, bool, u32) {
        let mut route = (false, false, 1000);
        for state in self.on(now_ms) {
            match &state.switch {
                Switch::ChannelDisabled { channel: c } if c == channel => route.0 = true,
                Switch::ChannelPinned { channel: c } if c == channel => route.1 = true,
                Switch::ChannelWeight { channel: c } if c == channel => {
                    route.2 = state.value.unwrap_or(1000)
                }
                _ => {}
            }
        }
        route
    }
}

/// The board every part of a node reads (the API's edge, the serve loop): replaced whole
/// when the serve loop reads the store (every second) or an operator changes a switch here.
/// A read of the store that began before a change here is older than the board that change
/// set, and must not replace it: [`SharedBoard::set_read`].
#[derive(Debug, Default)]
pub struct SharedBoard {
    board: std::sync::RwLock<Board>,
    /// Boards set by a change here so far.
    changes: std::sync::atomic::AtomicU64,
}

impl SharedBoard {
    /// Sets the board a change here just read back: at once, and newer than any read begun
    /// before it.
    pub fn set(&self, board: Board) {
        let mut guard = self.board.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = board;
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// What to hand [`SharedBoard::set_read`] for a read of the store that begins now.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets a board read from the store by a read that began when [`SharedBoard::changes`]
    /// was `seen`, unless a change here set a newer one since. Returns whether it was set.
    pub fn set_read(&self, board: Board, seen: u64) -> bool {
        let mut guard = self.board.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.changes() != seen {
            return false;
        }
        *guard = board;
        true
    }

    pub fn get(&self) -> Board {
        self.board.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn refuses(&self, traffic: Traffic<'_>, now_ms: u64) -> Option<Refusal> {
        self.board.read().unwrap_or_else(|poisoned| poisoned.into_inner()).refuses(traffic, now_ms)
    }

    pub fn is_on(&self, switch: &Switch, now_ms: u64) -> bool {
        self.board.read().unwrap_or_else(|poisoned| poisoned.into_inner()).is_on(switch, now_ms)
    }
}

/// A contingency plan (预案): what it does, when to run it, and its changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: &'static str,
    pub description: &'static str,
    /// The alert (Prometheus rule or fund alert) that calls for it.
    pub alert: &'static str,
    /// Whether it is run for one channel (`channel` in the request).
    pub per_channel: bool,
    /// The changes it makes; rolling it back sets each switch's previous version again.
    pub changes: Vec<SwitchChange>,
}

/// The shipped plans, for `channel` where a plan is per channel.
pub fn plans(channel: Option<&ChannelId>) -> Vec<Plan> {
    let on =
        |switch: Switch| SwitchChange { switch, on: true, value: None, expected_version: None };
    let mut plans = vec![
        Plan {
            name: "inquiry_backlog",
            description: "Status inquiries pile up (a channel answers late or not at all): stop \
                          adding bulk payouts and pause settlement until the backlog drains.",
            alert: "QianbaoInquiryBacklogGrowing",
            per_channel: false,
            changes: vec![on(Switch::BulkOff), on(Switch::SettlementPaused)],
        },
        Plan {
            name: "database_slow",
            description: "The database is slow: shed bulk endpoints and history reads first, \
                          and delay webhooks, so money-moving writes keep their latency.",
            alert: "QianbaoDatabaseSlow",
            per_channel: false,
            changes: vec![
                on(Switch::BulkOff),
                on(Switch::HistoryReadsOff),
                on(Switch::WebhooksDelayed),
            ],
        },
    ];
    if let Some(channel) = channel {
        plans.push(Plan {
            name: "channel_down",
            description: "A channel is down: route nothing new to it (others take its \
                          traffic; what is in flight is settled by status inquiry).",
            alert: "QianbaoChannelSuccessRateBurn",
            per_channel: true,
            changes: vec![on(Switch::ChannelDisabled { channel: channel.clone() })],
        });
        plans.push(Plan {
            name: "recon_shortfall",
            description: "Reconciliation found a shortfall on a channel: freeze payouts there \
                          until the breaks are resolved.",
            alert: "QianbaoCriticalBreaks",
            per_channel: true,
            changes: vec![on(Switch::PayoutsFrozen { channel: channel.clone() })],
        });
    }
    plans
}

/// The names of the shipped plans, and whether each is run for a channel.
pub const PLAN_NAMES: [(&str, bool); 4] = [
    ("channel_down", true),
    ("inquiry_backlog", false),
    ("database_slow", false),
    ("recon_shortfall", true),
];

/// The plan `name`, for `channel` where it needs one.
pub fn plan(name: &str, channel: Option<&ChannelId>) -> Result<Plan, SwitchError> {
    let per_channel = PLAN_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, per_channel)| *per_channel)
        .ok_or_else(|| SwitchError::UnknownPlan(name.to_owned()))?;
    if per_channel && channel.is_none() {
        return Err(SwitchError::ChannelNeeded(name.to_owned()));
    }
    plans(channel)
        .into_iter()
        .find(|plan| plan.name == name)
        .ok_or_else(|| SwitchError::UnknownPlan(name.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_read_begun_before_a_change_here_does_not_replace_its_board() {
        let shared = super::SharedBoard::default();
        let seen = shared.changes();
        shared.set(super::Board::default());
        assert!(!shared.set_read(super::Board::default(), seen), "the older read is dropped");
        assert!(shared.set_read(super::Board::default(), shared.changes()), "a fresh read is set");
    }

    use super::*;

    fn bank(name: &str) -> ChannelId {
        ChannelId::new(name).expect("channel")
    }

    fn state(switch: Switch, on: bool, expires_at_ms: Option<u64>) -> SwitchState {
        SwitchState {
            switch,
            on,
            value: None,
            expires_at_ms,
            version: 1,
            set_by: "key_ops".into(),
            reason: "drill".into(),
            ticket: None,
            plan: None,
            set_at_ms: 0,
        }
    }

    #[test]
    fn kill_switches_refuse_writes_of_their_scope_and_nothing_else() {
        let board = Board::new(vec![
            state(Switch::KillProduct { product: "withdrawal".into() }, true, None),
            state(Switch::KillProduct { product: "topup".into() }, false, None),
        ]);
        let refused = board.refuses(Traffic::Write { product: "withdrawal" }, 10).expect("killed");
        assert_eq!(
            (refused.code, refused.switch.as_str()),
            ("switched_off", "kill/product:withdrawal")
        );
        assert_eq!(board.refuses(Traffic::Write { product: "topup" }, 10), None, "it is off");
        assert_eq!(board.refuses(Traffic::HistoryRead, 10), None);
        let all = Board::new(vec![state(Switch::KillAll, true, None)]);
        assert!(all.refuses(Traffic::Write { product: "payment" }, 10).is_some());
        assert_eq!(all.refuses(Traffic::Bulk, 10), None, "kill is for writes; bulk has its own");
    }

    #[test]
    fn channel_terms_come_from_their_switches_with_checked_values() {
        let fee = Switch::ChannelFee { channel: bank("bank_a") };
        let errors = Switch::ChannelBreakerErrors { channel: bank("bank_a") };
        assert_eq!(
            fee.check(true, None),
            Err(SwitchError::ValueNeeded("a fee rate of 1 to 10000 per 10,000"))
        );
        assert!(fee.check(true, Some(10_001)).is_err() && fee.check(true, Some(25)).is_ok());
        assert!(errors.check(true, Some(1_001)).is_err() && errors.check(true, Some(300)).is_ok());
        assert!(fee.check(false, None).is_ok(), "turned off, it needs no value");
        let mut fee_on = state(fee, true, None);
        fee_on.value = Some(25);
        let mut errors_on = state(errors, true, None);
        errors_on.value = Some(300);
        let board = Board::new(vec![fee_on, errors_on]);
        let terms = board.channel_terms(&bank("bank_a"), 0);
        assert_eq!(
            (terms.fee_bps, terms.breaker_error_permille, terms.rate_per_sec),
            (Some(25), Some(300), None)
        );
        assert_eq!(board.channel_terms(&bank("bank_b"), 0), ChannelTerms::default(), "per channel");
        assert_eq!(
            (
                Switch::ChannelFee { channel: bank("bank_a") }.key(),
                Switch::ChannelFee { channel: bank("bank_a") }.kind()
            ),
            ("route/fee:bank_a".to_owned(), "route")
        );
    }

    #[test]
    fn a_switch_past_its_expiry_reads_as_off() {
        let board = Board::new(vec![state(Switch::HistoryReadsOff, true, Some(1_000))]);
        assert!(board.refuses(Traffic::HistoryRead, 999).is_some());
        assert_eq!(board.refuses(Traffic::HistoryRead, 1_000), None);
        assert!(board.switches()[0].is_expired_at(1_000));
        assert!(!board.switches()[0].is_expired_at(999));
    }

    #[test]
    fn route_switches_give_a_channels_controls() {
        let mut weight = state(Switch::ChannelWeight { channel: bank("bank_b") }, true, None);
        weight.value = Some(250);
        let board = Board::new(vec![
            state(Switch::ChannelDisabled { channel: bank("bank_a") }, true, None),
            weight,
            state(Switch::PayoutsFrozen { channel: bank("bank_b") }, true, None),
        ]);
        assert_eq!(board.route(&bank("bank_a"), 0), (true, false, 1000));
        assert_eq!(board.route(&bank("bank_b"), 0), (false, false, 250));
        assert_eq!(board.route(&bank("fastpay"), 0), (false, false, 1000));
        assert_eq!(board.frozen_payout_channels(0), [bank("bank_b")]);
        let shop = Switch::KillMerchant { tenant: "acme".into(), merchant: "shop".into() };
        assert_eq!(shop.key(), "kill/merchant:acme/shop");
        let board = Board::new(vec![state(shop, true, None)]);
        assert_eq!(board.killed_merchants(0), ["acme/shop"]);
        assert_eq!(
            board.refuses(Traffic::Write { product: "payment" }, 0),
            None,
            "by merchant only"
        );
    }

    #[test]
    fn switches_are_checked_and_named() {
        assert_eq!(
            Switch::KillProduct { product: "lottery".into() }.check(true, None),
            Err(SwitchError::UnknownProduct("lottery".into()))
        );
        let weight = Switch::ChannelWeight { channel: bank("bank_a") };
        assert_eq!(weight.check(true, None), Err(SwitchError::WeightNeeded));
        assert_eq!(weight.check(true, Some(0)), Err(SwitchError::WeightNeeded));
        assert_eq!(weight.check(true, Some(500)), Ok(()));
        assert_eq!(weight.check(false, None), Ok(()), "turned off, a weight needs no value");
        assert_eq!(weight.key(), "route/weight:bank_a");
        assert_eq!(weight.kind(), "route");
        for product in PRODUCTS {
            let kill = Switch::KillProduct { product: product.into() };
            assert_eq!(kill.check(true, None), Ok(()));
            assert_eq!(kill.kind(), "kill");
        }
    }

    #[test]
    fn the_shipped_plans_are_whole() {
        let a = bank("bank_a");
        for (name, per_channel) in PLAN_NAMES {
            let plan = plan(name, Some(&a)).expect("a shipped plan");
            assert_eq!(plan.per_channel, per_channel);
            assert!(!plan.changes.is_empty() && !plan.description.is_empty());
            if per_channel {
                assert_eq!(super::plan(name, None), Err(SwitchError::ChannelNeeded(name.into())));
            }
        }
        assert_eq!(plan("panic", None), Err(SwitchError::UnknownPlan("panic".into())));
        // Each plan's alert is one the shipped Prometheus rules raise.
        let rules = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/prometheus/qianbao-alerts.yml"),
        )
        .expect("the rules file");
        for plan in plans(Some(&a)) {
            assert!(rules.contains(&format!("alert: {}\n", plan.alert)), "{}", plan.alert);
        }
        let down = plan("channel_down", Some(&a)).expect("plan");
        assert_eq!(down.changes[0].switch, Switch::ChannelDisabled { channel: a });
    }
}
