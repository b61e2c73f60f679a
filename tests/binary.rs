//! The real `openim-bridge` binary: flags, configuration from the
//! environment, the default stdout sink, and SIGTERM.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::process::{spawn, terminate, wait_exit, Running, BIN};
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

/// jemalloc is the process's `malloc` (librdkafka's too: it reads
/// `MALLOC_CONF`, not its prefixed `_RJEM_MALLOC_CONF`) and takes the
/// binary's own options (main.rs).
#[test]
#[cfg(target_os = "linux")]
fn jemalloc_is_the_malloc_with_the_binary_s_options() {
    let output = Command::new(BIN)
        .arg("--version")
        .env("MALLOC_CONF", "confirm_conf:true")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("global variable malloc_conf): \"tcache_max:262144\"")
            && text.contains("Set conf value: tcache_max:262144"),
        "{text}"
    );
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

/// `GET path` on a fresh connection: the status and JSON body, or `None`
/// when nothing answers.
async fn probe(addr: std::net::SocketAddr, path: &str) -> Option<(u16, Value)> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    let reply = OpenImClient::connect(addr).await.send(get(path)).await;
    Some((reply.status, serde_json::from_slice(&reply.body).ok()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_readyz_503_and_keeps_acking_for_the_ready_delay() {
    let bridge = spawn(&[("OPENIM_BRIDGE__SHUTDOWN__READY_DELAY_MS", "3000")]);
    let mut client = OpenImClient::connect(bridge.addr).await;
    assert_eq!(probe(bridge.addr, "/readyz").await.unwrap().0, 200);
    let pid = bridge.child.id();
    let stopped_at = std::time::Instant::now();
    common::process::signal(pid, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Not ready, yet still serving: the load balancer takes it out first.
    let (status, body) = probe(bridge.addr, "/readyz")
        .await
        .expect("still listening");
    assert_eq!(status, 503);
    assert_eq!(body["status"], "shutting down");
    for i in 0..20 {
        let body = group_message(&format!("during-delay-{i}"), "g_1");
        assert_ack(
            &client
                .post("/callbackAfterSendGroupMsgCommand", &body)
                .await,
        );
    }
    let status = wait_exit(bridge.child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let took = stopped_at.elapsed();
    assert!(
        took >= Duration::from_millis(2_900),
        "stopped {took:?} after SIGTERM, before the 3 s ready delay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_skips_the_ready_delay() {
    let bridge = spawn(&[("OPENIM_BRIDGE__SHUTDOWN__READY_DELAY_MS", "60000")]);
    let pid = bridge.child.id();
    common::process::signal(pid, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(probe(bridge.addr, "/readyz").await.unwrap().0, 503);
    let second = std::time::Instant::now();
    common::process::signal(pid, "TERM");
    let status = wait_exit(bridge.child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "a second SIGTERM still waited {:?}",
        second.elapsed()
    );
}

/// The `number`th "callback refused" line the bridge logged (0: the
/// first), waiting at most 5 s for it.
async fn refusal_line(stderr: &Mutex<Vec<String>>, number: usize) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let refusals: Vec<String> = stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains("callback refused"))
                .cloned()
                .collect();
            if let Some(line) = refusals.get(number) {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .ok()
}

/// A refused callback's log line carries the request's span, which names
/// the command the body gave: when it disagrees with the URL (the body is
/// read for its command first), and when a chat message the URL names is
/// unusable (parsed once, straight into its typed form).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_callback_is_logged_with_the_body_s_command() {
    let Running {
        child,
        addr,
        stderr,
        ..
    } = spawn(&[]);
    let group = fixture("after_send_group_msg_01_text_ios.json");
    let unusable = group.replace("\"sendID\":\"u_1001\"", "\"sendID\":\"\"");
    assert_ne!(unusable, group);
    let cases = [
        ("/openim/callbackAfterSendSingleMsgCommand", &group),
        ("/openim/callbackAfterSendGroupMsgCommand", &unusable),
    ];
    for (number, (path, body)) in cases.into_iter().enumerate() {
        let reply = post(addr, path, body).await;
        assert_eq!(reply.status, 400, "{path}");
        // One refusal line per second is logged.
        let refusal = refusal_line(&stderr, number)
            .await
            .unwrap_or_else(|| panic!("no refusal line for {path}"));
        // The span, as text logs print it: callback{... openim.command="..."}.
        assert!(
            refusal.contains("openim.command=\"callbackAfterSendGroupMsgCommand\""),
            "{refusal}"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(terminate(child).success());
}
