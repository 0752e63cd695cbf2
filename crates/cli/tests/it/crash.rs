//! Crash consistency: SIGKILL the process while it posts, then check that every transfer it
//! acknowledged is in the books, nothing unacknowledged is half-applied (the journal verifies
//! and every balance equals its replay), and posting resumes after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ledger::port::LedgerReader;
use ledger::verify::verify;
use ledger::TransferId;

/// Acknowledgements to wait for before the kill: enough that the kill lands mid-stream.
const ACKS_BEFORE_KILL: usize = 3_000;

fn qianbao() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qianbao"))
}

fn start_load(store_args: &[String], submitters: u64, first_id: u64, transfers: u64) -> Child {
    start_bulk_load(store_args, submitters, first_id, transfers, 1)
}

fn start_bulk_load(
    store_args: &[String],
    submitters: u64,
    first_id: u64,
    transfers: u64,
    bulk_size: u64,
) -> Child {
    qianbao()
        .args(["ledger", "load", "--submitters", &submitters.to_string()])
        .args(["--bulk-size", &bulk_size.to_string()])
        .args(["--transfers", &transfers.to_string(), "--first-id", &first_id.to_string()])
        .args(store_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start qianbao ledger load")
}

/// Reads `ack <id>` lines; kills the process after `kill_after` of them (if given) and keeps
/// reading what it had already written until the pipe closes.
fn collect_acks(child: &mut Child, kill_after: Option<usize>) -> Vec<u128> {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut acks = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        let id = line.strip_prefix("ack ").expect("ack line").parse().expect("id");
        acks.push(id);
        if kill_after == Some(acks.len()) {
            child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        }
    }
    let _ = child.wait();
    acks
}

fn check_books(reader: &dyn LedgerReader, acks: &[u128]) {
    let missing: Vec<&u128> = acks
        .iter()
        .filter(|id| reader.transfer(TransferId::new(**id).expect("id")).expect("read").is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged transfers lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let report = verify(reader, &mut |_| {}).expect("verify");
    assert!(report.is_ok(), "journal does not verify after the crash: {:?}", report.divergence);
}

fn crash_and_recover(store_args: Vec<String>, reader: impl Fn() -> Box<dyn LedgerReader>) {
    let mut child = start_load(&store_args, 16, 1_000_000, 1_000_000);
    let acks = collect_acks(&mut child, Some(ACKS_BEFORE_KILL));
    assert!(acks.len() >= ACKS_BEFORE_KILL);
    check_books(reader().as_ref(), &acks);

    // Restart: resending the first submitter's stream (the same ids with the same fields) is
    // acknowledged again without a second effect, and new transfers post.
    let first_submitter: Vec<u128> = acks.iter().copied().filter(|id| *id < 2_000_000).collect();
    let before = reader().head().expect("head");
    let mut child = start_load(&store_args, 1, 1_000_000, first_submitter.len() as u64);
    let retried = collect_acks(&mut child, None);
    assert_eq!(
        retried.len(),
        first_submitter.len(),
        "retries of acknowledged ids are acknowledged again"
    );
    assert_eq!(reader().head().expect("head").last_seq, before.last_seq, "a retry wrote nothing");
    let mut child = start_load(&store_args, 16, 900_000_000, 50);
    let fresh = collect_acks(&mut child, None);
    assert_eq!(fresh.len(), 16 * 50);
    check_books(reader().as_ref(), &fresh);
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_transfer_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    let args = vec![
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--ledger-engine".to_string(),
        "direct".to_string(),
    ];
    crash_and_recover(args, || {
        Box::new(store::SqliteReader::open(data_dir.join("ledger.db")).expect("open reader"))
    });
}

/// The books of a data directory on the journal-first engine, as an operator reads them after
/// a crash: `qianbao ledger verify` writes the journal's batches the books lack into them
/// (and checks them), then `ledger.db` is read directly.
fn journal_books(data_dir: &std::path::Path) -> Box<dyn LedgerReader> {
    let status = qianbao()
        .args(["ledger", "verify", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .status()
        .expect("run qianbao ledger verify");
    assert!(status.success(), "qianbao ledger verify failed after the crash");
    Box::new(store::SqliteReader::open(data_dir.join("ledger.db")).expect("open reader"))
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_transfer_on_the_journal_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    let args = vec!["--data-dir".to_string(), data_dir.display().to_string()];
    crash_and_recover(args, || journal_books(&data_dir));
}

/// Killed again and again during bulk load: after each restart every transfer acknowledged
/// in every round is in the books. Each round's restart replays the journal the kill left.
#[test]
fn sigkill_in_a_loop_during_bulk_load_loses_nothing_on_the_journal_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    let args = vec!["--data-dir".to_string(), data_dir.display().to_string()];
    let mut acknowledged = Vec::new();
    for round in 0..4u64 {
        let first_id = 10_000_000 * (round + 1);
        let mut child = start_bulk_load(&args, 4, first_id, 1_000_000, 500);
        acknowledged.extend(collect_acks(&mut child, Some(ACKS_BEFORE_KILL * 3)));
        // Every other round the next load's start does the replay, not verify's.
        if round % 2 == 1 {
            check_books(journal_books(&data_dir).as_ref(), &acknowledged);
        }
    }
    check_books(journal_books(&data_dir).as_ref(), &acknowledged);
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_transfer_on_postgres() {
    let Some(url) = crate::payments::postgres_url() else { return };
    let schema = format!("qb_test_crash_{}", std::process::id());
    let target = store::PgTarget::new(url.clone(), schema.clone());
    let args = vec!["--database-url".to_string(), url, "--database-schema".to_string(), schema];
    crash_and_recover(args, || Box::new(store::PgReader::connect(target.clone()).expect("reader")));
    store::postgres::drop_schema(&target).expect("drop schema");
    let test_book = store::PgTarget::new(target.url.clone(), format!("{}_test", target.schema));
    store::postgres::drop_schema(&test_book).expect("drop the test book's schema");
}

/// The journal-first engine on PostgreSQL, killed under load: the next holder of the journal's
/// lease (after it expires) finds every acknowledged transfer in the journal table, and
/// `ledger verify` writes them into the books.
#[test]
fn sigkill_under_load_loses_no_acknowledged_transfer_on_the_postgres_journal_engine() {
    let Some(url) = crate::payments::postgres_url() else { return };
    let schema = format!("qb_test_crash_journal_{}", std::process::id());
    let target = store::PgTarget::new(url.clone(), schema.clone());
    const LEASE_MS: u64 = 500;
    let args: Vec<String> = [
        "--database-url",
        &url,
        "--database-schema",
        &schema,
        "--ledger-engine",
        "journal",
        "--ledger-lease-ms",
        &LEASE_MS.to_string(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let verify_args = args.clone();
    crash_and_recover(args, || {
        // The killed node's lease expires; verify then writes its journal into the books.
        std::thread::sleep(std::time::Duration::from_millis(LEASE_MS * 2));
        let status = qianbao()
            .args(["ledger", "verify"])
            .args(&verify_args)
            .stdout(Stdio::null())
            .status()
            .expect("run qianbao ledger verify");
        assert!(status.success(), "qianbao ledger verify failed after the crash");
        let state = store::PgJournal::state(&target).expect("journal state");
        assert_eq!(state.batches_ahead, 0, "verify wrote the journal into the books");
        Box::new(store::PgReader::connect(target.clone()).expect("reader"))
    });
    store::postgres::drop_schema(&target).expect("drop schema");
}

/// Upgrade in place and back: books made by the direct engine (today's layout, as every
/// earlier release wrote it) are run on the journal-first engine with no migration, killed
/// there with batches in the journal only, and run directly again: the direct start writes
/// the journal's batches into the books first. Every acknowledged transfer of every step is
/// there, and the books verify.
#[test]
fn books_move_between_the_engines_in_place_without_losing_an_acknowledged_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    let on = |engine: &str| {
        vec![
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--ledger-engine".to_string(),
            engine.to_string(),
        ]
    };
    let mut acknowledged = collect_acks(&mut start_load(&on("direct"), 4, 1_000_000, 500), None);
    assert_eq!(acknowledged.len(), 4 * 500);
    // Submitter k sends ids from 2,000,000 + k × 1,000,000.
    let mut child = start_bulk_load(&on("journal"), 4, 2_000_000, 1_000_000, 200);
    acknowledged.extend(collect_acks(&mut child, Some(ACKS_BEFORE_KILL)));
    let journal = data_dir.join("journal");
    assert!(engine_segments(&journal) > 0, "the journal engine wrote a journal");
    let rest = collect_acks(&mut start_load(&on("direct"), 4, 900_000_000, 500), None);
    assert_eq!(rest.len(), 4 * 500);
    acknowledged.extend(rest);
    let reader = store::SqliteReader::open(data_dir.join("ledger.db")).expect("open reader");
    check_books(&reader, &acknowledged);
    assert_eq!(
        engine_segments(&journal),
        0,
        "the direct start wrote the journal into the books, made them durable and retired it"
    );
    assert!(!journal.join("spare.ready").exists(), "and removed its spare segment");
    // And forward again: the journal's old frames are all in the books, and are skipped.
    let again = collect_acks(&mut start_load(&on("journal"), 2, 950_000_000, 300), None);
    assert_eq!(again.len(), 2 * 300);
    acknowledged.extend(again);
    check_books(journal_books(&data_dir).as_ref(), &acknowledged);
}

fn engine_segments(journal: &std::path::Path) -> usize {
    std::fs::read_dir(journal).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "qbj"))
            .count()
    })
}

/// Upgrade in place on PostgreSQL: a schema written by direct nodes is run on the journal
/// engine with nothing migrated but the journal's tables, killed there with batches in the
/// journal only, and run directly again once the dead node's lease has expired: the direct
/// start writes the journal's batches into the books first. Every acknowledged transfer of
/// every step is there, and the books verify.
#[test]
fn books_move_between_the_engines_in_place_on_postgres() {
    let Some(url) = crate::payments::postgres_url() else { return };
    let schema = format!("qb_test_move_{}", std::process::id());
    let target = store::PgTarget::new(url.clone(), schema.clone());
    const LEASE_MS: u64 = 500;
    let on = |engine: &str| -> Vec<String> {
        ["--database-url", &url, "--database-schema", &schema, "--ledger-engine", engine]
            .into_iter()
            .chain(["--ledger-lease-ms", "500"])
            .map(str::to_string)
            .collect()
    };
    let mut acknowledged = collect_acks(&mut start_load(&on("direct"), 4, 1_000_000, 300), None);
    assert_eq!(acknowledged.len(), 4 * 300);
    let mut child = start_bulk_load(&on("journal"), 4, 2_000_000, 1_000_000, 200);
    acknowledged.extend(collect_acks(&mut child, Some(ACKS_BEFORE_KILL)));
    std::thread::sleep(std::time::Duration::from_millis(LEASE_MS * 2));
    let rest = collect_acks(&mut start_load(&on("direct"), 4, 900_000_000, 300), None);
    assert_eq!(rest.len(), 4 * 300, "the direct start caught the journal up and posted");
    acknowledged.extend(rest);
    let state = store::PgJournal::state(&target).expect("journal state");
    assert_eq!(state.batches_ahead, 0, "the books hold every batch of the journal");
    check_books(&store::PgReader::connect(target.clone()).expect("reader"), &acknowledged);
    store::postgres::drop_schema(&target).expect("drop schema");
}
