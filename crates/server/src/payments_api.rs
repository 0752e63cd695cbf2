//! `/v1` payment-core endpoints: the products (top-up, withdrawal, wallet and card payment,
//! capture and cancel, refund, wallet transfer, points, FX rates, settlement and payout
//! batches). Handlers parse, authorise and hand over to the executor; every order belongs to
//! the caller's tenant, and another tenant gets 404. Parties are `parties_api`'s; listing
//! orders and events, inspection and callbacks are `orders_api`'s.
//!
//! Creating an order answers once the order has gone as far as it can now: final, or waiting
//! on a channel's answer (status inquiry settles it; `GET /v1/orders/{id}` shows it).

use std::sync::Arc;

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use executor::{
    order_payload, party_key, ExecError, Executor, OrderPayload, OrderRecord, PartyKind,
    PaymentRequest, Placed, RefundRequest, TopUpRequest, WalletTransferRequest, WithdrawalRequest,
};
use money::{Amount, AssetCode};
use payments::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::request::parse;
use crate::views::{to_value, ErrorBody};
use crate::{idempotency, AppState};

/// Orders or events per page when the caller does not say, and at most.
pub const PAGE_LIMIT_DEFAULT: usize = 50;
pub const PAGE_LIMIT_MAX: usize = 500;

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> ApiError {
        let code = error.code();
        let message = error.to_string();
        match &error {
            ExecError::Invalid { field, .. } => ApiError::invalid(code, message).with_param(*field),
            // Well-formed, refused by another field or by the state: 422, never 400 (a 400
            // means the request breaks what the OpenAPI document states).
            ExecError::Refused { field, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_param(*field)
            }
            ExecError::PartyNotFound { .. } | ExecError::OrderNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, code, message)
            }
            ExecError::AssetNotOpened { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_param("asset")
            }
            ExecError::PartyExistsWithDifferentFields { .. }
            | ExecError::OrderExistsWithDifferentFields => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ExecError::NotAllowed { .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            ExecError::NotRefundable(..)
            | ExecError::RefundExceedsPayment
            | ExecError::CaptureRefused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ExecError::LedgerSetup(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ExecError::ChannelNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, code, message),
            ExecError::SwitchedOff(_) => {
                let mut refused = ApiError::unavailable(code, message);
                refused.retry_after_secs = Some(30);
                refused
            }
            ExecError::CallbackRefused(_) => ApiError::new(StatusCode::UNAUTHORIZED, code, message),
            ExecError::Ledger(_) | ExecError::Store(_) => {
                tracing::error!(%error, "payment core unavailable");
                ApiError::unavailable(
                    code,
                    "the payment core cannot reach its store; retry with the same Idempotency-Key",
                )
            }
            _ => ApiError::internal(error),
        }
    }
}

pub(crate) fn executor(state: &AppState) -> Result<Arc<Executor>, ApiError> {
    state.payments.clone().ok_or_else(|| {
        ApiError::unavailable("payments_disabled", "this node does not run the payment core")
    })
}

fn placed(state: &AppState, placed: Placed) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let status = if placed.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, order_payload(&placed.record, livemode(state))))
}

fn live() -> bool {
    true
}

/// Whether the state's book is the live one: an order's `livemode`.
pub(crate) fn livemode(state: &AppState) -> bool {
    state.mode == access::KeyMode::Live
}

// ---- views ---------------------------------------------------------------------------------

/// An order of any product. Webhook events carry the same object.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// `top_…`, `wd_…`, `pay_…`, `rf_…`, `wt_…`: derived from the tenant and `reference`.
    pub id: String,
    #[schema(example = "order")]
    pub object: String,
    #[schema(value_type = crate::views::wire::OrderKind)]
    pub kind: String,
    /// The state machine's state; see docs/payments.md for each kind's states.
    pub status: String,
    /// True once no event but an operator's can change the order.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub reference: String,
    /// None for a settlement.
    pub customer: Option<String>,
    pub merchant: Option<String>,
    pub asset: String,
    /// Minor units, as a decimal string.
    pub amount: String,
    /// A refund's payment.
    pub parent: Option<String>,
    /// The state with its details (channel, channel reference and fee, failure reason). A
    /// card refund whose channel is down waits in `awaiting_channel` (the money held) with
    /// `since_ms`, `attempts` (sends refused), `next_attempt_at_ms` and the last `reason`.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    /// The kind's own terms: a payment's (or card payment's) `fee` to the platform and
    /// points, a card payment's `channel_fee`, a refund's returned fee and points, a
    /// top-up's card, a settlement's cut-off, channels that refused.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// False for an order of the test book (made with a test key, through the test
    /// book's simulated channels). Events stored before the field existed are live.
    #[serde(default = "live")]
    pub livemode: bool,
}

pub(crate) fn view(state: &AppState, record: &OrderRecord) -> OrderView {
    let payload = OrderPayload::of(record, livemode(state));
    OrderView {
        id: payload.id,
        object: payload.object.to_owned(),
        kind: payload.kind.to_owned(),
        status: payload.status.to_owned(),
        is_final: payload.is_final,
        reference: payload.reference,
        customer: payload.customer,
        merchant: payload.merchant,
        asset: payload.asset,
        amount: payload.amount,
        parent: payload.parent,
        state: payload.state,
        detail: payload.detail,
        created_at_ms: payload.created_at_ms,
        updated_at_ms: payload.updated_at_ms,
        livemode: payload.livemode,
    }
}

// ---- merchants' keys ----------------------------------------------------------------------

pub(crate) use crate::tenancy::not_for_merchant_keys;

/// `merchant` must be the key's own; another merchant looks as if it did not exist.
pub(crate) fn own_merchant(caller: &Caller, merchant: &str) -> Result<(), ApiError> {
    match caller.merchant() {
        Some(own) if own != merchant => {
            Err(ExecError::PartyNotFound { kind: PartyKind::Merchant, id: merchant.to_owned() }
                .into())
        }
        _ => Ok(()),
    }
}

/// Whether the caller may see `record`: any order of its tenant, or for a merchant's key
/// only that merchant's.
pub(crate) fn visible(caller: &Caller, record: &OrderRecord) -> bool {
    match caller.merchant() {
        None => true,
        Some(own) => {
            record.order.merchant() == Some(party_key(caller.tenant().as_str(), own).as_str())
        }
    }
}

/// The caller's order `id` (a merchant's key: its merchant's only), else 404.
pub(crate) fn own_order(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<OrderRecord, ApiError> {
    let record = executor(state)?.get(caller.tenant().as_str(), id)?;
    if !visible(caller, &record) {
        return Err(ExecError::OrderNotFound(id.to_owned()).into());
    }
    Ok(record)
}

// ---- products ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::PartyId)]
    customer: String,
    /// The customer's card or bank account at the channel, 1 to 64 characters.
    #[schema(example = "6222020000000001", min_length = 1, max_length = 64)]
    card: String,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    #[schema(value_type = formats::Amount)]
    amount: Amount,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalBody {
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::PartyId)]
    customer: String,
    /// Where the money goes, 1 to 64 characters.
    #[schema(example = "6222020000000001", min_length = 1, max_length = 64)]
    bank_account: String,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    #[schema(value_type = formats::Amount)]
    amount: Amount,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// The merchant's order number, unique per merchant.
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::PartyId)]
    customer: String,
    #[schema(value_type = formats::PartyId)]
    merchant: String,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    /// The whole price; the merchant is credited with all of it.
    #[schema(value_type = formats::Amount)]
    amount: Amount,
    /// Points paying part of it (积分+支付), at the platform's rate; the rest is cash. Zero
    /// or null: none.
    #[serde(default)]
    #[schema(value_type = Option<formats::AmountOrZero>)]
    points: Option<Amount>,
    /// Pay from the customer's wallet in this asset (境外): converted at the platform's
    /// rate, rounded up, the rate recorded on the payment.
    #[serde(default)]
    #[schema(value_type = Option<formats::AssetCode>)]
    pay_from: Option<AssetCode>,
    /// Pay from this bank card (1 to 64 characters) through a channel instead of the wallet
    /// (收单): the merchant is credited once the channel has taken the money. Not with
    /// points, FX or authorisation.
    #[serde(default)]
    #[schema(example = "6222020000000001", min_length = 1, max_length = 64)]
    card: Option<String>,
    /// Authorise only (预授权): hold the money this many seconds (1 to 30 days) for a later
    /// capture or cancel. Absent: capture now.
    #[serde(default)]
    #[schema(example = 604800, minimum = 1, maximum = 2592000)]
    authorize_for_secs: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureBody {
    /// At most what was authorised; the rest of the hold is released. Default: all of it.
    #[serde(default)]
    #[schema(value_type = Option<formats::Amount>)]
    amount: Option<Amount>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Unique per payment.
    #[schema(value_type = formats::Reference)]
    reference: String,
    /// At most what is left of the payment after its other refunds.
    #[schema(value_type = formats::Amount)]
    amount: Amount,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletTransferBody {
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::PartyId)]
    from: String,
    /// Another customer than `from`.
    #[schema(value_type = formats::PartyId)]
    to: String,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    #[schema(value_type = formats::Amount)]
    amount: Amount,
}

/// Top up a wallet from the customer's card through a channel (充值).
#[utoipa::path(post, path = "/v1/topups", tag = "payments", request_body = TopUpBody,
    params(IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_topup(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(
        &state,
        &caller,
        Scope::LedgerWrite,
        &headers,
        "POST /v1/topups",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: TopUpBody = parse(&body)?;
            let request = TopUpRequest {
                reference: request.reference,
                customer: request.customer,
                card: request.card,
                asset: request.asset,
                amount: request.amount,
            };
            placed(&state, executor(&state)?.create_topup(caller.tenant().as_str(), request).await?)
        },
    )
    .await
}

/// Withdraw from a wallet to a bank account (提现): held, paid out, then posted or released.
#[utoipa::path(post, path = "/v1/withdrawals", tag = "payments", request_body = WithdrawalBody,
    params(IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_withdrawal(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(
        &state,
        &caller,
        Scope::LedgerWrite,
        &headers,
        "POST /v1/withdrawals",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: WithdrawalBody = parse(&body)?;
            let request = WithdrawalRequest {
                reference: request.reference,
                customer: request.customer,
                bank_account: request.bank_account,
                asset: request.asset,
                amount: request.amount,
            };
            placed(
                &state,
                executor(&state)?.create_withdrawal(caller.tenant().as_str(), request).await?,
            )
        },
    )
    .await
}

/// Pay a merchant from the wallet (收单); the merchant's fee goes to the platform.
#[utoipa::path(post, path = "/v1/payments", tag = "payments", request_body = PaymentBody,
    params(IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_payment(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(
        &state,
        &caller,
        Scope::LedgerWrite,
        &headers,
        "POST /v1/payments",
        &body,
        async {
            let request: PaymentBody = parse(&body)?;
            own_merchant(&caller, &request.merchant)?;
            if let Some(card) = request.card {
                if request.points.is_some()
                    || request.pay_from.is_some()
                    || request.authorize_for_secs.is_some()
                {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "field_refused",
                        "a card payment takes no points, pay_from or authorize_for_secs",
                    )
                    .with_param("card"));
                }
                let request = executor::CardPaymentRequest {
                    reference: request.reference,
                    customer: request.customer,
                    merchant: request.merchant,
                    card,
                    asset: request.asset,
                    amount: request.amount,
                };
                return placed(
                    &state,
                    executor(&state)?
                        .create_card_payment(caller.tenant().as_str(), request)
                        .await?,
                );
            }
            let request = PaymentRequest {
                reference: request.reference,
                customer: request.customer,
                merchant: request.merchant,
                asset: request.asset,
                amount: request.amount,
                points: request.points,
                pay_from: request.pay_from,
                authorize_for_secs: request.authorize_for_secs,
            };
            placed(
                &state,
                executor(&state)?.create_payment(caller.tenant().as_str(), request).await?,
            )
        },
    )
    .await
}

/// Capture an authorised payment (all, or part: the rest of the hold is released).
#[utoipa::path(post, path = "/v1/payments/{id}/capture", tag = "payments", request_body = CaptureBody,
    params(("id" = formats::OrderId, Path), IdempotencyKey),
    responses((status = 200, body = OrderView), (status = "4XX", body = ErrorBody)))]
pub async fn capture_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/payments/{id}/capture");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        own_order(&state, &caller, &id)?;
        let request: CaptureBody =
            if body.is_empty() { CaptureBody { amount: None } } else { parse(&body)? };
        let executor = executor(&state)?;
        let tenant = caller.tenant().as_str();
        let amount = match request.amount {
            Some(amount) => amount,
            None => match &executor.get(tenant, &id)?.order {
                payments::Order::Payment(payment) => payment.capturable(),
                _ => return Err(ExecError::OrderNotFound(id.clone()).into()),
            },
        };
        let record = executor.capture(tenant, &id, amount).await?;
        Ok((StatusCode::OK, order_payload(&record, livemode(&state))))
    })
    .await
}

/// Cancel an authorised payment: the hold is released.
#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = formats::OrderId, Path), IdempotencyKey),
    responses((status = 200, body = OrderView), (status = "4XX", body = ErrorBody)))]
pub async fn cancel_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/payments/{id}/cancel");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        own_order(&state, &caller, &id)?;
        let record = executor(&state)?.cancel(caller.tenant().as_str(), &id).await?;
        Ok((StatusCode::OK, order_payload(&record, livemode(&state))))
    })
    .await
}

/// Refund (part of) a payment back to the wallet, with the matching share of the fee.
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "payments", request_body = RefundBody,
    params(("id" = formats::OrderId, Path), IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_refund(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/payments/{id}/refunds");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        own_order(&state, &caller, &id)?;
        let request: RefundBody = parse(&body)?;
        let payment =
            OrderId::new(id.as_str()).map_err(|_| ExecError::OrderNotFound(id.clone()))?;
        let request =
            RefundRequest { reference: request.reference, payment, amount: request.amount };
        placed(&state, executor(&state)?.create_refund(caller.tenant().as_str(), request).await?)
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointsGrantBody {
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::Amount)]
    points: Amount,
}

/// Give a customer points (积分): a reward the platform pays for when they are spent.
#[utoipa::path(post, path = "/v1/customers/{id}/points", tag = "payments", request_body = PointsGrantBody,
    params(("id" = formats::PartyId, Path), IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn grant_points(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/customers/{id}/points");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        not_for_merchant_keys(&caller)?;
        let request: PointsGrantBody = parse(&body)?;
        placed(
            &state,
            executor(&state)?
                .grant_points(caller.tenant().as_str(), &id, &request.reference, request.points)
                .await?,
        )
    })
    .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FxRateView {
    /// The payment's asset.
    #[schema(value_type = formats::AssetCode)]
    pub asset: String,
    /// The wallet's asset that funds it: another asset than `asset`.
    #[schema(value_type = formats::AssetCode)]
    pub funding: String,
    #[schema(value_type = formats::FxRate)]
    pub rate: String,
}

/// An exchange rate to set, and why (kept in the audit log).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FxRateRequest {
    /// The payment's asset.
    #[schema(value_type = formats::AssetCode)]
    pub asset: String,
    /// The wallet's asset that funds it: another asset than `asset`.
    #[schema(value_type = formats::AssetCode)]
    pub funding: String,
    #[schema(value_type = formats::FxRate)]
    pub rate: String,
    /// Why (the audit log keeps it); `set through the API` when not given.
    #[serde(default)]
    #[schema(value_type = Option<formats::Reason>)]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FxRateList {
    pub object: &'static str,
    pub data: Vec<FxRateView>,
}

/// Set an exchange rate (admin). Stored as the pair's next version and audited (`fx.set`),
/// so every node prices alike within a second; payments record the rate they used.
#[utoipa::path(put, path = "/v1/fx-rates", tag = "payments", request_body = FxRateRequest,
    responses((status = 200, body = FxRateView), (status = "4XX", body = ErrorBody)))]
pub async fn set_fx_rate(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<axum::Json<FxRateView>, ApiError> {
    caller.require(Scope::Admin)?;
    let request: FxRateRequest = parse(&body)?;
    let reason = request.reason.clone().unwrap_or_else(|| "set through the API".to_owned());
    crate::request::checked_words(&reason, None)?;
    let asset = |raw: &str, field: &str| {
        AssetCode::new(raw)
            .map_err(|e| ApiError::invalid("invalid_asset", e.to_string()).with_param(field))
    };
    let (payment_asset, funding) =
        (asset(&request.asset, "asset")?, asset(&request.funding, "funding")?);
    if payment_asset == funding {
        // Each is well-formed; together they are refused (422, as no schema can say it).
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_refused",
            "the two assets must differ",
        )
        .with_param("funding"));
    }
    let rate = payments::booking::Rate::parse(&request.rate).ok_or_else(|| {
        ApiError::invalid("invalid_rate", "a positive decimal with at most 10 decimals")
            .with_param("rate")
    })?;
    let executor = executor(&state)?;
    if let Some(desk) = state.desk.clone() {
        let actor = caller.key.id.to_string();
        crate::request::blocking(move || {
            Ok(desk.set_fx_rate(&actor, payment_asset, funding, rate, &reason)?)
        })
        .await?;
    }
    executor.set_fx_rate(payment_asset, funding, rate);
    Ok(axum::Json(FxRateView {
        asset: request.asset,
        funding: request.funding,
        rate: rate.to_string(),
    }))
}

/// The exchange rates in force.
#[utoipa::path(get, path = "/v1/fx-rates", tag = "payments",
    responses((status = 200, body = FxRateList), (status = "4XX", body = ErrorBody)))]
pub async fn list_fx_rates(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<FxRateList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let data = executor(&state)?
        .fx_rates()
        .into_iter()
        .map(|(asset, funding, rate)| FxRateView {
            asset: asset.as_str().to_owned(),
            funding: funding.as_str().to_owned(),
            rate: rate.to_string(),
        })
        .collect();
    Ok(axum::Json(FxRateList { object: "list", data }))
}

/// Move money between two customers' wallets (转账), immediately.
#[utoipa::path(post, path = "/v1/wallet-transfers", tag = "payments", request_body = WalletTransferBody,
    params(IdempotencyKey),
    responses((status = 201, body = OrderView), (status = 200, description = "a retry of the same reference", body = OrderView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_wallet_transfer(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(
        &state,
        &caller,
        Scope::LedgerWrite,
        &headers,
        "POST /v1/wallet-transfers",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: WalletTransferBody = parse(&body)?;
            let request = WalletTransferRequest {
                reference: request.reference,
                from: request.from,
                to: request.to,
                asset: request.asset,
                amount: request.amount,
            };
            placed(
                &state,
                executor(&state)?.create_wallet_transfer(caller.tenant().as_str(), request).await?,
            )
        },
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementBody {
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
}

#[derive(Serialize, ToSchema)]
pub struct SettlementRunView {
    #[schema(example = "settlement_run")]
    pub object: &'static str,
    /// False when there was nothing to settle up to the cut-off.
    pub settled: bool,
    pub settlement: Option<OrderView>,
}

/// Settle a merchant now (结算): its takings up to the T+N cut-off move from unsettled to
/// settled. Once per merchant, asset and cut-off day; the scheduled run does the same.
#[utoipa::path(post, path = "/v1/merchants/{id}/settlements", tag = "payments", request_body = SettlementBody,
    params(("id" = formats::PartyId, Path), IdempotencyKey),
    responses((status = 201, body = SettlementRunView), (status = 200, description = "already settled for this cut-off, or nothing to settle", body = SettlementRunView),
        (status = "4XX", body = ErrorBody)))]
pub async fn settle_merchant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/merchants/{id}/settlements");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        own_merchant(&caller, &id)?;
        let request: SettlementBody = parse(&body)?;
        let run = executor(&state)?.settle(caller.tenant().as_str(), &id, request.asset).await?;
        let (status, settlement) = match run {
            Some(placed) => (
                if placed.created { StatusCode::CREATED } else { StatusCode::OK },
                Some(view(&state, &placed.record)),
            ),
            None => (StatusCode::OK, None),
        };
        let settled = settlement.is_some();
        Ok((status, to_value(SettlementRunView { object: "settlement_run", settled, settlement })?))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutItemBody {
    /// Unique within the batch.
    #[schema(value_type = formats::Reference)]
    reference: String,
    /// 1 to 64 characters.
    #[schema(example = "6222020000000001", min_length = 1, max_length = 64)]
    bank_account: String,
    #[schema(value_type = formats::Amount)]
    amount: Amount,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutBatchBody {
    /// The merchant's batch number: a retry with it creates nothing twice.
    #[schema(value_type = formats::Reference)]
    reference: String,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    /// 1 to 1,000 payouts, each with its own reference.
    #[schema(min_items = 1, max_items = 1000)]
    items: Vec<PayoutItemBody>,
}

#[derive(Serialize, ToSchema)]
pub struct PayoutTotal {
    pub count: u64,
    /// Minor units.
    pub amount: String,
}

#[derive(Serialize, ToSchema)]
pub struct PayoutBatchView {
    /// `pb_…`
    pub id: String,
    #[schema(example = "payout_batch")]
    pub object: &'static str,
    pub merchant: String,
    /// `processing` while any item is not final, then `completed`.
    pub status: &'static str,
    pub succeeded: PayoutTotal,
    /// Failed items: their money is back in the merchant's settled balance.
    pub failed: PayoutTotal,
    pub processing: PayoutTotal,
    pub items: Vec<OrderView>,
}

fn batch_view(
    state: &AppState,
    id: &str,
    merchant: &str,
    items: &[OrderRecord],
) -> Result<PayoutBatchView, ApiError> {
    let totals = executor::PayoutBatchTotals::of(items);
    let total = |t: executor::PayoutTotal| PayoutTotal {
        count: t.count,
        amount: t.amount_minor.to_string(),
    };
    Ok(PayoutBatchView {
        id: id.to_owned(),
        object: "payout_batch",
        merchant: merchant.to_owned(),
        status: if totals.completed() { "completed" } else { "processing" },
        succeeded: total(totals.succeeded),
        failed: total(totals.failed),
        processing: total(totals.processing),
        items: items.iter().map(|item| view(state, item)).collect(),
    })
}

/// Pay out many bank accounts from a merchant's settled takings at once (批量代付). Every
/// item is stored before the answer (202) and carried out in the background; each has its
/// own state, and a failed item's money goes back to the merchant.
#[utoipa::path(post, path = "/v1/merchants/{id}/payout-batches", tag = "payments", request_body = PayoutBatchBody,
    params(("id" = formats::PartyId, Path), IdempotencyKey),
    responses((status = 202, body = PayoutBatchView), (status = "4XX", body = ErrorBody)))]
pub async fn create_payout_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/merchants/{id}/payout-batches");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        own_merchant(&caller, &id)?;
        let request: PayoutBatchBody = parse(&body)?;
        let executor = executor(&state)?;
        let tenant = caller.tenant().as_str();
        let batch = executor
            .create_payout_batch(
                tenant,
                executor::PayoutBatchRequest {
                    reference: request.reference,
                    merchant: id.clone(),
                    asset: request.asset,
                    items: request
                        .items
                        .into_iter()
                        .map(|item| executor::PayoutItem {
                            reference: item.reference,
                            bank_account: item.bank_account,
                            amount: item.amount,
                        })
                        .collect(),
                },
            )
            .await?;
        let items = executor.payout_batch(tenant, batch.as_str())?;
        Ok((StatusCode::ACCEPTED, to_value(batch_view(&state, batch.as_str(), &id, &items)?)?))
    })
    .await
}

/// A payout batch with its totals and every item.
#[utoipa::path(get, path = "/v1/payout-batches/{id}", tag = "payments",
    params(("id" = formats::OrderId, Path)),
    responses((status = 200, body = PayoutBatchView), (status = "4XX", body = ErrorBody)))]
pub async fn get_payout_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<PayoutBatchView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let items = executor(&state)?.payout_batch(caller.tenant().as_str(), &id)?;
    if !items.iter().all(|item| visible(&caller, item)) {
        return Err(ExecError::OrderNotFound(id).into());
    }
    let merchant = items
        .first()
        .and_then(|item| item.order.merchant())
        .map(|key| key.split_once('/').map_or(key, |(_, id)| id).to_owned())
        .unwrap_or_default();
    Ok(axum::Json(batch_view(&state, &id, &merchant, &items)?))
}
