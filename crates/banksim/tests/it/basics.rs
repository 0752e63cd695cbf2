//! The money rules with no faults: fees, natural failures, idempotency, refund limits,
//! authentication.

use reqwest::Method;
use serde_json::json;

use crate::harness::{debit_body, join_all, minor, refund_body, sign, unix_s, Sim, SECRET_A};
use axum::http::StatusCode;

#[tokio::test]
async fn debit_payout_and_refund_move_money_with_fees() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 100_000).await;

    // 10 fixed + 12 345 * 25 bp = 30.8625, rounded up: 41.
    let (status, debit) = sim.debit("d1", "c1", 12_345).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(debit["status"], "succeeded");
    assert_eq!(debit["operation"], "debit");
    assert_eq!(debit["amount_minor"], "12345");
    assert_eq!(debit["fee_minor"], "41");
    assert_eq!(debit["channel_ref"], "bank_a-00000001");
    let payout =
        json!({ "request_id": "p1", "account": "c1", "amount_minor": "5000", "currency": "CNY" });
    let (status, payout) = sim.post_op("payouts", payout).await.unwrap();
    assert_eq!(
        (status, &payout["status"], &payout["fee_minor"]),
        (StatusCode::OK, &json!("succeeded"), &json!("100"))
    );
    let (status, refund) = sim.post_op("refunds", refund_body("r1", "d1", 2_000)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refund["status"], "succeeded");
    assert_eq!(refund["account"], "c1");
    assert_eq!(refund["debit_request_id"], "d1");
    assert_eq!(refund["fee_minor"], "5");

    let books = sim.books("bank_a").await;
    assert_eq!(books.customer("c1"), 100_000 - 12_345 + 5_000 + 2_000);
    assert_eq!(books.reserve_minor, 1_000_000 + 12_345 - 41 - 5_000 - 100 - 2_000 - 5);
    assert_eq!(books.fee_income_minor, 41 + 100 + 5);

    for request_id in ["d1", "p1", "r1"] {
        let (status, operation) = sim.query("bank_a", request_id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(operation["status"], "succeeded");
        assert_eq!(operation["request_id"], request_id);
    }
    // The other channel's books are its own.
    assert_eq!(sim.books("bank_b").await.reserve_minor, 1_000_000);
}

#[tokio::test]
async fn requests_without_a_good_signature_are_rejected() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 1_000).await;
    let body = serde_json::to_vec(&debit_body("d1", "c1", 100)).unwrap();
    let url = format!("{}/channels/bank_a/debits", sim.base);
    let send = |timestamp: String, signature: String| {
        let request = sim.client.post(&url).body(body.clone());
        request
            .header("x-banksim-timestamp", timestamp)
            .header("x-banksim-signature", signature)
            .send()
    };
    let now = unix_s();
    let good = sign(SECRET_A, &format!("{now}\nPOST\n/channels/bank_a/debits\n"), &body);
    let cases = [
        ("no headers", None),
        (
            "wrong secret",
            Some((
                now,
                sign("not-the-secret", &format!("{now}\nPOST\n/channels/bank_a/debits\n"), &body),
            )),
        ),
        (
            "other path",
            Some((now, sign(SECRET_A, &format!("{now}\nPOST\n/channels/bank_a/payouts\n"), &body))),
        ),
        (
            "stale",
            Some((
                now - 3_600,
                sign(SECRET_A, &format!("{}\nPOST\n/channels/bank_a/debits\n", now - 3_600), &body),
            )),
        ),
        ("timestamp not signed", Some((now + 1, good.clone()))),
        ("not hex", Some((now, "zz".to_owned()))),
    ];
    for (case, headers) in cases {
        let response = match headers {
            None => sim.client.post(&url).body(body.clone()).send().await.unwrap(),
            Some((timestamp, signature)) => send(timestamp.to_string(), signature).await.unwrap(),
        };
        assert_eq!(response.status(), 401, "{case}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_signature", "{case}");
    }
    assert_eq!(sim.books("bank_a").await.customer("c1"), 1_000, "nothing moved");
    assert!(sim.operations("bank_a").await.is_empty());
    assert_eq!(send(now.to_string(), good).await.unwrap().status(), 200);
    // Another channel's secret does not open this one.
    let response = sim
        .signed_with(crate::harness::SECRET_B, Method::GET, "/channels/bank_a/operations/d1", None)
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn malformed_requests_and_unknown_channels() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 1_000).await;
    let usd =
        json!({ "request_id": "d1", "account": "c1", "amount_minor": "1", "currency": "USD" });
    let cases = [
        json!({ "request_id": "d1" }),
        usd,
        debit_body("d1", "c1", 0),
        json!({ "request_id": "bad,id", "account": "c1", "amount_minor": "1", "currency": "CNY" }),
        json!({ "request_id": "d1", "account": "c1", "amount_minor": "-1", "currency": "CNY" }),
    ];
    for body in cases {
        let (status, error) = sim.post_op("debits", body.clone()).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], "invalid_request");
    }
    let (status, error) =
        sim.post_op_on("no_such_bank", "debits", debit_body("d1", "c1", 1)).await.unwrap();
    assert_eq!(
        (status, &error["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("unknown_channel"))
    );
    let (status, error) = sim.query("bank_a", "never-sent").await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    assert!(sim.operations("bank_a").await.is_empty());
}

#[tokio::test]
async fn natural_failures_are_logged_and_move_nothing() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 1_000).await;
    let before = sim.books("bank_a").await;

    let (_, poor) = sim.debit("d-poor", "c1", 1_001).await.unwrap();
    assert_eq!(
        (&poor["status"], &poor["failure_reason"]),
        (&json!("failed"), &json!("insufficient_funds"))
    );
    assert_eq!(poor["fee_minor"], "0");
    let (_, nobody) = sim.debit("d-nobody", "c404", 10).await.unwrap();
    assert_eq!(nobody["failure_reason"], "invalid_account");
    let payout = json!({ "request_id": "p-big", "account": "c1", "amount_minor": "999999999", "currency": "CNY" });
    let (_, big) = sim.post_op("payouts", payout).await.unwrap();
    assert_eq!(big["failure_reason"], "insufficient_funds", "the reserve cannot pay it");

    assert_eq!(sim.books("bank_a").await, before);
    let (status, queried) = sim.query("bank_a", "d-poor").await;
    assert_eq!(
        (status, &queried["status"], &queried["failure_reason"]),
        (StatusCode::OK, &json!("failed"), &json!("insufficient_funds"))
    );
    // The bank remembers the failure: the same request id fails the same way even once the
    // money is there.
    sim.open_account("bank_a", "c404", 100).await;
    let (_, again) = sim.debit("d-nobody", "c404", 10).await.unwrap();
    assert_eq!(again["failure_reason"], "invalid_account");
}

#[tokio::test]
async fn same_request_id_returns_the_same_outcome_and_other_fields_conflict() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let (_, first) = sim.debit("d1", "c1", 1_000).await.unwrap();
    let (status, second) = sim.debit("d1", "c1", 1_000).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, second, "a duplicate gets the stored outcome");
    assert_eq!(sim.books("bank_a").await.customer("c1"), 9_000, "money moved once");

    let (status, error) = sim.debit("d1", "c1", 999).await.unwrap();
    assert_eq!(
        (status, &error["error"]["code"]),
        (StatusCode::CONFLICT, &json!("request_id_conflict"))
    );
    let payout =
        json!({ "request_id": "d1", "account": "c1", "amount_minor": "1000", "currency": "CNY" });
    let (status, _) = sim.post_op("payouts", payout).await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "request ids are unique across operation kinds");
    assert_eq!(sim.operations("bank_a").await.len(), 1);
    assert_eq!(sim.books("bank_a").await.customer("c1"), 9_000);
}

#[tokio::test]
async fn concurrent_duplicates_move_money_once() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let n_duplicates = 24;
    let answers = join_all((0..n_duplicates).map(|_| sim.debit("d-race", "c1", 700))).await;
    let refs: std::collections::BTreeSet<String> = answers
        .into_iter()
        .map(|answer| {
            let (status, operation) = answer.unwrap();
            assert_eq!((status, &operation["status"]), (StatusCode::OK, &json!("succeeded")));
            operation["channel_ref"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(refs.len(), 1, "every duplicate reports the one operation");
    assert_eq!(sim.books("bank_a").await.customer("c1"), 10_000 - 700);
    assert_eq!(sim.operations("bank_a").await.len(), 1);
}

#[tokio::test]
async fn refunds_never_exceed_the_debit() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 50_000).await;
    let (_, debit) = sim.debit("d1", "c1", 10_000).await.unwrap();
    let debit_fee = minor(&debit["fee_minor"]);
    let (_, poor) = sim.debit("d-failed", "c1", 1_000_000).await.unwrap();
    assert_eq!(poor["status"], "failed");

    let cases = [
        ("r1", "d1", 6_000, "succeeded", None),
        ("r2", "d1", 4_001, "failed", Some("refund_exceeds_debit")),
        ("r3", "d1", 4_000, "succeeded", None),
        ("r4", "d1", 1, "failed", Some("refund_exceeds_debit")),
        ("r5", "d404", 1, "failed", Some("debit_not_found")),
        ("r6", "d-failed", 1, "failed", Some("debit_not_found")),
        ("r7", "r1", 1, "failed", Some("debit_not_found")),
    ];
    for (request_id, debit_request_id, amount_minor, status, reason) in cases {
        let (_, refund) = sim
            .post_op("refunds", refund_body(request_id, debit_request_id, amount_minor))
            .await
            .unwrap();
        assert_eq!(refund["status"], status, "{request_id}");
        assert_eq!(refund["failure_reason"], json!(reason), "{request_id}");
    }
    let books = sim.books("bank_a").await;
    assert_eq!(books.customer("c1"), 50_000, "refunded in full, never more");
    assert_eq!(books.fee_income_minor, debit_fee + 2 * 5, "two refund fees");
}
