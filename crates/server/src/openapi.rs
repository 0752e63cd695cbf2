//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! [`crate::views`] types, served at `/v1/openapi.json` and checked in as `docs/openapi.json`
//! (a test fails when the two differ; `QIANBAO_UPDATE_OPENAPI=1` rewrites the file).

use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    actions_api, breaks_api, checks_api, days_api, formats, keys_api, ledger_api, operators_api,
    ops, orders_api, overview_api, parties_api, payments_api, recon_api, switches_api,
    webhooks_api,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Qianbao API",
        description = "The wallet and payment platform's HTTP API. Conventions, error codes, \
                       limits and request signing: docs/api.md.",
        license(name = "Apache-2.0"),
    ),
    paths(
        ledger_api::create_asset,
        ledger_api::create_chart,
        ledger_api::create_account,
        ledger_api::get_account,
        ledger_api::set_account_status,
        ledger_api::list_entries,
        ledger_api::get_balance,
        ledger_api::create_transfer,
        ledger_api::create_batch,
        ledger_api::get_transfer,
        ledger_api::post_pending,
        ledger_api::void_pending,
        ledger_api::trial_balance,
        ledger_api::verify_journal,
        parties_api::create_customer,
        parties_api::get_customer,
        payments_api::grant_points,
        parties_api::create_merchant,
        parties_api::get_merchant,
        payments_api::settle_merchant,
        payments_api::create_payout_batch,
        payments_api::get_payout_batch,
        payments_api::create_topup,
        payments_api::create_withdrawal,
        payments_api::create_payment,
        payments_api::create_refund,
        payments_api::capture_payment,
        payments_api::cancel_payment,
        payments_api::create_wallet_transfer,
        payments_api::set_fx_rate,
        payments_api::list_fx_rates,
        orders_api::list_orders,
        orders_api::get_order,
        orders_api::list_events,
        orders_api::run_inspection,
        orders_api::channel_callback,
        webhooks_api::create_endpoint,
        webhooks_api::list_endpoints,
        webhooks_api::disable_endpoint,
        webhooks_api::list_deliveries,
        webhooks_api::retry_delivery,
        recon_api::upload_statement,
        recon_api::fetch_statement,
        recon_api::list_statements,
        recon_api::get_statement,
        recon_api::get_statement_content,
        recon_api::start_run,
        recon_api::list_runs,
        recon_api::get_run,
        breaks_api::list_breaks,
        breaks_api::get_break,
        breaks_api::assign_break,
        breaks_api::propose_resolution,
        breaks_api::approve_resolution,
        breaks_api::reject_resolution,
        recon_api::list_losses,
        recon_api::get_loss,
        recon_api::loss_report,
        checks_api::run_checks,
        checks_api::list_checks,
        checks_api::get_check,
        checks_api::list_alerts,
        days_api::list_days,
        days_api::get_day,
        days_api::get_day_csv,
        days_api::get_merchants_csv,
        days_api::get_channels_csv,
        days_api::close_day,
        operators_api::list_escalated,
        operators_api::ask_now,
        operators_api::list_overdue,
        operators_api::list_exceptions,
        overview_api::overview,
        overview_api::balance_sheet_view,
        overview_api::journal_head,
        actions_api::propose_outcome,
        actions_api::propose_return,
        actions_api::list_actions,
        actions_api::get_action,
        actions_api::approve_action,
        actions_api::reject_action,
        actions_api::list_audit,
        actions_api::verify_audit,
        switches_api::list_switches,
        switches_api::switch_versions,
        switches_api::set_switch,
        switches_api::rollback_switch,
        switches_api::list_plans,
        switches_api::run_plan,
        switches_api::rollback_plan,
        keys_api::create_key,
        keys_api::list_keys,
        keys_api::revoke_key,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        openapi_json,
    ),
    // Named formats used only by parameters: utoipa collects schemas from bodies alone.
    components(schemas(
        formats::IdempotencyKey,
        formats::AnyTransferId,
        formats::OrderId,
        formats::Seq,
        crate::views::wire::AlertState,
        actions_api::ActionStateName,
        switches_api::ProductName,
    )),
    modifiers(&BearerKeys, &ClosedVariants, &OptionalBodies),
    security(("api_key" = [])),
    tags(
        (name = "accounts", description = "Accounts, their history and balances"),
        (name = "transfers", description = "Transfers, holds (two-phase) and batches"),
        (name = "books", description = "Assets, chart of accounts, trial balance, journal"),
        (name = "payments", description = "Customers, merchants, top-ups, withdrawals, payments, refunds, wallet transfers, orders and their events"),
        (name = "webhooks", description = "Webhook endpoints and the delivery log"),
        (name = "reconciliation", description = "Reconciliation (对账) for the platform's operators: channel statements, runs, breaks and their maker–checker resolution, the loss register (`recon:*` scopes)"),
        (name = "keys", description = "API keys (admin)"),
        (name = "operations", description = "Health, readiness, metrics; for the platform's operators (`ops:*` scopes), status inquiries and orders that need them, their actions with maker–checker approval (`ops:approve`), the hash-chained audit log"),
    ),
)]
pub struct ApiDoc;

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("qb_live_… or qb_test_…")
                    .build(),
            ),
        );
    }
}

/// The variants of request enums whose serde form denies unknown fields: utoipa closes
/// structs (`additionalProperties: false`) but not the variants of an internally tagged enum.
struct ClosedVariants;

/// Request enums read with `#[serde(deny_unknown_fields)]`.
const CLOSED_ENUMS: &[&str] =
    &["TransferRequest", "ResolutionRequest", "OutcomeBody", "SwitchBody"];

impl Modify for ClosedVariants {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::RefOr;
        let Some(components) = openapi.components.as_mut() else { return };
        for name in CLOSED_ENUMS {
            let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(*name) else {
                continue;
            };
            for variant in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = variant {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// Operations that read no body as every field omitted: their body is optional, but never
/// `null` (utoipa can only say "optional" by allowing `null`, which the server refuses).
const OPTIONAL_BODIES: &[&str] = &[
    "/v1/transfers/{id}/post",
    "/v1/transfers/{id}/void",
    "/v1/payments/{id}/capture",
    "/v1/recon/breaks/{id}/approve",
];

struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Required;
        for path in OPTIONAL_BODIES {
            let body = openapi
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut());
            if let Some(body) = body {
                body.required = Some(Required::False);
            }
        }
    }
}

/// The document as served: pretty JSON, stable order.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    // The version is the API's, not the crate's: clients compare documents across builds.
    doc.info.version = "1".to_string();
    doc.to_pretty_json().unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
}

/// This document (no key needed).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::document;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    /// The checked-in document is the generated one. After changing the API, regenerate with
    /// `QIANBAO_UPDATE_OPENAPI=1 cargo test -p server openapi` and commit docs/openapi.json.
    #[test]
    fn checked_in_document_is_current() {
        let generated = document() + "\n";
        if std::env::var_os("QIANBAO_UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).expect("write docs/openapi.json");
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from the generated document; regenerate it with \
             QIANBAO_UPDATE_OPENAPI=1 cargo test -p server openapi"
        );
    }

    #[test]
    fn every_operation_documents_its_errors_and_is_openapi_3() {
        let doc: serde_json::Value = serde_json::from_str(&document()).expect("json");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 18, "only {} paths", paths.len());
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().expect("operations") {
                if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
                    continue;
                }
                assert!(
                    operation["responses"].get("4XX").is_some(),
                    "{method} {path} documents no error response"
                );
            }
        }
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert!(doc["components"]["schemas"]["TransferRequest"].is_object());
    }

    /// Every `$ref` names a schema the document has, and every closed request enum is closed.
    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&document()).expect("json");
        let mut pending = vec![&doc];
        let mut n_refs = 0;
        // Bounded by the document's size: each value is visited once.
        while let Some(value) = pending.pop() {
            match value {
                serde_json::Value::Object(fields) => {
                    if let Some(target) = fields.get("$ref").and_then(|r| r.as_str()) {
                        let name = target.trim_start_matches("#/components/schemas/");
                        assert!(doc["components"]["schemas"][name].is_object(), "{target}");
                        n_refs += 1;
                    }
                    pending.extend(fields.values());
                }
                serde_json::Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        assert!(n_refs > 100, "only {n_refs} references");
        for path in super::OPTIONAL_BODIES {
            assert_eq!(doc["paths"][path]["post"]["requestBody"]["required"], false, "{path}");
        }
        for name in super::CLOSED_ENUMS {
            for variant in doc["components"]["schemas"][name]["oneOf"].as_array().expect(name) {
                assert_eq!(variant["additionalProperties"], false, "{name}");
            }
        }
    }
}
