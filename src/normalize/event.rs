//! The event the bridge publishes: CloudEvents attributes plus a JSON `data`
//! body whose shape is `schemas/event-v1.schema.json`.

use std::sync::Arc;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::json::Object;
use super::CallbackKind;

/// Version of the `data` body layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// CloudEvents spec version of every event.
pub const SPEC_VERSION: &str = "1.0";

/// Media type of `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// One normalized event, ready for any sink. `data` is serialized once, at
/// ingress; sinks only copy bytes.
#[derive(Debug, Clone)]
pub struct Event {
    /// CloudEvents `id`: OpenIM's `serverMsgID`, stable across replays, so
    /// consumers deduplicate on (`source`, `id`).
    pub id: String,
    /// Which callback this came from; gives the CloudEvents `type`.
    pub kind: CallbackKind,
    /// CloudEvents `source` (`event.source` setting).
    pub source: Arc<str>,
    /// CloudEvents `time`: when the message was sent (RFC 3339).
    pub time: String,
    /// Partition / ordering key; also the CloudEvents `subject`.
    pub key: String,
    /// The JSON body (`schemas/event-v1.schema.json`).
    pub data: Bytes,
    /// CloudEvents `traceparent` (distributed tracing extension): the W3C
    /// trace context of the callback it was acked in, set by ingress (and
    /// kept in the spool and the dead-letter file). Empty only in events
    /// spooled by a bridge older than tracing: then no header is written.
    pub traceparent: String,
    /// CloudEvents `tracestate`, when the trace has vendor state; else empty.
    pub tracestate: String,
}

impl Event {
    /// CloudEvents `type`, e.g. `io.openim.group.message.sent`.
    pub fn event_type(&self) -> &'static str {
        self.kind.event_type()
    }

    /// The CloudEvents attributes other than `datacontenttype`, with their
    /// values: what binary-mode bindings turn into headers. `traceparent`
    /// and `tracestate` only when set.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static Attribute, &str)> {
        let values: [&str; 8] = [
            SPEC_VERSION,
            &self.id,
            &self.source,
            self.event_type(),
            &self.time,
            &self.key,
            &self.traceparent,
            &self.tracestate,
        ];
        ATTRIBUTES
            .iter()
            .zip(values)
            .filter(|(attribute, value)| !value.is_empty() || !attribute.name.starts_with("trace"))
    }

    /// Appends this event as one structured-mode CloudEvents JSON object
    /// (the stdout sink's lines, the dead-letter file's `event`); fails
    /// only if `data` is not JSON.
    ///
    /// A compact object, as `normalize` writes every event's `data`, is
    /// copied as it is, not parsed again: it is JSON by construction (also
    /// when read back from a checksummed spool record or a parsed
    /// dead-letter line). Anything else (another JSON value, say, from an
    /// edited dead-letter file) is checked first.
    pub fn write_structured_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut data = self.data.as_ref();
        if !(data.first() == Some(&b'{') && data.last() == Some(&b'}')) {
            data = serde_json::from_slice::<&RawValue>(data)?.get().as_bytes();
        }
        let mut doc = Object::start(out);
        // The same attributes, in the same order, as the binary-mode headers.
        for (attribute, value) in self.attributes() {
            doc.str(attribute.name, value)?;
        }
        doc.str("datacontenttype", DATA_CONTENT_TYPE)?;
        doc.raw("data", data);
        doc.end();
        Ok(())
    }
}

/// A CloudEvents attribute and the header each binary-mode binding names it
/// by, written out: the sinks set them on every event.
#[derive(Debug)]
pub struct Attribute {
    /// Its CloudEvents name, e.g. `id`.
    pub name: &'static str,
    /// Its Kafka header: `ce_` and the name.
    pub kafka_header: &'static str,
    /// Its AMQP header: `ce-` and the name.
    pub amqp_header: &'static str,
}

impl Attribute {
    const fn new(
        name: &'static str,
        kafka_header: &'static str,
        amqp_header: &'static str,
    ) -> Self {
        Self {
            name,
            kafka_header,
            amqp_header,
        }
    }
}

/// The attributes [`Event::attributes`] gives, in its order.
const ATTRIBUTES: [Attribute; 8] = [
    Attribute::new("specversion", "ce_specversion", "ce-specversion"),
    Attribute::new("id", "ce_id", "ce-id"),
    Attribute::new("source", "ce_source", "ce-source"),
    Attribute::new("type", "ce_type", "ce-type"),
    Attribute::new("time", "ce_time", "ce-time"),
    Attribute::new("subject", "ce_subject", "ce-subject"),
    Attribute::new("traceparent", "ce_traceparent", "ce-traceparent"),
    Attribute::new("tracestate", "ce_tracestate", "ce-tracestate"),
];

/// The `data` body of a message event, in clear snake_case names.
#[derive(Debug)]
pub(super) struct MessageEventData<'a> {
    pub schema_version: u32,
    pub event_id: &'a str,
    pub event_type: &'static str,
    pub callback_command: &'a str,
    pub operation_id: Option<&'a str>,
    pub received_at: &'a str,
    pub conversation_id: &'a str,
    pub message: MessageData<'a>,
    /// Keys OpenIM sent that this version of the bridge does not know.
    pub extra_fields: &'a Map<String, Value>,
}

impl MessageEventData<'_> {
    /// The JSON object, in `capacity` bytes if it fits (the body's length
    /// and some: the data has the body's fields under longer names).
    pub(super) fn to_json(&self, capacity: usize) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(capacity);
        let mut data = Object::start(&mut out);
        data.value("schema_version", &self.schema_version)?;
        data.str("event_id", self.event_id)?;
        data.str("event_type", self.event_type)?;
        data.str("callback_command", self.callback_command)?;
        data.opt_str("operation_id", self.operation_id)?;
        data.str("received_at", self.received_at)?;
        data.str("conversation_id", self.conversation_id)?;
        self.message.write(data.object("message"))?;
        data.value("extra_fields", self.extra_fields)?;
        data.end();
        Ok(out)
    }
}

/// The message, field for field from the callback body.
#[derive(Debug)]
pub(super) struct MessageData<'a> {
    pub server_msg_id: &'a str,
    pub client_msg_id: Option<&'a str>,
    pub sender_id: &'a str,
    pub sender_platform_id: Option<i32>,
    pub sender_nickname: Option<&'a str>,
    pub sender_face_url: Option<&'a str>,
    /// Left out when absent.
    pub group_id: Option<&'a str>,
    /// Left out when absent.
    pub recv_id: Option<&'a str>,
    pub session_type: Option<i32>,
    pub msg_from: Option<i32>,
    pub content_type: Option<i32>,
    pub status: Option<i32>,
    pub send_time_ms: Option<i64>,
    pub create_time_ms: Option<i64>,
    /// A JSON string, as the body had it.
    pub content: Option<&'a RawValue>,
    pub seq: Option<u32>,
    /// `atUserList`, with OpenIM's `null` for "nobody" turned into `[]`.
    pub at_user_ids: &'a [String],
    pub ex: Option<&'a str>,
}

impl MessageData<'_> {
    /// Writes the fields into `message`, and closes it.
    fn write(&self, mut message: Object<'_>) -> serde_json::Result<()> {
        message.str("server_msg_id", self.server_msg_id)?;
        message.opt_str("client_msg_id", self.client_msg_id)?;
        message.str("sender_id", self.sender_id)?;
        message.value("sender_platform_id", &self.sender_platform_id)?;
        message.opt_str("sender_nickname", self.sender_nickname)?;
        message.opt_str("sender_face_url", self.sender_face_url)?;
        if let Some(group_id) = self.group_id {
            message.str("group_id", group_id)?;
        }
        if let Some(recv_id) = self.recv_id {
            message.str("recv_id", recv_id)?;
        }
        message.value("session_type", &self.session_type)?;
        message.value("msg_from", &self.msg_from)?;
        message.value("content_type", &self.content_type)?;
        message.value("status", &self.status)?;
        message.value("send_time_ms", &self.send_time_ms)?;
        message.value("create_time_ms", &self.create_time_ms)?;
        match self.content {
            Some(content) => message.raw("content", content.get().as_bytes()),
            None => message.value("content", &())?,
        }
        message.value("seq", &self.seq)?;
        message.value("at_user_ids", self.at_user_ids)?;
        message.opt_str("ex", self.ex)?;
        message.end();
        Ok(())
    }
}

/// RFC 3339 in UTC, e.g. `2024-07-01T02:13:20.123Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    // Formatting a UTC OffsetDateTime with a year in 0..=9999 cannot fail;
    // every value reaching here comes from `from_unix_ms` or the clock.
    at.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Milliseconds since the epoch as a UTC time, if representable in RFC 3339
/// (years 0 to 9999).
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    (0..=9999).contains(&at.year()).then_some(at)
}

/// `[event]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// CloudEvents `source` of every event: names the OpenIM deployment.
    /// `source` + `id` identify an event, so give each OpenIM cluster its own.
    pub source: String,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            source: "openim".to_owned(),
        }
    }
}

impl EventSettings {
    /// CloudEvents requires a source.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.source.is_empty() {
            return Err(ConfigError::invalid(
                "event.source",
                "must not be empty (CloudEvents requires a source)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attribute_is_its_bindings_prefix_and_name() {
        for attribute in &ATTRIBUTES {
            assert_eq!(attribute.kafka_header, format!("ce_{}", attribute.name));
            assert_eq!(attribute.amqp_header, format!("ce-{}", attribute.name));
        }
        let mut event = Event {
            id: "m1".into(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".into(),
            key: "g1".into(),
            data: b"{}".to_vec().into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: "congo=t61rcWkgMzE".into(),
        };
        let pairs: Vec<_> = event
            .attributes()
            .map(|(attribute, value)| (attribute.name, value.to_owned()))
            .collect();
        assert_eq!(pairs[1], ("id", "m1".to_owned()));
        assert_eq!(
            pairs[3],
            ("type", "io.openim.group.message.sent".to_owned())
        );
        assert_eq!(pairs[5], ("subject", "g1".to_owned()));
        assert_eq!(pairs.len(), 8);
        event.traceparent.clear();
        event.tracestate.clear();
        let names: Vec<_> = event.attributes().map(|(a, _)| a.name).collect();
        assert_eq!(
            names,
            ["specversion", "id", "source", "type", "time", "subject"]
        );
    }
}
