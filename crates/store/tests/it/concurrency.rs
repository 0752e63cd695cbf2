//! Several writers on one PostgreSQL: independent pipelines, each with its own connection,
//! as separate service nodes would run, hammering the same few hot accounts. Correctness
//! across nodes rests on row locks and the journal-head lock alone, so this is where a
//! lost update, a double effect or a deadlock would show.

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ledger::apply::{Command, Outcome};
use ledger::model::{
    AccountClass, AccountLayout, BalanceRule, Balances, ChartCode, ChartEntry, NewAccount, Side,
};
use ledger::port::{LedgerReader, Page, PAGE_LIMIT_MAX};
use ledger::verify::verify;
use ledger::{
    AccountId, BoundedText, Ledger, LedgerHandle, NewTransfer, PipelineConfig, Seq, SystemClock,
    Transfer, TransferId, TransferKind, TransferResult,
};
use money::{Asset, AssetCode};
use store::{PgReader, PgStore};

use crate::backends::{drop_schema, pg_target};
use crate::conformance::{account, code, hold, post, post_pending, void};

const NODES: usize = 4;
/// Worker threads per node.
const WORKERS_PER_NODE: usize = 2;
const OPS_PER_WORKER: usize = 60;
/// The whole run must finish within this; past it the test fails as a suspected deadlock.
const WATCHDOG_SECS: u64 = 30;

const RESERVE: u128 = 1;
const WALLETS: [u128; 4] = [10, 11, 12, 13];
const MERCHANT: u128 = 20;
const OPENING_BALANCE_MINOR: u64 = 1_000;

/// A small xorshift generator: the run is reproducible from the worker index, and the test
/// needs no randomness crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One answer the ledger gave: which node, what was asked, what came back.
struct Ack {
    request: NewTransfer,
    result: TransferResult,
}

/// The two answers to one request submitted on two nodes at the same moment.
struct DuplicatePair {
    first: Ack,
    second: Ack,
}

#[derive(Default)]
struct WorkerLog {
    acks: Vec<Ack>,
    duplicates: Vec<DuplicatePair>,
    pipeline_errors: Vec<String>,
}

fn setup(handle: &LedgerHandle) {
    setup_with(handle, AccountLayout::Plain)
}

/// The accounts, with the merchant (the hot account) opened with `layout`.
fn setup_with(handle: &LedgerHandle, merchant_layout: AccountLayout) {
    let chart = |code, name: &str, class| {
        Command::DefineChart(ChartEntry {
            code: ChartCode(code),
            name: BoundedText::new(name).expect("name"),
            class,
        })
    };
    let open = |id, chart_code, rule| {
        Command::OpenAccount(NewAccount {
            id: account(id),
            asset: code("CNY"),
            chart_code: ChartCode(chart_code),
            rule,
            metadata: BoundedText::default(),
            layout: if id == MERCHANT { merchant_layout } else { AccountLayout::Plain },
        })
    };
    let mut commands = vec![
        Command::DefineAsset(Asset::new(code("CNY"), 2).expect("asset")),
        chart(1002, "bank deposits", AccountClass::Asset),
        chart(2241, "customer wallets", AccountClass::Liability),
        open(RESERVE, 1002, BalanceRule::Unbounded),
        open(MERCHANT, 2241, BalanceRule::NO_OVERDRAFT),
    ];
    for wallet in WALLETS {
        commands.push(open(wallet, 2241, BalanceRule::NO_OVERDRAFT));
    }
    let funding: Vec<NewTransfer> = WALLETS
        .iter()
        .enumerate()
        .map(|(index, wallet)| post(100 + index as u128, RESERVE, *wallet, OPENING_BALANCE_MINOR))
        .collect();
    commands.push(Command::Transfers(funding));
    for outcome in handle.execute_blocking(commands).expect("setup") {
        let ok = match outcome {
            Outcome::Asset(result) => result.is_ok(),
            Outcome::Chart(result) => result.is_ok(),
            Outcome::Account(result) => result.is_ok(),
            Outcome::Transfers(results) => results.iter().all(Result::is_ok),
            Outcome::Status(_) | Outcome::Fold(_) => false,
        };
        assert!(ok, "setup failed");
    }
}

/// One worker: a mix of payments, refunds, holds and their posts and voids, with overdraft
/// attempts, and every fifth or so request submitted on two nodes at once.
fn worker(index: usize, nodes: &[LedgerHandle]) -> WorkerLog {
    let mut rng = Rng::new(index as u64 + 1);
    let mut log = WorkerLog::default();
    // Ids are unique per worker: a collision between workers would be a test bug.
    let mut next_id = (index as u128 + 1) * 1_000_000;
    let mut fresh = || {
        next_id += 1;
        next_id
    };
    // Holds this worker created, to post or void later (possibly already expired).
    let mut my_holds: Vec<u128> = Vec::new();
    let submit = |log: &mut WorkerLog, node: &LedgerHandle, request: NewTransfer| match node
        .transfer_blocking(request.clone())
    {
        Ok(result) => log.acks.push(Ack { request, result }),
        Err(error) => log.pipeline_errors.push(format!("{:?}: {error}", request.id)),
    };
    for _ in 0..OPS_PER_WORKER {
        let node = &nodes[rng.below(nodes.len() as u64) as usize];
        let payer = rng.pick(&WALLETS);
        // Amounts up to 300 against balances of 1000 shared by eight workers: many
        // attempts overdraw.
        let amount_minor = 1 + rng.below(300);
        let roll = rng.below(100);
        let request = match roll {
            0..=29 => {
                let payee = rng.pick(&[WALLETS[0], WALLETS[1], WALLETS[2], WALLETS[3], MERCHANT]);
                if payee == payer {
                    continue;
                }
                post(fresh(), payer, payee, amount_minor)
            }
            // Refunds up to three times a payment: with the merchant spread over rows, the
            // larger ones need the rows swept together.
            30..=39 => post(fresh(), MERCHANT, payer, amount_minor * (1 + rng.below(3))),
            40..=54 => {
                let id = fresh();
                my_holds.push(id);
                // Some holds time out during the run; the nodes' expiry scans race for them.
                let timeout_secs = if rng.below(2) == 0 { None } else { Some(1) };
                hold(id, payer, MERCHANT, amount_minor, timeout_secs)
            }
            55..=79 if !my_holds.is_empty() => {
                let pending = my_holds[rng.below(my_holds.len() as u64) as usize];
                match rng.below(3) {
                    0 => void(fresh(), pending),
                    1 => post_pending(fresh(), pending, None),
                    _ => post_pending(fresh(), pending, Some(1 + rng.below(150))),
                }
            }
            55..=79 => continue,
            _ => {
                // The same request on two nodes at once: a client retrying through a load
                // balancer. Half plain payments, half posts or voids of a hold.
                let request = match (my_holds.is_empty(), rng.below(2)) {
                    (false, 0) => {
                        let pending = my_holds[rng.below(my_holds.len() as u64) as usize];
                        if rng.below(2) == 0 {
                            void(fresh(), pending)
                        } else {
                            post_pending(fresh(), pending, None)
                        }
                    }
                    _ => post(fresh(), payer, MERCHANT, amount_minor),
                };
                let first_node = rng.below(nodes.len() as u64) as usize;
                let second_node =
                    (first_node + 1 + rng.below(nodes.len() as u64 - 1) as usize) % nodes.len();
                let (first, second) = std::thread::scope(|scope| {
                    let submit_on = |node: usize| {
                        let request = request.clone();
                        let handle = &nodes[node];
                        scope.spawn(move || (request.clone(), handle.transfer_blocking(request)))
                    };
                    let (first, second) = (submit_on(first_node), submit_on(second_node));
                    (first.join().expect("first"), second.join().expect("second"))
                });
                match (first, second) {
                    ((first_request, Ok(first)), (second_request, Ok(second))) => {
                        log.duplicates.push(DuplicatePair {
                            first: Ack { request: first_request, result: first },
                            second: Ack { request: second_request, result: second },
                        })
                    }
                    ((request, first), (_, second)) => log.pipeline_errors.push(format!(
                        "{:?}: {:?} / {:?}",
                        request.id,
                        first.err(),
                        second.err()
                    )),
                }
                continue;
            }
        };
        submit(&mut log, node, request);
    }
    log
}

#[test]
fn many_nodes_on_one_database_keep_the_books_exact() {
    many_nodes_keep_the_books_exact("concurrency", AccountLayout::Plain);
}

/// The same with the hot merchant spread over sub-accounts (子账户): credits land on rows
/// the nodes pick independently, debits lock every row and sweep between them.
#[test]
fn many_nodes_keep_the_books_exact_with_a_sub_accounted_merchant() {
    many_nodes_keep_the_books_exact("concurrency_sub", AccountLayout::SubAccounts { count: 4 });
}

/// The same with a buffered merchant (缓冲记账): every node folds the buffers on its own
/// timer, racing the others and the credits that land meanwhile.
#[test]
fn many_nodes_keep_the_books_exact_with_a_buffered_merchant() {
    many_nodes_keep_the_books_exact("concurrency_buf", AccountLayout::Buffered { count: 2 });
}

fn many_nodes_keep_the_books_exact(prefix: &str, merchant_layout: AccountLayout) {
    let Some(target) = pg_target(prefix) else { return };
    let config = PipelineConfig {
        // Short, so that the nodes' expiry scans and folds run during the run and race
        // each other.
        expiry_poll_interval_ms: 100,
        fold_interval_ms: 20,
        ..PipelineConfig::default()
    };
    let clock = Arc::new(SystemClock);
    let nodes: Vec<Ledger> = (0..NODES)
        .map(|_| {
            let store = PgStore::connect(target.clone()).expect("connect postgres");
            Ledger::start(store, clock.clone(), config.clone())
        })
        .collect();
    let handles: Vec<LedgerHandle> = nodes.iter().map(Ledger::handle).collect();
    setup_with(&handles[0], merchant_layout);

    let started = Instant::now();
    let (done, finished) = mpsc::channel();
    for index in 0..NODES * WORKERS_PER_NODE {
        let handles = handles.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let log = worker(index, &handles);
            let _ = done.send(log);
        });
    }
    drop(done);
    let deadline = started + Duration::from_secs(WATCHDOG_SECS);
    let mut logs = Vec::new();
    while logs.len() < NODES * WORKERS_PER_NODE {
        let left = deadline.saturating_duration_since(Instant::now());
        match finished.recv_timeout(left) {
            Ok(log) => logs.push(log),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Dropping a ledger joins its writer, which would hang on a stuck
                // transaction: leak them so the failure is reported.
                std::mem::forget(nodes);
                panic!("workers still running after {WATCHDOG_SECS}s: deadlock suspected");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a worker panicked"),
        }
    }
    let elapsed = started.elapsed();
    // Idle nodes keep scanning for due holds: give every one-second hold time to come due
    // and be expired, by whichever node's scan gets to it first.
    std::thread::sleep(Duration::from_millis(1_500));
    let conflicts: u64 = handles
        .iter()
        .map(|handle| handle.metrics().batch_conflicts.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    drop(handles);
    for node in nodes {
        node.shutdown();
    }

    let reader = PgReader::connect(target.clone()).expect("reader");
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&reader, &logs, merchant_layout);
    }));
    let n_acks: usize = logs.iter().map(|log| log.acks.len() + 2 * log.duplicates.len()).sum();
    eprintln!(
        "concurrency: {n_acks} answers from {NODES} nodes in {elapsed:?}, {conflicts} batch conflicts retried"
    );
    drop(reader);
    drop_schema(&target);
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
}

fn check(reader: &PgReader, logs: &[WorkerLog], merchant_layout: AccountLayout) {
    let errors: Vec<&String> = logs.iter().flat_map(|log| &log.pipeline_errors).collect();
    assert!(errors.is_empty(), "pipeline failures: {errors:?}");

    // Every id acknowledged as created, with what the ledger returned.
    let mut created: HashMap<TransferId, Transfer> = HashMap::new();
    // Every id acknowledged at all, with one of its answers (a replay must equal the first).
    let mut accepted: HashMap<TransferId, Transfer> = HashMap::new();
    let mut rejected_everywhere: HashSet<TransferId> = HashSet::new();
    let mut note = |ack: &Ack| match &ack.result {
        Ok(applied) => {
            if applied.created {
                let earlier = created.insert(applied.value.id, applied.value.clone());
                assert!(earlier.is_none(), "{:?} acknowledged as created twice", applied.value.id);
            }
            accepted.insert(applied.value.id, applied.value.clone());
        }
        Err(_) => {
            rejected_everywhere.insert(ack.request.id);
        }
    };
    for log in logs {
        log.acks.iter().for_each(&mut note);
        for pair in &log.duplicates {
            note(&pair.first);
            note(&pair.second);
        }
    }
    rejected_everywhere.retain(|id| !accepted.contains_key(id));

    // A request sent to two nodes at once had exactly one effect, and both answers agree.
    let mut n_inconsistent = 0;
    for pair in logs.iter().flat_map(|log| &log.duplicates) {
        let (first, second) = (&pair.first.result, &pair.second.result);
        let n_created = [first, second]
            .iter()
            .filter(|result| result.as_ref().is_ok_and(|applied| applied.created))
            .count();
        assert!(n_created <= 1, "{:?} created on both nodes", pair.first.request.id);
        match (first, second) {
            (Ok(a), Ok(b)) => assert_eq!(a.value, b.value, "two answers for one request"),
            // Rejections are not stored; both were evaluated, and neither took effect
            // (checked with the other rejected ids below).
            (Err(_), Err(_)) => {}
            (Ok(_), Err(rejection)) | (Err(rejection), Ok(_)) => {
                // Legitimate only when the rejecting node judged the request before the
                // other committed it, against different books (a rejection is not stored,
                // so a later evaluation may succeed). After the commit it must answer like
                // a retry; `concurrent_duplicates_answer_like_a_retry` pins that order down.
                eprintln!(
                    "{:?} created on one node, rejected with {:?} on the other",
                    pair.first.request.id, rejection
                );
                n_inconsistent += 1;
            }
        }
    }
    if n_inconsistent > 0 {
        eprintln!("{n_inconsistent} concurrent duplicates judged on different books");
    }

    // Acknowledged means stored, exactly as returned; rejected everywhere means absent.
    for (id, value) in &accepted {
        let stored = reader.transfer(*id).expect("read").expect("acknowledged transfer stored");
        assert_eq!(&stored, value, "stored transfer differs from the acknowledgement");
    }
    for id in &rejected_everywhere {
        assert!(reader.transfer(*id).expect("read").is_none(), "{id:?} rejected but stored");
    }

    // Replay the journal independently: balances from transfer records alone.
    let head = reader.head().expect("head");
    let (records, entries) = reader.records(Seq(1), head.last_seq).expect("records");
    let mut replayed: HashMap<AccountId, Balances> = HashMap::new();
    let mut held: HashMap<TransferId, (AccountId, AccountId, u64)> = HashMap::new();
    let mut n_transfers: HashMap<TransferId, usize> = HashMap::new();
    for record in &records {
        let ledger::Record::Transfer(transfer) = record else { continue };
        *n_transfers.entry(transfer.id).or_default() += 1;
        let amount_minor = transfer.amount.minor();
        let (pending_delta, posted_minor): (i128, u64) = match transfer.kind {
            TransferKind::Posted => (0, amount_minor),
            TransferKind::Pending => {
                held.insert(
                    transfer.id,
                    (transfer.debit_account_id, transfer.credit_account_id, amount_minor),
                );
                (i128::from(amount_minor), 0)
            }
            TransferKind::PostPending | TransferKind::VoidPending | TransferKind::ExpirePending => {
                let pending_id = transfer.pending_id.expect("names its hold");
                let (_, _, held_minor) =
                    held.remove(&pending_id).expect("a hold is released at most once");
                let posted =
                    if transfer.kind == TransferKind::PostPending { amount_minor } else { 0 };
                (-i128::from(held_minor), posted)
            }
        };
        for (account_id, side) in
            [(transfer.debit_account_id, Side::Debit), (transfer.credit_account_id, Side::Credit)]
        {
            let balances = replayed.entry(account_id).or_default();
            let (pending, posted) = match side {
                Side::Debit => (&mut balances.debits_pending, &mut balances.debits_posted),
                Side::Credit => (&mut balances.credits_pending, &mut balances.credits_posted),
            };
            let pending_minor = i128::from(pending.minor()) + pending_delta;
            *pending = money::Amount::new(u64::try_from(pending_minor).expect("pending >= 0"))
                .expect("amount");
            *posted = money::Amount::new(posted.minor() + posted_minor).expect("amount");
        }
    }
    assert!(n_transfers.values().all(|n| *n == 1), "a transfer id is in the journal twice");
    for id in created.keys() {
        assert_eq!(n_transfers.get(id), Some(&1), "{id:?} acknowledged but not in the journal");
    }
    // Two entries per transfer, one per side.
    let mut n_entries: HashMap<TransferId, usize> = HashMap::new();
    for entry in &entries {
        *n_entries.entry(entry.transfer_id).or_default() += 1;
    }
    assert_eq!(n_entries.len(), n_transfers.len());
    assert!(n_entries.values().all(|n| *n == 2), "a transfer without exactly two entries");

    let mut per_asset: HashMap<AssetCode, [u128; 4]> = HashMap::new();
    let merchant_rows = std::iter::once(0)
        .chain(merchant_layout.derived_rows())
        .map(|row| account(MERCHANT).row(row));
    let ids: Vec<AccountId> =
        [RESERVE].into_iter().chain(WALLETS).map(account).chain(merchant_rows).collect();
    for id in ids {
        let stored = reader.account(id).expect("read").expect("account");
        let b = stored.balances;
        assert_eq!(
            b,
            replayed.get(&id).copied().unwrap_or_default(),
            "account {id} differs from the journal"
        );
        if !b.is_zero() || replayed.contains_key(&id) {
            assert_eq!(Some(b), last_entry_balances(reader, id), "account {id} running balance");
        }
        if id != account(RESERVE) {
            // No wallet (nor the merchant) ever below zero, holds included.
            assert!(
                b.debits_posted.minor() + b.debits_pending.minor() <= b.credits_posted.minor(),
                "account {id} overdrawn: {b:?}"
            );
        }
        let sums = per_asset.entry(stored.asset).or_default();
        sums[0] += u128::from(b.debits_posted.minor());
        sums[1] += u128::from(b.credits_posted.minor());
        sums[2] += u128::from(b.debits_pending.minor());
        sums[3] += u128::from(b.credits_pending.minor());
    }
    for (asset, [debits, credits, debits_pending, credits_pending]) in per_asset {
        assert_eq!(debits, credits, "posted {asset} not conserved");
        assert_eq!(debits_pending, credits_pending, "pending {asset} not conserved");
    }
    // Money only enters from the reserve, and only at setup.
    let reserve = reader.account(account(RESERVE)).expect("read").expect("reserve").balances;
    assert_eq!(reserve.debits_posted.minor(), OPENING_BALANCE_MINOR * WALLETS.len() as u64);

    // Every hold with a timeout has come due by now, and an idle node has released it.
    let pending = reader.pending_holds(Page { after: None, limit: PAGE_LIMIT_MAX }).expect("holds");
    let stale: Vec<_> = pending.iter().filter(|hold| hold.expires_at.is_some()).collect();
    assert!(stale.is_empty(), "holds past their timeout still pending: {stale:?}");
    let n_expired = records
        .iter()
        .filter(|record| {
            matches!(record, ledger::Record::Transfer(t) if t.kind == TransferKind::ExpirePending)
        })
        .count();
    let n_internal = records
        .iter()
        .filter(|record| {
            matches!(record, ledger::Record::Transfer(t)
                if t.business_code == ledger::apply::INTERNAL_BUSINESS_CODE)
        })
        .count();
    eprintln!(
        "concurrency: {} transfers in the journal, {n_expired} holds expired, {n_internal} \
         sweeps or folds between the merchant's rows",
        n_transfers.len()
    );
    if !merchant_layout.is_plain() {
        assert!(n_internal > 0, "the merchant's rows never moved money between them");
    }

    let report = verify(reader, &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "verify: {:?}", report.divergence);
}

/// The balances after an account's last entry.
fn last_entry_balances(reader: &dyn LedgerReader, account_id: AccountId) -> Option<Balances> {
    let mut after = None;
    let mut last = None;
    loop {
        let page =
            reader.entries(account_id, Page { after, limit: PAGE_LIMIT_MAX }).expect("entries");
        let Some(entry) = page.last() else { return last };
        after = Some(entry.seq);
        last = Some(entry.balances_after);
    }
}

/// Two nodes receive the same request at the same moment (a client retrying through a load
/// balancer). One creates it; the other must answer like a retry (`Ok`, `created: false`,
/// the same transfer), not evaluate it afresh against the books the winner just changed and
/// reject it (`ExceedsCredits` for a payment of the whole balance). A regression test: the
/// pipeline once read existing transfers before taking its locks.
///
/// To make the race certain, a third connection holds the wallet's row lock while both
/// nodes look the id up and queue behind it.
#[test]
fn concurrent_duplicates_answer_like_a_retry() {
    let Some(target) = pg_target("concurrent_dup") else { return };
    let clock = Arc::new(SystemClock);
    let nodes: Vec<Ledger> = (0..2)
        .map(|_| {
            let store = PgStore::connect(target.clone()).expect("connect postgres");
            Ledger::start(store, clock.clone(), PipelineConfig::default())
        })
        .collect();
    let handles: Vec<LedgerHandle> = nodes.iter().map(Ledger::handle).collect();
    setup(&handles[0]);
    // The whole opening balance, so that whichever node comes second finds it spent.
    let payment = post(10_000, WALLETS[0], MERCHANT, OPENING_BALANCE_MINOR);

    let mut blocker = target.connect_client().expect("connect");
    let mut lock = blocker.transaction().expect("begin");
    lock.execute(
        "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
        &[&&account(WALLETS[0]).to_bytes()[..]],
    )
    .expect("lock the wallet");
    let answers: Vec<TransferResult> = std::thread::scope(|scope| {
        let spawned: Vec<_> = handles
            .iter()
            .map(|handle| {
                let payment = payment.clone();
                scope.spawn(move || handle.transfer_blocking(payment).expect("pipeline"))
            })
            .collect();
        // Both batches have looked the id up (nothing yet) and wait for the row lock.
        std::thread::sleep(Duration::from_millis(500));
        lock.commit().expect("release the wallet");
        spawned.into_iter().map(|thread| thread.join().expect("join")).collect()
    });
    drop(handles);
    for node in nodes {
        node.shutdown();
    }
    drop_schema(&target);
    let n_created =
        answers.iter().filter(|answer| answer.as_ref().is_ok_and(|a| a.created)).count();
    assert_eq!(n_created, 1, "{answers:?}");
    assert!(
        answers.iter().all(Result::is_ok),
        "a duplicate was answered with a rejection: {answers:?}"
    );
}
