//! Exponential backoff: the one way the bridge waits between tries of
//! something that failed (the publisher recovering a sink, a sink waiting
//! for its broker at startup, the spool reader retrying a read).
//!
//! A few lines of our own rather than a crate: every caller drives its own
//! loop (some keep the deadline across a cancelled `select!`), so all they
//! need is the next delay and a reset, and the delays stay exactly the
//! documented ones (`sink.retry_initial_ms` doubling to
//! `sink.retry_max_ms`).

use std::time::Duration;

/// Delays that start at `initial` and double up to `max`; [`reset`]
/// starts over. With [`jittered`], each delay is drawn from the upper half
/// of the step (`[step / 2, step)`), so replicas that failed together do
/// not retry in step.
///
/// [`reset`]: Backoff::reset
/// [`jittered`]: Backoff::jittered
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
    jitter: bool,
}

impl Backoff {
    /// `initial`, then twice that, ... up to `max`, without jitter.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            step: initial,
            jitter: false,
        }
    }

    /// The same delays, each drawn from the upper half of its step.
    pub(crate) fn jittered(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// How long to wait before the next try; the step after it doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = if self.jitter {
            self.step.mul_f64(0.5 + fastrand::f64() / 2.0)
        } else {
            self.step
        };
        self.step = self.step.saturating_mul(2).min(self.max);
        delay
    }

    /// A try succeeded: the next failure waits `initial` again.
    pub(crate) fn reset(&mut self) {
        self.step = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_max_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(10 * MS, 45 * MS);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [10 * MS, 20 * MS, 40 * MS, 45 * MS]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 10 * MS);
        let mut constant = Backoff::new(1000 * MS, 1000 * MS);
        assert_eq!(constant.next_delay(), constant.next_delay());
    }

    #[test]
    fn the_largest_settings_do_not_overflow() {
        // sink.retry_max_ms = u64::MAX is accepted by the settings.
        let max = Duration::from_millis(u64::MAX);
        let mut backoff = Backoff::new(max / 2 + MS, max).jittered();
        for _ in 0..3 {
            assert!(backoff.next_delay() <= max);
        }
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_each_step() {
        let mut backoff = Backoff::new(100 * MS, 400 * MS).jittered();
        for step in [100, 200, 400, 400] {
            let delay = backoff.next_delay();
            assert!(delay >= step * MS / 2 && delay < step * MS, "{delay:?}");
        }
    }
}
