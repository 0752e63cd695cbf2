//! Top-ups and withdrawals driven end to end against the real ledger (SQLite) and a scripted
//! bank: every kind of channel answer — success, decline, refusal (did nothing), unknown
//! (done or not), processing then done or not — with duplicates. After each order: its state
//! is final, it matches what the bank really did, the wallet moved exactly as the state says,
//! and the books balance.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use std::collections::VecDeque;
use std::sync::Arc;

use channels::{ChannelId, FailureReason, Outcome, Settled};
use ledger::apply::{Command, Outcome as LedgerOutcome};
use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::port::LedgerReader;
use ledger::{Ledger, LedgerHandle, ManualClock, Timestamp, TransferId};
use money::{Amount, Asset, AssetCode};
use payments::booked::net_posted;
use payments::chart::{
    chart_commands, internal_account, wallet_account, wallet_account_id, Internal,
};
use payments::topup::{TopUp, TopUpEvent, TopUpState};
use payments::withdrawal::{Withdrawal, WithdrawalEvent, WithdrawalState};
use payments::{Effect, Order, OrderId};
use proptest::prelude::*;

const CHANNELS: [&str; 2] = ["bank_a", "bank_b"];

#[derive(Clone, Copy, Debug)]
enum First {
    Succeed,
    Decline,
    /// 503: the bank did nothing.
    Refuse,
    UnknownDone,
    UnknownNotDone,
    ProcessingThenDone,
    ProcessingThenDeclined,
}

#[derive(Clone, Copy, Debug)]
struct Script {
    first: First,
    fee_minor: u64,
    duplicate: bool,
}

fn script() -> impl Strategy<Value = Script> {
    let first = prop_oneof![
        Just(First::Succeed),
        Just(First::Decline),
        Just(First::Refuse),
        Just(First::UnknownDone),
        Just(First::UnknownNotDone),
        Just(First::ProcessingThenDone),
        Just(First::ProcessingThenDeclined),
    ];
    (first, 0..3u64, any::<bool>()).prop_map(|(first, fee_minor, duplicate)| Script {
        first,
        fee_minor,
        duplicate,
    })
}

/// The bank: what it answers first, what it really did, what inquiry finds.
struct Bank {
    scripts: [Script; 2],
    executed: Vec<ChannelId>,
}

impl Bank {
    fn script(&self, channel: &ChannelId) -> Script {
        self.scripts[usize::from(channel.as_str() == "bank_b")]
    }

    fn settled(&self, channel: &ChannelId) -> Settled {
        Settled {
            channel_ref: format!("{channel}-ref"),
            fee: Amount::new(self.script(channel).fee_minor).unwrap(),
        }
    }

    /// The first answer to a request, recording whether the money moved.
    fn call(&mut self, channel: &ChannelId) -> Outcome {
        let done = |bank: &mut Bank| bank.executed.push(channel.clone());
        match self.script(channel).first {
            First::Succeed => {
                done(self);
                Outcome::Succeeded(self.settled(channel))
            }
            First::Decline => Outcome::failed(FailureReason::Declined, "no"),
            First::Refuse => Outcome::failed(FailureReason::ChannelUnavailable, "503"),
            First::UnknownDone => {
                done(self);
                Outcome::Unknown { detail: "timeout".into() }
            }
            First::UnknownNotDone => Outcome::Unknown { detail: "timeout".into() },
            First::ProcessingThenDone => {
                done(self);
                Outcome::Processing
            }
            First::ProcessingThenDeclined => Outcome::Processing,
        }
    }

    /// What inquiry (or the callback) finally finds.
    fn truth(&self, channel: &ChannelId) -> Outcome {
        match self.script(channel).first {
            _ if self.executed.contains(channel) => Outcome::Succeeded(self.settled(channel)),
            First::ProcessingThenDeclined => Outcome::failed(FailureReason::Declined, "late no"),
            _ => Outcome::failed(FailureReason::NeverReceived, "no record"),
        }
    }
}

struct Books {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    reader: Box<dyn LedgerReader>,
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap()
}

fn books(wallet_funds_minor: u64) -> Books {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = store::SqliteStore::open(&path).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000_000)));
    let ledger = Ledger::start(store, clock, ledger::PipelineConfig::default());
    let mut setup = vec![Command::DefineAsset(Asset::new(cny(), 2).unwrap())];
    setup.extend(chart_commands());
    let mut internals =
        vec![Internal::ChannelFees, Internal::Suspense, Internal::WithdrawalsInFlight];
    internals.extend(CHANNELS.map(|c| Internal::ChannelClearing(ChannelId::new(c).unwrap())));
    setup.extend(internals.iter().map(|i| Command::OpenAccount(internal_account(i, cny()))));
    setup.push(Command::OpenAccount(wallet_account("alice", cny())));
    if wallet_funds_minor > 0 {
        let clearing = Internal::ChannelClearing(ChannelId::new("bank_a").unwrap());
        setup.push(Command::Transfers(vec![NewTransfer {
            id: TransferId::new(1).unwrap(),
            action: TransferAction::Post(Movement {
                debit_account_id: payments::chart::internal_account_id(&clearing, cny()),
                credit_account_id: wallet_account_id("alice", cny()),
                asset: cny(),
                amount: Amount::new(wallet_funds_minor).unwrap(),
            }),
            business_code: ledger::BusinessCode(1),
            order_ref: Default::default(),
        }]));
    }
    for outcome in ledger.handle().execute_blocking(setup).unwrap() {
        let ok = match outcome {
            LedgerOutcome::Transfers(results) => results.iter().all(Result::is_ok),
            LedgerOutcome::Asset(r) => r.is_ok(),
            LedgerOutcome::Chart(r) => r.is_ok(),
            LedgerOutcome::Account(r) => r.is_ok(),
            LedgerOutcome::Status(r) => r.is_ok(),
            LedgerOutcome::Fold(r) => r.is_ok(),
        };
        assert!(ok, "setup");
    }
    let reader = Box::new(store::SqliteReader::open(&path).unwrap());
    Books { _dir: dir, ledger, reader }
}

/// Books a linked group; the answer the executor feeds back.
fn book(handle: &LedgerHandle, group: Vec<NewTransfer>) -> Result<(), String> {
    match handle.execute_blocking(vec![Command::Transfers(group)]).unwrap().pop() {
        Some(LedgerOutcome::Transfers(results)) => {
            match results.iter().find_map(|r| r.as_ref().err()).copied() {
                None => Ok(()),
                Some(rejection) => Err(rejection.code().to_string()),
            }
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn balanced(reader: &dyn LedgerReader) {
    for asset in reader.asset_totals().unwrap() {
        assert!(asset.balanced(), "the books do not balance: {asset:?}");
    }
}

fn next_channel(refused_by: &[ChannelId]) -> Option<ChannelId> {
    CHANNELS.iter().map(|c| ChannelId::new(*c).unwrap()).find(|c| !refused_by.contains(c))
}

fn run_topup(scripts: [Script; 2], amount_minor: u64) {
    let books = books(0);
    let handle = books.ledger.handle();
    let mut bank = Bank { scripts, executed: Vec::new() };
    let mut order = TopUp::new(
        OrderId::new("top_1").unwrap(),
        "alice".into(),
        "card-1".into(),
        cny(),
        Amount::new(amount_minor).unwrap(),
    );
    let mut events = VecDeque::new();
    let mut accepted = Accepted::default();
    for _ in 0..100 {
        if events.is_empty() {
            match (&order.state, next_channel(&order.refused_by)) {
                (TopUpState::Created, Some(channel)) => {
                    events.push_back(TopUpEvent::Route { channel })
                }
                (TopUpState::Created, None) => {
                    events.push_back(TopUpEvent::Abandon { reason: "no channel left".into() })
                }
                _ => break,
            }
        }
        let Some(event) = events.pop_front() else { break };
        let transition = order.apply(&event).unwrap_or_else(|e| panic!("{e} ({order:?})"));
        order = transition.state;
        for effect in transition.effects {
            match effect {
                Effect::Ledger(group) => events.push_back(match accepted.book(&handle, group) {
                    Ok(()) => TopUpEvent::LedgerPosted,
                    Err(code) => TopUpEvent::LedgerRejected { code },
                }),
                Effect::Channel { channel, .. } => {
                    let channel = channel.unwrap();
                    let outcome = bank.call(&channel);
                    if bank.script(&channel).duplicate {
                        events.push_back(TopUpEvent::ChannelAnswered {
                            channel: channel.clone(),
                            outcome: outcome.clone(),
                        });
                    }
                    events.push_back(TopUpEvent::ChannelAnswered { channel, outcome });
                }
                Effect::Inquire { channel, .. } => events.push_back(TopUpEvent::ChannelAnswered {
                    outcome: bank.truth(&channel),
                    channel,
                }),
            }
        }
    }
    assert!(order.state.is_final(), "{order:?}");
    let wallet = books.reader.account(wallet_account_id("alice", cny())).unwrap().unwrap();
    match &order.state {
        TopUpState::Succeeded { channel, .. } => {
            assert_eq!(bank.executed, vec![channel.clone()], "exactly one bank took the money");
            assert_eq!(wallet.balances.credits_posted.minor(), amount_minor);
        }
        TopUpState::Failed { .. } => {
            assert!(bank.executed.is_empty(), "a bank took the money but we failed: {bank:?}");
            assert_eq!(wallet.balances.credits_posted.minor(), 0);
        }
        other => panic!("unexpected final state {other:?}"),
    }
    accepted.are_what_the_order_says(&Order::Topup(order));
    balanced(books.reader.as_ref());
    books.ledger.shutdown();
}

fn run_withdrawal(scripts: [Script; 2], funds_minor: u64, amount_minor: u64) {
    let books = books(funds_minor);
    let handle = books.ledger.handle();
    let mut bank = Bank { scripts, executed: Vec::new() };
    let mut order = Withdrawal::new(
        OrderId::new("wd_1").unwrap(),
        "alice".into(),
        "acct-1".into(),
        cny(),
        Amount::new(amount_minor).unwrap(),
    );
    let mut events = VecDeque::from([WithdrawalEvent::Submit, WithdrawalEvent::Submit]);
    let mut accepted = Accepted::default();
    for _ in 0..100 {
        if events.is_empty() {
            match (&order.state, next_channel(&order.refused_by)) {
                (WithdrawalState::Held, Some(channel)) => {
                    events.push_back(WithdrawalEvent::Route { channel })
                }
                (WithdrawalState::Held, None) => {
                    events.push_back(WithdrawalEvent::Abandon { reason: "no channel left".into() })
                }
                _ => break,
            }
        }
        let Some(event) = events.pop_front() else { break };
        let transition = order.apply(&event).unwrap_or_else(|e| panic!("{e} ({order:?})"));
        order = transition.state;
        // While a payout may be at a bank, the money stays held.
        if matches!(order.state, WithdrawalState::Paying { .. }) {
            let wallet = books.reader.account(wallet_account_id("alice", cny())).unwrap().unwrap();
            assert_eq!(wallet.balances.debits_pending.minor(), amount_minor);
        }
        for effect in transition.effects {
            match effect {
                Effect::Ledger(group) => events.push_back(match accepted.book(&handle, group) {
                    Ok(()) => WithdrawalEvent::LedgerPosted,
                    Err(code) => WithdrawalEvent::LedgerRejected { code },
                }),
                Effect::Channel { channel, .. } => {
                    let channel = channel.unwrap();
                    let outcome = bank.call(&channel);
                    if bank.script(&channel).duplicate {
                        events.push_back(WithdrawalEvent::ChannelAnswered {
                            channel: channel.clone(),
                            outcome: outcome.clone(),
                        });
                    }
                    events.push_back(WithdrawalEvent::ChannelAnswered { channel, outcome });
                }
                Effect::Inquire { channel, .. } => {
                    events.push_back(WithdrawalEvent::ChannelAnswered {
                        outcome: bank.truth(&channel),
                        channel,
                    })
                }
            }
        }
    }
    assert!(order.state.is_final(), "{order:?}");
    let wallet = books.reader.account(wallet_account_id("alice", cny())).unwrap().unwrap();
    assert_eq!(wallet.balances.debits_pending.minor(), 0, "nothing left held");
    match &order.state {
        WithdrawalState::Succeeded { channel, .. } => {
            assert_eq!(bank.executed, vec![channel.clone()], "exactly one bank paid out");
            assert_eq!(wallet.balances.debits_posted.minor(), amount_minor);
        }
        WithdrawalState::Failed { .. } => {
            assert!(bank.executed.is_empty(), "a bank paid out but we released the hold");
            assert_eq!(wallet.balances.debits_posted.minor(), 0);
            if funds_minor >= amount_minor {
                assert!(order.refused_by.len() <= CHANNELS.len());
            }
        }
        other => panic!("unexpected final state {other:?}"),
    }
    accepted.are_what_the_order_says(&Order::Withdrawal(order));
    balanced(books.reader.as_ref());
    books.ledger.shutdown();
}

/// The transfers the ledger took for one order, each once (a group booked again is the same
/// transfers, which the ledger takes as already done).
#[derive(Default)]
struct Accepted(Vec<NewTransfer>);

impl Accepted {
    fn book(&mut self, handle: &LedgerHandle, group: Vec<NewTransfer>) -> Result<(), String> {
        book(handle, group.clone())?;
        for transfer in group {
            if !self.0.iter().any(|t| t.id == transfer.id) {
                self.0.push(transfer);
            }
        }
        Ok(())
    }

    /// What the order's final state says it was booked with (the cross-check
    /// `succeeded_orders_booked_in_full` compares it with the journal) is what the ledger took.
    fn are_what_the_order_says(&self, order: &Order) {
        let booked = order.booked_transfers().unwrap_or_default();
        assert_eq!(net_posted(&booked), net_posted(&self.0), "{order:?}");
    }
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bank {{ executed: {:?}, scripts: {:?} }}", self.executed, self.scripts)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn topups_end_where_the_bank_says_and_credit_once(a in script(), b in script(), amount in 1..10_000u64) {
        run_topup([a, b], amount);
    }

    #[test]
    fn withdrawals_never_release_money_a_bank_paid_out(
        a in script(), b in script(), funds in 0..20_000u64, amount in 1..10_000u64,
    ) {
        run_withdrawal([a, b], funds, amount);
    }
}

#[test]
fn a_duplicate_callback_after_success_changes_nothing() {
    let order = TopUp::new(
        OrderId::new("top_9").unwrap(),
        "alice".into(),
        "card".into(),
        cny(),
        Amount::new(100).unwrap(),
    );
    let channel = ChannelId::new("bank_a").unwrap();
    let settled = Settled { channel_ref: "r".into(), fee: Amount::ZERO };
    let routed = order.apply(&TopUpEvent::Route { channel: channel.clone() }).unwrap().state;
    let answered = TopUpEvent::ChannelAnswered {
        channel: channel.clone(),
        outcome: Outcome::Succeeded(settled),
    };
    let crediting = routed.apply(&answered).unwrap();
    assert_eq!(crediting.effects.len(), 1);
    let again = crediting.state.apply(&answered).unwrap();
    assert!(again.effects.is_empty());
    assert_eq!(again.state, crediting.state);
    let done = crediting.state.apply(&TopUpEvent::LedgerPosted).unwrap().state;
    let late = done.apply(&answered).unwrap();
    assert!(late.effects.is_empty() && late.state == done);
    // A contradicting report on a finished top-up is refused, not absorbed.
    let contradiction = TopUpEvent::ChannelAnswered {
        channel,
        outcome: Outcome::failed(FailureReason::Declined, "?"),
    };
    assert!(done.apply(&contradiction).is_err());
}
