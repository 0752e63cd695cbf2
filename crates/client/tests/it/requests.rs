//! What the client sends is what docs/openapi.json names: every request body, built with
//! every option set and with none, against its operation's schema — field names, required
//! fields, types, enums, variants — and every field the schema takes can be sent. The payment
//! core's endpoints cannot run in-process (no payment core there), so for them this is the
//! evidence that their bodies are right.

use std::collections::BTreeSet;

use client::breaks::{
    ApproveRequest, AssignRequest, ProposeRequest, RejectRequest, ResolutionRequest,
};
use client::keys::{KeyMode, KeyRequest, Scope};
use client::ledger::{
    AccountClass, AccountLayout, AccountRequest, AccountStatus, AssetRequest, BalanceRule,
    ChartRequest, StatusRequest,
};
use client::ops::{DecisionBody, OutcomeBody, OutcomeRequestBody, ReturnRequestBody};
use client::parties::{CustomerRequest, MerchantRequest};
use client::payments::{
    CaptureBody, FxRateRequest, PaymentBody, PayoutBatchBody, PayoutItemBody, PointsGrantBody,
    RefundBody, SettlementBody, TopUpBody, WalletTransferBody, WithdrawalBody,
};
use client::recon::{FetchRequest, RunRequest, UploadRequest};
use client::routes::{self, Route};
use client::switches::{PlanBody, ProductName, RollbackSwitchBody, SetSwitchBody, SwitchBody};
use client::transfers::{
    BatchRequest, NewTransfer, PendingTransfer, ResolveRequest, TransferRequest, VoidRequest,
};
use client::webhooks::EndpointRequest;
use client::{AccountId, Amount, TransferId, OPERATIONS};
use serde::Serialize;
use serde_json::Value;

use crate::document::{self, missing_properties, request_schema, violations};

fn json(body: &impl Serialize) -> Value {
    serde_json::to_value(body).unwrap()
}

fn amount(minor_units: u32) -> Amount {
    Amount::from(minor_units)
}

fn id(id: u128) -> AccountId {
    AccountId::new(id).unwrap()
}

fn text(value: &str) -> String {
    value.to_string()
}

/// Bodies that name every field the schema takes (`full`) and only the required ones
/// (`minimal`), per operation; a oneOf has an entry per variant.
fn bodies() -> Vec<(Route, Value, Value)> {
    let transfer = NewTransfer {
        business_code: Some(7),
        order_ref: Some(text("order-1")),
        ..NewTransfer::new(TransferId::new(9), id(1), id(2), "CNY", amount(100))
    };
    let bare = NewTransfer::new(None, id(1), id(2), "CNY", amount(100));
    let post = TransferRequest::Post(transfer.clone());
    let pending = TransferRequest::Pending(PendingTransfer { transfer, timeout_secs: Some(60) });
    let pending_bare =
        TransferRequest::Pending(PendingTransfer { transfer: bare.clone(), timeout_secs: None });
    let account = AccountRequest {
        metadata: Some(text("alice's wallet")),
        layout: Some(AccountLayout::SubAccounts { count: 8 }),
        ..AccountRequest::new(
            id(2),
            "CNY",
            2241,
            BalanceRule::DebitsWithinCredits { overdraft_minor: Amount::ZERO },
        )
    };
    let payment = PaymentBody {
        points: Some(amount(10)),
        pay_from: Some(text("USD")),
        card: Some(text("6222020000000001")),
        authorize_for_secs: Some(600),
        ..PaymentBody::new("pay-1", "alice", "tea", "CNY", amount(2500))
    };
    let key = KeyRequest {
        signed: true,
        merchant: Some(text("tea")),
        ..KeyRequest::new("acme", KeyMode::Live, vec![Scope::LedgerRead, Scope::LedgerWrite])
    };
    let customer =
        CustomerRequest { name: Some(text("Alice")), ..CustomerRequest::new("alice", &["CNY"]) };
    let merchant = MerchantRequest {
        name: Some(text("Tea House")),
        fee_bps: Some(60),
        settle_after_days: Some(1),
        unsettled_layout: Some(client::ledger::AccountLayout::SubAccounts { count: 8 }),
        ..MerchantRequest::new("tea", &["CNY", "USD"])
    };
    let topup = TopUpBody {
        reference: text("top-1"),
        customer: text("alice"),
        card: text("6222020000000001"),
        asset: text("CNY"),
        amount: amount(10_000),
    };
    let withdrawal = WithdrawalBody {
        reference: text("wd-1"),
        customer: text("alice"),
        bank_account: text("6222020000000002"),
        asset: text("CNY"),
        amount: amount(500),
    };
    let wallet = WalletTransferBody {
        reference: text("wt-1"),
        from: text("alice"),
        to: text("bob"),
        asset: text("CNY"),
        amount: amount(300),
    };
    let payout = PayoutBatchBody {
        reference: text("pb-1"),
        asset: text("CNY"),
        items: vec![PayoutItemBody {
            reference: text("po-1"),
            bank_account: text("6222020000000003"),
            amount: amount(700),
        }],
    };
    let fx = |reason: Option<&str>| FxRateRequest {
        asset: text("CNY"),
        funding: text("USD"),
        rate: text("0.1389"),
        reason: reason.map(text),
    };
    let outcome = |result, ticket: Option<&str>| OutcomeRequestBody {
        result,
        evidence: text("statement line 12"),
        reason: text("bank confirmed"),
        ticket: ticket.map(text),
    };
    let succeeded = |fee| OutcomeBody::Succeeded { channel_ref: text("BK-1"), fee };
    let ret = |ticket: Option<&str>| ReturnRequestBody {
        evidence: text("card statement"),
        reason: text("wallet closed"),
        ticket: ticket.map(text),
    };
    let set_switch = SetSwitchBody {
        value: Some(500),
        expires_in_ms: Some(60_000),
        ticket: Some(text("INC-1")),
        expected_version: Some(0),
        ..SetSwitchBody::new(SwitchBody::ChannelWeight { channel: text("bank_a") }, true, "slow")
    };
    let rollback = |full: bool| RollbackSwitchBody {
        target: SwitchBody::KillAll,
        expected_version: full.then_some(3),
        reason: text("over"),
        ticket: full.then(|| text("INC-1")),
    };
    let plan = |full: bool| PlanBody {
        channel: full.then(|| text("bank_a")),
        expires_in_ms: full.then_some(60_000),
        reason: text("bank down"),
        ticket: full.then(|| text("INC-2")),
    };
    let propose = |resolution| ProposeRequest { resolution, reason: text("checked") };
    let run =
        |fetch| RunRequest { channel: text("bank_a"), business_day: text("2026-01-02"), fetch };
    let resolve = ResolveRequest {
        id: TransferId::new(10),
        amount: Some(amount(50)),
        business_code: Some(1),
        order_ref: Some(text("r")),
    };
    let void =
        VoidRequest { id: TransferId::new(11), business_code: Some(1), order_ref: Some(text("v")) };

    vec![
        (routes::CREATE_ASSET, json(&AssetRequest { code: text("CNY"), scale: 2 }), Value::Null),
        (
            routes::CREATE_CHART,
            json(&ChartRequest {
                code: 2241,
                name: text("wallets"),
                class: AccountClass::Liability,
            }),
            Value::Null,
        ),
        (
            routes::CREATE_ACCOUNT,
            json(&account),
            json(&AccountRequest::new(id(1), "CNY", 1002, BalanceRule::Unbounded)),
        ),
        (
            routes::CREATE_ACCOUNT,
            json(&AccountRequest {
                layout: Some(AccountLayout::Buffered { count: 4 }),
                metadata: Some(text("fees")),
                ..AccountRequest::new(
                    id(3),
                    "CNY",
                    6001,
                    BalanceRule::CreditsWithinDebits { limit_minor: amount(5) },
                )
            }),
            Value::Null,
        ),
        (
            routes::CREATE_ACCOUNT,
            json(&AccountRequest {
                layout: Some(AccountLayout::Plain),
                metadata: Some(text("bank")),
                ..AccountRequest::new(id(4), "CNY", 1002, BalanceRule::Unbounded)
            }),
            Value::Null,
        ),
        (
            routes::SET_ACCOUNT_STATUS,
            json(&StatusRequest { status: AccountStatus::FrozenDebits }),
            Value::Null,
        ),
        (routes::CREATE_TRANSFER, json(&post), json(&TransferRequest::Post(bare.clone()))),
        (routes::CREATE_TRANSFER, json(&pending), json(&pending_bare)),
        (
            routes::CREATE_BATCH,
            json(&BatchRequest { transfers: vec![post.clone(), pending], linked: true }),
            json(&BatchRequest { transfers: vec![TransferRequest::Post(bare)], linked: false }),
        ),
        (routes::POST_PENDING, json(&resolve), json(&ResolveRequest::default())),
        (routes::VOID_PENDING, json(&void), json(&VoidRequest::default())),
        (
            routes::CREATE_KEY,
            json(&key),
            json(&KeyRequest::new("acme", KeyMode::Live, vec![Scope::Admin])),
        ),
        (routes::CREATE_CUSTOMER, json(&customer), json(&CustomerRequest::new("bob", &["CNY"]))),
        (routes::CREATE_MERCHANT, json(&merchant), json(&MerchantRequest::new("tea", &["CNY"]))),
        (
            routes::GRANT_POINTS,
            json(&PointsGrantBody { reference: text("pts-1"), points: amount(100) }),
            Value::Null,
        ),
        (routes::SETTLE_MERCHANT, json(&SettlementBody { asset: text("CNY") }), Value::Null),
        (routes::CREATE_PAYOUT_BATCH, json(&payout), Value::Null),
        (routes::CREATE_TOPUP, json(&topup), Value::Null),
        (routes::CREATE_WITHDRAWAL, json(&withdrawal), Value::Null),
        (routes::CREATE_WALLET_TRANSFER, json(&wallet), Value::Null),
        (
            routes::CREATE_PAYMENT,
            json(&payment),
            json(&PaymentBody::new("pay-2", "alice", "tea", "CNY", amount(1))),
        ),
        (
            routes::CAPTURE_PAYMENT,
            json(&CaptureBody { amount: Some(amount(5)) }),
            json(&CaptureBody::default()),
        ),
        (
            routes::CREATE_REFUND,
            json(&RefundBody { reference: text("rf-1"), amount: amount(5) }),
            Value::Null,
        ),
        (routes::SET_FX_RATE, json(&fx(Some("market"))), json(&fx(None))),
        (
            routes::CREATE_ENDPOINT,
            json(&EndpointRequest { url: text("https://shop.example/hooks") }),
            Value::Null,
        ),
        (
            routes::UPLOAD_STATEMENT,
            json(&UploadRequest {
                channel: text("bank_a"),
                business_day: text("2026-01-02"),
                content: text("header\n"),
            }),
            Value::Null,
        ),
        (
            routes::FETCH_STATEMENT,
            json(&FetchRequest { channel: text("bank_a"), business_day: text("2026-01-02") }),
            Value::Null,
        ),
        (routes::START_RUN, json(&run(true)), json(&run(false))),
        (routes::ASSIGN_BREAK, json(&AssignRequest { assignee: text("li.wei@ops") }), Value::Null),
        (
            routes::PROPOSE_RESOLUTION,
            json(&propose(ResolutionRequest::CreditCustomer {
                tenant: Some(text("acme")),
                customer: Some(text("alice")),
            })),
            json(&propose(ResolutionRequest::CreditCustomer { tenant: None, customer: None })),
        ),
        (routes::PROPOSE_RESOLUTION, json(&propose(ResolutionRequest::RefundPayer)), Value::Null),
        (routes::PROPOSE_RESOLUTION, json(&propose(ResolutionRequest::Adjust)), Value::Null),
        (routes::PROPOSE_RESOLUTION, json(&propose(ResolutionRequest::WriteOff)), Value::Null),
        (
            routes::PROPOSE_RESOLUTION,
            json(&propose(ResolutionRequest::Recover { loss_id: text("loss_1") })),
            Value::Null,
        ),
        (routes::PROPOSE_RESOLUTION, json(&propose(ResolutionRequest::ForceMatch)), Value::Null),
        (routes::APPROVE_RESOLUTION, json(&ApproveRequest {}), Value::Null),
        (routes::REJECT_RESOLUTION, json(&RejectRequest { reason: text("no") }), Value::Null),
        (routes::APPROVE_ACTION, json(&DecisionBody { reason: text("seen") }), Value::Null),
        (routes::REJECT_ACTION, json(&DecisionBody { reason: text("no") }), Value::Null),
        (
            routes::PROPOSE_OUTCOME,
            json(&outcome(succeeded(Some(amount(3))), Some("INC-3"))),
            json(&outcome(OutcomeBody::Failed, None)),
        ),
        (routes::PROPOSE_OUTCOME, json(&outcome(OutcomeBody::Failed, Some("INC-4"))), Value::Null),
        (routes::PROPOSE_OUTCOME, Value::Null, json(&outcome(succeeded(None), None))),
        (routes::PROPOSE_RETURN, json(&ret(Some("INC-5"))), json(&ret(None))),
        (
            routes::SET_SWITCH,
            json(&set_switch),
            json(&SetSwitchBody::new(SwitchBody::KillAll, true, "incident")),
        ),
        (routes::ROLLBACK_SWITCH, json(&rollback(true)), json(&rollback(false))),
        (routes::RUN_PLAN, json(&plan(true)), json(&plan(false))),
        (routes::ROLLBACK_PLAN, json(&plan(true)), json(&plan(false))),
    ]
}

/// Every switch a request can name.
fn switches() -> Vec<SwitchBody> {
    let channel = || text("bank_a");
    vec![
        SwitchBody::KillAll,
        SwitchBody::KillProduct { product: ProductName::Withdrawal },
        SwitchBody::KillMerchant { tenant: text("acme"), merchant: text("tea") },
        SwitchBody::HistoryReadsOff,
        SwitchBody::BulkOff,
        SwitchBody::SettlementPaused,
        SwitchBody::WebhooksDelayed,
        SwitchBody::PayoutsFrozen { channel: channel() },
        SwitchBody::ChannelDisabled { channel: channel() },
        SwitchBody::ChannelPinned { channel: channel() },
        SwitchBody::ChannelWeight { channel: channel() },
    ]
}

#[test]
fn request_bodies_have_exactly_the_documents_shapes() {
    let doc = document::load();
    for (route, full, minimal) in bodies() {
        let schema = request_schema(&doc, route);
        if !full.is_null() {
            let broken = violations(&doc, schema, &full);
            assert!(broken.is_empty(), "{route:?} {full}: {broken:?}");
            let missing = missing_properties(&doc, schema, &full);
            assert!(missing.is_empty(), "{route:?} {full} leaves out {missing:?}");
        }
        if !minimal.is_null() {
            let broken = violations(&doc, schema, &minimal);
            assert!(broken.is_empty(), "{route:?} {minimal}: {broken:?}");
            let sent: BTreeSet<&String> = minimal.as_object().unwrap().keys().collect();
            let required = required_names(&doc, schema, &minimal);
            assert_eq!(sent, required.iter().collect(), "{route:?}: only the required fields");
        }
    }
    let schema = &doc["components"]["schemas"]["SwitchBody"];
    for switch in switches() {
        let value = json(&switch);
        let broken = violations(&doc, schema, &value);
        assert!(broken.is_empty(), "{value}: {broken:?}");
        assert!(missing_properties(&doc, schema, &value).is_empty(), "{value}");
    }
}

/// The required names of the object schema (or the `oneOf` variant) `value` matches.
fn required_names(doc: &Value, schema: &Value, value: &Value) -> BTreeSet<String> {
    let schema = document::resolve(doc, schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let variant =
            variants.iter().find(|variant| violations(doc, variant, value).is_empty()).unwrap();
        return required_names(doc, variant, value);
    }
    let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
    required.iter().map(|name| name.as_str().unwrap().to_string()).collect()
}

#[test]
fn every_write_with_a_body_is_checked_and_every_other_sends_none() {
    let doc = document::load();
    let checked: BTreeSet<Route> = bodies().into_iter().map(|(route, _, _)| route).collect();
    for &route in OPERATIONS {
        let takes_body = document::operation(&doc, route).get("requestBody").is_some();
        // A channel's callback carries the channel's own bytes, which the document leaves open.
        if route == routes::CHANNEL_CALLBACK {
            continue;
        }
        assert_eq!(takes_body, checked.contains(&route), "{route:?}");
    }
}

#[test]
fn enums_name_the_documents_values() {
    let doc = document::load();
    let known: &[(&str, &[&str])] = &[
        ("AccountClass", AccountClass::KNOWN),
        ("AccountStatus", AccountStatus::KNOWN),
        ("Scope", Scope::KNOWN),
        ("KeyMode", KeyMode::KNOWN),
        ("TransferKind", client::transfers::TransferKind::KNOWN),
        ("Side", client::ledger::Side::KNOWN),
        ("OrderKind", client::orders::OrderKind::KNOWN),
        ("DeliveryState", client::webhooks::DeliveryState::KNOWN),
        ("BreakClass", client::recon::BreakClass::KNOWN),
        ("TxType", client::recon::TxType::KNOWN),
        ("BreakState", client::breaks::BreakState::KNOWN),
        ("Severity", client::breaks::Severity::KNOWN),
        ("AlertRule", client::checks::AlertRule::KNOWN),
        ("AlertState", client::checks::AlertState::KNOWN),
        ("ActionStateName", client::ops::ActionStateName::KNOWN),
        ("ProductName", ProductName::KNOWN),
    ];
    for (name, values) in known {
        let documented: Vec<&str> = doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is no enum"))
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect();
        assert_eq!(&documented, values, "{name}");
    }
    // The server's own scopes are the client's.
    let server_scopes: Vec<&str> = access::Scope::ALL.iter().map(|scope| scope.as_str()).collect();
    assert_eq!(server_scopes, Scope::KNOWN);
}
