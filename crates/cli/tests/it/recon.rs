//! Reconciliation end to end: a real `qianbao serve`, a real bank simulator with statement
//! faults on, and the `/v1/recon` API (and the `qianbao recon` CLI) as operators use them.
//! Every difference the simulator planted in its bill is found with its class and nothing
//! else is flagged; each kind of break is resolved (with a second key's approval where the
//! policy asks); afterwards every break is resolved, suspense is zero, the books balance and
//! the loss register holds the write-offs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::payments::{minor, receive, Received, World, CARD};

/// Reconciliation suspense (挂账) in the chart of accounts.
const SUSPENSE_CHART: u64 = 2298;
const TOPUPS: u64 = 50;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Today's business day in Shanghai, waiting out the minutes around midnight so every
/// operation of the test falls on one day and the day before can close (a minute's grace).
fn business_day() -> String {
    const DAY_MS: u64 = 86_400_000;
    let local = |ms: u64| (ms + 8 * 3_600_000) % DAY_MS;
    while local(now_ms()) > DAY_MS - 120_000 || local(now_ms()) < 180_000 {
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    recon::BusinessDay::of(now_ms(), 480).to_string()
}

/// What the bill should show as breaks, from the bill and the simulator's own log alone:
/// `(class, request id)` of each difference.
fn planted(bill: &str, operations: &[Value]) -> Vec<(String, String)> {
    let succeeded: BTreeMap<String, &Value> = operations
        .iter()
        .filter(|op| op["status"] == json!("succeeded"))
        .map(|op| (op["request_id"].as_str().expect("request id").to_owned(), op))
        .collect();
    let mut rows: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for line in bill.lines().filter(|line| line.starts_with("detail,")) {
        let fields: Vec<&str> = line.split(',').collect();
        let amount = fields[4].parse().expect("amount");
        let fee = fields[5].parse().expect("fee");
        rows.entry(fields[1].to_owned()).or_default().push((amount, fee));
    }
    let mut expected = Vec::new();
    for (request_id, op) in &succeeded {
        let (amount, fee) = (minor(&op["amount_minor"]), minor(&op["fee_minor"]));
        match rows.get(request_id).map(Vec::as_slice) {
            None | Some([]) => expected.push(("missing_external".to_owned(), request_id.clone())),
            Some([(a, f)]) if (*a, *f) == (amount, fee) => {}
            Some([(a, _)]) if *a != amount => {
                expected.push(("amount_mismatch".to_owned(), request_id.clone()))
            }
            Some([_]) => expected.push(("fee_mismatch".to_owned(), request_id.clone())),
            Some(printed) => {
                for _ in 1..printed.len() {
                    expected.push(("duplicate".to_owned(), request_id.clone()));
                }
            }
        }
    }
    for (request_id, printed) in &rows {
        if !succeeded.contains_key(request_id) {
            for _ in printed {
                expected.push(("missing_internal".to_owned(), request_id.clone()));
            }
        }
    }
    expected.sort();
    expected
}

pub(crate) fn key(world: &World, scopes: &[&str]) -> String {
    let made = world.ok(
        "POST",
        "/v1/keys",
        json!({"tenant": "platform", "mode": "live", "scopes": scopes}),
    );
    made["secret"].as_str().expect("secret").to_owned()
}

fn breaks(world: &World, day: &str) -> Vec<Value> {
    let path = format!("/v1/recon/breaks?channel=bank_a&business_day={day}&limit=500");
    world.ok("GET", &path, Value::Null)["data"].as_array().cloned().expect("breaks")
}

fn propose(world: &World, id: &str, resolution: Value, reason: &str) -> (u16, Value) {
    world.call(
        "POST",
        &format!("/v1/recon/breaks/{id}/propose"),
        json!({"resolution": resolution, "reason": reason}),
    )
}

#[test]
fn every_planted_difference_is_found_and_each_kind_of_break_is_resolved() {
    let world = World::start(&["bank_a"], &[]);
    let day = business_day();
    world.sim.faults(
        "bank_a",
        json!({"statement": {"missing_rate": 0.1, "extra_rate": 0.1, "amount_rate": 0.1,
                             "fee_rate": 0.1, "duplicate_rate": 0.1, "next_day_rate": 0.05}}),
    );
    // Distinct amounts, so no line can pair with another's record on the amount rung.
    for n in 0..TOPUPS {
        let topup = world.ok(
            "POST",
            "/v1/topups",
            json!({"reference": format!("top-{n}"), "customer": "alice", "card": CARD,
                   "asset": "CNY", "amount": (1_000 + 7 * n).to_string()}),
        );
        assert_eq!(topup["status"], json!("succeeded"), "{topup}");
    }

    // Reconciliation is the platform's: a tenant's key cannot hold its scopes.
    let (status, refused) = world.call(
        "POST",
        "/v1/keys",
        json!({"tenant": "acme", "mode": "live", "scopes": ["recon:read"]}),
    );
    assert_eq!((status, refused["error"]["code"].clone()), (422, json!("platform_scope")));
    let maker = world.share(&key(&world, &["recon:read", "recon:write"]));
    let checker = world.share(&key(&world, &["recon:read", "recon:approve"]));
    let reader = world.share(&key(&world, &["ledger:read"]));
    let (status, _) = reader.call("GET", "/v1/recon/breaks", Value::Null);
    assert_eq!(status, 403);

    // The run: fetched from the channel, every line classified.
    let run = maker.ok(
        "POST",
        "/v1/recon/runs",
        json!({"channel": "bank_a", "business_day": day, "fetch": true}),
    );
    let statement_id = run["statement_id"].as_str().expect("statement id").to_owned();
    let (status, bill) = {
        let path = format!("/v1/recon/statements/{statement_id}/content");
        let (status, text) =
            crate::serve::request(maker.addr(), "GET", &path, maker.key(), "").expect("request");
        (status, text)
    };
    assert_eq!(status, 200);
    let expected = planted(&bill, &world.sim.operations("bank_a"));
    let classes: std::collections::BTreeSet<&str> =
        expected.iter().map(|(class, _)| class.as_str()).collect();
    for class in ["missing_external", "missing_internal", "amount_mismatch", "fee_mismatch"] {
        assert!(classes.contains(class), "the seed planted no {class}: {expected:?}");
    }
    let found = breaks(&maker, &day);
    let mut got: Vec<(String, String)> = found
        .iter()
        .map(|b| {
            (
                b["class"].as_str().expect("class").to_owned(),
                b["request_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "the breaks are exactly the planted differences");
    assert_eq!(run["breaks_new"], json!(expected.len()), "{run}");
    assert_eq!(
        run["counts"]["matched"].as_u64().unwrap_or(0) + expected.len() as u64,
        run["counts"].as_object().expect("counts").values().filter_map(Value::as_u64).sum::<u64>(),
        "{run}"
    );

    // The same statement and orders: the same result, and nothing new.
    let again =
        maker.ok("POST", "/v1/recon/runs", json!({"channel": "bank_a", "business_day": day}));
    assert_eq!(again["result_hash"], run["result_hash"]);
    assert_eq!(again["breaks_new"], json!(0));

    // The CLI shows the same run.
    let cli = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .args(["recon", "run", "--channel", "bank_a", "--date", &day, "--no-fetch"])
        .args(["--url", &format!("http://{}", maker.addr()), "--key", maker.key()])
        .output()
        .expect("qianbao recon run");
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{printed} {}", String::from_utf8_lossy(&cli.stderr));
    assert!(printed.contains(run["result_hash"].as_str().expect("hash")), "{printed}");
    assert!(printed.contains("lines by class"), "{printed}");

    // Each kind of break resolved. Write-offs need a second key: the maker cannot approve,
    // and neither can an admin key approve what it proposed itself.
    let mut losses = Vec::new();
    let mut rejected_once = false;
    for item in &found {
        let id = item["id"].as_str().expect("id");
        maker.ok("POST", &format!("/v1/recon/breaks/{id}/assign"), json!({"assignee": "li.wei"}));
        let (resolution, reason) = match item["class"].as_str().expect("class") {
            "missing_external" => (json!({"kind": "write_off"}), "the bank never moved it"),
            "missing_internal" => (
                json!({"kind": "credit_customer", "tenant": "platform", "customer": "alice"}),
                "the bank took the money: credit the payer (补单)",
            ),
            "amount_mismatch" if !losses.is_empty() => {
                (json!({"kind": "recover", "loss_id": losses[0]}), "recovered from the bank")
            }
            "amount_mismatch" | "fee_mismatch" => {
                (json!({"kind": "adjust"}), "the bank's rounding")
            }
            _ => (json!({"kind": "force_match"}), "the bank printed the line twice"),
        };
        let (status, proposed) = propose(&maker, id, resolution.clone(), reason);
        assert_eq!(status, 200, "{proposed}");
        if proposed["state"] == json!("pending_approval") {
            let (status, own) =
                maker.call("POST", &format!("/v1/recon/breaks/{id}/approve"), json!({}));
            assert_eq!((status, own["error"]["code"].clone()), (403, json!("missing_scope")));
            if !rejected_once {
                rejected_once = true;
                let back = checker.ok(
                    "POST",
                    &format!("/v1/recon/breaks/{id}/reject"),
                    json!({"reason": "attach the bank's confirmation"}),
                );
                assert_eq!(back["state"], json!("assigned"), "{back}");
                let (status, _) = propose(&maker, id, resolution.clone(), "confirmation attached");
                assert_eq!(status, 200);
            }
            let approved =
                checker.ok("POST", &format!("/v1/recon/breaks/{id}/approve"), Value::Null);
            assert_eq!(approved["state"], json!("resolved"), "{approved}");
            let actions: Vec<&str> = approved["events"]
                .as_array()
                .expect("trail")
                .iter()
                .filter_map(|e| e["action"].as_str())
                .collect();
            assert!(actions.contains(&"approved") && actions.contains(&"resolved"), "{actions:?}");
            if resolution["kind"] == json!("write_off") {
                losses.push(format!("loss_{}", id.trim_start_matches("brk_")));
            }
        } else {
            assert_eq!(proposed["state"], json!("resolved"), "{proposed}");
        }
    }
    assert!(!losses.is_empty(), "a write-off was approved");

    // Afterwards: nothing open, suspense zero, the books balanced, the losses registered.
    assert!(breaks(&maker, &day).iter().all(|b| b["state"] == json!("resolved")));
    let trial = world.ok("GET", "/v1/trial-balance", Value::Null);
    let suspense = trial["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|line| line["chart_code"] == json!(SUSPENSE_CHART) && line["asset"] == json!("CNY"))
        .expect("a suspense line");
    assert_eq!(
        suspense["balances"]["debits_posted"], suspense["balances"]["credits_posted"],
        "suspense is zero: {suspense}"
    );
    world.assert_balanced();
    let register = checker.ok("GET", "/v1/recon/losses", Value::Null);
    let registered: Vec<&str> = register["data"]
        .as_array()
        .expect("losses")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(registered.len(), losses.len(), "{register}");
    for loss in &register["data"].as_array().expect("losses")[..] {
        assert_eq!(loss["cause"], json!("missing_external"));
        assert!(loss["maker"] != loss["approver"], "{loss}");
    }
    let report =
        checker.ok("GET", &format!("/v1/recon/loss-report?from={day}&to={day}"), Value::Null);
    let rows = report["rows"].as_array().expect("rows");
    let written_off: u64 = rows.iter().map(|r| minor(&r["written_off_minor"])).sum();
    let listed: u64 =
        register["data"].as_array().expect("losses").iter().map(|l| minor(&l["amount"])).sum();
    assert_eq!(written_off, listed, "{report}");

    // Our own records still agree with each other (业务数据核对).
    let checks = maker.ok("POST", "/v1/recon/checks", Value::Null);
    assert_eq!(checks["ok"], json!(true), "{checks}");
}

#[test]
fn a_bad_statement_is_refused_whole_with_its_line() {
    let world = World::start(&["bank_a"], &[]);
    let day = business_day();
    let good = "record,request_id,channel_ref,type,amount_minor,fee_minor,currency,booked_at_ms,status,count\n\
                detail,r-1,bank_a-1,debit,100,1,CNY,1796443200000,succeeded,\n\
                summary,,,debit,100,1,CNY,,,1\n";
    let bad = good.replace("detail,r-1,bank_a-1,debit,100", "detail,r-1,bank_a-1,debit,1x0");
    let (status, refused) = world.call(
        "POST",
        "/v1/recon/statements",
        json!({"channel": "bank_a", "business_day": day, "content": bad}),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], json!("statement_bad_row"));
    assert!(refused["error"]["message"].as_str().expect("message").contains("line 2"), "{refused}");
    let (status, unknown) = world.call(
        "POST",
        "/v1/recon/statements",
        json!({"channel": "bank_z", "business_day": day, "content": good}),
    );
    assert_eq!((status, unknown["error"]["code"].clone()), (404, json!("channel_not_found")));
    // (The schedule fetches the day before on its own; this day has only what we send.)
    let listed_path = format!("/v1/recon/statements?channel=bank_a&business_day={day}");
    let listed = world.ok("GET", &listed_path, Value::Null);
    assert_eq!(listed["data"], json!([]), "nothing was stored");

    let stored = world.ok(
        "POST",
        "/v1/recon/statements",
        json!({"channel": "bank_a", "business_day": day, "content": good}),
    );
    assert_eq!(stored["created"], json!(true));
    let (status, same) = world.call(
        "POST",
        "/v1/recon/statements",
        json!({"channel": "bank_a", "business_day": day, "content": good}),
    );
    assert_eq!((status, same["created"].clone()), (200, json!(false)));
    assert_eq!(same["statement"]["id"], stored["statement"]["id"]);

    // A channel whose published digest does not match its file: refused, nothing stored.
    world.sim.faults("bank_a", json!({"statement": {"bad_checksum": true}}));
    let (status, mismatch) = world.call(
        "POST",
        "/v1/recon/statements/fetch",
        json!({"channel": "bank_a", "business_day": day}),
    );
    assert_eq!(status, 422, "{mismatch}");
    assert_eq!(mismatch["error"]["code"], json!("statement_checksum_mismatch"));
    let listed = world.ok("GET", &listed_path, Value::Null);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

#[test]
fn the_day_before_closes_by_itself_and_today_waits_for_its_cut_over() {
    let world = World::start(&["bank_a"], &[]);
    let today = business_day();
    // The service closes the day before at start (日切); its hash is in the listing.
    let mut closed = Value::Null;
    for _ in 0..100 {
        closed = world.ok("GET", "/v1/recon/days", Value::Null);
        if closed["data"].as_array().is_some_and(|days| !days.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let yesterday = closed["data"][0]["business_day"].as_str().expect("a closed day").to_owned();
    assert!(yesterday < today, "{closed}");
    let day = world.ok("GET", &format!("/v1/recon/days/{yesterday}"), Value::Null);
    assert_eq!(day["balanced"], json!(true), "{day}");
    assert_eq!(day["hash"], closed["data"][0]["hash"]);
    let again = world.ok("POST", &format!("/v1/recon/days/{yesterday}/close"), Value::Null);
    assert_eq!(again["hash"], day["hash"], "a closed day never changes");
    let (status, csv) = crate::serve::request(
        world.addr(),
        "GET",
        &format!("/v1/recon/days/{yesterday}/trial-balance.csv"),
        world.key(),
        "",
    )
    .expect("request");
    assert_eq!(status, 200);
    assert!(csv.starts_with("asset,chart_code,opening_net_minor,"), "{csv}");
    for (report, header) in
        [("merchants.csv", "tenant,merchant,asset,"), ("channels.csv", "channel,tx_type,")]
    {
        let path = format!("/v1/recon/days/{yesterday}/{report}");
        let (status, csv) =
            crate::serve::request(world.addr(), "GET", &path, world.key(), "").expect("request");
        assert_eq!(status, 200, "{report}");
        assert!(csv.starts_with(header), "{csv}");
    }
    let (status, open) = world.call("POST", &format!("/v1/recon/days/{today}/close"), Value::Null);
    assert_eq!((status, open["error"]["code"].clone()), (409, json!("day_not_over")));
}

#[test]
fn a_fund_alert_reaches_the_operations_endpoint_signed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received: Received = Default::default();
    receive(listener, received.clone());
    let url = format!("http://127.0.0.1:{port}/ops");
    let world = World::start(
        &["bank_a"],
        &["--ops-webhook-url", &url, "--ops-webhook-secret", "ops-secret"],
    );
    world.sim.call(
        "POST",
        "/admin/channels/bank_a/accounts",
        json!({"account": "big-card", "initial_balance_minor": "300000000"}),
    );
    let topup = world.ok(
        "POST",
        "/v1/topups",
        json!({"reference": "big", "customer": "alice", "card": "big-card", "asset": "CNY",
               "amount": "200000000"}),
    );
    assert_eq!(topup["status"], json!("succeeded"), "{topup}");
    world.ok("POST", "/v1/customers", json!({"id": "bob", "assets": ["CNY"]}));
    // One wallet debited past the hourly limit (100,000,000 minor units by default).
    let drained = world.ok(
        "POST",
        "/v1/wallet-transfers",
        json!({"reference": "drain", "from": "alice", "to": "bob", "asset": "CNY",
               "amount": "150000000"}),
    );
    assert_eq!(drained["status"], json!("succeeded"), "{drained}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let (signature, event_id, body) = loop {
        let found = received
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, _, body)| {
                body.contains("\"alert.firing\"") && body.contains("account_debit_limit")
            })
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no alert reached the endpoint");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let now_secs = now_ms() / 1_000;
    assert!(
        webhooks::signing::verify("ops-secret", &signature, body.as_bytes(), now_secs, 300),
        "the alert is signed with the operations secret"
    );
    let alert: Value = serde_json::from_str(&body).expect("json");
    let prefix = format!("{}:firing:", alert["data"]["id"].as_str().expect("id"));
    assert!(event_id.starts_with(&prefix), "{event_id}");
    assert_eq!(alert["data"]["urgency"], json!("page"));
    let firing = world.ok("GET", "/v1/recon/alerts?state=firing", Value::Null);
    assert!(
        firing["data"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["rule"] == json!("account_debit_limit")),
        "{firing}"
    );
    let (_, metrics) =
        crate::serve::request(world.addr(), "GET", "/metrics", "", "").expect("metrics");
    assert!(
        metrics.contains(
            "qianbao_fund_alerts_firing{rule=\"account_debit_limit\",urgency=\"page\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn the_reconciliation_bench_finds_exactly_what_it_planted() {
    let output = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .args(["recon", "bench", "--lines", "3000", "--differences", "12", "--json"])
        .output()
        .expect("qianbao recon bench");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed} {}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_str(printed.trim()).expect("one JSON object");
    assert_eq!(result["planted"], json!(12), "{result}");
    assert_eq!(result["breaks"], json!(12), "{result}");
    assert_eq!(result["matched"], json!(3000 - 12 + 3), "{result}");
}
