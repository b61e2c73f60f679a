//! Wires the stages together and owns shutdown.
//!
//! ```text
//! ingress::server -> ingress::Handler -> normalize -> spool -> sink::publisher -> Sink
//! ```
//!
//! Shutdown order: stop accepting, let open requests finish (the spool's
//! writer stops when the last of them is done), then let the publisher
//! deliver everything spooled, all within `shutdown.drain_timeout_ms`. What
//! the broker has not confirmed by then stays in the spool for the next start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Settings, SinkKind};
use crate::ingress::tls::{self, TlsError};
use crate::ingress::{server, Handler};
use crate::sink::kafka::{KafkaSink, KafkaStartError};
use crate::sink::rabbitmq::{RabbitMqSink, RabbitMqStartError};
use crate::sink::stdout::StdoutSink;
use crate::sink::{publisher, Sink};
use crate::spool::dead_letter::DeadLetter;
use crate::spool::{self, OpenError, SpoolReader, SpoolWriter};
use crate::stats::Stats;
use tokio_rustls::TlsAcceptor;

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka sink could not start.
    #[error(transparent)]
    Kafka(#[from] KafkaStartError),
    /// The RabbitMQ sink could not start.
    #[error(transparent)]
    RabbitMq(#[from] RabbitMqStartError),
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] OpenError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A started bridge: sink connected, publisher running, not yet serving.
pub struct App {
    settings: Settings,
    listener: TcpListener,
    spool: SpoolWriter,
    tls: Option<TlsAcceptor>,
    stats: Arc<Stats>,
    publisher: JoinHandle<()>,
}

impl App {
    /// Opens the spool, starts the configured sink and its publisher.
    /// `listener` is already bound (tests bind port 0).
    pub async fn start(mut settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        settings.derive_defaults();
        let stats = Arc::new(Stats::default());
        let tls = match (&settings.http.tls_cert_file, &settings.http.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        stats.init_series(settings.sink.kind.name());
        let (spool, receiver) = spool::open(&settings.spool, Arc::clone(&stats))?;
        let publisher = match settings.sink.kind {
            SinkKind::Stdout => spawn_publisher(StdoutSink::new(), receiver, &settings, &stats),
            SinkKind::Kafka => {
                let sink = KafkaSink::start(&settings.kafka).await?;
                spawn_publisher(sink, receiver, &settings, &stats)
            }
            SinkKind::Rabbitmq => {
                let sink = RabbitMqSink::start(&settings.rabbitmq).await?;
                spawn_publisher(sink, receiver, &settings, &stats)
            }
        };
        Ok(Self {
            settings,
            listener,
            spool,
            tls,
            stats,
            publisher,
        })
    }

    /// Counters, shared with the running stages.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` resolves, then drains. Returns once every
    /// accepted event is confirmed by the broker, or the deadline passed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let drain = Duration::from_millis(self.settings.shutdown.drain_timeout_ms);
        if let Ok(addr) = self.listener.local_addr() {
            info!(sink = ?self.settings.sink.kind, "openim-bridge listening on http://{addr}");
        }
        let handler = Handler::new(
            self.spool,
            &self.settings.event.source,
            &self.settings.http,
            &self.settings.spool.dir,
            Arc::clone(&self.stats),
        );
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            shutdown.await;
            let _ = fired_tx.send(tokio::time::Instant::now());
        };
        server::serve(
            self.listener,
            handler,
            self.tls,
            Arc::clone(&self.stats),
            &self.settings.http,
            shutdown,
            drain,
        )
        .await;
        let deadline = fired_rx
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now())
            + drain;
        info!("draining the spool to the broker");
        let mut publisher = self.publisher;
        if tokio::time::timeout_at(deadline, &mut publisher)
            .await
            .is_err()
        {
            publisher.abort();
            warn!("shutdown deadline passed before the broker confirmed every spooled event; they stay in the spool and are published at the next start");
        }
    }
}

/// Runs the publisher for `sink` on its own task.
fn spawn_publisher<S: Sink>(
    sink: S,
    spool: SpoolReader,
    settings: &Settings,
    stats: &Arc<Stats>,
) -> JoinHandle<()> {
    let dead_letter = DeadLetter::new(&settings.spool.dir);
    tokio::spawn(publisher::run(
        sink,
        spool,
        dead_letter,
        settings.sink.clone(),
        Arc::clone(stats),
    ))
}
