//! The wire shapes of the API: every response body is one of these types, and each derives
//! its OpenAPI schema, so the document served at `/v1/openapi.json` is generated from the
//! same code that writes the responses.
//!
//! Domain types from `ledger`, `money` and `access` appear here through `value_type` overrides
//! that name a wire mirror ([`wire`]): the domain crates stay free of HTTP-documentation
//! concerns, and a unit test below keeps each mirror equal to the domain type's serde form.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Mirrors of domain enums in their JSON form, for the OpenAPI document only.
pub mod wire {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// The class of a chart-of-accounts line (会计科目类别).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum AccountClass {
        Asset,
        Liability,
        Equity,
        Income,
        Expense,
    }

    /// Whether and how far an account's balance may go.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum BalanceRule {
        /// No bound: internal accounts such as a bank reserve or a clearing account.
        Unbounded,
        /// Debits (posted + pending) never exceed credits + `overdraft_minor`: a wallet uses 0.
        DebitsWithinCredits {
            #[schema(value_type = crate::formats::AmountOrZero)]
            overdraft_minor: String,
        },
        /// Credits (posted + pending) never exceed debits + `limit_minor`.
        CreditsWithinDebits {
            #[schema(value_type = crate::formats::AmountOrZero)]
            limit_minor: String,
        },
    }

    /// The layout a new account may ask for (a row is the ledger's own, never asked for).
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum NewAccountLayout {
        /// One row (the default).
        Plain,
        /// Sub-accounts (子账户): `count` rows, 2 to 64.
        SubAccounts {
            #[schema(minimum = 2, maximum = 64)]
            count: u8,
        },
        /// Buffered posting (缓冲记账): `count` buffers, 1 to 64.
        Buffered {
            #[schema(minimum = 1, maximum = 64)]
            count: u8,
        },
    }

    /// How the account's balance is spread over rows, for hot accounts (热点账户).
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum AccountLayout {
        /// One row (the default).
        Plain,
        /// Sub-accounts (子账户): `count` rows (2-64); each batch credits one, debits are
        /// served from the rows together; balances shown are the sum.
        SubAccounts { count: u8 },
        /// Buffered posting (缓冲记账): credits land in one of `count` buffers (1-64) and are
        /// folded into the account within `fold_interval_ms` (100 ms by default); until then
        /// they show under `buffered` and cannot be spent.
        Buffered { count: u8 },
        /// Row `row` of account `of` (the ledger's own; cannot be named in a transfer).
        Row {
            #[schema(value_type = String)]
            of: String,
            row: u8,
        },
    }

    /// `active`; `frozen_debits` (冻结: nothing may leave); `closed`.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum AccountStatus {
        Active,
        FrozenDebits,
        Closed,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum TransferKind {
        Posted,
        Pending,
        PostPending,
        VoidPending,
        ExpirePending,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Side {
        Debit,
        Credit,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyMode {
        Live,
        Test,
    }

    /// The kinds of order, from `payments::OrderKind::ALL` (what `GET /v1/orders?kind=`
    /// parses), so a new kind cannot be left out of the document.
    pub struct OrderKind;

    impl utoipa::PartialSchema for OrderKind {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
            let kinds = payments::OrderKind::ALL.map(payments::OrderKind::as_str);
            string_enum("The kind of an order.", &kinds)
        }
    }

    impl ToSchema for OrderKind {
        fn name() -> std::borrow::Cow<'static, str> {
            "OrderKind".into()
        }
    }

    /// The states of a webhook delivery, from `webhooks::DeliveryState::ALL`.
    pub struct DeliveryState;

    impl utoipa::PartialSchema for DeliveryState {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
            let states = webhooks::DeliveryState::ALL.map(webhooks::DeliveryState::as_str);
            string_enum(
                "`pending` (tried again at `next_at_ms`), `delivered` (the endpoint answered \
                 2xx) or `failed` (attempts ran out).",
                &states,
            )
        }
    }

    impl ToSchema for DeliveryState {
        fn name() -> std::borrow::Cow<'static, str> {
            "DeliveryState".into()
        }
    }

    /// The scopes of a new key: 1 to 8, each once.
    pub struct NewKeyScopes;

    impl utoipa::PartialSchema for NewKeyScopes {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
            use utoipa::openapi::schema::ArrayBuilder;
            ArrayBuilder::new()
                .items(utoipa::openapi::Ref::from_schema_name("Scope"))
                .min_items(Some(1))
                .max_items(Some(access::Scope::ALL.len()))
                .unique_items(true)
                .into()
        }
    }

    impl ToSchema for NewKeyScopes {
        fn name() -> std::borrow::Cow<'static, str> {
            "NewKeyScopes".into()
        }

        fn schemas(
            schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
        ) {
            schemas.push((Scope::name().into(), <Scope as utoipa::PartialSchema>::schema()));
        }
    }

    fn string_enum(
        description: &str,
        values: &[&str],
    ) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(description))
            .enum_values(Some(values.iter().copied()))
            .into()
    }

    /// Declares a string enum whose values come from a domain type's `ALL` and `as_str`.
    macro_rules! domain_enum {
        ($(#[$doc:meta])* $name:ident, $description:expr, $values:expr) => {
            $(#[$doc])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    let values: Vec<&str> = $values;
                    string_enum($description, &values)
                }
            }

            impl ToSchema for $name {
                fn name() -> std::borrow::Cow<'static, str> {
                    stringify!($name).into()
                }
            }
        };
    }

    domain_enum!(
        /// A reconciliation line's class, from `recon::Class::ALL`.
        BreakClass,
        "Where a statement line or one of our records ended: `matched`, `missing_external` (we \
         record a success the channel does not), `missing_internal` (the channel records a \
         success we do not have), `amount_mismatch`, `fee_mismatch`, `status_mismatch`, \
         `duplicate`.",
        recon::Class::ALL.iter().map(|c| c.as_str()).collect()
    );

    domain_enum!(
        /// A break's state, from `recon::breaks::BreakState::ALL`.
        BreakState,
        "`open` → `assigned` → `pending_approval` → `resolving` → `resolved`.",
        recon::breaks::BreakState::ALL.iter().map(|s| s.as_str()).collect()
    );

    domain_enum!(
        /// A break's severity, from `recon::breaks::Severity::ALL`.
        Severity,
        "By amount (`high` from 100,000 minor units, `critical` from 1,000,000) and raised a \
         level every two days open.",
        recon::breaks::Severity::ALL.iter().map(|s| s.as_str()).collect()
    );

    domain_enum!(
        /// A statement line's type, from `recon::TxType::ALL`.
        TxType,
        "`debit` (money in from a payer), `payout` or `refund` (money out).",
        recon::TxType::ALL.iter().map(|t| t.as_str()).collect()
    );

    domain_enum!(
        /// A fund-safety monitor's rule, from `monitors::Rule::ALL`.
        AlertRule,
        "`books_unbalanced`, `suspense_aged`, `critical_breaks` (page); `high_breaks`, \
         `escalated_inquiries`, `overdue_orders` (warn); `withdrawal_spike`, \
         `account_debit_limit`, `clearing_drift` (page).",
        monitors::Rule::ALL.iter().map(|r| r.as_str()).collect()
    );

    domain_enum!(
        /// An alert's state.
        AlertState,
        "`firing` or `resolved`.",
        [monitors::AlertState::Firing, monitors::AlertState::Resolved]
            .iter()
            .map(|s| s.as_str())
            .collect()
    );

    /// How a break was (or is to be) resolved.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum Resolution {
        /// 补单: the payer's wallet (`tenant/customer`) is credited.
        CreditCustomer {
            customer: String,
        },
        RefundPayer,
        Adjust,
        WriteOff,
        Recover {
            loss_id: String,
        },
        ForceMatch,
        /// The platform's own: the order took the channel's answer.
        OrderCompleted,
        /// The platform's own: a newer statement no longer shows the break.
        Superseded,
    }

    #[derive(Serialize, ToSchema)]
    pub enum Scope {
        #[serde(rename = "ledger:read")]
        LedgerRead,
        #[serde(rename = "ledger:write")]
        LedgerWrite,
        #[serde(rename = "admin")]
        Admin,
        #[serde(rename = "recon:read")]
        ReconRead,
        #[serde(rename = "recon:write")]
        ReconWrite,
        #[serde(rename = "recon:approve")]
        ReconApprove,
        #[serde(rename = "ops:read")]
        OpsRead,
        #[serde(rename = "ops:write")]
        OpsWrite,
        #[serde(rename = "ops:approve")]
        OpsApprove,
    }
}

/// The one error shape.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Derived from the status: `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `not_found_error`, `conflict_error`, `rejected_error`,
    /// `rate_limit_error`, `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stable, machine-readable; the list is in docs/api.md.
    pub code: String,
    pub message: String,
    /// The offending field or header, if one is to blame.
    pub param: Option<String>,
}

impl From<&ApiError> for ErrorDetail {
    fn from(error: &ApiError) -> ErrorDetail {
        ErrorDetail {
            kind: error.kind().to_string(),
            code: error.code.clone(),
            message: error.message.clone(),
            param: error.param.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AssetView {
    #[schema(value_type = String, example = "CNY")]
    pub code: money::AssetCode,
    /// Digits after the decimal point: amounts are integers of 10^-scale units.
    pub scale: u8,
}

#[derive(Serialize, ToSchema)]
pub struct ChartView {
    pub code: u32,
    pub name: String,
    #[schema(value_type = wire::AccountClass)]
    pub class: ledger::model::AccountClass,
}

/// Four unsigned balances, as decimal strings of minor units.
#[derive(Serialize, ToSchema)]
pub struct BalancesView {
    #[schema(value_type = String, example = "0")]
    pub debits_pending: money::Amount,
    #[schema(value_type = String, example = "2500")]
    pub debits_posted: money::Amount,
    #[schema(value_type = String, example = "0")]
    pub credits_pending: money::Amount,
    #[schema(value_type = String, example = "10000")]
    pub credits_posted: money::Amount,
    /// Signed: credits_posted - debits_posted - debits_pending.
    #[schema(example = "7500")]
    pub available_credit: String,
}

impl From<&ledger::Balances> for BalancesView {
    fn from(balances: &ledger::Balances) -> BalancesView {
        BalancesView {
            debits_pending: balances.debits_pending,
            debits_posted: balances.debits_posted,
            credits_pending: balances.credits_pending,
            credits_posted: balances.credits_posted,
            available_credit: balances.available_credit().to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// Always `account`.
    pub object: &'static str,
    #[schema(value_type = String, example = "1001")]
    pub id: ledger::AccountId,
    #[schema(value_type = String, example = "CNY")]
    pub asset: money::AssetCode,
    pub chart_code: u32,
    #[schema(value_type = wire::BalanceRule)]
    pub rule: ledger::model::BalanceRule,
    #[schema(value_type = wire::AccountStatus)]
    pub status: ledger::model::AccountStatus,
    pub metadata: String,
    #[schema(value_type = wire::AccountLayout)]
    pub layout: ledger::model::AccountLayout,
    /// For sub-accounts the sum over every row; for a buffered account its own row (what it
    /// can spend).
    pub balances: BalancesView,
    /// A buffered account only: its buffers summed; their `available_credit` is what waits
    /// to be folded in (their turnover includes what was folded out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffered: Option<BalancesView>,
    /// An account with a layout: the ids of its rows, row 0 (itself) first. Each row has its
    /// own history (`/v1/accounts/{row}/entries`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub rows: Vec<ledger::AccountId>,
    /// Journal sequence number of the opening.
    pub opened_seq: String,
    /// RFC 3339 UTC.
    pub opened_at: String,
}

impl From<&ledger::Account> for AccountView {
    fn from(account: &ledger::Account) -> AccountView {
        AccountView {
            object: "account",
            id: account.id,
            asset: account.asset,
            chart_code: account.chart_code.0,
            rule: account.rule,
            status: account.status,
            metadata: account.metadata.as_str().to_string(),
            layout: account.layout,
            balances: (&account.balances).into(),
            buffered: None,
            rows: if account.layout.derived_rows().is_empty() {
                Vec::new()
            } else {
                account.layout.row_ids(account.id).collect()
            },
            opened_seq: account.opened_seq.0.to_string(),
            opened_at: rfc3339(account.opened_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountStatusView {
    /// Always `account_status`.
    pub object: &'static str,
    #[schema(value_type = String)]
    pub account_id: ledger::AccountId,
    #[schema(value_type = wire::AccountStatus)]
    pub status: ledger::model::AccountStatus,
}

/// One line of an account's history (账户明细), with the balances right after it.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    /// Always `entry`.
    pub object: &'static str,
    /// Journal sequence number; the cursor for `starting_after`.
    pub seq: String,
    #[schema(value_type = String)]
    pub transfer_id: ledger::TransferId,
    #[schema(value_type = wire::Side)]
    pub side: ledger::model::Side,
    #[schema(value_type = String)]
    pub amount: money::Amount,
    pub balances_after: BalancesView,
}

impl From<&ledger::model::Entry> for EntryView {
    fn from(entry: &ledger::model::Entry) -> EntryView {
        EntryView {
            object: "entry",
            seq: entry.seq.0.to_string(),
            transfer_id: entry.transfer_id,
            side: entry.side,
            amount: entry.amount,
            balances_after: (&entry.balances_after).into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntryList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EntryView>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// Always `balance`.
    pub object: &'static str,
    #[schema(value_type = String)]
    pub account_id: ledger::AccountId,
    #[schema(value_type = String)]
    pub asset: money::AssetCode,
    /// The journal point the balances are as of; null for now.
    pub as_of_seq: Option<String>,
    pub balances: BalancesView,
}

#[derive(Serialize, ToSchema)]
pub struct TransferView {
    /// Always `transfer`.
    pub object: &'static str,
    #[schema(value_type = String, example = "7001")]
    pub id: ledger::TransferId,
    #[schema(value_type = wire::TransferKind)]
    pub kind: ledger::model::TransferKind,
    #[schema(value_type = String)]
    pub debit_account_id: ledger::AccountId,
    #[schema(value_type = String)]
    pub credit_account_id: ledger::AccountId,
    #[schema(value_type = String)]
    pub asset: money::AssetCode,
    #[schema(value_type = String, example = "2500")]
    pub amount: money::Amount,
    /// For post/void/expire: the hold this transfer resolves.
    #[schema(value_type = Option<String>)]
    pub pending_id: Option<ledger::TransferId>,
    /// For a pending transfer with a timeout: when it expires (RFC 3339 UTC).
    pub expires_at: Option<String>,
    pub business_code: u32,
    pub order_ref: String,
    /// Journal sequence number.
    pub seq: String,
    /// When it was committed (RFC 3339 UTC).
    pub timestamp: String,
}

impl From<&ledger::Transfer> for TransferView {
    fn from(transfer: &ledger::Transfer) -> TransferView {
        TransferView {
            object: "transfer",
            id: transfer.id,
            kind: transfer.kind,
            debit_account_id: transfer.debit_account_id,
            credit_account_id: transfer.credit_account_id,
            asset: transfer.asset,
            amount: transfer.amount,
            pending_id: transfer.pending_id,
            expires_at: transfer.expires_at.map(rfc3339),
            business_code: transfer.business_code.0,
            order_ref: transfer.order_ref.as_str().to_string(),
            seq: transfer.seq.0.to_string(),
            timestamp: rfc3339(transfer.timestamp),
        }
    }
}

/// One item of a batch: `created`, `replayed` (with the transfer) or `rejected` (with the
/// error).
#[derive(Serialize, ToSchema)]
pub struct BatchItemView {
    #[schema(example = "created")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResultView {
    /// Always `batch_result`.
    pub object: &'static str,
    /// One result per submitted transfer, in order.
    pub data: Vec<BatchItemView>,
}

#[derive(Serialize, ToSchema)]
pub struct TrialBalanceLine {
    #[schema(value_type = String)]
    pub asset: money::AssetCode,
    pub chart_code: u32,
    pub n_accounts: u64,
    pub balances: TotalsView,
}

/// Balances summed over accounts, as decimal strings (totals may pass 2^63).
#[derive(Serialize, ToSchema)]
pub struct TotalsView {
    pub debits_pending: String,
    pub debits_posted: String,
    pub credits_pending: String,
    pub credits_posted: String,
    /// Signed: credits_posted - debits_posted - debits_pending.
    pub available_credit: String,
}

impl From<&ledger::port::BalanceTotals> for TotalsView {
    fn from(totals: &ledger::port::BalanceTotals) -> TotalsView {
        TotalsView {
            debits_pending: totals.debits_pending.to_string(),
            debits_posted: totals.debits_posted.to_string(),
            credits_pending: totals.credits_pending.to_string(),
            credits_posted: totals.credits_posted.to_string(),
            available_credit: totals.available_credit().to_string(),
        }
    }
}

/// Per asset, the sums over every account; `balanced` when debits equal credits.
#[derive(Serialize, ToSchema)]
pub struct TrialBalanceAsset {
    pub asset: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    pub balanced: bool,
}

/// The trial balance (试算平衡): per asset and chart code.
#[derive(Serialize, ToSchema)]
pub struct TrialBalanceView {
    /// Always `trial_balance`.
    pub object: &'static str,
    pub lines: Vec<TrialBalanceLine>,
    pub assets: Vec<TrialBalanceAsset>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyView {
    /// Always `verify_report`.
    pub object: &'static str,
    pub ok: bool,
    /// Batches, records and accounts checked, the head hash, and the first divergence.
    #[schema(value_type = Object)]
    pub report: ledger::verify::VerifyReport,
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    /// Always `api_key`.
    pub object: &'static str,
    pub id: String,
    #[schema(value_type = String)]
    pub tenant: access::TenantId,
    #[schema(value_type = wire::KeyMode)]
    pub mode: access::KeyMode,
    #[schema(value_type = Vec<wire::Scope>)]
    pub scopes: Vec<access::Scope>,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub revoked: bool,
    /// Every request with this key must be signed.
    pub signed: bool,
    /// The merchant this key is bound to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Only in the response that created the key: shown once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&access::ApiKey> for KeyView {
    fn from(key: &access::ApiKey) -> KeyView {
        KeyView {
            object: "api_key",
            id: key.id.clone(),
            tenant: key.tenant.clone(),
            mode: key.mode,
            scopes: key.scopes.clone(),
            prefix: key.prefix.clone(),
            revoked: key.revoked_at_us.is_some(),
            signed: key.signed,
            merchant: key.merchant.clone(),
            secret: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<KeyView>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RevokedKeyView {
    /// Always `api_key`.
    pub object: &'static str,
    pub id: String,
    pub revoked: bool,
}

pub fn rfc3339(at: ledger::Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(at.0);
    humantime::format_rfc3339_micros(time).to_string()
}

/// A view as the JSON value the idempotency layer stores and replays.
pub fn to_value(view: impl Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(view).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::wire;

    /// Each wire mirror serialises exactly as its domain type, variant by variant.
    #[test]
    fn wire_mirrors_match_domain_serde() {
        use ledger::model::{AccountClass, AccountStatus, BalanceRule, Side, TransferKind};
        let same = |domain: serde_json::Value, mirror: serde_json::Value| {
            assert_eq!(domain, mirror);
        };
        let pairs = [
            (json!(AccountClass::Asset), json!(wire::AccountClass::Asset)),
            (json!(AccountClass::Liability), json!(wire::AccountClass::Liability)),
            (json!(AccountClass::Equity), json!(wire::AccountClass::Equity)),
            (json!(AccountClass::Income), json!(wire::AccountClass::Income)),
            (json!(AccountClass::Expense), json!(wire::AccountClass::Expense)),
            (json!(AccountStatus::Active), json!(wire::AccountStatus::Active)),
            (json!(AccountStatus::FrozenDebits), json!(wire::AccountStatus::FrozenDebits)),
            (json!(AccountStatus::Closed), json!(wire::AccountStatus::Closed)),
            (json!(TransferKind::Posted), json!(wire::TransferKind::Posted)),
            (json!(TransferKind::Pending), json!(wire::TransferKind::Pending)),
            (json!(TransferKind::PostPending), json!(wire::TransferKind::PostPending)),
            (json!(TransferKind::VoidPending), json!(wire::TransferKind::VoidPending)),
            (json!(TransferKind::ExpirePending), json!(wire::TransferKind::ExpirePending)),
            (json!(Side::Debit), json!(wire::Side::Debit)),
            (json!(Side::Credit), json!(wire::Side::Credit)),
            (json!(access::KeyMode::Live), json!(wire::KeyMode::Live)),
            (json!(access::KeyMode::Test), json!(wire::KeyMode::Test)),
            (json!(access::Scope::LedgerRead), json!(wire::Scope::LedgerRead)),
            (json!(access::Scope::LedgerWrite), json!(wire::Scope::LedgerWrite)),
            (json!(access::Scope::Admin), json!(wire::Scope::Admin)),
            (json!(access::Scope::ReconRead), json!(wire::Scope::ReconRead)),
            (json!(access::Scope::ReconWrite), json!(wire::Scope::ReconWrite)),
            (json!(access::Scope::ReconApprove), json!(wire::Scope::ReconApprove)),
            (json!(access::Scope::OpsRead), json!(wire::Scope::OpsRead)),
            (json!(access::Scope::OpsWrite), json!(wire::Scope::OpsWrite)),
            (json!(access::Scope::OpsApprove), json!(wire::Scope::OpsApprove)),
            (
                json!(recon::breaks::Resolution::CreditCustomer { customer: "t/c".into() }),
                json!(wire::Resolution::CreditCustomer { customer: "t/c".into() }),
            ),
            (json!(recon::breaks::Resolution::RefundPayer), json!(wire::Resolution::RefundPayer)),
            (json!(recon::breaks::Resolution::Adjust), json!(wire::Resolution::Adjust)),
            (json!(recon::breaks::Resolution::WriteOff), json!(wire::Resolution::WriteOff)),
            (
                json!(recon::breaks::Resolution::Recover { loss_id: "loss_1".into() }),
                json!(wire::Resolution::Recover { loss_id: "loss_1".into() }),
            ),
            (json!(recon::breaks::Resolution::ForceMatch), json!(wire::Resolution::ForceMatch)),
            (
                json!(recon::breaks::Resolution::OrderCompleted),
                json!(wire::Resolution::OrderCompleted),
            ),
            (json!(recon::breaks::Resolution::Superseded), json!(wire::Resolution::Superseded)),
            (json!(BalanceRule::Unbounded), json!(wire::BalanceRule::Unbounded)),
            (
                json!(BalanceRule::DebitsWithinCredits { overdraft_minor: money::Amount::ZERO }),
                json!(wire::BalanceRule::DebitsWithinCredits { overdraft_minor: "0".into() }),
            ),
            (
                json!(BalanceRule::CreditsWithinDebits { limit_minor: money::Amount::ZERO }),
                json!(wire::BalanceRule::CreditsWithinDebits { limit_minor: "0".into() }),
            ),
        ];
        for (domain, mirror) in pairs {
            same(domain, mirror);
        }
    }
}
