//! Distributed tracing: one trace per callback, continued from OpenIM's
//! `traceparent` when it sends one, and carried on the event.
//!
//! The spans of one callback, when it is sampled:
//!
//! * `callback` (server): the request, from its headers to the ack;
//!   * `spool.append`: the spool's write (in `durable` mode, with the sync
//!     it waited for);
//!   * `send <destination>` (producer): from the publisher taking the event
//!     to the broker's confirm; retries and dead-lettering are its events.
//!
//! The event's `traceparent` names the `callback` span, so a consumer's
//! spans join (or link to) the same trace. Without a tracer, the incoming
//! `traceparent` is passed on as it is, or a new unsampled one is made: an
//! event always carries one.

use hyper::HeaderMap;
use openim_events::TraceParent;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::KeyValue;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::normalize::Event;

/// The trace context a request came with (W3C headers).
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    parent: TraceParent,
    state: String,
}

impl Incoming {
    /// A valid `traceparent` header, with `tracestate` when it has one
    /// (a malformed `traceparent` is ignored: the trace starts here).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let parent = TraceParent::parse(headers.get("traceparent")?.to_str().ok()?)?;
        let state = headers
            .get("tracestate")
            .and_then(|state| state.to_str().ok())
            .filter(|state| state.len() <= 512)
            .unwrap_or_default()
            .to_owned();
        Some(Self { parent, state })
    }

    fn span_context(&self) -> SpanContext {
        self.parent.span_context(Some(&self.state))
    }
}

/// Target of the `callback` span of a trace not recorded: the tracer's
/// layer never sees it, so it costs no OpenTelemetry work (logs at
/// `debug` still show its fields, and a refusal's line at any level).
const UNTRACED: &str = "openim_bridge::untraced";

/// The `callback` span, at `level`, with `target`.
macro_rules! callback_span_at {
    ($target:expr, $level:expr, $operation_id:expr) => {
        tracing::span!(
            target: $target,
            $level,
            "callback",
            otel.kind = "server",
            openim.operation_id = $operation_id,
            openim.command = tracing::field::Empty,
            openim.key = tracing::field::Empty,
            cloudevents.event_id = tracing::field::Empty,
            cloudevents.event_type = tracing::field::Empty,
        )
    };
}

/// The `callback` span of one request, continuing `incoming`'s trace, and
/// whether the trace is recorded (head sampling, decided here before any
/// span exists: `tracing.sampling_ratio` or `OTEL_TRACES_SAMPLER`).
///
/// The span of a trace not recorded is a DEBUG span: with logs at `info`
/// (the default) it does not exist, so no request pays for formatting its
/// fields; a refusal's log line gets one of its own ([`refusal_span`]).
pub(crate) fn callback_span(operation_id: &str, incoming: Option<&Incoming>) -> (Span, bool) {
    let sampled = openim_otel::sampling().is_some_and(|sampling| {
        sampling.sample(incoming.map(|incoming| incoming.parent.sampled()))
    });
    if !sampled {
        return (
            callback_span_at!(UNTRACED, tracing::Level::DEBUG, operation_id),
            false,
        );
    }
    let span = callback_span_at!("openim_bridge::traces", tracing::Level::INFO, operation_id);
    if let Some(incoming) = incoming {
        let parent =
            opentelemetry::Context::new().with_remote_span_context(incoming.span_context());
        let _ = span.set_parent(parent);
    }
    (span, true)
}

/// The span a refused callback's log line is written in, naming the
/// `command` its body gave: the request's own, or, when that one does not
/// exist (logs at `info`, trace not recorded), an `info` span like it.
pub(crate) fn refusal_span(span: &Span, operation_id: &str, command: Option<&str>) -> Span {
    let span = if span.is_disabled() {
        callback_span_at!(UNTRACED, tracing::Level::INFO, operation_id)
    } else {
        span.clone()
    };
    if let Some(command) = command {
        span.record("openim.command", command);
    }
    span
}

/// Records what the callback became on its span and sets the event's
/// trace context: the span's own when the trace is `sampled` (recorded);
/// else the incoming one as it came, or a new unsampled trace.
pub(crate) fn stamp(event: &mut Event, span: &Span, incoming: Option<&Incoming>, sampled: bool) {
    span.record("openim.command", event.kind.command());
    span.record("openim.key", event.key.as_str());
    span.record("cloudevents.event_id", event.id.as_str());
    span.record("cloudevents.event_type", event.event_type());
    if sampled {
        let context = span.context();
        let own = context.span();
        let own = own.span_context();
        if own.is_valid() {
            let parent = TraceParent {
                trace_id: own.trace_id().to_bytes(),
                parent_id: own.span_id().to_bytes(),
                flags: own.trace_flags().to_u8(),
            };
            event.traceparent = parent.to_string();
            event.tracestate = own.trace_state().header();
            return;
        }
    }
    match incoming {
        Some(incoming) => {
            event.traceparent = incoming.parent.to_string();
            event.tracestate.clone_from(&incoming.state);
        }
        None => {
            event.traceparent = new_root().to_string();
            event.tracestate.clear();
        }
    }
}

/// A new trace no one records (flags 00), so consumers still share ids.
pub(crate) fn new_root() -> TraceParent {
    TraceParent {
        trace_id: fastrand::u128(1..).to_be_bytes(),
        parent_id: fastrand::u64(1..).to_be_bytes(),
        flags: 0,
    }
}

/// The `spool.append` span, when the callback's trace is sampled.
pub(crate) fn append_span(sampled: bool, ack: &'static str) -> Span {
    if sampled {
        tracing::info_span!("spool.append", spool.ack = ack)
    } else {
        Span::none()
    }
}

/// The producer span of one event's publication, a child of the callback
/// span it was acked in (also after a restart, or in `replay`): `None`
/// span when the trace is not sampled or no tracer runs. OpenIM's command,
/// operation id and the key are on the parent `callback` span.
pub(crate) fn send_span(event: &Event, system: &'static str, destination: &str) -> Span {
    if !openim_otel::enabled() {
        return Span::none();
    }
    let Some(parent) = TraceParent::parse(&event.traceparent).filter(TraceParent::sampled) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        "send",
        otel.name = format!("send {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.destination.name = destination,
        cloudevents.event_id = event.id.as_str(),
        cloudevents.event_type = event.event_type(),
    );
    let context = parent.span_context(Some(&event.tracestate));
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
    span
}

/// A span event: a delivery of this event failed and it will be sent again.
pub(crate) fn delivery_failed(span: &Span, attempt: u32, cause: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.add_event(
            "delivery failed",
            vec![
                KeyValue::new("attempt", i64::from(attempt)),
                KeyValue::new("error.message", cause.to_string()),
            ],
        );
    }
}

/// A span event: the broker refused the event for good; it went to the
/// dead-letter file.
pub(crate) fn dead_lettered(span: &Span, class: &'static str, code: Option<&str>) {
    if !span.is_disabled() {
        let mut attributes = vec![KeyValue::new("dead_letter.class", class)];
        if let Some(code) = code {
            attributes.push(KeyValue::new("error.type", code.to_owned()));
        }
        span.add_event("dead-lettered", attributes);
        span.set_status(opentelemetry::trace::Status::error("refused by the broker"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_context_is_read_and_a_bad_one_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
        let incoming = Incoming::from_headers(&headers).unwrap();
        assert!(incoming.parent.sampled());
        assert_eq!(incoming.state, "congo=t61rcWkgMzE");
        headers.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        assert!(Incoming::from_headers(&headers).is_none());
    }

    #[test]
    fn the_untraced_target_is_the_one_the_tracer_skips() {
        assert_eq!(
            UNTRACED,
            format!("openim_bridge::{}", openim_otel::UNTRACED)
        );
    }

    /// With logs at `info` an unsampled request has no span to fill in; a
    /// refusal's line still names the operation and the body's command.
    #[test]
    fn an_unsampled_callback_costs_no_span_at_info_but_a_refusal_is_named() {
        let out = openim_bridge_test_kit::SharedBuffer::default();
        let writer = {
            let out = out.clone();
            move || out.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let (span, sampled) = callback_span("op-1", None);
            assert!(!sampled);
            assert!(span.is_disabled(), "a DEBUG span is left out at info");
            let refusal = refusal_span(&span, "op-1", Some("callbackAfterSendGroupMsgCommand"));
            assert!(!refusal.is_disabled());
            refusal.in_scope(|| tracing::warn!("callback refused"));
        });
        let (text, _) = out.lines();
        assert!(
            text.contains(r#"callback{otel.kind="server" openim.operation_id="op-1" openim.command="callbackAfterSendGroupMsgCommand"}"#),
            "{text}"
        );
    }

    #[test]
    fn new_roots_are_valid_and_unsampled() {
        let root = new_root();
        let parsed = TraceParent::parse(&root.to_string()).unwrap();
        assert_eq!(parsed, root);
        assert!(!root.sampled());
        assert_ne!(new_root().trace_id, root.trace_id);
    }
}
