//! Settings: built-in defaults < the TOML file (`--config`) < environment
//! variables `OPENIM_SYNC__SECTION__KEY` (e.g. `OPENIM_SYNC__SOURCE__KIND=kafka`;
//! `OPENIM_SYNC__KAFKA__TOPICS=a,b` for a list). Every key is checked at
//! start, and an error names the key to change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// Prefix of the environment variables.
pub const ENV_PREFIX: &str = "OPENIM_SYNC";

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or the environment could not be read as settings.
    #[error("settings: {0}")]
    Load(#[from] config::ConfigError),
    /// A key has a value that cannot work.
    #[error("setting `{key}`: {problem}")]
    Invalid {
        /// The key, e.g. `kafka.topics`.
        key: &'static str,
        /// What is wrong, and what would work.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where events come from.
    pub source: SourceSettings,
    /// Kafka (when `source.kind = "kafka"`).
    pub kafka: KafkaSettings,
    /// RabbitMQ (when `source.kind = "rabbitmq"`).
    pub rabbitmq: RabbitMqSettings,
    /// The database.
    pub postgres: PostgresSettings,
    /// Probes and metrics.
    pub http: HttpSettings,
    /// How events are grouped into transactions.
    pub batch: BatchSettings,
    /// OpenTelemetry traces (off unless an OTLP endpoint is configured).
    pub tracing: openim_otel::TracingSettings,
}

/// Which broker to consume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Kafka consumer group.
    #[default]
    Kafka,
    /// A RabbitMQ queue (competing consumers).
    Rabbitmq,
}

/// `[source]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// `kafka` or `rabbitmq`.
    pub kind: SourceKind,
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topics to consume (the bridge's `kafka.topic` and routed topics).
    pub topics: Vec<String>,
    /// Consumer group: replicas with the same group share the partitions.
    pub group_id: String,
    /// If no partition was assigned for this long, subscribe again (0:
    /// never). Off by default: on Apache Kafka a member with no partition
    /// is normal (more members than partitions) and re-subscribing would
    /// make the group rebalance. Some Kafka-protocol brokers (Tansu 0.6)
    /// can leave a restarted member without partitions for good; this
    /// recovers it.
    pub resubscribe_idle_ms: u64,
    /// Extra librdkafka consumer properties (TLS, SASL, ...).
    pub options: HashMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topics: vec!["openim.events".to_owned()],
            group_id: "openim-sync".to_owned(),
            resubscribe_idle_ms: 0,
            options: HashMap::new(),
        }
    }
}

/// `[rabbitmq]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// `amqp://user:password@host:port/vhost` (or `amqps://`).
    pub url: String,
    /// The bridge's exchange.
    pub exchange: String,
    /// The queue consumers share; declared (durable) and bound to the
    /// exchange with `binding_key` when it does not exist.
    pub queue: String,
    /// The binding key (`#`: every event).
    pub binding_key: String,
    /// Unacked deliveries per consumer, at most.
    pub prefetch: u16,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            exchange: "openim.events".to_owned(),
            queue: "openim-sync".to_owned(),
            binding_key: "#".to_owned(),
            prefetch: 512,
        }
    }
}

/// `[postgres]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user[:password]@host[:port]/database` (or the key=value
    /// form).
    pub url: String,
    /// The schema holding the tables (created if missing).
    pub schema: String,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            schema: "openim".to_owned(),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
        }
    }
}

/// `[batch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Events applied in one transaction, at most.
    pub max_events: usize,
    /// How long a batch waits to fill before it is applied.
    pub max_wait_ms: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_events: 500,
            max_wait_ms: 20,
        }
    }
}

impl Settings {
    /// Loads defaults < `file` < the environment (`env`, or the process's
    /// when `None`), and checks every key.
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("kafka.topics")
            .try_parsing(true)
            .source(env);
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, problem: &str| {
            Err(SettingsError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        let schema = &self.postgres.schema;
        if schema.is_empty()
            || schema.len() > 63
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || schema.starts_with(|c: char| c.is_ascii_digit())
        {
            return invalid(
                "postgres.schema",
                "must be 1 to 63 characters: lowercase letters, digits and _, not starting with a digit",
            );
        }
        match self.source.kind {
            SourceKind::Kafka => {
                if self
                    .kafka
                    .topics
                    .iter()
                    .all(|topic| topic.trim().is_empty())
                {
                    return invalid("kafka.topics", "must name at least one topic");
                }
                if self.kafka.group_id.is_empty() {
                    return invalid("kafka.group_id", "must not be empty");
                }
            }
            SourceKind::Rabbitmq => {
                if self.rabbitmq.queue.is_empty() || self.rabbitmq.exchange.is_empty() {
                    return invalid(
                        "rabbitmq.queue",
                        "rabbitmq.queue and rabbitmq.exchange must not be empty",
                    );
                }
                if self.rabbitmq.prefetch == 0 {
                    return invalid("rabbitmq.prefetch", "must be at least 1");
                }
            }
        }
        if self.batch.max_events == 0 {
            return invalid("batch.max_events", "must be at least 1");
        }
        if let Err(err) = self.tracing.validate() {
            return invalid(err.key, &err.problem);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_environment_names_lists_and_errors_name_the_key() {
        let settings = Settings::load(
            None,
            env(&[
                ("OPENIM_SYNC__SOURCE__KIND", "rabbitmq"),
                ("OPENIM_SYNC__KAFKA__TOPICS", "a,b"),
                ("OPENIM_SYNC__POSTGRES__SCHEMA", "chat_archive"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.source.kind, SourceKind::Rabbitmq);
        assert_eq!(settings.kafka.topics, ["a", "b"]);
        assert_eq!(settings.rabbitmq.exchange, "openim.events");
        let err = Settings::load(
            None,
            env(&[("OPENIM_SYNC__POSTGRES__SCHEMA", "Drop Table")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("postgres.schema"), "{err}");
        let err = Settings::load(None, env(&[("OPENIM_SYNC__SOURCE__KIND", "nats")])).unwrap_err();
        assert!(err.to_string().contains("nats"), "{err}");
    }
}
