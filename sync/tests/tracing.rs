//! One trace from OpenIM's request to the archive's commit: the bridge
//! binary (exporting over OTLP/gRPC) publishes to Kafka, openim-sync
//! (exporting over OTLP/HTTP, configured by `OTEL_*` variables only)
//! applies the event in a transaction whose span is linked to the span the
//! event was acked in, through the `traceparent` the consumer kit reads.
//! Both export to a receiver in this process (opentelemetry-proto).
//!
//! Brokers: `OPENIM_BRIDGE_TEST_KAFKA` (set by `scripts/test`);
//! PostgreSQL: `OPENIM_SYNC_TEST_POSTGRES`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{bridge_binary, fixture, postgres_url, unique};
use openim_bridge_test_kit::otlp::{Received, Receiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

/// OTLP span kinds.
const SERVER: i32 = 2;
const CONSUMER: i32 = 5;

/// Killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs `body` with OpenIM's `traceparent`; the reply's body.
async fn post_traced(port: u16, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nOperationid: op-1\r\ntraceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_from_openims_request_through_kafka_to_the_archives_commit() {
    let brokers = std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
        .expect("OPENIM_BRIDGE_TEST_KAFKA: run scripts/test");
    let topic = unique("traced-sync");
    openim_bridge_test_kit::kafka::create_topic(&brokers, &[], &topic, 3)
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let port = openim_bridge_test_kit::free_port();
    let spool = std::env::temp_dir().join(unique("traced-spool"));
    let _bridge = Proc(
        openim_bridge_test_kit::bridge::command(
            bridge_binary().to_str().unwrap(),
            &format!("127.0.0.1:{port}"),
            &spool,
        )
        .env("OPENIM_BRIDGE__SINK__KIND", "kafka")
        .env("OPENIM_BRIDGE__KAFKA__BROKERS", &brokers)
        .env("OPENIM_BRIDGE__KAFKA__TOPIC", &topic)
        .env("OPENIM_BRIDGE__TRACING__ENDPOINT", receiver.grpc_url())
        .env("OPENIM_BRIDGE__TRACING__PROTOCOL", "grpc")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let schema = unique("sync_traced");
    let _sync = Proc(
        Command::new(env!("CARGO_BIN_EXE_openim-sync"))
            .env_clear()
            .env("OPENIM_SYNC__SOURCE__KIND", "kafka")
            .env("OPENIM_SYNC__KAFKA__BROKERS", &brokers)
            .env("OPENIM_SYNC__KAFKA__TOPICS", &topic)
            .env("OPENIM_SYNC__KAFKA__GROUP_ID", &topic)
            .env("OPENIM_SYNC__POSTGRES__URL", postgres_url())
            .env("OPENIM_SYNC__POSTGRES__SCHEMA", &schema)
            .env("OPENIM_SYNC__HTTP__LISTEN", "127.0.0.1:0")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url())
            .env("OTEL_SERVICE_NAME", "openim-sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut body = fixture("after_send_group_msg_01_text_ios.json");
    let id = unique("traced-msg");
    body["serverMsgID"] = id.clone().into();
    let mut acked = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let reply = post_traced(port, &body.to_string()).await;
            acked = serde_json::from_str::<serde_json::Value>(&reply)
                .is_ok_and(|reply| reply["actionCode"] == 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acked, "the bridge acks the callback");

    // The bridge's callback span, continuing OpenIM's trace.
    let is_callback = |span: &Received| {
        span.span.name == "callback"
            && span.attribute("cloudevents.event_id").as_deref() == Some(id.as_str())
    };
    // openim-sync's batch span, linked to the callback's span.
    let links_to = |span: &Received, callback: &Received| {
        span.service == "openim-sync"
            && span.span.links.iter().any(|link| {
                openim_bridge_test_kit::otlp::hex(&link.trace_id) == callback.trace_id()
                    && openim_bridge_test_kit::otlp::hex(&link.span_id) == callback.span_id()
            })
    };
    let spans = receiver
        .wait_for(Duration::from_secs(60), |spans| {
            spans
                .iter()
                .filter(|span| is_callback(span))
                .any(|callback| {
                    spans.iter().any(|span| links_to(span, callback))
                        && spans.iter().any(|span| {
                            span.span.name.starts_with("send ")
                                && span.parent_id() == callback.span_id()
                        })
                })
        })
        .await;
    let callback = spans
        .iter()
        .find(|span| is_callback(span))
        .unwrap_or_else(|| panic!("no callback span for {id}: {spans:#?}"));
    // docs/tracing.md's picture of a trace comes from here (--no-capture).
    println!("{}", openim_bridge_test_kit::otlp::tree(&spans, TRACE_ID));
    assert_eq!(callback.service, "openim-bridge");
    assert_eq!(callback.span.kind, SERVER);
    assert_eq!(
        (callback.trace_id().as_str(), callback.parent_id().as_str()),
        (TRACE_ID, PARENT_ID)
    );
    let send = spans
        .iter()
        .find(|span| {
            span.span.name == format!("send {topic}") && span.parent_id() == callback.span_id()
        })
        .expect("the publication's span, a child of the callback's");
    assert_eq!(send.attribute("messaging.system").as_deref(), Some("kafka"));
    let process = spans
        .iter()
        .find(|span| links_to(span, callback))
        .unwrap_or_else(|| panic!("no openim-sync span linked to the callback: {spans:#?}"));
    assert_eq!(process.span.kind, CONSUMER);
    assert_eq!(process.span.name, format!("process {topic}"));
    assert_eq!(
        process.attribute("messaging.system").as_deref(),
        Some("kafka")
    );
    assert_eq!(
        process.attribute("messaging.operation.type").as_deref(),
        Some("process")
    );
    assert_eq!(
        process.attribute("db.system.name").as_deref(),
        Some("postgresql")
    );
    assert_eq!(process.attribute("db.namespace"), Some(schema.clone()));
    assert!(process.via == openim_bridge_test_kit::otlp::Via::HttpProtobuf);
    // The batch's span ends with its commit: the event is in the archive.
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.events WHERE id = $1"),
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 1);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}
