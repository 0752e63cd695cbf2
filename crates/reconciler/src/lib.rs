//! Carries reconciliation (对账) out, around the pure rules of `recon`:
//!
//! - **Statements** ([`Reconciler::fetch`], [`Reconciler::upload`]): a channel's file of one
//!   business day, fetched from the channel (checked against the digest it published) or
//!   uploaded by an operator, is parsed whole — a bad file is refused whole with its line —
//!   and stored as it came with its SHA-256. The same file again is a no-op; a different file
//!   for the same channel and day is the next version.
//! - **Runs** ([`Reconciler::run`]): the newest statement of a channel and day against our
//!   orders of that channel created within the date window, matched by `recon::reconcile`.
//!   A run is appended with its inputs' hashes, rule version, counts and result hash.
//! - **Safe automatic handling**: a `missing_internal` line whose order is still unknown is
//!   the channel's answer; it reaches the order through the same path as a callback or an
//!   inquiry result, and the order completes. Nothing else moves money by itself.
//! - **Breaks** ([`workflow`]): every other difference is a break whose money is booked to the
//!   channel's suspense account at once (ids derived from the break, so a re-run books
//!   nothing twice). An operator assigns it and proposes a resolution; above the policy's
//!   amount (and for every write-off) a second key approves (maker–checker); the resolution
//!   is a new balanced entry that empties the suspense. Write-offs enter the loss register;
//!   recoveries are booked against it.
//!
//! State is stored before money moves: a break is `resolving` before its postings are
//! submitted, and [`Reconciler::resume`] books whatever a crash left `resolving`.

pub mod checks;
pub mod closing;
pub mod monitoring;
pub mod port;
pub mod postings;
pub mod reports;
mod runs;
pub mod workflow;

use std::sync::Arc;

use channels::gateway::Millis;
use executor::{Executor, OrderStore};
use ledger::LedgerHandle;
use money::AssetCode;
use recon::breaks::Policy;

pub use port::{
    BreakEvent, BreakQuery, BreakRecord, CheckResult, CheckRun, ClosedDay, DayLine, DayQuery,
    Finding, LossRecord, Proposal, PutStatement, ReconStore, ReconStoreError, RegisterEntry,
    RunRecord, StatementRecord, StatementSource, Updated,
};

/// How reconciliation runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconConfig {
    /// Business days turn at 00:00 this many minutes east of UTC (Asia/Shanghai: 480).
    pub utc_offset_minutes: i32,
    /// A record booked this many days before or after the statement's day still matches.
    pub date_window_days: i64,
    /// Amounts that differ by at most this much match.
    pub amount_tolerance_minor: u64,
    /// The currencies a statement may state.
    pub currencies: Vec<AssetCode>,
    pub policy: Policy,
    /// The fund-safety monitors' thresholds.
    pub monitors: monitors::MonitorConfig,
    /// An unfinished order without a deadline is overdue this long after it last moved.
    pub stuck_after_ms: u64,
}

impl ReconConfig {
    pub fn new(currencies: Vec<AssetCode>) -> ReconConfig {
        ReconConfig {
            utc_offset_minutes: recon::day::SHANGHAI_UTC_OFFSET_MINUTES,
            date_window_days: 1,
            amount_tolerance_minor: 0,
            currencies,
            policy: Policy::default(),
            monitors: monitors::MonitorConfig::default(),
            stuck_after_ms: checks::STUCK_AFTER_MS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconError {
    #[error(transparent)]
    Statement(#[from] recon::StatementError),
    #[error("no channel {0}")]
    ChannelNotFound(String),
    #[error("the channel could not give its statement: {0}")]
    ChannelUnavailable(String),
    #[error("no statement of {channel} for {day}")]
    NoStatement { channel: String, day: String },
    #[error("no break {0}")]
    BreakNotFound(String),
    #[error("the break is {state}; {action} needs {needs}")]
    BreakState { state: &'static str, action: &'static str, needs: &'static str },
    #[error(transparent)]
    Resolution(#[from] recon::breaks::ResolutionRefused),
    #[error("the approver must be another key than the maker")]
    ApproverIsMaker,
    #[error("no loss {0}")]
    LossNotFound(String),
    #[error("a recovery of {amount} passes what is left of loss {loss_id}")]
    RecoveryExceedsLoss { loss_id: String, amount: String },
    #[error("the break names no customer: say whose wallet to credit")]
    CustomerNeeded,
    #[error("the break changed meanwhile; read it again")]
    Contended,
    #[error(transparent)]
    Store(#[from] ReconStoreError),
    #[error(transparent)]
    Orders(#[from] executor::OrderStoreError),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("{day} is not over yet: a day closes after its cut-over")]
    DayNotOver { day: String },
    #[error("{day} cannot close now: {needs}")]
    DayOrder { day: String, needs: String },
    #[error("{day} is not closed")]
    DayNotClosed { day: String },
}

impl ReconError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReconError::Statement(error) => error.code(),
            ReconError::ChannelNotFound(_) => "channel_not_found",
            ReconError::ChannelUnavailable(_) => "channel_unavailable",
            ReconError::NoStatement { .. } => "statement_not_found",
            ReconError::BreakNotFound(_) => "break_not_found",
            ReconError::BreakState { .. } => "break_state",
            ReconError::Resolution(error) => error.code(),
            ReconError::ApproverIsMaker => "approver_is_maker",
            ReconError::LossNotFound(_) => "loss_not_found",
            ReconError::RecoveryExceedsLoss { .. } => "recovery_exceeds_loss",
            ReconError::CustomerNeeded => "customer_needed",
            ReconError::Contended => "break_contended",
            ReconError::Store(_) | ReconError::Orders(_) => "store_unavailable",
            ReconError::Ledger(_) => "ledger_unavailable",
            ReconError::DayNotOver { .. } => "day_not_over",
            ReconError::DayOrder { .. } => "day_out_of_order",
            ReconError::DayNotClosed { .. } => "day_not_closed",
        }
    }
}

/// The reconciliation service of one process.
pub struct Reconciler {
    store: Arc<dyn ReconStore>,
    orders: Arc<dyn OrderStore>,
    executor: Arc<Executor>,
    ledger: LedgerHandle,
    clock: Arc<dyn Millis>,
    config: ReconConfig,
    /// The books as read for end of day (日切); `None` on a node that does not close days.
    books: Option<Arc<dyn ledger::port::LedgerReader>>,
    /// The statement the last ingest parsed, by id, for the run that follows it.
    parsed: std::sync::Mutex<Option<(String, recon::Statement)>>,
    /// The alerts firing as of the last monitoring pass (`None` before the first).
    firing: std::sync::Mutex<Option<Vec<monitors::Alert>>>,
    /// Serialises runs and break changes of this process: runs are rare and short, and one
    /// at a time keeps a run's superseding from racing an operator's resolution. Across
    /// processes the break's version decides.
    serial: tokio::sync::Mutex<()>,
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn ReconStore>,
        executor: Arc<Executor>,
        ledger: LedgerHandle,
        clock: Arc<dyn Millis>,
        config: ReconConfig,
    ) -> Reconciler {
        let orders = Arc::clone(executor.store());
        Reconciler {
            store,
            orders,
            executor,
            ledger,
            clock,
            config,
            books: None,
            firing: std::sync::Mutex::new(None),
            parsed: std::sync::Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Closes business days (日切) from `books`.
    pub fn with_books(mut self, books: Arc<dyn ledger::port::LedgerReader>) -> Reconciler {
        self.books = Some(books);
        self
    }

    pub fn config(&self) -> &ReconConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn ReconStore> {
        &self.store
    }

    /// The channels the gateway has.
    pub fn channels(&self) -> Vec<channels::ChannelId> {
        self.executor.gateway().map(|g| g.channel_ids()).unwrap_or_default()
    }

    /// Books a linked group; a rejection is returned as its code.
    async fn post(
        &self,
        open: Vec<ledger::Command>,
        group: Vec<ledger::model::NewTransfer>,
    ) -> Result<Option<&'static str>, ReconError> {
        if group.is_empty() {
            return Ok(None);
        }
        let mut commands = open;
        commands.push(ledger::Command::Transfers(group));
        let outcomes = self
            .ledger
            .execute(commands)
            .await
            .map_err(|error| ReconError::Ledger(error.to_string()))?;
        for outcome in outcomes {
            match outcome {
                ledger::Outcome::Account(Err(rejection)) => return Ok(Some(rejection.code())),
                ledger::Outcome::Transfers(results) => {
                    let mut first = None;
                    for rejection in results.iter().filter_map(|r| r.as_ref().err()) {
                        if *rejection != ledger::rejection::TransferRejection::LinkedTransferFailed
                        {
                            return Ok(Some(rejection.code()));
                        }
                        first.get_or_insert(rejection.code());
                    }
                    if first.is_some() {
                        return Ok(first);
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}
