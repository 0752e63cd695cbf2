//! Random JSON at the transfer endpoints: random values and field names, and mutations of
//! valid bodies (wrong types, huge and negative numbers, unicode, nested garbage). The answer
//! is always a 2xx or a 4xx in the documented shape, never a 5xx; afterwards the books still
//! balance and the journal verifies.

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

use crate::support::*;

const FIELDS: &[&str] = &[
    "type",
    "id",
    "debit_account_id",
    "credit_account_id",
    "asset",
    "amount",
    "timeout_secs",
    "business_code",
    "order_ref",
    "transfers",
    "linked",
];

const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "-1",
    "01",
    "+1",
    "1.5",
    "1e3",
    "0x10",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211455",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999",
    "１２３",
    "٣",
    "💸",
    "CNY",
    "USD",
    "cny",
    "XXXXXXXXXXXXX",
    "post",
    "pending",
    "\u{0}",
    "\u{202e}evil",
    "\"quoted\"",
    "null",
];

/// Accounts of the fuzzed world, and ids that do not exist.
const ACCOUNT_IDS: &[&str] = &["1", "1", "2", "2", "3", "3", "4", "5", "6", "999", "0"];
/// Holds 7 to 12 exist (of 100 each, from wallet 2 to wallet 3); 1 is a posted transfer.
const PENDING_IDS: &[&str] = &["7", "8", "9", "10", "11", "12", "13", "1", "999"];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e30f64..1e30).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(EDGE_STRINGS).prop_map(Value::from),
        (0u64..5000).prop_map(|n| Value::from(n.to_string())),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(String::from),
        1 => "[a-z_]{1,10}",
        1 => ".{0,6}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A plausible transfer: mostly valid fields over the world's accounts.
fn transfer() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["post", "pending"][..]),
        prop::option::of(1u128..400),
        prop::sample::select(ACCOUNT_IDS),
        prop::sample::select(ACCOUNT_IDS),
        prop::sample::select(&["CNY", "USD"][..]),
        prop_oneof![3 => (1u64..3000).prop_map(|n| n.to_string()), 1 => any::<u64>().prop_map(|n| n.to_string())],
        prop::option::of(0u32..100),
    )
        .prop_map(|(kind, id, debit, credit, asset, amount, timeout)| {
            let mut body = json!({
                "type": kind,
                "debit_account_id": debit,
                "credit_account_id": credit,
                "asset": asset,
                "amount": amount,
            });
            if let Some(id) = id {
                body["id"] = json!(id.to_string());
            }
            if let (Some(timeout), "pending") = (timeout, kind) {
                body["timeout_secs"] = json!(timeout);
            }
            body
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    Remove(String),
    Set(String, Value),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(
        prop_oneof![
            field_name().prop_map(Mutation::Remove),
            (field_name(), any_json()).prop_map(|(f, v)| Mutation::Set(f, v)),
        ],
        0..4,
    )
}

fn mutate(mut body: Value, mutations: Vec<Mutation>) -> Value {
    for mutation in mutations {
        if let Some(object) = body.as_object_mut() {
            match mutation {
                Mutation::Remove(field) => {
                    object.remove(&field);
                }
                Mutation::Set(field, value) => {
                    object.insert(field, value);
                }
            }
        }
    }
    body
}

/// Some mutations, or (often) none, so that valid requests get through too.
fn maybe_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop_oneof![3 => Just(Vec::new()), 2 => mutations()]
}

fn mutated_transfer() -> impl Strategy<Value = Value> {
    (transfer(), maybe_mutations()).prop_map(|(body, m)| mutate(body, m))
}

#[derive(Clone, Debug)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
    Empty,
}

fn body_of(json: BoxedStrategy<Value>) -> impl Strategy<Value = Body> {
    prop_oneof![
        12 => json.clone().prop_map(Body::Json),
        2 => any_json().prop_map(Body::Json),
        // Truncated or corrupted JSON.
        1 => (json.clone(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let text = serde_json::to_vec(&v).unwrap_or_default();
            Body::Raw(text[..i.index(text.len() + 1)].to_vec())
        }),
        1 => (json, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, byte)| {
            let mut text = serde_json::to_vec(&v).unwrap_or_default();
            if !text.is_empty() {
                let at = i.index(text.len());
                text[at] = byte;
            }
            Body::Raw(text)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
        1 => Just(Body::Empty),
    ]
}

fn batch() -> impl Strategy<Value = Value> {
    let item = prop_oneof![6 => transfer(), 3 => mutated_transfer(), 1 => any_json()];
    (
        prop::collection::vec(item, 0..6),
        any::<bool>(),
        prop_oneof![3 => Just(Vec::new()), 1 => mutations()],
    )
        .prop_map(|(transfers, linked, m)| {
            mutate(json!({"transfers": transfers, "linked": linked}), m)
        })
}

fn resolve() -> impl Strategy<Value = Value> {
    (prop::option::of(1u128..400), prop::option::of(0u64..300), maybe_mutations()).prop_map(
        |(id, amount, m)| {
            let mut body = json!({});
            if let Some(id) = id {
                body["id"] = json!(id.to_string());
            }
            if let Some(amount) = amount {
                body["amount"] = json!(amount.to_string());
            }
            mutate(body, m)
        },
    )
}

fn pending_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(PENDING_IDS).prop_map(String::from),
        1 => any::<u128>().prop_map(|n| n.to_string()),
        1 => "[A-Za-z0-9._~-]{1,40}",
        1 => prop::sample::select(&["%20", "%F0%9F%92%B8", "-1", "0", "340282366920938463463374607431768211456"][..]).prop_map(String::from),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    path: String,
    body: Body,
    admin: bool,
    idempotency_key: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    let target = prop_oneof![
        (Just("/v1/transfers".to_string()), body_of(mutated_transfer().boxed())),
        (Just("/v1/transfers/batch".to_string()), body_of(batch().boxed())),
        (
            pending_segment().prop_map(|id| format!("/v1/transfers/{id}/post")),
            body_of(resolve().boxed())
        ),
        (
            pending_segment().prop_map(|id| format!("/v1/transfers/{id}/void")),
            body_of(resolve().boxed())
        ),
    ];
    (target, prop::bool::weighted(0.2), prop::option::weighted(0.3, "[!-~]{1,8}")).prop_map(
        |((path, body), admin, idempotency_key)| Case { path, body, admin, idempotency_key },
    )
}

fn check(case: &Case, r: &Resp) -> Result<(), TestCaseError> {
    let status = r.status.as_u16();
    prop_assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "{case:?} answered {r:?}"
    );
    if r.status.is_client_error() {
        let problem = error_shape_problem(r);
        prop_assert!(problem.is_none(), "{case:?}: {problem:?}: {r:?}");
        return Ok(());
    }
    let object = r.json["object"].as_str().unwrap_or("");
    if case.path == "/v1/transfers/batch" {
        prop_assert_eq!(r.status, StatusCode::OK, "{:?}", r);
        prop_assert_eq!(object, "batch_result", "{:?}", r);
        for item in r.json["data"].as_array().cloned().unwrap_or_default() {
            match item["status"].as_str() {
                Some("created" | "replayed") => {
                    prop_assert_eq!(&item["transfer"]["object"], &json!("transfer"))
                }
                Some("rejected") => {
                    let code = item["error"]["code"].as_str().unwrap_or("");
                    prop_assert!(DOCUMENTED_CODES.contains(&code), "{:?}", r);
                }
                _ => prop_assert!(false, "bad batch item in {:?}", r),
            }
        }
    } else {
        prop_assert!(r.status == StatusCode::OK || r.status == StatusCode::CREATED, "{:?}", r);
        prop_assert_eq!(object, "transfer", "{:?}", r);
    }
    Ok(())
}

#[test]
fn random_json_never_breaks_the_transfer_endpoints_or_the_books() {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = App::new();
    let key = runtime.block_on(async {
        app.books().await;
        let key = app.rw_key("acme");
        // One account per chart line, so no line's SQLite sum can pass i64::MAX (see
        // errors::trial_balance_of_large_but_valid_balances).
        for (code, class) in [(1122, "asset"), (2242, "liability")] {
            let r = app
                .post(
                    "/v1/chart",
                    &app.admin,
                    &json!({"code": code, "name": "line", "class": class}),
                )
                .await;
            assert!(r.status.is_success(), "{r:?}");
        }
        app.bank(&key, 1, CNY).await;
        app.wallet(&key, 2, CNY).await;
        let wallet = json!({"type": "debits_within_credits", "overdraft_minor": "0"});
        assert_eq!(app.open(&key, 3, CNY, 2242, wallet).await.status, StatusCode::CREATED);
        let rule = json!({"type": "credits_within_debits", "limit_minor": "1000"});
        assert_eq!(app.open(&key, 4, CNY, 1122, rule).await.status, StatusCode::CREATED);
        app.bank(&key, 5, USD).await;
        app.wallet(&key, 6, USD).await;
        app.pay(&key, 1000, 1, 2, 100_000).await;
        for id in 7..=12 {
            app.hold(&key, id, 2, 3, 100).await;
        }
        key
    });

    let mut runner =
        TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() });
    let answered = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&case(), |case| {
        let who = if case.admin { &app.admin } else { &key };
        let mut request = Req::post(&case.path).key(who);
        request = match &case.body {
            Body::Json(value) => request.json(value),
            Body::Raw(bytes) => request.raw(bytes.clone()),
            Body::Empty => request,
        };
        if let Some(k) = &case.idempotency_key {
            request = request.idem(k);
        }
        let r = runtime.block_on(app.call(request));
        *answered.borrow_mut().entry(r.status.as_u16()).or_default() += 1;
        check(&case, &r)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let answered = answered.into_inner();
    eprintln!("fuzz answers by status: {answered:?}");
    // The fuzz reached past the parsers, not only their rejections.
    assert!(answered.keys().any(|s| (200..300).contains(s)), "{answered:?}");
    assert!(answered.len() >= 4, "{answered:?}");

    runtime.block_on(async {
        app.assert_balanced().await;
        let verify = app.post("/v1/journal/verify", &app.admin, &json!({})).await;
        assert_eq!(verify.json["ok"], json!(true), "{verify:?}");
        // Every wallet still respects its rule.
        for id in [2, 3, 6] {
            let b = app.balances(id).await;
            assert!(!b["available_credit"].as_str().unwrap_or("-").starts_with('-'), "{id}: {b}");
        }
    });
}
