//! The loop that moves events from the queue to a [`Sink`], in order, with
//! many deliveries in flight, and retries what the broker did not confirm.
//!
//! Ordering: events are sent in queue order and their confirmations are
//! read in the same order. After a retryable error the publisher stops
//! sending, waits for every delivery in flight, and puts back (in order, ahead
//! of everything not yet sent) each event that failed *and* each later event
//! with the same key as a failed one. So one key's events reach the broker in
//! their original order, at least once; other keys' confirmed events are not
//! sent twice.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use tracing::{error, info, warn};

use super::{Delivery, Sink, SinkError};
use crate::config::SinkSettings;
use crate::queue::{QueueReceiver, Queued};
use crate::stats::Stats;
use crate::telemetry::RateLimit;

type InFlight =
    FuturesOrdered<std::pin::Pin<Box<dyn Future<Output = (Queued, Result<(), SinkError>)> + Send>>>;

/// Runs until `stop` has fired and every queued event has been confirmed
/// (or rejected). The caller bounds shutdown with a deadline.
pub async fn run<S: Sink>(
    mut sink: S,
    mut queue: QueueReceiver,
    settings: SinkSettings,
    stats: Arc<Stats>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut state = State {
        pending: VecDeque::new(),
        failed: None,
        in_flight: FuturesOrdered::new(),
        stats,
        sink_name: sink.name(),
        reject_log: RateLimit::default(),
    };
    let mut backoff = Backoff::new(&settings);
    let mut stopping = false;
    let mut queue_done = false;
    loop {
        if state.failed.is_some() && state.in_flight.is_empty() {
            tokio::time::sleep(backoff.next_delay()).await;
            match sink.recover().await {
                Ok(()) => {
                    state.resume();
                    backoff.reset();
                }
                Err(err) => {
                    warn!(sink = sink.name(), cause = %err, "broker still unavailable; will retry")
                }
            }
            continue;
        }
        if queue_done && state.pending.is_empty() && state.in_flight.is_empty() {
            break;
        }
        let can_send = state.failed.is_none() && state.in_flight.len() < settings.max_in_flight;
        if can_send {
            if let Some(item) = state.pending.pop_front() {
                state.send(&mut sink, item).await;
                continue;
            }
        }
        tokio::select! {
            biased;
            () = &mut stop, if !stopping => {
                stopping = true;
                // New callbacks are refused from now on; what is queued drains.
                queue.close();
                info!(sink = sink.name(), queued = queue.len(), in_flight = state.in_flight.len(), "draining events to the broker");
            }
            Some((item, result)) = state.in_flight.next() => state.settle(item, result),
            item = queue.recv(), if can_send && !queue_done => match item {
                Some(item) => state.send(&mut sink, item).await,
                None => queue_done = true,
            },
            // Unreachable by construction (some branch is always enabled);
            // present so an oversight can never panic the publisher.
            else => tokio::task::yield_now().await,
        }
    }
    sink.close().await;
    info!(
        sink = state.sink_name,
        "publisher stopped; every accepted event was handled"
    );
}

struct State {
    /// Events to send before taking more from the queue, in order.
    pending: VecDeque<Queued>,
    /// Set between a retryable error and the sink's recovery.
    failed: Option<Failure>,
    in_flight: InFlight,
    stats: Arc<Stats>,
    sink_name: &'static str,
    reject_log: RateLimit,
}

/// Events to send again once the sink has recovered.
#[derive(Default)]
struct Failure {
    resend: VecDeque<Queued>,
    keys: HashSet<String>,
}

impl State {
    async fn send<S: Sink>(&mut self, sink: &mut S, item: Queued) {
        match sink.send(&item.event).await {
            Ok(delivery) => self.in_flight.push_back(Box::pin(confirm(item, delivery))),
            Err(SinkError::Retryable(cause)) => {
                warn!(sink = self.sink_name, %cause, "broker unavailable; holding events until it is back");
                // Everything in flight was sent before this event; it goes
                // back to the head of what is still to send.
                self.failed.get_or_insert_with(Failure::default);
                self.pending.push_front(item);
            }
            Err(SinkError::Rejected(cause)) => self.reject(item, &cause),
        }
    }

    fn settle(&mut self, item: Queued, result: Result<(), SinkError>) {
        match (result, &mut self.failed) {
            (Err(SinkError::Rejected(cause)), _) => self.reject(item, &cause),
            (Err(SinkError::Retryable(cause)), failed) => {
                if failed.is_none() {
                    warn!(sink = self.sink_name, %cause, "broker did not confirm an event; will send it again");
                }
                let failure = failed.get_or_insert_with(Failure::default);
                failure.keys.insert(item.event.key.clone());
                failure.resend.push_back(item);
            }
            (Ok(()), Some(failure)) if failure.keys.contains(&item.event.key) => {
                // Confirmed, but after an earlier event of its key failed:
                // send it again after that one to keep the key's order.
                failure.resend.push_back(item);
            }
            (Ok(()), _) => Stats::add(&self.stats.events_published, 1),
        }
    }

    /// The sink has recovered: what failed goes first, then the rest.
    fn resume(&mut self) {
        if let Some(failure) = self.failed.take() {
            Stats::add(&self.stats.events_retried, failure.resend.len() as u64);
            info!(
                sink = self.sink_name,
                resending = failure.resend.len(),
                "broker is back; sending again"
            );
            for item in failure.resend.into_iter().rev() {
                self.pending.push_front(item);
            }
        }
    }

    fn reject(&self, item: Queued, cause: &str) {
        Stats::add(&self.stats.events_rejected, 1);
        if let Some(suppressed) = self.reject_log.allow() {
            error!(
                sink = self.sink_name,
                event_id = %item.event.id,
                key = %item.event.key,
                event_type = item.event.event_type(),
                %cause,
                suppressed,
                "broker refused the event for good; it is NOT published (at most one such line per second; `suppressed` counts the others)"
            );
        }
    }
}

async fn confirm(item: Queued, delivery: Delivery) -> (Queued, Result<(), SinkError>) {
    let result = delivery.await;
    (item, result)
}

/// Exponential backoff with full jitter, so replicas do not retry in step.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(settings: &SinkSettings) -> Self {
        let initial = Duration::from_millis(settings.retry_initial_ms);
        Self {
            initial,
            max: Duration::from_millis(settings.retry_max_ms),
            current: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.current.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.current = (self.current * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{CallbackKind, Event};
    use crate::queue;
    use std::sync::Mutex;

    /// A sink whose deliveries fail while `down` is set.
    #[derive(Clone, Default)]
    struct Flaky {
        log: Arc<Mutex<Vec<String>>>,
        fail_next: Arc<Mutex<usize>>,
        reject_id: Option<&'static str>,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
            if self.reject_id == Some(event.id.as_str()) {
                return Ok(super::super::settled(Err(SinkError::Rejected(
                    "too large".into(),
                ))));
            }
            let mut fail = self.fail_next.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Ok(super::super::settled(Err(SinkError::Retryable(
                    "down".into(),
                ))));
            }
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:{}", event.key, event.id));
            Ok(super::super::settled(Ok(())))
        }
        async fn recover(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        async fn close(self) {}
    }

    fn event(key: &str, id: usize) -> Event {
        Event {
            id: id.to_string(),
            kind: CallbackKind::GroupMessageSent,
            source: Arc::from("s"),
            time: String::new(),
            key: key.into(),
            data: Default::default(),
        }
    }

    async fn publish_all(sink: Flaky, events: Vec<Event>) -> Arc<Stats> {
        let (tx, rx) = queue::bounded(100, 1 << 20);
        for e in events {
            tx.try_push(e).unwrap();
        }
        let stats = Arc::new(Stats::default());
        let settings = SinkSettings {
            max_in_flight: 4,
            retry_initial_ms: 1,
            ..SinkSettings::default()
        };
        run(
            sink,
            rx,
            settings,
            Arc::clone(&stats),
            std::future::ready(()),
        )
        .await;
        stats
    }

    #[tokio::test(start_paused = true)]
    async fn failed_events_are_resent_in_key_order() {
        let sink = Flaky::default();
        *sink.fail_next.lock().unwrap() = 2;
        let events = (0..6)
            .map(|i| event(if i % 2 == 0 { "a" } else { "b" }, i))
            .collect();
        let stats = publish_all(sink.clone(), events).await;
        let log = sink.log.lock().unwrap().clone();
        for key in ["a", "b"] {
            let ids: Vec<_> = log.iter().filter(|l| l.starts_with(key)).collect();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(ids, sorted, "key {key} out of order or duplicated: {log:?}");
            assert_eq!(ids.len(), 3, "{log:?}");
        }
        let snap = stats.snapshot();
        assert_eq!(snap.events_published, 6);
        assert_eq!(snap.events_retried, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_events_are_counted_not_retried() {
        let sink = Flaky {
            reject_id: Some("1"),
            ..Flaky::default()
        };
        let stats = publish_all(sink.clone(), (0..3).map(|i| event("a", i)).collect()).await;
        assert_eq!(*sink.log.lock().unwrap(), ["a:0", "a:2"]);
        assert_eq!(stats.snapshot().events_rejected, 1);
        assert_eq!(stats.snapshot().events_published, 2);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let settings = SinkSettings {
            retry_initial_ms: 100,
            retry_max_ms: 400,
            ..SinkSettings::default()
        };
        let mut backoff = Backoff::new(&settings);
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert!((50..=100).contains(&delays[0]), "{delays:?}");
        assert!((200..=400).contains(&delays[4]), "{delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
