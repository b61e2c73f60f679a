//! What the bridge did, as Prometheus metrics (served at `GET /metrics`,
//! or [`Stats::render`]) and as plain numbers ([`Stats::snapshot`]), and
//! whether the broker accepts this replica ([`Stats::refusal`]).
//!
//! Names follow Prometheus conventions: `openim_bridge_` prefix, `_total`
//! counters, `_seconds` and `_bytes` base units. Label values are bounded
//! (callback outcomes, sink names), never user input.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::normalize::CallbackKind;

mod labels;
mod snapshot;

pub use labels::Refusal;
use labels::{CallbackLabels, RefusalLabel, SinkLabel};
pub(crate) use labels::{CallbackOutcome, EventOutcome};
pub use snapshot::Snapshot;

/// Running totals since start, and latency histograms.
#[derive(Debug)]
pub struct Stats {
    callbacks: Family<CallbackLabels, Counter>,
    /// `callbacks`' series, by kind code and outcome, once first counted:
    /// the family's own lookup hashes its labels on every callback.
    callback_series: Box<[[OnceLock<Counter>; CallbackOutcome::ALL.len()]]>,
    /// Seconds from a request's arrival to its reply.
    pub(crate) ack_seconds: Histogram,
    /// The sink events were counted for (one per process).
    sink: OnceLock<&'static str>,
    published: Family<SinkLabel, Counter>,
    retried: Family<SinkLabel, Counter>,
    failed: Family<SinkLabel, Counter>,
    dead_lettered: Family<SinkLabel, Counter>,
    /// Seconds from handing an event to the broker client to its confirmation.
    pub(crate) publish_seconds: Histogram,
    /// 1 while the broker confirms deliveries, 0 after a retryable error
    /// until the sink has recovered.
    pub(crate) broker_up: Gauge,
    /// 1 once the broker accepted this replica (connected, authenticated,
    /// topics or exchanges checked); exported only: readiness reads
    /// [`Stats::accepted`].
    broker_accepted: Gauge,
    /// Whether the broker accepted this replica: `/readyz` is 503 until
    /// then. Set through [`crate::sink::refusal::accepted`] only.
    accepted: std::sync::atomic::AtomicBool,
    /// 1 for the reason the broker currently refuses this replica.
    broker_refused: Family<RefusalLabel, Gauge>,
    /// The current refusal: 0 none, else 1 + its index in [`Refusal::ALL`].
    refusal: AtomicU8,
    /// `fdatasync` calls of the spool writer (one per group commit).
    pub(crate) spool_syncs: Counter,
    /// Bytes of torn or corrupt records cut from the spool at startup.
    pub(crate) spool_torn_bytes: Counter,
    /// Bytes of damaged records (checksum mismatch, impossible length)
    /// skipped by the spool's reader while running.
    pub(crate) spool_skipped_bytes: Counter,
    /// Reads of the spool that failed with an I/O error (retried).
    pub(crate) spool_read_errors: Counter,
    /// 1 while reading the spool fails (the publisher is stalled and
    /// retries), else 0.
    pub(crate) spool_read_failing: Gauge,
    /// Events acked in `memory` mode that the disk refused and the broker
    /// had not confirmed when the bridge stopped.
    pub(crate) spool_lost_records: Counter,
    /// Lines in the spool directory's dead-letter files (rotated ones
    /// included): events a broker refused for good, to be replayed.
    pub(crate) dead_letter_events: Gauge,
    /// Bytes the spool's files hold.
    pub(crate) spool_bytes: Gauge<u64, AtomicU64>,
    /// Events in the spool not yet confirmed by the broker (or dead-lettered).
    pub(crate) spool_records: Gauge,
    /// Connections closed because request headers did not arrive in time
    /// (slow or stalled clients).
    pub(crate) header_timeouts: Counter,
    /// 1 from the first SIGTERM on: `/readyz` answers 503 while the bridge
    /// still serves (`shutdown.ready_delay_ms`), then it stops.
    pub(crate) shutting_down: Gauge,
    registry: Registry,
}

impl Default for Stats {
    fn default() -> Self {
        // 100 us .. ~3.3 s by powers of 2: acks are sub-millisecond, publish
        // confirmations up to seconds during broker trouble.
        let buckets = || exponential_buckets(0.0001, 2.0, 16);
        let stats = Self {
            callbacks: Family::default(),
            callback_series: (0..=u8::MAX).map(|_| Default::default()).collect(),
            ack_seconds: Histogram::new(buckets()),
            sink: OnceLock::new(),
            published: Family::default(),
            retried: Family::default(),
            failed: Family::default(),
            dead_lettered: Family::default(),
            publish_seconds: Histogram::new(buckets()),
            broker_up: Gauge::default(),
            broker_accepted: Gauge::default(),
            accepted: std::sync::atomic::AtomicBool::new(false),
            broker_refused: Family::default(),
            refusal: AtomicU8::new(0),
            spool_syncs: Counter::default(),
            spool_torn_bytes: Counter::default(),
            spool_skipped_bytes: Counter::default(),
            spool_read_errors: Counter::default(),
            spool_read_failing: Gauge::default(),
            spool_lost_records: Counter::default(),
            dead_letter_events: Gauge::default(),
            spool_bytes: Gauge::default(),
            spool_records: Gauge::default(),
            header_timeouts: Counter::default(),
            shutting_down: Gauge::default(),
            registry: Registry::with_prefix("openim_bridge"),
        };
        stats.broker_up.set(1);
        stats.register()
    }
}

impl Stats {
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "callbacks",
            "OpenIM callbacks answered, by command and outcome",
            self.callbacks.clone(),
        );
        r.register(
            "ack_duration_seconds",
            "Time from a callback's arrival to its reply",
            self.ack_seconds.clone(),
        );
        r.register(
            "events_published",
            "Events the broker confirmed",
            self.published.clone(),
        );
        r.register(
            "events_retried",
            "Events sent again after a retryable broker error",
            self.retried.clone(),
        );
        r.register(
            "events_failed",
            "Delivery attempts that failed with a retryable broker error",
            self.failed.clone(),
        );
        r.register(
            "events_dead_lettered",
            "Events the broker refused for good, written to the dead-letter file",
            self.dead_lettered.clone(),
        );
        r.register(
            "publish_duration_seconds",
            "Time from handing an event to the broker client to its confirmation",
            self.publish_seconds.clone(),
        );
        r.register(
            "broker_up",
            "1 while the broker confirms deliveries, 0 while it fails",
            self.broker_up.clone(),
        );
        r.register(
            "broker_accepted",
            "1 once the broker accepted this replica; /readyz answers 503 until then",
            self.broker_accepted.clone(),
        );
        r.register(
            "broker_refused",
            "1 while the broker refuses this replica for this reason (a setting must change: authentication, certificate, tls_mismatch)",
            self.broker_refused.clone(),
        );
        openim_otel::register_metrics(r);
        r.register(
            "spool_syncs",
            "fdatasync calls of the spool (one per group commit)",
            self.spool_syncs.clone(),
        );
        r.register(
            "spool_torn",
            "Bytes of torn records cut from the spool at startup",
            self.spool_torn_bytes.clone(),
        );
        r.register(
            "spool_skipped",
            "Bytes of damaged records skipped by the spool's reader (checksum mismatch); each skip is logged with its byte range",
            self.spool_skipped_bytes.clone(),
        );
        r.register(
            "spool_read_errors",
            "Reads of the spool that failed with an I/O error and are retried",
            self.spool_read_errors.clone(),
        );
        r.register(
            "spool_read_failing",
            "1 while reading the spool fails and the publisher waits to retry",
            self.spool_read_failing.clone(),
        );
        r.register(
            "dead_letter_events",
            "Lines in the spool directory's dead-letter files (rotated ones included): replay them with `openim-bridge replay`",
            self.dead_letter_events.clone(),
        );
        r.register(
            "spool_lost_records",
            "Events acked in memory mode that the disk refused and the broker had not confirmed at shutdown",
            self.spool_lost_records.clone(),
        );
        r.register(
            "spool_records",
            "Events in the spool not yet confirmed by the broker",
            self.spool_records.clone(),
        );
        r.register(
            "header_timeouts",
            "Connections closed because request headers did not arrive within http.header_read_timeout_ms",
            self.header_timeouts.clone(),
        );
        r.register(
            "shutting_down",
            "1 once SIGTERM arrived: not ready, still serving for shutdown.ready_delay_ms",
            self.shutting_down.clone(),
        );
        r.register(
            "spool_size_bytes",
            "Bytes held by the spool's files",
            self.spool_bytes.clone(),
        );
        self
    }

    /// Records that the broker accepted this replica (the state
    /// `/readyz` and shutdown read, and its gauge).
    pub(crate) fn set_accepted(&self) {
        self.accepted.store(true, Ordering::Release);
        self.broker_accepted.set(1);
    }

    /// Whether the broker has accepted this replica since it started.
    pub fn accepted(&self) -> bool {
        self.accepted.load(Ordering::Acquire)
    }

    /// Records the reason the broker refuses this replica (`None`: it
    /// does not). Returns whether that changed.
    pub(crate) fn set_refusal(&self, refusal: Option<Refusal>) -> bool {
        let code = refusal.map_or(0, |refusal| {
            1 + Refusal::ALL.iter().position(|r| *r == refusal).unwrap_or(0) as u8
        });
        let before = self.refusal.swap(code, Ordering::Relaxed);
        for reason in Refusal::ALL {
            let on = refusal == Some(reason);
            self.broker_refused
                .get_or_create(&RefusalLabel { reason })
                .set(i64::from(on));
        }
        before != code
    }

    /// The reason the broker currently refuses this replica, if it does.
    pub fn refusal(&self) -> Option<Refusal> {
        let code = self.refusal.load(Ordering::Relaxed);
        Refusal::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    /// Creates every series the bridge can report for `sink`, at zero, so a
    /// scrape shows them (and rates start at 0) before the first callback
    /// ([`crate::App::start`] does this for the configured sink).
    pub fn init_series(&self, sink: &'static str) {
        // Includes `unknown` (the unknown kind's command).
        for command in CallbackKind::all().map(CallbackKind::command) {
            for outcome in CallbackOutcome::ALL {
                self.callbacks
                    .get_or_create(&CallbackLabels { command, outcome })
                    .inc_by(0);
            }
        }
        self.set_refusal(None);
        for delivery in [
            EventOutcome::Published,
            EventOutcome::Retried,
            EventOutcome::Failed,
            EventOutcome::DeadLettered,
        ] {
            self.events(sink, delivery, 0);
        }
    }

    /// Counts one callback answered, by the kind of its command (`None`:
    /// none the bridge knows, or none could be read: `unknown`).
    pub(crate) fn callback(&self, kind: Option<CallbackKind>, outcome: CallbackOutcome) {
        let kind = kind.unwrap_or(CallbackKind::UNKNOWN);
        let series = &self.callback_series[usize::from(kind.code())][outcome.index()];
        series
            .get_or_init(|| {
                let command = kind.command();
                self.callbacks
                    .get_or_create(&CallbackLabels { command, outcome })
                    .clone()
            })
            .inc();
    }

    /// Counts `n` events of `sink` with this delivery outcome.
    pub(crate) fn events(&self, sink: &'static str, outcome: EventOutcome, n: u64) {
        let family = match outcome {
            EventOutcome::Published => &self.published,
            EventOutcome::Retried => &self.retried,
            EventOutcome::Failed => &self.failed,
            EventOutcome::DeadLettered => &self.dead_lettered,
        };
        self.sink.get_or_init(|| sink);
        family.get_or_create(&SinkLabel { sink }).inc_by(n);
    }

    /// The metrics in the Prometheus / OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests;
