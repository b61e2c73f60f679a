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
//! {spool.dir}/lock                       held (flock) by the one process using the spool
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
//!    In `memory` mode the ack comes first; a batch that then fails keeps
//!    those acked frames in memory, writes them first in the next batch, and
//!    until one succeeds new appends wait for their write (see [`writer`]).
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
//! Every file operation after startup goes through [`disk::Disk`], so tests
//! inject EMFILE, EIO, ENOSPC and short writes at any call.

pub mod dead_letter;
pub mod disk;
#[cfg(test)]
mod fault_tests;
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
    open_on(settings, stats, disk::os())
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
    let lock = lock(&dir).map_err(wrap)?;
    let acked = read_acked(&dir);
    let mut segments = list_segments(&dir).map_err(wrap)?;
    // Fully confirmed segments a crash left behind (invariant 5).
    for id in segments.iter().filter(|id| **id < acked.segment) {
        fs::remove_file(segment_path(&dir, *id)).map_err(wrap)?;
    }
    segments.retain(|id| *id >= acked.segment);
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
    let (writer, watermark) = writer::start(
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
    let reader = SpoolReader::new(dir, start, watermark, used, stats, disk);
    Ok((writer, reader))
}

/// How long `open` waits for the spool's lock (a previous process may still
/// be exiting, e.g. during a container restart).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes the spool's lock file, so two processes never share a spool (two
/// replicas on one volume would corrupt it). Released when the writer stops.
fn lock(dir: &Path) -> std::io::Result<File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(
                    "another openim-bridge process is using this spool; give every replica its own spool.dir",
                ))
            }
            Err(fs::TryLockError::Error(err)) => return Err(err),
        }
    }
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
            reader.seek_relative(payload as i64)?;
            at += record::HEADER_LEN as u64 + payload;
            count += 1;
        }
    }
    Ok(count)
}

/// Truncates `path` after its last intact frame (invariant 3); returns how
/// many bytes were cut.
fn cut_torn_tail(path: &Path) -> std::io::Result<u64> {
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
    Ok((bytes.len() - good) as u64)
}

/// Makes a new directory entry durable (after creating a segment).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AckMode;
    use crate::normalize::{CallbackKind, Event};

    /// Durable acks, 4 KiB segments, no size limit to speak of.
    pub(super) fn settings(dir: &Path) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            max_bytes: 1 << 30,
            ack: AckMode::Durable,
            segment_bytes: 4096,
        }
    }

    /// Event number `i` (id `m0000i`, three keys in turn).
    pub(super) fn event(i: usize) -> Event {
        Event {
            id: format!("m{i:05}"),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".to_owned(),
            key: format!("g{}", i % 3),
            data: format!("{{\"n\":{i}}}").into_bytes().into(),
        }
    }

    /// Appends `range`, then closes the writer.
    async fn spool(settings: &SpoolSettings, range: std::ops::Range<usize>) -> SpoolReader {
        let (writer, reader) = open(settings, Arc::default()).unwrap();
        for i in range {
            writer.append(&event(i)).await.unwrap();
        }
        drop(writer);
        reader
    }

    async fn read_ids(reader: &mut SpoolReader, complete: bool) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(item) = reader.recv().await {
            ids.push(item.event.id.clone());
            if complete {
                reader.complete(item.position);
            }
        }
        ids
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| event(i).id).collect()
    }

    #[tokio::test]
    async fn everything_appended_is_read_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = spool(&settings(dir.path()), 0..300).await;
        assert!(
            list_segments(dir.path()).unwrap().len() > 3,
            "segments rolled"
        );
        assert_eq!(read_ids(&mut reader, true).await, ids(0..300));
    }

    #[tokio::test]
    async fn confirmed_events_are_not_replayed_and_their_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let mut reader = spool(&settings, 0..300).await;
        read_ids(&mut reader, true).await;
        reader.persist();
        drop(reader);
        // Only the writer's last (empty or partial) segments remain.
        assert!(list_segments(dir.path()).unwrap().len() <= 2);
        let mut reader = spool(&settings, 300..310).await;
        assert_eq!(read_ids(&mut reader, true).await, ids(300..310));
    }

    #[tokio::test]
    async fn unconfirmed_events_are_replayed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let mut reader = spool(&settings, 0..100).await;
        // Confirm the first 40 only, out of order inside the window.
        let mut handed = Vec::new();
        for _ in 0..50 {
            handed.push(reader.recv().await.unwrap());
        }
        for item in handed.iter().take(40).rev() {
            reader.complete(item.position);
        }
        reader.persist();
        drop(reader); // a crash: nothing else is written
        let stats = Arc::new(Stats::default());
        let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
        assert_eq!(stats.spool_records.get(), 60, "recovered backlog counted");
        for i in 100..105 {
            writer.append(&event(i)).await.unwrap();
        }
        drop(writer);
        assert_eq!(read_ids(&mut reader, true).await, ids(40..105));
        assert_eq!(stats.spool_records.get(), 0, "every record completed");
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_the_intact_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            segment_bytes: 1 << 20,
            ..settings(dir.path())
        };
        drop(spool(&settings, 0..10).await);
        let last = segment_path(
            dir.path(),
            *list_segments(dir.path()).unwrap().last().unwrap(),
        );
        let intact = fs::metadata(&last).unwrap().len();
        // A crash in the middle of writing record 10: half a frame.
        let mut frame = Vec::new();
        record::encode(&event(10), &mut frame);
        let mut bytes = fs::read(&last).unwrap();
        bytes.extend_from_slice(&frame[..frame.len() / 2]);
        fs::write(&last, bytes).unwrap();

        let stats = Arc::new(Stats::default());
        let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
        assert_eq!(fs::metadata(&last).unwrap().len(), intact, "torn bytes cut");
        assert_eq!(
            stats.snapshot().spool_torn_bytes,
            (frame.len() / 2) as u64,
            "torn bytes reported"
        );
        writer.append(&event(11)).await.unwrap();
        drop(writer);
        let mut expected = ids(0..10);
        expected.push(event(11).id);
        assert_eq!(read_ids(&mut reader, true).await, expected);
    }

    #[tokio::test]
    async fn a_corrupt_record_in_the_tail_is_cut_too() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            segment_bytes: 1 << 20,
            ..settings(dir.path())
        };
        drop(spool(&settings, 0..5).await);
        let last = segment_path(
            dir.path(),
            *list_segments(dir.path()).unwrap().last().unwrap(),
        );
        let mut bytes = fs::read(&last).unwrap();
        let end = bytes.len();
        bytes[end - 3] ^= 0xff; // flip a bit in the last record
        fs::write(&last, bytes).unwrap();
        let mut reader = spool(&settings, 0..0).await;
        assert_eq!(read_ids(&mut reader, true).await, ids(0..4));
    }

    #[tokio::test]
    async fn a_full_spool_refuses_then_recovers_when_segments_are_freed() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            max_bytes: 16 * 1024,
            ..settings(dir.path())
        };
        let (writer, mut reader) = open(&settings, Arc::default()).unwrap();
        let mut accepted = 0;
        let err = loop {
            match writer.append(&event(accepted)).await {
                Ok(()) => accepted += 1,
                Err(err) => break err,
            }
        };
        assert!(matches!(err, AppendError::Full { .. }), "{err:?}");
        assert!(accepted > 50, "{accepted}");
        for _ in 0..accepted {
            let item = reader.recv().await.unwrap();
            reader.complete(item.position);
        }
        reader.persist();
        writer.append(&event(accepted)).await.unwrap();
    }

    #[tokio::test]
    async fn memory_mode_acks_without_waiting_and_still_writes() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            ack: AckMode::Memory,
            ..settings(dir.path())
        };
        let mut reader = spool(&settings, 0..50).await;
        assert_eq!(read_ids(&mut reader, true).await, ids(0..50));
    }

    #[tokio::test]
    async fn one_spool_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _reader) = open(&settings(dir.path()), Arc::default()).unwrap();
        let err = open(&settings(dir.path()), Arc::default()).unwrap_err();
        assert!(
            err.to_string().contains("another openim-bridge process"),
            "{err}"
        );
        drop(writer);
        // The lock goes with the writer thread; open waits for it.
        open(&settings(dir.path()), Arc::default())
            .expect("lock released after the writer stopped");
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = open(&settings(&file.path().join("sub")), Arc::default()).unwrap_err();
        assert!(err.to_string().contains("spool.dir"), "{err}");
    }
}
