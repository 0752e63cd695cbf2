//! Exceptions (异常单) an operator resolves: a top-up whose wallet is closed for good is
//! suspended (the bank took the card's money; it waits in suspense), is listed for
//! operators, and goes back to its card (原路退回) once a second key approves — a card refund
//! from suspense through the channel it came by. It goes back once: a second return is
//! refused. Afterwards the books balance, suspense is empty, and our records equal the bank's.

use std::time::Duration;

use serde_json::{json, Value};

use crate::ops::qianbao_ops;
use crate::payments::{World, CARD};
use crate::recon::key;

fn exceptions(ops: &World) -> Vec<Value> {
    ops.ok("GET", "/v1/ops/orders/exceptions", Value::Null)["data"]
        .as_array()
        .cloned()
        .expect("exceptions")
}

/// The balance of chart line `code` in CNY, as the balance sheet reads it.
fn line(ops: &World, code: u32) -> String {
    let sheet = ops.ok("GET", "/v1/ops/balance-sheet", Value::Null);
    sheet["assets"]
        .as_array()
        .and_then(|assets| assets.iter().find(|a| a["asset"] == json!("CNY")))
        .and_then(|cny| cny["lines"].as_array())
        .and_then(|lines| lines.iter().find(|l| l["chart_code"] == json!(code)))
        .map_or_else(|| "0".to_owned(), |l| l["balance_minor"].as_str().unwrap_or("?").to_owned())
}

#[test]
fn a_suspended_top_up_goes_back_to_its_card_once_with_a_second_keys_approval() {
    let world = World::start(&["bank_a"], &[]);
    // Carol's wallet is closed for good before her top-up arrives.
    world.ok("POST", "/v1/customers", json!({"id": "carol", "assets": ["CNY"]}));
    let carol = world.ok("GET", "/v1/customers/carol", Value::Null);
    let wallet = carol["balances"][0]["account_id"].as_str().expect("wallet id").to_owned();
    world.ok("POST", &format!("/v1/accounts/{wallet}/status"), json!({"status": "closed"}));
    let card_before = world.sim.card_balance("bank_a");
    let topup = world.ok(
        "POST",
        "/v1/topups",
        json!({"reference": "to-closed", "customer": "carol", "card": CARD, "asset": "CNY",
               "amount": "2500"}),
    );
    let id = topup["id"].as_str().expect("id").to_owned();
    let suspended = world.wait_final(&id, Duration::from_secs(20));
    assert_eq!(suspended["status"], json!("suspended"), "{suspended}");
    assert_eq!(world.sim.card_balance("bank_a"), card_before - 2500, "the bank took it");
    assert_eq!(line(&world, 2299), "2500", "in suspense");

    let maker = world.share(&key(&world, &["ops:read", "ops:write"]));
    let checker = world.share(&key(&world, &["ops:read", "ops:approve"]));
    let listed = exceptions(&maker);
    assert!(
        listed.iter().any(|o| o["id"] == json!(id) && o["return_order"].is_null()),
        "{listed:?}"
    );
    // Only a suspended top-up goes back to a card.
    let (status, refused) = maker.call(
        "POST",
        "/v1/ops/orders/not_an_order/return",
        json!({"evidence": "x", "reason": "y"}),
    );
    assert_eq!((status, refused["error"]["code"].clone()), (404, json!("order_not_found")));

    let proposed = qianbao_ops(
        &maker,
        &[
            "return",
            "--order",
            &id,
            "--evidence",
            "wallet closed at the customer's request",
            "--reason",
            "return the money to the card",
            "--ticket",
            "INC-77",
        ],
    );
    assert!(proposed.contains("pending_approval"), "{proposed}");
    assert_eq!(line(&world, 2299), "2500", "nothing moves before the approval");
    let pending = maker.ok("GET", "/v1/ops/actions?state=pending_approval", Value::Null);
    let action = pending["data"][0].clone();
    assert_eq!(action["kind"], json!("return_suspended"), "{action}");
    let action_id = action["id"].as_str().expect("action id").to_owned();
    let (status, own) = maker.call(
        "POST",
        &format!("/v1/ops/actions/{action_id}/approve"),
        json!({"reason": "mine"}),
    );
    assert_eq!(status, 403, "the maker holds no ops:approve: {own}");
    let approved = checker.ok(
        "POST",
        &format!("/v1/ops/actions/{action_id}/approve"),
        json!({"reason": "closure confirmed"}),
    );
    assert_eq!(approved["state"], json!("applied"), "{approved}");

    // The return is an order of its own, through the top-up's channel.
    let request_id = approved["request_id"].as_str().expect("request id");
    let refund = request_id.split(':').next().expect("the return's id").to_owned();
    let returned = world.wait_final(&refund, Duration::from_secs(20));
    assert_eq!(returned["status"], json!("succeeded"), "{returned}");
    assert_eq!(world.sim.card_balance("bank_a"), card_before, "back on the card");
    assert_eq!(line(&world, 2299), "0", "suspense is empty");
    assert!(
        !exceptions(&maker).iter().any(|o| o["id"] == json!(id)),
        "a top-up back on its card is no longer an exception"
    );

    // A second return of the same top-up is refused when carried out: it went back once.
    let again = maker.ok(
        "POST",
        &format!("/v1/ops/orders/{id}/return"),
        json!({"evidence": "again", "reason": "a second try"}),
    );
    let again_id = again["id"].as_str().expect("id").to_owned();
    assert_ne!(again_id, action_id);
    let failed = checker.ok(
        "POST",
        &format!("/v1/ops/actions/{again_id}/approve"),
        json!({"reason": "approve by mistake"}),
    );
    assert_eq!(
        (failed["state"].clone(), failed["failure_code"].clone()),
        (json!("failed"), json!("return_refused")),
        "{failed}"
    );
    assert_eq!(world.sim.card_balance("bank_a"), card_before, "returned once only");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}
