//! The journal-first ledger engine (issue 15, item 1): what must be synchronous on the
//! critical path is only an append to a journal file and its sync; everything else is in
//! memory or off the path (异步化).
//!
//! - The pipeline's writer thread runs on [`Engine`], a `ledger::port::LedgerStore`. It reads
//!   account rows, holds and recent transfers from memory ([`state`]), and commits a batch by
//!   appending one checksummed frame ([`log`], [`codec`]) and syncing it. Only then is the
//!   batch applied in memory and its callers answered.
//! - A projector thread writes committed batches into the projection — today's SQLite books,
//!   unchanged — many batches per transaction, so a hot account's row is written once per
//!   group instead of once per batch. The writer waits when the projection lags more than
//!   [`EngineConfig::projection_lag_records_max`] records behind.
//! - Recovery loads the books from the projection and replays the journal's later frames
//!   (each checked: it must follow the head, and its records must hash to its hash). Journal
//!   segments are deleted once the projection holds them durably.
//! - [`EngineReader`] keeps the ledger's read promises (see [`reader`]).
//!
//! Because the projection is the books' existing layout, a data directory made before the
//! engine needs no migration: its journal starts empty at the books' head.

pub mod codec;
mod engine;
pub mod journal;
pub mod log;
pub mod reader;
pub mod state;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use engine::{Engine, EngineMetrics, EngineTx, OpenError};
pub use journal::{FileJournal, Journal, JournalError};
pub use reader::EngineReader;

/// The engine on a journal file: where the file lives, and the engine's bounds.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The journal's directory (segments and a lock file).
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes_max: u64,
    /// Write spare segments of zeros ahead of need, so an append's sync changes no file
    /// metadata (docs/bench/engine.md measures it).
    pub preallocate_segments: bool,
    pub limits: EngineLimits,
}

impl EngineConfig {
    pub fn new(dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            dir: dir.into(),
            segment_bytes_max: 64 << 20,
            preallocate_segments: true,
            limits: EngineLimits::default(),
        }
    }
}

/// The engine's bounds, whatever its journal.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Records the projection may lag behind the journal; the writer waits beyond it. This
    /// bounds the memory held for unprojected transfers and how long a history read waits.
    pub projection_lag_records_max: u64,
    /// Records per projection transaction at most.
    pub projection_group_records_max: u64,
    /// How long a read waits for the projection to catch up before it fails.
    pub read_wait_ms: u64,
}

impl Default for EngineLimits {
    fn default() -> EngineLimits {
        EngineLimits {
            projection_lag_records_max: 200_000,
            projection_group_records_max: 50_000,
            read_wait_ms: 30_000,
        }
    }
}

/// A view of a running engine's figures.
#[derive(Clone)]
pub struct EngineStats {
    shared: Arc<engine::Shared>,
}

impl EngineStats {
    /// Batches durable in the journal and not yet in the projection.
    pub fn lag_batches(&self) -> u64 {
        let head = self.shared.state.read().head.batch_seq.0;
        head.saturating_sub(self.shared.projected.lock().batch_seq.0)
    }

    /// Prometheus text of the engine's figures.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let metrics = &self.shared.metrics;
        let gauges = [
            (
                "qianbao_ledger_projection_lag_batches",
                "Batches in the journal not yet in the projection.",
                self.lag_batches(),
            ),
            (
                "qianbao_ledger_projection_lag_records",
                "Records in the journal not yet in the projection.",
                self.shared.lag_records.load(Ordering::Relaxed),
            ),
            (
                "qianbao_ledger_projection_failing",
                "1 while writing the projection fails.",
                u64::from(self.shared.projection_failing.load(Ordering::Relaxed)),
            ),
        ];
        let counters = [
            (
                "qianbao_ledger_journal_bytes_total",
                "Bytes appended to the journal.",
                &metrics.journal_bytes,
            ),
            (
                "qianbao_ledger_journal_syncs_total",
                "Journal appends made durable.",
                &metrics.journal_syncs,
            ),
            (
                "qianbao_ledger_projected_batches_total",
                "Batches written to the projection.",
                &metrics.projected_batches,
            ),
            (
                "qianbao_ledger_projection_groups_total",
                "Projection transactions.",
                &metrics.projection_groups,
            ),
            (
                "qianbao_ledger_projection_lag_waits_total",
                "Times the writer waited for the projection.",
                &metrics.lag_waits,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        for (name, help, value) in counters {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
    }
}
