//! `qianbao loadtest` against a running service, briefly and at small rates (the capacity
//! runs are in docs/capacity.md): with a test key, on the test book and its simulator, it
//! sets up its parties, drives the product mix through the typed client, writes the JSON
//! and HTML reports with a knee, and its fund-safety check passes: the test book balances
//! and the live journal did not move. Afterwards our records equal the bank's.

use std::process::Command;

use serde_json::Value;

use crate::payments::World;
use crate::test_mode::Books;

const SCENARIO: &str = r#"
name = "ci-smoke"
seed = 3
warmup_s = 0

[slo]
p99_ms = 2000

[steps]
duration_s = 2
arrivals = "even"
rates_per_s = [10, 20]

[mix]
topup = 10
wallet_payment = 30
points_cash_payment = 5
card_payment = 5
refund = 5
wallet_transfer = 15
withdrawal = 5
read_order = 10
read_balance = 15

[parties]
n_customers = 6
n_merchants = 2
hot_merchant_share_permille = 500
zipf_exponent = "1.0"
"#;

/// Runs `qianbao loadtest` with `scenario` (TOML text) against `world`, plus `extra` flags:
/// what it printed, its JSON report, and the report's directory (kept while `_dir` lives).
fn load(world: &World, scenario: &str, extra: &[&str]) -> (String, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario).expect("scenario");
    let out = dir.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .arg("loadtest")
        .arg("--scenario")
        .arg(&path)
        .args(["--url", &format!("http://{}", world.addr()), "--key", world.key()])
        .args(["--fund-minor", "50000"])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("qianbao loadtest");
    let printed = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{printed}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("json"))
            .expect("a JSON report");
    (printed, report, dir)
}

#[test]
fn a_short_load_run_reports_its_knee_and_moves_money_exactly() {
    let books = Books::start(&["bank_a"], &[]);
    let world = &books.test;
    let (printed, report, dir) = load(world, SCENARIO, &["--live-key", books.live.key()]);
    assert!(printed.contains("knee: step 2 at 20/s"), "{printed}");
    assert!(printed.contains("Fund-safety check passed: the test book balances"), "{printed}");
    assert!(printed.contains("the live journal is where it was"), "{printed}");
    assert_eq!(report["fund_check"]["book"], "test", "{report}");
    // Every write of the two steps and the warm-up made an order, and each is final.
    let acknowledged = report["fund_check"]["orders_acknowledged"].as_u64().expect("acked");
    assert!(acknowledged > 0, "{report}");
    assert!(
        printed.contains(&format!("all {acknowledged} acknowledged orders are final")),
        "{printed}"
    );
    assert_eq!(report["fund_check"]["orders_not_final_n"], 0, "{report}");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    for step in steps {
        let all = &step["all"];
        assert_eq!(all["n_errors_by_code"], serde_json::json!({}), "{step}");
        let offered = step["offered_per_s"].as_u64().expect("offered");
        assert_eq!(all["n_ok"].as_u64(), Some(offered * 2), "every request answered: {step}");
    }
    let html = std::fs::read_to_string(dir.path().join("report/report.html")).expect("html");
    assert_eq!(html.matches("<svg").count(), 3, "three plots");
    assert!(html.contains("Fund-safety check passed"), "the check is in the report");
    assert!(!html.contains("<script"), "self-contained, no script");

    // Fund safety after the run: every asset balances, nothing is held, and what we booked
    // at the bank is what the bank did.
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// A scenario's channel profile is played on the simulator for the run and cleared after:
/// top-ups through a channel 150 ms slow take at least that long; reads do not.
#[test]
fn a_channel_profile_is_played_on_the_simulator_for_the_run() {
    let books = Books::start(&["bank_a"], &[]);
    let world = &books.test;
    let banksim = format!("http://{}", world.sim.base);
    let (printed, report, _dir) = load(
        world,
        r#"
name = "ci-profile"
seed = 5
warmup_s = 0
[slo]
p99_ms = 2000
[steps]
duration_s = 2
arrivals = "even"
rates_per_s = [10]
[mix]
topup = 1
read_balance = 1
[parties]
n_customers = 3
n_merchants = 1
hot_merchant_share_permille = 0
zipf_exponent = "0"
[channels.bank_a]
latency = { kind = "fixed", ms = 150 }
"#,
        &["--banksim-url", &banksim],
    );
    assert!(printed.contains("profiles played on the simulator: 1"), "{printed}");
    let step = &report["steps"][0]["by_operation"];
    let p50 = |operation: &str| step[operation]["latency_us_p50"].as_u64().expect("p50");
    assert!(p50("topup") >= 150_000, "through the slow channel: {step}");
    assert!(p50("read_balance") < 150_000, "reads never touch it: {step}");
    // Cleared after the run: the channel answers at once again.
    let faults = world.sim.call("GET", "/admin/channels/bank_a/faults", Value::Null);
    assert_eq!(faults["debit"]["latency"]["base_ms"], serde_json::json!(0), "{faults}");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// A live key is refused: a load run with it would move real money (unless `--live`).
#[test]
fn a_live_key_is_refused_without_live() {
    let world = World::start(&["bank_a"], &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, SCENARIO).expect("scenario");
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .args(["loadtest", "--scenario"])
        .arg(&path)
        .args(["--url", &format!("http://{}", world.addr()), "--key", world.key()])
        .output()
        .expect("qianbao loadtest");
    let printed = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("not a test key"), "{printed}");
    // Nothing was set up in the live book.
    let (status, _) = world.call("GET", "/v1/customers/lt_c0", Value::Null);
    assert_eq!(status, 404);
}
