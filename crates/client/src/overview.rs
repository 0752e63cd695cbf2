//! What the console's first pages show (tag `operations`, `ops:read`): the answering node's
//! health, and the balance sheet (资产负债表) with client money against reserves.

use serde::Deserialize;

use crate::client::{Client, Query};
use crate::error::ClientError;
use crate::routes;
use crate::wire::{AmountSum, SignedAmount};

/// Requests of one route since the node started.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RouteView {
    /// `METHOD /path/{param}`.
    pub route: String,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// A bound on the 99th percentile latency, within a factor of two.
    #[serde(default)]
    pub p99_us_at_most: Option<u64>,
}

/// A channel's breaker, routing controls and recent window.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ChannelHealthView {
    pub channel: String,
    /// `closed`, `half_open` or `open`.
    pub breaker: String,
    pub disabled: bool,
    pub pinned: bool,
    /// Routing weight; 1,000 is neutral.
    pub weight_permille: u32,
    pub window_calls: u64,
    pub window_errors: u64,
    #[serde(default)]
    pub window_mean_latency_ms: Option<u64>,
}

/// The status-inquiry backlog.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BacklogView {
    pub open: u64,
    pub escalated: u64,
    pub undelivered: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OverviewView {
    /// The node that answered.
    pub node: String,
    pub at_ms: u64,
    pub routes: Vec<RouteView>,
    pub channels: Vec<ChannelHealthView>,
    /// `None` on a node without the payment core.
    #[serde(default)]
    pub inquiries: Option<BacklogView>,
}

/// A chart line's posted balance in its normal direction.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SheetLineView {
    pub chart_code: u32,
    /// `None` for a line defined through the ledger API alone.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
    pub n_accounts: u64,
    pub balance_minor: SignedAmount,
    pub debits_pending_minor: AmountSum,
    pub credits_pending_minor: AmountSum,
    /// Money held for others (counted in `client_money_minor`).
    pub client_money: bool,
}

/// A channel's clearing account: debits less credits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ReserveView {
    pub channel: String,
    pub balance_minor: SignedAmount,
}

/// One asset's balance sheet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AssetSheetView {
    pub asset: String,
    /// Debits equal credits, posted and pending.
    pub balanced: bool,
    pub lines: Vec<SheetLineView>,
    /// Customers' wallets, withdrawals in flight, merchants' takings and unplaced money.
    pub client_money_minor: SignedAmount,
    pub reserves: Vec<ReserveView>,
    pub reserves_minor: SignedAmount,
    /// Reserves less client money: below zero, the reserves do not cover what is owed.
    pub cover_minor: SignedAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BalanceSheetView {
    pub assets: Vec<AssetSheetView>,
}

impl Client {
    /// This node's health: per route, per channel, and the inquiry backlog.
    pub async fn overview(&self) -> Result<OverviewView, ClientError> {
        self.read(routes::OVERVIEW, &[], Query::new()).await
    }

    /// The balance sheet per asset (operation `balance_sheet_view`).
    pub async fn balance_sheet(&self) -> Result<BalanceSheetView, ClientError> {
        self.read(routes::BALANCE_SHEET_VIEW, &[], Query::new()).await
    }

    /// The head of the key's book's journal (operation `journal_head`, `ops:read`): read
    /// with a live key before and after a test run, it shows the live book did not move.
    pub async fn journal_head(&self) -> Result<JournalHeadView, ClientError> {
        self.read(routes::JOURNAL_HEAD, &[], Query::new()).await
    }
}

/// The last batch of a book's journal.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct JournalHeadView {
    /// `live` or `test`: the book of the key that asked.
    pub mode: String,
    /// The last committed batch, as a decimal string.
    pub batch_seq: String,
    /// The last record's sequence number, as a decimal string.
    pub last_seq: String,
    /// The chain's hash at that batch, hex.
    pub hash: String,
}
