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
//! {spool.dir}/dead-letter.jsonl          events the broker refused for good
//! ```
//!
//! Each segment is a sequence of frames (see [`record`]): `len | crc32c |
//! payload`. A [`Position`] is (segment id, byte offset of a frame).
//!
//! # Invariants
//!
//! 1. **Acked means durable** (`spool.ack = "durable"`): a callback is acked
//!    only after `fdatasync` returned for the batch holding its frame. The
//!    writer thread batches every append waiting at the time into one write
//!    and one sync (group commit), so concurrent callbacks share a sync.
//! 2. **Readers see only synced data**: the writer publishes a watermark (the
//!    end of the last synced batch) and the reader never reads past it, so it
//!    never sees a partial frame.
//! 3. **Torn tails are cut, never replayed**: at startup the newest segment is
//!    scanned; bytes after the last intact frame (a write cut short by a
//!    crash) are reported and truncated. Writing resumes in a new segment.
//! 4. **The acked position only moves past confirmed frames**: it is the
//!    position of the oldest frame handed to the publisher and not yet
//!    confirmed (or dead-lettered); it is persisted (write + rename) at most
//!    every [`ACK_PERSIST_INTERVAL`] and at close. A lost update only means
//!    re-delivery: **at-least-once**, deduplicate on the event id.
//! 5. **A segment is deleted only when every frame in it is confirmed**:
//!    i.e. when the acked position is in a later segment.
//! 6. **Bounded**: appends that would take the spool's files over
//!    `spool.max_bytes` are refused at once (the callback gets 503); space
//!    comes back when fully confirmed segments are deleted. Disk errors
//!    (ENOSPC, EIO) refuse the batch the same way, after cutting the file
//!    back to its last good length; the bridge never panics on them.

pub mod dead_letter;
pub mod reader;
pub mod record;
pub mod writer;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

pub use reader::{SpoolReader, Spooled};
pub use writer::{AppendError, SpoolWriter};

use crate::config::SpoolSettings;
use crate::stats::Stats;

/// How often, at most, the acked position is written to disk.
pub const ACK_PERSIST_INTERVAL: Duration = Duration::from_millis(200);

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
    cause: std::io::Error,
}

/// Opens (or creates) the spool in `settings.dir`, recovering what a
/// previous run left: everything not confirmed is read again.
pub fn open(
    settings: &SpoolSettings,
    stats: Arc<Stats>,
) -> Result<(SpoolWriter, SpoolReader), OpenError> {
    let dir = settings.dir.clone();
    let wrap = |cause| OpenError {
        dir: dir.clone(),
        cause,
    };
    fs::create_dir_all(&dir).map_err(wrap)?;
    let acked = read_acked(&dir);
    let mut segments = list_segments(&dir).map_err(wrap)?;
    // Fully confirmed segments a crash left behind (invariant 5).
    for id in segments.iter().filter(|id| **id < acked.segment) {
        fs::remove_file(segment_path(&dir, *id)).map_err(wrap)?;
    }
    segments.retain(|id| *id >= acked.segment);
    if let Some(&last) = segments.last() {
        cut_torn_tail(&segment_path(&dir, last)).map_err(wrap)?;
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
    let (writer, watermark) =
        writer::start(settings, next, Arc::clone(&used), Arc::clone(&stats)).map_err(wrap)?;
    let reader = SpoolReader::new(dir, start, watermark, used);
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
fn write_acked(dir: &Path, position: Position) -> std::io::Result<()> {
    let tmp = dir.join("acked.tmp");
    fs::write(&tmp, format!("{} {}\n", position.segment, position.offset))?;
    fs::rename(tmp, dir.join(ACKED_FILE))
}

/// Truncates `path` after its last intact frame (invariant 3).
fn cut_torn_tail(path: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut good = 0;
    while let record::Frame::Record(_, used) = record::frame(&bytes[good..]) {
        good += used;
    }
    if good < bytes.len() {
        warn!(
            segment = %path.display(),
            torn_bytes = bytes.len() - good,
            kept_bytes = good,
            "spool segment ends in a torn or corrupt record (a write cut short by a crash); cutting it off"
        );
        let file = fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(good as u64)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Makes a new directory entry durable (after creating a segment).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
