//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over W3C WebDriver): an operator signs in, finds a payout the bank never
//! confirmed, proposes its outcome from the bank's evidence, flips a kill switch and rolls
//! it back; an approver signs in and approves; the order completes through its own states
//! and the books balance. Each page is photographed on the way (into `docs/console/` with
//! `QIANBAO_WRITE_SCREENSHOTS=1`).
//!
//! Without chromedriver the test is skipped — except in CI (`CI=true`), where `.ci/run`
//! installs it and its absence is a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::ops::unconfirmed_payout;
use crate::payments::{World, CARD};
use crate::recon::key;

const OPERATOR: &[&str] = &["ledger:read", "recon:read", "ops:read", "recon:write", "ops:write"];
const APPROVER: &[&str] =
    &["ledger:read", "recon:read", "ops:read", "recon:approve", "ops:approve"];
const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver process on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Option<Driver> {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists());
        let Some(binary) = binary else {
            assert!(
                std::env::var("CI").is_err(),
                "chromedriver is missing: .ci/run installs chromium and chromium-driver"
            );
            eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Driver { child, url })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,1000", "--lang=en-US"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Where screenshots go: the docs when asked to write them, a scratch directory otherwise.
fn shots() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var("QIANBAO_WRITE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
        std::fs::create_dir_all(&dir).expect("docs/console");
        (dir, None)
    } else {
        let scratch = tempfile::tempdir().expect("tempdir");
        (scratch.path().to_owned(), Some(scratch))
    }
}

async fn shoot(client: &Client, dir: &std::path::Path, name: &str) {
    // Let the last render and fonts settle, so the picture shows the page as a person sees it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
}

/// Waits until the element `css` holds `text`; its text.
async fn wait_text(client: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            seen = element.text().await.unwrap_or_default();
            if seen.contains(text) {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = match client.find(Locator::Css("main")).await {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("{css} never showed {text:?}; last seen: {seen:?}; the page: {page}");
}

async fn fill(client: &Client, css: &str, value: &str) {
    let input = client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.expect(css);
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
}

async fn choose(client: &Client, css: &str, value: &str) {
    let select = client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.expect(css);
    select.select_by_value(value).await.expect("choose");
}

async fn click(client: &Client, css: &str) {
    let element = client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.expect(css);
    element.click().await.expect("click");
}

async fn sign_in(client: &Client, key: &str) {
    fill(client, "#signin-key", key).await;
    click(client, "form[data-form=signin] button[type=submit]").await;
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#who:not([hidden])"))
        .await
        .expect("signed in");
}

async fn sign_out(client: &Client) {
    click(client, "#sign-out").await;
    client.wait().at_most(WAIT).for_element(Locator::Css("#signin-key")).await.expect("signed out");
}

async fn visit(client: &Client, base: &str, page: &str) {
    client.goto(&format!("{base}/console#/{page}")).await.expect("navigate");
}

/// The status a same-origin `fetch` of `path` gets from inside the page.
async fn fetch_status(client: &Client, path: &str, headers: Value) -> u64 {
    let script = "const [path, headers, done] = arguments; \
                  fetch(path, {credentials: 'same-origin', headers}).then(r => done(r.status));";
    let status = client
        .execute_async(script, vec![json!(path), headers])
        .await
        .expect("fetch from the page");
    status.as_u64().expect("a status")
}

fn topup_status(world: &World, reference: &str) -> (u16, Value) {
    world.call(
        "POST",
        "/v1/topups",
        json!({"reference": reference, "customer": "alice", "card": CARD, "asset": "CNY",
               "amount": "500"}),
    )
}

#[test]
fn an_operator_and_an_approver_resolve_a_stuck_payout_and_flip_a_switch_in_a_real_browser() {
    let Some(driver) = Driver::start() else { return };
    let world = World::start(
        &["bank_a"],
        &["--inquiry-attempts-max", "2", "--inquiry-escalated-delay-ms", "3600000"],
    );
    assert_eq!(world.topup("funds", 50_000)["status"], json!("succeeded"));
    let operator = key(&world, OPERATOR);
    let approver = key(&world, APPROVER);
    let maker = world.share(&operator);
    let (order, task) = unconfirmed_payout(&world, &maker, "console", 1200);
    let request_id = task["request_id"].as_str().expect("request id").to_owned();
    let paid = world
        .sim
        .operations("bank_a")
        .into_iter()
        .find(|op| op["request_id"] == json!(request_id) && op["status"] == json!("succeeded"))
        .expect("the bank paid it");
    let channel_ref = paid["channel_ref"].as_str().expect("channel ref").to_owned();
    // The bank is back: nothing else fails from here on.
    world.sim.faults("bank_a", json!({}));
    let base = format!("http://{}", world.addr());
    let (dir, _scratch) = shots();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = browser(&driver).await;

        // Nothing is shown without a key; a wrong key is told so.
        visit(&client, &base, "health").await;
        client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#signin-key"))
            .await
            .expect("sign-in");
        let nav = client.find(Locator::Css("#nav")).await.expect("nav");
        assert!(!nav.is_displayed().await.expect("displayed"), "no page before signing in");
        fill(&client, "#signin-key", "qb_live_not_a_key").await;
        click(&client, "form[data-form=signin] button[type=submit]").await;
        wait_text(&client, "#signin-error", "invalid_api_key").await;
        shoot(&client, &dir, "signin").await;

        // The operator: health shows the escalated inquiry and the channel.
        sign_in(&client, &operator).await;
        wait_text(&client, "[data-tile=escalated]", "1").await;
        wait_text(&client, "table[data-table=channels] tr[data-id=bank_a]", "closed").await;
        shoot(&client, &dir, "health").await;
        // The session is the cookie *and* the CSRF header: a call without the header, from
        // the very same page, is refused.
        assert_eq!(fetch_status(&client, "/v1/ops/overview", json!({})).await, 401);

        // Stuck orders: the payout, and the outcome proposed from the bank's evidence.
        visit(&client, &base, "stuck").await;
        let row = format!("table[data-table=escalated] tr[data-id=\"{order}\"]");
        wait_text(&client, &row, "payout").await;
        click(&client, &format!("{row} button[data-action=outcome]")).await;
        choose(&client, "#outcome-outcome", "succeeded").await;
        fill(&client, "#outcome-channel_ref", &channel_ref).await;
        fill(&client, "#outcome-evidence", &format!("bank_a portal: payout {channel_ref} PAID"))
            .await;
        fill(&client, "#outcome-reason", "the bank confirmed the payout by phone").await;
        fill(&client, "#outcome-ticket", "INC-42").await;
        click(&client, "form[data-form=outcome] button[type=submit]").await;
        wait_text(&client, "[data-proposed]", "pending_approval").await;
        shoot(&client, &dir, "stuck").await;
        assert_eq!(
            world.ok("GET", &format!("/v1/orders/{order}"), Value::Null)["status"],
            json!("paying"),
            "nothing moves before a second person approves"
        );

        // A kill switch, obeyed at once, and rolled back.
        visit(&client, &base, "switches").await;
        choose(&client, "#switch-switch", "kill_product").await;
        choose(&client, "#switch-product", "topup").await;
        fill(&client, "#switch-reason", "drill: top-ups off").await;
        click(&client, "form[data-form=switch] button[type=submit]").await;
        let switch_row = "table[data-table=switches] tr[data-id=\"kill/product:topup\"]";
        wait_text(&client, switch_row, "in force").await;
        let (status, refused) = topup_status(&world, "while-killed");
        assert_eq!((status, refused["error"]["code"].clone()), (503, json!("switched_off")));
        shoot(&client, &dir, "switches").await;
        fill(&client, &format!("{switch_row} input"), "drill over").await;
        click(&client, &format!("{switch_row} button[data-action=rollback]")).await;
        wait_text(&client, switch_row, "off").await;
        let (status, after) = topup_status(&world, "after-rollback");
        assert_eq!(status, 201, "top-ups are back: {after}");

        // The maker cannot approve; the approver does.
        visit(&client, &base, "approvals").await;
        let pending = maker.ok("GET", "/v1/ops/actions?state=pending_approval", Value::Null);
        let action = pending["data"][0]["id"].as_str().expect("the pending action").to_owned();
        let action_row = format!("table[data-table=actions] tr[data-id=\"{action}\"]");
        wait_text(&client, &action_row, "pending_approval").await;
        let buttons = client.find_all(Locator::Css("button[data-action=approve]")).await;
        assert!(buttons.expect("buttons").is_empty(), "the maker holds no ops:approve");
        sign_out(&client).await;

        sign_in(&client, &approver).await;
        visit(&client, &base, "approvals").await;
        wait_text(&client, &action_row, "INC-42").await;
        fill(&client, &format!("{action_row} input"), "statement line seen").await;
        shoot(&client, &dir, "approvals").await;
        click(&client, &format!("{action_row} button[data-action=approve]")).await;
        wait_text(&client, "#toast", "applied").await;
        let done = world.wait_final(&order, Duration::from_secs(30));
        assert_eq!(done["status"], json!("succeeded"), "completed as the bank did it: {done}");

        // The books balance, and the audit chain holds every step.
        visit(&client, &base, "books").await;
        wait_text(&client, "[data-asset=CNY]", "balanced").await;
        wait_text(&client, "table[data-table=\"reserves-CNY\"] tr[data-id=bank_a]", "").await;
        shoot(&client, &dir, "books").await;
        visit(&client, &base, "audit").await;
        wait_text(&client, "table[data-table=audit]", "action.approve").await;
        wait_text(&client, "table[data-table=audit]", "switch.rollback").await;
        click(&client, "#audit-verify").await;
        wait_text(&client, "#audit-verified", "chain verifies").await;
        shoot(&client, &dir, "audit").await;
        visit(&client, &base, "breaks").await;
        wait_text(&client, "h1", "Reconciliation breaks").await;
        shoot(&client, &dir, "breaks").await;

        sign_out(&client).await;
        assert_eq!(fetch_status(&client, "/v1/ops/overview", json!({})).await, 401);
        client.close().await.expect("close the browser");
    });
    world.assert_balanced();
    world.assert_matches_simulator("bank_a");
}
