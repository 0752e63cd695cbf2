//! `/v1` ledger endpoints. Handlers are thin: parse, map the caller's ids to the ledger's,
//! authorise, call the ledger, shape the answer in the caller's ids. Who may touch what, and
//! tenants' id namespaces, are `tenancy`'s.

use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ledger::apply::{Command, Outcome};
use ledger::model::{
    AccountClass, AccountStatus, BalanceRule, ChartCode, ChartEntry, Movement, NewAccount,
};
use ledger::port::Page;
use ledger::{
    AccountId, AccountRejection, BoundedText, BusinessCode, NewTransfer, Seq, Timestamp,
    TransferAction, TransferId, TransferRejection,
};
use money::{Amount, Asset, AssetCode};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::formats;
use crate::idempotency::IdempotencyKey;
use crate::request::{blocking, page_limit, parse, parse_value};
use crate::tenancy::{self, Use};
use crate::views::{
    to_value, wire, AccountStatusView, AccountView, AssetView, BalanceView, BatchItemView,
    BatchResultView, ChartView, EntryList, EntryView, ErrorBody, ErrorDetail, TransferView,
    TrialBalanceAsset, TrialBalanceLine, TrialBalanceView, VerifyView,
};
use crate::{idempotency, AppState};

/// Transfers in one batch request at most.
pub const BATCH_TRANSFERS_MAX: usize = 8_000;

// ---- assets and chart (admin) ------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetRequest {
    #[schema(value_type = formats::AssetCode)]
    code: AssetCode,
    /// Digits after the decimal point, 0 to 18.
    #[schema(example = 2, maximum = 18)]
    scale: u8,
}

/// Define an asset (admin).
#[utoipa::path(post, path = "/v1/assets", tag = "books", request_body = AssetRequest,
    params(IdempotencyKey),
    responses((status = 201, body = AssetView), (status = 200, description = "already defined", body = AssetView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_asset(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, Scope::Admin, &headers, "POST /v1/assets", &body, async {
        let request: AssetRequest = parse(&body)?;
        let asset = Asset::new(request.code, request.scale)
            .map_err(|e| ApiError::invalid("invalid_scale", e.to_string()).with_param("scale"))?;
        match single(&state, Command::DefineAsset(asset)).await? {
            Outcome::Asset(Ok(applied)) => Ok((
                created(applied.created),
                to_value(AssetView { code: asset.code(), scale: asset.scale() })?,
            )),
            Outcome::Asset(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartRequest {
    #[schema(example = 2201, maximum = 4294967295u32)]
    code: u32,
    /// At most 64 characters.
    #[schema(value_type = String, example = "customer wallets", max_length = 64)]
    name: BoundedText<{ ledger::model::CHART_NAME_LEN_MAX }>,
    #[schema(value_type = wire::AccountClass)]
    class: AccountClass,
}

/// Define a chart-of-accounts line (admin).
#[utoipa::path(post, path = "/v1/chart", tag = "books", request_body = ChartRequest,
    params(IdempotencyKey),
    responses((status = 201, body = ChartView), (status = 200, description = "already defined", body = ChartView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_chart(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    idempotency::once(&state, &caller, Scope::Admin, &headers, "POST /v1/chart", &body, async {
        let request: ChartRequest = parse(&body)?;
        let entry =
            ChartEntry { code: ChartCode(request.code), name: request.name, class: request.class };
        match single(&state, Command::DefineChart(entry.clone())).await? {
            Outcome::Chart(Ok(applied)) => Ok((
                created(applied.created),
                to_value(ChartView {
                    code: entry.code.0,
                    name: entry.name.as_str().to_string(),
                    class: entry.class,
                })?,
            )),
            Outcome::Chart(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

// ---- accounts ---------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRequest {
    /// Client-chosen.
    #[schema(value_type = formats::AccountId)]
    id: AccountId,
    #[schema(value_type = formats::AssetCode)]
    asset: AssetCode,
    #[schema(example = 2201, maximum = 4294967295u32)]
    chart_code: u32,
    #[schema(value_type = wire::BalanceRule)]
    rule: BalanceRule,
    /// At most 1,024 characters.
    #[serde(default)]
    #[schema(value_type = String, max_length = 1024)]
    metadata: BoundedText<{ ledger::model::METADATA_LEN_MAX }>,
    /// For a hot account: `sub_accounts` or `buffered` (see the schema). Plain by default.
    #[serde(default)]
    #[schema(value_type = wire::NewAccountLayout)]
    layout: ledger::model::AccountLayout,
}

/// Open an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = AccountRequest,
    params(IdempotencyKey),
    responses((status = 201, body = AccountView), (status = 200, description = "replayed: same id and fields", body = AccountView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_account(
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
        "POST /v1/accounts",
        &body,
        async {
            let request: AccountRequest = parse(&body)?;
            let namespace = tenancy::namespace(&state, &caller);
            let id = tenancy::ledger_account(&namespace, request.id);
            tenancy::claim_account(&state, &caller, id).await?;
            let new = NewAccount {
                id,
                asset: request.asset,
                chart_code: ChartCode(request.chart_code),
                rule: request.rule,
                metadata: request.metadata,
                layout: request.layout,
            };
            match single(&state, Command::OpenAccount(new)).await? {
                Outcome::Account(Ok(applied)) => Ok((
                    created(applied.created),
                    to_value(AccountView::from(&applied.value).named_in(&namespace))?,
                )),
                Outcome::Account(Err(rejection)) => Err(account_rejection(rejection)),
                _ => Err(ApiError::internal("unexpected outcome")),
            }
        },
    )
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

/// An account with its balances.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = formats::AccountId, Path)),
    responses((status = 200, body = AccountView), (status = "4XX", body = ErrorBody)))]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AccountView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let namespace = tenancy::namespace(&state, &caller);
    let id = tenancy::ledger_account(&namespace, account_id(&id)?);
    tenancy::authorize_account(&state, &caller, id, Use::Read).await?;
    let reader = state.reader.clone();
    let account = blocking(move || reader.account_summed(id).map_err(ApiError::from)).await?;
    let (account, buffered) = account.ok_or_else(|| ApiError::not_found("account"))?;
    let mut view = AccountView::from(&account);
    if matches!(account.layout, ledger::model::AccountLayout::Buffered { .. }) {
        view.buffered = Some((&buffered).into());
    }
    Ok(axum::Json(view.named_in(&namespace)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    #[schema(value_type = wire::AccountStatus)]
    status: AccountStatus,
}

/// Freeze an account for debits (冻结), unfreeze it, or close it. Freezing stops money
/// leaving, never arriving: refunds, voids and expiries still apply. Only an account whose
/// balances net to zero with nothing pending can be closed; closing is final.
#[utoipa::path(post, path = "/v1/accounts/{id}/status", tag = "accounts",
    request_body = StatusRequest, params(("id" = formats::AccountId, Path), IdempotencyKey),
    responses((status = 200, body = AccountStatusView), (status = "4XX", body = ErrorBody)))]
pub async fn set_account_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/accounts/{id}/status");
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        let namespace = tenancy::namespace(&state, &caller);
        let account_id = tenancy::ledger_account(&namespace, account_id(&id)?);
        let request: StatusRequest = parse(&body)?;
        tenancy::authorize_account(&state, &caller, account_id, Use::Write).await?;
        let command = Command::SetAccountStatus { account_id, status: request.status };
        match single(&state, command).await? {
            Outcome::Status(Ok(applied)) => Ok((
                StatusCode::OK,
                to_value(
                    AccountStatusView {
                        object: "account_status",
                        account_id,
                        status: applied.value,
                    }
                    .named_in(&namespace),
                )?,
            )),
            Outcome::Status(Err(rejection)) => Err(account_rejection(rejection)),
            _ => Err(ApiError::internal("unexpected outcome")),
        }
    })
    .await
}

/// A page of an account's history.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntryPageQuery {
    /// 1 to 1,000; default 100.
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The cursor: the `seq` of the last entry of the previous page.
    #[param(value_type = Option<formats::Seq>, nullable = false)]
    starting_after: Option<String>,
}

/// An account's history (账户明细): entries with the running balance, oldest first.
#[utoipa::path(get, path = "/v1/accounts/{id}/entries", tag = "accounts",
    params(("id" = formats::AccountId, Path), EntryPageQuery),
    responses((status = 200, body = EntryList), (status = "4XX", body = ErrorBody)))]
pub async fn list_entries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<EntryPageQuery>,
) -> Result<axum::Json<EntryList>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let namespace = tenancy::namespace(&state, &caller);
    let id = tenancy::ledger_account(&namespace, account_id(&id)?);
    let limit = page_limit(query.limit)?;
    let after = match query.starting_after {
        None => None,
        Some(raw) => Some(Seq(formats::parse_decimal_u64(&raw).ok_or_else(|| {
            ApiError::invalid("invalid_cursor", "starting_after must be an entry seq")
                .with_param("starting_after")
        })?)),
    };
    tenancy::authorize_account(&state, &caller, id, Use::Read).await?;
    let reader = state.reader.clone();
    // One more than asked, to know whether there is a next page.
    let mut entries = blocking(move || {
        reader.entries(id, Page { after, limit: limit + 1 }).map_err(ApiError::from)
    })
    .await?;
    if entries.is_empty() {
        // No entries, or no account: an admin (who skips the ownership check) must get the
        // same 404 as everyone else for an account that does not exist.
        let reader = state.reader.clone();
        if blocking(move || reader.account(id).map_err(ApiError::from)).await?.is_none() {
            return Err(ApiError::not_found("account"));
        }
    }
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let data = entries.iter().map(|entry| EntryView::from(entry).named_in(&namespace)).collect();
    Ok(axum::Json(EntryList { object: "list", data, has_more }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    /// A journal sequence number.
    #[param(nullable = false, maximum = 18446744073709551615u64)]
    as_of_seq: Option<u64>,
    /// An RFC 3339 time, with any offset (`2026-11-24T04:15:00Z`,
    /// `2026-11-24T12:15:00.5+08:00`); a time before the first record reads zero balances.
    #[param(value_type = String, format = DateTime, nullable = false)]
    as_of: Option<String>,
}

/// An account's balances now, or as of a journal point or a past time.
#[utoipa::path(get, path = "/v1/accounts/{id}/balance", tag = "accounts",
    params(("id" = formats::AccountId, Path), BalanceQuery),
    responses((status = 200, body = BalanceView), (status = "4XX", body = ErrorBody)))]
pub async fn get_balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<BalanceQuery>,
) -> Result<axum::Json<BalanceView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    let namespace = tenancy::namespace(&state, &caller);
    let id = tenancy::ledger_account(&namespace, account_id(&id)?);
    tenancy::authorize_account(&state, &caller, id, Use::Read).await?;
    let at = match &query.as_of {
        None => None,
        Some(raw) => {
            let micros = formats::parse_rfc3339_micros(raw).ok_or_else(|| {
                ApiError::invalid("invalid_time", "as_of must be an RFC 3339 time")
                    .with_param("as_of")
            })?;
            // Before 1970 nothing was recorded yet: the balances at the journal's start.
            Some(Timestamp(u64::try_from(micros).unwrap_or(0)))
        }
    };
    let reader = state.reader.clone();
    let as_of_seq = query.as_of_seq;
    let answer = blocking(move || {
        let (account, _) =
            reader.account_summed(id)?.ok_or_else(|| ApiError::not_found("account"))?;
        let seq = match (as_of_seq, at) {
            // No journal reaches i64::MAX records; past the head is "now".
            (Some(seq), _) => Some(Seq(seq.min(i64::MAX as u64))),
            (None, Some(at)) => Some(reader.seq_at(at)?),
            (None, None) => None,
        };
        let balances = match seq {
            None => account.balances,
            Some(seq) => reader.balances_as_of(id, seq)?.map(|(_, sum)| sum).unwrap_or_default(),
        };
        Ok(BalanceView {
            object: "balance",
            account_id: id,
            asset: account.asset,
            as_of_seq: seq.map(|s| s.0.to_string()),
            balances: (&balances).into(),
        })
    })
    .await?;
    Ok(axum::Json(answer.named_in(&namespace)))
}

// ---- transfers --------------------------------------------------------------------------

/// A transfer request. `id` may be omitted: it is then derived from the Idempotency-Key (so
/// that a retry derives the same id) or drawn at random.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferRequest {
    /// Move money now.
    Post {
        #[schema(value_type = Option<formats::TransferId>)]
        id: Option<TransferId>,
        #[schema(value_type = formats::AccountId)]
        debit_account_id: AccountId,
        /// Another account than the debit account.
        #[schema(value_type = formats::AccountId)]
        credit_account_id: AccountId,
        #[schema(value_type = formats::AssetCode)]
        asset: AssetCode,
        #[schema(value_type = formats::Amount)]
        amount: Amount,
        #[serde(default)]
        #[schema(maximum = 4294967295u32)]
        business_code: u32,
        /// The originating order, at most 64 characters.
        #[serde(default)]
        #[schema(value_type = String, max_length = 64)]
        order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
    },
    /// Hold money (a two-phase transfer), optionally expiring after `timeout_secs`.
    Pending {
        #[schema(value_type = Option<formats::TransferId>)]
        id: Option<TransferId>,
        #[schema(value_type = formats::AccountId)]
        debit_account_id: AccountId,
        /// Another account than the debit account.
        #[schema(value_type = formats::AccountId)]
        credit_account_id: AccountId,
        #[schema(value_type = formats::AssetCode)]
        asset: AssetCode,
        #[schema(value_type = formats::Amount)]
        amount: Amount,
        /// Released unless posted or voided within this many seconds; null or absent: never.
        #[schema(maximum = 4294967295u32)]
        timeout_secs: Option<u32>,
        #[serde(default)]
        #[schema(maximum = 4294967295u32)]
        business_code: u32,
        /// At most 64 characters.
        #[serde(default)]
        #[schema(value_type = String, max_length = 64)]
        order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
    },
}

/// Posting a hold. Every field is optional. (A void is read with this type too, so that an
/// `amount` on a void is answered `amount_not_allowed`; its schema is [`VoidRequest`].)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The id of the resolving transfer; derived from the Idempotency-Key if omitted.
    #[schema(value_type = Option<formats::TransferId>)]
    id: Option<TransferId>,
    /// Post part of the hold (the rest is released); omitted or null: the whole hold.
    #[schema(value_type = Option<formats::Amount>)]
    amount: Option<Amount>,
    #[serde(default)]
    #[schema(maximum = 4294967295u32)]
    business_code: u32,
    /// At most 64 characters.
    #[serde(default)]
    #[schema(value_type = String, max_length = 64)]
    order_ref: BoundedText<{ ledger::model::ORDER_REF_LEN_MAX }>,
}

/// Voiding a hold: [`ResolveRequest`] without `amount` (a void releases the whole hold).
/// Its schema documents the void; the handler reads a void as a `ResolveRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct VoidRequest {
    /// The id of the resolving transfer; derived from the Idempotency-Key if omitted.
    #[schema(value_type = Option<formats::TransferId>)]
    id: Option<TransferId>,
    #[serde(default)]
    #[schema(maximum = 4294967295u32)]
    business_code: u32,
    /// At most 64 characters.
    #[serde(default)]
    #[schema(value_type = String, max_length = 64)]
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
    // Below 2^127 (the ledger reserves the rest), and odd so never zero.
    TransferId::new((u128::from_be_bytes(raw) >> 1) | 1).map_err(ApiError::internal)
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
        // What the document states is refused here, before the ledger: a batch holding such
        // a transfer is malformed as a whole (400), like a single one.
        if matches!(action, TransferAction::Post(Movement { amount, .. })
            | TransferAction::Pending { movement: Movement { amount, .. }, .. } if amount.is_zero())
        {
            return Err(
                transfer_rejection(TransferRejection::AmountMustNotBeZero).with_param("amount")
            );
        }
        if id.is_some_and(TransferId::is_reserved) {
            return Err(transfer_rejection(TransferRejection::IdReserved).with_param("id"));
        }
        let id = match id {
            Some(id) => id,
            None => derived_id(caller, idempotency_key, index)?,
        };
        Ok(NewTransfer { id, action, business_code: BusinessCode(business_code), order_ref })
    }
}

fn transfer_rejection(rejection: TransferRejection) -> ApiError {
    let status = match rejection {
        TransferRejection::DebitAccountNotFound
        | TransferRejection::CreditAccountNotFound
        | TransferRejection::PendingNotFound => StatusCode::NOT_FOUND,
        TransferRejection::IdExistsWithDifferentFields => StatusCode::CONFLICT,
        // What the OpenAPI document states (amount at least 1, ids below 2^127) is a 400;
        // two equal account ids are well-formed each, refused together: 422.
        TransferRejection::AmountMustNotBeZero | TransferRejection::IdReserved => {
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

/// The accounts a new transfer (in ledger ids) moves money between must be the caller's to
/// write. A transfer has no owner of its own: a hold may be posted or voided by whoever may
/// write one of its accounts, so creating one writes nothing to the access store.
async fn authorize_transfer(
    state: &AppState,
    caller: &Caller,
    transfer: &NewTransfer,
) -> Result<(), ApiError> {
    tenancy::not_for_merchant_keys(caller)?;
    let accounts = match transfer.action {
        TransferAction::Post(movement) | TransferAction::Pending { movement, .. } => {
            [movement.debit_account_id, movement.credit_account_id]
        }
        TransferAction::PostPending { pending_id, .. }
        | TransferAction::VoidPending { pending_id } => {
            let reader = state.reader.clone();
            let hold = blocking(move || reader.hold(pending_id).map_err(ApiError::from)).await?;
            let hold = hold.ok_or_else(|| ApiError::not_found("transfer"))?;
            let accounts = [hold.movement.debit_account_id, hold.movement.credit_account_id];
            if caller.is_admin() || tenancy::uses_one(state, caller, accounts, Use::Write).await? {
                return Ok(());
            }
            return Err(ApiError::not_found("transfer"));
        }
    };
    for account in accounts {
        tenancy::authorize_account(state, caller, account, Use::Write)
            .await
            .map_err(|e| e.with_param("account_id"))?;
    }
    Ok(())
}

/// Submits one transfer named by the caller; answers in the caller's ids.
async fn submit_one(
    state: &AppState,
    caller: &Caller,
    transfer: NewTransfer,
) -> Result<(StatusCode, Value), ApiError> {
    let namespace = tenancy::namespace(state, caller);
    let transfer = tenancy::ledger_new_transfer(&namespace, transfer);
    authorize_transfer(state, caller, &transfer).await?;
    match single(state, Command::Transfers(vec![transfer])).await? {
        Outcome::Transfers(mut results) => match results.pop() {
            Some(Ok(applied)) => Ok((
                created(applied.created),
                to_value(TransferView::from(&applied.value).named_in(&namespace))?,
            )),
            Some(Err(rejection)) => Err(transfer_rejection(rejection)),
            None => Err(ApiError::internal("no result")),
        },
        _ => Err(ApiError::internal("unexpected outcome")),
    }
}

/// Create a transfer: posted now, or a pending hold.
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", request_body = TransferRequest,
    params(IdempotencyKey),
    responses((status = 201, body = TransferView), (status = 200, description = "replayed: same id and fields", body = TransferView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_transfer(
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
        "POST /v1/transfers",
        &body,
        async {
            let request: TransferRequest = parse(&body)?;
            let key = idempotency::key(&headers).ok().flatten();
            let transfer = request.into_new(&caller, key.as_deref(), 0)?;
            submit_one(&state, &caller, transfer).await
        },
    )
    .await
}

/// Post a pending transfer, whole or in part.
#[utoipa::path(post, path = "/v1/transfers/{id}/post", tag = "transfers",
    request_body = ResolveRequest,
    params(("id" = formats::AnyTransferId, Path), IdempotencyKey),
    responses((status = 201, body = TransferView), (status = 200, description = "replayed", body = TransferView),
        (status = "4XX", body = ErrorBody)))]
pub async fn post_pending(
    State(state): State<AppState>,
    caller: Caller,
    Path(pending): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    resolve(state, caller, pending, headers, body, true).await
}

/// Void a pending transfer: the hold is released.
#[utoipa::path(post, path = "/v1/transfers/{id}/void", tag = "transfers",
    request_body = VoidRequest,
    params(("id" = formats::AnyTransferId, Path), IdempotencyKey),
    responses((status = 201, body = TransferView), (status = 200, description = "replayed", body = TransferView),
        (status = "4XX", body = ErrorBody)))]
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
    idempotency::once(&state, &caller, Scope::LedgerWrite, &headers, &route, &body, async {
        let pending_id = transfer_id(&pending)?;
        // No body is every field omitted (the document marks the body optional).
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 8,000 transfers.
    #[schema(value_type = Vec<TransferRequest>, min_items = 1, max_items = 8000)]
    transfers: Vec<Value>,
    /// All or nothing: the transfers form one linked group.
    #[serde(default)]
    linked: bool,
}

/// Create up to 8,000 transfers; one result per item. With `linked`, all or nothing.
#[utoipa::path(post, path = "/v1/transfers/batch", tag = "transfers", request_body = BatchRequest,
    params(IdempotencyKey),
    responses((status = 200, body = BatchResultView), (status = "4XX", body = ErrorBody)))]
pub async fn create_batch(
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
        "POST /v1/transfers/batch",
        &body,
        async {
            let request: BatchRequest = parse(&body)?;
            let key = idempotency::key(&headers).ok().flatten();
            let namespace = tenancy::namespace(&state, &caller);
            if request.transfers.is_empty() || request.transfers.len() > BATCH_TRANSFERS_MAX {
                return Err(ApiError::invalid(
                    "invalid_batch_size",
                    format!("a batch holds 1 to {BATCH_TRANSFERS_MAX} transfers"),
                )
                .with_param("transfers"));
            }
            let mut transfers = Vec::with_capacity(request.transfers.len());
            for (index, item) in request.transfers.into_iter().enumerate() {
                let item: TransferRequest = parse_value(item).map_err(|e| {
                    ApiError::invalid("invalid_body", e.to_string())
                        .with_param(format!("transfers[{index}]"))
                })?;
                let transfer = item
                    .into_new(&caller, key.as_deref(), index)
                    .map_err(|e| e.with_param(format!("transfers[{index}]")))?;
                let transfer = tenancy::ledger_new_transfer(&namespace, transfer);
                authorize_transfer(&state, &caller, &transfer)
                    .await
                    .map_err(|e| e.with_param(format!("transfers[{index}]")))?;
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
                let Outcome::Transfers(results) = outcome else {
                    return Err(ApiError::internal("unexpected outcome"));
                };
                for result in results {
                    data.push(match result {
                        Ok(applied) => BatchItemView {
                            status: if applied.created { "created" } else { "replayed" },
                            transfer: Some(TransferView::from(&applied.value).named_in(&namespace)),
                            error: None,
                        },
                        Err(rejection) => BatchItemView {
                            status: "rejected",
                            transfer: None,
                            error: Some(ErrorDetail::from(&transfer_rejection(rejection))),
                        },
                    });
                }
            }
            Ok((StatusCode::OK, to_value(BatchResultView { object: "batch_result", data })?))
        },
    )
    .await
}

/// A transfer, visible to the owners of its accounts.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers",
    params(("id" = formats::AnyTransferId, Path)),
    responses((status = 200, body = TransferView), (status = "4XX", body = ErrorBody)))]
pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    tenancy::not_for_merchant_keys(&caller)?;
    let namespace = tenancy::namespace(&state, &caller);
    let id = tenancy::ledger_transfer(&namespace, transfer_id(&id)?);
    let reader = state.reader.clone();
    let transfer = blocking(move || reader.transfer(id).map_err(ApiError::from)).await?;
    let transfer = transfer.ok_or_else(|| ApiError::not_found("transfer"))?;
    let accounts = [transfer.debit_account_id, transfer.credit_account_id];
    if !caller.is_admin() && !tenancy::uses_one(&state, &caller, accounts, Use::Read).await? {
        return Err(ApiError::not_found("transfer"));
    }
    Ok(axum::Json(TransferView::from(&transfer).named_in(&namespace)))
}

// ---- books (admin) ----------------------------------------------------------------------

/// The trial balance (试算平衡), per asset and chart code (admin).
#[utoipa::path(get, path = "/v1/trial-balance", tag = "books",
    responses((status = 200, body = TrialBalanceView), (status = "4XX", body = ErrorBody)))]
pub async fn trial_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<TrialBalanceView>, ApiError> {
    caller.require(Scope::Admin)?;
    let reader = state.reader.clone();
    let lines = blocking(move || reader.trial_balance().map_err(ApiError::from)).await?;
    let assets = ledger::port::AssetTotals::of(&lines)
        .iter()
        .map(|asset| TrialBalanceAsset {
            asset: asset.asset.to_string(),
            debits_posted: asset.totals.debits_posted.to_string(),
            credits_posted: asset.totals.credits_posted.to_string(),
            debits_pending: asset.totals.debits_pending.to_string(),
            credits_pending: asset.totals.credits_pending.to_string(),
            balanced: asset.balanced(),
        })
        .collect();
    let data: Vec<TrialBalanceLine> = lines
        .iter()
        .map(|line| TrialBalanceLine {
            asset: line.asset,
            chart_code: line.chart_code.0,
            n_accounts: line.n_accounts,
            balances: (&line.balances).into(),
        })
        .collect();
    Ok(axum::Json(TrialBalanceView { object: "trial_balance", lines: data, assets }))
}

/// Recompute the hash chain and every balance from the journal (admin).
#[utoipa::path(post, path = "/v1/journal/verify", tag = "books",
    responses((status = 200, body = VerifyView), (status = "4XX", body = ErrorBody)))]
pub async fn verify_journal(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<VerifyView>, ApiError> {
    caller.require(Scope::Admin)?;
    let reader = state.reader.clone();
    let report = blocking(move || {
        ledger::verify::verify(reader.as_ref(), &mut |_| {}).map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(VerifyView { object: "verify_report", ok: report.is_ok(), report }))
}
