//! Load: OpenIM-like workers, one callback at a time per connection.

use super::*;

use support::{post, Outcome, Sender};

/// A connection to the replica on `port`, or `None` (down, or no answer
/// within 2 s).
pub async fn connect(port: u16) -> Option<Sender> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::timeout(Duration::from_secs(2), support::connect(addr))
        .await
        .ok()?
}

/// The sum of the replica's `openim_bridge_callbacks_total` series whose
/// labels contain `labels` (0 when it does not answer).
pub async fn replica_metric(port: u16, labels: &str) -> u64 {
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
pub async fn worker(
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
pub async fn stall_monitor(tallies: Vec<Arc<Tally>>, started: Instant, stop: Arc<AtomicBool>) {
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
