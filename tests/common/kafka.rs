//! Kafka side of the tests: topics and a reader with explicit partition
//! assignment (no consumer group needed).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    create_topic_with(brokers, &[], topic, partitions).await;
}

/// Like [`create_topic`], with extra client `properties` (security
/// settings, e.g. [`super::kafka_front::KafkaFront::client_properties`]).
pub async fn create_topic_with(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
) {
    openim_bridge_test_kit::kafka::create_topic(brokers, properties, topic, partitions)
        .await
        .unwrap_or_else(|problem| panic!("{problem}"));
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition it landed in.
    pub partition: i32,
    /// Record key.
    pub key: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Value.
    pub value: serde_json::Value,
    /// The record as the consumer kit decodes it.
    pub event: Result<openim_events::Event, String>,
}

impl Record {
    /// The value of header `name` (panics if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("record has no header {name}: {:?}", self.headers))
    }
}

/// Reads records of `topic` (all `partitions`, from the start) until `count`
/// were read or `timeout` passed.
pub fn read(
    brokers: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<Record> {
    read_with(brokers, &[], topic, partitions, count, timeout)
}

/// Like [`read`], with extra client `properties` (security settings).
pub fn read_with(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<Record> {
    read_until_with(brokers, properties, topic, partitions, timeout, |records| {
        records.len() >= count
    })
}

/// Reads records of `topic` from the start until `done` says so or
/// `timeout` passed.
pub fn read_until(
    brokers: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    read_until_with(brokers, &[], topic, partitions, timeout, done)
}

/// Like [`read_until`], with extra client `properties` (security settings).
pub fn read_until_with(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
    timeout: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = openim_bridge_test_kit::kafka::client_config(brokers, properties)
        .set("group.id", super::unique("openim-bridge-test"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + timeout;
    let mut records = Vec::new();
    while !done(&records) && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            event: openim_events::Event::from_kafka(&message).map_err(|err| err.to_string()),
            partition: message.partition(),
            key: String::from_utf8(message.key().unwrap_or_default().to_vec()).unwrap(),
            headers,
            value: serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("record value is JSON"),
        });
    }
    records
}

/// A Tansu broker of a test's own, so pausing it (SIGSTOP) disturbs no
/// other test; stopped when dropped.
pub struct OwnTansu {
    /// The broker process.
    pub child: std::process::Child,
    /// Its bootstrap address.
    pub brokers: String,
}

impl OwnTansu {
    /// Starts one on a free port.
    pub fn start() -> Self {
        Self::start_on(openim_bridge_test_kit::free_port())
    }

    /// Starts one on `port` (a restart on the same address).
    pub fn start_on(port: u16) -> Self {
        let child = openim_bridge_test_kit::kafka::tansu(port, port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("this test runs its own Tansu: install it (scripts/test does)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            brokers: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
