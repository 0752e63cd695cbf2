//! The real service, in-process: a SQLite store in a temporary directory, the posting
//! pipeline, `server::router` on a loopback port — built the way crates/server's tests build
//! it (and `qianbao serve` does), with an admin key for tenant `platform` — and fixtures
//! driven through the client.

use std::sync::Arc;

use access::{AccessStore, KeyMode, Scope, TenantId};
use client::keys::{self, KeyRequest};
use client::ledger::{AccountClass, AccountRequest, AssetRequest, BalanceRule, ChartRequest};
use client::transfers::{NewTransfer, TransferRequest, TransferView};
use client::{AccountId, Amount, Client, TransferId};
use ledger::{Clock, Ledger, PipelineConfig, SystemClock};
use store::{SqliteAccess, SqliteReader, SqliteStore};

pub const CNY: &str = "CNY";
pub const BANK_CHART: u32 = 1002;
pub const WALLET_CHART: u32 = 2241;

/// Tenant `acme`'s accounts in [`Service::acme_world`].
pub const BANK: u128 = 1;
pub const ALICE: u128 = 2;
pub const BOB: u128 = 3;

pub struct Service {
    pub base_url: String,
    /// An admin key of tenant `platform`, as `qianbao serve` creates on first start.
    pub admin_secret: String,
    server: tokio::task::JoinHandle<()>,
    ledger: Option<Ledger>,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown();
        }
    }
}

impl Service {
    pub async fn start() -> Service {
        Service::start_with(|state| state).await
    }

    /// A service whose state `configure` adjusts (a rate limit…).
    pub async fn start_with(
        configure: impl FnOnce(server::AppState) -> server::AppState,
    ) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        // The system clock: signed requests are checked against it.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ledger = Ledger::start(
            SqliteStore::open(&path).unwrap(),
            clock.clone(),
            PipelineConfig::default(),
        );
        let reader: Arc<dyn ledger::port::LedgerReader> =
            Arc::new(SqliteReader::open(&path).unwrap());
        let access = Arc::new(SqliteAccess::open(dir.path().join("access.db")).unwrap());
        let (key, secret) = access::generate_key(
            TenantId::new("platform").unwrap(),
            KeyMode::Live,
            vec![Scope::Admin],
            false,
            clock.now().0,
        )
        .unwrap();
        access.insert_key(&key).unwrap();
        let dyn_access: Arc<dyn AccessStore> = access;
        let state = server::AppState::new(ledger.handle(), reader, dyn_access, clock).unwrap();
        let router = server::router(configure(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Service {
            base_url: format!("http://{address}"),
            admin_secret: secret.expose().to_string(),
            server,
            ledger: Some(ledger),
            _dir: dir,
        }
    }

    pub fn client(&self, secret: &str) -> Client {
        Client::new(&self.base_url, secret).unwrap()
    }

    pub fn admin(&self) -> Client {
        self.client(&self.admin_secret)
    }

    /// A new key of `tenant`, created over the API by the admin; its secret.
    pub async fn key(&self, tenant: &str, scopes: Vec<keys::Scope>, signed: bool) -> String {
        let request = KeyRequest { signed, ..KeyRequest::new(tenant, keys::KeyMode::Live, scopes) };
        let created = self.admin().create_key(&request, None).await.unwrap();
        assert_eq!(created.http_status, 201);
        created.value.secret.unwrap().expose().to_string()
    }

    /// A read-write client of tenant `acme`.
    pub async fn acme(&self) -> Client {
        let secret =
            self.key("acme", vec![keys::Scope::LedgerRead, keys::Scope::LedgerWrite], false).await;
        self.client(&secret)
    }

    /// Asset CNY (scale 2), chart lines 1002 (bank, an asset) and 2241 (wallets, a
    /// liability), by the admin.
    pub async fn books(&self) {
        let admin = self.admin();
        admin.create_asset(&AssetRequest { code: CNY.into(), scale: 2 }, None).await.unwrap();
        for (code, name, class) in [
            (BANK_CHART, "bank deposits", AccountClass::Asset),
            (WALLET_CHART, "customer wallets", AccountClass::Liability),
        ] {
            let chart = ChartRequest { code, name: name.into(), class };
            admin.create_chart(&chart, None).await.unwrap();
        }
    }

    /// The books, and for tenant `acme` a bank (unbounded) and two wallets that never go
    /// negative; acme's client.
    pub async fn acme_world(&self) -> Client {
        self.books().await;
        let acme = self.acme().await;
        let wallet = BalanceRule::DebitsWithinCredits { overdraft_minor: Amount::ZERO };
        for (account_id, chart, rule) in [
            (BANK, BANK_CHART, BalanceRule::Unbounded),
            (ALICE, WALLET_CHART, wallet.clone()),
            (BOB, WALLET_CHART, wallet),
        ] {
            let request = AccountRequest::new(id(account_id), CNY, chart, rule);
            let opened = acme.create_account(&request, None).await.unwrap();
            assert_eq!(opened.http_status, 201);
        }
        acme
    }
}

pub fn id(account_id: u128) -> AccountId {
    AccountId::new(account_id).unwrap()
}

pub fn transfer_id(transfer_id: u128) -> TransferId {
    TransferId::new(transfer_id).unwrap()
}

pub fn minor(minor_units: u32) -> Amount {
    Amount::from(minor_units)
}

/// A posted transfer of `amount` from `debit` to `credit`.
pub fn post(transfer: Option<u128>, debit: u128, credit: u128, amount: u32) -> TransferRequest {
    TransferRequest::Post(NewTransfer::new(
        transfer.map(transfer_id),
        id(debit),
        id(credit),
        CNY,
        minor(amount),
    ))
}

/// A transfer that must be created.
pub async fn pay(
    client: &Client,
    transfer: u128,
    debit: u128,
    credit: u128,
    amount: u32,
) -> TransferView {
    let reply =
        client.create_transfer(&post(Some(transfer), debit, credit, amount), None).await.unwrap();
    assert_eq!(reply.http_status, 201, "{reply:?}");
    reply.into_value()
}
