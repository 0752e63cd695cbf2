mod inquiry;
mod inspection;
mod parties;
mod payload;
mod products;
mod settlement;

pub use inquiry::InquiryOwnerAdapter;
pub use inspection::InspectionReport;
pub use payload::order_payload;
pub use settlement::{PayoutBatchTotals, PayoutTotal};

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

/// Steps one run of an order takes at most. Every product's machine settles in far fewer
/// (about a dozen at most); past this the order stays as stored and inspection resumes it.
const RUN_STEPS_MAX: usize = 256;
/// Version conflicts one transition retries at most before it gives up as unavailable.
const VERSION_CONFLICTS_MAX: u32 = 64;

/// Longest customer, merchant or reference id.
pub const PARTY_ID_LEN_MAX: usize = 64;
/// A merchant's fee can be at most the whole payment.
pub const FEE_BPS_MAX: u32 = payments::booking::BPS_ONE as u32;
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
    /// Status inquiry, when the executor has one (see [`Executor::set_inquirer`]).
    pub fn inquirer(&self) -> Option<&Arc<Inquirer>> {
        self.inquirer.get()
    }

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

    // ---- creating orders -------------------------------------------------------------------

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
        for _ in 0..RUN_STEPS_MAX {
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
        // Every state reached so far is stored: stopping here is safe, and inspection
        // resumes the order. A machine that takes this many steps in one go is a bug to see.
        tracing::error!(order = %record.id(), steps = RUN_STEPS_MAX, "an order's run did not settle; left to inspection");
        Ok(record)
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
        for _ in 0..VERSION_CONFLICTS_MAX {
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
        // Writers on one order are few (a request, a callback, inspection): this many lost
        // races in a row means something rewrites the order without end. Unavailable, so the
        // caller (or inspection) tries again later.
        Err(ExecError::Store(OrderStoreError::Backend(format!(
            "order {}: {VERSION_CONFLICTS_MAX} version conflicts in a row",
            record.id()
        ))))
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
