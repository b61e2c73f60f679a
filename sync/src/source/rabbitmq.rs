//! A RabbitMQ consumer of a shared, durable queue bound to the bridge's
//! exchange (competing consumers, `rabbitmq.prefetch` unacked each).
//! Deliveries are acked after the batch holding them was applied.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use openim_events::Event;
use tracing::info;

use super::{undecodable, Ack, Batch, SourceError};
use crate::settings::RabbitMqSettings;

/// The connection, channel and consumer.
pub struct RabbitSource {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

impl RabbitSource {
    /// Connects, declares the queue (and the exchange, as the bridge does)
    /// and starts consuming.
    pub async fn connect(settings: &RabbitMqSettings) -> Result<Self, SourceError> {
        let connection =
            Connection::connect(&settings.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        // The bridge declares it the same way: whichever starts first.
        channel
            .exchange_declare(
                settings.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                settings.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                settings.queue.as_str().into(),
                settings.exchange.as_str().into(),
                settings.binding_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                settings.queue.as_str().into(),
                "openim-sync".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(queue = %settings.queue, exchange = %settings.exchange, "rabbitmq consumer started");
        Ok(Self {
            _connection: connection,
            channel,
            consumer,
        })
    }

    /// The next batch (see [`super::Source::next`]).
    pub async fn next(&mut self, max: usize, wait: Duration) -> Result<Batch, SourceError> {
        let mut events = Vec::new();
        let mut undecodable_records = 0;
        let mut last_tag = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        while events.len() + (undecodable_records as usize) < max {
            let next = match deadline {
                None => self.consumer.next().await,
                Some(at) => match tokio::time::timeout_at(at, self.consumer.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            let delivery = match next {
                Some(delivery) => delivery?,
                None => {
                    return Err(SourceError::Rabbit(lapin::Error::from(
                        lapin::ErrorKind::InvalidChannelState(
                            lapin::ChannelState::Closed,
                            "the consumer was cancelled",
                        ),
                    )))
                }
            };
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + wait);
            last_tag = Some(delivery.delivery_tag);
            match Event::from_amqp(&delivery) {
                Ok(event) => events.push(event),
                Err(err) => {
                    undecodable(&format!("delivery {}", delivery.delivery_tag), &err);
                    undecodable_records += 1;
                }
            }
        }
        Ok(Batch {
            events,
            undecodable: undecodable_records,
            ack: Ack::Rabbit(last_tag),
        })
    }

    /// Acks every delivery up to `tag` (the batch's last).
    pub async fn ack(&self, tag: u64) -> Result<(), SourceError> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await?;
        Ok(())
    }
}
