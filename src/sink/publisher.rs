//! The loop that moves events from the spool to a [`Sink`], in order, with
//! many deliveries in flight, and retries what the broker did not confirm.
//! An event leaves the spool ([`SpoolReader::complete`]) only once the broker
//! confirmed it or it was written to the dead-letter file.
//!
//! Ordering: events are sent in queue order and their confirmations are
//! read in the same order. After a retryable error the publisher stops
//! sending, waits for every delivery in flight, and puts back (in order, ahead
//! of everything not yet sent) each event that failed *and* each later event
//! with the same key as a failed one. So one key's events reach the broker in
//! their original order, at least once; other keys' confirmed events are not
//! sent twice.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use tracing::{debug, error, info, warn};

use time::OffsetDateTime;

use super::dead_letter::DeadLetter;
use super::settings::SinkSettings;
use super::{refusal, settled, Delivery, Rejection, Sink, SinkError};
use crate::backoff::Backoff;
use crate::spool::{SpoolReader, Spooled, CHECKPOINT_INTERVAL};
use crate::stats::{EventOutcome, Stats};
use crate::telemetry::RateLimit;
use crate::traces;

/// Runs until the spool's writer has stopped and every event in the spool
/// was handled. The caller bounds shutdown with a deadline; what is not
/// confirmed by then stays in the spool for the next start.
pub async fn run<S: Sink>(
    mut sink: S,
    mut queue: SpoolReader,
    dead_letter: DeadLetter,
    settings: SinkSettings,
    stats: Arc<Stats>,
) {
    let mut state = State {
        pending: VecDeque::new(),
        failed: None,
        in_flight: FuturesOrdered::new(),
        sent: VecDeque::new(),
        stats,
        sink_name: sink.name(),
        reject_log: RateLimit::default(),
        dead_letter,
        dead_letter_due: VecDeque::new(),
        dead_letter_log: RateLimit::default(),
    };
    let mut backoff = recover_backoff(&settings);
    let mut queue_done = false;
    let mut last_recover_error: Option<String> = None;
    let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if state.failed.is_some() && state.in_flight.is_empty() {
            tokio::time::sleep(backoff.next_delay()).await;
            match sink.recover().await {
                Ok(()) => {
                    state.resume();
                    backoff.reset();
                    last_recover_error = None;
                }
                // Once per cause, not at every retry.
                Err(err) if last_recover_error.as_deref() != Some(&err.to_string()) => {
                    warn!(sink = sink.name(), cause = %err, "broker still unavailable; will retry (logged again only if the cause changes)");
                    last_recover_error = Some(err.to_string());
                }
                Err(err) => debug!(sink = sink.name(), cause = %err, "broker still unavailable"),
            }
            continue;
        }
        if queue_done
            && state.pending.is_empty()
            && state.in_flight.is_empty()
            && state.dead_letter_due.is_empty()
        {
            break;
        }
        // Deliveries already settled first, as the biased select! below:
        // a failure stops sending before more of its key go out.
        if let Some(Some(result)) = state.in_flight.next().now_or_never() {
            state.settle(&mut queue, result);
            continue;
        }
        let can_send = state.failed.is_none() && state.in_flight.len() < settings.max_in_flight;
        if can_send {
            if let Some(item) = state.pending.pop_front() {
                state.send(&mut sink, item).await;
                continue;
            }
            // Everything the spool has ready now, before waiting.
            if !queue_done {
                match queue.recv().now_or_never() {
                    Some(Some(item)) => {
                        state.send(&mut sink, item).await;
                        continue;
                    }
                    Some(None) => queue_done = true,
                    None => {}
                }
            }
        }
        // About to wait: hand on what the sink gathered.
        sink.flush().await;
        tokio::select! {
            biased;
            Some(result) = state.in_flight.next() => state.settle(&mut queue, result),
            written = state.dead_letter.written(), if state.dead_letter.is_writing() => {
                state.dead_letter_written(&mut queue, written);
            }
            item = queue.recv(), if can_send && !queue_done => match item {
                Some(item) => state.send(&mut sink, item).await,
                None => queue_done = true,
            },
            _ = checkpoint.tick() => {
                state.write_dead_letter();
                queue.checkpoint_if_moved();
            }
            // Unreachable by construction (some branch is always enabled);
            // present so an oversight can never panic the publisher.
            else => tokio::task::yield_now().await,
        }
    }
    queue.checkpoint_and_wait().await;
    sink.close().await;
    info!(
        sink = state.sink_name,
        "publisher stopped; every spooled event was handled"
    );
}

struct State {
    /// Events to send before taking more from the spool, in order.
    pending: VecDeque<Spooled>,
    /// Set between a retryable error and the sink's recovery.
    failed: Option<Failure>,
    /// The deliveries of the events sent, in the order they were sent.
    in_flight: FuturesOrdered<Delivery>,
    /// Those events, in the same order, with when each was handed to the
    /// sink: the next delivery to settle is the front one's. (Kept out of
    /// the futures, so settling does not move each event through them.)
    sent: VecDeque<(Spooled, Instant)>,
    stats: Arc<Stats>,
    sink_name: &'static str,
    reject_log: RateLimit,
    dead_letter: DeadLetter,
    /// Refused events whose dead-letter line is not written yet, in order,
    /// with the refusal and when it came.
    dead_letter_due: VecDeque<(Spooled, Rejection, OffsetDateTime)>,
    dead_letter_log: RateLimit,
}

/// Events to send again once the sink has recovered.
#[derive(Default)]
struct Failure {
    resend: VecDeque<Spooled>,
    keys: HashSet<String>,
}

impl State {
    async fn send<S: Sink>(&mut self, sink: &mut S, mut item: Spooled) {
        item.attempts += 1;
        if item.attempts == 1 {
            item.span =
                traces::send_span(&item.event, self.sink_name, sink.destination(&item.event));
        }
        match sink.send(&item.event).await {
            Ok(delivery) => self.push_in_flight(item, delivery),
            Err(SinkError::Retryable(cause)) => {
                item.first_failed_at
                    .get_or_insert_with(OffsetDateTime::now_utc);
                traces::delivery_failed(&item.span, item.attempts, &cause);
                warn!(sink = self.sink_name, %cause, "broker unavailable; holding events until it is back");
                self.stats.broker_up.set(0);
                self.stats.events(self.sink_name, EventOutcome::Failed, 1);
                // Everything in flight was sent before this event; it goes
                // back to the head of what is still to send.
                self.failed.get_or_insert_with(Failure::default);
                self.pending.push_front(item);
            }
            // Settled in order with the rest, so it leaves the spool in order.
            Err(rejected) => self.push_in_flight(item, settled(Err(rejected))),
        }
    }

    fn push_in_flight(&mut self, item: Spooled, delivery: Delivery) {
        self.in_flight.push_back(delivery);
        self.sent.push_back((item, Instant::now()));
    }

    /// The oldest delivery in flight settled with `result`.
    fn settle(&mut self, queue: &mut SpoolReader, result: Result<(), SinkError>) {
        // One event was queued with each delivery, in the same order.
        debug_assert_eq!(self.sent.len(), self.in_flight.len() + 1);
        let Some((mut item, sent)) = self.sent.pop_front() else {
            error!(
                sink = self.sink_name,
                "a delivery settled with no event sent; this is a bug"
            );
            return;
        };
        if result.is_ok() {
            self.stats
                .publish_seconds
                .observe(sent.elapsed().as_secs_f64());
        }
        match (result, &mut self.failed) {
            (Err(SinkError::Rejected(rejection)), _) => {
                self.log_rejected(&item, &rejection);
                traces::dead_lettered(
                    &item.span,
                    rejection.class.as_str(),
                    rejection.code.as_deref(),
                );
                self.dead_letter_due
                    .push_back((item, *rejection, OffsetDateTime::now_utc()));
                self.write_dead_letter();
            }
            (Err(SinkError::Retryable(cause)), failed) => {
                item.first_failed_at
                    .get_or_insert_with(OffsetDateTime::now_utc);
                traces::delivery_failed(&item.span, item.attempts, &cause);
                self.stats.events(self.sink_name, EventOutcome::Failed, 1);
                if failed.is_none() {
                    warn!(sink = self.sink_name, %cause, "broker did not confirm an event; will send it again");
                    self.stats.broker_up.set(0);
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
            (Ok(()), _) => {
                if self.stats.refusal().is_some() {
                    refusal::accepted(&self.stats, self.sink_name);
                }
                self.stats
                    .events(self.sink_name, EventOutcome::Published, 1);
                queue.complete(item.position);
            }
        }
    }

    /// The sink has recovered: what failed goes first, then the rest.
    fn resume(&mut self) {
        if let Some(failure) = self.failed.take() {
            self.stats.broker_up.set(1);
            self.stats.events(
                self.sink_name,
                EventOutcome::Retried,
                failure.resend.len() as u64,
            );
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

    /// Starts writing the oldest refused event waiting for the dead-letter
    /// file, unless a line is being written; each leaves the spool once its
    /// line is synced ([`State::dead_letter_written`]).
    fn write_dead_letter(&mut self) {
        if let Some((item, rejection, at)) = self.dead_letter_due.front() {
            let context = rejection.dead_letter_context(
                self.sink_name,
                item.attempts,
                item.first_failed_at.unwrap_or(*at),
                *at,
            );
            self.dead_letter.start(item.event.clone(), context);
        }
    }

    /// A dead-letter line was written, or failed. One that failed stays (in
    /// the spool and first in line) and is tried again at the next tick
    /// (every [`CHECKPOINT_INTERVAL`]), while other events keep flowing to
    /// the broker: only the acked position waits for it.
    fn dead_letter_written(&mut self, queue: &mut SpoolReader, written: std::io::Result<()>) {
        match written {
            Ok(()) => {
                if let Some((item, _, _)) = self.dead_letter_due.pop_front() {
                    self.stats
                        .events(self.sink_name, EventOutcome::DeadLettered, 1);
                    queue.complete(item.position);
                }
                self.write_dead_letter();
            }
            Err(err) => {
                if let Some(suppressed) = self.dead_letter_log.allow() {
                    let event_id = self
                        .dead_letter_due
                        .front()
                        .map(|(item, _, _)| item.event.id.as_str());
                    error!(event_id, waiting = self.dead_letter_due.len(), cause = %err, suppressed, "cannot write the dead-letter file; the event stays in the spool and the write is tried again (segments from this event on are kept until then)");
                }
            }
        }
    }

    /// Logs a refused event (rate-limited).
    fn log_rejected(&mut self, item: &Spooled, rejection: &Rejection) {
        let event = &item.event;
        if let Some(suppressed) = self.reject_log.allow() {
            error!(
                sink = self.sink_name,
                event_id = %event.id,
                key = %event.key,
                event_type = event.event_type(),
                class = rejection.class.as_str(),
                cause = %rejection,
                suppressed,
                "broker refused the event for good; it goes to the dead-letter file (at most one such line per second; `suppressed` counts the others)"
            );
        }
    }
}

/// Waits between tries to recover the sink: `sink.retry_initial_ms`
/// doubling to `sink.retry_max_ms`, jittered so replicas that lost the
/// broker together do not retry in step.
fn recover_backoff(settings: &SinkSettings) -> Backoff {
    Backoff::new(
        Duration::from_millis(settings.retry_initial_ms),
        Duration::from_millis(settings.retry_max_ms),
    )
    .jittered()
}

#[cfg(test)]
mod tests;
