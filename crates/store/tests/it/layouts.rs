//! The two hot-account layouts (sub-accounts 子账户, buffered posting 缓冲记账), the same on
//! every backend: where credits land, what can be spent, what reads show, and that the books
//! still verify.

use ledger::apply::{Command, Outcome};
use ledger::model::{AccountLayout, BalanceRule, ChartCode, NewAccount};
use ledger::{
    AccountRejection, AccountStatus, Balances, BoundedText, LedgerHandle, TransferRejection,
};

use crate::backends::{each_backend, Backend};
use crate::conformance::{account, post, setup, submit, ALICE, BANK};

const HOT_SUB: u128 = 500;
const HOT_BUFFERED: u128 = 501;

fn open(handle: &LedgerHandle, id: u128, layout: AccountLayout) -> Result<(), AccountRejection> {
    let command = Command::OpenAccount(NewAccount {
        id: account(id),
        asset: crate::conformance::code("CNY"),
        chart_code: ChartCode(2241),
        rule: BalanceRule::NO_OVERDRAFT,
        metadata: BoundedText::default(),
        layout,
    });
    match handle.execute_blocking(vec![command]).expect("pipeline").remove(0) {
        Outcome::Account(result) => result.map(|_| ()),
        other => panic!("{other:?}"),
    }
}

fn fold(handle: &LedgerHandle, id: u128) -> u64 {
    let command = Command::FoldBuffers { account_id: account(id) };
    match handle.execute_blocking(vec![command]).expect("pipeline").remove(0) {
        Outcome::Fold(result) => result.expect("fold").value.minor(),
        other => panic!("{other:?}"),
    }
}

/// (own or summed balances, buffered balances)
fn summed(backend: &Backend, id: u128) -> (Balances, Balances) {
    let (account, buffered) =
        backend.reader.account_summed(account(id)).expect("read").expect("account exists");
    (account.balances, buffered)
}

fn row_balances(backend: &Backend, id: u128, row: u8) -> Balances {
    backend.reader.account(account(id).row(row)).expect("read").expect("row exists").balances
}

fn assert_books(backend: &Backend) {
    let report = ledger::verify::verify(backend.reader.as_ref(), &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "{}: {:?}", backend.name, report.divergence);
    let mut net: i128 = 0;
    for line in backend.reader.trial_balance().expect("trial balance") {
        net += line.balances.debits_posted as i128 - line.balances.credits_posted as i128;
    }
    assert_eq!(net, 0, "{}: the trial balance does not balance", backend.name);
}

#[test]
fn sub_accounts_spread_credits_sum_on_read_and_pay_from_all_rows() {
    each_backend("layout_sub", |backend| {
        let handle = backend.handle();
        setup(&handle);
        open(&handle, HOT_SUB, AccountLayout::SubAccounts { count: 4 }).expect("open");
        // Re-opening with the same fields is a replay; with another layout, a conflict.
        open(&handle, HOT_SUB, AccountLayout::SubAccounts { count: 4 }).expect("replay");
        assert_eq!(
            open(&handle, HOT_SUB, AccountLayout::Buffered { count: 4 }),
            Err(AccountRejection::IdExistsWithDifferentFields)
        );
        assert_eq!(
            open(&handle, 502, AccountLayout::SubAccounts { count: 1 }),
            Err(AccountRejection::LayoutInvalid)
        );
        submit(&handle, post(100, BANK, ALICE, 1_000_000)).expect("fund");
        // One transfer per batch: the pipeline turns to another row every batch.
        for n in 0..40u128 {
            submit(&handle, post(200 + n, ALICE, HOT_SUB, 100 + n as u64)).expect("credit");
        }
        let total: u64 = (0..40).map(|n| 100 + n).sum();
        let (balances, _) = summed(backend, HOT_SUB);
        assert_eq!(balances.credits_posted.minor(), total, "{}", backend.name);
        let rows_used =
            (0..4).filter(|row| !row_balances(backend, HOT_SUB, *row).credits_posted.is_zero());
        assert!(rows_used.count() >= 2, "{}: credits were not spread", backend.name);

        // A row is the ledger's own: naming one is "not found", even for a credit.
        let row = account(HOT_SUB).row(1).get();
        assert_eq!(
            submit(&handle, post(300, row, ALICE, 1)),
            Err(TransferRejection::DebitAccountNotFound)
        );
        assert_eq!(
            submit(&handle, post(301, ALICE, row, 1)),
            Err(TransferRejection::CreditAccountNotFound)
        );

        // No single row holds the total: the debit sweeps the others into one.
        let paid = submit(&handle, post(310, HOT_SUB, ALICE, total)).expect("pay out all");
        assert_eq!(paid.value.amount.minor(), total);
        let (balances, _) = summed(backend, HOT_SUB);
        assert_eq!(balances.available_credit(), 0, "{}", backend.name);
        assert_eq!(
            submit(&handle, post(311, HOT_SUB, ALICE, 1)),
            Err(TransferRejection::ExceedsCredits),
            "{}: no overdraft across rows",
            backend.name
        );
        // A failed debit leaves no sweep behind.
        submit(&handle, post(312, ALICE, HOT_SUB, 10)).expect("credit");
        assert_eq!(
            submit(&handle, post(313, HOT_SUB, ALICE, 11)),
            Err(TransferRejection::ExceedsCredits)
        );
        // A retry of the big debit is a replay, not a second payment.
        let replay = submit(&handle, post(310, HOT_SUB, ALICE, total)).expect("replay");
        assert!(!replay.created);

        // A status applies to every row.
        let set = |status| {
            let command = Command::SetAccountStatus { account_id: account(HOT_SUB), status };
            match handle.execute_blocking(vec![command]).expect("pipeline").remove(0) {
                Outcome::Status(result) => result.map(|_| ()),
                other => panic!("{other:?}"),
            }
        };
        set(AccountStatus::FrozenDebits).expect("freeze");
        for row in 0..4 {
            let row =
                backend.reader.account(account(HOT_SUB).row(row)).expect("read").expect("row");
            assert_eq!(row.status, AccountStatus::FrozenDebits);
        }
        assert_eq!(
            submit(&handle, post(320, HOT_SUB, ALICE, 1)),
            Err(TransferRejection::DebitAccountFrozen)
        );
        submit(&handle, post(321, ALICE, HOT_SUB, 5)).expect("frozen accounts take credits");
        set(AccountStatus::Active).expect("unfreeze");
        submit(&handle, post(322, HOT_SUB, ALICE, 15)).expect("pay the rest");
        set(AccountStatus::Closed).expect("close once every row is empty");
        assert_books(backend);

        // After a restart the layout is known from the store.
        backend.restart();
        let handle = backend.handle();
        assert_eq!(
            submit(&handle, post(330, ALICE, HOT_SUB, 1)),
            Err(TransferRejection::CreditAccountClosed)
        );
        assert_books(backend);
    });
}

#[test]
fn buffered_credits_cannot_be_spent_until_folded() {
    each_backend("layout_buffered", |backend| {
        let handle = backend.handle();
        setup(&handle);
        open(&handle, HOT_BUFFERED, AccountLayout::Buffered { count: 2 }).expect("open");
        submit(&handle, post(100, BANK, ALICE, 1_000_000)).expect("fund");
        for n in 0..10u128 {
            submit(&handle, post(200 + n, ALICE, HOT_BUFFERED, 1_000)).expect("credit");
        }
        let (own, buffered) = summed(backend, HOT_BUFFERED);
        assert_eq!(own.credits_posted.minor(), 0, "{}: credits go to the buffers", backend.name);
        assert_eq!(buffered.credits_posted.minor(), 10_000);
        assert_eq!(
            submit(&handle, post(300, HOT_BUFFERED, ALICE, 1)),
            Err(TransferRejection::ExceedsCredits),
            "{}: a buffered credit is not spendable",
            backend.name
        );
        assert_eq!(fold(&handle, HOT_BUFFERED), 10_000);
        assert_eq!(fold(&handle, HOT_BUFFERED), 0, "a second fold finds nothing");
        let (own, buffered) = summed(backend, HOT_BUFFERED);
        assert_eq!(own.available_credit(), 10_000);
        assert_eq!(buffered.net_credit_posted(), 0);
        submit(&handle, post(301, HOT_BUFFERED, ALICE, 10_000)).expect("spend what was folded");
        assert_eq!(
            submit(&handle, post(302, HOT_BUFFERED, ALICE, 1)),
            Err(TransferRejection::ExceedsCredits)
        );
        assert_books(backend);

        // Credits buffered before a restart are folded after it without another credit.
        submit(&handle, post(310, ALICE, HOT_BUFFERED, 700)).expect("credit");
        backend.restart();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (own, _) = summed(backend, HOT_BUFFERED);
            if own.available_credit() == 700 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}: never folded", backend.name);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_books(backend);
    });
}

/// A read of a buffered account that overlaps a fold sees the total before or after it,
/// never with the moving amount in neither place (a regression: rows were read one query
/// each, and a fold committing in between hid what it moved).
#[test]
fn reads_during_a_fold_add_up() {
    each_backend("layout_read", |backend| {
        let handle = backend.handle();
        setup(&handle);
        open(&handle, HOT_BUFFERED, AccountLayout::Buffered { count: 2 }).expect("open");
        submit(&handle, post(100, BANK, ALICE, 1_000_000)).expect("fund");
        let mut total = 0;
        for round in 0..15u128 {
            submit(&backend.handle(), post(200 + round, ALICE, HOT_BUFFERED, 10)).expect("credit");
            total += 10;
            // A restarting writer folds at once: read while it does.
            backend.restart();
            let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
            while std::time::Instant::now() < until {
                let (own, buffered) = summed(backend, HOT_BUFFERED);
                let seen = own.net_credit_posted() + buffered.net_credit_posted();
                assert_eq!(seen, total, "{}: round {round}: {own:?} + {buffered:?}", backend.name);
            }
        }
    });
}

/// A second writer on the same store (another service node), folding every 20 ms. `None`
/// on the journal-first engine: it has one writer per book, and its lock refuses a second.
fn second_node(backend: &Backend) -> Option<ledger::Ledger> {
    let config = ledger::PipelineConfig { fold_interval_ms: 20, ..crate::backends::test_config() };
    let clock = backend.clock.clone();
    match &backend.kind {
        crate::backends::Kind::Sqlite { path, .. } => Some(ledger::Ledger::start(
            store::SqliteStore::open(path).expect("open"),
            clock,
            config,
        )),
        crate::backends::Kind::Postgres(target) => Some(ledger::Ledger::start(
            store::PgStore::connect(target.clone()).expect("connect"),
            clock,
            config,
        )),
        crate::backends::Kind::Journaled { .. } | crate::backends::Kind::PgJournaled(_) => None,
    }
}

fn wait_for_spendable(backend: &Backend, id: u128, minor: i128) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while summed(backend, id).0.available_credit() != minor {
        assert!(std::time::Instant::now() < deadline, "{}: never folded", backend.name);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Credits are folded by whichever node is alive: one opened and credited in a single batch,
/// and one credited on a node that then stopped without folding (its timer is a minute),
/// both found by the other node's scan of the buffers in storage.
#[test]
fn every_buffered_credit_is_folded_by_some_node() {
    each_backend("layout_fold_nodes", |backend| {
        let handle = backend.handle();
        setup(&handle);
        submit(&handle, post(100, BANK, ALICE, 1_000_000)).expect("fund");
        let Some(other) = second_node(backend) else { return };
        // Opened and credited in one batch, on the node with the short timer.
        let open = Command::OpenAccount(NewAccount {
            id: account(HOT_BUFFERED),
            asset: crate::conformance::code("CNY"),
            chart_code: ChartCode(2241),
            rule: BalanceRule::NO_OVERDRAFT,
            metadata: BoundedText::default(),
            layout: AccountLayout::Buffered { count: 2 },
        });
        let credit = Command::Transfers(vec![post(200, ALICE, HOT_BUFFERED, 300)]);
        other.handle().execute_blocking(vec![open, credit]).expect("open and credit");
        wait_for_spendable(backend, HOT_BUFFERED, 300);
        // Credited on the slow node, which then goes away without folding.
        submit(&handle, post(201, ALICE, HOT_BUFFERED, 400)).expect("credit");
        if let Some(ledger) = backend.ledger.take() {
            ledger.shutdown();
        }
        wait_for_spendable(backend, HOT_BUFFERED, 700);
        other.shutdown();
        backend.restart();
        assert_books(backend);
    });
}
