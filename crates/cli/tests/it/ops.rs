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

fn qianbao_ops(ops: &World, args: &[&str]) -> String {
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
    world.sim.faults(
        "bank_a",
        json!({"payout": {"lost_response_rate": 1.0, "hold_ms": 50},
               "query": {"timeout_rate": 1.0, "hold_ms": 50}}),
    );
    let withdrawal = world.ok(
        "POST",
        "/v1/withdrawals",
        json!({"reference": "stuck", "customer": "alice", "bank_account": CARD,
               "asset": "CNY", "amount": "1000"}),
    );
    let id = withdrawal["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        if let Some(task) = escalated(&ops).into_iter().find(|t| t["owner"] == json!(id)) {
            break task;
        }
        assert!(Instant::now() < deadline, "the inquiry was never escalated");
        std::thread::sleep(Duration::from_millis(200));
    };
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
