//! Test mode as a user runs it: `qianbao serve --test-banksim-url …` beside a live
//! simulator, a test key created by the live admin, and each book through its own channels.
//! A test key cannot read, pay from or be paid to a live party or order; its top-up goes
//! to the test simulator only; its orders and events say `livemode: false`; and the live
//! journal does not move. On SQLite and on PostgreSQL.

use serde_json::{json, Value};

use crate::payments::{drop_schemas, postgres_url, Sim, World, CARD, CARD_BALANCE_MINOR};

/// A deployment with both books: the live view (the admin key, the live simulator) and the
/// test view (an admin test key, the test book's simulator).
pub(crate) struct Books {
    pub(crate) live: World,
    pub(crate) test: World,
}

impl Books {
    pub(crate) fn start(channels: &[&str], extra: &[&str]) -> Books {
        let test_sim = Sim::start();
        for channel in channels {
            test_sim.call(
                "POST",
                &format!("/admin/channels/{channel}/accounts"),
                json!({"account": CARD, "initial_balance_minor": CARD_BALANCE_MINOR.to_string()}),
            );
        }
        let test_url = format!("http://{}", test_sim.base);
        let mut args = vec!["--test-banksim-url", test_url.as_str()];
        args.extend_from_slice(extra);
        let live = World::start(channels, &args);
        let created = live.ok(
            "POST",
            "/v1/keys",
            json!({"tenant": "platform", "mode": "test", "scopes": ["admin"]}),
        );
        let secret = created["secret"].as_str().expect("a test key").to_owned();
        assert!(secret.starts_with("qb_test_"), "{created}");
        let test = live.share_on(&secret, test_sim);
        test.ok("POST", "/v1/customers", json!({"id": "alice", "assets": ["CNY"]}));
        test.ok("POST", "/v1/merchants", json!({"id": "shop", "assets": ["CNY"], "fee_bps": 60}));
        Books { live, test }
    }
}

fn isolation(books: &Books) {
    let (live, test) = (&books.live, &books.test);
    let live_topup = live.topup("live-1", 1_000);
    assert_eq!(live_topup["status"], json!("succeeded"), "{live_topup}");
    assert_eq!(live_topup["livemode"], json!(true), "{live_topup}");
    live.ok("POST", "/v1/customers", json!({"id": "bob", "assets": ["CNY"]}));
    live.ok("POST", "/v1/merchants", json!({"id": "mall", "assets": ["CNY"], "fee_bps": 60}));
    let live_payment = live.ok(
        "POST",
        "/v1/payments",
        json!({"reference": "live-pay", "customer": "alice", "merchant": "shop", "asset": "CNY",
               "amount": "100"}),
    );
    assert_eq!(live_payment["status"], json!("succeeded"), "{live_payment}");
    let head = live.ok("GET", "/v1/journal/head", Value::Null);
    assert_eq!(head["mode"], json!("live"));

    // Live parties and orders are not there for a test key.
    let live_order = live_topup["id"].as_str().expect("id");
    assert_eq!(test.call("GET", &format!("/v1/orders/{live_order}"), Value::Null).0, 404);
    assert_eq!(test.call("GET", "/v1/customers/bob", Value::Null).0, 404);
    // Nor can they be moved, paid or refunded: a live customer's money, a live merchant, a
    // live payment.
    let refunds = format!("/v1/payments/{}/refunds", live_payment["id"].as_str().expect("id"));
    for (path, body) in [
        (
            "/v1/topups",
            json!({"reference": "to-bob", "customer": "bob", "card": CARD, "asset": "CNY",
                   "amount": "100"}),
        ),
        (
            "/v1/payments",
            json!({"reference": "from-bob", "customer": "bob", "merchant": "shop",
                   "asset": "CNY", "amount": "100"}),
        ),
        (
            "/v1/payments",
            json!({"reference": "to-mall", "customer": "alice", "merchant": "mall",
                   "asset": "CNY", "amount": "100"}),
        ),
        (refunds.as_str(), json!({"reference": "back", "amount": "100"})),
        (
            "/v1/withdrawals",
            json!({"reference": "out-of-bob", "customer": "bob", "bank_account": CARD,
                   "asset": "CNY", "amount": "100"}),
        ),
        (
            "/v1/wallet-transfers",
            json!({"reference": "bob-to-alice", "from": "bob", "to": "alice", "asset": "CNY",
                   "amount": "100"}),
        ),
    ] {
        let (status, answer) = test.call("POST", path, body);
        assert_eq!(status, 404, "{path}: {answer}");
    }
    // Nor its ledger accounts: the live wallet's id (the platform names ledger ids as they
    // are) is not in the test book, to read or to move money from.
    let bob = live.ok("GET", "/v1/customers/bob", Value::Null);
    let wallet = bob["balances"][0]["account_id"].as_str().expect("account id").to_owned();
    assert_eq!(test.call("GET", &format!("/v1/accounts/{wallet}"), Value::Null).0, 404);
    let test_alice = test.ok("GET", "/v1/customers/alice", Value::Null);
    let test_wallet = test_alice["balances"][0]["account_id"].clone();
    let (status, answer) = test.call(
        "POST",
        "/v1/transfers",
        json!({"type": "post", "id": "77", "debit_account_id": wallet, "credit_account_id": test_wallet,
               "asset": "CNY", "amount": "1"}),
    );
    assert_eq!(status, 404, "{answer}");

    // The test book's own top-up goes to the test simulator, and says it is test traffic.
    let test_topup = test.topup("test-1", 500);
    assert_eq!(test_topup["status"], json!("succeeded"), "{test_topup}");
    assert_eq!(test_topup["livemode"], json!(false), "{test_topup}");
    let succeeded = |sim: &Sim| -> Vec<u64> {
        sim.operations("bank_a")
            .iter()
            .filter(|op| op["status"] == json!("succeeded"))
            .map(|op| crate::payments::minor(&op["amount_minor"]))
            .collect()
    };
    assert_eq!(succeeded(&test.sim), [500], "the test simulator saw the test top-up only");
    assert_eq!(succeeded(&live.sim), [1_000], "the live simulator saw the live top-up only");
    let events = test.ok("GET", "/v1/events", Value::Null);
    let events = events["data"].as_array().expect("events");
    assert!(!events.is_empty());
    assert!(events.iter().all(|event| event["data"]["livemode"] == json!(false)), "{events:?}");
    let live_orders = live.ok("GET", "/v1/orders", Value::Null);
    let live_orders = live_orders["data"].as_array().expect("orders");
    assert!(live_orders.iter().all(|order| order["livemode"] == json!(true)), "{live_orders:?}");
    assert!(live_orders.iter().all(|order| order["reference"] != json!("test-1")));

    // Keys are managed from the live book; a live key is refused in the test book.
    let (status, body) = test.call(
        "POST",
        "/v1/keys",
        json!({"tenant": "platform", "mode": "live", "scopes": ["admin"]}),
    );
    assert_eq!((status, body["error"]["code"].clone()), (403, json!("keys_live_only")), "{body}");
    let (status, body) = live.call("GET", "/test/v1/orders", Value::Null);
    assert_eq!(status, 403, "{body}");

    // The live journal did not move; both books balance and match their banks.
    assert_eq!(live.ok("GET", "/v1/journal/head", Value::Null), head);
    assert_eq!(test.ok("GET", "/v1/journal/head", Value::Null)["mode"], json!("test"));
    test.assert_balanced();
    live.assert_balanced();
    test.assert_matches_simulator("bank_a");
    live.assert_matches_simulator("bank_a");
}

#[test]
fn a_test_key_acts_on_its_own_book_and_channels() {
    isolation(&Books::start(&["bank_a"], &[]));
}

#[test]
fn a_test_key_acts_on_its_own_book_and_channels_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("qb_test_mode_{}", std::process::id());
    let books = Books::start(&["bank_a"], &["--database-url", &url, "--database-schema", &schema]);
    isolation(&books);
    drop(books);
    drop_schemas(&url, &schema);
}
