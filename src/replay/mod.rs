//! `openim-bridge replay`: publishes dead-lettered events and refused
//! callbacks again, through the configured sink, once their cause is fixed.
//!
//! * A dead-letter line is published as it was stored: the same CloudEvent
//!   (id, source, type, time, key, data, so the same headers), routed by
//!   today's routes.
//! * An invalid-callback line goes through today's normalize, routes and
//!   filters exactly as a live callback would (its token was checked when
//!   it was logged).
//!
//! Lines are sent in batches; a batch is done once the broker confirmed
//! every event in it, or the ones it refused again were written to a new
//! dead-letter file beside the input (lines that still do not parse go to a
//! new invalid-callback file). The ledger (`ledger`) records each batch, so a
//! second run publishes nothing (unless `--force`) and an interrupted one
//! resumes: only the batch in flight can be published twice. It reads the
//! files only: it runs beside a live bridge, without the spool's lock.

mod input;
mod ledger;
mod outputs;
mod pacer;
mod run;
mod select;

use std::collections::BTreeMap;
use std::path::PathBuf;

use time::OffsetDateTime;

pub use run::run;

/// What to replay, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Input files, or folders (a spool directory: its dead-letter and
    /// invalid-callback files).
    pub inputs: Vec<PathBuf>,
    /// Only lines written at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only lines written before this time.
    pub until: Option<OffsetDateTime>,
    /// Only lines of this callback command.
    pub command: Option<String>,
    /// Only lines whose reason contains this.
    pub reason: Option<String>,
    /// Publish nothing; count per command and per reason.
    pub dry_run: bool,
    /// Publish lines the ledger says are done, too.
    pub force: bool,
    /// Events per second, at most.
    pub rate: Option<f64>,
    /// Draw a progress bar (standard error is a terminal).
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Lines the filters selected.
    pub selected: u64,
    /// Lines a previous replay had done (not sent again).
    pub already_done: u64,
    /// Events the broker confirmed.
    pub published: u64,
    /// Callbacks whose route is disabled or that a filter drops today.
    pub skipped: u64,
    /// Of the published, those an interrupted replay had in flight: they
    /// may be at the broker twice.
    pub maybe_twice: u64,
    /// Events the broker refused again (written to a new dead-letter file).
    pub refused: u64,
    /// Lines that still do not parse (written to a new file).
    pub unparsed: u64,
    /// Files the refused and unparsed lines went to.
    pub written_out: Vec<PathBuf>,
    /// Stopped by a signal before every selected line was done.
    pub interrupted: bool,
    /// A dry run: the counts per command and per reason are printed.
    pub dry_run: bool,
    /// Selected lines per callback command (`--dry-run`).
    pub by_command: BTreeMap<String, u64>,
    /// Selected lines per reason (`--dry-run`).
    pub by_reason: BTreeMap<String, u64>,
}

impl Summary {
    /// Whether every selected line was confirmed (or skipped on purpose).
    pub fn complete(&self) -> bool {
        !self.interrupted && self.refused == 0 && self.unparsed == 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replay: {} selected, {} published, {} skipped by routes or filters, {} refused again, {} still invalid, {} done by an earlier replay",
            self.selected, self.published, self.skipped, self.refused, self.unparsed, self.already_done
        )?;
        if self.maybe_twice > 0 {
            writeln!(
                f,
                "replay: {} of the published were in flight when an earlier replay stopped: they may be at the broker twice (consumers deduplicate on source + id)",
                self.maybe_twice
            )?;
        }
        for path in &self.written_out {
            writeln!(
                f,
                "replay: lines that still fail were written to {}",
                path.display()
            )?;
        }
        if self.interrupted {
            writeln!(f, "replay: interrupted; run it again to go on")?;
        }
        if !self.dry_run {
            return Ok(());
        }
        for (title, counts) in [("command", &self.by_command), ("reason", &self.by_reason)] {
            for (name, count) in counts {
                writeln!(f, "  {count:>8}  {title}: {name}")?;
            }
        }
        Ok(())
    }
}

/// `replay` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input or the ledger could not be read or written.
    #[error("{path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        cause: std::io::Error,
    },
    /// The sink could not start.
    #[error(transparent)]
    Sink(#[from] crate::broker::SinkStartError),
}
