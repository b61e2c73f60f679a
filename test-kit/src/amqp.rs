//! RabbitMQ for a test or a benchmark run: a queue bound to the bridge's
//! exchange, and cleanup afterwards (RabbitMQ outlives every run).

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

/// A queue bound to an exchange, on its own connection.
pub struct Bound {
    /// The connection (closing it deletes an exclusive queue).
    pub connection: Connection,
    /// The channel the queue was declared on.
    pub channel: Channel,
    /// The queue's name (the broker's, for a queue declared without one).
    pub queue: String,
}

impl Bound {
    /// Starts consuming the queue; `no_ack`: the broker forgets each
    /// message once sent.
    pub async fn consume(&self, no_ack: bool) -> Result<Consumer, lapin::Error> {
        let options = BasicConsumeOptions {
            no_ack,
            ..BasicConsumeOptions::default()
        };
        self.channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                options,
                FieldTable::default(),
            )
            .await
    }
}

/// Connects to `url`, declares `exchange` as the bridge does (a durable
/// topic exchange, so binding does not race the bridge's own declaration),
/// declares `queue` (`""`: the broker names it) with `options` and
/// `arguments`, and binds it with `binding_key`.
pub async fn bind(
    url: &str,
    exchange: &str,
    binding_key: &str,
    queue: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<Bound, lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let declared = channel
        .queue_declare(queue.into(), options, arguments)
        .await?;
    let queue = declared.name().as_str().to_owned();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            binding_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Bound {
        connection,
        channel,
        queue,
    })
}

/// Deletes `queue` (if given) and `exchange`, ignoring what is gone.
pub async fn delete(url: &str, exchange: &str, queue: Option<&str>) {
    let Ok(connection) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        if let Some(queue) = queue {
            let _ = channel.queue_delete(queue.into(), Default::default()).await;
        }
        let _ = channel
            .exchange_delete(exchange.into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}
