//! One append on its way to the writer thread, and how it is answered.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::normalize::Event;

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
    Io(#[source] Arc<std::io::Error>),
    /// The writer has stopped (shutdown).
    #[error("the bridge is shutting down")]
    Closed,
}

/// Answers an append waiting for its write or sync.
pub type Done = oneshot::Sender<Result<(), AppendError>>;

/// Gives every append in `waiting` the outcome of its write or sync. One
/// whose handler gave up (client gone) is skipped.
pub fn answer(waiting: Vec<Done>, result: &Result<(), AppendError>) {
    for done in waiting {
        let _ = done.send(result.clone());
    }
}

/// An event and who waits for its write or sync. The writer thread encodes
/// its frame straight into the batch it writes.
pub struct Append {
    /// The event, encoded into the segment, then handed to the reader.
    pub event: Event,
    /// Who waits for this append (none: acked already, `memory` mode).
    pub done: Option<Done>,
}
