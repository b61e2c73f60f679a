//! Shared test helpers: a bridge on port 0, an OpenIM-like HTTP client, and
//! readers for what reached Kafka and RabbitMQ.
//!
//! Brokers: `OPENIM_BRIDGE_TEST_KAFKA` names Kafka bootstrap servers and
//! `OPENIM_BRIDGE_TEST_AMQP` an AMQP URL. `scripts/test` starts Tansu and
//! RabbitMQ and sets both; point them at docker-compose's Apache Kafka and
//! RabbitMQ to run the same suite there.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use openim_bridge::stats::Stats;
use openim_bridge::{App, Settings};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// Kafka bootstrap servers for tests.
pub fn kafka_brokers() -> String {
    std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
        .expect("OPENIM_BRIDGE_TEST_KAFKA is not set: run the suite with scripts/test (it starts Tansu), or point it at a Kafka broker")
}

/// AMQP URL for tests (RabbitMQ runs on every dev and CI machine).
pub fn amqp_url() -> String {
    std::env::var("OPENIM_BRIDGE_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The test fixtures: OpenIM bodies exactly as its encoder writes them.
pub fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

/// One fixture's body.
pub fn fixture(name: &str) -> String {
    fixtures()
        .into_iter()
        .find(|(file, _)| file == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .1
}

/// A fresh spool directory under the system's temp dir.
pub fn spool_dir() -> PathBuf {
    std::env::temp_dir()
        .join("openim-bridge-tests")
        .join(unique("spool"))
}

/// Settings for a test bridge: its own spool, fast retries, short drain.
pub fn test_settings() -> Settings {
    let mut settings = Settings::default();
    settings.spool.dir = spool_dir();
    settings.sink.retry_initial_ms = 20;
    settings.sink.retry_max_ms = 200;
    settings.shutdown.drain_timeout_ms = 10_000;
    settings
}

/// The invalid-callback log of the spool in `spool`, once it holds a
/// line (its own thread writes it shortly after the reply); fails the test
/// after 5 s.
pub async fn invalid_log(spool: &std::path::Path) -> String {
    let path = spool.join("invalid-callbacks.jsonl");
    let written = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&path).is_ok_and(|text| text.ends_with('\n'))
    })
    .await;
    assert!(written, "nothing in {}", path.display());
    std::fs::read_to_string(&path).unwrap()
}

/// Why the bridge refuses to start with `settings`: at validation, or in
/// `App::start` (fails the test if it starts).
pub async fn startup_error(settings: Settings) -> String {
    let settings = match settings.validate() {
        Ok(settings) => settings,
        Err(err) => return err.to_string(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    App::start(settings, listener)
        .await
        .err()
        .expect("startup refuses these settings")
        .to_string()
}

/// A bridge running in this process on 127.0.0.1:0.
pub struct TestBridge {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<Stats>,
    /// Its spool directory.
    pub spool: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), openim_bridge::StartError>>,
}

impl TestBridge {
    /// Starts a bridge with `settings` (its listen address is ignored).
    pub async fn start(settings: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spool = settings.spool.dir.clone();
        let settings = settings.validate().expect("valid settings");
        let app = App::start(settings, listener).await.expect("bridge starts");
        let stats = app.stats();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stats,
            spool,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful shutdown; returns once the publisher drained.
    pub async fn stop(self) {
        let spool = self.stop_keeping_spool().await;
        let _ = std::fs::remove_dir_all(spool);
    }

    /// Graceful shutdown that leaves the spool directory (its dead-letter
    /// and invalid-callback files) in place; returns its path.
    pub async fn stop_keeping_spool(mut self) -> PathBuf {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("bridge stops within 30 s")
            .unwrap()
            .expect("the sink started");
        self.spool
    }
}

/// A reply as OpenIM sees it.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("reply is not JSON ({err}): {:?}", self.body))
    }
}

/// A keep-alive HTTP/1.1 connection sending requests the way OpenIM does.
pub struct OpenImClient {
    sender: SendRequest<Full<Bytes>>,
}

impl OpenImClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    /// POSTs `body` to `path` with OpenIM's headers.
    pub async fn post(&mut self, path: &str, body: &str) -> Reply {
        self.try_post(path, body).await.expect("request failed")
    }

    /// Like [`Self::post`], but a broken connection is an `Err`, not a panic.
    pub async fn try_post(&mut self, path: &str, body: &str) -> Result<Reply, hyper::Error> {
        let operation_id = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["operationID"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let request = hyper::Request::post(path)
            .header("Host", "bridge")
            .header("User-Agent", "Go-http-client/1.1")
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Operationid", operation_id)
            .header("Accept-Encoding", "gzip")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        self.try_send(request).await
    }

    /// Sends any request.
    pub async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> Reply {
        self.try_send(request).await.expect("request failed")
    }

    async fn try_send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// A GET request for `path` (health, readiness, metrics).
pub fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(path)
        .header("Host", "bridge")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub use openim_bridge_test_kit::free_port;

/// The bridge's `GET /metrics` text.
pub async fn metrics(addr: SocketAddr) -> String {
    let reply = OpenImClient::connect(addr)
        .await
        .send(get("/metrics"))
        .await;
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// POSTs one callback on a fresh connection.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    OpenImClient::connect(addr).await.post(path, body).await
}

/// The exact "continue" ack OpenIM expects.
pub const ACK: &str = r#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

/// A group-message callback body with its own `serverMsgID` and group.
pub fn group_message(id: &str, group: &str) -> String {
    let mut body: Value =
        serde_json::from_str(&fixture("after_send_group_msg_01_text_ios.json")).unwrap();
    body["serverMsgID"] = id.into();
    body["groupID"] = group.into();
    body.to_string()
}

/// Whether `reply` is exactly the ack.
pub fn is_ack(reply: &Reply) -> bool {
    reply.status == 200 && reply.body.as_ref() == ACK.as_bytes()
}

/// Asserts `reply` is the ack, byte for byte, as JSON.
pub fn assert_ack(reply: &Reply) {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(std::str::from_utf8(&reply.body).unwrap(), ACK);
    assert_eq!(reply.headers["content-type"], "application/json");
}

/// How each OpenIM wire key appears in the event's `data`.
const FIELD_MAP: [(&str, &str); 20] = [
    ("callbackCommand", "/callback_command"),
    ("operationID", "/operation_id"),
    ("serverMsgID", "/message/server_msg_id"),
    ("clientMsgID", "/message/client_msg_id"),
    ("sendID", "/message/sender_id"),
    ("senderPlatformID", "/message/sender_platform_id"),
    ("senderNickname", "/message/sender_nickname"),
    ("faceURL", "/message/sender_face_url"),
    ("groupID", "/message/group_id"),
    ("recvID", "/message/recv_id"),
    ("sessionType", "/message/session_type"),
    ("msgFrom", "/message/msg_from"),
    ("contentType", "/message/content_type"),
    ("status", "/message/status"),
    ("sendTime", "/message/send_time_ms"),
    ("createTime", "/message/create_time_ms"),
    ("content", "/message/content"),
    ("seq", "/message/seq"),
    ("atUserList", "/message/at_user_ids"),
    ("ex", "/message/ex"),
];

/// Asserts every key of the callback `input` is in the event `data`, with the
/// same value: mapped keys at their documented place, others in
/// `extra_fields`. Fails if anything the sender sent was lost.
pub fn assert_data_carries_input(data: &Value, input: &Value) {
    let input = input.as_object().expect("callback body is an object");
    let map: HashMap<_, _> = FIELD_MAP.into_iter().collect();
    for (key, value) in input {
        let found = match map.get(key.as_str()) {
            Some(pointer) => data.pointer(pointer),
            None => data["extra_fields"].get(key),
        };
        let expected = if key == "atUserList" && value.is_null() {
            &Value::Array(vec![])
        } else {
            value
        };
        assert_eq!(
            found,
            Some(expected),
            "input key {key} in event data {data}"
        );
    }
    assert_eq!(data["event_id"], input["serverMsgID"]);
    assert_eq!(data["schema_version"], 1);
}

/// Asserts `data` matches `schemas/event-v1.schema.json`.
pub fn assert_matches_schema(data: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/event-v1.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(data)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event data violates the schema: {errors:?}\n{data}"
    );
}

/// The Kafka record key / subject a callback body must produce.
pub fn expected_key(input: &Value) -> String {
    if let Some(group) = input["groupID"].as_str() {
        return group.to_owned();
    }
    let (a, b) = (
        input["sendID"].as_str().unwrap(),
        input["recvID"].as_str().unwrap(),
    );
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("si_{low}_{high}")
}

/// The CloudEvents type a callback body must produce.
pub fn expected_type(input: &Value) -> &'static str {
    match input["callbackCommand"].as_str().unwrap() {
        "callbackAfterSendGroupMsgCommand" => "io.openim.group.message.sent",
        "callbackAfterSendSingleMsgCommand" => "io.openim.single.message.sent",
        other => panic!("no event type for {other}"),
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// The bridge's `GET /readyz`.
pub async fn readyz(addr: SocketAddr) -> Reply {
    OpenImClient::connect(addr).await.send(get("/readyz")).await
}

/// A bridge with `settings` is not ready while the broker refuses it, acks callbacks into
/// the spool anyway, and names the reason in `/readyz` and the metrics.
pub async fn refused_for(settings: Settings, reason: openim_bridge::stats::Refusal) {
    let bridge = TestBridge::start(settings).await;
    assert!(
        eventually(Duration::from_secs(30), || bridge.stats.refusal()
            == Some(reason))
        .await,
        "expected a {reason:?} refusal, got {:?}",
        bridge.stats.refusal()
    );
    let ready = readyz(bridge.addr).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "waiting for the broker");
    assert_eq!(
        ready.json()["broker"],
        format!("refused: {}", reason.label())
    );
    let metrics = metrics(bridge.addr).await;
    let gauge = format!(
        "openim_bridge_broker_refused{{reason=\"{}\"}} 1",
        reason.label()
    );
    assert!(metrics.contains(&gauge), "{metrics}");
    assert!(metrics.contains("openim_bridge_broker_up 0"), "{metrics}");
    let reply = post(
        bridge.addr,
        "/callbackAfterSendGroupMsgCommand",
        &group_message(&unique("refused"), "g"),
    )
    .await;
    assert_ack(&reply);
    let counts = bridge.stats.snapshot();
    assert_eq!((counts.callbacks_acked, counts.events_published), (1, 0));
}

pub mod kafka;
pub mod kafka_front;
pub mod process;
pub mod rabbitmq;

/// `value` with its null values left out (absent and null read the same).
pub fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The consumer kit knows the event's type and its typed data is, key by
/// key, the `data` the bridge published; returns that data as JSON.
pub fn assert_kit_decodes(event: &openim_events::Event, published: &Value) -> Value {
    assert!(
        !matches!(event.data, openim_events::EventData::Other(_)),
        "the kit does not know {}",
        event.event_type
    );
    let decoded = event.data.to_json();
    assert_eq!(
        without_nulls(&decoded),
        without_nulls(published),
        "{}: the kit's data differs from the bridge's",
        event.event_type
    );
    decoded
}
