//! `--rate`: events per second, at most.

use std::time::Duration;

use tokio::time::Instant;

/// Spaces sends `1 / rate` seconds apart (`--rate`).
pub(super) struct Pacer {
    rate: Option<f64>,
    start: Instant,
    sent: u64,
}

impl Pacer {
    pub(super) fn new(rate: Option<f64>) -> Self {
        Self {
            rate: rate.filter(|rate| *rate > 0.0),
            start: Instant::now(),
            sent: 0,
        }
    }

    pub(super) async fn wait(&mut self) {
        if let Some(rate) = self.rate {
            let due = self.start + Duration::from_secs_f64(self.sent as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        self.sent += 1;
    }
}
