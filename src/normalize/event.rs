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
        let doc = Structured {
            specversion: SPEC_VERSION,
            id: &self.id,
            source: &self.source,
            event_type: self.event_type(),
            time: &self.time,
            subject: &self.key,
            traceparent: &self.traceparent,
            tracestate: &self.tracestate,
            datacontenttype: DATA_CONTENT_TYPE,
        };
        serde_json::to_writer(&mut *out, &doc)?;
        // The attributes' closing brace gives way to `data`, last.
        out.pop();
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data);
        out.push(b'}');
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

/// CloudEvents JSON format (structured mode), but for `data`, which
/// [`Event::write_structured_json`] appends as it is.
#[derive(Serialize)]
struct Structured<'a> {
    specversion: &'a str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    time: &'a str,
    subject: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    traceparent: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    tracestate: &'a str,
    datacontenttype: &'a str,
}

/// The `data` body of a message event, in clear snake_case names.
#[derive(Debug, Serialize)]
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

/// The message, field for field from the callback body.
#[derive(Debug, Serialize)]
pub(super) struct MessageData<'a> {
    pub server_msg_id: &'a str,
    pub client_msg_id: Option<&'a str>,
    pub sender_id: &'a str,
    pub sender_platform_id: Option<i32>,
    pub sender_nickname: Option<&'a str>,
    pub sender_face_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recv_id: Option<&'a str>,
    pub session_type: Option<i32>,
    pub msg_from: Option<i32>,
    pub content_type: Option<i32>,
    pub status: Option<i32>,
    pub send_time_ms: Option<i64>,
    pub create_time_ms: Option<i64>,
    pub content: Option<&'a str>,
    pub seq: Option<u32>,
    /// `atUserList`, with OpenIM's `null` for "nobody" turned into `[]`.
    pub at_user_ids: &'a [String],
    pub ex: Option<&'a str>,
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
