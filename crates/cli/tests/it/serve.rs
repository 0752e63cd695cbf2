//! `qianbao serve` as a process: driven over a socket, stopped with SIGTERM mid-load,
//! restarted, and every acknowledged transfer must still be there and the journal verify.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Acknowledged transfers before the SIGTERM: enough that it lands mid-load.
const ACKS_BEFORE_TERM: usize = 300;
const SUBMITTERS: usize = 8;

pub struct Server {
    pub child: Child,
    pub addr: String,
}

/// Starts the server; on a first start, also returns the admin key it printed.
fn start(store_args: &[String], first_start: bool) -> (Server, Option<String>) {
    start_with(store_args, &[], first_start)
}

/// [`start`] with extra environment variables.
pub fn start_with(
    args: &[String],
    envs: &[(&str, &str)],
    first_start: bool,
) -> (Server, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qianbao serve");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "server exited before listening"
        );
        if let Some(rest) = line.trim().strip_prefix("qianbao listening on http://") {
            break rest.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    // The key is printed before the server listens; a restart prints none.
    let key = first_start.then(|| {
        let timeout = std::time::Duration::from_secs(10);
        std::iter::from_fn(|| printed.recv_timeout(timeout).ok())
            .find(|line| line.starts_with("qb_live_"))
            .expect("the first start prints the admin key")
    });
    (Server { child, addr }, key)
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

pub fn setup(addr: &str, key: &str) {
    for (path, body) in [
        ("/v1/assets", r#"{"code":"CNY","scale":2}"#),
        ("/v1/chart", r#"{"code":1002,"name":"bank deposits","class":"asset"}"#),
        ("/v1/chart", r#"{"code":2241,"name":"customer wallets","class":"liability"}"#),
        (
            "/v1/accounts",
            r#"{"id":"1","asset":"CNY","chart_code":1002,"rule":{"type":"unbounded"}}"#,
        ),
        (
            "/v1/accounts",
            r#"{"id":"2","asset":"CNY","chart_code":2241,"rule":{"type":"debits_within_credits","overdraft_minor":"0"}}"#,
        ),
    ] {
        let (status, body) = request(addr, "POST", path, key, body).expect("setup request");
        assert!(status == 200 || status == 201, "{path}: {status} {body}");
    }
}

fn load_until_term(server: &Server, key: &str) -> Vec<u64> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..SUBMITTERS as u64)
        .map(|submitter| {
            let (addr, key, acked) = (server.addr.clone(), key.to_string(), acked.clone());
            std::thread::spawn(move || {
                for n in 0..100_000u64 {
                    let id = 1_000_000 + submitter * 100_000 + n;
                    let body = format!(
                        r#"{{"type":"post","id":"{id}","debit_account_id":"1","credit_account_id":"2","asset":"CNY","amount":"1"}}"#
                    );
                    match request(&addr, "POST", "/v1/transfers", &key, &body) {
                        Ok((201, _)) => acked.lock().expect("lock").push(id),
                        // Refused or reset once the server stops: the load is over.
                        Ok((0, _)) | Err(_) => return,
                        Ok((503, _)) => return,
                        Ok((status, body)) => panic!("unexpected {status}: {body}"),
                    }
                }
            })
        })
        .collect();
    loop {
        if acked.lock().expect("lock").len() >= ACKS_BEFORE_TERM {
            break;
        }
        std::thread::yield_now();
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for thread in threads {
        thread.join().expect("submitter");
    }
    let acked = acked.lock().expect("lock").clone();
    acked
}

fn sigterm_mid_load(store_args: Vec<String>) {
    let (mut server, key) = start(&store_args, true);
    let key = key.expect("first start prints the admin key");
    setup(&server.addr, &key);
    let acked = load_until_term(&server, &key);
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    assert!(acked.len() >= ACKS_BEFORE_TERM);

    let (mut server, _) = start(&store_args, false);
    for id in &acked {
        let (status, body) =
            request(&server.addr, "GET", &format!("/v1/transfers/{id}"), &key, "").expect("get");
        assert_eq!(status, 200, "acknowledged transfer {id} missing after restart: {body}");
    }
    let (status, account) =
        request(&server.addr, "GET", "/v1/accounts/2", &key, "").expect("account");
    assert_eq!(status, 200);
    let (status, report) =
        request(&server.addr, "POST", "/v1/journal/verify", &key, "").expect("verify");
    assert_eq!(status, 200);
    assert!(report.contains(r#""ok":true"#), "journal verifies after SIGTERM: {report}");
    // Every acknowledged transfer moved exactly one fen; unacknowledged ones may have too
    // (answered after the client gave up), but never more than were sent.
    let credited: u64 = account
        .split(r#""credits_posted":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("credits_posted");
    assert!(credited >= acked.len() as u64, "credited {credited} < acknowledged {}", acked.len());
    let _ = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    let _ = server.child.wait();
}

#[test]
fn sigterm_mid_load_keeps_every_acknowledged_transfer_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    sigterm_mid_load(vec!["--data-dir".into(), dir.path().display().to_string()]);
}

#[test]
fn sigterm_mid_load_keeps_every_acknowledged_transfer_on_postgres() {
    let Some(url) = crate::payments::postgres_url() else { return };
    let schema = format!("qb_test_serve_{}", std::process::id());
    let target = store::PgTarget::new(url.clone(), schema.clone());
    sigterm_mid_load(vec!["--database-url".into(), url, "--database-schema".into(), schema]);
    store::postgres::drop_schema(&target).expect("drop schema");
    let test_book = store::PgTarget::new(target.url.clone(), format!("{}_test", target.schema));
    store::postgres::drop_schema(&test_book).expect("drop the test book's schema");
}

/// Two nodes on one PostgreSQL, the journal-first engine: the second waits as a standby while
/// the first holds the book, a direct node is refused, and when the first dies (SIGKILL) the
/// standby takes over by replay within the lease and serves every transfer the first
/// acknowledged.
#[test]
fn a_standby_takes_over_the_postgres_journal_when_its_holder_dies() {
    let Some(url) = crate::payments::postgres_url() else { return };
    let schema = format!("qb_test_standby_{}", std::process::id());
    let target = store::PgTarget::new(url.clone(), schema.clone());
    let node = |name: &str, engine: &str| -> Vec<String> {
        ["--database-url", &url, "--database-schema", &schema, "--ledger-engine", engine]
            .into_iter()
            .chain(["--ledger-lease-ms", "1000", "--node-name", name])
            .map(str::to_string)
            .collect()
    };
    let (mut holder, key) = start(&node("a", "journal"), true);
    let key = key.expect("first start prints the admin key");
    setup(&holder.addr, &key);
    let mut acked = Vec::new();
    for id in 1_000u64..1_200 {
        let body = format!(
            r#"{{"type":"post","id":"{id}","debit_account_id":"1","credit_account_id":"2","asset":"CNY","amount":"1"}}"#
        );
        let (status, body) =
            request(&holder.addr, "POST", "/v1/transfers", &key, &body).expect("post");
        assert_eq!(status, 201, "{body}");
        acked.push(id);
    }

    // The standby answers health checks while the holder lives, and nothing else.
    let mut standby = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(node("b", "journal"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the standby");
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = BufReader::new(standby.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let wait = std::time::Duration::from_secs(60);
    let said_next = |prefix: &str| -> String {
        std::iter::from_fn(|| said.recv_timeout(wait).ok())
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("the standby never said {prefix:?}"))
    };
    let bound = said_next("qianbao bound to http://");
    let addr = bound.split(';').next().expect("address").to_string();
    assert_eq!(request(&addr, "GET", "/healthz", "", "").expect("healthz"), (200, "ok".into()));
    let (status, _) = request(&addr, "GET", "/readyz", "", "").expect("readyz");
    assert_eq!(status, 503, "a standby is not ready");
    let (status, body) =
        request(&addr, "POST", "/v1/transfers", &key, "{}").expect("post to the standby");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""code":"standby""#), "{body}");
    assert!(
        said.recv_timeout(std::time::Duration::from_secs(3))
            .map_or(true, |line| !line.contains("listening")),
        "the standby served while the holder held the book"
    );
    // A direct node is refused: it would fork the chain.
    let direct = Command::new(env!("CARGO_BIN_EXE_qianbao"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(node("c", "direct"))
        .output()
        .expect("run a direct node");
    assert!(!direct.status.success(), "a direct node started beside a journal node");
    let stderr = String::from_utf8_lossy(&direct.stderr);
    assert!(stderr.contains("journal-first engine"), "{stderr}");

    holder.child.kill().expect("SIGKILL the holder");
    let _ = holder.child.wait();
    let listening = said_next("qianbao listening on http://");
    assert_eq!(listening, addr, "the standby serves where it stood by");
    let mut standby = Server { child: standby, addr };
    for id in &acked {
        let (status, body) =
            request(&standby.addr, "GET", &format!("/v1/transfers/{id}"), &key, "").expect("get");
        assert_eq!(status, 200, "acknowledged transfer {id} missing after the takeover: {body}");
    }
    let body = r#"{"type":"post","id":"5000","debit_account_id":"1","credit_account_id":"2","asset":"CNY","amount":"1"}"#;
    let (status, body) = request(&standby.addr, "POST", "/v1/transfers", &key, body).expect("post");
    assert_eq!(status, 201, "the new holder posts: {body}");
    let (status, report) =
        request(&standby.addr, "POST", "/v1/journal/verify", &key, "").expect("verify");
    assert_eq!(status, 200);
    assert!(report.contains(r#""ok":true"#), "the books verify after the takeover: {report}");
    let _ = Command::new("kill").args(["-TERM", &standby.child.id().to_string()]).status();
    let _ = standby.child.wait();
    store::postgres::drop_schema(&target).expect("drop schema");
    let test_book = store::PgTarget::new(target.url.clone(), format!("{}_test", target.schema));
    store::postgres::drop_schema(&test_book).expect("drop the test book's schema");
}
