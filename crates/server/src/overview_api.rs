//! `/v1/ops/overview`, `/v1/ops/balance-sheet` and `/v1/journal/head`: what an operator
//! looks at first, and what the console's health and books pages draw. Platform keys with
//! `ops:read`.
//!
//! - The overview: RED per route of this node (requests, errors, p99), every channel's
//!   breaker, controls and recent window, and the inquiry backlog. Counts are since the node
//!   started; the console turns two readings into rates. /metrics has the same figures for
//!   Prometheus.
//! - The balance sheet: the trial balance by chart line, each line named and read in its
//!   normal direction, and per asset the money held for others against the reserves at each
//!   channel (`payments::sheet`).

use std::sync::Arc;

use access::Scope;
use axum::extract::State;
use ledger::port::LedgerReader;
use payments::chart::{internal_account_id, Internal};
use payments::sheet::{balance_sheet, Reserve};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::recon_api::require_platform;
use crate::request::blocking;
use crate::views::ErrorBody;
use crate::{formats, AppState};

#[derive(Serialize, ToSchema)]
pub struct RouteView {
    /// `METHOD /path/{param}`.
    pub route: String,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// An upper bound on the 99th percentile latency (within a factor of two), microseconds.
    pub p99_us_at_most: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelHealthView {
    pub channel: String,
    /// `closed`, `half_open` or `open`.
    pub breaker: String,
    pub disabled: bool,
    pub pinned: bool,
    /// Routing weight; 1,000 is neutral.
    pub weight_permille: u32,
    /// Calls in the breaker's recent window, and how many failed.
    pub window_calls: u64,
    pub window_errors: u64,
    pub window_mean_latency_ms: Option<u64>,
    /// The fee rate routing weighs, per 10,000 (configured, or a `channel_fee` switch).
    pub fee_bps: u32,
    /// Errors per thousand calls that open the breaker (configured, or a
    /// `channel_breaker_errors` switch).
    pub breaker_error_permille_open: u64,
    /// Calls a second the channel takes at most; `null`: unlimited (configured, or a
    /// `channel_rate_limit` switch).
    pub rate_per_sec: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct BacklogView {
    pub open: u64,
    pub escalated: u64,
    pub undelivered: u64,
}

#[derive(Serialize, ToSchema)]
pub struct OverviewView {
    #[schema(example = "ops_overview")]
    pub object: &'static str,
    /// The node that answered.
    pub node: String,
    pub at_ms: u64,
    pub routes: Vec<RouteView>,
    pub channels: Vec<ChannelHealthView>,
    /// Status inquiries (调单); `null` on a node without the payment core.
    pub inquiries: Option<BacklogView>,
}

/// This node's health: RED per route, channels, the inquiry backlog (`ops:read`).
#[utoipa::path(get, path = "/v1/ops/overview", tag = "operations",
    responses((status = 200, body = OverviewView), (status = "4XX", body = ErrorBody)))]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<OverviewView>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let routes = state
        .http_metrics
        .summary(state.mode)
        .into_iter()
        .map(|route| RouteView {
            route: route.route,
            requests: route.requests,
            client_errors: route.client_errors,
            server_errors: route.server_errors,
            p99_us_at_most: route.p99_us_at_most,
        })
        .collect();
    let gateway = state.payments.as_ref().and_then(|payments| payments.gateway().cloned());
    let channels = gateway
        .map(|gateway| gateway.status())
        .unwrap_or_default()
        .into_iter()
        .map(|status| ChannelHealthView {
            channel: status.channel.to_string(),
            breaker: match status.breaker {
                channels::breaker::BreakerState::Closed => "closed",
                channels::breaker::BreakerState::HalfOpen => "half_open",
                channels::breaker::BreakerState::Open => "open",
            }
            .to_string(),
            disabled: status.control.disabled,
            pinned: status.control.pinned,
            weight_permille: status.control.weight_permille,
            window_calls: status.window_calls,
            window_errors: status.window_errors,
            window_mean_latency_ms: status.window_mean_latency_ms,
            fee_bps: status.fee_bps,
            breaker_error_permille_open: status.breaker_error_permille_open,
            rate_per_sec: status.rate_per_sec,
        })
        .collect();
    let inquirer = state.payments.as_ref().and_then(|payments| payments.inquirer().cloned());
    let inquiries = match inquirer {
        Some(inquirer) => {
            let backlog = blocking(move || {
                inquirer.store().backlog().map_err(|e| ApiError::internal(e.to_string()))
            })
            .await?;
            Some(BacklogView {
                open: backlog.open,
                escalated: backlog.escalated,
                undelivered: backlog.undelivered,
            })
        }
        None => None,
    };
    Ok(axum::Json(OverviewView {
        object: "ops_overview",
        node: state.node.clone(),
        at_ms: state.clock.now().0 / 1_000,
        routes,
        channels,
        inquiries,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SheetLineView {
    pub chart_code: u32,
    /// The line's name in the payment core's chart; `null` for a line defined through the
    /// ledger API alone.
    pub name: Option<String>,
    /// `asset`, `liability`, `equity`, `income` or `expense`; `null` as for `name`.
    pub class: Option<String>,
    pub n_accounts: u64,
    /// Posted, in the line's normal direction (debits less credits for assets and expenses,
    /// credits less debits for the rest); a signed decimal string.
    pub balance_minor: String,
    pub debits_pending_minor: String,
    pub credits_pending_minor: String,
    /// Money held for others (counted in `client_money_minor`).
    pub client_money: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReserveView {
    pub channel: String,
    /// The channel's clearing account: debits less credits; a signed decimal string.
    pub balance_minor: String,
}

#[derive(Serialize, ToSchema)]
pub struct AssetSheetView {
    #[schema(value_type = formats::AssetCode)]
    pub asset: String,
    /// Debits equal credits, posted and pending.
    pub balanced: bool,
    pub lines: Vec<SheetLineView>,
    /// Customers' wallets, withdrawals in flight, merchants' takings and unplaced money.
    pub client_money_minor: String,
    pub reserves: Vec<ReserveView>,
    pub reserves_minor: String,
    /// Reserves less client money: below zero, the reserves do not cover what is owed.
    pub cover_minor: String,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceSheetView {
    #[schema(example = "balance_sheet")]
    pub object: &'static str,
    pub assets: Vec<AssetSheetView>,
}

fn class_name(class: ledger::model::AccountClass) -> &'static str {
    use ledger::model::AccountClass;
    match class {
        AccountClass::Asset => "asset",
        AccountClass::Liability => "liability",
        AccountClass::Equity => "equity",
        AccountClass::Income => "income",
        AccountClass::Expense => "expense",
    }
}

/// The balance sheet: the trial balance by chart line, and client money against the
/// reserves at each channel (`ops:read`).
#[utoipa::path(get, path = "/v1/ops/balance-sheet", tag = "operations",
    responses((status = 200, body = BalanceSheetView), (status = "4XX", body = ErrorBody)))]
pub async fn balance_sheet_view(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<BalanceSheetView>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let channels = state
        .payments
        .as_ref()
        .and_then(|payments| payments.gateway().map(|gateway| gateway.channel_ids()))
        .unwrap_or_default();
    let reader: Arc<dyn LedgerReader> = state.reader.clone();
    let sheets = blocking(move || {
        let lines = reader.trial_balance()?;
        let mut assets: Vec<money::AssetCode> = lines.iter().map(|line| line.asset).collect();
        assets.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assets.dedup();
        let mut wanted = Vec::new();
        for channel in &channels {
            for asset in &assets {
                let id = internal_account_id(&Internal::ChannelClearing(channel.clone()), *asset);
                wanted.push((id, channel.clone(), *asset));
            }
        }
        let ids: Vec<_> = wanted.iter().map(|(id, _, _)| *id).collect();
        let opened = reader.accounts_at_once(&ids)?;
        let reserves: Vec<Reserve> = wanted
            .into_iter()
            .filter_map(|(id, channel, asset)| {
                let account = opened.iter().find(|account| account.id == id)?;
                Some(Reserve {
                    channel,
                    asset,
                    balance_minor: -account.balances.net_credit_posted(),
                })
            })
            .collect();
        Ok::<_, ApiError>(balance_sheet(&lines, &reserves))
    })
    .await?;
    let assets = sheets
        .into_iter()
        .map(|sheet| AssetSheetView {
            asset: sheet.asset.to_string(),
            balanced: sheet.balanced,
            lines: sheet
                .lines
                .into_iter()
                .map(|line| SheetLineView {
                    chart_code: line.chart_code,
                    name: line.line.map(|known| known.name.to_string()),
                    class: line.line.map(|known| class_name(known.class).to_string()),
                    n_accounts: line.n_accounts,
                    balance_minor: line.balance_minor.to_string(),
                    debits_pending_minor: line.debits_pending_minor.to_string(),
                    credits_pending_minor: line.credits_pending_minor.to_string(),
                    client_money: payments::sheet::CLIENT_MONEY
                        .iter()
                        .any(|money| money.code == line.chart_code),
                })
                .collect(),
            client_money_minor: sheet.client_money_minor.to_string(),
            reserves: sheet
                .reserves
                .into_iter()
                .map(|reserve| ReserveView {
                    channel: reserve.channel.to_string(),
                    balance_minor: reserve.balance_minor.to_string(),
                })
                .collect(),
            reserves_minor: sheet.reserves_minor.to_string(),
            cover_minor: sheet.cover_minor.to_string(),
        })
        .collect();
    Ok(axum::Json(BalanceSheetView { object: "balance_sheet", assets }))
}

#[derive(Serialize, ToSchema)]
pub struct JournalHeadView {
    #[schema(example = "journal_head")]
    pub object: &'static str,
    /// The book read: `live`, or `test` for a test key (`books`).
    pub mode: &'static str,
    /// The last committed batch (0 before the first), as a decimal string.
    pub batch_seq: String,
    /// The last record's sequence number (0 before the first record), as a decimal string.
    pub last_seq: String,
    /// The chain's hash at that batch, hex.
    pub hash: String,
}

/// The head of the book's journal (`ops:read`): its last batch and chain hash. Read before
/// and after a test run, it shows the run left the live book alone — test keys act on a
/// book of their own.
#[utoipa::path(get, path = "/v1/journal/head", tag = "books",
    responses((status = 200, body = JournalHeadView), (status = "4XX", body = ErrorBody)))]
pub async fn journal_head(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<JournalHeadView>, ApiError> {
    require_platform(&state, &caller, Scope::OpsRead)?;
    let reader = state.reader.clone();
    let head = blocking(move || reader.head().map_err(ApiError::from)).await?;
    Ok(axum::Json(JournalHeadView {
        object: "journal_head",
        mode: state.mode.as_str(),
        batch_seq: head.batch_seq.0.to_string(),
        last_seq: head.last_seq.0.to_string(),
        hash: head.hash.to_hex(),
    }))
}
