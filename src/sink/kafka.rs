//! Kafka sink: librdkafka's idempotent producer, `acks=all`, CloudEvents
//! Kafka binding in binary mode.
//!
//! A record is: key = the event key (group ID, or the single-chat
//! conversation ID), value = the JSON `data`, headers `ce_specversion`,
//! `ce_id`, `ce_source`, `ce_type`, `ce_time`, `ce_subject` and
//! `content-type: application/json`.
//!
//! librdkafka batches, compresses, reconnects and retries by itself; with the
//! default `kafka.message_timeout_ms = 0` it never gives up on a record, so a
//! broker outage only fills the bounded queue. Every delivery report is read:
//! a record refused for good is reported as [`SinkError::Rejected`].

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tracing::{info, warn};

use super::{Delivery, Sink, SinkError};
use crate::config::KafkaSettings;
use crate::normalize::event::{Event, DATA_CONTENT_TYPE};

/// How long startup waits for the broker to describe the topic.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `close` waits for librdkafka to hand over what it still holds.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaStartError {
    /// librdkafka refused the producer configuration.
    #[error("kafka producer configuration rejected by librdkafka: {0} (check kafka.options)")]
    Config(KafkaError),
    /// The broker answered, and the topic is not there.
    #[error("kafka topic `{topic}` does not exist on {brokers} and the broker did not create it: create it (e.g. `kafka-topics.sh --create --topic {topic} --partitions 6`) or set kafka.topic")]
    MissingTopic {
        /// `kafka.topic`.
        topic: String,
        /// `kafka.brokers`.
        brokers: String,
    },
}

/// Publishes events to one Kafka topic.
pub struct KafkaSink {
    producer: FutureProducer,
    settings: KafkaSettings,
}

impl KafkaSink {
    /// Builds the producer and checks the topic. An unreachable broker is not
    /// an error (events wait in the queue); a missing topic is.
    pub async fn start(settings: &KafkaSettings) -> Result<Self, KafkaStartError> {
        let producer = producer(settings).map_err(KafkaStartError::Config)?;
        let check = producer.clone();
        let topic = settings.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            check
                .client()
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
        })
        .await
        .ok();
        match metadata {
            Some(Ok(metadata)) => {
                let found = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == settings.topic)
                    .filter(|t| t.error().is_none() && !t.partitions().is_empty());
                match found {
                    Some(t) => {
                        info!(topic = %settings.topic, partitions = t.partitions().len(), "kafka topic found")
                    }
                    None => {
                        return Err(KafkaStartError::MissingTopic {
                            topic: settings.topic.clone(),
                            brokers: settings.brokers.clone(),
                        })
                    }
                }
            }
            Some(Err(err)) => {
                warn!(brokers = %settings.brokers, cause = %err, "kafka is not reachable yet; events are queued until it is")
            }
            None => warn!("kafka metadata check did not complete"),
        }
        Ok(Self {
            producer,
            settings: settings.clone(),
        })
    }
}

/// librdkafka settings: ours first, then `kafka.options` (validated not to
/// weaken idempotence or acks).
fn producer(settings: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "openim-bridge")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        // Same key -> same partition as the Java client, so other producers
        // of the same keys agree with us.
        .set("partitioner", "murmur2_random");
    for (key, value) in &settings.options {
        config.set(key, value);
    }
    config.create()
}

/// Whether librdkafka gave up on a record for a reason that retrying will
/// not fix.
fn is_permanent(err: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        err.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::MessageBatchTooLarge
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic
                | C::InvalidRequiredAcks
        )
    )
}

fn classify(err: KafkaError) -> SinkError {
    if is_permanent(&err) {
        SinkError::Rejected(format!("kafka refused the record: {err}"))
    } else {
        SinkError::Retryable(format!("kafka delivery failed: {err}"))
    }
}

fn headers(event: &Event) -> OwnedHeaders {
    let headers =
        event
            .attributes()
            .into_iter()
            .fold(OwnedHeaders::new(), |headers, (name, value)| {
                headers.insert(Header {
                    key: &format!("ce_{name}"),
                    value: Some(value),
                })
            });
    headers.insert(Header {
        key: "content-type",
        value: Some(DATA_CONTENT_TYPE),
    })
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let mut record = FutureRecord::to(&self.settings.topic)
            .key(event.key.as_bytes())
            .payload(event.data.as_ref())
            .headers(headers(event));
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    return Ok(Box::pin(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((err, _message))) => Err(classify(err)),
                            Err(_canceled) => {
                                Err(SinkError::Retryable("kafka producer was closed".to_owned()))
                            }
                        }
                    }))
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's own buffer is full: wait for it to drain.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => return Err(classify(err)),
            }
        }
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        // librdkafka reconnects by itself; only a fatal error (e.g. the
        // idempotent producer was fenced) needs a new producer.
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            warn!(?code, %reason, "kafka producer hit a fatal error; creating a new one");
            self.producer =
                producer(&self.settings).map_err(|err| SinkError::Retryable(err.to_string()))?;
        }
        Ok(())
    }

    async fn close(self) {
        let producer = self.producer;
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(CLOSE_FLUSH_TIMEOUT)).await;
        if let Ok(Err(err)) = flushed {
            warn!(cause = %err, "kafka producer did not flush before shutdown");
        }
    }
}
