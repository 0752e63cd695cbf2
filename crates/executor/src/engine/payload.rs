//! The API's and webhooks' view of an order: its stored form with the derived fields a
//! reader needs (a card payment's fees).

use super::*;

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
