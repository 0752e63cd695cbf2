//! Money is conserved: only moved between a channel's accounts, never made or lost, whatever
//! the faults. A property test over the books, and a chaos run over HTTP that compares what
//! the client saw with the simulator's books.

use std::collections::BTreeMap;

use banksim::books::{Books, Execution, FailureReason, OperationRequest, Status, Submission};
use banksim::fees::{FeeRule, FeeSchedule, Rounding};
use banksim::ids::{AccountName, ChannelName, RequestId};
use money::Amount;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::harness::join_all;
use crate::harness::{debit_body, minor, refund_body, Sim};

#[derive(Debug, Clone)]
enum Step {
    Open { account: u8, initial_minor: u64 },
    Submit { kind: u8, target: u8, amount_minor: u64, execution: u8 },
    Complete { step: u8 },
    Repeat { step: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4u8, 0..50_000u64)
            .prop_map(|(account, initial_minor)| Step::Open { account, initial_minor }),
        (0..3u8, 0..16u8, 1..20_000u64, 0..4u8).prop_map(
            |(kind, target, amount_minor, execution)| Step::Submit {
                kind,
                target,
                amount_minor,
                execution
            }
        ),
        (0..64u8).prop_map(|step| Step::Complete { step }),
        (0..64u8).prop_map(|step| Step::Repeat { step }),
    ]
}

fn id(step_idx: usize) -> RequestId {
    RequestId::new(&format!("op-{step_idx}")).unwrap()
}

fn account(n: u8) -> AccountName {
    AccountName::new(&format!("acct-{n}")).unwrap()
}

/// Replays the log's succeeded operations on signed integers (so the order of replay does
/// not matter): the books must agree exactly.
fn replay(
    books: &Books,
    opened: &BTreeMap<AccountName, u64>,
    reserve_initial_minor: u64,
) -> (BTreeMap<AccountName, u64>, u64, u64) {
    let mut customers: BTreeMap<AccountName, i128> =
        opened.iter().map(|(a, b)| (a.clone(), i128::from(*b))).collect();
    let (mut reserve, mut fees) = (i128::from(reserve_initial_minor), 0i128);
    let mut refunded: BTreeMap<RequestId, u64> = BTreeMap::new();
    for op in books.operations().iter().filter(|op| op.status == Status::Succeeded) {
        let amount = i128::from(op.request.amount().minor());
        let fee = i128::from(op.fee.minor());
        let customer = customers.get_mut(op.account.as_ref().unwrap()).unwrap();
        match &op.request {
            OperationRequest::Debit { .. } => {
                *customer -= amount;
                reserve += amount - fee;
            }
            OperationRequest::Payout { .. } | OperationRequest::Refund { .. } => {
                *customer += amount;
                reserve -= amount + fee;
            }
        }
        if let OperationRequest::Refund { debit_request_id, amount } = &op.request {
            let total = refunded.entry(debit_request_id.clone()).or_default();
            *total += amount.minor();
            let debit = books.find(debit_request_id).unwrap();
            assert!(*total <= debit.request.amount().minor(), "refunds never exceed the debit");
        }
        fees += fee;
    }
    let unsigned = |v: i128| u64::try_from(v).expect("no balance below zero");
    let customers = customers.into_iter().map(|(a, b)| (a, unsigned(b))).collect();
    (customers, unsigned(reserve), unsigned(fees))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn money_is_conserved_by_every_sequence(
        steps in proptest::collection::vec(step(), 1..64),
        fixed_minor in 0..300u64,
        bps in 0..800u32,
    ) {
        let rule = FeeRule { fixed_minor, bps, rounding: Rounding::Up, max_minor: None };
        let fees = FeeSchedule { debit: rule, payout: rule, refund: rule };
        let reserve_initial_minor = 30_000;
        let mut books = Books::new(ChannelName::new("prop").unwrap(), fees, Amount::new(reserve_initial_minor).unwrap());
        let mut opened = BTreeMap::new();
        let mut submitted: Vec<(usize, OperationRequest)> = Vec::new();
        for (step_idx, step) in steps.iter().enumerate() {
            match *step {
                Step::Open { account: n, initial_minor } => {
                    if books.open_account(account(n), Amount::new(initial_minor).unwrap()).is_ok() {
                        opened.insert(account(n), initial_minor);
                    }
                }
                Step::Submit { kind, target, amount_minor, execution } => {
                    let amount = Amount::new(amount_minor).unwrap();
                    let request = match kind {
                        0 => OperationRequest::Debit { account: account(target % 5), amount },
                        1 => OperationRequest::Payout { account: account(target % 5), amount },
                        _ => OperationRequest::Refund { debit_request_id: id(usize::from(target)), amount },
                    };
                    let execution = match execution {
                        0 | 1 => Execution::Now,
                        2 => Execution::Fail(FailureReason::Declined),
                        _ => Execution::Defer,
                    };
                    let submission = books.submit(id(step_idx), request.clone(), execution, 0, step_idx as u64);
                    prop_assert!(matches!(submission, Submission::New(_)));
                    submitted.push((step_idx, request));
                }
                Step::Complete { step } => {
                    if let Some((idx, _)) = submitted.get(usize::from(step) % submitted.len().max(1)) {
                        books.complete(&id(*idx), step_idx as u64);
                    }
                }
                Step::Repeat { step } => {
                    if let Some((idx, request)) = submitted.get(usize::from(step) % submitted.len().max(1)) {
                        let before = books.balances();
                        let submission = books.submit(id(*idx), request.clone(), Execution::Now, 1, step_idx as u64);
                        prop_assert!(matches!(submission, Submission::Duplicate(_)), "a retry is a duplicate");
                        prop_assert_eq!(books.balances(), before, "a retry moves nothing");
                    }
                }
            }
            let sheet = books.balances();
            prop_assert_eq!(sheet.total_minor(), u128::from(sheet.minted_minor.minor()));
        }
        let (customers, reserve, fees) = replay(&books, &opened, reserve_initial_minor);
        let sheet = books.balances();
        let actual: BTreeMap<AccountName, u64> = sheet.customers.iter().map(|(a, b)| (a.clone(), b.minor())).collect();
        prop_assert_eq!(actual, customers);
        prop_assert_eq!(sheet.reserve_minor.minor(), reserve);
        prop_assert_eq!(sheet.fee_income_minor.minor(), fees);
    }
}

/// Many concurrent requests into every fault at once; afterwards the client's answers, the
/// operation log and the balances must tell one story.
#[tokio::test]
async fn chaos_over_http_keeps_the_books_exact() {
    let sim = Sim::start().await;
    let n_customers = 5;
    for i in 0..n_customers {
        sim.open_account("bank_a", &format!("c{i}"), 20_000).await;
    }
    let everything = json!({
        "declined_rate": 0.1, "insufficient_funds_rate": 0.05, "invalid_account_rate": 0.05,
        "timeout_rate": 0.1, "lost_response_rate": 0.1, "late_success_rate": 0.2,
        "late_delay_ms": 100, "hold_ms": 50,
        "latency": { "base_ms": 1, "tail_mean_ms": 10, "max_ms": 50 }
    });
    let faults = json!({ "debit": everything, "payout": everything, "refund": everything, "query": everything });
    sim.set_faults("bank_a", faults).await;

    let mut requests: Vec<(&str, Value)> = Vec::new();
    for i in 0..40 {
        let customer = format!("c{}", i % n_customers);
        requests.push(("debits", debit_body(&format!("d{i}"), &customer, 1_000 + i * 37)));
        if i % 2 == 0 {
            let payout = json!({ "request_id": format!("p{i}"), "account": customer, "amount_minor": "1500", "currency": "CNY" });
            requests.push(("payouts", payout));
        }
    }
    let first_wave =
        join_all(requests.iter().map(|(verb, body)| sim.post_op(verb, body.clone()))).await;
    let refunds: Vec<(&str, Value)> = (0..40)
        .step_by(3)
        .map(|i| ("refunds", refund_body(&format!("r{i}"), &format!("d{i}"), 600)))
        .collect();
    let second_wave =
        join_all(refunds.iter().map(|(verb, body)| sim.post_op(verb, body.clone()))).await;

    // Wait until every late success has completed.
    for _ in 0..200 {
        if sim.operations("bank_a").await.iter().all(|op| op["status"] != "processing") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log: BTreeMap<String, Value> = sim
        .operations("bank_a")
        .await
        .into_iter()
        .map(|op| (op["request_id"].as_str().unwrap().to_owned(), op))
        .collect();
    assert!(log.values().all(|op| op["status"] != "processing"), "everything settled");

    // Every answer the client got agrees with the log.
    let mut n_answered = 0;
    for ((_, body), answer) in
        requests.iter().chain(refunds.iter()).zip(first_wave.iter().chain(second_wave.iter()))
    {
        if let Ok((_, answer)) = answer {
            let logged = &log[body["request_id"].as_str().unwrap()];
            assert_eq!(answer["channel_ref"], logged["channel_ref"]);
            if answer["status"] != "processing" {
                assert_eq!(answer, logged);
            }
            n_answered += 1;
        }
    }
    assert!(
        n_answered > 0 && n_answered < requests.len() + refunds.len(),
        "some answers were lost"
    );

    // The balances are exactly the log's succeeded operations applied to the opening
    // balances; signed, so that the order of replay does not matter.
    let mut customers: BTreeMap<String, i64> =
        (0..n_customers).map(|i| (format!("c{i}"), 20_000)).collect();
    let (mut reserve, mut fees) = (1_000_000i64, 0i64);
    for op in log.values().filter(|op| op["status"] == "succeeded") {
        let amount = i64::try_from(minor(&op["amount_minor"])).unwrap();
        let fee = i64::try_from(minor(&op["fee_minor"])).unwrap();
        let customer = customers.get_mut(op["account"].as_str().unwrap()).unwrap();
        if op["operation"] == "debit" {
            *customer -= amount;
            reserve += amount - fee;
        } else {
            *customer += amount;
            reserve -= amount + fee;
        }
        fees += fee;
    }
    let books = sim.books("bank_a").await;
    let customers: BTreeMap<String, u64> =
        customers.into_iter().map(|(c, b)| (c, u64::try_from(b).unwrap())).collect();
    assert_eq!(books.customers, customers);
    assert_eq!(
        (books.reserve_minor, books.fee_income_minor),
        (u64::try_from(reserve).unwrap(), u64::try_from(fees).unwrap())
    );
}
