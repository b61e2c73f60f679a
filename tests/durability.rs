//! Nothing acked is lost: `kill -9` mid-stream and broker outages, with the
//! real binary and real brokers.
//!
//! Tests named `serial_*` stop the shared RabbitMQ; `scripts/test` runs them
//! one at a time after everything else.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::{create_topic, read_until, OwnTansu};
use common::process::{signal, spawn, terminate};
use common::rabbitmq::{header, Binding};
use common::*;
use openim_bridge::settings::SinkKind;

/// Sends group messages from 4 keep-alive connections until the bridge
/// stops answering; sends `sig` (`KILL`, `TERM`) to `pid` once `kill_after`
/// were acked. Returns the acked ids.
async fn send_until_signalled(
    addr: std::net::SocketAddr,
    pid: u32,
    sig: &'static str,
    run: &str,
    kill_after: usize,
) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (acked, count, run) = (Arc::clone(&acked), Arc::clone(&count), run.to_owned());
        workers.push(tokio::spawn(async move {
            let mut client = OpenImClient::connect(addr).await;
            for i in 0..10_000 {
                let id = format!("{run}-{worker}-{i:05}");
                let body = group_message(&id, &format!("g_{}", i % 7));
                match client
                    .try_post("/callbackAfterSendGroupMsgCommand", &body)
                    .await
                {
                    Ok(reply) if is_ack(&reply) => {
                        acked.lock().unwrap().push(id);
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                            signal(pid, sig);
                        }
                    }
                    // 503 while shutting down, or the connection died: stop.
                    _ => break,
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= kill_after,
        "killed after {kill_after} acks, saw {}",
        acked.len()
    );
    acked
}

fn missing<'a>(acked: &'a [String], seen: &HashSet<String>) -> Vec<&'a String> {
    acked.iter().filter(|id| !seen.contains(*id)).collect()
}

/// Runs the binary with `env`, kills it with SIGKILL after `kill_after`
/// acks, and starts it again on the same spool. Returns the acked ids and
/// the restarted bridge.
async fn crash_and_restart(
    env: &[(&str, &str)],
    run: &str,
    kill_after: usize,
) -> (Vec<String>, std::process::Child) {
    let first = spawn(env);
    let acked = send_until_signalled(first.addr, first.child.id(), "KILL", run, kill_after).await;
    (acked, spawn(env).child)
}

/// Reads `topic` until every id in `ids` is there (60 s at most); fails
/// naming what is missing. Returns the records read.
fn assert_all_reach_kafka(
    brokers: &str,
    topic: &str,
    ids: &[String],
) -> Vec<common::kafka::Record> {
    let records = read_until(brokers, topic, 3, Duration::from_secs(60), |records| {
        let seen: HashSet<_> = records.iter().map(|r| r.header("ce_id")).collect();
        ids.iter().all(|id| seen.contains(id.as_str()))
    });
    let seen: HashSet<String> = records
        .iter()
        .map(|r| r.header("ce_id").to_owned())
        .collect();
    assert_none_lost(ids, &seen);
    records
}

fn assert_none_lost(acked: &[String], seen: &HashSet<String>) {
    let lost = missing(acked, seen);
    assert!(
        lost.is_empty(),
        "{} of {} acked events missing, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
}

/// A fresh exchange named after `prefix`, the AMQP URL, and a durable
/// queue of the same name bound to it (it survives a broker restart).
async fn durable_exchange(prefix: &str) -> (String, String, Binding) {
    let exchange = unique(prefix);
    let url = amqp_url();
    let binding = Binding::durable(&url, &exchange, &exchange).await;
    (exchange, url, binding)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_no_acked_event_kafka() {
    kill_9_kafka("durable").await;
}

/// `written` acks once the record is in the file: a crash of the bridge
/// (not of the machine) loses nothing either.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_written_mode_loses_no_acked_event() {
    kill_9_kafka("written").await;
}

async fn kill_9_kafka(ack: &str) {
    let brokers = kafka_brokers();
    let topic = unique("openim-crash");
    create_topic(&brokers, &topic, 3).await;
    let spool = spool_dir().to_string_lossy().into_owned();
    let env = [
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.as_str()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", topic.as_str()),
        ("OPENIM_BRIDGE__SPOOL__DIR", spool.as_str()),
        ("OPENIM_BRIDGE__SPOOL__ACK", ack),
    ];
    let (acked, child) = crash_and_restart(&env, &topic, 1500).await;
    assert_all_reach_kafka(&brokers, &topic, &acked);
    assert!(terminate(child).success());
    let _ = std::fs::remove_dir_all(spool);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_no_acked_event_rabbitmq() {
    let (exchange, url, binding) = durable_exchange("openim-crash").await;
    let spool = spool_dir().to_string_lossy().into_owned();
    let env = [
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__URL", url.as_str()),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", exchange.as_str()),
        ("OPENIM_BRIDGE__SPOOL__DIR", spool.as_str()),
    ];
    let (acked, child) = crash_and_restart(&env, &exchange, 1000).await;
    let seen = read_ids(binding, &acked, Duration::from_secs(60)).await;
    assert_none_lost(&acked, &seen);
    assert!(terminate(child).success());
    Binding::new(&url, &exchange, "#")
        .await
        .delete(&exchange, &exchange)
        .await;
    let _ = std::fs::remove_dir_all(spool);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_exits_0_and_loses_nothing() {
    let brokers = kafka_brokers();
    let topic = unique("openim-sigterm");
    create_topic(&brokers, &topic, 3).await;
    let bridge = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.as_str()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", topic.as_str()),
    ]);
    let acked = send_until_signalled(bridge.addr, bridge.child.id(), "TERM", &topic, 1500).await;
    // No restart: everything acked must have been delivered before exit.
    let mut child = bridge.child;
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert_all_reach_kafka(&brokers, &topic, &acked);
}

/// Consumes until every id in `wanted` was seen or `timeout` passed.
async fn read_ids(mut binding: Binding, wanted: &[String], timeout: Duration) -> HashSet<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = HashSet::new();
    while !missing(wanted, &seen).is_empty() && tokio::time::Instant::now() < deadline {
        for delivery in binding.read(1000, Duration::from_millis(500)).await {
            seen.insert(header(&delivery, "ce-id"));
        }
    }
    seen
}

/// Posts one group message to group `g_1` with id `<prefix>-<ids.len()>`;
/// records the id in `ids` if it was acked.
async fn post_next(client: &mut OpenImClient, ids: &mut Vec<String>, prefix: &str) -> Reply {
    let id = format!("{prefix}-{}", ids.len());
    let reply = client
        .post(
            "/callbackAfterSendGroupMsgCommand",
            &group_message(&id, "g_1"),
        )
        .await;
    if is_ack(&reply) {
        ids.push(id);
    }
    reply
}

/// Sends `n` more group messages (ids `outage-<n>`), each of which must be acked.
async fn send_acked(client: &mut OpenImClient, ids: &mut Vec<String>, n: usize) {
    for _ in 0..n {
        assert_ack(&post_next(client, ids, "outage").await);
    }
}

/// Starts a bridge whose broker does not answer and sends it `n`
/// callbacks: startup and every ack must come at once, without the broker.
async fn start_and_ack_without_broker(
    settings: openim_bridge::Settings,
    n: usize,
) -> (TestBridge, Vec<String>) {
    let bridge = tokio::time::timeout(Duration::from_secs(5), TestBridge::start(settings))
        .await
        .expect("startup does not wait for the broker");
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), send_acked(&mut client, &mut ids, n))
        .await
        .expect("callbacks are acked while the broker does not answer");
    (bridge, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_started_while_kafka_is_frozen_acks_at_once_and_delivers_later() {
    let tansu = OwnTansu::start();
    let topic = unique("openim-frozen-start");
    create_topic(&tansu.brokers, &topic, 3).await;
    signal(tansu.child.id(), "STOP");
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = tansu.brokers.clone();
    settings.kafka.topic = topic.clone();
    // A replica restarted during an outage must not wait for the broker
    // (the metadata check alone would take 10 s).
    let (bridge, ids) = start_and_ack_without_broker(settings, 50).await;
    signal(tansu.child.id(), "CONT");
    assert_all_reach_kafka(&tansu.brokers, &topic, &ids);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_coming_up_after_the_bridge_gets_its_topics_created_and_the_events() {
    // docker compose may start the bridge before Kafka: nothing listens yet.
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let topic = unique("openim-late-kafka");
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = brokers.clone();
    settings.kafka.topic = topic.clone();
    settings.kafka.create_topics = true;
    settings.kafka.topic_partitions = 3;
    let (bridge, ids) = start_and_ack_without_broker(settings, 30).await;
    // Later than the sink's 10 s metadata timeout: one look at startup is
    // not enough, the sink must keep waiting for the broker.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let _tansu = OwnTansu::start_on(port);
    assert_all_reach_kafka(&brokers, &topic, &ids);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_whose_rabbitmq_never_answers_still_acks() {
    // Accepts TCP connections (the kernel's backlog) and never speaks AMQP.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = format!(
        "amqp://guest:guest@{}/%2f",
        black_hole.local_addr().unwrap()
    );
    settings.shutdown.drain_timeout_ms = 500;
    let (bridge, _ids) = start_and_ack_without_broker(settings, 20).await;
    let spooled = bridge.stats.snapshot().spool_records;
    assert_eq!(spooled, 20, "the acked callbacks wait in the spool");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_outage_acks_keep_flowing_and_everything_arrives() {
    let tansu = OwnTansu::start();
    let topic = unique("openim-outage");
    create_topic(&tansu.brokers, &topic, 3).await;
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = tansu.brokers.clone();
    settings.kafka.topic = topic.clone();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    send_acked(&mut client, &mut ids, 100).await;
    signal(tansu.child.id(), "STOP");
    // The broker is frozen: callbacks are still acked at once, from the spool.
    let started = std::time::Instant::now();
    send_acked(&mut client, &mut ids, 300).await;
    let during_outage = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(tansu.child.id(), "CONT");
    let records = assert_all_reach_kafka(&tansu.brokers, &topic, &ids);
    assert!(
        during_outage < Duration::from_secs(10),
        "acks stalled during the outage: {during_outage:?}"
    );
    // Per-group order survives the outage.
    let order: Vec<usize> = records
        .iter()
        .map(|r| {
            r.header("ce_id")
                .trim_start_matches("outage-")
                .parse()
                .unwrap()
        })
        .collect();
    let mut first_seen = Vec::new();
    for n in order {
        if !first_seen.contains(&n) {
            first_seen.push(n);
        }
    }
    let mut sorted = first_seen.clone();
    sorted.sort_unstable();
    assert_eq!(first_seen, sorted, "group g_1 out of order");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_rabbitmq_outage_acks_keep_flowing_and_everything_arrives() {
    let (exchange, url, binding) = durable_exchange("openim-outage").await;
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = url.clone();
    settings.rabbitmq.exchange = exchange.clone();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    send_acked(&mut client, &mut ids, 100).await;
    rabbitmqctl("stop_app");
    send_acked(&mut client, &mut ids, 300).await;
    rabbitmqctl("start_app");
    drop(binding); // its connection died with the broker
    let binding = Binding::durable(&url, &exchange, &exchange).await;
    let seen = read_ids(binding, &ids, Duration::from_secs(60)).await;
    assert_none_lost(&ids, &seen);
    bridge.stop().await;
    Binding::new(&url, &exchange, "#")
        .await
        .delete(&exchange, &exchange)
        .await;
}

fn rabbitmqctl(command: &str) {
    let status = std::process::Command::new("rabbitmqctl")
        .arg(command)
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {command}");
    if command == "start_app" {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["await_startup"])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Sends group messages until one is refused; returns the refusal.
async fn send_until_refused(
    client: &mut OpenImClient,
    ids: &mut Vec<String>,
    limit: usize,
) -> Reply {
    for _ in 0..limit {
        let reply = post_next(client, ids, "fill").await;
        if !is_ack(&reply) {
            return reply;
        }
    }
    panic!("{limit} callbacks were all acked; the spool never filled");
}

/// Fills the spool of a bridge whose Kafka broker is paused until it answers
/// 503 with `expected`, resumes the broker, and checks that callbacks are
/// acked again and every acked one arrives.
async fn fill_then_recover(mut settings: openim_bridge::Settings, expected: &str) {
    let tansu = OwnTansu::start();
    let topic = unique("openim-full");
    create_topic(&tansu.brokers, &topic, 3).await;
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = tansu.brokers.clone();
    settings.kafka.topic = topic.clone();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    signal(tansu.child.id(), "STOP");
    let refused = send_until_refused(&mut client, &mut ids, 100_000).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    let message = refused.json()["errMsg"].as_str().unwrap().to_owned();
    assert!(message.contains(expected), "{message}");
    signal(tansu.child.id(), "CONT");
    // Once the broker drained the spool, callbacks are acked again.
    let mut recovered = false;
    for _ in 0..300 {
        if is_ack(&post_next(&mut client, &mut ids, "fill").await) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "still refusing 30 s after the broker came back");
    assert_all_reach_kafka(&tansu.brokers, &topic, &ids);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_answers_503_then_recovers_when_the_broker_drains_it() {
    let mut settings = test_settings();
    settings.http.max_body_bytes = 4096;
    settings.spool.segment_bytes = 1024 * 1024;
    settings.spool.max_bytes = 2 * 1024 * 1024 + 8192;
    fill_then_recover(settings, "spool is full").await;
}

/// A 3 MiB tmpfs, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount() -> Option<Self> {
        let dir = spool_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a bridge that panicked mid-test may still hold files open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills a 3 MiB tmpfs holding the spool (with segments of
/// `segment_bytes`, or the default), then checks the bridge recovers.
async fn fill_small_disk_then_recover(segment_bytes: Option<u64>) {
    let Some(disk) = SmallDisk::mount() else {
        // Mounting a tmpfs needs root (CI and the dev machines run as root).
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let mut settings = test_settings();
    settings.spool.dir = disk.0.join("spool");
    if let Some(segment_bytes) = segment_bytes {
        settings.spool.segment_bytes = segment_bytes;
    }
    // Far above the disk's 3 MiB: the disk fills first.
    settings.spool.max_bytes = 1 << 30;
    fill_then_recover(settings, "could not write to disk").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_then_recovers() {
    fill_small_disk_then_recover(Some(1024 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_smaller_than_one_segment_recovers_too() {
    // The default 16 MiB segment never fills on a 3 MiB disk: the writer
    // must start a new segment when the disk is full, or the confirmed one
    // is never deleted and the bridge answers 503 for good.
    fill_small_disk_then_recover(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_with_a_healthy_sink_recovers_without_a_restart() {
    // The stdout sink confirms every event at once, so when the disk
    // fills, nothing is outstanding and no confirmation will come again:
    // the spool itself must free its confirmed segment, or every callback
    // gets 503 until the bridge is restarted.
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let mut settings = test_settings();
    settings.spool.dir = disk.0.join("spool");
    settings.spool.max_bytes = 1 << 30;
    settings.sink.kind = SinkKind::Stdout;
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    let refused = send_until_refused(&mut client, &mut ids, 100_000).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    let message = refused.json()["errMsg"].as_str().unwrap().to_owned();
    assert!(message.contains("could not write to disk"), "{message}");
    // Low traffic from now on, as after a burst.
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if is_ack(&post_next(&mut client, &mut ids, "fill").await) {
            recovered = true;
            break;
        }
    }
    assert!(
        recovered,
        "still refusing 10 s after the disk filled ({} acked before), with a healthy sink",
        ids.len()
    );
    let stats = Arc::clone(&bridge.stats);
    let published = eventually(Duration::from_secs(10), || {
        stats.snapshot().events_published == ids.len() as u64
    })
    .await;
    assert!(published, "{:?} for {} acked", stats.snapshot(), ids.len());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_tail_is_reported_cut_and_the_intact_events_delivered() {
    let (exchange, url, binding) = durable_exchange("openim-torn").await;
    let spool = spool_dir();
    let spool_env = spool.to_string_lossy().into_owned();
    // 1. Spool callbacks while no broker is reachable, then crash.
    let offline = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        (
            "OPENIM_BRIDGE__RABBITMQ__URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
        ),
        ("OPENIM_BRIDGE__SPOOL__DIR", &spool_env),
    ]);
    let mut client = OpenImClient::connect(offline.addr).await;
    let mut ids = Vec::new();
    send_acked(&mut client, &mut ids, 50).await;
    signal(offline.child.id(), "KILL");
    // 2. A write cut short: half a record at the end of the newest segment.
    let newest = std::fs::read_dir(&spool)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, b'{', b'"']);
    std::fs::write(&newest, bytes).unwrap();
    // 3. Restart with the broker: starts, reports the tear, delivers the rest.
    let online = spawn(&[
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
        ("OPENIM_BRIDGE__RABBITMQ__URL", &url),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", &exchange),
        ("OPENIM_BRIDGE__SPOOL__DIR", &spool_env),
    ]);
    let seen = read_ids(binding, &ids, Duration::from_secs(30)).await;
    assert_none_lost(&ids, &seen);
    let log = online.stderr.lock().unwrap().join("\n");
    assert!(
        log.contains("torn") && log.contains("torn_bytes=10"),
        "tear not reported:\n{log}"
    );
    assert!(terminate(online.child).success());
    Binding::new(&url, &exchange, "#")
        .await
        .delete(&exchange, &exchange)
        .await;
    let _ = std::fs::remove_dir_all(spool);
}

/// Fills what is left of the disk holding `dir` with a file of zeros
/// named `name`.
fn fill_disk(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&block[..512]).is_ok() {}
    let _ = file.flush();
    path
}

/// Sends `n` group messages from each of 4 connections (ids
/// `<prefix>-<sender>-<i>`); adds the acked ones to `acked`.
async fn send_from_4(
    addr: std::net::SocketAddr,
    prefix: &str,
    n: usize,
    acked: &Arc<Mutex<Vec<String>>>,
) {
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (acked, prefix) = (Arc::clone(acked), prefix.to_owned());
        senders.push(tokio::spawn(async move {
            let mut client = OpenImClient::connect(addr).await;
            for i in 0..n {
                let id = format!("{prefix}-{sender}-{i}");
                let body = group_message(&id, &format!("g_{}", i % 5));
                let reply = client
                    .post("/callbackAfterSendGroupMsgCommand", &body)
                    .await;
                if is_ack(&reply) {
                    acked.lock().unwrap().push(id);
                }
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_mode_on_a_full_disk_delivers_every_acked_callback_at_a_graceful_stop() {
    // spool.ack = "memory" acks before the write. When the disk then
    // refuses the write, the acked events exist only in memory: with a
    // healthy broker they must still reach it, also when the bridge is
    // stopped while the disk is still full.
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let brokers = kafka_brokers();
    let topic = unique("openim-memory-full");
    create_topic(&brokers, &topic, 3).await;
    let mut settings = test_settings();
    settings.spool.dir = disk.0.join("spool");
    settings.spool.max_bytes = 1 << 30;
    settings.spool.ack = openim_bridge::settings::AckMode::Memory;
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = brokers.clone();
    settings.kafka.topic = topic.clone();
    let bridge = TestBridge::start(settings).await;
    let ready = eventually(Duration::from_secs(20), || bridge.stats.accepted()).await;
    assert!(ready, "kafka never accepted the bridge");
    // The disk fills and frees again every 50 ms while callbacks arrive
    // (as when a neighbour's log grows and is rotated), and is full at
    // the stop.
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let toggler = {
        let (dir, sending) = (disk.0.clone(), Arc::clone(&sending));
        std::thread::spawn(move || {
            let mut cycles = 0;
            while sending.load(Ordering::Acquire) {
                let filler = fill_disk(&dir, "filler");
                std::thread::sleep(Duration::from_millis(50));
                std::fs::remove_file(filler).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                cycles += 1;
            }
            fill_disk(&dir, "filler");
            cycles
        })
    };
    let acked = Arc::new(Mutex::new(Vec::new()));
    send_from_4(bridge.addr, &format!("{topic}-a"), 750, &acked).await;
    sending.store(false, Ordering::Release);
    let cycles = toggler.join().unwrap();
    // Once the broker confirmed those, the disk is filled for good: what
    // deleted segments free is taken at once, until after the stop. The
    // last callbacks are acked in memory only.
    let stats = Arc::clone(&bridge.stats);
    let so_far = acked.lock().unwrap().len() as u64;
    let published = eventually(Duration::from_secs(20), || {
        stats.snapshot().events_published >= so_far
    })
    .await;
    assert!(published, "{so_far} acked, {:?}", stats.snapshot());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let full = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep_full = {
        let (dir, full) = (disk.0.clone(), Arc::clone(&full));
        std::thread::spawn(move || {
            let mut n = 0;
            while full.load(Ordering::Acquire) {
                fill_disk(&dir, &format!("filler-full-{n}"));
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    send_from_4(bridge.addr, &format!("{topic}-b"), 25, &acked).await;
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{} of 3100 acked, the disk filled {cycles} times",
        acked.len()
    );
    assert!(
        cycles >= 2 && acked.len() > 100,
        "{cycles} cycles, {} acked",
        acked.len()
    );
    // Stopped while the disk is still full.
    bridge.stop().await;
    full.store(false, Ordering::Release);
    keep_full.join().unwrap();
    assert_eq!(
        stats.snapshot().spool_lost_records,
        0,
        "{} acked; lost at the stop",
        acked.len()
    );
    assert_all_reach_kafka(&brokers, &topic, &acked);
}
