//! The payment core end to end: a real `qianbao serve` process and a real bank simulator
//! process, driven over HTTP as a user would. Each scenario ends with the order final and
//! correct, the books balanced, and our records equal to the simulator's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::serve::{request, start_with, Server};

pub(crate) const CARD: &str = "6222020000000001";
pub(crate) const CARD_BALANCE_MINOR: u64 = 1_000_000;

/// The simulator binary beside ours; built on demand when only this package was built.
fn banksim_bin() -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_qianbao"));
    let dir = ours.parent().expect("the binary has a directory");
    let path = dir.join("qianbao-banksim");
    if !path.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "-p", "banksim", "--bin", "qianbao-banksim"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo build").success(), "building the simulator");
    }
    path
}

pub(crate) struct Sim {
    child: Child,
    pub(crate) base: String,
}

impl Sim {
    pub(crate) fn start() -> Sim {
        let mut child = Command::new(banksim_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--no-faults", "--seed", "7"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the simulator");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(base) = line.strip_prefix("banksim listening on ") {
                    let _ = tx.send(base.trim_start_matches("http://").to_owned());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(20)).expect("the simulator starts");
        Sim { child, base }
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, text) =
            request(&self.base, method, path, "-", &body.to_string()).expect("simulator request");
        assert!((200..300).contains(&status), "simulator {method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub(crate) fn faults(&self, channel: &str, faults: Value) {
        self.call("PUT", &format!("/admin/channels/{channel}/faults"), faults);
    }

    /// The simulator's operation log of `channel`.
    pub(crate) fn operations(&self, channel: &str) -> Vec<Value> {
        let log = self.call("GET", &format!("/admin/channels/{channel}/operations"), Value::Null);
        log["operations"].as_array().cloned().unwrap_or_default()
    }

    pub(crate) fn card_balance(&self, channel: &str) -> u64 {
        let books = self.call("GET", &format!("/admin/channels/{channel}/accounts"), Value::Null);
        minor(&books["customers"][CARD])
    }
}

impl Sim {
    /// No request id reached `channel` twice.
    pub(crate) fn assert_each_request_once(&self, channel: &str) {
        let ids: Vec<String> =
            self.operations(channel).iter().map(|op| op["request_id"].to_string()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "a request reached {channel} twice");
    }
}

/// Drops a deployment's schemas: `schema` and its test book's `<schema>_test`.
pub(crate) fn drop_schemas(url: &str, schema: &str) {
    for schema in [schema.to_owned(), format!("{schema}_test")] {
        store::postgres::drop_schema(&store::PgTarget::new(url, schema)).expect("drop schema");
    }
}

/// The PostgreSQL URL of the tests, or `None` (after saying so) when the server is out of
/// reach outside CI; under CI an unreachable server fails the test.
pub(crate) fn postgres_url() -> Option<String> {
    let url = std::env::var("QIANBAO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    match store::PgReader::connect(store::PgTarget::new(url.as_str(), "qb_test_probe")) {
        Ok(_) => Some(url),
        Err(error) => {
            assert!(
                std::env::var("CI").map_or(true, |ci| ci != "true"),
                "PostgreSQL unreachable under CI: {error}"
            );
            eprintln!("skipping: PostgreSQL at {url} unreachable: {error}");
            None
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn minor(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.parse().expect("minor units"),
        Value::Number(number) => number.as_u64().expect("minor units"),
        other => panic!("not an amount: {other}"),
    }
}

pub(crate) struct World {
    pub(crate) sim: Sim,
    server: Option<Server>,
    /// For a [`World::share`]d view: the server it talks to.
    shared_addr: Option<String>,
    key: String,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl World {
    /// A simulator with `channels` (the card open at each) and a server using them.
    pub(crate) fn start(channels: &[&str], extra: &[&str]) -> World {
        let sim = Sim::start();
        for channel in channels {
            sim.call(
                "POST",
                &format!("/admin/channels/{channel}/accounts"),
                json!({"account": CARD, "initial_balance_minor": CARD_BALANCE_MINOR.to_string()}),
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            dir.path().display().to_string(),
            "--banksim-url".into(),
            format!("http://{}", sim.base),
            "--channels".into(),
            channels.join(","),
            "--rate-limit-per-sec".into(),
            "0".into(),
        ];
        // The tests settle when they mean to: a scheduled run at start could settle a T+0
        // merchant's first payments between two of a test's steps.
        if !extra.contains(&"--settlement-every-secs") {
            args.extend(["--settlement-every-secs".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let (server, key) = start_with(&args, &[], true);
        let world = World {
            sim,
            server: Some(server),
            shared_addr: None,
            key: key.expect("admin key"),
            args,
            _dir: dir,
        };
        world.ok("POST", "/v1/customers", json!({"id": "alice", "assets": ["CNY"]}));
        world.ok("POST", "/v1/merchants", json!({"id": "shop", "assets": ["CNY"], "fee_bps": 60}));
        world
    }

    pub(crate) fn addr(&self) -> &str {
        match &self.server {
            Some(server) => &server.addr,
            None => self.shared_addr.as_deref().expect("server running"),
        }
    }

    /// A second node of the same deployment: another `qianbao serve` with the same arguments
    /// (so on the same PostgreSQL schema, when the world runs on one), called with this
    /// view's key; stopped when dropped.
    pub(crate) fn another_node(&self) -> World {
        let (server, _) = start_with(&self.args, &[], false);
        World {
            sim: Sim {
                child: Command::new("true").spawn().expect("spawn"),
                base: self.sim.base.clone(),
            },
            server: Some(server),
            shared_addr: None,
            key: self.key.clone(),
            args: self.args.clone(),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A view of the same processes for another key (it stops nothing when dropped).
    pub(crate) fn share(&self, key: &str) -> World {
        World {
            sim: Sim {
                child: Command::new("true").spawn().expect("spawn"),
                base: self.sim.base.clone(),
            },
            server: None,
            shared_addr: Some(self.addr().to_owned()),
            key: key.to_owned(),
            args: self.args.clone(),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A view of the same server for `key` whose channels are `sim`'s (for a test key, the
    /// test book's simulator): dropping it stops `sim`, not the server.
    pub(crate) fn share_on(&self, key: &str, sim: Sim) -> World {
        World {
            sim,
            server: None,
            shared_addr: Some(self.addr().to_owned()),
            key: key.to_owned(),
            args: self.args.clone(),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The API key this view calls with.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        let (status, text) = request(self.addr(), method, path, &self.key, &body).expect("request");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, body);
        assert!(status == 200 || status == 201, "{method} {path}: {status} {value}");
        value
    }

    /// Alice tops up `topup`, pays `paid` to a T+0 merchant `payroll`, which is settled: it
    /// then has `paid` in settled takings to pay out.
    fn fund_payroll(&self, topup: u64, paid: u64) {
        self.ok(
            "POST",
            "/v1/merchants",
            json!({"id": "payroll", "assets": ["CNY"], "settle_after_days": 0}),
        );
        assert_eq!(self.topup("fund", topup)["status"], json!("succeeded"));
        self.ok(
            "POST",
            "/v1/payments",
            json!({"reference": "fund-payroll", "customer": "alice", "merchant": "payroll",
                   "asset": "CNY", "amount": paid.to_string()}),
        );
        let run = self.ok("POST", "/v1/merchants/payroll/settlements", json!({"asset": "CNY"}));
        assert_eq!(run["settlement"]["amount"], json!(paid.to_string()), "{run}");
    }

    pub(crate) fn topup(&self, reference: &str, amount: u64) -> Value {
        self.ok(
            "POST",
            "/v1/topups",
            json!({"reference": reference, "customer": "alice", "card": CARD, "asset": "CNY",
                   "amount": amount.to_string()}),
        )
    }

    /// Polls the order until it is final.
    pub(crate) fn wait_final(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let order = self.ok("GET", &format!("/v1/orders/{id}"), Value::Null);
            if order["final"] == json!(true) {
                return order;
            }
            assert!(Instant::now() < deadline, "order {id} not final in {within:?}: {order}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn balance(&self, kind: &str, id: &str, account: &str) -> i64 {
        let party = self.ok("GET", &format!("/v1/{kind}/{id}"), Value::Null);
        let line = party["balances"]
            .as_array()
            .expect("balances")
            .iter()
            .find(|line| line["account"] == json!(account))
            .cloned()
            .expect("the account");
        line["balance"].as_str().expect("balance").parse().expect("number")
    }

    fn wallet(&self) -> i64 {
        self.balance("customers", "alice", "wallet")
    }

    /// Every asset's books balance, and nothing is held.
    pub(crate) fn assert_balanced(&self) {
        let trial = self.ok("GET", "/v1/trial-balance", Value::Null);
        for asset in trial["assets"].as_array().expect("assets") {
            assert_eq!(asset["balanced"], json!(true), "{trial}");
        }
    }

    /// Our channel successes equal the simulator's: the same requests, references and fees.
    pub(crate) fn assert_matches_simulator(&self, channel: &str) {
        let mut ours = Vec::new();
        let orders = self.ok("GET", "/v1/orders?limit=500", Value::Null);
        for order in orders["data"].as_array().expect("orders") {
            let state = &order["state"];
            // A card refund's channel is fixed by its payment: it is in the detail.
            let at = if state["channel"].is_null() {
                &order["detail"]["channel"]
            } else {
                &state["channel"]
            };
            if at == &json!(channel) && state["settled"].is_object() {
                ours.push((
                    state["settled"]["channel_ref"].as_str().expect("ref").to_owned(),
                    minor(&order["amount"]),
                ));
            }
        }
        let mut theirs: Vec<(String, u64)> = self
            .sim
            .operations(channel)
            .iter()
            .filter(|op| op["status"] == json!("succeeded"))
            .map(|op| {
                (op["channel_ref"].as_str().expect("ref").to_owned(), minor(&op["amount_minor"]))
            })
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "our successes on {channel} differ from the simulator's");
    }

    fn kill(&mut self) {
        let mut server = self.server.take().expect("server running");
        let _ = server.child.kill();
        let _ = server.child.wait();
    }

    fn restart(&mut self, extra: &[&str]) {
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let (server, _) = start_with(&args, &[], false);
        self.server = Some(server);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }
}

#[test]
fn topup_pay_refund_withdraw_against_the_simulator() {
    walkthrough(&World::start(&["bank_a", "bank_b"], &[]));
}

#[test]
fn topup_pay_refund_withdraw_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_payments_{}", std::process::id());
    let world = World::start(
        &["bank_a", "bank_b"],
        &["--database-url", &url, "--database-schema", &schema],
    );
    walkthrough(&world);
    drop(world);
    drop_schemas(&url, &schema);
}

fn walkthrough(world: &World) {
    let topup = world.topup("top-1", 10_000);
    assert_eq!(topup["status"], json!("succeeded"), "{topup}");
    assert_eq!(world.wallet(), 10_000);

    // A retry of the same reference is the same top-up; other fields under it are refused.
    let (status, again) = world.call(
        "POST",
        "/v1/topups",
        json!({"reference": "top-1", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "10000"}),
    );
    assert_eq!((status, &again["id"]), (200, &topup["id"]));
    let (status, conflict) = world.call(
        "POST",
        "/v1/topups",
        json!({"reference": "top-1", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "1"}),
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], json!("order_exists_with_different_fields"));

    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "order-1", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "2500"}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    // Fee 2500 × 60 bp = 15: the merchant nets 2485.
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 2_485);
    assert_eq!(world.wallet(), 7_500);

    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    let partial = world.ok("POST", &refunds, json!({"reference": "r-1", "amount": "1000"}));
    assert_eq!(partial["status"], json!("succeeded"), "{partial}");
    let (status, too_much) =
        world.call("POST", &refunds, json!({"reference": "r-2", "amount": "1501"}));
    assert_eq!(status, 422, "{too_much}");
    assert_eq!(too_much["error"]["code"], json!("refund_exceeds_payment"));
    let rest = world.ok("POST", &refunds, json!({"reference": "r-3", "amount": "1500"}));
    assert_eq!(rest["status"], json!("succeeded"), "{rest}");
    // Fully refunded: the merchant and the fee income are back to zero, exactly.
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 0);
    assert_eq!(world.wallet(), 10_000);

    let withdrawal = world.ok(
        "POST",
        "/v1/withdrawals",
        json!({"reference": "wd-1", "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "4000"}),
    );
    assert_eq!(withdrawal["status"], json!("succeeded"), "{withdrawal}");
    assert_eq!(world.wallet(), 6_000);
    let (status, short) = world.call(
        "POST",
        "/v1/withdrawals",
        json!({"reference": "wd-2", "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "6001"}),
    );
    assert_eq!(status, 201);
    assert_eq!(
        (short["status"].clone(), short["state"]["reason"].clone()),
        (json!("failed"), json!("exceeds_credits"))
    );
    assert_eq!(world.wallet(), 6_000, "a refused withdrawal holds nothing");

    world.assert_balanced();
    for channel in ["bank_a", "bank_b"] {
        world.assert_matches_simulator(channel);
    }
    let bank_total: u64 = ["bank_a", "bank_b"].iter().map(|c| world.sim.card_balance(c)).sum();
    assert_eq!(bank_total, 2 * CARD_BALANCE_MINOR - 10_000 + 4_000, "the card paid once, got once");

    let events = world.ok("GET", "/v1/events", Value::Null);
    let types: Vec<&str> = events["data"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "topup.succeeded",
            "payment.succeeded",
            "refund.succeeded",
            "refund.succeeded",
            "withdrawal.succeeded",
            "withdrawal.failed"
        ]
    );
}

#[test]
fn a_declined_topup_fails_and_books_nothing() {
    let world = World::start(&["bank_a"], &[]);
    world.sim.faults("bank_a", json!({"debit": {"declined_rate": 1.0}}));
    let topup = world.topup("top-declined", 5_000);
    assert_eq!(topup["status"], json!("failed"), "{topup}");
    assert!(topup["state"]["reason"].as_str().expect("reason").starts_with("declined"), "{topup}");
    assert_eq!(world.wallet(), 0);
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn a_lost_answer_is_settled_by_inquiry_as_the_bank_did_it() {
    let world = World::start(&["bank_a"], &[]);
    world.sim.faults("bank_a", json!({"debit": {"lost_response_rate": 1.0, "hold_ms": 50}}));
    let topup = world.topup("top-lost", 7_000);
    assert_eq!(topup["status"], json!("debiting"), "unknown outcome: waits, {topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(20));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(world.wallet(), 7_000);
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR - 7_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn a_request_the_bank_never_got_fails_after_the_late_arrival_window() {
    let world = World::start(&["bank_a"], &["--inquiry-not-found-final-ms", "1500"]);
    world.sim.faults("bank_a", json!({"debit": {"timeout_rate": 1.0, "hold_ms": 50}}));
    let topup = world.topup("top-timeout", 3_000);
    assert_eq!(topup["status"], json!("debiting"), "{topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(30));
    assert_eq!(done["status"], json!("failed"), "{done}");
    assert!(
        done["state"]["reason"].as_str().expect("reason").starts_with("never_received"),
        "{done}"
    );
    assert_eq!(world.wallet(), 0);
    assert!(world.sim.operations("bank_a").is_empty(), "the bank never executed it");
    world.assert_balanced();
}

#[test]
fn a_late_success_arrives_by_callback_and_its_duplicate_changes_nothing() {
    let world = World::start(&["bank_a"], &[]);
    world.sim.call(
        "PUT",
        "/admin/channels/bank_a/callback",
        json!({"url": format!("http://{}/channel-callbacks/bank_a", world.addr())}),
    );
    world.sim.faults(
        "bank_a",
        json!({"debit": {"late_success_rate": 1.0, "late_delay_ms": 200}, "duplicate_callback_rate": 1.0}),
    );
    let topup = world.topup("top-late", 4_000);
    assert_eq!(topup["status"], json!("debiting"), "processing: waits, {topup}");
    let done = world.wait_final(topup["id"].as_str().expect("id"), Duration::from_secs(20));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    // Both deliveries of the callback were acknowledged, and the wallet was credited once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = world.sim.call("GET", "/admin/channels/bank_a/callbacks", Value::Null);
        let acknowledged = log["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .filter(|d| d["http_status"] == json!(200))
            .count();
        if acknowledged >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "callbacks not acknowledged: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(world.wallet(), 4_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");

    // A forged callback is refused.
    let (status, refused) = request(
        world.addr(),
        "POST",
        "/channel-callbacks/bank_a",
        "-",
        r#"{"event_id":"x","data":{}}"#,
    )
    .expect("request");
    assert_eq!(status, 401, "{refused}");
}

#[test]
fn a_restart_while_a_payout_is_at_the_bank_resumes_it_once() {
    let mut world = World::start(&["bank_a"], &[]);
    assert_eq!(world.topup("top-1", 9_000)["status"], json!("succeeded"));
    world.sim.faults("bank_a", json!({"payout": {"latency": {"base_ms": 2_000}}}));
    let (addr, key) = (world.addr().to_owned(), world.key.clone());
    let pending = std::thread::spawn(move || {
        let body = json!({"reference": "wd-restart", "customer": "alice", "bank_account": CARD,
                          "asset": "CNY", "amount": "5000"});
        request(&addr, "POST", "/v1/withdrawals", &key, &body.to_string())
    });
    // The payout is at the bank (its state stored before the call): crash now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sim.operations("bank_a").iter().all(|op| op["operation"] != json!("payout")) {
        assert!(Instant::now() < deadline, "the payout never reached the bank");
        std::thread::sleep(Duration::from_millis(20));
    }
    world.kill();
    let _ = pending.join();
    world.sim.faults("bank_a", json!({}));
    world.restart(&["--inspect-after-ms", "100"]);
    let orders = world.ok("GET", "/v1/orders?kind=withdrawal", Value::Null);
    let id = orders["data"][0]["id"].as_str().expect("the withdrawal was stored").to_owned();
    let done = world.wait_final(&id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    let payouts: Vec<Value> = world
        .sim
        .operations("bank_a")
        .into_iter()
        .filter(|op| op["operation"] == json!("payout"))
        .collect();
    assert_eq!(payouts.len(), 1, "paid out once: {payouts:?}");
    assert_eq!(world.wallet(), 4_000);
    assert_eq!(world.sim.card_balance("bank_a"), CARD_BALANCE_MINOR - 9_000 + 5_000);
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// What a webhook receiver got: the signature header, the event id header, the body.
pub(crate) type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on `listener`: records every request and answers 200.
pub(crate) fn receive(listener: TcpListener, received: Received) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let length: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            received.lock().expect("lock").push((
                header("qianbao-signature"),
                header("qianbao-event-id"),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
}

#[test]
fn webhooks_reach_a_receiver_that_was_down_signed_and_exactly_the_events_that_happened() {
    let world =
        World::start(&["bank_a"], &["--webhook-retry-first-ms", "200", "--webhook-private-urls"]);
    // A port nobody listens on yet: the receiver is down.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let endpoint = world.ok(
        "POST",
        "/v1/webhook-endpoints",
        json!({"url": format!("http://127.0.0.1:{port}/hooks")}),
    );
    let secret = endpoint["secret"].as_str().expect("the secret, shown once").to_owned();
    let listed = world.ok("GET", "/v1/webhook-endpoints", Value::Null);
    assert!(listed["data"][0].get("secret").is_none(), "the secret is never shown again");

    assert_eq!(world.topup("top-1", 5_000)["status"], json!("succeeded"));
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "3000"}),
    );
    world.ok(
        "POST",
        &format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id")),
        json!({"reference": "r-1", "amount": "3000"}),
    );
    // Attempts fail while the receiver is down…
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = world.ok("GET", "/v1/webhook-deliveries", Value::Null);
        let tried = log["data"].as_array().expect("deliveries");
        if tried.len() == 3 && tried.iter().all(|d| d["attempts"].as_u64() >= Some(1)) {
            assert!(tried.iter().all(|d| d["state"] == json!("pending")), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempts: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // …and once it is up, it gets every event.
    let received: Received = Arc::default();
    receive(TcpListener::bind(("127.0.0.1", port)).expect("rebind"), received.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = world.ok("GET", "/v1/webhook-deliveries?state=delivered", Value::Null);
        if log["data"].as_array().expect("deliveries").len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let mut types = Vec::new();
    for (signature, event_id, body) in received.lock().expect("lock").iter() {
        assert!(
            webhooks::signing::verify(&secret, signature, body.as_bytes(), now_secs, 300),
            "{body}"
        );
        assert!(!webhooks::signing::verify(
            "whsec_other",
            signature,
            body.as_bytes(),
            now_secs,
            300
        ));
        let event: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(&event["id"], event_id, "the header names the body's event");
        types.push(event["type"].as_str().expect("type").to_owned());
    }
    types.sort();
    types.dedup();
    assert_eq!(types, ["payment.succeeded", "refund.succeeded", "topup.succeeded"]);

    // Manual redelivery sends the same event (same id) again.
    let log = world.ok("GET", "/v1/webhook-deliveries", Value::Null);
    let first = log["data"][0]["id"].as_str().expect("id").to_owned();
    let before = received.lock().expect("lock").len();
    world.ok("POST", &format!("/v1/webhook-deliveries/{first}/retry"), Value::Null);
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().expect("lock").len() == before {
        assert!(Instant::now() < deadline, "no redelivery");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = world.call("POST", "/v1/webhook-deliveries/whd_0_none/retry", Value::Null);
    assert_eq!(status, 404);
}

#[test]
fn a_payout_batch_pays_each_item_and_returns_failed_items_to_the_merchant() {
    let world = World::start(&["bank_a"], &[]);
    world.ok(
        "POST",
        "/v1/merchants",
        json!({"id": "payroll", "assets": ["CNY"], "fee_bps": 0, "settle_after_days": 0}),
    );
    assert_eq!(world.topup("top-1", 50_000)["status"], json!("succeeded"));
    world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "payroll", "asset": "CNY", "amount": "40000"}),
    );
    let run = world.ok("POST", "/v1/merchants/payroll/settlements", json!({"asset": "CNY"}));
    assert_eq!(run["settlement"]["amount"], json!("40000"), "{run}");
    // The bank refuses one account; the others are paid.
    world.sim.call(
        "POST",
        "/admin/channels/bank_a/accounts",
        json!({"account": "6222020000000002", "initial_balance_minor": "0"}),
    );
    let body = json!({"reference": "batch-1", "asset": "CNY", "items": [
        {"reference": "i-1", "bank_account": CARD, "amount": "10000"},
        {"reference": "i-2", "bank_account": "6222020000000002", "amount": "5000"},
        {"reference": "i-3", "bank_account": "6222020000000999", "amount": "7000"},
        {"reference": "i-4", "bank_account": CARD, "amount": "9000"},
    ]});
    let (status, batch) = world.call("POST", "/v1/merchants/payroll/payout-batches", body.clone());
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let view = world.ok("GET", &format!("/v1/payout-batches/{id}"), Value::Null);
        if view["status"] == json!("completed") {
            break view;
        }
        assert!(Instant::now() < deadline, "batch not done: {view}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["succeeded"], json!({"count": 3, "amount": "24000"}), "{done}");
    assert_eq!(done["failed"], json!({"count": 1, "amount": "7000"}), "{done}");
    assert_eq!(done["merchant"], json!("payroll"));
    assert!(
        done["items"].as_array().expect("items").iter().any(|item| item["state"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("invalid_account"))),
        "the failed item failed at the bank: {done}"
    );
    // 40000 settled − 24000 paid out; the failed 7000 is back.
    assert_eq!(world.balance("merchants", "payroll", "settled"), 16_000);
    // A retried batch creates nothing twice.
    let (status, again) = world.call("POST", "/v1/merchants/payroll/payout-batches", body);
    assert_eq!((status, again["id"].clone()), (202, json!(id)));
    let payouts = world
        .sim
        .operations("bank_a")
        .into_iter()
        .filter(|op| op["operation"] == json!("payout"))
        .count();
    assert_eq!(payouts, 4, "each item went to the bank once");
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn points_and_cash_pay_together_and_refund_along_their_legs() {
    let world = World::start(&["bank_a"], &[]);
    world.ok("POST", "/v1/customers", json!({"id": "bob", "assets": ["CNY", "POINTS"]}));
    assert_eq!(world.topup("top-1", 10_000)["status"], json!("succeeded"));
    let moved = world.ok(
        "POST",
        "/v1/wallet-transfers",
        json!({"reference": "gift-1", "from": "alice", "to": "bob", "asset": "CNY", "amount": "3000"}),
    );
    assert_eq!(moved["status"], json!("succeeded"), "{moved}");
    let granted = world.ok(
        "POST",
        "/v1/customers/bob/points",
        json!({"reference": "welcome", "points": "1000"}),
    );
    assert_eq!(granted["status"], json!("succeeded"), "{granted}");
    assert_eq!(world.balance("customers", "bob", "points"), 1_000);

    // 2500 = 500 points (1 fen each) + 2000 cash; the merchant gets all 2500 less its fee.
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-1", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "2500", "points": "500"}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    assert_eq!(world.balance("customers", "bob", "wallet"), 1_000);
    assert_eq!(world.balance("customers", "bob", "points"), 500);
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 2_485);

    // Too many points for the price, or more points than bob has: refused / failed, nothing moves.
    let (status, dear) = world.call(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-2", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "100", "points": "101"}),
    );
    assert_eq!((status, dear["error"]["param"].clone()), (422, json!("points")), "{dear}");
    let short = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "pp-3", "customer": "bob", "merchant": "shop", "asset": "CNY",
               "amount": "900", "points": "800"}),
    );
    assert_eq!(short["status"], json!("failed"), "{short}");
    assert_eq!(world.balance("customers", "bob", "points"), 500);

    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    for (reference, amount) in [("r-1", "1250"), ("r-2", "1250")] {
        let refund = world.ok("POST", &refunds, json!({"reference": reference, "amount": amount}));
        assert_eq!(refund["status"], json!("succeeded"), "{refund}");
        assert_eq!(refund["detail"]["points"]["points"], json!("250"), "half the points: {refund}");
    }
    assert_eq!(world.balance("customers", "bob", "wallet"), 3_000, "the cash came back");
    assert_eq!(world.balance("customers", "bob", "points"), 1_000, "every point came back");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 0);
    world.assert_balanced();
}

#[test]
fn a_cross_currency_payment_converts_at_the_recorded_rate_and_refunds_exactly() {
    let world = World::start(&["bank_a"], &["--assets", "CNY:2,USD:2,POINTS:0"]);
    world.ok("POST", "/v1/merchants", json!({"id": "us-shop", "assets": ["USD"], "fee_bps": 100}));
    let (status, missing) = world.call(
        "POST",
        "/v1/payments",
        json!({"reference": "fx-0", "customer": "alice", "merchant": "us-shop", "asset": "USD",
               "amount": "1001", "pay_from": "CNY"}),
    );
    assert_eq!(
        (status, missing["error"]["param"].clone()),
        (422, json!("pay_from")),
        "no rate yet: {missing}"
    );
    world.ok("PUT", "/v1/fx-rates", json!({"asset": "USD", "funding": "CNY", "rate": "7.1234"}));
    assert_eq!(world.topup("top-1", 100_000)["status"], json!("succeeded"));
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "fx-1", "customer": "alice", "merchant": "us-shop", "asset": "USD",
               "amount": "1001", "pay_from": "CNY"}),
    );
    assert_eq!(payment["status"], json!("succeeded"), "{payment}");
    assert_eq!(
        payment["detail"]["fx"]["from_amount"],
        json!("7131"),
        "7130.5234 rounded up: {payment}"
    );
    assert_eq!(payment["detail"]["fx"]["rate"], json!({"units": 71234, "decimals": 4}));
    assert_eq!(world.wallet(), 100_000 - 7_131);
    assert_eq!(world.balance("merchants", "us-shop", "unsettled"), 1_001 - 10);
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    for (reference, amount) in [("r-1", "333"), ("r-2", "333"), ("r-3", "335")] {
        let refund = world.ok("POST", &refunds, json!({"reference": reference, "amount": amount}));
        assert_eq!(refund["status"], json!("succeeded"), "{refund}");
    }
    assert_eq!(world.wallet(), 100_000, "every fen came back");
    assert_eq!(world.balance("merchants", "us-shop", "unsettled"), 0);
    world.assert_balanced();
}

#[test]
fn an_authorization_is_captured_in_part_canceled_or_expires() {
    let world = World::start(&["bank_a"], &["--inspect-after-ms", "0"]);
    assert_eq!(world.topup("top-1", 10_000)["status"], json!("succeeded"));
    let authorize = |reference: &str, amount: &str, secs: u32| {
        world.ok(
            "POST",
            "/v1/payments",
            json!({"reference": reference, "customer": "alice", "merchant": "shop", "asset": "CNY",
                   "amount": amount, "authorize_for_secs": secs}),
        )
    };
    let available = || {
        let party = world.ok("GET", "/v1/customers/alice", Value::Null);
        party["balances"][0]["available"]
            .as_str()
            .expect("available")
            .parse::<i64>()
            .expect("number")
    };
    let held = authorize("auth-1", "3000", 600);
    assert_eq!(held["status"], json!("authorized"), "{held}");
    assert_eq!((world.wallet(), available()), (10_000, 7_000), "held, not spent");
    let id = held["id"].as_str().expect("id").to_owned();
    let (status, body) =
        world.call("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "3001"}));
    assert_eq!(status, 422, "more than authorized: {body}");
    assert_eq!(body["error"]["code"], json!("field_refused"), "{body}");
    let captured =
        world.ok("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "2000"}));
    assert_eq!(
        (captured["status"].clone(), captured["amount"].clone()),
        (json!("succeeded"), json!("2000")),
        "{captured}"
    );
    assert_eq!(captured["detail"]["fee"], json!("12"), "the fee is on what was captured");
    assert_eq!((world.wallet(), available()), (8_000, 8_000), "the rest of the hold is released");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 1_988);
    let (status, again) =
        world.call("POST", &format!("/v1/payments/{id}/capture"), json!({"amount": "500"}));
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (409, json!("order_state_conflict")),
        "{again}"
    );
    let refunds = format!("/v1/payments/{id}/refunds");
    let (status, _) = world.call("POST", &refunds, json!({"reference": "r-1", "amount": "2001"}));
    assert_eq!(status, 422, "never more than captured");

    let canceled = authorize("auth-2", "1000", 600);
    let id2 = canceled["id"].as_str().expect("id").to_owned();
    let canceled = world.ok("POST", &format!("/v1/payments/{id2}/cancel"), Value::Null);
    assert_eq!(canceled["status"], json!("canceled"), "{canceled}");
    assert_eq!(available(), 8_000);

    let expiring = authorize("auth-3", "500", 1);
    assert_eq!(available(), 7_500);
    std::thread::sleep(Duration::from_millis(1_500));
    world.ok("POST", "/v1/inspection", Value::Null);
    let expired = world.ok(
        "GET",
        &format!("/v1/orders/{}", expiring["id"].as_str().expect("id")),
        Value::Null,
    );
    assert_eq!(expired["status"], json!("expired"), "{expired}");
    assert_eq!((world.wallet(), available()), (8_000, 8_000));
    world.assert_balanced();
}

#[test]
fn a_card_payment_is_refunded_to_the_card_through_its_channel() {
    let world = World::start(&["bank_a", "bank_b"], &[]);
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-1", "customer": "alice", "merchant": "shop", "asset": "CNY",
               "amount": "5000", "card": CARD}),
    );
    assert_eq!(
        (payment["kind"].clone(), payment["status"].clone()),
        (json!("card_payment"), json!("succeeded")),
        "{payment}"
    );
    let channel = payment["state"]["channel"].as_str().expect("channel").to_owned();
    assert_eq!(world.wallet(), 0, "the wallet is not touched");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 5_000 - 30);
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().expect("id"));
    let partial = world.ok("POST", &refunds, json!({"reference": "r-1", "amount": "2000"}));
    assert_eq!(
        (partial["kind"].clone(), partial["status"].clone()),
        (json!("card_refund"), json!("succeeded")),
        "{partial}"
    );
    // The bank refuses the next refund: the merchant's money comes back by a reversal.
    world.sim.faults(&channel, json!({"refund": {"declined_rate": 1.0}}));
    let declined = world.ok("POST", &refunds, json!({"reference": "r-2", "amount": "3000"}));
    assert_eq!(declined["status"], json!("failed"), "{declined}");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 5_000 - 30 - 2_000 + 12);
    world.sim.faults(&channel, json!({}));
    let rest = world.ok("POST", &refunds, json!({"reference": "r-3", "amount": "3000"}));
    assert_eq!(rest["status"], json!("succeeded"), "{rest}");
    assert_eq!(world.balance("merchants", "shop", "unsettled"), 0, "fully refunded, fee included");
    assert_eq!(world.sim.card_balance(&channel), CARD_BALANCE_MINOR, "the card got it all back");
    let refunds_at_bank = world
        .sim
        .operations(&channel)
        .into_iter()
        .filter(|op| op["operation"] == json!("refund") && op["status"] == json!("succeeded"))
        .count();
    assert_eq!(refunds_at_bank, 2);
    world.assert_balanced();
    world.assert_matches_simulator(&channel);
}

#[test]
fn another_tenant_sees_none_of_the_orders_parties_or_webhooks() {
    let world = World::start(&["bank_a"], &[]);
    assert_eq!(world.topup("top-1", 5_000)["status"], json!("succeeded"));
    let payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-1", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1000"}),
    );
    let id = payment["id"].as_str().expect("id").to_owned();
    let other = world.ok(
        "POST",
        "/v1/keys",
        json!({"tenant": "rival", "mode": "live", "scopes": ["ledger:read", "ledger:write"]}),
    );
    let rival = world.share(other["secret"].as_str().expect("secret"));
    for path in
        [format!("/v1/orders/{id}"), "/v1/customers/alice".into(), "/v1/merchants/shop".into()]
    {
        let (status, body) = rival.call("GET", &path, Value::Null);
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = rival.call(
        "POST",
        &format!("/v1/payments/{id}/refunds"),
        json!({"reference": "steal", "amount": "1000"}),
    );
    assert_eq!(status, 404, "no refund of another tenant's payment");
    let (status, _) = rival.call(
        "POST",
        "/v1/payments",
        json!({"reference": "o-2", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1"}),
    );
    assert_eq!(status, 404, "no paying from another tenant's customer");
    let listed = rival.ok("GET", "/v1/orders", Value::Null);
    assert_eq!(listed["data"], json!([]));
    let events = rival.ok("GET", "/v1/events", Value::Null);
    assert_eq!(events["data"], json!([]));
    // Webhooks may not point into the platform's own network.
    let (status, refused) = rival.call(
        "POST",
        "/v1/webhook-endpoints",
        json!({"url": "http://169.254.169.254/latest"}),
    );
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (422, json!("url_not_allowed")),
        "{refused}"
    );
    // The rival's own customer of the same id is a different wallet.
    rival.ok("POST", "/v1/customers", json!({"id": "alice", "assets": ["CNY"]}));
    assert_eq!(rival.balance("customers", "alice", "wallet"), 0);
    assert_eq!(world.wallet(), 4_000);
}

/// Every product that goes through a bank, under every fault the simulator injects, ends in
/// the right final state with the books balanced and equal to the bank's.
#[test]
fn every_channel_product_ends_right_under_every_fault() {
    let world = World::start(&["bank_a"], &["--inquiry-not-found-final-ms", "1500"]);
    world.sim.call(
        "PUT",
        "/admin/channels/bank_a/callback",
        json!({"url": format!("http://{}/channel-callbacks/bank_a", world.addr())}),
    );
    world.fund_payroll(500_000, 100_000);
    let card_payment = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-src", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "100000", "card": CARD}),
    );
    assert_eq!(card_payment["status"], json!("succeeded"), "{card_payment}");
    let card_refunds = format!("/v1/payments/{}/refunds", card_payment["id"].as_str().expect("id"));

    let faults = [
        ("declined", json!({"declined_rate": 1.0}), "failed"),
        ("timeout", json!({"timeout_rate": 1.0, "hold_ms": 50}), "failed"),
        ("lost", json!({"lost_response_rate": 1.0, "hold_ms": 50}), "succeeded"),
        ("late", json!({"late_success_rate": 1.0, "late_delay_ms": 200}), "succeeded"),
    ];
    for (fault, operation_faults, expected) in faults {
        for product in ["topup", "withdrawal", "card_payment", "card_refund", "payout"] {
            let operation = match product {
                "topup" | "card_payment" => "debit",
                "card_refund" => "refund",
                _ => "payout",
            };
            world.sim.faults(
                "bank_a",
                json!({operation: operation_faults, "duplicate_callback_rate": 1.0}),
            );
            let reference = format!("{product}-{fault}");
            let order = match product {
                "topup" => world.topup(&reference, 1_000),
                "withdrawal" => world.ok(
                    "POST",
                    "/v1/withdrawals",
                    json!({"reference": reference, "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "1000"}),
                ),
                "card_payment" => world.ok(
                    "POST",
                    "/v1/payments",
                    json!({"reference": reference, "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "1000", "card": CARD}),
                ),
                "card_refund" => {
                    world.ok("POST", &card_refunds, json!({"reference": reference, "amount": "1000"}))
                }
                _ => {
                    let (status, batch) = world.call(
                        "POST",
                        "/v1/merchants/payroll/payout-batches",
                        json!({"reference": reference, "asset": "CNY", "items": [
                            {"reference": "only", "bank_account": CARD, "amount": "1000"}]}),
                    );
                    assert_eq!(status, 202, "{batch}");
                    batch["items"][0].clone()
                }
            };
            let id = order["id"].as_str().expect("id").to_owned();
            let done = world.wait_final(&id, Duration::from_secs(30));
            assert_eq!(done["status"], json!(expected), "{product} under {fault}: {done}");
            world.sim.faults("bank_a", json!({}));
        }
    }
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

#[test]
fn a_merchants_key_sees_and_acts_on_its_merchant_only() {
    let world = World::start(&["bank_a"], &[]);
    world.ok("POST", "/v1/merchants", json!({"id": "other-shop", "assets": ["CNY"]}));
    assert_eq!(world.topup("top-1", 9_000)["status"], json!("succeeded"));
    let theirs = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-other", "customer": "alice", "merchant": "other-shop", "asset": "CNY", "amount": "1000"}),
    );
    let created = world.ok(
        "POST",
        "/v1/keys",
        json!({"tenant": "platform", "mode": "live", "scopes": ["ledger:read", "ledger:write"], "merchant": "shop"}),
    );
    assert_eq!(created["merchant"], json!("shop"));
    let shop = world.share(created["secret"].as_str().expect("secret"));
    // Its own merchant's payments (the customer pays at the shop's till), refunds, reads.
    let ours = shop.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "o-shop", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "2000"}),
    );
    assert_eq!(ours["status"], json!("succeeded"), "{ours}");
    let ours_id = ours["id"].as_str().expect("id");
    shop.ok(
        "POST",
        &format!("/v1/payments/{ours_id}/refunds"),
        json!({"reference": "r-1", "amount": "500"}),
    );
    shop.ok("GET", &format!("/v1/orders/{ours_id}"), Value::Null);
    shop.ok("GET", "/v1/merchants/shop", Value::Null);
    let listed = shop.ok("GET", "/v1/orders?merchant=other-shop", Value::Null);
    let merchants: Vec<&Value> =
        listed["data"].as_array().expect("orders").iter().map(|o| &o["merchant"]).collect();
    assert!(!merchants.is_empty() && merchants.iter().all(|m| **m == json!("shop")), "{listed}");
    let events = shop.ok("GET", "/v1/events", Value::Null);
    assert!(events["data"]
        .as_array()
        .expect("events")
        .iter()
        .all(|e| e["data"]["merchant"] == json!("shop")));
    // Nothing of another merchant's, nothing of the platform's.
    let theirs_id = theirs["id"].as_str().expect("id");
    for (method, path, body) in [
        ("GET", format!("/v1/orders/{theirs_id}"), Value::Null),
        (
            "POST",
            format!("/v1/payments/{theirs_id}/refunds"),
            json!({"reference": "r-x", "amount": "1"}),
        ),
        ("GET", "/v1/merchants/other-shop".into(), Value::Null),
        (
            "POST",
            "/v1/payments".into(),
            json!({"reference": "o-x", "customer": "alice", "merchant": "other-shop", "asset": "CNY", "amount": "1"}),
        ),
    ] {
        let (status, body) = shop.call(method, &path, body);
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    for (method, path, body) in [
        ("GET", "/v1/customers/alice", Value::Null),
        ("POST", "/v1/customers", json!({"id": "mallory", "assets": ["CNY"]})),
        (
            "POST",
            "/v1/topups",
            json!({"reference": "t-x", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "1"}),
        ),
        (
            "POST",
            "/v1/withdrawals",
            json!({"reference": "w-x", "customer": "alice", "bank_account": CARD, "asset": "CNY", "amount": "1"}),
        ),
        ("GET", "/v1/webhook-endpoints", Value::Null),
        (
            "POST",
            "/v1/accounts",
            json!({"id": "77", "asset": "CNY", "chart_code": 2241, "rule": {"type": "unbounded"}}),
        ),
    ] {
        let (status, body) = shop.call(method, path, body);
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!("merchant_key_forbidden")),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(world.wallet(), 9_000 - 1_000 - 2_000 + 500);
}

/// The service is killed while a request of each kind is at the bank; after the restart,
/// inspection and status inquiry finish every one, and the bank did each exactly once.
#[test]
fn a_restart_while_any_request_is_at_the_bank_finishes_it_once() {
    let mut world = World::start(&["bank_a"], &[]);
    world.fund_payroll(100_000, 50_000);
    let card = world.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "card-src", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "20000", "card": CARD}),
    );
    let card_refunds = format!("/v1/payments/{}/refunds", card["id"].as_str().expect("id"));
    for (product, operation, path, body, status) in [
        (
            "topup",
            "debit",
            "/v1/topups".to_owned(),
            json!({"reference": "r-top", "customer": "alice", "card": CARD, "asset": "CNY", "amount": "3000"}),
            201,
        ),
        (
            "card_payment",
            "debit",
            "/v1/payments".to_owned(),
            json!({"reference": "r-card", "customer": "alice", "merchant": "shop", "asset": "CNY", "amount": "4000", "card": CARD}),
            201,
        ),
        (
            "card_refund",
            "refund",
            card_refunds.clone(),
            json!({"reference": "r-refund", "amount": "5000"}),
            201,
        ),
        (
            "payout",
            "payout",
            "/v1/merchants/payroll/payout-batches".to_owned(),
            json!({"reference": "r-batch", "asset": "CNY", "items": [{"reference": "one", "bank_account": CARD, "amount": "6000"}]}),
            202,
        ),
    ] {
        world.sim.faults("bank_a", json!({operation: {"latency": {"base_ms": 2_000}}}));
        let ops_before = world.sim.operations("bank_a").len();
        let (addr, key, body_text) = (world.addr().to_owned(), world.key.clone(), body.to_string());
        let path_in = path.clone();
        let pending =
            std::thread::spawn(move || request(&addr, "POST", &path_in, &key, &body_text));
        let deadline = Instant::now() + Duration::from_secs(10);
        while world.sim.operations("bank_a").len() == ops_before {
            assert!(Instant::now() < deadline, "{product} never reached the bank");
            std::thread::sleep(Duration::from_millis(20));
        }
        world.kill();
        let _ = pending.join();
        world.sim.faults("bank_a", json!({}));
        world.restart(&["--inspect-after-ms", "100"]);
        // The retried request (same reference) finds the stored order; inspection finishes it.
        let (code, order) = world.call("POST", &path, body);
        assert_eq!(code, if status == 202 { 202 } else { 200 }, "{product}: {order}");
        let id =
            if product == "payout" { order["items"][0]["id"].clone() } else { order["id"].clone() };
        let done = world.wait_final(id.as_str().expect("id"), Duration::from_secs(30));
        assert_eq!(done["status"], json!("succeeded"), "{product}: {done}");
        world.sim.assert_each_request_once("bank_a");
    }
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}

/// Two service nodes on one PostgreSQL receive the same requests at the same time, with
/// inspection racing on both: every order ends once, at the bank and in the books.
#[test]
fn two_nodes_driving_the_same_orders_do_everything_once() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_two_nodes_{}", std::process::id());
    let extra = ["--database-url", &url, "--database-schema", &schema, "--inspect-after-ms", "0"];
    let world = World::start(&["bank_a", "bank_b"], &extra);
    // The same settings: the same database, the same simulator.
    let (second, _) = start_with(&world.args, &[], false);
    let mut second = second;
    world.sim.faults("bank_a", json!({"debit": {"lost_response_rate": 0.3, "hold_ms": 50}}));
    let nodes = [world.addr().to_owned(), second.addr.clone()];
    let mut requests = Vec::new();
    for n in 0..30 {
        requests.push((
            "/v1/topups",
            json!({"reference": format!("top-{n}"), "customer": "alice",
            "card": CARD, "asset": "CNY", "amount": "1000"}),
        ));
    }
    for n in 0..20 {
        requests.push((
            "/v1/payments",
            json!({"reference": format!("pay-{n}"), "customer": "alice",
            "merchant": "shop", "asset": "CNY", "amount": "500"}),
        ));
        requests.push((
            "/v1/withdrawals",
            json!({"reference": format!("wd-{n}"), "customer": "alice",
            "bank_account": CARD, "asset": "CNY", "amount": "300"}),
        ));
    }
    // Each request goes to both nodes at once.
    let threads: Vec<_> = requests
        .into_iter()
        .flat_map(|(path, body)| {
            let key = world.key.clone();
            nodes.clone().map(|node| {
                let (key, body) = (key.clone(), body.to_string());
                std::thread::spawn(move || {
                    request(&node, "POST", path, &key, &body).expect("request")
                })
            })
        })
        .collect();
    for thread in threads {
        let (status, body) = thread.join().expect("thread");
        assert!(status == 200 || status == 201 || status == 409, "{status} {body}");
    }
    // Every order ends final, whichever node finishes it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let orders = world.ok("GET", "/v1/orders?limit=500", Value::Null);
        let all = orders["data"].as_array().expect("orders").clone();
        if all.len() == 70 && all.iter().all(|o| o["final"] == json!(true)) {
            break all;
        }
        assert!(Instant::now() < deadline, "not all final: {}", all.len());
        std::thread::sleep(Duration::from_millis(200));
    };
    for channel in ["bank_a", "bank_b"] {
        world.sim.assert_each_request_once(channel);
        world.assert_matches_simulator(channel);
    }
    let sum = |kind: &str| -> i64 {
        orders
            .iter()
            .filter(|o| o["kind"] == json!(kind) && o["status"] == json!("succeeded"))
            .map(|o| minor(&o["amount"]) as i64)
            .sum()
    };
    assert_eq!(world.wallet(), sum("topup") - sum("payment") - sum("withdrawal"));
    world.assert_balanced();
    let _ = second.child.kill();
    let _ = second.child.wait();
    drop(world);
    drop_schemas(&url, &schema);
}
