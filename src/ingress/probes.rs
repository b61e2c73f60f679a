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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::normalize::{CallbackKind, Event};
    use crate::sink::refusal::{self, Refusal};
    use crate::spool::{self, SpoolSettings};

    /// `GET /readyz`: its status and its JSON body.
    async fn readyz(spool: &SpoolWriter, stats: &Stats) -> (StatusCode, serde_json::Value) {
        let request = Request::get("/readyz").body(()).unwrap();
        let reply = answer(&request, spool, stats, 1024).expect("a probe");
        let status = reply.status();
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// A spool in `dir` of at most `max_bytes`, and its stats.
    fn spool_of(dir: &tempfile::TempDir, max_bytes: u64) -> (SpoolWriter, Arc<Stats>) {
        let settings = SpoolSettings {
            dir: dir.path().to_owned(),
            max_bytes,
            ..SpoolSettings::default()
        };
        let stats = Arc::new(Stats::default());
        let (spool, _reader) = spool::open(&settings, Arc::clone(&stats)).unwrap();
        (spool, stats)
    }

    #[tokio::test]
    async fn an_accepted_replica_is_ready_while_its_spool_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, stats) = spool_of(&dir, 16 * 1024);
        refusal::accepted(&stats, "kafka");
        assert_eq!(readyz(&spool, &stats).await.0, StatusCode::OK);
        let event = Event {
            id: "m1".to_owned(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".to_owned(),
            key: "g1".to_owned(),
            data: vec![b'1'; 1000].into(),
            traceparent: String::new(),
            tracestate: String::new(),
        };
        // Less room than one more callback of 1 KiB (`readyz`'s limit).
        while spool.append(event.clone()).await.is_ok() {}
        let (status, body) = readyz(&spool, &stats).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "spool full");
    }

    #[tokio::test]
    async fn a_refusal_keeps_out_a_replica_never_accepted_but_not_one_that_was() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, stats) = spool_of(&dir, 1 << 30);
        let refused = || refusal::report(&stats, "kafka", Refusal::Authentication, "t", "t");
        // A bad secret in a new deploy: not ready, and it says why.
        refused();
        let (status, body) = readyz(&spool, &stats).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "waiting for the broker");
        assert_eq!(body["broker"], "refused: authentication");
        // Accepted once, then a rotated secret fails: still ready (acked
        // callbacks wait in the spool), and it says why.
        refusal::accepted(&stats, "kafka");
        refused();
        let (status, body) = readyz(&spool, &stats).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["broker"], "refused: authentication");
        // Accepted again (a confirmed delivery does this: the publisher's
        // tests): the refusal is gone.
        refusal::accepted(&stats, "kafka");
        assert_eq!(readyz(&spool, &stats).await.1["broker"], "up");
    }
}
