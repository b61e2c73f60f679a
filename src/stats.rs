//! Counters of what the bridge did, shared by every stage.
//!
//! Plain atomics for now; a later version exports them as Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Callbacks answered with the "continue" ack (accepted).
    pub callbacks_acked: AtomicU64,
    /// Callbacks refused as invalid (4xx).
    pub callbacks_invalid: AtomicU64,
    /// Callbacks refused because the spool was full, failing or closing (503).
    pub callbacks_unavailable: AtomicU64,
    /// Events the broker confirmed.
    pub events_published: AtomicU64,
    /// Events sent again after a retryable broker error.
    pub events_retried: AtomicU64,
    /// Events the broker refused for good (written to the dead-letter file).
    pub events_rejected: AtomicU64,
    /// `fdatasync` calls of the spool writer (one per group commit).
    pub spool_syncs: AtomicU64,
    /// Bytes of torn or corrupt records cut from the spool at startup.
    pub spool_torn_bytes: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Stats::callbacks_acked`].
    pub callbacks_acked: u64,
    /// See [`Stats::callbacks_invalid`].
    pub callbacks_invalid: u64,
    /// See [`Stats::callbacks_unavailable`].
    pub callbacks_unavailable: u64,
    /// See [`Stats::events_published`].
    pub events_published: u64,
    /// See [`Stats::events_retried`].
    pub events_retried: u64,
    /// See [`Stats::events_rejected`].
    pub events_rejected: u64,
    /// See [`Stats::spool_syncs`].
    pub spool_syncs: u64,
    /// See [`Stats::spool_torn_bytes`].
    pub spool_torn_bytes: u64,
}

impl Stats {
    /// Adds `n` to `counter` (relaxed: these are statistics, not synchronization).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            callbacks_acked: get(&self.callbacks_acked),
            callbacks_invalid: get(&self.callbacks_invalid),
            callbacks_unavailable: get(&self.callbacks_unavailable),
            events_published: get(&self.events_published),
            events_retried: get(&self.events_retried),
            events_rejected: get(&self.events_rejected),
            spool_syncs: get(&self.spool_syncs),
            spool_torn_bytes: get(&self.spool_torn_bytes),
        }
    }
}
