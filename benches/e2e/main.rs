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

#[path = "../support/mod.rs"]
mod support;

mod bare;
mod bridge;
mod configs;
mod consumers;
mod disk;
mod load;
mod measure;
mod process;
mod report;

// The test helpers' Kafka front (TLS in front of a Tansu of its own), for
// the TLS-versus-plaintext rows.
#[path = "../../tests/common/mod.rs"]
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
const TEMPLATE: &str = include_str!("../../tests/fixtures/after_send_group_msg_01_text_ios.json");
const ACK: &[u8] = br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

use bridge::*;
use configs::*;
use measure::*;

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
