//! The spool's writer: one thread appending frames to the newest segment,
//! one `fdatasync` per batch of whatever appends are waiting (group commit).
//!
//! A failed batch (ENOSPC, EIO) is cut back off the file. Appends waiting
//! for it get the error (503). In `memory` mode some of its events were
//! acked already: those are kept in memory and written first in the next
//! batch, and until a batch succeeds every new append waits for its write
//! as in `durable` mode, so nothing more is acked that could not be written.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info};

use super::disk::SharedDisk;
use super::{record, segment_path, sync_dir, Position};
use crate::config::{AckMode, SpoolSettings};
use crate::normalize::Event;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// Appends waiting for the writer thread, at most (in `memory` mode this
/// bounds what a crash can lose; `spool.max_bytes` bounds them too).
const MAX_WAITING: usize = 16 * 1024;

/// Bytes written in one batch, at most, so one sync never waits on an
/// unbounded write.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Why an event was not spooled. The text goes back to OpenIM as `errMsg`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// `spool.max_bytes` would be exceeded.
    #[error("the spool is full ({used} of spool.max_bytes {max} bytes): the broker is slow or unreachable")]
    Full {
        /// Bytes the spool's files hold or have been promised.
        used: u64,
        /// `spool.max_bytes`.
        max: u64,
    },
    /// Too many appends are waiting for the writer thread.
    #[error("the spool's writer is behind ({0} appends waiting): the disk is slower than the incoming callbacks")]
    Busy(usize),
    /// Writing or syncing failed (disk full, I/O error).
    #[error("the spool could not write to disk: {0}")]
    Io(Arc<std::io::Error>),
    /// The writer has stopped (shutdown).
    #[error("the bridge is shutting down")]
    Closed,
}

struct Append {
    frame: Vec<u8>,
    done: Option<oneshot::Sender<Result<(), AppendError>>>,
}

/// Ingress's handle on the spool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpoolWriter {
    appends: mpsc::Sender<Append>,
    used: Arc<AtomicU64>,
    max_bytes: u64,
    mode: AckMode,
    /// Set by the writer thread while writes fail: `memory` mode then waits
    /// for the write too, so it acks nothing the disk refused.
    failing: Arc<AtomicBool>,
    /// Closed when the writer thread has stopped.
    stopped: watch::Receiver<Position>,
}

impl SpoolWriter {
    /// Bytes the spool holds (or has promised to appends in progress), and
    /// its limit.
    pub fn usage(&self) -> (u64, u64) {
        (self.used.load(Ordering::Acquire), self.max_bytes)
    }

    /// Resolves once the writer thread has written everything it was given
    /// and stopped (every handle was dropped). Shutdown waits for this, so
    /// `memory` mode never exits with acked events still queued.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move { while stopped.changed().await.is_ok() {} }
    }

    /// Spools `event`. In `durable` mode resolves once it is on disk and
    /// synced; in `memory` mode once the writer thread has it (or, while
    /// disk writes fail, once it is on disk, as in `durable` mode).
    pub async fn append(&self, event: &Event) -> Result<(), AppendError> {
        let mut frame = Vec::with_capacity(event.data.len() + 256);
        let size = record::encode(event, &mut frame) as u64;
        // Reserve the bytes first, so concurrent appends cannot overshoot.
        let used = self.used.fetch_add(size, Ordering::AcqRel);
        if used + size > self.max_bytes {
            self.used.fetch_sub(size, Ordering::AcqRel);
            return Err(AppendError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let wait = match self.mode {
            AckMode::Durable => true,
            AckMode::Memory => self.failing.load(Ordering::Acquire),
        };
        let (done, synced) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if let Err(err) = self.appends.try_send(Append { frame, done }) {
            self.used.fetch_sub(size, Ordering::AcqRel);
            return Err(match err {
                mpsc::error::TrySendError::Full(_) => AppendError::Busy(MAX_WAITING),
                mpsc::error::TrySendError::Closed(_) => AppendError::Closed,
            });
        }
        match synced {
            Some(synced) => synced.await.unwrap_or(Err(AppendError::Closed)),
            None => Ok(()),
        }
    }
}

/// Starts the writer thread on a new segment `first_segment`. Returns the
/// handle and the watermark (end of synced data) the reader follows.
pub(super) fn start(
    settings: &SpoolSettings,
    first_segment: u64,
    used: Arc<AtomicU64>,
    stats: Arc<Stats>,
    lock: File,
    disk: SharedDisk,
) -> std::io::Result<(SpoolWriter, watch::Receiver<Position>)> {
    let dir = settings.dir.clone();
    let file = create_segment(disk.as_ref(), &dir, first_segment)?;
    let start = Position {
        segment: first_segment,
        offset: 0,
    };
    let (watermark_tx, watermark) = watch::channel(start);
    let (appends, requests) = mpsc::channel(MAX_WAITING);
    let failing = Arc::new(AtomicBool::new(false));
    let mut thread = WriterThread {
        _lock: lock,
        dir,
        file,
        at: start,
        must_roll: false,
        segment_bytes: settings.segment_bytes,
        used: Arc::clone(&used),
        watermark: watermark_tx,
        stats,
        error_log: RateLimit::default(),
        failing: Arc::clone(&failing),
        carry: Vec::new(),
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
    Ok((writer, watermark))
}

fn create_segment(
    disk: &dyn super::disk::Disk,
    dir: &std::path::Path,
    id: u64,
) -> std::io::Result<File> {
    let file = disk.open_append(&segment_path(dir, id))?;
    sync_dir(dir)?;
    Ok(file)
}

struct WriterThread {
    /// The spool's lock: held while this thread runs. First, so it is
    /// released before `watermark` tells the reader the writer is gone.
    _lock: File,
    dir: PathBuf,
    file: File,
    /// End of the last synced batch.
    at: Position,
    /// The current segment may hold bytes past `at` (a failed batch could
    /// not be cut off): nothing more is written to it.
    must_roll: bool,
    segment_bytes: u64,
    used: Arc<AtomicU64>,
    watermark: watch::Sender<Position>,
    stats: Arc<Stats>,
    error_log: RateLimit,
    failing: Arc<AtomicBool>,
    /// Frames of events already acked (`memory` mode) whose batch failed:
    /// written first in the next batch (or at shutdown). Bounded by what
    /// was acked before the writer saw the failure: once it has, every
    /// append waits for its write.
    carry: Vec<u8>,
    disk: SharedDisk,
}

/// One batch: its bytes, and which of them are already acked.
struct Batch {
    buf: Vec<u8>,
    /// Ranges of `buf` whose events were acked before the write (`memory`
    /// mode, and frames carried over from a failed batch).
    acked: Vec<Range<usize>>,
    records: i64,
    waiting: Vec<oneshot::Sender<Result<(), AppendError>>>,
}

impl WriterThread {
    fn run(&mut self, mut requests: mpsc::Receiver<Append>) {
        let mut batch = Batch {
            buf: Vec::with_capacity(MAX_BATCH_BYTES),
            acked: Vec::new(),
            records: 0,
            waiting: Vec::new(),
        };
        while let Some(first) = requests.blocking_recv() {
            self.take_carry(&mut batch);
            let mut next = Some(first);
            while let Some(append) = next.take() {
                batch.records += 1;
                let start = batch.buf.len();
                batch.buf.extend_from_slice(&append.frame);
                match append.done {
                    Some(done) => batch.waiting.push(done),
                    None => batch.acked.push(start..batch.buf.len()),
                }
                if batch.buf.len() < MAX_BATCH_BYTES {
                    next = requests.try_recv().ok();
                }
            }
            self.commit(&mut batch);
        }
        // Every handle is gone: one last try for acked frames still held.
        if !self.carry.is_empty() {
            self.take_carry(&mut batch);
            self.commit(&mut batch);
        }
        if !self.carry.is_empty() {
            let lost = record::count_frames(&self.carry);
            Stats::add(&self.stats.spool_lost_records, lost);
            error!(lost, "the spool could not write events acked in memory mode before shutdown; they are lost (spool.ack = \"durable\" never acks before the write)");
        }
    }

    /// Starts `batch` with the frames carried over from a failed one.
    fn take_carry(&mut self, batch: &mut Batch) {
        if !self.carry.is_empty() {
            batch.records += record::count_frames(&self.carry) as i64;
            batch.buf.append(&mut self.carry);
            batch.acked.push(0..batch.buf.len());
        }
    }

    /// Writes and syncs `batch`, answers whoever waits for it, and empties
    /// it. On failure keeps its acked frames for the next batch.
    fn commit(&mut self, batch: &mut Batch) {
        let result = self.write_batch(&batch.buf);
        match &result {
            Ok(()) => {
                self.stats.spool_records.inc_by(batch.records);
                if self.failing.swap(false, Ordering::AcqRel) {
                    info!("spool writes work again; memory-mode acks resume");
                }
            }
            Err(_) => {
                for range in &batch.acked {
                    self.carry.extend_from_slice(&batch.buf[range.clone()]);
                }
                // Frames answered with the error leave the spool's budget;
                // carried ones keep their place in it.
                let dropped = (batch.buf.len() - self.carry.len()) as u64;
                self.release(dropped);
                self.failing.store(true, Ordering::Release);
            }
        }
        for done in batch.waiting.drain(..) {
            // The handler may have given up (client gone); nothing to do.
            let _ = done.send(result.clone());
        }
        batch.buf.clear();
        batch.acked.clear();
        batch.records = 0;
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    fn write_batch(&mut self, batch: &[u8]) -> Result<(), AppendError> {
        if self.must_roll && !self.roll() {
            return Err(AppendError::Io(Arc::new(std::io::Error::other(
                "cannot create a new spool segment",
            ))));
        }
        let written = self
            .disk
            .write(&self.file, batch)
            .and_then(|()| self.disk.sync(&self.file));
        Stats::add(&self.stats.spool_syncs, 1);
        if let Err(err) = written {
            // Cut the file back so a half-written batch is never read.
            let restored = self.disk.set_len(&self.file, self.at.offset);
            if let Some(suppressed) = self.error_log.allow() {
                error!(cause = %err, restored = restored.is_ok(), suppressed, "spool write failed; callbacks are answered 503 until it works again");
            }
            if restored.is_err() {
                // Bytes of the failed batch stay in the file: they count
                // until the segment is deleted, and nothing more goes there.
                // Whole frames among them are read and published (as
                // duplicates of callbacks answered 503, or written again
                // from `carry`): at-least-once, never lost.
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
        self.at.offset += batch.len() as u64;
        self.watermark.send_replace(self.at);
        if self.at.offset >= self.segment_bytes {
            self.roll();
        }
        Ok(())
    }

    /// Starts the next segment; on failure keeps the current one. `false`
    /// if no new segment could be created.
    fn roll(&mut self) -> bool {
        let next = self.at.segment + 1;
        match create_segment(self.disk.as_ref(), &self.dir, next) {
            Ok(file) => {
                self.file = file;
                self.at = Position {
                    segment: next,
                    offset: 0,
                };
                self.must_roll = false;
                self.watermark.send_replace(self.at);
                true
            }
            Err(err) => {
                error!(cause = %err, "cannot create a new spool segment; continuing in the current one");
                false
            }
        }
    }
}
