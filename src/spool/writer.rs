//! Ingress's handle on the spool: [`SpoolWriter::append`] encodes an event
//! and hands it to the writer thread ([`super::writer_thread`]), then waits
//! as long as `spool.ack` says.
//!
//! When an append resolves depends on `spool.ack` ([`AckMode`]):
//!
//! * `durable`: once a sync that began after its batch was written has
//!   returned. While a sync is in progress (or more appends are queued),
//!   the writer thread hands each written batch to the sync thread and goes
//!   on writing the next while it syncs (a pipelined group commit); the
//!   sync thread covers everything handed to it so far with one call. An
//!   append waits for at most the sync in progress and its own. With
//!   nothing to overlap, the writer syncs the batch itself: one thread
//!   hand-off fewer for the callbacks waiting.
//! * `written`: once its batch is written to the segment file.
//! * `memory`: at once.
//!
//! In `written` and `memory` modes the sync thread syncs at most every
//! `spool.sync_interval_ms`, and syncs each segment as it is closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::append::Append;
pub use super::append::AppendError;
use super::settings::AckMode;
use super::{record, Position};
use crate::normalize::Event;

/// Appends waiting for the writer thread, at most (in `memory` mode this
/// bounds what a crash can lose; `spool.max_bytes` bounds them too).
pub(super) const MAX_WAITING: usize = 16 * 1024;

/// Ingress's handle on the spool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpoolWriter {
    pub(super) appends: mpsc::Sender<Append>,
    pub(super) used: Arc<AtomicU64>,
    pub(super) max_bytes: u64,
    pub(super) mode: AckMode,
    /// Set by the writer thread while writes fail: `memory` mode then waits
    /// for the write too, so it acks nothing the disk refused.
    pub(super) failing: Arc<AtomicBool>,
    /// Closed when the writer thread has stopped.
    pub(super) stopped: watch::Receiver<Position>,
}

impl SpoolWriter {
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
        if let Err(err) = self.appends.try_send(append) {
            self.used.fetch_sub(size, Ordering::AcqRel);
            return Err(match err {
                mpsc::error::TrySendError::Full(_) => AppendError::Busy(MAX_WAITING),
                mpsc::error::TrySendError::Closed(_) => AppendError::Closed,
            });
        }
        match answer {
            Some(answer) => answer.await.unwrap_or(Err(AppendError::Closed)),
            None => Ok(()),
        }
    }
}
