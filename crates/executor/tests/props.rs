//! Random interleavings of every product against the real executor: the ledger on SQLite,
//! the order store on SQLite, the gateway (with a touchy breaker) over scripted in-process
//! channels that keep their own books (so inquiries answer truthfully), status inquiry and
//! inspection (巡检), and a manual clock. Each call to a channel draws its fault from the
//! input: success, decline, 503 (this call did nothing, which says nothing of earlier calls),
//! lost answer (done, answer unknown), timeout before arrival (not done, answer unknown),
//! processing (done, final answer later). Retries of earlier creates, inquiry sweeps,
//! inspections, both at once, and clock steps are mixed in. Then everything is driven to
//! final, and:
//! 1. the books balance per asset and no hold is left;
//! 2. no customer wallet (and no merchant payable) is negative;
//! 3. a payment's succeeded refunds never pass it, and a failed payment has no refund;
//! 4. every wallet holds exactly what its succeeded orders say;
//! 5. our records match the channels' books, both ways: a succeeded top-up or withdrawal was
//!    done by its channel and no other, and every operation a channel did belongs to one;
//! 6. every order is final.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use channels::breaker::BreakerConfig;
use channels::channel::{DetailLine, LineStatus, StatementFile};
use channels::gateway::Millis;
use channels::inquiry::{Inquirer, InquiryPolicy, MemoryInquiryStore};
use channels::model::Inquiry;
use channels::router::ChannelProfile;
use channels::{
    BoxFuture, Channel, ChannelError, ChannelId, ChannelRequest, FailureReason, Gateway,
    GatewayConfig, Operation, Outcome, RequestId, Settled,
};
use executor::{
    party_key, ExecError, Executor, ExecutorConfig, InquiryOwnerAdapter, NewParty, OrderQuery,
    OrderRecord, OrderStore, PartyKind, PaymentRequest, Placed, RefundRequest, TopUpRequest,
    WalletTransferRequest, WithdrawalRequest,
};
use ledger::apply::{Command, Outcome as LedgerOutcome};
use ledger::port::LedgerReader;
use ledger::{Ledger, ManualClock, Timestamp};
use money::{Amount, Asset, AssetCode};
use payments::chart::{merchant_account_id, wallet_account_id};
use payments::ids::{request_id, Step};
use payments::topup::TopUpState;
use payments::withdrawal::WithdrawalState;
use payments::{Order, OrderId};
use proptest::prelude::*;

const TENANT: &str = "t1";
const CHANNELS: [&str; 2] = ["bank_a", "bank_b"];
/// Channel fees in minor units: one free channel, one that charges.
const CHANNEL_FEES: [u64; 2] = [0, 1];
const START_MS: u64 = 1_700_000_000_000;
/// Clock steps of the final drive, and how many at most.
const DRIVE_STEP_MS: u64 = 1_000;
const DRIVE_ROUNDS_MAX: usize = 300;

fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap()
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap()
}

fn customer(index: usize) -> String {
    format!("cust{index}")
}

fn merchant(index: usize) -> String {
    format!("shop{index}")
}

// ---- the clock -------------------------------------------------------------------------------

struct TestClock(AtomicU64);

impl TestClock {
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Millis for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---- scripted channels -----------------------------------------------------------------------

/// What one call to a channel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Done (or, for a request it has, the truth).
    Succeed,
    /// The issuer said no (or, for a request it has, the truth).
    Decline,
    /// 503: this call did nothing.
    Unavailable,
    /// Done, but the answer was lost: unknown.
    LostAnswer,
    /// The request never arrived: unknown, nothing done.
    TimeoutNotExecuted,
    /// Done; the answer is "processing", and the first inquiry still says so.
    Processing,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        4 => Just(Fault::Succeed),
        1 => Just(Fault::Decline),
        1 => Just(Fault::Unavailable),
        1 => Just(Fault::LostAnswer),
        1 => Just(Fault::TimeoutNotExecuted),
        1 => Just(Fault::Processing),
    ]
}

/// The faults of each request, by the account it names (each operation of the test has its
/// own card or bank account). Calls take them in order, across channels; the last repeats.
#[derive(Default)]
struct Scripts(Mutex<HashMap<String, (Vec<Fault>, usize)>>);

impl Scripts {
    fn set(&self, account: &str, faults: Vec<Fault>) {
        lock(&self.0).insert(account.to_owned(), (faults, 0));
    }

    fn next(&self, account: &str) -> Fault {
        match lock(&self.0).get_mut(account) {
            None => Fault::Succeed,
            Some((faults, cursor)) => {
                let fault = faults.get(*cursor).or(faults.last()).copied();
                *cursor += 1;
                fault.unwrap_or(Fault::Succeed)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    /// The money moved; inquiries answer "processing" this many more times first.
    Executed {
        processing_inquiries: u32,
    },
    Declined,
}

#[derive(Clone, Debug)]
struct BookEntry {
    operation: Operation,
    account: String,
    amount: Amount,
    done: Done,
}

/// A channel with its own books: per request id, what it really did.
struct ScriptedChannel {
    id: ChannelId,
    fee: Amount,
    scripts: Arc<Scripts>,
    books: Mutex<BTreeMap<RequestId, BookEntry>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ScriptedChannel {
    fn truth(&self, request_id: &RequestId, done: Done) -> Outcome {
        match done {
            Done::Executed { .. } => Outcome::Succeeded(Settled {
                channel_ref: format!("{}-{request_id}", self.id),
                fee: self.fee,
            }),
            Done::Declined => Outcome::failed(FailureReason::Declined, "declined by the issuer"),
        }
    }

    fn answer(&self, request: &ChannelRequest) -> Outcome {
        let fault = self.scripts.next(&request.account);
        let mut books = lock(&self.books);
        let existing = books.get(&request.request_id).map(|entry| {
            assert_eq!(
                (entry.operation, &entry.account, entry.amount),
                (request.operation, &request.account, request.amount),
                "{}: request {} sent again with other fields",
                self.id,
                request.request_id
            );
            entry.done
        });
        let mut record = |done: Done| -> Done {
            books
                .entry(request.request_id.clone())
                .or_insert(BookEntry {
                    operation: request.operation,
                    account: request.account.clone(),
                    amount: request.amount,
                    done,
                })
                .done
        };
        match fault {
            // A 503 says nothing about earlier calls: the bank may have done the request
            // before and be down now.
            Fault::Unavailable => Outcome::failed(FailureReason::ChannelUnavailable, "503"),
            Fault::TimeoutNotExecuted => {
                Outcome::Unknown { detail: "timeout before the request arrived".into() }
            }
            Fault::LostAnswer => {
                record(Done::Executed { processing_inquiries: 0 });
                Outcome::Unknown { detail: "the answer was lost".into() }
            }
            Fault::Processing => match existing {
                Some(Done::Declined) => self.truth(&request.request_id, Done::Declined),
                _ => {
                    record(Done::Executed { processing_inquiries: 1 });
                    Outcome::Processing
                }
            },
            Fault::Succeed => {
                let done = record(Done::Executed { processing_inquiries: 0 });
                self.truth(&request.request_id, done)
            }
            Fault::Decline => {
                let done = record(Done::Declined);
                self.truth(&request.request_id, done)
            }
        }
    }

    fn inquiry(&self, operation: Operation, request_id: &RequestId) -> Inquiry {
        let mut books = lock(&self.books);
        let Some(entry) = books.get_mut(request_id) else {
            return Inquiry::NotFound;
        };
        assert_eq!(entry.operation, operation, "{}: inquiry of {request_id}", self.id);
        match &mut entry.done {
            Done::Executed { processing_inquiries } if *processing_inquiries > 0 => {
                *processing_inquiries -= 1;
                Inquiry::Found(Outcome::Processing)
            }
            done => {
                let done = *done;
                Inquiry::Found(self.truth(request_id, done))
            }
        }
    }

    /// Every operation the channel did (money moved), as a statement file in the platform's
    /// format, rendered and parsed back so that its summaries are what a channel would print.
    fn statement_file_now(&self) -> StatementFile {
        let details: Vec<DetailLine> = lock(&self.books)
            .iter()
            .filter(|(_, entry)| matches!(entry.done, Done::Executed { .. }))
            .map(|(request_id, entry)| DetailLine {
                line_no: 0,
                request_id: Some(request_id.to_string()),
                channel_ref: Some(format!("{}-{request_id}", self.id)),
                tx_type: entry.operation.tx_type(),
                amount: entry.amount,
                fee: self.fee,
                currency: cny(),
                booked_at_ms: 1_700_000_000_000,
                status: LineStatus::Succeeded,
            })
            .collect();
        StatementFile::with_digest(recon::statement::render(&details).into_bytes())
    }
}

impl Channel for ScriptedChannel {
    fn id(&self) -> &ChannelId {
        &self.id
    }

    fn execute<'a>(&'a self, request: &'a ChannelRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { self.answer(request) })
    }

    fn inquire<'a>(
        &'a self,
        operation: Operation,
        request_id: &'a RequestId,
    ) -> BoxFuture<'a, Inquiry> {
        Box::pin(async move { self.inquiry(operation, request_id) })
    }

    fn statement_file<'a>(
        &'a self,
        _day: &'a str,
    ) -> BoxFuture<'a, Result<StatementFile, ChannelError>> {
        Box::pin(async move { Ok(self.statement_file_now()) })
    }
}

fn profile(id: &ChannelId) -> ChannelProfile {
    ChannelProfile {
        id: id.clone(),
        operations: vec![Operation::Debit, Operation::Payout],
        assets: vec![cny()],
        amount_min: amount(1),
        amount_max: Amount::MAX,
        account_prefixes: Vec::new(),
        fee_fixed: Amount::ZERO,
        fee_bps: 0,
        timeout_ms: 1_000,
        limits: Default::default(),
        // A touchy breaker, so that calls refused on our side (not attempted) happen too.
        breaker: BreakerConfig { calls_min: 4, open_ms: 3_000, ..BreakerConfig::default() },
    }
}

// ---- the input -------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    TopUp {
        customer: usize,
        amount: u64,
        faults: Vec<Fault>,
    },
    Withdraw {
        customer: usize,
        amount: u64,
        faults: Vec<Fault>,
    },
    Pay {
        customer: usize,
        merchant: usize,
        amount: u64,
    },
    /// A refund of the `payment`-th payment so far (modulo), maybe more than it.
    Refund {
        payment: usize,
        amount: u64,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    /// The create of the `order`-th order so far (modulo), again.
    Retry {
        order: usize,
    },
    Advance {
        ms: u64,
    },
    Sweep,
    Inspect,
    /// A sweep and an inspection at once: two writers on the same orders.
    Race,
}

#[derive(Clone, Debug)]
struct Case {
    customers: usize,
    merchants: usize,
    channels: usize,
    merchant_fee_bps: [u32; 2],
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    let faults = || prop::collection::vec(fault(), 1..=3);
    prop_oneof![
        4 => (0..3usize, 1..10_000u64, faults())
            .prop_map(|(customer, amount, faults)| Op::TopUp { customer, amount, faults }),
        3 => (0..3usize, 1..3_000u64, faults())
            .prop_map(|(customer, amount, faults)| Op::Withdraw { customer, amount, faults }),
        3 => (0..3usize, 0..2usize, 1..3_000u64)
            .prop_map(|(customer, merchant, amount)| Op::Pay { customer, merchant, amount }),
        3 => (0..8usize, 1..1_500u64).prop_map(|(payment, amount)| Op::Refund { payment, amount }),
        2 => (0..3usize, 0..3usize, 1..2_000u64)
            .prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => (0..32usize).prop_map(|order| Op::Retry { order }),
        1 => (1..8_000u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Sweep),
        1 => Just(Op::Inspect),
        1 => Just(Op::Race),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let fee = || prop_oneof![Just(0u32), Just(60), Just(250)];
    (2..=3usize, 1..=2usize, 1..=2usize, [fee(), fee()], prop::collection::vec(op(), 1..40))
        .prop_map(|(customers, merchants, channels, merchant_fee_bps, ops)| Case {
            customers,
            merchants,
            channels,
            merchant_fee_bps,
            ops,
        })
}

// ---- the world -------------------------------------------------------------------------------

/// A create request as the client sent it, to send again.
#[derive(Clone, Debug)]
enum Request {
    TopUp { reference: String, customer: String, card: String, amount: u64 },
    Withdraw { reference: String, customer: String, bank_account: String, amount: u64 },
    Pay { reference: String, customer: String, merchant: String, amount: u64 },
    Refund { reference: String, payment: OrderId, amount: u64 },
    Transfer { reference: String, from: String, to: String, amount: u64 },
}

struct World {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    reader: store::SqliteReader,
    executor: Arc<Executor>,
    inquirer: Arc<Inquirer>,
    clock: Arc<TestClock>,
    scripts: Arc<Scripts>,
    channels: Vec<Arc<ScriptedChannel>>,
}

impl World {
    fn store(&self) -> &Arc<dyn OrderStore> {
        self.executor.store()
    }

    fn orders(&self) -> Vec<OrderRecord> {
        self.store()
            .list(&OrderQuery { tenant: TENANT.into(), limit: 100_000, ..OrderQuery::default() })
            .expect("list orders")
    }

    fn order(&self, id: &OrderId) -> OrderRecord {
        self.store().get(id).expect("get order").expect("the order exists")
    }

    async fn submit(&self, request: &Request) -> Result<Placed, ExecError> {
        let executor = &self.executor;
        match request.clone() {
            Request::TopUp { reference, customer, card, amount: minor } => {
                executor
                    .create_topup(
                        TENANT,
                        TopUpRequest {
                            reference,
                            customer,
                            card,
                            asset: cny(),
                            amount: amount(minor),
                        },
                    )
                    .await
            }
            Request::Withdraw { reference, customer, bank_account, amount: minor } => {
                executor
                    .create_withdrawal(
                        TENANT,
                        WithdrawalRequest {
                            reference,
                            customer,
                            bank_account,
                            asset: cny(),
                            amount: amount(minor),
                        },
                    )
                    .await
            }
            Request::Pay { reference, customer, merchant, amount: minor } => {
                executor
                    .create_payment(
                        TENANT,
                        PaymentRequest {
                            reference,
                            customer,
                            merchant,
                            asset: cny(),
                            amount: amount(minor),
                            points: None,
                            pay_from: None,
                            authorize_for_secs: None,
                        },
                    )
                    .await
            }
            Request::Refund { reference, payment, amount: minor } => {
                executor
                    .create_refund(
                        TENANT,
                        RefundRequest { reference, payment, amount: amount(minor) },
                    )
                    .await
            }
            Request::Transfer { reference, from, to, amount: minor } => {
                executor
                    .create_wallet_transfer(
                        TENANT,
                        WalletTransferRequest {
                            reference,
                            from,
                            to,
                            asset: cny(),
                            amount: amount(minor),
                        },
                    )
                    .await
            }
        }
    }
}

async fn world(case: &Case) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger_path = dir.path().join("ledger.db");
    let ledger_store = store::SqliteStore::open(&ledger_path).expect("open the ledger store");
    let ledger_clock = Arc::new(ManualClock::new(Timestamp(START_MS * 1_000)));
    let ledger = Ledger::start(ledger_store, ledger_clock, ledger::PipelineConfig::default());
    let reader = store::SqliteReader::open(&ledger_path).expect("open the ledger reader");
    let orders: Arc<dyn OrderStore> =
        Arc::new(store::SqliteOrderStore::open(dir.path().join("orders.db")).expect("orders.db"));

    let clock = Arc::new(TestClock(AtomicU64::new(START_MS)));
    let scripts = Arc::new(Scripts::default());
    let channels: Vec<Arc<ScriptedChannel>> = CHANNELS[..case.channels]
        .iter()
        .zip(CHANNEL_FEES)
        .map(|(id, fee)| {
            Arc::new(ScriptedChannel {
                id: ChannelId::new(*id).unwrap(),
                fee: amount(fee),
                scripts: scripts.clone(),
                books: Mutex::new(BTreeMap::new()),
            })
        })
        .collect();
    let profiles = channels.iter().map(|channel| profile(&channel.id)).collect();
    let dyn_channels = channels.iter().map(|c| c.clone() as Arc<dyn Channel>).collect();
    let gateway = Arc::new(
        Gateway::new(dyn_channels, profiles, GatewayConfig::default(), clock.clone())
            .expect("gateway"),
    );
    let executor = Arc::new(Executor::new(
        orders,
        ledger.handle(),
        Some(gateway.clone()),
        clock.clone(),
        ExecutorConfig { inspect_after_ms: 0, ..ExecutorConfig::default() },
    ));
    let policy = InquiryPolicy {
        first_delay_ms: 1_000,
        backoff_factor: 2,
        delay_max_ms: 4_000,
        attempts_max: 10_000,
        escalated_delay_ms: 4_000,
        not_found_final_after_ms: Some(6_000),
    };
    let inquirer = Arc::new(Inquirer::new(
        gateway,
        Arc::new(MemoryInquiryStore::default()),
        Arc::new(InquiryOwnerAdapter(executor.clone())),
        policy,
        clock.clone(),
    ));
    executor.set_inquirer(inquirer.clone());

    let defined = ledger
        .handle()
        .execute(vec![Command::DefineAsset(Asset::new(cny(), 2).unwrap())])
        .await
        .expect("define CNY");
    assert!(matches!(defined.as_slice(), [LedgerOutcome::Asset(Ok(_))]), "{defined:?}");
    executor.bootstrap().await.expect("bootstrap");
    let parties = (0..case.customers).map(|index| (PartyKind::Customer, customer(index), 0)).chain(
        (0..case.merchants)
            .map(|index| (PartyKind::Merchant, merchant(index), case.merchant_fee_bps[index])),
    );
    for (kind, id, fee_bps) in parties {
        let party = NewParty {
            kind,
            name: id.clone(),
            id,
            assets: vec![cny()],
            fee_bps,
            settle_after_days: 0,
            unsettled_layout: Default::default(),
        };
        executor.open_party(TENANT, party).await.expect("open a party");
    }
    World { _dir: dir, ledger, reader, executor, inquirer, clock, scripts, channels }
}

/// Whether the order succeeded (by its status name, which every product shares).
fn succeeded(order: &Order) -> bool {
    order.status() == "succeeded"
}

// ---- running a case --------------------------------------------------------------------------

/// A payment's refunds (from the whole order list, not the store's own index of them).
fn refunds_of<'a>(orders: &'a [OrderRecord], payment: &OrderId) -> Vec<&'a OrderRecord> {
    orders
        .iter()
        .filter(
            |record| matches!(&record.order, Order::Refund(refund) if &refund.payment == payment),
        )
        .collect()
}

/// The sum of a payment's live (not failed) refunds now: what a new one is checked against.
fn live_refunds(world: &World, payment: &OrderId) -> u64 {
    refunds_of(&world.orders(), payment)
        .iter()
        .filter(|record| record.order.status() != "failed")
        .map(|record| record.order.amount().minor())
        .sum()
}

async fn apply_ops(world: &World, case: &Case) {
    let mut created: Vec<(Request, OrderId)> = Vec::new();
    let mut payments: Vec<OrderId> = Vec::new();
    for (index, op) in case.ops.iter().enumerate() {
        let reference = format!("r{index}");
        let request = match op {
            Op::TopUp { customer: c, amount, faults } => {
                let card = format!("card-{index}");
                world.scripts.set(&card, faults.clone());
                Request::TopUp {
                    reference,
                    customer: customer(c % case.customers),
                    card,
                    amount: *amount,
                }
            }
            Op::Withdraw { customer: c, amount, faults } => {
                let bank_account = format!("acct-{index}");
                world.scripts.set(&bank_account, faults.clone());
                Request::Withdraw {
                    reference,
                    customer: customer(c % case.customers),
                    bank_account,
                    amount: *amount,
                }
            }
            Op::Pay { customer: c, merchant: m, amount } => Request::Pay {
                reference,
                customer: customer(c % case.customers),
                merchant: merchant(m % case.merchants),
                amount: *amount,
            },
            Op::Refund { payment, amount } => {
                if payments.is_empty() {
                    continue;
                }
                let payment = payments[payment % payments.len()].clone();
                Request::Refund { reference, payment, amount: *amount }
            }
            Op::Transfer { from, to, amount } => {
                let from = from % case.customers;
                let to = (from + 1 + to % (case.customers - 1)) % case.customers;
                Request::Transfer {
                    reference,
                    from: customer(from),
                    to: customer(to),
                    amount: *amount,
                }
            }
            Op::Retry { order } => {
                if created.is_empty() {
                    continue;
                }
                let (request, id) = created[order % created.len()].clone();
                let before = world.order(&id);
                let placed = world
                    .submit(&request)
                    .await
                    .unwrap_or_else(|error| panic!("retry of {id} ({request:?}): {error}"));
                assert!(!placed.created, "a retry created {id} again");
                assert_eq!(placed.record.id(), &id, "a retry named another order");
                assert_eq!(world.order(&id), before, "a retry of {id} changed it");
                continue;
            }
            Op::Advance { ms } => {
                world.clock.advance(*ms);
                continue;
            }
            Op::Sweep => {
                world.inquirer.sweep().await.expect("sweep");
                continue;
            }
            Op::Inspect => {
                let report = world.executor.inspect(10_000).await;
                assert_eq!(report.errors, 0, "inspection: {report:?}");
                continue;
            }
            Op::Race => {
                let (swept, report) =
                    tokio::join!(world.inquirer.sweep(), world.executor.inspect(10_000));
                swept.expect("sweep");
                assert_eq!(report.errors, 0, "inspection: {report:?}");
                continue;
            }
        };
        let result = world.submit(&request).await;
        if let Request::Refund { payment, amount, .. } = &request {
            let paid = world.order(payment);
            let succeeded = matches!(&paid.order, Order::Payment(_)) && succeeded(&paid.order);
            match &result {
                Ok(_) => assert!(succeeded, "a refund of a payment that did not succeed: {paid:?}"),
                Err(ExecError::NotRefundable(..)) => {
                    assert!(!succeeded, "a succeeded payment was not refundable: {paid:?}")
                }
                Err(ExecError::RefundExceedsPayment) => {
                    assert!(succeeded);
                    let live = live_refunds(world, payment);
                    assert!(
                        live + amount > paid.order.amount().minor(),
                        "refused a refund of {amount} with {live} of {} refunded",
                        paid.order.amount().minor()
                    );
                }
                Err(error) => panic!("refund {request:?}: {error}"),
            }
        }
        let placed = match result {
            Ok(placed) => placed,
            Err(_) if matches!(request, Request::Refund { .. }) => continue,
            Err(error) => panic!("{request:?}: {error}"),
        };
        assert!(placed.created, "a fresh reference found an order: {request:?}");
        let id = placed.record.id().clone();
        if matches!(request, Request::Pay { .. }) {
            payments.push(id.clone());
        }
        created.push((request, id));
    }
    let stored = world.orders().len();
    assert_eq!(stored, created.len(), "orders stored vs orders created");
}

/// Sweeps, inspects and advances the clock until every order is final and every inquiry is
/// resolved and delivered.
async fn drive_to_final(world: &World) {
    for _ in 0..DRIVE_ROUNDS_MAX {
        let unfinished = world.store().unfinished(u64::MAX, 10_000).expect("unfinished");
        let backlog = world.inquirer.store().backlog().expect("backlog");
        if unfinished.is_empty() && backlog.open == 0 && backlog.undelivered == 0 {
            return;
        }
        world.clock.advance(DRIVE_STEP_MS);
        world.inquirer.sweep().await.expect("sweep");
        let report = world.executor.inspect(10_000).await;
        assert_eq!(report.errors, 0, "inspection: {report:?}");
    }
    let stuck: Vec<String> = world
        .orders()
        .iter()
        .filter(|record| !record.order.is_final())
        .map(|record| format!("{} {:?}", record.id(), record.order))
        .collect();
    let backlog = world.inquirer.store().backlog().expect("backlog");
    panic!("not final after {DRIVE_ROUNDS_MAX} rounds: {stuck:#?}; inquiries: {backlog:?}");
}

async fn check(world: &World, case: &Case) {
    let orders = world.orders();

    // (6) Every order is final.
    for record in &orders {
        assert!(record.order.is_final(), "not final: {:?}", record.order);
    }
    assert!(world.store().unfinished(u64::MAX, 10).expect("unfinished").is_empty());

    // (1) The books balance per asset, and no hold is left.
    for asset in world.reader.asset_totals().expect("trial balance") {
        assert!(asset.balanced(), "{asset:?}");
        assert_eq!(asset.totals.debits_pending, 0, "{}: a hold is left", asset.asset);
    }

    // (2) No wallet (and no merchant payable) is negative.
    let mut wallets: BTreeMap<String, i128> = BTreeMap::new();
    for index in 0..case.customers {
        let key = party_key(TENANT, &customer(index));
        let wallet = world
            .reader
            .account(wallet_account_id(&key, cny()))
            .expect("read a wallet")
            .expect("the wallet exists");
        assert!(wallet.balances.available_credit() >= 0, "{key}: {:?}", wallet.balances);
        wallets.insert(key, wallet.balances.net_credit_posted());
    }
    for index in 0..case.merchants {
        let key = party_key(TENANT, &merchant(index));
        for settled in [false, true] {
            let payable = world
                .reader
                .account(merchant_account_id(&key, cny(), settled))
                .expect("read a payable")
                .expect("the payable exists");
            assert!(payable.balances.available_credit() >= 0, "{key}: {:?}", payable.balances);
        }
    }

    // (3) Refunds never pass their payment, and a failed payment has none.
    let by_id: HashMap<&OrderId, &OrderRecord> =
        orders.iter().map(|record| (record.id(), record)).collect();
    for record in &orders {
        let Order::Payment(payment) = &record.order else {
            continue;
        };
        let refunds = refunds_of(&orders, payment.order());
        let refunded: u64 =
            refunds.iter().filter(|r| succeeded(&r.order)).map(|r| r.order.amount().minor()).sum();
        assert!(refunded <= payment.amount().minor(), "{}: refunded {refunded}", payment.order());
        if !succeeded(&record.order) {
            assert!(refunds.is_empty(), "refunds of a failed payment: {refunds:?}");
        }
        for refund in &refunds {
            let Order::Refund(refund) = &refund.order else {
                panic!("a child of a payment is not a refund: {refund:?}")
            };
            assert_eq!(&refund.payment, payment.order());
            assert_eq!(
                (refund.customer.as_str(), refund.merchant.as_str()),
                (payment.customer(), payment.merchant())
            );
        }
    }

    // (4) Every wallet holds exactly what its succeeded orders say.
    let mut expected: BTreeMap<String, i128> = wallets.keys().map(|k| (k.clone(), 0)).collect();
    let mut credit = |key: &str, minor: u64, sign: i128| {
        *expected.get_mut(key).unwrap_or_else(|| panic!("no wallet {key}")) +=
            sign * i128::from(minor);
    };
    for record in &orders {
        let minor = record.order.amount().minor();
        match &record.order {
            Order::Topup(topup) => match &topup.state {
                TopUpState::Succeeded { .. } => credit(&topup.customer, minor, 1),
                TopUpState::Failed { .. } => {}
                other => panic!("{}: unexpected final state {other:?}", topup.order),
            },
            Order::Withdrawal(withdrawal) => match &withdrawal.state {
                WithdrawalState::Succeeded { .. } => credit(&withdrawal.customer, minor, -1),
                WithdrawalState::Failed { .. } | WithdrawalState::Disputed { .. } => {}
                other => panic!("{}: unexpected final state {other:?}", withdrawal.order),
            },
            Order::Payment(payment) if succeeded(&record.order) => {
                credit(payment.customer(), minor, -1)
            }
            Order::Refund(refund) if succeeded(&record.order) => {
                let paid = by_id.get(&refund.payment).expect("the refund's payment");
                assert!(
                    matches!(&paid.order, Order::Payment(_)) && succeeded(&paid.order),
                    "a refund succeeded for a payment that did not: {paid:?}"
                );
                credit(&refund.customer, minor, 1);
            }
            Order::WalletTransfer(transfer) if succeeded(&record.order) => {
                credit(&transfer.from, minor, -1);
                credit(&transfer.to, minor, 1);
            }
            // Failed bookings, and other products (merchant settlements), touch no wallet.
            _ => {}
        }
    }
    assert_eq!(wallets, expected, "wallet balances vs succeeded orders");
    let total: i128 = wallets.values().sum();
    assert_eq!(total, expected.values().sum::<i128>());

    // (5) Our records match the channels' books, both ways.
    let mut executed: BTreeMap<RequestId, Vec<(ChannelId, DetailLine, Option<String>)>> =
        BTreeMap::new();
    for channel in &world.channels {
        let statement = channel.statement("2023-11-14", &[cny()]).await.expect("statement");
        let books = lock(&channel.books);
        for line in statement.details {
            let request_id = line.request_id.as_deref().expect("our request id on every line");
            let request_id = RequestId::new(request_id).expect("a request id");
            // The statement carries no customer account; the channel's books do.
            let account = books.get(&request_id).map(|entry| entry.account.clone());
            executed.entry(request_id).or_default().push((channel.id.clone(), line, account));
        }
    }
    for record in &orders {
        let (request, operation, account, at) = match &record.order {
            Order::Topup(topup) => (
                request_id(&topup.order, Step::TopUpDebit),
                Operation::Debit,
                &topup.card,
                match &topup.state {
                    TopUpState::Succeeded { channel, .. } => Some(channel.clone()),
                    _ => None,
                },
            ),
            Order::Withdrawal(withdrawal) => (
                request_id(&withdrawal.order, Step::WithdrawalPayout),
                Operation::Payout,
                &withdrawal.bank_account,
                match &withdrawal.state {
                    WithdrawalState::Succeeded { channel, .. }
                    | WithdrawalState::Disputed { channel, .. } => Some(channel.clone()),
                    _ => None,
                },
            ),
            _ => continue,
        };
        let lines = executed.remove(&request).unwrap_or_default();
        let channels: Vec<&ChannelId> = lines.iter().map(|(channel, ..)| channel).collect();
        assert_eq!(
            channels,
            at.iter().collect::<Vec<_>>(),
            "{}: the channels that did {request} vs the order ({:?})",
            record.id(),
            record.order
        );
        for (_, line, their_account) in &lines {
            assert_eq!(
                (line.tx_type, their_account.as_ref(), line.amount),
                (operation.tx_type(), Some(account), record.order.amount()),
                "{}: the channel did something else",
                record.id()
            );
        }
    }
    assert!(executed.is_empty(), "channel operations of no order we know: {executed:#?}");
}

fn run(case: Case) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let world = runtime.block_on(world(&case));
    runtime.block_on(async {
        apply_ops(&world, &case).await;
        drive_to_final(&world).await;
        check(&world, &case).await;
    });
    let World { ledger, .. } = world;
    ledger.shutdown();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn orders_end_final_and_agree_with_the_books_and_the_channels(case in case()) {
        run(case);
    }
}

// ---- the failing cases the property found, kept as plain tests -------------------------------

/// A re-send of a payout whose first answer was "processing" gets a 503: the withdrawal
/// leaves `bank_a` (which did pay) for `bank_b`, which pays again.
#[test]
fn a_refused_resend_does_not_send_a_payout_to_a_second_bank() {
    run(Case {
        customers: 2,
        merchants: 1,
        channels: 2,
        merchant_fee_bps: [0, 0],
        ops: vec![
            Op::TopUp { customer: 0, amount: 5_000, faults: vec![Fault::Succeed] },
            Op::Withdraw {
                customer: 0,
                amount: 1_000,
                faults: vec![Fault::Processing, Fault::Unavailable, Fault::Succeed],
            },
        ],
    });
}

/// The same with our own breaker refusing the re-send ("not attempted"): the only channel
/// took the money, and the top-up is abandoned as failed.
#[test]
fn a_resend_refused_by_the_breaker_does_not_abandon_a_debit_the_bank_did() {
    run(Case {
        customers: 2,
        merchants: 1,
        channels: 1,
        merchant_fee_bps: [0, 0],
        ops: vec![
            Op::TopUp { customer: 0, amount: 1, faults: vec![Fault::LostAnswer] },
            Op::TopUp { customer: 0, amount: 1, faults: vec![Fault::Processing] },
            Op::Inspect,
        ],
    });
}

/// Inquiry finds no record of a payout past the late-arrival window and resolves it as never
/// received; before that is delivered, inspection sends the payout again and the bank pays.
/// The hold is then voided although the money left.
#[test]
fn never_received_is_not_delivered_over_a_resend_the_bank_did() {
    run(Case {
        customers: 2,
        merchants: 1,
        channels: 1,
        merchant_fee_bps: [0, 0],
        ops: vec![
            Op::TopUp { customer: 0, amount: 2_426, faults: vec![Fault::Succeed] },
            Op::Withdraw {
                customer: 0,
                amount: 1,
                faults: vec![Fault::TimeoutNotExecuted, Fault::LostAnswer],
            },
            Op::TopUp { customer: 0, amount: 1, faults: vec![Fault::LostAnswer] },
            Op::Advance { ms: 6_000 },
            Op::Race,
        ],
    });
}
