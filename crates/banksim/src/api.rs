//! The HTTP edge: the channel API the platform calls (signed), the admin API tests and
//! operators use (unsigned; listen on loopback only), and the one error shape
//! `{"error": {"code", "message"}}` with a status per code.
//!
//! Handlers are thin: admission and the books live in `channel` and `books`; here we only
//! authenticate, parse, wait out the injected latency and answer (or drop the connection).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use money::{Amount, AssetCode};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::books::{OpenAccountError, OperationRequest, Status};
use crate::callbacks::{CallbackEvent, Dispatcher, DispatcherError};
use crate::channel::{Channel, Deferred, Plan, QueryPlan};
use crate::config::SimConfig;
use crate::faults::{ChannelFaults, Down};
use crate::ids::{AccountName, RequestId};
use crate::signing::{self, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::throttle::OverCapacity;
use crate::view::{CallbackBody, OperationView};
use crate::{statement, time};

/// The whole simulator: its channels and the callback dispatcher.
pub struct Simulator {
    seed: u64,
    signature_skew_s: u64,
    operations_max: usize,
    statement_utc_offset_minutes: i32,
    channels: BTreeMap<String, Arc<Channel>>,
    dispatcher: Dispatcher,
}

impl Simulator {
    pub fn new(config: &SimConfig) -> Result<Arc<Simulator>, DispatcherError> {
        let channels = config
            .channels
            .iter()
            .map(|(name, channel)| {
                (name.to_string(), Arc::new(Channel::new(name.clone(), channel)))
            })
            .collect();
        Ok(Arc::new(Simulator {
            seed: config.seed,
            signature_skew_s: config.signature_skew_s,
            operations_max: config.operations_max,
            statement_utc_offset_minutes: config.statement_utc_offset_minutes,
            channels,
            dispatcher: Dispatcher::new(config.callbacks.clone(), config.seed)?,
        }))
    }

    fn channel(&self, name: &str) -> Result<Arc<Channel>, ApiError> {
        self.channels.get(name).cloned().ok_or(ApiError::UnknownChannel)
    }
}

/// Put into every request by the server loop: notifying it closes the request's TCP
/// connection without an answer (a timeout, a lost response, a channel that is down).
#[derive(Clone)]
pub struct ConnectionKill(pub Arc<Notify>);

pub fn router(sim: Arc<Simulator>) -> Router {
    let channel_api = Router::new()
        .route("/channels/{channel}/debits", post(debit))
        .route("/channels/{channel}/payouts", post(payout))
        .route("/channels/{channel}/refunds", post(refund))
        .route("/channels/{channel}/operations/{request_id}", get(query))
        .route("/channels/{channel}/statements/{date}", get(statement_csv))
        .route("/channels/{channel}/callback", put(put_callback_signed));
    let admin_api = Router::new()
        .route("/admin/channels", get(admin_channels))
        .route("/admin/channels/{channel}/accounts", get(admin_accounts).post(admin_open_account))
        .route("/admin/channels/{channel}/operations", get(admin_operations))
        .route("/admin/channels/{channel}/faults", get(admin_faults).put(admin_put_faults))
        .route("/admin/channels/{channel}/callback", get(admin_callback).put(admin_put_callback))
        .route("/admin/channels/{channel}/callbacks", get(admin_deliveries));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(channel_api)
        .merge(admin_api)
        .with_state(sim)
}

// ---------------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such channel")]
    UnknownChannel,
    #[error("the channel is down")]
    ChannelDown,
    #[error("authentication failed: {0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the bank has no operation with this request id")]
    NotFound,
    #[error("request id {0} is already used by a different request")]
    RequestIdConflict(RequestId),
    #[error("the account already exists")]
    AccountExists,
    #[error("the channel's total money would exceed the largest amount")]
    TooMuchMoney,
    #[error("the channel's operation log is full")]
    CapacityExceeded,
    /// The capacity limit: the same code as a full log, on purpose. Both are the bank
    /// refusing at the door for want of capacity, and the gateway's adapter reads
    /// `503 capacity_exceeded` as "certainly did nothing"; the message tells them apart.
    #[error("{0}")]
    OverCapacity(OverCapacity),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::UnknownChannel => (StatusCode::NOT_FOUND, "unknown_channel"),
            ApiError::ChannelDown => (StatusCode::SERVICE_UNAVAILABLE, "channel_down"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::RequestIdConflict(_) => (StatusCode::CONFLICT, "request_id_conflict"),
            ApiError::AccountExists => (StatusCode::CONFLICT, "account_exists"),
            ApiError::TooMuchMoney => (StatusCode::UNPROCESSABLE_ENTITY, "too_much_money"),
            ApiError::CapacityExceeded | ApiError::OverCapacity(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "capacity_exceeded")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::OverCapacity(over) = &self {
            // Whole seconds, rounded up: a client that waits that long finds a token.
            let retry_after_s = over.retry_after_ms.div_ceil(1_000).max(1);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_s),
            );
        }
        response
    }
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest(message.to_string())
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(invalid)
}

// ---------------------------------------------------------------------------------------
// The channel API

/// Everything a signed channel request carries besides its path parameters.
struct Signed {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// The checks every channel request passes first, in this order: the channel exists, it is
/// up, the signature is good.
fn enter(sim: &Simulator, name: &str, signed: &Signed) -> Result<Arc<Channel>, Entry> {
    let channel = sim.channel(name).map_err(Entry::Error)?;
    match channel.lock().faults.down {
        Down::Off => {}
        Down::Refuse => return Err(Entry::Error(ApiError::ChannelDown)),
        Down::Drop => return Err(Entry::Drop),
    }
    authenticate(sim, &channel, signed).map_err(Entry::Error)?;
    Ok(channel)
}

enum Entry {
    Error(ApiError),
    Drop,
}

fn authenticate(sim: &Simulator, channel: &Channel, signed: &Signed) -> Result<(), ApiError> {
    let header = |name: &str| signed.headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp =
        header(HEADER_TIMESTAMP).ok_or(ApiError::Unauthenticated("missing timestamp header"))?;
    let signature =
        header(HEADER_SIGNATURE).ok_or(ApiError::Unauthenticated("missing signature header"))?;
    let timestamp_s: u64 =
        timestamp.parse().map_err(|_| ApiError::Unauthenticated("malformed timestamp"))?;
    let now_s = time::now_ms() / 1_000;
    if now_s.abs_diff(timestamp_s) > sim.signature_skew_s {
        return Err(ApiError::Unauthenticated("timestamp outside the allowed skew"));
    }
    let path = signed.uri.path();
    if !signing::verify_request(
        channel.secret(),
        timestamp,
        signed.method.as_str(),
        path,
        &signed.body,
        signature,
    ) {
        return Err(ApiError::Unauthenticated("bad signature"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct TransferBody {
    request_id: RequestId,
    account: AccountName,
    amount_minor: Amount,
    currency: AssetCode,
}

#[derive(Deserialize)]
struct RefundBody {
    request_id: RequestId,
    debit_request_id: RequestId,
    amount_minor: Amount,
    currency: AssetCode,
}

fn check_amount(channel: &Channel, amount: Amount, currency: AssetCode) -> Result<(), ApiError> {
    if currency != channel.currency() {
        return Err(invalid(format!(
            "this channel settles in {}, not {currency}",
            channel.currency()
        )));
    }
    if amount.is_zero() {
        return Err(invalid("amount_minor must be positive"));
    }
    Ok(())
}

async fn debit(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    money_operation(&sim, &name, kill, &signed, |channel, body| {
        let body: TransferBody = parse_json(body)?;
        check_amount(channel, body.amount_minor, body.currency)?;
        Ok((
            body.request_id,
            OperationRequest::Debit { account: body.account, amount: body.amount_minor },
        ))
    })
    .await
}

async fn payout(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    money_operation(&sim, &name, kill, &signed, |channel, body| {
        let body: TransferBody = parse_json(body)?;
        check_amount(channel, body.amount_minor, body.currency)?;
        Ok((
            body.request_id,
            OperationRequest::Payout { account: body.account, amount: body.amount_minor },
        ))
    })
    .await
}

async fn refund(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    money_operation(&sim, &name, kill, &signed, |channel, body| {
        let body: RefundBody = parse_json(body)?;
        check_amount(channel, body.amount_minor, body.currency)?;
        let request = OperationRequest::Refund {
            debit_request_id: body.debit_request_id,
            amount: body.amount_minor,
        };
        Ok((body.request_id, request))
    })
    .await
}

type ParseRequest = fn(&Channel, &[u8]) -> Result<(RequestId, OperationRequest), ApiError>;

async fn money_operation(
    sim: &Arc<Simulator>,
    name: &str,
    kill: Option<Extension<ConnectionKill>>,
    signed: &Signed,
    parse: ParseRequest,
) -> Response {
    let channel = match enter(sim, name, signed) {
        Ok(channel) => channel,
        Err(Entry::Error(error)) => return error.into_response(),
        Err(Entry::Drop) => return drop_connection(kill, 0).await,
    };
    let (request_id, request) = match parse(&channel, &signed.body) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let (plan, deferred) =
        channel.admit(sim.seed, sim.operations_max, request_id, request, time::now_ms());
    if let Some(deferred) = deferred {
        schedule_completion(sim.clone(), channel.clone(), deferred);
    }
    match plan {
        Plan::Answer { latency_ms, operation } => {
            sleep_ms(latency_ms).await;
            let status = match operation.status {
                Status::Processing => StatusCode::ACCEPTED,
                Status::Succeeded | Status::Failed => StatusCode::OK,
            };
            (status, Json(OperationView::new(&channel, &operation))).into_response()
        }
        Plan::Conflict { latency_ms, existing } => {
            sleep_ms(latency_ms).await;
            ApiError::RequestIdConflict(existing.request_id).into_response()
        }
        Plan::NoAnswer { latency_ms, hold_ms } => {
            drop_connection(kill, latency_ms.saturating_add(hold_ms)).await
        }
        Plan::CapacityExceeded => ApiError::CapacityExceeded.into_response(),
        // Refused at once, without the injected latency: a throttle answers before any work.
        Plan::OverCapacity(over) => ApiError::OverCapacity(over).into_response(),
    }
}

/// Runs a late success to its end in the background and announces it by callback. Detached
/// from the request on purpose: the client may be long gone.
fn schedule_completion(sim: Arc<Simulator>, channel: Arc<Channel>, deferred: Deferred) {
    tokio::spawn(async move {
        sleep_ms(deferred.delay_ms).await;
        let Some((operation, event_id)) = channel.complete(&deferred.request_id, time::now_ms())
        else {
            return;
        };
        let body = CallbackBody {
            event_id: event_id.clone(),
            data: OperationView::new(&channel, &operation),
        };
        match serde_json::to_vec(&body) {
            Ok(body) => {
                let event = CallbackEvent { event_id, request_id: operation.request_id, body };
                sim.dispatcher.dispatch(channel, event);
            }
            Err(error) => tracing::error!(%error, "cannot encode a callback"),
        }
    });
}

async fn sleep_ms(duration_ms: u64) {
    if duration_ms > 0 {
        tokio::time::sleep(Duration::from_millis(duration_ms)).await;
    }
}

/// Holds the request for `hold_ms`, then closes its connection without an answer. Outside
/// the server loop (no [`ConnectionKill`]), answers 504 instead.
async fn drop_connection(kill: Option<Extension<ConnectionKill>>, hold_ms: u64) -> Response {
    sleep_ms(hold_ms).await;
    match kill {
        Some(Extension(ConnectionKill(notify))) => {
            notify.notify_one();
            // The server loop drops this future together with the connection.
            std::future::pending::<Response>().await
        }
        None => StatusCode::GATEWAY_TIMEOUT.into_response(),
    }
}

async fn query(
    State(sim): State<Arc<Simulator>>,
    Path((name, request_id)): Path<(String, String)>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    let channel = match enter(&sim, &name, &signed) {
        Ok(channel) => channel,
        Err(Entry::Error(error)) => return error.into_response(),
        Err(Entry::Drop) => return drop_connection(kill, 0).await,
    };
    let request_id = match RequestId::new(&request_id) {
        Ok(id) => id,
        // A request id the platform could never have sent: the bank never saw it.
        Err(_) => return ApiError::NotFound.into_response(),
    };
    match channel.admit_query(sim.seed, &request_id) {
        QueryPlan::NoAnswer { latency_ms, hold_ms } => {
            drop_connection(kill, latency_ms.saturating_add(hold_ms)).await
        }
        QueryPlan::Answer { latency_ms, operation } => {
            sleep_ms(latency_ms).await;
            match operation {
                Some(operation) => Json(OperationView::new(&channel, &operation)).into_response(),
                None => ApiError::NotFound.into_response(),
            }
        }
    }
}

async fn statement_csv(
    State(sim): State<Arc<Simulator>>,
    Path((name, date)): Path<(String, String)>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    let channel = match enter(&sim, &name, &signed) {
        Ok(channel) => channel,
        Err(Entry::Error(error)) => return error.into_response(),
        Err(Entry::Drop) => return drop_connection(kill, 0).await,
    };
    let Some(day) = time::parse_day(&date) else {
        return invalid("the date must be YYYY-MM-DD").into_response();
    };
    let bill = {
        let state = channel.lock();
        let spec = statement::BillSpec {
            seed: sim.seed,
            channel: channel.name().as_str(),
            currency: channel.currency(),
            utc_offset_minutes: sim.statement_utc_offset_minutes,
            faults: state.faults.statement,
        };
        statement::render(state.books.operations(), day, &spec)
    };
    // The digest travels in the same response as the file: fetched separately, today's bill
    // could change between the two requests and never match its digest.
    let headers = [
        (axum::http::header::CONTENT_TYPE.as_str(), "text/csv; charset=utf-8"),
        (statement::HEADER_SHA256, bill.sha256_hex.as_str()),
    ];
    (headers, bill.csv).into_response()
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
struct CallbackRegistration {
    url: Option<String>,
}

fn register_callback(channel: &Channel, body: &[u8]) -> Result<Response, ApiError> {
    let registration: CallbackRegistration = parse_json(body)?;
    if let Some(url) = &registration.url {
        let parsed = reqwest::Url::parse(url).map_err(invalid)?;
        if parsed.scheme() != "http" {
            return Err(invalid("the simulator delivers callbacks over plain http only"));
        }
    }
    channel.lock().callback_url = registration.url.clone();
    Ok(Json(registration).into_response())
}

async fn put_callback_signed(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    kill: Option<Extension<ConnectionKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed { method, uri, headers, body };
    let channel = match enter(&sim, &name, &signed) {
        Ok(channel) => channel,
        Err(Entry::Error(error)) => return error.into_response(),
        Err(Entry::Drop) => return drop_connection(kill, 0).await,
    };
    register_callback(&channel, &signed.body).unwrap_or_else(IntoResponse::into_response)
}

// ---------------------------------------------------------------------------------------
// The admin API (unsigned)

#[derive(serde::Serialize)]
struct ChannelSummary {
    channel: String,
    currency: AssetCode,
    fees: crate::fees::FeeSchedule,
    callback_url: Option<String>,
    n_operations: usize,
}

async fn admin_channels(State(sim): State<Arc<Simulator>>) -> Response {
    let summaries: Vec<ChannelSummary> = sim
        .channels
        .iter()
        .map(|(name, channel)| {
            let state = channel.lock();
            ChannelSummary {
                channel: name.clone(),
                currency: channel.currency(),
                fees: *state.books.fees(),
                callback_url: state.callback_url.clone(),
                n_operations: state.books.operations().len(),
            }
        })
        .collect();
    Json(serde_json::json!({ "channels": summaries })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAccountBody {
    account: AccountName,
    initial_balance_minor: Amount,
}

async fn admin_open_account(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let channel = sim.channel(&name)?;
        let body: OpenAccountBody = parse_json(&body)?;
        channel
            .lock()
            .books
            .open_account(body.account.clone(), body.initial_balance_minor)
            .map_err(|e| match e {
                OpenAccountError::Exists => ApiError::AccountExists,
                _ => ApiError::TooMuchMoney,
            })?;
        let json = serde_json::json!({ "account": body.account, "balance_minor": body.initial_balance_minor });
        Ok::<_, ApiError>((StatusCode::CREATED, Json(json)).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn admin_accounts(State(sim): State<Arc<Simulator>>, Path(name): Path<String>) -> Response {
    match sim.channel(&name) {
        Ok(channel) => {
            let sheet = channel.lock().books.balances();
            let total_minor = sheet.total_minor().to_string();
            let mut json = serde_json::to_value(&sheet).unwrap_or_default();
            if let Some(object) = json.as_object_mut() {
                object.insert("channel".to_owned(), name.into());
                object.insert("total_minor".to_owned(), total_minor.into());
            }
            Json(json).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn admin_operations(State(sim): State<Arc<Simulator>>, Path(name): Path<String>) -> Response {
    match sim.channel(&name) {
        Ok(channel) => {
            let views: Vec<OperationView> = channel
                .lock()
                .books
                .operations()
                .iter()
                .map(|op| OperationView::new(&channel, op))
                .collect();
            Json(serde_json::json!({ "operations": views })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn admin_faults(State(sim): State<Arc<Simulator>>, Path(name): Path<String>) -> Response {
    match sim.channel(&name) {
        Ok(channel) => Json(channel.lock().faults).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn admin_put_faults(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let channel = sim.channel(&name)?;
        let faults: ChannelFaults = parse_json(&body)?;
        faults.validate().map_err(invalid)?;
        channel.lock().faults = faults;
        Ok::<_, ApiError>(Json(faults).into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn admin_callback(State(sim): State<Arc<Simulator>>, Path(name): Path<String>) -> Response {
    match sim.channel(&name) {
        Ok(channel) => {
            Json(CallbackRegistration { url: channel.lock().callback_url.clone() }).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn admin_put_callback(
    State(sim): State<Arc<Simulator>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    sim.channel(&name)
        .and_then(|channel| register_callback(&channel, &body))
        .unwrap_or_else(IntoResponse::into_response)
}

async fn admin_deliveries(State(sim): State<Arc<Simulator>>, Path(name): Path<String>) -> Response {
    match sim.channel(&name) {
        Ok(channel) => {
            let deliveries: Vec<_> = channel.lock().deliveries.iter().cloned().collect();
            Json(serde_json::json!({ "deliveries": deliveries })).into_response()
        }
        Err(error) => error.into_response(),
    }
}
