//! openim-sync: the reference consumer of openim-bridge's events. It keeps
//! a chat archive in PostgreSQL that a user can query:
//!
//! * `openim.events`: every event, raw (`data` as `jsonb`), primary key
//!   (`source`, `id`): the inbox that makes a redelivery harmless;
//! * `openim.messages`: group, 1:1 and notification messages, with the
//!   `seq` the saved-message callback gives and `revoked_at`;
//! * `openim.revokes`: revokes by (conversation, seq), applied to their
//!   message as soon as both are known;
//! * `openim.read_receipts`.
//!
//! A batch of events is one transaction ([`apply`]); the Kafka offsets are
//! committed, or the AMQP deliveries acked, only after it committed
//! ([`source`]). Replicas share the work: one Kafka consumer group, or
//! competing consumers of one RabbitMQ queue.

#![warn(missing_docs)]

pub mod apply;
pub mod http;
pub mod schema;
pub mod settings;
pub mod source;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_postgres::{Client, NoTls};
use tracing::{info, warn, Instrument};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::apply::Statements;
use crate::http::Metrics;
use crate::settings::Settings;
use crate::source::Source;

/// Longest wait between two tries of something that failed.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs until `shutdown` resolves: the batch under way is applied and
/// acknowledged first (or, if PostgreSQL is down, left unacknowledged: the
/// broker delivers it again).
pub async fn run(settings: Settings, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = http::describe(&listener) {
        info!("openim-sync probes on http://{addr}");
    }
    tokio::spawn(http::serve(listener, Arc::clone(&metrics)));
    let mut shutdown = std::pin::pin!(shutdown);
    let connected = async {
        let (client, statements) = retry("postgres", || connect_db(&settings)).await;
        let source = retry("source", || Source::connect(&settings)).await;
        (client, statements, source)
    };
    let (mut client, mut statements, mut source) = tokio::select! {
        connected = connected => connected,
        () = shutdown.as_mut() => return,
    };
    metrics.ready.store(true, Ordering::Release);
    let wait = Duration::from_millis(settings.batch.max_wait_ms);
    let mut last_held_check = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            next = source.next(settings.batch.max_events, wait) => next,
            () = shutdown.as_mut() => break,
        };
        let batch = match next {
            Ok(batch) => batch,
            Err(err) => {
                warn!(cause = %err, "the source failed; connecting again");
                metrics.ready.store(false, Ordering::Release);
                source = tokio::select! {
                    source = retry("source", || Source::connect(&settings)) => source,
                    () = shutdown.as_mut() => break,
                };
                metrics.ready.store(true, Ordering::Release);
                continue;
            }
        };
        metrics.undecodable.inc_by(batch.undecodable);
        let span = batch_span(&settings, &batch.events);
        // Applied, or tried again until it is (or the process stops: the
        // batch is not acknowledged and comes again).
        let mut delay = Duration::from_millis(100);
        loop {
            let applied = apply::apply(&mut client, &statements, &batch.events)
                .instrument(span.clone())
                .await;
            match applied {
                Ok(applied) => {
                    metrics.applied.inc_by(applied.applied);
                    metrics.duplicates.inc_by(applied.duplicates);
                    observe_lag(&metrics, &batch.events);
                    break;
                }
                Err(err) => {
                    metrics.failed_batches.inc();
                    span.in_scope(|| warn!(cause = %err, "the batch's transaction failed"));
                    warn!(cause = %err, events = batch.events.len(), "cannot apply the batch; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.as_mut() => return,
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                    if client.is_closed() {
                        metrics.ready.store(false, Ordering::Release);
                        (client, statements) = tokio::select! {
                            connected = retry("postgres", || connect_db(&settings)) => connected,
                            () = shutdown.as_mut() => return,
                        };
                        metrics.ready.store(true, Ordering::Release);
                    }
                }
            }
        }
        if let Err(err) = source.ack(batch).await {
            // Applied already: a redelivery is skipped by the inbox.
            warn!(cause = %err, "cannot acknowledge an applied batch; it may be delivered again");
        }
        if last_held_check.elapsed() >= Duration::from_secs(1) {
            if let Ok(held) = apply::held_revokes(&client, &statements).await {
                metrics.revokes_held.set(held);
            }
            last_held_check = tokio::time::Instant::now();
        }
    }
    info!("openim-sync stopped");
}

/// Connects to PostgreSQL, runs the migrations and prepares the statements.
async fn connect_db(settings: &Settings) -> Result<(Client, Statements), tokio_postgres::Error> {
    let (mut client, connection) = tokio_postgres::connect(&settings.postgres.url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            warn!(cause = %err, "postgres connection closed");
        }
    });
    schema::migrate(&mut client, &settings.postgres.schema).await?;
    let statements = Statements::prepare(&client, &settings.postgres.schema).await?;
    info!(schema = %settings.postgres.schema, "postgres connected");
    Ok((client, statements))
}

/// Tries `connect` until it succeeds, with backoff, logging each new cause.
async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut connect: impl FnMut() -> F,
) -> T {
    let mut delay = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        match connect().await {
            Ok(connected) => return connected,
            Err(err) => {
                let cause = err.to_string();
                if cause != last {
                    warn!(%cause, "cannot connect to {what}; retrying");
                    last = cause;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// The span of one batch's transaction (OpenTelemetry's consumer "process"
/// span), linked to the span each event was created in (its
/// `traceparent`): a batch joins many traces, so links, not a parent.
/// Disabled when tracing is off.
fn batch_span(settings: &Settings, events: &[openim_events::Event]) -> tracing::Span {
    if !openim_otel::enabled() || events.is_empty() {
        return tracing::Span::none();
    }
    let (system, destination) = match settings.source.kind {
        settings::SourceKind::Kafka => ("kafka", settings.kafka.topics.join(",")),
        settings::SourceKind::Rabbitmq => ("rabbitmq", settings.rabbitmq.queue.clone()),
    };
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {destination}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = destination.as_str(),
        messaging.batch.message_count = events.len() as i64,
        db.system.name = "postgresql",
        db.namespace = settings.postgres.schema.as_str(),
    );
    for context in events.iter().filter_map(openim_events::Event::span_context) {
        span.add_link(context);
    }
    span
}

/// Records each event's lag: now (the commit) minus the bridge's ack.
fn observe_lag(metrics: &Metrics, events: &[openim_events::Event]) {
    let now = OffsetDateTime::now_utc();
    for event in events {
        if let Some(at) = event
            .data
            .received_at()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
        {
            metrics
                .lag_seconds
                .observe((now - at).as_seconds_f64().max(0.0));
        }
    }
}
