//! The spool's sync thread: `fdatasync` of what the writer thread wrote,
//! per batch in `durable` mode (answering the appends waiting for it),
//! every `spool.sync_interval_ms` in the other modes, and when a segment is
//! closed. See [`super::writer_thread`] for how the two threads share the work.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::error;

use super::append::{answer, AppendError, Done};
use super::disk::SharedDisk;
use super::settings::{AckMode, SpoolSettings};
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// Work for the sync thread, in log order.
enum SyncJob {
    /// Sync `file`, then answer `waiting` (a `durable` batch).
    Batch { file: Arc<File>, waiting: Vec<Done> },
    /// The writer moved from `old` (sync it once more) to `new`.
    Closed { old: Arc<File>, new: Arc<File> },
}

/// What the writer thread and the sync thread share.
struct Shared {
    stats: Arc<Stats>,
    disk: SharedDisk,
    /// A sync failed: the writer moves to a new segment.
    failed: AtomicBool,
    /// `durable` batches handed to the sync thread and not yet synced.
    handed: AtomicUsize,
    /// Written since the last timed sync (`written` and `memory` modes).
    dirty: AtomicBool,
    error_log: RateLimit,
}

impl Shared {
    fn sync(&self, file: &File) -> Result<(), AppendError> {
        Stats::add(&self.stats.spool_syncs, 1);
        self.disk.sync(file).map_err(|err| {
            if let Some(suppressed) = self.error_log.allow() {
                error!(cause = %err, suppressed, "spool sync failed; callbacks waiting for it are answered 503 and writing moves to a new segment");
            }
            self.failed.store(true, Ordering::Release);
            AppendError::Io(Arc::new(err))
        })
    }
}

/// A batch the writer thread syncs itself ([`Syncer::sync`]).
pub(super) struct SyncNow {
    shared: Arc<Shared>,
    file: Arc<File>,
    waiting: Vec<Done>,
}

impl SyncNow {
    /// Syncs, then answers the appends waiting.
    pub(super) fn run(self) {
        answer(self.waiting, &self.shared.sync(&self.file));
    }
}

/// The writer thread's handle on the sync thread.
pub(super) struct Syncer {
    jobs: mpsc::Sender<SyncJob>,
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

impl Syncer {
    pub(super) fn start(
        settings: &SpoolSettings,
        file: Arc<File>,
        stats: Arc<Stats>,
        disk: &SharedDisk,
    ) -> std::io::Result<Self> {
        let (jobs, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            stats,
            disk: Arc::clone(disk),
            failed: AtomicBool::new(false),
            handed: AtomicUsize::new(0),
            dirty: AtomicBool::new(false),
            error_log: RateLimit::default(),
        });
        let mut thread = SyncThread {
            jobs: receiver,
            current: file,
            // `durable` syncs every batch on its own: no timer.
            interval: (settings.ack != AckMode::Durable)
                .then(|| Duration::from_millis(settings.sync_interval_ms)),
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("spool-sync".to_owned())
            .spawn(move || thread.run())?;
        Ok(Self {
            jobs,
            shared,
            thread,
        })
    }

    /// Syncs a written `durable` batch, then answers `waiting`. While
    /// more appends are queued (`more`) or a sync is in progress, the sync
    /// thread does it and the writer goes on with the next batch; otherwise
    /// there is nothing to overlap and the writer thread syncs it itself (a
    /// hand-off fewer for the callbacks waiting): the sync it returns, run
    /// once the writer's lock is released, so no async worker waits on it.
    #[must_use = "a returned sync must be run, or its appends are never answered"]
    pub(super) fn sync(&self, file: Arc<File>, waiting: Vec<Done>, more: bool) -> Option<SyncNow> {
        if !more && self.shared.handed.load(Ordering::Acquire) == 0 {
            return Some(SyncNow {
                shared: Arc::clone(&self.shared),
                file,
                waiting,
            });
        }
        self.shared.handed.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(SyncJob::Batch { waiting, .. })) =
            self.jobs.send(SyncJob::Batch { file, waiting })
        {
            // Only if the sync thread died: nothing was synced.
            answer(waiting, &Err(AppendError::Closed));
        }
        None
    }

    pub(super) fn written(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    pub(super) fn closed(&self, old: Arc<File>, new: Arc<File>) {
        let _ = self.jobs.send(SyncJob::Closed { old, new });
    }

    /// A sync failed, and the writer has not yet moved to a new segment.
    pub(super) fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    pub(super) fn take_failure(&self) -> bool {
        self.shared.failed.swap(false, Ordering::AcqRel)
    }

    /// Syncs `file` one last time and waits for the thread to stop.
    pub(super) fn finish(self, file: Arc<File>) {
        let _ = self.jobs.send(SyncJob::Closed {
            old: Arc::clone(&file),
            new: file,
        });
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

struct SyncThread {
    jobs: mpsc::Receiver<SyncJob>,
    /// The segment being written (timed syncs cover it).
    current: Arc<File>,
    interval: Option<Duration>,
    shared: Arc<Shared>,
}

impl SyncThread {
    fn run(&mut self) {
        let mut last = Instant::now();
        loop {
            let first = match self.interval {
                Some(interval) => {
                    let wait = interval.saturating_sub(last.elapsed());
                    match self.jobs.recv_timeout(wait) {
                        Ok(job) => Some(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                },
            };
            // Everything handed over so far: each file synced once, in order.
            let mut syncs: Vec<(Arc<File>, Vec<Done>)> = Vec::new();
            let mut batches = 0;
            for job in first.into_iter().chain(self.jobs.try_iter()) {
                let (file, waiting) = match job {
                    SyncJob::Batch { file, waiting } => {
                        batches += 1;
                        (file, waiting)
                    }
                    // `new` may hold a write whose dirty mark an earlier
                    // round took (while `current` was still `old`): it is
                    // synced at the next due time.
                    SyncJob::Closed { old, new } => {
                        self.current = new;
                        self.shared.dirty.store(true, Ordering::Release);
                        (old, Vec::new())
                    }
                };
                match syncs.last_mut() {
                    Some((last, more)) if Arc::ptr_eq(last, &file) => more.extend(waiting),
                    _ => syncs.push((file, waiting)),
                }
            }
            let due = self
                .interval
                .is_some_and(|interval| last.elapsed() >= interval);
            if due
                && self.shared.dirty.swap(false, Ordering::AcqRel)
                && !syncs
                    .iter()
                    .any(|(file, _)| Arc::ptr_eq(file, &self.current))
            {
                syncs.push((Arc::clone(&self.current), Vec::new()));
            }
            if due || !syncs.is_empty() {
                last = Instant::now();
            }
            for (file, waiting) in syncs {
                answer(waiting, &self.shared.sync(&file));
            }
            self.shared.handed.fetch_sub(batches, Ordering::AcqRel);
        }
    }
}
