//! Where events come from: a Kafka consumer group or a RabbitMQ queue.
//! Both hand out batches and take them back once applied: the Kafka
//! offsets are committed, or the AMQP deliveries acked, only after the
//! batch's transaction committed.

mod kafka;
mod rabbitmq;

use std::time::Duration;

use openim_events::Event;

pub use kafka::KafkaSource;
pub use rabbitmq::RabbitSource;

use crate::settings::{Settings, SourceKind};

/// The source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Kafka refused the consumer (its settings) or the subscription.
    #[error("kafka: {0} (check kafka.brokers, kafka.topics, kafka.group_id and kafka.options)")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// RabbitMQ: connecting, declaring or consuming failed.
    #[error("rabbitmq: {0} (check rabbitmq.url, rabbitmq.exchange and rabbitmq.queue)")]
    Rabbit(#[from] lapin::Error),
}

/// A batch of events and what must be acknowledged once it is applied.
pub struct Batch {
    /// The events, in the order they were received.
    pub events: Vec<Event>,
    /// Records that were not events of the bridge's (logged, counted, and
    /// acknowledged with the batch so they never block the queue).
    pub undecodable: u64,
    ack: Ack,
}

enum Ack {
    Kafka(rdkafka::TopicPartitionList),
    Rabbit(Option<u64>),
}

/// The configured source (one per process: the variants' sizes do not
/// matter).
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// Kafka.
    Kafka(KafkaSource),
    /// RabbitMQ.
    Rabbit(RabbitSource),
}

impl Source {
    /// Connects to the broker `settings.source.kind` names.
    pub async fn connect(settings: &Settings) -> Result<Self, SourceError> {
        Ok(match settings.source.kind {
            SourceKind::Kafka => Source::Kafka(KafkaSource::connect(&settings.kafka)?),
            SourceKind::Rabbitmq => {
                Source::Rabbit(RabbitSource::connect(&settings.rabbitmq).await?)
            }
        })
    }

    /// The next batch: waits for a first event, then takes what arrives
    /// within `wait`, up to `max` events.
    pub async fn next(&mut self, max: usize, wait: Duration) -> Result<Batch, SourceError> {
        match self {
            Source::Kafka(source) => source.next(max, wait).await,
            Source::Rabbit(source) => source.next(max, wait).await,
        }
    }

    /// Acknowledges `batch` to the broker (it was applied).
    pub async fn ack(&mut self, batch: Batch) -> Result<(), SourceError> {
        match (self, batch.ack) {
            (Source::Kafka(source), Ack::Kafka(offsets)) => source.commit(&offsets),
            (Source::Rabbit(source), Ack::Rabbit(Some(tag))) => source.ack(tag).await,
            _ => Ok(()),
        }
    }
}

/// Logs a record that is not an event of the bridge's.
fn undecodable(where_: &str, err: &openim_events::DecodeError) {
    tracing::warn!(at = where_, cause = %err, "skipping a record that is not an openim-bridge event");
}
