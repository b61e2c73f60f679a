//! Wires the stages together and owns shutdown.
//!
//! ```text
//! ingress::server -> ingress::Handler -> normalize -> spool -> sink::publisher -> Sink
//! ```
//!
//! The listener serves from the first moment: the sink connects in the
//! background (callbacks wait in the spool meanwhile), so a replica restarted
//! during a broker outage acks at once. A sink that the broker refuses for
//! good (a missing topic, bad credentials) stops the bridge with that error.
//!
//! Shutdown order: stop accepting, let open requests finish (the spool's
//! writer stops when the last of them is done), then let the publisher
//! deliver everything spooled, all within `shutdown.drain_timeout_ms`. What
//! the broker has not confirmed by then stays in the spool for the next start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::broker::{self, SinkStartError};
use crate::ingress::{server, Handler};
use crate::settings::{SinkKind, Validated};
use crate::sink::dead_letter::DeadLetter;
use crate::sink::{publisher, refusal};
use crate::spool::{self, OpenError, SpoolReader, SpoolWriter};
use crate::stats::Stats;

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sink could not start.
    #[error(transparent)]
    Sink(#[from] SinkStartError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] OpenError),
}

/// A started bridge: spool open, sink connecting in the background, not
/// yet serving.
pub struct App {
    settings: Validated,
    listener: TcpListener,
    spool: SpoolWriter,
    stats: Arc<Stats>,
    publisher: JoinHandle<()>,
    /// Receives the error of a sink that could not start.
    sink_failed: oneshot::Receiver<StartError>,
}

impl App {
    /// Opens the spool and starts the configured sink and its publisher in
    /// the background. `listener` is already bound (tests bind port 0).
    /// Takes [`Validated`] settings ([`Settings::validate`](crate::Settings::validate)),
    /// so every key was checked and every file they name was read.
    pub async fn start(settings: Validated, listener: TcpListener) -> Result<Self, StartError> {
        let stats = Arc::new(Stats::default());
        stats.init_series(settings.sink.kind.word());
        let (spool, receiver) = spool::open_async(&settings.spool, Arc::clone(&stats)).await?;
        if settings.sink.kind == SinkKind::Stdout {
            // No broker to wait for: ready as soon as the listener serves,
            // not when the publisher's task first runs.
            refusal::accepted(&stats, "stdout");
        }
        let (failed_tx, sink_failed) = oneshot::channel();
        let publisher = tokio::spawn(publish(
            settings.clone(),
            receiver,
            Arc::clone(&stats),
            failed_tx,
        ));
        Ok(Self {
            settings,
            listener,
            spool,
            stats,
            publisher,
            sink_failed,
        })
    }

    /// Counters, shared with the running stages.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` resolves, then drains. Returns once every
    /// accepted event is confirmed by the broker, or the deadline passed;
    /// or, after a graceful stop, with the error of a sink that could not
    /// start (what was acked meanwhile stays in the spool).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let drain = Duration::from_millis(self.settings.shutdown.drain_timeout_ms);
        if let Ok(addr) = self.listener.local_addr() {
            info!(sink = ?self.settings.sink.kind, "openim-bridge listening on http://{addr}");
        }
        let writer_stopped = self.spool.stopped();
        let handler = Handler::new(
            self.spool,
            &self.settings.event.source,
            &self.settings.http,
            &self.settings.spool.dir,
            Arc::clone(&self.stats),
            Arc::clone(self.settings.routes()),
            self.settings.filter().clone(),
            self.settings.allow_ips().to_vec(),
        );
        let (fired_tx, fired_rx) = oneshot::channel();
        let sink_failed = self.sink_failed;
        let shutdown = async move {
            // A sink that ends without an error has nothing to report: keep
            // waiting for the signal.
            let failure = tokio::select! {
                () = shutdown => None,
                Ok(err) = sink_failed => Some(err),
            };
            let _ = fired_tx.send((tokio::time::Instant::now(), failure));
        };
        server::serve(
            self.listener,
            handler,
            self.settings.tls().cloned(),
            Arc::clone(&self.stats),
            &self.settings.http,
            shutdown,
            drain,
        )
        .await;
        let (fired, failure) = fired_rx
            .await
            .unwrap_or_else(|_| (tokio::time::Instant::now(), None));
        let deadline = fired + drain;
        // In `memory` mode acked events may still be queued for the disk:
        // they are written before anything else ends (also when the sink
        // could not start: they wait in the spool for the next start).
        if tokio::time::timeout_at(deadline, writer_stopped)
            .await
            .is_err()
        {
            error!("shutdown deadline passed before the spool's writer finished; events still queued for the disk are lost (spool.ack = \"memory\") or were never acked (\"durable\")");
        }
        if let Some(err) = failure {
            return Err(err);
        }
        let mut publisher = self.publisher;
        // A broker that refuses this replica and never accepted it (a wrong
        // secret) will not take the spool in the drain time either: stop
        // now, what was acked stays in the spool. (One that is merely slow
        // or down is waited for, up to the deadline.)
        if !self.stats.accepted() && self.stats.refusal().is_some() {
            publisher.abort();
            warn!("the broker refuses this replica and never accepted it; acked callbacks stay in the spool and are published at the next start");
            return Ok(());
        }
        info!("draining the spool to the broker");
        if tokio::time::timeout_at(deadline, &mut publisher)
            .await
            .is_err()
        {
            publisher.abort();
            warn!("shutdown deadline passed before the broker confirmed every spooled event; they stay in the spool and are published at the next start");
        }
        Ok(())
    }
}

/// Starts the configured sink, then publishes the spool to it until the
/// spool closes. A sink that cannot start is reported on `failed`.
async fn publish(
    settings: Validated,
    spool: SpoolReader,
    stats: Arc<Stats>,
    failed: oneshot::Sender<StartError>,
) {
    match broker::start(&settings, Arc::clone(&stats)).await {
        Ok(sink) => {
            let dead_letter = DeadLetter::open(
                &settings.spool.dir,
                settings.spool.dead_letter_max_bytes,
                Arc::clone(&stats),
            )
            .await;
            publisher::run(sink, spool, dead_letter, settings.sink.clone(), stats).await;
        }
        Err(err) => {
            let _ = failed.send(err.into());
        }
    }
}
