//! `/v1/customers` and `/v1/merchants`: the payment core's parties, each with its ledger
//! accounts per asset and their balances. Every party belongs to the caller's tenant; another
//! tenant gets 404. The accounts' ids are shown in the caller's namespace (`tenancy`), and the
//! party's tenant may read them on the ledger API.

use access::namespace::Namespace;
use access::Scope;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use executor::{party_key, ExecError, Party, PartyKind};
use ledger::AccountId;
use money::AssetCode;
use payments::chart::{merchant_account_id, wallet_account_id};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::payments_api::{executor, not_for_merchant_keys, own_merchant};
use crate::request::{blocking, parse};
use crate::tenancy;
use crate::views::{to_value, ErrorBody};
use crate::{formats, idempotency, AppState};

#[derive(Serialize, ToSchema)]
pub struct BalanceLine {
    pub asset: String,
    /// `wallet` for customers; `unsettled` and `settled` for merchants.
    pub account: &'static str,
    /// The ledger account id (decimal string): `GET /v1/accounts/{id}` and its entries.
    pub account_id: String,
    /// Posted credits minus posted debits, minor units (for buffered payables, with what
    /// waits in the buffers).
    pub balance: String,
    /// What can be spent now: the balance minus holds.
    pub available: String,
}

#[derive(Serialize, ToSchema)]
pub struct PartyView {
    pub id: String,
    /// `customer` or `merchant`.
    pub object: &'static str,
    pub name: String,
    pub assets: Vec<String>,
    /// Merchants: the platform's fee on each payment, in basis points.
    pub fee_bps: u32,
    /// Merchants: payments of day T are settled on day T+N.
    pub settle_after_days: u32,
    /// Merchants: how the unsettled payables are spread over rows (hot merchants); absent for
    /// customers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::views::wire::AccountLayout>)]
    pub unsettled_layout: Option<ledger::model::AccountLayout>,
    pub balances: Vec<BalanceLine>,
    pub created_at_ms: u64,
}

/// A party's balance in one account. Blocking. The party's tenant is recorded as the reader of
/// the account, so its keys can read it on the ledger API under the id shown here.
fn balance_line(
    state: &AppState,
    (tenant, namespace): (&access::TenantId, &Namespace),
    asset: AssetCode,
    account: &'static str,
    id: AccountId,
) -> Result<BalanceLine, ApiError> {
    tenancy::claim_party_account(state, tenant, id)?;
    // Summed over a hot merchant's rows; what waits in buffers is credited (in the balance)
    // but not yet spendable (not in what is available).
    let (balance, available) = match state.reader.account_summed(id)? {
        Some((found, buffered)) => (
            found.balances.net_credit_posted() + buffered.net_credit_posted(),
            found.balances.available_credit(),
        ),
        None => (0, 0),
    };
    Ok(BalanceLine {
        asset: asset.as_str().to_owned(),
        account,
        account_id: tenancy::client_account(namespace, id).get().to_string(),
        balance: balance.to_string(),
        available: available.to_string(),
    })
}

/// A party, with its accounts' ids in `namespace` (the caller's). Blocking.
fn party_view(
    state: &AppState,
    party: Party,
    namespace: &Namespace,
) -> Result<PartyView, ApiError> {
    let key = party_key(&party.tenant, &party.id);
    let tenant = access::TenantId::new(&party.tenant).map_err(ApiError::internal)?;
    let owner = (&tenant, namespace);
    let mut balances = Vec::new();
    for asset in &party.assets {
        match party.kind {
            PartyKind::Customer => {
                let points = state
                    .payments
                    .as_ref()
                    .and_then(|executor| executor.points_config())
                    .is_some_and(|config| config.asset == *asset);
                let name = if points { "points" } else { "wallet" };
                balances.push(balance_line(
                    state,
                    owner,
                    *asset,
                    name,
                    wallet_account_id(&key, *asset),
                )?)
            }
            PartyKind::Merchant => {
                for (name, settled) in [("unsettled", false), ("settled", true)] {
                    let id = merchant_account_id(&key, *asset, settled);
                    balances.push(balance_line(state, owner, *asset, name, id)?);
                }
            }
        }
    }
    Ok(PartyView {
        object: party.kind.as_str(),
        id: party.id,
        name: party.name,
        assets: party.assets.iter().map(|a| a.as_str().to_owned()).collect(),
        fee_bps: party.fee_bps,
        settle_after_days: party.settle_after_days,
        unsettled_layout: (party.kind == PartyKind::Merchant).then_some(party.unsettled_layout),
        balances,
        created_at_ms: party.created_at_ms,
    })
}

// ---- parties -------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    /// Your id for the customer, unique in your tenant.
    #[schema(value_type = formats::PartyId)]
    id: String,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: String,
    /// 1 to 16; a wallet is opened in each (the asset must be defined).
    #[schema(value_type = Vec<formats::AssetCode>, min_items = 1, max_items = 16)]
    assets: Vec<AssetCode>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    #[schema(value_type = formats::PartyId)]
    id: String,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    name: String,
    /// 1 to 16; payables are opened in each (the asset must be defined).
    #[schema(value_type = Vec<formats::AssetCode>, min_items = 1, max_items = 16)]
    assets: Vec<AssetCode>,
    /// The platform's fee on each payment, basis points (0 to 10,000), rounded half up.
    #[serde(default)]
    #[schema(example = 60, maximum = 10000)]
    fee_bps: u32,
    /// Settlement cycle: payments of day T are settled on day T+N (0 to 90, default 1).
    #[serde(default = "one_day")]
    #[schema(example = 1, maximum = 90)]
    settle_after_days: u32,
    /// For a hot merchant (热点账户): how its unsettled payables, which every payment credits,
    /// are spread over rows. `sub_accounts`: credits are spendable at once (a refund can
    /// return a payment the moment it is made). `buffered`: cheaper credits, folded into the
    /// payables within the ledger's fold interval (100 ms by default); until then a refund
    /// cannot spend them. Plain by default; fixed once the merchant is open.
    #[serde(default)]
    #[schema(value_type = crate::views::wire::NewAccountLayout)]
    unsettled_layout: ledger::model::AccountLayout,
}

fn one_day() -> u32 {
    1
}

/// Open a customer with a wallet per asset (idempotent).
#[utoipa::path(post, path = "/v1/customers", tag = "payments", request_body = CustomerRequest,
    params(IdempotencyKey),
    responses((status = 201, body = PartyView), (status = 200, description = "already open", body = PartyView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_customer(
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
        "POST /v1/customers",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: CustomerRequest = parse(&body)?;
            let terms = (0, 0, Default::default());
            open_party(
                &state,
                &caller,
                PartyKind::Customer,
                request.id,
                request.name,
                request.assets,
                terms,
            )
            .await
        },
    )
    .await
}

/// Open a merchant with its payables per asset (idempotent).
#[utoipa::path(post, path = "/v1/merchants", tag = "payments", request_body = MerchantRequest,
    params(IdempotencyKey),
    responses((status = 201, body = PartyView), (status = 200, description = "already open", body = PartyView),
        (status = "4XX", body = ErrorBody)))]
pub async fn create_merchant(
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
        "POST /v1/merchants",
        &body,
        async {
            not_for_merchant_keys(&caller)?;
            let request: MerchantRequest = parse(&body)?;
            open_party(
                &state,
                &caller,
                PartyKind::Merchant,
                request.id,
                request.name,
                request.assets,
                (request.fee_bps, request.settle_after_days, request.unsettled_layout),
            )
            .await
        },
    )
    .await
}

async fn open_party(
    state: &AppState,
    caller: &Caller,
    kind: PartyKind,
    id: String,
    name: String,
    assets: Vec<AssetCode>,
    (fee_bps, settle_after_days, unsettled_layout): (u32, u32, ledger::model::AccountLayout),
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let executor = executor(state)?;
    let tenant = caller.tenant().as_str();
    let existed = executor.store().get_party(tenant, kind, &id).map_err(ExecError::from)?.is_some();
    let new =
        executor::NewParty { kind, id, name, assets, fee_bps, settle_after_days, unsettled_layout };
    let party = executor.open_party(tenant, new).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    let state = state.clone();
    let namespace = tenancy::namespace(&state, caller);
    let view = blocking(move || party_view(&state, party, &namespace)).await?;
    Ok((status, to_value(view)?))
}

/// A customer with its wallet balances.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "payments",
    params(("id" = formats::PartyId, Path)),
    responses((status = 200, body = PartyView), (status = "4XX", body = ErrorBody)))]
pub async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<PartyView>, ApiError> {
    get_party(&state, &caller, PartyKind::Customer, &id).await
}

/// A merchant with its unsettled and settled balances.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "payments",
    params(("id" = formats::PartyId, Path)),
    responses((status = 200, body = PartyView), (status = "4XX", body = ErrorBody)))]
pub async fn get_merchant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<PartyView>, ApiError> {
    get_party(&state, &caller, PartyKind::Merchant, &id).await
}

async fn get_party(
    state: &AppState,
    caller: &Caller,
    kind: PartyKind,
    id: &str,
) -> Result<axum::Json<PartyView>, ApiError> {
    caller.require(Scope::LedgerRead)?;
    match kind {
        PartyKind::Customer => not_for_merchant_keys(caller)?,
        PartyKind::Merchant => own_merchant(caller, id)?,
    }
    let party = executor(state)?.party(caller.tenant().as_str(), kind, id)?;
    // Balances come from the ledger reader, whose clients block.
    let state = state.clone();
    let namespace = tenancy::namespace(&state, caller);
    Ok(axum::Json(blocking(move || party_view(&state, party, &namespace)).await?))
}
