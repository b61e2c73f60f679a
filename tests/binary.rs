//! The real `openim-bridge` binary: flags, configuration from the
//! environment, the default stdout sink, and SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{spawn, terminate, Running, BIN};
use common::*;
use serde_json::Value;

#[test]
fn help_documents_the_flags_and_the_environment() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--config",
        "--log-json",
        "--check-config",
        "OPENIM_BRIDGE__",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn invalid_configuration_exits_2_naming_the_key() {
    let output = Command::new(BIN)
        .env_clear()
        .env("OPENIM_BRIDGE__SINK__KIND", "kafak")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.contains("sink.kind") && text.contains("kafak"),
        "{text}"
    );

    let output = Command::new(BIN)
        .args(["--config", "/nonexistent/bridge.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("/nonexistent/bridge.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn default_stdout_sink_prints_cloudevents_and_sigterm_exits_0() {
    let Running {
        child,
        addr,
        stdout: lines,
        ..
    } = spawn(&[]);
    let body = fixture("after_send_group_msg_02_attext_android.json");
    assert_ack(
        &post(
            addr,
            "/callbackExample/callbackAfterSendGroupMsgCommand",
            &body,
        )
        .await,
    );
    let line = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a line on stdout");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], "4b1a0c9d8e7f6a5b4c3d2e1f0a9b8c7d");
    assert_eq!(event["type"], "io.openim.group.message.sent");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_data_carries_input(&event["data"], &serde_json::from_str(&body).unwrap());
    assert!(terminate(child).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_sink_from_environment_variables_only() {
    let brokers = kafka_brokers();
    let topic = unique("openim-bin");
    common::kafka::create_topic(&brokers, &topic, 3).await;
    let Running { child, addr, .. } = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", &brokers),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", &topic),
    ]);
    let body = fixture("after_send_single_msg_01_text.json");
    assert_ack(&post(addr, "/callbackAfterSendSingleMsgCommand", &body).await);
    assert!(terminate(child).success());
    let records = common::kafka::read(&brokers, &topic, 3, 1, Duration::from_secs(20));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, "si_u_1001_u_1002");
    assert_eq!(
        records[0].header("ce_id"),
        "0b2676769e9eceb4983cb12966586f48"
    );
}

#[test]
fn startup_failure_is_logged_as_json_and_exits_nonzero() {
    let topic = unique("openim-missing");
    let output = Command::new(BIN)
        .arg("--log-json")
        .env_clear()
        .env("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("OPENIM_BRIDGE__SPOOL__DIR", spool_dir())
        .env("OPENIM_BRIDGE__SINK__KIND", "kafka")
        .env("OPENIM_BRIDGE__KAFKA__BROKERS", kafka_brokers())
        .env("OPENIM_BRIDGE__KAFKA__TOPIC", &topic)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let error = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no JSON error line in:\n{stderr}"));
    let cause = error["fields"]["cause"].as_str().unwrap();
    assert!(
        cause.contains(&topic) && cause.contains("does not exist"),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_host_get_their_own_default_spools() {
    let workdir = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let child = Command::new(BIN)
            .env_clear()
            .env("OPENIM_BRIDGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .current_dir(workdir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        replicas.push((child, port));
    }
    let body = fixture("after_send_group_msg_01_text_ios.json");
    for (_, port) in &replicas {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
        let mut reply = None;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                reply = Some(post(addr, "/callbackAfterSendGroupMsgCommand", &body).await);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_ack(&reply.expect("replica listening"));
        assert!(
            workdir.path().join("spool").join(port.to_string()).is_dir(),
            "spool/{port}"
        );
    }
    for (child, _) in replicas {
        assert!(terminate(child).success());
    }
}
