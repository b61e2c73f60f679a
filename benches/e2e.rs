//! End-to-end benchmark: an OpenIM-like load generator against the real
//! `openim-bridge` binary, with every acked callback looked for in the
//! broker afterwards.
//!
//! For each configuration (sink x ack mode) it starts the release binary
//! with its own spool, starts a consumer reading what the bridge publishes,
//! and drives two phases from `CONNECTIONS` keep-alive HTTP/1.1 connections
//! sending `callbackAfterSendGroupMsgCommand` bodies (unique `serverMsgID`,
//! 64 groups, OpenIM's headers):
//!
//! * **fixed** (first, on an idle bridge): open loop at `RATE`/s for
//!   `SECONDS`: ack latency and publish lag. A request
//!   is timed from when it was due if its connection was still busy then
//!   (the bridge made it wait: coordinated omission is not hidden), else
//!   from when it was written (the generator's own timer slop is not
//!   charged to the bridge);
//! * **max** (after the fixed phase has fully arrived): closed loop for
//!   `SECONDS`: the highest ack rate.
//!
//! Then it waits until the consumer has seen every acked `serverMsgID`
//! (missing must be 0), and reports publish lag (`received_at` in the event
//! -> read by the consumer), peak RSS and CPU time of the bridge process.
//!
//! Run with `scripts/bench` (starts the brokers); writes
//! `target/bench/report.md` and `target/bench/latency.svg`.

mod support;

// The test helpers' Kafka front (TLS in front of a Tansu of its own), for
// the TLS-versus-plaintext rows.
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const CONNECTIONS: usize = 32;
const SECONDS: u64 = 6;
const RATE: f64 = 5000.0;
const BIN: &str = env!("CARGO_BIN_EXE_openim-bridge");
const TEMPLATE: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");
const ACK: &[u8] = br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

#[derive(Clone, Copy, PartialEq)]
enum Sink {
    Stdout,
    Kafka,
    RabbitMq,
}

/// How the bridge reaches the broker.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    /// The brokers scripts/bench started (or named), plaintext.
    Direct,
    /// Kafka: a plain relay in front of a Tansu of its own; RabbitMQ: the
    /// TLS node's plain listener. The baseline of `Tls`.
    Plain,
    /// Kafka: the same relay terminating TLS; RabbitMQ: the TLS node's
    /// amqps:// listener.
    Tls,
}

struct Config {
    name: &'static str,
    sink: Sink,
    ack: &'static str,
    transport: Transport,
}

const CONFIGS: [Config; 9] = [
    Config {
        name: "stdout durable",
        sink: Sink::Stdout,
        ack: "durable",
        transport: Transport::Direct,
    },
    Config {
        name: "stdout memory",
        sink: Sink::Stdout,
        ack: "memory",
        transport: Transport::Direct,
    },
    Config {
        name: "kafka durable",
        sink: Sink::Kafka,
        ack: "durable",
        transport: Transport::Direct,
    },
    Config {
        name: "kafka memory",
        sink: Sink::Kafka,
        ack: "memory",
        transport: Transport::Direct,
    },
    Config {
        name: "rabbitmq durable",
        sink: Sink::RabbitMq,
        ack: "durable",
        transport: Transport::Direct,
    },
    Config {
        name: "kafka durable, relay plain",
        sink: Sink::Kafka,
        ack: "durable",
        transport: Transport::Plain,
    },
    Config {
        name: "kafka durable, relay TLS",
        sink: Sink::Kafka,
        ack: "durable",
        transport: Transport::Tls,
    },
    Config {
        name: "rabbitmq durable, amqp (TLS node)",
        sink: Sink::RabbitMq,
        ack: "durable",
        transport: Transport::Plain,
    },
    Config {
        name: "rabbitmq durable, amqps (TLS node)",
        sink: Sink::RabbitMq,
        ack: "durable",
        transport: Transport::Tls,
    },
];

fn new_histogram() -> Histogram<u64> {
    // 1 us to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// What the consumer saw.
#[derive(Default)]
struct Seen {
    counts: HashMap<String, u32>,
    lag_fixed: Option<Histogram<u64>>,
    /// Kafka only: received -> handed to the producer (the record's
    /// CreateTime), i.e. the part of the lag spent inside the bridge.
    lag_in_bridge: Option<Histogram<u64>>,
}

impl Seen {
    fn record(&mut self, id: &str, received_at: &str) {
        *self.counts.entry(id.to_owned()).or_default() += 1;
        if id.contains("-fixed-") {
            if let Ok(at) = OffsetDateTime::parse(received_at, &Rfc3339) {
                let lag = (OffsetDateTime::now_utc() - at).whole_microseconds().max(1) as u64;
                let _ = self.lag_fixed.get_or_insert_with(new_histogram).record(lag);
            }
        }
    }
}

#[derive(Deserialize)]
struct Data<'a> {
    event_id: &'a str,
    received_at: &'a str,
}

#[derive(Deserialize)]
struct StdoutLine<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

struct Bridge {
    child: Child,
    addr: SocketAddr,
    spool: tempfile::TempDir,
}

fn start_bridge(config: &Config, target: &Target, seen: &Arc<Mutex<Seen>>) -> Bridge {
    let spool = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("OPENIM_BRIDGE__SPOOL__DIR", spool.path())
        .env("OPENIM_BRIDGE__SPOOL__ACK", config.ack)
        .env("OPENIM_BRIDGE__LOG__LEVEL", "warn,openim_bridge::app=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match config.sink {
        Sink::Stdout => command.env("OPENIM_BRIDGE__SINK__KIND", "stdout"),
        Sink::Kafka => command
            .env("OPENIM_BRIDGE__SINK__KIND", "kafka")
            .env("OPENIM_BRIDGE__KAFKA__BROKERS", &target.kafka)
            .env("OPENIM_BRIDGE__KAFKA__TOPIC", &target.topic),
        Sink::RabbitMq => command
            .env("OPENIM_BRIDGE__SINK__KIND", "rabbitmq")
            .env("OPENIM_BRIDGE__RABBITMQ__URL", &target.amqp)
            .env("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", &target.exchange),
    };
    command.envs(target.bridge_env.iter().map(|(k, v)| (k, v)));
    let mut child = command.spawn().expect("start openim-bridge");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("\n  bridge: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("bridge listening")
        .parse()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let seen = Arc::clone(seen);
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(parsed) = serde_json::from_str::<StdoutLine>(&line) {
                seen.lock()
                    .unwrap()
                    .record(parsed.data.event_id, parsed.data.received_at);
            }
        }
    });
    Bridge { child, addr, spool }
}

/// Where the brokers are, and this run's topic / exchange.
struct Target {
    kafka: String,
    amqp: String,
    topic: String,
    exchange: String,
    /// Extra bridge settings (TLS).
    bridge_env: Vec<(String, String)>,
    /// librdkafka properties the consumer needs (TLS).
    kafka_properties: Vec<(String, String)>,
    /// The URL the RabbitMQ consumer reads from.
    amqp_read: String,
}

fn kafka_consumer(
    target: &Target,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let mut config = ClientConfig::new();
    for (key, value) in &target.kafka_properties {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", &target.kafka)
        .set("group.id", format!("bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        // Tansu answers a fetch only when fetch.wait.max.ms (default 500 ms)
        // has passed, even when data arrived sooner: poll often, or the lag
        // measured is the consumer's, not the bridge's.
        .set("fetch.wait.max.ms", "5")
        .set("fetch.error.backoff.ms", "5")
        .set("fetch.queue.backoff.ms", "1")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(&target.topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                if let Ok(data) =
                    serde_json::from_slice::<Data>(message.payload().unwrap_or_default())
                {
                    let mut seen = seen.lock().unwrap();
                    seen.record(data.event_id, data.received_at);
                    let created = message.timestamp().to_millis();
                    if let (Some(created), Ok(at)) =
                        (created, OffsetDateTime::parse(data.received_at, &Rfc3339))
                    {
                        if data.event_id.contains("-fixed-") {
                            let received_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
                            let inside = ((created - received_ms).max(0) as u64 * 1000).max(1);
                            let _ = seen
                                .lag_in_bridge
                                .get_or_insert_with(new_histogram)
                                .record(inside);
                        }
                    }
                }
            }
        }
    })
}

async fn rabbitmq_consumer(target: &Target, seen: Arc<Mutex<Seen>>) -> lapin::Connection {
    use futures_util::StreamExt;
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    let connection = lapin::Connection::connect(&target.amqp_read, Default::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            target.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            target.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let options = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            options,
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            if let Ok(data) = serde_json::from_slice::<Data>(&delivery.data) {
                seen.lock().unwrap().record(data.event_id, data.received_at);
            }
        }
    });
    connection
}

/// One phase of load: acked ids, latency, non-ack replies, elapsed time.
struct Phase {
    acked: Vec<String>,
    latency: Histogram<u64>,
    refused: u64,
    seconds: f64,
}

async fn drive(addr: SocketAddr, run: &str, rate: Option<f64>, progress: &str) -> Phase {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS);
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..CONNECTIONS {
        let (run, sent) = (run.to_owned(), Arc::clone(&sent));
        workers.push(tokio::spawn(async move {
            let mut sender = support::connect(addr).await.expect("connect to the bridge");
            let mut latency = new_histogram();
            let (mut acked, mut refused) = (Vec::new(), 0);
            let interval = rate.map(|r| Duration::from_secs_f64(CONNECTIONS as f64 / r));
            // Spread the connections' schedules over one interval.
            let mut due = Instant::now()
                + interval
                    .unwrap_or_default()
                    .mul_f64(worker as f64 / CONNECTIONS as f64);
            let mut last_done = Instant::now();
            for i in 0u64.. {
                if interval.is_some() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // Busy past the due time: the bridge made us wait; count it.
                let start = if interval.is_some() && last_done > due {
                    due
                } else {
                    now
                };
                let id = format!("{run}-{worker}-{i}");
                let body = TEMPLATE
                    .replace("9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91", &id)
                    .replace("\"g_3001\"", &format!("\"g_{}\"", i % 64));
                let request = hyper::Request::post("/openim/callbackAfterSendGroupMsgCommand")
                    .header("Host", "bridge")
                    .header("Content-Type", "application/json; charset=utf-8")
                    .header("Operationid", "1719800000123456789")
                    .header("Accept-Encoding", "gzip")
                    .header("User-Agent", "Go-http-client/1.1")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                last_done = Instant::now();
                latency
                    .record(last_done.duration_since(start).as_micros().max(1) as u64)
                    .unwrap();
                if body.as_ref() == ACK {
                    acked.push(id);
                } else {
                    refused += 1;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                if let Some(interval) = interval {
                    due += interval;
                }
            }
            (acked, latency, refused)
        }));
    }
    let ticker = {
        let (sent, progress) = (Arc::clone(&sent), progress.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let elapsed = started.elapsed().as_secs().min(SECONDS);
                eprint!(
                    "\r  {progress}: {elapsed}/{SECONDS} s, {} requests   ",
                    sent.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut phase = Phase {
        acked: Vec::new(),
        latency: new_histogram(),
        refused: 0,
        seconds: 0.0,
    };
    for worker in workers {
        let (acked, latency, refused) = worker.await.unwrap();
        phase.acked.extend(acked);
        phase.latency.add(latency).unwrap();
        phase.refused += refused;
    }
    ticker.abort();
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

/// The bridge's `openim_bridge_spool_syncs_total`, from `GET /metrics`.
async fn spool_syncs(addr: SocketAddr) -> u64 {
    let mut sender = support::connect(addr).await.expect("connect to the bridge");
    let request = hyper::Request::get("/metrics")
        .header("Host", "bridge")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let body = sender
        .send_request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("openim_bridge_spool_syncs_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_default()
}

/// Peak RSS (VmHWM) and current RSS of `pid`, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User + system CPU seconds of `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in clock ticks of 1/100 s (USER_HZ).
    (ticks(11) + ticks(12)) / 100.0
}

struct Result_ {
    name: &'static str,
    max: Phase,
    fixed: Phase,
    lag: Option<Histogram<u64>>,
    lag_in_bridge: Option<Histogram<u64>>,
    /// RSS (MiB) at the start, at the end and at most during a broker outage.
    outage: Option<(f64, f64, f64)>,
    /// fdatasync calls per second during the maximum phase.
    syncs_per_second: f64,
    missing: usize,
    duplicates: u64,
    peak_rss: f64,
    steady_rss: f64,
    cpu_per_100k: f64,
}

async fn run_config(config: &Config, index: usize, brokers: &(String, String)) -> Result_ {
    let run = format!("b{}-{index}", std::process::id());
    let mut target = Target {
        kafka: brokers.0.clone(),
        amqp: brokers.1.clone(),
        topic: format!("bench-{run}"),
        exchange: format!("bench-{run}"),
        bridge_env: Vec::new(),
        kafka_properties: Vec::new(),
        amqp_read: brokers.1.clone(),
    };
    let front = match (config.sink, config.transport) {
        (Sink::Kafka, Transport::Plain | Transport::Tls) => {
            let tls = (config.transport == Transport::Tls)
                .then_some(common::kafka_front::FrontTls::Server);
            let front = common::kafka_front::KafkaFront::start(common::kafka_front::FrontOptions {
                tls,
                sasl: None,
            })
            .await;
            target.kafka = front.bootstrap();
            target.kafka_properties = front.client_properties();
            if tls.is_some() {
                target.bridge_env = vec![
                    (
                        "OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL".into(),
                        "ssl".into(),
                    ),
                    (
                        "OPENIM_BRIDGE__KAFKA__SSL_CA_FILE".into(),
                        front.ca_file().to_string_lossy().into_owned(),
                    ),
                ];
            }
            Some(front)
        }
        (Sink::RabbitMq, Transport::Plain | Transport::Tls) => {
            let node = common::rabbitmq::Amqps::from_env();
            target.amqp_read = node.plain_url.clone();
            if config.transport == Transport::Tls {
                target.amqp = node.url.clone();
                target.bridge_env = vec![(
                    "OPENIM_BRIDGE__RABBITMQ__TLS_CA_FILE".into(),
                    node.ca.to_string_lossy().into_owned(),
                )];
            } else {
                target.amqp = node.plain_url.clone();
            }
            None
        }
        _ => None,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumer_thread = None;
    let mut amqp = None;
    match config.sink {
        Sink::Kafka => {
            match &front {
                Some(front) => front.create_topic(&target.topic, 3).await,
                None => create_topic(&target).await,
            }
            consumer_thread = Some(kafka_consumer(
                &target,
                Arc::clone(&seen),
                Arc::clone(&stop),
            ));
        }
        Sink::RabbitMq => amqp = Some(rabbitmq_consumer(&target, Arc::clone(&seen)).await),
        Sink::Stdout => {}
    }
    let mut bridge = start_bridge(config, &target, &seen);
    let pid = bridge.child.id();
    let label = format!("[{}/{}] {}", index + 1, CONFIGS.len(), config.name);
    // The fixed rate first, on an idle bridge and broker, so its latency and
    // lag are not those of a backlog left by the maximum phase.
    let fixed = drive(
        bridge.addr,
        &format!("{run}-fixed"),
        Some(RATE),
        &format!("{label} {RATE}/s"),
    )
    .await;
    let (_, steady_rss) = memory_mib(pid);
    let missing_fixed = wait_for(&seen, &fixed.acked).await;
    let syncs_before = spool_syncs(bridge.addr).await;
    let max = drive(
        bridge.addr,
        &format!("{run}-max"),
        None,
        &format!("{label} max"),
    )
    .await;
    let syncs_per_second = (spool_syncs(bridge.addr).await - syncs_before) as f64 / max.seconds;
    let mut missing = missing_fixed + wait_for(&seen, &max.acked).await;
    let outage = match (config.sink, std::env::var("OPENIM_BRIDGE_TANSU_PID")) {
        (Sink::Kafka, Ok(tansu))
            if config.ack == "durable" && config.transport == Transport::Direct =>
        {
            let (acked, rss) = outage(bridge.addr, pid, &tansu, &run, &label).await;
            missing += wait_for(&seen, &acked).await;
            Some(rss)
        }
        _ => None,
    };
    let (peak_rss, _) = memory_mib(pid);
    let cpu = cpu_seconds(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = bridge.child.wait();
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = consumer_thread {
        let _ = thread.join();
    }
    if let Some(connection) = amqp {
        let channel = connection.create_channel().await.unwrap();
        let _ = channel
            .exchange_delete(target.exchange.as_str().into(), Default::default())
            .await;
        let _ = connection.close(200, "bench done".into()).await;
    }
    drop(bridge.spool);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let duplicates = seen
        .counts
        .values()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    let total = (max.acked.len() + fixed.acked.len()) as f64;
    eprintln!("\r  {label}: done{:40}", "");
    Result_ {
        name: config.name,
        max,
        fixed,
        lag: seen.lag_fixed,
        lag_in_bridge: seen.lag_in_bridge,
        outage,
        syncs_per_second,
        missing,
        duplicates,
        peak_rss,
        steady_rss,
        cpu_per_100k: cpu / total * 100_000.0,
    }
}

/// Pauses the Kafka broker (SIGSTOP) while callbacks keep coming at `RATE`,
/// sampling the bridge's RSS; resumes it. Returns the acked ids and the RSS
/// (start, end, max) in MiB.
async fn outage(
    addr: SocketAddr,
    pid: u32,
    tansu: &str,
    run: &str,
    label: &str,
) -> (Vec<String>, (f64, f64, f64)) {
    let signal = |name: &str| {
        let _ = Command::new("kill").args([name, tansu]).status();
    };
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            loop {
                samples.lock().unwrap().push(memory_mib(pid).1);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    signal("-STOP");
    let phase = drive(
        addr,
        &format!("{run}-outage"),
        Some(RATE),
        &format!("{label} broker paused"),
    )
    .await;
    signal("-CONT");
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let first = samples.first().copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let max = samples.iter().copied().fold(0.0, f64::max);
    assert_eq!(phase.refused, 0, "callbacks refused during the outage");
    (phase.acked, (first, last, max))
}

/// Waits (at most 90 s) until the consumer has seen every id in `acked`;
/// returns how many it has not.
async fn wait_for(seen: &Mutex<Seen>, acked: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing = {
            let seen = seen.lock().unwrap();
            acked
                .iter()
                .filter(|id| !seen.counts.contains_key(id.as_str()))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_topic(target: &Target) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &target.kafka)
        .create()
        .unwrap();
    let topic = NewTopic::new(&target.topic, 3, TopicReplication::Fixed(1));
    admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
}

fn ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

fn rate(phase: &Phase) -> f64 {
    phase.acked.len() as f64 / phase.seconds
}

fn report(results: &[Result_]) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    out += &format!(
        "# openim-bridge end-to-end benchmark\n\nMachine: {cores} cores; load generator, bridge and brokers (Tansu, RabbitMQ) on the same machine. \
         {CONNECTIONS} keep-alive connections; max = closed loop {SECONDS} s; fixed = open loop at {RATE}/s for {SECONDS} s.\n\n\
         | config | max acks/s | fdatasync/s (max) | refused (max) | p50 ms @{RATE} | p99 ms | p99.9 ms | refused (fixed) | lag p50 ms | lag p99 ms | missing | duplicates | RSS steady MiB | RSS peak MiB | CPU s / 100k |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in results {
        let (lag50, lag99) = r
            .lag
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |h| (ms(h, 0.5), ms(h, 0.99)));
        out += &format!(
            "| {} | {:.0} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} | {:.2} |\n",
            r.name,
            rate(&r.max),
            r.syncs_per_second,
            r.max.refused,
            ms(&r.fixed.latency, 0.5),
            ms(&r.fixed.latency, 0.99),
            ms(&r.fixed.latency, 0.999),
            r.fixed.refused,
            lag50,
            lag99,
            r.missing,
            r.duplicates,
            r.steady_rss,
            r.peak_rss,
            r.cpu_per_100k,
        );
    }
    for r in results {
        if let Some(inside) = &r.lag_in_bridge {
            out += &format!(
                "\n{}: of the publish lag, received -> handed to librdkafka (record CreateTime, ms resolution): p50 {:.0} ms, p99 {:.0} ms; the rest is librdkafka batching, the broker and the consumer.",
                r.name,
                ms(inside, 0.5),
                ms(inside, 0.99)
            );
        }
    }
    out += "\n";
    let find = |name: &str| results.iter().find(|r| r.name == name);
    out += "\n## The cost of TLS to the broker\n\nSame run, same broker, the only difference being TLS between the bridge and the broker (Kafka: the test helpers' relay in front of a Tansu of its own, plain vs terminating TLS; RabbitMQ: one node's amqp:// and amqps:// listeners).\n\n| pair | max acks/s (TLS / plain) | ack p99 ms @5k/s (plain -> TLS) | lag p99 ms (plain -> TLS) | CPU s / 100k (plain -> TLS) |\n|---|---|---|---|---|\n";
    for (plain, tls) in [
        ("kafka durable, relay plain", "kafka durable, relay TLS"),
        (
            "rabbitmq durable, amqp (TLS node)",
            "rabbitmq durable, amqps (TLS node)",
        ),
    ] {
        if let (Some(p), Some(t)) = (find(plain), find(tls)) {
            let lag = |r: &Result_| r.lag.as_ref().map_or(f64::NAN, |h| ms(h, 0.99));
            out += &format!(
                "| {tls} vs plain | {:.0}% ({:.0} / {:.0}) | {:.3} -> {:.3} | {:.1} -> {:.1} | {:.2} -> {:.2} |\n",
                rate(&t.max) / rate(&p.max) * 100.0,
                rate(&t.max),
                rate(&p.max),
                ms(&p.fixed.latency, 0.99),
                ms(&t.fixed.latency, 0.99),
                lag(p),
                lag(t),
                p.cpu_per_100k,
                t.cpu_per_100k,
            );
        }
    }
    out += "\n";
    out += "\n## Targets\n\n";
    let mut check = |what: String, ok: bool| {
        out += &format!("- {} {what}\n", if ok { "MET" } else { "MISSED" })
    };
    for mode in ["durable", "memory"] {
        let (Some(kafka), Some(ceiling)) = (
            find(&format!("kafka {mode}")),
            find(&format!("stdout {mode}")),
        ) else {
            continue;
        };
        let ratio = rate(&kafka.max) / rate(&ceiling.max);
        check(
            format!(
                "{mode}: Kafka throughput {:.0}% of the stdout sink's (target >= 60%)",
                ratio * 100.0
            ),
            ratio >= 0.6,
        );
        let (k, c) = (
            ms(&kafka.fixed.latency, 0.99),
            ms(&ceiling.fixed.latency, 0.99),
        );
        check(
            format!("{mode}: Kafka ack p99 at {RATE}/s: {k:.3} ms (target <= 1 ms)"),
            k <= 1.0,
        );
        check(
            format!(
                "{mode}: Kafka ack p99 within 0.5 ms of the stdout sink's ({c:.3} ms): {:+.3} ms",
                k - c
            ),
            k - c <= 0.5,
        );
        let lag = kafka.lag.as_ref().map_or(f64::NAN, |h| ms(h, 0.99));
        check(
            format!("{mode}: Kafka publish lag p99 at {RATE}/s: {lag:.1} ms (target <= 50 ms)"),
            lag <= 50.0,
        );
    }
    if let (Some(durable), Some(memory)) = (find("kafka durable"), find("kafka memory")) {
        let ratio = rate(&durable.max) / rate(&memory.max);
        check(
            format!(
                "durable acks {:.0}% of memory acks' throughput, Kafka sink (target >= 70%)",
                ratio * 100.0
            ),
            ratio >= 0.7,
        );
    }
    let missing: usize = results.iter().map(|r| r.missing).sum();
    check(
        format!("missing events: {missing} (target 0)"),
        missing == 0,
    );
    let rss = results.iter().map(|r| r.steady_rss).fold(0.0, f64::max);
    check(
        format!("bridge RSS at steady load: at most {rss:.1} MiB (target <= 64 MiB)"),
        rss <= 64.0,
    );
    match results.iter().find_map(|r| r.outage.map(|rss| (r.name, rss))) {
        Some((name, (first, last, max))) => check(
            format!("{name}: RSS while the broker was paused for {SECONDS} s at {RATE}/s: {first:.1} -> {last:.1} MiB, at most {max:.1} MiB (target: flat, <= 64 MiB)"),
            max <= 64.0 && last - first <= 8.0,
        ),
        None => out += "- NOT MEASURED RSS while the broker is down (needs the Tansu started by scripts/bench)\n",
    }
    out += "\n![ack latency](latency.svg)\n";
    out
}

fn plot(results: &[Result_], path: &std::path::Path) {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let max_ms = results
        .iter()
        .map(|r| ms(&r.fixed.latency, 0.9999))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Ack latency by percentile, open loop at {RATE}/s"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, (0.05f64..max_ms * 1.5).log_scale())
        .unwrap();
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms (log)")
        .x_labels(5)
        .x_label_formatter(&|x| {
            let percent = format!("{:.4}", 100.0 - 100.0 / 10f64.powf(*x));
            format!("{}%", percent.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()
        .unwrap();
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK];
    for (r, color) in results.iter().zip(colors) {
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|i| {
                let nines = i as f64 / 100.0;
                let q = 1.0 - 1.0 / 10f64.powf(nines);
                (nines, ms(&r.fixed.latency, q).max(0.05))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .unwrap()
            .label(r.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .unwrap();
    root.present().unwrap();
}

#[tokio::main]
async fn main() {
    let brokers = (
        std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
            .expect("run scripts/bench (it starts the brokers) or set OPENIM_BRIDGE_TEST_KAFKA"),
        std::env::var("OPENIM_BRIDGE_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
    );
    eprintln!(
        "openim-bridge end-to-end benchmark: {} configurations, about {} s each",
        CONFIGS.len(),
        2 * SECONDS + 4
    );
    // OPENIM_BRIDGE_BENCH_ONLY=tls,stdout runs only configurations whose
    // name contains one of the words.
    let only = std::env::var("OPENIM_BRIDGE_BENCH_ONLY").unwrap_or_default();
    let words: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
    let mut results = Vec::new();
    for (index, config) in CONFIGS.iter().enumerate() {
        if words.is_empty() || words.iter().any(|w| config.name.contains(w)) {
            results.push(run_config(config, index, &brokers).await);
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    plot(&results, &dir.join("latency.svg"));
    let text = report(&results);
    std::fs::write(dir.join("report.md"), &text).unwrap();
    println!("{text}");
    eprintln!("written: {}", dir.join("report.md").display());
}
