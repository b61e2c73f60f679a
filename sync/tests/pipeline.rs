//! The whole pipeline under faults (the test command's short version):
//! two OpenIM-like senders -> the shipped HAProxy config -> 2 bridges ->
//! Kafka (a Tansu of this test's own) or RabbitMQ -> 2 openim-sync ->
//! PostgreSQL. Messages, their saved callbacks (the seq), revokes (some
//! before the seq is known), a 1:1 read receipt per sender, and some
//! callbacks posted twice, while a bridge and a consumer are killed with
//! `kill -9` and restarted, and the broker is paused (Kafka) or PostgreSQL
//! restarted (RabbitMQ).
//!
//! At the end the archive must hold every acked message once with the
//! content that was acked, every acked revoke applied, and per conversation
//! a message count equal to the distinct message events: an event applied
//! twice (a redelivery the inbox missed) would count twice.
//!
//! `serial_`: it restarts the machine's PostgreSQL and takes both cores;
//! `scripts/test` runs it alone, after the rest. Needs `haproxy` (installed
//! by `scripts/test`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{amqp_url, bridge_binary, fixture, postgres_url, unique};
use openim_bridge_test_kit::haproxy::{self, Ports};
use openim_bridge_test_kit::{free_port, signal};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

/// Environment variables of a process.
type Env = Vec<(String, String)>;

const SENDERS: usize = 2;
const GROUPS_PER_SENDER: usize = 4;

/// Messages per sender: 250 in the test command; `scripts/pipeline-soak`
/// sets `OPENIM_SYNC_SOAK_PER_SENDER`.
fn per_sender() -> usize {
    env_number("OPENIM_SYNC_SOAK_PER_SENDER", 250)
}

/// Rounds of faults while sending: 1 in the test command;
/// `scripts/pipeline-soak` sets `OPENIM_SYNC_SOAK_ROUNDS`.
fn rounds() -> usize {
    env_number("OPENIM_SYNC_SOAK_ROUNDS", 1).max(1)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A process of this test, killed when dropped.
struct Proc {
    child: Option<Child>,
    start: Box<dyn Fn() -> Child + Send>,
}

impl Proc {
    fn new(start: impl Fn() -> Child + Send + 'static) -> Self {
        Self {
            child: Some(start()),
            start: Box::new(start),
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the exit.
    async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            for _ in 0..300 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill_9();
        self.child = Some((self.start)());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// One HTTP request with `Connection: close`; the status and body, or
/// `None` without a reply.
async fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.ok()?;
        let status = reply.split(' ').nth(1)?.parse().ok()?;
        Some((
            status,
            reply
                .split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .ok()?
}

/// Whether `callback` posted through the load balancer was acked.
async fn acked(lb: u16, callback: &Value) -> bool {
    let command = callback["callbackCommand"].as_str().unwrap();
    match request(
        lb,
        "POST",
        &format!("/openim/{command}"),
        &callback.to_string(),
    )
    .await
    {
        Some((200, body)) => serde_json::from_str::<Value>(&body)
            .is_ok_and(|reply| reply["actionCode"] == 0 && reply["errCode"] == 0),
        _ => false,
    }
}

/// What the senders saw acked.
#[derive(Default)]
struct Acked {
    /// id -> (conversation, content) of acked send callbacks.
    sent: HashMap<String, (String, String)>,
    saved: BTreeSet<String>,
    revoked: BTreeSet<String>,
    /// Messages a revoke was posted for, acked or not (a callback whose
    /// reply was lost, e.g. to a kill -9, may still have been spooled and
    /// published: at least once).
    revoke_posted: BTreeSet<String>,
    attempts: usize,
}

/// One OpenIM-like sender: one request at a time, a failed one not sent
/// again.
async fn send(lb: u16, lane: String, sender: usize, acked_by_all: Arc<Mutex<Acked>>) {
    for i in 0..per_sender() {
        let group = format!("{lane}-{sender}-{}", i % GROUPS_PER_SENDER);
        let conversation = format!("sg_{group}");
        let id = format!("{lane}-m-{sender}-{i}");
        let seq = i as u32 + 1;
        let content = json!({"content": format!("text of {id}")}).to_string();
        let mut message = fixture("after_send_group_msg_01_text_ios.json");
        message["serverMsgID"] = id.clone().into();
        message["groupID"] = group.clone().into();
        message["content"] = content.clone().into();
        let mut saved = fixture("callbacks/callbackAfterMsgSaveDBCommand.json");
        saved["serverMsgID"] = id.clone().into();
        saved["groupID"] = group.clone().into();
        saved["content"] = content.clone().into();
        saved["seq"] = seq.into();
        let mut revoke = fixture("callbacks/callbackBeforeAfterMsgCommand.json");
        revoke["conversationID"] = conversation.clone().into();
        revoke["seq"] = seq.into();
        let mut outcome = Acked::default();
        if acked(lb, &message).await {
            outcome
                .sent
                .insert(id.clone(), (conversation.clone(), content));
        }
        if i % 7 == 0 {
            // OpenIM posted it twice.
            acked(lb, &message).await;
        }
        // Some revokes before the seq is known, some after.
        if i % 5 == 0 || i % 5 == 3 {
            outcome.revoke_posted.insert(id.clone());
        }
        if i % 5 == 0 && acked(lb, &revoke).await {
            outcome.revoked.insert(id.clone());
        }
        if acked(lb, &saved).await {
            outcome.saved.insert(id.clone());
        }
        if i % 5 == 3 && acked(lb, &revoke).await {
            outcome.revoked.insert(id.clone());
        }
        let mut all = acked_by_all.lock().unwrap();
        all.sent.extend(outcome.sent);
        all.saved.extend(outcome.saved);
        all.revoked.extend(outcome.revoked);
        all.revoke_posted.extend(outcome.revoke_posted);
        all.attempts += 1;
    }
    let mut read = fixture("callbacks/callbackAfterSingleMsgReadCommand.json");
    read["userID"] = format!("{lane}-reader-{sender}").into();
    acked(lb, &read).await;
}

/// The faults a lane goes through while the senders send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Kafka,
    Rabbit,
}

async fn pipeline(lane: Lane) {
    let name = unique(if lane == Lane::Kafka { "pk" } else { "pr" });
    let work = tempfile::tempdir().unwrap();
    let schema = name.to_lowercase();
    let bridge_bin = bridge_binary();
    // The broker.
    let mut tansu = None;
    let (bridge_env, sync_env): (Env, Env) = match lane {
        Lane::Kafka => {
            let port = free_port();
            let broker = Proc::new(move || {
                openim_bridge_test_kit::kafka::tansu(port, port)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("tansu (scripts/test installs it)")
            });
            let brokers = format!("127.0.0.1:{port}");
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            openim_bridge_test_kit::kafka::create_topic(&brokers, &[], &name, 3)
                .await
                .unwrap();
            tansu = Some(broker);
            (
                vec![
                    ("OPENIM_BRIDGE__SINK__KIND".into(), "kafka".into()),
                    ("OPENIM_BRIDGE__KAFKA__BROKERS".into(), brokers.clone()),
                    ("OPENIM_BRIDGE__KAFKA__TOPIC".into(), name.clone()),
                ],
                vec![
                    ("OPENIM_SYNC__SOURCE__KIND".into(), "kafka".into()),
                    ("OPENIM_SYNC__KAFKA__BROKERS".into(), brokers),
                    ("OPENIM_SYNC__KAFKA__TOPICS".into(), name.clone()),
                    ("OPENIM_SYNC__KAFKA__GROUP_ID".into(), name.clone()),
                    // Tansu 0.6 can leave a restarted member without
                    // partitions (see kafka.resubscribe_idle_ms).
                    (
                        "OPENIM_SYNC__KAFKA__RESUBSCRIBE_IDLE_MS".into(),
                        "4000".into(),
                    ),
                ],
            )
        }
        Lane::Rabbit => {
            let url = amqp_url();
            (
                vec![
                    ("OPENIM_BRIDGE__SINK__KIND".into(), "rabbitmq".into()),
                    ("OPENIM_BRIDGE__RABBITMQ__URL".into(), url.clone()),
                    ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE".into(), name.clone()),
                ],
                vec![
                    ("OPENIM_SYNC__SOURCE__KIND".into(), "rabbitmq".into()),
                    ("OPENIM_SYNC__RABBITMQ__URL".into(), url),
                    ("OPENIM_SYNC__RABBITMQ__EXCHANGE".into(), name.clone()),
                    ("OPENIM_SYNC__RABBITMQ__QUEUE".into(), name.clone()),
                ],
            )
        }
    };
    // Two consumers, each with its own probe port.
    let mut syncs: Vec<Proc> = (0..2)
        .map(|n| {
            let mut env = sync_env.clone();
            env.push(("OPENIM_SYNC__POSTGRES__URL".into(), postgres_url()));
            env.push(("OPENIM_SYNC__POSTGRES__SCHEMA".into(), schema.clone()));
            env.push((
                "OPENIM_SYNC__HTTP__LISTEN".into(),
                format!("127.0.0.1:{}", free_port()),
            ));
            // The proof that this test can fail: with the inbox skipped,
            // a redelivered event is applied twice (see apply.rs).
            if let Some(skip) = std::env::var_os("OPENIM_SYNC_TEST_SKIP_INBOX") {
                env.push((
                    "OPENIM_SYNC_TEST_SKIP_INBOX".into(),
                    skip.to_string_lossy().into_owned(),
                ));
            }
            let log = work.path().join(format!("sync-{n}.log"));
            Proc::new(move || {
                Command::new(env!("CARGO_BIN_EXE_openim-sync"))
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap())
                    .spawn()
                    .unwrap()
            })
        })
        .collect();
    // Two bridges behind the shipped HAProxy config.
    let ports = [free_port(), free_port()];
    let mut bridges: Vec<Proc> = ports
        .iter()
        .enumerate()
        .map(|(n, port)| {
            let mut env = bridge_env.clone();
            env.push((
                "OPENIM_BRIDGE__HTTP__LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ));
            env.push((
                "OPENIM_BRIDGE__SPOOL__DIR".into(),
                work.path().join(format!("spool-{n}")).display().to_string(),
            ));
            let bin = bridge_bin.clone();
            let log = work.path().join(format!("bridge-{n}.log"));
            Proc::new(move || {
                Command::new(&bin)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap())
                    .spawn()
                    .unwrap()
            })
        })
        .collect();
    for port in ports {
        let ready = async {
            while request(port, "GET", "/readyz", "").await.map(|(s, _)| s) != Some(200) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .expect("a bridge is ready");
    }
    let haproxy_ports = Ports {
        frontend: free_port(),
        stats: free_port(),
    };
    let lb = haproxy_ports.frontend;
    let config = work.path().join("haproxy.cfg");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy/haproxy.cfg"),
    )
    .unwrap();
    let servers: Vec<(String, u16)> = ports
        .iter()
        .enumerate()
        .map(|(n, port)| (format!("bridge-{}", n + 1), *port))
        .collect();
    std::fs::write(
        &config,
        haproxy::loopback_config(&shipped, haproxy_ports, &servers, work.path()),
    )
    .unwrap();
    let _haproxy = Proc::new(move || {
        Command::new("haproxy")
            .args(["-W", "-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/test installs it)")
    });
    let up = async {
        while request(lb, "GET", "/readyz", "").await.map(|(s, _)| s) != Some(200) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("HAProxy serves");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Send, and meanwhile the faults.
    let acked_by_all = Arc::new(Mutex::new(Acked::default()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| tokio::spawn(send(lb, name.clone(), sender, Arc::clone(&acked_by_all))))
        .collect();
    let progress = |acked: &Arc<Mutex<Acked>>| acked.lock().unwrap().attempts;
    let at = |n: usize| {
        let acked = Arc::clone(&acked_by_all);
        async move {
            while progress(&acked) < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let total = SENDERS * per_sender();
    let step = total / (rounds() * 3 + 1);
    let mut faults = Vec::new();
    for round in 0..rounds() {
        at(step * (round * 3 + 1)).await;
        faults.push(format!(
            "round {}: kill -9 bridge-1, restarted after 0.3 s",
            round + 1
        ));
        bridges[0].kill_9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        bridges[0].restart();
        at(step * (round * 3 + 2)).await;
        match lane {
            // Tansu 0.6 never evicts a group member killed with kill -9:
            // its partitions stay assigned to it (Apache Kafka hands them
            // over after the session timeout, 10 s in openim-sync). So on
            // Kafka the consumer is stopped with SIGTERM (it leaves the
            // group), and killed with kill -9 on RabbitMQ.
            Lane::Kafka => {
                faults.push(format!(
                    "round {}: SIGTERM openim-sync-1, restarted after 0.5 s",
                    round + 1
                ));
                syncs[0].terminate().await;
            }
            Lane::Rabbit => {
                faults.push(format!(
                    "round {}: kill -9 openim-sync-1, restarted after 0.5 s",
                    round + 1
                ));
                syncs[0].kill_9();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        syncs[0].restart();
        at(step * (round * 3 + 3)).await;
        match lane {
            Lane::Kafka => {
                faults.push(format!(
                    "round {}: Tansu paused (SIGSTOP) for 1 s",
                    round + 1
                ));
                let broker = tansu.as_ref().unwrap().child.as_ref().unwrap().id();
                signal(broker, "STOP");
                tokio::time::sleep(Duration::from_secs(1)).await;
                signal(broker, "CONT");
            }
            Lane::Rabbit => {
                faults.push(format!("round {}: PostgreSQL restarted", round + 1));
                restart_postgres().await;
            }
        }
    }
    for fault in &faults {
        eprintln!("{name}: {fault}");
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked_by_all.lock().unwrap());
    assert!(
        acked.sent.len() > total * 9 / 10,
        "only {} of {total} messages acked",
        acked.sent.len(),
    );
    let expected_revoked: BTreeSet<&String> = acked
        .revoked
        .iter()
        .filter(|id| acked.saved.contains(*id) && acked.sent.contains_key(*id))
        .collect();

    eprintln!(
        "{name}: {} messages acked; waiting for the archive",
        acked.sent.len()
    );
    // The archive catches up.
    let (client, connection) = tokio_postgres::connect(&postgres_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let caught_up = async {
        loop {
            let rows = client
                .query(
                    &format!("SELECT server_msg_id, content, revoked_at IS NOT NULL FROM {schema}.messages"),
                    &[],
                )
                .await
                .unwrap_or_default();
            let present: BTreeMap<String, (String, bool)> = rows
                .iter()
                .map(|row| (row.get(0), (row.get(1), row.get(2))))
                .collect();
            // The read receipts are posted last: wait for them too, or they
            // may still be on their way when they are counted below.
            let receipts: i64 = client
                .query_one(&format!("SELECT count(*) FROM {schema}.read_receipts"), &[])
                .await
                .map_or(0, |row| row.get(0));
            let done = acked.sent.keys().all(|id| present.contains_key(id))
                && expected_revoked
                    .iter()
                    .all(|id| present.get(*id).is_some_and(|m| m.1))
                && receipts >= 1;
            if done {
                break present;
            }
            let missing = acked
                .sent
                .keys()
                .filter(|id| !present.contains_key(*id))
                .count();
            let unrevoked = expected_revoked
                .iter()
                .filter(|id| !present.get(**id).is_some_and(|m| m.1))
                .count();
            eprintln!("{name}: {missing} messages missing, {unrevoked} revokes not applied");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let present = match tokio::time::timeout(Duration::from_secs(120), caught_up).await {
        Ok(present) => present,
        Err(_) => panic!(
            "the archive did not catch up in 120 s (logs in {}: kept)",
            work.keep().display()
        ),
    };
    // Every acked message once, with what was acked; revoked only where a
    // revoke was posted.
    for (id, (_, content)) in &acked.sent {
        assert_eq!(&present[id].0, content, "{id}");
    }
    for (id, (_, revoked)) in &present {
        if *revoked {
            assert!(
                acked.revoke_posted.contains(id),
                "{id} revoked, but no revoke was posted for it"
            );
        }
    }
    // Applied once each: per conversation, the message count equals the
    // distinct message events in the inbox.
    let counts = client
        .query(
            &format!(
                "SELECT c.conversation_id, c.message_count,
                        (SELECT count(*) FROM {schema}.events e
                         WHERE e.type = 'io.openim.group.message.sent'
                           AND e.data->>'conversation_id' = c.conversation_id)
                 FROM {schema}.conversations c"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), SENDERS * GROUPS_PER_SENDER);
    for row in &counts {
        let (conversation, applied, distinct): (String, i64, i64) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            applied, distinct,
            "{conversation}: {applied} applications of {distinct} distinct message events"
        );
    }
    let receipts: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.read_receipts"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(receipts >= 1);
    let line = format!(
        "| {} | {} | {} of {} | {} | {} | 0 | 0 |",
        if lane == Lane::Kafka {
            "Kafka (Tansu)"
        } else {
            "RabbitMQ"
        },
        faults.len(),
        acked.sent.len(),
        total,
        expected_revoked.len(),
        counts.len(),
    );
    eprintln!(
        "{name}: {} messages acked, {} revokes applied, {} conversations",
        acked.sent.len(),
        expected_revoked.len(),
        counts.len()
    );
    if let Some(report) = std::env::var_os("OPENIM_SYNC_SOAK_REPORT") {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(report)
            .unwrap();
        writeln!(file, "{line}").unwrap();
        for fault in &faults {
            writeln!(file, "|  | {fault} | | | | | |").unwrap();
        }
    }
    drop(syncs);
    drop(bridges);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    if lane == Lane::Rabbit {
        let url = std::env::var("OPENIM_BRIDGE_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        openim_bridge_test_kit::amqp::delete(&url, &name, Some(&name)).await;
    }
}

/// Restarts the machine's PostgreSQL (only the local cluster: an external
/// one named by OPENIM_SYNC_TEST_POSTGRES is left alone).
async fn restart_postgres() {
    if std::env::var("OPENIM_SYNC_TEST_POSTGRES").is_ok_and(|url| !url.contains("127.0.0.1")) {
        eprintln!("PostgreSQL is external: not restarted");
        return;
    }
    let clusters = Command::new("pg_lsclusters").arg("-h").output().unwrap();
    let line = String::from_utf8_lossy(&clusters.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut words = line.split_whitespace();
    let (version, cluster) = (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    );
    let restarted = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args([version.as_str(), cluster.as_str(), "restart"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(restarted.success(), "pg_ctlcluster restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_pipeline_through_kafka_under_faults_applies_each_event_once() {
    pipeline(Lane::Kafka).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_pipeline_through_rabbitmq_under_faults_applies_each_event_once() {
    pipeline(Lane::Rabbit).await;
}
