//! Operations test: the shipped load balancer configuration
//! (`deploy/haproxy/haproxy.cfg`, Debian's HAProxy) in front of real
//! `openim-bridge` replicas and a Tansu broker, under OpenIM-like load,
//! through the routine operations of a deployment:
//!
//! * a rolling restart (SIGTERM, wait for the exit, start again, wait until
//!   ready, next replica), as an orchestrator does it;
//! * `kill -9` of a replica and its restart, six times;
//! * scale from 2 to 3 replicas and back to 2;
//! * a reload of the load balancer (`kill -USR2` to HAProxy's master);
//! * every replica frozen (SIGSTOP) for 1 s, three times, 2 s apart: what
//!   CPU throttling under a Kubernetes CPU limit, or a stalled node, does to
//!   a whole fleet.
//!
//! A restarted or added replica is waited for the documented way: until
//! HAProxy's stats page lists it `UP`, not only until its `/readyz` answers.
//! Beside the load, one connection is opened at the start and first used
//! 20 s later, as Go's transport does with a spare connection.
//!
//! Only the listen addresses, the replicas' addresses and the stats socket
//! path of the shipped file are rewritten (loopback, temporary directory);
//! scaling to 3 adds a `server` line, as an operator would. To compare
//! another HAProxy file side by side, name it in
//! `OPENIM_BRIDGE_OPERATIONS_HAPROXY_CFG` (it needs the `stats` frontend).
//!
//! Load: 4 senders like OpenIM's webhook workers: one request at a time,
//! keep-alive, a failed request is not sent again, its connection is
//! dropped. Per scenario the report lists callbacks sent, acked, error
//! replies by status, requests with no reply, the longest time without an
//! ack, and acked callbacks missing from Kafka. Targets: 0 errors and 0
//! missing for every scenario; for `kill -9`, only requests in flight on the
//! killed replica may fail (at most one per sender and kill), and 0 missing.
//!
//! Run with `scripts/operations` (about 2 minutes); report in
//! `target/operations/report.md`; exit status 1 when a target is missed.

mod support;

use openim_bridge_test_kit::haproxy::{self, Ports};
use openim_bridge_test_kit::{free_port, signal};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use support::{post, Outcome, Sender};

const BIN: &str = env!("CARGO_BIN_EXE_openim-bridge");
const SHIPPED: &str = include_str!("../deploy/haproxy/haproxy.cfg");
const TEMPLATE: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");
const TEMPLATE_ID: &str = "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91";
const SENDERS: usize = 4;
/// Per sender: about 250 callbacks/s, 1,000/s in all.
const INTERVAL: Duration = Duration::from_millis(4);
const PARTITIONS: i32 = 3;
/// How long every replica is frozen, per round.
const FREEZE: Duration = Duration::from_secs(1);
/// How many times a replica is killed (`kill -9`) and restarted, the two
/// replicas in turn: each kill catches a few requests in flight.
const KILLS: usize = 6;
/// How long the spare connection stays unused: longer than the 15 s after
/// which the earlier file's `timeout http-request` closed it.
const SPARE_IDLE: Duration = Duration::from_secs(20);

/// One HTTP GET; the status, or `None` without an answer.
async fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut sender = support::connect(([127, 0, 0, 1], port).into()).await?;
    let request = hyper::Request::get(path)
        .header("Host", "bridge")
        .body(Full::new(Bytes::new()))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(2), sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    Some(response.status().as_u16())
}

/// One replica slot: a fixed port and spool, so a restart is the same
/// replica coming back.
struct Replica {
    name: String,
    port: u16,
    spool: PathBuf,
    log: PathBuf,
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
}

impl Replica {
    async fn start(&mut self) {
        let child = support::spawn_bridge(BIN, self.port, &self.spool, &self.env, &self.log);
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        for _ in 0..300 {
            if get_status(self.port, "/readyz").await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} not ready within 30 s (log: {})",
            self.name,
            self.log.display()
        );
    }

    /// SIGTERM, and the exit status once it exits.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            signal(child.id(), name);
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What happened to the callbacks sent during one scenario.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: Mutex<Vec<String>>,
    refused: Mutex<BTreeMap<u16, u64>>,
    no_reply: AtomicU64,
    /// Requests without a reply: when, which sender, why.
    failures: Mutex<Vec<String>>,
    /// Milliseconds since the start of the run of the last ack.
    last_ack_ms: AtomicU64,
    longest_stall_ms: AtomicU64,
}

struct Load {
    scenarios: Vec<Tally>,
    current: AtomicUsize,
    stop: AtomicBool,
    started: Instant,
}

impl Load {
    fn tally(&self) -> &Tally {
        &self.scenarios[self.current.load(Ordering::SeqCst)]
    }
}

/// One OpenIM-like sender through the load balancer.
async fn sender(load: Arc<Load>, lb: u16, number: usize) {
    let mut connection: Option<Sender> = None;
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0u64.. {
        ticker.tick().await;
        if load.stop.load(Ordering::SeqCst) {
            break;
        }
        let tally = load.tally();
        tally.sent.fetch_add(1, Ordering::SeqCst);
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            connection = support::connect(([127, 0, 0, 1], lb).into()).await;
        }
        if connection.is_none() {
            tally.no_reply.fetch_add(1, Ordering::SeqCst);
            let at = load.started.elapsed().as_secs_f64();
            tally.failures.lock().unwrap().push(format!(
                "{at:.3} s, sender {number}: cannot connect to the load balancer"
            ));
            continue;
        }
        let id = format!("ops-{number}-{i}");
        let body = TEMPLATE
            .replace(TEMPLATE_ID, &id)
            .replace("\"g_3001\"", &format!("\"g_{}\"", i % 16));
        match post(&mut connection, body, Duration::from_secs(15)).await {
            Outcome::Acked => {
                let now = load.started.elapsed().as_millis() as u64;
                let last = tally.last_ack_ms.swap(now, Ordering::SeqCst);
                if last > 0 {
                    tally
                        .longest_stall_ms
                        .fetch_max(now.saturating_sub(last), Ordering::SeqCst);
                }
                tally.acked.lock().unwrap().push(id);
            }
            Outcome::Refused(status) => {
                *tally.refused.lock().unwrap().entry(status).or_default() += 1;
            }
            Outcome::NoReply(why) => {
                tally.no_reply.fetch_add(1, Ordering::SeqCst);
                let at = load.started.elapsed().as_secs_f64();
                tally
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("{at:.3} s, sender {number}: {why}"));
            }
        }
    }
}

/// Waits until HAProxy's stats page lists `server` UP (the documented
/// rolling-restart step), at most 30 s; how long that took.
async fn admitted(stats: u16, server: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let status = tokio::task::spawn_blocking({
            let server = server.to_owned();
            move || haproxy::server_status(stats, "bridges", &server)
        })
        .await
        .unwrap();
        if status.as_deref() == Some("UP") {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("HAProxy did not list {server} UP within 30 s");
}

/// One connection opened now and first used after `idle`, as Go's
/// transport uses a spare connection; what became of that callback.
async fn spare_connection(lb: u16, idle: Duration) -> (String, Outcome) {
    let id = "ops-spare".to_owned();
    let mut connection = support::connect(([127, 0, 0, 1], lb).into()).await;
    tokio::time::sleep(idle).await;
    let body = TEMPLATE.replace(TEMPLATE_ID, &id);
    let outcome = post(&mut connection, body, Duration::from_secs(15)).await;
    (id, outcome)
}

/// "min-max ms" of `durations`.
fn span(durations: &[Duration]) -> String {
    let millis = durations.iter().map(Duration::as_millis);
    match (millis.clone().min(), millis.max()) {
        (Some(min), Some(max)) => format!("{min}-{max} ms"),
        _ => "(none)".to_owned(),
    }
}

/// What HAProxy logged (`log-format` of the shipped file: ... `%ST %B %tsc
/// %ac/%fc/%bc/%sc/%rc` ...).
#[derive(Default)]
struct HaproxyLog {
    requests: u64,
    /// Requests with an error status or no status.
    failed: u64,
    /// Failed requests by status (`0` when none was sent).
    states: BTreeMap<u16, u64>,
    /// Requests HAProxy sent again (`%rc` > 0).
    retried: u64,
    /// "Server ... is DOWN" lines, as logged.
    down: Vec<String>,
}

impl HaproxyLog {
    fn read(path: &Path) -> Self {
        let mut log = Self::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            if let Some(at) = line.find("Server ").filter(|_| line.contains(" is DOWN")) {
                // "Server bridges/bridge-1 is DOWN, reason: Layer7 timeout"
                let line = &line[at + "Server ".len()..];
                let end = [", code", ", info", ", check duration", ". "]
                    .iter()
                    .filter_map(|cut| line.find(cut))
                    .min()
                    .unwrap_or(line.len());
                log.down
                    .push(line[..end].replace(" is DOWN, reason:", " down:"));
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(status), Some(counts)) = (fields.get(5), fields.get(8)) else {
                continue;
            };
            if !fields.get(3).is_some_and(|server| server.contains('/')) {
                continue;
            }
            let Ok(status) = status.parse::<i32>() else {
                continue;
            };
            log.requests += 1;
            if !(200..300).contains(&status) {
                log.failed += 1;
                *log.states.entry(status.max(0) as u16).or_default() += 1;
            }
            let retries = counts
                .rsplit('/')
                .next()
                .unwrap_or("0")
                .trim_start_matches('+');
            if retries.parse::<u64>().is_ok_and(|n| n > 0) {
                log.retried += 1;
            }
        }
        log
    }
}

struct Scenario {
    name: &'static str,
    /// kill -9: in-flight requests on the killed replica may fail.
    in_flight_may_fail: bool,
}

const SCENARIOS: [Scenario; 7] = [
    Scenario {
        name: "steady load (baseline)",
        in_flight_may_fail: false,
    },
    Scenario {
        name: "rolling restart (SIGTERM, restart, ready; each replica in turn)",
        in_flight_may_fail: false,
    },
    Scenario {
        name: "kill -9 a replica, restart it (6 times, the two in turn)",
        in_flight_may_fail: true,
    },
    Scenario {
        name: "scale 2 -> 3 replicas",
        in_flight_may_fail: false,
    },
    Scenario {
        name: "scale 3 -> 2 replicas",
        in_flight_may_fail: false,
    },
    Scenario {
        name: "reload HAProxy (kill -USR2 to its master)",
        in_flight_may_fail: false,
    },
    Scenario {
        name: "every replica frozen (SIGSTOP) 1 s, 3 times, 2 s apart",
        in_flight_may_fail: false,
    },
];

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo bench` lists benchmarks this way.
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/operations");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();

    // Tansu, with a topic of this run's own.
    let kafka_port = free_port();
    let mut tansu = openim_bridge_test_kit::kafka::tansu(kafka_port, kafka_port)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(out.join("tansu.log")).unwrap())
        .spawn()
        .expect("tansu (scripts/operations installs it)");
    let brokers = format!("127.0.0.1:{kafka_port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", kafka_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let topic = format!("operations-{}", std::process::id());
    openim_bridge_test_kit::kafka::create_topic(&brokers, &[], &topic, PARTITIONS)
        .await
        .expect("create the topic");

    let env = vec![
        ("OPENIM_BRIDGE__SINK__KIND", "kafka".to_owned()),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.clone()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", topic.clone()),
    ];
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|n| Replica {
            name: format!("bridge-{n}"),
            port: free_port(),
            spool: work.path().join(format!("spool-{n}")),
            log: out.join(format!("bridge-{n}.log")),
            env: env.clone(),
            child: None,
        })
        .collect();
    replicas[0].start().await;
    replicas[1].start().await;

    let ports = Ports {
        frontend: free_port(),
        stats: free_port(),
    };
    let lb = ports.frontend;
    let servers = |replicas: &[Replica]| -> Vec<(String, u16)> {
        replicas
            .iter()
            .map(|replica| (replica.name.clone(), replica.port))
            .collect()
    };
    let shipped = match std::env::var_os("OPENIM_BRIDGE_OPERATIONS_HAPROXY_CFG") {
        Some(path) => std::fs::read_to_string(&path).expect("OPENIM_BRIDGE_OPERATIONS_HAPROXY_CFG"),
        None => SHIPPED.to_owned(),
    };
    let config =
        |servers: &[(String, u16)]| haproxy::loopback_config(&shipped, ports, servers, work.path());
    let two = servers(&replicas[..2]);
    let config_path = work.path().join("haproxy.cfg");
    std::fs::write(&config_path, config(&two)).unwrap();
    let mut haproxy = Command::new("haproxy")
        .arg("-W")
        .arg("-db")
        .arg("-f")
        .arg(&config_path)
        .stdout(std::fs::File::create(out.join("haproxy.log")).unwrap())
        .stderr(std::fs::File::create(out.join("haproxy.stderr")).unwrap())
        .spawn()
        .expect("haproxy (scripts/operations installs it)");
    for replica in &replicas[..2] {
        admitted(ports.stats, &replica.name).await;
    }
    // How long HAProxy took to send callbacks to a replica again once its
    // /readyz answered 200.
    let mut admission = Vec::new();

    let load = Arc::new(Load {
        scenarios: SCENARIOS.iter().map(|_| Tally::default()).collect(),
        current: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        started: Instant::now(),
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| tokio::spawn(sender(Arc::clone(&load), lb, n)))
        .collect();
    let spare = tokio::spawn(spare_connection(lb, SPARE_IDLE));
    let steady = Duration::from_secs(3);
    let mut unclean = Vec::new();
    let next = |load: &Load, index: usize| {
        load.current.store(index, Ordering::SeqCst);
        eprintln!("  {}", SCENARIOS[index].name);
    };

    next(&load, 0);
    tokio::time::sleep(steady).await;

    // The documented procedure: SIGTERM, wait for the exit, start, wait
    // until HAProxy lists the replica UP; then the next one.
    next(&load, 1);
    for replica in &mut replicas[..2] {
        let status = replica.terminate().await;
        if !status.success() {
            unclean.push(format!("{}: {status}", replica.name));
        }
        replica.start().await;
        admission.push(admitted(ports.stats, &replica.name).await);
    }
    tokio::time::sleep(steady).await;

    next(&load, 2);
    for kill in 0..KILLS {
        let replica = &mut replicas[kill % 2];
        replica.kill_9();
        tokio::time::sleep(Duration::from_secs(1)).await;
        replica.start().await;
        admission.push(admitted(ports.stats, &replica.name).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(steady).await;

    next(&load, 3);
    replicas[2].start().await;
    let three = servers(&replicas);
    std::fs::write(&config_path, config(&three)).unwrap();
    signal(haproxy.id(), "USR2");
    admission.push(admitted(ports.stats, &replicas[2].name).await);
    tokio::time::sleep(steady).await;

    next(&load, 4);
    let status = replicas[2].terminate().await;
    if !status.success() {
        unclean.push(format!("{}: {status}", replicas[2].name));
    }
    std::fs::write(&config_path, config(&two)).unwrap();
    signal(haproxy.id(), "USR2");
    tokio::time::sleep(steady).await;

    next(&load, 5);
    signal(haproxy.id(), "USR2");
    tokio::time::sleep(steady).await;

    next(&load, 6);
    for _ in 0..3 {
        for replica in &replicas[..2] {
            replica.signal("STOP");
        }
        tokio::time::sleep(FREEZE).await;
        for replica in &replicas[..2] {
            replica.signal("CONT");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(steady).await;

    load.stop.store(true, Ordering::SeqCst);
    for sender in senders {
        let _ = sender.await;
    }

    // Every acked callback must be in Kafka.
    let (spare_id, spare) = spare.await.unwrap();
    let mut wanted: HashSet<String> = load
        .scenarios
        .iter()
        .flat_map(|tally| tally.acked.lock().unwrap().clone())
        .collect();
    if matches!(spare, Outcome::Acked) {
        wanted.insert(spare_id.clone());
    }
    let seen = tokio::task::spawn_blocking({
        let (brokers, topic, wanted) = (brokers.clone(), topic.clone(), wanted.clone());
        move || {
            support::kafka_read_back_counted(
                &brokers,
                &topic,
                PARTITIONS,
                &wanted,
                Duration::from_secs(60),
            )
        }
    })
    .await
    .unwrap();

    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Operations test report\n\nShipped `deploy/haproxy/haproxy.cfg` ({}) in front of openim-bridge replicas (Kafka sink, durable spool, `shutdown.ready_delay_ms` default) and Tansu; {SENDERS} OpenIM-like senders, one request at a time, keep-alive, about {} callbacks/s in all.\n",
        String::from_utf8_lossy(&Command::new("haproxy").arg("-v").output().map(|o| o.stdout).unwrap_or_default())
            .lines()
            .next()
            .unwrap_or("HAProxy"),
        SENDERS as u128 * 1000 / INTERVAL.as_millis(),
    );
    let _ = writeln!(
        report,
        "| scenario | sent | acked | error replies | no reply | longest ack stall | missing | target |\n|---|---|---|---|---|---|---|---|"
    );
    let mut failed = !unclean.is_empty();
    for (scenario, tally) in SCENARIOS.iter().zip(&load.scenarios) {
        let acked = tally.acked.lock().unwrap();
        let missing = acked.iter().filter(|id| !seen.contains_key(*id)).count();
        let refused = tally.refused.lock().unwrap();
        let errors: u64 = refused.values().sum::<u64>() + tally.no_reply.load(Ordering::SeqCst);
        let allowed = if scenario.in_flight_may_fail {
            (SENDERS * KILLS) as u64
        } else {
            0
        };
        let met = missing == 0 && errors <= allowed;
        failed |= !met;
        let refused = support::counts(&refused);
        let _ = writeln!(
            report,
            "| {} | {} | {} | {refused} | {} | {} ms | {missing} | {} |",
            scenario.name,
            tally.sent.load(Ordering::SeqCst),
            acked.len(),
            tally.no_reply.load(Ordering::SeqCst),
            tally.longest_stall_ms.load(Ordering::SeqCst),
            if met { "met" } else { "MISSED" },
        );
    }
    let spare = match spare {
        Outcome::Acked if seen.contains_key(&spare_id) => "acked, in Kafka".to_owned(),
        Outcome::Acked => "acked, MISSING from Kafka".to_owned(),
        Outcome::Refused(status) => format!("answered {status}"),
        Outcome::NoReply(why) => format!("no reply: {why}"),
    };
    failed |= spare != "acked, in Kafka";
    let _ = writeln!(
        report,
        "\nA connection opened at the start and first used {} s later (Go keeps spare connections): {spare}.",
        SPARE_IDLE.as_secs()
    );
    let _ = writeln!(
        report,
        "\nA restarted or added replica was sent callbacks again {} after its `/readyz` answered 200 (HAProxy's stats page listing it UP; {} restarts): the rolling restart waits for that, not only for `/readyz`.",
        span(&admission),
        admission.len()
    );
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let _ = writeln!(
        report,
        "\nPublished more than once: {} events{}. At least once: a replica restarted after `kill -9` publishes again what the broker confirmed after its last checkpoint; and a callback HAProxy resent after the replica was killed under it may have been spooled there too (at most the resent requests below). Consumers deduplicate on the event id.",
        twice.len(),
        if twice.is_empty() { String::new() } else { format!(" ({})", twice.iter().take(10).map(|id| id.as_str()).collect::<Vec<_>>().join(", ")) }
    );
    let client_failures: u64 = load
        .scenarios
        .iter()
        .map(|tally| {
            tally.refused.lock().unwrap().values().sum::<u64>()
                + tally.no_reply.load(Ordering::SeqCst)
        })
        .sum();
    let client_failures = client_failures + u64::from(spare != "acked, in Kafka");
    let log = HaproxyLog::read(&out.join("haproxy.log"));
    failed |= log.failed < client_failures;
    let _ = writeln!(
        report,
        "\nHAProxy's log: {} requests logged (`option dontlog-normal`: only abnormal ones), {} of them failed ({}), {} resent to another replica; {client_failures} failures seen by the senders{}. Replicas marked DOWN: {}.",
        log.requests,
        log.failed,
        support::counts(&log.states),
        log.retried,
        if log.failed < client_failures { ", NOT all logged" } else { ", all logged" },
        if log.down.is_empty() { "none".to_owned() } else { log.down.join("; ") },
    );
    for (scenario, tally) in SCENARIOS.iter().zip(&load.scenarios) {
        for failure in tally.failures.lock().unwrap().iter() {
            let _ = writeln!(report, "\n- no reply ({}): {failure}", scenario.name);
        }
    }
    let _ = writeln!(
        report,
        "\nTargets: 0 error replies, 0 requests without a reply and 0 missing; for kill -9 at most {SENDERS} failed requests per kill (one in flight per sender). Clean exit on SIGTERM: {}.",
        if unclean.is_empty() {
            "every replica".to_owned()
        } else {
            format!("NOT {}", unclean.join("; "))
        }
    );
    println!("{report}");
    std::fs::write(out.join("report.md"), &report).unwrap();

    for replica in &mut replicas {
        if replica.child.is_some() {
            let _ = replica.terminate().await;
        }
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = tansu.kill();
    let _ = tansu.wait();
    if failed {
        std::process::exit(1);
    }
}
