use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use channels::gateway::Millis;
use channels::inquiry::{Inquirer, InquiryOwner, InquiryTask};
use channels::{BoxFuture, ChannelId, Gateway, Outcome};
use ledger::apply::Command;
use ledger::{LedgerHandle, NewTransfer, TransferRejection};
use money::{Amount, AssetCode};
use payments::booking::{BookingState, Payment, PaymentState, Rate, Refund, WalletTransfer};
use payments::chart::{
    chart_commands, internal_accounts, merchant_accounts, points_account, wallet_account,
};
use payments::topup::TopUp;
use payments::withdrawal::Withdrawal;
use payments::{Effect, Event, Order, OrderId, OrderKind};
use sha2::{Digest, Sha256};

use crate::port::{
    GuardedInsert, Inserted, NewEvent, OrderRecord, OrderStore, OrderStoreError, Party, PartyKind,
    RefundTotals,
};

/// Longest customer, merchant or reference id.
pub const PARTY_ID_LEN_MAX: usize = 64;
/// A merchant's fee can be at most the whole payment.
pub const FEE_BPS_MAX: u32 = 10_000;
/// Parties kept in memory at most (the cache starts over when full).
const PARTY_CACHE_MAX: usize = 100_000;
/// The longest settlement cycle (T+N) a merchant can have.
pub const SETTLE_AFTER_DAYS_MAX: u32 = 90;
/// The longest customer or merchant name, in characters (as JSON Schema counts them).
pub const PARTY_NAME_LEN_MAX: usize = 200;
/// Assets a customer or merchant holds accounts in, at most.
pub const PARTY_ASSETS_MAX: usize = 16;
/// The longest card or bank account number at a channel, in characters.
pub const BANK_ACCOUNT_LEN_MAX: usize = 64;

/// The platform's points (积分): which asset they are, and what one is worth in cash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointsConfig {
    pub asset: AssetCode,
    /// The asset payments are made in when points pay part of them.
    pub cash_asset: AssetCode,
    /// What one point is worth, in minor units of `cash_asset`.
    pub value_minor_per_point: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct ExecutorConfig {
    /// Points, if the platform runs them.
    pub points: Option<PointsConfig>,
    /// Inspection resumes an unfinished order only once it has not changed for this long
    /// (so it does not race the request that is driving it right now).
    pub inspect_after_ms: u64,
    /// An unfinished order older than this is reported as overdue (and logged) by inspection.
    pub overdue_after_ms: u64,
}

impl Default for ExecutorConfig {
    fn default() -> ExecutorConfig {
        ExecutorConfig { points: None, inspect_after_ms: 30_000, overdue_after_ms: 15 * 60_000 }
    }
}

/// Why a request to the payment core was refused, or could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A field is malformed or out of its range: something the API's schema states.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A well-formed field refused by another field of the request (points worth more than
    /// the price) or by the state (no FX rate, more than was authorised): no schema can say it.
    #[error("{field}: {message}")]
    Refused { field: &'static str, message: String },
    #[error("no {kind} {id}", kind = kind.as_str())]
    PartyNotFound { kind: PartyKind, id: String },
    #[error("a {kind} {id} exists with different fields", kind = kind.as_str())]
    PartyExistsWithDifferentFields { kind: PartyKind, id: String },
    #[error("{kind} {id} has no {asset} account", kind = kind.as_str())]
    AssetNotOpened { kind: PartyKind, id: String, asset: AssetCode },
    #[error("an order with this reference exists with different fields")]
    OrderExistsWithDifferentFields,
    #[error("no order {0}")]
    OrderNotFound(String),
    #[error("payment {0} cannot be refunded: {1}")]
    NotRefundable(String, &'static str),
    #[error("the refund would return more than the payment's remaining amount")]
    RefundExceedsPayment,
    #[error("an order in state {state} cannot take {event}")]
    NotAllowed { state: &'static str, event: &'static str },
    #[error("the capture was refused: {0}")]
    CaptureRefused(String),
    #[error("no channel {0}")]
    ChannelNotFound(String),
    #[error("callback refused: {0}")]
    CallbackRefused(String),
    #[error("ledger setup refused: {0}")]
    LedgerSetup(&'static str),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Store(#[from] OrderStoreError),
}

impl ExecError {
    /// The stable code of the error, for the API.
    pub fn code(&self) -> &'static str {
        match self {
            ExecError::Invalid { .. } => "invalid_field",
            ExecError::Refused { .. } => "field_refused",
            ExecError::PartyNotFound { kind: PartyKind::Customer, .. } => "customer_not_found",
            ExecError::PartyNotFound { kind: PartyKind::Merchant, .. } => "merchant_not_found",
            ExecError::PartyExistsWithDifferentFields { .. } => {
                "party_exists_with_different_fields"
            }
            ExecError::AssetNotOpened { .. } => "asset_not_opened",
            ExecError::OrderExistsWithDifferentFields => "order_exists_with_different_fields",
            ExecError::OrderNotFound(_) => "order_not_found",
            ExecError::NotRefundable(..) => "payment_not_refundable",
            ExecError::RefundExceedsPayment => "refund_exceeds_payment",
            ExecError::NotAllowed { .. } => "order_state_conflict",
            ExecError::CaptureRefused(_) => "capture_refused",
            ExecError::ChannelNotFound(_) => "channel_not_found",
            ExecError::CallbackRefused(_) => "callback_refused",
            ExecError::LedgerSetup(code) => code,
            ExecError::Ledger(_) => "ledger_unavailable",
            ExecError::Store(_) => "store_unavailable",
        }
    }
}

pub struct TopUpRequest {
    pub reference: String,
    pub customer: String,
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct WithdrawalRequest {
    pub reference: String,
    pub customer: String,
    pub bank_account: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct PaymentRequest {
    pub reference: String,
    pub customer: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub amount: Amount,
    /// Points paying part of the amount (积分+支付), at the platform's rate.
    pub points: Option<Amount>,
    /// Pay from the customer's wallet in this asset, converted at the platform's rate.
    pub pay_from: Option<AssetCode>,
    /// Authorise now and capture later, the hold living this long; `None`: capture now.
    pub authorize_for_secs: Option<u32>,
}

/// The longest an authorisation may hold money (预授权): 30 days.
pub const AUTHORIZATION_SECS_MAX: u32 = 30 * 86_400;

pub struct CardPaymentRequest {
    pub reference: String,
    pub customer: String,
    pub merchant: String,
    /// The payer's card at the channel.
    pub card: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

pub struct RefundRequest {
    pub reference: String,
    pub payment: OrderId,
    pub amount: Amount,
}

pub struct PayoutItem {
    /// Unique within the batch.
    pub reference: String,
    pub bank_account: String,
    pub amount: Amount,
}

/// A merchant's batch payout (代付): each item is its own payout order.
pub struct PayoutBatchRequest {
    pub reference: String,
    pub merchant: String,
    pub asset: AssetCode,
    pub items: Vec<PayoutItem>,
}

/// Items in one payout batch at most.
pub const PAYOUT_BATCH_ITEMS_MAX: usize = 1_000;
/// Items of a batch carried out at once.
const PAYOUT_BATCH_CONCURRENCY: usize = 8;

pub struct WalletTransferRequest {
    pub reference: String,
    pub from: String,
    pub to: String,
    pub asset: AssetCode,
    pub amount: Amount,
}

/// A customer or merchant to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewParty {
    pub kind: PartyKind,
    pub id: String,
    pub name: String,
    pub assets: Vec<AssetCode>,
    /// Merchants: the platform's fee, basis points of each payment.
    pub fee_bps: u32,
    /// Merchants: the settlement cycle (T+N).
    pub settle_after_days: u32,
}

/// A created (or, for a retry, found) order.
#[derive(Clone, Debug)]
pub struct Placed {
    pub record: OrderRecord,
    /// False when the order existed: the request was a retry and did nothing.
    pub created: bool,
}

/// What one inspection pass (巡检) found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InspectionReport {
    /// Unfinished orders looked at.
    pub examined: u64,
    /// Of those, now final.
    pub finished: u64,
    /// Still unfinished past the overdue age: an operator should look.
    pub overdue: u64,
    /// Resuming failed (ledger or store unavailable); tried again next pass.
    pub errors: u64,
    /// Card refunds waiting for their channel to come back (the money held for them).
    pub awaiting_channel: u64,
    /// How long the oldest of them has waited (0 when none waits).
    pub awaiting_channel_age_ms_max: u64,
}

/// The refunds waiting for their channel that one inspection pass saw, each once (an order
/// retried during the pass may be listed again).
#[derive(Default)]
struct ChannelWaits {
    seen: HashSet<OrderId>,
    age_ms_max: u64,
}

impl ChannelWaits {
    fn add(&mut self, record: &OrderRecord, now_ms: u64) {
        let Some(since_ms) = record.order.awaiting_channel_since_ms() else { return };
        if self.seen.insert(record.id().clone()) {
            self.age_ms_max = self.age_ms_max.max(now_ms.saturating_sub(since_ms));
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    orders_created: AtomicU64,
    transitions: AtomicU64,
    version_conflicts: AtomicU64,
    illegal_events: AtomicU64,
    inspections: AtomicU64,
    overdue: AtomicU64,
    /// Gauges of the last inspection pass: refunds waiting for their channel, and the age
    /// of the oldest.
    awaiting_channel: AtomicU64,
    awaiting_channel_age_ms_max: AtomicU64,
}

/// The customer or merchant key the payment core books under: tenants never share accounts.
pub fn party_key(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}

/// The part of a party key after the tenant.
fn party_id(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, id)| id)
}

fn check_id(field: &'static str, raw: &str) -> Result<(), ExecError> {
    let ok = !raw.is_empty()
        && raw.len() <= PARTY_ID_LEN_MAX
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ExecError::Invalid {
            field,
            message: format!("1 to {PARTY_ID_LEN_MAX} characters of [A-Za-z0-9_.-]"),
        })
    }
}

/// A card or bank account number at a channel: 1 to 64 characters (the channel checks the
/// rest).
fn check_bank_account(field: &'static str, raw: &str) -> Result<(), ExecError> {
    if raw.is_empty() || raw.chars().count() > BANK_ACCOUNT_LEN_MAX {
        return Err(ExecError::Invalid {
            field,
            message: format!("1 to {BANK_ACCOUNT_LEN_MAX} characters"),
        });
    }
    Ok(())
}

fn check_amount(amount: Amount) -> Result<(), ExecError> {
    if amount.is_zero() {
        return Err(ExecError::Invalid { field: "amount", message: "must be above zero".into() });
    }
    Ok(())
}

/// The order id of a client's reference: derived, so a retried create names the same order
/// even if every other record of the first attempt is lost.
fn derive_order_id(tenant: &str, kind: OrderKind, scope: &str, reference: &str) -> OrderId {
    derive_id(tenant, kind.as_str(), kind.id_prefix(), scope, reference)
}

/// A payout batch's id (`pb_…`), derived like an order's.
pub fn payout_batch_id(tenant: &str, merchant: &str, reference: &str) -> OrderId {
    derive_id(tenant, "payout_batch", "pb", merchant, reference)
}

fn derive_id(tenant: &str, kind: &str, prefix: &str, scope: &str, reference: &str) -> OrderId {
    let digest = Sha256::new()
        .chain_update(b"qianbao.order\0")
        .chain_update(tenant)
        .chain_update([0])
        .chain_update(kind)
        .chain_update([0])
        .chain_update(scope)
        .chain_update([0])
        .chain_update(reference)
        .finalize();
    let id = format!("{prefix}_{}", &hex::encode(digest)[..24]);
    match OrderId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("a short prefix and hex digits"),
    }
}

fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The first rejection of a linked group that is its cause (the others say the group failed).
fn group_rejection(results: &[ledger::TransferResult]) -> Option<TransferRejection> {
    let mut first = None;
    for rejection in results.iter().filter_map(|result| result.as_ref().err()) {
        if *rejection != TransferRejection::LinkedTransferFailed {
            return Some(*rejection);
        }
        first.get_or_insert(*rejection);
    }
    first
}

/// One async lock per order being driven, so that one process never carries out two
/// transitions of one order at once (a request, a callback, an inquiry result, inspection):
/// otherwise a late ledger answer from one could land on a state the other already finished.
/// Entries live only while someone holds or waits for them.
#[derive(Default)]
struct OrderLocks {
    held: Mutex<HashMap<OrderId, Arc<tokio::sync::Mutex<()>>>>,
}

struct OrderGuard<'a> {
    locks: &'a OrderLocks,
    id: OrderId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl OrderLocks {
    async fn lock(&self, id: &OrderId) -> OrderGuard<'_> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.entry(id.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        OrderGuard { locks: self, id: id.clone(), guard: Some(guard) }
    }
}

impl Drop for OrderGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else holds or waits for it.
        if held.get(&self.id).is_some_and(|lock| Arc::strong_count(lock) == 2) {
            held.remove(&self.id);
        }
        drop(self.guard.take());
    }
}

pub struct Executor {
    store: Arc<dyn OrderStore>,
    order_locks: OrderLocks,
    ledger: LedgerHandle,
    gateway: Option<Arc<Gateway>>,
    inquirer: OnceLock<Arc<Inquirer>>,
    clock: Arc<dyn Millis>,
    config: ExecutorConfig,
    /// Assets whose internal accounts are open (opening is idempotent; this saves the trip).
    assets_ready: Mutex<HashSet<AssetCode>>,
    /// Parties read on every order: they never change once opened (a reopening with other
    /// terms is refused), so a bounded cache in front of the store is always right.
    parties: Mutex<HashMap<(String, PartyKind, String), Party>>,
    /// Exchange rates by (payment asset, funding asset): operators set them; each payment
    /// records the rate it used.
    fx_rates: Mutex<HashMap<(AssetCode, AssetCode), Rate>>,
    counters: Counters,
}

impl Executor {
    pub fn new(
        store: Arc<dyn OrderStore>,
        ledger: LedgerHandle,
        gateway: Option<Arc<Gateway>>,
        clock: Arc<dyn Millis>,
        config: ExecutorConfig,
    ) -> Executor {
        Executor {
            store,
            ledger,
            gateway,
            inquirer: OnceLock::new(),
            clock,
            config,
            assets_ready: Mutex::new(HashSet::new()),
            fx_rates: Mutex::new(HashMap::new()),
            parties: Mutex::new(HashMap::new()),
            order_locks: OrderLocks::default(),
            counters: Counters::default(),
        }
    }

    /// Gives the executor the status-inquiry service whose owner it is (see
    /// [`InquiryOwnerAdapter`]); without one, unknown outcomes wait for inspection.
    pub fn set_inquirer(&self, inquirer: Arc<Inquirer>) {
        let _ = self.inquirer.set(inquirer);
    }

    pub fn store(&self) -> &Arc<dyn OrderStore> {
        &self.store
    }

    pub fn gateway(&self) -> Option<&Arc<Gateway>> {
        self.gateway.as_ref()
    }

    /// Defines the chart of accounts in the ledger (idempotent).
    pub async fn bootstrap(&self) -> Result<(), ExecError> {
        self.setup(chart_commands()).await
    }

    async fn setup(&self, commands: Vec<Command>) -> Result<(), ExecError> {
        for outcome in self.ledger.execute(commands).await? {
            let refused = match outcome {
                ledger::Outcome::Asset(Err(rejection))
                | ledger::Outcome::Chart(Err(rejection))
                | ledger::Outcome::Account(Err(rejection))
                | ledger::Outcome::Status(Err(rejection)) => Some(rejection.code()),
                ledger::Outcome::Transfers(results) => group_rejection(&results).map(|r| r.code()),
                _ => None,
            };
            if let Some(code) = refused {
                return Err(ExecError::LedgerSetup(code));
            }
        }
        Ok(())
    }

    async fn ensure_asset(&self, asset: AssetCode) -> Result<(), ExecError> {
        if self.assets_ready.lock().unwrap_or_else(|p| p.into_inner()).contains(&asset) {
            return Ok(());
        }
        let channels = self.gateway.as_ref().map(|g| g.channel_ids()).unwrap_or_default();
        let commands =
            internal_accounts(asset, &channels).into_iter().map(Command::OpenAccount).collect();
        self.setup(commands).await?;
        self.assets_ready.lock().unwrap_or_else(|p| p.into_inner()).insert(asset);
        Ok(())
    }

    // ---- parties ---------------------------------------------------------------------------

    /// Opens a customer (with a wallet per asset) or a merchant (with its payables per
    /// asset). Idempotent: the same request again returns the stored party.
    pub async fn open_party(&self, tenant: &str, new: NewParty) -> Result<Party, ExecError> {
        let NewParty { kind, id, name, assets, fee_bps, settle_after_days } = new;
        let (id, name) = (id.as_str(), name.as_str());
        check_id("id", id)?;
        if settle_after_days > SETTLE_AFTER_DAYS_MAX
            || (kind == PartyKind::Customer && settle_after_days != 0)
        {
            return Err(ExecError::Invalid {
                field: "settle_after_days",
                message: format!("0 to {SETTLE_AFTER_DAYS_MAX}, and only for merchants"),
            });
        }
        if name.chars().count() > PARTY_NAME_LEN_MAX {
            return Err(ExecError::Invalid {
                field: "name",
                message: format!("at most {PARTY_NAME_LEN_MAX} characters"),
            });
        }
        if assets.is_empty() || assets.len() > PARTY_ASSETS_MAX {
            return Err(ExecError::Invalid {
                field: "assets",
                message: format!("1 to {PARTY_ASSETS_MAX} assets"),
            });
        }
        if fee_bps > FEE_BPS_MAX || (kind == PartyKind::Customer && fee_bps != 0) {
            return Err(ExecError::Invalid {
                field: "fee_bps",
                message: format!("0 to {FEE_BPS_MAX}, and only for merchants"),
            });
        }
        let mut assets = assets;
        assets.sort();
        assets.dedup();
        let key = party_key(tenant, id);
        let mut commands = Vec::new();
        for asset in &assets {
            self.ensure_asset(*asset).await?;
            match kind {
                PartyKind::Customer => {
                    let is_points = self.config.points.is_some_and(|p| p.asset == *asset);
                    commands.push(Command::OpenAccount(if is_points {
                        points_account(&key, *asset)
                    } else {
                        wallet_account(&key, *asset)
                    }))
                }
                PartyKind::Merchant => commands
                    .extend(merchant_accounts(&key, *asset).into_iter().map(Command::OpenAccount)),
            }
        }
        // Accounts first: a party the store knows always has its accounts.
        self.setup(commands).await?;
        let party = Party {
            tenant: tenant.to_owned(),
            kind,
            id: id.to_owned(),
            name: name.to_owned(),
            assets,
            fee_bps,
            settle_after_days,
            created_at_ms: self.clock.now_ms(),
        };
        match self.store.put_party(&party)? {
            None => Ok(party),
            Some(existing)
                if (
                    &existing.name,
                    &existing.assets,
                    existing.fee_bps,
                    existing.settle_after_days,
                ) == (&party.name, &party.assets, party.fee_bps, party.settle_after_days) =>
            {
                Ok(existing)
            }
            Some(_) => Err(ExecError::PartyExistsWithDifferentFields { kind, id: id.to_owned() }),
        }
    }

    pub fn party(&self, tenant: &str, kind: PartyKind, id: &str) -> Result<Party, ExecError> {
        let key = (tenant.to_owned(), kind, id.to_owned());
        if let Some(party) = self.parties.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(party.clone());
        }
        let party = self
            .store
            .get_party(tenant, kind, id)?
            .ok_or_else(|| ExecError::PartyNotFound { kind, id: id.to_owned() })?;
        let mut cached = self.parties.lock().unwrap_or_else(|p| p.into_inner());
        if cached.len() >= PARTY_CACHE_MAX {
            cached.clear();
        }
        cached.insert(key, party.clone());
        Ok(party)
    }

    fn party_with(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
        asset: AssetCode,
    ) -> Result<Party, ExecError> {
        let party = self.party(tenant, kind, id)?;
        if !party.assets.contains(&asset) {
            return Err(ExecError::AssetNotOpened { kind, id: id.to_owned(), asset });
        }
        Ok(party)
    }

    // ---- creating orders -------------------------------------------------------------------

    pub async fn create_topup(
        &self,
        tenant: &str,
        request: TopUpRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        check_bank_account("card", &request.card)?;
        self.party_with(tenant, PartyKind::Customer, &request.customer, request.asset)?;
        let id = derive_order_id(tenant, OrderKind::Topup, "", &request.reference);
        let print = fingerprint(&[
            &request.customer,
            &request.card,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let order = Order::Topup(TopUp::new(
            id,
            party_key(tenant, &request.customer),
            request.card,
            request.asset,
            request.amount,
        ));
        self.create(tenant, request.reference, print, None, order).await
    }

    pub async fn create_withdrawal(
        &self,
        tenant: &str,
        request: WithdrawalRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        check_bank_account("bank_account", &request.bank_account)?;
        self.party_with(tenant, PartyKind::Customer, &request.customer, request.asset)?;
        let id = derive_order_id(tenant, OrderKind::Withdrawal, "", &request.reference);
        let print = fingerprint(&[
            &request.customer,
            &request.bank_account,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let order = Order::Withdrawal(Withdrawal::new(
            id,
            party_key(tenant, &request.customer),
            request.bank_account,
            request.asset,
            request.amount,
        ));
        self.create(tenant, request.reference, print, None, order).await
    }

    pub async fn create_payment(
        &self,
        tenant: &str,
        request: PaymentRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        // The wallet that pays is in the payment's asset, or in `pay_from` for FX.
        let funding = request.pay_from.unwrap_or(request.asset);
        self.party_with(tenant, PartyKind::Customer, &request.customer, funding)?;
        let merchant =
            self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        // The merchant's order number is unique per merchant.
        let id = derive_order_id(tenant, OrderKind::Payment, &request.merchant, &request.reference);
        let points = request.points.filter(|points| !points.is_zero());
        let print = fingerprint(&[
            &request.customer,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
            &points.map_or(0, Amount::minor).to_string(),
            request.pay_from.as_ref().map_or("", AssetCode::as_str),
            &request.authorize_for_secs.map_or(String::new(), |secs| secs.to_string()),
        ]);
        let mut payment = Payment::new(
            id,
            party_key(tenant, &request.customer),
            party_key(tenant, &request.merchant),
            request.asset,
            request.amount,
            merchant.fee_bps,
        );
        if let Some(points) = points {
            let invalid =
                |message: &str| ExecError::Refused { field: "points", message: message.into() };
            let config =
                self.config.points.filter(|config| config.cash_asset == request.asset).ok_or_else(
                    || invalid("points pay only for payments in the points' cash asset"),
                )?;
            self.party_with(tenant, PartyKind::Customer, &request.customer, config.asset)?;
            self.ensure_asset(config.asset).await?;
            let leg = payments::booking::PointsLeg {
                asset: config.asset,
                points,
                value_minor_per_point: config.value_minor_per_point,
            };
            payment = payment
                .with_points(leg)
                .ok_or_else(|| invalid("the points are worth more than the amount"))?;
        }
        if let Some(secs) = request.authorize_for_secs {
            if secs == 0 || secs > AUTHORIZATION_SECS_MAX {
                return Err(ExecError::Invalid {
                    field: "authorize_for_secs",
                    message: format!("1 to {AUTHORIZATION_SECS_MAX} seconds"),
                });
            }
            if points.is_some() || request.pay_from.is_some_and(|asset| asset != request.asset) {
                return Err(ExecError::Refused {
                    field: "authorize_for_secs",
                    message: "an authorization pays from the wallet alone (no points, no FX)"
                        .into(),
                });
            }
            payment = payment.with_authorization(secs, merchant.fee_bps).ok_or_else(|| {
                ExecError::Refused {
                    field: "authorize_for_secs",
                    message: "not for this payment".into(),
                }
            })?;
        }
        if let Some(from_asset) = request.pay_from.filter(|asset| *asset != request.asset) {
            let invalid = |message: String| ExecError::Refused { field: "pay_from", message };
            let rate = self.fx_rate(request.asset, from_asset).ok_or_else(|| {
                invalid(format!(
                    "no rate from {} to {}",
                    from_asset.as_str(),
                    request.asset.as_str()
                ))
            })?;
            self.party_with(tenant, PartyKind::Customer, &request.customer, from_asset)?;
            self.ensure_asset(from_asset).await?;
            payment = payment
                .with_fx(from_asset, rate)
                .ok_or_else(|| invalid("cannot be combined with points, or too large".into()))?;
        }
        self.create(tenant, request.reference, print, None, Order::Payment(payment)).await
    }

    /// Captures `amount` of an authorised payment (at most what was authorised); the rest
    /// of the hold is released.
    pub async fn capture(
        &self,
        tenant: &str,
        id: &str,
        amount: Amount,
    ) -> Result<OrderRecord, ExecError> {
        check_amount(amount)?;
        let order = OrderId::new(id).map_err(|_| ExecError::OrderNotFound(id.to_owned()))?;
        let _order = self.order_locks.lock(&order).await;
        let record = self.payment(tenant, id)?;
        if let Order::Payment(payment) = &record.order {
            if payment.authorization.is_some_and(|auth| amount > auth.authorized) {
                return Err(ExecError::Refused {
                    field: "amount",
                    message: "more than was authorized".into(),
                });
            }
        }
        let (record, effects) =
            self.transition_checked(record, &Event::Capture { amount }, true).await?;
        let after = self.run(record, effects.into()).await?;
        match &after.order {
            Order::Payment(payment) if matches!(payment.state, PaymentState::Authorized { .. }) => {
                Err(ExecError::CaptureRefused("the ledger refused the capture".into()))
            }
            _ => Ok(after),
        }
    }

    /// Cancels an authorised payment: the hold is released.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<OrderRecord, ExecError> {
        let order = OrderId::new(id).map_err(|_| ExecError::OrderNotFound(id.to_owned()))?;
        let _order = self.order_locks.lock(&order).await;
        let record = self.payment(tenant, id)?;
        let (record, effects) = self.transition_checked(record, &Event::Cancel, true).await?;
        self.run(record, effects.into()).await
    }

    fn payment(&self, tenant: &str, id: &str) -> Result<OrderRecord, ExecError> {
        let record = self.get(tenant, id)?;
        if record.order.kind() != OrderKind::Payment {
            return Err(ExecError::OrderNotFound(id.to_owned()));
        }
        Ok(record)
    }

    /// A merchant is paid from the customer's bank card through a channel (收单).
    pub async fn create_card_payment(
        &self,
        tenant: &str,
        request: CardPaymentRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        check_bank_account("card", &request.card)?;
        self.party(tenant, PartyKind::Customer, &request.customer)?;
        let merchant =
            self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        let id =
            derive_order_id(tenant, OrderKind::CardPayment, &request.merchant, &request.reference);
        let print = fingerprint(&[
            &request.customer,
            &request.card,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let flow = TopUp::new(
            id,
            party_key(tenant, &request.customer),
            request.card,
            request.asset,
            request.amount,
        )
        .paying(payments::topup::MerchantCredit {
            merchant: party_key(tenant, &request.merchant),
            fee: payments::booking::fee_for(request.amount, merchant.fee_bps),
            fee_bps: merchant.fee_bps,
        });
        self.create(tenant, request.reference, print, None, Order::CardPayment(flow)).await
    }

    /// A refund of a card payment, back to the card through the channel it came by.
    async fn create_card_refund(
        &self,
        tenant: &str,
        request: RefundRequest,
        card: TopUp,
        payment_created_at_ms: u64,
    ) -> Result<Placed, ExecError> {
        let payment_id = request.payment.to_string();
        let (payments::topup::TopUpState::Succeeded { channel, .. }, Some(credit)) =
            (&card.state, &card.merchant)
        else {
            return Err(ExecError::NotRefundable(
                payment_id,
                "only a succeeded payment can be refunded",
            ));
        };
        let id = derive_order_id(
            tenant,
            OrderKind::CardRefund,
            request.payment.as_str(),
            &request.reference,
        );
        let print = fingerprint(&[request.payment.as_str(), &request.amount.minor().to_string()]);
        let now_ms = self.clock.now_ms();
        // The fee shares follow the same rule as a wallet payment's: a Payment of the same
        // amount and fee computes them.
        let from_settled = self
            .settled_before(tenant, &credit.merchant, card.asset)?
            .is_some_and(|cutoff_ms| payment_created_at_ms < cutoff_ms);
        let mut as_payment = Payment::new(
            card.order.clone(),
            card.customer.clone(),
            credit.merchant.clone(),
            card.asset,
            card.amount,
            0,
        );
        as_payment.fee = credit.fee;
        let mut build = |totals: RefundTotals| -> Option<OrderRecord> {
            let shares = as_payment.refund_shares(
                request.amount,
                totals.refunded,
                totals.fee_returned,
                totals.leg_returned,
            )?;
            let refund = payments::card::CardRefund {
                from_settled,
                order: id.clone(),
                payment: card.order.clone(),
                customer: card.customer.clone(),
                merchant: credit.merchant.clone(),
                card: card.card.clone(),
                asset: card.asset,
                amount: request.amount,
                fee_returned: shares.fee_returned,
                channel: channel.clone(),
                debit_request_id: card.debit_request().request_id,
                state: payments::card::CardRefundState::Created,
            };
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: request.reference.clone(),
                request_fingerprint: print.clone(),
                parent: Some(card.order.clone()),
                order: submitted(Order::CardRefund(refund)),
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_refund(&id, &request.payment, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Placed { record: self.existing(existing, &print)?, created: false })
            }
            GuardedInsert::Refused => return Err(ExecError::RefundExceedsPayment),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }

    /// Gives a customer points (a reward): the platform's marketing expense.
    pub async fn grant_points(
        &self,
        tenant: &str,
        customer: &str,
        reference: &str,
        points: Amount,
    ) -> Result<Placed, ExecError> {
        check_id("reference", reference)?;
        check_amount(points)?;
        let config = self.config.points.ok_or_else(|| ExecError::Refused {
            field: "points",
            message: "this platform runs no points".into(),
        })?;
        self.party_with(tenant, PartyKind::Customer, customer, config.asset)?;
        let id = derive_order_id(tenant, OrderKind::PointsGrant, "", reference);
        let print = fingerprint(&[customer, &points.minor().to_string()]);
        let order = Order::PointsGrant(payments::booking::PointsGrant {
            order: id,
            customer: party_key(tenant, customer),
            asset: config.asset,
            amount: points,
            state: BookingState::Created,
        });
        self.create(tenant, reference.to_owned(), print, None, order).await
    }

    /// Sets the rate at which payments in `asset` are funded from wallets in `funding`
    /// (minor units of `funding` per minor unit of `asset`). Logged; payments record the
    /// rate they used.
    pub fn set_fx_rate(&self, asset: AssetCode, funding: AssetCode, rate: Rate) {
        tracing::info!(asset = asset.as_str(), funding = funding.as_str(), %rate, "FX rate set");
        self.fx_rates.lock().unwrap_or_else(|p| p.into_inner()).insert((asset, funding), rate);
    }

    pub fn fx_rate(&self, asset: AssetCode, funding: AssetCode) -> Option<Rate> {
        self.fx_rates.lock().unwrap_or_else(|p| p.into_inner()).get(&(asset, funding)).copied()
    }

    /// Every rate, as (payment asset, funding asset, rate).
    pub fn fx_rates(&self) -> Vec<(AssetCode, AssetCode, Rate)> {
        let rates = self.fx_rates.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = rates.iter().map(|((a, f), r)| (*a, *f, *r)).collect();
        all.sort_by(|x, y| (x.0.as_str(), x.1.as_str()).cmp(&(y.0.as_str(), y.1.as_str())));
        all
    }

    pub fn points_config(&self) -> Option<PointsConfig> {
        self.config.points
    }

    pub async fn create_wallet_transfer(
        &self,
        tenant: &str,
        request: WalletTransferRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        if request.from == request.to {
            return Err(ExecError::Refused {
                field: "to",
                message: "must differ from from".into(),
            });
        }
        self.party_with(tenant, PartyKind::Customer, &request.from, request.asset)?;
        self.party_with(tenant, PartyKind::Customer, &request.to, request.asset)?;
        let id = derive_order_id(tenant, OrderKind::WalletTransfer, "", &request.reference);
        let print = fingerprint(&[
            &request.from,
            &request.to,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let order = Order::WalletTransfer(WalletTransfer {
            order: id,
            from: party_key(tenant, &request.from),
            to: party_key(tenant, &request.to),
            asset: request.asset,
            amount: request.amount,
            state: BookingState::Created,
        });
        self.create(tenant, request.reference, print, None, order).await
    }

    /// A refund of a succeeded payment: several per payment, together never more than it.
    pub async fn create_refund(
        &self,
        tenant: &str,
        request: RefundRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        let payment_record = self
            .store
            .get(&request.payment)?
            .filter(|record| record.tenant == tenant)
            .ok_or_else(|| ExecError::OrderNotFound(request.payment.to_string()))?;
        if let Order::CardPayment(card) = &payment_record.order {
            let created_at_ms = payment_record.created_at_ms;
            return self.create_card_refund(tenant, request, card.clone(), created_at_ms).await;
        }
        let Order::Payment(payment) = &payment_record.order else {
            return Err(ExecError::NotRefundable(request.payment.to_string(), "not a payment"));
        };
        if payment.state != PaymentState::Succeeded {
            return Err(ExecError::NotRefundable(
                request.payment.to_string(),
                "only a succeeded payment can be refunded",
            ));
        }
        let from_settled = self
            .settled_before(tenant, &payment.merchant, payment.asset)?
            .is_some_and(|cutoff_ms| payment_record.created_at_ms < cutoff_ms);
        let id = derive_order_id(
            tenant,
            OrderKind::Refund,
            request.payment.as_str(),
            &request.reference,
        );
        let print = fingerprint(&[request.payment.as_str(), &request.amount.minor().to_string()]);
        let now_ms = self.clock.now_ms();
        let mut build = |totals: RefundTotals| -> Option<OrderRecord> {
            let shares = payment.refund_shares(
                request.amount,
                totals.refunded,
                totals.fee_returned,
                totals.leg_returned,
            )?;
            let refund = Refund {
                from_settled,
                order: id.clone(),
                payment: payment.order.clone(),
                customer: payment.customer.clone(),
                merchant: payment.merchant.clone(),
                asset: payment.asset,
                amount: request.amount,
                fee_returned: shares.fee_returned,
                points: payment.points.map(|leg| payments::booking::RefundedPoints {
                    asset: leg.asset,
                    points: shares.points_returned,
                    value: shares.points_value_returned,
                }),
                fx: payment.fx.map(|fx| payments::booking::RefundedFx {
                    from_asset: fx.from_asset,
                    amount: shares.fx_returned,
                }),
                state: BookingState::Created,
            };
            let order = submitted(Order::Refund(refund));
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: request.reference.clone(),
                request_fingerprint: print.clone(),
                parent: Some(payment.order.clone()),
                order,
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_refund(&id, &request.payment, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Placed { record: self.existing(existing, &print)?, created: false })
            }
            GuardedInsert::Refused => return Err(ExecError::RefundExceedsPayment),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }

    /// Creates a merchant's payout batch: every item is stored (as a payout order from the
    /// merchant's settled takings, its parent the batch) before this returns, then carried
    /// out in the background, a few at a time. A retried batch creates nothing twice.
    pub async fn create_payout_batch(
        self: &Arc<Self>,
        tenant: &str,
        request: PayoutBatchRequest,
    ) -> Result<OrderId, ExecError> {
        check_id("reference", &request.reference)?;
        if request.items.is_empty() || request.items.len() > PAYOUT_BATCH_ITEMS_MAX {
            return Err(ExecError::Invalid {
                field: "items",
                message: format!("1 to {PAYOUT_BATCH_ITEMS_MAX} items"),
            });
        }
        let mut references = HashSet::new();
        for item in &request.items {
            check_id("items.reference", &item.reference)?;
            check_amount(item.amount)?;
            check_bank_account("items.bank_account", &item.bank_account)?;
            if !references.insert(item.reference.as_str()) {
                return Err(ExecError::Refused {
                    field: "items.reference",
                    message: format!("{} appears twice", item.reference),
                });
            }
        }
        self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        self.ensure_asset(request.asset).await?;
        let batch = payout_batch_id(tenant, &request.merchant, &request.reference);
        let key = party_key(tenant, &request.merchant);
        let now_ms = self.clock.now_ms();
        let mut created = Vec::new();
        for item in request.items {
            let id =
                derive_order_id(tenant, OrderKind::Withdrawal, batch.as_str(), &item.reference);
            let print = fingerprint(&[
                &request.merchant,
                &item.bank_account,
                request.asset.as_str(),
                &item.amount.minor().to_string(),
            ]);
            let withdrawal =
                Withdrawal::new(id, key.clone(), item.bank_account, request.asset, item.amount)
                    .from_merchant();
            let record = OrderRecord {
                tenant: tenant.to_owned(),
                reference: item.reference,
                request_fingerprint: print,
                parent: Some(batch.clone()),
                order: submitted(Order::Withdrawal(withdrawal)),
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            };
            match self.store.insert(&record)? {
                Inserted::Created => created.push(record),
                Inserted::Existing(existing) => {
                    self.existing(*existing, &record.request_fingerprint)?;
                }
            }
        }
        self.counters.orders_created.fetch_add(created.len() as u64, Ordering::Relaxed);
        let executor = Arc::clone(self);
        tokio::spawn(async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(PAYOUT_BATCH_CONCURRENCY));
            let mut items = tokio::task::JoinSet::new();
            for record in created {
                let (executor, gate) = (executor.clone(), gate.clone());
                items.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let id = record.id().clone();
                    if let Err(error) = executor.drive(&id).await {
                        // Inspection resumes it.
                        tracing::warn!(order = %id, %error, "payout item interrupted");
                    }
                });
            }
            while items.join_next().await.is_some() {}
        });
        Ok(batch)
    }

    /// A payout batch's items, oldest first.
    pub fn payout_batch(&self, tenant: &str, id: &str) -> Result<Vec<OrderRecord>, ExecError> {
        let missing = || ExecError::OrderNotFound(id.to_owned());
        let batch = OrderId::new(id).map_err(|_| missing())?;
        let items: Vec<OrderRecord> =
            self.store.children_of(&batch)?.into_iter().filter(|r| r.tenant == tenant).collect();
        if items.is_empty() {
            return Err(missing());
        }
        Ok(items)
    }

    /// The cut-off of the merchant's latest succeeded settlement in `asset`: payments made
    /// before it are in its settled takings.
    fn settled_before(
        &self,
        tenant: &str,
        merchant_key: &str,
        asset: AssetCode,
    ) -> Result<Option<u64>, ExecError> {
        let latest = self.store.list(&crate::port::OrderQuery {
            tenant: tenant.to_owned(),
            kind: Some(OrderKind::Settlement),
            status: Some("succeeded".into()),
            merchant: Some(merchant_key.to_owned()),
            limit: 16,
            ..Default::default()
        })?;
        Ok(latest
            .iter()
            .filter_map(|record| match &record.order {
                Order::Settlement(settlement) if settlement.asset == asset => {
                    Some(settlement.cutoff_ms)
                }
                _ => None,
            })
            .max())
    }

    /// Settles a merchant's takings in `asset` up to its T+N cut-off (结算): one settlement
    /// per merchant, asset and cut-off day, so running it again the same day returns the
    /// same settlement. `None` when there is nothing to settle.
    pub async fn settle(
        &self,
        tenant: &str,
        merchant: &str,
        asset: AssetCode,
    ) -> Result<Option<Placed>, ExecError> {
        let party = self.party_with(tenant, PartyKind::Merchant, merchant, asset)?;
        let now_ms = self.clock.now_ms();
        let cutoff_ms = payments::booking::settlement_cutoff_ms(now_ms, party.settle_after_days);
        // T+0 runs whenever asked; T+N once per cut-off day.
        let scope = if party.settle_after_days == 0 { now_ms } else { cutoff_ms };
        let id = derive_order_id(
            tenant,
            OrderKind::Settlement,
            &format!("{merchant}/{}", asset.as_str()),
            &scope.to_string(),
        );
        let key = party_key(tenant, merchant);
        let print = fingerprint(&[merchant, asset.as_str(), &cutoff_ms.to_string()]);
        let mut build = |totals: crate::port::MerchantTotals| -> Option<OrderRecord> {
            let due = totals.payments_net_minor - totals.refunds_net_minor - totals.settled_minor;
            let amount = Amount::new(u64::try_from(due).ok()?).filter(|a| !a.is_zero())?;
            let order = submitted(Order::Settlement(payments::booking::Settlement {
                order: id.clone(),
                merchant: key.clone(),
                asset,
                amount,
                cutoff_ms,
                settle_after_days: party.settle_after_days,
                state: BookingState::Created,
            }));
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: format!("settlement-{cutoff_ms}"),
                request_fingerprint: print.clone(),
                parent: None,
                order,
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_settlement(&id, &key, asset, cutoff_ms, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Some(Placed { record: existing, created: false }))
            }
            GuardedInsert::Refused => return Ok(None),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Placed { record: self.drive_new(record).await?, created: true }))
    }

    /// Settles every merchant in every asset (the scheduled run). Returns how many
    /// settlements were made; failures are logged and retried on the next run.
    pub async fn settle_all(&self) -> u64 {
        let merchants = match self.store.parties(PartyKind::Merchant) {
            Ok(merchants) => merchants,
            Err(error) => {
                tracing::warn!(%error, "settlement run could not list merchants");
                return 0;
            }
        };
        let mut made = 0;
        for merchant in merchants {
            for asset in &merchant.assets {
                match self.settle(&merchant.tenant, &merchant.id, *asset).await {
                    Ok(Some(placed)) if placed.created => made += 1,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(merchant = %merchant.id, %error, "settlement failed")
                    }
                }
            }
        }
        made
    }

    async fn create(
        &self,
        tenant: &str,
        reference: String,
        request_fingerprint: String,
        parent: Option<OrderId>,
        order: Order,
    ) -> Result<Placed, ExecError> {
        self.ensure_asset(order.asset()).await?;
        let now_ms = self.clock.now_ms();
        // Submit is applied before the first write: the stored order already says what it
        // waits on (a hold, a booking), so a crash right after the insert resumes it.
        let record = OrderRecord {
            tenant: tenant.to_owned(),
            reference,
            request_fingerprint,
            parent,
            order: submitted(order),
            version: 1,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        match self.store.insert(&record)? {
            Inserted::Created => {}
            Inserted::Existing(existing) => {
                let record = self.existing(*existing, &record.request_fingerprint)?;
                return Ok(Placed { record, created: false });
            }
        }
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }

    /// A retried create: the stored order as it is now, if the request is the same.
    fn existing(&self, existing: OrderRecord, print: &str) -> Result<OrderRecord, ExecError> {
        if existing.request_fingerprint == print {
            Ok(existing)
        } else {
            Err(ExecError::OrderExistsWithDifferentFields)
        }
    }

    pub fn get(&self, tenant: &str, id: &str) -> Result<OrderRecord, ExecError> {
        let id = OrderId::new(id).map_err(|_| ExecError::OrderNotFound(id.to_owned()))?;
        self.store
            .get(&id)?
            .filter(|record| record.tenant == tenant)
            .ok_or_else(|| ExecError::OrderNotFound(id.to_string()))
    }

    // ---- driving ---------------------------------------------------------------------------

    /// Carries an order on from where its stored state stands, under its lock: what that
    /// state waits on is done again (each effect is idempotent), then whatever follows.
    async fn drive(&self, id: &OrderId) -> Result<OrderRecord, ExecError> {
        let _order = self.order_locks.lock(id).await;
        let record = self.store.get(id)?.ok_or_else(|| ExecError::OrderNotFound(id.to_string()))?;
        let effects = record.order.resume();
        self.run(record, effects.into()).await
    }

    /// [`Executor::drive`] for an order this call just stored: no need to read it back. (Were
    /// another driver quicker, its stored version would make ours re-read at the first
    /// write, and our effects are idempotent.)
    async fn drive_new(&self, record: OrderRecord) -> Result<OrderRecord, ExecError> {
        let _order = self.order_locks.lock(record.id()).await;
        let effects = record.order.resume();
        self.run(record, effects.into()).await
    }

    /// A channel's final answer about `order` (from status inquiry or a callback).
    pub async fn on_channel_answer(
        &self,
        order: &OrderId,
        channel: ChannelId,
        outcome: Outcome,
    ) -> Result<OrderRecord, ExecError> {
        let _order = self.order_locks.lock(order).await;
        let record =
            self.store.get(order)?.ok_or_else(|| ExecError::OrderNotFound(order.to_string()))?;
        let (record, effects) =
            self.transition(record, &Event::ChannelAnswered { channel, outcome }).await?;
        self.run(record, effects.into()).await
    }

    /// A channel's callback: authenticated and read by the channel's adapter, then fed to
    /// the order its request belongs to (request ids are `order:step`). A duplicate, or news
    /// the order already has, changes nothing.
    pub async fn on_callback(
        &self,
        channel: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), ExecError> {
        let unknown = || ExecError::ChannelNotFound(channel.to_owned());
        let gateway = self.gateway.as_ref().ok_or_else(unknown)?;
        let channel = ChannelId::new(channel).map_err(|_| unknown())?;
        let report = gateway
            .read_callback(&channel, headers, body)
            .ok_or_else(unknown)?
            .map_err(|error| ExecError::CallbackRefused(error.to_string()))?;
        if !report.outcome.is_final() {
            return Ok(());
        }
        let Some(order) = report
            .request_id
            .as_str()
            .split_once(':')
            .and_then(|(order, _)| OrderId::new(order).ok())
        else {
            tracing::warn!(request_id = %report.request_id, "a callback for a request of no order");
            return Ok(());
        };
        if self.store.get(&order)?.is_none() {
            tracing::warn!(%order, "a callback for an unknown order");
            return Ok(());
        }
        self.on_channel_answer(&order, channel.clone(), report.outcome.clone()).await?;
        // Close the inquiry too, if one is open: its delivery is then a no-op.
        if let Some(inquirer) = self.inquirer.get() {
            if let Err(error) =
                inquirer.on_callback(&channel, &report.request_id, &report.outcome).await
            {
                tracing::warn!(%error, "could not close the inquiry of a callback");
            }
        }
        Ok(())
    }

    /// Carries out `pending`, feeds each answer back, routes when the order waits for a
    /// channel, and stops when the order waits on nothing this process can do (final, or an
    /// inquiry is open).
    async fn run(
        &self,
        mut record: OrderRecord,
        mut pending: VecDeque<Effect>,
    ) -> Result<OrderRecord, ExecError> {
        loop {
            let event = if let Some(effect) = pending.pop_front() {
                match self.perform(&record, effect).await? {
                    Some(event) => event,
                    None => continue,
                }
            } else if let Some((request, refused)) =
                record.order.awaiting_route(self.clock.now_ms())
            {
                let choice = match (record.order.pinned_channel(), &self.gateway) {
                    (Some(pinned), Some(_)) => {
                        Some(pinned.clone()).filter(|c| !refused.contains(c))
                    }
                    (None, Some(gateway)) => gateway.choose(&request, refused),
                    (_, None) => None,
                };
                match choice {
                    Some(channel) => Event::Route { channel },
                    None => Event::Abandon {
                        reason: if self.gateway.is_none() {
                            "no channels are configured".into()
                        } else {
                            "no channel can take this request".into()
                        },
                    },
                }
            } else {
                return Ok(record);
            };
            let (next, effects) = self.transition(record, &event).await?;
            record = next;
            pending.extend(effects);
        }
    }

    /// Applies `event` and stores the result (with its outbox events) at the next version.
    /// On a version conflict, reloads and applies the event to the newer state.
    async fn transition(
        &self,
        record: OrderRecord,
        event: &Event,
    ) -> Result<(OrderRecord, Vec<Effect>), ExecError> {
        self.transition_checked(record, event, false).await
    }

    /// [`Executor::transition`]; with `strict`, an event the state refuses is an error (a
    /// caller's request), not news to log and drop.
    async fn transition_checked(
        &self,
        mut record: OrderRecord,
        event: &Event,
        strict: bool,
    ) -> Result<(OrderRecord, Vec<Effect>), ExecError> {
        loop {
            let transition = match record.order.apply_at(event, self.clock.now_ms()) {
                Ok(transition) => transition,
                Err(illegal) if strict => {
                    return Err(ExecError::NotAllowed {
                        state: illegal.state,
                        event: illegal.event,
                    })
                }
                Err(illegal) => {
                    // News the order cannot take (a contradicting report): kept out of the
                    // books and logged for an operator, never absorbed.
                    self.counters.illegal_events.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(order = %record.id(), %illegal, "event refused by the order's state");
                    return Ok((record, Vec::new()));
                }
            };
            if transition.state == record.order {
                return Ok((record, transition.effects));
            }
            let mut next = record.clone();
            next.order = transition.state;
            next.version = record.version + 1;
            next.updated_at_ms = self.clock.now_ms();
            let events = outbox_events(&record.order, &next);
            if self.store.update(&next, record.version, &events)? {
                self.counters.transitions.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    order = %next.id(), from = record.order.status(), to = next.order.status(),
                    event = event.name(), "order moved"
                );
                return Ok((next, transition.effects));
            }
            self.counters.version_conflicts.fetch_add(1, Ordering::Relaxed);
            record = self
                .store
                .get(record.id())?
                .ok_or_else(|| ExecError::OrderNotFound(record.id().to_string()))?;
        }
    }

    async fn perform(
        &self,
        record: &OrderRecord,
        effect: Effect,
    ) -> Result<Option<Event>, ExecError> {
        match effect {
            Effect::Ledger(group) => Ok(Some(self.book(group).await?)),
            Effect::Channel { channel, request } => {
                let Some(gateway) = &self.gateway else {
                    return Ok(Some(Event::Abandon {
                        reason: "no channels are configured".into(),
                    }));
                };
                let routed = match &channel {
                    Some(channel) => gateway.execute_on(channel, &request).await,
                    None => gateway.execute(&request).await,
                };
                Ok(routed
                    .channel
                    .map(|channel| Event::ChannelAnswered { channel, outcome: routed.outcome }))
            }
            Effect::Inquire { channel, operation, request_id } => {
                if let Some(inquirer) = self.inquirer.get() {
                    if let Err(error) =
                        inquirer.open(&channel, operation, &request_id, record.id().as_str())
                    {
                        // Inspection resumes the order later and asks again.
                        tracing::warn!(order = %record.id(), %error, "could not open an inquiry");
                    }
                }
                Ok(None)
            }
        }
    }

    /// Books a group, and when it is rejected makes the rejection stick: a tombstone takes
    /// the group's id (see `payments::tombstone`), so no later copy of the group can post
    /// after the order has acted on its failure. If the tombstone finds the id taken, the
    /// group was booked meanwhile (by another driver): that is the answer.
    async fn book(&self, group: Vec<NewTransfer>) -> Result<Event, ExecError> {
        let rejection = self.submit(group.clone()).await?;
        let Some(rejection) = rejection else { return Ok(Event::LedgerPosted) };
        let rejected = Event::LedgerRejected { code: rejection.code().into() };
        let Some(tombstone) = payments::tombstone::for_group(&group) else { return Ok(rejected) };
        match self.submit(tombstone).await? {
            None => Ok(rejected),
            Some(TransferRejection::IdExistsWithDifferentFields) => {
                match self.submit(group).await? {
                    None => Ok(Event::LedgerPosted),
                    Some(rejection) => Ok(Event::LedgerRejected { code: rejection.code().into() }),
                }
            }
            // Could not mark it (an internal account refused): do not act on the rejection;
            // inspection tries again.
            Some(other) => Err(ExecError::LedgerSetup(other.code())),
        }
    }

    async fn submit(
        &self,
        group: Vec<NewTransfer>,
    ) -> Result<Option<TransferRejection>, ExecError> {
        let outcomes = self.ledger.execute(vec![Command::Transfers(group)]).await?;
        Ok(match outcomes.first() {
            Some(ledger::Outcome::Transfers(results)) => group_rejection(results),
            _ => None,
        })
    }

    /// One inspection pass (巡检): every order unfinished and unchanged for
    /// `inspect_after_ms` is resumed — what its state waits on is carried out again — and
    /// those still unfinished past `overdue_after_ms` are counted and logged. A card refund
    /// waiting for its channel is resumed once its next send is due, however recently it
    /// changed (nobody else drives it; the order's lock and its stored version keep two
    /// drivers apart), and the waiting refunds are counted.
    pub async fn inspect(&self, page: usize) -> InspectionReport {
        self.counters.inspections.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.clock.now_ms();
        let mut report = InspectionReport::default();
        let updated_before_ms = now_ms.saturating_sub(self.config.inspect_after_ms);
        let mut waits = ChannelWaits::default();
        // Every unfinished order, page by page: orders that wait by design (authorisations,
        // escalated inquiries, refunds waiting for a channel) must not hide the ones behind
        // them. Orders changed during the pass are past `now_ms` (or listed again at most
        // once, at `now_ms`), so the listing ends.
        let mut after = None;
        loop {
            let listed = match self.store.unfinished_after(now_ms, after.clone(), page.max(1)) {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(%error, "inspection could not list unfinished orders");
                    report.errors += 1;
                    break;
                }
            };
            let full_page = listed.len() >= page.max(1);
            after = listed.last().map(|record| (record.updated_at_ms, record.id().clone()));
            for record in listed {
                let due = match record.order.next_attempt_at_ms() {
                    Some(next_attempt_at_ms) => now_ms >= next_attempt_at_ms,
                    None => record.updated_at_ms <= updated_before_ms,
                };
                if !due {
                    waits.add(&record, now_ms);
                    continue;
                }
                report.examined += 1;
                if let Some(after) = self.inspect_one(record.id(), now_ms, &mut report).await {
                    waits.add(&after, now_ms);
                }
            }
            if !full_page {
                break;
            }
        }
        report.awaiting_channel = waits.seen.len() as u64;
        report.awaiting_channel_age_ms_max = waits.age_ms_max;
        if report.awaiting_channel > 0 {
            tracing::warn!(
                refunds = report.awaiting_channel,
                age_ms_max = report.awaiting_channel_age_ms_max,
                "refunds awaiting their channel (money held, sent again with backoff)"
            );
        }
        let c = &self.counters;
        c.overdue.store(report.overdue, Ordering::Relaxed);
        c.awaiting_channel.store(report.awaiting_channel, Ordering::Relaxed);
        c.awaiting_channel_age_ms_max.store(report.awaiting_channel_age_ms_max, Ordering::Relaxed);
        report
    }

    /// Resumes one order under its lock; the order as it was left, unless resuming failed.
    async fn inspect_one(
        &self,
        id: &OrderId,
        now_ms: u64,
        report: &mut InspectionReport,
    ) -> Option<OrderRecord> {
        let resumed = async {
            let _order = self.order_locks.lock(id).await;
            // Read again under the lock: whoever held it may have moved the order on.
            let record =
                self.store.get(id)?.ok_or_else(|| ExecError::OrderNotFound(id.to_string()))?;
            if record.order.is_final() {
                return Ok(record);
            }
            // An order whose own deadline passed (an authorisation's expiry) is told so;
            // anything else is resumed where it stands (a refund waiting for its channel is
            // routed again by `run` once its next send is due).
            let (record, effects) = match record.order.deadline_ms() {
                Some(deadline_ms) if now_ms >= deadline_ms => {
                    self.transition(record, &Event::Deadline).await?
                }
                _ => {
                    let effects = record.order.resume();
                    (record, effects)
                }
            };
            self.run(record, effects.into()).await
        };
        match resumed.await {
            Ok(after) if after.order.is_final() => {
                report.finished += 1;
                Some(after)
            }
            Ok(after) => {
                // Waiting by design: an authorisation before its expiry; a refund waiting for
                // its channel (counted and reported on its own, with its age).
                let waiting_by_design = after.order.deadline_ms().is_some_and(|d| d > now_ms)
                    || after.order.awaiting_channel_since_ms().is_some();
                let age_ms = now_ms.saturating_sub(after.created_at_ms);
                if !waiting_by_design && age_ms > self.config.overdue_after_ms {
                    report.overdue += 1;
                    tracing::warn!(
                        order = %after.id(), status = after.order.status(), age_ms,
                        "order overdue: not final past its deadline"
                    );
                }
                Some(after)
            }
            Err(error) => {
                report.errors += 1;
                tracing::warn!(%error, "inspection could not resume an order");
                None
            }
        }
    }

    /// Prometheus text for the executor's counters.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        for (name, help, value) in [
            ("qianbao_orders_created_total", "Orders created.", &c.orders_created),
            ("qianbao_order_transitions_total", "Stored order state changes.", &c.transitions),
            (
                "qianbao_order_version_conflicts_total",
                "Order writes that lost a race and were re-applied.",
                &c.version_conflicts,
            ),
            (
                "qianbao_order_events_refused_total",
                "Events an order's state refused (contradicting news).",
                &c.illegal_events,
            ),
            ("qianbao_inspections_total", "Inspection passes.", &c.inspections),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        for (name, help, value) in [
            (
                "qianbao_orders_overdue",
                "Unfinished orders past their deadline at the last inspection.",
                &c.overdue,
            ),
            (
                "qianbao_refunds_awaiting_channel",
                "Card refunds waiting for their channel to come back (money held) at the last inspection.",
                &c.awaiting_channel,
            ),
            (
                "qianbao_refunds_awaiting_channel_age_ms_max",
                "How long the oldest card refund waiting for its channel had waited, at the last inspection.",
                &c.awaiting_channel_age_ms_max,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// `order` after `Submit`: flows that start by booking or holding say so before any write.
fn submitted(order: Order) -> Order {
    match order.apply(&Event::Submit) {
        Ok(transition) => transition.state,
        Err(_) => order,
    }
}

/// The events a state change emits: one when an order reaches a final (or operator) state.
fn outbox_events(before: &Order, after: &OrderRecord) -> Vec<NewEvent> {
    if before.status() == after.order.status() || !after.order.is_final() {
        return Vec::new();
    }
    vec![NewEvent {
        event_type: format!("{}.{}", after.order.kind().as_str(), after.order.status()),
        payload: order_payload(after),
    }]
}

/// The public JSON of an order: what webhooks carry and the API shows.
pub fn order_payload(record: &OrderRecord) -> serde_json::Value {
    let order = &record.order;
    let mut detail = serde_json::to_value(order).unwrap_or(serde_json::Value::Null);
    let state = detail.get_mut("state").map(serde_json::Value::take).unwrap_or_default();
    // What is left is the kind's own terms (fee, points, card, cut-off…), minus what the
    // top level already says.
    if let Some(fields) = detail.as_object_mut() {
        for said in ["kind", "order", "customer", "merchant", "asset", "amount", "state"] {
            fields.remove(said);
        }
        if let Order::CardPayment(flow) = order {
            card_payment_terms(flow, fields);
        }
    }
    serde_json::json!({
        "id": order.id().as_str(),
        "object": "order",
        "kind": order.kind().as_str(),
        "status": order.status(),
        "final": order.is_final(),
        "reference": record.reference,
        "customer": Some(order.customer()).filter(|key| !key.is_empty()).map(party_id),
        "merchant": order.merchant().map(party_id),
        "asset": order.asset().as_str(),
        "amount": order.amount().minor().to_string(),
        "parent": record.parent.as_ref().map(OrderId::as_str),
        "state": state,
        "detail": detail,
        "created_at_ms": record.created_at_ms,
        "updated_at_ms": record.updated_at_ms,
    })
}

/// A card payment's terms as a wallet payment shows them: the merchant's fee as `fee` (its
/// rate as `fee_bps`), so the merchant reads its net takings, and the channel's fee, once
/// the channel has reported it, as `channel_fee` (the platform bears it, not the merchant).
/// The stored order keeps them inside `merchant`, which the top level replaces by the id.
fn card_payment_terms(flow: &TopUp, fields: &mut serde_json::Map<String, serde_json::Value>) {
    use payments::topup::TopUpState as S;
    if let Some(credit) = &flow.merchant {
        fields.insert("fee".into(), credit.fee.minor().to_string().into());
        fields.insert("fee_bps".into(), credit.fee_bps.into());
    }
    match &flow.state {
        S::Crediting { settled, .. }
        | S::Succeeded { settled, .. }
        | S::Suspending { settled, .. }
        | S::Suspended { settled, .. } => {
            fields.insert("channel_fee".into(), settled.fee.minor().to_string().into());
        }
        S::Created | S::Debiting { .. } | S::Failed { .. } => {}
    }
}

/// Delivers status inquiry's final outcomes to the orders that own them.
pub struct InquiryOwnerAdapter(pub Arc<Executor>);

impl InquiryOwner for InquiryOwnerAdapter {
    fn deliver<'a>(
        &'a self,
        task: &'a InquiryTask,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let order = OrderId::new(task.owner.as_str()).map_err(|e| e.to_string())?;
            self.0
                .on_channel_answer(&order, task.channel.clone(), outcome.clone())
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use channels::Settled;
    use payments::topup::{MerchantCredit, TopUpState};

    use super::*;

    fn record(order: Order) -> OrderRecord {
        OrderRecord {
            tenant: "t".into(),
            reference: "ref-1".into(),
            request_fingerprint: String::new(),
            parent: None,
            order,
            version: 1,
            created_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    #[test]
    fn a_card_payments_detail_shows_the_merchants_fee_as_a_wallet_payments_does() {
        let cny = AssetCode::new("CNY").unwrap();
        let amount = Amount::new(5_000).unwrap();
        let wallet = Payment::new(
            OrderId::new("pay_1").unwrap(),
            "t/alice".into(),
            "t/shop".into(),
            cny,
            amount,
            60,
        );
        let wallet = order_payload(&record(Order::Payment(wallet)));
        assert_eq!(wallet["detail"]["fee"], serde_json::json!("30"), "{wallet}");

        let mut card =
            TopUp::new(OrderId::new("cp_1").unwrap(), "t/alice".into(), "6222".into(), cny, amount)
                .paying(MerchantCredit {
                    merchant: "t/shop".into(),
                    fee: payments::booking::fee_for(amount, 60),
                    fee_bps: 60,
                });
        let before = order_payload(&record(Order::CardPayment(card.clone())));
        assert_eq!(before["detail"]["fee"], serde_json::json!("30"), "{before}");
        assert_eq!(before["detail"]["fee_bps"], serde_json::json!(60), "{before}");
        assert!(before["detail"].get("channel_fee").is_none(), "not reported yet: {before}");

        let channel = ChannelId::new("bank_a").unwrap();
        let settled = Settled { channel_ref: "r".into(), fee: Amount::new(7).unwrap() };
        card.state = TopUpState::Succeeded { channel, settled };
        let paid = order_payload(&record(Order::CardPayment(card)));
        assert_eq!(paid["merchant"], serde_json::json!("shop"), "{paid}");
        assert_eq!(paid["detail"]["fee"], serde_json::json!("30"), "the merchant's: {paid}");
        assert_eq!(paid["detail"]["channel_fee"], serde_json::json!("7"), "{paid}");
        assert_eq!(paid["state"]["settled"]["fee"], serde_json::json!("7"), "{paid}");
    }
}
