//! The webhook store on SQLite and PostgreSQL, over the order store's outbox: endpoints per
//! tenant, the fan-out of each event once to every enabled endpoint of its tenant, due
//! deliveries with what sending needs, attempts, the delivery log with its filters,
//! redelivery — all surviving a reopen — and fan-outs racing on one outbox.

use std::collections::BTreeSet;

use executor::port::{NewEvent, OrderStore};
use payments::Order;
use serde_json::json;
use store::{PgOrderStore, PgWebhookStore, SqliteOrderStore, SqliteWebhookStore};
use webhooks::{Attempt, Delivery, DeliveryState, DueDelivery, Endpoint, WebhookStore};

use crate::backends::{drop_schema, pg_target};
use crate::orders::{advanced, record, topup};

fn endpoint(id: &str, tenant: &str, created_at_ms: u64) -> Endpoint {
    Endpoint {
        id: id.into(),
        tenant: tenant.into(),
        url: format!("https://{tenant}.example/hooks/{id}"),
        secret: format!("whsec_{id}"),
        enabled: true,
        created_at_ms,
    }
}

fn data(order_id: &str, n: usize) -> serde_json::Value {
    json!({ "order": order_id, "n": n, "note": "已支付 ✓" })
}

/// Commits events of the given types for a new order of `tenant`, changed at `at_ms`, and
/// returns their sequence numbers.
fn emit(
    orders: &dyn OrderStore,
    tenant: &str,
    order_id: &str,
    types: &[&str],
    at_ms: u64,
) -> Vec<u64> {
    let created = record(tenant, Order::Topup(topup(order_id, "alice")), at_ms);
    assert_eq!(orders.insert(&created).expect("insert"), executor::port::Inserted::Created);
    let events: Vec<NewEvent> = types
        .iter()
        .enumerate()
        .map(|(n, event_type)| NewEvent {
            event_type: (*event_type).into(),
            payload: data(order_id, n),
        })
        .collect();
    let changed = advanced(&created, created.order.clone(), at_ms);
    assert!(orders.update(&changed, 1, &events).expect("update"));
    let seqs: Vec<u64> = orders
        .events(tenant, 0, 10_000)
        .expect("events")
        .into_iter()
        .filter(|event| event.order_id.as_str() == order_id)
        .map(|event| event.seq)
        .collect();
    assert_eq!(seqs.len(), types.len());
    seqs
}

fn delivery_id(seq: u64, endpoint_id: &str) -> String {
    format!("whd_{seq}_{endpoint_id}")
}

fn due_ids(hooks: &dyn WebhookStore, now_ms: u64) -> BTreeSet<String> {
    hooks.due(now_ms, 100).expect("due").into_iter().map(|due| due.delivery.id).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

fn owned(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

fn log(
    hooks: &dyn WebhookStore,
    tenant: &str,
    endpoint_id: Option<&str>,
    state: Option<DeliveryState>,
    limit: usize,
) -> Vec<String> {
    hooks
        .deliveries(tenant, endpoint_id, state, limit)
        .expect("deliveries")
        .into_iter()
        .map(|delivery| delivery.id)
        .collect()
}

fn one(hooks: &dyn WebhookStore, tenant: &str, id: &str) -> Delivery {
    hooks
        .deliveries(tenant, None, None, 100)
        .expect("deliveries")
        .into_iter()
        .find(|delivery| delivery.id == id)
        .unwrap_or_else(|| panic!("{id} is in {tenant}'s log"))
}

fn exercise(orders: &dyn OrderStore, hooks: &dyn WebhookStore) {
    // ---- Endpoints: per tenant, by creation then id. ----
    let disabled = Endpoint { enabled: false, ..endpoint("we_a4", "acme", 300) };
    for new in [
        &endpoint("we_a2", "acme", 200),
        &endpoint("we_a1", "acme", 100),
        &endpoint("we_a3", "acme", 100),
        &endpoint("we_g1", "globex", 50),
        &disabled,
    ] {
        hooks.create_endpoint(new).expect("create endpoint");
    }
    let acme = hooks.endpoints("acme").expect("endpoints");
    assert_eq!(
        acme,
        [
            endpoint("we_a1", "acme", 100),
            endpoint("we_a3", "acme", 100),
            endpoint("we_a2", "acme", 200),
            disabled.clone(),
        ]
    );
    assert_eq!(hooks.endpoints("globex").expect("endpoints"), [endpoint("we_g1", "globex", 50)]);
    assert!(hooks.endpoints("nobody").expect("endpoints").is_empty());
    assert!(
        hooks.create_endpoint(&endpoint("we_a1", "globex", 999)).is_err(),
        "endpoint ids are unique across tenants"
    );
    assert_eq!(hooks.endpoints("acme").expect("endpoints"), acme, "nothing changed");
    assert_eq!(hooks.endpoints("globex").expect("endpoints").len(), 1);

    assert!(!hooks.disable_endpoint("acme", "we_g1").expect("disable"), "another tenant's");
    assert!(hooks.endpoints("globex").expect("endpoints")[0].enabled);
    assert!(!hooks.disable_endpoint("acme", "we_absent").expect("disable"));
    assert!(hooks.disable_endpoint("acme", "we_a3").expect("disable"));
    assert!(hooks.disable_endpoint("acme", "we_a3").expect("disable again"), "still the tenant's");
    let enabled: Vec<(String, bool)> = hooks
        .endpoints("acme")
        .expect("endpoints")
        .into_iter()
        .map(|endpoint| (endpoint.id, endpoint.enabled))
        .collect();
    assert_eq!(
        enabled,
        [
            ("we_a1".into(), true),
            ("we_a3".into(), false),
            ("we_a2".into(), true),
            ("we_a4".into(), false)
        ]
    );

    // ---- Fan-out: every event once, to the enabled endpoints of its tenant. ----
    assert_eq!(hooks.fan_out(1_000, 100).expect("fan out"), 0, "no events yet");
    let a = emit(orders, "acme", "top_w1", &["topup.debiting", "topup.succeeded"], 900);
    let g = emit(orders, "globex", "top_w2", &["topup.succeeded"], 950);
    let i = emit(orders, "initech", "top_w3", &["topup.succeeded"], 960);
    assert_eq!(
        hooks.fan_out(1_000, usize::MAX).expect("fan out"),
        5,
        "2 × 2 for acme, 1 for globex"
    );
    assert_eq!(hooks.fan_out(1_000, 100).expect("fan out again"), 0, "each event once");
    hooks.create_endpoint(&endpoint("we_i1", "initech", 970)).expect("create");
    assert_eq!(
        hooks.fan_out(1_000, 100).expect("fan out"),
        0,
        "initech's event went out before it had an endpoint"
    );
    let (a1_1, a1_2) = (delivery_id(a[0], "we_a1"), delivery_id(a[0], "we_a2"));
    let (a2_1, a2_2) = (delivery_id(a[1], "we_a1"), delivery_id(a[1], "we_a2"));
    let g1 = delivery_id(g[0], "we_g1");

    // ---- Due deliveries, with what sending them needs. ----
    assert!(hooks.due(999, 100).expect("due").is_empty(), "made due at the fan-out's time");
    assert_eq!(due_ids(hooks, 1_000), set(&[&a1_1, &a1_2, &a2_1, &a2_2, &g1]));
    assert_eq!(hooks.due(1_000, 2).expect("due").len(), 2);
    assert_eq!(hooks.due(1_000, usize::MAX).expect("the largest limit").len(), 5);
    let first = hooks
        .due(1_000, 100)
        .expect("due")
        .into_iter()
        .find(|due| due.delivery.id == a1_2)
        .expect("a1_2 is due");
    let expected = DueDelivery {
        delivery: Delivery {
            id: a1_2.clone(),
            endpoint_id: "we_a2".into(),
            event_seq: a[0],
            event_type: "topup.debiting".into(),
            order_id: "top_w1".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_at_ms: 1_000,
            last_status: 0,
            last_error: String::new(),
            updated_at_ms: 1_000,
        },
        url: "https://acme.example/hooks/we_a2".into(),
        secret: "whsec_we_a2".into(),
        body: String::new(),
    };
    assert_eq!(DueDelivery { body: String::new(), ..first.clone() }, expected);
    let body: serde_json::Value = serde_json::from_str(&first.body).expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "id": format!("evt_{}", a[0]),
            "object": "event",
            "type": "topup.debiting",
            "created_at_ms": 900,
            "data": data("top_w1", 0),
        })
    );
    assert_eq!(one(hooks, "acme", &a1_2), expected.delivery, "the log shows the same delivery");

    // ---- Attempts. ----
    hooks.record_attempt(&a1_1, &Attempt::Delivered { status: 200 }, 1_100).expect("attempt");
    let retry = Attempt::Retry { status: 503, error: "unavailable".into(), next_at_ms: 5_000 };
    hooks.record_attempt(&a1_2, &retry, 1_100).expect("attempt");
    // Error texts are bounded (in characters, not bytes).
    let long = "错".repeat(600);
    hooks
        .record_attempt(&a2_1, &Attempt::Failed { status: 0, error: long.clone() }, 1_200)
        .expect("attempt");
    // A delivery no longer pending takes no more attempts; an unknown one is ignored.
    hooks.record_attempt(&a1_1, &retry, 1_300).expect("late attempt");
    hooks.record_attempt("whd_absent", &Attempt::Delivered { status: 200 }, 1_300).expect("absent");
    // NUL, which PostgreSQL text cannot hold, is replaced on every backend.
    let nul = Attempt::Retry { status: 502, error: "bad\0gateway".into(), next_at_ms: 1_000 };
    hooks.record_attempt(&g1, &nul, 1_100).expect("an error text with NUL");
    assert_eq!(one(hooks, "globex", &g1).last_error, "bad\u{FFFD}gateway");

    let delivered = one(hooks, "acme", &a1_1);
    assert_eq!(
        (
            delivered.state,
            delivered.attempts,
            delivered.last_status,
            delivered.next_at_ms,
            delivered.updated_at_ms
        ),
        (DeliveryState::Delivered, 1, 200, 1_100, 1_100)
    );
    assert_eq!(delivered.last_error, "");
    let retrying = one(hooks, "acme", &a1_2);
    assert_eq!(
        retrying,
        Delivery {
            attempts: 1,
            next_at_ms: 5_000,
            last_status: 503,
            last_error: "unavailable".into(),
            updated_at_ms: 1_100,
            ..expected.delivery.clone()
        }
    );
    let failed = one(hooks, "acme", &a2_1);
    assert_eq!((failed.state, failed.attempts, failed.last_status), (DeliveryState::Failed, 1, 0));
    assert_eq!(failed.last_error, "错".repeat(500));
    assert_eq!((failed.next_at_ms, failed.updated_at_ms), (1_200, 1_200));

    // Pending and due only, soonest first.
    assert_eq!(due_ids(hooks, 4_999), set(&[&a2_2, &g1]));
    let due: Vec<String> =
        hooks.due(5_000, 100).expect("due").into_iter().map(|d| d.delivery.id).collect();
    assert_eq!(due.len(), 3);
    assert_eq!(set(&[&due[0], &due[1]]), set(&[&a2_2, &g1]), "due at 1,000, before {due:?}");
    assert_eq!(due[2], a1_2, "due at 5,000");
    let soonest = hooks.due(5_000, 1).expect("due");
    assert!(soonest.len() == 1 && soonest[0].delivery.id != a1_2, "{soonest:?}");
    let again = Attempt::Retry { status: 500, error: "boom".into(), next_at_ms: 9_000 };
    hooks.record_attempt(&a1_2, &again, 5_000).expect("attempt");
    let retrying = one(hooks, "acme", &a1_2);
    assert_eq!(
        (retrying.attempts, retrying.next_at_ms, retrying.last_error.as_str()),
        (2, 9_000, "boom")
    );

    // ---- The log: newest event first, then by id; per tenant. ----
    assert_eq!(log(hooks, "acme", None, None, 100), owned(&[&a2_1, &a2_2, &a1_1, &a1_2]));
    assert_eq!(log(hooks, "acme", None, None, 1), owned(&[&a2_1]));
    assert_eq!(log(hooks, "acme", None, None, usize::MAX).len(), 4, "the largest limit");
    assert_eq!(log(hooks, "acme", Some("we_a2"), None, 100), owned(&[&a2_2, &a1_2]));
    assert_eq!(log(hooks, "acme", None, Some(DeliveryState::Delivered), 100), owned(&[&a1_1]));
    assert_eq!(log(hooks, "acme", None, Some(DeliveryState::Failed), 100), owned(&[&a2_1]));
    assert_eq!(log(hooks, "acme", None, Some(DeliveryState::Pending), 100), owned(&[&a2_2, &a1_2]));
    assert_eq!(
        log(hooks, "acme", Some("we_a1"), Some(DeliveryState::Delivered), 100),
        owned(&[&a1_1])
    );
    assert!(log(hooks, "acme", Some("we_a1"), Some(DeliveryState::Pending), 100).is_empty());
    assert!(log(hooks, "acme", Some("we_g1"), None, 100).is_empty(), "globex's endpoint");
    assert_eq!(log(hooks, "globex", None, None, 100), owned(&[&g1]));
    assert!(log(hooks, "initech", None, None, 100).is_empty());
    let listed = one(hooks, "acme", &a2_2);
    assert_eq!(
        (listed.event_type.as_str(), listed.order_id.as_str()),
        ("topup.succeeded", "top_w1")
    );

    // ---- Redelivery: back to pending, due now, its history kept. ----
    assert!(hooks.redeliver("acme", &a2_1, 6_000).expect("redeliver"));
    let redelivered = one(hooks, "acme", &a2_1);
    assert_eq!(
        Delivery {
            state: DeliveryState::Pending,
            next_at_ms: 6_000,
            updated_at_ms: 6_000,
            ..failed
        },
        redelivered
    );
    assert!(due_ids(hooks, 6_000).contains(&a2_1));
    assert!(!hooks.redeliver("globex", &a2_1, 6_000).expect("redeliver"), "another tenant's");
    assert!(!hooks.redeliver("acme", "whd_absent", 6_000).expect("redeliver"));
    assert!(hooks.redeliver("acme", &a1_1, 6_000).expect("redeliver a delivered one"));
    assert_eq!(one(hooks, "acme", &a1_1).state, DeliveryState::Pending);
    assert_eq!(due_ids(hooks, 6_000), set(&[&a1_1, &a2_1, &a2_2, &g1]));

    // ---- A disabled endpoint: nothing more due to it, nothing new made for it. ----
    assert!(hooks.disable_endpoint("acme", "we_a2").expect("disable"));
    assert_eq!(due_ids(hooks, 10_000), set(&[&a1_1, &a2_1, &g1]));
    assert_eq!(
        log(hooks, "acme", Some("we_a2"), None, 100),
        owned(&[&a2_2, &a1_2]),
        "still logged"
    );

    // ---- The fan-out's limit counts events. ----
    let more = emit(orders, "acme", "top_w4", &["a", "b", "c"], 11_000);
    let g_more = emit(orders, "globex", "top_w5", &["d"], 11_000);
    assert_eq!(hooks.fan_out(12_000, 2).expect("fan out"), 2, "two events, one endpoint each");
    assert_eq!(hooks.fan_out(12_000, 2).expect("fan out"), 2);
    assert_eq!(hooks.fan_out(12_000, usize::MAX).expect("the largest limit"), 0);
    let made: BTreeSet<String> = more
        .iter()
        .map(|seq| delivery_id(*seq, "we_a1"))
        .chain([delivery_id(g_more[0], "we_g1")])
        .collect();
    let due_later: BTreeSet<String> =
        due_ids(hooks, 12_000).difference(&due_ids(hooks, 11_999)).cloned().collect();
    assert_eq!(due_later, made);
    assert_eq!(i.len(), 1);
    assert!(log(hooks, "initech", None, None, 100).is_empty());
}

/// What `exercise` left, as a reopened store reads it.
fn survives(hooks: &dyn WebhookStore) {
    assert_eq!(hooks.endpoints("acme").expect("endpoints").len(), 4);
    assert_eq!(hooks.deliveries("acme", None, None, 100).expect("log").len(), 7);
    assert_eq!(
        hooks.deliveries("acme", None, Some(DeliveryState::Pending), 100).expect("log").len(),
        7
    );
    assert_eq!(hooks.fan_out(20_000, 100).expect("fan out"), 0, "nothing fanned out twice");
    assert_eq!(hooks.due(20_000, 100).expect("due").len(), 7, "all pending but we_a2's");
}

/// Fan-outs on several connections at once make every delivery exactly once.
fn racing_fan_outs(orders: &dyn OrderStore, hooks: &[&dyn WebhookStore]) {
    for tenant in ["acme", "globex"] {
        for n in 1..=2 {
            hooks[0]
                .create_endpoint(&endpoint(&format!("we_{tenant}_{n}"), tenant, 1))
                .expect("create");
        }
    }
    let types = ["e"; 5];
    for n in 0..8 {
        let tenant = if n % 2 == 0 { "acme" } else { "globex" };
        emit(orders, tenant, &format!("top_race{n}"), &types, 100 + n);
    }
    let barrier = std::sync::Barrier::new(hooks.len());
    let made: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = hooks
            .iter()
            .map(|hooks| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let mut made = 0;
                    loop {
                        let n = hooks.fan_out(1_000, 3).expect("fan out");
                        if n == 0 {
                            return made;
                        }
                        made += n;
                    }
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().expect("join")).collect()
    });
    // A racer may stop when it found nothing new while others still worked: finish.
    let rest = hooks[0].fan_out(1_000, 1_000).expect("fan out");
    assert_eq!(made.iter().sum::<u64>() + rest, 80, "40 events × 2 endpoints: {made:?} + {rest}");
    for tenant in ["acme", "globex"] {
        let logged = hooks[0].deliveries(tenant, None, None, 1_000).expect("log");
        let unique: BTreeSet<&str> = logged.iter().map(|d| d.id.as_str()).collect();
        assert_eq!((logged.len(), unique.len()), (40, 40), "{tenant}");
    }
    assert_eq!(hooks[1].due(1_000, 1_000).expect("due").len(), 80);
}

#[test]
fn sqlite_webhook_store_conforms_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let orders = SqliteOrderStore::open(&path).expect("open orders");
    exercise(&orders, &SqliteWebhookStore::open(&path).expect("open"));
    survives(&SqliteWebhookStore::open(&path).expect("reopen"));
}

#[test]
fn postgres_webhook_store_conforms_across_a_reconnect() {
    let Some(target) = pg_target("webhooks") else { return };
    let orders = PgOrderStore::connect(&target).expect("connect orders");
    exercise(&orders, &PgWebhookStore::connect(&target).expect("connect"));
    survives(&PgWebhookStore::connect(&target).expect("reconnect"));
    drop(orders);
    drop_schema(&target);
}

#[test]
fn sqlite_fan_outs_racing_make_each_delivery_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let orders = SqliteOrderStore::open(&path).expect("open orders");
    let nodes: Vec<SqliteWebhookStore> =
        (0..3).map(|_| SqliteWebhookStore::open(&path).expect("open")).collect();
    let nodes: Vec<&dyn WebhookStore> =
        nodes.iter().map(|node| node as &dyn WebhookStore).collect();
    racing_fan_outs(&orders, &nodes);
}

#[test]
fn postgres_fan_outs_racing_make_each_delivery_once() {
    let Some(target) = pg_target("webhooks_race") else { return };
    let orders = PgOrderStore::connect(&target).expect("connect orders");
    let nodes: Vec<PgWebhookStore> =
        (0..3).map(|_| PgWebhookStore::connect(&target).expect("connect")).collect();
    let nodes: Vec<&dyn WebhookStore> =
        nodes.iter().map(|node| node as &dyn WebhookStore).collect();
    racing_fan_outs(&orders, &nodes);
    drop(nodes);
    drop(orders);
    drop_schema(&target);
}

/// KNOWN BACKEND DIFFERENCE of the stores (run with `--ignored`): PostgreSQL text cannot hold
/// NUL. There an endpoint whose URL has one is refused with a backend error, and a lookup by
/// an id or filter with one fails, where SQLite stores the endpoint and finds nothing. No
/// request reaches it: the server refuses a control character in a URL or a body (422
/// `invalid_character`, `server/src/request.rs`, tested in `server/tests/http/errors.rs`).
#[test]
#[ignore = "known backend difference: NUL in text (see the comment)"]
fn nul_in_text_is_treated_alike_by_both_backends() {
    fn outcomes(hooks: &dyn WebhookStore) -> Vec<String> {
        let nul_url =
            Endpoint { url: "https://example.com/a\0b".into(), ..endpoint("we_n1", "acme", 1) };
        vec![
            format!("{:?}", hooks.create_endpoint(&nul_url).map_err(|_| "error")),
            format!("{:?}", hooks.disable_endpoint("acme", "we_\0").map_err(|_| "error")),
            format!("{:?}", hooks.redeliver("acme", "whd_\0", 1).map_err(|_| "error")),
            format!(
                "{:?}",
                hooks
                    .deliveries("acme", Some("we_\0"), None, 10)
                    .map(|d| d.len())
                    .map_err(|_| "error")
            ),
        ]
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = outcomes(&SqliteWebhookStore::open(dir.path().join("orders.db")).expect("open"));
    let Some(target) = pg_target("webhooks_nul") else { return };
    let postgres = outcomes(&PgWebhookStore::connect(&target).expect("connect"));
    drop_schema(&target);
    assert_eq!(sqlite, postgres, "SQLite, then PostgreSQL");
}
