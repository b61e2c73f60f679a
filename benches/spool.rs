//! Durable vs memory acks, side by side in one run.
//!
//! Starts two in-process bridges (stdout sink, written to /dev/null by the
//! command below), each with its own spool in a temp dir, and drives them
//! like OpenIM does: keep-alive HTTP/1.1 connections posting
//! `callbackAfterSendGroupMsgCommand` bodies with unique `serverMsgID`s.
//!
//! 1. Closed loop, `CONNECTIONS` connections, `SECONDS` each: maximum acked
//!    callbacks/s, latency percentiles, fdatasync calls per second.
//! 2. Open loop at half of the durable maximum: latency percentiles (each
//!    request is timed from when it was *due*, so a stall is not hidden).
//!
//! Run: `cargo bench --bench spool > /dev/null` (the report goes to stderr
//! and to `target/bench-spool.md`).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use openim_bridge::settings::AckMode;
use openim_bridge::stats::Stats;
use openim_bridge::{App, Settings};
use tokio::net::TcpListener;

const CONNECTIONS: usize = 32;
const SECONDS: u64 = 8;
const BODY: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");

struct Bridge {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _spool: tempfile::TempDir,
}

async fn start(ack: AckMode) -> Bridge {
    let spool = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut settings = Settings::default();
    settings.spool.dir = spool.path().to_owned();
    settings.spool.ack = ack;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::start(settings.validate().unwrap(), listener)
        .await
        .unwrap();
    let stats = app.stats();
    tokio::spawn(app.run(std::future::pending()));
    Bridge {
        addr,
        stats,
        _spool: spool,
    }
}

struct Run {
    acked: u64,
    errors: u64,
    seconds: f64,
    /// From when the request was due (open loop) or sent (closed loop).
    latency: Histogram<u64>,
    /// From when the request was actually sent.
    service: Histogram<u64>,
    syncs: u64,
}

/// `rate` = None: closed loop; Some(r): each connection sends r/CONNECTIONS per second.
async fn drive(bridge: &Bridge, rate: Option<f64>, seconds: u64) -> Run {
    let syncs_before = bridge.stats.snapshot().spool_syncs;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for worker in 0..CONNECTIONS {
        let addr = bridge.addr;
        workers.push(tokio::spawn(async move {
            let mut sender = support::connect(addr).await.expect("connect to the bridge");
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut service = latency.clone();
            let (mut acked, mut errors) = (0u64, 0u64);
            let interval = rate.map(|r| Duration::from_secs_f64(CONNECTIONS as f64 / r));
            let mut due = Instant::now();
            for i in 0u64.. {
                if let Some(interval) = interval {
                    due += interval;
                    tokio::time::sleep_until(due.into()).await;
                } else {
                    due = Instant::now();
                }
                if Instant::now() >= deadline {
                    break;
                }
                let body = BODY.replace(
                    "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91",
                    &format!("bench-{worker}-{i}"),
                );
                let request = hyper::Request::post("/callbackAfterSendGroupMsgCommand")
                    .header("Host", "bridge")
                    .header("Content-Type", "application/json; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                sender.ready().await.unwrap();
                let sent = Instant::now();
                let response = sender.send_request(request).await.unwrap();
                let ok = response.status() == 200;
                let _ = response.into_body().collect().await.unwrap();
                latency
                    .record(due.elapsed().as_micros().max(1) as u64)
                    .unwrap();
                service
                    .record(sent.elapsed().as_micros().max(1) as u64)
                    .unwrap();
                if ok {
                    acked += 1;
                } else {
                    errors += 1;
                }
            }
            (acked, errors, latency, service)
        }));
    }
    let mut run = Run {
        acked: 0,
        errors: 0,
        seconds: 0.0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        service: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        syncs: 0,
    };
    for worker in workers {
        let (acked, errors, latency, service) = worker.await.unwrap();
        run.acked += acked;
        run.errors += errors;
        run.latency.add(latency).unwrap();
        run.service.add(service).unwrap();
    }
    run.seconds = started.elapsed().as_secs_f64();
    run.syncs = bridge.stats.snapshot().spool_syncs - syncs_before;
    run
}

fn row(name: &str, run: &Run) -> String {
    let q = |p: f64| run.latency.value_at_quantile(p) as f64 / 1000.0;
    format!(
        "| {name} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
        run.acked as f64 / run.seconds,
        run.errors,
        q(0.50),
        q(0.99),
        q(0.999),
        run.service.value_at_quantile(0.99) as f64 / 1000.0,
        run.syncs as f64 / run.seconds,
    )
}

#[tokio::main]
async fn main() {
    let durable = start(AckMode::Durable).await;
    let memory = start(AckMode::Memory).await;
    let header = "| run | acked/s | errors | p50 ms | p99 ms | p99.9 ms | p99 service ms | fdatasync/s |\n|---|---|---|---|---|---|---|---|";
    eprintln!("closed loop, {CONNECTIONS} connections, {SECONDS} s each ...");
    let max_durable = drive(&durable, None, SECONDS).await;
    let max_memory = drive(&memory, None, SECONDS).await;
    let half = (max_durable.acked as f64 / max_durable.seconds) / 2.0;
    eprintln!("open loop at {half:.0}/s ...");
    let fixed_durable = drive(&durable, Some(half), SECONDS).await;
    let fixed_memory = drive(&memory, Some(half), SECONDS).await;
    let ratio = (max_durable.acked as f64 / max_durable.seconds)
        / (max_memory.acked as f64 / max_memory.seconds);
    let report = format!(
        "# Spool benchmark: durable vs memory acks\n\n\
         Machine: {} cores. Load generator, bridge and disk on the same machine; stdout sink.\n\n\
         ## Maximum (closed loop, {CONNECTIONS} connections)\n\n{header}\n{}\n{}\n\n\
         durable / memory throughput: **{:.0}%** (target >= 70%)\n\n\
         ## Fixed rate {half:.0}/s (open loop, half the durable maximum)\n\n{header}\n{}\n{}\n\n\
         durable p99 at half the maximum: **{:.3} ms** from the due time, **{:.3} ms** from sending (target < 2 ms).\n\n\
         p50/p99/p99.9 count from when a request was due (open loop), so a stall of the bridge is not hidden; \
         tokio's timer fires up to 1 ms late, which that column includes. `p99 service` counts from the moment the request was written.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        row("durable", &max_durable),
        row("memory", &max_memory),
        ratio * 100.0,
        row("durable", &fixed_durable),
        row("memory", &fixed_memory),
        fixed_durable.latency.value_at_quantile(0.99) as f64 / 1000.0,
        fixed_durable.service.value_at_quantile(0.99) as f64 / 1000.0,
    );
    eprintln!("\n{report}");
    let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/../bench-spool.md");
    std::fs::write(path, &report).unwrap();
}
