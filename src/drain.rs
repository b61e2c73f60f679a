//! `openim-bridge drain --spool DIR`: publishes every acked event a retired
//! replica left in its spool directory, then exits.
//!
//! The directory is opened as a bridge opens its spool at startup (the
//! torn-tail repair included), under its lock: while another process holds
//! it, drain refuses and names the holder, touching nothing. No callback is
//! taken; the publisher sends what the spool holds through the configured
//! sink (the same keys, headers, confirms and dead-letter file), deletes
//! the confirmed segments, and stops once the spool is empty.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::broker::{self, SinkStartError};
use crate::settings::Validated;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::publisher;
use crate::spool::{self, OpenError};
use crate::stats::Stats;

/// What a drain published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events the broker confirmed.
    pub published: u64,
    /// Events the broker refused for good (in the directory's dead-letter
    /// file).
    pub dead_lettered: u64,
}

/// `drain` could not run.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The directory is not a spool, or another process holds it.
    #[error(transparent)]
    Spool(#[from] OpenError),
    /// The sink could not start.
    #[error(transparent)]
    Sink(#[from] SinkStartError),
    /// The folder does not exist.
    #[error("{0}: no such spool directory (give the retired replica's spool.dir)")]
    Missing(PathBuf),
}

/// Publishes everything in the spool at `dir` through the sink `settings`
/// configure; returns once the spool is empty.
pub async fn run(settings: &Validated, dir: &Path) -> Result<Drained, DrainError> {
    if !dir.is_dir() {
        return Err(DrainError::Missing(dir.to_owned()));
    }
    let stats = Arc::new(Stats::default());
    let mut spool_settings = settings.spool.clone();
    spool_settings.dir = dir.to_owned();
    let (writer, reader) = spool::open_async(&spool_settings, Arc::clone(&stats)).await?;
    // Nothing is appended: the reader ends once it has read what is there.
    drop(writer);
    // On an error the reader (and the lock) go with it: nothing was
    // confirmed.
    let sink = broker::start(settings, Arc::clone(&stats)).await?;
    let dead_letter = DeadLetter::open(
        dir,
        settings.spool.dead_letter_max_bytes,
        Arc::clone(&stats),
    )
    .await;
    publisher::run(
        sink,
        reader,
        dead_letter,
        settings.sink.clone(),
        Arc::clone(&stats),
    )
    .await;
    let snapshot = stats.snapshot();
    Ok(Drained {
        published: snapshot.events_published,
        dead_lettered: snapshot.events_rejected,
    })
}
