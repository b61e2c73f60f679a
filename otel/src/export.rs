//! The span processor: finished spans go into a bounded queue without ever
//! waiting, and one thread exports them in batches. A full queue or a
//! failed export drops spans and counts them; nothing else is kept.
//!
//! The thread is not woken per span (a wake-up costs more than the span):
//! it wakes every [`BATCH_DELAY`], or when a batch's worth of spans has
//! been queued since it last looked, and takes everything queued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;

use crate::counters;

/// Spans sent to the collector in one request, at most; also how many
/// queued spans wake the export thread early.
const MAX_BATCH: usize = 512;

/// How long a span waits in the queue, at most, before its export starts.
const BATCH_DELAY: Duration = Duration::from_millis(500);

/// How long a flush waits for the collector, by default.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

enum Message {
    Span(Box<SpanData>),
    /// Export what was queued before it, then answer.
    Flush(SyncSender<()>),
}

/// Hands finished spans to the export thread (see the module doc).
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    queue: SyncSender<Message>,
    /// The export thread, to wake it.
    thread: Thread,
    /// Spans queued since the thread was last woken early.
    queued: AtomicUsize,
    /// How many queued spans wake it early: a batch, or half the queue.
    wake_at: usize,
}

impl QueueProcessor {
    /// Starts the export thread; `build` makes the exporter on it (tonic's
    /// channel needs the thread's runtime).
    pub(crate) fn start(
        capacity: usize,
        resource: Resource,
        build: impl FnOnce() -> Result<SpanExporter, String> + Send + 'static,
    ) -> Result<Self, String> {
        let (queue, spans) = mpsc::sync_channel(capacity);
        let (built_tx, built) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = built_tx.send(Err(format!("cannot start its runtime: {err}")));
                        return;
                    }
                };
                let exporter = {
                    let _entered = runtime.enter();
                    build()
                };
                let mut exporter = match exporter {
                    Ok(exporter) => exporter,
                    Err(err) => {
                        let _ = built_tx.send(Err(err));
                        return;
                    }
                };
                exporter.set_resource(&resource);
                let _ = built_tx.send(Ok(()));
                // Spans of the export itself (tonic, hyper) are never traced.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                export_loop(&runtime, &exporter, &spans);
                let _ = exporter.shutdown_with_timeout(Duration::from_secs(1));
            })
            .map_err(|err| format!("cannot start the export thread: {err}"))?
            .thread()
            .clone();
        match built.recv() {
            Ok(Ok(())) => Ok(Self {
                queue,
                thread,
                queued: AtomicUsize::new(0),
                wake_at: MAX_BATCH.min(capacity / 2).max(1),
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err("the export thread stopped while starting".to_owned()),
        }
    }

    fn flush_within(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let (done, flushed) = mpsc::sync_channel(1);
        let mut message = Message::Flush(done);
        // A full queue makes room as the thread exports; never wait past
        // the deadline for it.
        loop {
            self.thread.unpark();
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(OTelSdkError::AlreadyShutdown),
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return Err(OTelSdkError::Timeout(timeout)),
            }
        }
        self.thread.unpark();
        flushed
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

/// Sleeps until woken or [`BATCH_DELAY`] passed, exports everything queued
/// (in batches of [`MAX_BATCH`]), answers flushes; ends, once it exported
/// what was left, when every sender is gone.
fn export_loop(
    runtime: &tokio::runtime::Runtime,
    exporter: &SpanExporter,
    spans: &Receiver<Message>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        std::thread::park_timeout(BATCH_DELAY);
        let closed = loop {
            match spans.try_recv() {
                Ok(Message::Span(span)) => {
                    batch.push(*span);
                    if batch.len() == MAX_BATCH {
                        export(runtime, exporter, &mut batch);
                    }
                }
                Ok(Message::Flush(done)) => {
                    export(runtime, exporter, &mut batch);
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        export(runtime, exporter, &mut batch);
        if closed {
            return;
        }
    }
}

/// Exports `batch` (if any), counting its spans exported or dropped.
fn export(runtime: &tokio::runtime::Runtime, exporter: &SpanExporter, batch: &mut Vec<SpanData>) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    let sent = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    match runtime.block_on(exporter.export(sent)) {
        Ok(()) => {
            counters().exported.inc_by(count);
        }
        Err(err) => {
            counters().dropped.inc_by(count);
            counters().note_failure(&err.to_string());
        }
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.queue.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {
                // A batch's worth since the last early wake-up: wake the
                // thread now rather than let the queue fill.
                if self.queued.fetch_add(1, Ordering::Relaxed) + 1 >= self.wake_at {
                    self.queued.store(0, Ordering::Relaxed);
                    self.thread.unpark();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                counters().dropped.inc();
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush_within(FLUSH_TIMEOUT)
    }

    /// Exports what is queued, waiting at most `timeout`; the thread ends
    /// when the provider (holding the queue's sender) is dropped.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.flush_within(timeout)
    }
}
