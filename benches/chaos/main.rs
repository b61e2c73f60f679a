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
//! `Fault::ALL`; 13 is the Tansu restart), `CHAOS_ONE_PRODUCER=1` (all Kafka load on `kafka-a`).

mod faults;
mod kafka;
mod load;
mod processes;
mod rabbitmq;
#[path = "../support/mod.rs"]
mod support;
mod tally;

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
const TEMPLATE: &str = include_str!("../../tests/fixtures/after_send_group_msg_01_text_ios.json");
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

use faults::*;
use kafka::*;
use load::*;
use processes::*;
use rabbitmq::*;
use tally::*;

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
    // CHAOS_FAULTS=7,3 injects only those faults (numbered as in `Fault::ALL`).
    let only: Vec<Fault> = std::env::var("CHAOS_FAULTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter_map(Fault::numbered)
        .collect();
    let faults = if only.is_empty() {
        Fault::rotation()
    } else {
        &only[..]
    };
    while Instant::now() < deadline {
        let next = faults[fault % faults.len()];
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
        let refused = support::counts(&refused);
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
