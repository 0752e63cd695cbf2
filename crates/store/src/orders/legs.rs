//! An order's request at a channel, kept in columns beside the order (`channel`,
//! `channel_status`, `channel_ref`, `channel_fee_minor`), and the read of a channel's day from
//! them ([`OrderStore::channel_legs_between`]).
//!
//! Reconciliation reads every order of a channel's day. Decoding a million orders' JSON to
//! learn four facts was most of a run; these columns hold the four facts, written by the same
//! statement that writes the order. They are stamped with the order version they were
//! computed at (`channel_at_version`): a row whose stamp differs from its version — written
//! before the columns existed, or by an older release during a rolling upgrade, which updates
//! the order and not the columns — is read from the order itself, so the columns can lag
//! behind the orders but never mislead a reader.
//!
//! [`OrderStore::channel_legs_between`]: executor::OrderStore::channel_legs_between

use channels::{ChannelId, Settled};
use executor::{ChannelLegPage, ChannelLegRecord, OrderStoreError};
use money::{Amount, AssetCode};
use payments::reconciled::{ChannelLeg, CHANNEL_KINDS};
use payments::{Order, OrderId, OrderKind};
use recon::OurStatus;

use super::queries::{cursor_sql, window_params, Dialect};
use super::{corrupt, u64_of, Param};

/// The channel columns of `order`, as bound after the others by `INSERT` and `UPDATE`.
pub(super) fn columns(order: &Order) -> [Param; 4] {
    let leg = order.channel_leg();
    let settled = leg.as_ref().and_then(|leg| leg.settled.as_ref());
    [
        Param::OptText(leg.as_ref().map(|leg| leg.channel.to_string())),
        Param::OptText(leg.as_ref().map(|leg| leg.status.as_str().to_owned())),
        Param::OptText(settled.map(|s| s.channel_ref.clone())),
        Param::OptInt(settled.map(|s| s.fee.to_stored())),
    ]
}

/// The read of one page: rows whose columns are current, and rows to read from the order.
pub(super) fn query(
    dialect: Dialect,
    channel: &ChannelId,
    from_ms: u64,
    to_ms: u64,
    after: Option<(u64, OrderId)>,
    limit: usize,
) -> (String, Vec<Param>) {
    // The kinds' names come from the enum, never from input.
    let kinds: Vec<String> =
        CHANNEL_KINDS.iter().map(|kind| format!("'{}'", kind.as_str())).collect();
    let sql = format!(
        "SELECT id, kind, asset, amount_minor, created_at_ms, channel_status, channel_ref, \
         channel_fee_minor, CASE WHEN channel_at_version = version THEN NULL ELSE body END, \
         body_version FROM orders WHERE kind IN ({}) AND created_at_ms >= ?1 AND created_at_ms < ?2 \
         AND {} AND (channel = ?6 OR channel_at_version <> version) \
         ORDER BY created_at_ms, id LIMIT ?5",
        kinds.join(", "),
        cursor_sql(dialect),
    );
    let mut params = window_params(from_ms, to_ms, after, limit);
    params.push(Param::Text(channel.to_string()));
    (sql, params)
}

/// The columns of [`query`], as read.
pub(super) struct RawLeg {
    pub id: String,
    pub kind: String,
    pub asset: String,
    pub amount_minor: i64,
    pub created_at_ms: i64,
    pub status: Option<String>,
    pub channel_ref: Option<String>,
    pub fee_minor: Option<i64>,
    /// The order itself, for a row whose columns are not current.
    pub body: Option<String>,
    pub body_version: i64,
}

impl RawLeg {
    /// The row's leg at `channel`; `None` for an order read from its body that sent nothing
    /// there.
    fn into_record(self, channel: &ChannelId) -> Result<Option<ChannelLegRecord>, OrderStoreError> {
        let created_at_ms = u64_of(self.created_at_ms)?;
        if let Some(body) = self.body {
            let order: Order = super::read_body(self.body_version, &body)?;
            let Some(leg) = order.channel_leg().filter(|leg| leg.channel == *channel) else {
                return Ok(None);
            };
            return Ok(Some(ChannelLegRecord {
                order_id: order.id().clone(),
                kind: order.kind(),
                amount: order.amount(),
                asset: order.asset(),
                created_at_ms,
                leg,
            }));
        }
        let status = self
            .status
            .as_deref()
            .and_then(OurStatus::parse)
            .ok_or_else(|| corrupt(format!("order {}: channel status", self.id)))?;
        let settled = match (self.channel_ref, self.fee_minor) {
            (Some(channel_ref), Some(fee)) => Some(Settled {
                channel_ref,
                fee: Amount::from_stored(fee).ok_or_else(|| corrupt("channel fee"))?,
            }),
            (None, None) => None,
            _ => return Err(corrupt(format!("order {}: half a channel answer", self.id))),
        };
        Ok(Some(ChannelLegRecord {
            order_id: OrderId::new(self.id).map_err(corrupt)?,
            kind: OrderKind::parse(&self.kind).ok_or_else(|| corrupt("order kind"))?,
            amount: Amount::from_stored(self.amount_minor).ok_or_else(|| corrupt("amount"))?,
            asset: AssetCode::new(&self.asset).map_err(corrupt)?,
            created_at_ms,
            leg: ChannelLeg { channel: channel.clone(), status, settled },
        }))
    }
}

/// A page from the rows read (at most `limit` of them), decoded as they arrive.
pub(super) fn page(
    rows: impl Iterator<Item = Result<RawLeg, OrderStoreError>>,
    channel: &ChannelId,
    limit: usize,
) -> Result<ChannelLegPage, OrderStoreError> {
    /// The last row read, for the cursor: the last leg, or a row that was not one.
    enum Last {
        None,
        Leg,
        Skipped(i64, String),
    }
    let mut legs = Vec::new();
    let mut read = 0;
    let mut last = Last::None;
    for row in rows {
        let row = row?;
        read += 1;
        // Only a row read from its order can turn out not to be a leg of the channel (the
        // columns' rows always are): only its id is copied for the cursor.
        let at_ms = row.created_at_ms;
        let id = row.body.is_some().then(|| row.id.clone());
        match row.into_record(channel)? {
            Some(record) => {
                legs.push(record);
                last = Last::Leg;
            }
            None => last = Last::Skipped(at_ms, id.unwrap_or_default()),
        }
    }
    let next = match last {
        _ if read < limit => None,
        Last::None => None,
        Last::Leg => legs.last().map(|leg| (leg.created_at_ms, leg.order_id.clone())),
        Last::Skipped(at_ms, id) => Some((u64_of(at_ms)?, OrderId::new(id).map_err(corrupt)?)),
    };
    Ok(ChannelLegPage { legs, next })
}

pub(super) fn sqlite_leg(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawLeg> {
    Ok(RawLeg {
        id: row.get(0)?,
        kind: row.get(1)?,
        asset: row.get(2)?,
        amount_minor: row.get(3)?,
        created_at_ms: row.get(4)?,
        status: row.get(5)?,
        channel_ref: row.get(6)?,
        fee_minor: row.get(7)?,
        body: row.get(8)?,
        body_version: row.get(9)?,
    })
}

pub(super) fn pg_leg(row: &postgres::Row) -> Result<RawLeg, postgres::Error> {
    Ok(RawLeg {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        asset: row.try_get(2)?,
        amount_minor: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        status: row.try_get(5)?,
        channel_ref: row.try_get(6)?,
        fee_minor: row.try_get(7)?,
        body: row.try_get(8)?,
        body_version: row.try_get(9)?,
    })
}
