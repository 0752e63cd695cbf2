//! The stored form of orders (`payments::Order` as JSON, the order store's `body` column) is a
//! contract with every row already written: a rename in `payments` must not silently change
//! what a stored row means. `tests/stored/orders-v1.json` holds bodies as version 1 writes
//! them, one per kind and for the shapes that matter (legs, FX, authorisations, waits, every
//! kind of state detail), and is never regenerated once released:
//! - each body of every version still reads as the order it was written from;
//! - this release writes exactly the bodies of [`STORED_FORM_VERSION`]: a change to the form
//!   makes a new version (a new file, and a reader that upgrades the old ones), not an edit.
//!
//! `QIANBAO_WRITE_STORED_FORM=1 cargo test -p payments --test stored_form` writes the file of
//! the current version when it does not exist yet.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

use channels::{ChannelId, RequestId, Settled};
use money::{Amount, AssetCode};
use payments::booking::{
    BookingState, Payment, PaymentState, PointsGrant, PointsLeg, Rate, Refund, RefundedFx,
    RefundedPoints, Settlement, WalletTransfer,
};
use payments::card::{CardRefund, CardRefundState, ChannelWait};
use payments::order::STORED_FORM_VERSION;
use payments::topup::{MerchantCredit, TopUp, TopUpState};
use payments::withdrawal::{Withdrawal, WithdrawalState};
use payments::{Event, Order, OrderId};

fn id(raw: &str) -> OrderId {
    OrderId::new(raw).unwrap()
}

fn code(raw: &str) -> AssetCode {
    AssetCode::new(raw).unwrap()
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap()
}

fn bank(name: &str) -> ChannelId {
    ChannelId::new(name).unwrap()
}

fn settled(reference: &str, fee: u64) -> Settled {
    Settled { channel_ref: reference.into(), fee: amount(fee) }
}

/// The orders of the fixture, in its order.
fn orders() -> Vec<Order> {
    let cny = code("CNY");
    let topup = |raw: &str, state| TopUp {
        state,
        ..TopUp::new(id(raw), "acme/alice".into(), "6222020000000001".into(), cny, amount(10_000))
    };
    let mut refused = topup(
        "top_v1a",
        TopUpState::Succeeded { channel: bank("bank_a"), settled: settled("a-77", 6) },
    );
    refused.refused_by = vec![bank("bank_b")];
    let card_payment = TopUp {
        state: TopUpState::Crediting { channel: bank("bank_a"), settled: settled("a-78", 3) },
        ..TopUp::new(id("cp_v1a"), "acme/alice".into(), "card-1".into(), cny, amount(2_000))
            .paying(MerchantCredit { merchant: "acme/shop".into(), fee: amount(12), fee_bps: 60 })
    };
    let withdrawal = |raw: &str, state| Withdrawal {
        state,
        ..Withdrawal::new(id(raw), "acme/alice".into(), "acct-1".into(), cny, amount(700))
    };
    let payout = Withdrawal {
        state: WithdrawalState::Paying { channel: bank("bank_a") },
        ..Withdrawal::new(id("po_v1a"), "acme/shop".into(), "acct-9".into(), cny, amount(900))
            .from_merchant()
    };
    let payment = Payment::new(
        id("pay_v1a"),
        "acme/alice".into(),
        "acme/shop".into(),
        cny,
        amount(1_000),
        60,
    );
    let with_points = payment
        .clone()
        .with_points(PointsLeg {
            asset: code("POINTS"),
            points: amount(200),
            value_minor_per_point: 1,
        })
        .unwrap();
    let with_fx = Payment::new(
        id("pay_v1b"),
        "acme/alice".into(),
        "acme/shop".into(),
        code("USD"),
        amount(100),
        0,
    )
    .with_fx(cny, Rate::parse("7.1").unwrap())
    .unwrap();
    // Payments reach their states through their own machine: their fields are the domain's.
    let authorized_at_ms = 1_800_000_000_000 - 600_000;
    let authorized = through(
        Payment::new(
            id("pay_v1c"),
            "acme/alice".into(),
            "acme/shop".into(),
            cny,
            amount(1_000),
            60,
        )
        .with_authorization(600, 60)
        .unwrap(),
        &[Event::Submit, Event::LedgerPosted, Event::Capture { amount: amount(400) }],
        authorized_at_ms,
    );
    assert!(matches!(
        authorized.state(),
        PaymentState::Capturing { until_ms: 1_800_000_000_000, .. }
    ));
    let refund = Refund {
        order: id("rf_v1a"),
        payment: id("pay_v1a"),
        customer: "acme/alice".into(),
        merchant: "acme/shop".into(),
        asset: cny,
        amount: amount(300),
        fee_returned: amount(2),
        points: Some(RefundedPoints {
            asset: code("POINTS"),
            points: amount(60),
            value: amount(60),
        }),
        fx: Some(RefundedFx { from_asset: code("USD"), amount: amount(42) }),
        from_settled: true,
        state: BookingState::Failed { code: "exceeds_debits".into() },
    };
    let card_refund = |raw: &str, state| CardRefund {
        source: Default::default(),
        order: id(raw),
        payment: id("cp_v1a"),
        customer: "acme/alice".into(),
        merchant: "acme/shop".into(),
        card: "card-1".into(),
        asset: cny,
        amount: amount(500),
        fee_returned: amount(3),
        channel: bank("bank_a"),
        debit_request_id: RequestId::new("cp_v1a:debit").unwrap(),
        from_settled: false,
        state,
    };
    vec![
        Order::Topup(refused),
        Order::Topup(topup(
            "top_v1b",
            TopUpState::Failed { channel: None, reason: "no channel".into() },
        )),
        Order::Topup(topup(
            "top_v1c",
            TopUpState::Suspended {
                channel: bank("bank_a"),
                settled: settled("a-79", 0),
                code: "account_frozen".into(),
            },
        )),
        Order::CardPayment(card_payment),
        Order::Withdrawal(withdrawal(
            "wd_v1a",
            WithdrawalState::Disputed { channel: bank("bank_a"), settled: settled("a-80", 1) },
        )),
        Order::Withdrawal(withdrawal(
            "wd_v1b",
            WithdrawalState::Voiding { channel: Some(bank("bank_b")), reason: "declined".into() },
        )),
        Order::Withdrawal(payout),
        Order::Payment(through(with_points, &[Event::Submit, Event::LedgerPosted], 0)),
        Order::Payment(with_fx),
        Order::Payment(authorized),
        Order::Refund(refund),
        Order::CardRefund(card_refund(
            "crf_v1a",
            CardRefundState::AwaitingChannel {
                since_ms: 1_700_000_000_000,
                attempts: 2,
                next_attempt_at_ms: 1_700_000_004_000,
                reason: "unavailable: breaker open".into(),
            },
        )),
        Order::CardRefund(card_refund(
            "crf_v1b",
            CardRefundState::Refunding {
                waited: Some(ChannelWait { since_ms: 1_700_000_000_000, attempts: 3 }),
            },
        )),
        Order::WalletTransfer(WalletTransfer {
            order: id("wt_v1a"),
            from: "acme/alice".into(),
            to: "acme/bob".into(),
            asset: cny,
            amount: amount(5),
            state: BookingState::Posting,
        }),
        Order::Settlement(Settlement {
            order: id("st_v1a"),
            merchant: "acme/shop".into(),
            asset: cny,
            amount: amount(988),
            cutoff_ms: 1_700_006_400_000,
            settle_after_days: 1,
            state: BookingState::Succeeded,
        }),
        Order::PointsGrant(PointsGrant {
            order: id("pg_v1a"),
            customer: "acme/alice".into(),
            asset: code("POINTS"),
            amount: amount(1_000),
            state: BookingState::Created,
        }),
    ]
}

fn fixture(version: u32) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/stored")
        .join(format!("orders-v{version}.json"))
}

#[test]
fn every_stored_version_reads_as_the_orders_it_was_written_from() {
    let current = fixture(STORED_FORM_VERSION);
    if std::env::var("QIANBAO_WRITE_STORED_FORM").is_ok_and(|v| v == "1") && !current.exists() {
        let bodies: Vec<serde_json::Value> =
            orders().iter().map(|o| serde_json::to_value(o).unwrap()).collect();
        std::fs::create_dir_all(current.parent().unwrap()).unwrap();
        std::fs::write(&current, serde_json::to_string_pretty(&bodies).unwrap() + "\n").unwrap();
    }
    for version in 1..=STORED_FORM_VERSION {
        let text = std::fs::read_to_string(fixture(version)).unwrap();
        let bodies: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(bodies.len(), orders().len(), "v{version}: one body per order");
        for (body, order) in bodies.iter().zip(orders()) {
            let read = payments::order::read_stored(version, &body.to_string()).unwrap();
            assert_eq!(read, order, "v{version}: {body}");
        }
    }
}

#[test]
fn this_release_writes_the_current_stored_form_exactly() {
    let text = std::fs::read_to_string(fixture(STORED_FORM_VERSION)).unwrap();
    let bodies: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for (body, order) in bodies.iter().zip(orders()) {
        assert_eq!(&serde_json::to_value(&order).unwrap(), body, "the form changed: a new version");
    }
}

#[test]
fn a_form_newer_than_this_release_is_refused_not_guessed() {
    let body = serde_json::to_string(&orders()[0]).unwrap();
    assert!(payments::order::read_stored(STORED_FORM_VERSION + 1, &body).is_err());
    assert!(payments::order::read_stored(0, &body).is_err());
}

/// `payment` after `events`, each taken at `now_ms`.
fn through(payment: Payment, events: &[Event], now_ms: u64) -> Payment {
    events.iter().fold(payment, |payment, event| payment.apply_at(event, now_ms).unwrap().state)
}
