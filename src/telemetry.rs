//! Logging: a `tracing` subscriber writing to standard error (standard
//! output belongs to the stdout sink), human-readable or JSON, and a rate
//! limit for log lines a client can trigger at will.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{words, ConfigError};

/// Installs the global subscriber: logs, and the spans `traces` exports
/// when tracing is on (whatever the log level). `RUST_LOG`, when set,
/// overrides `log.level` (validated at startup). Colours only on a
/// terminal. Does nothing if one is already installed (tests).
pub fn init<W>(settings: &LogSettings, writer: W, ansi: bool, traces: Option<&openim_otel::Tracing>)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // lapin logs every returned (unroutable) message at warn, payload
    // included: the publisher reports those itself, without the payload.
    let quiet = "lapin::returned_messages=off";
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},{quiet}", settings.level)))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{quiet}")));
    let _already_set = match traces {
        // Each layer its own filter: spans are exported whatever the log
        // level.
        Some(traces) => tracing_subscriber::registry()
            .with(logs(settings, writer, ansi).with_filter(filter))
            .with(traces.layer(&["openim_bridge"]))
            .try_init(),
        // One global filter: what is not logged costs nothing.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(logs(settings, writer, ansi))
            .try_init(),
    };
}

/// The log lines' layer, for any subscriber below it.
fn logs<S, W>(settings: &LogSettings, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match settings.format {
        LogFormat::Json => logs.json().with_current_span(true).boxed(),
        LogFormat::Text => logs.boxed(),
    }
}

/// Lets one log line through per second and counts the rest, so a flood of
/// bad requests cannot flood the disk with logs.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// The second (since the epoch) of the last line let through.
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// A limiter that lets the next line through (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Self {
            last_second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if a line may be logged now, `n` being how many were
    /// suppressed since the last one; `None` if this one is suppressed.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        if last != now
            && self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;

    #[test]
    fn one_line_per_second_and_a_count_of_the_rest() {
        let limit = RateLimit::default();
        assert_eq!(limit.allow(), Some(0));
        // Unless the second ticks over right here, the rest are counted.
        let passed = (0..100).filter(|_| limit.allow().is_some()).count();
        assert!(passed <= 1, "{passed}");
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

words!(LogFormat: "text" => Text, "json" => Json);

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` | `json`.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `openim_bridge=debug,info`.
    /// `RUST_LOG` overrides it when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl LogSettings {
    /// `level` must be a filter `tracing` understands.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match tracing_subscriber::EnvFilter::try_new(&self.level) {
            Ok(_) => Ok(()),
            Err(err) => Err(ConfigError::invalid_because(
                "log.level",
                format!(
                    "{:?} is not a log filter ({err}); try `info` or `openim_bridge=debug,info`",
                    self.level
                ),
                err,
            )),
        }
    }
}
