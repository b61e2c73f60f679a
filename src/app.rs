//! Wires the stages together and owns shutdown.
//!
//! ```text
//! ingress::server -> ingress::Handler -> normalize -> queue -> sink::publisher -> Sink
//! ```
//!
//! Shutdown order: stop accepting, let open requests finish, then let the
//! publisher deliver everything already acked, all within
//! `shutdown.drain_timeout_ms`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::{Settings, SinkKind};
use crate::ingress::{server, Handler};
use crate::queue::{self, QueueReceiver, QueueSender};
use crate::sink::kafka::{KafkaSink, KafkaStartError};
use crate::sink::rabbitmq::{RabbitMqSink, RabbitMqStartError};
use crate::sink::stdout::StdoutSink;
use crate::sink::{publisher, Sink};
use crate::stats::Stats;

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka sink could not start.
    #[error(transparent)]
    Kafka(#[from] KafkaStartError),
    /// The RabbitMQ sink could not start.
    #[error(transparent)]
    RabbitMq(#[from] RabbitMqStartError),
}

/// A started bridge: sink connected, publisher running, not yet serving.
pub struct App {
    settings: Settings,
    listener: TcpListener,
    queue: QueueSender,
    stats: Arc<Stats>,
    publisher: JoinHandle<()>,
    stop_publisher: tokio::sync::oneshot::Sender<()>,
}

impl App {
    /// Starts the configured sink and its publisher. `listener` is already
    /// bound (tests bind port 0).
    pub async fn start(settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        let stats = Arc::new(Stats::default());
        let (queue, receiver) = queue::bounded(settings.queue.max_events, settings.queue.max_bytes);
        let (stop_publisher, stopped) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            // An error means the App was dropped: stop as well.
            let _ = stopped.await;
        };
        let publisher = match settings.sink.kind {
            SinkKind::Stdout => {
                spawn_publisher(StdoutSink::new(), receiver, &settings, &stats, stop)
            }
            SinkKind::Kafka => {
                let sink = KafkaSink::start(&settings.kafka).await?;
                spawn_publisher(sink, receiver, &settings, &stats, stop)
            }
            SinkKind::Rabbitmq => {
                let sink = RabbitMqSink::start(&settings.rabbitmq).await?;
                spawn_publisher(sink, receiver, &settings, &stats, stop)
            }
        };
        Ok(Self {
            settings,
            listener,
            queue,
            stats,
            publisher,
            stop_publisher,
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
            self.queue.clone(),
            &self.settings.event.source,
            self.settings.http.max_body_bytes,
            Arc::clone(&self.stats),
        );
        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            shutdown.await;
            let _ = fired_tx.send(tokio::time::Instant::now());
        };
        server::serve(self.listener, handler, &self.settings.http, shutdown, drain).await;
        let deadline = fired_rx
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now())
            + drain;
        let _ = self.stop_publisher.send(());
        let mut publisher = self.publisher;
        if tokio::time::timeout_at(deadline, &mut publisher)
            .await
            .is_err()
        {
            publisher.abort();
            error!(
                lost_events = self.queue.held(),
                "shutdown deadline passed before the broker confirmed every accepted event; these events are lost (raise shutdown.drain_timeout_ms)"
            );
        }
    }
}

/// Runs the publisher for `sink` on its own task.
fn spawn_publisher<S: Sink>(
    sink: S,
    queue: QueueReceiver,
    settings: &Settings,
    stats: &Arc<Stats>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(publisher::run(
        sink,
        queue,
        settings.sink.clone(),
        Arc::clone(stats),
        stop,
    ))
}
