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

use std::sync::Arc;
use std::time::Duration;

mod client;
pub mod config;
mod context;
mod security;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tracing::{info, warn};

use self::client::{create_topics, message_max_bytes, producer, topic_message_limit, OffRuntime};
use self::context::BridgeContext;
use super::{refusal, Delivery, Destination, Problem, RejectClass, Rejection, Sink, SinkError};
use crate::backoff::Backoff;
use crate::normalize::event::{Event, DATA_CONTENT_TYPE};
use crate::routing::Routes;
use crate::stats::Stats;
use config::KafkaSettings;

/// The producer, with our context (errors, logs, OAUTHBEARER tokens).
type BridgeProducer = FutureProducer<BridgeContext>;

/// How long startup waits for the broker to describe the topic.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait between two metadata requests while the broker is not reachable
/// at startup (each request itself waits up to [`METADATA_TIMEOUT`]).
const START_RETRY: Duration = Duration::from_secs(1);

/// librdkafka's default `message.max.bytes`, used when the topics' own
/// limit cannot be read.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// How long `close` waits for librdkafka to hand over what it still holds.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaStartError {
    /// librdkafka refused the producer configuration.
    #[error("kafka producer configuration rejected by librdkafka: {0} (check kafka.options and the kafka.security_protocol, kafka.sasl_* and kafka.ssl_* keys)")]
    Config(#[source] KafkaError),
    /// The broker answered, and a routed topic is not there.
    #[error("kafka topic `{topic}` does not exist on {brokers}: create it (e.g. `kafka-topics.sh --create --topic {topic} --partitions 6`), set kafka.create_topics = true, or route to another topic (kafka.topic, [[routes]])")]
    MissingTopic {
        /// The first missing topic.
        topic: String,
        /// `kafka.brokers`.
        brokers: String,
    },
    /// `kafka.create_topics` is on and creating a topic failed.
    #[error("creating kafka topic `{topic}` failed: {cause} (check kafka.topic_partitions, kafka.topic_replication_factor and the broker's ACLs)")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// What the broker (or librdkafka) said.
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Publishes events to the Kafka topic their route names.
pub struct KafkaSink {
    producer: OffRuntime<BridgeProducer>,
    settings: KafkaSettings,
    stats: Arc<Stats>,
    routes: Arc<Routes>,
    /// The topics' `max.message.bytes`, if the broker told.
    topic_limit: Option<usize>,
}

impl KafkaSink {
    /// Builds the producer, waits until the broker answers, and checks that
    /// every routed topic exists, creating missing ones when
    /// `kafka.create_topics` is on. An unreachable broker is waited for
    /// (events wait in the spool); a missing topic is an error.
    ///
    /// Then reads the topics' `max.message.bytes` and sizes the producer's
    /// batches to it, so a batch never exceeds what the topic takes (the
    /// broker refuses a whole batch that does: events that fit alone would
    /// be dead-lettered). An event larger than the limit is refused by the
    /// producer itself and dead-lettered; `max_event_bytes` (the largest
    /// callback accepted) above the limit is warned about.
    ///
    /// A broker that refuses the credentials or the certificate is waited
    /// for like an unreachable one, with one log line naming the setting to
    /// fix (see [`refusal`]); once the metadata arrived, the broker has
    /// accepted this replica.
    pub async fn start(
        settings: &KafkaSettings,
        routes: Arc<Routes>,
        max_event_bytes: usize,
        stats: Arc<Stats>,
    ) -> Result<Self, KafkaStartError> {
        let mut producer = OffRuntime::new(
            producer(settings, None, &stats)
                .await
                .map_err(KafkaStartError::Config)?,
        );
        // The bridge already serves (callbacks wait in the spool), so wait
        // for the broker to answer: the topics are checked, and created,
        // even when Kafka comes up after the bridge.
        let mut warned = false;
        let mut backoff = Backoff::new(START_RETRY, START_RETRY);
        let metadata = loop {
            let check = (*producer).clone();
            let fetched = tokio::task::spawn_blocking(move || {
                check.client().fetch_metadata(None, METADATA_TIMEOUT)
            })
            .await;
            match fetched {
                Ok(Ok(metadata)) => break metadata,
                // A refusal was logged by the context with what to fix.
                Ok(Err(err)) if !warned && stats.refusal().is_none() => {
                    warn!(brokers = %settings.brokers, cause = %err, "kafka is not reachable yet; callbacks are acked and wait in the spool until it is");
                    warned = true;
                }
                _ => {}
            }
            tokio::time::sleep(backoff.next_delay()).await;
        };
        let exists = |topic: &str| {
            metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        };
        let missing: Vec<String> = routes
            .kafka_topics()
            .iter()
            .filter(|topic| !exists(topic))
            .map(|topic| topic.to_string())
            .collect();
        if !missing.is_empty() {
            if !settings.create_topics {
                return Err(KafkaStartError::MissingTopic {
                    topic: missing.join("`, `"),
                    brokers: settings.brokers.clone(),
                });
            }
            create_topics(settings, &missing, &stats).await?;
        }
        info!(topics = ?routes.kafka_topics(), "kafka topics found");
        refusal::accepted(&stats, "kafka");
        let topic_limit = topic_message_limit(settings, &routes.kafka_topics(), &stats).await;
        if topic_limit.is_some() {
            let sized = self::producer(settings, topic_limit, &stats)
                .await
                .map_err(KafkaStartError::Config)?;
            producer.replace(sized);
        }
        let limit = message_max_bytes(settings, topic_limit);
        if max_event_bytes > limit {
            warn!(
                http_max_body_bytes = max_event_bytes,
                kafka_message_max_bytes = limit,
                "callbacks larger than kafka_message_max_bytes are acked and then dead-lettered: raise the topics' max.message.bytes (and kafka.options.\"message.max.bytes\") or lower http.max_body_bytes"
            );
        }
        Ok(Self {
            producer,
            settings: settings.clone(),
            stats,
            routes,
            topic_limit,
        })
    }
}

/// Whether librdkafka gave up on a record for a reason in the record
/// itself, that no retry and no operator fix of the cluster will change.
///
/// Not here, on purpose: authorization failures (`TopicAuthorizationFailed`,
/// `ClusterAuthorizationFailed`) are an ACL an operator can fix, so events
/// wait in the spool instead of going to the dead-letter file; and a topic
/// that does not exist is waited for the same way.
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
                | C::InvalidRequiredAcks
        )
    )
}

fn classify(err: KafkaError, topic: &str) -> SinkError {
    use RDKafkaErrorCode as C;
    if is_permanent(&err) {
        let code = err.rdkafka_error_code();
        let class = match code {
            Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize) => {
                RejectClass::TooLarge
            }
            _ => RejectClass::Rejected,
        };
        return SinkError::from(Rejection {
            class,
            code: code.map(|code| format!("{code:?}")),
            destination: Destination::topic(topic),
            problem: Problem::caused_by("kafka refused the record", err),
        });
    }
    match err.rdkafka_error_code() {
        Some(C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed) => {
            let fix = "grant this client Write on the topic (and IdempotentWrite on the cluster): events wait in the spool until then";
            SinkError::Retryable(Problem::caused_by("kafka refused the record", err).with_hint(fix))
        }
        _ => SinkError::Retryable(Problem::caused_by("kafka delivery failed", err)),
    }
}

fn headers(event: &Event) -> OwnedHeaders {
    // At most 8 attributes and the content type: the header list is not
    // grown while filled (`new()` makes room for 5).
    let headers = event.attributes().fold(
        OwnedHeaders::new_with_capacity(9),
        |headers, (attribute, value)| {
            headers.insert(Header {
                key: attribute.kafka_header,
                value: Some(value),
            })
        },
    );
    headers.insert(Header {
        key: "content-type",
        value: Some(DATA_CONTENT_TYPE),
    })
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn destination(&self, event: &Event) -> &str {
        &self.routes.route(event.kind).kafka_topic
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let topic = Arc::clone(&self.routes.route(event.kind).kafka_topic);
        let mut record = FutureRecord::to(&topic)
            .key(event.key.as_bytes())
            .payload(event.data.as_ref())
            .headers(headers(event));
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    return Ok(Box::pin(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((err, _message))) => Err(classify(err, &topic)),
                            Err(_canceled) => {
                                Err(SinkError::Retryable("kafka producer was closed".into()))
                            }
                        }
                    }))
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's own buffer is full: wait for it to drain.
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => return Err(classify(err, &topic)),
            }
        }
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        // librdkafka reconnects by itself; only a fatal error (e.g. the
        // idempotent producer was fenced) needs a new producer.
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            warn!(?code, %reason, "kafka producer hit a fatal error; creating a new one");
            let fresh = producer(&self.settings, self.topic_limit, &self.stats)
                .await
                .map_err(|err| SinkError::Retryable(Problem::caused_by("", err)))?;
            self.producer.replace(fresh);
        }
        Ok(())
    }

    async fn close(self) {
        // The clone is flushed and dropped on the blocking pool; `self`'s
        // own handle goes there too (OffRuntime).
        let producer = (*self.producer).clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(CLOSE_FLUSH_TIMEOUT)).await;
        if let Ok(Err(err)) = flushed {
            warn!(cause = %err, "kafka producer did not flush before shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_failures_wait_for_an_acl_fix_and_oversized_records_are_refused() {
        let code = |code| KafkaError::MessageProduction(code);
        for waits in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotEnoughReplicas,
        ] {
            assert!(
                matches!(classify(code(waits), "t"), SinkError::Retryable(_)),
                "{waits:?} must wait in the spool"
            );
        }
        let acl = classify(code(RDKafkaErrorCode::TopicAuthorizationFailed), "t").to_string();
        assert!(acl.contains("grant this client Write"), "{acl}");
        for refused in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(
                matches!(classify(code(refused), "t"), SinkError::Rejected(_)),
                "{refused:?} is dead-lettered"
            );
        }
    }
}
