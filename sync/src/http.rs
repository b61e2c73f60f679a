//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::warn;

/// What `/metrics` reports and `/readyz` reads.
pub struct Metrics {
    registry: Registry,
    /// Events applied (new to the inbox).
    pub applied: Counter,
    /// Redelivered events skipped by the inbox.
    pub duplicates: Counter,
    /// Records that were not events of the bridge's.
    pub undecodable: Counter,
    /// Batches that failed to apply (tried again).
    pub failed_batches: Counter,
    /// Revokes waiting for their message or its seq.
    pub revokes_held: Gauge,
    /// Seconds from the bridge's ack (the event's `received_at`) to the
    /// commit of the transaction that applied it.
    pub lag_seconds: Histogram,
    /// Connected to PostgreSQL and the broker.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("openim_sync");
        let metrics = Metrics {
            applied: Counter::default(),
            duplicates: Counter::default(),
            undecodable: Counter::default(),
            failed_batches: Counter::default(),
            revokes_held: Gauge::default(),
            lag_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "events_applied",
            "Events applied to the archive (new to the inbox)",
            metrics.applied.clone(),
        );
        registry.register(
            "duplicates_skipped",
            "Redelivered events the inbox skipped",
            metrics.duplicates.clone(),
        );
        registry.register(
            "undecodable",
            "Records that were not openim-bridge events (skipped)",
            metrics.undecodable.clone(),
        );
        registry.register(
            "failed_batches",
            "Batches whose transaction failed (applied again)",
            metrics.failed_batches.clone(),
        );
        registry.register(
            "revokes_held",
            "Revokes waiting for their message or its seq",
            metrics.revokes_held.clone(),
        );
        registry.register(
            "lag_seconds",
            "Seconds from the bridge's ack of a callback to the commit that applied its event",
            metrics.lag_seconds.clone(),
        );
        openim_otel::register_metrics(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Serves the probes on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(cause = %err, "cannot accept a probe connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move { Ok::<_, Infallible>(answer(request.uri().path(), &metrics)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match path {
        "/healthz" => (
            StatusCode::OK,
            r#"{"status":"ok"}"#.to_owned(),
            "application/json",
        ),
        "/readyz" if metrics.ready.load(Ordering::Acquire) => (
            StatusCode::OK,
            r#"{"status":"ready"}"#.to_owned(),
            "application/json",
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"connecting"}"#.to_owned(),
            "application/json",
        ),
        "/metrics" => (
            StatusCode::OK,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"status":"not found"}"#.to_owned(),
            "application/json",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Where the probes listen, for logs.
pub fn describe(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
