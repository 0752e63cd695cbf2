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
    pub(crate) key: String,
    pub(crate) args: Vec<String>,
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
    pub(crate) fn fund_payroll(&self, topup: u64, paid: u64) {
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

    pub(crate) fn wallet(&self) -> i64 {
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

    pub(crate) fn kill(&mut self) {
        let mut server = self.server.take().expect("server running");
        let _ = server.child.kill();
        let _ = server.child.wait();
    }

    pub(crate) fn restart(&mut self, extra: &[&str]) {
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
