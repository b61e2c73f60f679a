//! What the bridge published, read back: a Kafka consumer, a RabbitMQ
//! consumer, and the stdout sink's lines (see `start_bridge`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{new_histogram, Target};

/// What the consumer saw.
#[derive(Default)]
pub struct Seen {
    /// Times each event id was read.
    pub counts: HashMap<String, u32>,
    /// Publish lag of the fixed phase's events.
    pub lag_fixed: Option<Histogram<u64>>,
    /// Kafka only: received -> handed to the producer (the record's
    /// CreateTime), i.e. the part of the lag spent inside the bridge.
    pub lag_in_bridge: Option<Histogram<u64>>,
}

impl Seen {
    pub fn record(&mut self, id: &str, received_at: &str) {
        *self.counts.entry(id.to_owned()).or_default() += 1;
        if id.contains("-fixed-") {
            if let Ok(at) = OffsetDateTime::parse(received_at, &Rfc3339) {
                let lag = (OffsetDateTime::now_utc() - at).whole_microseconds().max(1) as u64;
                let _ = self.lag_fixed.get_or_insert_with(new_histogram).record(lag);
            }
        }
    }
}

#[derive(Deserialize)]
pub struct Data<'a> {
    pub event_id: &'a str,
    pub received_at: &'a str,
}

#[derive(Deserialize)]
pub struct StdoutLine<'a> {
    #[serde(borrow)]
    pub data: Data<'a>,
}

pub fn kafka_consumer(
    target: &Target,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let mut config = ClientConfig::new();
    for (key, value) in &target.kafka_properties {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", &target.kafka)
        .set("group.id", format!("bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        // Tansu answers a fetch only when fetch.wait.max.ms (default 500 ms)
        // has passed, even when data arrived sooner: poll often, or the lag
        // measured is the consumer's, not the bridge's.
        .set("fetch.wait.max.ms", "5")
        .set("fetch.error.backoff.ms", "5")
        .set("fetch.queue.backoff.ms", "1")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(&target.topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                if let Ok(data) =
                    serde_json::from_slice::<Data>(message.payload().unwrap_or_default())
                {
                    let mut seen = seen.lock().unwrap();
                    seen.record(data.event_id, data.received_at);
                    let created = message.timestamp().to_millis();
                    if let (Some(created), Ok(at)) =
                        (created, OffsetDateTime::parse(data.received_at, &Rfc3339))
                    {
                        if data.event_id.contains("-fixed-") {
                            let received_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
                            let inside = ((created - received_ms).max(0) as u64 * 1000).max(1);
                            let _ = seen
                                .lag_in_bridge
                                .get_or_insert_with(new_histogram)
                                .record(inside);
                        }
                    }
                }
            }
        }
    })
}

pub async fn rabbitmq_consumer(target: &Target, seen: Arc<Mutex<Seen>>) -> lapin::Connection {
    use futures_util::StreamExt;
    use lapin::options::QueueDeclareOptions;
    use lapin::types::FieldTable;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let bound = openim_bridge_test_kit::amqp::bind(
        &target.amqp_read,
        &target.exchange,
        "#",
        "",
        options,
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut consumer = bound.consume(true).await.unwrap();
    let connection = bound.connection;
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            if let Ok(data) = serde_json::from_slice::<Data>(&delivery.data) {
                seen.lock().unwrap().record(data.event_id, data.received_at);
            }
        }
    });
    connection
}
