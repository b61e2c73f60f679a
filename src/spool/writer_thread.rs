//! The spool's writer: one thread writing batches of appends to the newest
//! segment, one thread syncing (`fdatasync`) what was written (when each
//! append is answered: see [`super::writer`]).
//!
//! Segments are preallocated: once the current one is half full, the next
//! is filled with zeros and synced in the background under a temporary name
//! (`.prep`), and renamed into place when the writer moves to it. A sync
//! of records written into that space then commits no new file size. The
//! records themselves mark where they end (a zero header, `Frame::End`).
//!
//! Written events also go to the reader in memory (a bounded [`Tail`]), so
//! in steady state the publisher does not read them back from disk.
//!
//! A failed write (ENOSPC, EIO) is cut back off the file. Appends waiting
//! for it get the error (503). In `memory` mode some of its events were
//! acked already: those go to the reader in memory ([`Tail`]'s unwritten
//! events) and are published from there, after everything written before
//! them; a graceful stop drains them to the broker. Until a batch succeeds
//! every new append waits for its write as in `written` mode, so nothing
//! more is acked that could not be written. A failed sync answers the appends waiting for it with the error
//! and moves the writer to a new segment; the batch stays in the file and
//! is published (at-least-once: an event answered 503 may still arrive).

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::append::{answer, Append, AppendError, Done};
use super::disk::SharedDisk;
use super::segments::{open_segment, prep_path, prepare, prepared};
use super::settings::{AckMode, SpoolSettings};
use super::syncer::Syncer;
use super::tail::Tail;
use super::writer::{SpoolWriter, MAX_WAITING};
use super::{record, release, segment_path, Position};
use crate::normalize::Event;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// In `memory` mode, how long the writer lets appends gather after a
/// batch (what a crash of the bridge can lose grows by as much).
const MEMORY_MODE_GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Bytes written in one batch, at most, so one sync never waits on an
/// unbounded write.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What [`start`] returns: the handle, the written end the reader follows,
/// and the events handed over in memory.
pub(super) struct Started {
    pub writer: SpoolWriter,
    pub watermark: watch::Receiver<Position>,
    pub tail: Arc<Tail>,
}

/// Starts the writer and sync threads on a new segment `first_segment`.
pub(super) fn start(
    settings: &SpoolSettings,
    first_segment: u64,
    used: Arc<AtomicU64>,
    stats: Arc<Stats>,
    lock: File,
    disk: SharedDisk,
) -> std::io::Result<Started> {
    let dir = settings.dir.clone();
    let file = Arc::new(open_segment(disk.as_ref(), &dir, first_segment)?);
    let start = Position {
        segment: first_segment,
        offset: 0,
    };
    let (watermark_tx, watermark) = watch::channel(start);
    let (appends, requests) = mpsc::channel(MAX_WAITING);
    let failing = Arc::new(AtomicBool::new(false));
    let tail = Arc::new(Tail::default());
    let syncer = Syncer::start(settings, Arc::clone(&file), Arc::clone(&stats), &disk)?;
    let mut thread = WriterThread {
        lock: Some(lock),
        dir,
        file,
        preallocated: 0,
        next: None,
        at: start,
        must_roll: false,
        segment_bytes: settings.segment_bytes,
        mode: settings.ack,
        used: Arc::clone(&used),
        watermark: Some(watermark_tx),
        stats,
        error_log: RateLimit::default(),
        failing: Arc::clone(&failing),
        tail: Arc::clone(&tail),
        syncer: Some(syncer),
        disk,
    };
    std::thread::Builder::new()
        .name("spool-writer".to_owned())
        .spawn(move || thread.run(requests))?;
    let writer = SpoolWriter {
        appends,
        used,
        max_bytes: settings.max_bytes,
        mode: settings.ack,
        failing,
        stopped: watermark.clone(),
    };
    Ok(Started {
        writer,
        watermark,
        tail,
    })
}

/// One batch: its bytes, its events, and who waits for it.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Each event with its frame's range in `buf`, and whether it was
    /// acked before the write (`memory` mode).
    events: Vec<(Event, Range<usize>, bool)>,
    records: i64,
    waiting: Vec<Done>,
}

struct WriterThread {
    /// This thread's handle on the spool's lock: closed when it stops,
    /// before `watermark` tells the reader the writer is gone (the lock
    /// itself stays until the reader's handle is closed too).
    lock: Option<File>,
    dir: PathBuf,
    file: Arc<File>,
    /// Bytes of the current segment allocated ahead (zeros past `at`).
    preallocated: u64,
    /// The next segment being prepared in the background.
    next: Option<JoinHandle<std::io::Result<()>>>,
    /// End of the last written batch.
    at: Position,
    /// The current segment may hold bytes past `at` (a failed batch could
    /// not be cut off, or a sync failed): nothing more is written to it.
    must_roll: bool,
    segment_bytes: u64,
    mode: AckMode,
    used: Arc<AtomicU64>,
    watermark: Option<watch::Sender<Position>>,
    stats: Arc<Stats>,
    error_log: RateLimit,
    failing: Arc<AtomicBool>,
    tail: Arc<Tail>,
    syncer: Option<Syncer>,
    disk: SharedDisk,
}

impl WriterThread {
    fn run(&mut self, mut requests: mpsc::Receiver<Append>) {
        let mut batch = Batch {
            buf: Vec::with_capacity(64 * 1024),
            ..Batch::default()
        };
        while let Some(first) = requests.blocking_recv() {
            let mut next = Some(first);
            while let Some(append) = next.take() {
                batch.records += 1;
                let start = batch.buf.len();
                record::encode(&append.event, &mut batch.buf);
                let range = start..batch.buf.len();
                let acked = match append.done {
                    Some(done) => {
                        batch.waiting.push(done);
                        false
                    }
                    None => true,
                };
                batch.events.push((append.event, range, acked));
                if batch.buf.len() < MAX_BATCH_BYTES {
                    next = requests.try_recv().ok();
                }
            }
            self.commit(&mut batch, !requests.is_empty());
            if self.mode == AckMode::Memory && !self.failing.load(Ordering::Acquire) {
                // Nobody waits for this thread in memory mode: let appends
                // gather for a moment instead of being woken for each few
                // (one wake-up per batch is most of this thread's cost).
                std::thread::sleep(MEMORY_MODE_GATHER);
            }
        }
        self.stop();
    }

    /// Syncs what is written, then closes its handle on the lock, then
    /// tells the reader (and `stopped()`) that the writer is gone.
    fn stop(&mut self) {
        if let Some(syncer) = self.syncer.take() {
            syncer.finish(Arc::clone(&self.file));
        }
        if let Some(next) = self.next.take() {
            let _ = next.join();
        }
        let _ = self.disk.remove(&prep_path(&self.dir, self.at.segment + 1));
        self.lock = None;
        self.watermark = None;
    }

    /// Writes `batch`, hands it on (reader, sync thread, appends waiting
    /// for the write), and empties it. `more`: appends are already queued
    /// behind it. On failure its acked events go to the reader in memory.
    fn commit(&mut self, batch: &mut Batch, more: bool) {
        let end_of_log = self.at;
        let result = self.write_batch(&batch.buf);
        match &result {
            Ok(start) => {
                let start = *start;
                self.stats.spool_records.inc_by(batch.records);
                if self.failing.swap(false, Ordering::AcqRel) {
                    info!("spool writes work again; memory-mode acks resume");
                }
                self.hand_to_reader(start, batch);
                if let Some(watermark) = &self.watermark {
                    watermark.send_replace(self.at);
                }
            }
            Err(_) => {
                // Nothing of the batch is on disk: it leaves the budget.
                release(&self.used, batch.buf.len() as u64);
                self.failing.store(true, Ordering::Release);
                let acked: Vec<Event> = batch
                    .events
                    .drain(..)
                    .filter(|(_, _, acked)| *acked)
                    .map(|(event, _, _)| event)
                    .collect();
                if !acked.is_empty() {
                    warn!(events = acked.len(), "the spool could not write events acked in memory mode; they are published from memory (a crash before the broker confirms them loses them)");
                    if self.at == end_of_log {
                        // Nothing more goes after them in this segment, so
                        // the reader meets them before anything later.
                        self.must_roll = true;
                    }
                    self.tail.push_unwritten(end_of_log, acked);
                    if let Some(watermark) = &self.watermark {
                        // Wakes the reader, which takes them once it has
                        // read up to `end_of_log`.
                        watermark.send_replace(self.at);
                    }
                }
            }
        }
        let result = result.map(|_| ());
        let waiting = std::mem::take(&mut batch.waiting);
        match (result, self.mode, &self.syncer) {
            (Ok(()), AckMode::Durable, Some(syncer)) if !waiting.is_empty() => {
                syncer.sync(Arc::clone(&self.file), waiting, more);
            }
            (result, _, _) => answer(waiting, &result),
        }
        if self.at.offset >= self.segment_bytes {
            self.roll();
        }
        batch.buf.clear();
        batch.events.clear();
        batch.records = 0;
    }

    /// Gives the batch's events to the reader in memory (`start`: where the
    /// batch begins in the log).
    fn hand_to_reader(&self, start: Position, batch: &mut Batch) {
        let items = batch
            .events
            .drain(..)
            .map(|(event, range, _)| {
                let position = Position {
                    segment: start.segment,
                    offset: start.offset + range.start as u64,
                };
                (position, event, range.len() as u64)
            })
            .collect();
        self.tail.push(items);
    }

    /// Writes `batch` at the end of the log (in a new segment if the
    /// current one must be closed first); returns where it starts.
    fn write_batch(&mut self, batch: &[u8]) -> Result<Position, AppendError> {
        let sync_failed = self.syncer.as_ref().is_some_and(Syncer::take_failure);
        if (self.must_roll || sync_failed) && !self.roll() {
            return Err(AppendError::Io(Arc::new(std::io::Error::other(
                "cannot create a new spool segment",
            ))));
        }
        if let Err(err) = self.disk.write_at(&self.file, batch, self.at.offset) {
            // Cut the file back so a half-written batch is never read.
            let restored = self.disk.set_len(&self.file, self.at.offset);
            self.preallocated = 0;
            if let Some(suppressed) = self.error_log.allow() {
                error!(cause = %err, restored = restored.is_ok(), suppressed, "spool write failed; callbacks are answered 503 until it works again");
            }
            if restored.is_err() {
                // Bytes of the failed batch stay in the file: they count
                // until the segment is deleted, and nothing more goes there.
                // Whole frames among them are read and published (as
                // duplicates of callbacks answered 503, or of events
                // published from memory): at-least-once, never lost.
                let on_disk = self
                    .disk
                    .len(&segment_path(&self.dir, self.at.segment))
                    .unwrap_or(self.at.offset + batch.len() as u64);
                self.used
                    .fetch_add(on_disk.saturating_sub(self.at.offset), Ordering::AcqRel);
                self.must_roll = true;
            }
            // Space comes back a whole segment at a time: close this one, so
            // it is deleted once the broker has confirmed it. Otherwise a
            // disk smaller than a segment would stay full for good.
            if self.at.offset > 0 || self.must_roll {
                self.roll();
            }
            return Err(AppendError::Io(Arc::new(err)));
        }
        let start = self.at;
        self.at.offset += batch.len() as u64;
        if let Some(syncer) = &self.syncer {
            syncer.written();
        }
        if self.next.is_none() && self.at.offset >= self.segment_bytes / 2 {
            // The next segment, filled with zeros in the background.
            let path = prep_path(&self.dir, self.at.segment + 1);
            self.next = prepare(Arc::clone(&self.disk), path, self.segment_bytes);
        }
        Ok(start)
    }

    /// Closes the current segment (trimmed to its records, synced) and
    /// starts the next; on failure keeps the current one. `false` if no
    /// new segment could be created.
    fn roll(&mut self) -> bool {
        let next = self.at.segment + 1;
        let prepared = self.next.take().is_some_and(prepared);
        match open_segment(self.disk.as_ref(), &self.dir, next) {
            Ok(file) => {
                if self.preallocated > self.at.offset && !self.must_roll {
                    // The zeros past the last record go; the reader and
                    // recovery would stop at them anyway (`Frame::End`).
                    let _ = self.disk.set_len(&self.file, self.at.offset);
                }
                let file = Arc::new(file);
                let old = std::mem::replace(&mut self.file, Arc::clone(&file));
                if let Some(syncer) = &self.syncer {
                    syncer.closed(old, file);
                }
                self.preallocated = if prepared { self.segment_bytes } else { 0 };
                self.at = Position {
                    segment: next,
                    offset: 0,
                };
                self.must_roll = false;
                if let Some(watermark) = &self.watermark {
                    watermark.send_replace(self.at);
                }
                true
            }
            Err(err) => {
                error!(cause = %err, "cannot create a new spool segment; continuing in the current one");
                false
            }
        }
    }
}
