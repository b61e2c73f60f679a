//! Stage 4: sinks hand events to a broker and report what it confirmed.
//!
//! A [`Sink`] sends one event at a time ([`Sink::send`]) and returns a
//! [`Delivery`] future that resolves when the broker has confirmed it (Kafka
//! delivery report, AMQP publisher confirm). The [`publisher`] keeps many
//! deliveries in flight, in order, and decides what an outcome means:
//!
//! * delivered: the event leaves the queue;
//! * [`SinkError::Retryable`]: the sink recovers (reconnects), and the event
//!   and every one sent after it are sent again, in order (at-least-once;
//!   consumers deduplicate on the CloudEvents `id`);
//! * [`SinkError::Rejected`]: the broker refused this event for good; it is
//!   logged with its id, counted and written to the [`dead_letter`] file,
//!   never silently dropped.

pub mod dead_letter;
pub mod kafka;
pub mod publisher;
pub mod rabbitmq;
pub mod refusal;
pub mod rejection;
pub mod settings;
pub mod stdout;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::normalize::Event;
pub use rejection::{Destination, RejectClass, Rejection};

/// Resolves when the broker confirmed (or refused) one event.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// What went wrong with a delivery.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Temporary (connection lost, broker unavailable): send again later.
    #[error(transparent)]
    Retryable(Problem),
    /// The broker refused this event for good (e.g. too large, unroutable).
    #[error(transparent)]
    Rejected(Box<Rejection>),
}

impl From<Rejection> for SinkError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(Box::new(rejection))
    }
}

/// What went wrong, in words, with the broker client's (or the disk's)
/// error it came from as its [`source`](Error::source). Cheap to clone:
/// one outcome may answer many deliveries.
#[derive(Debug, Clone)]
pub struct Problem {
    message: String,
    cause: Option<Arc<dyn Error + Send + Sync>>,
    /// What to change, shown last.
    hint: Option<&'static str>,
}

impl Problem {
    /// `message`, caused by `cause` (shown after it: `message: cause`).
    pub fn caused_by(
        message: impl Into<String>,
        cause: impl Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            cause: Some(Arc::new(cause)),
            hint: None,
        }
    }

    /// The same, with what the user should change said last.
    pub fn with_hint(self, hint: &'static str) -> Self {
        Self {
            hint: Some(hint),
            ..self
        }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Self {
            message,
            cause: None,
            hint: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cause, self.message.is_empty()) {
            (Some(cause), true) => write!(f, "{cause}")?,
            (Some(cause), false) => write!(f, "{}: {cause}", self.message)?,
            (None, _) => f.write_str(&self.message)?,
        }
        match self.hint {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

impl Error for Problem {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn Error + 'static))
    }
}

/// A broker client.
pub trait Sink: Send + 'static {
    /// A short name for logs (`kafka`, `rabbitmq`, `stdout`).
    fn name(&self) -> &'static str;

    /// Where `event` goes (the Kafka topic, the RabbitMQ exchange), for its
    /// span's `messaging.destination.name`. Borrowed: asked for every event.
    fn destination(&self, event: &Event) -> &str;

    /// Hands `event` to the client. Resolves once it is on its way (buffered
    /// or written), with a future for the broker's confirmation. Events sent
    /// one after another are delivered in that order.
    fn send(&mut self, event: &Event) -> impl Future<Output = Result<Delivery, SinkError>> + Send;

    /// Called when the publisher has sent every event it has for now and
    /// is about to wait: a sink that gathers events (stdout) hands them on
    /// here, so a burst costs one hand-off, not one per event. Deliveries
    /// of gathered events resolve only after this.
    fn flush(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Called after a [`SinkError::Retryable`] error, before events are sent
    /// again: reconnect if needed. Resolves when sending may be tried again;
    /// an `Err` means "not yet", and the publisher backs off and calls again.
    fn recover(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Flushes buffers and closes the connection (shutdown).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// A delivery that is already settled (for sinks that write synchronously).
pub fn settled(result: Result<(), SinkError>) -> Delivery {
    Box::pin(std::future::ready(result))
}
