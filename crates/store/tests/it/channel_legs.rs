//! The channel columns kept beside each order, and the read of a channel's day from them
//! (`OrderStore::channel_legs_between`), on both backends: what the read returns is exactly
//! what each order's own state says (`Order::channel_leg`), page by page; an order changed by
//! a release that does not write the columns (a rolling upgrade) is read from the order
//! itself, never from its stale columns.

use channels::{ChannelId, Settled};
use executor::port::{ChannelLegRecord, OrderRecord, OrderStore};
use money::{Amount, AssetCode};
use payments::topup::{TopUp, TopUpState};
use payments::withdrawal::{Withdrawal, WithdrawalState};
use payments::{Order, OrderId};
use store::{PgOrderStore, SqliteOrderStore};

use crate::backends::{drop_schema, pg_target};
use crate::orders::{advanced, oid, record};

fn bank(name: &str) -> ChannelId {
    ChannelId::new(name).expect("channel")
}

fn cny() -> AssetCode {
    AssetCode::new("CNY").expect("asset")
}

fn topup(id: &str, minor: u64, state: TopUpState) -> Order {
    let amount = Amount::new(minor).expect("amount");
    Order::Topup(TopUp {
        state,
        ..TopUp::new(oid(id), "alice".into(), "card".into(), cny(), amount)
    })
}

fn withdrawal(id: &str, state: WithdrawalState) -> Order {
    let amount = Amount::new(700).expect("amount");
    Order::Withdrawal(Withdrawal {
        state,
        ..Withdrawal::new(oid(id), "bob".into(), "acct".into(), cny(), amount)
    })
}

fn settled(reference: &str, fee: u64) -> Settled {
    Settled { channel_ref: reference.into(), fee: Amount::new(fee).expect("fee") }
}

/// Every leg at `channel` of orders created in `[from_ms, to_ms)`, `limit` orders a page.
fn read_all(
    store: &dyn OrderStore,
    channel: &ChannelId,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Vec<ChannelLegRecord> {
    let mut legs = Vec::new();
    let mut after = None;
    loop {
        let page = store.channel_legs_between(channel, from_ms, to_ms, after, limit).expect("legs");
        legs.extend(page.legs);
        match page.next {
            Some(cursor) => after = Some(cursor),
            None => return legs,
        }
    }
}

/// What the orders themselves say: the legs at `channel`, by creation time and id.
fn expected(records: &[&OrderRecord], channel: &ChannelId) -> Vec<ChannelLegRecord> {
    let mut sorted: Vec<&&OrderRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.created_at_ms, r.id().clone()));
    sorted
        .into_iter()
        .filter_map(|r| {
            let leg = r.order.channel_leg().filter(|leg| leg.channel == *channel)?;
            Some(ChannelLegRecord {
                order_id: r.id().clone(),
                kind: r.order.kind(),
                amount: r.order.amount(),
                asset: r.order.asset(),
                created_at_ms: r.created_at_ms,
                leg,
            })
        })
        .collect()
}

/// `old_release(id, body)`: what a release without the channel columns does to an order —
/// its body and version change, its channel columns do not.
fn legs(store: &dyn OrderStore, old_release: &dyn Fn(&OrderId, &str)) {
    let (a, b) = (bank("bank_a"), bank("bank_b"));
    let debiting = |id| topup(id, 100, TopUpState::Debiting { channel: a.clone() });
    let mut records = vec![
        record("lg1", debiting("top_lg1"), 1_000),
        record(
            "lg2",
            topup(
                "top_lg2",
                200,
                TopUpState::Succeeded { channel: a.clone(), settled: settled("r2", 3) },
            ),
            1_000,
        ),
        record(
            "lg1",
            withdrawal(
                "wd_lg1",
                WithdrawalState::Succeeded { channel: b.clone(), settled: settled("r3", 0) },
            ),
            1_100,
        ),
        record(
            "lg1",
            withdrawal(
                "wd_lg2",
                WithdrawalState::Failed { channel: Some(a.clone()), reason: "no".into() },
            ),
            1_200,
        ),
        // Sent nowhere yet.
        record("lg2", topup("top_lg3", 300, TopUpState::Created), 1_300),
        // Outside the window read below.
        record("lg2", debiting("top_lg4"), 5_000),
        record("lg1", debiting("top_lg5"), 999),
    ];
    for r in &records {
        store.insert(r).expect("insert");
    }
    let all: Vec<&OrderRecord> = records.iter().collect();
    let window = |limit| read_all(store, &a, 1_000, 5_000, limit);
    let in_window: Vec<&OrderRecord> =
        all.iter().copied().filter(|r| (1_000..5_000).contains(&r.created_at_ms)).collect();
    assert_eq!(window(100), expected(&in_window, &a));
    assert_eq!(window(100).len(), 3, "top_lg1, top_lg2 and wd_lg2 went to bank_a");
    for limit in [1, 2, 3] {
        assert_eq!(window(limit), window(100), "pages of {limit}");
    }
    assert_eq!(read_all(store, &b, 0, 10_000, 2), expected(&all, &b));

    // This release's updates keep the columns current.
    let answered = advanced(
        &records[0],
        topup(
            "top_lg1",
            100,
            TopUpState::Succeeded { channel: a.clone(), settled: settled("r1", 1) },
        ),
        2_000,
    );
    assert!(store.update(&answered, 1, &[]).expect("update"));
    records[0] = answered;
    let sent = advanced(&records[4], debiting("top_lg3"), 2_000);
    assert!(store.update(&sent, 1, &[]).expect("update"));
    records[4] = sent;
    let all: Vec<&OrderRecord> = records.iter().collect();
    let in_window: Vec<&OrderRecord> =
        all.iter().copied().filter(|r| (1_000..5_000).contains(&r.created_at_ms)).collect();
    assert_eq!(window(100), expected(&in_window, &a));
    assert_eq!(window(100).len(), 4);

    // An older release answers top_lg2 with a failure and moves top_lg3 to bank_b: the
    // columns still say succeeded at bank_a and debiting at bank_a; the read believes the
    // orders.
    let failed =
        topup("top_lg2", 200, TopUpState::Failed { channel: Some(a.clone()), reason: "x".into() });
    old_release(records[1].id(), &serde_json::to_string(&failed).expect("json"));
    records[1].order = failed;
    let moved = topup("top_lg3", 300, TopUpState::Debiting { channel: b.clone() });
    old_release(records[4].id(), &serde_json::to_string(&moved).expect("json"));
    records[4].order = moved;
    let all: Vec<&OrderRecord> = records.iter().collect();
    let in_window: Vec<&OrderRecord> =
        all.iter().copied().filter(|r| (1_000..5_000).contains(&r.created_at_ms)).collect();
    assert_eq!(window(100), expected(&in_window, &a));
    assert_eq!(window(1), window(100));
    assert_eq!(read_all(store, &b, 0, 10_000, 1), expected(&all, &b));
    let lg2 = window(100).into_iter().find(|l| l.order_id.as_str() == "top_lg2").expect("lg2");
    assert_eq!(lg2.leg.status, recon::OurStatus::Failed);
    assert!(lg2.leg.settled.is_none());
}

const OLD_RELEASE_UPDATE: &str = "UPDATE orders SET body = ?2, version = version + 1 WHERE id = ?1";

#[test]
fn sqlite_order_store_reads_channel_legs_from_its_columns_or_the_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let store = SqliteOrderStore::open(&path).expect("open");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    legs(&store, &|id, body| {
        raw.execute(OLD_RELEASE_UPDATE, rusqlite::params![id.as_str(), body]).expect("old");
    });
}

#[test]
fn postgres_order_store_reads_channel_legs_from_its_columns_or_the_order() {
    let Some(target) = pg_target("legs") else { return };
    let store = PgOrderStore::connect(&target).expect("connect");
    let raw = std::sync::Mutex::new(target.connect_client().expect("raw"));
    legs(&store, &|id, body| {
        let sql = OLD_RELEASE_UPDATE.replace('?', "$");
        let mut client = raw.lock().expect("raw client");
        client.execute(&sql, &[&id.as_str(), &body]).expect("old");
    });
    drop_schema(&target);
}
