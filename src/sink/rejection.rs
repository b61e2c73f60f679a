//! Why a broker refused an event for good, in the words a dead-letter line
//! and an operator need: a class, the broker's own code and text, and
//! where the event was going (anchors: Kafka Connect's dead-letter context
//! headers, Knative's `knativeerrorcode` / `knativeerrordest`).

use time::OffsetDateTime;

pub use super::dead_letter::line::{Destination, RejectClass};
use super::dead_letter::Context;
use super::Problem;

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

impl Rejection {
    /// What the dead-letter line of the event it refused says.
    pub fn dead_letter_context(
        &self,
        sink: &'static str,
        attempts: u32,
        first_failed_at: OffsetDateTime,
        last_failed_at: OffsetDateTime,
    ) -> Context {
        Context {
            sink,
            class: self.class,
            code: self.code.clone(),
            reason: self.to_string(),
            destination: self.destination.clone(),
            attempts,
            first_failed_at,
            last_failed_at,
        }
    }
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
