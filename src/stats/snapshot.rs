//! [`Stats`] as plain numbers at one moment.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::labels::{CallbackLabels, CallbackOutcome, SinkLabel};
use super::Stats;
use crate::normalize::CallbackKind;

impl Stats {
    /// Current values of the counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            callbacks_acked: self.callbacks_with(CallbackOutcome::Acked),
            callbacks_invalid: self.callbacks_with(CallbackOutcome::Invalid),
            callbacks_unavailable: self.callbacks_with(CallbackOutcome::Unavailable),
            events_published: self.events_with(&self.published),
            events_retried: self.events_with(&self.retried),
            events_rejected: self.events_with(&self.dead_lettered),
            spool_syncs: self.spool_syncs.get(),
            spool_torn_bytes: self.spool_torn_bytes.get(),
            spool_skipped_bytes: self.spool_skipped_bytes.get(),
            spool_read_errors: self.spool_read_errors.get(),
            spool_lost_records: self.spool_lost_records.get(),
            spool_records: self.spool_records.get(),
            header_timeouts: self.header_timeouts.get(),
        }
    }

    fn callbacks_with(&self, outcome: CallbackOutcome) -> u64 {
        CallbackKind::all()
            .map(CallbackKind::command)
            .map(|command| {
                self.callbacks
                    .get_or_create(&CallbackLabels { command, outcome })
                    .get()
            })
            .sum()
    }

    fn events_with(&self, family: &Family<SinkLabel, Counter>) -> u64 {
        self.sink
            .get()
            .map_or(0, |sink| family.get_or_create(&SinkLabel { sink }).get())
    }
}

/// The counters of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Callbacks acked.
    pub callbacks_acked: u64,
    /// Callbacks refused as invalid (4xx).
    pub callbacks_invalid: u64,
    /// Callbacks refused with 503.
    pub callbacks_unavailable: u64,
    /// Events the broker confirmed.
    pub events_published: u64,
    /// Events sent again after a broker error.
    pub events_retried: u64,
    /// Events dead-lettered.
    pub events_rejected: u64,
    /// `fdatasync` calls of the spool writer.
    pub spool_syncs: u64,
    /// Bytes of torn records cut from the spool at startup.
    pub spool_torn_bytes: u64,
    /// Bytes of damaged records the spool's reader skipped.
    pub spool_skipped_bytes: u64,
    /// Reads of the spool that failed (and were retried).
    pub spool_read_errors: u64,
    /// Events acked in `memory` mode and lost when the bridge stopped.
    pub spool_lost_records: u64,
    /// Events in the spool not yet confirmed by the broker.
    pub spool_records: i64,
    /// Connections closed because request headers came too late.
    pub header_timeouts: u64,
}
