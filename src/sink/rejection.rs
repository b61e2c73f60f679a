//! Why a broker refused an event for good, in the words a dead-letter line
//! and an operator need: a class, the broker's own code and text, and
//! where the event was going (anchors: Kafka Connect's dead-letter context
//! headers, Knative's `knativeerrorcode` / `knativeerrordest`).

use serde::{Deserialize, Serialize};

use super::Problem;

/// What kind of refusal it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectClass {
    /// RabbitMQ returned it: no queue is bound for its routing key.
    Unroutable,
    /// Larger than the topic (or the producer) takes.
    TooLarge,
    /// The topic or exchange does not exist.
    UnknownDestination,
    /// The event's data is not what the sink can write (stdout: not JSON).
    InvalidData,
    /// Refused for another reason the broker gave.
    Rejected,
}

impl RejectClass {
    /// Its name in dead-letter lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unroutable => "unroutable",
            Self::TooLarge => "too_large",
            Self::UnknownDestination => "unknown_destination",
            Self::InvalidData => "invalid_data",
            Self::Rejected => "rejected",
        }
    }
}

/// Where a refused event was going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destination {
    /// A Kafka topic.
    Topic {
        /// Its name.
        topic: String,
    },
    /// A RabbitMQ exchange and routing key.
    Exchange {
        /// The exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// Standard output.
    Stdout {
        /// Always `"stdout"`.
        stream: String,
    },
}

impl Destination {
    /// Kafka topic `topic`.
    pub fn topic(topic: &str) -> Self {
        Self::Topic {
            topic: topic.to_owned(),
        }
    }

    /// RabbitMQ exchange `exchange`, routing key `routing_key`.
    pub fn exchange(exchange: &str, routing_key: &str) -> Self {
        Self::Exchange {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        }
    }

    /// Standard output.
    pub fn stdout() -> Self {
        Self::Stdout {
            stream: "stdout".to_owned(),
        }
    }
}

/// A refusal for good: [`super::SinkError::Rejected`].
#[derive(Debug, Clone)]
pub struct Rejection {
    /// What kind of refusal.
    pub class: RejectClass,
    /// The broker's (or client's) code, e.g. `312` (AMQP NO_ROUTE) or
    /// `MessageSizeTooLarge` (librdkafka).
    pub code: Option<String>,
    /// Where the event was going.
    pub destination: Destination,
    /// The broker's text, with what it came from.
    pub problem: Problem,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.problem.fmt(f)
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.problem.source()
    }
}
