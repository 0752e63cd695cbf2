//! The books and accounts of the ledger API (tags `books` and `accounts`): assets, the chart
//! of accounts, accounts with their balances and history, the trial balance and journal
//! verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::routes;
use crate::wire::{
    wire_enum, AccountId, Amount, AmountSum, List, Page, Paged, Seq, SignedAmount, TransferId,
};

/// `POST /v1/assets`: an asset and the number of decimal places of its minor unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetRequest {
    /// 1 to 12 of `A-Z 0-9 _`, starting with a letter (`CNY`).
    pub code: String,
    /// 0 to 18: CNY's fen is 2.
    pub scale: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AssetView {
    pub code: String,
    pub scale: u8,
}

wire_enum! {
    /// The class of a chart-of-accounts line (会计科目类别).
    pub enum AccountClass {
        Asset = "asset",
        Liability = "liability",
        Equity = "equity",
        Income = "income",
        Expense = "expense",
    }
}

/// `POST /v1/chart`: a line of the chart of accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChartRequest {
    /// `2241` (customer wallets), `1002` (bank deposits)…
    pub code: u32,
    /// At most 64 characters.
    pub name: String,
    pub class: AccountClass,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ChartView {
    pub code: u32,
    pub name: String,
    pub class: AccountClass,
}

/// What an account's balance may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BalanceRule {
    /// No bound: internal accounts such as a bank reserve or a clearing account.
    Unbounded,
    /// Debits never pass credits plus the overdraft: a wallet (`overdraft_minor` 0).
    DebitsWithinCredits { overdraft_minor: Amount },
    /// Credits never pass debits plus the limit.
    CreditsWithinDebits { limit_minor: Amount },
    /// A rule this client does not know (a newer service's). Never send it.
    #[serde(other)]
    Unknown,
}

/// How an account is spread over rows (hot accounts, docs/api.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountLayout {
    /// One row (the default).
    Plain,
    /// `count` rows (2 to 64); credits spread over them, debits swept together (子账户).
    SubAccounts { count: u8 },
    /// `count` buffer rows (1 to 64) beside the account's own, folded in within 100 ms.
    Buffered { count: u8 },
    /// Shown only: row `row` of account `of`. Never sent.
    Row { of: AccountId, row: u8 },
    /// A layout this client does not know (a newer service's). Never send it.
    #[serde(other)]
    Unknown,
}

/// `POST /v1/accounts`: open an account under an id you choose, so a retry opens it once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountRequest {
    pub id: AccountId,
    pub asset: String,
    pub chart_code: u32,
    pub rule: BalanceRule,
    /// At most 1,024 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// `Plain` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<AccountLayout>,
}

impl AccountRequest {
    pub fn new(id: AccountId, asset: &str, chart_code: u32, rule: BalanceRule) -> AccountRequest {
        AccountRequest {
            id,
            asset: asset.to_string(),
            chart_code,
            rule,
            metadata: None,
            layout: None,
        }
    }
}

wire_enum! {
    /// An account's status.
    pub enum AccountStatus {
        Active = "active",
        /// 冻结: nothing may leave; credits, voids and expiries still apply.
        FrozenDebits = "frozen_debits",
        /// Final; only when the balances net to zero with nothing pending.
        Closed = "closed",
    }
}

/// Four unsigned balances and what is available: direction is structure, never a sign.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BalancesView {
    pub debits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_pending: Amount,
    pub credits_posted: Amount,
    /// `credits_posted - debits_posted - debits_pending`: may be negative.
    pub available_credit: SignedAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AccountView {
    pub id: AccountId,
    pub asset: String,
    pub chart_code: u32,
    pub rule: BalanceRule,
    pub status: AccountStatus,
    pub metadata: String,
    pub layout: AccountLayout,
    /// For sub-accounts the sum over every row; for a buffered account its own row.
    pub balances: BalancesView,
    /// A buffered account only: its buffers summed.
    #[serde(default)]
    pub buffered: Option<BalancesView>,
    /// An account with a layout: its rows, row 0 (itself) first.
    #[serde(default)]
    pub rows: Vec<AccountId>,
    pub opened_seq: Seq,
    /// RFC 3339 UTC.
    pub opened_at: String,
}

/// `POST /v1/accounts/{id}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusRequest {
    pub status: AccountStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AccountStatusView {
    pub account_id: AccountId,
    pub status: AccountStatus,
}

/// Which balances `GET /v1/accounts/{id}/balance` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BalanceAt {
    #[default]
    Now,
    /// As of a journal position.
    Seq(Seq),
    /// As of a time, RFC 3339 with any offset (before the first record: zero balances).
    Time(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BalanceView {
    pub account_id: AccountId,
    pub asset: String,
    /// The journal point the balances are as of; `None` for now.
    #[serde(default)]
    pub as_of_seq: Option<Seq>,
    pub balances: BalancesView,
}

wire_enum! {
    /// The side of an entry.
    pub enum Side {
        Debit = "debit",
        Credit = "credit",
    }
}

/// One line of an account's history (账户明细), with the balances right after it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EntryView {
    /// The cursor for `starting_after`.
    pub seq: Seq,
    pub transfer_id: TransferId,
    pub side: Side,
    pub amount: Amount,
    pub balances_after: BalancesView,
}

impl Paged for EntryView {
    type Cursor = Seq;
    fn cursor(&self) -> Seq {
        self.seq
    }
}

/// Balances summed over accounts: totals may pass 2^63.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TotalsView {
    pub debits_pending: AmountSum,
    pub debits_posted: AmountSum,
    pub credits_pending: AmountSum,
    pub credits_posted: AmountSum,
    pub available_credit: SignedAmount,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TrialBalanceLine {
    pub asset: String,
    pub chart_code: u32,
    pub n_accounts: u64,
    pub balances: TotalsView,
}

/// Per asset, the sums over every account; `balanced` when debits equal credits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TrialBalanceAsset {
    pub asset: String,
    pub debits_posted: AmountSum,
    pub credits_posted: AmountSum,
    pub debits_pending: AmountSum,
    pub credits_pending: AmountSum,
    pub balanced: bool,
}

/// The trial balance (试算平衡): per asset and chart code.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TrialBalanceView {
    pub lines: Vec<TrialBalanceLine>,
    pub assets: Vec<TrialBalanceAsset>,
}

/// The journal recomputed: `ok`, and the report (the first divergence, if any).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct VerifyView {
    pub ok: bool,
    pub report: Value,
}

impl Client {
    /// Defines an asset (admin). The same definition again is 200; another scale is 409.
    pub async fn create_asset(
        &self,
        asset: &AssetRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<AssetView>, ClientError> {
        self.write(routes::CREATE_ASSET, &[], Some(asset), idempotency_key).await
    }

    /// Defines a chart-of-accounts line (admin).
    pub async fn create_chart(
        &self,
        chart: &ChartRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<ChartView>, ClientError> {
        self.write(routes::CREATE_CHART, &[], Some(chart), idempotency_key).await
    }

    /// Opens an account: 201, or 200 with the same account if it exists with these fields.
    pub async fn create_account(
        &self,
        account: &AccountRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<AccountView>, ClientError> {
        self.write(routes::CREATE_ACCOUNT, &[], Some(account), idempotency_key).await
    }

    pub async fn get_account(&self, id: AccountId) -> Result<AccountView, ClientError> {
        self.read(routes::GET_ACCOUNT, &[&id.to_string()], Query::new()).await
    }

    /// Freezes (`FrozenDebits`), unfreezes (`Active`) or closes an account.
    pub async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<AccountStatusView>, ClientError> {
        let body = StatusRequest { status };
        self.write(routes::SET_ACCOUNT_STATUS, &[&id.to_string()], Some(&body), idempotency_key)
            .await
    }

    /// The account's history, oldest first; page on with [`List::next_starting_after`].
    pub async fn list_entries(
        &self,
        id: AccountId,
        page: &Page<Seq>,
    ) -> Result<List<EntryView>, ClientError> {
        let query =
            Query::new().opt("limit", page.limit).opt("starting_after", page.starting_after);
        self.read(routes::LIST_ENTRIES, &[&id.to_string()], query).await
    }

    /// The account's balances now, or as of a journal position or a time.
    pub async fn get_balance(
        &self,
        id: AccountId,
        at: &BalanceAt,
    ) -> Result<BalanceView, ClientError> {
        let query = match at {
            BalanceAt::Now => Query::new(),
            BalanceAt::Seq(seq) => Query::new().opt("as_of_seq", Some(seq)),
            BalanceAt::Time(time) => Query::new().opt("as_of", Some(time)),
        };
        self.read(routes::GET_BALANCE, &[&id.to_string()], query).await
    }

    /// Totals per asset and chart code, and whether each asset balances (admin).
    pub async fn trial_balance(&self) -> Result<TrialBalanceView, ClientError> {
        self.read(routes::TRIAL_BALANCE, &[], Query::new()).await
    }

    /// Recomputes the hash chain and every balance (admin). It reads the whole journal.
    pub async fn verify_journal(
        &self,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<VerifyView>, ClientError> {
        self.write::<(), _>(routes::VERIFY_JOURNAL, &[], None, idempotency_key).await
    }
}
