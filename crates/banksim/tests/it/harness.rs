//! Starting a simulator process, signing requests the way `docs/banksim.md` says (with our
//! own HMAC code, not the simulator's), and a callback receiver.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

pub const SECRET_A: &str = "secret-a";
pub const SECRET_B: &str = "secret-b";
/// Longer than any hold in the tests, so a dropped connection is seen as a dropped
/// connection, not as our own timeout.
pub const CLIENT_TIMEOUT_MS: u64 = 5_000;

/// The tests' channel set: fee schedules chosen to make rounding visible.
pub fn test_config() -> Value {
    json!({
        "callbacks": { "attempts_max": 4, "backoff_ms": 50, "backoff_max_ms": 200, "timeout_ms": 1000 },
        "channels": {
            "bank_a": {
                "secret": SECRET_A,
                "reserve_initial_minor": "1000000",
                "fees": {
                    "debit": { "fixed_minor": 10, "bps": 25, "rounding": "up" },
                    "payout": { "fixed_minor": 100, "bps": 0 },
                    "refund": { "fixed_minor": 5, "bps": 0 }
                }
            },
            "bank_b": {
                "secret": SECRET_B,
                "reserve_initial_minor": "1000000",
                "fees": { "debit": { "fixed_minor": 0, "bps": 30, "rounding": "down" } }
            }
        }
    })
}

pub struct Sim {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// The test channel set, no faults, seed 42.
    pub async fn start() -> Sim {
        Sim::start_with(test_config(), 42).await
    }

    pub async fn start_with(config: Value, seed: u64) -> Sim {
        Sim::start_args(config, seed, &[]).await
    }

    /// With extra command-line arguments after the standard ones.
    pub async fn start_args(config: Value, seed: u64, extra_args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banksim.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_qianbao-banksim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--no-faults", "--seed"])
            .arg(seed.to_string())
            .arg("--config")
            .arg(&path)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Keep draining stderr after the start-up line, or a full pipe would block the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = line.strip_prefix("banksim listening on ") {
                    let _ = address_tx.send(base.to_owned());
                } else {
                    eprintln!("[banksim] {line}");
                }
            }
        });
        let base = address_rx.recv_timeout(Duration::from_secs(20)).expect("the simulator starts");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(CLIENT_TIMEOUT_MS))
            .build()
            .unwrap();
        Sim { child, base, client, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A request signed with `secret`, as the platform sends it.
    pub async fn signed_with(
        &self,
        secret: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let timestamp = unix_s().to_string();
        let signature = sign(secret, &format!("{timestamp}\n{method}\n{path}\n"), &body);
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-banksim-timestamp", timestamp)
            .header("x-banksim-signature", signature)
            .body(body)
            .send()
            .await
    }

    pub async fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let secret = if path.starts_with("/channels/bank_b/") { SECRET_B } else { SECRET_A };
        self.signed_with(secret, method, path, body).await
    }

    /// POSTs an operation (`debits`, `payouts`, `refunds`) to bank_a; returns the
    /// connection error as `Err`.
    pub async fn post_op(
        &self,
        verb: &str,
        body: Value,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        self.post_op_on("bank_a", verb, body).await
    }

    pub async fn post_op_on(
        &self,
        channel: &str,
        verb: &str,
        body: Value,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let path = format!("/channels/{channel}/{verb}");
        let response = self.signed(reqwest::Method::POST, &path, Some(&body)).await?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        Ok((status, response.json().await?))
    }

    pub async fn debit(
        &self,
        request_id: &str,
        account: &str,
        amount_minor: u64,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        self.post_op("debits", debit_body(request_id, account, amount_minor)).await
    }

    pub async fn query(&self, channel: &str, request_id: &str) -> (StatusCode, Value) {
        let path = format!("/channels/{channel}/operations/{request_id}");
        let response = self.signed(reqwest::Method::GET, &path, None).await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap())
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap())
    }

    pub async fn open_account(&self, channel: &str, account: &str, initial_minor: u64) {
        let body =
            json!({ "account": account, "initial_balance_minor": initial_minor.to_string() });
        let (status, _) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/channels/{channel}/accounts"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    pub async fn set_faults(&self, channel: &str, faults: Value) {
        let (status, body) = self
            .admin(reqwest::Method::PUT, &format!("/admin/channels/{channel}/faults"), Some(faults))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn set_callback(&self, channel: &str, url: &str) {
        let path = format!("/admin/channels/{channel}/callback");
        let (status, _) =
            self.admin(reqwest::Method::PUT, &path, Some(json!({ "url": url }))).await;
        assert_eq!(status, StatusCode::OK);
    }

    pub async fn books(&self, channel: &str) -> Books {
        let (_, sheet) = self
            .admin(reqwest::Method::GET, &format!("/admin/channels/{channel}/accounts"), None)
            .await;
        let minor = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
        let customers = sheet["customers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, balance)| (name.clone(), minor(balance)))
            .collect();
        let books = Books {
            customers,
            reserve_minor: minor(&sheet["reserve_minor"]),
            fee_income_minor: minor(&sheet["fee_income_minor"]),
            minted_minor: minor(&sheet["minted_minor"]),
        };
        let total: u64 =
            books.customers.values().sum::<u64>() + books.reserve_minor + books.fee_income_minor;
        assert_eq!(total, books.minted_minor, "money is conserved: {sheet}");
        books
    }

    pub async fn operations(&self, channel: &str) -> Vec<Value> {
        let (_, log) = self
            .admin(reqwest::Method::GET, &format!("/admin/channels/{channel}/operations"), None)
            .await;
        log["operations"].as_array().unwrap().clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Books {
    pub customers: std::collections::BTreeMap<String, u64>,
    pub reserve_minor: u64,
    pub fee_income_minor: u64,
    pub minted_minor: u64,
}

impl Books {
    pub fn customer(&self, account: &str) -> u64 {
        self.customers[account]
    }
}

pub fn debit_body(request_id: &str, account: &str, amount_minor: u64) -> Value {
    json!({ "request_id": request_id, "account": account, "amount_minor": amount_minor.to_string(), "currency": "CNY" })
}

pub fn refund_body(request_id: &str, debit_request_id: &str, amount_minor: u64) -> Value {
    json!({
        "request_id": request_id,
        "debit_request_id": debit_request_id,
        "amount_minor": amount_minor.to_string(),
        "currency": "CNY"
    })
}

pub fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn sign(secret: &str, prefix: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(prefix.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn minor(value: &Value) -> u64 {
    value.as_str().unwrap().parse().unwrap()
}

/// One callback as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
    /// The receiver's answer to it.
    pub answered: StatusCode,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn signature_is_valid(&self, secret: &str) -> bool {
        sign(secret, &format!("{}\n", self.timestamp), &self.body) == self.signature
    }
}

/// A tiny axum server that records every callback and fails the first `failures` of them.
pub struct Receiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn start(failures: u32) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let failures_left = Arc::new(AtomicU32::new(failures));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                let failures_left = failures_left.clone();
                async move {
                    let fail = failures_left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let answered =
                        if fail { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let _ = tx.send(Received {
                        timestamp: header("x-banksim-timestamp"),
                        signature: header("x-banksim-signature"),
                        body,
                        answered,
                    });
                    answered
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, received: rx }
    }

    /// The next callback, within a bounded wait.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a callback arrives in time")
            .expect("the receiver is running")
    }

    /// Whether another callback arrives within `within_ms`.
    pub async fn another_within(&mut self, within_ms: u64) -> Option<Received> {
        tokio::time::timeout(Duration::from_millis(within_ms), self.received.recv())
            .await
            .ok()
            .flatten()
    }
}

/// `join_all` without a futures dependency: spawn nothing, poll all on this task.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}
