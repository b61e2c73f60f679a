//! Stage 3: the bounded in-memory queue between the ack and the broker.
//!
//! Ingress [`QueueSender::try_push`]es an event and acks at once; the sink's
//! publisher takes events out in order. Two bounds hold together: a number of
//! events (`queue.max_events`) and a byte budget (`queue.max_bytes`). A byte
//! permit travels with its event and is given back only when the broker has
//! confirmed it, so events queued *and* in flight are bounded. When either
//! bound is reached `try_push` fails at once and the callback is answered 503:
//! the bridge never waits for the broker and never grows without bound.
//!
//! Events in this queue are lost if the process crashes; a durable spool
//! replaces it in a later version.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::normalize::Event;

/// An event with its share of both budgets.
#[derive(Debug)]
pub struct Queued {
    /// The event to publish.
    pub event: Event,
    /// Returned to the budgets when this value is dropped, i.e. after the
    /// broker confirmed the event (or it was given up).
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// A bound is reached: the broker is slower than the callbacks, or down.
    #[error("the bridge's event queue is full ({events} events queued or awaiting broker confirmation, at most {max_events} events / {max_bytes} bytes); the broker is slow or unreachable")]
    Full {
        /// Events currently held.
        events: usize,
        /// `queue.max_events`.
        max_events: usize,
        /// `queue.max_bytes`.
        max_bytes: usize,
    },
    /// The publisher has stopped (shutdown).
    #[error("the bridge is shutting down")]
    Closed,
}

/// Ingress's end. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QueueSender {
    // Unbounded as a channel: `slots` bounds it.
    events: mpsc::UnboundedSender<Queued>,
    slots: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_events: usize,
    max_bytes: usize,
}

/// The publisher's end.
#[derive(Debug)]
pub struct QueueReceiver {
    events: mpsc::UnboundedReceiver<Queued>,
}

/// A queue holding at most `max_events` events and `max_bytes` bytes,
/// counting both queued and in-flight events.
pub fn bounded(max_events: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    // Semaphore::new panics above MAX_PERMITS: clamp huge settings.
    let max_events = max_events.min(Semaphore::MAX_PERMITS);
    let max_bytes = max_bytes.min(Semaphore::MAX_PERMITS);
    let sender = QueueSender {
        events: tx,
        slots: Arc::new(Semaphore::new(max_events)),
        bytes: Arc::new(Semaphore::new(max_bytes)),
        max_events,
        max_bytes,
    };
    (sender, QueueReceiver { events: rx })
}

impl QueueSender {
    /// Queues `event`, or says at once why not.
    pub fn try_push(&self, event: Event) -> Result<(), PushError> {
        if self.events.is_closed() {
            return Err(PushError::Closed);
        }
        // try_acquire_many takes a u32; an event larger than the whole budget
        // is clamped to it, so it can still pass when the queue is empty
        // (config validation keeps max_bytes >= max_body_bytes anyway).
        let size = u32::try_from(event.size().min(self.max_bytes)).unwrap_or(u32::MAX);
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| self.full())?;
        let bytes = Arc::clone(&self.bytes)
            .try_acquire_many_owned(size)
            .map_err(|_| self.full())?;
        let queued = Queued {
            event,
            _slot: slot,
            _bytes: bytes,
        };
        self.events.send(queued).map_err(|_| PushError::Closed)
    }

    /// Events queued or awaiting broker confirmation.
    pub fn held(&self) -> usize {
        self.max_events - self.slots.available_permits()
    }

    fn full(&self) -> PushError {
        PushError::Full {
            events: self.held(),
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
    }
}

impl QueueReceiver {
    /// The next event; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<Queued> {
        self.events.recv().await
    }

    /// Refuses new events from now on; those already queued can still be
    /// received.
    pub fn close(&mut self) {
        self.events.close();
    }

    /// Events waiting to be taken out.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::CallbackKind;

    fn event(data_len: usize) -> Event {
        Event {
            id: "id".into(),
            kind: CallbackKind::GroupMessageSent,
            source: Arc::from("s"),
            time: String::new(),
            key: "k".into(),
            data: vec![b'x'; data_len].into(),
        }
    }

    #[tokio::test]
    async fn event_bound_refuses_then_recovers() {
        let (tx, mut rx) = bounded(2, 1 << 20);
        tx.try_push(event(1)).unwrap();
        tx.try_push(event(1)).unwrap();
        let err = tx.try_push(event(1)).unwrap_err();
        assert!(matches!(err, PushError::Full { events: 2, .. }), "{err:?}");
        let in_flight = rx.recv().await.unwrap();
        // Taken out but not yet confirmed: still counts.
        assert!(matches!(tx.try_push(event(1)), Err(PushError::Full { .. })));
        assert_eq!(tx.held(), 2);
        drop(in_flight);
        tx.try_push(event(1)).unwrap();
    }

    #[tokio::test]
    async fn byte_budget_is_held_until_the_event_is_dropped() {
        let one = event(1000).size();
        let (tx, mut rx) = bounded(100, one * 2);
        tx.try_push(event(1000)).unwrap();
        tx.try_push(event(1000)).unwrap();
        assert!(matches!(
            tx.try_push(event(1000)),
            Err(PushError::Full { .. })
        ));
        // Taken out but not yet confirmed: still counts.
        let in_flight = rx.recv().await.unwrap();
        assert!(matches!(
            tx.try_push(event(1000)),
            Err(PushError::Full { .. })
        ));
        drop(in_flight);
        tx.try_push(event(1000)).unwrap();
    }

    #[tokio::test]
    async fn closed_queue_drains_then_ends() {
        let (tx, mut rx) = bounded(10, 1 << 20);
        tx.try_push(event(1)).unwrap();
        rx.close();
        assert_eq!(tx.try_push(event(1)), Err(PushError::Closed));
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
    }
}
