//! OpenTelemetry traces for openim-bridge and openim-sync.
//!
//! [`start`] turns `[tracing]` (and the standard `OTEL_*` variables) into a
//! tracer whose [`Tracing::layer`] makes the program's `tracing` spans
//! OpenTelemetry spans, exported over OTLP (gRPC or HTTP/protobuf).
//!
//! Tracing is off unless an endpoint is configured: `tracing.endpoint`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `OTEL_TRACES_EXPORTER=otlp` (the default `localhost` endpoint).
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! Export never makes the traced code wait: a finished span is handed to a
//! bounded queue with a non-blocking send, and one thread exports batches.
//! When the queue is full, or the collector refuses or cannot be reached,
//! the spans are dropped and counted ([`counters`]).

#![warn(missing_docs)]

mod export;
mod settings;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub use settings::{InvalidSetting, TracingSettings};

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (the collector's port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318, `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// `grpc` or `http/protobuf`, as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "{other:?} is not supported: use `grpc` or `http/protobuf`"
            )),
        }
    }
}

/// Where and how spans are exported, once settings and variables are read.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The full URL requests go to.
    pub endpoint: String,
    /// gRPC or HTTP/protobuf.
    pub protocol: Protocol,
    /// Which traces are recorded.
    pub sampling: Sampling,
}

/// Which traces are recorded (head sampling): `tracing.sampling_ratio`, or
/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` read the way the
/// specification defines them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Share of traces recorded, 0.0 to 1.0.
    pub ratio: f64,
    /// A trace started upstream (an incoming `traceparent`) follows its
    /// sampled flag instead (the `parentbased_*` samplers).
    pub parent_based: bool,
}

impl Sampling {
    /// Whether to record a trace: its parent's flag when `parent` is given
    /// and this is parent-based, else the ratio.
    pub fn sample(&self, parent_sampled: Option<bool>) -> bool {
        match parent_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio),
        }
    }

    fn sdk_sampler(self) -> Sampler {
        let root = if self.ratio >= 1.0 {
            Sampler::AlwaysOn
        } else if self.ratio <= 0.0 {
            Sampler::AlwaysOff
        } else {
            Sampler::TraceIdRatioBased(self.ratio)
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }
}

/// Who decides which traces are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSampling {
    /// The SDK, when each root span starts (openim-sync).
    Sdk,
    /// The program, before it makes any span ([`sampling`]): the SDK then
    /// records every span it is asked for, and a trace not sampled costs
    /// no OpenTelemetry work at all (the bridge's callbacks).
    Caller,
}

/// Spans exported and dropped since the start, for `/metrics`.
#[derive(Debug, Default)]
pub struct SpanCounters {
    /// Spans the collector accepted.
    pub exported: Counter,
    /// Spans dropped: the queue was full, or the export failed.
    pub dropped: Counter,
    last_failure: Mutex<String>,
}

impl SpanCounters {
    /// Logs an export failure when its cause differs from the last one.
    fn note_failure(&self, cause: &str) {
        let Ok(mut last) = self.last_failure.lock() else {
            return;
        };
        if *last != cause {
            tracing::warn!(%cause, "cannot export spans to the collector; they are dropped and counted (logged again only if the cause changes)");
            cause.clone_into(&mut last);
        }
    }
}

/// Registers the process's span counters in `registry` (under its prefix):
/// `trace_spans_exported_total` and `trace_spans_dropped_total`, zero while
/// tracing is off.
pub fn register_metrics(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "trace_spans_exported",
        "Spans the OpenTelemetry collector accepted",
        counters().exported.clone(),
    );
    registry.register(
        "trace_spans_dropped",
        "Spans dropped, not exported: the queue was full (tracing.max_queued_spans) or the collector could not be reached or refused them; nothing waits for the collector",
        counters().dropped.clone(),
    );
}

/// The process's span counters (one tracer per process).
pub fn counters() -> &'static SpanCounters {
    static COUNTERS: LazyLock<SpanCounters> = LazyLock::new(SpanCounters::default);
    &COUNTERS
}

/// The last part of the target of spans never exported (see
/// [`Tracing::layer`]).
pub const UNTRACED: &str = "untraced";

/// Links one span keeps, at most (the SDK's default is 128).
const MAX_LINKS: u32 = 1024;

static ENABLED: AtomicBool = AtomicBool::new(false);

static SAMPLING: std::sync::OnceLock<Sampling> = std::sync::OnceLock::new();

/// How a program that samples itself ([`HeadSampling::Caller`]) decides;
/// `None` unless tracing runs.
pub fn sampling() -> Option<Sampling> {
    enabled().then(|| SAMPLING.get().copied()).flatten()
}

/// Whether [`start`] started a tracer: callers skip the work of spans that
/// would go nowhere.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key or an `OTEL_*` variable cannot work.
    #[error("{0}")]
    Invalid(String),
    /// The exporter could not be built.
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
}

/// A running tracer.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    export: Export,
}

impl Tracing {
    /// Logs where spans go (once the program's subscriber is installed).
    pub fn log_start(&self) {
        let export = &self.export;
        tracing::info!(endpoint = %export.endpoint, protocol = ?export.protocol, ratio = export.sampling.ratio, parent_based = export.sampling.parent_based, "exporting traces over OTLP");
    }

    /// The `tracing` layer exporting the spans of `targets` (module path
    /// prefixes, at `info` and above) whatever the log level, except those
    /// of target `<prefix>::untraced` ([`UNTRACED`]): a trace the program
    /// decided not to record.
    pub fn layer<S>(&self, targets: &[&str]) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let filter = targets.iter().fold(Targets::new(), |filter, target| {
            filter
                .with_target(*target, tracing::Level::INFO)
                .with_target(
                    format!("{target}::{UNTRACED}"),
                    tracing_subscriber::filter::LevelFilter::OFF,
                )
        });
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_level(false)
            .with_target(false)
            // Parents come from tracing's span tree; not activating the
            // OpenTelemetry context on every poll saves its cost.
            .with_context_activation(false)
            .with_filter(filter)
    }

    /// Exports what is queued (waiting at most `timeout`) and stops. Blocks:
    /// call it off the async runtime.
    pub fn shutdown(self, timeout: std::time::Duration) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(err) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(cause = %err, "spans still queued at exit were not exported");
        }
    }
}

/// Starts the tracer `settings` and the `OTEL_*` variables describe, or
/// `None` when tracing is off. `program` is the default `service.name`.
pub fn start(
    settings: &TracingSettings,
    program: &str,
    head: HeadSampling,
) -> Result<Option<Tracing>, StartError> {
    start_with_env(settings, program, head, |name| std::env::var(name).ok())
}

/// [`start`], reading variables through `env` (tests).
pub fn start_with_env(
    settings: &TracingSettings,
    program: &str,
    head: HeadSampling,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Tracing>, StartError> {
    let Some(export) = resolve(settings, &env).map_err(StartError::Invalid)? else {
        return Ok(None);
    };
    let mut resource = Resource::builder();
    if !settings.service_name.is_empty() {
        resource = resource.with_service_name(settings.service_name.clone());
    } else if env("OTEL_SERVICE_NAME").is_none_or(|name| name.is_empty()) {
        resource = resource.with_service_name(program.to_owned());
    }
    let resource = resource.build();
    let target = export.clone();
    let processor =
        export::QueueProcessor::start(settings.max_queued_spans, resource.clone(), move || {
            build_exporter(&target).map_err(|err| err.to_string())
        })
        .map_err(StartError::Exporter)?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        // A consumer's batch span links to every event of its batch
        // (openim-sync's batch.max_events: 500 by default).
        .with_max_links_per_span(MAX_LINKS)
        .with_span_processor(processor)
        .with_sampler(match head {
            HeadSampling::Sdk => export.sampling.sdk_sampler(),
            HeadSampling::Caller => Sampler::AlwaysOn,
        })
        .build();
    let _ = SAMPLING.set(export.sampling);
    let tracer = provider.tracer(program.to_owned());
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Tracing {
        provider,
        tracer,
        export,
    }))
}

fn build_exporter(export: &Export) -> Result<SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    match export.protocol {
        Protocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(export.endpoint.clone())
            .build(),
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(export.endpoint.clone())
            .build(),
    }
}

/// Reads settings, then variables: `None` when tracing is off.
pub fn resolve(
    settings: &TracingSettings,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Export>, String> {
    let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let exporter = var("OTEL_TRACES_EXPORTER");
    match exporter.as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_EXPORTER={other:?} is not supported: use `otlp` or `none`"
            ))
        }
    }
    let protocol = if settings.protocol.is_empty() {
        match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(name) => Protocol::parse(&name)
                .map_err(|problem| format!("OTEL_EXPORTER_OTLP_PROTOCOL: {problem}"))?,
            None => Protocol::HttpProtobuf,
        }
    } else {
        Protocol::parse(&settings.protocol)
            .map_err(|problem| format!("tracing.protocol: {problem}"))?
    };
    // A base URL gets the signal's path (HTTP only), as the specification
    // says of OTEL_EXPORTER_OTLP_ENDPOINT; the per-signal variable is used
    // as it is.
    let base = |url: &str| match protocol {
        Protocol::Grpc => url.to_owned(),
        Protocol::HttpProtobuf => format!("{}/v1/traces", url.trim_end_matches('/')),
    };
    let endpoint = if !settings.endpoint.is_empty() {
        base(&settings.endpoint)
    } else if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        url
    } else if let Some(url) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        base(&url)
    } else if exporter.is_some() {
        base(match protocol {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        })
    } else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!(
            "the OTLP endpoint {endpoint:?} is not an http:// or https:// URL"
        ));
    }
    let sampling = match settings.sampling_ratio {
        Some(ratio) => Sampling {
            ratio,
            parent_based: true,
        },
        None => sampler_from_env(var("OTEL_TRACES_SAMPLER"), var("OTEL_TRACES_SAMPLER_ARG"))?,
    };
    Ok(Some(Export {
        endpoint,
        protocol,
        sampling,
    }))
}

/// `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`) with its ratio
/// argument (default 1.0).
fn sampler_from_env(name: Option<String>, arg: Option<String>) -> Result<Sampling, String> {
    let ratio = match arg {
        None => 1.0,
        Some(arg) => match arg.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG={arg:?} is not a ratio from 0.0 to 1.0"
                ))
            }
        },
    };
    let (ratio, parent_based) = match name.as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => (1.0, true),
        Some("parentbased_always_off") => (0.0, true),
        Some("parentbased_traceidratio") => (ratio, true),
        Some("always_on") => (1.0, false),
        Some("always_off") => (0.0, false),
        Some("traceidratio") => (ratio, false),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER={other:?} is not supported: use parentbased_always_on, parentbased_traceidratio, traceidratio, always_on, always_off or parentbased_always_off"
            ))
        }
    };
    Ok(Sampling {
        ratio,
        parent_based,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(
        settings: &TracingSettings,
        vars: &[(&str, &str)],
    ) -> Result<Option<Export>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(settings, &|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn off_unless_an_endpoint_is_configured() {
        let none = TracingSettings::default();
        assert_eq!(resolved(&none, &[]), Ok(None));
        assert_eq!(resolved(&none, &[("OTEL_SERVICE_NAME", "x")]), Ok(None));
        let on = resolved(&none, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(
            on,
            Some(Export {
                endpoint: "http://c:4318/v1/traces".into(),
                protocol: Protocol::HttpProtobuf,
                sampling: Sampling {
                    ratio: 1.0,
                    parent_based: true
                },
            })
        );
        assert_eq!(
            resolved(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true")
                ]
            ),
            Ok(None)
        );
        assert_eq!(
            resolved(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_TRACES_EXPORTER", "none")
                ]
            ),
            Ok(None)
        );
        let default = resolved(
            &none,
            &[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
        );
        assert_eq!(default.unwrap().unwrap().endpoint, "http://localhost:4317");
    }

    #[test]
    fn settings_win_over_variables_and_errors_say_what_works() {
        let settings = TracingSettings {
            endpoint: "http://collector:4317".into(),
            protocol: "grpc".into(),
            ..TracingSettings::default()
        };
        let export = resolved(
            &settings,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(export.endpoint, "http://collector:4317");
        assert_eq!(export.protocol, Protocol::Grpc);
        let traces = resolved(
            &TracingSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9999/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(traces.endpoint, "http://c:9999/custom");
        let err = resolved(
            &TracingSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("grpc") && err.contains("http/json"), "{err}");
        let err = resolved(
            &TracingSettings::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
        )
        .unwrap_err();
        assert!(err.contains("collector:4317"), "{err}");
    }

    #[test]
    fn the_sampler_variables_are_read_as_specified() {
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        let sampling = |vars: &[(&str, &str)]| {
            let all: Vec<(&str, &str)> = on.iter().chain(vars).copied().collect();
            resolved(&TracingSettings::default(), &all).map(|export| export.unwrap().sampling)
        };
        assert_eq!(
            sampling(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25")
            ]),
            Ok(Sampling {
                ratio: 0.25,
                parent_based: true
            })
        );
        assert_eq!(
            sampling(&[("OTEL_TRACES_SAMPLER", "always_off")]),
            Ok(Sampling {
                ratio: 0.0,
                parent_based: false
            })
        );
        let err = sampling(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]).unwrap_err();
        assert!(err.contains("traceidratio"), "{err}");
        let err = sampling(&[("OTEL_TRACES_SAMPLER_ARG", "2")]).unwrap_err();
        assert!(err.contains("0.0 to 1.0"), "{err}");
        // The settings key wins, parent-based.
        let settings = TracingSettings {
            sampling_ratio: Some(0.1),
            ..TracingSettings::default()
        };
        let export = resolved(&settings, &[on[0], ("OTEL_TRACES_SAMPLER", "always_on")])
            .unwrap()
            .unwrap();
        assert_eq!(
            export.sampling,
            Sampling {
                ratio: 0.1,
                parent_based: true
            }
        );
        // A parent's flag decides; the ratio decides the rest.
        assert!(export.sampling.sample(Some(true)));
        assert!(!export.sampling.sample(Some(false)));
        let never = Sampling {
            ratio: 0.0,
            parent_based: true,
        };
        assert!(!(0..1000).any(|_| never.sample(None)));
        let always = Sampling {
            ratio: 1.0,
            parent_based: false,
        };
        assert!((0..1000).all(|_| always.sample(Some(false))));
    }
}
