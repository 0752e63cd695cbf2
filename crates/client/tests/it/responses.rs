//! The client decodes every answer docs/openapi.json describes: for each operation, samples
//! of its success schema — every field set, only the required ones, nullable ones `null` —
//! decode into the method's type. So no field the client requires is optional in the
//! document, and every type matches; fields the client does not know are ignored.

use std::collections::BTreeSet;

use client::breaks::{BreakView, Resolution};
use client::checks::{AlertView, CheckRunView};
use client::days::ClosedDayView;
use client::keys::{KeyView, RevokedKeyView};
use client::ledger::{
    AccountLayout, AccountStatusView, AccountView, AssetView, BalanceRule, BalanceView, ChartView,
    EntryView, TrialBalanceView, VerifyView,
};
use client::ops::{ActionView, AuditCheckView, AuditList, InquiryView, OverdueOrderView};
use client::orders::{EventView, OrderView};
use client::overview::{BalanceSheetView, JournalHeadView, OverviewView};
use client::parties::PartyView;
use client::payments::{FxRateView, PayoutBatchView, SettlementRunView};
use client::recon::{LossReport, LossView, RunView, StatementReceived, StatementView};
use client::routes::{self, Route};
use client::switches::{PlanView, SwitchView};
use client::transfers::{BatchResultView, TransferView};
use client::webhooks::{DeliveryView, EndpointView};
use client::{List, OPERATIONS};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::document::{self, response_schema, sample, Fill};

type Decode = fn(&Value) -> Result<(), String>;

fn decodes<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(value.clone()).map(|_| ()).map_err(|error| error.to_string())
}

/// Each operation that answers JSON, with the type its method decodes.
fn answers() -> Vec<(Route, Decode)> {
    vec![
        (routes::CREATE_ASSET, decodes::<AssetView>),
        (routes::CREATE_CHART, decodes::<ChartView>),
        (routes::CREATE_ACCOUNT, decodes::<AccountView>),
        (routes::GET_ACCOUNT, decodes::<AccountView>),
        (routes::GET_BALANCE, decodes::<BalanceView>),
        (routes::LIST_ENTRIES, decodes::<List<EntryView>>),
        (routes::SET_ACCOUNT_STATUS, decodes::<AccountStatusView>),
        (routes::TRIAL_BALANCE, decodes::<TrialBalanceView>),
        (routes::VERIFY_JOURNAL, decodes::<VerifyView>),
        (routes::JOURNAL_HEAD, decodes::<JournalHeadView>),
        (routes::CREATE_TRANSFER, decodes::<TransferView>),
        (routes::CREATE_BATCH, decodes::<BatchResultView>),
        (routes::GET_TRANSFER, decodes::<TransferView>),
        (routes::POST_PENDING, decodes::<TransferView>),
        (routes::VOID_PENDING, decodes::<TransferView>),
        (routes::LIST_KEYS, decodes::<List<KeyView>>),
        (routes::CREATE_KEY, decodes::<KeyView>),
        (routes::REVOKE_KEY, decodes::<RevokedKeyView>),
        (routes::CREATE_CUSTOMER, decodes::<PartyView>),
        (routes::GET_CUSTOMER, decodes::<PartyView>),
        (routes::CREATE_MERCHANT, decodes::<PartyView>),
        (routes::GET_MERCHANT, decodes::<PartyView>),
        (routes::GRANT_POINTS, decodes::<OrderView>),
        (routes::LIST_FX_RATES, decodes::<List<FxRateView>>),
        (routes::SET_FX_RATE, decodes::<FxRateView>),
        (routes::CREATE_PAYOUT_BATCH, decodes::<PayoutBatchView>),
        (routes::GET_PAYOUT_BATCH, decodes::<PayoutBatchView>),
        (routes::SETTLE_MERCHANT, decodes::<SettlementRunView>),
        (routes::CREATE_PAYMENT, decodes::<OrderView>),
        (routes::CANCEL_PAYMENT, decodes::<OrderView>),
        (routes::CAPTURE_PAYMENT, decodes::<OrderView>),
        (routes::CREATE_REFUND, decodes::<OrderView>),
        (routes::CREATE_TOPUP, decodes::<OrderView>),
        (routes::CREATE_WALLET_TRANSFER, decodes::<OrderView>),
        (routes::CREATE_WITHDRAWAL, decodes::<OrderView>),
        (routes::CHANNEL_CALLBACK, decodes::<Value>),
        (routes::LIST_EVENTS, decodes::<List<EventView>>),
        (routes::RUN_INSPECTION, decodes::<Value>),
        (routes::LIST_ORDERS, decodes::<List<OrderView>>),
        (routes::GET_ORDER, decodes::<OrderView>),
        (routes::LIST_DELIVERIES, decodes::<List<DeliveryView>>),
        (routes::RETRY_DELIVERY, decodes::<Value>),
        (routes::LIST_ENDPOINTS, decodes::<List<EndpointView>>),
        (routes::CREATE_ENDPOINT, decodes::<EndpointView>),
        (routes::DISABLE_ENDPOINT, decodes::<Value>),
        (routes::LIST_ALERTS, decodes::<List<AlertView>>),
        (routes::LIST_CHECKS, decodes::<List<CheckRunView>>),
        (routes::RUN_CHECKS, decodes::<CheckRunView>),
        (routes::GET_CHECK, decodes::<CheckRunView>),
        (routes::LIST_DAYS, decodes::<List<ClosedDayView>>),
        (routes::GET_DAY, decodes::<ClosedDayView>),
        (routes::CLOSE_DAY, decodes::<ClosedDayView>),
        (routes::LOSS_REPORT, decodes::<LossReport>),
        (routes::LIST_LOSSES, decodes::<List<LossView>>),
        (routes::GET_LOSS, decodes::<LossView>),
        (routes::LIST_RUNS, decodes::<List<RunView>>),
        (routes::START_RUN, decodes::<RunView>),
        (routes::GET_RUN, decodes::<RunView>),
        (routes::LIST_STATEMENTS, decodes::<List<StatementView>>),
        (routes::UPLOAD_STATEMENT, decodes::<StatementReceived>),
        (routes::FETCH_STATEMENT, decodes::<StatementReceived>),
        (routes::GET_STATEMENT, decodes::<StatementView>),
        (routes::LIST_BREAKS, decodes::<List<BreakView>>),
        (routes::GET_BREAK, decodes::<BreakView>),
        (routes::APPROVE_RESOLUTION, decodes::<BreakView>),
        (routes::ASSIGN_BREAK, decodes::<BreakView>),
        (routes::PROPOSE_RESOLUTION, decodes::<BreakView>),
        (routes::REJECT_RESOLUTION, decodes::<BreakView>),
        (routes::LIST_ACTIONS, decodes::<List<ActionView>>),
        (routes::GET_ACTION, decodes::<ActionView>),
        (routes::APPROVE_ACTION, decodes::<ActionView>),
        (routes::REJECT_ACTION, decodes::<ActionView>),
        (routes::LIST_AUDIT, decodes::<AuditList>),
        (routes::VERIFY_AUDIT, decodes::<AuditCheckView>),
        (routes::BALANCE_SHEET_VIEW, decodes::<BalanceSheetView>),
        (routes::LIST_ESCALATED, decodes::<List<InquiryView>>),
        (routes::ASK_NOW, decodes::<InquiryView>),
        (routes::PROPOSE_OUTCOME, decodes::<ActionView>),
        (routes::LIST_EXCEPTIONS, decodes::<List<OverdueOrderView>>),
        (routes::LIST_OVERDUE, decodes::<List<OverdueOrderView>>),
        (routes::PROPOSE_RETURN, decodes::<ActionView>),
        (routes::OVERVIEW, decodes::<OverviewView>),
        (routes::LIST_PLANS, decodes::<List<PlanView>>),
        (routes::ROLLBACK_PLAN, decodes::<List<SwitchView>>),
        (routes::RUN_PLAN, decodes::<List<SwitchView>>),
        (routes::LIST_SWITCHES, decodes::<List<SwitchView>>),
        (routes::SET_SWITCH, decodes::<List<SwitchView>>),
        (routes::ROLLBACK_SWITCH, decodes::<List<SwitchView>>),
        (routes::SWITCH_VERSIONS, decodes::<List<SwitchView>>),
    ]
}

/// Text answers (CSV, Prometheus, plain) and the document itself, which has no schema.
fn answers_without_schema(doc: &Value, route: Route) -> bool {
    let responses = document::operation(doc, route)["responses"].as_object().unwrap();
    responses.iter().filter(|(status, _)| status.starts_with('2')).all(|(_, answer)| {
        answer["content"].get("application/json").is_none_or(|json| json.get("schema").is_none())
    })
}

#[test]
fn every_documented_answer_decodes_into_its_type() {
    let doc = document::load();
    let answers = answers();
    for (route, decode) in &answers {
        let schema = response_schema(&doc, *route);
        for fill in [Fill::Full, Fill::Required, Fill::Nulls] {
            let value = sample(&doc, schema, fill);
            if let Err(error) = decode(&value) {
                panic!("{route:?} ({fill:?}) does not decode: {error}\n{value:#}");
            }
        }
    }
    let decoded: BTreeSet<Route> = answers.iter().map(|(route, _)| *route).collect();
    for &route in OPERATIONS {
        assert_eq!(
            decoded.contains(&route),
            !answers_without_schema(&doc, route),
            "{route:?}: every JSON answer is decoded, and only those"
        );
    }
}

/// Each variant of a `oneOf` decodes into its own variant, never into `Unknown`.
fn each_variant<T: DeserializeOwned + std::fmt::Debug>(name: &str, is_unknown: fn(&T) -> bool) {
    let doc = document::load();
    let variants = doc["components"]["schemas"][name]["oneOf"].as_array().unwrap().clone();
    for variant in &variants {
        let value = sample(&doc, variant, Fill::Full);
        let decoded: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|error| panic!("{name} {value}: {error}"));
        assert!(!is_unknown(&decoded), "{name} {value} read as {decoded:?}");
    }
}

#[test]
fn every_variant_of_a_shown_union_decodes() {
    each_variant::<BalanceRule>("BalanceRule", |rule| matches!(rule, BalanceRule::Unknown));
    each_variant::<AccountLayout>("AccountLayout", |layout| {
        matches!(layout, AccountLayout::Unknown)
    });
    each_variant::<Resolution>("Resolution", |resolution| {
        matches!(resolution, Resolution::Unknown)
    });
    // A newer service's kind decodes too.
    let newer: BalanceRule = serde_json::from_str(r#"{"type": "quantum", "x": 1}"#).unwrap();
    assert_eq!(newer, BalanceRule::Unknown);
}
