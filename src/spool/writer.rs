//! The spool's writer: one thread appending frames to the newest segment,
//! one `fdatasync` per batch of whatever appends are waiting (group commit).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::error;

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    Io(String),
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
}

impl SpoolWriter {
    /// Bytes the spool holds (or has promised to appends in progress), and
    /// its limit.
    pub fn usage(&self) -> (u64, u64) {
        (self.used.load(Ordering::Acquire), self.max_bytes)
    }

    /// Spools `event`. In `durable` mode resolves once it is on disk and
    /// synced; in `memory` mode once the writer thread has it.
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
        let (done, synced) = match self.mode {
            AckMode::Durable => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            AckMode::Memory => (None, None),
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
) -> std::io::Result<(SpoolWriter, watch::Receiver<Position>)> {
    let dir = settings.dir.clone();
    let file = create_segment(&dir, first_segment)?;
    let start = Position {
        segment: first_segment,
        offset: 0,
    };
    let (watermark_tx, watermark) = watch::channel(start);
    let (appends, requests) = mpsc::channel(MAX_WAITING);
    let mut thread = WriterThread {
        _lock: lock,
        dir,
        file,
        at: start,
        segment_bytes: settings.segment_bytes,
        used: Arc::clone(&used),
        watermark: watermark_tx,
        stats,
        error_log: RateLimit::default(),
    };
    std::thread::Builder::new()
        .name("spool-writer".to_owned())
        .spawn(move || thread.run(requests))?;
    let writer = SpoolWriter {
        appends,
        used,
        max_bytes: settings.max_bytes,
        mode: settings.ack,
    };
    Ok((writer, watermark))
}

fn create_segment(dir: &std::path::Path, id: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, id))?;
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
    segment_bytes: u64,
    used: Arc<AtomicU64>,
    watermark: watch::Sender<Position>,
    stats: Arc<Stats>,
    error_log: RateLimit,
}

impl WriterThread {
    fn run(&mut self, mut requests: mpsc::Receiver<Append>) {
        let mut buf = Vec::with_capacity(MAX_BATCH_BYTES);
        let mut waiting = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut next = Some(first);
            let mut records = 0;
            while let Some(append) = next.take() {
                records += 1;
                buf.extend_from_slice(&append.frame);
                waiting.extend(append.done);
                if buf.len() < MAX_BATCH_BYTES {
                    next = requests.try_recv().ok();
                }
            }
            let result = self.write_batch(&buf);
            if result.is_ok() {
                self.stats.spool_records.inc_by(records);
            }
            for done in waiting.drain(..) {
                // The handler may have given up (client gone); nothing to do.
                let _ = done.send(result.clone());
            }
            buf.clear();
        }
    }

    fn write_batch(&mut self, batch: &[u8]) -> Result<(), AppendError> {
        let written = self
            .file
            .write_all(batch)
            .and_then(|()| self.file.sync_data());
        Stats::add(&self.stats.spool_syncs, 1);
        if let Err(err) = written {
            // Cut the file back so a half-written batch is never read.
            let restored = self.file.set_len(self.at.offset);
            self.used.fetch_sub(batch.len() as u64, Ordering::AcqRel);
            if let Some(suppressed) = self.error_log.allow() {
                error!(cause = %err, restored = restored.is_ok(), suppressed, "spool write failed; callbacks are answered 503 until it works again");
            }
            // Space comes back a whole segment at a time: close this one, so
            // it is deleted once the broker has confirmed it. Otherwise a
            // disk smaller than a segment would stay full for good.
            if self.at.offset > 0 {
                self.roll();
            }
            return Err(AppendError::Io(err.to_string()));
        }
        self.at.offset += batch.len() as u64;
        self.watermark.send_replace(self.at);
        if self.at.offset >= self.segment_bytes {
            self.roll();
        }
        Ok(())
    }

    /// Starts the next segment; on failure keeps appending to this one.
    fn roll(&mut self) {
        let next = self.at.segment + 1;
        match create_segment(&self.dir, next) {
            Ok(file) => {
                self.file = file;
                self.at = Position {
                    segment: next,
                    offset: 0,
                };
                self.watermark.send_replace(self.at);
            }
            Err(err) => {
                error!(cause = %err, "cannot create a new spool segment; continuing in the current one")
            }
        }
    }
}
