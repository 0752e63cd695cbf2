//! The accounting model: chart of accounts, accounts with four balance fields, transfers and
//! holds, and the records the journal is made of.

use money::{Amount, Asset, AssetCode};

use crate::ids::{AccountId, Seq, Timestamp, TransferId};

/// The five classes of the chart of accounts (会计科目类别). Asset and expense accounts are
/// debit-normal; liability, equity and income accounts are credit-normal.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccountClass {
    Asset,
    Liability,
    Equity,
    Income,
    Expense,
}

impl AccountClass {
    pub const ALL: [AccountClass; 5] = [
        AccountClass::Asset,
        AccountClass::Liability,
        AccountClass::Equity,
        AccountClass::Income,
        AccountClass::Expense,
    ];

    pub fn code(self) -> u8 {
        match self {
            AccountClass::Asset => 1,
            AccountClass::Liability => 2,
            AccountClass::Equity => 3,
            AccountClass::Income => 4,
            AccountClass::Expense => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<AccountClass> {
        AccountClass::ALL.into_iter().find(|class| class.code() == code)
    }

    pub fn is_debit_normal(self) -> bool {
        matches!(self, AccountClass::Asset | AccountClass::Expense)
    }
}

/// A chart-of-accounts code (科目代码), e.g. 1002 "bank deposits", 2241 "customer wallets".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ChartCode(pub u32);

/// One line of the chart of accounts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChartEntry {
    pub code: ChartCode,
    pub name: BoundedText<CHART_NAME_LEN_MAX>,
    pub class: AccountClass,
}

pub const CHART_NAME_LEN_MAX: usize = 64;
pub const METADATA_LEN_MAX: usize = 1024;
pub const ORDER_REF_LEN_MAX: usize = 64;

/// A string of at most `N` characters (Unicode scalar values), so at most `4 * N` bytes of
/// UTF-8. The bound is checked at construction, so no request can grow a row without limit.
/// Characters, not bytes, because that is what JSON Schema's `maxLength` counts: the API's
/// OpenAPI document can then state the limit exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BoundedText<const N: usize>(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text is {len} characters, more than the limit of {max}")]
pub struct TextTooLong {
    pub len: usize,
    pub max: usize,
}

impl<const N: usize> BoundedText<N> {
    pub fn new(text: impl Into<String>) -> Result<Self, TextTooLong> {
        let text = text.into();
        // A string of at most N bytes has at most N characters: counting stops early.
        if text.len() > N {
            let len = text.chars().count();
            if len > N {
                return Err(TextTooLong { len, max: N });
            }
        }
        Ok(BoundedText(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for BoundedText<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BoundedText::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// What a balance may not do. Direction is structure: the rule names which side is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BalanceRule {
    /// No bound: internal accounts such as a bank reserve or a clearing account.
    Unbounded,
    /// `debits_posted + debits_pending <= credits_posted + overdraft_minor`. A customer wallet
    /// (a liability) uses overdraft 0: it can never go negative.
    DebitsWithinCredits { overdraft_minor: Amount },
    /// `credits_posted + credits_pending <= debits_posted + limit_minor`: the mirror image,
    /// for debit-normal accounts that must not turn into a credit balance.
    CreditsWithinDebits { limit_minor: Amount },
}

impl BalanceRule {
    /// A wallet: debits may never exceed credits.
    pub const NO_OVERDRAFT: BalanceRule =
        BalanceRule::DebitsWithinCredits { overdraft_minor: Amount::ZERO };
}

/// An account's status. Freezing (冻结) stops money leaving; closing stops everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// No new debits (transfers or holds out of the account, or posting a hold). Credits,
    /// voids and expiries still apply: a freeze must never trap a refund or a released hold.
    FrozenDebits,
    /// No movement at all. Only an account with all four balances netting to zero and no
    /// pending amounts can be closed.
    Closed,
}

impl AccountStatus {
    pub fn code(self) -> u8 {
        match self {
            AccountStatus::Active => 1,
            AccountStatus::FrozenDebits => 2,
            AccountStatus::Closed => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<AccountStatus> {
        [AccountStatus::Active, AccountStatus::FrozenDebits, AccountStatus::Closed]
            .into_iter()
            .find(|status| status.code() == code)
    }
}

/// The four balance fields. Never a signed net: the net is a method, per the account's side.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Balances {
    pub debits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_pending: Amount,
    pub credits_posted: Amount,
}

impl Balances {
    /// Credits minus debits, posted only; negative for a debit-normal account in use.
    pub fn net_credit_posted(&self) -> i128 {
        i128::from(self.credits_posted.minor()) - i128::from(self.debits_posted.minor())
    }

    /// What a credit-normal account can still pay out: posted credits minus posted and
    /// pending debits. Pending credits are not spendable until posted.
    pub fn available_credit(&self) -> i128 {
        self.net_credit_posted() - i128::from(self.debits_pending.minor())
    }

    /// Field by field (the rows of one account summed); `None` if a field would pass
    /// [`Amount::MAX`] — a sum that cannot be shown exactly is an error, never a clamped number.
    pub fn checked_plus(&self, other: &Balances) -> Option<Balances> {
        Some(Balances {
            debits_pending: self.debits_pending.checked_add(other.debits_pending)?,
            debits_posted: self.debits_posted.checked_add(other.debits_posted)?,
            credits_pending: self.credits_pending.checked_add(other.credits_pending)?,
            credits_posted: self.credits_posted.checked_add(other.credits_posted)?,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.debits_pending.is_zero()
            && self.credits_pending.is_zero()
            && self.debits_posted == self.credits_posted
    }
}

/// How an account's balance is spread over physical rows: the two hot-account settings
/// (热点账户). Either way the account keeps one id; the other rows have ids derived from it
/// ([`AccountId::row`]) and are real ledger accounts with the same asset and chart code, so
/// every movement between rows is an ordinary double entry and the trial balance, the hash
/// chain and `verify` need nothing special.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountLayout {
    /// One row (the default).
    #[default]
    Plain,
    /// Sub-accounts (子账户): `count` rows, the account's own (row 0) and `count - 1` derived
    /// ones. A batch that only credits the account locks and credits one row, a different one
    /// batch after batch; a debit locks every row and is served from the row with the most
    /// available, topped up from the others by sweep transfers if it falls short; reads sum
    /// the rows. Credits are spendable at once.
    SubAccounts { count: u8 },
    /// Buffered posting (缓冲记账): credits land at once, journaled, in one of `count` buffer
    /// rows (rows 1..=count); the pipeline folds the buffers into the account's own row
    /// asynchronously. Debits draw on the own row only, so a credit is not spendable until it
    /// is folded, and no overdraft is possible. Credits never touch the row debits lock.
    Buffered { count: u8 },
    /// Not a setting: marks row `row` (≥ 1) of account `of`. Written by the ledger when it
    /// opens the account; a client can neither open such an account nor name it in a
    /// transfer or status change (else it could spend a buffer before it is folded).
    Row { of: AccountId, row: u8 },
}

impl AccountLayout {
    /// Most rows a layout may spread over.
    pub const ROWS_MAX: u8 = 64;

    /// The derived rows (not the account's own), by row number.
    pub fn derived_rows(self) -> std::ops::RangeInclusive<u8> {
        match self {
            // Empty on purpose: no derived rows.
            #[allow(clippy::reversed_empty_ranges)]
            AccountLayout::Plain | AccountLayout::Row { .. } => 1..=0,
            AccountLayout::SubAccounts { count } => 1..=count.saturating_sub(1),
            AccountLayout::Buffered { count } => 1..=count,
        }
    }

    /// Every row of account `id` under this layout, its own (row 0) first.
    pub fn row_ids(self, id: AccountId) -> impl Iterator<Item = AccountId> {
        std::iter::once(0).chain(self.derived_rows()).map(move |row| id.row(row))
    }

    /// Whether the layout's row count is in range.
    pub fn is_valid(self) -> bool {
        match self {
            AccountLayout::Plain => true,
            AccountLayout::Row { .. } => false,
            AccountLayout::SubAccounts { count } => (2..=Self::ROWS_MAX).contains(&count),
            AccountLayout::Buffered { count } => (1..=Self::ROWS_MAX).contains(&count),
        }
    }

    /// One row and nothing to route: a plain account, or a row of another.
    pub fn is_plain(self) -> bool {
        matches!(self, AccountLayout::Plain | AccountLayout::Row { .. })
    }

    pub fn is_row(self) -> bool {
        matches!(self, AccountLayout::Row { .. })
    }

    /// The row a batch that credits the account should lock: batches rotate over the rows
    /// by `turn` (the pipeline's batch counter), so two writers rarely pick the same row.
    pub fn credit_row(self, turn: u64) -> u8 {
        match self {
            AccountLayout::Plain | AccountLayout::Row { .. } => 0,
            AccountLayout::SubAccounts { count } => (turn % u64::from(count.max(1))) as u8,
            AccountLayout::Buffered { count } => 1 + (turn % u64::from(count.max(1))) as u8,
        }
    }
}

/// A request to open an account.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NewAccount {
    pub id: AccountId,
    pub asset: AssetCode,
    pub chart_code: ChartCode,
    pub rule: BalanceRule,
    #[serde(default)]
    pub metadata: BoundedText<METADATA_LEN_MAX>,
    #[serde(default)]
    pub layout: AccountLayout,
}

/// An account as stored: what it was opened with, its status and its balances.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub asset: AssetCode,
    pub chart_code: ChartCode,
    pub rule: BalanceRule,
    pub metadata: BoundedText<METADATA_LEN_MAX>,
    #[serde(default)]
    pub layout: AccountLayout,
    pub status: AccountStatus,
    pub balances: Balances,
    pub opened_seq: Seq,
    pub opened_at: Timestamp,
}

impl Account {
    pub fn matches(&self, request: &NewAccount) -> bool {
        self.id == request.id
            && self.asset == request.asset
            && self.chart_code == request.chart_code
            && self.rule == request.rule
            && self.metadata == request.metadata
            && self.layout == request.layout
    }
}

/// A business code on a transfer (e.g. 1001 top-up, 2001 payment): what the movement is for.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BusinessCode(pub u32);

/// The debit side, credit side, asset and amount of a movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Movement {
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub asset: AssetCode,
    pub amount: Amount,
}

/// What a transfer does. Holds follow one verb pair: `pending → post | void` (or expire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferAction {
    /// Move money now.
    Post(Movement),
    /// Reserve money (a hold, 预授权/冻结): it counts against the debit account's limit but
    /// moves nothing until posted. `timeout_secs` releases it automatically.
    Pending { movement: Movement, timeout_secs: Option<u32> },
    /// Post a pending transfer, whole or in part (`amount` ≤ the held amount; the rest is
    /// released). `None` posts the whole amount.
    PostPending { pending_id: TransferId, amount: Option<Amount> },
    /// Release a pending transfer.
    VoidPending { pending_id: TransferId },
}

/// A request to move money. The id is the idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NewTransfer {
    pub id: TransferId,
    pub action: TransferAction,
    #[serde(default)]
    pub business_code: BusinessCode,
    #[serde(default)]
    pub order_ref: BoundedText<ORDER_REF_LEN_MAX>,
}

/// What kind of record a stored transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Posted,
    Pending,
    PostPending,
    VoidPending,
    /// Written by the ledger itself when a hold's timeout passes.
    ExpirePending,
}

impl TransferKind {
    pub fn code(self) -> u8 {
        match self {
            TransferKind::Posted => 1,
            TransferKind::Pending => 2,
            TransferKind::PostPending => 3,
            TransferKind::VoidPending => 4,
            TransferKind::ExpirePending => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<TransferKind> {
        [
            TransferKind::Posted,
            TransferKind::Pending,
            TransferKind::PostPending,
            TransferKind::VoidPending,
            TransferKind::ExpirePending,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

/// A committed transfer: an immutable journal record. For post/void/expire the accounts and
/// asset are the pending transfer's; `amount` is what was posted, or what was released.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub kind: TransferKind,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub asset: AssetCode,
    pub amount: Amount,
    pub pending_id: Option<TransferId>,
    pub expires_at: Option<Timestamp>,
    pub business_code: BusinessCode,
    pub order_ref: BoundedText<ORDER_REF_LEN_MAX>,
    pub seq: Seq,
    pub timestamp: Timestamp,
    /// A digest of the request that created it, so that a retry can be told apart from a
    /// different request reusing the id.
    pub fingerprint: Fingerprint,
}

/// The first 16 bytes of a SHA-256 over a request's canonical encoding.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Fingerprint(pub [u8; 16]);

/// Where a hold stands. Only `Pending` may change, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    Pending,
    Posted,
    Voided,
    Expired,
}

impl HoldState {
    pub fn code(self) -> u8 {
        match self {
            HoldState::Pending => 1,
            HoldState::Posted => 2,
            HoldState::Voided => 3,
            HoldState::Expired => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<HoldState> {
        [HoldState::Pending, HoldState::Posted, HoldState::Voided, HoldState::Expired]
            .into_iter()
            .find(|state| state.code() == code)
    }
}

/// The live state of a pending transfer: a projection of the journal, kept so that post,
/// void and expiry find it by id without scanning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub pending_id: TransferId,
    pub movement: Movement,
    pub expires_at: Option<Timestamp>,
    pub state: HoldState,
    pub business_code: BusinessCode,
}

/// Which side of a transfer an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

/// One account's side of one transfer, with the account's balances right after it: the
/// account history (账户明细) with a running balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub account_id: AccountId,
    pub seq: Seq,
    pub transfer_id: TransferId,
    pub side: Side,
    pub amount: Amount,
    pub balances_after: Balances,
}

/// One record of the journal. Every change to the books is one of these, in `seq` order,
/// and the hash chain covers them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    AssetDefined { seq: Seq, asset: Asset },
    ChartDefined { seq: Seq, entry: ChartEntry },
    AccountOpened(Account),
    AccountStatusSet { seq: Seq, account_id: AccountId, status: AccountStatus },
    Transfer(Transfer),
}

impl Record {
    pub fn seq(&self) -> Seq {
        match self {
            Record::AssetDefined { seq, .. }
            | Record::ChartDefined { seq, .. }
            | Record::AccountStatusSet { seq, .. } => *seq,
            Record::AccountOpened(account) => account.opened_seq,
            Record::Transfer(transfer) => transfer.seq,
        }
    }
}
