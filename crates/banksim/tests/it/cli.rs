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

#[tokio::test]
async fn sigterm_stops_the_server() {
    let mut sim = Sim::start().await;
    let status = Command::new("kill").args(["-TERM", &sim.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = sim.wait_exit(Duration::from_secs(5)).expect("stopped within 5 s");
    assert!(exit.success(), "{exit:?}");
}
