//! Run-time switches (开关) and contingency plans (预案) on a running `qianbao serve`: a kill
//! switch refuses its product at once with `switched_off` and is rolled back; an expiring one
//! turns itself off; a degradation sheds history reads; the `channel_down` plan routes around
//! a channel and is rolled back — every change versioned and in the audit log.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::ops::qianbao_ops;
use crate::payments::{postgres_url, World, CARD};
use crate::recon::key;

fn set(ops: &World, target: Value, on: bool, extra: Value) -> Value {
    let mut body = json!({"target": target, "on": on, "reason": "drill", "ticket": "CHG-1"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    ops.ok("POST", "/v1/ops/switches", body)["data"][0].clone()
}

fn withdraw(world: &World, reference: &str) -> (u16, Value) {
    world.call(
        "POST",
        "/v1/withdrawals",
        json!({"reference": reference, "customer": "alice", "bank_account": CARD,
               "asset": "CNY", "amount": "100"}),
    )
}

#[test]
fn switches_and_plans_are_obeyed_rolled_back_and_audited() {
    let world = World::start(&["bank_a", "bank_b"], &[]);
    assert_eq!(world.topup("funds", 50_000)["status"], json!("succeeded"));
    let ops = world.share(&key(&world, &["ops:read", "ops:write"]));
    let viewer = world.share(&key(&world, &["ops:read"]));
    let kill = json!({"switch": "kill_product", "product": "withdrawal"});
    let (status, _) = viewer.call(
        "POST",
        "/v1/ops/switches",
        json!({"target": kill, "on": true, "reason": "drill"}),
    );
    assert_eq!(status, 403, "a viewer reads switches, never sets them");

    // Kill withdrawals: refused at once on this node, with a clear code; top-ups go on.
    let killed = set(&ops, kill.clone(), true, json!({}));
    assert_eq!(
        (killed["key"].clone(), killed["in_force"].clone(), killed["version"].clone()),
        (json!("kill/product:withdrawal"), json!(true), json!(1))
    );
    let (status, refused) = withdraw(&world, "wd-killed");
    assert_eq!((status, refused["error"]["code"].clone()), (503, json!("switched_off")));
    assert_eq!(world.topup("during", 1_000)["status"], json!("succeeded"));
    let (_, metrics) =
        crate::serve::request(world.addr(), "GET", "/metrics", "", "").expect("metrics");
    assert!(
        metrics.contains("qianbao_switch_in_force{switch=\"kill/product:withdrawal\"} 1"),
        "{metrics}"
    );
    // A change made on a version other than the one its operator saw is refused: no one
    // overwrites (or rolls back) a change they have not seen.
    for (path, body) in [
        (
            "/v1/ops/switches",
            json!({"target": kill, "on": false, "expected_version": 0, "reason": "stale"}),
        ),
        (
            "/v1/ops/switches/rollback",
            json!({"target": kill, "expected_version": 2, "reason": "stale"}),
        ),
    ] {
        let (status, stale) = ops.call("POST", path, body);
        assert_eq!(
            (status, stale["error"]["code"].clone()),
            (409, json!("switch_contended")),
            "{stale}"
        );
    }
    // Rolled back: its previous state (none: off), as version 2.
    let back = ops.ok(
        "POST",
        "/v1/ops/switches/rollback",
        json!({"target": kill, "expected_version": 1, "reason": "drill over"}),
    )["data"][0]
        .clone();
    assert_eq!((back["on"].clone(), back["version"].clone()), (json!(false), json!(2)));
    let (status, placed) = withdraw(&world, "wd-after");
    assert_eq!(status, 201, "{placed}");
    let versions =
        ops.ok("GET", "/v1/ops/switches/versions?key=kill/product:withdrawal", Value::Null);
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(2), "{versions}");

    // A channel's terms from switches: the fee rate routing weighs and its breaker's
    // threshold, in force on the node within seconds, and back to the configured ones when
    // rolled back.
    let terms = |name: &str| -> (Value, Value, Value) {
        let overview = ops.ok("GET", "/v1/ops/overview", Value::Null);
        let channel = overview["channels"]
            .as_array()
            .and_then(|channels| channels.iter().find(|c| c["channel"] == json!(name)).cloned())
            .expect("the channel");
        (
            channel["fee_bps"].clone(),
            channel["breaker_error_permille_open"].clone(),
            channel["rate_per_sec"].clone(),
        )
    };
    let configured = terms("bank_a");
    let fee = json!({"switch": "channel_fee", "channel": "bank_a"});
    let breaker = json!({"switch": "channel_breaker_errors", "channel": "bank_a"});
    let rate = json!({"switch": "channel_rate_limit", "channel": "bank_a"});
    set(&ops, fee.clone(), true, json!({"value": 250}));
    set(&ops, breaker.clone(), true, json!({"value": 150}));
    set(&ops, rate.clone(), true, json!({"value": 40}));
    let started = Instant::now();
    while terms("bank_a") != (json!(250), json!(150), json!(40)) {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", terms("bank_a"));
        std::thread::sleep(Duration::from_millis(100));
    }
    for target in [fee, breaker, rate] {
        ops.ok("POST", "/v1/ops/switches/rollback", json!({"target": target, "reason": "done"}));
    }
    let started = Instant::now();
    while terms("bank_a") != configured {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", terms("bank_a"));
        std::thread::sleep(Duration::from_millis(100));
    }

    // A merchant switched off: no new payment to it (the serve loop tells the payment core
    // within a second); its customers' top-ups go on. Rolled back, it takes payments again.
    let shop = json!({"switch": "kill_merchant", "tenant": "platform", "merchant": "shop"});
    set(&ops, shop.clone(), true, json!({}));
    let pay = |reference: &str| {
        world.call(
            "POST",
            "/v1/payments",
            json!({"reference": reference, "customer": "alice", "merchant": "shop",
                   "asset": "CNY", "amount": "100"}),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let (status, answer) = pay("pay-killed");
        if status == 503 {
            break answer;
        }
        assert!(Instant::now() < deadline, "the merchant was never switched off: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused["error"]["code"], json!("switched_off"), "{refused}");
    ops.ok("POST", "/v1/ops/switches/rollback", json!({"target": shop, "reason": "cleared"}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pay("pay-cleared").0 != 201 {
        assert!(Instant::now() < deadline, "the merchant was never switched back on");
        std::thread::sleep(Duration::from_millis(100));
    }

    // An expiring switch turns itself off (the serve loop reverts it and audits it).
    set(&ops, json!({"switch": "history_reads_off"}), true, json!({"expires_in_ms": 1500}));
    let (status, shed) = world.call("GET", "/v1/orders", Value::Null);
    assert_eq!((status, shed["error"]["code"].clone()), (503, json!("degraded")));
    let one =
        world.ok("GET", &format!("/v1/orders/{}", placed["id"].as_str().expect("id")), Value::Null);
    assert_eq!(one["kind"], json!("withdrawal"), "a single read is not history");
    let deadline = Instant::now() + Duration::from_secs(15);
    while world.call("GET", "/v1/orders", Value::Null).0 != 200 {
        assert!(Instant::now() < deadline, "the expired switch never turned off");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The plan for a channel down: nothing new goes to bank_a; rolled back, it may again.
    let run = ops.ok(
        "POST",
        "/v1/ops/plans/channel_down/run",
        json!({"channel": "bank_a", "reason": "bank_a maintenance", "ticket": "INC-2"}),
    );
    assert_eq!(run["data"][0]["key"], json!("route/disabled:bank_a"), "{run}");
    assert_eq!(run["data"][0]["plan"], json!("channel_down"), "{run}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ops.ok("GET", "/v1/ops/switches", Value::Null);
        let on =
            status["data"].as_array().expect("switches").iter().any(|s| {
                s["key"] == json!("route/disabled:bank_a") && s["in_force"] == json!(true)
            });
        // The serve loop applies routes within a second; give it two.
        if on {
            std::thread::sleep(Duration::from_millis(2_000));
            break;
        }
        assert!(Instant::now() < deadline);
    }
    for n in 0..5 {
        let topup = world.topup(&format!("routed-{n}"), 1_000);
        assert_eq!(topup["state"]["channel"], json!("bank_b"), "{topup}");
    }
    let rolled = ops.ok(
        "POST",
        "/v1/ops/plans/channel_down/rollback",
        json!({"channel": "bank_a", "reason": "bank_a is back"}),
    );
    assert_eq!(rolled["data"][0]["on"], json!(false), "{rolled}");
    let (status, missing) =
        ops.call("POST", "/v1/ops/plans/channel_down/run", json!({"reason": "no channel"}));
    assert_eq!((status, missing["error"]["code"].clone()), (422, json!("channel_needed")));
    let plans = ops.ok("GET", "/v1/ops/plans", Value::Null);
    assert_eq!(plans["data"].as_array().map(Vec::len), Some(4), "{plans}");
    // From a shell: the database is slow — shed bulk and history reads, hold webhooks.
    let run = qianbao_ops(&ops, &["plan", "run", "database_slow", "--reason", "db p99 up"]);
    for key in ["degrade/bulk", "degrade/history_reads", "degrade/webhooks"] {
        assert!(run.contains(key), "{run}");
    }
    let (status, _) = world.call("GET", "/v1/orders", Value::Null);
    assert_eq!(status, 503, "history reads shed");
    qianbao_ops(&ops, &["plan", "rollback", "database_slow", "--reason", "db recovered"]);
    assert_eq!(world.call("GET", "/v1/orders", Value::Null).0, 200);
    let listed = qianbao_ops(&ops, &["switches"]);
    assert!(listed.contains("route/disabled:bank_a"), "{listed}");

    // Every change is in the audit chain, which verifies.
    let audit = ops.ok("GET", "/v1/ops/audit?limit=500", Value::Null);
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .filter(|action| !action.starts_with("key."))
        .collect();
    // The edge stops obeying an expired switch at once; the serve loop records the revert
    // within a second, so it may come before or after the plan's run.
    let expired = actions.iter().filter(|action| **action == "switch.expire").count();
    assert_eq!(expired, 1, "{actions:?}");
    let others: Vec<&str> = actions.into_iter().filter(|a| *a != "switch.expire").collect();
    assert_eq!(
        others,
        [
            "switch.set",
            "switch.rollback",
            // The channel's terms: fee, breaker and rate limit set, then rolled back.
            "switch.set",
            "switch.set",
            "switch.set",
            "switch.rollback",
            "switch.rollback",
            "switch.rollback",
            "switch.set",
            "switch.rollback",
            "switch.set",
            "plan.run",
            "plan.rollback",
            "plan.run",
            "plan.rollback"
        ]
    );
    assert_eq!(ops.ok("GET", "/v1/ops/audit/verify", Value::Null)["ok"], json!(true));
    world.assert_balanced();
}

/// Two nodes on one PostgreSQL: a switch set through one is obeyed by the other within
/// seconds, and rolled back through the other, the first obeys that too.
#[test]
fn a_switch_set_through_one_node_is_obeyed_by_another_within_seconds() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_switches_{}", std::process::id());
    let first = World::start(&["bank_a"], &["--database-url", &url, "--database-schema", &schema]);
    let second = first.another_node();
    let ops = first.share(&key(&first, &["ops:read", "ops:write"]));
    let topup = |world: &World, reference: &str| {
        world.call(
            "POST",
            "/v1/topups",
            json!({"reference": reference, "customer": "alice", "card": CARD,
                   "asset": "CNY", "amount": "100"}),
        )
    };
    assert_eq!(topup(&second, "before").0, 201);
    let kill = json!({"switch": "kill_product", "product": "topup"});
    set(&ops, kill.clone(), true, json!({}));
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let (status, answer) = topup(&second, &format!("during-{n}"));
        if status == 503 {
            assert_eq!(answer["error"]["code"], json!("switched_off"), "{answer}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the second node never obeyed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rolled back through the second node: the first obeys within seconds too.
    let on_second = second.share(ops.key());
    on_second.ok("POST", "/v1/ops/switches/rollback", json!({"target": kill, "reason": "over"}));
    let started = Instant::now();
    while topup(&first, &format!("after-{}", started.elapsed().as_millis())).0 != 201 {
        assert!(started.elapsed() < Duration::from_secs(5), "the first node never obeyed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // An exchange rate set through one node prices payments on the other within seconds,
    // and is in the audit log.
    first.ok(
        "PUT",
        "/v1/fx-rates",
        json!({"asset": "USD", "funding": "CNY", "rate": "7.25", "reason": "morning fixing"}),
    );
    let started = Instant::now();
    loop {
        let rates = second.ok("GET", "/v1/fx-rates", Value::Null);
        if rates["data"].as_array().is_some_and(|all| {
            all.iter().any(|r| r["asset"] == json!("USD") && r["rate"] == json!("7.25"))
        }) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the rate never reached node 2");
        std::thread::sleep(Duration::from_millis(100));
    }
    let audit = ops.ok("GET", "/v1/ops/audit?limit=500", Value::Null);
    let set =
        audit["data"].as_array().expect("entries").iter().any(|entry| {
            entry["action"] == json!("fx.set") && entry["subject"] == json!("USD/CNY")
        });
    assert!(set, "{audit}");
    drop((second, first));
    crate::payments::drop_schemas(&url, &schema);
}

/// Payouts frozen on the only channel (the `recon_shortfall` plan): a withdrawal waits with
/// its money held — never failed for it — and is paid once the freeze is rolled back.
#[test]
fn a_payout_waits_while_its_channel_is_frozen_and_goes_once_it_thaws() {
    let world = World::start(&["bank_a"], &["--inspect-after-ms", "0"]);
    assert_eq!(world.topup("funds", 10_000)["status"], json!("succeeded"));
    let ops = world.share(&key(&world, &["ops:read", "ops:write"]));
    ops.ok(
        "POST",
        "/v1/ops/plans/recon_shortfall/run",
        json!({"channel": "bank_a", "reason": "shortfall on bank_a"}),
    );
    std::thread::sleep(Duration::from_millis(1_500)); // every node obeys within a second
    let (status, placed) = withdraw(&world, "wd-frozen");
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().expect("id").to_owned();
    world.ok("POST", "/v1/inspection", Value::Null);
    let held = world.ok("GET", &format!("/v1/orders/{id}"), Value::Null);
    assert_eq!(held["status"], json!("held"), "waits with the money held: {held}");
    ops.ok(
        "POST",
        "/v1/ops/plans/recon_shortfall/rollback",
        json!({"channel": "bank_a", "reason": "breaks resolved"}),
    );
    std::thread::sleep(Duration::from_millis(1_500));
    world.ok("POST", "/v1/inspection", Value::Null);
    let done = world.wait_final(&id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    world.assert_balanced();
}
