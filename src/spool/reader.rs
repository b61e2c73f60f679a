//! The spool's reader: follows the writer's watermark, hands frames to the
//! publisher in log order, and advances the acked position as the publisher
//! completes them, writing it to disk by checkpoints.
//!
//! The reader lives on the publisher's task, so its disk work (reading a
//! segment when it is behind the in-memory [`Tail`], deleting confirmed
//! segments, writing the acked position) runs as [`Job`]s on the blocking
//! pool; the task only awaits their results.
//!
//! Reading never skips what it merely failed to read: an I/O error (EMFILE,
//! EIO, anything passing) is counted, logged and retried with backoff, and
//! the cursor stays where it is. Only bytes that were read and are damaged
//! (a checksum mismatch, an impossible length) are skipped, each skip
//! logged with its byte range and counted in `spool_skipped_bytes_total`.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::disk::SharedDisk;
use super::job::Job;
use super::segments::{Checkpoint, Chunk, Segments};
use super::tail::Tail;
use super::{Position, CHECKPOINT_INTERVAL};
use crate::backoff::Backoff;
use crate::normalize::Event;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// First wait after a failed read; doubles up to [`READ_RETRY_MAX`].
const READ_RETRY_INITIAL: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a failing read.
const READ_RETRY_MAX: Duration = Duration::from_secs(1);

/// An event read back from the spool, with where it lives.
#[derive(Debug)]
pub struct Spooled {
    /// The event.
    pub event: Event,
    /// Its frame; pass it to [`SpoolReader::complete`] once handled. `None`:
    /// acked in `memory` mode, but the disk refused its write, so it lives
    /// only in memory until the broker confirms it.
    pub position: Option<Position>,
    /// How often it was handed to the broker (kept in memory only: for the
    /// dead-letter line's context).
    pub attempts: u32,
    /// When a delivery of it first failed, if one did.
    pub first_failed_at: Option<time::OffsetDateTime>,
    /// Its publication's span, opened by the publisher at the first send
    /// and closed when the event leaves the spool (disabled until then, or
    /// when its trace is not sampled).
    pub span: tracing::Span,
}

impl Spooled {
    /// `event`, not yet handed to the broker.
    pub fn new(event: Event, position: Option<Position>) -> Self {
        Self {
            event,
            position,
            attempts: 0,
            first_failed_at: None,
            span: tracing::Span::none(),
        }
    }
}

/// The publisher's end of the spool.
#[derive(Debug)]
pub struct SpoolReader {
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
    /// The acked position the last checkpoint wrote to disk.
    checkpointed: Position,
    /// When the last checkpoint started.
    checkpoint_started: Instant,
    files: Segments,
    /// A read from the cursor, on the blocking pool.
    reading: Job<std::io::Result<Chunk>>,
    /// A checkpoint: deleting confirmed segments and writing the acked
    /// position, on the blocking pool.
    checkpointing: Job<Checkpoint>,
    used: Arc<AtomicU64>,
    stats: Arc<Stats>,
    error_log: RateLimit,
    /// The spool's lock (a clone of the writer's): held while this reader
    /// may still delete segments and write the acked position.
    _lock: Option<std::fs::File>,
    /// Waits between tries of a failing read, and when the next try is
    /// due (kept across `recv` calls, which the publisher's `select!`
    /// restarts: a cancelled wait resumes, it does not start over).
    read_retry: Backoff,
    retry_at: Option<tokio::time::Instant>,
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
            cursor: start,
            ready: VecDeque::new(),
            outstanding: BTreeSet::new(),
            watermark,
            tail,
            acked: start,
            oldest: start.segment,
            checkpointed: start,
            checkpoint_started: Instant::now(),
            files: Segments {
                dir: dir.into(),
                disk,
                stats: Arc::clone(&stats),
            },
            reading: Job::default(),
            checkpointing: Job::default(),
            used,
            stats,
            error_log: RateLimit::default(),
            read_retry: Backoff::new(READ_RETRY_INITIAL, READ_RETRY_MAX),
            retry_at: None,
            _lock: None,
        }
    }

    /// The same reader, holding the spool's `lock` until it is dropped.
    pub(super) fn holding(mut self, lock: std::fs::File) -> Self {
        self._lock = Some(lock);
        self
    }

    /// The next event in log order; `None` once the writer has stopped and
    /// everything it wrote was read. Cancel-safe: a read from disk that
    /// was started goes on, and the next call takes its result.
    pub async fn recv(&mut self) -> Option<Spooled> {
        loop {
            if self.reading.is_running() {
                let result = self.reading.finish().await.unwrap_or_else(|panicked| {
                    Err(std::io::Error::other(format!(
                        "the read panicked: {panicked}"
                    )))
                });
                self.read_done(result);
                continue;
            }
            if let Some(item) = self.ready.pop_front() {
                if let Some(position) = item.position {
                    self.outstanding.insert(position);
                }
                return Some(item);
            }
            let watermark = *self.watermark.borrow_and_update();
            // Acked events the disk refused, once what was written before
            // them has been read (checked after taking the watermark, so a
            // push that woke it is never missed).
            if self.tail.take_unwritten(self.cursor, &mut self.ready) {
                continue;
            }
            if self.cursor < watermark {
                let cursor = self.tail.take(self.cursor, &mut self.ready);
                if cursor != self.cursor {
                    self.cursor = cursor;
                    continue;
                }
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                    self.retry_at = None;
                }
                let files = self.files.clone();
                let cursor = self.cursor;
                self.reading
                    .try_start(move || files.read(cursor, watermark));
                continue;
            }
            if self.watermark.changed().await.is_err() {
                // The writer is gone: the last of what it handed over.
                if self.tail.take_unwritten(self.cursor, &mut self.ready) {
                    continue;
                }
                return None;
            }
        }
    }

    /// Takes a finished read's events, or counts its failure and waits
    /// before the next try.
    fn read_done(&mut self, result: std::io::Result<Chunk>) {
        match result {
            Ok(chunk) => {
                if self.stats.spool_read_failing.get() != 0 {
                    self.stats.spool_read_failing.set(0);
                    info!(at = ?self.cursor, "spool reads work again");
                }
                self.read_retry.reset();
                self.cursor = chunk.cursor;
                self.ready.extend(chunk.events);
                // A segment closed with nothing outstanding (the writer
                // rolled after a failed write, or at its size limit) is
                // freed now, not at the next confirmation, which may never
                // come.
                self.advance_acked();
            }
            Err(err) => {
                Stats::add(&self.stats.spool_read_errors, 1);
                self.stats.spool_read_failing.set(1);
                let delay = self.read_retry.next_delay();
                if let Some(suppressed) = self.error_log.allow() {
                    error!(at = ?self.cursor, cause = %err, retry_ms = delay.as_millis() as u64, suppressed, "cannot read the spool; nothing is skipped, retrying (check open-file limits and the disk)");
                }
                self.retry_at = Some(tokio::time::Instant::now() + delay);
            }
        }
    }

    /// The event at `position` ([`Spooled::position`]) was confirmed by the
    /// broker or dead-lettered.
    pub fn complete(&mut self, position: Option<Position>) {
        let Some(position) = position else {
            self.tail.unwritten_confirmed();
            return;
        };
        if self.outstanding.remove(&position) {
            self.stats.spool_records.dec();
        }
        self.advance_acked();
    }

    /// Moves the acked position up to the oldest event not yet confirmed
    /// (or the cursor, when none is outstanding); starts a checkpoint when
    /// it reaches a new segment, so that segment's predecessors are deleted.
    fn advance_acked(&mut self) {
        let acked = self
            .outstanding
            .first()
            .copied()
            .or_else(|| self.ready.iter().find_map(|item| item.position))
            .unwrap_or(self.cursor);
        if acked > self.acked {
            let new_segment = acked.segment > self.acked.segment;
            self.acked = acked;
            if new_segment || self.checkpoint_started.elapsed() >= CHECKPOINT_INTERVAL {
                self.start_checkpoint();
            }
        }
    }

    /// Starts a checkpoint if the acked position moved since the last one
    /// (the publisher calls this when idle, so a quiet bridge does not keep
    /// an old position on disk). Does not wait: the work runs on the
    /// blocking pool, and a checkpoint still running is left to finish.
    pub fn checkpoint_if_moved(&mut self) {
        if self.acked != self.checkpointed {
            self.start_checkpoint();
        }
    }

    /// Checkpoints the acked position and waits until it is on disk (at
    /// shutdown, after the last confirmation).
    pub async fn checkpoint_and_wait(&mut self) {
        self.wait_for_checkpoint().await;
        self.start_checkpoint();
        self.wait_for_checkpoint().await;
    }

    /// Waits for a checkpoint under way, if any, without starting one.
    pub(crate) async fn wait_for_checkpoint(&mut self) {
        if self.checkpointing.is_running() {
            let done = self.checkpointing.finish().await;
            self.checkpoint_done(done);
        }
    }

    /// Starts a checkpoint (deleting fully confirmed segments, then writing
    /// the acked position), unless one is already under way (then the next
    /// call, at most [`CHECKPOINT_INTERVAL`] later, takes the newer
    /// position).
    fn start_checkpoint(&mut self) {
        if let Some(done) = self.checkpointing.try_finish() {
            self.checkpoint_done(done);
            // That one already wrote this position and deleted every
            // confirmed segment: nothing is left to do.
            if self.acked == self.checkpointed && self.oldest >= self.acked.segment {
                return;
            }
        }
        let (files, used, oldest, acked) = (
            self.files.clone(),
            Arc::clone(&self.used),
            self.oldest,
            self.acked,
        );
        if self
            .checkpointing
            .try_start(move || files.checkpoint(oldest, acked, &used))
        {
            self.checkpoint_started = Instant::now();
        }
    }

    /// Takes what a finished checkpoint did.
    fn checkpoint_done(&mut self, done: Result<Checkpoint, tokio::task::JoinError>) {
        match done {
            Ok(checkpoint) => {
                self.oldest = self.oldest.max(checkpoint.oldest);
                match checkpoint.written {
                    Ok(()) => self.checkpointed = checkpoint.acked,
                    Err(err) => {
                        warn!(cause = %err, "cannot persist the spool's acked position; events may be published again after a restart")
                    }
                }
            }
            Err(panicked) => {
                error!(cause = %panicked, "persisting the spool's acked position failed; tried again at the next confirmation")
            }
        }
    }
}

impl Drop for SpoolReader {
    /// Acked events that never reached the disk and are not confirmed by
    /// now are gone with this process: counted and logged (a graceful
    /// stop publishes them first; a drain deadline or a crash does not).
    fn drop(&mut self) {
        let lost = self.tail.unconfirmed();
        if lost > 0 {
            Stats::add(&self.stats.spool_lost_records, lost);
            error!(lost, "events acked in memory mode that the disk refused were not confirmed by the broker before the bridge stopped; they are lost (spool.ack = \"durable\" or \"written\" never acks before the write)");
        }
    }
}
