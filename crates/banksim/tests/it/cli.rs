//! The command line: flags over the file, and SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{test_config, Sim};

#[tokio::test]
async fn set_flags_override_the_config_file() {
    let sets = [
        "--set",
        "channels.bank_a.fees.debit.fixed_minor=99",
        "--set",
        "channels.bank_a.currency=USD",
    ];
    let sim = Sim::start_args(test_config(), 1, &sets).await;
    sim.open_account("bank_a", "c1", 10_000).await;
    let usd =
        json!({ "request_id": "d1", "account": "c1", "amount_minor": "1000", "currency": "USD" });
    let (_, debit) = sim.post_op("debits", usd).await.unwrap();
    // 99 fixed + 1 000 * 25 bp = 2.5, rounded up: 3.
    assert_eq!((&debit["status"], &debit["fee_minor"]), (&json!("succeeded"), &json!("102")));
    assert_eq!(debit["currency"], "USD");
}

#[test]
fn faults_are_set_from_the_command_line() {
    // `config` prints what `serve` would run with (`serve` in the tests adds `--no-faults`,
    // which clears every fault after the `--set`s).
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao-banksim"))
        .args(["config", "--set", "channels.bank_a.faults.capacity_per_s=100"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["channels"]["bank_a"]["faults"]["capacity_per_s"], 100);
    assert_eq!(config["channels"]["bank_b"]["faults"]["capacity_per_s"], serde_json::Value::Null);

    let refused = Command::new(env!("CARGO_BIN_EXE_qianbao-banksim"))
        .args(["config", "--set", "channels.bank_a.faults.capacity_per_s=0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("capacity_per_s must be at least 1"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_the_server() {
    let mut sim = Sim::start().await;
    let status = Command::new("kill").args(["-TERM", &sim.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = sim.wait_exit(Duration::from_secs(5)).expect("stopped within 5 s");
    assert!(exit.success(), "{exit:?}");
}
