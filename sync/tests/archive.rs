//! From OpenIM's request to a row in PostgreSQL: a real bridge publishes to
//! a real broker (Tansu, RabbitMQ), openim-sync consumes into the machine's
//! PostgreSQL (a schema of each test's own), and the archive must hold each
//! message once, with its seq, its revoke (sent before the message's seq
//! was known) and the read receipts; a callback posted twice is one row.
//!
//! Brokers: `OPENIM_BRIDGE_TEST_KAFKA`, `OPENIM_BRIDGE_TEST_AMQP` (set by
//! `scripts/test`); PostgreSQL: `OPENIM_SYNC_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`).

mod common;

use std::time::Duration;

use common::{amqp_url, fixture, postgres_url, unique};
use openim_bridge::settings::SinkKind;
use openim_sync::settings::{Settings, SourceKind};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

/// A bridge in this process, publishing as `configure` says.
async fn bridge(
    configure: impl FnOnce(&mut openim_bridge::Settings),
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut settings = openim_bridge::Settings::default();
    settings.spool.dir = std::env::temp_dir().join(unique("openim-sync-spool"));
    settings.shutdown.ready_delay_ms = 0;
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = openim_bridge::App::start(settings.validate().unwrap(), listener)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

/// POSTs `body` as OpenIM does; returns the reply's body.
async fn post(addr: std::net::SocketAddr, body: &Value) -> Value {
    let command = body["callbackCommand"].as_str().unwrap();
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /openim/{command} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let json = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// The callbacks of a short chat in group `group`: two messages, the
/// second revoked before its seq was known, one posted twice, each saved
/// with its seq, and a 1:1 read receipt.
fn chat(group: &str) -> (Vec<Value>, [String; 2]) {
    let ids = [format!("{group}-m1"), format!("{group}-m2")];
    let sent = |id: &str, text: &str| {
        let mut body = fixture("after_send_group_msg_01_text_ios.json");
        body["serverMsgID"] = id.into();
        body["groupID"] = group.into();
        body["content"] = json!({"content": text}).to_string().into();
        body
    };
    let saved = |id: &str, seq: u32| {
        let mut body = fixture("callbacks/callbackAfterMsgSaveDBCommand.json");
        body["serverMsgID"] = id.into();
        body["groupID"] = group.into();
        body["seq"] = seq.into();
        body
    };
    let mut revoke = fixture("callbacks/callbackBeforeAfterMsgCommand.json");
    revoke["conversationID"] = format!("sg_{group}").into();
    revoke["seq"] = 2.into();
    let mut read = fixture("callbacks/callbackAfterSingleMsgReadCommand.json");
    read["userID"] = format!("{group}-reader").into();
    let callbacks = vec![
        sent(&ids[0], "first"),
        sent(&ids[0], "first"), // OpenIM posted it twice
        sent(&ids[1], "second"),
        revoke, // before the second message's seq is known
        saved(&ids[0], 1),
        saved(&ids[1], 2),
        read,
    ];
    (callbacks, ids)
}

/// Runs openim-sync in this process until the returned sender fires.
fn sync(
    settings: Settings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        openim_sync::run(settings, listener, async move {
            let _ = stopped.await;
        })
        .await;
    });
    (stop, task)
}

async fn postgres() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), NoTls)
        .await
        .expect("PostgreSQL (scripts/test starts it; or set OPENIM_SYNC_TEST_POSTGRES)");
    tokio::spawn(connection);
    client
}

/// Waits until the archive in `schema` holds what `chat` sent, then checks
/// it row by row.
async fn assert_archive(client: &tokio_postgres::Client, schema: &str, ids: &[String; 2]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let applied = loop {
        let revoked = client
            .query_opt(
                &format!(
                    "SELECT revoked_at IS NOT NULL FROM {schema}.messages WHERE server_msg_id = $1"
                ),
                &[&ids[1]],
            )
            .await
            .ok()
            .flatten()
            .map(|row| row.get::<_, bool>(0));
        if revoked == Some(true) {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(applied, "the revoke was never applied");
    let rows = client
        .query(
            &format!(
                "SELECT server_msg_id, content, seq, revoked_at IS NOT NULL, conversation_id
                 FROM {schema}.messages ORDER BY seq"
            ),
            &[],
        )
        .await
        .unwrap();
    let messages: Vec<(String, String, i64, bool, String)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].0, ids[0]);
    assert!(
        messages[0].1.contains("first") && !messages[0].3,
        "{messages:?}"
    );
    assert_eq!((messages[0].2, messages[1].2), (1, 2));
    assert!(
        messages[1].1.contains("second") && messages[1].3,
        "{messages:?}"
    );
    assert!(messages[1].4.starts_with("sg_"));
    let count = |table: &str| {
        let sql = format!("SELECT count(*) FROM {schema}.{table}");
        async move { client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // Six distinct events (the message posted twice is one), one receipt,
    // one revoke, applied.
    assert_eq!(count("events").await, 6);
    assert_eq!(count("read_receipts").await, 1);
    assert_eq!(count("revokes WHERE applied_at IS NOT NULL").await, 1);
    // The message posted twice counts once in its conversation.
    let (conversation, messages): (String, i64) = {
        let row = client
            .query_one(
                &format!("SELECT conversation_id, message_count FROM {schema}.conversations"),
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(conversation.starts_with("sg_"));
    assert_eq!(messages, 2);
    let seqs: Vec<i64> = client
        .query_one(&format!("SELECT seqs FROM {schema}.read_receipts"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seqs, [41, 42, 43]);
}

fn sync_settings(schema: &str) -> Settings {
    let mut settings = Settings::default();
    settings.postgres.url = postgres_url();
    settings.postgres.schema = schema.to_owned();
    settings.batch.max_wait_ms = 10;
    settings
}

async fn drop_schema(client: &tokio_postgres::Client, schema: &str) {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_to_postgres_applies_each_event_once_with_its_revoke() {
    let brokers = std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
        .expect("OPENIM_BRIDGE_TEST_KAFKA: run scripts/test");
    let topic = unique("openim-sync");
    openim_bridge_test_kit::kafka::create_topic(&brokers, &[], &topic, 3)
        .await
        .unwrap();
    let (addr, stop_bridge, bridge_task) = bridge(|settings| {
        settings.sink.kind = SinkKind::Kafka;
        settings.kafka.brokers = brokers.clone();
        settings.kafka.topic = topic.clone();
    })
    .await;
    let schema = unique("sync_kafka");
    let mut settings = sync_settings(&schema);
    settings.source.kind = SourceKind::Kafka;
    settings.kafka.brokers = brokers.clone();
    settings.kafka.topics = vec![topic.clone()];
    settings.kafka.group_id = unique("openim-sync");
    let (stop_sync, sync_task) = sync(settings);
    let (callbacks, ids) = chat(&unique("g"));
    for callback in &callbacks {
        assert_eq!(post(addr, callback).await["actionCode"], 0, "{callback}");
    }
    let client = postgres().await;
    assert_archive(&client, &schema, &ids).await;
    let _ = stop_sync.send(());
    sync_task.await.unwrap();
    let _ = stop_bridge.send(());
    bridge_task.await.unwrap();
    drop_schema(&client, &schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_to_postgres_applies_each_event_once_with_its_revoke() {
    let url = amqp_url();
    let exchange = unique("openim-sync");
    let schema = unique("sync_rabbit");
    let mut settings = sync_settings(&schema);
    settings.source.kind = SourceKind::Rabbitmq;
    settings.rabbitmq.url = url.clone();
    settings.rabbitmq.exchange = exchange.clone();
    settings.rabbitmq.queue = exchange.clone();
    // The queue exists (declared by openim-sync) before the bridge publishes.
    let (stop_sync, sync_task) = sync(settings);
    let declared = async {
        loop {
            let queue = openim_bridge_test_kit::amqp::bind(
                &url,
                &exchange,
                "#",
                &exchange,
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
            if queue.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), declared)
        .await
        .expect("openim-sync declares its queue");
    let (addr, stop_bridge, bridge_task) = bridge(|settings| {
        settings.sink.kind = SinkKind::Rabbitmq;
        settings.rabbitmq.url = url.clone();
        settings.rabbitmq.exchange = exchange.clone();
    })
    .await;
    let (callbacks, ids) = chat(&unique("g"));
    for callback in &callbacks {
        assert_eq!(post(addr, callback).await["actionCode"], 0, "{callback}");
    }
    let client = postgres().await;
    assert_archive(&client, &schema, &ids).await;
    let _ = stop_sync.send(());
    sync_task.await.unwrap();
    let _ = stop_bridge.send(());
    bridge_task.await.unwrap();
    openim_bridge_test_kit::amqp::delete(&url, &exchange, Some(&exchange)).await;
    drop_schema(&client, &schema).await;
}
