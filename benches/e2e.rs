//! End-to-end benchmark: an OpenIM-like load generator against the real
//! `openim-bridge` binary and, in the same run, against a bare hyper server
//! that only answers the ack (the ceiling), with every acked callback looked
//! for in the broker afterwards.
//!
//! For each configuration (sink x ack mode, and TLS pairs) it starts the
//! release binary with its own spool, starts a consumer reading what the
//! bridge publishes, and drives three phases of
//! `callbackAfterSendGroupMsgCommand` bodies (unique `serverMsgID`, 64
//! groups, OpenIM's headers) over keep-alive HTTP/1.1 connections:
//!
//! * **fixed** (first, on an idle server): `CONNECTIONS` connections, open
//!   loop at `RATE`/s for `SECONDS`: ack latency and publish lag. A request
//!   is timed from when it was due if its connection was still busy then
//!   (the server made it wait: coordinated omission is not hidden), else
//!   from when it was written;
//! * **2 senders**: `SENDERS` connections, one request at a time each, as
//!   OpenIM's two webhook workers per process: what one OpenIM process gets;
//! * **max**: `CONNECTIONS` connections, closed loop: the highest ack rate,
//!   and the server's CPU per ack over this phase.
//!
//! Then it waits until the consumer has seen every acked `serverMsgID`
//! (missing must be 0). The disk's own append + `fdatasync` latency is
//! measured in the same run. Ratios to the bare server are in the report.
//!
//! Run with `scripts/bench` (starts the brokers); writes
//! `target/bench/report.md` and `target/bench/latency.svg`.
//! `OPENIM_BRIDGE_BENCH_ONLY=word,word` runs the configurations whose name
//! holds one of the words (the bare server always runs);
//! `OPENIM_BRIDGE_BENCH_BASELINE=/path/to/openim-bridge` adds rows run with
//! another build (e.g. the previous release) for a side-by-side comparison.

mod support;

#[path = "e2e/bare.rs"]
mod bare;
#[path = "e2e/consumers.rs"]
mod consumers;
#[path = "e2e/disk.rs"]
mod disk;
#[path = "e2e/load.rs"]
mod load;
#[path = "e2e/process.rs"]
mod process;
#[path = "e2e/report.rs"]
mod report;

// The test helpers' Kafka front (TLS in front of a Tansu of its own), for
// the TLS-versus-plaintext rows.
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};

use consumers::{kafka_consumer, rabbitmq_consumer, Seen, StdoutLine};
use load::{drive, Load, Phase};
use process::{cpu_seconds, memory_mib, Switches, SyscallCount};

const CONNECTIONS: usize = 32;
/// OpenIM's webhook workers per process.
const SENDERS: usize = 2;
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

/// Which server a configuration runs.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// The bare ack server (the ceiling).
    Bare,
    /// This build's bridge.
    Bridge,
    /// The build named by `OPENIM_BRIDGE_BENCH_BASELINE`.
    Baseline,
}

struct Config {
    name: String,
    server: Server,
    sink: Sink,
    ack: &'static str,
    transport: Transport,
}

impl Config {
    fn new(server: Server, sink: Sink, ack: &'static str, transport: Transport) -> Self {
        let sink_name = match sink {
            Sink::Stdout => "stdout",
            Sink::Kafka => "kafka",
            Sink::RabbitMq => "rabbitmq",
        };
        let name = match (server, sink, transport) {
            (Server::Bare, _, _) => "bare".to_owned(),
            (_, _, Transport::Direct) => format!("{sink_name} {ack}"),
            (_, Sink::Kafka, Transport::Plain) => format!("kafka {ack}, relay plain"),
            (_, Sink::Kafka, _) => format!("kafka {ack}, relay TLS"),
            (_, _, Transport::Plain) => format!("rabbitmq {ack}, amqp (TLS node)"),
            (_, _, Transport::Tls) => format!("rabbitmq {ack}, amqps (TLS node)"),
        };
        let name = match server {
            Server::Baseline => format!("baseline: {name}"),
            _ => name,
        };
        Self {
            name,
            server,
            sink,
            ack,
            transport,
        }
    }
}

/// The configurations, in the order run: the bare server, every sink in
/// every ack mode, the TLS pairs, then the baseline build's rows if asked.
fn configs() -> Vec<Config> {
    use Transport::{Direct, Plain, Tls};
    let mut configs = vec![Config::new(Server::Bare, Sink::Stdout, "", Direct)];
    for sink in [Sink::Stdout, Sink::Kafka, Sink::RabbitMq] {
        for ack in ["memory", "written", "durable"] {
            configs.push(Config::new(Server::Bridge, sink, ack, Direct));
        }
    }
    for sink in [Sink::Kafka, Sink::RabbitMq] {
        for transport in [Plain, Tls] {
            configs.push(Config::new(Server::Bridge, sink, "durable", transport));
        }
    }
    if std::env::var_os("OPENIM_BRIDGE_BENCH_BASELINE").is_some() {
        for (sink, ack) in [
            (Sink::Stdout, "memory"),
            (Sink::Stdout, "durable"),
            (Sink::Kafka, "durable"),
        ] {
            configs.push(Config::new(Server::Baseline, sink, ack, Direct));
        }
    }
    configs
}

fn new_histogram() -> Histogram<u64> {
    // 1 us to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

struct Bridge {
    child: Child,
    addr: SocketAddr,
    spool: tempfile::TempDir,
}

fn start_bridge(config: &Config, target: &Target, seen: &Arc<Mutex<Seen>>) -> Bridge {
    let spool = tempfile::tempdir().unwrap();
    let mut command = match config.server {
        Server::Bare => {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command.env(bare::ENV, "1");
            command
        }
        Server::Bridge => Command::new(BIN),
        Server::Baseline => Command::new(std::env::var_os("OPENIM_BRIDGE_BENCH_BASELINE").unwrap()),
    };
    if config.server == Server::Bare {
        command.env_remove("OPENIM_BRIDGE_TEST_KAFKA");
    } else {
        command.env_clear();
    }
    command
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

/// What one configuration measured.
pub struct Measured {
    name: String,
    /// The bare ack server (no spool, no broker).
    bare: bool,
    max: Phase,
    fixed: Phase,
    /// `SENDERS` connections, closed loop.
    openim: Phase,
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
    /// CPU microseconds per ack during the maximum phase.
    cpu_us: f64,
    /// The broker's CPU microseconds per ack (max phase), where known.
    broker_cpu_us: Option<f64>,
    /// The load generator's (this process, consumers included).
    generator_cpu_us: f64,
    /// Context switches per thread during the maximum phase.
    switches: Switches,
    /// System calls during the maximum phase (perf stat).
    syscalls: Option<u64>,
}

async fn run_config(
    config: &Config,
    index: usize,
    of: usize,
    brokers: &(String, String),
) -> Measured {
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
    let label = format!("[{}/{of}] {}", index + 1, config.name);
    let bare = config.server == Server::Bare;
    // What the consumer has seen of `acked`; nothing to look for behind
    // the bare server.
    let wait = |acked: Vec<String>| {
        let seen = Arc::clone(&seen);
        async move {
            if bare {
                0
            } else {
                wait_for(&seen, &acked).await
            }
        }
    };
    // The fixed rate first, on an idle bridge and broker, so its latency and
    // lag are not those of a backlog left by the maximum phase.
    let fixed = drive(
        bridge.addr,
        &format!("{run}-fixed"),
        Load {
            connections: CONNECTIONS,
            rate: Some(RATE),
        },
        &format!("{label} {RATE}/s"),
    )
    .await;
    let (_, steady_rss) = memory_mib(pid);
    let mut missing = wait(fixed.acked.clone()).await;
    let openim = drive(
        bridge.addr,
        &format!("{run}-openim"),
        Load {
            connections: SENDERS,
            rate: None,
        },
        &format!("{label} {SENDERS} senders"),
    )
    .await;
    missing += wait(openim.acked.clone()).await;
    let syncs_before = spool_syncs(bridge.addr).await;
    let syscalls = SyscallCount::start(pid);
    let switches_before = Switches::read(pid);
    // The broker's CPU where it is a process of ours (the Tansu that
    // scripts/bench started), and the load generator's (this process).
    let broker_pid = match (config.sink, config.transport) {
        (Sink::Kafka, Transport::Direct) => std::env::var("OPENIM_BRIDGE_TANSU_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok()),
        _ => None,
    };
    let broker_before = broker_pid.map(cpu_seconds);
    let generator_before = cpu_seconds(std::process::id());
    let cpu_before = cpu_seconds(pid);
    let max = drive(
        bridge.addr,
        &format!("{run}-max"),
        Load {
            connections: CONNECTIONS,
            rate: None,
        },
        &format!("{label} max"),
    )
    .await;
    let per_ack = |seconds: f64| seconds * 1e6 / max.acked.len().max(1) as f64;
    let cpu_us = per_ack(cpu_seconds(pid) - cpu_before);
    let generator_cpu_us = per_ack(cpu_seconds(std::process::id()) - generator_before);
    let broker_cpu_us = broker_pid
        .zip(broker_before)
        .map(|(broker, before)| per_ack(cpu_seconds(broker) - before));
    let switches = Switches::read(pid).since(&switches_before);
    let syscalls = syscalls.stop();
    let syncs_per_second = (spool_syncs(bridge.addr).await - syncs_before) as f64 / max.seconds;
    missing += wait(max.acked.clone()).await;
    let outage = match (config.sink, std::env::var("OPENIM_BRIDGE_TANSU_PID")) {
        (Sink::Kafka, Ok(tansu))
            if config.ack == "durable"
                && config.transport == Transport::Direct
                && config.server == Server::Bridge =>
        {
            let (acked, rss) = outage(bridge.addr, pid, &tansu, &run, &label).await;
            missing += wait_for(&seen, &acked).await;
            Some(rss)
        }
        _ => None,
    };
    let (peak_rss, _) = memory_mib(pid);
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
    eprintln!("\r  {label}: done{:40}", "");
    Measured {
        name: config.name.clone(),
        bare,
        max,
        fixed,
        openim,
        lag: seen.lag_fixed,
        lag_in_bridge: seen.lag_in_bridge,
        outage,
        syncs_per_second,
        missing,
        duplicates,
        peak_rss,
        steady_rss,
        cpu_us,
        broker_cpu_us,
        generator_cpu_us,
        switches,
        syscalls,
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
        Load {
            connections: CONNECTIONS,
            rate: Some(RATE),
        },
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

fn main() {
    if std::env::var_os(bare::ENV).is_some() {
        bare::serve();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let brokers = (
        std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
            .expect("run scripts/bench (it starts the brokers) or set OPENIM_BRIDGE_TEST_KAFKA"),
        std::env::var("OPENIM_BRIDGE_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
    );
    // OPENIM_BRIDGE_BENCH_ONLY=tls,stdout runs only configurations whose
    // name contains one of the words (and the bare server, the reference).
    let only = std::env::var("OPENIM_BRIDGE_BENCH_ONLY").unwrap_or_default();
    let words: Vec<&str> = only.split(',').filter(|w| !w.is_empty()).collect();
    let configs: Vec<Config> = configs()
        .into_iter()
        .filter(|c| {
            c.server == Server::Bare || words.is_empty() || words.iter().any(|w| c.name.contains(w))
        })
        .collect();
    eprintln!(
        "openim-bridge end-to-end benchmark: {} configurations, about {} s each",
        configs.len(),
        3 * SECONDS + 4
    );
    eprintln!("  the disk: append + fdatasync, preallocated overwrite + fdatasync");
    let (append, preallocated) = disk::fdatasync_latency(2000);
    let disk = report::Disk {
        append,
        preallocated,
    };
    let mut results = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        results.push(run_config(config, index, configs.len(), &brokers).await);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    report::plot(&results, &dir.join("latency.svg"));
    let text = report::report(&results, &disk);
    std::fs::write(dir.join("report.md"), &text).unwrap();
    println!("{text}");
    eprintln!("written: {}", dir.join("report.md").display());
}
