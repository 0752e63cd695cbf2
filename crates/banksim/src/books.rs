//! One channel's books: its customers' accounts, the platform's reserve (settlement) account
//! at that channel, the channel's fee income, and the log of every operation it has seen.
//!
//! Pure: no clock (times are arguments), no randomness, no I/O. Fault injection decides
//! *whether* and *when* an operation is executed; this module decides only *what* executing
//! it does, so the money rules are the same with every fault setting.
//!
//! Invariant: money only moves between the accounts held here. The sum over all accounts
//! equals the money minted by the admin (initial balances), always; checked after every
//! operation in debug and test builds.

use std::collections::{BTreeMap, HashMap};

use money::Amount;

use crate::fees::FeeSchedule;
use crate::ids::{AccountName, ChannelName, RequestId};

/// The operations a channel offers the platform; the verbs of the channel API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Customer's bank account or card → platform reserve (top-ups, card payments).
    Debit,
    /// Platform reserve → customer's bank account (withdrawals, payouts).
    Payout,
    /// Platform reserve → the customer of an earlier debit, at most that debit's amount.
    Refund,
}

impl OperationKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationKind::Debit => "debit",
            OperationKind::Payout => "payout",
            OperationKind::Refund => "refund",
        }
    }
}

/// What the platform asked for. Two requests with one request id are the same request
/// exactly when these compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationRequest {
    Debit { account: AccountName, amount: Amount },
    Payout { account: AccountName, amount: Amount },
    Refund { debit_request_id: RequestId, amount: Amount },
}

impl OperationRequest {
    pub fn kind(&self) -> OperationKind {
        match self {
            OperationRequest::Debit { .. } => OperationKind::Debit,
            OperationRequest::Payout { .. } => OperationKind::Payout,
            OperationRequest::Refund { .. } => OperationKind::Refund,
        }
    }

    pub fn amount(&self) -> Amount {
        match self {
            OperationRequest::Debit { amount, .. }
            | OperationRequest::Payout { amount, .. }
            | OperationRequest::Refund { amount, .. } => *amount,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, not finished: the result comes later by callback (and by query).
    Processing,
    Succeeded,
    Failed,
}

/// Why an operation failed. Stable snake_case codes: the gateway maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The bank said no without a reason (risk control, limits). Injected only.
    Declined,
    /// The paying account (customer for a debit, reserve for a payout or refund, including
    /// the fee) holds less than needed.
    InsufficientFunds,
    /// No such customer account at this channel.
    InvalidAccount,
    /// A refund names no succeeded debit of this channel.
    DebitNotFound,
    /// A refund would bring the debit's refunded total above the debit's amount.
    RefundExceedsDebit,
    /// The fee of this amount exceeds the largest amount.
    AmountTooLarge,
}

/// One entry of the operation log. Failed operations are logged too: a retry of their
/// request id returns the same failure, as a real bank does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Position in this channel's log, from 1.
    pub seq: u64,
    pub request_id: RequestId,
    /// The bank's own reference for the operation, as printed on statements.
    pub channel_ref: String,
    pub request: OperationRequest,
    /// The customer account money moved from or to; `None` only for a refund that did not
    /// succeed and whose debit was unknown when it was logged.
    pub account: Option<AccountName>,
    pub status: Status,
    pub failure_reason: Option<FailureReason>,
    /// Charged only when the operation succeeded; zero otherwise.
    pub fee: Amount,
    /// Which attempt of this request id created the entry (0 = first).
    pub attempt: u32,
    pub created_at_ms: u64,
    pub completed_at_ms: Option<u64>,
}

/// How the caller (fault injection) wants a new operation handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Execute now; it succeeds or fails by the money rules.
    Now,
    /// Log it as failed with this reason; no money moves.
    Fail(FailureReason),
    /// Log it as processing; [`Books::complete`] executes it later.
    Defer,
}

/// The result of [`Books::submit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// First time this request id was seen; the operation as it now stands.
    New(Operation),
    /// The same request again: nothing happened, here is the operation as it stands.
    Duplicate(Operation),
    /// The request id is taken by a different request; nothing happened.
    Conflict(Operation),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAccountError {
    #[error("account already exists")]
    Exists,
    #[error("the channel's total money would exceed the largest amount")]
    TooMuchMoney,
}

/// A snapshot of every balance, for the admin endpoint and for tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BalanceSheet {
    pub customers: BTreeMap<AccountName, Amount>,
    pub reserve_minor: Amount,
    pub fee_income_minor: Amount,
    /// Everything the admin ever put in; equals the sum of all the balances above.
    pub minted_minor: Amount,
}

impl BalanceSheet {
    /// Sum of all balances, as u128 so that the sum itself cannot overflow.
    pub fn total_minor(&self) -> u128 {
        let customers: u128 = self.customers.values().map(|a| u128::from(a.minor())).sum();
        customers
            + u128::from(self.reserve_minor.minor())
            + u128::from(self.fee_income_minor.minor())
    }
}

#[derive(Debug, Clone)]
pub struct Books {
    channel: ChannelName,
    fees: FeeSchedule,
    customers: BTreeMap<AccountName, Amount>,
    reserve: Amount,
    fee_income: Amount,
    minted: Amount,
    operations: Vec<Operation>,
    by_request: HashMap<RequestId, usize>,
    /// Succeeded refunds per debit, so a refund check is one lookup.
    refunded: HashMap<RequestId, Amount>,
}

impl Books {
    pub fn new(channel: ChannelName, fees: FeeSchedule, reserve_initial: Amount) -> Books {
        Books {
            channel,
            fees,
            customers: BTreeMap::new(),
            reserve: reserve_initial,
            fee_income: Amount::ZERO,
            minted: reserve_initial,
            operations: Vec::new(),
            by_request: HashMap::new(),
            refunded: HashMap::new(),
        }
    }

    pub fn fees(&self) -> &FeeSchedule {
        &self.fees
    }

    /// Opens a customer account holding `initial` (money enters the channel here, and only
    /// here and in [`Books::new`]).
    pub fn open_account(
        &mut self,
        name: AccountName,
        initial: Amount,
    ) -> Result<(), OpenAccountError> {
        if self.customers.contains_key(&name) {
            return Err(OpenAccountError::Exists);
        }
        let minted = self.minted.checked_add(initial).ok_or(OpenAccountError::TooMuchMoney)?;
        self.minted = minted;
        self.customers.insert(name, initial);
        self.assert_conserved();
        Ok(())
    }

    pub fn find(&self, request_id: &RequestId) -> Option<&Operation> {
        self.by_request.get(request_id).map(|&idx| &self.operations[idx])
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub fn balances(&self) -> BalanceSheet {
        BalanceSheet {
            customers: self.customers.clone(),
            reserve_minor: self.reserve,
            fee_income_minor: self.fee_income,
            minted_minor: self.minted,
        }
    }

    /// Logs a request under its id, handled as `execution` says, unless the id is taken.
    pub fn submit(
        &mut self,
        request_id: RequestId,
        request: OperationRequest,
        execution: Execution,
        attempt: u32,
        now_ms: u64,
    ) -> Submission {
        if let Some(existing) = self.find(&request_id) {
            return if existing.request == request {
                Submission::Duplicate(existing.clone())
            } else {
                Submission::Conflict(existing.clone())
            };
        }
        let seq = self.operations.len() as u64 + 1;
        let account = match &request {
            OperationRequest::Debit { account, .. } | OperationRequest::Payout { account, .. } => {
                Some(account.clone())
            }
            OperationRequest::Refund { debit_request_id, .. } => {
                self.find(debit_request_id).and_then(|debit| debit.account.clone())
            }
        };
        let operation = Operation {
            seq,
            channel_ref: format!("{}-{seq:08}", self.channel),
            request_id: request_id.clone(),
            request,
            account,
            status: Status::Processing,
            failure_reason: None,
            fee: Amount::ZERO,
            attempt,
            created_at_ms: now_ms,
            completed_at_ms: None,
        };
        let idx = self.operations.len();
        self.operations.push(operation);
        self.by_request.insert(request_id, idx);
        match execution {
            Execution::Now => self.execute(idx, now_ms),
            Execution::Fail(reason) => self.finish(idx, Err(reason), now_ms),
            Execution::Defer => {}
        }
        Submission::New(self.operations[idx].clone())
    }

    /// Executes a deferred operation. Returns `None` when no such operation is processing
    /// (unknown, or already finished), so a completion can never run twice.
    pub fn complete(&mut self, request_id: &RequestId, now_ms: u64) -> Option<Operation> {
        let idx = *self.by_request.get(request_id)?;
        if self.operations[idx].status != Status::Processing {
            return None;
        }
        self.execute(idx, now_ms);
        Some(self.operations[idx].clone())
    }

    fn execute(&mut self, idx: usize, now_ms: u64) {
        let request = self.operations[idx].request.clone();
        let result = match request {
            OperationRequest::Debit { account, amount } => self.debit(&account, amount),
            OperationRequest::Payout { account, amount } => self.payout(&account, amount),
            OperationRequest::Refund { debit_request_id, amount } => {
                let result = self.refund(&debit_request_id, amount);
                // A refund logged before its debit existed learns its account only now.
                if result.is_ok() {
                    let account = self.find(&debit_request_id).and_then(|d| d.account.clone());
                    self.operations[idx].account = account;
                }
                result
            }
        };
        self.finish(idx, result, now_ms);
        self.assert_conserved();
    }

    fn finish(&mut self, idx: usize, result: Result<Amount, FailureReason>, now_ms: u64) {
        let operation = &mut self.operations[idx];
        match result {
            Ok(fee) => {
                operation.status = Status::Succeeded;
                operation.fee = fee;
            }
            Err(reason) => {
                operation.status = Status::Failed;
                operation.failure_reason = Some(reason);
            }
        }
        operation.completed_at_ms = Some(now_ms);
    }

    /// Customer → reserve, then the fee from the reserve to the channel.
    fn debit(&mut self, account: &AccountName, amount: Amount) -> Result<Amount, FailureReason> {
        let fee = self.fees.debit.fee(amount).ok_or(FailureReason::AmountTooLarge)?;
        let balance = *self.customers.get(account).ok_or(FailureReason::InvalidAccount)?;
        let balance_new = balance.checked_sub(amount).ok_or(FailureReason::InsufficientFunds)?;
        let reserve_new = credit(self.reserve, amount)
            .checked_sub(fee)
            .ok_or(FailureReason::InsufficientFunds)?;
        self.customers.insert(account.clone(), balance_new);
        self.reserve = reserve_new;
        self.fee_income = credit(self.fee_income, fee);
        Ok(fee)
    }

    /// Reserve → customer, and the fee from the reserve to the channel.
    fn payout(&mut self, account: &AccountName, amount: Amount) -> Result<Amount, FailureReason> {
        let fee = self.fees.payout.fee(amount).ok_or(FailureReason::AmountTooLarge)?;
        let balance = *self.customers.get(account).ok_or(FailureReason::InvalidAccount)?;
        self.take_from_reserve(amount, fee)?;
        self.customers.insert(account.clone(), credit(balance, amount));
        Ok(fee)
    }

    fn refund(
        &mut self,
        debit_request_id: &RequestId,
        amount: Amount,
    ) -> Result<Amount, FailureReason> {
        let (account, debit_amount) = match self.find(debit_request_id) {
            Some(op) if op.status == Status::Succeeded => match &op.request {
                OperationRequest::Debit { account, amount } => (account.clone(), *amount),
                _ => return Err(FailureReason::DebitNotFound),
            },
            _ => return Err(FailureReason::DebitNotFound),
        };
        let refunded = self.refunded.get(debit_request_id).copied().unwrap_or(Amount::ZERO);
        let refunded_new = refunded
            .checked_add(amount)
            .filter(|total| *total <= debit_amount)
            .ok_or(FailureReason::RefundExceedsDebit)?;
        let fee = self.fees.refund.fee(amount).ok_or(FailureReason::AmountTooLarge)?;
        let balance = *self.customers.get(&account).ok_or(FailureReason::InvalidAccount)?;
        self.take_from_reserve(amount, fee)?;
        self.customers.insert(account, credit(balance, amount));
        self.refunded.insert(debit_request_id.clone(), refunded_new);
        Ok(fee)
    }

    /// Takes `amount + fee` from the reserve and credits the fee to the channel; the caller
    /// credits `amount` to the customer.
    fn take_from_reserve(&mut self, amount: Amount, fee: Amount) -> Result<(), FailureReason> {
        let needed = amount.checked_add(fee).ok_or(FailureReason::AmountTooLarge)?;
        self.reserve = self.reserve.checked_sub(needed).ok_or(FailureReason::InsufficientFunds)?;
        self.fee_income = credit(self.fee_income, fee);
        Ok(())
    }

    fn assert_conserved(&self) {
        if cfg!(debug_assertions) {
            let total = self.balances().total_minor();
            assert_eq!(
                total,
                u128::from(self.minted.minor()),
                "money is conserved in {}",
                self.channel
            );
        }
    }
}

/// Adds money that was just taken from another account of the same books. It cannot
/// overflow: every balance is at most the sum of all balances, which equals `minted`, an
/// [`Amount`].
fn credit(balance: Amount, amount: Amount) -> Amount {
    match balance.checked_add(amount) {
        Some(sum) => sum,
        None => panic!("a balance exceeded the money minted into its books"),
    }
}
