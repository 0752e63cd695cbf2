//! The columns written beside each order: what the order's state says of its fee, second
//! leg, refund source and channel request, derived here at every write so that queries can
//! filter and sum them in SQL; and the parameters of `INSERT`, `UPDATE` and the outbox's
//! insert, in their placeholders' order.

use executor::port::{NewEvent, OrderRecord, OrderStoreError};
use money::Amount;
use payments::order::STORED_FORM_VERSION;
use payments::{Order, OrderId};

use super::{backend, i64_of, legs, Param};

/// The second-leg column: a payment's points or FX funding amount, what a refund returns of
/// it, else zero (so a payment's refunds can be summed leg by leg).
fn leg_of(order: &Order) -> Amount {
    match order {
        Order::Payment(payment) => payment.second_leg(),
        Order::Refund(refund) => refund.second_leg(),
        _ => Amount::ZERO,
    }
}

/// A refund that takes from the merchant's settled takings (not counted by settlement).
fn from_settled(order: &Order) -> bool {
    match order {
        Order::Refund(refund) => refund.from_settled,
        Order::CardRefund(refund) => refund.from_settled,
        _ => false,
    }
}

/// The fee column: a payment's fee, a refund's returned fee share, else zero.
fn fee_of(order: &Order) -> Amount {
    match order {
        Order::Payment(payment) => payment.fee(),
        Order::Refund(refund) => refund.fee_returned,
        Order::CardPayment(card) => {
            card.merchant.as_ref().map_or(Amount::ZERO, |credit| credit.fee)
        }
        Order::CardRefund(refund) => refund.fee_returned,
        _ => Amount::ZERO,
    }
}

fn body_of(order: &Order) -> Result<String, OrderStoreError> {
    payments::order::write_stored(order).map_err(backend)
}

pub(super) fn insert_params(record: &OrderRecord) -> Result<Vec<Param>, OrderStoreError> {
    let order = &record.order;
    Ok(vec![
        Param::Text(order.id().to_string()),
        Param::Text(record.tenant.clone()),
        Param::Text(order.kind().as_str().into()),
        Param::Text(record.reference.clone()),
        Param::Text(record.request_fingerprint.clone()),
        Param::OptText(record.parent.as_ref().map(OrderId::to_string)),
        Param::Text(order.status().into()),
        Param::Int(i64::from(order.is_final())),
        Param::Text(order.customer().into()),
        Param::OptText(order.merchant().map(str::to_owned)),
        Param::Int(order.amount().to_stored()),
        Param::Int(fee_of(order).to_stored()),
        Param::Text(body_of(order)?),
        Param::Int(i64_of(record.version)),
        Param::Int(i64_of(record.created_at_ms)),
        Param::Int(i64_of(record.updated_at_ms)),
        Param::Text(order.asset().as_str().to_owned()),
        Param::Int(leg_of(order).to_stored()),
        Param::Int(i64::from(from_settled(order))),
    ]
    .into_iter()
    .chain(legs::columns(order))
    .chain([Param::Int(i64::from(STORED_FORM_VERSION))])
    .collect())
}

pub(super) fn update_params(
    record: &OrderRecord,
    expected_version: u64,
) -> Result<Vec<Param>, OrderStoreError> {
    let order = &record.order;
    Ok(vec![
        Param::Text(order.id().to_string()),
        Param::Text(order.status().into()),
        Param::Int(i64::from(order.is_final())),
        Param::Int(fee_of(order).to_stored()),
        Param::Text(body_of(order)?),
        Param::Int(i64_of(record.version)),
        Param::Int(i64_of(record.updated_at_ms)),
        Param::Int(i64_of(expected_version)),
        Param::Int(order.amount().to_stored()),
    ]
    .into_iter()
    .chain(legs::columns(order))
    .chain([Param::Int(i64::from(STORED_FORM_VERSION))])
    .collect())
}

pub(super) fn event_params(record: &OrderRecord, event: &NewEvent) -> Vec<Param> {
    vec![
        Param::Text(record.tenant.clone()),
        Param::Text(record.id().to_string()),
        Param::Text(event.event_type.clone()),
        Param::Text(event.payload.to_string()),
        Param::Int(i64_of(record.updated_at_ms)),
    ]
}
