mod error;
mod inquiry;
mod inspection;
mod parties;
mod payload;
mod products;
mod requests;
mod settlement;

pub use error::ExecError;
pub use inquiry::InquiryOwnerAdapter;
pub use inspection::InspectionReport;
pub use payload::{order_payload, OrderPayload};
pub use products::return_order_id;
use requests::{
    check_amount, check_bank_account, check_id, derive_order_id, fingerprint,
    PAYOUT_BATCH_CONCURRENCY,
};
pub use requests::{
    payout_batch_id, CardPaymentRequest, NewParty, PaymentRequest, PayoutBatchRequest, PayoutItem,
    Placed, RefundRequest, TopUpRequest, WalletTransferRequest, WithdrawalRequest,
    AUTHORIZATION_SECS_MAX, BANK_ACCOUNT_LEN_MAX, FEE_BPS_MAX, PARTY_ASSETS_MAX, PARTY_ID_LEN_MAX,
    PARTY_NAME_LEN_MAX, PAYOUT_BATCH_ITEMS_MAX, SETTLE_AFTER_DAYS_MAX,
};
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
use payments::booking::{BookingState, Payment, PaymentState, Rate, RefundedSoFar, WalletTransfer};
use payments::chart::{
    chart_commands, internal_accounts, merchant_accounts, points_account, wallet_account,
};
use payments::topup::TopUp;
use payments::withdrawal::Withdrawal;
use payments::{Effect, Event, Order, OrderId, OrderKind};

use crate::port::{
    Durability, GuardedInsert, Inserted, NewEvent, OrderRecord, OrderStore, OrderStoreError, Party,
    PartyKind, RefundTotals,
};

/// Steps one run of an order takes at most. Every product's machine settles in far fewer
/// (about a dozen at most); past this the order stays as stored and inspection resumes it.
const RUN_STEPS_MAX: usize = 256;
/// Version conflicts one transition retries at most before it gives up as unavailable.
const VERSION_CONFLICTS_MAX: u32 = 64;

/// Parties kept in memory at most (the cache starts over when full).
const PARTY_CACHE_MAX: usize = 100_000;

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
    /// False for the test book's executor: its orders and events say `"livemode": false`.
    pub livemode: bool,
}

impl Default for ExecutorConfig {
    fn default() -> ExecutorConfig {
        ExecutorConfig {
            points: None,
            inspect_after_ms: 30_000,
            overdue_after_ms: 15 * 60_000,
            livemode: true,
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
    /// Unfinished orders by kind at the last inspection pass: (count, age of the oldest, ms),
    /// indexed as `OrderKind::ALL`.
    open_by_kind: Mutex<[(u64, u64); OrderKind::ALL.len()]>,
}

/// The customer or merchant key the payment core books under: tenants never share accounts.
pub fn party_key(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}

/// The part of a party key after the tenant.
fn party_id(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, id)| id)
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
    /// Payout batches being carried out after their request was answered: joined at
    /// shutdown ([`Executor::finish_batches`]), reaped as they end.
    batches: Mutex<tokio::task::JoinSet<()>>,
    /// Channels no payout may be sent to (an operators' switch, `PayoutsFrozen`).
    frozen_payouts: Mutex<Vec<ChannelId>>,
    /// Orders an operator paused: nothing new is sent to a channel for them.
    held_orders: Mutex<std::collections::HashSet<String>>,
    /// Merchants' party keys refused new business (an operators' switch, `KillMerchant`).
    killed_merchants: Mutex<Vec<String>>,
    /// Settlement paused by an operators' switch (`SettlementPaused`).
    settlement_paused: std::sync::atomic::AtomicBool,
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
            batches: Mutex::new(tokio::task::JoinSet::new()),
            frozen_payouts: Mutex::new(Vec::new()),
            held_orders: Mutex::new(Default::default()),
            killed_merchants: Mutex::new(Vec::new()),
            settlement_paused: Default::default(),
            counters: Counters::default(),
        }
    }

    /// Channels no payout may be sent to from now on (the operators' switches say which):
    /// payouts waiting for a channel go to another, or fail as having none.
    /// The orders operators paused (the switches' `order_held`): none of them is routed to a
    /// channel — first send, retry or failover — until released; answers are still taken.
    pub fn set_held_orders(&self, orders: Vec<String>) {
        *self.held_orders.lock().unwrap_or_else(|p| p.into_inner()) = orders.into_iter().collect();
    }

    fn is_held(&self, order: &OrderId) -> bool {
        self.held_orders.lock().unwrap_or_else(|p| p.into_inner()).contains(order.as_str())
    }

    pub fn set_frozen_payout_channels(&self, channels: Vec<ChannelId>) {
        *self.frozen_payouts.lock().unwrap_or_else(|p| p.into_inner()) = channels;
    }

    /// Merchants (party keys, `tenant/merchant`) refused new payments, payout batches and
    /// settlements from now on (the operators' switches say which).
    pub fn set_killed_merchants(&self, merchants: Vec<String>) {
        *self.killed_merchants.lock().unwrap_or_else(|p| p.into_inner()) = merchants;
    }

    /// Pauses settlement runs, scheduled or asked for (the operators' switches say so).
    pub fn set_settlement_paused(&self, paused: bool) {
        self.settlement_paused.store(paused, Ordering::Relaxed);
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
        let durability = first_write_durability(&record.order.resume());
        match self.store.insert_as(&record, durability).await? {
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
                // Paused by an operator: it waits here, where it waits for a channel anyway;
                // inspection routes it once it is released.
                if self.is_held(record.id()) {
                    tracing::info!(order = %record.id(), "held by an operator: not routed");
                    return Ok(record);
                }
                let choose =
                    |refused: &[ChannelId]| match (record.order.pinned_channel(), &self.gateway) {
                        (Some(pinned), Some(_)) => {
                            Some(pinned.clone()).filter(|c| !refused.contains(c))
                        }
                        (None, Some(gateway)) => gateway.choose(&request, refused),
                        (_, None) => None,
                    };
                // Channels an operator froze payouts on are no candidates for a payout. If only
                // the freeze stands in the way, the payout waits (its money held) for the freeze
                // to lift: inspection routes it again; it is never failed for it.
                let frozen: Vec<ChannelId> = if request.operation == channels::Operation::Payout {
                    self.frozen_payouts.lock().unwrap_or_else(|p| p.into_inner()).clone()
                } else {
                    Vec::new()
                };
                let excluded: Vec<ChannelId> = refused.iter().chain(&frozen).cloned().collect();
                match choose(&excluded) {
                    Some(channel) => Event::Route { channel },
                    None if !frozen.is_empty() && choose(refused).is_some() => {
                        tracing::info!(order = %record.id(), "payout held: its channels are frozen");
                        return Ok(record);
                    }
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
            let events = outbox_events(&record.order, &next, self.config.livemode);
            let durability = transition_durability(event, &transition.effects);
            if self.store.update_as(&next, record.version, &events, durability).await? {
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

/// How durable a new order must be before it is driven: if its first steps are all ledger
/// writes, the ledger's own durable commit may carry it where the two share a log; an order
/// whose first step leaves this system (a channel) is durable first.
fn first_write_durability(effects: &[Effect]) -> Durability {
    if !effects.is_empty() && effects.iter().all(|effect| matches!(effect, Effect::Ledger(_))) {
        Durability::BeforeLedger
    } else {
        Durability::Now
    }
}

/// How durable a state change must be. The ledger's answer that it posted a group is the
/// ledger's to remember: driving the order again from its earlier state posts the group
/// again (a no-op by transfer id) and reaches the same state, so that state may wait for a
/// later flush — unless what follows leaves this system. Every other event (a channel's
/// answer, a rejection, an operator's word) is news that only the order keeps: durable now.
fn transition_durability(event: &Event, effects: &[Effect]) -> Durability {
    let stays_inside = effects.iter().all(|effect| matches!(effect, Effect::Ledger(_)));
    if matches!(event, Event::LedgerPosted) && stays_inside {
        Durability::Recomputable
    } else {
        Durability::Now
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
fn outbox_events(before: &Order, after: &OrderRecord, livemode: bool) -> Vec<NewEvent> {
    if before.status() == after.order.status() || !after.order.is_final() {
        return Vec::new();
    }
    vec![NewEvent {
        event_type: format!("{}.{}", after.order.kind().as_str(), after.order.status()),
        payload: order_payload(after, livemode),
    }]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test

    use super::*;

    fn ledger() -> Effect {
        Effect::Ledger(Vec::new())
    }

    /// Stands for any effect that leaves the system (a channel call or an inquiry).
    fn outside() -> Effect {
        Effect::Inquire {
            channel: ChannelId::new("bank_a").unwrap(),
            operation: channels::Operation::Payout,
            request_id: channels::RequestId::new("o_1:payout").unwrap(),
        }
    }

    #[test]
    fn a_new_order_rides_the_ledger_only_if_the_ledger_is_all_it_does_first() {
        assert_eq!(first_write_durability(&[ledger()]), Durability::BeforeLedger);
        assert_eq!(first_write_durability(&[ledger(), ledger()]), Durability::BeforeLedger);
        assert_eq!(first_write_durability(&[]), Durability::Now, "answered with nothing after it");
        assert_eq!(first_write_durability(&[outside()]), Durability::Now);
        assert_eq!(first_write_durability(&[ledger(), outside()]), Durability::Now);
    }

    #[test]
    fn only_a_posting_whose_next_steps_stay_inside_is_recomputable() {
        let posted = Event::LedgerPosted;
        assert_eq!(transition_durability(&posted, &[]), Durability::Recomputable);
        assert_eq!(transition_durability(&posted, &[ledger()]), Durability::Recomputable);
        assert_eq!(transition_durability(&posted, &[outside()]), Durability::Now);
        assert_eq!(transition_durability(&posted, &[ledger(), outside()]), Durability::Now);
        let rejected = Event::LedgerRejected { code: "insufficient_funds".into() };
        assert_eq!(transition_durability(&rejected, &[]), Durability::Now, "news kept only here");
        let answered = Event::ChannelAnswered {
            channel: ChannelId::new("bank_a").unwrap(),
            outcome: Outcome::Failed {
                reason: channels::FailureReason::Declined,
                detail: String::new(),
            },
        };
        assert_eq!(transition_durability(&answered, &[ledger()]), Durability::Now);
        let abandoned = Event::Abandon { reason: "no channel".into() };
        assert_eq!(transition_durability(&abandoned, &[ledger()]), Durability::Now);
    }
}
