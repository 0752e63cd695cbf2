//! The journal's medium, measured (issue 15 asks for the choice to be made by measurement):
//! appending one batch and making it durable, in the engine's own file format against SQLite
//! used as a journal of one blob per batch (WAL, `synchronous = FULL`, a transaction per
//! batch). Payload sizes are those of real batches: one transfer, 64 transfers, a bulk
//! request of 8,000. Run with `cargo bench -p engine --bench medium`.
#![allow(clippy::float_arithmetic)] // rates, never money

use std::time::{Duration, Instant};

use engine::log::{frame, DataSync, LogWriter};

/// About what the engine writes per transfer (`codec`: the record, two entries, two accounts).
const BYTES_PER_TRANSFER: usize = 450;
const MEASURE: Duration = Duration::from_secs(3);

fn main() {
    println!(
        "| batch | own file: batches/s | MB/s | SQLite blob: batches/s | MB/s | own / SQLite |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for transfers in [1usize, 64, 8_000] {
        let payload = vec![0xA5u8; transfers * BYTES_PER_TRANSFER];
        let file = own_file(&payload);
        let sqlite = sqlite_blob(&payload);
        let mb = |rate: f64| rate * payload.len() as f64 / 1e6;
        println!(
            "| {transfers} transfers ({} KB) | {file:.0} | {:.1} | {sqlite:.0} | {:.1} | {:.2}x |",
            payload.len() / 1000,
            mb(file),
            mb(sqlite),
            file / sqlite
        );
    }
}

/// Batches per second, each appended as a frame and synced.
fn own_file(payload: &[u8]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = LogWriter::open(dir.path(), 1, 64 << 20, Box::new(DataSync)).expect("open");
    let mut framed = Vec::new();
    let started = Instant::now();
    let mut batches = 0u64;
    while started.elapsed() < MEASURE {
        framed.clear();
        frame(payload, &mut framed);
        batches += 1;
        writer.append(batches, &framed).expect("append");
    }
    batches as f64 / started.elapsed().as_secs_f64()
}

/// Batches per second, each one row in its own durable transaction.
fn sqlite_blob(payload: &[u8]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connection = rusqlite::Connection::open(dir.path().join("journal.db")).expect("open");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 10000;
             CREATE TABLE journal (batch INTEGER PRIMARY KEY, body BLOB NOT NULL);",
        )
        .expect("schema");
    let started = Instant::now();
    let mut batches = 0i64;
    while started.elapsed() < MEASURE {
        batches += 1;
        let tx = connection.transaction().expect("begin");
        tx.execute(
            "INSERT INTO journal (batch, body) VALUES (?1, ?2)",
            rusqlite::params![batches, payload],
        )
        .expect("insert");
        tx.commit().expect("commit");
    }
    batches as f64 / started.elapsed().as_secs_f64()
}
