//! Daily statement files: the succeeded operations of one UTC day, with their fees.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use crate::harness::{refund_body, Sim};

const HEADER: &str =
    "request_id,channel_ref,operation,account,amount_minor,fee_minor,currency,status,completed_at,original_request_id";

async fn statement(sim: &Sim, date: &str) -> (u16, String) {
    let path = format!("/channels/bank_a/statements/{date}");
    let response = sim.signed(Method::GET, &path, None).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn statements_list_succeeded_operations_with_fees() {
    let sim = Sim::start().await;
    sim.open_account("bank_a", "c1", 100_000).await;
    sim.debit("d1", "c1", 12_345).await.unwrap();
    let payout =
        json!({ "request_id": "p1", "account": "c1", "amount_minor": "5000", "currency": "CNY" });
    sim.post_op("payouts", payout).await.unwrap();
    sim.post_op("refunds", refund_body("r1", "d1", 2_000)).await.unwrap();
    let (_, failed) = sim.debit("d-failed", "c1", 1_000_000).await.unwrap();
    assert_eq!(failed["status"], "failed");
    sim.set_faults(
        "bank_a",
        json!({ "debit": { "late_success_rate": 1.0, "late_delay_ms": 60000 } }),
    )
    .await;
    sim.debit("d-processing", "c1", 10).await.unwrap();

    // Group by the day each operation completed, so the test also holds across midnight.
    let mut lines_by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for op in sim.operations("bank_a").await {
        if op["status"] == "succeeded" {
            let completed_at = op["completed_at"].as_str().unwrap().to_owned();
            let original = op["debit_request_id"].as_str().unwrap_or("");
            let line = format!(
                "{},{},{},{},{},{},CNY,succeeded,{},{}",
                op["request_id"].as_str().unwrap(),
                op["channel_ref"].as_str().unwrap(),
                op["operation"].as_str().unwrap(),
                op["account"].as_str().unwrap(),
                op["amount_minor"].as_str().unwrap(),
                op["fee_minor"].as_str().unwrap(),
                completed_at,
                original,
            );
            lines_by_day.entry(completed_at[..10].to_owned()).or_default().push(line);
        }
    }
    let mut fees_on_statements = 0;
    let mut n_lines = 0;
    for (date, lines) in &lines_by_day {
        let (status, csv) = statement(&sim, date).await;
        assert_eq!(status, 200);
        let mut expected = vec![HEADER.to_owned()];
        expected.extend(lines.iter().cloned());
        assert_eq!(csv.lines().collect::<Vec<_>>(), expected);
        for line in csv.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 10);
            fees_on_statements += fields[5].parse::<u64>().unwrap();
            n_lines += 1;
        }
    }
    assert_eq!(n_lines, 3, "the failed and the processing operation are not on a statement");
    assert_eq!(fees_on_statements, 41 + 100 + 5);
    assert_eq!(fees_on_statements, sim.books("bank_a").await.fee_income_minor);
    let refund_line = lines_by_day.values().flatten().find(|l| l.starts_with("r1,")).unwrap();
    assert!(refund_line.ends_with(",d1"), "{refund_line}");

    let (status, csv) = statement(&sim, "2001-01-01").await;
    assert_eq!((status, csv.as_str()), (200, format!("{HEADER}\n").as_str()));
    assert_eq!(statement(&sim, "2001-13-01").await.0, 400);
    let unsigned =
        sim.client.get(format!("{}/channels/bank_a/statements/2001-01-01", sim.base)).send().await;
    assert_eq!(unsigned.unwrap().status(), 401);
}
