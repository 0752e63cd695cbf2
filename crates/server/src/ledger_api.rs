//! `/v1` ledger endpoints. Handlers are thin: parse, authorise, call the ledger, shape the
//! answer. Every resource belongs to the tenant whose key created it; another tenant gets 404
//! (not 403: it must not learn that the id exists). Admin keys see everything.

use access::{ResourceKind, Scope};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ledger::apply::{Command, Outcome};
use ledger::model::{AccountClass, BalanceRule, ChartCode, ChartEntry, Movement, NewAccount};
use ledger::port::Page;
use ledger::{
    AccountId, AccountRejection, BoundedText, BusinessCode, NewTransfer, Seq, Timestamp,
    TransferAction, TransferId, TransferRejection,
};
use money::{Amount, Asset, AssetCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{idempotency, AppState};

/// Items per page when the caller does not say.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Transfers in one batch request at most.
pub const BATCH_TRANSFERS_MAX: usize = 8_000;

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        let code =
            if error.is_syntax() || error.is_eof() { "malformed_json" } else { "invalid_body" };
        ApiError::invalid(code, error.to_string())
    })
}

fn rfc3339(at: Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(at.0);
    humantime::format_rfc3339_micros(time).to_string()
}

async fn blocking<T: Send + 'static>(
    run: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(run).await.map_err(ApiError::internal)?
}

/// Checks that the caller may touch a resource: it owns it, or it is an admin.
async fn authorize(
    state: &AppState,
    caller: &Caller,
    kind: ResourceKind,
    id: u128,
    what: &str,
) -> Result<(), ApiError> {
    if caller.is_admin() {
        return Ok(());
    }
    let owner = match state.caches.owner(kind, id) {
        Some(owner) => Some(owner),
        None => {
            let access = state.access.clone();
            let owner = blocking(move || access.owner(kind, id).map_err(ApiError::from)).await?;
            if let Some(owner) = &owner {
                state.caches.put_owner(kind, id, owner.clone());
            }
            owner
        }
    };
    match owner {
        Some(owner) if &owner == caller.tenant() => Ok(()),
        _ => Err(ApiError::not_found(what)),
    }
}

async fn claim(
    state: &AppState,
    caller: &Caller,
    kind: ResourceKind,
    id: u128,
    what: &'static str,
) -> Result<(), ApiError> {
    let access = state.access.clone();
    let tenant = caller.tenant().clone();
    let owner =
        blocking(move || access.claim_owner(kind, id, &tenant).map_err(ApiError::from)).await?;
    if &owner != caller.tenant() && !caller.is_admin() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "id_taken",
            format!("this {what} id is taken"),
        )
        .with_param("id"));
    }
    Ok(())
}

// ---- assets and chart (admin) ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetRequest {
    code: AssetCode,
    scale: u8,
}

pub async fn create_asset(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/assets", &body, async {
        caller.require(Scope::Admin)?;
        let request: AssetRequest = parse(&body)?;
        let asset = Asset::new(request.code, request.scale)
            .map_err(|e| ApiError::invalid("invalid_scale", e.to_string()).with_param("scale"))?;
        match single(&state, Command::DefineAsset(asset)).await? {
            Outcome::Asset(Ok(applied)) => Ok((
                created(applied.created),
                json!({"code": asset.code(), "scale": asset.scale()}),
            )),
            Outcome::Asset(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartRequest {
    code: u32,
    name: BoundedText<{ ledger::model::CHART_NAME_LEN_MAX }>,
    class: AccountClass,
}

pub async fn create_chart(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/chart", &body, async {
        caller.require(Scope::Admin)?;
        let request: ChartRequest = parse(&body)?;
        let entry =
            ChartEntry { code: ChartCode(request.code), name: request.name, class: request.class };
        match single(&state, Command::DefineChart(entry.clone())).await? {
            Outcome::Chart(Ok(applied)) => Ok((created(applied.created), json!(entry))),
            Outcome::Chart(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

// ---- accounts ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRequest {
    id: AccountId,
    asset: AssetCode,
    chart_code: u32,
    rule: BalanceRule,
    #[serde(default)]
    metadata: BoundedText<{ ledger::model::METADATA_LEN_MAX }>,
}

fn account_json(account: &ledger::Account) -> Value {
    json!({
        "object": "account",
        "id": account.id,
        "asset": account.asset,
        "chart_code": account.chart_code.0,
        "rule": account.rule,
        "status": account.status,
        "metadata": account.metadata,
        "balances": balances_json(&account.balances),
        "opened_seq": account.opened_seq.0.to_string(),
        "opened_at": rfc3339(account.opened_at),
    })
}

fn balances_json(balances: &ledger::Balances) -> Value {
    json!({
        "debits_pending": balances.debits_pending,
        "debits_posted": balances.debits_posted,
        "credits_pending": balances.credits_pending,
        "credits_posted": balances.credits_posted,
        // Signed, so a string: credits_posted - debits_posted - debits_pending.
        "available_credit": balances.available_credit().to_string(),
    })
}

pub async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/accounts", &body, async {
        caller.require(Scope::LedgerWrite)?;
        let request: AccountRequest = parse(&body)?;
        claim(&state, &caller, ResourceKind::Account, request.id.get(), "account").await?;
        let new = NewAccount {
            id: request.id,
            asset: request.asset,
            chart_code: ChartCode(request.chart_code),
            rule: request.rule,
            metadata: request.metadata,
        };
        match single(&state, Command::OpenAccount(new)).await? {
            Outcome::Account(Ok(applied)) => {
                Ok((created(applied.created), account_json(&applied.value)))
            }
            Outcome::Account(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

fn account_id(raw: &str) -> Result<AccountId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::invalid("invalid_id", "account id must be a non-zero decimal integer below 2^128")
            .with_param("id")
    })
}

fn transfer_id(raw: &str) -> Result<TransferId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_id",
            "transfer id must be a non-zero decimal integer below 2^128",
        )
        .with_param("id")
    })
}

pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let id = account_id(&id)?;
    authorize(&state, &caller, ResourceKind::Account, id.get(), "account").await?;
    let reader = state.reader.clone();
    let account = blocking(move || reader.account(id).map_err(ApiError::from)).await?;
    account.map(|a| axum::Json(account_json(&a))).ok_or_else(|| ApiError::not_found("account"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    starting_after: Option<String>,
}

impl PageQuery {
    /// The validated limit and cursor.
    pub fn parts(self) -> Result<(usize, Option<String>), ApiError> {
        Ok((page_limit(self.limit)?, self.starting_after))
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(PAGE_LIMIT_DEFAULT) {
        limit @ 1..=ledger::port::PAGE_LIMIT_MAX => Ok(limit),
        _ => Err(ApiError::invalid(
            "invalid_limit",
            format!("limit must be 1 to {}", ledger::port::PAGE_LIMIT_MAX),
        )
        .with_param("limit")),
    }
}

pub async fn list_entries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let id = account_id(&id)?;
    let limit = page_limit(query.limit)?;
    let after = match query.starting_after {
        None => None,
        Some(raw) => Some(Seq(raw.parse().map_err(|_| {
            ApiError::invalid("invalid_cursor", "starting_after must be an entry seq")
                .with_param("starting_after")
        })?)),
    };
    authorize(&state, &caller, ResourceKind::Account, id.get(), "account").await?;
    let reader = state.reader.clone();
    // One more than asked, to know whether there is a next page.
    let mut entries = blocking(move || {
        reader.entries(id, Page { after, limit: limit + 1 }).map_err(ApiError::from)
    })
    .await?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let data: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "object": "entry",
                "seq": e.seq.0.to_string(),
                "transfer_id": e.transfer_id,
                "side": e.side,
                "amount": e.amount,
                "balances_after": balances_json(&e.balances_after),
            })
        })
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data, "has_more": has_more})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceQuery {
    /// A journal sequence number.
    as_of_seq: Option<u64>,
    /// An RFC 3339 time.
    as_of: Option<String>,
}

pub async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<BalanceQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let id = account_id(&id)?;
    authorize(&state, &caller, ResourceKind::Account, id.get(), "account").await?;
    let at = match &query.as_of {
        None => None,
        Some(raw) => {
            let time = humantime::parse_rfc3339_weak(raw).map_err(|_| {
                ApiError::invalid("invalid_time", "as_of must be an RFC 3339 time")
                    .with_param("as_of")
            })?;
            let micros = time.duration_since(std::time::UNIX_EPOCH).map_err(|_| {
                ApiError::invalid("invalid_time", "as_of is before 1970").with_param("as_of")
            })?;
            Some(Timestamp(micros.as_micros() as u64))
        }
    };
    let reader = state.reader.clone();
    let as_of_seq = query.as_of_seq;
    let answer = blocking(move || {
        let account = reader.account(id)?.ok_or_else(|| ApiError::not_found("account"))?;
        let seq = match (as_of_seq, at) {
            (Some(seq), _) => Some(Seq(seq)),
            (None, Some(at)) => Some(reader.seq_at(at)?),
            (None, None) => None,
        };
        let balances = match seq {
            None => account.balances,
            Some(seq) => reader.entry_as_of(id, seq)?.map(|e| e.balances_after).unwrap_or_default(),
        };
        Ok(json!({
            "object": "balance",
            "account_id": id,
            "asset": account.asset,
            "as_of_seq": seq.map(|s| s.0.to_string()),
            "balances": balances_json(&balances),
        }))
    })
    .await?;
    Ok(axum::Json(answer))
}

// ---- transfers --------------------------------------------------------------------------

/// A transfer request. `id` may be omitted: it is then derived from the Idempotency-Key (so
/// that a retry derives the same id) or drawn at random.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TransferRequest {
    Post {
        id: Option<TransferId>,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        asset: AssetCode,
        amount: Amount,
        #[serde(default)]
        business_code: u32,
        #[serde(default)]
        order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
    },
    Pending {
        id: Option<TransferId>,
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        asset: AssetCode,
        amount: Amount,
        timeout_secs: Option<u32>,
        #[serde(default)]
        business_code: u32,
        #[serde(default)]
        order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    id: Option<TransferId>,
    amount: Option<Amount>,
    #[serde(default)]
    business_code: u32,
    #[serde(default)]
    order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
}

fn derived_id(
    caller: &Caller,
    idempotency_key: Option<&str>,
    index: usize,
) -> Result<TransferId, ApiError> {
    let raw: [u8; 16] = match idempotency_key {
        Some(key) => {
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::new()
                .chain_update(b"qianbao.transfer-id")
                .chain_update(caller.tenant().as_str())
                .chain_update([0])
                .chain_update(key)
                .chain_update((index as u64).to_be_bytes())
                .finalize()
                .into();
            digest[..16].try_into().map_err(ApiError::internal)?
        }
        None => {
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw).map_err(ApiError::internal)?;
            raw
        }
    };
    TransferId::new(u128::from_be_bytes(raw) | 1).map_err(ApiError::internal)
}

impl TransferRequest {
    fn into_new(
        self,
        caller: &Caller,
        idempotency_key: Option<&str>,
        index: usize,
    ) -> Result<NewTransfer, ApiError> {
        let (id, action, business_code, order_ref) = match self {
            TransferRequest::Post {
                id,
                debit_account_id,
                credit_account_id,
                asset,
                amount,
                business_code,
                order_ref,
            } => (
                id,
                TransferAction::Post(Movement {
                    debit_account_id,
                    credit_account_id,
                    asset,
                    amount,
                }),
                business_code,
                order_ref,
            ),
            TransferRequest::Pending {
                id,
                debit_account_id,
                credit_account_id,
                asset,
                amount,
                timeout_secs,
                business_code,
                order_ref,
            } => (
                id,
                TransferAction::Pending {
                    movement: Movement { debit_account_id, credit_account_id, asset, amount },
                    timeout_secs,
                },
                business_code,
                order_ref,
            ),
        };
        let id = match id {
            Some(id) => id,
            None => derived_id(caller, idempotency_key, index)?,
        };
        Ok(NewTransfer { id, action, business_code: BusinessCode(business_code), order_ref })
    }
}

fn transfer_json(transfer: &ledger::Transfer) -> Value {
    json!({
        "object": "transfer",
        "id": transfer.id,
        "kind": transfer.kind,
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "asset": transfer.asset,
        "amount": transfer.amount,
        "pending_id": transfer.pending_id,
        "expires_at": transfer.expires_at.map(rfc3339),
        "business_code": transfer.business_code.0,
        "order_ref": transfer.order_ref,
        "seq": transfer.seq.0.to_string(),
        "timestamp": rfc3339(transfer.timestamp),
    })
}

fn transfer_rejection(rejection: TransferRejection) -> ApiError {
    let status = match rejection {
        TransferRejection::DebitAccountNotFound
        | TransferRejection::CreditAccountNotFound
        | TransferRejection::PendingNotFound => StatusCode::NOT_FOUND,
        TransferRejection::IdExistsWithDifferentFields => StatusCode::CONFLICT,
        TransferRejection::AccountsMustDiffer | TransferRejection::AmountMustNotBeZero => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, rejection.code(), rejection.to_string())
}

fn account_rejection(rejection: AccountRejection) -> ApiError {
    let status = match rejection {
        AccountRejection::AccountNotFound => StatusCode::NOT_FOUND,
        AccountRejection::IdExistsWithDifferentFields
        | AccountRejection::AssetExistsWithDifferentScale
        | AccountRejection::ChartExistsWithDifferentFields => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, rejection.code(), rejection.to_string())
}

fn created(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

async fn single(state: &AppState, command: Command) -> Result<Outcome, ApiError> {
    let mut outcomes = state.ledger.try_execute(vec![command]).await?;
    outcomes.pop().ok_or_else(|| ApiError::internal("no outcome"))
}

/// The accounts a new transfer moves money between must be the caller's. A transfer has no
/// owner of its own: it is visible to whoever owns one of its accounts, so creating one writes
/// nothing to the access store.
async fn authorize_transfer(
    state: &AppState,
    caller: &Caller,
    transfer: &NewTransfer,
) -> Result<(), ApiError> {
    let accounts = match transfer.action {
        TransferAction::Post(movement) | TransferAction::Pending { movement, .. } => {
            [movement.debit_account_id, movement.credit_account_id]
        }
        TransferAction::PostPending { pending_id, .. }
        | TransferAction::VoidPending { pending_id } => {
            let reader = state.reader.clone();
            let hold = blocking(move || reader.hold(pending_id).map_err(ApiError::from)).await?;
            let hold = hold.ok_or_else(|| ApiError::not_found("transfer"))?;
            if caller.is_admin()
                || owns_one(
                    state,
                    caller,
                    [hold.movement.debit_account_id, hold.movement.credit_account_id],
                )
                .await?
            {
                return Ok(());
            }
            return Err(ApiError::not_found("transfer"));
        }
    };
    for account in accounts {
        authorize(state, caller, ResourceKind::Account, account.get(), "account")
            .await
            .map_err(|e| e.with_param("account_id"))?;
    }
    Ok(())
}

/// Whether the caller owns at least one of `accounts`.
async fn owns_one(
    state: &AppState,
    caller: &Caller,
    accounts: [AccountId; 2],
) -> Result<bool, ApiError> {
    for account in accounts {
        match authorize(state, caller, ResourceKind::Account, account.get(), "account").await {
            Ok(()) => return Ok(true),
            Err(error) if error.status == StatusCode::NOT_FOUND => {}
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

async fn submit_one(
    state: &AppState,
    caller: &Caller,
    transfer: NewTransfer,
) -> Result<(StatusCode, Value), ApiError> {
    authorize_transfer(state, caller, &transfer).await?;
    match single(state, Command::Transfers(vec![transfer])).await? {
        Outcome::Transfers(mut results) => match results.pop() {
            Some(Ok(applied)) => Ok((created(applied.created), transfer_json(&applied.value))),
            Some(Err(rejection)) => Err(transfer_rejection(rejection)),
            None => Err(ApiError::internal("no result")),
        },
        _ => Err(ApiError::internal("unexpected outcome")),
    }
}

pub async fn create_transfer(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/transfers", &body, async {
        caller.require(Scope::LedgerWrite)?;
        let request: TransferRequest = parse(&body)?;
        let key = idempotency::key(&headers).ok().flatten();
        let transfer = request.into_new(&caller, key.as_deref(), 0)?;
        submit_one(&state, &caller, transfer).await
    })
    .await
}

pub async fn post_pending(
    State(state): State<AppState>,
    caller: Caller,
    Path(pending): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    resolve(state, caller, pending, headers, body, true).await
}

pub async fn void_pending(
    State(state): State<AppState>,
    caller: Caller,
    Path(pending): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    resolve(state, caller, pending, headers, body, false).await
}

async fn resolve(
    state: AppState,
    caller: Caller,
    pending: String,
    headers: HeaderMap,
    body: Bytes,
    post: bool,
) -> Response {
    let route = if post {
        format!("POST /v1/transfers/{pending}/post")
    } else {
        format!("POST /v1/transfers/{pending}/void")
    };
    idempotency::once(&state, &caller, &headers, &route, &body, async {
        caller.require(Scope::LedgerWrite)?;
        let pending_id = transfer_id(&pending)?;
        let request: ResolveRequest = if body.is_empty() { parse(b"{}")? } else { parse(&body)? };
        if !post && request.amount.is_some() {
            return Err(ApiError::invalid("amount_not_allowed", "a void releases the whole hold")
                .with_param("amount"));
        }
        let action = if post {
            TransferAction::PostPending { pending_id, amount: request.amount }
        } else {
            TransferAction::VoidPending { pending_id }
        };
        let id = match request.id {
            Some(id) => id,
            None => derived_id(&caller, idempotency::key(&headers).ok().flatten().as_deref(), 0)?,
        };
        let transfer = NewTransfer {
            id,
            action,
            business_code: BusinessCode(request.business_code),
            order_ref: request.order_ref,
        };
        submit_one(&state, &caller, transfer).await
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    transfers: Vec<Value>,
    /// All or nothing: the transfers form one linked group.
    #[serde(default)]
    linked: bool,
}

pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, &headers, "POST /v1/transfers/batch", &body, async {
        caller.require(Scope::LedgerWrite)?;
        let request: BatchRequest = parse(&body)?;
        let key = idempotency::key(&headers).ok().flatten();
        if request.transfers.is_empty() || request.transfers.len() > BATCH_TRANSFERS_MAX {
            return Err(ApiError::invalid("invalid_batch_size", format!("a batch holds 1 to {BATCH_TRANSFERS_MAX} transfers")).with_param("transfers"));
        }
        let mut transfers = Vec::with_capacity(request.transfers.len());
        for (index, item) in request.transfers.into_iter().enumerate() {
            let item: TransferRequest = serde_json::from_value(item)
                .map_err(|e| ApiError::invalid("invalid_body", e.to_string()).with_param(format!("transfers[{index}]")))?;
            let transfer = item.into_new(&caller, key.as_deref(), index)?;
            authorize_transfer(&state, &caller, &transfer).await.map_err(|e| e.with_param(format!("transfers[{index}]")))?;
            transfers.push(transfer);
        }
        let commands = if request.linked {
            vec![Command::Transfers(transfers)]
        } else {
            transfers.into_iter().map(|t| Command::Transfers(vec![t])).collect()
        };
        let outcomes = state.ledger.try_execute(commands).await?;
        let mut data = Vec::new();
        for outcome in outcomes {
            let Outcome::Transfers(results) = outcome else { return Err(ApiError::internal("unexpected outcome")) };
            for result in results {
                data.push(match result {
                    Ok(applied) => json!({"status": if applied.created { "created" } else { "replayed" }, "transfer": transfer_json(&applied.value)}),
                    Err(rejection) => json!({"status": "rejected", "error": transfer_rejection(rejection).body()["error"]}),
                });
            }
        }
        Ok((StatusCode::OK, json!({"object": "batch_result", "data": data})))
    })
    .await
}

pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let id = transfer_id(&id)?;
    let reader = state.reader.clone();
    let transfer = blocking(move || reader.transfer(id).map_err(ApiError::from)).await?;
    let transfer = transfer.ok_or_else(|| ApiError::not_found("transfer"))?;
    if !caller.is_admin()
        && !owns_one(&state, &caller, [transfer.debit_account_id, transfer.credit_account_id])
            .await?
    {
        return Err(ApiError::not_found("transfer"));
    }
    Ok(axum::Json(transfer_json(&transfer)))
}

// ---- books (admin) ----------------------------------------------------------------------

pub async fn trial_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let reader = state.reader.clone();
    let lines = blocking(move || reader.trial_balance().map_err(ApiError::from)).await?;
    let mut totals: std::collections::BTreeMap<String, (u128, u128, u128, u128)> =
        Default::default();
    let data: Vec<Value> = lines
        .iter()
        .map(|line| {
            let t = totals.entry(line.asset.to_string()).or_default();
            t.0 += u128::from(line.balances.debits_posted.minor());
            t.1 += u128::from(line.balances.credits_posted.minor());
            t.2 += u128::from(line.balances.debits_pending.minor());
            t.3 += u128::from(line.balances.credits_pending.minor());
            json!({"asset": line.asset, "chart_code": line.chart_code.0, "n_accounts": line.n_accounts, "balances": balances_json(&line.balances)})
        })
        .collect();
    let assets: Vec<Value> = totals
        .iter()
        .map(|(asset, t)| {
            json!({
                "asset": asset,
                "debits_posted": t.0.to_string(),
                "credits_posted": t.1.to_string(),
                "debits_pending": t.2.to_string(),
                "credits_pending": t.3.to_string(),
                "balanced": t.0 == t.1 && t.2 == t.3,
            })
        })
        .collect();
    Ok(axum::Json(json!({"object": "trial_balance", "lines": data, "assets": assets})))
}

pub async fn verify_journal(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let reader = state.reader.clone();
    let report = blocking(move || {
        ledger::verify::verify(reader.as_ref(), &mut |_| {}).map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(json!({"object": "verify_report", "ok": report.is_ok(), "report": report})))
}
