//! The executor's storage port: orders with their version, the outbox of events each
//! state change emits (written in the same transaction as the change), and the parties
//! (customers, merchants) orders are made for.

use channels::{BoxFuture, ChannelId};
use ledger::model::AccountLayout;
use money::{Amount, AssetCode};
use payments::reconciled::ChannelLeg;
use payments::{Order, OrderId, OrderKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrderStoreError {
    #[error("order store: {0}")]
    Backend(String),
    #[error("corrupt order row: {0}")]
    Corrupt(String),
}

/// One stored order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    /// The tenant whose key created it; only that tenant sees it.
    pub tenant: String,
    /// The client's own order number: unique per tenant, kind (and merchant for payments).
    pub reference: String,
    /// A digest of the creating request: the same reference with other fields is refused.
    pub request_fingerprint: String,
    /// A refund's payment.
    pub parent: Option<OrderId>,
    pub order: Order,
    /// Bumped by every stored change; an update names the version it read.
    pub version: u64,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl OrderRecord {
    pub fn id(&self) -> &OrderId {
        self.order.id()
    }
}

/// One order's request at a channel, as the order store keeps it beside the order (see
/// [`payments::reconciled::ChannelLeg`]): what reconciliation reads of a day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelLegRecord {
    pub order_id: OrderId,
    pub kind: OrderKind,
    pub amount: Amount,
    pub asset: AssetCode,
    pub created_at_ms: u64,
    pub leg: ChannelLeg,
}

/// A page of [`OrderStore::channel_legs_between`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelLegPage {
    pub legs: Vec<ChannelLegRecord>,
    /// The cursor of the next page; `None` when this page was the last.
    pub next: Option<(u64, OrderId)>,
}

/// An event to put in the outbox with a state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// `payment.succeeded`, `withdrawal.failed`, …
    pub event_type: String,
    pub payload: serde_json::Value,
}

/// An event in the outbox, numbered in commit order per store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub tenant: String,
    pub order_id: OrderId,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    Created,
    /// An order with this id exists (a retry); nothing was written.
    Existing(Box<OrderRecord>),
}

/// What earlier live (not failed) refunds of a payment took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefundTotals {
    pub refunded: Amount,
    pub fee_returned: Amount,
    /// Of the payment's second funding leg: points, or the FX funding asset.
    pub leg_returned: Amount,
}

/// The result of an insert guarded by totals read in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardedInsert {
    Created(OrderRecord),
    Existing(OrderRecord),
    /// `build` refused: a refund would pass what its payment can give back, a settlement
    /// would have nothing to settle.
    Refused,
}

/// A merchant's running totals in one asset, from its orders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MerchantTotals {
    /// Succeeded payments created before the cut-off, net of fees.
    pub payments_net_minor: i64,
    /// Refunds not failed (booked or on their way), net of returned fees: all of them,
    /// whenever made, since each takes from what is unsettled.
    pub refunds_net_minor: i64,
    /// Settlements not failed.
    pub settled_minor: i64,
}

/// Filters of an order listing, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderQuery {
    pub tenant: String,
    pub kind: Option<OrderKind>,
    pub status: Option<String>,
    pub customer: Option<String>,
    pub merchant: Option<String>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
    /// Only orders created strictly before this (created_at_ms, id): the page cursor.
    pub before: Option<(u64, OrderId)>,
    pub limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Customer,
    Merchant,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Customer => "customer",
            PartyKind::Merchant => "merchant",
        }
    }
}

/// A customer or merchant of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Party {
    pub tenant: String,
    pub kind: PartyKind,
    pub id: String,
    pub name: String,
    pub assets: Vec<AssetCode>,
    /// A merchant's fee in basis points of each payment (0 for customers).
    pub fee_bps: u32,
    /// Merchants: payments of day T are settled on day T+N (结算周期).
    #[serde(default)]
    pub settle_after_days: u32,
    pub created_at_ms: u64,
    /// Merchants: the layout of the unsettled payables (a hot merchant's, 热点账户). Absent
    /// from parties stored before it existed, and from plain ones: plain.
    #[serde(default, skip_serializing_if = "is_plain")]
    pub unsettled_layout: AccountLayout,
}

fn is_plain(layout: &AccountLayout) -> bool {
    *layout == AccountLayout::Plain
}

/// How soon a stored order change must survive a crash of the machine or of the database.
/// (A crash of this process alone loses nothing committed either way: the database, or the
/// operating system's cache, holds it.) Weaker promises let a store commit without waiting
/// for its log's flush, which is most of a write's time; each says why nothing is lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Durable when the call returns.
    #[default]
    Now,
    /// The order's next step is a ledger write it waits on, and nothing outside this system
    /// sees the state first. A store that shares the ledger's log (PostgreSQL: one WAL)
    /// commits without waiting for the flush: the ledger's durable commit comes later in the
    /// same log and makes this one durable with it, and if the ledger writes nothing the
    /// order's next state is stored [`Durability::Now`]. Any other store makes it durable now.
    BeforeLedger,
    /// A state that driving the order again from its last durable state reaches again: the
    /// answer to a ledger group the ledger holds durably (posting is idempotent by transfer
    /// id). A machine crash may lose it; the order then stands at its earlier state, and
    /// inspection drives it to this one again. It is durable with the store's next durable
    /// commit, or its log's own flush.
    Recomputable,
}

pub trait OrderStore: Send + Sync + 'static {
    /// Stores a new order unless one with its id exists; durable when it returns.
    fn insert(&self, record: &OrderRecord) -> Result<Inserted, OrderStoreError>;

    /// [`OrderStore::insert`] from the async runtime, durable as `durability` says. A store
    /// whose writes go to a writer thread awaits its answer instead of blocking a worker;
    /// by default this is the durable insert, run where it is called.
    fn insert_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        _durability: Durability,
    ) -> BoxFuture<'a, Result<Inserted, OrderStoreError>> {
        Box::pin(async move { self.insert(record) })
    }

    /// Stores a refund of `payment` in one transaction with the check that it fits: `build`
    /// gets the totals of the payment's live refunds and returns the refund, or `None`.
    /// Two refunds racing on one payment are serialised, so together they never pass it.
    fn insert_refund(
        &self,
        refund_id: &OrderId,
        payment: &OrderId,
        build: &mut dyn FnMut(RefundTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError>;

    /// Stores a settlement of `merchant` (a party key) in `asset` in one transaction with
    /// its totals up to `cutoff_ms`: `build` gets them and returns the settlement, or `None`
    /// when there is nothing to settle. Settlements of one merchant are serialised.
    fn insert_settlement(
        &self,
        settlement_id: &OrderId,
        merchant: &str,
        asset: AssetCode,
        cutoff_ms: u64,
        build: &mut dyn FnMut(MerchantTotals) -> Option<OrderRecord>,
    ) -> Result<GuardedInsert, OrderStoreError>;

    /// Every party of `kind`, of every tenant (for scheduled runs such as settlement).
    fn parties(&self, kind: PartyKind) -> Result<Vec<Party>, OrderStoreError>;

    /// Replaces the order if it is still at `expected_version`, and appends `events` to the
    /// outbox in the same transaction; false (nothing written) if another writer got there first.
    fn update(
        &self,
        record: &OrderRecord,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<bool, OrderStoreError>;

    /// [`OrderStore::update`] from the async runtime, durable as `durability` says (see
    /// [`OrderStore::insert_as`]).
    fn update_as<'a>(
        &'a self,
        record: &'a OrderRecord,
        expected_version: u64,
        events: &'a [NewEvent],
        _durability: Durability,
    ) -> BoxFuture<'a, Result<bool, OrderStoreError>> {
        Box::pin(async move { self.update(record, expected_version, events) })
    }

    fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, OrderStoreError>;

    fn list(&self, query: &OrderQuery) -> Result<Vec<OrderRecord>, OrderStoreError>;

    /// Orders not final and last changed before `updated_before_ms`, oldest first.
    fn unfinished(
        &self,
        updated_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError> {
        self.unfinished_after(updated_before_ms, None, limit)
    }

    /// [`OrderStore::unfinished`] from a cursor: only orders after `(updated_at_ms, id)`.
    fn unfinished_after(
        &self,
        updated_before_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError>;

    /// Orders of `kinds` created in `[from_ms, to_ms)`, of every tenant, after the cursor
    /// `(created_at_ms, id)`, in that order: reconciliation reads a day's records so.
    fn created_between(
        &self,
        kinds: &[OrderKind],
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError>;

    /// The channel requests sent to `channel` by orders created in `[from_ms, to_ms)`, of
    /// every tenant, after the cursor `(created_at_ms, id)`, in that order, at most `limit`
    /// orders' worth: a channel's day for reconciliation, read from the columns kept beside
    /// each order rather than from the orders themselves.
    fn channel_legs_between(
        &self,
        channel: &ChannelId,
        from_ms: u64,
        to_ms: u64,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<ChannelLegPage, OrderStoreError>;

    /// Final orders an operator must act on (`payments::Order::needs_operator`: suspended
    /// top-ups, disputed withdrawals and card refunds), of every tenant, after the cursor
    /// `(updated_at_ms, id)`, oldest change first.
    fn needing_operator(
        &self,
        after: Option<(u64, OrderId)>,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, OrderStoreError>;

    /// The orders whose parent is `parent` (a payment's refunds, a payout batch's items),
    /// oldest first.
    fn children_of(&self, parent: &OrderId) -> Result<Vec<OrderRecord>, OrderStoreError>;

    /// The tenant's outbox events after `after_seq`, in order.
    fn events(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, OrderStoreError>;

    /// Stores a party unless one exists with its (tenant, kind, id); returns the existing one.
    fn put_party(&self, party: &Party) -> Result<Option<Party>, OrderStoreError>;

    fn get_party(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
    ) -> Result<Option<Party>, OrderStoreError>;
}
