//! The configured sink, built from the settings alone: the bridge, `replay`
//! and `drain` publish through exactly this (the same keys, headers,
//! confirms and error classes).
//!
//! Readiness: once any sink has started (its broker answered and accepted
//! this replica), it is marked accepted here, so a sink cannot forget to
//! and leave `/readyz` at 503. Sinks report later refusals and recoveries
//! through [`crate::sink::refusal`].

use std::sync::Arc;

use crate::normalize::Event;
use crate::settings::{SinkKind, Validated};
use crate::sink::kafka::{KafkaSink, KafkaStartError};
use crate::sink::rabbitmq::{RabbitMqSink, RabbitMqStartError};
use crate::sink::stdout::StdoutSink;
use crate::sink::{refusal, Delivery, Sink, SinkError};
use crate::stats::Stats;

/// A sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkStartError {
    /// The Kafka sink could not start.
    #[error(transparent)]
    Kafka(#[from] KafkaStartError),
    /// The RabbitMQ sink could not start.
    #[error(transparent)]
    RabbitMq(#[from] RabbitMqStartError),
}

/// The sink `sink.kind` names. One per process, so the variants' sizes
/// do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySink {
    /// Standard output.
    Stdout(StdoutSink),
    /// Kafka.
    Kafka(KafkaSink),
    /// RabbitMQ.
    RabbitMq(RabbitMqSink),
}

/// Starts the sink `settings.sink.kind` names, waiting until its broker
/// answers (an unreachable one is waited for; one that refuses for good is
/// an error), and marks the replica accepted.
pub async fn start(settings: &Validated, stats: Arc<Stats>) -> Result<AnySink, SinkStartError> {
    let routes = Arc::clone(settings.routes());
    let sink = match settings.sink.kind {
        SinkKind::Stdout => AnySink::Stdout(StdoutSink::new()),
        SinkKind::Kafka => AnySink::Kafka(
            KafkaSink::start(
                &settings.kafka,
                routes,
                settings.http.max_body_bytes,
                Arc::clone(&stats),
            )
            .await?,
        ),
        SinkKind::Rabbitmq => AnySink::RabbitMq(
            RabbitMqSink::start(&settings.rabbitmq, routes, Arc::clone(&stats)).await?,
        ),
    };
    refusal::accepted(&stats, sink.name());
    Ok(sink)
}

impl Sink for AnySink {
    fn name(&self) -> &'static str {
        match self {
            Self::Stdout(sink) => sink.name(),
            Self::Kafka(sink) => sink.name(),
            Self::RabbitMq(sink) => sink.name(),
        }
    }

    fn destination(&self, event: &Event) -> &str {
        match self {
            Self::Stdout(sink) => sink.destination(event),
            Self::Kafka(sink) => sink.destination(event),
            Self::RabbitMq(sink) => sink.destination(event),
        }
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        match self {
            Self::Stdout(sink) => sink.send(event).await,
            Self::Kafka(sink) => sink.send(event).await,
            Self::RabbitMq(sink) => sink.send(event).await,
        }
    }

    async fn flush(&mut self) {
        match self {
            Self::Stdout(sink) => sink.flush().await,
            Self::Kafka(sink) => sink.flush().await,
            Self::RabbitMq(sink) => sink.flush().await,
        }
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        match self {
            Self::Stdout(sink) => sink.recover().await,
            Self::Kafka(sink) => sink.recover().await,
            Self::RabbitMq(sink) => sink.recover().await,
        }
    }

    async fn close(self) {
        match self {
            Self::Stdout(sink) => sink.close().await,
            Self::Kafka(sink) => sink.close().await,
            Self::RabbitMq(sink) => sink.close().await,
        }
    }
}
