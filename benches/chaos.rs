//! Chaos soak: steady OpenIM-like load on real `openim-bridge` replicas
//! while processes and brokers fail around them; at the end every acked
//! `serverMsgID` must be in the broker.
//!
//! Set-up (loopback only):
//!
//! * a Tansu broker of the soak's own (in-memory storage), reached through a
//!   small TCP proxy that can cut the bridges off (a network partition)
//!   while the soak's reader keeps reading;
//! * the machine's RabbitMQ (it is restarted: do not run this next to
//!   anything else that uses it);
//! * two replicas per sink (`kafka-a`, `kafka-b`, `rabbitmq-a`,
//!   `rabbitmq-b`), each with its spool on a 16 MiB tmpfs of its own (when
//!   the soak may mount one: it runs as root on CI and dev machines);
//! * per sink, `WORKERS` clients sending one callback at a time, as
//!   OpenIM's callback workers do, each to its replica, or to the other one
//!   while its own cannot be reached (what a load balancer does);
//! * readers: a Kafka consumer, and a durable RabbitMQ queue that survives
//!   the broker's restarts (it expires by itself if the soak dies).
//!
//! Faults, one after another with a quiet gap, round after round until the
//! time is up: kill -9 and restart of a replica (also while its broker is
//! down, so a backlog is in its spool), both replicas of a sink killed at
//! once, Tansu paused (SIGSTOP), the bridges partitioned from Kafka (their
//! connections reset), RabbitMQ restarted (`rabbitmqctl stop_app` /
//! `start_app`), a replica's spool disk kept full, a replica's spool disk
//! filled once while its broker is healthy (it must recover by itself,
//! within 10 s, by freeing what the broker confirmed), a replica out of file
//! descriptors (`prlimit` lowers its open-files limit to what it has open).
//! (Restarting the in-memory Tansu empty is available but not in the
//! rotation: see `World::restart_tansu`.)
//!
//! All the while, one RabbitMQ callback in fifty goes to a group no queue is
//! bound for (routing key `chat.lost.N`; the reader binds `chat.g.*`): every such acked event must be in
//! a replica's dead-letter file, and no routable one may be there.
//!
//! Then the load stops, the readers wait for every acked id, and the
//! replicas get SIGTERM (exit 0 expected). The report (stdout and
//! `target/chaos/report.md`) lists missing (must be 0), duplicates, error
//! replies, transport errors, ack latency and the longest ack stall per
//! sink. The exit status is 1 when an acked event is missing, a replica
//! panicked or did not exit cleanly.
//!
//! Run with `scripts/chaos` (default 300 s; `scripts/chaos 60` for a short
//! run). Knobs: `CHAOS_SECONDS`, `CHAOS_RATE` (callbacks/s per sink),
//! `CHAOS_FAULTS` (e.g. `7,3`: only those faults, numbered as in
//! `World::inject`; 13 is the Tansu restart), `CHAOS_ONE_PRODUCER=1` (all Kafka load on `kafka-a`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_openim-bridge");
const TEMPLATE: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");
const TEMPLATE_ID: &str = "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91";
const PARTITIONS: i32 = 3;
const WORKERS: usize = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of each replica's spool disk.
const DISK: &str = "16m";
/// The reader's Kafka client id; the proxy never cuts it off.
const READER: &str = "chaos-reader";
/// Every n-th RabbitMQ callback is unroutable.
const UNROUTABLE_EVERY: u64 = 50;

// ---------------------------------------------------------------------------
// What happened, shared between the load, the readers and the report.

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

/// One sink's side of the soak.
struct Tally {
    name: &'static str,
    acked: Mutex<Vec<String>>,
    /// Acked, and sent where no queue is bound: due in a dead-letter file.
    unroutable: Mutex<Vec<String>>,
    /// Which replica (port) acked each id, and when (ms since the start):
    /// printed for missing ids.
    acked_by: Mutex<HashMap<String, (u16, u64)>>,
    sent: AtomicU64,
    /// Non-ack replies by HTTP status.
    refused: Mutex<BTreeMap<u16, u64>>,
    /// Requests that got no reply (connection refused or reset, timeout).
    transport_errors: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Milliseconds since the start when the last ack arrived.
    last_ack_ms: AtomicU64,
    /// Longest time without any ack (ms), and when it ended (s).
    longest_stall: Mutex<(u64, f64)>,
    /// How often the reader saw each id.
    seen: Mutex<HashMap<String, u32>>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            acked: Mutex::default(),
            unroutable: Mutex::default(),
            acked_by: Mutex::default(),
            sent: AtomicU64::default(),
            refused: Mutex::default(),
            transport_errors: AtomicU64::default(),
            latency: Mutex::new(new_histogram()),
            last_ack_ms: AtomicU64::default(),
            longest_stall: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    fn saw(&self, id: &str) {
        *self.seen.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }

    fn missing(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .filter(|id| !seen.contains_key(*id))
            .cloned()
            .collect()
    }
}

#[derive(Deserialize)]
struct Data<'a> {
    event_id: &'a str,
}

fn event_id(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Data>(payload)
        .ok()
        .map(|data| data.event_id.to_owned())
}

// ---------------------------------------------------------------------------
// Processes.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// A small tmpfs, unmounted when dropped; a plain directory when mounting
/// is not allowed here (then the disk-full fault is skipped).
struct Disk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Disk {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        Self { dir, mounted }
    }

    fn dead_letter_ids(&self) -> std::collections::HashSet<String> {
        let path = self.dir.path().join("spool/dead-letter.jsonl");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|line| Some(line["event"]["id"].as_str()?.to_owned()))
            .collect()
    }

    fn filler(&self) -> PathBuf {
        self.dir.path().join("filler")
    }

    /// Appends to a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler());
        let Ok(mut file) = opened else {
            return;
        };
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

/// One bridge replica: a fixed port and spool, so a restart is the same
/// replica coming back.
struct Replica {
    name: String,
    port: u16,
    disk: Disk,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Replica {
    fn new(name: &str, env: Vec<(&'static str, String)>, logs: &Path) -> Self {
        Self {
            name: name.to_owned(),
            port: free_port(),
            disk: Disk::new(),
            env,
            log: logs.join(format!("{name}.log")),
            child: None,
            starts: 0,
        }
    }

    async fn start(&mut self) {
        let spool = self.disk.dir.path().join("spool");
        let child = support::spawn_bridge(BIN, self.port, &spool, &self.env, &self.log);
        self.child = Some(child);
        self.starts += 1;
        if !wait_for_port(self.port, Duration::from_secs(30)).await {
            eprintln!(
                "  {} did not listen within 30 s (log: {})",
                self.name,
                self.log.display()
            );
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; the exit status (None: it had to be killed).
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

// ---------------------------------------------------------------------------
// Kafka: Tansu behind a proxy that can partition the bridges from it.

struct Tansu {
    child: Child,
    /// Where Tansu listens.
    port: u16,
    /// The proxy, which Tansu advertises: every client goes through it.
    advertised: u16,
    log: PathBuf,
}

impl Tansu {
    async fn start(port: u16, advertised: u16, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new("tansu")
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("the soak runs its own Tansu: install it (scripts/chaos does)");
        assert!(
            wait_for_port(port, Duration::from_secs(30)).await,
            "tansu did not listen (log: {})",
            log.display()
        );
        Self {
            child,
            port,
            advertised,
            log,
        }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }
}

/// Forwards connections to Tansu. While `cut` is true, connections of
/// every client but the reader are closed and new ones refused.
async fn proxy(listener: TcpListener, upstream: u16, cut: watch::Receiver<bool>) {
    while let Ok((client, _)) = listener.accept().await {
        let cut = cut.clone();
        tokio::spawn(async move {
            let _ = forward(client, upstream, cut).await;
        });
    }
}

async fn forward(
    mut client: TcpStream,
    upstream: u16,
    mut cut: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A Kafka request starts: size i32, api_key i16, api_version i16,
    // correlation_id i32, client_id (i16 length + bytes).
    let mut head = vec![0u8; 14];
    client.read_exact(&mut head).await?;
    let id_len = i16::from_be_bytes([head[12], head[13]]).max(0) as usize;
    let mut id = vec![0u8; id_len];
    client.read_exact(&mut id).await?;
    let cuttable = !id.starts_with(READER.as_bytes());
    if cuttable && *cut.borrow() {
        return Ok(());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    server.write_all(&head).await?;
    server.write_all(&id).await?;
    if !cuttable {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut server) => { result?; }
        _ = cut.wait_for(|cut| *cut) => {}
    }
    Ok(())
}

fn kafka_config(brokers: &str, client_id: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id);
    config
}

async fn create_topic(brokers: &str, topic: &str) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        kafka_config(brokers, &format!("{READER}-admin"))
            .create()
            .map_err(|err| err.to_string())?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|err| err.to_string())?;
    for result in results {
        result.map_err(|(name, code)| format!("{name}: {code:?}"))?;
    }
    Ok(())
}

/// The Kafka reader's shared state.
#[derive(Default)]
struct Reader {
    stop: AtomicBool,
    /// While set, the reader holds no client: librdkafka 2.12 can crash
    /// when a topic comes back under a new topic ID while a client caches
    /// the old one (confluentinc/librdkafka#4964), so the reader lets go
    /// of its client while Tansu is replaced and reads the new topic from
    /// the start with a new client.
    paused: AtomicBool,
    /// Whether the reader currently holds a client.
    reading: AtomicBool,
    /// Next offset to read, per partition.
    next: Mutex<[i64; PARTITIONS as usize]>,
}

fn kafka_reader(
    brokers: String,
    topic: String,
    tally: Arc<Tally>,
    reader: Arc<Reader>,
) -> std::thread::JoinHandle<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    std::thread::spawn(move || {
        let mut consumer: Option<BaseConsumer> = None;
        while !reader.stop.load(Ordering::Relaxed) {
            if reader.paused.load(Ordering::SeqCst) {
                consumer = None;
                reader.reading.store(false, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let current = consumer.get_or_insert_with(|| {
                let consumer: BaseConsumer = kafka_config(&brokers, READER)
                    .set("group.id", format!("chaos-{}", std::process::id()))
                    .set("enable.auto.commit", "false")
                    // An offset out of range restarts from the first record
                    // (duplicates, counted), never from the end (a gap).
                    .set("auto.offset.reset", "earliest")
                    .set("fetch.wait.max.ms", "50")
                    .create()
                    .unwrap();
                let mut assignment = TopicPartitionList::new();
                for partition in 0..PARTITIONS {
                    let _ = assignment.add_partition_offset(&topic, partition, Offset::Beginning);
                }
                let _ = consumer.assign(&assignment);
                *reader.next.lock().unwrap() = [0; PARTITIONS as usize];
                reader.reading.store(true, Ordering::SeqCst);
                consumer
            });
            if let Some(Ok(message)) = current.poll(Duration::from_millis(100)) {
                if let Some(id) = event_id(message.payload().unwrap_or_default()) {
                    tally.saw(&id);
                }
                if let Some(next) = reader
                    .next
                    .lock()
                    .unwrap()
                    .get_mut(message.partition() as usize)
                {
                    *next = message.offset() + 1;
                }
            }
        }
    })
}

/// Waits until the reader has read up to the broker's high watermarks.
async fn reader_caught_up(brokers: &str, topic: &str, reader: &Reader, within: Duration) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        match kafka_config(brokers, &format!("{READER}-watermarks")).create() {
            Ok(consumer) => consumer,
            Err(_) => return false,
        };
    let consumer = Arc::new(consumer);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (consumer, topic) = (Arc::clone(&consumer), topic.to_owned());
        let highs = tokio::task::spawn_blocking(move || {
            (0..PARTITIONS)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(5))
                        .map(|(_, high)| high)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
        if let Ok(highs) = highs {
            let next = *reader.next.lock().unwrap();
            if highs.iter().zip(next).all(|(high, next)| next >= *high) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

// ---------------------------------------------------------------------------
// RabbitMQ: a durable queue that outlives the broker's restarts.

async fn rabbitmq_reader(url: String, exchange: String, queue: String, tally: Arc<Tally>) {
    use futures_util::StreamExt;
    use lapin::options::BasicAckOptions;
    loop {
        // A session can hang (seen after `rabbitmqctl start_app`: a
        // consumer that never delivers again): setup is bounded, and a
        // consumer idle for READER_IDLE is dropped and started afresh; the
        // durable queue keeps what was not acked.
        let setup = rabbitmq_consumer(&url, &exchange, &queue);
        if let Ok(Ok((_connection, mut consumer))) =
            tokio::time::timeout(Duration::from_secs(10), setup).await
        {
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(READER_IDLE, consumer.next()).await
            {
                if let Some(id) = event_id(&delivery.data) {
                    tally.saw(&id);
                }
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the reader's consumer may go without a delivery before its
/// session is started again.
const READER_IDLE: Duration = Duration::from_secs(5);

/// Connects, declares the exchange and the durable queue, binds the
/// routable groups (`chat.g.*`) and consumes.
async fn rabbitmq_consumer(
    url: &str,
    exchange: &str,
    queue: &str,
) -> Result<(lapin::Connection, lapin::Consumer), lapin::Error> {
    use lapin::options::{
        BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    let connection = lapin::Connection::connect(url, Default::default()).await?;
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    // Deleted by the broker 10 minutes after its last reader left.
    arguments.insert("x-expires".into(), AMQPValue::LongInt(600_000));
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, arguments)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "chat.g.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel.basic_qos(1000, BasicQosOptions::default()).await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}

async fn delete_rabbitmq_objects(url: &str, exchange: &str, queue: &str) {
    if let Ok(connection) = lapin::Connection::connect(url, Default::default()).await {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel.queue_delete(queue.into(), Default::default()).await;
            let _ = channel
                .exchange_delete(exchange.into(), Default::default())
                .await;
        }
        let _ = connection.close(200, "chaos done".into()).await;
    }
}

async fn rabbitmqctl(command: &str) -> bool {
    tokio::process::Command::new("rabbitmqctl")
        .arg(command)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

// ---------------------------------------------------------------------------
// Load: OpenIM-like workers, one callback at a time per connection.

use support::{post, Outcome, Sender};

/// A connection to the replica on `port`, or `None` (down, or no answer
/// within 2 s).
async fn connect(port: u16) -> Option<Sender> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::timeout(Duration::from_secs(2), support::connect(addr))
        .await
        .ok()?
}

/// The sum of the replica's `openim_bridge_callbacks_total` series whose
/// labels contain `labels` (0 when it does not answer).
async fn replica_metric(port: u16, labels: &str) -> u64 {
    let Some(mut sender) = connect(port).await else {
        return 0;
    };
    let request = hyper::Request::get("/metrics")
        .header("Host", "bridge")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let exchange = async {
        let response = sender.send_request(request).await?;
        response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
    };
    let Ok(Ok(body)) = tokio::time::timeout(Duration::from_secs(2), exchange).await else {
        return 0;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("openim_bridge_callbacks_total{") && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One worker: sends each callback to `ports[0]`, or to `ports[1]` while
/// `ports[0]` cannot be reached (what a load balancer does; a refused
/// callback is not sent again, as OpenIM does not retry).
async fn worker(
    tally: Arc<Tally>,
    ports: [u16; 2],
    interval: Duration,
    worker: usize,
    started: Instant,
    stop: Arc<AtomicBool>,
) {
    let mut senders: [Option<Sender>; 2] = [None, None];
    // Do not hammer a replica that is down: try it again after a pause.
    let mut next_try = [Instant::now(); 2];
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0u64.. {
        ticker.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut target = None;
        for (n, port) in ports.into_iter().enumerate() {
            if senders[n].as_ref().is_none_or(|s| s.is_closed()) {
                senders[n] = None;
                if Instant::now() >= next_try[n] {
                    senders[n] = connect(port).await;
                    next_try[n] = Instant::now() + Duration::from_millis(200);
                }
            }
            if senders[n].is_some() {
                target = Some(n);
                break;
            }
        }
        let id = format!("{}-{worker}-{i}", tally.name);
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let Some(n) = target else {
            tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // Group IDs `g.N`, or `lost.N` (no queue bound): RabbitMQ topic
        // bindings match whole dot-separated words.
        let unroutable = tally.name == "rabbitmq" && i.is_multiple_of(UNROUTABLE_EVERY);
        let group = if unroutable { "lost" } else { "g" };
        let body = TEMPLATE
            .replace(TEMPLATE_ID, &id)
            .replace("\"g_3001\"", &format!("\"{group}.{}\"", i % 32));
        let begun = Instant::now();
        match post(&mut senders[n], body, REQUEST_TIMEOUT).await {
            Outcome::Acked => {
                let micros = begun.elapsed().as_micros().max(1) as u64;
                let _ = tally.latency.lock().unwrap().record(micros);
                tally
                    .last_ack_ms
                    .fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                let at = started.elapsed().as_millis() as u64;
                tally
                    .acked_by
                    .lock()
                    .unwrap()
                    .insert(id.clone(), (ports[n], at));
                if unroutable {
                    tally.unroutable.lock().unwrap().push(id);
                } else {
                    tally.acked.lock().unwrap().push(id);
                }
            }
            Outcome::Refused(status) => {
                *tally.refused.lock().unwrap().entry(status).or_default() += 1;
            }
            Outcome::NoReply(_) => {
                tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Tracks the longest time without an ack, per sink.
async fn stall_monitor(tallies: Vec<Arc<Tally>>, started: Instant, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = started.elapsed().as_millis() as u64;
        for tally in &tallies {
            let gap = now.saturating_sub(tally.last_ack_ms.load(Ordering::Relaxed));
            let mut longest = tally.longest_stall.lock().unwrap();
            if gap > longest.0 {
                *longest = (gap, now as f64 / 1000.0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Faults.

struct World {
    tansu: Tansu,
    cut: watch::Sender<bool>,
    topic: String,
    reader: Arc<Reader>,
    replicas: Vec<Replica>,
    started: Instant,
    log: Vec<(f64, f64, String)>,
    /// What the last fault measured, for its line in the log.
    note: Option<String>,
}

impl World {
    fn replica(&mut self, name: &str) -> &mut Replica {
        self.replicas
            .iter_mut()
            .find(|replica| replica.name == name)
            .unwrap()
    }

    async fn restart_replica(&mut self, name: &str) {
        let replica = self.replica(name);
        replica.kill_9();
        tokio::time::sleep(Duration::from_secs(2)).await;
        replica.start().await;
    }

    async fn pause_tansu(&mut self, seconds: u64, crash_during: Option<&str>) {
        signal(self.tansu.child.id(), "STOP");
        tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
        if let Some(name) = crash_during {
            self.restart_replica(name).await;
        }
        tokio::time::sleep(Duration::from_secs(seconds - seconds / 2)).await;
        signal(self.tansu.child.id(), "CONT");
    }

    async fn partition_kafka(&mut self, seconds: u64) {
        self.cut.send_replace(true);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        self.cut.send_replace(false);
    }

    /// Kills Tansu and starts it again empty. The bridges are cut off
    /// first and the reader catches up, so only what the bridges send
    /// after the restart is looked for in the new broker.
    ///
    /// Only with `CHAOS_FAULTS=13`: an in-memory Tansu also forgets the
    /// producer IDs it handed out and hands them out again, so after a
    /// restart two bridges can produce under one producer ID and the
    /// broker drops records as idempotent duplicates while acking them
    /// (measured: thousands missing after 5 restarts, with the bridges'
    /// logs showing `UnknownProducerId` and reused `PID{Id:1}`; with
    /// `CHAOS_ONE_PRODUCER=1`, all Kafka load on one replica, the same 5
    /// restarts lose nothing). A real broker keeps producer state in its
    /// log; use this fault with a persistent one.
    async fn restart_tansu(&mut self) -> Result<(), String> {
        self.cut.send_replace(true);
        // Let requests already inside Tansu finish.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let brokers = self.tansu.brokers();
        if !reader_caught_up(&brokers, &self.topic, &self.reader, Duration::from_secs(60)).await {
            self.cut.send_replace(false);
            return Err("the reader did not catch up; Tansu not restarted".into());
        }
        self.reader.paused.store(true, Ordering::SeqCst);
        while self.reader.reading.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.tansu.child.kill();
        let _ = self.tansu.child.wait();
        let (port, advertised, log) = (
            self.tansu.port,
            self.tansu.advertised,
            self.tansu.log.clone(),
        );
        self.tansu = Tansu::start(port, advertised, log).await;
        let mut created = create_topic(&brokers, &self.topic).await;
        for _ in 0..10 {
            if created.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            created = create_topic(&brokers, &self.topic).await;
        }
        self.reader.paused.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.cut.send_replace(false);
        created.map_err(|err| format!("re-creating the topic: {err}"))
    }

    async fn restart_rabbitmq(&mut self, crash_during: Option<&str>) -> Result<(), String> {
        if !rabbitmqctl("stop_app").await {
            return Err("rabbitmqctl stop_app failed".into());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(name) = crash_during {
            self.restart_replica(name).await;
        }
        if !rabbitmqctl("start_app").await {
            return Err("rabbitmqctl start_app failed".into());
        }
        Ok(())
    }

    async fn fill_disk(&mut self, name: &str, seconds: u64) -> Result<(), String> {
        let replica = self.replica(name);
        if !replica.disk.mounted {
            return Err("skipped: no tmpfs (mount needs root)".into());
        }
        // Keep it full: the bridge frees space by deleting confirmed
        // segments, and another process takes it again.
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            replica.disk.fill();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica.disk.free();
        Ok(())
    }

    /// Fills `name`'s spool disk once and leaves the filler there: with a
    /// healthy broker the bridge must answer again by itself, within 10 s,
    /// by deleting segments the broker confirmed.
    async fn fill_disk_once(&mut self, name: &str) -> Result<(), String> {
        let replica = self.replica(name);
        if !replica.disk.mounted {
            return Err("skipped: no tmpfs (mount needs root)".into());
        }
        let port = replica.port;
        let before = replica_metric(port, "outcome=\"unavailable\"").await;
        replica.disk.fill();
        let filled = Instant::now();
        let result = loop {
            if filled.elapsed() > Duration::from_secs(10) {
                break Err("NOT RECOVERED within 10 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Recovered: refusals happened and stopped, acks go on.
            let refused = replica_metric(port, "outcome=\"unavailable\"").await;
            if refused > before {
                let acked = replica_metric(port, "outcome=\"acked\"").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let still_refusing = replica_metric(port, "outcome=\"unavailable\"").await;
                if still_refusing == refused
                    && replica_metric(port, "outcome=\"acked\"").await > acked
                {
                    break Ok(format!(
                        "recovered by itself after {} ms ({} refused)",
                        filled.elapsed().as_millis(),
                        refused - before
                    ));
                }
            } else if filled.elapsed() > Duration::from_secs(5) {
                break Ok("the disk never filled up for it (no refusals)".to_owned());
            }
        };
        self.replica(name).disk.free();
        result.map(|note| self.note = Some(note))
    }

    /// Lowers `name`'s open-files limit to what it has open for `seconds`:
    /// every new socket, segment and read of the spool fails with EMFILE.
    async fn exhaust_files(&mut self, name: &str, seconds: u64) -> Result<(), String> {
        let replica = self.replica(name);
        let Some(pid) = replica.child.as_ref().map(Child::id) else {
            return Err("not running".into());
        };
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| dir.count())
            .map_err(|err| err.to_string())?;
        let limit = |value: &str| {
            Command::new("prlimit")
                .args(["--pid", &pid.to_string(), &format!("--nofile={value}")])
                .status()
                .is_ok_and(|status| status.success())
        };
        let original = Command::new("prlimit")
            .args([
                "--pid",
                &pid.to_string(),
                "--nofile",
                "--raw",
                "--noheadings",
                "-o",
                "SOFT,HARD",
            ])
            .output()
            .map_err(|err| format!("prlimit: {err}"))?;
        let original = String::from_utf8_lossy(&original.stdout);
        let original: Vec<&str> = original.split_whitespace().collect();
        let [soft, hard] = original[..] else {
            return Err(format!("prlimit printed {original:?}"));
        };
        if !limit(&format!("{open}:{hard}")) {
            return Err("prlimit failed (needs util-linux and root)".into());
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        limit(&format!("{soft}:{hard}"));
        Ok(())
    }

    async fn inject(&mut self, fault: usize) {
        let at = self.started.elapsed().as_secs_f64();
        let (name, result) = match fault {
            0 => {
                self.restart_replica("kafka-a").await;
                ("kill -9 kafka-a, restart after 2 s", Ok(()))
            }
            1 => {
                self.pause_tansu(8, None).await;
                ("pause Tansu 8 s (SIGSTOP)", Ok(()))
            }
            2 => {
                self.restart_replica("rabbitmq-b").await;
                ("kill -9 rabbitmq-b, restart after 2 s", Ok(()))
            }
            3 => (
                "restart RabbitMQ (stop_app, 3 s, start_app)",
                self.restart_rabbitmq(None).await,
            ),
            4 => (
                "fill kafka-b's spool disk for 6 s",
                self.fill_disk("kafka-b", 6).await,
            ),
            5 => {
                self.partition_kafka(8).await;
                ("partition Kafka from the bridges for 8 s", Ok(()))
            }
            6 => {
                self.pause_tansu(10, Some("kafka-b")).await;
                (
                    "pause Tansu 10 s; kill -9 + restart kafka-b during it",
                    Ok(()),
                )
            }
            7 => {
                self.replica("kafka-a").kill_9();
                self.restart_replica("kafka-b").await;
                self.replica("kafka-a").start().await;
                (
                    "kill -9 kafka-a and kafka-b together, restart after 2 s",
                    Ok(()),
                )
            }
            8 => (
                "fill rabbitmq-a's spool disk for 6 s",
                self.fill_disk("rabbitmq-a", 6).await,
            ),
            9 => (
                "restart RabbitMQ; kill -9 + restart rabbitmq-a during it",
                self.restart_rabbitmq(Some("rabbitmq-a")).await,
            ),
            10 => (
                "kafka-a out of file descriptors for 6 s (prlimit)",
                self.exhaust_files("kafka-a", 6).await,
            ),
            11 => (
                "fill rabbitmq-b's spool disk once, broker healthy",
                self.fill_disk_once("rabbitmq-b").await,
            ),
            12 => (
                "rabbitmq-a out of file descriptors for 6 s (prlimit)",
                self.exhaust_files("rabbitmq-a", 6).await,
            ),
            // Not in the default rotation (see `restart_tansu`).
            _ => (
                "restart Tansu empty (kill -9; topic re-created)",
                self.restart_tansu().await,
            ),
        };
        let until = self.started.elapsed().as_secs_f64();
        let name = match (result, self.note.take()) {
            (Ok(()), None) => name.to_owned(),
            (Ok(()), Some(note)) => format!("{name}: {note}"),
            (Err(problem), _) => format!("{name}: {problem}"),
        };
        eprintln!("  [{at:6.1}-{until:6.1} s] {name}");
        self.log.push((at, until, name));
    }
}

const FAULTS: usize = 13;
const GAP: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn bridge_logs(replicas: &[Replica]) -> (usize, usize, Vec<String>) {
    let (mut panics, mut errors, mut examples) = (0, 0, Vec::new());
    for replica in replicas {
        let text = std::fs::read_to_string(&replica.log).unwrap_or_default();
        for line in text.lines() {
            if line.contains("panicked") {
                panics += 1;
                examples.push(format!("{}: {line}", replica.name));
            } else if line.contains("ERROR") {
                errors += 1;
                if examples.len() < 5 {
                    examples.push(format!("{}: {line}", replica.name));
                }
            }
        }
    }
    (panics, errors, examples)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo bench` lists benchmarks this way.
    }
    let seconds: u64 = env_or("CHAOS_SECONDS", 300);
    let rate: f64 = env_or("CHAOS_RATE", 400.0);
    let amqp = std::env::var("OPENIM_BRIDGE_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/chaos");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let run = format!("chaos-{}", std::process::id());
    eprintln!(
        "chaos soak: {seconds} s, {rate}/s per sink, logs in {}",
        out.display()
    );

    // Kafka: Tansu behind the proxy.
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let advertised = proxy_listener.local_addr().unwrap().port();
    let tansu = Tansu::start(free_port(), advertised, out.join("tansu.log")).await;
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(proxy(proxy_listener, tansu.port, cut_rx));
    let brokers = tansu.brokers();
    create_topic(&brokers, &run)
        .await
        .expect("create the topic");

    let kafka = Arc::new(Tally::new("kafka"));
    let rabbitmq = Arc::new(Tally::new("rabbitmq"));
    let reader = Arc::new(Reader::default());
    let kafka_thread = kafka_reader(
        brokers.clone(),
        run.clone(),
        Arc::clone(&kafka),
        Arc::clone(&reader),
    );
    let rabbitmq_task = tokio::spawn(rabbitmq_reader(
        amqp.clone(),
        run.clone(),
        run.clone(),
        Arc::clone(&rabbitmq),
    ));

    let kafka_env = vec![
        ("OPENIM_BRIDGE__SINK__KIND", "kafka".to_owned()),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.clone()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", run.clone()),
    ];
    let rabbitmq_env = vec![
        ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq".to_owned()),
        ("OPENIM_BRIDGE__RABBITMQ__URL", amqp.clone()),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", run.clone()),
        (
            "OPENIM_BRIDGE__RABBITMQ__ROUTING_KEY",
            "chat.{key}".to_owned(),
        ),
    ];
    let mut replicas = vec![
        Replica::new("kafka-a", kafka_env.clone(), &out),
        Replica::new("kafka-b", kafka_env, &out),
        Replica::new("rabbitmq-a", rabbitmq_env.clone(), &out),
        Replica::new("rabbitmq-b", rabbitmq_env, &out),
    ];
    for replica in &mut replicas {
        replica.start().await;
    }
    // Let the RabbitMQ reader bind its queue before the first callback.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f64(WORKERS as f64 / rate);
    let mut workers = Vec::new();
    for (tally, pair) in [(&kafka, [0, 1]), (&rabbitmq, [2, 3])] {
        for w in 0..WORKERS {
            let mut ports = [replicas[pair[w % 2]].port, replicas[pair[1 - w % 2]].port];
            if std::env::var_os("CHAOS_ONE_PRODUCER").is_some() {
                ports = [replicas[pair[0]].port; 2];
            }
            workers.push(tokio::spawn(worker(
                Arc::clone(tally),
                ports,
                interval,
                w,
                started,
                Arc::clone(&stop),
            )));
        }
    }
    let monitor = tokio::spawn(stall_monitor(
        vec![Arc::clone(&kafka), Arc::clone(&rabbitmq)],
        started,
        Arc::clone(&stop),
    ));

    let mut world = World {
        tansu,
        cut,
        topic: run.clone(),
        reader: Arc::clone(&reader),
        replicas,
        started,
        log: Vec::new(),
        note: None,
    };
    let deadline = started + Duration::from_secs(seconds);
    let mut fault = 0;
    tokio::time::sleep(GAP).await;
    // CHAOS_FAULTS=7,3 injects only those faults (numbers as in `inject`).
    let only: Vec<usize> = std::env::var("CHAOS_FAULTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    while Instant::now() < deadline {
        let next = if only.is_empty() {
            fault % FAULTS
        } else {
            only[fault % only.len()]
        };
        world.inject(next).await;
        fault += 1;
        tokio::time::sleep(GAP).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = monitor.await;
    let load_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "  load stopped after {load_seconds:.0} s; waiting for every acked id in the brokers"
    );
    let wait_deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < wait_deadline
        && !(kafka.missing().is_empty() && rabbitmq.missing().is_empty())
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Missing ones are looked for once more by a fresh consumer reading the
    // whole topic: what it finds was the reader's gap, not a loss.
    let gaps = kafka.missing();
    if !gaps.is_empty() {
        let wanted: std::collections::HashSet<String> = gaps.iter().cloned().collect();
        let found =
            support::kafka_read_back(&brokers, &run, PARTITIONS, &wanted, Duration::from_secs(60));
        for id in found.intersection(&wanted) {
            kafka.saw(id);
        }
        eprintln!(
            "  a fresh read of the topic found {} of {} ids the reader had not seen",
            found.intersection(&wanted).count(),
            wanted.len()
        );
    }
    eprintln!("  stopping the replicas (SIGTERM)");
    let mut unclean = Vec::new();
    for replica in &mut world.replicas {
        match replica.terminate() {
            Some(status) if status.success() => {}
            other => unclean.push(format!("{}: {other:?}", replica.name)),
        }
    }

    let (panics, errors, examples) = bridge_logs(&world.replicas);
    let dead_letters = DeadLetters::check(&world.replicas, &[&kafka, &rabbitmq]);
    let mut report = report(
        &[&kafka, &rabbitmq],
        &world,
        seconds,
        rate,
        load_seconds,
        (panics, errors, &examples),
        &unclean,
    );
    dead_letters.render(&mut report);
    println!("{report}");
    std::fs::write(out.join("report.md"), &report).unwrap();
    eprintln!("report written to {}", out.join("report.md").display());

    reader.stop.store(true, Ordering::Relaxed);
    let _ = kafka_thread.join();
    rabbitmq_task.abort();
    delete_rabbitmq_objects(&amqp, &run, &run).await;
    let _ = world.tansu.child.kill();
    let _ = world.tansu.child.wait();
    let missing = kafka.missing().len() + rabbitmq.missing().len();
    drop(world);
    if missing > 0 || panics > 0 || !unclean.is_empty() || !dead_letters.sound() {
        std::process::exit(1);
    }
}

/// What the replicas' dead-letter files hold, per sink, against what was
/// sent unroutable.
struct DeadLetters {
    /// (sink, unroutable acked, of those in a dead-letter file, routable
    /// acked found in a dead-letter file)
    rows: Vec<(&'static str, usize, usize, usize)>,
}

impl DeadLetters {
    fn check(replicas: &[Replica], tallies: &[&Arc<Tally>]) -> Self {
        let rows = tallies
            .iter()
            .map(|tally| {
                let dead: std::collections::HashSet<String> = replicas
                    .iter()
                    .filter(|replica| replica.name.starts_with(tally.name))
                    .flat_map(|replica| replica.disk.dead_letter_ids())
                    .collect();
                let unroutable = tally.unroutable.lock().unwrap();
                let found = unroutable.iter().filter(|id| dead.contains(*id)).count();
                let wrong = tally
                    .acked
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|id| dead.contains(*id))
                    .count();
                (tally.name, unroutable.len(), found, wrong)
            })
            .collect();
        Self { rows }
    }

    /// Appends the dead-letter table to the report.
    fn render(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "\nDead-letter files: every unroutable acked event must be there, no routable one.\n\n| sink | unroutable acked | in a dead-letter file | routable ones dead-lettered |\n|---|---|---|---|"
        );
        for (sink, unroutable, found, wrong) in &self.rows {
            let _ = writeln!(text, "| {sink} | {unroutable} | {found} | {wrong} |");
        }
    }

    /// Every unroutable event dead-lettered, and no routable one.
    fn sound(&self) -> bool {
        self.rows
            .iter()
            .all(|(_, unroutable, found, wrong)| unroutable == found && *wrong == 0)
    }
}

fn report(
    tallies: &[&Arc<Tally>],
    world: &World,
    seconds: u64,
    rate: f64,
    load_seconds: f64,
    (panics, errors, examples): (usize, usize, &[String]),
    unclean: &[String],
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Chaos soak report\n");
    let _ = writeln!(
        text,
        "{seconds} s requested ({load_seconds:.0} s of load), {rate}/s per sink from {WORKERS} connections each, 2 replicas per sink, spool disks of {DISK}.\n"
    );
    let _ = writeln!(
        text,
        "| sink | sent | acked | missing | duplicates | error replies | no reply | ack p50 | ack p99 | ack max | longest ack stall |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|---|---|---|---|");
    for tally in tallies {
        let acked = tally.acked.lock().unwrap().len();
        let missing = tally.missing();
        let duplicates: u64 = tally
            .seen
            .lock()
            .unwrap()
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum();
        let refused = tally.refused.lock().unwrap();
        let refused = if refused.is_empty() {
            "0".to_owned()
        } else {
            refused
                .iter()
                .map(|(status, n)| format!("{n} x {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let latency = tally.latency.lock().unwrap();
        let ms = |micros: u64| format!("{:.2} ms", micros as f64 / 1000.0);
        let (stall, stall_at) = *tally.longest_stall.lock().unwrap();
        let _ = writeln!(
            text,
            "| {} | {} | {acked} | {} | {duplicates} | {refused} | {} | {} | {} | {} | {stall} ms (ended at {stall_at:.1} s) |",
            tally.name,
            tally.sent.load(Ordering::Relaxed),
            missing.len(),
            tally.transport_errors.load(Ordering::Relaxed),
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.max()),
        );
        if !missing.is_empty() {
            let acked_by = tally.acked_by.lock().unwrap();
            let listed: Vec<String> = missing
                .iter()
                .take(20)
                .map(|id| {
                    let (port, at) = acked_by.get(id).copied().unwrap_or_default();
                    let replica = world
                        .replicas
                        .iter()
                        .find(|replica| replica.port == port)
                        .map_or("?", |replica| replica.name.as_str());
                    format!("{id} (acked by {replica} at {:.1} s)", at as f64 / 1000.0)
                })
                .collect();
            let _ = writeln!(text, "\nMISSING on {}: {}\n", tally.name, listed.join(", "));
        }
    }
    let _ = writeln!(text, "\nFaults injected ({}):\n", world.log.len());
    for (from, until, name) in &world.log {
        let _ = writeln!(text, "- {from:.1}-{until:.1} s: {name}");
    }
    let starts: Vec<String> = world
        .replicas
        .iter()
        .map(|replica| format!("{} {}", replica.name, replica.starts))
        .collect();
    let _ = writeln!(text, "\nReplica starts: {}.", starts.join(", "));
    let _ = writeln!(
        text,
        "Bridge logs: {panics} panics, {errors} ERROR lines. Clean exit on SIGTERM: {}.",
        if unclean.is_empty() {
            "all replicas".to_owned()
        } else {
            format!("NOT {}", unclean.join("; "))
        }
    );
    for example in examples {
        let _ = writeln!(text, "    {example}");
    }
    text
}
