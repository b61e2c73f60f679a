//! `[sink]`: which broker receives events, and how the publisher retries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{words, ConfigError};

/// Which broker receives events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SinkKind {
    /// JSON lines (structured CloudEvents) on standard output. Needs no broker.
    #[default]
    Stdout,
    /// Apache Kafka or any Kafka-protocol broker.
    Kafka,
    /// RabbitMQ (AMQP 0-9-1).
    Rabbitmq,
}

words!(SinkKind: "stdout" => Stdout, "kafka" => Kafka, "rabbitmq" => Rabbitmq);

/// `[sink]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// `stdout` | `kafka` | `rabbitmq`.
    pub kind: SinkKind,
    /// Events handed to the broker client and not yet confirmed, at most.
    #[schemars(range(min = 1))]
    pub max_in_flight: usize,
    /// First retry delay after a broker error; doubles up to `retry_max_ms`.
    #[schemars(range(min = 1))]
    pub retry_initial_ms: u64,
    /// Longest delay between retries (each delay has jitter).
    pub retry_max_ms: u64,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            kind: SinkKind::Stdout,
            // Enough to keep a broker busy over loopback or a LAN without
            // holding many events unconfirmed.
            max_in_flight: 1024,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

impl SinkSettings {
    /// Rejects values that cannot work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "sink.max_in_flight",
                "must be at least 1",
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(ConfigError::invalid(
                "sink.retry_initial_ms",
                "must be at least 1 and not above sink.retry_max_ms",
            ));
        }
        Ok(())
    }
}
