//! A Kafka consumer of openim-bridge's events, typed by the kit:
//!
//! ```sh
//! cargo run -p openim-events --example consume -- 127.0.0.1:9092 openim.events
//! ```
//!
//! It prints group messages and revokes as they arrive, and the type of
//! every other event. Delivery is at least once: a real consumer keeps the
//! (source, id) pairs it applied and skips the ones it has seen.

use openim_events::{Event, EventData};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "openim.events".to_owned());
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "openim-events-example")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    loop {
        let record = consumer.recv().await?;
        match Event::from_kafka(&record) {
            Ok(event) => match &event.data {
                EventData::GroupMessageSent(sent) => println!(
                    "{} in {}: {}",
                    sent.message.sender_id,
                    sent.conversation_id,
                    sent.message.content.as_deref().unwrap_or_default()
                ),
                EventData::MessageRevoked(revoke) => {
                    println!(
                        "revoked: seq {:?} in {:?}",
                        revoke.seq, revoke.conversation_id
                    )
                }
                _ => println!("{} {}", event.event_type, event.id),
            },
            Err(err) => eprintln!("skipped a record: {err}"),
        }
    }
}
