//! Traces, with a real exporter: the bridge binary exports over OTLP (gRPC
//! or HTTP/protobuf) to a receiver in this process (`test-kit/src/otlp.rs`,
//! decoding with opentelemetry-proto), and publishes to a real broker. The
//! span tree of one callback is checked, and the `traceparent` each broker
//! message carries: it names the callback's span, in the trace OpenIM's
//! `traceparent` started when it sent one.
//!
//! openim-sync's side (the consumer's span linked to the callback's) is
//! `sync/tests/tracing.rs`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::process::{spawn, terminate};
use common::{amqp_url, assert_ack, group_message, kafka_brokers, metrics, unique, OpenImClient};
use http_body_util::Full;
use openim_bridge_test_kit::otlp::{Received, Receiver};
use openim_events::TraceParent;

/// What OpenIM would send when its own request was traced.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// OTLP span kinds (`opentelemetry.proto.trace.v1.Span.SpanKind`).
const INTERNAL: i32 = 1;
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;

/// POSTs a group message, with OpenIM's `traceparent` when `traced`.
async fn post(addr: std::net::SocketAddr, id: &str, traced: bool) {
    let mut request = hyper::Request::post("/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Operationid", format!("op-{id}"));
    if traced {
        request = request
            .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
            .header("tracestate", "openim=t61rcWkgMzE");
    }
    let body = Full::new(Bytes::from(group_message(id, "g1")));
    let reply = OpenImClient::connect(addr)
        .await
        .send(request.body(body).unwrap())
        .await;
    assert_ack(&reply);
}

/// The bridge's spans of the callback whose event is `id`: (callback,
/// spool.append, send), waiting until all three arrived.
async fn spans_of(receiver: &Receiver, id: &str) -> (Received, Received, Received) {
    let find = |spans: &[Received]| {
        let callback = spans.iter().find(|span| {
            span.span.name == "callback"
                && span.attribute("cloudevents.event_id").as_deref() == Some(id)
        })?;
        let child = |name: &str| {
            spans
                .iter()
                .find(|span| {
                    span.span.name.starts_with(name) && span.parent_id() == callback.span_id()
                })
                .cloned()
        };
        Some((callback.clone(), child("spool.append")?, child("send ")?))
    };
    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| find(spans).is_some())
        .await;
    find(&spans).unwrap_or_else(|| {
        let names: Vec<_> = spans
            .iter()
            .map(|span| {
                (
                    span.span.name.clone(),
                    span.attribute("cloudevents.event_id"),
                )
            })
            .collect();
        panic!("the spans of {id} did not all arrive; received: {names:?}")
    })
}

/// Checks the tree of one callback, and returns the callback span's
/// traceparent (what its event must carry).
fn assert_tree(
    (callback, append, send): &(Received, Received, Received),
    system: &str,
    destination: &str,
) -> String {
    assert_eq!(callback.service, "openim-bridge");
    assert_eq!(callback.span.kind, SERVER);
    assert_eq!(append.span.kind, INTERNAL);
    assert_eq!(send.span.kind, PRODUCER);
    for span in [append, send] {
        assert_eq!(span.trace_id(), callback.trace_id(), "{}", span.span.name);
    }
    let id = callback.attribute("cloudevents.event_id").unwrap();
    assert_eq!(
        callback.attribute("openim.operation_id"),
        Some(format!("op-{id}"))
    );
    assert_eq!(
        callback.attribute("openim.command").as_deref(),
        Some("callbackAfterSendGroupMsgCommand")
    );
    assert_eq!(
        callback.attribute("cloudevents.event_type").as_deref(),
        Some("io.openim.group.message.sent")
    );
    assert_eq!(callback.attribute("openim.key").as_deref(), Some("g1"));
    assert_eq!(send.span.name, format!("send {destination}"));
    assert_eq!(send.attribute("messaging.system").as_deref(), Some(system));
    assert_eq!(
        send.attribute("messaging.operation.type").as_deref(),
        Some("send")
    );
    assert_eq!(
        send.attribute("messaging.destination.name").as_deref(),
        Some(destination)
    );
    assert_eq!(send.attribute("cloudevents.event_id"), Some(id));
    // The publication ends at the broker's confirm: after the ack's append.
    assert!(send.span.end_time_unix_nano >= append.span.end_time_unix_nano);
    format!("00-{}-{}-01", callback.trace_id(), callback.span_id())
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_records_carry_the_callbacks_trace_and_openims_traceparent_is_continued() {
    let brokers = kafka_brokers();
    let topic = unique("traced");
    common::kafka::create_topic(&brokers, &topic, 3).await;
    let receiver = Receiver::start().await;
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", &brokers),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", &topic),
        ("OPENIM_BRIDGE__TRACING__ENDPOINT", &receiver.grpc_url()),
        ("OPENIM_BRIDGE__TRACING__PROTOCOL", "grpc"),
    ]);
    post(bridge.addr, "traced-1", true).await;
    post(bridge.addr, "untraced-1", false).await;

    let traced = spans_of(&receiver, "traced-1").await;
    let untraced = spans_of(&receiver, "untraced-1").await;
    assert!(traced.0.via == openim_bridge_test_kit::otlp::Via::Grpc);
    // OpenIM's trace is continued: same trace, its span the parent.
    assert_eq!(traced.0.trace_id(), TRACE_ID);
    assert_eq!(traced.0.parent_id(), PARENT_ID);
    // Without one, the trace starts at the callback.
    assert_ne!(untraced.0.trace_id(), TRACE_ID);
    assert_eq!(untraced.0.parent_id(), "");
    let expected = [
        ("traced-1", assert_tree(&traced, "kafka", &topic)),
        ("untraced-1", assert_tree(&untraced, "kafka", &topic)),
    ];

    let records = common::kafka::read(&brokers, &topic, 3, 2, Duration::from_secs(30));
    assert_eq!(records.len(), 2);
    for (id, traceparent) in expected {
        let record = records
            .iter()
            .find(|record| record.header("ce_id") == id)
            .unwrap();
        assert_eq!(record.header("ce_traceparent"), traceparent, "{id}");
        // The consumer kit reads it.
        let event = record.event.as_ref().unwrap();
        assert_eq!(
            event.trace_parent().map(|parent| parent.to_string()),
            Some(traceparent)
        );
    }
    let traced = records
        .iter()
        .find(|r| r.header("ce_id") == "traced-1")
        .unwrap();
    assert_eq!(traced.header("ce_tracestate"), "openim=t61rcWkgMzE");
    assert!(records
        .iter()
        .find(|r| r.header("ce_id") == "untraced-1")
        .unwrap()
        .headers
        .iter()
        .all(|(name, _)| name != "ce_tracestate"));
    assert!(terminate(bridge.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_messages_carry_the_trace_exported_over_http_protobuf() {
    let url = amqp_url();
    let exchange = unique("traced");
    let mut binding = common::rabbitmq::Binding::new(&url, &exchange, "#").await;
    let receiver = Receiver::start().await;
    // Configured the standard way: OTEL_* variables only.
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__URL", &url),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", &exchange),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_SERVICE_NAME", "openim-bridge"),
    ]);
    post(bridge.addr, "amqp-1", true).await;
    let spans = spans_of(&receiver, "amqp-1").await;
    assert!(spans.0.via == openim_bridge_test_kit::otlp::Via::HttpProtobuf);
    assert_eq!(spans.0.trace_id(), TRACE_ID);
    let traceparent = assert_tree(&spans, "rabbitmq", &exchange);
    let deliveries = binding.read(1, Duration::from_secs(30)).await;
    assert_eq!(deliveries.len(), 1);
    let event = openim_events::Event::from_amqp(&deliveries[0]).unwrap();
    assert_eq!(event.traceparent.as_deref(), Some(traceparent.as_str()));
    assert_eq!(event.tracestate.as_deref(), Some("openim=t61rcWkgMzE"));
    assert!(event.trace_parent().is_some_and(|parent| parent.sampled()));
    assert!(terminate(bridge.child).success());
    binding.delete_exchange(&exchange).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_tracer_every_event_still_carries_a_traceparent() {
    let bridge = spawn(&[]);
    post(bridge.addr, "plain-1", true).await;
    post(bridge.addr, "plain-2", false).await;
    let lines: Vec<serde_json::Value> = (0..2)
        .map(|_| {
            let line = bridge.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    let of = |id: &str| {
        let line = lines.iter().find(|line| line["id"] == id).unwrap();
        TraceParent::parse(line["traceparent"].as_str().unwrap()).unwrap()
    };
    // Passed on as it came: this bridge records no span of its own.
    assert_eq!(
        of("plain-1").to_string(),
        format!("00-{TRACE_ID}-{PARENT_ID}-01")
    );
    // A new trace no one records.
    assert!(!of("plain-2").sampled());
    assert_ne!(
        openim_bridge_test_kit::otlp::hex(&of("plain-2").trace_id),
        TRACE_ID
    );
    assert!(terminate(bridge.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_collector_down_every_callback_is_acked_and_its_spans_are_dropped_and_counted() {
    // Nothing listens there: every export fails.
    let down = format!("http://127.0.0.1:{}", common::free_port());
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__TRACING__ENDPOINT", &down),
        ("OPENIM_BRIDGE__TRACING__PROTOCOL", "grpc"),
        ("OPENIM_BRIDGE__TRACING__MAX_QUEUED_SPANS", "64"),
    ]);
    const CALLBACKS: usize = 2000;
    let senders: Vec<_> = (0..2)
        .map(|sender| {
            let addr = bridge.addr;
            tokio::spawn(async move {
                let mut client = OpenImClient::connect(addr).await;
                for n in 0..CALLBACKS / 2 {
                    let body = group_message(&format!("down-{sender}-{n}"), "g1");
                    let reply = client
                        .post("/callbackAfterSendGroupMsgCommand", &body)
                        .await;
                    assert_ack(&reply);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    // Three spans per callback (callback, spool.append, send), each
    // dropped: at the full queue, or when its batch's export failed.
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut text;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        text = metrics(bridge.addr).await;
        let dropped = counter(&text, "openim_bridge_trace_spans_dropped_total");
        if dropped as usize >= 3 * CALLBACKS || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        counter(&text, "openim_bridge_trace_spans_dropped_total") as usize,
        3 * CALLBACKS,
        "{text}"
    );
    assert_eq!(
        counter(&text, "openim_bridge_trace_spans_exported_total"),
        0
    );
    assert!(terminate(bridge.child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_event_is_an_event_of_its_send_span() {
    let url = amqp_url();
    // No queue is bound: RabbitMQ returns the message (unroutable).
    let exchange = unique("traced-unroutable");
    let receiver = Receiver::start().await;
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__URL", &url),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", &exchange),
        ("OPENIM_BRIDGE__TRACING__ENDPOINT", &receiver.grpc_url()),
        ("OPENIM_BRIDGE__TRACING__PROTOCOL", "grpc"),
    ]);
    post(bridge.addr, "lost-1", true).await;
    let (_, _, send) = spans_of(&receiver, "lost-1").await;
    let event = send
        .span
        .events
        .iter()
        .find(|event| event.name == "dead-lettered")
        .unwrap_or_else(|| panic!("events: {:?}", send.event_names()));
    let class = event
        .attributes
        .iter()
        .find(|kv| kv.key == "dead_letter.class")
        .and_then(|kv| kv.value.clone()?.value);
    assert_eq!(
        class,
        Some(opentelemetry_proto_value("unroutable")),
        "{event:?}"
    );
    // STATUS_CODE_ERROR
    assert_eq!(send.span.status.as_ref().map(|status| status.code), Some(2));
    assert!(terminate(bridge.child).success());
    openim_bridge_test_kit::amqp::delete(&url, &exchange, None).await;
}

fn opentelemetry_proto_value(text: &str) -> openim_bridge_test_kit::otlp::AnyValue {
    openim_bridge_test_kit::otlp::AnyValue::StringValue(text.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampling_ratio_of_zero_records_only_traces_openim_sampled() {
    let receiver = Receiver::start().await;
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__TRACING__ENDPOINT", &receiver.http_url()),
        ("OPENIM_BRIDGE__TRACING__SAMPLING_RATIO", "0"),
    ]);
    // Not sampled: a new trace at ratio 0. Posted first, so its spans, if
    // any were made, would be exported before the sampled one's.
    post(bridge.addr, "unsampled-1", false).await;
    // Sampled: OpenIM's traceparent says so (parent-based).
    post(bridge.addr, "sampled-1", true).await;
    let (callback, _, _) = spans_of(&receiver, "sampled-1").await;
    assert_eq!(callback.trace_id(), TRACE_ID);
    let unsampled: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|span| span.attribute("cloudevents.event_id").as_deref() == Some("unsampled-1"))
        .collect();
    assert!(unsampled.is_empty(), "{unsampled:?}");
    // Its event still carries a traceparent, flagged not sampled.
    let lines: Vec<serde_json::Value> = (0..2)
        .map(|_| {
            let line = bridge.stdout.recv_timeout(Duration::from_secs(10)).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    let line = lines
        .iter()
        .find(|line| line["id"] == "unsampled-1")
        .unwrap();
    let parent = TraceParent::parse(line["traceparent"].as_str().unwrap()).unwrap();
    assert!(!parent.sampled());
    assert!(terminate(bridge.child).success());
}
