//! An OTLP trace receiver in the test process, as a collector would be:
//! gRPC (the collector's own generated `TraceService`, on hyper's HTTP/2)
//! and HTTP/protobuf (`POST /v1/traces`), both decoded with
//! `opentelemetry-proto`. Tests read back every span that arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

/// How a span reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
}

/// One span as it arrived, with its resource's `service.name`.
#[derive(Debug, Clone)]
pub struct Received {
    /// The resource's `service.name`.
    pub service: String,
    /// The span.
    pub span: Span,
    /// Which protocol carried it.
    pub via: Via,
}

impl Received {
    /// A string (or integer, as text) attribute of the span.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }

    /// The span's trace id, in hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span's id, in hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span's id, in hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The names of the span's events.
    pub fn event_names(&self) -> Vec<String> {
        self.span
            .events
            .iter()
            .map(|event| event.name.clone())
            .collect()
    }
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text.clone()),
        AnyValue::IntValue(number) => Some(number.to_string()),
        AnyValue::BoolValue(flag) => Some(flag.to_string()),
        AnyValue::DoubleValue(number) => Some(number.to_string()),
        _ => None,
    }
}

/// What arrived: every span (tests), or only how many (benchmarks).
#[derive(Debug, Default)]
struct Store {
    keep: bool,
    spans: Mutex<Vec<Received>>,
    count: std::sync::atomic::AtomicU64,
}

type Spans = Arc<Store>;

/// The running receiver; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where OTLP/gRPC is served: `http://{grpc}`.
    pub grpc: SocketAddr,
    /// Where OTLP/HTTP is served: `http://{http}` (`/v1/traces`).
    pub http: SocketAddr,
    spans: Spans,
}

impl Receiver {
    /// Listens on two free ports of 127.0.0.1 (on the current runtime),
    /// keeping every span.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// The same, only counting the spans (a benchmark's collector).
    pub async fn start_counting() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(keep: bool) -> Self {
        let spans = Arc::new(Store {
            keep,
            ..Store::default()
        });
        let grpc = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for gRPC");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for HTTP");
        let receiver = Self {
            grpc: grpc.local_addr().expect("its address"),
            http: http.local_addr().expect("its address"),
            spans: Arc::clone(&spans),
        };
        let service = TraceServiceServer::new(Collector(Arc::clone(&spans)));
        tokio::spawn(async move {
            while let Ok((stream, _)) = grpc.accept().await {
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = http.accept().await {
                let spans = Arc::clone(&spans);
                let service = hyper::service::service_fn(move |request| {
                    let spans = Arc::clone(&spans);
                    async move { Ok::<_, hyper::Error>(http_export(request, &spans).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        receiver
    }

    /// The gRPC endpoint URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The HTTP base URL (exporters append `/v1/traces`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Every span received so far (none when only counting).
    pub fn spans(&self) -> Vec<Received> {
        self.spans
            .spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }

    /// How many spans were received so far.
    pub fn count(&self) -> u64 {
        self.spans.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits at most `within` until `done` holds for the spans received;
    /// returns them either way.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn store(spans: &Spans, request: ExportTraceServiceRequest, via: Via) {
    let count: usize = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum();
    spans
        .count
        .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
    if !spans.keep {
        return;
    }
    let Ok(mut stored) = spans.spans.lock() else {
        return;
    };
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|resource| attribute(&resource.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                stored.push(Received {
                    service: service.clone(),
                    span,
                    via,
                });
            }
        }
    }
}

struct Collector(Spans);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        store(&self.0, request.into_inner(), Via::Grpc);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_export(request: Request<Incoming>, spans: &Spans) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        response
    };
    if request.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = request.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    match ExportTraceServiceRequest::decode(body.to_bytes()) {
        Ok(decoded) => {
            store(spans, decoded, Via::HttpProtobuf);
            reply(
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
    }
}

/// The spans of `trace_id` as an indented tree (service, name, kind,
/// duration, the messaging and CloudEvents attributes), followed by spans
/// of other traces that link into it: what a trace viewer shows.
pub fn tree(spans: &[Received], trace_id: &str) -> String {
    let kind = |span: &Received| match span.span.kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    };
    let line = |span: &Received, depth: usize| {
        let micros = span
            .span
            .end_time_unix_nano
            .saturating_sub(span.span.start_time_unix_nano)
            / 1000;
        let mut attributes: Vec<String> = span
            .span
            .attributes
            .iter()
            .filter(|kv| !kv.key.starts_with("otel.") && !kv.key.starts_with("busy_"))
            .filter_map(|kv| Some(format!("{}={}", kv.key, span.attribute(&kv.key)?)))
            .collect();
        attributes.sort();
        let events = span.event_names();
        let events = if events.is_empty() {
            String::new()
        } else {
            format!(" events={events:?}")
        };
        format!(
            "{}{} {} ({}, {} us) {}{}\n",
            "  ".repeat(depth),
            span.service,
            span.span.name,
            kind(span),
            micros,
            attributes.join(" "),
            events
        )
    };
    let in_trace: Vec<&Received> = spans.iter().filter(|s| s.trace_id() == trace_id).collect();
    let mut out = format!("trace {trace_id}\n");
    let ids: Vec<String> = in_trace.iter().map(|s| s.span_id()).collect();
    let mut stack: Vec<(&Received, usize)> = in_trace
        .iter()
        .filter(|s| !ids.contains(&s.parent_id()))
        .map(|s| (*s, 1))
        .collect();
    while let Some((span, depth)) = stack.pop() {
        out += &line(span, depth);
        let mut children: Vec<&Received> = in_trace
            .iter()
            .filter(|child| child.parent_id() == span.span_id())
            .copied()
            .collect();
        children.sort_by_key(|child| std::cmp::Reverse(child.span.start_time_unix_nano));
        stack.extend(children.into_iter().map(|child| (child, depth + 1)));
    }
    for span in spans.iter().filter(|s| s.trace_id() != trace_id) {
        let linked: Vec<String> = span
            .span
            .links
            .iter()
            .filter(|link| hex(&link.trace_id) == trace_id)
            .map(|link| hex(&link.span_id))
            .collect();
        if !linked.is_empty() {
            out += &format!(
                "linked to span {} from trace {}:\n",
                linked.join(", "),
                span.trace_id()
            );
            out += &line(span, 1);
        }
    }
    out
}
