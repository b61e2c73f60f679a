//! One dead-letter line: the refused event as a structured CloudEvent, with
//! why, where and how often it was refused. `openim-bridge replay` reads
//! these lines back into events. The refusal's terms ([`RejectClass`],
//! [`Destination`]) are defined here, where they are written down; the
//! sinks use them.
//!
//! ```json
//! {"dead_lettered_at":"...","sink":"rabbitmq","class":"unroutable","code":"312",
//!  "reason":"...","destination":{"exchange":"x","routing_key":"k"},"attempts":1,
//!  "first_failed_at":"...","last_failed_at":"...","event":{ structured CloudEvent }}
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::normalize::event::rfc3339;
use crate::normalize::{CallbackKind, Event};

/// What kind of refusal it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectClass {
    /// RabbitMQ returned it: no queue is bound for its routing key.
    Unroutable,
    /// Larger than the topic (or the producer) takes.
    TooLarge,
    /// The topic or exchange does not exist.
    UnknownDestination,
    /// The event's data is not what the sink can write (stdout: not JSON).
    InvalidData,
    /// Refused for another reason the broker gave.
    Rejected,
}

impl RejectClass {
    /// Its name in dead-letter lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unroutable => "unroutable",
            Self::TooLarge => "too_large",
            Self::UnknownDestination => "unknown_destination",
            Self::InvalidData => "invalid_data",
            Self::Rejected => "rejected",
        }
    }
}

/// Where a refused event was going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destination {
    /// A Kafka topic.
    Topic {
        /// Its name.
        topic: String,
    },
    /// A RabbitMQ exchange and routing key.
    Exchange {
        /// The exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// Standard output.
    Stdout {
        /// Always `"stdout"`.
        stream: String,
    },
}

impl Destination {
    /// Kafka topic `topic`.
    pub fn topic(topic: &str) -> Self {
        Self::Topic {
            topic: topic.to_owned(),
        }
    }

    /// RabbitMQ exchange `exchange`, routing key `routing_key`.
    pub fn exchange(exchange: &str, routing_key: &str) -> Self {
        Self::Exchange {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        }
    }

    /// Standard output.
    pub fn stdout() -> Self {
        Self::Stdout {
            stream: "stdout".to_owned(),
        }
    }
}

/// Why, where and how often an event was refused.
#[derive(Debug, Clone)]
pub struct Context {
    /// The sink that refused it (`kafka`, `rabbitmq`, `stdout`).
    pub sink: &'static str,
    /// What kind of refusal.
    pub class: RejectClass,
    /// The broker's (or client's) code.
    pub code: Option<String>,
    /// The broker's text, with what it came from.
    pub reason: String,
    /// Where the event was going.
    pub destination: Destination,
    /// Deliveries of it handed to the broker, this one included.
    pub attempts: u32,
    /// When a delivery of it first failed.
    pub first_failed_at: OffsetDateTime,
    /// When it was refused for good.
    pub last_failed_at: OffsetDateTime,
}

#[derive(Serialize)]
struct Written<'a> {
    dead_lettered_at: String,
    sink: &'a str,
    class: &'a str,
    code: Option<&'a str>,
    reason: &'a str,
    destination: &'a Destination,
    attempts: u32,
    first_failed_at: String,
    last_failed_at: String,
    event: &'a RawValue,
}

/// `event` with `context` as one line, newline included; fails only if
/// the event's data is not JSON.
pub fn encode(event: &Event, context: &Context) -> std::io::Result<Vec<u8>> {
    let mut json = Vec::new();
    event.write_structured_json(&mut json)?;
    let event_json: &RawValue = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    let line = Written {
        dead_lettered_at: rfc3339(OffsetDateTime::now_utc()),
        sink: context.sink,
        class: context.class.as_str(),
        code: context.code.as_deref(),
        reason: &context.reason,
        destination: &context.destination,
        attempts: context.attempts,
        first_failed_at: rfc3339(context.first_failed_at),
        last_failed_at: rfc3339(context.last_failed_at),
        event: event_json,
    };
    let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A dead-letter line as read back (older lines lack the context fields).
#[derive(Debug, Deserialize)]
pub struct Stored {
    /// When it was written (RFC 3339).
    pub dead_lettered_at: String,
    /// Why it was refused.
    #[serde(default)]
    pub reason: String,
    /// The refused event.
    pub event: StoredEvent,
}

/// The structured CloudEvent of a dead-letter line.
#[derive(Debug, Deserialize)]
pub struct StoredEvent {
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    time: String,
    subject: String,
    /// Absent in lines written before tracing.
    #[serde(default)]
    traceparent: String,
    #[serde(default)]
    tracestate: String,
    data: Box<RawValue>,
}

impl StoredEvent {
    /// The event as the bridge published it: the same id, source, type,
    /// time, key, data and trace context (so the same headers, key and
    /// route).
    pub fn into_event(self) -> Result<Event, String> {
        let kind = CallbackKind::from_event_type(&self.event_type).ok_or_else(|| {
            format!(
                "unknown event type `{}` (written by a newer bridge?)",
                self.event_type
            )
        })?;
        Ok(Event {
            id: self.id,
            kind,
            source: Arc::from(self.source),
            time: self.time,
            key: self.subject,
            data: bytes::Bytes::copy_from_slice(self.data.get().as_bytes()),
            traceparent: self.traceparent,
            tracestate: self.tracestate,
        })
    }

    /// The OpenIM callback command it came from: its data's
    /// `callback_command` (also for commands the catalog does not know),
    /// else its type's.
    pub fn command(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named {
            callback_command: Option<String>,
        }
        serde_json::from_str::<Named>(self.data.get())
            .ok()
            .and_then(|named| named.callback_command)
            .or_else(|| {
                CallbackKind::from_event_type(&self.event_type)
                    .map(|kind| kind.spec().command.to_owned())
            })
    }
}
