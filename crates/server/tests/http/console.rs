//! The console's edge: its pages cannot be framed and run only their own script; signing in
//! takes a live platform operator's key that does not sign requests, from the console's own
//! origin; the session cookie counts only together with its CSRF token and dies with its key.
//! The browser flows are in `cli/tests/it/console.rs`.

use access::Scope;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const OPS: &[Scope] = &[Scope::OpsRead, Scope::LedgerRead];

async fn sign_in(app: &App, key: &str) -> Resp {
    app.call(Req::post("/console/session").json(&json!({"key": key}))).await
}

/// The cookie's `name=value` and the CSRF token of a successful sign-in.
fn session_of(signed_in: &Resp) -> (String, String) {
    assert_eq!(signed_in.status, StatusCode::CREATED, "{signed_in:?}");
    let set = signed_in.header("set-cookie").expect("a cookie");
    let pair = set.split(';').next().expect("name=value").to_owned();
    let csrf = signed_in.json["csrf"].as_str().expect("csrf").to_owned();
    (pair, csrf)
}

async fn with_session(app: &App, path: &str, cookie: &str, csrf: Option<&str>) -> Resp {
    let mut req = Req::get(path).header("cookie", cookie);
    if let Some(csrf) = csrf {
        req = req.header("qianbao-csrf", csrf);
    }
    app.call(req).await
}

#[tokio::test]
async fn the_console_runs_only_its_own_script_and_cannot_be_framed() {
    let app = App::new();
    for path in
        ["/console", "/console/", "/console/assets/console.js", "/console/assets/console.css"]
    {
        let page = app.call(Req::get(path)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let policy = page.header("content-security-policy").unwrap_or_default();
        for directive in ["script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
    }
    let shell = app.call(Req::get("/console")).await;
    assert!(shell.header("content-type").unwrap_or_default().starts_with("text/html"));
    let body = String::from_utf8_lossy(&shell.body).to_string();
    assert!(body.contains("/console/assets/console.js"));
    let missing = app.call(Req::get("/console/assets/..%2FCargo.toml")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_session_is_the_cookie_and_its_token_together_and_dies_with_its_key() {
    let app = App::new();
    let (key_id, secret) = app.key_with("platform", OPS, false);
    let signed_in = sign_in(&app, &secret).await;
    let set = signed_in.header("set-cookie").unwrap_or_default().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert_eq!(signed_in.json["key_id"], json!(key_id));
    assert!(!signed_in.body.windows(secret.len()).any(|w| w == secret.as_bytes()), "no secret");
    let (cookie, csrf) = session_of(&signed_in);
    assert!(!cookie.contains(&secret), "the cookie names the key, never holds it");

    // The cookie alone is nothing: a page elsewhere can make a browser send it, but cannot
    // read the token.
    assert_error(
        &with_session(&app, "/v1/ops/overview", &cookie, None).await,
        401,
        "invalid_api_key",
    );
    let wrong = "0".repeat(csrf.len());
    assert_error(
        &with_session(&app, "/v1/ops/overview", &cookie, Some(&wrong)).await,
        401,
        "invalid_api_key",
    );
    let overview = with_session(&app, "/v1/ops/overview", &cookie, Some(&csrf)).await;
    assert_eq!(overview.status, StatusCode::OK, "{overview:?}");
    assert_eq!(overview.json["object"], json!("ops_overview"));
    // Scopes are the key's: this key cannot create keys.
    let keys = app
        .call(
            Req::post("/v1/keys")
                .header("cookie", &cookie)
                .header("qianbao-csrf", &csrf)
                .json(&json!({"tenant": "acme", "mode": "live", "scopes": ["ledger:read"]})),
        )
        .await;
    assert_error(&keys, 403, "missing_scope");

    // A new tab asks who is signed in, and gets the token again.
    let current = app.call(Req::get("/console/session").header("cookie", &cookie)).await;
    assert_eq!((current.status, current.json["csrf"].clone()), (StatusCode::OK, json!(csrf)));

    // A tampered cookie is nothing.
    let tampered = cookie.replacen("v1.", "v1.0", 1);
    assert_error(
        &with_session(&app, "/v1/ops/overview", &tampered, Some(&csrf)).await,
        401,
        "invalid_api_key",
    );

    // Revoking the key ends its sessions at once.
    let revoked =
        app.call(Req::new(Method::DELETE, &format!("/v1/keys/{key_id}")).key(&app.admin)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_error(
        &with_session(&app, "/v1/ops/overview", &cookie, Some(&csrf)).await,
        401,
        "invalid_api_key",
    );

    // Signing out clears the cookie.
    let out = app.call(Req::new(Method::DELETE, "/console/session")).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header("set-cookie").unwrap_or_default().contains("Max-Age=0"));
}

#[tokio::test]
async fn only_a_platform_operator_signs_in_and_only_from_the_console_s_own_origin() {
    let app = App::new();
    assert_error(&sign_in(&app, "qb_test_not_a_key").await, 401, "invalid_api_key");
    let tenant = app.key("acme", OPS);
    assert_error(&sign_in(&app, &tenant).await, 403, "console_scope");
    let no_ops = app.key("platform", &[Scope::LedgerRead]);
    assert_error(&sign_in(&app, &no_ops).await, 403, "console_scope");
    let (_, signing) = app.key_with("platform", OPS, true);
    assert_error(&sign_in(&app, &signing).await, 403, "console_signing_key");
    session_of(&sign_in(&app, &app.admin).await);

    let operator = app.key("platform", OPS);
    let from = |origin: &str| {
        Req::post("/console/session")
            .header("host", "ops.example.com")
            .header("origin", origin)
            .json(&json!({"key": operator}))
    };
    assert_error(&app.call(from("https://evil.example.net")).await, 403, "cross_origin");
    assert_error(&app.call(from("null")).await, 403, "cross_origin");
    session_of(&app.call(from("https://ops.example.com")).await);
    let (status, code) = {
        let bad = app.call(Req::post("/console/session").raw("key=x")).await;
        (bad.status, bad.code().to_owned())
    };
    assert_eq!((status.as_u16(), code.as_str()), (400, "invalid_request"));
}

#[tokio::test]
async fn the_balance_sheet_names_each_line_and_is_the_platform_s_alone() {
    let app = App::new();
    let acme = funded_acme_world(&app).await;
    assert_error(&app.get("/v1/ops/balance-sheet", &acme).await, 403, "missing_scope");
    let operator = app.key("platform", OPS);
    let sheet = app.get("/v1/ops/balance-sheet", &operator).await;
    assert_eq!(sheet.status, StatusCode::OK, "{sheet:?}");
    let cny = sheet.json["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .find(|asset| asset["asset"] == json!(CNY))
        .cloned()
        .expect("CNY");
    assert_eq!(cny["balanced"], json!(true));
    let line = |code: u32| -> Value {
        cny["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .find(|line| line["chart_code"] == json!(code))
            .cloned()
            .expect("the line")
    };
    // The wallets' line is the payment core's (a liability, read credit-normal); the bank
    // line was defined through the ledger API alone (read debit-normal, unnamed).
    assert_eq!(
        (line(WALLET_CHART)["name"].clone(), line(WALLET_CHART)["balance_minor"].clone()),
        (json!("customer wallets"), json!("1000"))
    );
    assert_eq!(line(WALLET_CHART)["client_money"], json!(true));
    assert_eq!(
        (line(BANK_CHART)["name"].clone(), line(BANK_CHART)["balance_minor"].clone()),
        (Value::Null, json!("1000"))
    );
    assert_eq!(cny["client_money_minor"], json!("1000"));
    assert_eq!(cny["cover_minor"], json!("-1000"), "no channel on this node holds a reserve");
    let overview = app.get("/v1/ops/overview", &operator).await;
    assert_eq!(overview.status, StatusCode::OK, "{overview:?}");
    let routes = overview.json["routes"].as_array().expect("routes");
    let balance_route = routes
        .iter()
        .find(|route| route["route"] == json!("GET /v1/ops/balance-sheet"))
        .expect("the route just called");
    assert_eq!(balance_route["requests"], json!(2));
    assert_eq!(balance_route["client_errors"], json!(1));
}
