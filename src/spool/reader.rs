//! The spool's reader: follows the writer's watermark, hands frames to the
//! publisher in log order, and advances (and persists) the acked position
//! as the publisher completes them.
//!
//! Reading never skips what it merely failed to read: an I/O error (EMFILE,
//! EIO, anything passing) is counted, logged and retried with backoff, and
//! the cursor stays where it is. Only bytes that were read and are damaged
//! (a checksum mismatch, an impossible length) are skipped, each skip
//! logged with its byte range and counted in `spool_skipped_bytes_total`.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::disk::SharedDisk;
use super::record::{self, Frame};
use super::tail::Tail;
use super::{segment_path, write_acked, Position, ACK_PERSIST_INTERVAL};
use crate::normalize::Event;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// First wait after a failed read; doubles up to [`READ_RETRY_MAX`].
const READ_RETRY_INITIAL: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a failing read.
const READ_RETRY_MAX: Duration = Duration::from_secs(1);

/// Bytes read from a segment at a time.
const READ_CHUNK: u64 = 256 * 1024;

/// An event read back from the spool, with where it lives.
#[derive(Debug)]
pub struct Spooled {
    /// The event.
    pub event: Event,
    /// Its frame; pass it to [`SpoolReader::complete`] once handled.
    pub position: Position,
}

/// The publisher's end of the spool.
#[derive(Debug)]
pub struct SpoolReader {
    dir: PathBuf,
    /// Next byte to read.
    cursor: Position,
    /// Read, not yet handed out.
    ready: VecDeque<Spooled>,
    /// Handed out, not yet completed.
    outstanding: BTreeSet<Position>,
    /// End of written data; closed when the writer has stopped.
    watermark: watch::Receiver<Position>,
    /// Written events handed over in memory (read from disk only when the
    /// reader is behind, or after a restart).
    tail: Arc<Tail>,
    acked: Position,
    /// The oldest segment not yet deleted.
    oldest: u64,
    /// The acked position last written to disk.
    persisted: Position,
    persisted_at: Instant,
    file: Option<(u64, Arc<File>)>,
    used: Arc<AtomicU64>,
    stats: Arc<Stats>,
    disk: SharedDisk,
    error_log: RateLimit,
    /// Wait before the next try of a failing read (kept across `recv`
    /// calls, which the publisher's `select!` restarts).
    read_retry: Duration,
}

impl SpoolReader {
    pub(super) fn new(
        dir: PathBuf,
        start: Position,
        watermark: watch::Receiver<Position>,
        tail: Arc<Tail>,
        used: Arc<AtomicU64>,
        stats: Arc<Stats>,
        disk: SharedDisk,
    ) -> Self {
        Self {
            dir,
            cursor: start,
            ready: VecDeque::new(),
            outstanding: BTreeSet::new(),
            watermark,
            tail,
            acked: start,
            oldest: start.segment,
            persisted: start,
            persisted_at: Instant::now(),
            file: None,
            used,
            stats,
            disk,
            error_log: RateLimit::default(),
            read_retry: READ_RETRY_INITIAL,
        }
    }

    /// The next event in log order; `None` once the writer has stopped and
    /// everything it wrote was read.
    pub async fn recv(&mut self) -> Option<Spooled> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                self.outstanding.insert(item.position);
                return Some(item);
            }
            let watermark = *self.watermark.borrow_and_update();
            if self.cursor < watermark {
                let cursor = self.tail.take(self.cursor, &mut self.ready);
                if cursor != self.cursor {
                    self.cursor = cursor;
                    continue;
                }
                match self.read_more(watermark) {
                    Ok(()) => {
                        if self.stats.spool_read_failing.get() != 0 {
                            self.stats.spool_read_failing.set(0);
                            info!(at = ?self.cursor, "spool reads work again");
                        }
                        self.read_retry = READ_RETRY_INITIAL;
                    }
                    Err(err) => {
                        Stats::add(&self.stats.spool_read_errors, 1);
                        self.stats.spool_read_failing.set(1);
                        if let Some(suppressed) = self.error_log.allow() {
                            error!(at = ?self.cursor, cause = %err, retry_ms = self.read_retry.as_millis() as u64, suppressed, "cannot read the spool; nothing is skipped, retrying (check open-file limits and the disk)");
                        }
                        self.file = None;
                        tokio::time::sleep(self.read_retry).await;
                        self.read_retry = (self.read_retry * 2).min(READ_RETRY_MAX);
                    }
                }
                continue;
            }
            if self.watermark.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The event at `position` was confirmed by the broker or dead-lettered.
    pub fn complete(&mut self, position: Position) {
        if self.outstanding.remove(&position) {
            self.stats.spool_records.dec();
        }
        self.advance_acked();
    }

    /// Moves the acked position up to the oldest event not yet confirmed
    /// (or the cursor, when none is outstanding); persists it when it
    /// reaches a new segment, so that segment's predecessors are deleted.
    fn advance_acked(&mut self) {
        let acked = self
            .outstanding
            .first()
            .copied()
            .or_else(|| self.ready.front().map(|item| item.position))
            .unwrap_or(self.cursor);
        if acked > self.acked {
            let new_segment = acked.segment > self.acked.segment;
            self.acked = acked;
            if new_segment || self.persisted_at.elapsed() >= ACK_PERSIST_INTERVAL {
                self.persist();
            }
        }
    }

    /// Persists the acked position if it moved since the last time (the
    /// publisher calls this when idle, so a quiet bridge does not keep an
    /// old position on disk).
    pub fn persist_if_moved(&mut self) {
        if self.acked != self.persisted {
            self.persist();
        }
    }

    /// Deletes fully confirmed segments, then writes the acked position.
    ///
    /// Deleting first frees space even when the disk is full (when writing
    /// the position could fail); a position left behind on disk only means
    /// re-delivery after a restart, never loss.
    pub fn persist(&mut self) {
        self.persisted_at = Instant::now();
        // Oldest first, so one that cannot be removed now is found again
        // next time (nothing older than it is left behind).
        while self.oldest < self.acked.segment {
            let id = self.oldest;
            let path = segment_path(&self.dir, id);
            if matches!(&self.file, Some((open, _)) if *open == id) {
                self.file = None;
            }
            let len = match self.disk.len(&path) {
                Ok(len) => len,
                // Already gone (a segment a failed roll never created).
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    self.oldest += 1;
                    continue;
                }
                Err(_) => break,
            };
            if self.disk.remove(&path).is_err() {
                break;
            }
            let _ = self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    Some(used.saturating_sub(len))
                });
            self.oldest += 1;
        }
        match write_acked(self.disk.as_ref(), &self.dir, self.acked) {
            Ok(()) => self.persisted = self.acked,
            Err(err) => {
                warn!(cause = %err, "cannot persist the spool's acked position; events may be published again after a restart")
            }
        }
    }

    /// Reads frames from the cursor up to `watermark` into `ready`.
    fn read_more(&mut self, watermark: Position) -> std::io::Result<()> {
        let segment = self.cursor.segment;
        if segment < watermark.segment {
            // An older segment is complete: read it to its end, then move on.
            let path = segment_path(&self.dir, segment);
            let len = match self.disk.len(&path) {
                Ok(len) => len,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // Only this reader deletes segments, and only confirmed
                    // ones: a missing one was removed by hand (or never
                    // created when a roll failed). There is nothing to read.
                    if self.cursor.offset > 0 {
                        error!(
                            segment,
                            "spool segment disappeared while being read; moving to the next one"
                        );
                    }
                    0
                }
                Err(err) => return Err(err),
            };
            if self.cursor.offset < len {
                return self.read_range(segment, len, true);
            }
            self.cursor = Position {
                segment: segment + 1,
                offset: 0,
            };
            // A segment closed with nothing outstanding (the writer rolled
            // after a failed write, or at its size limit) is freed now, not
            // at the next confirmation, which may never come.
            self.advance_acked();
            return Ok(());
        }
        self.read_range(segment, watermark.offset, false)
    }

    /// Reads frames of `segment` from the cursor towards `end`. `closed`:
    /// the writer is done with this segment, so bytes at its end that do not
    /// form a frame are a failed write's leftovers, not data still coming.
    fn read_range(&mut self, segment: u64, end: u64, closed: bool) -> std::io::Result<()> {
        let file = self.open(segment)?;
        let len = (end - self.cursor.offset).min(READ_CHUNK);
        let mut buf = vec![0; len as usize];
        self.disk.read_at(&file, &mut buf, self.cursor.offset)?;
        let mut at = 0;
        loop {
            match record::frame(&buf[at..]) {
                Frame::Record(payload, used) => {
                    let position = Position {
                        segment,
                        offset: self.cursor.offset + at as u64,
                    };
                    match record::decode(payload) {
                        Ok(event) => self.ready.push_back(Spooled { event, position }),
                        // An intact frame this version cannot read (written by a
                        // newer bridge?): only this record is skipped.
                        Err(problem) => {
                            error!(?position, %problem, "spool record cannot be decoded; skipping it")
                        }
                    }
                    at += used;
                }
                Frame::Incomplete if at == 0 => {
                    // One frame bigger than a chunk: read exactly that frame.
                    let need = frame_len(&buf).unwrap_or(u64::MAX);
                    if need <= buf.len() as u64 || self.cursor.offset.saturating_add(need) > end {
                        // It runs past the end: in a closed segment, bytes a
                        // failed write left behind; in the open one (which
                        // the writer ends at frames) damage.
                        let problem = if closed {
                            "bytes after the last whole record"
                        } else {
                            "record runs past the written end"
                        };
                        self.skip(segment, end, problem);
                        return Ok(());
                    }
                    buf.resize(need as usize, 0);
                    self.disk.read_at(&file, &mut buf, self.cursor.offset)?;
                    continue;
                }
                Frame::Incomplete => break,
                // The zeros after a closed segment's last record.
                Frame::End if closed => {
                    self.cursor.offset = end;
                    return Ok(());
                }
                // In the open segment the writer ends each write at a
                // frame: zeros below its end are damage.
                Frame::End => {
                    self.cursor.offset += at as u64;
                    self.skip(segment, end, "zeros where a record should be");
                    return Ok(());
                }
                Frame::Corrupt(problem) => {
                    self.cursor.offset += at as u64;
                    // A checksum mismatch with a length that fits: skip this
                    // record only. An impossible length: nothing after it can
                    // be found, skip to the end of what is readable.
                    let to = match frame_len(&buf[at..]) {
                        Some(need)
                            if problem == record::CHECKSUM_MISMATCH
                                && self.cursor.offset + need <= end =>
                        {
                            self.cursor.offset + need
                        }
                        _ => end,
                    };
                    self.skip(segment, to, problem);
                    return Ok(());
                }
            }
        }
        self.cursor.offset += at as u64;
        Ok(())
    }

    /// Moves the cursor over damaged bytes up to `to`, counted and logged.
    fn skip(&mut self, segment: u64, to: u64, problem: &str) {
        let from = self.cursor.offset;
        Stats::add(&self.stats.spool_skipped_bytes, to - from);
        error!(
            segment,
            from_byte = from,
            to_byte = to,
            %problem,
            "damaged bytes in the spool; skipping them (these events, if any, cannot be recovered)"
        );
        self.cursor.offset = to;
    }

    fn open(&mut self, segment: u64) -> std::io::Result<Arc<File>> {
        match &self.file {
            Some((open, file)) if *open == segment => Ok(Arc::clone(file)),
            _ => {
                let file = Arc::new(self.disk.open_read(&segment_path(&self.dir, segment))?);
                self.file = Some((segment, Arc::clone(&file)));
                Ok(file)
            }
        }
    }
}

fn frame_len(buf: &[u8]) -> Option<u64> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as u64;
    Some(record::HEADER_LEN as u64 + len)
}
