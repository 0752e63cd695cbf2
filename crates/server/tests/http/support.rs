//! The test harness: a real service state on a temporary SQLite store (built the way
//! `qianbao serve` builds it), a manual clock, and helpers to drive `server::router` with
//! `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex};

use access::{AccessStore, KeyMode, Scope, TenantId};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use ledger::port::{LedgerStore, StoreError};
use ledger::{Clock, Ledger, ManualClock, PipelineConfig, Timestamp};
use serde_json::{json, Value};
use store::{SqliteAccess, SqliteReader, SqliteStore};
use tower::ServiceExt;

/// The ids of the common world: tenant `acme`'s bank and two wallets.
pub const WORLD_BANK: u128 = 1;
pub const WORLD_ALICE: u128 = 2;
pub const WORLD_BOB: u128 = 3;

/// Books, and for tenant `acme` a bank and two wallets (ids 1, 2, 3); returns acme's
/// read-write key.
pub async fn acme_world(app: &App) -> String {
    app.books().await;
    let key = app.rw_key("acme");
    app.bank(&key, WORLD_BANK, CNY).await;
    app.wallet(&key, WORLD_ALICE, CNY).await;
    app.wallet(&key, WORLD_BOB, CNY).await;
    key
}

/// [`acme_world`] with Alice holding 1000 (transfer 1 from the bank).
pub async fn funded_acme_world(app: &App) -> String {
    let key = acme_world(app).await;
    app.pay(&key, 1, WORLD_BANK, WORLD_ALICE, 1000).await;
    key
}

/// The manual clock starts here (Unix seconds): 2025-11-24T16:00:00Z.
pub const START_SECS: u64 = 1_764_000_000;

pub const CNY: &str = "CNY";
pub const USD: &str = "USD";
pub const BANK_CHART: u32 = 1002;
pub const WALLET_CHART: u32 = 2241;
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// Every error code of the table in docs/api.md.
pub const DOCUMENTED_CODES: &[&str] = &[
    "test_mode_off",
    "live_key_in_test_mode",
    "keys_live_only",
    "console_scope",
    "order_not_suspended",
    "console_signing_key",
    "cross_origin",
    "invalid_evidence",
    "invalid_ticket",
    "invalid_channel_ref",
    "inquiry_not_found",
    "inquiry_resolved",
    "action_not_found",
    "action_not_pending",
    "operations_disabled",
    "switched_off",
    "overloaded",
    "degraded",
    "switch_contended",
    "invalid_value",
    "invalid_expiry",
    "fx_rate_contended",
    "switch_not_found",
    "unknown_product",
    "weight_needed",
    "plan_not_found",
    "channel_needed",
    "malformed_json",
    "invalid_body",
    "invalid_id",
    "invalid_limit",
    "invalid_cursor",
    "invalid_time",
    "invalid_idempotency_key",
    "invalid_scale",
    "invalid_tenant",
    "invalid_order_id",
    "value_needed",
    "invalid_scopes",
    "invalid_batch_size",
    "batch_too_large",
    "amount_not_allowed",
    "accounts_must_differ",
    "invalid_character",
    "amount_must_not_be_zero",
    "invalid_request",
    "invalid_url",
    "url_not_allowed",
    "url_unparseable",
    "invalid_api_key",
    "signature_missing",
    "signature_expired",
    "signature_invalid",
    "signature_replayed",
    "missing_scope",
    "resource_missing",
    "debit_account_not_found",
    "credit_account_not_found",
    "pending_not_found",
    "method_not_allowed",
    "id_taken",
    "last_admin_key",
    "merchant_key_forbidden",
    "id_exists_with_different_fields",
    "asset_exists_with_different_scale",
    "chart_exists_with_different_fields",
    "idempotency_key_in_use",
    "body_too_large",
    "idempotency_key_reused",
    "exceeds_credits",
    "exceeds_debits",
    "asset_mismatch",
    "debit_account_frozen",
    "debit_account_closed",
    "credit_account_closed",
    "overflows_balance",
    "pending_already_posted",
    "pending_already_voided",
    "pending_expired",
    "exceeds_pending_amount",
    "linked_transfer_failed",
    "asset_not_found",
    "chart_code_not_found",
    "balance_not_zero",
    "layout_invalid",
    "account_closed",
    "ledger_overloaded",
    "rate_limited",
    "id_reserved",
    "internal_error",
    "shutting_down",
];

/// The documented `type` of an error status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        422 => "rejected_error",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

// ---- a store whose writer can be held or failed --------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Open,
    /// `begin` blocks until the mode changes: the writer hangs, the queue fills.
    Closed,
    /// `begin` fails: every batch is an operating failure (500).
    Fail,
}

#[derive(Default)]
pub struct StoreControl {
    mode: Mutex<Option<Mode>>,
    changed: Condvar,
    /// How many `begin` calls are waiting at the gate.
    waiting: Mutex<usize>,
}

impl StoreControl {
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = Some(mode);
        self.changed.notify_all();
    }

    fn mode(&self) -> Mode {
        self.mode.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or(Mode::Open)
    }

    pub fn waiting(&self) -> usize {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pass(&self) -> Result<(), StoreError> {
        let mut mode = self.mode.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match mode.unwrap_or(Mode::Open) {
                Mode::Open => return Ok(()),
                Mode::Fail => return Err(StoreError::Backend("injected failure".into())),
                Mode::Closed => {
                    *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    mode = self.changed.wait(mode).unwrap_or_else(|p| p.into_inner());
                    *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                }
            }
        }
    }
}

/// The real SQLite store behind a gate the tests control.
pub struct GatedStore {
    inner: SqliteStore,
    control: Arc<StoreControl>,
}

impl LedgerStore for GatedStore {
    type Tx<'a> = store::sqlite::SqliteTx<'a>;

    fn begin(&mut self) -> Result<Self::Tx<'_>, StoreError> {
        self.control.pass()?;
        self.inner.begin()
    }
}

// ---- the application --------------------------------------------------------------------

pub struct App {
    pub router: Router,
    pub state: server::AppState,
    pub clock: Arc<ManualClock>,
    pub access: Arc<SqliteAccess>,
    pub control: Arc<StoreControl>,
    /// An admin key of tenant `platform`, as `qianbao serve` creates on first start.
    pub admin: String,
    ledger: Option<Ledger>,
    /// The test book's ledger, once [`App::serve_test_book`] started one.
    test_ledger: Option<Ledger>,
    _dir: tempfile::TempDir,
}

impl Drop for App {
    fn drop(&mut self) {
        self.control.set(Mode::Open);
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown();
        }
        if let Some(ledger) = self.test_ledger.take() {
            ledger.shutdown();
        }
    }
}

impl App {
    pub fn new() -> App {
        App::with_config(PipelineConfig::default())
    }

    pub fn with_config(config: PipelineConfig) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let clock = Arc::new(ManualClock::new(Timestamp(START_SECS * 1_000_000)));
        let control = Arc::new(StoreControl::default());
        let store = GatedStore {
            inner: SqliteStore::open(&path).expect("opening the store"),
            control: control.clone(),
        };
        let ledger_clock: Arc<dyn Clock> = clock.clone();
        let ledger = Ledger::start(store, ledger_clock.clone(), config);
        let reader: Arc<dyn ledger::port::LedgerReader> =
            Arc::new(SqliteReader::open(&path).expect("opening the reader"));
        let access =
            Arc::new(SqliteAccess::open(dir.path().join("access.db")).expect("opening access.db"));
        let dyn_access: Arc<dyn AccessStore> = access.clone();
        let state = server::AppState::new(ledger.handle(), reader, dyn_access, ledger_clock)
            .expect("app state");
        let router = server::router(state.clone());
        let mut app = App {
            router,
            state,
            clock,
            access,
            control,
            admin: String::new(),
            ledger: Some(ledger),
            test_ledger: None,
            _dir: dir,
        };
        app.admin = app.key("platform", &[Scope::Admin]);
        app
    }

    /// The idempotency scope of requests made with the key whose secret is `secret`.
    pub fn scope_of(&self, secret: &str) -> access::IdempotencyScope {
        let key = self
            .access
            .key_by_hash(&access::Secret::new(secret).hash())
            .expect("key lookup")
            .expect("a key with this secret");
        access::IdempotencyScope { tenant: key.tenant, key_id: key.id }
    }

    /// The same service with a per-key rate limit.
    pub fn limit_keys(&mut self, per_sec: u32, burst: u32) {
        let limit = server::limits::KeyRateLimit {
            per_sec: std::num::NonZeroU32::new(per_sec).expect("per_sec"),
            burst: std::num::NonZeroU32::new(burst).expect("burst"),
        };
        self.state = self.state.clone().with_key_rate_limit(Some(limit));
        self.router = server::router(self.state.clone());
    }

    /// The same service with webhooks, stored in `orders.db` beside the ledger as
    /// `qianbao serve` stores them; `private_urls` is `--webhook-private-urls`.
    pub fn serve_webhooks(&mut self, private_urls: bool) -> Arc<store::SqliteWebhookStore> {
        let webhooks = Arc::new(
            store::SqliteWebhookStore::open(self.orders_path()).expect("opening orders.db"),
        );
        let dyn_webhooks: Arc<dyn webhooks::WebhookStore> = webhooks.clone();
        self.state = self.state.clone().with_webhooks(dyn_webhooks, private_urls);
        self.router = server::router(self.state.clone());
        webhooks
    }

    /// The same service with a test book (`server::books`) on a ledger of its own in
    /// `test/ledger.db`, as `qianbao serve` runs it.
    pub fn serve_test_book(&mut self) {
        let dir = self._dir.path().join("test");
        std::fs::create_dir_all(&dir).expect("creating test/");
        let path = dir.join("ledger.db");
        let clock: Arc<dyn Clock> = self.clock.clone();
        let ledger = Ledger::start(
            SqliteStore::open(&path).expect("opening the test book"),
            clock,
            PipelineConfig::default(),
        );
        let reader: Arc<dyn ledger::port::LedgerReader> =
            Arc::new(SqliteReader::open(&path).expect("opening the test book's reader"));
        let test = self.state.test_book(ledger.handle(), reader);
        self.router = server::books::router_with_test_book(self.state.clone(), test);
        self.test_ledger = Some(ledger);
    }

    /// A test key (`qb_test_…`) inserted directly into the access store.
    pub fn test_key(&self, tenant: &str, scopes: &[Scope]) -> String {
        let (key, secret) = access::generate_key(
            TenantId::new(tenant).expect("tenant"),
            KeyMode::Test,
            scopes.to_vec(),
            false,
            self.clock.now().0,
        )
        .expect("generating a key");
        self.access.insert_key(&key).expect("inserting a key");
        secret.expose().to_string()
    }

    /// The payment core's file: orders, their outbox, webhooks.
    pub fn orders_path(&self) -> std::path::PathBuf {
        self._dir.path().join("orders.db")
    }

    /// Stops the posting pipeline (as on shutdown); the router stays up.
    pub fn shutdown_ledger(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown();
        }
    }

    pub fn now_secs(&self) -> u64 {
        self.clock.now().0 / 1_000_000
    }

    /// A key inserted directly into the access store, as an operator tool would.
    pub fn key(&self, tenant: &str, scopes: &[Scope]) -> String {
        self.key_with(tenant, scopes, false).1
    }

    /// (key id, secret)
    pub fn key_with(&self, tenant: &str, scopes: &[Scope], signed: bool) -> (String, String) {
        let (key, secret) = access::generate_key(
            TenantId::new(tenant).expect("tenant"),
            KeyMode::Live,
            scopes.to_vec(),
            signed,
            self.clock.now().0,
        )
        .expect("generating a key");
        self.access.insert_key(&key).expect("inserting a key");
        (key.id, secret.expose().to_string())
    }

    pub fn rw_key(&self, tenant: &str) -> String {
        self.key(tenant, &[Scope::LedgerRead, Scope::LedgerWrite])
    }

    pub async fn call(&self, req: Req) -> Resp {
        send(self.router.clone(), req).await
    }

    /// Sends `req` from a task of its own (for requests that must be in flight together).
    pub fn spawn(&self, req: Req) -> tokio::task::JoinHandle<Resp> {
        tokio::spawn(send(self.router.clone(), req))
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call(Req::get(path).key(key)).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.call(Req::post(path).key(key).json(body)).await
    }

    // ---- fixtures -----------------------------------------------------------------------

    /// Assets CNY and USD (scale 2), chart lines 1002 (bank, an asset) and 2241 (wallets,
    /// a liability).
    pub async fn books(&self) {
        for (code, scale) in [(CNY, 2), (USD, 2)] {
            let r =
                self.post("/v1/assets", &self.admin, &json!({"code": code, "scale": scale})).await;
            assert!(r.status.is_success(), "{r:?}");
        }
        for (code, name, class) in [
            (BANK_CHART, "bank deposits", "asset"),
            (WALLET_CHART, "customer wallets", "liability"),
        ] {
            let r = self
                .post(
                    "/v1/chart",
                    &self.admin,
                    &json!({"code": code, "name": name, "class": class}),
                )
                .await;
            assert!(r.status.is_success(), "{r:?}");
        }
    }

    pub async fn open(&self, key: &str, id: u128, asset: &str, chart: u32, rule: Value) -> Resp {
        self.post(
            "/v1/accounts",
            key,
            &json!({"id": id.to_string(), "asset": asset, "chart_code": chart, "rule": rule}),
        )
        .await
    }

    /// An unbounded bank account (chart 1002).
    pub async fn bank(&self, key: &str, id: u128, asset: &str) {
        let r = self.open(key, id, asset, BANK_CHART, json!({"type": "unbounded"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }

    /// A wallet (chart 2241) that can never go negative.
    pub async fn wallet(&self, key: &str, id: u128, asset: &str) {
        let rule = json!({"type": "debits_within_credits", "overdraft_minor": "0"});
        let r = self.open(key, id, asset, WALLET_CHART, rule).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }

    pub async fn transfer(
        &self,
        key: &str,
        id: u128,
        debit: u128,
        credit: u128,
        amount: u64,
    ) -> Resp {
        self.post("/v1/transfers", key, &transfer_body(id, debit, credit, amount)).await
    }

    /// A posted transfer that must succeed.
    pub async fn pay(&self, key: &str, id: u128, debit: u128, credit: u128, amount: u64) -> Value {
        let r = self.transfer(key, id, debit, credit, amount).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.json
    }

    pub async fn hold(&self, key: &str, id: u128, debit: u128, credit: u128, amount: u64) -> Value {
        let mut body = transfer_body(id, debit, credit, amount);
        body["type"] = json!("pending");
        let r = self.post("/v1/transfers", key, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.json
    }

    /// The ledger's id for `tenant`'s id `id` (tenants name ids in their own namespaces;
    /// the admin names ledger ids).
    pub fn ledger_id(&self, tenant: &str, id: u128) -> u128 {
        let tenant = TenantId::new(tenant).expect("tenant");
        self.state.namespaces.of(&tenant, false).to_ledger(id)
    }

    /// `tenant`'s id for the ledger's id `id`.
    pub fn client_id(&self, tenant: &str, id: u128) -> u128 {
        let tenant = TenantId::new(tenant).expect("tenant");
        self.state.namespaces.of(&tenant, false).to_client(id)
    }

    /// The account's four balances and available credit, read by the admin; `id` is tenant
    /// `acme`'s (the tenant of every test's world).
    pub async fn balances(&self, id: u128) -> Value {
        self.balances_of("acme", id).await
    }

    /// The account `id` of `tenant`: its balances, read by the admin.
    pub async fn balances_of(&self, tenant: &str, id: u128) -> Value {
        let id = self.ledger_id(tenant, id);
        let r = self.get(&format!("/v1/accounts/{id}"), &self.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.json["balances"].clone()
    }

    /// credits_posted and debits_posted of an account, as numbers.
    pub async fn posted(&self, id: u128) -> (u64, u64) {
        let b = self.balances(id).await;
        (num(&b["debits_posted"]), num(&b["credits_posted"]))
    }

    pub async fn trial_balance(&self) -> Value {
        let r = self.get("/v1/trial-balance", &self.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.json
    }

    /// Everything a rejected request must leave unchanged: the trial balance (every chart
    /// line's balances) and the journal (records and head hash).
    pub async fn fingerprint(&self) -> Value {
        let verify = self.post("/v1/journal/verify", &self.admin, &json!({})).await;
        assert_eq!(verify.status, StatusCode::OK, "{verify:?}");
        assert_eq!(verify.json["ok"], json!(true), "{verify:?}");
        json!({
            "trial_balance": self.trial_balance().await,
            "n_records": verify.json["report"]["n_records"],
            "head_hash": verify.json["report"]["head_hash"],
        })
    }

    /// Every asset of the trial balance balances.
    pub async fn assert_balanced(&self) {
        let tb = self.trial_balance().await;
        for asset in tb["assets"].as_array().expect("assets") {
            assert_eq!(asset["balanced"], json!(true), "{tb}");
            assert_eq!(asset["debits_posted"], asset["credits_posted"], "{tb}");
            assert_eq!(asset["debits_pending"], asset["credits_pending"], "{tb}");
        }
    }

    /// Waits (briefly) until `check` holds.
    pub async fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

pub fn transfer_body(id: u128, debit: u128, credit: u128, amount: u64) -> Value {
    json!({
        "type": "post",
        "id": id.to_string(),
        "debit_account_id": debit.to_string(),
        "credit_account_id": credit.to_string(),
        "asset": CNY,
        "amount": amount.to_string(),
    })
}

/// A decimal string (or number) as u64.
pub fn num(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {value}")),
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a u64: {value}")),
        _ => panic!("not a number: {value}"),
    }
}

pub async fn send(router: Router, req: Req) -> Resp {
    let mut builder = Request::builder().method(req.method.clone()).uri(req.path.as_str());
    if let Some(key) = &req.key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let request = builder.body(Body::from(req.body.clone())).expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Resp { status, headers, body, json }
}

// ---- requests and responses -------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub key: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: Method, path: &str) -> Req {
        Req { method, path: path.to_string(), key: None, headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(path: &str) -> Req {
        Req::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Req {
        Req::new(Method::POST, path)
    }

    pub fn key(mut self, key: &str) -> Req {
        self.key = Some(key.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers.push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub fn idem(self, key: &str) -> Req {
        self.header("idempotency-key", key)
    }

    pub fn json(mut self, body: &Value) -> Req {
        self.body = serde_json::to_vec(body).expect("json");
        self.headers.push(("content-type".into(), b"application/json".to_vec()));
        self
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    /// Signs the request as docs/api.md says, over `self.path` as sent.
    pub fn sign(self, secret: &str, timestamp: u64, nonce: &str) -> Req {
        let (method, path) = (self.method.to_string(), self.path.clone());
        self.sign_as(secret, &method, &path, timestamp, nonce)
    }

    /// Signs with explicit method and path (to forge mismatches).
    pub fn sign_as(
        self,
        secret: &str,
        method: &str,
        path: &str,
        timestamp: u64,
        nonce: &str,
    ) -> Req {
        let body = self.body.clone();
        self.sign_body_as(secret, method, path, timestamp, nonce, &body)
    }

    pub fn sign_body_as(
        self,
        secret: &str,
        method: &str,
        path: &str,
        timestamp: u64,
        nonce: &str,
        body: &[u8],
    ) -> Req {
        let key = access::Secret::new(secret).hash();
        let to_sign = access::signature::string_to_sign(method, path, timestamp, nonce, body);
        let signature = access::signature::sign(&key, &to_sign);
        self.header("qianbao-timestamp", timestamp.to_string())
            .header("qianbao-nonce", nonce)
            .header("qianbao-signature", format!("v1={signature}"))
    }
}

#[derive(Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn replayed(&self) -> Option<&str> {
        self.header("idempotent-replayed")
    }
}

/// The response is the documented error: status, `type` derived from it, `code`, a
/// non-empty `message`, and a `param` that is null or a string.
#[track_caller]
pub fn assert_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status.as_u16(), status, "expected {status} {code}, got {resp:?}");
    assert_error_shape(resp);
    assert_eq!(resp.json["error"]["code"], json!(code), "{resp:?}");
}

/// Any error response has the documented shape and a documented code.
#[track_caller]
pub fn assert_error_shape(resp: &Resp) {
    if let Some(problem) = error_shape_problem(resp) {
        panic!("{problem}: {resp:?}");
    }
}

/// What is wrong with an error response's shape, if anything.
pub fn error_shape_problem(resp: &Resp) -> Option<String> {
    let status = resp.status.as_u16();
    if !resp.header("content-type").is_some_and(|v| v.starts_with("application/json")) {
        return Some("error without a JSON content type".into());
    }
    let Some(object) = resp.json.as_object() else { return Some("not a JSON object".into()) };
    let error = &resp.json["error"];
    if object.len() != 1 || !error.is_object() {
        return Some("not {\"error\": {...}}".into());
    }
    if error["type"] != json!(error_type(status)) {
        return Some(format!("type should be {}", error_type(status)));
    }
    let Some(code) = error["code"].as_str() else { return Some("code is not a string".into()) };
    if !DOCUMENTED_CODES.contains(&code) {
        return Some(format!("undocumented code {code}"));
    }
    if error["message"].as_str().is_none_or(|m| m.is_empty()) {
        return Some("no message".into());
    }
    if !(error["param"].is_null() || error["param"].is_string()) {
        return Some("param is neither null nor a string".into());
    }
    None
}
