//! RabbitMQ: a durable queue that outlives the broker's restarts.

use super::*;

pub async fn rabbitmq_reader(url: String, exchange: String, queue: String, tally: Arc<Tally>) {
    use futures_util::StreamExt;
    use lapin::options::BasicAckOptions;
    loop {
        // A session can hang (seen after `rabbitmqctl start_app`: a
        // consumer that never delivers again): setup is bounded, and a
        // consumer idle for READER_IDLE is dropped and started afresh; the
        // durable queue keeps what was not acked.
        let setup = rabbitmq_consumer(&url, &exchange, &queue);
        if let Ok(Ok((_connection, mut consumer))) =
            tokio::time::timeout(Duration::from_secs(10), setup).await
        {
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(READER_IDLE, consumer.next()).await
            {
                if let Some(id) = event_id(&delivery.data) {
                    tally.saw(&id);
                }
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the reader's consumer may go without a delivery before its
/// session is started again.
pub const READER_IDLE: Duration = Duration::from_secs(5);

/// Connects, declares the exchange and the durable queue, binds the
/// routable groups (`chat.g.*`) and consumes.
pub async fn rabbitmq_consumer(
    url: &str,
    exchange: &str,
    queue: &str,
) -> Result<(lapin::Connection, lapin::Consumer), lapin::Error> {
    use lapin::options::{BasicQosOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    let mut arguments = FieldTable::default();
    // Deleted by the broker 10 minutes after its last reader left.
    arguments.insert("x-expires".into(), AMQPValue::LongInt(600_000));
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let bound =
        openim_bridge_test_kit::amqp::bind(url, exchange, "chat.g.*", queue, options, arguments)
            .await?;
    bound
        .channel
        .basic_qos(1000, BasicQosOptions::default())
        .await?;
    let consumer = bound.consume(false).await?;
    Ok((bound.connection, consumer))
}

pub async fn delete_rabbitmq_objects(url: &str, exchange: &str, queue: &str) {
    openim_bridge_test_kit::amqp::delete(url, exchange, Some(queue)).await;
}

pub async fn rabbitmqctl(command: &str) -> bool {
    tokio::process::Command::new("rabbitmqctl")
        .arg(command)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}
