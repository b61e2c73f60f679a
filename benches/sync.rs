//! openim-sync behind the bridge: events applied into PostgreSQL per
//! second, and the lag from the bridge's ack (the event's `received_at`) to
//! the row's insertion in the consumer's transaction (`applied_at`, a
//! `clock_timestamp()`; the commit follows within the batch), at the rate
//! of one OpenIM process (2 senders, one request at a time each) and at the
//! bridge's maximum (32 keep-alive connections, closed loop). The bridge's
//! acks per second come from the same run, so the ratio is side by side.
//!
//! The release bridge (durable acks) publishes to Kafka
//! (`OPENIM_BRIDGE_TEST_KAFKA`), one openim-sync (in this process, default
//! batch settings) applies into PostgreSQL (`OPENIM_SYNC_TEST_POSTGRES`).
//! Run with `scripts/bench` (after the end-to-end benchmark) or
//! `cargo bench --bench sync` with those variables set; the report goes to
//! `target/bench/sync.md`.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{post, Outcome};
use tokio_postgres::NoTls;

const BIN: &str = env!("CARGO_BIN_EXE_openim-bridge");
const TEMPLATE: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");
const TEMPLATE_ID: &str = "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91";
const SECONDS: u64 = 10;

/// One phase's figures.
struct Phase {
    name: &'static str,
    acked: u64,
    acks_per_second: f64,
    applied_per_second: f64,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
}

/// Sends from `connections` keep-alive connections, one request at a time
/// each, for `SECONDS`; returns the acked count.
async fn send(port: u16, phase: &'static str, connections: usize) -> u64 {
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let mut sender = support::connect(([127, 0, 0, 1], port).into()).await;
            let mut i = 0u64;
            while Instant::now() < deadline {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    sender = support::connect(([127, 0, 0, 1], port).into()).await;
                }
                let id = format!("{phase}-{connection}-{i}");
                let body = TEMPLATE
                    .replace(TEMPLATE_ID, &id)
                    .replace("\"g_3001\"", &format!("\"g_{}\"", i % 64));
                if matches!(
                    post(&mut sender, body, Duration::from_secs(15)).await,
                    Outcome::Acked
                ) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    acked.load(Ordering::Relaxed)
}

/// Waits until the archive holds `acked` events of `phase`, then reads the
/// applied rate and the lag percentiles from it.
async fn measure(
    client: &tokio_postgres::Client,
    schema: &str,
    phase: &'static str,
    acked: u64,
    acks_per_second: f64,
) -> Phase {
    let pattern = format!("{phase}-%");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let applied: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {schema}.events WHERE id LIKE $1"),
                &[&pattern],
            )
            .await
            .unwrap()
            .get(0);
        if applied as u64 >= acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: {applied} of {acked} applied after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = client
        .query_one(
            &format!(
                "WITH e AS (
                     SELECT applied_at, (data->>'received_at')::timestamptz AS received
                     FROM {schema}.events WHERE id LIKE $1)
                 SELECT count(*)::float8 / greatest(extract(epoch FROM max(applied_at) - min(received))::float8, 0.001),
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received)) * 1000,
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received)) * 1000
                 FROM e"
            ),
            &[&pattern],
        )
        .await
        .unwrap();
    Phase {
        name: phase,
        acked,
        acks_per_second,
        applied_per_second: row.get(0),
        lag_p50_ms: row.get(1),
        lag_p99_ms: row.get(2),
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let brokers = std::env::var("OPENIM_BRIDGE_TEST_KAFKA")
        .expect("OPENIM_BRIDGE_TEST_KAFKA (scripts/bench sets it)");
    let postgres = std::env::var("OPENIM_SYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let name = format!("bench_sync_{}", std::process::id());
    openim_bridge_test_kit::kafka::create_topic(&brokers, &[], &name, 6)
        .await
        .expect("create the topic");
    let port = openim_bridge_test_kit::free_port();
    let env = vec![
        ("OPENIM_BRIDGE__SINK__KIND", "kafka".to_owned()),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.clone()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", name.clone()),
    ];
    let mut bridge = support::spawn_bridge(
        BIN,
        port,
        &work.path().join("spool"),
        &env,
        &out.join("sync-bridge.log"),
    );
    let (client, connection) = tokio_postgres::connect(&postgres, NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(connection);
    let mut settings = openim_sync::settings::Settings::default();
    settings.kafka.brokers = brokers.clone();
    settings.kafka.topics = vec![name.clone()];
    settings.kafka.group_id = name.clone();
    settings.postgres.url = postgres.clone();
    settings.postgres.schema = name.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sync = tokio::spawn(openim_sync::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    for _ in 0..300 {
        if support::connect(([127, 0, 0, 1], port).into())
            .await
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut phases = Vec::new();
    for (phase, connections) in [("senders2", 2), ("max", 32)] {
        let started = Instant::now();
        let acked = send(port, phase, connections).await;
        let acks_per_second = acked as f64 / started.elapsed().as_secs_f64();
        phases.push(measure(&client, &name, phase, acked, acks_per_second).await);
    }
    let _ = stop.send(());
    let _ = sync.await;
    let _ = bridge.kill();
    let _ = bridge.wait();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .await
        .unwrap();
    let mut report = String::from(
        "# openim-sync behind the bridge\n\nOne release bridge (durable acks) -> Tansu -> one openim-sync -> PostgreSQL, on this machine's 2 cores (all shared). Lag: the bridge's ack to the row's insertion in the applying transaction.\n\n| phase | acked | bridge acks/s | applied events/s | applied / acked rate | lag p50 | lag p99 |\n|---|---|---|---|---|---|---|\n",
    );
    for phase in &phases {
        let _ = writeln!(
            report,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} ms | {:.0} ms |",
            phase.name,
            phase.acked,
            phase.acks_per_second,
            phase.applied_per_second,
            phase.applied_per_second / phase.acks_per_second,
            phase.lag_p50_ms,
            phase.lag_p99_ms
        );
    }
    std::fs::write(out.join("sync.md"), &report).unwrap();
    println!("{report}");
}
