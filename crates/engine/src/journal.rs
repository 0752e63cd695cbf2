//! Where the engine keeps its journal: the port [`Journal`], and [`FileJournal`], the segment
//! files of [`crate::log`] in a directory with a lock file. PostgreSQL's journal (a table
//! and a lease, so another node can take the book over) is in the `store` crate, which owns
//! every SQL text.

use std::path::Path;

use crate::log::{self, Durability, LogError, LogWriter, FRAME_HEADER_BYTES};
use crate::{codec, EngineConfig};

/// What [`Journal::replay`] hands each batch to: its payload version and payload. An error
/// says why the batch cannot follow the books; the journal names where it found it.
pub type Replay<'a> = dyn FnMut(u8, &[u8]) -> Result<(), String> + 'a;

/// What replaying a journal found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Batches handed to the replay (every batch after the books' head).
    pub n_batches: u64,
    /// Bytes of a torn append found at the end and discarded (never acknowledged).
    pub torn_tail_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// Another process holds the journal (its lock file, or its lease).
    #[error("the journal at {0} is in use by another process")]
    Locked(String),
    /// A batch that cannot be read, or does not follow the one before it.
    #[error("journal corrupt at {place}: {detail}")]
    Corrupt { place: String, detail: String },
    /// This node's hold on the journal ended (another node took the lease over): it must
    /// take no more writes.
    #[error("this node no longer holds the journal: {0}")]
    Fenced(String),
    /// The journal's storage failed; after an append the outcome is unknown.
    #[error("journal storage: {0}")]
    Backend(String),
}

/// The journal the engine appends to. One writer holds it at a time; the engine calls it
/// from its writer thread only.
pub trait Journal: Send {
    /// Hands `each`, in order, every batch the journal holds after `after_batch` (the books'
    /// head). Called once, before anything is appended.
    fn replay(
        &mut self,
        after_batch: u64,
        each: &mut Replay<'_>,
    ) -> Result<ReplayReport, JournalError>;
    /// After the replay: ready to append `next_batch` and the ones after it.
    fn start_appending(&mut self, next_batch: u64) -> Result<(), JournalError>;
    /// Appends one batch's payload (in [`codec::PAYLOAD_VERSION`]) and makes it durable;
    /// returns the bytes written. Any error is fatal for the engine: the batch may or may not
    /// be there, and only a restart's replay can tell.
    fn append(&mut self, batch_seq: u64, payload: &[u8]) -> Result<u64, JournalError>;
    /// Drops the batches up to `batch_seq`: the books hold them durably.
    fn retire_through(&mut self, batch_seq: u64) -> Result<(), JournalError>;
    /// Called each time the writer begins a batch (the posting pipeline begins one every
    /// expiry poll, 1 s by default, while it idles): a journal held by a lease renews it
    /// here, as often as it needs to.
    fn keep_alive(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
    /// A clean close: the books hold every batch up to `projected_through` (their last
    /// commit may still be unsynced). A journal may make them durable, retire what they hold
    /// and let another node take it at once.
    fn close(&mut self, projected_through: u64) {
        let _ = projected_through;
    }
}

/// The journal in segment files ([`crate::log`]), held by a lock file.
pub struct FileJournal {
    /// Its directory, segment size and preallocation (the limits are the engine's).
    config: EngineConfig,
    durability: Option<Box<dyn Durability>>,
    end_offset: u64,
    writer: Option<LogWriter>,
    frame: Vec<u8>,
    _lock: std::fs::File,
}

impl FileJournal {
    /// Takes the directory's lock; a second process gets [`JournalError::Locked`].
    pub fn open(
        config: &EngineConfig,
        durability: Box<dyn Durability>,
    ) -> Result<FileJournal, JournalError> {
        let config = config.clone();
        std::fs::create_dir_all(&config.dir)
            .map_err(|source| LogError::Io { path: config.dir.clone(), source })?;
        let lock = lock_dir(&config.dir)?;
        Ok(FileJournal {
            config,
            durability: Some(durability),
            end_offset: 0,
            writer: None,
            frame: Vec::new(),
            _lock: lock,
        })
    }

    fn corrupt(&self, detail: String) -> JournalError {
        LogError::Corrupt { segment: self.config.dir.clone(), offset: 0, detail }.into()
    }
}

impl Journal for FileJournal {
    fn replay(
        &mut self,
        after_batch: u64,
        each: &mut Replay<'_>,
    ) -> Result<ReplayReport, JournalError> {
        let mut n_batches = 0;
        let dir = self.config.dir.clone();
        let report = log::read_all(&dir, &mut |version, payload| {
            // Frames the books hold are skipped unread, whatever release wrote them.
            if codec::peek_batch_seq(payload) <= after_batch {
                return Ok(());
            }
            n_batches += 1;
            each(version, payload).map_err(|detail| LogError::Corrupt {
                segment: dir.clone(),
                offset: 0,
                detail,
            })
        })?;
        self.end_offset = report.end_offset;
        Ok(ReplayReport { n_batches, torn_tail_bytes: report.torn_tail_bytes })
    }

    fn start_appending(&mut self, next_batch: u64) -> Result<(), JournalError> {
        let durability = self.durability.take().ok_or_else(|| {
            self.corrupt("the journal was opened for appending twice".to_string())
        })?;
        self.writer = Some(LogWriter::open(
            &self.config.dir,
            next_batch,
            self.end_offset,
            self.config.segment_bytes_max,
            self.config.preallocate_segments,
            durability,
        )?);
        Ok(())
    }

    fn append(&mut self, batch_seq: u64, payload: &[u8]) -> Result<u64, JournalError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(JournalError::Backend("append before the journal was replayed".into()));
        };
        self.frame.clear();
        log::frame(payload, &mut self.frame);
        writer.append(batch_seq, &self.frame)?;
        Ok((payload.len() + FRAME_HEADER_BYTES) as u64)
    }

    fn retire_through(&mut self, batch_seq: u64) -> Result<(), JournalError> {
        if let Some(writer) = self.writer.as_mut() {
            writer.retire_through(batch_seq)?;
        }
        Ok(())
    }
}

fn lock_dir(dir: &Path) -> Result<std::fs::File, JournalError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LogError::Io { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(JournalError::Locked(dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(LogError::Io { path, source }.into()),
    }
}
