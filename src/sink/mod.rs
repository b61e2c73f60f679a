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
//!   logged with its id and counted, never silently dropped.

pub mod kafka;
pub mod publisher;
pub mod rabbitmq;
pub mod refusal;
pub mod settings;
pub mod stdout;

use std::future::Future;
use std::pin::Pin;

use crate::normalize::Event;

/// Resolves when the broker confirmed (or refused) one event.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// What went wrong with a delivery.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Temporary (connection lost, broker unavailable): send again later.
    #[error("{0}")]
    Retryable(String),
    /// The broker refused this event for good (e.g. too large, unroutable).
    #[error("{0}")]
    Rejected(String),
}

/// A broker client.
pub trait Sink: Send + 'static {
    /// A short name for logs (`kafka`, `rabbitmq`, `stdout`).
    fn name(&self) -> &'static str;

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
