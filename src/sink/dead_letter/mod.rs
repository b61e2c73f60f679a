//! Events a broker refused for good (e.g. too large for the topic, or
//! unroutable on RabbitMQ) go to `{spool.dir}/dead-letter.jsonl`, one JSON
//! object per line ([`line`]: the CloudEvent with the refusal's class,
//! code, text, destination and attempts), synced before the event leaves
//! the spool. Past `spool.dead_letter_max_bytes` the file is rotated to
//! `dead-letter.NNNNNN.jsonl` (kept; never deleted by the bridge).
//!
//! Replay after fixing the cause: `openim-bridge replay DIR` publishes
//! them again through the configured sink.
//!
//! The file shares the spool's disk, and a refused event leaves the spool
//! only once its line is synced: on a full disk that could hold up the
//! spool (whose confirmed segments cannot be deleted past the event). So
//! [`RESERVE_BYTES`] are kept in `dead-letter.reserve`, a file of zeros
//! that a write finding the disk full deletes before it tries again; it
//! is made again after the next successful write (if it fits). A write
//! that still fails is tried again by the publisher, while other events
//! keep flowing.
//!
//! The publisher holds a [`DeadLetter`]: its writes and syncs run on the
//! blocking pool, one at a time, never on the publisher's task.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::normalize::Event;
use crate::spool::disk::{self, SharedDisk};
use crate::spool::job::Job;
use crate::stats::Stats;
use tracing::{info, warn};

pub mod line;
pub use line::Context;

/// File name of the dead-letter log inside the spool directory.
pub const FILE_NAME: &str = "dead-letter.jsonl";

/// File names of the dead-letter log and its rotated files start so.
pub const FILE_PREFIX: &str = "dead-letter.";

/// Disk space kept for dead-letter lines (about a thousand typical events).
pub const RESERVE_BYTES: usize = 1 << 20;

/// File name of the space reserve beside the dead-letter file.
pub const RESERVE_NAME: &str = "dead-letter.reserve";

/// The publisher's end of the dead-letter file: one line at a time is
/// written and synced on the blocking pool.
#[derive(Debug)]
pub struct DeadLetter {
    /// The file, when no write has it.
    file: Option<DeadLetterFile>,
    writing: Job<(DeadLetterFile, std::io::Result<()>)>,
    /// To open the file again if a write lost it (by panicking).
    dir: PathBuf,
    max_bytes: u64,
    disk: SharedDisk,
    stats: Arc<Stats>,
}

impl DeadLetter {
    /// The dead-letter file in `dir` (created on first use, rotated past
    /// `max_bytes`), with its space reserve made now and the lines already
    /// in its files counted (`openim_bridge_dead_letter_events`), on the
    /// blocking pool.
    pub async fn open(dir: &Path, max_bytes: u64, stats: Arc<Stats>) -> Self {
        let file = DeadLetterFile::on(dir, disk::os()).rotating_at(max_bytes);
        let (file, lines) = tokio::task::spawn_blocking(move || {
            file.keep_reserve();
            let lines = count_lines(&file.path);
            (file, lines)
        })
        .await
        // Neither panics; if one did, the next successful write makes the
        // reserve and the count starts at 0.
        .unwrap_or_else(|_| {
            (
                DeadLetterFile::on(dir, disk::os()).rotating_at(max_bytes),
                0,
            )
        });
        stats.dead_letter_events.set(lines as i64);
        if lines > 0 {
            info!(dir = %dir.display(), lines, "the spool directory holds dead-lettered events; publish them again with `openim-bridge replay` once the cause is fixed");
        }
        Self {
            stats,
            ..Self::from(file)
        }
    }

    /// Whether a line is being written (its result comes from
    /// [`written`](Self::written)).
    pub fn is_writing(&self) -> bool {
        self.writing.is_running()
    }

    /// Starts writing `event` with why it was refused; returns `false`
    /// (and does nothing) while the previous line is being written.
    pub fn start(&mut self, event: Event, context: Context) -> bool {
        let Some(mut file) = self.file.take() else {
            return false;
        };
        self.writing.try_start(move || {
            let written = file.write(&event, &context);
            (file, written)
        })
    }

    /// The started line's outcome, once it is synced (or failed).
    /// Cancel-safe; never ready when no line is being written.
    pub async fn written(&mut self) -> std::io::Result<()> {
        match self.writing.finish().await {
            Ok((file, written)) => {
                self.file = Some(file);
                if written.is_ok() {
                    self.stats.dead_letter_events.inc();
                }
                written
            }
            Err(panicked) => {
                let mut file = DeadLetterFile::on(&self.dir, Arc::clone(&self.disk))
                    .rotating_at(self.max_bytes);
                // It may have left part of a line.
                file.torn = true;
                self.file = Some(file);
                Err(std::io::Error::other(format!(
                    "writing the dead-letter file panicked: {panicked}"
                )))
            }
        }
    }
}

impl From<DeadLetterFile> for DeadLetter {
    fn from(file: DeadLetterFile) -> Self {
        Self {
            dir: file.path.parent().map(Path::to_owned).unwrap_or_default(),
            max_bytes: file.max_bytes,
            disk: Arc::clone(&file.disk),
            file: Some(file),
            writing: Job::default(),
            stats: Arc::default(),
        }
    }
}

/// Lines in the dead-letter files beside `path` (rotated ones included).
fn count_lines(path: &Path) -> u64 {
    let Some(dir) = path.parent() else {
        return 0;
    };
    files(dir)
        .iter()
        .filter_map(|file| count_newlines(file).ok())
        .sum()
}

/// The line breaks in the file at `path`, read 64 KiB at a time.
pub fn count_newlines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(lines),
            n => lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64,
        }
    }
}

/// The dead-letter files in `dir`, oldest first: the rotated ones
/// (`dead-letter.NNNNNN.jsonl`), then the current one. Not what `replay`
/// wrote out (`dead-letter.replay-*.jsonl`): those are named to be read.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    logs(dir, FILE_PREFIX, FILE_NAME)
}

/// The `.jsonl` logs in `dir` whose names start with `prefix`, oldest
/// first: rotated ones, then `current`; never what `replay` wrote out
/// (`*.replay-*.jsonl`).
pub fn logs(dir: &Path, prefix: &str, current: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name.starts_with(prefix)
                        && name.ends_with(".jsonl")
                        && !name.contains(".replay-")
                })
        })
        .collect();
    found.sort_by_key(|path| (path.ends_with(current), path.clone()));
    found
}

/// Appends refused events to the dead-letter file (blocking: see
/// [`DeadLetter`]).
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    reserve: PathBuf,
    /// Rotated past this size.
    max_bytes: u64,
    file: Option<File>,
    /// A failed write may have left part of a line at the end.
    torn: bool,
    disk: SharedDisk,
}

impl DeadLetterFile {
    /// The dead-letter file in `dir` on a given disk (tests inject failures
    /// there), without making the reserve yet.
    pub fn on(dir: &Path, disk: SharedDisk) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            reserve: dir.join(RESERVE_NAME),
            max_bytes: u64::MAX,
            file: None,
            torn: false,
            disk,
        }
    }

    /// The same, rotated once it reaches `max_bytes`.
    pub fn rotating_at(self, max_bytes: u64) -> Self {
        Self { max_bytes, ..self }
    }

    /// Makes the space reserve if it is missing; a disk without room for
    /// it is left alone (tried again after the next successful write).
    pub fn keep_reserve(&self) {
        if self.disk.len(&self.reserve).is_ok() {
            return;
        }
        let made = self.disk.open_append(&self.reserve).and_then(|file| {
            self.disk.write(&file, &vec![0; RESERVE_BYTES])?;
            self.disk.sync(&file)
        });
        if made.is_err() {
            let _ = self.disk.remove(&self.reserve);
        }
    }

    /// Gives the reserve's space back; `false` if there was none.
    fn release_reserve(&self) -> bool {
        self.disk.remove(&self.reserve).is_ok()
    }

    /// Records `event` with why it was refused; returns once it is synced.
    pub fn write(&mut self, event: &Event, context: &Context) -> std::io::Result<()> {
        let bytes = line::encode(event, context)?;
        self.rotate_if_full(bytes.len() as u64);
        let written = match self.append(&bytes) {
            Err(err) if is_disk_full(&err) && self.release_reserve() => {
                warn!(cause = %err, "the spool's disk is full: used the dead-letter space reserve");
                self.append(&bytes)
            }
            written => written,
        };
        if written.is_ok() {
            self.keep_reserve();
        }
        written
    }

    /// Moves the current file aside as `dead-letter.NNNNNN.jsonl` (the next
    /// number) if `more` bytes would take it past its size; a failure is
    /// logged and the file grows on.
    fn rotate_if_full(&mut self, more: u64) {
        let len = self.disk.len(&self.path).unwrap_or(0);
        if len == 0 || len.saturating_add(more) <= self.max_bytes || self.torn {
            return;
        }
        let Some(dir) = self.path.parent() else {
            return;
        };
        let next = files(dir)
            .iter()
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?;
                name.strip_prefix(FILE_PREFIX)?
                    .strip_suffix(".jsonl")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        let rotated = dir.join(format!("{FILE_PREFIX}{next:06}.jsonl"));
        self.file = None;
        match self.disk.rename(&self.path, &rotated) {
            Ok(()) => info!(rotated = %rotated.display(), "dead-letter file rotated"),
            Err(err) => warn!(cause = %err, "cannot rotate the dead-letter file; it grows on"),
        }
    }

    /// Appends `bytes` to the file and syncs it.
    ///
    /// A failed write (a full disk may take half a line) is cut off again;
    /// if even that fails, the next line starts with a line break, so a
    /// torn line never swallows the next one: every whole line stays a
    /// line of its own.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(self.disk.open_append(&self.path)?),
        };
        let before = self.disk.len(&self.path);
        let line;
        let bytes = if self.torn {
            line = [b"\n", bytes].concat();
            &line
        } else {
            bytes
        };
        let written = self
            .disk
            .write(file, bytes)
            .and_then(|()| self.disk.sync(file));
        match (&written, before) {
            (Ok(()), _) => self.torn = false,
            (Err(_), Ok(len)) if self.disk.set_len(file, len).is_ok() => {}
            (Err(_), _) => self.torn = true,
        }
        written
    }
}

/// ENOSPC or EDQUOT: the disk (or the quota) is full.
fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(28 | 122))
}

#[cfg(test)]
mod tests;
