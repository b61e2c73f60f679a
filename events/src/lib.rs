//! Consumer kit for [openim-bridge]'s events.
//!
//! The bridge publishes every OpenIM callback as a CloudEvent in binary
//! mode: the attributes in headers (`ce_id`, `ce_source`, `ce_type`,
//! `ce_time`, `ce_subject` on Kafka; `ce-id`, ... on RabbitMQ), the JSON
//! `data` as the payload. [`Event`] decodes one, with its `data` typed by
//! its type ([`EventData`], one variant per catalog entry):
//!
//! ```
//! use openim_events::{Event, EventData};
//!
//! // A dead-letter line, or any structured-mode CloudEvent.
//! let line = br#"{"specversion":"1.0","id":"m1","source":"openim",
//!   "type":"io.openim.message.revoked","time":"2024-07-01T02:13:20.123Z","subject":"sg_g1",
//!   "data":{"schema_version":1,"event_id":"m1","event_type":"io.openim.message.revoked",
//!   "callback_command":"callbackBeforeAfterMsgCommand","operation_id":null,
//!   "received_at":"2024-07-01T02:13:20.200Z","conversation_id":"sg_g1","seq":42,
//!   "user_id":"u1","extra_fields":{}}}"#;
//! let event = Event::from_structured(line).unwrap();
//! match &event.data {
//!     EventData::MessageRevoked(revoke) => assert_eq!(revoke.seq, Some(42)),
//!     other => panic!("{other:?}"),
//! }
//! // Delivery is at least once: deduplicate on (source, id).
//! assert_eq!(event.dedup_key(), ("openim", "m1"));
//! ```
//!
//! Every event carries the W3C trace context of the callback it came from
//! (`traceparent`, [`Event::trace_parent`]); with the `opentelemetry`
//! feature, [`Event::span_context`] gives it as OpenTelemetry's type.
//!
//! With the `kafka` feature, [`Event::from_kafka`] takes any rdkafka
//! message; with `amqp`, [`Event::from_amqp`] takes a lapin delivery.
//! `examples/consume.rs` is a runnable Kafka consumer.
//!
//! [openim-bridge]: https://github.com/openim-bridge/openim-bridge

#![warn(missing_docs)]

#[rustfmt::skip]
mod data;
mod trace;

pub use data::*;
pub use trace::TraceParent;

/// The CloudEvents spec version the bridge writes.
pub const SPEC_VERSION: &str = "1.0";

/// One event, as the bridge published it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// CloudEvents `id`: the message id (or a hash of the exact callback).
    pub id: String,
    /// CloudEvents `source`: names the OpenIM deployment.
    pub source: String,
    /// CloudEvents `type`, e.g. `io.openim.group.message.sent`.
    pub event_type: String,
    /// CloudEvents `time` (RFC 3339): when the message was sent, or when
    /// the callback arrived.
    pub time: Option<String>,
    /// CloudEvents `subject`: the partition / ordering key (the group, the
    /// conversation, the user).
    pub subject: Option<String>,
    /// CloudEvents `traceparent` (distributed tracing extension): the W3C
    /// trace context of the callback this event was acked in. Parsed by
    /// [`Event::trace_parent`].
    pub traceparent: Option<String>,
    /// CloudEvents `tracestate`, when the trace carries vendor state.
    pub tracestate: Option<String>,
    /// The typed data.
    pub data: EventData,
}

/// Why a record is not an event of the bridge's.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A required CloudEvents attribute is missing.
    #[error("header `{0}` is missing: not a binary-mode CloudEvent from openim-bridge")]
    MissingHeader(String),
    /// A header is not UTF-8 text.
    #[error("header `{0}` is not UTF-8 text")]
    BadHeader(String),
    /// A CloudEvents version this kit does not read.
    #[error("header `{header}` is `{found}`: this kit reads CloudEvents {SPEC_VERSION}")]
    SpecVersion {
        /// The header (`ce_specversion`, `ce-specversion`, `specversion`).
        header: String,
        /// What it said.
        found: String,
    },
    /// The record has no payload.
    #[error("the record has no payload (the event's data)")]
    NoPayload,
    /// A structured event is not a JSON object with the attributes.
    #[error("not a structured CloudEvent: {0}")]
    Structured(serde_json::Error),
    /// The data does not fit its type's layout.
    #[error("data of a `{event_type}` event: `{path}`: {cause}")]
    Data {
        /// The event's type.
        event_type: String,
        /// Where in the data (`message.seq`).
        path: String,
        /// What was wrong.
        cause: serde_json::Error,
    },
}

impl Event {
    /// Builds an event from its attributes (`attribute("id")`, ...) and its
    /// JSON data. `prefix` names the headers in errors (`ce_`, `ce-`).
    pub fn from_parts(
        prefix: &str,
        attribute: impl Fn(&str) -> Result<Option<String>, DecodeError>,
        data: &[u8],
    ) -> Result<Self, DecodeError> {
        let required = |name: &str| {
            attribute(name)?.ok_or_else(|| DecodeError::MissingHeader(format!("{prefix}{name}")))
        };
        let version = required("specversion")?;
        if version != SPEC_VERSION {
            return Err(DecodeError::SpecVersion {
                header: format!("{prefix}specversion"),
                found: version,
            });
        }
        let event_type = required("type")?;
        let data = EventData::decode(&event_type, data).map_err(|err| DecodeError::Data {
            event_type: event_type.clone(),
            path: err.path().to_string(),
            cause: err.into_inner(),
        })?;
        Ok(Self {
            id: required("id")?,
            source: required("source")?,
            time: attribute("time")?,
            subject: attribute("subject")?,
            traceparent: attribute("traceparent")?,
            tracestate: attribute("tracestate")?,
            event_type,
            data,
        })
    }

    /// A structured-mode CloudEvent (a JSON object with `specversion`,
    /// `id`, ... and `data`), or a line of the bridge's dead-letter file
    /// (the event under `event`).
    pub fn from_structured(json: &[u8]) -> Result<Self, DecodeError> {
        let mut value: serde_json::Value =
            serde_json::from_slice(json).map_err(DecodeError::Structured)?;
        if value.get("specversion").is_none() && value.get("event").is_some() {
            value = value["event"].take();
        }
        let data = serde_json::to_vec(&value["data"]).map_err(DecodeError::Structured)?;
        let attribute = |name: &str| match &value[name] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(text) => Ok(Some(text.clone())),
            _ => Err(DecodeError::BadHeader(name.to_owned())),
        };
        Self::from_parts("", attribute, &data)
    }

    /// A Kafka record in binary mode (`ce_*` headers).
    #[cfg(feature = "kafka")]
    pub fn from_kafka<M: rdkafka::Message>(message: &M) -> Result<Self, DecodeError> {
        use rdkafka::message::Headers;
        let payload = message.payload().ok_or(DecodeError::NoPayload)?;
        let attribute = |name: &str| {
            let key = format!("ce_{name}");
            let Some(headers) = message.headers() else {
                return Ok(None);
            };
            match headers.iter().find(|header| header.key == key) {
                None => Ok(None),
                Some(header) => match header.value.map(std::str::from_utf8) {
                    Some(Ok(text)) => Ok(Some(text.to_owned())),
                    _ => Err(DecodeError::BadHeader(key)),
                },
            }
        };
        Self::from_parts("ce_", attribute, payload)
    }

    /// A RabbitMQ delivery in binary mode (`ce-*` headers).
    #[cfg(feature = "amqp")]
    pub fn from_amqp(delivery: &lapin::message::Delivery) -> Result<Self, DecodeError> {
        use lapin::types::AMQPValue;
        let headers = delivery.properties.headers().as_ref();
        let attribute = |name: &str| {
            let key = format!("ce-{name}");
            match headers.and_then(|table| table.inner().get(key.as_str())) {
                None => Ok(None),
                Some(AMQPValue::LongString(text)) => std::str::from_utf8(text.as_bytes())
                    .map(|text| Some(text.to_owned()))
                    .map_err(|_| DecodeError::BadHeader(key)),
                Some(AMQPValue::ShortString(text)) => Ok(Some(text.as_str().to_owned())),
                Some(_) => Err(DecodeError::BadHeader(key)),
            }
        };
        if delivery.data.is_empty() {
            return Err(DecodeError::NoPayload);
        }
        Self::from_parts("ce-", attribute, &delivery.data)
    }

    /// The trace context the event carries, if it has a valid one.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        TraceParent::parse(self.traceparent.as_deref()?)
    }

    /// The span the event was created in, as an OpenTelemetry remote span
    /// context: make it your processing span's parent, or link a batch's
    /// span to each event's (`openim-sync` does).
    #[cfg(feature = "opentelemetry")]
    pub fn span_context(&self) -> Option<opentelemetry::trace::SpanContext> {
        Some(
            self.trace_parent()?
                .span_context(self.tracestate.as_deref()),
        )
    }

    /// What identifies the event across redeliveries: (`source`, `id`).
    pub fn dedup_key(&self) -> (&str, &str) {
        (&self.source, &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_header_or_the_field() {
        let err =
            Event::from_structured(br#"{"specversion":"1.0","id":"x","source":"s","data":{}}"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "header `type` is missing: not a binary-mode CloudEvent from openim-bridge"
        );
        let err = Event::from_structured(
            br#"{"specversion":"1.0","id":"x","source":"s","type":"io.openim.message.revoked",
                "data":{"schema_version":1,"event_id":"x","event_type":"io.openim.message.revoked",
                "callback_command":"c","operation_id":null,"received_at":"t","conversation_id":"c",
                "seq":"forty-two","user_id":"u","extra_fields":{}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`seq`"), "{err}");
        let err = Event::from_structured(br#"{"specversion":"0.3"}"#).unwrap_err();
        assert!(err.to_string().contains("0.3"), "{err}");
    }

    #[test]
    fn an_unknown_type_is_kept_as_json() {
        let event = Event::from_structured(
            br#"{"specversion":"1.0","id":"x","source":"s","type":"io.openim.future","data":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(event.data, EventData::Other(serde_json::json!({"a": 1})));
    }
}
