//! RabbitMQ side of the tests: an exclusive queue bound to the bridge's
//! exchange, and cleanup of the exchange afterwards.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};

/// A consumer on a server-named, exclusive, auto-delete queue.
pub struct Binding {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

impl Binding {
    /// Binds a fresh queue to `exchange` with `binding_key`.
    pub async fn new(url: &str, exchange: &str, binding_key: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("amqp connect");
        let channel = connection.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                binding_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind to the bridge's exchange");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            consumer,
        }
    }

    /// Up to `count` deliveries, waiting at most `timeout`.
    pub async fn read(&mut self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while deliveries.len() < count {
            match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Ok(Some(delivery)) => deliveries.push(delivery.expect("delivery")),
                Ok(None) | Err(_) => break,
            }
        }
        deliveries
    }

    /// Deletes `exchange` (tests must not leave exchanges behind).
    pub async fn delete_exchange(&self, exchange: &str) {
        self.channel
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
