//! The load generator: keep-alive HTTP/1.1 connections sending
//! `callbackAfterSendGroupMsgCommand` bodies with OpenIM's headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};

use super::{new_histogram, support, ACK, SECONDS, TEMPLATE};

/// One phase of load: acked ids, latency, non-ack replies, elapsed time.
pub struct Phase {
    pub acked: Vec<String>,
    pub latency: Histogram<u64>,
    pub refused: u64,
    pub seconds: f64,
}

impl Phase {
    /// Acks per second.
    pub fn rate(&self) -> f64 {
        self.acked.len() as f64 / self.seconds
    }
}

/// How a phase sends.
#[derive(Clone, Copy)]
pub struct Load {
    /// Keep-alive connections, each with one request outstanding at most.
    pub connections: usize,
    /// Open loop at this many requests per second in all; `None`: closed
    /// loop (each connection sends its next request when answered).
    pub rate: Option<f64>,
}

/// Sends for `SECONDS` as `load` says; ids are `{run}-{connection}-{n}`.
pub async fn drive(addr: SocketAddr, run: &str, load: Load, progress: &str) -> Phase {
    let Load { connections, rate } = load;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS);
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (run, sent) = (run.to_owned(), Arc::clone(&sent));
        workers.push(tokio::spawn(async move {
            let mut sender = support::connect(addr).await.expect("connect to the bridge");
            let mut latency = new_histogram();
            let (mut acked, mut refused) = (Vec::new(), 0);
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
            // Spread the connections' schedules over one interval.
            let mut due = Instant::now()
                + interval
                    .unwrap_or_default()
                    .mul_f64(worker as f64 / connections as f64);
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
