//! RabbitMQ side of the tests: an exclusive queue bound to the bridge's
//! exchange, and cleanup of the exchange afterwards.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::Consumer;

/// A queue bound to the bridge's exchange; consuming starts at the first
/// read (so messages wait in the queue until then).
pub struct Binding {
    bound: openim_bridge_test_kit::amqp::Bound,
    consumer: Option<Consumer>,
}

impl Binding {
    /// Binds a fresh exclusive, auto-delete queue to `exchange`. Like every
    /// binding, declares `exchange` as the bridge does (durable topic), so
    /// binding does not race the bridge's own declaration.
    pub async fn new(url: &str, exchange: &str, binding_key: &str) -> Self {
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        Self::with_queue(url, exchange, binding_key, "", options).await
    }

    /// Binds a durable queue named `queue` to `exchange`, which outlives a broker restart.
    /// Delete both with [`Self::delete`].
    pub async fn durable(url: &str, exchange: &str, queue: &str) -> Self {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        Self::with_queue(url, exchange, "#", queue, options).await
    }

    async fn with_queue(
        url: &str,
        exchange: &str,
        binding_key: &str,
        queue: &str,
        options: QueueDeclareOptions,
    ) -> Self {
        let bound = openim_bridge_test_kit::amqp::bind(
            url,
            exchange,
            binding_key,
            queue,
            options,
            FieldTable::default(),
        )
        .await
        .expect("bind a queue to the bridge's exchange");
        Self {
            bound,
            consumer: None,
        }
    }

    /// Up to `count` deliveries, waiting at most `timeout`.
    pub async fn read(&mut self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while deliveries.len() < count {
            let consumer = match &mut self.consumer {
                Some(consumer) => consumer,
                None => {
                    let consumer = self.bound.consume(true).await.expect("basic_consume");
                    self.consumer.insert(consumer)
                }
            };
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(delivery)) => deliveries.push(delivery.expect("delivery")),
                Ok(None) | Err(_) => break,
            }
        }
        deliveries
    }

    /// Deletes the durable `queue` and `exchange`.
    pub async fn delete(&self, exchange: &str, queue: &str) {
        self.bound
            .channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .expect("delete queue");
        self.delete_exchange(exchange).await;
    }

    /// Deletes `exchange` (tests must not leave exchanges behind).
    pub async fn delete_exchange(&self, exchange: &str) {
        self.bound
            .channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await
            .expect("delete exchange");
    }
}

/// A header's string value.
pub fn header(delivery: &Delivery, name: &str) -> String {
    let headers = delivery
        .properties
        .headers()
        .as_ref()
        .expect("message has headers");
    match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(value)) => value.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

/// The TLS RabbitMQ node `scripts/test` starts beside the machine's own
/// (see `start_tls_rabbitmq` in `scripts/brokers.sh`).
pub struct Amqps {
    /// `amqps://guest:guest@localhost:PORT/%2f`.
    pub url: String,
    /// The CA that signed the node's certificate.
    pub ca: std::path::PathBuf,
    /// A client certificate (CN=guest) and its key, signed by that CA.
    pub client_cert: std::path::PathBuf,
    /// Key of `client_cert`.
    pub client_key: std::path::PathBuf,
    /// `amqp://` URL of the same node (for reading back).
    pub plain_url: String,
}

impl Amqps {
    /// From the environment `scripts/test` sets.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the suite with scripts/test (it starts a TLS RabbitMQ node), or set the OPENIM_BRIDGE_TEST_AMQPS* variables")
            })
        };
        Self {
            url: var("OPENIM_BRIDGE_TEST_AMQPS"),
            ca: var("OPENIM_BRIDGE_TEST_AMQPS_CA").into(),
            client_cert: var("OPENIM_BRIDGE_TEST_AMQPS_CLIENT").into(),
            client_key: var("OPENIM_BRIDGE_TEST_AMQPS_CLIENT_KEY").into(),
            plain_url: var("OPENIM_BRIDGE_TEST_AMQPS_PLAIN"),
        }
    }

    /// `host:port` of the TLS listener.
    pub fn authority(&self) -> &str {
        let rest = self.url.split('@').nth(1).unwrap_or_default();
        rest.split('/').next().unwrap_or_default()
    }
}
