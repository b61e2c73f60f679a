//! Disk work run off the async runtime: a [`Job`] is at most one closure on
//! tokio's blocking pool, whose result the owner awaits (in a `select!`
//! branch, or at once) without ever blocking a runtime thread.

use tokio::task::{JoinError, JoinHandle};

/// At most one piece of blocking work in progress, and its result.
#[derive(Debug)]
pub struct Job<T>(Option<JoinHandle<T>>);

impl<T> Default for Job<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Send + 'static> Job<T> {
    /// Whether work was started and its result not yet taken.
    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    /// Starts `work` if no job is running; returns whether it started.
    pub fn try_start(&mut self, work: impl FnOnce() -> T + Send + 'static) -> bool {
        if self.is_running() {
            return false;
        }
        self.0 = Some(tokio::task::spawn_blocking(work));
        true
    }

    /// The running job's result once it ends; never ready when none runs
    /// (guard a `select!` branch with [`is_running`](Self::is_running)).
    /// Cancel-safe: dropped before the end, the job goes on and the next
    /// call waits for the same result. An error means the work panicked.
    pub async fn finish(&mut self) -> Result<T, JoinError> {
        let Some(handle) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        let result = handle.await;
        self.0 = None;
        result
    }

    /// The result if the job has ended, without waiting.
    pub fn try_finish(&mut self) -> Option<Result<T, JoinError>> {
        if !self.0.as_ref()?.is_finished() {
            return None;
        }
        futures_util::FutureExt::now_or_never(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_job_at_a_time_and_its_result_survives_a_cancelled_wait() {
        let mut job = Job::default();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        assert!(job.try_start(move || {
            wait.recv().ok();
            7
        }));
        assert!(!job.try_start(|| 8), "a second job waits for the first");
        assert!(job.try_finish().is_none(), "still running");
        // A wait dropped half-way leaves the job and its result in place.
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(10), job.finish());
        assert!(cancelled.await.is_err());
        go.send(()).unwrap();
        assert_eq!(job.finish().await.unwrap(), 7);
        assert!(!job.is_running());
        assert!(job.try_start(|| 9));
        assert_eq!(job.finish().await.unwrap(), 9);
    }
}
