//! The settings tree: one [`Settings`] for the whole bridge, and the
//! [`Validated`] form the rest of the program takes.
//!
//! Layers, later wins: built-in defaults < TOML file (`--config FILE`) <
//! environment variables `OPENIM_BRIDGE__SECTION__KEY` (e.g.
//! `OPENIM_BRIDGE__SINK__KIND=kafka`). Every section rejects unknown keys, so a
//! typo fails at startup instead of being ignored. [`Settings::validate`]
//! rejects values that parse but cannot work, naming the key to change, and
//! is the only way to a [`Validated`]: what `App::start` takes. So an
//! unchecked value (an allowlist that failed to parse) cannot reach a stage.
//!
//! Each section's type lives beside the stage that uses it; this module
//! only puts them together and checks what spans sections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

pub use crate::config::{ConfigError, Secret, ENV_PREFIX};
pub use crate::ingress::settings::{HttpSettings, UnknownCommands};
pub use crate::normalize::event::EventSettings;
pub use crate::routing::{ContentTypes, FilterSettings, Route, RouteSettings};
pub use crate::shutdown::ShutdownSettings;
pub use crate::sink::kafka::config::{
    Compression, KafkaSettings, Passthrough, SaslMechanism, SecurityProtocol,
};
pub use crate::sink::rabbitmq::config::{ExchangeType, RabbitMqSettings};
pub use crate::sink::settings::{SinkKind, SinkSettings};
pub use crate::spool::settings::{AckMode, SpoolSettings};
pub use crate::telemetry::{LogFormat, LogSettings};
pub use openim_otel::TracingSettings;

use crate::ingress::tls;
use crate::normalize::CallbackKind;
use crate::routing::{Filter, Routes};
use crate::sink::kafka::config::validate_topic_name;
use crate::sink::rabbitmq::config::check_routing_key;

#[cfg(test)]
mod tests;

/// The whole configuration. See `deploy/openim-bridge.example.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP endpoint OpenIM posts callbacks to.
    pub http: HttpSettings,
    /// Where events go.
    pub sink: SinkSettings,
    /// The durable spool between the ack and the broker.
    pub spool: SpoolSettings,
    /// CloudEvents attributes the bridge sets.
    pub event: EventSettings,
    /// Kafka sink (used when `sink.kind = "kafka"`).
    pub kafka: KafkaSettings,
    /// RabbitMQ sink (used when `sink.kind = "rabbitmq"`).
    pub rabbitmq: RabbitMqSettings,
    /// Logging.
    pub log: LogSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Per-command or per-type topics, exchanges and routing keys, or no
    /// publishing at all; the first entry that matches wins
    /// (docs/events.md, "Routing and filters").
    pub routes: Vec<RouteSettings>,
    /// Callbacks not to publish, by content type, group or user
    /// (docs/events.md, "Routing and filters").
    pub filter: FilterSettings,
    /// OpenTelemetry traces (off unless an OTLP endpoint is configured).
    pub tracing: TracingSettings,
}

/// Settings that passed [`Settings::validate`], with what they name read
/// and parsed: the allowlist, the filter, the routes and the listener's
/// certificate. Read-only: changing a key means validating again.
#[derive(Clone)]
pub struct Validated {
    settings: Settings,
    allow_ips: Vec<ipnet::IpNet>,
    filter: Filter,
    routes: Arc<Routes>,
    tls: Option<TlsAcceptor>,
}

impl Validated {
    /// `http.allow_ips`, parsed (empty: every address).
    pub(crate) fn allow_ips(&self) -> &[ipnet::IpNet] {
        &self.allow_ips
    }

    /// `[filter]`, compiled.
    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// `[[routes]]` resolved for every callback kind (shared by ingress
    /// and the sink).
    pub(crate) fn routes(&self) -> &Arc<Routes> {
        &self.routes
    }

    /// Whether events of `kind` are published, and where: `[[routes]]`
    /// resolved, over the sinks' own topic, exchange and routing key.
    pub fn route(&self, kind: CallbackKind) -> &Route {
        self.routes.route(kind)
    }

    /// The listener's TLS acceptor, when `http.tls_cert_file` is set.
    pub(crate) fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }
}

impl std::ops::Deref for Validated {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings.fmt(f)
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment, and
    /// validates the result.
    ///
    /// `env` replaces the process environment when given (tests use it).
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Validated, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(env);
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()
    }

    /// Checks every key, reads the files they name (secrets, certificates)
    /// and parses what the stages need, naming the key to change when
    /// something cannot work. Also fills defaults that depend on other
    /// keys (an empty `spool.dir` becomes `spool/<http.listen port>`).
    ///
    /// Reads files: call it before the async runtime starts, or on its
    /// blocking pool.
    pub fn validate(mut self) -> Result<Validated, ConfigError> {
        if self.spool.dir.as_os_str().is_empty() {
            self.spool.dir = PathBuf::from("spool").join(self.http.listen.port().to_string());
        }
        self.kafka.resolve_files()?;
        self.rabbitmq.resolve_files()?;
        let allow_ips = self.http.validate()?;
        self.spool.validate()?;
        self.sink.validate()?;
        self.log.validate()?;
        self.event.validate()?;
        self.tracing
            .validate()
            .map_err(|err| ConfigError::invalid(err.key, err.problem))?;
        // An event is about its body's size plus a little: half the spool's
        // record limit leaves room, so every acked callback can be read back.
        if self.http.max_body_bytes > crate::spool::record::MAX_PAYLOAD / 2 {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                "must be at most 33554432 bytes (32 MiB), half the spool's record limit",
            ));
        }
        if self.spool.max_bytes < 2 * self.spool.segment_bytes + 2 * self.http.max_body_bytes as u64
        {
            return Err(ConfigError::invalid(
                "spool.max_bytes",
                "must be at least twice spool.segment_bytes plus twice http.max_body_bytes, or the spool could fill before a segment can be freed",
            ));
        }
        let filter = Filter::new(&self.filter)?;
        for route in &self.routes {
            validate_route(route)?;
        }
        match self.sink.kind {
            SinkKind::Kafka => self.kafka.validate()?,
            SinkKind::Rabbitmq => self.rabbitmq.validate()?,
            SinkKind::Stdout => {}
        }
        let tls = match (&self.http.tls_cert_file, &self.http.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(|err| {
                ConfigError::invalid_because("http.tls_cert_file", err.to_string(), err)
            })?),
            _ => None,
        };
        let fallback = Route {
            enabled: true,
            kafka_topic: self.kafka.topic.as_str().into(),
            rabbitmq_exchange: self.rabbitmq.exchange.as_str().into(),
            rabbitmq_routing_key: self.rabbitmq.routing_key.as_str().into(),
        };
        let routes = Arc::new(Routes::new(
            &self.routes,
            fallback,
            self.http.unknown_commands.publishes(),
        ));
        Ok(Validated {
            settings: self,
            allow_ips,
            filter,
            routes,
            tls,
        })
    }
}

/// One `[[routes]]` entry: a pattern that matches, and broker names each
/// broker accepts.
fn validate_route(route: &RouteSettings) -> Result<(), ConfigError> {
    route.validate()?;
    let pattern = route.pattern.trim();
    let invalid = |key: &str, problem: String| {
        ConfigError::invalid("routes", format!("`{key}` of `{pattern}`: {problem}"))
    };
    if let Some(topic) = &route.kafka_topic {
        validate_topic_name(topic).map_err(|problem| invalid("kafka_topic", problem))?;
    }
    if let Some(key) = &route.rabbitmq_routing_key {
        check_routing_key(key).map_err(|problem| invalid("rabbitmq_routing_key", problem))?;
    }
    Ok(())
}
