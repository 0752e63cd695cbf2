//! The journal file: an append-only sequence of frames, one per committed batch, in segment
//! files named by the first batch they hold (`<batch_seq>.qbj`, 20 digits, so names sort in
//! order).
//!
//! A frame is `magic "QBJ1" | payload length u32 | payload version u8 | CRC-32 u32 | payload`
//! (little-endian). The CRC covers the length, the version and the payload, so a torn or
//! flipped byte anywhere in a frame is found. Reading at start-up tells the two failures
//! apart:
//! - a **torn tail** — a bad or short frame in the last segment with no good frame after it —
//!   is what a crash during an append leaves; nothing in it was acknowledged (a batch is
//!   acknowledged only after its sync), so it is cut off;
//! - anything else — a bad frame with good frames after it, or in an older segment — is
//!   **corruption**, named by segment and byte offset; the engine refuses to start on it.
//!
//! Segments are **preallocated**: a background thread writes a spare file of zeros to the
//! segment size and syncs it, and the writer rotates into it. Appending then overwrites
//! blocks the file already has, so `fdatasync` writes data only: no file size or extent
//! change, which on ext4 would join the file system's metadata journal and wait behind
//! every other file's changes (the books' own writes among them). A segment's frames end at
//! its first zero byte where a frame would start, when every byte after is zero too.
//!
//! A failed sync is fatal (see [`Durability`]): after `fsync` fails, Linux may have dropped the
//! dirty pages and cleared the error, so a second `fsync` that succeeds proves nothing. The
//! only safe course is to stop and recover from what is on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use crate::codec::PAYLOAD_VERSION;

const MAGIC: [u8; 4] = *b"QBJ1";
/// Magic, length, version, CRC.
pub const FRAME_HEADER_BYTES: usize = 4 + 4 + 1 + 4;
const SEGMENT_SUFFIX: &str = ".qbj";
/// A spare segment being zero-filled; left by a crash, it is removed at open.
const SPARE_FILLING: &str = "spare.filling";
/// A whole spare segment of zeros, synced, ready to be renamed into place.
const SPARE_READY: &str = "spare.ready";
/// The zero-fill's write size.
const FILL_CHUNK_BYTES: usize = 1 << 20;

/// How the journal makes appended bytes durable. The file system's `fdatasync` in production;
/// tests put a failing one in its place.
pub trait Durability: Send {
    fn sync(&mut self, file: &File) -> io::Result<()>;
}

/// `fdatasync(2)`.
pub struct DataSync;

impl Durability for DataSync {
    fn sync(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("journal I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A frame that is not a torn tail failed its check.
    #[error("journal corrupt in {segment} at byte {offset}: {detail}")]
    Corrupt { segment: PathBuf, offset: u64, detail: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_owned(), source }
}

/// Appends a frame holding `payload` to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("a batch's payload is far below 4 GiB");
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&checksum(len, PAYLOAD_VERSION, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn checksum(len: u32, version: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&[version]);
    hasher.update(payload);
    hasher.finalize()
}

/// The frame at `offset` of `bytes`: its payload version, its payload and where the next
/// frame starts, or why it is not a good frame. Any version is a good frame: whether this
/// release can read the payload is the reader's question (a frame the books already hold is
/// skipped unread, whatever release wrote it).
fn frame_at(bytes: &[u8], offset: usize) -> Result<(u8, &[u8], usize), String> {
    let header = bytes.get(offset..offset + FRAME_HEADER_BYTES).ok_or("short frame header")?;
    if header[..4] != MAGIC {
        return Err("no frame magic".into());
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let version = header[8];
    let stored = u32::from_le_bytes([header[9], header[10], header[11], header[12]]);
    let start = offset + FRAME_HEADER_BYTES;
    let end = start.checked_add(len as usize).ok_or("frame length overflows")?;
    let payload = bytes.get(start..end).ok_or("short frame payload")?;
    if checksum(len, version, payload) != stored {
        return Err("frame checksum mismatch".into());
    }
    Ok((version, payload, end))
}

/// Whether any good frame starts after `offset` (a byte-by-byte search for the magic).
fn good_frame_after(bytes: &[u8], offset: usize) -> bool {
    (offset + 1..bytes.len().saturating_sub(FRAME_HEADER_BYTES - 1))
        .any(|at| bytes[at..at + 4] == MAGIC && frame_at(bytes, at).is_ok())
}

/// The segment files of `dir`, by first batch, in order.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(io_error(dir)(error)),
    };
    for item in listing {
        let path = item.map_err(io_error(dir))?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if let Some(first) = name.strip_suffix(SEGMENT_SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

fn segment_path(dir: &Path, first_batch: u64) -> PathBuf {
    dir.join(format!("{first_batch:020}{SEGMENT_SUFFIX}"))
}

/// What reading the journal found besides its frames.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// Bytes of a torn append zeroed at the last segment's end.
    pub torn_tail_bytes: u64,
    pub n_frames: u64,
    /// Where the last segment's frames end: the next append goes there.
    pub end_offset: u64,
}

/// What [`read_all`] hands each frame to: its payload version and payload.
pub type FrameReader<'a> = dyn FnMut(u8, &[u8]) -> Result<(), LogError> + 'a;

/// Reads every good frame of every segment in order, handing each payload and its version to
/// `each`; zeroes a torn tail at the last segment's end. One segment is in memory at a time.
pub fn read_all(dir: &Path, each: &mut FrameReader<'_>) -> Result<ReadReport, LogError> {
    let mut report = ReadReport::default();
    let segments = segments(dir)?;
    for (index, (_, path)) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(io_error(path))?;
        let mut offset = 0;
        while offset < bytes.len() {
            match frame_at(&bytes, offset) {
                Ok((version, payload, next)) => {
                    each(version, payload)?;
                    report.n_frames += 1;
                    offset = next;
                }
                // The unwritten rest of a preallocated segment (in any segment: a writer may
                // rotate into a spare before the segment is full).
                Err(_) if bytes[offset..].iter().all(|byte| *byte == 0) => break,
                Err(detail) if last && !good_frame_after(&bytes, offset) => {
                    // Zeroed rather than cut, so a preallocated segment keeps its blocks.
                    let torn = bytes.iter().rposition(|byte| *byte != 0).map_or(0, |at| at + 1);
                    tracing::warn!(
                        segment = %path.display(), offset, bytes = torn - offset, %detail,
                        "zeroing a torn tail of the journal"
                    );
                    let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
                    file.write_all_at(&vec![0; torn - offset], offset as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(io_error(path))?;
                    report.torn_tail_bytes = (torn - offset) as u64;
                    break;
                }
                Err(detail) => {
                    return Err(LogError::Corrupt {
                        segment: path.clone(),
                        offset: offset as u64,
                        detail,
                    })
                }
            }
        }
        report.end_offset = offset as u64;
    }
    Ok(report)
}

/// Removes the spare segments made ahead in `dir` (for a journal no longer written; never
/// while a writer has it open).
pub fn remove_spares(dir: &Path) -> Result<(), LogError> {
    [SPARE_READY, SPARE_FILLING].iter().try_for_each(|name| remove_if_there(&dir.join(name)))
}

fn remove_if_there(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(path)(error)),
        _ => Ok(()),
    }
}

/// Zero-filled spare segments, made ahead of need on a thread of their own.
struct Spares {
    ready: Arc<AtomicBool>,
    /// One message asks for the next spare; dropped, the thread ends.
    requests: Option<mpsc::Sender<()>>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spares {
    fn start(dir: &Path, segment_bytes: u64) -> Result<Spares, LogError> {
        let filling = dir.join(SPARE_FILLING);
        remove_if_there(&filling)?;
        let ready = Arc::new(AtomicBool::new(dir.join(SPARE_READY).exists()));
        let cancel = Arc::new(AtomicBool::new(false));
        let (requests, asked) = mpsc::channel::<()>();
        let thread = {
            let (dir, ready, cancel) = (dir.to_owned(), ready.clone(), cancel.clone());
            std::thread::Builder::new()
                .name("ledger-journal-spare".into())
                .spawn(move || {
                    while asked.recv().is_ok() {
                        match fill_spare(&dir, segment_bytes, &cancel) {
                            Ok(true) => ready.store(true, Ordering::Release),
                            Ok(false) => return,
                            // The writer goes on with segments that grow as they are written.
                            Err(error) => tracing::warn!(%error, "preparing a journal segment"),
                        }
                    }
                })
                .map_err(io_error(&filling))?
        };
        if !ready.load(Ordering::Acquire) {
            let _ = requests.send(());
        }
        Ok(Spares { ready, requests: Some(requests), cancel, thread: Some(thread) })
    }

    /// Renames the ready spare to `path` and asks for the next; false if none is ready.
    fn take(&self, dir: &Path, path: &Path) -> Result<bool, LogError> {
        if !self.ready.load(Ordering::Acquire) {
            return Ok(false);
        }
        std::fs::rename(dir.join(SPARE_READY), path).map_err(io_error(path))?;
        self.ready.store(false, Ordering::Release);
        if let Some(requests) = &self.requests {
            let _ = requests.send(());
        }
        Ok(true)
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        // A fill in progress stops at its next chunk, so a drop waits at most one write.
        self.cancel.store(true, Ordering::Release);
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a spare segment of `bytes` zeros, syncs it and renames it ready. False if cancelled.
fn fill_spare(dir: &Path, bytes: u64, cancel: &AtomicBool) -> Result<bool, LogError> {
    let filling = dir.join(SPARE_FILLING);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&filling)
        .map_err(io_error(&filling))?;
    let zeros = vec![0; FILL_CHUNK_BYTES];
    let mut written = 0;
    while written < bytes {
        if cancel.load(Ordering::Acquire) {
            drop(file);
            let _ = std::fs::remove_file(&filling);
            return Ok(false);
        }
        let n = zeros.len().min((bytes - written) as usize);
        file.write_all_at(&zeros[..n], written).map_err(io_error(&filling))?;
        written += n as u64;
    }
    file.sync_all().map_err(io_error(&filling))?;
    std::fs::rename(&filling, dir.join(SPARE_READY)).map_err(io_error(&filling))?;
    sync_dir(dir)?;
    Ok(true)
}

/// The appending end of the journal.
pub struct LogWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Where the next frame is written.
    bytes: u64,
    /// Whether the segment written is a spare (its blocks are there before it is written).
    preallocated: bool,
    segment_bytes_max: u64,
    spares: Option<Spares>,
    durability: Box<dyn Durability>,
}

impl LogWriter {
    /// Opens the last segment to append at `end_offset` (where [`read_all`] found its frames
    /// end), or starts one for `next_batch`. With `preallocate`, spare segments are made
    /// ahead and the writer moves into one as soon as it is ready.
    pub fn open(
        dir: &Path,
        next_batch: u64,
        end_offset: u64,
        segment_bytes_max: u64,
        preallocate: bool,
        durability: Box<dyn Durability>,
    ) -> Result<LogWriter, LogError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let (path, bytes) = match segments(dir)?.pop() {
            Some((_, path)) => (path, end_offset),
            None => (segment_path(dir, next_batch), 0),
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let length = file.metadata().map_err(io_error(&path))?.len();
        sync_dir(dir)?;
        let spares = if preallocate { Some(Spares::start(dir, segment_bytes_max)?) } else { None };
        Ok(LogWriter {
            dir: dir.to_owned(),
            file,
            path,
            bytes,
            preallocated: length >= segment_bytes_max,
            segment_bytes_max,
            spares,
            durability,
        })
    }

    /// Appends framed bytes (one or more frames, the first for batch `first_batch`) and makes
    /// them durable. An error here is fatal for the engine.
    pub fn append(&mut self, first_batch: u64, framed: &[u8]) -> Result<(), LogError> {
        let full = self.bytes + framed.len() as u64 > self.segment_bytes_max;
        let spare_ready = || self.spares.as_ref().is_some_and(|s| s.ready.load(Ordering::Acquire));
        if self.bytes > 0 && (full || (!self.preallocated && spare_ready())) {
            self.rotate(first_batch)?;
        }
        self.file.write_all_at(framed, self.bytes).map_err(io_error(&self.path))?;
        self.bytes += framed.len() as u64;
        self.durability.sync(&self.file).map_err(io_error(&self.path))
    }

    /// Starts the segment for `first_batch`: the spare if one is ready, else an empty file.
    fn rotate(&mut self, first_batch: u64) -> Result<(), LogError> {
        let path = segment_path(&self.dir, first_batch);
        let preallocated = match &self.spares {
            Some(spares) => spares.take(&self.dir, &path)?,
            None => false,
        };
        let file = OpenOptions::new()
            .create_new(!preallocated)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.path = path;
        self.bytes = 0;
        self.preallocated = preallocated;
        Ok(())
    }

    /// Whether the segment being written is a spare made ahead.
    pub fn preallocated(&self) -> bool {
        self.preallocated
    }

    /// Deletes every segment whose batches are all at or before `batch_seq` (they are in the
    /// projection, durably). The segment being appended to is never deleted.
    pub fn retire_through(&mut self, batch_seq: u64) -> Result<usize, LogError> {
        let segments = segments(&self.dir)?;
        let mut retired = 0;
        for pair in segments.windows(2) {
            let (_, path) = &pair[0];
            let (next_first, _) = pair[1];
            if next_first <= batch_seq + 1 && *path != self.path {
                std::fs::remove_file(path).map_err(io_error(path))?;
                retired += 1;
            }
        }
        if retired > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(retired)
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|handle| handle.sync_all()).map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write_frames(dir: &Path, payloads: &[&[u8]]) -> PathBuf {
        let mut writer =
            LogWriter::open(dir, 1, 0, 1 << 20, false, Box::new(DataSync)).expect("open");
        for (index, payload) in payloads.iter().enumerate() {
            let mut framed = Vec::new();
            frame(payload, &mut framed);
            writer.append(index as u64 + 1, &framed).expect("append");
        }
        segments(dir).expect("segments").pop().expect("one segment").1
    }

    fn read(dir: &Path) -> Result<(Vec<Vec<u8>>, ReadReport), LogError> {
        let mut payloads = Vec::new();
        let report = read_all(dir, &mut |_, payload| {
            payloads.push(payload.to_vec());
            Ok(())
        })?;
        Ok((payloads, report))
    }

    #[test]
    fn frames_read_back_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        write_frames(dir.path(), &[b"one", b"two", b""]);
        let (payloads, report) = read(dir.path()).expect("read");
        assert_eq!(payloads, [b"one".to_vec(), b"two".to_vec(), Vec::new()]);
        assert_eq!(report.torn_tail_bytes, 0);
    }

    #[test]
    fn a_torn_tail_is_zeroed_and_appending_goes_on_after_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_frames(dir.path(), &[b"one", b"two"]);
        let whole = std::fs::metadata(&path).expect("meta").len();
        // Every length of a torn third frame, from one byte to all but the last.
        let mut third = Vec::new();
        frame(b"three", &mut third);
        let mut end_offset = 0;
        for cut in 1..third.len() {
            let file = OpenOptions::new().write(true).open(&path).expect("open");
            file.write_all_at(&third[..cut], whole).expect("write");
            let (payloads, report) = read(dir.path()).expect("read");
            assert_eq!(payloads.len(), 2, "cut at {cut}");
            assert!((1..=cut as u64).contains(&report.torn_tail_bytes), "cut at {cut}");
            let bytes = std::fs::read(&path).expect("read");
            assert!(bytes[whole as usize..].iter().all(|byte| *byte == 0), "cut at {cut}");
            // Read again: a zero tail is a clean end, not a torn one.
            let (_, again) = read(dir.path()).expect("read");
            assert_eq!(again.torn_tail_bytes, 0);
            end_offset = again.end_offset;
        }
        assert_eq!(end_offset, whole);
        let mut writer =
            LogWriter::open(dir.path(), 3, end_offset, 1 << 20, false, Box::new(DataSync))
                .expect("open");
        writer.append(3, &third).expect("append");
        assert_eq!(read(dir.path()).expect("read").0.len(), 3);
    }

    #[test]
    fn zeros_before_a_good_frame_are_corruption() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_frames(dir.path(), &[b"one"]);
        let mut bytes = std::fs::read(&path).expect("read");
        let hole = bytes.len();
        bytes.extend_from_slice(&[0; 100]);
        frame(b"two", &mut bytes);
        std::fs::write(&path, &bytes).expect("write");
        match read(dir.path()) {
            Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, hole as u64),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn the_writer_moves_into_preallocated_segments_and_reopens_where_frames_end() {
        let dir = tempfile::tempdir().expect("dir");
        let segment_bytes = 4_096;
        let mut writer = LogWriter::open(dir.path(), 1, 0, segment_bytes, true, Box::new(DataSync))
            .expect("open");
        let mut appended = Vec::new();
        let append = |writer: &mut LogWriter, appended: &mut Vec<Vec<u8>>, batch: u64| {
            let payload = vec![batch as u8; 300];
            let mut framed = Vec::new();
            frame(&payload, &mut framed);
            writer.append(batch, &framed).expect("append");
            appended.push(payload);
        };
        append(&mut writer, &mut appended, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut batch = 1;
        while !writer.preallocated {
            assert!(std::time::Instant::now() < deadline, "no spare segment was made");
            std::thread::sleep(std::time::Duration::from_millis(10));
            batch += 1;
            append(&mut writer, &mut appended, batch);
        }
        // Rotations past the size: each segment is a spare when one is ready in time.
        for _ in 0..40 {
            batch += 1;
            append(&mut writer, &mut appended, batch);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let found = segments(dir.path()).expect("segments");
        assert!(found.len() >= 3, "{found:?}");
        let full_size = found
            .iter()
            .filter(|(_, path)| std::fs::metadata(path).expect("meta").len() == segment_bytes)
            .count();
        assert!(full_size >= 2, "preallocated segments: {found:?}");
        drop(writer);
        let (payloads, report) = read(dir.path()).expect("read");
        assert_eq!(payloads, appended);
        assert_eq!(report.torn_tail_bytes, 0);
        // Reopened at the end of the frames, not at the end of the file.
        let mut writer = LogWriter::open(
            dir.path(),
            batch + 1,
            report.end_offset,
            segment_bytes,
            true,
            Box::new(DataSync),
        )
        .expect("reopen");
        append(&mut writer, &mut appended, batch + 1);
        drop(writer);
        assert_eq!(read(dir.path()).expect("read").0, appended);
        assert!(!dir.path().join(SPARE_FILLING).exists(), "a stopped fill is removed");
    }

    #[test]
    fn a_bad_frame_before_good_ones_is_corruption_named_by_offset() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_frames(dir.path(), &[b"one", b"two", b"three"]);
        let mut bytes = std::fs::read(&path).expect("read");
        let second = FRAME_HEADER_BYTES + 3;
        bytes[second + FRAME_HEADER_BYTES] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        match read(dir.path()) {
            Err(LogError::Corrupt { offset, detail, .. }) => {
                assert_eq!(offset, second as u64);
                assert!(detail.contains("checksum"), "{detail}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Nothing was cut.
        assert_eq!(std::fs::read(&path).expect("read").len(), bytes.len());
    }

    #[test]
    fn a_frame_of_another_payload_version_is_a_good_frame_with_its_version() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_frames(dir.path(), &[b"one"]);
        let mut other = Vec::new();
        let len = 3u32;
        other.extend_from_slice(&MAGIC);
        other.extend_from_slice(&len.to_le_bytes());
        other.push(PAYLOAD_VERSION + 1);
        other.extend_from_slice(&checksum(len, PAYLOAD_VERSION + 1, b"two").to_le_bytes());
        other.extend_from_slice(b"two");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&other))
            .expect("append");
        let mut seen = Vec::new();
        read_all(dir.path(), &mut |version, payload| {
            seen.push((version, payload.to_vec()));
            Ok(())
        })
        .expect("read");
        assert_eq!(
            seen,
            [(PAYLOAD_VERSION, b"one".to_vec()), (PAYLOAD_VERSION + 1, b"two".to_vec())]
        );
    }

    #[test]
    fn a_failed_sync_is_an_error() {
        struct Failing;
        impl Durability for Failing {
            fn sync(&mut self, _: &File) -> io::Result<()> {
                Err(io::Error::other("injected"))
            }
        }
        let dir = tempfile::tempdir().expect("dir");
        let mut writer =
            LogWriter::open(dir.path(), 1, 0, 1 << 20, false, Box::new(Failing)).expect("open");
        let mut framed = Vec::new();
        frame(b"one", &mut framed);
        assert!(matches!(writer.append(1, &framed), Err(LogError::Io { .. })));
    }

    #[test]
    fn segments_rotate_and_retire_only_when_wholly_projected() {
        let dir = tempfile::tempdir().expect("dir");
        let mut writer =
            LogWriter::open(dir.path(), 1, 0, 64, false, Box::new(DataSync)).expect("open");
        for batch in 1..=6u64 {
            let mut framed = Vec::new();
            frame(&[batch as u8; 40], &mut framed);
            writer.append(batch, &framed).expect("append");
        }
        let firsts: Vec<u64> =
            segments(dir.path()).expect("segments").iter().map(|s| s.0).collect();
        assert_eq!(firsts, [1, 2, 3, 4, 5, 6]);
        assert_eq!(writer.retire_through(3).expect("retire"), 3);
        let firsts: Vec<u64> =
            segments(dir.path()).expect("segments").iter().map(|s| s.0).collect();
        assert_eq!(firsts, [4, 5, 6]);
        assert_eq!(writer.retire_through(100).expect("retire"), 2, "never the active segment");
        assert_eq!(read(dir.path()).expect("read").0, [vec![6u8; 40]]);
    }
}
