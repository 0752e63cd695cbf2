//! Webhooks may not reach the platform's own network (SSRF). Every spelling of a loopback,
//! private or metadata host is refused when an endpoint is created, and, for an endpoint in
//! the store anyway (made before the check, or a DNS name that resolves inward), when a
//! delivery is attempted: before any connection, with one error text whatever the target.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use axum::http::StatusCode;
use channels::gateway::SystemMillis;
use executor::{Executor, ExecutorConfig, NewParty, OrderStore, PartyKind, WalletTransferRequest};
use money::{Amount, AssetCode};
use serde_json::json;
use webhooks::egress::REFUSED;
use webhooks::{Deliverer, DeliveryState, EgressPolicy, Endpoint, RetryPolicy, WebhookStore};

use crate::support::*;

/// Hosts that are, or resolve to, loopback, private, link-local or metadata addresses, in
/// the spellings a string check misses. `P` is a port where the test listens on loopback.
const NON_PUBLIC_URLS: &[&str] = &[
    "http://127.0.0.1:P/",
    "http://[::1]:P/",
    "http://2130706433:P/",
    "http://0x7f000001:P/",
    "http://127.1:P/",
    "http://0177.0.0.1:P/",
    "http://0:P/",
    "http://127.0.0.1.:P/",
    "http://%31%32%37.0.0.1:P/",
    "http://[::ffff:7f00:1]:P/",
    "http://[::ffff:127.0.0.1]:P/",
    "http://localhost:P/",
    "http://localhost.:P/",
    "http://LocalHost:P/hooks",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://169.254.169.254./",
    "http://100.100.100.200/",
    "http://10.0.0.1:P/",
    "http://192.168.1.1/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
];

/// Of [`NON_PUBLIC_URLS`], the DNS names: refused when resolved, so retried (an answer can
/// change); the rest name an address and fail at once.
fn is_name(url: &str) -> bool {
    url.to_ascii_lowercase().contains("localhost")
}

fn at_port(url: &str, port: u16) -> String {
    url.replace(":P/", &format!(":{port}/"))
}

async fn create(app: &App, key: &str, url: &str) -> Resp {
    app.post("/v1/webhook-endpoints", key, &json!({ "url": url })).await
}

#[tokio::test]
async fn non_public_hosts_are_refused_at_creation_in_every_spelling() {
    let mut app = App::new();
    app.serve_webhooks(false);
    let key = app.rw_key("shop");
    let mut accepted = Vec::new();
    for url in NON_PUBLIC_URLS {
        let r = create(&app, &key, &at_port(url, 8080)).await;
        if (r.status.as_u16(), r.code()) != (422, "url_not_allowed") {
            accepted.push(format!("{url}: {r:?}"));
            continue;
        }
        assert_error(&r, 422, "url_not_allowed");
        assert_eq!(r.json["error"]["param"], json!("url"), "{url}");
    }
    assert!(accepted.is_empty(), "not refused:\n{}", accepted.join("\n"));
    // Not http(s), no host, whitespace, too long: malformed, 400.
    let too_long = format!("https://shop.example/{}", "a".repeat(2_048));
    for url in ["ftp://8.8.8.8/", "http://", "http:// 8.8.8.8/", "javascript:1", &too_long] {
        assert_error(&create(&app, &key, url).await, 400, "invalid_url");
    }
    // The documented shape, but a host or port no URL parser reads: 422.
    for url in ["http://[::1", "http://:80/", "http://a:99999/"] {
        assert_error(&create(&app, &key, url).await, 422, "url_unparseable");
    }
    // Public addresses, and DNS names: a name is checked at each delivery, against the
    // addresses it then resolves to.
    for url in [
        "https://shop.example/hooks",
        "http://8.8.8.8:8080/",
        "http://[2606:4700::1111]/",
        "http://hooks.internal.example/",
    ] {
        let r = create(&app, &key, url).await;
        assert_eq!(r.status, StatusCode::CREATED, "{url}: {r:?}");
        assert_eq!(r.json["url"], json!(url));
    }
    let listed = app.get("/v1/webhook-endpoints", &key).await;
    assert_eq!(listed.json["data"].as_array().map(Vec::len), Some(4), "{listed:?}");
}

#[tokio::test]
async fn the_development_flag_allows_private_hosts_at_creation() {
    let mut app = App::new();
    app.serve_webhooks(true);
    let key = app.rw_key("shop");
    for url in
        ["http://127.0.0.1:P/", "http://localhost:P/", "http://2130706433:P/", "http://[::1]:P/"]
    {
        let r = create(&app, &key, &at_port(url, 8080)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{url}: {r:?}");
    }
}

// ---- delivery -----------------------------------------------------------------------------

/// A loopback port whose connections the test counts: on 127.0.0.1, and on [::1] where the
/// machine has IPv6.
struct Listener {
    port: u16,
    sockets: Vec<TcpListener>,
}

impl Listener {
    fn bind() -> Listener {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
        let port = v4.local_addr().expect("local address").port();
        let mut sockets = vec![v4];
        sockets.extend(TcpListener::bind(("::1", port)).ok());
        for socket in &sockets {
            socket.set_nonblocking(true).expect("non-blocking");
        }
        Listener { port, sockets }
    }

    /// Connections that arrived and were not yet taken.
    fn arrived(&self) -> usize {
        let mut n = 0;
        for socket in &self.sockets {
            // Bounded: the test makes far fewer connections than this.
            for _ in 0..1_000 {
                match socket.accept() {
                    Ok(_) => n += 1,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => panic!("accept: {error}"),
                }
            }
        }
        n
    }
}

/// The tenant `shop` with one endpoint per URL, written straight into the store (as if made
/// before the creation check existed), and one order event, so each endpoint gets one
/// delivery. Returns the endpoints' URLs by id.
async fn endpoints_with_one_event(
    app: &App,
    webhooks: &dyn WebhookStore,
    urls: &[String],
) -> HashMap<String, String> {
    let mut by_id = HashMap::new();
    for (n, url) in urls.iter().enumerate() {
        let endpoint = Endpoint {
            id: format!("we_{n:016x}"),
            tenant: "shop".into(),
            url: url.clone(),
            secret: "whsec_test".into(),
            enabled: true,
            created_at_ms: 1,
        };
        webhooks.create_endpoint(&endpoint).expect("storing an endpoint");
        by_id.insert(endpoint.id, url.clone());
    }
    // A wallet transfer from an empty wallet fails: one final state, one event.
    let r = app.post("/v1/assets", &app.admin, &json!({"code": CNY, "scale": 2})).await;
    assert!(r.status.is_success(), "{r:?}");
    let orders: Arc<dyn OrderStore> =
        Arc::new(store::SqliteOrderStore::open(app.orders_path()).expect("opening orders.db"));
    let executor = Executor::new(
        orders,
        app.state.ledger.clone(),
        None,
        Arc::new(SystemMillis),
        ExecutorConfig::default(),
    );
    executor.bootstrap().await.expect("chart of accounts");
    let cny = AssetCode::new(CNY).expect("asset code");
    for id in ["alice", "bob"] {
        let party = NewParty {
            kind: PartyKind::Customer,
            id: id.into(),
            name: String::new(),
            assets: vec![cny],
            fee_bps: 0,
            settle_after_days: 0,
            unsettled_layout: Default::default(),
        };
        executor.open_party("shop", party).await.expect("opening a customer");
    }
    let request = WalletTransferRequest {
        reference: "gift".into(),
        from: "bob".into(),
        to: "alice".into(),
        asset: cny,
        amount: Amount::new(1).expect("amount"),
    };
    let placed = executor.create_wallet_transfer("shop", request).await.expect("placing");
    assert_eq!(placed.record.order.status(), "failed");
    by_id
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy { first_delay_ms: 60_000, delay_max_ms: 60_000, attempts_max: 3, timeout_ms: 2_000 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_public_hosts_are_refused_at_delivery_without_a_connection() {
    let mut app = App::new();
    let webhooks = app.serve_webhooks(false);
    let listener = Listener::bind();
    let urls: Vec<String> = NON_PUBLIC_URLS.iter().map(|url| at_port(url, listener.port)).collect();
    let by_id = endpoints_with_one_event(&app, webhooks.as_ref(), &urls).await;

    let deliverer = Deliverer::new(webhooks.clone(), retry_policy(), EgressPolicy::default())
        .expect("a deliverer");
    let counts = deliverer.sweep().await.expect("a sweep");
    assert_eq!(counts.fanned_out, urls.len() as u64, "{counts:?}");
    assert_eq!(counts.delivered, 0, "{counts:?}");

    let deliveries = webhooks.deliveries("shop", None, None, 100).expect("the delivery log");
    assert_eq!(deliveries.len(), urls.len());
    let mut wrong = Vec::new();
    for delivery in &deliveries {
        let url = &by_id[&delivery.endpoint_id];
        // An address cannot become public: failed at once. A name's answer can change:
        // retried after the usual wait.
        let state = if is_name(url) { DeliveryState::Pending } else { DeliveryState::Failed };
        let recorded =
            (delivery.state, delivery.attempts, delivery.last_status, delivery.last_error.as_str());
        if recorded != (state, 1, 0, REFUSED) {
            wrong.push(format!("{url}: {recorded:?}"));
        }
    }
    let arrived = listener.arrived();
    assert!(
        wrong.is_empty(),
        "not refused as expected ({arrived} connected):\n{}",
        wrong.join("\n")
    );
    assert_eq!(arrived, 0, "a refused delivery connected to the listener");
}

/// Answers every request it reads with 200, for up to `n` connections; returns the requests'
/// first lines.
fn answer(listener: TcpListener, n: usize) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        listener.set_nonblocking(false).expect("blocking");
        let mut first_lines = Vec::new();
        for _ in 0..n {
            let Ok((mut stream, _)) = listener.accept() else { break };
            // The request is small: its head and body arrive well within one read or two.
            let mut request = Vec::new();
            let mut chunk = [0u8; 4_096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&chunk[..read]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            first_lines.push(text.lines().next().unwrap_or("").to_string());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        first_lines
    })
}

/// The escape hatch is passed to the deliverer too: with it, the same loopback spellings are
/// delivered (and this shows the listener above would have seen a connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_flag_delivers_to_loopback() {
    let mut app = App::new();
    let webhooks = app.serve_webhooks(true);
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    let urls: Vec<String> = ["http://127.0.0.1:P/", "http://2130706433:P/", "http://localhost:P/"]
        .iter()
        .map(|url| at_port(url, port))
        .collect();
    let answering = answer(listener, urls.len());
    endpoints_with_one_event(&app, webhooks.as_ref(), &urls).await;

    let deliverer =
        Deliverer::new(webhooks.clone(), retry_policy(), EgressPolicy { allow_private: true })
            .expect("a deliverer");
    let counts = deliverer.sweep().await.expect("a sweep");
    let log = webhooks.deliveries("shop", None, None, 100).expect("the delivery log");
    assert_eq!(counts.delivered, urls.len() as u64, "{log:?}");
    assert_eq!(answering.join().expect("the receiver").len(), urls.len());
}

/// With an egress proxy, deliveries to public hosts and names go to the proxy (which resolves
/// and connects, and must refuse non-public addresses itself); an address host that is not
/// public is still refused here, and never reaches the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_proxy_carries_deliveries_and_address_hosts_are_still_checked() {
    let mut app = App::new();
    let webhooks = app.serve_webhooks(false);
    let proxy = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("local address"));
    let urls: Vec<String> = [
        "http://hooks.example.invalid/qianbao",
        "http://8.8.8.8/qianbao",
        "http://127.0.0.1:1/qianbao",
    ]
    .iter()
    .map(|url| url.to_string())
    .collect();
    let recorder = answer(proxy, 2);
    endpoints_with_one_event(&app, webhooks.as_ref(), &urls).await;
    let deliverer = Deliverer::through_proxy(
        webhooks.clone(),
        retry_policy(),
        EgressPolicy::default(),
        &proxy_url,
    )
    .expect("a deliverer");
    let counts = deliverer.sweep().await.expect("a sweep");
    let mut seen = recorder.join().expect("the proxy");
    seen.sort();
    assert_eq!(
        seen,
        [
            "POST http://8.8.8.8/qianbao HTTP/1.1",
            "POST http://hooks.example.invalid/qianbao HTTP/1.1"
        ],
        "{counts:?}"
    );
    assert_eq!(counts.delivered, 2, "{counts:?}");
    let log = webhooks.deliveries("shop", None, None, 100).expect("the delivery log");
    let refused: Vec<_> = log.iter().filter(|d| d.last_error == REFUSED).collect();
    assert_eq!(refused.len(), 1, "the loopback address is refused before the proxy: {log:?}");
}
