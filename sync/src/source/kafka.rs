//! A Kafka consumer group member: offsets are committed by hand, after the
//! batch they cover was applied.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openim_events::Event;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::{undecodable, Ack, Batch, SourceError};
use crate::settings::KafkaSettings;

/// Logs the group's rebalances (which partitions this member reads).
pub struct GroupLog;

impl ClientContext for GroupLog {}

impl ConsumerContext for GroupLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| -> Vec<String> {
            list.elements()
                .iter()
                .map(|p| format!("{}/{}", p.topic(), p.partition()))
                .collect()
        };
        match rebalance {
            Rebalance::Assign(list) => {
                info!(partitions = ?partitions(list), "kafka partitions assigned")
            }
            Rebalance::Revoke(list) => {
                info!(partitions = ?partitions(list), "kafka partitions revoked")
            }
            Rebalance::Error(err) => warn!(cause = %err, "kafka rebalance failed"),
        }
    }
}

/// The consumer and what it needs to stay a healthy group member.
pub struct KafkaSource {
    consumer: StreamConsumer<GroupLog>,
    topics: Vec<String>,
    resubscribe_idle: Option<Duration>,
    /// Since when no partition has been assigned.
    unassigned_since: Option<Instant>,
}

impl KafkaSource {
    /// Creates the consumer and subscribes to the topics.
    pub fn connect(settings: &KafkaSettings) -> Result<Self, SourceError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", &settings.group_id)
            .set("client.id", "openim-sync")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka's own offset store is not used: commits name the
            // offsets of applied batches.
            .set("enable.auto.offset.store", "false")
            // A member that died (kill -9, a node lost) gives its partitions
            // up after 10 s, not librdkafka's 45 s (kafka.options may say
            // otherwise).
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "3000");
        for (key, value) in &settings.options {
            config.set(key, value);
        }
        let consumer: StreamConsumer<GroupLog> = config.create_with_context(GroupLog)?;
        let topics: Vec<String> = settings
            .topics
            .iter()
            .map(|topic| topic.trim().to_owned())
            .filter(|topic| !topic.is_empty())
            .collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        info!(?topics, group = %settings.group_id, "kafka consumer subscribed");
        Ok(Self {
            consumer,
            topics,
            resubscribe_idle: (settings.resubscribe_idle_ms > 0)
                .then(|| Duration::from_millis(settings.resubscribe_idle_ms)),
            unassigned_since: None,
        })
    }

    /// The next batch (see [`super::Source::next`]).
    pub async fn next(&mut self, max: usize, wait: Duration) -> Result<Batch, SourceError> {
        let mut events = Vec::new();
        let mut undecodable_records = 0;
        let mut offsets: HashMap<(String, i32), i64> = HashMap::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        while events.len() + (undecodable_records as usize) < max {
            let received = match deadline {
                // Until the first record: check the assignment now and then.
                None => {
                    match tokio::time::timeout(Duration::from_secs(1), self.consumer.recv()).await {
                        Ok(received) => received,
                        Err(_) => {
                            self.check_assignment()?;
                            continue;
                        }
                    }
                }
                Some(at) => match tokio::time::timeout_at(at, self.consumer.recv()).await {
                    Ok(received) => received,
                    Err(_) => break,
                },
            };
            let message = match received {
                Ok(message) => message,
                Err(err) => {
                    warn!(cause = %err, "kafka consume error; retrying");
                    continue;
                }
            };
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + wait);
            offsets.insert(
                (message.topic().to_owned(), message.partition()),
                message.offset() + 1,
            );
            match Event::from_kafka(&message) {
                Ok(event) => events.push(event),
                Err(err) => {
                    let at = format!(
                        "{}/{}@{}",
                        message.topic(),
                        message.partition(),
                        message.offset()
                    );
                    undecodable(&at, &err);
                    undecodable_records += 1;
                }
            }
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in offsets {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        Ok(Batch {
            events,
            undecodable: undecodable_records,
            ack: Ack::Kafka(list),
        })
    }

    /// Commits the offsets after an applied batch (asynchronously: a lost
    /// commit only means a redelivery, which the inbox skips).
    pub fn commit(&self, offsets: &TopicPartitionList) -> Result<(), SourceError> {
        if offsets.count() > 0 {
            self.consumer.commit(offsets, CommitMode::Async)?;
        }
        Ok(())
    }

    /// Subscribes again after `kafka.resubscribe_idle_ms` without any
    /// partition (see that setting).
    fn check_assignment(&mut self) -> Result<(), SourceError> {
        let Some(idle) = self.resubscribe_idle else {
            return Ok(());
        };
        let assigned = self
            .consumer
            .assignment()
            .map(|list| list.count() > 0)
            .unwrap_or(false);
        if assigned {
            self.unassigned_since = None;
            return Ok(());
        }
        let since = *self.unassigned_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= idle {
            warn!(
                idle_ms = idle.as_millis() as u64,
                "no partition assigned; subscribing again"
            );
            self.consumer.unsubscribe();
            let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            self.consumer.subscribe(&names)?;
            self.unassigned_since = None;
        }
        Ok(())
    }
}
