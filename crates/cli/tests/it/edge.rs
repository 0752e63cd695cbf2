//! The service's edge as a process: a retry after a crash, the last admin key and its
//! recovery on the host, and secrets that never reach the data directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use access::AccessStore;
use sha2::{Digest, Sha256};

use crate::serve::{setup, start_with, Server};

/// A request with extra headers; answers status, headers and body.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let extra: String =
        headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `qianbao keys create` on the host; returns the printed secret.
fn create_key_offline(data_dir: &Path, admin: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qianbao"));
    command.args(["keys", "create", "--data-dir"]).arg(data_dir).args(["--reason", "test"]);
    if admin {
        command.arg("--admin");
    }
    let output = command.output().expect("run keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("api key created offline"), "the audit line: {stderr}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn serve(data_dir: &Path, node: &str) -> Server {
    let args = [
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--node-name".into(),
        node.into(),
    ];
    start_with(&args, &[], false).0
}

fn stop(mut server: Server) {
    // SIGKILL: the process gets no chance to tidy up.
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
}

const TRANSFER: &str = r#"{"type":"post","id":"77","debit_account_id":"1","credit_account_id":"2","asset":"CNY","amount":"5"}"#;

#[test]
fn a_retry_after_a_crash_is_served_at_once_and_acts_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key_offline(dir.path(), true);
    let server = serve(dir.path(), "node-1");
    setup(&server.addr, &admin);
    stop(server);
    // What a kill -9 mid-request leaves: this node's claim on the key, never completed.
    // (A claim made by another, live node is left alone: that request may still finish.)
    let access = store::SqliteAccess::open(dir.path().join("access.db")).expect("access.db");
    let key = access
        .key_by_hash(&access::Secret::new(admin.clone()).hash())
        .expect("lookup")
        .expect("the key");
    let scope = access::IdempotencyScope { tenant: key.tenant.clone(), key_id: key.id.clone() };
    let hash: [u8; 32] = Sha256::new()
        .chain_update(b"POST /v1/transfers")
        .chain_update([0])
        .chain_update(TRANSFER.as_bytes())
        .finalize()
        .into();
    let now_us = ledger::Clock::now(&ledger::SystemClock).0;
    for (idempotency_key, node) in [("in-flight", "node-1"), ("elsewhere", "node-2")] {
        let claim = access.claim_idempotency(&scope, idempotency_key, hash, now_us, node);
        assert_eq!(claim.expect("claim"), access::Claim::New);
    }
    drop(access);

    let server = serve(dir.path(), "node-1");
    let headers = [("Idempotency-Key", "in-flight")];
    let (status, _, body) = call(&server.addr, "POST", "/v1/transfers", &admin, &headers, TRANSFER);
    assert_eq!(status, 201, "served at once, not 409 for a minute: {body}");
    let (status, head, again) =
        call(&server.addr, "POST", "/v1/transfers", &admin, &headers, TRANSFER);
    assert_eq!((status, json(&again)), (201, json(&body)));
    assert!(head.contains("idempotent-replayed: true"), "{head}");
    let (_, _, account) = call(&server.addr, "GET", "/v1/accounts/2", &admin, &[], "");
    assert_eq!(json(&account)["balances"]["credits_posted"], "5", "moved once: {account}");
    // Another node's claim is still in flight.
    let elsewhere = [("Idempotency-Key", "elsewhere")];
    let (status, _, body) =
        call(&server.addr, "POST", "/v1/transfers", &admin, &elsewhere, TRANSFER);
    assert_eq!(status, 409, "{body}");
    assert_eq!(json(&body)["error"]["code"], "idempotency_key_in_use");
    stop(server);
}

#[test]
fn the_last_admin_key_stays_and_the_host_can_make_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = create_key_offline(dir.path(), true);
    let server = serve(dir.path(), "node-1");
    let (_, _, keys) = call(&server.addr, "GET", "/v1/keys", &first, &[], "");
    let first_id = json(&keys)["data"][0]["id"].as_str().expect("id").to_string();
    let path = format!("/v1/keys/{first_id}");
    let (status, _, body) = call(&server.addr, "DELETE", &path, &first, &[], "");
    assert_eq!(status, 409, "{body}");
    assert_eq!(json(&body)["error"]["code"], "last_admin_key");
    let (status, _, _) = call(&server.addr, "GET", "/v1/keys", &first, &[], "");
    assert_eq!(status, 200, "the key still works");
    stop(server);
    // The host makes a second admin key; then the first can go, and the second cannot.
    let second = create_key_offline(dir.path(), true);
    let server = serve(dir.path(), "node-1");
    let (status, _, body) = call(&server.addr, "DELETE", &path, &second, &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = call(&server.addr, "GET", "/v1/keys", &first, &[], "");
    assert_eq!(status, 401);
    let (_, _, keys) = call(&server.addr, "GET", "/v1/keys", &second, &[], "");
    let second_id = json(&keys)["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["revoked"] != true && k["id"] != first_id.as_str())
        .and_then(|k| k["id"].as_str())
        .expect("the second key")
        .to_string();
    let (status, _, body) =
        call(&server.addr, "DELETE", &format!("/v1/keys/{second_id}"), &second, &[], "");
    assert_eq!(status, 409, "{body}");
    stop(server);
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn no_key_secret_reaches_the_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key_offline(dir.path(), true);
    let server = serve(dir.path(), "node-1");
    let headers = [("Idempotency-Key", "new-key")];
    let body = r#"{"tenant":"acme","mode":"live","scopes":["ledger:read"]}"#;
    let (status, _, created) = call(&server.addr, "POST", "/v1/keys", &admin, &headers, body);
    assert_eq!(status, 201, "{created}");
    let secret = json(&created)["secret"].as_str().expect("the secret, once").to_string();
    let (status, head, replay) = call(&server.addr, "POST", "/v1/keys", &admin, &headers, body);
    assert_eq!(status, 201);
    assert!(head.contains("idempotent-replayed: true"), "{head}");
    let mut expected = json(&created);
    expected.as_object_mut().expect("object").remove("secret");
    assert_eq!(json(&replay), expected, "the replay has every field but the secret");
    // A webhook endpoint's signing secret is replayed without it too.
    let headers = [("Idempotency-Key", "new-endpoint")];
    let endpoint = r#"{"url":"https://hooks.example.com/qianbao"}"#;
    let path = "/v1/webhook-endpoints";
    let (status, _, first) = call(&server.addr, "POST", path, &admin, &headers, endpoint);
    assert_eq!(status, 201, "{first}");
    let signing = json(&first)["secret"].as_str().expect("signing secret").to_string();
    let (_, _, replay) = call(&server.addr, "POST", path, &admin, &headers, endpoint);
    assert!(json(&replay).get("secret").is_none(), "{replay}");
    stop(server);
    for (path, bytes) in files(dir.path()) {
        assert!(!contains(&bytes, &secret), "a key's secret in {path}");
        assert!(!contains(&bytes, &admin), "the admin key's secret in {path}");
        // The signing secret must be kept to sign deliveries, but only by the webhook store.
        if path.ends_with("access.db") || path.contains("access.db-") {
            assert!(!contains(&bytes, &signing), "a signing secret in {path}");
        }
    }
}

#[test]
fn a_tenant_reads_its_customers_accounts_under_the_ids_it_is_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key_offline(dir.path(), true);
    let server = serve(dir.path(), "node-1");
    let addr = server.addr.clone();
    let key_for = |tenant: &str| {
        let body = format!(
            r#"{{"tenant":"{tenant}","mode":"live","scopes":["ledger:read","ledger:write"]}}"#
        );
        let (status, _, created) = call(&addr, "POST", "/v1/keys", &admin, &[], &body);
        assert_eq!(status, 201, "{created}");
        json(&created)["secret"].as_str().expect("secret").to_string()
    };
    let (acme, globex) = (key_for("acme"), key_for("globex"));
    let customer = r#"{"id":"alice","assets":["CNY","POINTS"]}"#;
    let (status, _, body) = call(&addr, "POST", "/v1/customers", &acme, &[], customer);
    assert_eq!(status, 201, "{body}");
    let grant = r#"{"reference":"welcome","points":"300"}"#;
    let (status, _, body) = call(&addr, "POST", "/v1/customers/alice/points", &acme, &[], grant);
    assert!(status == 200 || status == 201, "{body}");
    let (_, _, view) = call(&addr, "GET", "/v1/customers/alice", &acme, &[], "");
    let points = json(&view)["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .find(|line| line["asset"] == "POINTS")
        .and_then(|line| line["account_id"].as_str())
        .expect("the points account")
        .to_string();
    // The owning tenant reads it, its entries and its balance.
    let (status, _, account) =
        call(&addr, "GET", &format!("/v1/accounts/{points}"), &acme, &[], "");
    assert_eq!(status, 200, "{account}");
    assert_eq!(json(&account)["balances"]["credits_posted"], "300");
    assert_eq!(json(&account)["id"], points.as_str());
    let (status, _, entries) =
        call(&addr, "GET", &format!("/v1/accounts/{points}/entries"), &acme, &[], "");
    assert_eq!(status, 200, "{entries}");
    let transfer = json(&entries)["data"][0]["transfer_id"].as_str().expect("id").to_string();
    let (status, _, seen) =
        call(&addr, "GET", &format!("/v1/transfers/{transfer}"), &acme, &[], "");
    assert_eq!(status, 200, "{seen}");
    assert_eq!(json(&seen)["credit_account_id"], points.as_str());
    // Money on it moves through orders only: a raw ledger transfer from it is refused.
    let raw = format!(
        r#"{{"type":"post","id":"5","debit_account_id":"{points}","credit_account_id":"{points}","asset":"POINTS","amount":"1"}}"#
    );
    let (status, _, body) = call(&addr, "POST", "/v1/transfers", &acme, &[], &raw);
    assert_eq!(status, 404, "{body}");
    // Another tenant does not see it.
    let (status, _, _) = call(&addr, "GET", &format!("/v1/accounts/{points}"), &globex, &[], "");
    assert_eq!(status, 404);
    stop(server);
}
