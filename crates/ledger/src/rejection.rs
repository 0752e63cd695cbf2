//! Expected rejections: plain enums, one result per item, never an operating failure.
//! Each variant has a stable snake_case code that the HTTP edge returns as is.

/// Why a transfer was not applied. Nothing about a rejected transfer is stored, so the same
/// id may be retried later (after a top-up, say) and succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransferRejection {
    #[error("debit and credit accounts must differ")]
    AccountsMustDiffer,
    #[error("amount must not be zero")]
    AmountMustNotBeZero,
    #[error("the asset differs from an account's asset")]
    AssetMismatch,
    #[error("debit account not found")]
    DebitAccountNotFound,
    #[error("credit account not found")]
    CreditAccountNotFound,
    #[error("debit account is frozen for debits")]
    DebitAccountFrozen,
    #[error("debit account is closed")]
    DebitAccountClosed,
    #[error("credit account is closed")]
    CreditAccountClosed,
    #[error("debits would exceed the debit account's credits and overdraft")]
    ExceedsCredits,
    #[error("credits would exceed the credit account's debits and limit")]
    ExceedsDebits,
    #[error("a balance would exceed the largest representable amount")]
    OverflowsBalance,
    #[error("pending transfer not found")]
    PendingNotFound,
    #[error("pending transfer already posted")]
    PendingAlreadyPosted,
    #[error("pending transfer already voided")]
    PendingAlreadyVoided,
    #[error("pending transfer expired")]
    PendingExpired,
    #[error("post amount exceeds the pending amount")]
    ExceedsPendingAmount,
    #[error("a transfer with this id exists with different fields")]
    IdExistsWithDifferentFields,
    #[error("a transfer linked to this one failed")]
    LinkedTransferFailed,
    #[error("transfer ids of 2^127 and above are reserved for the ledger's own records")]
    IdReserved,
}

impl TransferRejection {
    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            TransferRejection::AccountsMustDiffer => "accounts_must_differ",
            TransferRejection::AmountMustNotBeZero => "amount_must_not_be_zero",
            TransferRejection::AssetMismatch => "asset_mismatch",
            TransferRejection::DebitAccountNotFound => "debit_account_not_found",
            TransferRejection::CreditAccountNotFound => "credit_account_not_found",
            TransferRejection::DebitAccountFrozen => "debit_account_frozen",
            TransferRejection::DebitAccountClosed => "debit_account_closed",
            TransferRejection::CreditAccountClosed => "credit_account_closed",
            TransferRejection::ExceedsCredits => "exceeds_credits",
            TransferRejection::ExceedsDebits => "exceeds_debits",
            TransferRejection::OverflowsBalance => "overflows_balance",
            TransferRejection::PendingNotFound => "pending_not_found",
            TransferRejection::PendingAlreadyPosted => "pending_already_posted",
            TransferRejection::PendingAlreadyVoided => "pending_already_voided",
            TransferRejection::PendingExpired => "pending_expired",
            TransferRejection::ExceedsPendingAmount => "exceeds_pending_amount",
            TransferRejection::IdExistsWithDifferentFields => "id_exists_with_different_fields",
            TransferRejection::LinkedTransferFailed => "linked_transfer_failed",
            TransferRejection::IdReserved => "id_reserved",
        }
    }
}

/// Why an account, asset or chart line was not created, or a status not changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountRejection {
    #[error("asset not defined")]
    AssetNotFound,
    #[error("chart-of-accounts code not defined")]
    ChartCodeNotFound,
    #[error("an account with this id exists with different fields")]
    IdExistsWithDifferentFields,
    #[error("an asset with this code exists with a different scale")]
    AssetExistsWithDifferentScale,
    #[error("a chart line with this code exists with different fields")]
    ChartExistsWithDifferentFields,
    #[error("account not found")]
    AccountNotFound,
    #[error("account is closed")]
    AccountClosed,
    #[error("account has a non-zero or pending balance and cannot be closed")]
    BalanceNotZero,
    #[error(
        "layout needs 2-64 sub-accounts or 1-64 buffers and an unbounded or no-overdraft rule"
    )]
    LayoutInvalid,
}

impl AccountRejection {
    pub fn code(self) -> &'static str {
        match self {
            AccountRejection::AssetNotFound => "asset_not_found",
            AccountRejection::ChartCodeNotFound => "chart_code_not_found",
            AccountRejection::IdExistsWithDifferentFields => "id_exists_with_different_fields",
            AccountRejection::AssetExistsWithDifferentScale => "asset_exists_with_different_scale",
            AccountRejection::ChartExistsWithDifferentFields => {
                "chart_exists_with_different_fields"
            }
            AccountRejection::AccountNotFound => "account_not_found",
            AccountRejection::AccountClosed => "account_closed",
            AccountRejection::BalanceNotZero => "balance_not_zero",
            AccountRejection::LayoutInvalid => "layout_invalid",
        }
    }
}
