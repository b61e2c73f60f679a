//! The HTTP contract with OpenIM: exact acks, any URL prefix, and an
//! OpenIM-shaped error for every way a request can be wrong.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use openim_bridge::settings::SinkKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GROUP: &str = "after_send_group_msg_01_text_ios.json";

/// A bridge that can deliver nothing (nothing listens on port 1) with a
/// 2 MiB spool: it only fills.
fn undeliverable_settings() -> openim_bridge::Settings {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = "amqp://guest:guest@127.0.0.1:1/%2f".to_owned();
    settings.http.max_body_bytes = 4096;
    settings.spool.segment_bytes = 1024 * 1024;
    settings.spool.max_bytes = 2 * 1024 * 1024 + 8192;
    settings.shutdown.drain_timeout_ms = 200;
    settings
}

async fn stdout_bridge() -> TestBridge {
    TestBridge::start(test_settings()).await
}

/// Asserts an OpenIM-shaped error reply with `status`, whose errMsg
/// contains `needle`.
fn assert_error(reply: &Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["actionCode"], 1, "{body}");
    assert_eq!(body["errCode"], status, "{body}");
    assert_eq!(body["nextCode"], 0, "{body}");
    let message = body["errMsg"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "errMsg {message:?} lacks {needle:?}"
    );
}

/// POSTs the group-message fixture to its command on a fresh connection.
async fn post_group_message(addr: std::net::SocketAddr) -> Reply {
    post(addr, "/callbackAfterSendGroupMsgCommand", &fixture(GROUP)).await
}

#[tokio::test]
async fn acks_are_exact_on_a_keep_alive_connection_under_any_prefix() {
    let bridge = stdout_bridge().await;
    let body = fixture(GROUP);
    let mut client = OpenImClient::connect(bridge.addr).await;
    for path in [
        "/callbackAfterSendGroupMsgCommand",
        "/callbackExample/callbackAfterSendGroupMsgCommand?contenttype=json",
        "/a/b/callbackAfterSendGroupMsgCommand?key=eyJzZW5kSUQiOiJ1XzEwMDEifQ%3D%3D",
        "/openim/webhook?command=callbackAfterSendGroupMsgCommand",
        "/",
    ] {
        assert_ack(&client.post(path, &body).await);
    }
    assert_eq!(bridge.stats.snapshot().callbacks_acked, 5);
    bridge.stop().await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let bridge = stdout_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let request = get("/callbackAfterSendGroupMsgCommand");
    let reply = client.send(request).await;
    assert_error(&reply, 405, "POST");
    assert_eq!(reply.headers["allow"], "POST");
    bridge.stop().await;
}

#[tokio::test]
async fn url_and_body_command_must_agree() {
    let bridge = stdout_bridge().await;
    let reply = post(
        bridge.addr,
        "/hook/callbackAfterSendSingleMsgCommand",
        &fixture(GROUP),
    )
    .await;
    assert_error(&reply, 400, "callbackAfterSendSingleMsgCommand");
    let reply = post(
        bridge.addr,
        "/hook?command=callbackAfterSendSingleMsgCommand",
        &fixture(GROUP),
    )
    .await;
    assert_error(&reply, 400, "callbackAfterSendGroupMsgCommand");
    bridge.stop().await;
}

#[tokio::test]
async fn unknown_commands_are_acked_and_published_raw_or_404_when_rejected() {
    let bridge = stdout_bridge().await;
    let body = r#"{"callbackCommand":"callbackAfterSomethingNewCommand","userID":"u_1"}"#;
    let reply = post(bridge.addr, "/callbackAfterSomethingNewCommand", body).await;
    assert_ack(&reply);
    let text = metrics(bridge.addr).await;
    assert!(
        text.contains(r#"openim_bridge_callbacks_total{command="unknown",outcome="acked"} 1"#),
        "{text}"
    );
    bridge.stop().await;

    let mut settings = test_settings();
    settings.http.unknown_commands = openim_bridge::settings::UnknownCommands::Reject;
    let bridge = TestBridge::start(settings).await;
    let reply = post(bridge.addr, "/callbackAfterSomethingNewCommand", body).await;
    assert_error(&reply, 404, "callbackAfterSomethingNewCommand");
    bridge.stop().await;
}

#[tokio::test]
async fn before_callbacks_always_get_continue_and_are_not_published_by_default() {
    let bridge = stdout_bridge().await;
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/callbacks/callbackBeforeAddFriendCommand.json"
    ))
    .unwrap();
    let reply = post(bridge.addr, "/callbackBeforeAddFriendCommand", &body).await;
    assert_ack(&reply);
    // Even a body the bridge cannot read must not block the user's action.
    let reply = post(
        bridge.addr,
        "/callbackBeforeSendGroupMsgCommand",
        "{not json",
    )
    .await;
    assert_ack(&reply);
    let text = metrics(bridge.addr).await;
    assert!(
        text.contains(r#"openim_bridge_callbacks_total{command="callbackBeforeAddFriendCommand",outcome="skipped"} 1"#),
        "{text}"
    );
    assert_eq!(bridge.stats.snapshot().spool_records, 0, "nothing spooled");
    bridge.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_problem() {
    let bridge = stdout_bridge().await;
    let good = fixture(GROUP);
    let cases = [
        ("not json".to_owned(), "not a JSON object"),
        (good[..good.len() / 2].to_owned(), "not a JSON object"),
        ("[1,2]".to_owned(), "not a JSON object"),
        ("{\"groupID\":\"g\"}".to_owned(), "callbackCommand"),
        (
            good.replace("\"senderPlatformID\":1", "\"senderPlatformID\":\"1\""),
            "senderPlatformID",
        ),
        (good.replace("\"seq\":0", "\"seq\":-5"), "seq"),
        (
            good.replace("\"sessionType\":3", "\"sessionType\":2147483648"),
            "sessionType",
        ),
        (
            good.replace("\"sendTime\":1719800000123", "\"sendTime\":\"now\""),
            "sendTime",
        ),
        (
            good.replace("\"groupID\":\"g_3001\"", "\"groupID\":null"),
            "groupID",
        ),
        (
            good.replace(
                "\"serverMsgID\":\"9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91\"",
                "\"serverMsgID\":\"\"",
            ),
            "serverMsgID",
        ),
        (
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "not a JSON object",
        ),
    ];
    let mut client = OpenImClient::connect(bridge.addr).await;
    for (body, needle) in &cases {
        let reply = client.post("/callbackAfterSendGroupMsgCommand", body).await;
        assert_error(&reply, 400, needle);
    }
    let invalid_utf8 = hyper::Request::post("/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .body(Full::new(Bytes::from_static(
            b"{\"callbackCommand\":\"\xff\"}",
        )))
        .unwrap();
    assert_error(&client.send(invalid_utf8).await, 400, "JSON");
    assert_eq!(
        bridge.stats.snapshot().callbacks_invalid,
        cases.len() as u64 + 1
    );
    assert_eq!(bridge.stats.snapshot().callbacks_acked, 0);
    bridge.stop().await;
}

#[tokio::test]
async fn compressed_bodies_are_415() {
    let bridge = stdout_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let request = hyper::Request::post("/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .header("Content-Encoding", "gzip")
        .body(Full::new(Bytes::from(fixture(GROUP))))
        .unwrap();
    assert_error(&client.send(request).await, 415, "gzip");
    bridge.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_chunked() {
    let mut settings = test_settings();
    settings.http.max_body_bytes = 4096;
    let bridge = TestBridge::start(settings).await;
    let big = format!(
        "{{\"callbackCommand\":\"callbackAfterSendGroupMsgCommand\",\"content\":\"{}\"}}",
        "x".repeat(10_000)
    );
    assert_error(
        &post(bridge.addr, "/callbackAfterSendGroupMsgCommand", &big).await,
        413,
        "max_body_bytes",
    );

    // Chunked: no Content-Length, so the limit applies while reading.
    let mut stream = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    let mut request = b"POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        request.extend_from_slice(format!("400\r\n{}\r\n", "x".repeat(0x400)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"errCode\":413"), "{text}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_full_spool_answers_503_and_counts_it() {
    let settings = undeliverable_settings();
    let bridge = TestBridge::start(settings).await;
    let body = fixture(GROUP);
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut acked = 0;
    let refused = loop {
        let reply = client
            .post("/callbackAfterSendGroupMsgCommand", &body)
            .await;
        if reply.status != 200 || acked > 5000 {
            break reply;
        }
        acked += 1;
    };
    assert_error(&refused, 503, "spool is full");
    assert!(acked > 1000, "only {acked} callbacks fit in 2 MiB");
    let stats = bridge.stats.snapshot();
    assert_eq!(
        (stats.callbacks_acked, stats.callbacks_unavailable),
        (acked, 1)
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_is_408() {
    let mut settings = test_settings();
    settings.http.body_read_timeout_ms = 300;
    let bridge = TestBridge::start(settings).await;
    let mut stream = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    // Headers promise 100 bytes; only 10 come.
    let head = b"POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nContent-Length: 100\r\n\r\n{\"callback";
    stream.write_all(head).await.unwrap();
    let mut response = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response)).await;
    let n = read.expect("a reply, not a hang").unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("\"errCode\":408") && text.contains("body_read_timeout_ms"),
        "{text}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let mut settings = test_settings();
    settings.http.max_connections = 2;
    let bridge = TestBridge::start(settings).await;
    let body = fixture(GROUP);
    let mut first = OpenImClient::connect(bridge.addr).await;
    let mut second = OpenImClient::connect(bridge.addr).await;
    assert_ack(&first.post("/callbackAfterSendGroupMsgCommand", &body).await);
    assert_ack(
        &second
            .post("/callbackAfterSendGroupMsgCommand", &body)
            .await,
    );
    // The third connection is not accepted while both others are open...
    let mut third = OpenImClient::connect(bridge.addr).await;
    let third_body = body.clone();
    let waiting = tokio::spawn(async move {
        third
            .post("/callbackAfterSendGroupMsgCommand", &third_body)
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served past the connection limit");
    // ...and is served as soon as one closes.
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_ack(&reply);
    assert_ack(
        &second
            .post("/callbackAfterSendGroupMsgCommand", &body)
            .await,
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_stdout_bridge_is_ready_before_its_publisher_first_runs() {
    // No broker to wait for: ready the moment it listens. (This test's
    // runtime has one thread, so the publisher's task has not run yet
    // when `start` returns.)
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = test_settings().validate().expect("valid settings");
    let app = openim_bridge::App::start(settings, listener)
        .await
        .expect("bridge starts");
    assert!(app.stats().accepted());
    app.run(async {}).await.expect("stops cleanly");
}

#[tokio::test]
async fn health_and_readiness() {
    // Unreachable broker, small spool: it fills, and readiness says so.
    let settings = undeliverable_settings();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let live = client.send(get("/healthz")).await;
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (200, Some("ok"))
    );
    // Never accepted by the broker: not ready (a rolling deploy stalls).
    let waiting = client.send(get("/readyz")).await;
    assert_eq!(
        (waiting.status, waiting.json()["status"].as_str()),
        (503, Some("waiting for the broker"))
    );
    assert_eq!(waiting.json()["broker"], "connecting");
    assert_eq!(waiting.json()["spool_max_bytes"], 2 * 1024 * 1024 + 8192);
    // Callbacks are acked into the spool meanwhile, until it is full.
    // (Readiness of a replica the broker accepted, and a full spool's:
    // the unit tests in src/ingress/probes.rs.)
    let body = fixture(GROUP);
    while is_ack(
        &client
            .post("/callbackAfterSendGroupMsgCommand", &body)
            .await,
    ) {}
    let full = client.send(get("/readyz")).await;
    assert_eq!(full.status, 503);
    let used = full.json()["spool_used_bytes"].as_u64().unwrap();
    assert!(used + 4096 > 2 * 1024 * 1024 + 8192, "{:?}", full.body);
    assert_eq!(client.send(get("/healthz")).await.status, 200);
    bridge.stop().await;
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let bridge = stdout_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let body = fixture(GROUP);
    for _ in 0..3 {
        assert_ack(
            &client
                .post("/callbackAfterSendGroupMsgCommand", &body)
                .await,
        );
    }
    assert_eq!(
        client
            .post("/callbackAfterSendGroupMsgCommand", "{")
            .await
            .status,
        400
    );
    let stats = bridge.stats.clone();
    assert!(
        eventually(Duration::from_secs(5), || stats.snapshot().events_published
            == 3)
        .await
    );
    let request = get("/metrics");
    let reply = client.send(request).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "openim_bridge_callbacks_total{command=\"callbackAfterSendGroupMsgCommand\",outcome=\"acked\"} 3",
        "openim_bridge_callbacks_total{command=\"unknown\",outcome=\"invalid\"} 1",
        "openim_bridge_ack_duration_seconds_count 4",
        "openim_bridge_events_published_total{sink=\"stdout\"} 3",
        "openim_bridge_publish_duration_seconds_count 3",
        "openim_bridge_broker_up 1",
        "openim_bridge_spool_records 0",
        "openim_bridge_events_failed_total{sink=\"stdout\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let spool_bytes: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("openim_bridge_spool_size_bytes "))
        .expect("spool size reported")
        .parse()
        .unwrap();
    assert!(spool_bytes > 0);
    bridge.stop().await;
}

#[tokio::test]
async fn a_shared_secret_is_required_when_set() {
    let token = "s3cret-token-0123456789";
    let mut settings = test_settings();
    settings.http.auth_token = Some(token.to_owned());
    let bridge = TestBridge::start(settings).await;
    let body = fixture(GROUP);
    let mut client = OpenImClient::connect(bridge.addr).await;
    let refused = client
        .post("/openim/callbackAfterSendGroupMsgCommand", &body)
        .await;
    assert_error(&refused, 401, "token");
    assert!(
        !String::from_utf8_lossy(&refused.body).contains(token),
        "the secret leaked into the reply"
    );
    let wrong = client
        .post(
            "/openim/s3cret-token-0123456780/callbackAfterSendGroupMsgCommand",
            &body,
        )
        .await;
    assert_error(&wrong, 401, "token");
    // In webhooks.url as a path segment, as a query parameter, or as a header.
    assert_ack(
        &client
            .post(
                &format!("/openim/{token}/callbackAfterSendGroupMsgCommand"),
                &body,
            )
            .await,
    );
    assert_ack(
        &client
            .post(
                &format!("/openim/callbackAfterSendGroupMsgCommand?token={token}"),
                &body,
            )
            .await,
    );
    let request = hyper::Request::post("/openim/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .header("X-OpenIM-Bridge-Token", token)
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    assert_ack(&client.send(request).await);
    // Health checks need no token.
    let health = get("/healthz");
    assert_eq!(client.send(health).await.status, 200);
    let stats = bridge.stats.snapshot();
    assert_eq!((stats.callbacks_acked, stats.callbacks_invalid), (3, 0));
    let metrics = get("/metrics");
    let text = String::from_utf8(client.send(metrics).await.body.to_vec()).unwrap();
    assert!(
        text.contains(
            "openim_bridge_callbacks_total{command=\"unknown\",outcome=\"unauthorized\"} 2"
        ),
        "{text}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn clients_outside_the_allowlist_get_403() {
    let mut settings = test_settings();
    settings.http.allow_ips = vec!["10.0.0.0/8".to_owned()];
    let bridge = TestBridge::start(settings).await;
    let reply = post_group_message(bridge.addr).await;
    assert_error(&reply, 403, "127.0.0.1");
    bridge.stop().await;

    let mut settings = test_settings();
    settings.http.allow_ips = vec!["10.0.0.0/8".to_owned(), "127.0.0.1".to_owned()];
    let bridge = TestBridge::start(settings).await;
    assert_ack(&post_group_message(bridge.addr).await);
    bridge.stop().await;
}

#[tokio::test]
async fn stalled_headers_close_the_connection_and_are_counted() {
    let mut settings = test_settings();
    settings.http.header_read_timeout_ms = 300;
    let bridge = TestBridge::start(settings).await;
    let mut stream = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    stream
        .write_all(b"POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bri")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection was not closed");
    let stats = bridge.stats.clone();
    let counted = || stats.snapshot().header_timeouts == 1;
    assert!(eventually(Duration::from_secs(2), counted).await);
    // Well-behaved clients are still served.
    assert_ack(&post_group_message(bridge.addr).await);
    bridge.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let bridge = stdout_bridge().await;
    let body = fixture(GROUP);
    let one = format!(
        "POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let bad = "POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nContent-Length: 1\r\n\r\n{";
    let mut stream = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    // Three requests in one write: ack, 400, ack.
    stream
        .write_all(format!("{one}{bad}{one}").as_bytes())
        .await
        .unwrap();
    let mut received = String::new();
    let mut buf = vec![0; 8192];
    while received.matches("HTTP/1.1 ").count() < 3 || !received.ends_with('}') {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("all three answered")
            .unwrap();
        assert!(n > 0, "connection closed after: {received}");
        received.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let statuses: Vec<_> = received
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &received[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400", "200"], "{received}");
    assert_eq!(received.matches(ACK).count(), 2, "{received}");
    bridge.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_honoured() {
    let bridge = stdout_bridge().await;
    let body = fixture(GROUP);
    let mut stream = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    let head = format!(
        "POST /callbackAfterSendGroupMsgCommand HTTP/1.1\r\nHost: bridge\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut received = String::new();
    while !received.ends_with('}') {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("ack")
            .unwrap();
        assert!(n > 0);
        received.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        received.starts_with("HTTP/1.1 200") && received.ends_with(ACK),
        "{received}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn thousands_of_idle_connections_do_not_starve_a_real_client() {
    let bridge = stdout_bridge().await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(tokio::net::TcpStream::connect(bridge.addr).await.unwrap());
    }
    let body = fixture(GROUP);
    let mut client = OpenImClient::connect(bridge.addr).await;
    for _ in 0..20 {
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            client.post("/callbackAfterSendGroupMsgCommand", &body),
        )
        .await
        .expect("answered despite 2000 idle connections");
        assert_ack(&reply);
    }
    drop(idle);
    bridge.stop().await;
}

#[tokio::test]
async fn refused_callbacks_are_kept_with_their_reason() {
    let bridge = stdout_bridge().await;
    let bad = fixture(GROUP).replace("\"seq\":0", "\"seq\":-1");
    let reply = post(
        bridge.addr,
        "/openim/callbackAfterSendGroupMsgCommand",
        &bad,
    )
    .await;
    assert_error(&reply, 400, "seq");
    let log = invalid_log(&bridge.spool).await;
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["status"], 400);
    assert_eq!(line["path"], "/openim/callbackAfterSendGroupMsgCommand");
    assert_eq!(line["operation_id"], "1719800000123456789");
    assert!(line["reason"].as_str().unwrap().contains("seq"));
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(line["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, bad.as_bytes(), "exact bytes kept for replay");
    bridge.stop().await;
}
