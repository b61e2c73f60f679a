//! Stage 3: the durable spool between the ack and the broker.
//!
//! OpenIM never retries an after-callback: once the bridge acks, it holds
//! the only copy. The spool is an append-only log on disk that the ack waits
//! for (in `durable` mode) and the sink's publisher reads from.
//!
//! # Layout
//!
//! ```text
//! {spool.dir}/00000000000000000007.seg   segments, named by a growing id
//! {spool.dir}/00000000000000000008.seg   (the writer appends to the newest)
//! {spool.dir}/acked                      "segment offset": all before it is confirmed
//! {spool.dir}/dead-letter.jsonl          events the broker refused for good (written by the
//!                                        sink's publisher: `sink::dead_letter`)
//! {spool.dir}/lock                       held (flock) by the one process using the spool, until
//!                                        both its writer and its reader are gone
//! ```
//!
//! Each segment is a sequence of frames (see [`record`]): `len | crc32c |
//! payload`, then zeros: segments are preallocated (the next one is filled
//! with zeros as `NNN.seg.prep` while the current one fills), so a header
//! of zeros marks the end of the records. A [`Position`] is (segment id,
//! byte offset of a frame).
//!
//! # Invariants
//!
//! 1. **Acked means what `spool.ack` promises**: `durable`, only after an
//!    `fdatasync` that began after its frame was written returned (a
//!    pipelined group commit: the next batch is written while the sync
//!    thread syncs, and one sync covers every batch written before it);
//!    `written`, only after its frame is written to the segment file;
//!    `memory`, at once. In `memory` mode a batch that then fails hands
//!    those acked events to the reader in memory (published after what
//!    was written before them, drained at a graceful stop), and until a
//!    batch succeeds new appends wait for their write (see
//!    [`writer_thread`]). `written` and `memory` sync every `spool.sync_interval_ms`.
//! 2. **Readers see only written data**: the writer publishes a watermark
//!    (the end of the last written batch) and the reader never reads past
//!    it, so it never sees a partial frame. Written events are also handed
//!    over in memory ([`tail`]); the reader reads from disk only when it is
//!    behind and after a restart. (An event may be published before its
//!    sync: a crash then means a re-delivery, never a loss.)
//! 3. **Torn tails are cut, never replayed**: at startup the newest segment is
//!    scanned; bytes after the last intact frame (a write cut short by a
//!    crash) are reported and truncated, with the preallocated zeros after
//!    them. Writing resumes in a new segment.
//! 4. **The acked position only moves past confirmed frames**: it is the
//!    position of the oldest frame handed to the publisher and not yet
//!    confirmed (or dead-lettered); a *checkpoint* (delete the segments
//!    before it, then write it: write + rename) runs at most every
//!    [`CHECKPOINT_INTERVAL`] and at close. A lost update only means
//!    re-delivery: **at-least-once**, deduplicate on the event id.
//! 5. **A segment is deleted only when every frame in it is confirmed**:
//!    i.e. when the acked position is in a later segment. The acked position
//!    moves on both when a confirmation comes and when the reader moves past
//!    the end of a closed segment with nothing outstanding (the writer rolls
//!    on a failed write, so a full disk frees what the broker confirmed even
//!    when no confirmation is due). Segments are
//!    deleted *before* the new position is written, so space comes back even
//!    on a full disk; a stale `acked` file pointing at a deleted segment makes
//!    the next start replay from the oldest segment left (never skip).
//! 6. **Bounded**: appends that would take the spool's files over
//!    `spool.max_bytes` are refused at once (the callback gets 503); space
//!    comes back when fully confirmed segments are deleted. Disk errors
//!    (ENOSPC, EIO) refuse the batch the same way, after cutting the file
//!    back to its last good length; the bridge never panics on them. A batch
//!    that cannot be cut back leaves the writer moving to a new segment, so
//!    the leftover bytes sit past the last frame of a closed segment.
//! 7. **A read that fails is retried, never skipped**: only bytes that were
//!    read and are damaged (checksum, impossible length, leftovers past the
//!    last frame of a closed segment) are skipped, logged and counted.
//!
//! Every file operation after startup (the writer thread's and the
//! reader's, directory syncs and preallocated segments included, and the
//! dead-letter file's writes and rotation) goes through [`disk::Disk`], so
//! tests inject EMFILE, EIO, ENOSPC and short writes at any call.

mod append;
pub mod disk;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod inline_tests;
pub(crate) mod job;
mod lock;
pub mod reader;
pub mod record;
mod segments;
pub mod settings;
mod syncer;
mod tail;
#[cfg(test)]
mod tests;
pub mod writer;
mod writer_thread;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

pub use reader::{SpoolReader, Spooled};
pub use writer::{AppendError, SpoolWriter};

use crate::stats::Stats;
pub use settings::SpoolSettings;

/// How often, at most, a checkpoint writes the acked position to disk.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Where a frame starts: (segment id, byte offset). Ordered like the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment id (the file name).
    pub segment: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
}

/// The spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool directory {dir}: {cause} (check spool.dir: it must be a writable directory)")]
pub struct OpenError {
    dir: PathBuf,
    #[source]
    cause: std::io::Error,
}

/// Opens (or creates) the spool in `settings.dir`, recovering what a
/// previous run left: everything not confirmed is read again.
pub fn open(
    settings: &SpoolSettings,
    stats: Arc<Stats>,
) -> Result<(SpoolWriter, SpoolReader), OpenError> {
    open_on(settings, stats, disk::os())
}

/// [`open`] from async code: on tokio's blocking pool, since opening scans
/// and repairs the spool's files and may wait up to [`lock::LOCK_WAIT`] for
/// another process's lock.
pub async fn open_async(
    settings: &SpoolSettings,
    stats: Arc<Stats>,
) -> Result<(SpoolWriter, SpoolReader), OpenError> {
    let owned = settings.clone();
    tokio::task::spawn_blocking(move || open(&owned, stats))
        .await
        .unwrap_or_else(|err| {
            Err(OpenError {
                dir: settings.dir.clone(),
                cause: std::io::Error::other(format!("opening the spool failed: {err}")),
            })
        })
}

/// [`open`] on a given [`Disk`](disk::Disk) (tests inject failures there).
pub fn open_on(
    settings: &SpoolSettings,
    stats: Arc<Stats>,
    disk: disk::SharedDisk,
) -> Result<(SpoolWriter, SpoolReader), OpenError> {
    let dir = settings.dir.clone();
    let wrap = |cause| OpenError {
        dir: dir.clone(),
        cause,
    };
    fs::create_dir_all(&dir).map_err(wrap)?;
    let lock = lock::take(&dir).map_err(wrap)?;
    let acked = read_acked(&dir);
    let mut segments = list_segments(&dir).map_err(wrap)?;
    // Fully confirmed segments a crash left behind (invariant 5).
    for id in segments.iter().filter(|id| **id < acked.segment) {
        fs::remove_file(segment_path(&dir, *id)).map_err(wrap)?;
    }
    segments.retain(|id| *id >= acked.segment);
    // Segments a crash left half-prepared: made again when needed.
    for entry in fs::read_dir(&dir).map_err(wrap)?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".prep") {
            fs::remove_file(entry.path()).map_err(wrap)?;
        }
    }
    if let Some(&last) = segments.last() {
        let torn = cut_torn_tail(&segment_path(&dir, last)).map_err(wrap)?;
        Stats::add(&stats.spool_torn_bytes, torn);
    }
    let mut used = 0;
    for id in &segments {
        used += fs::metadata(segment_path(&dir, *id)).map_err(wrap)?.len();
    }
    let first = segments.first().copied();
    // Writing resumes in a fresh segment after anything recovered.
    let next = segments
        .last()
        .map_or(acked.segment, |last| last + 1)
        .max(acked.segment + 1);
    let used = Arc::new(AtomicU64::new(used));
    let start = match first {
        Some(id) if id == acked.segment => acked,
        Some(id) => Position {
            segment: id,
            offset: 0,
        },
        None => Position {
            segment: next,
            offset: 0,
        },
    };
    if !segments.is_empty() {
        info!(dir = %dir.display(), segments = segments.len(), from = ?start, "spool recovered; unconfirmed events will be published again");
    }
    // The reader holds the lock too (the same open file, so the same
    // lock): it deletes segments and writes the acked position until the
    // last confirmation, after the writer has stopped.
    let reader_lock = lock.try_clone().map_err(wrap)?;
    let started = writer_thread::start(
        settings,
        next,
        Arc::clone(&used),
        Arc::clone(&stats),
        lock,
        Arc::clone(&disk),
    )
    .map_err(wrap)?;
    stats
        .spool_records
        .set(count_records(&dir, start, &segments).map_err(wrap)?);
    let writer = SpoolWriter::new(&started, Arc::clone(&used), settings);
    let reader = SpoolReader::new(
        dir,
        start,
        started.watermark,
        started.tail,
        used,
        stats,
        disk,
    )
    .holding(reader_lock);
    Ok((writer, reader))
}

/// The file of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Segment ids in `dir`, oldest first.
fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

const ACKED_FILE: &str = "acked";

/// The persisted acked position, or the very start if there is none (or it
/// is unreadable: then everything is published again, never less).
fn read_acked(dir: &Path) -> Position {
    let text = fs::read_to_string(dir.join(ACKED_FILE)).unwrap_or_default();
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Position { segment, offset },
        _ => {
            if !text.is_empty() {
                warn!(dir = %dir.display(), "spool `acked` file is unreadable; replaying the whole spool");
            }
            Position::default()
        }
    }
}

/// Writes the acked position atomically (temporary file + rename).
fn write_acked(disk: &dyn disk::Disk, dir: &Path, position: Position) -> std::io::Result<()> {
    let text = format!("{} {}\n", position.segment, position.offset);
    disk.replace(&dir.join(ACKED_FILE), text.as_bytes())
}

/// Frames from `start` to the end of the recovered `segments` (what will be
/// published again), counted by walking the frame headers.
fn count_records(dir: &Path, start: Position, segments: &[u64]) -> std::io::Result<i64> {
    use std::io::{BufReader, Seek};
    let mut count = 0;
    for &id in segments.iter().filter(|id| **id >= start.segment) {
        let file = File::open(segment_path(dir, id))?;
        let len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut at = if id == start.segment { start.offset } else { 0 };
        reader.seek(std::io::SeekFrom::Start(at))?;
        let mut header = [0u8; record::HEADER_LEN];
        while at + record::HEADER_LEN as u64 <= len {
            reader.read_exact(&mut header)?;
            let payload = u64::from(u32::from_le_bytes([
                header[0], header[1], header[2], header[3],
            ]));
            if payload == 0 {
                break; // preallocated zeros (or damage the reader skips)
            }
            reader.seek_relative(payload as i64)?;
            at += record::HEADER_LEN as u64 + payload;
            count += 1;
        }
    }
    Ok(count)
}

/// Truncates `path` after its last intact frame (invariant 3), dropping
/// the preallocated zeros after it too; returns how many bytes of a torn
/// or corrupt record were cut (zeros are not counted).
fn cut_torn_tail(path: &Path) -> std::io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut good = 0;
    while let record::Frame::Record(_, used) = record::frame(&bytes[good..]) {
        good += used;
    }
    let written = bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1);
    let torn = written.saturating_sub(good);
    if torn > 0 {
        warn!(
            segment = %path.display(),
            torn_bytes = torn,
            kept_bytes = good,
            "spool segment ends in a torn or corrupt record (a write cut short by a crash); cutting it off"
        );
    }
    if good < bytes.len() {
        let file = fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(good as u64)?;
        file.sync_all()?;
    }
    Ok(torn as u64)
}

/// Gives `bytes` back to the spool's budget (`used`), never below zero.
fn release(used: &AtomicU64, bytes: u64) {
    let _ = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
        Some(used.saturating_sub(bytes))
    });
}
