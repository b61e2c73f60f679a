//! Events a broker refused for good (e.g. too large for the topic, or
//! unroutable on RabbitMQ) go to `{spool.dir}/dead-letter.jsonl`, one JSON
//! object per line, synced before the event leaves the spool:
//!
//! ```json
//! {"dead_lettered_at":"...","sink":"kafka","reason":"...","event":{ structured CloudEvent }}
//! ```
//!
//! Replay after fixing the cause: each `event` is a complete CloudEvent.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::normalize::event::rfc3339;
use crate::normalize::Event;
use crate::sink::stdout::structured_json;
use crate::spool::disk::{self, SharedDisk};

/// File name of the dead-letter log inside the spool directory.
pub const FILE_NAME: &str = "dead-letter.jsonl";

/// Appends refused events to the dead-letter file.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    file: Option<File>,
    disk: SharedDisk,
}

#[derive(Serialize)]
struct Line<'a> {
    dead_lettered_at: String,
    sink: &'a str,
    reason: &'a str,
    event: &'a RawValue,
}

impl DeadLetter {
    /// The dead-letter file in `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        Self::on(dir, disk::os())
    }

    /// [`DeadLetter::new`] on a given disk (tests inject failures there).
    pub fn on(dir: &Path, disk: SharedDisk) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            file: None,
            disk,
        }
    }

    /// Records `event` with the reason; returns once it is synced.
    pub fn write(&mut self, event: &Event, sink: &str, reason: &str) -> std::io::Result<()> {
        let mut json = Vec::new();
        structured_json(event, &mut json).map_err(std::io::Error::other)?;
        let event_json: &RawValue = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
        let line = Line {
            dead_lettered_at: rfc3339(OffsetDateTime::now_utc()),
            sink,
            reason,
            event: event_json,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(self.disk.open_append(&self.path)?),
        };
        let written = self
            .disk
            .write(file, &bytes)
            .and_then(|()| self.disk.sync(file));
        if written.is_err() {
            // A short write may have left part of a line: the next one
            // starts on a new line, so every whole line stays readable.
            self.file = None;
            if let Ok(file) = self.disk.open_append(&self.path) {
                let _ = self.disk.write(&file, b"\n");
            }
        }
        written
    }
}
