//! The probes a load balancer and Prometheus use: `/healthz`, `/readyz`,
//! `/metrics`.

use hyper::{Method, Request, StatusCode};

use super::reply::{self, Reply};
use crate::spool::SpoolWriter;
use crate::stats::Stats;

/// `GET /healthz`: the process serves requests. `GET /readyz`: it can
/// take a callback now (the spool has room for the largest one).
/// `GET /metrics`: Prometheus metrics. Any other request is a callback.
pub fn answer<B>(
    request: &Request<B>,
    spool: &SpoolWriter,
    stats: &Stats,
    max_body_bytes: usize,
) -> Option<Reply> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    match request.uri().path() {
        "/healthz" => Some(reply::json_value(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        "/metrics" => {
            stats.spool_bytes.set(spool.usage().0);
            Some(reply::metrics(stats.render()))
        }
        "/readyz" => {
            let (used, max) = spool.usage();
            let shutting_down = stats.shutting_down.get() != 0;
            // A replica the broker never accepted (a bad secret in a new
            // deploy) is not ready, so a rolling deploy stalls there;
            // one it accepted stays ready through later broker trouble
            // (acked callbacks wait in the spool).
            let accepted = stats.accepted();
            let has_room = used + max_body_bytes as u64 <= max;
            let ready = has_room && accepted && !shutting_down;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let refusal = stats.refusal();
            let broker = match refusal {
                Some(refusal) => format!("refused: {}", refusal.label()),
                None if stats.broker_up.get() == 1 && accepted => "up".to_owned(),
                None if accepted => "failing".to_owned(),
                None => "connecting".to_owned(),
            };
            // Reported, not required: callbacks are still spooled while
            // the publisher retries a failing read.
            let spool_reads = if stats.spool_read_failing.get() == 0 {
                "ok"
            } else {
                "failing"
            };
            let body = serde_json::json!({
                "status": if shutting_down {
                    "shutting down"
                } else if !accepted {
                    "waiting for the broker"
                } else if ready {
                    "ready"
                } else {
                    "spool full"
                },
                "spool_used_bytes": used,
                "spool_max_bytes": max,
                "spool_reads": spool_reads,
                "broker": broker,
                "dead_letter_events": stats.dead_letter_events.get(),
            });
            Some(reply::json_value(status, &body))
        }
        _ => None,
    }
}
