//! Ingress's handle on the spool: [`SpoolWriter::append`] adds an event to
//! the writer's batch ([`super::writer_thread`]), then waits as long as
//! `spool.ack` says.
//!
//! When an append resolves depends on `spool.ack` ([`AckMode`]):
//!
//! * `durable`: once a sync that began after its batch was written has
//!   returned. While a sync is in progress (or more appends are queued),
//!   each written batch goes to the sync thread and the next is written
//!   while it syncs (a pipelined group commit); the sync thread covers
//!   everything handed to it so far with one call. An append waits for at
//!   most the sync in progress and its own. With nothing to overlap, the
//!   writer thread syncs a batch of its own itself: one thread hand-off
//!   fewer for the callbacks waiting.
//! * `written`: once its batch is written to the segment file.
//! * `memory`: at once.
//!
//! In `written` and `durable` modes an append that finds the writer idle
//! is written on the async worker that runs its callback, not by the
//! writer thread: the hand-off to that thread (a wake-up of a sleeping
//! thread) is saved, and in `written` mode the one back too. Group commit
//! without the thread: the first append of a batch yields to the worker's
//! other tasks once, so callbacks that are ready add their frames, then
//! writes them all in one call (a page-cache write) and answers them; in
//! `durable` mode the sync thread syncs them. An append that finds the
//! writer busy goes to the writer thread, as in `memory` mode.
//!
//! In `written` and `memory` modes the sync thread syncs at most every
//! `spool.sync_interval_ms`, and syncs each segment as it is closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::append::Append;
pub use super::append::AppendError;
use super::settings::{AckMode, SpoolSettings};
use super::writer_thread::{Started, WriterThread, MAX_WAITING};
use super::{record, Position};
use crate::normalize::Event;

/// Ingress's handle on the spool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpoolWriter {
    pub(super) appends: mpsc::Sender<Append>,
    /// The writer's state, for appends written on the callback's worker.
    pub(super) state: Arc<Mutex<WriterThread>>,
    pub(super) used: Arc<AtomicU64>,
    pub(super) max_bytes: u64,
    pub(super) mode: AckMode,
    /// Set by the writer thread while writes fail: `memory` mode then waits
    /// for the write too, so it acks nothing the disk refused.
    pub(super) failing: Arc<AtomicBool>,
    /// Closed when the writer thread has stopped.
    pub(super) stopped: watch::Receiver<Position>,
}

/// Where [`SpoolWriter::stage`] put an append.
enum Staged {
    /// First in the writer's batch: its caller writes the batch.
    First,
    /// In a batch another caller writes.
    Joined,
    /// Not staged: for the writer thread.
    Busy(Append),
}

/// Writes the staged batch when dropped ([`WriterThread::flush`]).
struct Flush<'a>(&'a Mutex<WriterThread>);

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        WriterThread::flush(self.0);
    }
}

impl SpoolWriter {
    /// The handle on a writer [`super::writer_thread::start`] started with
    /// `settings`; `used` counts the spool's bytes.
    pub(super) fn new(started: &Started, used: Arc<AtomicU64>, settings: &SpoolSettings) -> Self {
        Self {
            appends: started.appends.clone(),
            state: Arc::clone(&started.state),
            used,
            max_bytes: settings.max_bytes,
            mode: settings.ack,
            failing: Arc::clone(&started.failing),
            stopped: started.watermark.clone(),
        }
    }

    /// When an append resolves (`spool.ack`).
    pub fn mode(&self) -> AckMode {
        self.mode
    }

    /// Bytes the spool holds (or has promised to appends in progress), and
    /// its limit.
    pub fn usage(&self) -> (u64, u64) {
        (self.used.load(Ordering::Acquire), self.max_bytes)
    }

    /// Resolves once the writer thread has written and synced everything
    /// it was given and stopped (every handle was dropped). Shutdown waits
    /// for this, so `memory` mode never exits with acked events queued.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.clone();
        async move { while stopped.changed().await.is_ok() {} }
    }

    /// Spools `event`; resolves when `spool.ack` says it may be acked (in
    /// `memory` mode, while disk writes fail, once it is written).
    pub async fn append(&self, event: Event) -> Result<(), AppendError> {
        let size = record::encoded_len(&event) as u64;
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
            AckMode::Durable | AckMode::Written => true,
            AckMode::Memory => self.failing.load(Ordering::Acquire),
        };
        let (done, answer) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let append = Append { event, done };
        let append = match self.stage(append, size) {
            Staged::First => {
                // Written when this is dropped, also if the callback is
                // cancelled while it yields.
                let flush = Flush(&self.state);
                tokio::task::yield_now().await;
                drop(flush);
                return Self::answered(answer).await;
            }
            Staged::Joined => return Self::answered(answer).await,
            Staged::Busy(append) => append,
        };
        if let Err(err) = self.appends.try_send(append) {
            self.used.fetch_sub(size, Ordering::AcqRel);
            return Err(match err {
                mpsc::error::TrySendError::Full(_) => AppendError::Busy(MAX_WAITING),
                mpsc::error::TrySendError::Closed(_) => AppendError::Closed,
            });
        }
        Self::answered(answer).await
    }

    /// Adds `append` to the writer's batch in `written` and `durable`
    /// modes, if the writer's lock is free and the writer is idle. Never
    /// in `memory` mode, where one that waits (writes fail) must stay
    /// behind the acked appends queued for the writer thread.
    fn stage(&self, append: Append, size: u64) -> Staged {
        if self.mode == AckMode::Memory {
            return Staged::Busy(append);
        }
        match self.state.try_lock() {
            Ok(mut writer) if writer.idle(size) => {
                if writer.stage(append) {
                    Staged::First
                } else {
                    Staged::Joined
                }
            }
            _ => Staged::Busy(append),
        }
    }

    async fn answered(
        answer: Option<oneshot::Receiver<Result<(), AppendError>>>,
    ) -> Result<(), AppendError> {
        match answer {
            Some(answer) => answer.await.unwrap_or(Err(AppendError::Closed)),
            None => Ok(()),
        }
    }
}
