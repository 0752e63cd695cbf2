//! The API's and webhooks' view of an order: typed at the top level, with the kind's state
//! and terms from its stored form plus the derived fields a reader needs (a card payment's
//! fees).

use super::*;

/// The public form of an order: what webhooks carry and the API shows. The top level is built
/// from the order's typed accessors; `state` and `detail` are the kind's own state and terms,
/// whose JSON is pinned for every shape by the golden test below (a renamed field in
/// `payments` fails it, instead of silently changing the API and the webhooks).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OrderPayload {
    pub id: String,
    /// Always `order`.
    pub object: &'static str,
    pub kind: &'static str,
    pub status: &'static str,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub reference: String,
    /// The customer's id (not its party key); none for a settlement.
    pub customer: Option<String>,
    pub merchant: Option<String>,
    pub asset: String,
    /// Minor units, as a decimal string.
    pub amount: String,
    pub parent: Option<String>,
    pub state: serde_json::Value,
    pub detail: serde_json::Value,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// False for an order of the test book (test keys, virtual channels): webhooks and the
    /// API mark test traffic end to end.
    pub livemode: bool,
}

impl OrderPayload {
    /// `livemode`: whether the order is in the live book ([`ExecutorConfig::livemode`]).
    pub fn of(record: &OrderRecord, livemode: bool) -> OrderPayload {
        let order = &record.order;
        let (state, detail) = state_and_terms(order);
        OrderPayload {
            id: order.id().as_str().to_owned(),
            object: "order",
            kind: order.kind().as_str(),
            status: order.status(),
            is_final: order.is_final(),
            reference: record.reference.clone(),
            customer: Some(order.customer())
                .filter(|key| !key.is_empty())
                .map(|key| party_id(key).to_owned()),
            merchant: order.merchant().map(|key| party_id(key).to_owned()),
            asset: order.asset().as_str().to_owned(),
            amount: order.amount().minor().to_string(),
            parent: record.parent.as_ref().map(|id| id.as_str().to_owned()),
            state,
            detail,
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
            livemode,
        }
    }
}

/// The public JSON of an order ([`OrderPayload`]).
pub fn order_payload(record: &OrderRecord, livemode: bool) -> serde_json::Value {
    match serde_json::to_value(OrderPayload::of(record, livemode)) {
        Ok(value) => value,
        Err(_) => unreachable!("strings, numbers and JSON values always serialise"),
    }
}

/// The order's state with its details, and the kind's own terms (fee, points, card,
/// cut-off…) less what the top level already says.
fn state_and_terms(order: &Order) -> (serde_json::Value, serde_json::Value) {
    let Ok(mut detail) = serde_json::to_value(order) else {
        unreachable!("an order is plain data: it always serialises")
    };
    let state = detail.get_mut("state").map(serde_json::Value::take).unwrap_or_default();
    if let Some(fields) = detail.as_object_mut() {
        for said in ["kind", "order", "customer", "merchant", "asset", "amount", "state"] {
            fields.remove(said);
        }
        if let Order::CardPayment(flow) = order {
            card_payment_terms(flow, fields);
        }
    }
    (state, detail)
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
        let wallet = order_payload(&record(Order::Payment(wallet)), true);
        assert_eq!(wallet["detail"]["fee"], serde_json::json!("30"), "{wallet}");

        let mut card =
            TopUp::new(OrderId::new("cp_1").unwrap(), "t/alice".into(), "6222".into(), cny, amount)
                .paying(MerchantCredit {
                    merchant: "t/shop".into(),
                    fee: payments::booking::fee_for(amount, 60),
                    fee_bps: 60,
                });
        let before = order_payload(&record(Order::CardPayment(card.clone())), true);
        assert_eq!(before["detail"]["fee"], serde_json::json!("30"), "{before}");
        assert_eq!(before["detail"]["fee_bps"], serde_json::json!(60), "{before}");
        assert!(before["detail"].get("channel_fee").is_none(), "not reported yet: {before}");

        let channel = ChannelId::new("bank_a").unwrap();
        let settled = Settled { channel_ref: "r".into(), fee: Amount::new(7).unwrap() };
        card.state = TopUpState::Succeeded { channel, settled };
        let paid = order_payload(&record(Order::CardPayment(card)), true);
        assert_eq!(paid["merchant"], serde_json::json!("shop"), "{paid}");
        assert_eq!(paid["detail"]["fee"], serde_json::json!("30"), "the merchant's: {paid}");
        assert_eq!(paid["detail"]["channel_fee"], serde_json::json!("7"), "{paid}");
        assert_eq!(paid["state"]["settled"]["fee"], serde_json::json!("7"), "{paid}");
    }

    /// The API's and webhooks' JSON of every stored shape (the stored-form fixture of
    /// `payments`), pinned: a change to it is a change of the public API, seen in review.
    /// `QIANBAO_WRITE_PAYLOADS=1 cargo test -p executor --lib` rewrites the file.
    #[test]
    fn the_public_json_of_every_stored_shape_is_pinned() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let stored =
            std::fs::read_to_string(root.join("../payments/tests/stored/orders-v1.json")).unwrap();
        let bodies: Vec<serde_json::Value> = serde_json::from_str(&stored).unwrap();
        let payloads: Vec<serde_json::Value> = bodies
            .iter()
            .enumerate()
            .map(|(n, body)| {
                let order = payments::order::read_stored(1, &body.to_string()).unwrap();
                let parent = matches!(order.kind(), OrderKind::Refund | OrderKind::CardRefund)
                    .then(|| OrderId::new(format!("parent_{n}")).unwrap());
                order_payload(&OrderRecord { parent, ..record(order) }, true)
            })
            .collect();
        let actual = serde_json::to_string_pretty(&payloads).unwrap() + "\n";
        let golden = root.join("tests/golden/order-payloads.json");
        if std::env::var_os("QIANBAO_WRITE_PAYLOADS").is_some() {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap();
        assert!(
            actual == expected,
            "the public JSON of orders changed (QIANBAO_WRITE_PAYLOADS=1 to accept it):\n{actual}"
        );
    }
}
