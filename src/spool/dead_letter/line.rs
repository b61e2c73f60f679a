//! One dead-letter line: the refused event as a structured CloudEvent, with
//! why, where and how often it was refused. `openim-bridge replay` reads
//! these lines back into events.
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
use crate::sink::{Destination, Rejection};

/// Why, where and how often an event was refused.
#[derive(Debug, Clone)]
pub struct Context {
    /// The sink that refused it (`kafka`, `rabbitmq`, `stdout`).
    pub sink: &'static str,
    /// The refusal: class, broker code and text, destination.
    pub rejection: Rejection,
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
    reason: String,
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
    let rejection = &context.rejection;
    let line = Written {
        dead_lettered_at: rfc3339(OffsetDateTime::now_utc()),
        sink: context.sink,
        class: rejection.class.as_str(),
        code: rejection.code.as_deref(),
        reason: rejection.to_string(),
        destination: &rejection.destination,
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
    /// Its class, if the line has one.
    #[serde(default)]
    pub class: Option<String>,
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
    data: Box<RawValue>,
}

impl StoredEvent {
    /// The event as the bridge published it: the same id, source, type,
    /// time, key and data (so the same headers, key and route).
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
        })
    }

    /// The OpenIM callback command of its type.
    pub fn command(&self) -> Option<&'static str> {
        CallbackKind::from_event_type(&self.event_type).map(|kind| kind.spec().command)
    }
}
