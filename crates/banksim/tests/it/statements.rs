//! Daily bills (对账单) in the platform's statement format: the succeeded operations of one
//! business day (days turning at midnight UTC+08:00 unless configured otherwise), with summary
//! rows and the SHA-256 published beside the file; and the statement faults, each of which
//! makes exactly its own difference against the operation log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use channels::banksim::{SimulatorChannel, SimulatorChannelConfig};
use channels::{Channel, ChannelError, ChannelId};
use money::AssetCode;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{refund_body, test_config, Sim, SECRET_A};

const HEADER: &str =
    "record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count";
const MS_PER_DAY: i64 = 86_400_000;
const SHANGHAI_MINUTES: i64 = 480;

/// A fetched bill: HTTP status, the published digest, the file.
struct Bill {
    status: u16,
    sha256_hex: Option<String>,
    csv: String,
}

impl Bill {
    fn details(&self) -> Vec<&str> {
        self.csv.lines().filter(|line| line.starts_with("detail,")).collect()
    }

    /// Parsed by the platform's parser, against the published digest.
    fn parse(&self) -> Result<recon::Statement, recon::StatementError> {
        recon::statement::parse(self.csv.as_bytes(), self.sha256_hex.as_deref(), &[cny()])
    }
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap()
}

async fn bill(sim: &Sim, date: &str) -> Bill {
    let path = format!("/channels/bank_a/statements/{date}");
    let response = sim.signed(Method::GET, &path, None).await.unwrap();
    let sha256_hex = response
        .headers()
        .get("x-banksim-statement-sha256")
        .map(|value| value.to_str().unwrap().to_owned());
    Bill { status: response.status().as_u16(), sha256_hex, csv: response.text().await.unwrap() }
}

fn unix_ms(rfc3339: &str) -> i64 {
    let at = humantime::parse_rfc3339(rfc3339).unwrap();
    i64::try_from(at.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The business day (days since the epoch) of an instant, days turning at local midnight.
pub fn business_day(unix_ms: i64, utc_offset_minutes: i64) -> i64 {
    (unix_ms + utc_offset_minutes * 60_000).div_euclid(MS_PER_DAY)
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: i64) -> String {
    let midnight = UNIX_EPOCH + Duration::from_secs(u64::try_from(day * 86_400).unwrap());
    humantime::format_rfc3339(midnight).to_string()[..10].to_owned()
}

/// One succeeded operation of the log, as its detail row should read.
#[derive(Debug, Clone)]
struct Row {
    request_id: String,
    channel_ref: String,
    kind: String,
    amount: u64,
    fee: u64,
    booked_at_ms: i64,
}

impl Row {
    fn line(&self) -> String {
        let Row { request_id, channel_ref, kind, amount, fee, booked_at_ms } = self;
        format!(
            "detail,{request_id},{channel_ref},{kind},{amount},{fee},CNY,{booked_at_ms},succeeded,"
        )
    }
}

/// A fault's bill of a day, from the clean rows of that day and of the day before.
type Expected = fn(today: &[Row], yesterday: &[Row]) -> Vec<Row>;

/// The operation log's succeeded operations by business day, in completion order.
fn rows_by_day(operations: &[Value], utc_offset_minutes: i64) -> BTreeMap<i64, Vec<Row>> {
    let mut days: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
    for op in operations.iter().filter(|op| op["status"] == "succeeded") {
        let text = |key: &str| op[key].as_str().unwrap().to_owned();
        let row = Row {
            request_id: text("request_id"),
            channel_ref: text("channel_ref"),
            kind: text("operation"),
            amount: text("amount_minor").parse().unwrap(),
            fee: text("fee_minor").parse().unwrap(),
            booked_at_ms: unix_ms(&text("completed_at")),
        };
        days.entry(business_day(row.booked_at_ms, utc_offset_minutes)).or_default().push(row);
    }
    for rows in days.values_mut() {
        // Channel references are zero-padded log positions: they order ties.
        rows.sort_by(|a, b| {
            (a.booked_at_ms, &a.channel_ref).cmp(&(b.booked_at_ms, &b.channel_ref))
        });
    }
    days
}

/// The summary rows of detail rows: per type, sum of amounts and fees, and count.
fn summaries(rows: &[Row]) -> Vec<String> {
    let mut totals: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for row in rows {
        let total = totals.entry(row.kind.as_str()).or_default();
        *total = (total.0 + row.amount, total.1 + row.fee, total.2 + 1);
    }
    totals
        .into_iter()
        .map(|(kind, (amount, fee, count))| {
            format!("summary,,,{kind},{amount},{fee},CNY,,,{count}")
        })
        .collect()
}

fn file(rows: &[Row]) -> String {
    let mut lines = vec![HEADER.to_owned()];
    lines.extend(rows.iter().map(Row::line));
    lines.extend(summaries(rows));
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// A debit, a payout, a refund, a failed debit and a processing one on bank_a.
async fn a_day_of_business(sim: &Sim) {
    sim.open_account("bank_a", "c1", 100_000).await;
    sim.debit("d1", "c1", 12_345).await.unwrap();
    sim.debit("d2", "c1", 700).await.unwrap();
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
    sim.set_faults("bank_a", json!({})).await;
}

#[tokio::test]
async fn bills_list_succeeded_operations_with_summaries_and_digest() {
    let sim = Sim::start().await;
    a_day_of_business(&sim).await;
    let days = rows_by_day(&sim.operations("bank_a").await, SHANGHAI_MINUTES);
    let mut fees_on_bills = 0;
    let mut n_details = 0;
    for (day, rows) in &days {
        let bill = bill(&sim, &date(*day)).await;
        assert_eq!(bill.status, 200);
        assert_eq!(bill.csv, file(rows), "the bill of {}", date(*day));
        let digest = hex::encode(Sha256::digest(bill.csv.as_bytes()));
        assert_eq!(bill.sha256_hex.as_deref(), Some(digest.as_str()));
        let statement = bill.parse().unwrap();
        assert_eq!(statement.details.len(), rows.len());
        fees_on_bills += statement.details.iter().map(|line| line.fee.minor()).sum::<u64>();
        n_details += statement.details.len();
    }
    assert_eq!(n_details, 4, "the failed and the processing operation are not on a bill");
    assert_eq!(fees_on_bills, (10 + 31) + (10 + 2) + 100 + 5);
    assert_eq!(fees_on_bills, sim.books("bank_a").await.fee_income_minor);

    let empty = bill(&sim, "2001-01-01").await;
    assert_eq!((empty.status, empty.csv.as_str()), (200, format!("{HEADER}\n").as_str()));
    assert!(empty.parse().unwrap().details.is_empty());
    assert_eq!(bill(&sim, "2001-13-01").await.status, 400);
    let unsigned =
        sim.client.get(format!("{}/channels/bank_a/statements/2001-01-01", sim.base)).send().await;
    assert_eq!(unsigned.unwrap().status(), 401);
}

/// Rate 1.0 of one fault at a time: every row shows that fault and nothing else.
#[tokio::test]
async fn each_statement_fault_makes_exactly_its_difference() {
    // UTC+14:00, so that this test also proves the configured offset is the one used.
    const OFFSET_MINUTES: i64 = 840;
    let mut config = test_config();
    config["statement_utc_offset_minutes"] = json!(OFFSET_MINUTES);
    let sim = Sim::start_with(config, 42).await;
    a_day_of_business(&sim).await;
    let operations = sim.operations("bank_a").await;
    let days = rows_by_day(&operations, OFFSET_MINUTES);
    // Every day with rows, and the one after (where moved rows go).
    let bill_days: BTreeSet<i64> = days.keys().flat_map(|day| [*day, day + 1]).collect();
    let clean = |day: i64| days.get(&day).cloned().unwrap_or_default();
    let ids_in_log: BTreeSet<String> = operations
        .iter()
        .flat_map(|op| [op["request_id"].as_str(), op["channel_ref"].as_str()])
        .map(|id| id.unwrap().to_owned())
        .collect();
    // 26 hours apart, UTC-12:00 and UTC+14:00 never share a date: a bill under the wrong
    // offset would list nothing on the day the log says.
    let first_ms = clean(*days.keys().next().unwrap())[0].booked_at_ms;
    let wrong_day = business_day(first_ms, -720);
    assert!(!days.contains_key(&wrong_day));
    assert!(bill(&sim, &date(wrong_day)).await.details().is_empty());

    let with_fault = |fault: &str, rate: Value| json!({ "statement": { fault: rate } });
    let cases: [(&str, Expected); 5] = [
        ("missing_rate", |_, _| Vec::new()),
        ("amount_rate", |today, _| {
            today.iter().map(|r| Row { amount: r.amount + 1, ..r.clone() }).collect()
        }),
        ("fee_rate", |today, _| {
            today.iter().map(|r| Row { fee: r.fee + 1, ..r.clone() }).collect()
        }),
        ("duplicate_rate", |today, _| today.iter().flat_map(|r| [r.clone(), r.clone()]).collect()),
        // A row moves to the next day's bill: today's bill holds yesterday's rows.
        ("next_day_rate", |_, yesterday| yesterday.to_vec()),
    ];
    for (fault, expected) in cases {
        sim.set_faults("bank_a", with_fault(fault, json!(1.0))).await;
        for day in &bill_days {
            let bill = bill(&sim, &date(*day)).await;
            let rows = expected(&clean(*day), &clean(day - 1));
            assert_eq!(bill.csv, file(&rows), "{fault} on {}", date(*day));
            bill.parse().unwrap_or_else(|error| panic!("{fault}: {error}"));
        }
    }

    // An extra row after each row: a success with fresh ids, the rest copied.
    sim.set_faults("bank_a", with_fault("extra_rate", json!(1.0))).await;
    let mut extra_ids = BTreeSet::new();
    for day in &bill_days {
        let bill = bill(&sim, &date(*day)).await;
        let details = bill.details();
        let rows = clean(*day);
        assert_eq!(details.len(), 2 * rows.len());
        for (pair, row) in details.chunks(2).zip(&rows) {
            assert_eq!(pair[0], row.line());
            let extra: Vec<&str> = pair[1].split(',').collect();
            assert_eq!(extra[3..], row.line().split(',').collect::<Vec<_>>()[3..]);
            for id in &extra[1..3] {
                assert!(!ids_in_log.contains(*id) && extra_ids.insert(id.to_string()), "{id}");
            }
        }
        let statement = bill.parse().unwrap();
        let n_debits = statement.summaries.get(&(recon::TxType::Debit, cny())).map(|s| s.0);
        let n_clean_debits = rows.iter().filter(|row| row.kind == "debit").count() as u64;
        assert_eq!(n_debits.unwrap_or(0), 2 * n_clean_debits, "summaries count the extra rows");
    }

    // The same seed and log print the same bill: two draws at rate one half agree.
    sim.set_faults("bank_a", json!({ "statement": { "missing_rate": 0.5, "fee_rate": 0.5 } }))
        .await;
    for day in &bill_days {
        assert_eq!(bill(&sim, &date(*day)).await.csv, bill(&sim, &date(*day)).await.csv);
    }

    // A bad checksum: the file is the clean one, the digest is not its own, and the adapter
    // refuses the bill whole.
    let adapter = SimulatorChannel::new(SimulatorChannelConfig {
        id: ChannelId::new("bank_a").unwrap(),
        base_url: sim.base.clone(),
        secret: SECRET_A.into(),
        timeout_ms: 5_000,
    })
    .unwrap();
    sim.set_faults("bank_a", json!({ "statement": { "bad_checksum": true } })).await;
    for day in &bill_days {
        let bill = bill(&sim, &date(*day)).await;
        assert_eq!(bill.csv, file(&clean(*day)));
        let digest = hex::encode(Sha256::digest(bill.csv.as_bytes()));
        assert_ne!(bill.sha256_hex.as_deref(), Some(digest.as_str()));
        match adapter.statement(&date(*day), &[cny()]).await {
            Err(ChannelError::Statement(error)) => {
                assert_eq!(error.code(), "statement_checksum_mismatch")
            }
            other => panic!("a bill with a bad checksum was not refused: {other:?}"),
        }
    }
    sim.set_faults("bank_a", json!({})).await;
    for day in &bill_days {
        let statement = adapter.statement(&date(*day), &[cny()]).await.unwrap();
        assert_eq!(statement.details.len(), clean(*day).len());
    }
}
