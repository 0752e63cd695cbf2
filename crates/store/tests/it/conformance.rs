//! The ledger's behaviour, the same on every backend.

use ledger::apply::{Command, Outcome};
use ledger::model::{AccountClass, BalanceRule, ChartCode, ChartEntry, Movement, NewAccount};
use ledger::port::Page;
use ledger::verify::{verify, Divergence};
use ledger::{
    AccountId, AccountRejection, AccountStatus, BoundedText, BusinessCode, HoldState, LedgerHandle,
    NewTransfer, Seq, TransferAction, TransferId, TransferKind, TransferRejection, TransferResult,
};
use money::{Amount, Asset, AssetCode};

use crate::backends::{each_backend, Backend};

pub const BANK: u128 = 1;
pub const ALICE: u128 = 10;
pub const BOB: u128 = 11;
pub const MERCHANT: u128 = 20;
pub const FEES: u128 = 30;
pub const POINTS_POOL: u128 = 40;

pub fn code(code: &str) -> AssetCode {
    AssetCode::new(code).expect("asset code")
}

pub fn amount(minor: u64) -> Amount {
    Amount::new(minor).expect("amount")
}

pub fn account(id: u128) -> AccountId {
    AccountId::new(id).expect("account id")
}

pub fn tid(id: u128) -> TransferId {
    TransferId::new(id).expect("transfer id")
}

/// Defines CNY and POINTS and a small chart of accounts, and opens a bank reserve (asset),
/// two customer wallets and a merchant (liabilities, no overdraft) and a fee income account.
pub fn setup(handle: &LedgerHandle) {
    let chart = |code, name: &str, class| ChartEntry {
        code: ChartCode(code),
        name: BoundedText::new(name).expect("name"),
        class,
    };
    let mut commands = vec![
        Command::DefineAsset(Asset::new(code("CNY"), 2).expect("asset")),
        Command::DefineAsset(Asset::new(code("POINTS"), 0).expect("asset")),
        Command::DefineChart(chart(1002, "bank deposits", AccountClass::Asset)),
        Command::DefineChart(chart(2241, "customer wallets", AccountClass::Liability)),
        Command::DefineChart(chart(6001, "fee income", AccountClass::Income)),
    ];
    let open = |id, asset, chart_code, rule| {
        Command::OpenAccount(NewAccount {
            id: account(id),
            asset: code(asset),
            chart_code: ChartCode(chart_code),
            rule,
            metadata: BoundedText::default(),
            layout: Default::default(),
        })
    };
    commands.push(open(BANK, "CNY", 1002, BalanceRule::Unbounded));
    for wallet in [ALICE, BOB, MERCHANT] {
        commands.push(open(wallet, "CNY", 2241, BalanceRule::NO_OVERDRAFT));
    }
    commands.push(open(FEES, "CNY", 6001, BalanceRule::NO_OVERDRAFT));
    commands.push(open(POINTS_POOL, "POINTS", 1002, BalanceRule::Unbounded));
    for outcome in handle.execute_blocking(commands).expect("setup") {
        match outcome {
            Outcome::Asset(result) => assert!(result.is_ok()),
            Outcome::Chart(result) => assert!(result.is_ok()),
            Outcome::Account(result) => assert!(result.is_ok(), "{result:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub fn post(id: u128, debit: u128, credit: u128, minor: u64) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        action: TransferAction::Post(movement(debit, credit, minor)),
        business_code: BusinessCode(1),
        order_ref: BoundedText::new(format!("order-{id}")).expect("ref"),
    }
}

pub fn hold(
    id: u128,
    debit: u128,
    credit: u128,
    minor: u64,
    timeout_secs: Option<u32>,
) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        action: TransferAction::Pending { movement: movement(debit, credit, minor), timeout_secs },
        business_code: BusinessCode(2),
        order_ref: BoundedText::default(),
    }
}

pub fn post_pending(id: u128, pending: u128, minor: Option<u64>) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        action: TransferAction::PostPending { pending_id: tid(pending), amount: minor.map(amount) },
        business_code: BusinessCode(2),
        order_ref: BoundedText::default(),
    }
}

pub fn void(id: u128, pending: u128) -> NewTransfer {
    NewTransfer {
        id: tid(id),
        action: TransferAction::VoidPending { pending_id: tid(pending) },
        business_code: BusinessCode(2),
        order_ref: BoundedText::default(),
    }
}

pub fn movement(debit: u128, credit: u128, minor: u64) -> Movement {
    Movement {
        debit_account_id: account(debit),
        credit_account_id: account(credit),
        asset: code("CNY"),
        amount: amount(minor),
    }
}

pub fn submit(handle: &LedgerHandle, transfer: NewTransfer) -> TransferResult {
    handle.transfer_blocking(transfer).expect("pipeline")
}

fn rejection(result: TransferResult) -> TransferRejection {
    result.expect_err("expected a rejection")
}

/// (debits_posted, credits_posted, debits_pending, credits_pending)
fn balances(backend: &Backend, id: u128) -> (u64, u64, u64, u64) {
    let account = backend.reader.account(account(id)).expect("read").expect("account exists");
    let b = account.balances;
    (
        b.debits_posted.minor(),
        b.credits_posted.minor(),
        b.debits_pending.minor(),
        b.credits_pending.minor(),
    )
}

fn assert_verified(backend: &Backend) {
    let report = verify(backend.reader.as_ref(), &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "{}: {:?}", backend.name, report.divergence);
}

fn assert_trial_balance(backend: &Backend) {
    for asset in backend.reader.asset_totals().expect("trial balance") {
        assert!(asset.balanced(), "{}: {asset:?} does not balance", backend.name);
    }
}

#[test]
fn posted_transfers_move_money_and_keep_running_balances() {
    each_backend("posted", |backend| {
        let handle = backend.handle();
        setup(&handle);
        let first = submit(&handle, post(100, BANK, ALICE, 10_000)).expect("top-up");
        assert!(first.created);
        assert_eq!(first.value.kind, TransferKind::Posted);
        submit(&handle, post(101, ALICE, BOB, 2_500)).expect("transfer");
        assert_eq!(balances(backend, ALICE), (2_500, 10_000, 0, 0));
        assert_eq!(balances(backend, BOB), (0, 2_500, 0, 0));
        assert_eq!(balances(backend, BANK), (10_000, 0, 0, 0));

        let entries = backend
            .reader
            .entries(account(ALICE), Page { after: None, limit: 10 })
            .expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].balances_after.credits_posted, amount(10_000));
        assert_eq!(entries[1].balances_after.debits_posted, amount(2_500));
        let page2 = backend
            .reader
            .entries(account(ALICE), Page { after: Some(entries[0].seq), limit: 10 })
            .expect("page");
        assert_eq!(page2, entries[1..].to_vec());

        let stored = backend.reader.transfer(tid(101)).expect("read").expect("stored");
        assert_eq!(stored, submit(&handle, post(101, ALICE, BOB, 2_500)).expect("replay").value);
        assert_trial_balance(backend);
        assert_verified(backend);
    });
}

#[test]
fn a_retry_has_no_second_effect_and_a_reused_id_is_rejected() {
    each_backend("idempotent", |backend| {
        let handle = backend.handle();
        setup(&handle);
        let first = submit(&handle, post(200, BANK, ALICE, 700)).expect("first");
        let retry = submit(&handle, post(200, BANK, ALICE, 700)).expect("retry");
        assert!(first.created && !retry.created);
        assert_eq!(first.value, retry.value);
        assert_eq!(balances(backend, ALICE), (0, 700, 0, 0));
        assert_eq!(
            rejection(submit(&handle, post(200, BANK, ALICE, 701))),
            TransferRejection::IdExistsWithDifferentFields
        );
        assert_eq!(
            rejection(submit(&handle, post(200, BANK, BOB, 700))),
            TransferRejection::IdExistsWithDifferentFields
        );
        // Duplicates inside one request behave the same way.
        let outcomes = handle
            .execute_blocking(vec![
                Command::Transfers(vec![post(201, BANK, BOB, 5)]),
                Command::Transfers(vec![post(201, BANK, BOB, 5)]),
                Command::Transfers(vec![post(201, BANK, BOB, 6)]),
            ])
            .expect("batch");
        let results: Vec<_> = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Transfers(mut results) => results.remove(0),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(results[0].as_ref().is_ok_and(|applied| applied.created));
        assert!(results[1].as_ref().is_ok_and(|applied| !applied.created));
        assert_eq!(results[2], Err(TransferRejection::IdExistsWithDifferentFields));
        assert_eq!(balances(backend, BOB), (0, 5, 0, 0));
        assert_verified(backend);
    });
}

#[test]
fn invalid_transfers_are_rejected_and_change_nothing() {
    each_backend("rejections", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(300, BANK, ALICE, 1_000)).expect("fund");
        let before = backend.reader.head().expect("head");
        let cases = [
            (post(301, ALICE, ALICE, 1), TransferRejection::AccountsMustDiffer),
            (post(302, ALICE, BOB, 0), TransferRejection::AmountMustNotBeZero),
            (post(303, 999, BOB, 1), TransferRejection::DebitAccountNotFound),
            (post(304, ALICE, 999, 1), TransferRejection::CreditAccountNotFound),
            (post(305, ALICE, BOB, 1_001), TransferRejection::ExceedsCredits),
            (post(306, POINTS_POOL, ALICE, 1), TransferRejection::AssetMismatch),
            (hold(307, ALICE, BOB, 1_001, None), TransferRejection::ExceedsCredits),
            (post_pending(308, 9_999, None), TransferRejection::PendingNotFound),
            (void(309, 9_999), TransferRejection::PendingNotFound),
        ];
        for (transfer, expected) in cases {
            assert_eq!(rejection(submit(&handle, transfer)), expected);
        }
        assert_eq!(backend.reader.head().expect("head"), before, "rejections wrote nothing");
        assert_eq!(balances(backend, ALICE), (0, 1_000, 0, 0));
        // A rejected id is not burnt: the same id succeeds once the money is there.
        submit(&handle, post(310, BANK, ALICE, 1)).expect("top up one fen");
        submit(&handle, post(305, ALICE, BOB, 1_001)).expect("now affordable");
        assert_verified(backend);
    });
}

#[test]
fn frozen_accounts_take_credits_but_pay_nothing_and_closed_accounts_take_nothing() {
    each_backend("status", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(400, BANK, ALICE, 500)).expect("fund");
        let set = |id, status| match handle
            .execute_blocking(vec![Command::SetAccountStatus { account_id: account(id), status }])
            .expect("pipeline")
            .remove(0)
        {
            Outcome::Status(result) => result,
            other => panic!("{other:?}"),
        };
        set(ALICE, AccountStatus::FrozenDebits).expect("freeze");
        assert_eq!(
            rejection(submit(&handle, post(401, ALICE, BOB, 1))),
            TransferRejection::DebitAccountFrozen
        );
        assert_eq!(
            rejection(submit(&handle, hold(402, ALICE, BOB, 1, None))),
            TransferRejection::DebitAccountFrozen
        );
        submit(&handle, post(403, BANK, ALICE, 1)).expect("credits still arrive");
        set(ALICE, AccountStatus::Active).expect("unfreeze");
        submit(&handle, post(404, ALICE, BOB, 1)).expect("debits again");

        assert_eq!(set(ALICE, AccountStatus::Closed), Err(AccountRejection::BalanceNotZero));
        set(FEES, AccountStatus::Closed).expect("an empty account closes");
        assert_eq!(
            rejection(submit(&handle, post(405, ALICE, FEES, 1))),
            TransferRejection::CreditAccountClosed
        );
        assert_eq!(set(FEES, AccountStatus::Active), Err(AccountRejection::AccountClosed));
        assert_eq!(set(999, AccountStatus::Active), Err(AccountRejection::AccountNotFound));
        assert_verified(backend);
    });
}

#[test]
fn holds_post_in_part_void_and_expire() {
    each_backend("holds", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(500, BANK, ALICE, 1_000)).expect("fund");
        submit(&handle, hold(501, ALICE, MERCHANT, 600, None)).expect("hold");
        assert_eq!(balances(backend, ALICE), (0, 1_000, 600, 0));
        assert_eq!(
            rejection(submit(&handle, post(502, ALICE, BOB, 401))),
            TransferRejection::ExceedsCredits
        );
        assert_eq!(
            rejection(submit(&handle, post_pending(503, 501, Some(601)))),
            TransferRejection::ExceedsPendingAmount
        );
        let posted = submit(&handle, post_pending(504, 501, Some(450))).expect("partial post");
        assert_eq!(posted.value.amount, amount(450));
        assert_eq!(balances(backend, ALICE), (450, 1_000, 0, 0), "the unposted 150 is released");
        assert_eq!(balances(backend, MERCHANT), (0, 450, 0, 0));
        assert_eq!(
            rejection(submit(&handle, post_pending(505, 501, None))),
            TransferRejection::PendingAlreadyPosted
        );
        assert_eq!(
            rejection(submit(&handle, void(506, 501))),
            TransferRejection::PendingAlreadyPosted
        );

        submit(&handle, hold(510, ALICE, MERCHANT, 100, None)).expect("hold");
        submit(&handle, void(511, 510)).expect("void");
        assert_eq!(
            rejection(submit(&handle, post_pending(512, 510, None))),
            TransferRejection::PendingAlreadyVoided
        );
        assert_eq!(balances(backend, ALICE), (450, 1_000, 0, 0));

        submit(&handle, hold(520, ALICE, MERCHANT, 200, Some(60))).expect("hold with timeout");
        backend.clock.advance_secs(61);
        // Any batch runs the expiry pass first; this one also tries to post the stale hold.
        assert_eq!(
            rejection(submit(&handle, post_pending(521, 520, None))),
            TransferRejection::PendingExpired
        );
        let stored = backend.reader.hold(tid(520)).expect("read").expect("hold");
        assert_eq!(stored.state, HoldState::Expired);
        assert_eq!(balances(backend, ALICE), (450, 1_000, 0, 0));
        assert_trial_balance(backend);
        assert_verified(backend);
    });
}

#[test]
fn a_linked_group_commits_all_or_nothing_and_never_harms_its_neighbours() {
    each_backend("linked", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(600, BANK, ALICE, 1_000)).expect("fund");
        // A payment with a fee split: customer → merchant, merchant → fees. The second leg
        // would overdraw the merchant, so neither happens.
        let outcomes = handle
            .execute_blocking(vec![
                Command::Transfers(vec![post(601, BANK, BOB, 10)]),
                Command::Transfers(vec![
                    post(602, ALICE, MERCHANT, 100),
                    post(603, MERCHANT, FEES, 101),
                ]),
                Command::Transfers(vec![
                    post(604, ALICE, MERCHANT, 100),
                    post(605, MERCHANT, FEES, 3),
                ]),
            ])
            .expect("batch");
        let groups: Vec<Vec<TransferResult>> = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Transfers(results) => results,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(groups[0][0].is_ok(), "a neighbour is unaffected");
        assert_eq!(groups[1][0], Err(TransferRejection::LinkedTransferFailed));
        assert_eq!(groups[1][1], Err(TransferRejection::ExceedsCredits));
        assert!(groups[2].iter().all(Result::is_ok));
        assert!(backend.reader.transfer(tid(602)).expect("read").is_none());
        assert_eq!(balances(backend, ALICE), (100, 1_000, 0, 0));
        assert_eq!(balances(backend, MERCHANT), (3, 100, 0, 0));
        assert_eq!(balances(backend, FEES), (0, 3, 0, 0));
        assert_verified(backend);
    });
}

#[test]
fn balances_can_be_read_as_of_a_past_point() {
    each_backend("as_of", |backend| {
        let handle = backend.handle();
        setup(&handle);
        let first = submit(&handle, post(700, BANK, ALICE, 300)).expect("t1").value;
        backend.clock.advance_secs(10);
        submit(&handle, post(701, BANK, ALICE, 400)).expect("t2");
        let at_first =
            backend.reader.entry_as_of(account(ALICE), first.seq).expect("read").expect("entry");
        assert_eq!(at_first.balances_after.credits_posted, amount(300));
        let seq = backend.reader.seq_at(first.timestamp).expect("seq at");
        assert_eq!(seq, first.seq);
        let before_any =
            backend.reader.entry_as_of(account(ALICE), Seq(first.seq.0 - 1)).expect("read");
        assert!(before_any.is_none());
    });
}

#[test]
fn the_chain_survives_restarts_and_reveals_tampering() {
    each_backend("tamper", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(800, BANK, ALICE, 900)).expect("t1");
        backend.restart();
        let handle = backend.handle();
        submit(&handle, post(801, ALICE, BOB, 100)).expect("t2 after restart");
        assert_verified(backend);

        // Someone edits a transfer's amount and the balances to match: the chain catches it.
        backend.tamper(
            "UPDATE transfers SET amount = 50 WHERE seq = (SELECT max(seq) FROM transfers); \
             UPDATE accounts SET debits_posted = debits_posted - 50 WHERE chart_code = 2241 AND debits_posted > 0;",
        );
        let report = verify(backend.reader.as_ref(), &mut |_| {}).expect("verify");
        assert!(
            matches!(report.divergence, Some(Divergence::HashMismatch { .. })),
            "{:?}",
            report.divergence
        );
    });
}

#[test]
fn the_chain_verifies_incrementally_from_a_checkpoint() {
    each_backend("chain_from", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(850, BANK, ALICE, 900)).expect("t1");
        let whole = ledger::verify::verify_chain_from(backend.reader.as_ref(), Default::default())
            .expect("verify the chain");
        assert_eq!(whole.divergence, None);
        assert!(whole.n_batches >= 2, "{whole:?}");
        submit(&handle, post(851, ALICE, BOB, 100)).expect("t2");
        let since = ledger::verify::verify_chain_from(backend.reader.as_ref(), whole.checkpoint)
            .expect("verify from the checkpoint");
        assert_eq!((since.n_batches, since.divergence.clone()), (1, None), "only the new batch");
        // Nothing new: nothing read, the checkpoint stays.
        let idle = ledger::verify::verify_chain_from(backend.reader.as_ref(), since.checkpoint)
            .expect("verify again");
        assert_eq!((idle.n_batches, idle.checkpoint), (0, since.checkpoint));

        submit(&handle, post(852, ALICE, BOB, 50)).expect("t3");
        backend.tamper(
            "UPDATE transfers SET amount = 49 WHERE seq = (SELECT max(seq) FROM transfers);",
        );
        let tampered = ledger::verify::verify_chain_from(backend.reader.as_ref(), since.checkpoint)
            .expect("verify the tampered batch");
        assert!(
            matches!(tampered.divergence, Some(Divergence::HashMismatch { .. })),
            "{tampered:?}"
        );
        assert_eq!(tampered.checkpoint, since.checkpoint, "a divergence keeps the checkpoint");
    });
}

#[test]
fn a_balance_edited_behind_the_ledgers_back_is_reported() {
    each_backend("tamper_balance", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(900, BANK, ALICE, 900)).expect("t1");
        backend.tamper("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE chart_code = 2241 AND credits_posted > 0;");
        let report = verify(backend.reader.as_ref(), &mut |_| {}).expect("verify");
        assert!(
            matches!(report.divergence, Some(Divergence::AccountMismatch { .. })),
            "{:?}",
            report.divergence
        );
    });
}

#[test]
fn accounts_and_reference_data_are_idempotent() {
    each_backend("accounts", |backend| {
        let handle = backend.handle();
        setup(&handle);
        setup(&handle); // every define and open again: all replays
        let open = |asset: &str, chart| NewAccount {
            id: account(ALICE),
            asset: code(asset),
            chart_code: ChartCode(chart),
            rule: BalanceRule::NO_OVERDRAFT,
            metadata: BoundedText::default(),
            layout: Default::default(),
        };
        let result = |new| open_blocking(&handle, new);
        assert_eq!(
            result(open("POINTS", 2241)),
            Err(AccountRejection::IdExistsWithDifferentFields)
        );
        let fresh = |asset: &str, chart| NewAccount { id: account(5_000), ..open(asset, chart) };
        assert_eq!(result(fresh("EUR", 2241)), Err(AccountRejection::AssetNotFound));
        assert_eq!(result(fresh("CNY", 9999)), Err(AccountRejection::ChartCodeNotFound));
        let outcome = handle
            .execute_blocking(vec![Command::DefineAsset(
                Asset::new(code("CNY"), 3).expect("asset"),
            )])
            .expect("pipeline");
        assert_eq!(
            outcome,
            vec![Outcome::Asset(Err(AccountRejection::AssetExistsWithDifferentScale))]
        );
        assert_verified(backend);
    });
}

fn open_blocking(
    handle: &LedgerHandle,
    account: NewAccount,
) -> Result<ledger::Applied<ledger::Account>, AccountRejection> {
    match handle.execute_blocking(vec![Command::OpenAccount(account)]).expect("pipeline").remove(0)
    {
        Outcome::Account(result) => result,
        other => panic!("{other:?}"),
    }
}

/// A caller asking for a full page and one more (to learn whether another page follows) gets
/// them, even at the largest page: entries and accounts alike.
#[test]
fn a_full_page_and_one_more_are_returned_at_the_maximum() {
    each_backend("page_max", |backend| {
        let handle = backend.handle();
        setup(&handle);
        let rows = ledger::port::PAGE_ROWS_MAX as u128;
        let transfers: Vec<NewTransfer> =
            (0..rows).map(|n| post(1_000 + n, BANK, ALICE, 1)).collect();
        handle.execute_blocking(vec![Command::Transfers(transfers)]).expect("transfers");
        let page = Page { after: None, limit: ledger::port::PAGE_ROWS_MAX };
        let entries = backend.reader.entries(account(ALICE), page).expect("entries");
        assert_eq!(entries.len(), ledger::port::PAGE_ROWS_MAX, "{}", backend.name);
        let more = Page { after: None, limit: ledger::port::PAGE_ROWS_MAX + 50 };
        let entries = backend.reader.entries(account(ALICE), more).expect("entries");
        assert_eq!(entries.len(), ledger::port::PAGE_ROWS_MAX, "clamped: {}", backend.name);
    });
}
