//! The spool's writer: batches of appends written to the newest segment,
//! by the async worker of the callback that leads the batch when the writer
//! is idle (`written` and `durable` modes, see [`super::writer`]) or by the
//! writer thread; one thread syncing (`fdatasync`) what was written (when
//! each append is answered: see [`super::writer`]).
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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::append::{answer, Append, Done};
use super::disk::SharedDisk;
use super::segments::{open_segment, prep_path};
use super::settings::{AckMode, SpoolSettings};
use super::syncer::{SyncNow, Syncer};
use super::tail::Tail;
use super::{record, release, Position};
use crate::normalize::Event;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

mod segment_io;

/// In `memory` mode, how long the writer lets appends gather after a
/// batch (what a crash of the bridge can lose grows by as much).
const MEMORY_MODE_GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Bytes written in one batch, at most, so one sync never waits on an
/// unbounded write.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Appends waiting for the writer thread, at most (in `memory` mode this
/// bounds what a crash can lose; `spool.max_bytes` bounds them too).
pub(super) const MAX_WAITING: usize = 16 * 1024;

/// What [`start`] returns: the appends' channel and the writer's state
/// (for [`SpoolWriter`](super::SpoolWriter)), whether writes fail, the
/// written end the reader follows, and the events handed over in memory.
pub(super) struct Started {
    pub appends: mpsc::Sender<Append>,
    pub state: Arc<Mutex<WriterThread>>,
    pub failing: Arc<AtomicBool>,
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
    let state = Arc::new(Mutex::new(WriterThread {
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
        batch: Batch {
            buf: Vec::with_capacity(64 * 1024),
            ..Batch::default()
        },
    }));
    let thread = Arc::clone(&state);
    std::thread::Builder::new()
        .name("spool-writer".to_owned())
        .spawn(move || run(&thread, requests))?;
    Ok(Started {
        appends,
        state,
        failing,
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

/// The writer's state, used in turn by the writer thread and by appends
/// that find it idle ([`WriterThread::stage`]).
pub(super) struct WriterThread {
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
    /// The batch being gathered (empty between two commits).
    batch: Batch,
}

impl std::fmt::Debug for WriterThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// The writer's state, locked (also after a panic while it was held).
fn lock(state: &Mutex<WriterThread>) -> MutexGuard<'_, WriterThread> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: batches of what the channel holds, until every
/// [`SpoolWriter`](super::SpoolWriter) is dropped.
fn run(state: &Mutex<WriterThread>, mut requests: mpsc::Receiver<Append>) {
    let (mode, failing) = {
        let writer = lock(state);
        (writer.mode, Arc::clone(&writer.failing))
    };
    while let Some(first) = requests.blocking_recv() {
        let mut writer = lock(state);
        let mut next = Some(first);
        while let Some(append) = next.take() {
            writer.take(append);
            if writer.batch.buf.len() < MAX_BATCH_BYTES {
                next = requests.try_recv().ok();
            }
        }
        let more = !requests.is_empty();
        commit(writer, more);
        if mode == AckMode::Memory && !failing.load(Ordering::Acquire) {
            // Nobody waits for this thread in memory mode: let appends
            // gather for a moment instead of being woken for each few
            // (one wake-up per batch is most of this thread's cost).
            std::thread::sleep(MEMORY_MODE_GATHER);
        }
    }
    // What is still staged (the callback's own flush normally wrote it) is
    // written before the stop.
    let staged = lock(state).batch.records > 0;
    if staged {
        commit(lock(state), false);
    }
    lock(state).stop();
}

/// Commits the writer thread's batch, releases the lock, then runs the
/// sync the commit left to this thread: no callback waits on the lock for it.
fn commit(mut writer: MutexGuard<'_, WriterThread>, more: bool) {
    let sync = writer.commit(more);
    drop(writer);
    if let Some(sync) = sync {
        sync.run();
    }
}

impl WriterThread {
    /// Whether an append of `size` bytes may join the batch from the async
    /// worker that appends it ([`WriterThread::stage`]): nothing slow can
    /// come of writing it there. Moving to a new segment and preparing the
    /// next, and writing while a write or sync is failing, are left to the
    /// writer thread. (A write that fails on the worker is cut back, and
    /// its segment closed, there: once, as from then on appends go to the
    /// thread until a write works again.)
    pub(super) fn idle(&self, size: u64) -> bool {
        let end = self.at.offset + self.batch.buf.len() as u64 + size;
        self.watermark.is_some()
            && !self.must_roll
            && !self.failing.load(Ordering::Acquire)
            && !self.syncer.as_ref().is_some_and(Syncer::failed)
            && end < self.segment_bytes
            // Nor a thread started for the next segment.
            && (self.next.is_some() || end < self.segment_bytes / 2)
    }

    /// Adds `append` to the batch from the async worker that appends it;
    /// returns whether the batch was empty (the caller then writes it, with
    /// [`WriterThread::flush`]).
    pub(super) fn stage(&mut self, append: Append) -> bool {
        let first = self.batch.records == 0;
        self.take(append);
        first
    }

    /// Writes what [`WriterThread::stage`] added to the batch, if nobody
    /// has yet (the writer thread writes it with its own batch).
    pub(super) fn flush(state: &Mutex<Self>) {
        let mut writer = lock(state);
        if writer.batch.records > 0 {
            // `more`: the sync thread syncs, never an async worker.
            let sync = writer.commit(true);
            debug_assert!(sync.is_none());
        }
    }

    /// Adds `append` to the batch, its frame encoded into the batch's bytes.
    fn take(&mut self, append: Append) {
        let batch = &mut self.batch;
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

    /// Writes the batch, hands it on (reader, sync thread, appends waiting
    /// for the write), and empties it. `more`: appends are already queued
    /// behind it. On failure its acked events go to the reader in memory.
    /// Returns the sync the caller runs once it has released the lock.
    fn commit(&mut self, more: bool) -> Option<SyncNow> {
        // Taken for the call (the methods below borrow `self`), then put
        // back empty, keeping its capacity.
        let mut batch = std::mem::take(&mut self.batch);
        let end_of_log = self.at;
        let result = self.write_batch(&batch.buf);
        match &result {
            Ok(start) => {
                let start = *start;
                self.stats.spool_records.inc_by(batch.records);
                if self.failing.swap(false, Ordering::AcqRel) {
                    info!("spool writes work again; memory-mode acks resume");
                }
                self.hand_to_reader(start, &mut batch);
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
        let sync = match (result, self.mode, &self.syncer) {
            (Ok(()), AckMode::Durable, Some(syncer)) if !waiting.is_empty() => {
                syncer.sync(Arc::clone(&self.file), waiting, more)
            }
            (result, _, _) => {
                answer(waiting, &result);
                None
            }
        };
        if self.at.offset >= self.segment_bytes {
            self.roll();
        }
        batch.buf.clear();
        batch.events.clear();
        batch.records = 0;
        self.batch = batch;
        sync
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
}
