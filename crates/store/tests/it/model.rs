//! Model-based property test: random command sequences go through the real pipeline on
//! SQLite, and after every batch the books are compared with a plain in-memory model of
//! balances and holds written here, independently of `ledger::apply`.
//!
//! The model also tracks what decides hold expiry in the pipeline, because expiry is the
//! one place where the books depend on *when* work arrives: the writer scans for due holds
//! only on a batch whose clock reading has reached `next_expiry_scan`, and then schedules
//! the next scan one poll interval later; a batch's timestamp is
//! `max(clock, last_timestamp + 1µs)`, and a hold's deadline is counted from it. A hold
//! past its deadline but not yet released by a scan still counts in pending balances, yet
//! can no longer be posted or voided.

use std::collections::{BTreeMap, HashMap};

use ledger::apply::{Command, Outcome};
use ledger::model::{
    AccountClass, BalanceRule, Balances, ChartCode, ChartEntry, Movement, NewAccount,
};
use ledger::port::TrialBalanceLine;
use ledger::verify::verify;
use ledger::{
    AccountId, AccountRejection, AccountStatus, BoundedText, BusinessCode, Clock, HoldState,
    LedgerHandle, NewTransfer, Timestamp, Transfer, TransferAction, TransferId, TransferKind,
    TransferRejection, TransferResult,
};
use money::{Asset, AssetCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::backends::{test_config, Backend};
use crate::conformance::{account, amount, code, tid};

// ---------------------------------------------------------------------------------------
// The universe: two assets, seven accounts with every kind of balance rule, one unknown id.
// ---------------------------------------------------------------------------------------

const RESERVE: u128 = 1;
const WALLET_A: u128 = 10;
const WALLET_B: u128 = 11;
const OVERDRAFT_WALLET: u128 = 12;
const RECEIVABLE: u128 = 20;
const POINTS_POOL: u128 = 40;
const POINTS_WALLET: u128 = 41;
/// Never opened: transfers naming it must be rejected as not found.
const UNKNOWN_ACCOUNT: u128 = 99;
/// Never a pending transfer: posting or voiding it must be rejected as not found.
const UNKNOWN_PENDING: u128 = 999_999;

const OVERDRAFT_LIMIT_MINOR: u64 = 30;
const RECEIVABLE_LIMIT_MINOR: u64 = 25;

/// Transfer ids the test hands out start here, clear of the ids above.
const FIRST_TRANSFER_ID: u128 = 1_000;

struct AccountSpec {
    id: u128,
    asset: &'static str,
    chart_code: u32,
    rule: BalanceRule,
}

fn universe() -> Vec<AccountSpec> {
    let spec = |id, asset, chart_code, rule| AccountSpec { id, asset, chart_code, rule };
    vec![
        spec(RESERVE, "CNY", 1002, BalanceRule::Unbounded),
        spec(WALLET_A, "CNY", 2241, BalanceRule::NO_OVERDRAFT),
        spec(WALLET_B, "CNY", 2241, BalanceRule::NO_OVERDRAFT),
        spec(
            OVERDRAFT_WALLET,
            "CNY",
            2241,
            BalanceRule::DebitsWithinCredits { overdraft_minor: amount(OVERDRAFT_LIMIT_MINOR) },
        ),
        spec(
            RECEIVABLE,
            "CNY",
            1122,
            BalanceRule::CreditsWithinDebits { limit_minor: amount(RECEIVABLE_LIMIT_MINOR) },
        ),
        spec(POINTS_POOL, "POINTS", 1002, BalanceRule::Unbounded),
        spec(POINTS_WALLET, "POINTS", 2241, BalanceRule::NO_OVERDRAFT),
    ]
}

/// Account index as generated: `0..universe().len()` are opened accounts, the next is the
/// unknown one.
const ACCOUNT_CHOICES: usize = 8;

fn account_at(index: usize) -> u128 {
    universe().get(index).map_or(UNKNOWN_ACCOUNT, |spec| spec.id)
}

fn asset_of(id: u128) -> Option<&'static str> {
    universe().into_iter().find(|spec| spec.id == id).map(|spec| spec.asset)
}

fn setup_commands() -> Vec<Command> {
    let chart = |code, name: &str, class| {
        Command::DefineChart(ChartEntry {
            code: ChartCode(code),
            name: BoundedText::new(name).expect("name"),
            class,
        })
    };
    let mut commands = vec![
        Command::DefineAsset(Asset::new(code("CNY"), 2).expect("asset")),
        Command::DefineAsset(Asset::new(code("POINTS"), 0).expect("asset")),
        chart(1002, "bank deposits", AccountClass::Asset),
        chart(1122, "receivables", AccountClass::Asset),
        chart(2241, "customer wallets", AccountClass::Liability),
    ];
    for spec in universe() {
        commands.push(Command::OpenAccount(NewAccount {
            id: account(spec.id),
            asset: code(spec.asset),
            chart_code: ChartCode(spec.chart_code),
            rule: spec.rule,
            metadata: BoundedText::default(),
            layout: Default::default(),
        }));
    }
    commands
}

// ---------------------------------------------------------------------------------------
// Generated operations. Picks (`pick`) are resolved against what was submitted so far when
// the batch is built, so that shrinking keeps sequences meaningful.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum MoveKind {
    Posted,
    Pending { timeout_secs: Option<u32> },
}

/// The credit side of a move: mostly another account in the debit account's asset (so that
/// most moves get as far as the balance checks), sometimes any account at all.
#[derive(Clone, Copy, Debug)]
enum CreditPick {
    SameAsset(usize),
    Any(usize),
}

/// Which hold a post or void names: mostly one still pending in the model, else any hold
/// submitted so far (posted, voided, expired, rejected) or an unknown id.
#[derive(Clone, Copy, Debug)]
struct HoldPick {
    live: bool,
    pick: usize,
}

#[derive(Clone, Debug)]
enum Leg {
    /// A posted transfer or a new hold. `other_asset` names the wrong asset on purpose.
    Move {
        debit: usize,
        credit: CreditPick,
        other_asset: bool,
        amount_minor: u64,
        kind: MoveKind,
    },
    /// Post a hold, whole (`None`) or in part.
    PostPending {
        hold: HoldPick,
        amount_minor: Option<u64>,
    },
    VoidPending {
        hold: HoldPick,
    },
    /// The exact request of an earlier submission, accepted or not.
    Resubmit {
        pick: usize,
    },
    /// An earlier *created* transfer's id with a different business code.
    Reuse {
        pick: usize,
    },
}

#[derive(Clone, Debug)]
enum Cmd {
    /// One transfer, or a linked group of 2–3.
    Group(Vec<Leg>),
    SetStatus {
        account: usize,
        status: AccountStatus,
    },
}

#[derive(Clone, Debug)]
enum Step {
    /// One `execute_blocking` call, hence one pipeline batch. With `retry`, the groups that
    /// were accepted are submitted again as a second batch.
    Batch {
        commands: Vec<Cmd>,
        retry: bool,
    },
    Advance {
        secs: u64,
    },
}

fn amount_minor() -> impl Strategy<Value = u64> {
    // Small amounts against balances of ~100: overdraft attempts are frequent.
    prop_oneof![1 => Just(0u64), 30 => 1..=40u64, 9 => 41..=150u64]
}

fn move_kind() -> impl Strategy<Value = MoveKind> {
    let timeout_secs = prop_oneof![
        2 => Just(None),
        // 0: due at once. 60: exactly one poll interval, the boundary case.
        3 => prop::sample::select(vec![0u32, 1, 30, 60, 90]).prop_map(Some),
    ];
    prop_oneof![
        3 => Just(MoveKind::Posted),
        2 => timeout_secs.prop_map(|timeout_secs| MoveKind::Pending { timeout_secs }),
    ]
}

fn account_index() -> impl Strategy<Value = usize> {
    // The last index is the unknown account.
    prop_oneof![30 => 0..ACCOUNT_CHOICES - 1, 1 => Just(ACCOUNT_CHOICES - 1)]
}

fn credit_pick() -> impl Strategy<Value = CreditPick> {
    prop_oneof![
        6 => any::<usize>().prop_map(CreditPick::SameAsset),
        1 => account_index().prop_map(CreditPick::Any),
    ]
}

fn hold_pick() -> impl Strategy<Value = HoldPick> {
    (prop::bool::weighted(0.75), any::<usize>()).prop_map(|(live, pick)| HoldPick { live, pick })
}

fn leg() -> impl Strategy<Value = Leg> {
    let post_amount =
        prop_oneof![3 => Just(None), 1 => Just(Some(0)), 6 => (1..=60u64).prop_map(Some)];
    let moves =
        (account_index(), credit_pick(), prop::bool::weighted(0.05), amount_minor(), move_kind())
            .prop_map(|(debit, credit, other_asset, amount_minor, kind)| Leg::Move {
                debit,
                credit,
                other_asset,
                amount_minor,
                kind,
            });
    prop_oneof![
        50 => moves,
        15 => (hold_pick(), post_amount)
            .prop_map(|(hold, amount_minor)| Leg::PostPending { hold, amount_minor }),
        8 => hold_pick().prop_map(|hold| Leg::VoidPending { hold }),
        8 => any::<usize>().prop_map(|pick| Leg::Resubmit { pick }),
        5 => any::<usize>().prop_map(|pick| Leg::Reuse { pick }),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let status = prop_oneof![
        9 => Just(AccountStatus::Active),
        9 => Just(AccountStatus::FrozenDebits),
        2 => Just(AccountStatus::Closed),
    ];
    prop_oneof![
        70 => leg().prop_map(|leg| Cmd::Group(vec![leg])),
        15 => prop::collection::vec(leg(), 2..=3).prop_map(Cmd::Group),
        8 => (0..universe().len(), status)
            .prop_map(|(account, status)| Cmd::SetStatus { account, status }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        85 => (prop::collection::vec(cmd(), 1..=3), prop::bool::weighted(0.25))
            .prop_map(|(commands, retry)| Step::Batch { commands, retry }),
        // 30 s is less than a poll interval (a scan may not run); 61 s and 120 s always
        // make the next batch scan.
        15 => prop::sample::select(vec![1u64, 30, 61, 120]).prop_map(|secs| Step::Advance { secs }),
    ]
}

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

/// The four balance fields as plain integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sums {
    debits_pending: u64,
    debits_posted: u64,
    credits_pending: u64,
    credits_posted: u64,
}

impl Sums {
    fn of(balances: &Balances) -> Sums {
        Sums {
            debits_pending: balances.debits_pending.minor(),
            debits_posted: balances.debits_posted.minor(),
            credits_pending: balances.credits_pending.minor(),
            credits_posted: balances.credits_posted.minor(),
        }
    }

    fn is_zero(&self) -> bool {
        self.debits_pending == 0
            && self.credits_pending == 0
            && self.debits_posted == self.credits_posted
    }
}

/// Whether `sums` respects `rule` (both directions; a rule only bounds one side).
fn within_rule(rule: &BalanceRule, sums: &Sums) -> bool {
    match rule {
        BalanceRule::Unbounded => true,
        BalanceRule::DebitsWithinCredits { overdraft_minor } => {
            sums.debits_posted + sums.debits_pending
                <= sums.credits_posted + overdraft_minor.minor()
        }
        BalanceRule::CreditsWithinDebits { limit_minor } => {
            sums.credits_posted + sums.credits_pending <= sums.debits_posted + limit_minor.minor()
        }
    }
}

#[derive(Clone, Debug)]
struct ModelAccount {
    asset: AssetCode,
    rule: BalanceRule,
    status: AccountStatus,
    sums: Sums,
}

#[derive(Clone, Debug)]
struct ModelHold {
    debit: AccountId,
    credit: AccountId,
    asset: AssetCode,
    amount_minor: u64,
    expires_at: Option<Timestamp>,
    state: HoldState,
}

/// What the model predicts for one command: per leg the transfer (fingerprint zeroed) and
/// whether it is new, or the rejection.
#[derive(Clone, Debug)]
enum Expected {
    Transfers(Vec<Result<(Transfer, bool), TransferRejection>>),
    Status(Result<(AccountStatus, bool), AccountRejection>),
}

#[derive(Clone, Debug)]
struct Model {
    accounts: HashMap<AccountId, ModelAccount>,
    holds: HashMap<TransferId, ModelHold>,
    /// Created transfers: the request that created each, and the record it became.
    transfers: HashMap<TransferId, (NewTransfer, Transfer)>,
    last_seq: u64,
    last_timestamp: Timestamp,
    next_expiry_scan: Timestamp,
    expiry_poll_us: u64,
    batch_timestamp: Timestamp,
    batch_first_seq: u64,
    /// Holds released by expiry scans so far (for the coverage report).
    expired_by_scan: u64,
    /// Holds released because a post or void named them past their timeout.
    expired_when_named: u64,
}

impl Model {
    fn begin_batch(&mut self, now: Timestamp) {
        self.batch_first_seq = self.last_seq;
        self.batch_timestamp = Timestamp(now.0.max(self.last_timestamp.0 + 1));
        if now < self.next_expiry_scan {
            return;
        }
        self.next_expiry_scan = Timestamp(now.0 + self.expiry_poll_us);
        // Due means deadline at or before the clock reading (not the batch timestamp).
        let mut due: Vec<TransferId> = self
            .holds
            .iter()
            .filter(|(_, hold)| {
                hold.state == HoldState::Pending && hold.expires_at.is_some_and(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        for pending_id in due {
            self.release(pending_id, HoldState::Expired);
            self.last_seq += 1;
            self.expired_by_scan += 1;
        }
    }

    fn end_batch(&mut self) {
        // The head (and with it the timestamp floor) only moves when something is written.
        if self.last_seq != self.batch_first_seq {
            self.last_timestamp = self.batch_timestamp;
        }
    }

    fn apply(&mut self, command: &Command) -> Expected {
        match command {
            Command::Transfers(group) => Expected::Transfers(self.group(group)),
            Command::SetAccountStatus { account_id, status } => {
                Expected::Status(self.set_status(*account_id, *status))
            }
            other => unreachable!("the test generates no {other:?}"),
        }
    }

    fn set_status(
        &mut self,
        account_id: AccountId,
        status: AccountStatus,
    ) -> Result<(AccountStatus, bool), AccountRejection> {
        let account =
            self.accounts.get_mut(&account_id).ok_or(AccountRejection::AccountNotFound)?;
        if account.status == status {
            return Ok((status, false));
        }
        if account.status == AccountStatus::Closed {
            return Err(AccountRejection::AccountClosed);
        }
        if status == AccountStatus::Closed && !account.sums.is_zero() {
            return Err(AccountRejection::BalanceNotZero);
        }
        account.status = status;
        self.last_seq += 1;
        Ok((status, true))
    }

    /// All legs or none: on the first rejection the model is restored, that leg keeps its
    /// reason and the others report `LinkedTransferFailed`.
    fn group(&mut self, group: &[NewTransfer]) -> Vec<Result<(Transfer, bool), TransferRejection>> {
        // A hold the group posts or voids past its timeout is released first, and stays
        // released whatever becomes of the group.
        for request in group {
            let (TransferAction::PostPending { pending_id, .. }
            | TransferAction::VoidPending { pending_id }) = request.action
            else {
                continue;
            };
            let due = self.holds.get(&pending_id).is_some_and(|hold| {
                hold.state == HoldState::Pending
                    && hold.expires_at.is_some_and(|at| at <= self.batch_timestamp)
            });
            if due {
                self.release(pending_id, HoldState::Expired);
                self.last_seq += 1;
                self.expired_when_named += 1;
            }
        }
        let saved = self.clone();
        let mut results = Vec::with_capacity(group.len());
        for (index, request) in group.iter().enumerate() {
            match self.transfer(request) {
                Ok(done) => results.push(Ok(done)),
                Err(rejection) => {
                    *self = saved;
                    let mut failed =
                        vec![Err(TransferRejection::LinkedTransferFailed); group.len()];
                    failed[index] = Err(rejection);
                    return failed;
                }
            }
        }
        results
    }

    fn transfer(&mut self, request: &NewTransfer) -> Result<(Transfer, bool), TransferRejection> {
        if let Some((original, record)) = self.transfers.get(&request.id) {
            return if original == request {
                Ok((record.clone(), false))
            } else {
                Err(TransferRejection::IdExistsWithDifferentFields)
            };
        }
        let record = match request.action {
            TransferAction::Post(movement) => self.move_money(request, movement, None)?,
            TransferAction::Pending { movement, timeout_secs } => {
                self.move_money(request, movement, Some(timeout_secs))?
            }
            TransferAction::PostPending { pending_id, amount } => {
                let hold = self.live_hold(pending_id)?;
                let posted_minor = amount.map_or(hold.amount_minor, |amount| amount.minor());
                if posted_minor == 0 {
                    return Err(TransferRejection::AmountMustNotBeZero);
                }
                if posted_minor > hold.amount_minor {
                    return Err(TransferRejection::ExceedsPendingAmount);
                }
                if self.accounts[&hold.debit].status == AccountStatus::FrozenDebits {
                    return Err(TransferRejection::DebitAccountFrozen);
                }
                self.release(pending_id, HoldState::Posted);
                self.accounts.get_mut(&hold.debit).expect("hold account").sums.debits_posted +=
                    posted_minor;
                self.accounts.get_mut(&hold.credit).expect("hold account").sums.credits_posted +=
                    posted_minor;
                self.record(request, TransferKind::PostPending, &hold, posted_minor, pending_id)
            }
            TransferAction::VoidPending { pending_id } => {
                // Voids are allowed on frozen accounts: a freeze must not trap a hold.
                let hold = self.live_hold(pending_id)?;
                self.release(pending_id, HoldState::Voided);
                self.record(
                    request,
                    TransferKind::VoidPending,
                    &hold,
                    hold.amount_minor,
                    pending_id,
                )
            }
        };
        self.transfers.insert(request.id, (request.clone(), record.clone()));
        Ok((record, true))
    }

    /// `pending`: `None` for a posted transfer, `Some(timeout_secs)` for a hold.
    fn move_money(
        &mut self,
        request: &NewTransfer,
        movement: Movement,
        pending: Option<Option<u32>>,
    ) -> Result<Transfer, TransferRejection> {
        use TransferRejection as R;
        let (debit_id, credit_id) = (movement.debit_account_id, movement.credit_account_id);
        if debit_id == credit_id {
            return Err(R::AccountsMustDiffer);
        }
        let amount_minor = movement.amount.minor();
        if amount_minor == 0 {
            return Err(R::AmountMustNotBeZero);
        }
        let debit = self.accounts.get(&debit_id).ok_or(R::DebitAccountNotFound)?;
        let credit = self.accounts.get(&credit_id).ok_or(R::CreditAccountNotFound)?;
        if debit.asset != movement.asset || credit.asset != movement.asset {
            return Err(R::AssetMismatch);
        }
        match debit.status {
            AccountStatus::Active => {}
            AccountStatus::FrozenDebits => return Err(R::DebitAccountFrozen),
            AccountStatus::Closed => return Err(R::DebitAccountClosed),
        }
        if credit.status == AccountStatus::Closed {
            return Err(R::CreditAccountClosed);
        }
        let (mut debit_sums, mut credit_sums) = (debit.sums, credit.sums);
        if pending.is_some() {
            debit_sums.debits_pending += amount_minor;
            credit_sums.credits_pending += amount_minor;
        } else {
            debit_sums.debits_posted += amount_minor;
            credit_sums.credits_posted += amount_minor;
        }
        // Only the side a rule bounds is checked: the debit account's debits, the credit
        // account's credits.
        if matches!(debit.rule, BalanceRule::DebitsWithinCredits { .. })
            && !within_rule(&debit.rule, &debit_sums)
        {
            return Err(R::ExceedsCredits);
        }
        if matches!(credit.rule, BalanceRule::CreditsWithinDebits { .. })
            && !within_rule(&credit.rule, &credit_sums)
        {
            return Err(R::ExceedsDebits);
        }
        self.accounts.get_mut(&debit_id).expect("debit").sums = debit_sums;
        self.accounts.get_mut(&credit_id).expect("credit").sums = credit_sums;
        self.last_seq += 1;
        let expires_at = pending
            .flatten()
            .map(|secs| Timestamp(self.batch_timestamp.0 + u64::from(secs) * 1_000_000));
        let kind = if let Some(_timeout) = pending {
            self.holds.insert(
                request.id,
                ModelHold {
                    debit: debit_id,
                    credit: credit_id,
                    asset: movement.asset,
                    amount_minor,
                    expires_at,
                    state: HoldState::Pending,
                },
            );
            TransferKind::Pending
        } else {
            TransferKind::Posted
        };
        Ok(Transfer {
            id: request.id,
            kind,
            debit_account_id: debit_id,
            credit_account_id: credit_id,
            asset: movement.asset,
            amount: movement.amount,
            pending_id: None,
            expires_at,
            business_code: request.business_code,
            order_ref: request.order_ref.clone(),
            seq: ledger::Seq(self.last_seq),
            timestamp: self.batch_timestamp,
            fingerprint: Default::default(),
        })
    }

    fn live_hold(&self, pending_id: TransferId) -> Result<ModelHold, TransferRejection> {
        let hold = self.holds.get(&pending_id).ok_or(TransferRejection::PendingNotFound)?;
        match hold.state {
            // Past its deadline it is dead, released by a scan or not.
            HoldState::Pending if hold.expires_at.is_some_and(|at| at <= self.batch_timestamp) => {
                Err(TransferRejection::PendingExpired)
            }
            HoldState::Pending => Ok(hold.clone()),
            HoldState::Posted => Err(TransferRejection::PendingAlreadyPosted),
            HoldState::Voided => Err(TransferRejection::PendingAlreadyVoided),
            HoldState::Expired => Err(TransferRejection::PendingExpired),
        }
    }

    /// The held amount leaves both pending balances.
    fn release(&mut self, pending_id: TransferId, state: HoldState) {
        let hold = self.holds.get_mut(&pending_id).expect("hold");
        hold.state = state;
        let (debit, credit, held_minor) = (hold.debit, hold.credit, hold.amount_minor);
        self.accounts.get_mut(&debit).expect("hold account").sums.debits_pending -= held_minor;
        self.accounts.get_mut(&credit).expect("hold account").sums.credits_pending -= held_minor;
    }

    fn record(
        &mut self,
        request: &NewTransfer,
        kind: TransferKind,
        hold: &ModelHold,
        amount_minor: u64,
        pending_id: TransferId,
    ) -> Transfer {
        self.last_seq += 1;
        Transfer {
            id: request.id,
            kind,
            debit_account_id: hold.debit,
            credit_account_id: hold.credit,
            asset: hold.asset,
            amount: amount(amount_minor),
            pending_id: Some(pending_id),
            expires_at: None,
            business_code: request.business_code,
            order_ref: request.order_ref.clone(),
            seq: ledger::Seq(self.last_seq),
            timestamp: self.batch_timestamp,
            fingerprint: Default::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Driving one case.
// ---------------------------------------------------------------------------------------

/// How often each behaviour was seen across all cases, so a generator that stopped reaching
/// a path fails the test instead of passing vacuously.
type Coverage = BTreeMap<String, u64>;

struct Run<'a> {
    backend: &'a Backend,
    handle: LedgerHandle,
    model: Model,
    /// Every transfer request submitted, in order (resubmissions pick from it).
    submitted: Vec<NewTransfer>,
    /// Ids of every hold request submitted, accepted or not.
    pending_ids: Vec<TransferId>,
    next_id: u128,
    /// What the ledger returned for each transfer it created, fingerprint included.
    observed: HashMap<TransferId, Transfer>,
    coverage: &'a mut Coverage,
}

type Planned = Vec<(Command, Expected)>;

impl Run<'_> {
    fn fresh_id(&mut self) -> TransferId {
        self.next_id += 1;
        tid(self.next_id)
    }

    fn pick_hold(&self, HoldPick { live, pick }: HoldPick) -> TransferId {
        let mut live_ids: Vec<TransferId> = self
            .model
            .holds
            .iter()
            .filter(|(_, hold)| hold.state == HoldState::Pending)
            .map(|(id, _)| *id)
            .collect();
        live_ids.sort_unstable();
        if live && !live_ids.is_empty() {
            return live_ids[pick % live_ids.len()];
        }
        // One slot more than there are holds: the unknown id stays reachable.
        let slot = pick % (self.pending_ids.len() + 1);
        self.pending_ids.get(slot).copied().unwrap_or(tid(UNKNOWN_PENDING))
    }

    fn resolve(&mut self, leg: &Leg) -> NewTransfer {
        let request = match *leg {
            Leg::Move { debit, credit, other_asset, amount_minor, kind } => {
                let id = self.fresh_id();
                let debit = account_at(debit);
                let credit = match credit {
                    CreditPick::Any(index) => account_at(index),
                    CreditPick::SameAsset(pick) => {
                        let asset = asset_of(debit).unwrap_or("CNY");
                        let peers: Vec<u128> = universe()
                            .into_iter()
                            .filter(|spec| spec.asset == asset && spec.id != debit)
                            .map(|spec| spec.id)
                            .collect();
                        peers[pick % peers.len()]
                    }
                };
                let natural = asset_of(debit).or(asset_of(credit)).unwrap_or("CNY");
                let asset = match (natural, other_asset) {
                    (asset, false) => asset,
                    ("CNY", true) => "POINTS",
                    (_, true) => "CNY",
                };
                let movement = Movement {
                    debit_account_id: account(debit),
                    credit_account_id: account(credit),
                    asset: code(asset),
                    amount: amount(amount_minor),
                };
                let (action, business_code) = match kind {
                    MoveKind::Posted => (TransferAction::Post(movement), 1),
                    MoveKind::Pending { timeout_secs } => {
                        self.pending_ids.push(id);
                        (TransferAction::Pending { movement, timeout_secs }, 2)
                    }
                };
                NewTransfer {
                    id,
                    action,
                    business_code: BusinessCode(business_code),
                    order_ref: BoundedText::new(format!("order-{id}")).expect("order ref"),
                }
            }
            Leg::PostPending { hold, amount_minor } => NewTransfer {
                id: self.fresh_id(),
                action: TransferAction::PostPending {
                    pending_id: self.pick_hold(hold),
                    amount: amount_minor.map(amount),
                },
                business_code: BusinessCode(3),
                order_ref: BoundedText::default(),
            },
            Leg::VoidPending { hold } => NewTransfer {
                id: self.fresh_id(),
                action: TransferAction::VoidPending { pending_id: self.pick_hold(hold) },
                business_code: BusinessCode(4),
                order_ref: BoundedText::default(),
            },
            Leg::Resubmit { pick } if !self.submitted.is_empty() => {
                self.submitted[pick % self.submitted.len()].clone()
            }
            Leg::Reuse { pick } => {
                let created: Vec<&NewTransfer> = self
                    .submitted
                    .iter()
                    .filter(|request| {
                        self.model
                            .transfers
                            .get(&request.id)
                            .is_some_and(|(original, _)| original == *request)
                    })
                    .collect();
                match created.get(pick % created.len().max(1)) {
                    Some(original) => NewTransfer {
                        business_code: BusinessCode(original.business_code.0 + 1_000),
                        ..(*original).clone()
                    },
                    // Nothing created yet: a void of any hold instead.
                    None => {
                        return self
                            .resolve(&Leg::VoidPending { hold: HoldPick { live: false, pick } })
                    }
                }
            }
            // Nothing submitted yet: a void of an unknown hold instead.
            Leg::Resubmit { pick } => {
                return self.resolve(&Leg::VoidPending { hold: HoldPick { live: false, pick } })
            }
        };
        self.submitted.push(request.clone());
        request
    }

    fn resolve_cmd(&mut self, cmd: &Cmd) -> Command {
        match cmd {
            Cmd::Group(legs) => {
                Command::Transfers(legs.iter().map(|leg| self.resolve(leg)).collect())
            }
            Cmd::SetStatus { account: index, status } => Command::SetAccountStatus {
                account_id: account(account_at(*index)),
                status: *status,
            },
        }
    }

    /// Builds a batch from generated commands (each resolved against the model as it stands
    /// after the commands before it), runs it and checks it.
    fn batch(&mut self, cmds: &[Cmd]) -> Result<Planned, TestCaseError> {
        self.model.begin_batch(self.backend.clock.now());
        let mut planned = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let command = self.resolve_cmd(cmd);
            let expected = self.model.apply(&command);
            planned.push((command, expected));
        }
        self.model.end_batch();
        self.execute(&planned)?;
        Ok(planned)
    }

    fn concrete_batch(&mut self, commands: Vec<Command>) -> Result<Vec<Outcome>, TestCaseError> {
        self.model.begin_batch(self.backend.clock.now());
        let planned: Planned = commands
            .into_iter()
            .map(|command| {
                let expected = self.model.apply(&command);
                (command, expected)
            })
            .collect();
        self.model.end_batch();
        self.execute(&planned)
    }

    fn execute(&mut self, planned: &Planned) -> Result<Vec<Outcome>, TestCaseError> {
        let commands: Vec<Command> = planned.iter().map(|(command, _)| command.clone()).collect();
        let outcomes = self.handle.execute_blocking(commands).expect("pipeline");
        prop_assert_eq!(outcomes.len(), planned.len());
        for ((command, expected), outcome) in planned.iter().zip(&outcomes) {
            match (expected, outcome) {
                (Expected::Transfers(expected), Outcome::Transfers(actual)) => {
                    prop_assert_eq!(expected.len(), actual.len(), "{:?}", command);
                    for (expected, actual) in expected.iter().zip(actual) {
                        self.check_transfer(expected, actual, command)?;
                    }
                }
                (Expected::Status(expected), Outcome::Status(actual)) => {
                    let actual = actual.as_ref().map(|applied| (applied.value, applied.created));
                    prop_assert_eq!(
                        expected,
                        &actual.map_err(|rejection| *rejection),
                        "{:?}",
                        command
                    );
                    let key = match expected {
                        Ok((status, true)) => format!("status_set_{status:?}"),
                        Ok((_, false)) => "status_unchanged".to_string(),
                        Err(rejection) => format!("status_rejected_{}", rejection.code()),
                    };
                    *self.coverage.entry(key).or_default() += 1;
                }
                (expected, actual) => {
                    prop_assert!(false, "{command:?}: expected {expected:?}, got {actual:?}")
                }
            }
        }
        self.check_state()?;
        Ok(outcomes)
    }

    fn check_transfer(
        &mut self,
        expected: &Result<(Transfer, bool), TransferRejection>,
        actual: &TransferResult,
        command: &Command,
    ) -> Result<(), TestCaseError> {
        match (expected, actual) {
            (Err(expected), Err(actual)) => {
                prop_assert_eq!(expected, actual, "{:?}", command);
                *self.coverage.entry(format!("rejected_{}", expected.code())).or_default() += 1;
            }
            (Ok((expected, created)), Ok(applied)) => {
                prop_assert_eq!(applied.created, *created, "{:?}", command);
                let mut value = applied.value.clone();
                value.fingerprint = Default::default();
                prop_assert_eq!(&value, expected, "{:?}", command);
                if *created {
                    let earlier = self.observed.insert(value.id, applied.value.clone());
                    prop_assert!(earlier.is_none(), "{:?} created twice", value.id);
                    *self.coverage.entry(format!("created_{:?}", value.kind)).or_default() += 1;
                    if value.kind == TransferKind::PostPending {
                        let pending_id = value.pending_id.expect("post names its hold");
                        if value.amount.minor() < self.model.holds[&pending_id].amount_minor {
                            *self.coverage.entry("created_partial_post".into()).or_default() += 1;
                        }
                    }
                } else {
                    // A replay returns exactly what the first call returned.
                    prop_assert_eq!(Some(&applied.value), self.observed.get(&value.id));
                    *self.coverage.entry("replayed".into()).or_default() += 1;
                }
            }
            (expected, actual) => {
                prop_assert!(false, "{command:?}: expected {expected:?}, got {actual:?}")
            }
        }
        Ok(())
    }

    /// The stored books against the model, and the invariants that hold whatever the model.
    fn check_state(&self) -> Result<(), TestCaseError> {
        let reader = self.backend.reader.as_ref();
        for (id, expected) in &self.model.accounts {
            let stored = reader.account(*id).expect("read").expect("account exists");
            let sums = Sums::of(&stored.balances);
            prop_assert_eq!(sums, expected.sums, "balances of {:?}", id);
            prop_assert_eq!(stored.status, expected.status, "status of {:?}", id);
            prop_assert!(
                within_rule(&stored.rule, &sums),
                "{:?} breaks {:?}: {:?}",
                id,
                stored.rule,
                sums
            );
        }
        prop_assert!(reader.account(account(UNKNOWN_ACCOUNT)).expect("read").is_none());
        for (pending_id, expected) in &self.model.holds {
            let stored = reader.hold(*pending_id).expect("read").expect("hold exists");
            prop_assert_eq!(stored.state, expected.state, "state of hold {:?}", pending_id);
            prop_assert_eq!(stored.movement.amount.minor(), expected.amount_minor);
            prop_assert_eq!(stored.expires_at, expected.expires_at);
        }
        let head = reader.head().expect("head");
        prop_assert_eq!(head.last_seq.0, self.model.last_seq, "journal length");
        prop_assert_eq!(head.last_timestamp, self.model.last_timestamp, "head timestamp");
        assert_books_balance(&reader.trial_balance().expect("trial balance"))?;
        Ok(())
    }

    /// Submits again the groups of `planned` that were accepted: every leg must replay
    /// its first result, and nothing may be written.
    fn retry(&mut self, planned: &Planned) -> Result<(), TestCaseError> {
        let accepted: Vec<Command> = planned
            .iter()
            .filter(|(_, expected)| {
                matches!(expected, Expected::Transfers(results) if results.iter().all(Result::is_ok))
            })
            .map(|(command, _)| command.clone())
            .collect();
        if accepted.is_empty() {
            return Ok(());
        }
        let head_before = self.backend.reader.head().expect("head");
        let outcomes = self.concrete_batch(accepted)?;
        for outcome in &outcomes {
            let Outcome::Transfers(results) = outcome else { unreachable!("only transfers") };
            for result in results {
                prop_assert!(result.as_ref().is_ok_and(|applied| !applied.created), "{result:?}");
            }
        }
        prop_assert_eq!(self.backend.reader.head().expect("head"), head_before, "a retry wrote");
        *self.coverage.entry("retried_batches".into()).or_default() += 1;
        Ok(())
    }
}

/// Per asset, debits equal credits, posted and pending.
fn assert_books_balance(lines: &[TrialBalanceLine]) -> Result<(), TestCaseError> {
    let mut per_asset: HashMap<AssetCode, [u128; 4]> = HashMap::new();
    for line in lines {
        let sums = per_asset.entry(line.asset).or_default();
        sums[0] += line.balances.debits_posted;
        sums[1] += line.balances.credits_posted;
        sums[2] += line.balances.debits_pending;
        sums[3] += line.balances.credits_pending;
    }
    for (asset, [debits, credits, debits_pending, credits_pending]) in per_asset {
        prop_assert_eq!(debits, credits, "posted {} does not balance", asset);
        prop_assert_eq!(debits_pending, credits_pending, "pending {} does not balance", asset);
    }
    Ok(())
}

fn run_case(
    backend: Backend,
    steps: &[Step],
    coverage: &mut Coverage,
) -> Result<(), TestCaseError> {
    let handle = backend.handle();
    for outcome in handle.execute_blocking(setup_commands()).expect("setup") {
        let ok = match outcome {
            Outcome::Asset(result) => result.is_ok(),
            Outcome::Chart(result) => result.is_ok(),
            Outcome::Account(result) => result.is_ok(),
            _ => false,
        };
        prop_assert!(ok, "setup failed");
    }
    let head = backend.reader.head().expect("head");
    let accounts = universe()
        .into_iter()
        .map(|spec| {
            let model_account = ModelAccount {
                asset: code(spec.asset),
                rule: spec.rule,
                status: AccountStatus::Active,
                sums: Sums::default(),
            };
            (account(spec.id), model_account)
        })
        .collect();
    let expiry_poll_us = test_config().expiry_poll_interval_ms * 1_000;
    let model = Model {
        accounts,
        holds: HashMap::new(),
        transfers: HashMap::new(),
        last_seq: head.last_seq.0,
        last_timestamp: head.last_timestamp,
        // The setup batch was the writer's first: it scanned, and scheduled the next scan.
        next_expiry_scan: Timestamp(backend.clock.now().0 + expiry_poll_us),
        expiry_poll_us,
        batch_timestamp: head.last_timestamp,
        batch_first_seq: head.last_seq.0,
        expired_by_scan: 0,
        expired_when_named: 0,
    };
    let mut run = Run {
        backend: &backend,
        handle,
        model,
        submitted: Vec::new(),
        pending_ids: Vec::new(),
        next_id: FIRST_TRANSFER_ID,
        observed: HashMap::new(),
        coverage,
    };

    // Opening balances, so that wallets have something to overdraw.
    let funding = |debit, credit, amount_minor| Leg::Move {
        debit,
        credit: CreditPick::Any(credit),
        other_asset: false,
        amount_minor,
        kind: MoveKind::Posted,
    };
    run.batch(&[
        Cmd::Group(vec![funding(0, 1, 100), funding(0, 2, 100), funding(0, 3, 50)]),
        Cmd::Group(vec![funding(4, 0, 40), funding(5, 6, 100)]),
    ])?;

    for step in steps {
        match step {
            Step::Advance { secs } => backend.clock.advance_secs(*secs),
            Step::Batch { commands, retry } => {
                let planned = run.batch(commands)?;
                if *retry {
                    run.retry(&planned)?;
                }
            }
        }
    }

    // Whatever was returned as created is stored, exactly.
    for (id, returned) in &run.observed {
        let stored = backend.reader.transfer(*id).expect("read");
        prop_assert_eq!(stored.as_ref(), Some(returned));
    }
    assert_books_balance(&backend.reader.trial_balance().expect("trial balance"))?;
    let report = verify(backend.reader.as_ref(), &mut |_| {}).expect("verify");
    prop_assert!(report.is_ok(), "verify: {:?}", report.divergence);
    *run.coverage.entry("expired_by_scan".into()).or_default() += run.model.expired_by_scan;
    *run.coverage.entry("expired_when_named".into()).or_default() += run.model.expired_when_named;
    Ok(())
}

#[test]
fn random_command_sequences_match_the_model() {
    let config = Config {
        cases: 64,
        // Failures are reported with the shrunk sequence; no regression file is written
        // next to the sources.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let coverage = std::cell::RefCell::new(Coverage::new());
    let strategy = prop::collection::vec(step(), 1..=30);
    // The SQLite books, and the journal-first engine in front of them: the same sequence on
    // each.
    let result = runner.run(&strategy, |steps| {
        run_case(Backend::sqlite(), &steps, &mut coverage.borrow_mut())?;
        run_case(Backend::journaled(), &steps, &mut Coverage::new())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let coverage = coverage.into_inner();
    eprintln!("model test coverage: {coverage:#?}");
    // Paths the generator must reach; if one is never taken, the test proves nothing about it.
    for key in [
        "created_Posted",
        "created_Pending",
        "created_PostPending",
        "created_partial_post",
        "created_VoidPending",
        "replayed",
        "retried_batches",
        "expired_by_scan",
        "rejected_exceeds_credits",
        "rejected_exceeds_debits",
        "rejected_asset_mismatch",
        "rejected_debit_account_frozen",
        "rejected_pending_expired",
        "expired_when_named",
        "rejected_pending_already_posted",
        "rejected_pending_already_voided",
        "rejected_pending_not_found",
        "rejected_exceeds_pending_amount",
        "rejected_id_exists_with_different_fields",
        "rejected_linked_transfer_failed",
        "status_set_FrozenDebits",
    ] {
        assert!(coverage.get(key).is_some_and(|n| *n > 0), "never reached: {key}");
    }
}

/// The record that expires a hold gets a derived id, `expiry_transfer_id(pending_id)`. A
/// client that knows a pending id (its own hold) must not be able to take that id first:
/// the batch whose scan finds the hold due would fail as a whole (unique key on
/// `transfers.id`), with every unrelated request in it, and the hold would never be
/// released. Expiry ids live in the reserved range, which clients are refused.
#[test]
fn a_client_id_equal_to_an_expiry_id_does_not_break_expiry() {
    let backend = Backend::sqlite();
    let handle = backend.handle();
    handle.execute_blocking(setup_commands()).expect("setup");
    let submit = |request| handle.transfer_blocking(request).expect("pipeline");
    let transfer = |id, debit, credit, amount_minor, timeout_secs: Option<Option<u32>>| {
        let movement = Movement {
            debit_account_id: account(debit),
            credit_account_id: account(credit),
            asset: code("CNY"),
            amount: amount(amount_minor),
        };
        let action = match timeout_secs {
            None => TransferAction::Post(movement),
            Some(timeout_secs) => TransferAction::Pending { movement, timeout_secs },
        };
        NewTransfer {
            id,
            action,
            business_code: BusinessCode(1),
            order_ref: BoundedText::default(),
        }
    };
    submit(transfer(tid(1), RESERVE, WALLET_A, 100, None)).expect("fund");
    submit(transfer(tid(2), WALLET_A, WALLET_B, 10, Some(Some(1)))).expect("hold");
    let squatted = ledger::apply::expiry_transfer_id(tid(2));
    assert!(squatted.is_reserved());
    assert_eq!(
        submit(transfer(squatted, RESERVE, WALLET_A, 1, None)),
        Err(ledger::TransferRejection::IdReserved)
    );

    backend.clock.advance_secs(61);
    // An unrelated payment, in the batch that runs the expiry scan.
    let innocent = handle.transfer_blocking(transfer(tid(3), RESERVE, WALLET_B, 5, None));
    assert!(matches!(innocent, Ok(Ok(_))), "an unrelated transfer failed: {innocent:?}");
    let hold = backend.reader.hold(tid(2)).expect("read").expect("hold");
    assert_eq!(hold.state, HoldState::Expired, "the hold was never released");
}
