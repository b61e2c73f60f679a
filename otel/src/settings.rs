//! `[tracing]`: where spans go, and how many. Every key may be left unset;
//! the standard `OTEL_*` variables then decide (see [`crate::start`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[tracing]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSettings {
    /// The collector's OTLP base URL, e.g. `http://otel-collector:4318`
    /// (HTTP/protobuf; `/v1/traces` is appended) or
    /// `http://otel-collector:4317` (gRPC). Empty: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT`; with neither, tracing is off.
    pub endpoint: String,
    /// `grpc` or `http/protobuf`. Empty: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf` (the
    /// specification's default).
    pub protocol: String,
    /// Share of new traces recorded, 0.0 to 1.0 (a trace an incoming
    /// `traceparent` started follows its sampled flag). Unset:
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, else every trace.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: Option<f64>,
    /// `service.name` of the spans. Empty: `OTEL_SERVICE_NAME`, else the
    /// program's name.
    pub service_name: String,
    /// Finished spans waiting for export, at most; more are dropped and
    /// counted (`*_trace_spans_dropped_total`), never waited for.
    #[schemars(range(min = 64, max = 1048576))]
    pub max_queued_spans: usize,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            protocol: String::new(),
            sampling_ratio: None,
            service_name: String::new(),
            max_queued_spans: 8192,
        }
    }
}

/// A `[tracing]` key that cannot work: the key (without the section) and
/// what would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    /// `tracing.endpoint`, `tracing.protocol`, `tracing.sampling_ratio` or
    /// `tracing.max_queued_spans`.
    pub key: &'static str,
    /// What is wrong, and what would work.
    pub problem: String,
}

impl TracingSettings {
    /// Checks each key on its own (the `OTEL_*` variables are read when
    /// tracing starts).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, problem: String| Err(InvalidSetting { key, problem });
        if !self.protocol.is_empty() {
            if let Err(problem) = crate::Protocol::parse(&self.protocol) {
                return invalid("tracing.protocol", problem);
            }
        }
        if let Some(ratio) = self.sampling_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return invalid(
                    "tracing.sampling_ratio",
                    format!("{ratio} is not a share: use 0.0 (none) to 1.0 (every trace)"),
                );
            }
        }
        let is_url = self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://");
        if !self.endpoint.is_empty() && !is_url {
            return invalid(
                "tracing.endpoint",
                format!(
                    "{:?} is not a URL: use http://HOST:4318 (HTTP/protobuf) or http://HOST:4317 (gRPC)",
                    self.endpoint
                ),
            );
        }
        if !(64..=1_048_576).contains(&self.max_queued_spans) {
            return invalid(
                "tracing.max_queued_spans",
                format!(
                    "{} is out of range: use 64 to 1048576",
                    self.max_queued_spans
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_checked_and_named() {
        assert_eq!(TracingSettings::default().validate(), Ok(()));
        let check = |settings: TracingSettings| settings.validate().unwrap_err().key;
        assert_eq!(
            check(TracingSettings {
                protocol: "http/json".into(),
                ..TracingSettings::default()
            }),
            "tracing.protocol"
        );
        assert_eq!(
            check(TracingSettings {
                sampling_ratio: Some(1.5),
                ..TracingSettings::default()
            }),
            "tracing.sampling_ratio"
        );
        assert_eq!(
            check(TracingSettings {
                endpoint: "collector:4317".into(),
                ..TracingSettings::default()
            }),
            "tracing.endpoint"
        );
        assert_eq!(
            check(TracingSettings {
                max_queued_spans: 1,
                ..TracingSettings::default()
            }),
            "tracing.max_queued_spans"
        );
    }
}
