//! Events a broker refused for good (e.g. too large for the topic, or
//! unroutable on RabbitMQ) go to `{spool.dir}/dead-letter.jsonl`, one JSON
//! object per line, synced before the event leaves the spool:
//!
//! ```json
//! {"dead_lettered_at":"...","sink":"kafka","reason":"...","event":{ structured CloudEvent }}
//! ```
//!
//! Replay after fixing the cause: each `event` is a complete CloudEvent.
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

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::normalize::event::rfc3339;
use crate::normalize::Event;
use crate::spool::disk::{self, SharedDisk};
use crate::spool::job::Job;
use tracing::warn;

/// File name of the dead-letter log inside the spool directory.
pub const FILE_NAME: &str = "dead-letter.jsonl";

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
    disk: SharedDisk,
}

impl DeadLetter {
    /// The dead-letter file in `dir` (created on first use), with its
    /// space reserve made now, on the blocking pool.
    pub async fn open(dir: &Path) -> Self {
        let file = DeadLetterFile::on(dir, disk::os());
        let file = tokio::task::spawn_blocking(move || {
            file.keep_reserve();
            file
        })
        .await
        // Making the reserve does not panic; if it did, the next
        // successful write makes it.
        .unwrap_or_else(|_| DeadLetterFile::on(dir, disk::os()));
        Self::from(file)
    }

    /// Whether a line is being written (its result comes from
    /// [`written`](Self::written)).
    pub fn is_writing(&self) -> bool {
        self.writing.is_running()
    }

    /// Starts writing `event` with the reason; returns `false` (and does
    /// nothing) while the previous line is being written.
    pub fn start(&mut self, event: Event, sink: &'static str, reason: String) -> bool {
        let Some(mut file) = self.file.take() else {
            return false;
        };
        self.writing.try_start(move || {
            let written = file.write(&event, sink, &reason);
            (file, written)
        })
    }

    /// The started line's outcome, once it is synced (or failed).
    /// Cancel-safe; never ready when no line is being written.
    pub async fn written(&mut self) -> std::io::Result<()> {
        match self.writing.finish().await {
            Ok((file, written)) => {
                self.file = Some(file);
                written
            }
            Err(panicked) => {
                let mut file = DeadLetterFile::on(&self.dir, Arc::clone(&self.disk));
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
            disk: Arc::clone(&file.disk),
            file: Some(file),
            writing: Job::default(),
        }
    }
}

/// Appends refused events to the dead-letter file (blocking: see
/// [`DeadLetter`]).
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    reserve: PathBuf,
    file: Option<File>,
    /// A failed write may have left part of a line at the end.
    torn: bool,
    disk: SharedDisk,
}

#[derive(Serialize)]
struct Line<'a> {
    dead_lettered_at: String,
    sink: &'a str,
    reason: &'a str,
    event: &'a RawValue,
}

impl DeadLetterFile {
    /// The dead-letter file in `dir` on a given disk (tests inject failures
    /// there), without making the reserve yet.
    pub fn on(dir: &Path, disk: SharedDisk) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            reserve: dir.join(RESERVE_NAME),
            file: None,
            torn: false,
            disk,
        }
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

    /// Records `event` with the reason; returns once it is synced.
    pub fn write(&mut self, event: &Event, sink: &str, reason: &str) -> std::io::Result<()> {
        let mut json = Vec::new();
        event.write_structured_json(&mut json)?;
        let event_json: &RawValue = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
        let line = Line {
            dead_lettered_at: rfc3339(OffsetDateTime::now_utc()),
            sink,
            reason,
            event: event_json,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
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
mod tests {
    use super::*;
    use crate::normalize::{CallbackKind, Event};
    use crate::spool::disk::faults::{Faulty, Op, EIO, ENOSPC};

    fn event() -> Event {
        Event {
            id: "m1".to_owned(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".to_owned(),
            key: "g1".to_owned(),
            data: b"{}".to_vec().into(),
        }
    }

    #[test]
    fn a_torn_write_never_swallows_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Faulty::new();
        let mut dead_letter = DeadLetterFile::on(dir.path(), disk.clone());
        let lines = || {
            std::fs::read_to_string(dir.path().join(FILE_NAME))
                .unwrap()
                .lines()
                .filter(|line| serde_json::from_str::<serde_json::Value>(line).is_ok())
                .count()
        };
        dead_letter.write(&event(), "kafka", "one").unwrap();
        // Half a line written, then cut off again.
        disk.short_writes(ENOSPC);
        assert!(dead_letter.write(&event(), "kafka", "two").is_err());
        disk.clear();
        dead_letter.write(&event(), "kafka", "three").unwrap();
        assert_eq!(lines(), 2);
        // Half a line that cannot be cut off: the next line starts anew.
        disk.short_writes(ENOSPC);
        disk.fail(Op::SetLen, EIO, 0, 1);
        assert!(dead_letter.write(&event(), "kafka", "four").is_err());
        disk.clear();
        dead_letter.write(&event(), "kafka", "five").unwrap();
        assert_eq!(
            lines(),
            3,
            "{:?}",
            std::fs::read_to_string(dir.path().join(FILE_NAME))
        );
    }

    #[test]
    fn a_full_disk_spends_the_reserve_and_the_line_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Faulty::new();
        let mut dead_letter = DeadLetterFile::on(dir.path(), disk.clone());
        dead_letter.keep_reserve();
        let reserve = dir.path().join(RESERVE_NAME);
        assert_eq!(
            std::fs::metadata(&reserve).unwrap().len(),
            RESERVE_BYTES as u64
        );
        // The disk is full for one write: the reserve goes, the line is in.
        disk.fail(Op::Write, ENOSPC, 0, 1);
        dead_letter.write(&event(), "kafka", "too large").unwrap();
        let lines = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            lines.lines().filter(|l| l.contains("\"m1\"")).count(),
            1,
            "{lines}"
        );
        // Made again once there is room.
        assert_eq!(
            std::fs::metadata(&reserve).unwrap().len(),
            RESERVE_BYTES as u64
        );
        // Without a reserve, or for another error, the failure is reported.
        std::fs::remove_file(&reserve).unwrap();
        disk.fail(Op::Write, ENOSPC, 0, 2);
        assert!(dead_letter.write(&event(), "kafka", "too large").is_err());
        disk.clear();
        dead_letter.keep_reserve();
        disk.fail(Op::Write, EIO, 0, 1);
        assert!(dead_letter.write(&event(), "kafka", "too large").is_err());
        assert!(reserve.exists(), "an I/O error does not spend the reserve");
    }
}
