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
        "| batch | own file, grown: batches/s | own file, preallocated: batches/s | MB/s \
         | SQLite blob: batches/s | preallocated / grown | preallocated / SQLite |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for transfers in [1usize, 64, 8_000] {
        let payload = vec![0xA5u8; transfers * BYTES_PER_TRANSFER];
        let grown = own_file(&payload, false);
        let preallocated = own_file(&payload, true);
        let sqlite = sqlite_blob(&payload);
        println!(
            "| {transfers} transfers ({} KB) | {grown:.0} | {preallocated:.0} | {:.1} | {sqlite:.0} \
             | {:.2}x | {:.2}x |",
            payload.len() / 1000,
            preallocated * payload.len() as f64 / 1e6,
            preallocated / grown,
            preallocated / sqlite,
        );
    }
}

/// Batches per second, each appended as a frame and synced: to a segment that grows as it is
/// written, or (`preallocate`) into spare segments of zeros made ahead (the engine's way).
fn own_file(payload: &[u8], preallocate: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer =
        LogWriter::open(dir.path(), 1, 0, 64 << 20, preallocate, Box::new(DataSync)).expect("open");
    let mut framed = Vec::new();
    let mut batches = 0u64;
    let mut append = |writer: &mut LogWriter| {
        framed.clear();
        frame(payload, &mut framed);
        batches += 1;
        writer.append(batches, &framed).expect("append");
    };
    // The first segment grows; the writer moves into the first spare once it is ready.
    append(&mut writer);
    while preallocate && !writer.preallocated() {
        std::thread::sleep(Duration::from_millis(20));
        append(&mut writer);
    }
    let started = Instant::now();
    let mut measured = 0u64;
    while started.elapsed() < MEASURE {
        append(&mut writer);
        measured += 1;
    }
    measured as f64 / started.elapsed().as_secs_f64()
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
