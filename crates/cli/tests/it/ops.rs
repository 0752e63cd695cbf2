//! Operators' work on money that is stuck (`qianbao ops`, `/v1/ops`): a payout the bank made
//! but never confirmed, whose status inquiries all go unanswered, is escalated — not failed —
//! is shown to operators and at /metrics, and completes as the bank did it once an operator
//! has it asked again after the bank is back (without waiting for the hourly retry). While it
//! waits it is listed as overdue.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::payments::{World, CARD};
use crate::recon::key;

fn escalated(ops: &World) -> Vec<Value> {
    ops.ok("GET", "/v1/ops/inquiries/escalated", Value::Null)["data"]
        .as_array()
        .cloned()
        .expect("escalated inquiries")
}

pub(crate) fn qianbao_ops(ops: &World, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .arg("ops")
        .args(args)
        .args(["--url", &format!("http://{}", ops.addr()), "--key", ops.key()])
        .output()
        .expect("qianbao ops");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{printed} {}", String::from_utf8_lossy(&output.stderr));
    printed
}

/// A payout the bank makes but never confirms (its answer lost, every status query timing
/// out), waited for until its inquiry is escalated: the order's id and the escalated task.
pub(crate) fn unconfirmed_payout(
    world: &World,
    ops: &World,
    reference: &str,
    minor: u64,
) -> (String, Value) {
    world.sim.faults(
        "bank_a",
        json!({"payout": {"lost_response_rate": 1.0, "hold_ms": 50},
               "query": {"timeout_rate": 1.0, "hold_ms": 50}}),
    );
    let withdrawal = world.ok(
        "POST",
        "/v1/withdrawals",
        json!({"reference": reference, "customer": "alice", "bank_account": CARD,
               "asset": "CNY", "amount": minor.to_string()}),
    );
    let id = withdrawal["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(task) = escalated(ops).into_iter().find(|t| t["owner"] == json!(id)) {
            return (id, task);
        }
        assert!(Instant::now() < deadline, "the inquiry was never escalated");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_escalated_payout_is_shown_asked_again_by_an_operator_and_completes_as_the_bank_did_it() {
    let world = World::start(
        &["bank_a"],
        &[
            "--inquiry-attempts-max",
            "2",
            "--inquiry-escalated-delay-ms",
            "3600000",
            "--stuck-after-ms",
            "1000",
        ],
    );
    assert_eq!(world.topup("funds", 50_000)["status"], json!("succeeded"));
    // Operations are the platform's: a tenant's key cannot hold their scopes.
    let (status, refused) = world.call(
        "POST",
        "/v1/keys",
        json!({"tenant": "acme", "mode": "live", "scopes": ["ops:read"]}),
    );
    assert_eq!((status, refused["error"]["code"].clone()), (422, json!("platform_scope")));
    let ops = world.share(&key(&world, &["ops:read", "ops:write"]));
    assert!(escalated(&ops).is_empty());

    // The bank pays out, but its answer is lost and every status query of it times out.
    let (id, task) = unconfirmed_payout(&world, &ops, "stuck", 1000);
    assert_eq!(task["state"], json!("escalated"), "{task}");
    assert_eq!(task["operation"], json!("payout"), "{task}");
    // Never assumed failed: the money stays held while the bank may have paid.
    let order = world.ok("GET", &format!("/v1/orders/{id}"), Value::Null);
    assert_eq!(order["status"], json!("paying"), "{order}");
    let (_, metrics) =
        crate::serve::request(world.addr(), "GET", "/metrics", "", "").expect("metrics");
    assert!(
        metrics.contains("qianbao_channel_inquiry_backlog{state=\"escalated\"} 1"),
        "{metrics}"
    );
    // Inspection counts it among the unfinished orders of its kind, with its age.
    world.ok("POST", "/v1/inspection", Value::Null);
    let (_, metrics) =
        crate::serve::request(world.addr(), "GET", "/metrics", "", "").expect("metrics");
    assert!(metrics.contains("qianbao_orders_open{kind=\"withdrawal\"} 1"), "{metrics}");
    let listed = qianbao_ops(&ops, &["inquiries"]);
    assert!(listed.contains(task["request_id"].as_str().expect("request id")), "{listed}");
    // Unmoved for longer than --stuck-after-ms: an overdue order, for operators too.
    let overdue = ops.ok("GET", "/v1/ops/orders/overdue", Value::Null)["data"].clone();
    let late = overdue.as_array().expect("overdue").iter().find(|o| o["id"] == json!(id));
    let late = late.unwrap_or_else(|| panic!("the stuck payout is not overdue: {overdue}"));
    assert_eq!(
        (late["kind"].clone(), late["status"].clone()),
        (json!("withdrawal"), json!("paying"))
    );
    assert!(qianbao_ops(&ops, &["overdue"]).contains(&id));

    // The bank is back. Its next scheduled inquiry is an hour away; an operator asks now.
    world.sim.faults("bank_a", json!({}));
    let request_id = task["request_id"].as_str().expect("request id");
    let asked = qianbao_ops(&ops, &["ask", "--channel", "bank_a", "--request-id", request_id]);
    assert!(asked.contains(request_id), "{asked}");
    let done = world.wait_final(&id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "the bank paid it: {done}");
    assert!(escalated(&ops).is_empty());
    assert!(qianbao_ops(&ops, &["inquiries"]).contains("(no escalated inquiry)"));
    assert!(qianbao_ops(&ops, &["overdue"]).contains("(none)"));
    // It succeeded: no exception either (a payout the bank paid after we released it would be).
    assert!(qianbao_ops(&ops, &["exceptions"]).contains("(none)"));
    // An inquiry that is no more cannot be asked.
    let (status, gone) =
        ops.call("POST", &format!("/v1/ops/inquiries/bank_a/{request_id}/ask"), Value::Null);
    assert_eq!((status, gone["error"]["code"].clone()), (404, json!("resource_missing")));
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// The end-to-end case: a payout the bank made but never confirmed, whose inquiries
/// all go unanswered, is finished by operators from the bank's evidence — a maker proposes,
/// a second key approves (the maker cannot), and the order completes through its own state
/// machine. Afterwards the books balance, our records equal the bank's, and every step is in
/// the audit log, whose chain verifies.
#[test]
fn an_unanswered_payout_is_finished_by_an_operator_with_a_second_keys_approval() {
    let world = World::start(
        &["bank_a"],
        &["--inquiry-attempts-max", "2", "--inquiry-escalated-delay-ms", "3600000"],
    );
    assert_eq!(world.topup("funds", 50_000)["status"], json!("succeeded"));
    let maker = world.share(&key(&world, &["ops:read", "ops:write"]));
    let checker = world.share(&key(&world, &["ops:read", "ops:approve"]));
    let (id, task) = unconfirmed_payout(&world, &maker, "unanswered", 1200);
    let request_id = task["request_id"].as_str().expect("request id").to_owned();
    // The bank's evidence: its own record of the payout (its portal, here the simulator's log).
    let paid = world
        .sim
        .operations("bank_a")
        .into_iter()
        .find(|op| op["request_id"] == json!(request_id) && op["status"] == json!("succeeded"))
        .expect("the bank paid it");
    let channel_ref = paid["channel_ref"].as_str().expect("channel ref").to_owned();
    let outcome_path = format!("/v1/ops/inquiries/bank_a/{request_id}/outcome");

    // A first proposal gets the outcome wrong; the checker rejects it, and nothing moves.
    let wrong = maker.ok(
        "POST",
        &outcome_path,
        json!({"result": {"outcome": "failed"}, "evidence": "no record found on the portal",
               "reason": "bank says it never received it", "ticket": "INC-9"}),
    );
    assert_eq!(
        wrong["state"],
        json!("pending_approval"),
        "every action needs a second key: {wrong}"
    );
    let wrong_id = wrong["id"].as_str().expect("action id").to_owned();
    let (status, refused) = maker.call(
        "POST",
        &format!("/v1/ops/actions/{wrong_id}/reject"),
        json!({"reason": "my own"}),
    );
    assert_eq!(status, 403, "a maker holds no ops:approve: {refused}");
    let rejected = checker.ok(
        "POST",
        &format!("/v1/ops/actions/{wrong_id}/reject"),
        json!({"reason": "the statement shows it paid"}),
    );
    assert_eq!(rejected["state"], json!("rejected"), "{rejected}");
    assert_eq!(
        world.ok("GET", &format!("/v1/orders/{id}"), Value::Null)["status"],
        json!("paying")
    );

    // The right one, through the CLI; the maker cannot approve it even with the scope.
    let proposed = qianbao_ops(
        &maker,
        &[
            "outcome",
            "--channel",
            "bank_a",
            "--request-id",
            &request_id,
            "--succeeded",
            "--channel-ref",
            &channel_ref,
            "--evidence",
            &format!("bank_a portal: payout {channel_ref} PAID"),
            "--reason",
            "bank confirmed the payout",
            "--ticket",
            "INC-9",
        ],
    );
    assert!(proposed.contains("pending_approval"), "{proposed}");
    let pending = maker.ok("GET", "/v1/ops/actions?state=pending_approval", Value::Null);
    let action_id = pending["data"][0]["id"].as_str().expect("pending action").to_owned();
    let both = world.share(&key(&world, &["ops:read", "ops:write", "ops:approve"]));
    let (status, own) = both.call(
        "POST",
        &outcome_path,
        json!({"result": {"outcome": "succeeded", "channel_ref": channel_ref, "fee": "3"},
               "evidence": "the portal shows a fee", "reason": "with the fee"}),
    );
    assert_eq!(status, 201, "{own}");
    let own_id = own["id"].as_str().expect("id").to_owned();
    let (status, refused) =
        both.call("POST", &format!("/v1/ops/actions/{own_id}/approve"), json!({"reason": "mine"}));
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (403, json!("approver_is_maker")),
        "{refused}"
    );
    let approved = qianbao_ops(&checker, &["approve", &action_id, "--reason", "statement seen"]);
    assert!(approved.contains("applied"), "{approved}");
    let done = world.wait_final(&id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "completed as the bank did it: {done}");
    assert_eq!(done["state"]["settled"]["channel_ref"], json!(channel_ref), "{done}");
    // The inquiry is answered: the other pending proposal (another fee), approved now,
    // moves nothing.
    let late = checker.ok(
        "POST",
        &format!("/v1/ops/actions/{own_id}/approve"),
        json!({"reason": "duplicate"}),
    );
    assert_eq!(
        (late["state"].clone(), late["failure_code"].clone()),
        (json!("failed"), json!("inquiry_resolved")),
        "{late}"
    );
    let (status, answered) = maker.call(
        "POST",
        &outcome_path,
        json!({"result": {"outcome": "failed"}, "evidence": "x", "reason": "y"}),
    );
    assert_eq!((status, answered["error"]["code"].clone()), (409, json!("inquiry_resolved")));
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");

    // Every step is in the audit log, in order, and the chain verifies.
    let exported = qianbao_ops(&maker, &["audit"]);
    let trail: Vec<(String, String)> = exported
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|entry| entry["action"].as_str().is_some_and(|a| a.starts_with("action.")))
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or("").to_owned(),
                entry["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let step = |what: &str, id: &str| (what.to_owned(), id.to_owned());
    assert_eq!(
        trail,
        [
            step("action.propose", &wrong_id),
            step("action.reject", &wrong_id),
            step("action.propose", &action_id),
            step("action.propose", &own_id),
            step("action.approve", &action_id),
            step("action.apply", &action_id),
            step("action.approve", &own_id),
            step("action.fail", &own_id),
        ]
    );
    assert!(exported.contains("\"key.create\""), "the keys made are audited too");
    let verified = qianbao_ops(&maker, &["audit", "--verify"]);
    assert!(verified.contains("audit log verified"), "{verified}");
}
