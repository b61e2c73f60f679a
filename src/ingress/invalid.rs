//! Callbacks refused as invalid are not silently dropped: their exact bytes
//! and the reason go to `{spool.dir}/invalid-callbacks.jsonl`, one JSON
//! object per line, so an operator can fix the cause and replay them:
//!
//! ```json
//! {"received_at":"...","status":400,"reason":"...","operation_id":"...","path":"/openim/...","body_base64":"..."}
//! ```
//!
//! The file is capped (`http.invalid_log_max_bytes`) so a flood of bad
//! requests cannot fill the disk; past the cap, refusals are only counted
//! and logged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::warn;

use crate::normalize::event::rfc3339;
use crate::telemetry::RateLimit;

/// File name of the invalid-callback log inside the spool directory.
pub const FILE_NAME: &str = "invalid-callbacks.jsonl";

/// Bodies waiting for the log's thread, at most, in bytes: past it refused
/// callbacks are only counted (a flood of large bad requests must not grow
/// memory, nor make a request wait).
const QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// Refused callbacks waiting for the log's thread, at most.
const QUEUE_ENTRIES: usize = 1024;

/// Hands refused callbacks to a thread of its own that appends them to the
/// log, up to a size cap. Recording never blocks and never does file I/O
/// on the caller's thread: what the thread cannot keep up with is dropped
/// and counted.
#[derive(Debug)]
pub struct InvalidLog {
    entries: mpsc::SyncSender<Entry>,
    /// Body bytes queued for the thread.
    queued: Arc<AtomicUsize>,
    queue_bytes: usize,
    dropped: AtomicU64,
    drop_log: RateLimit,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// One refused callback, as received.
#[derive(Debug)]
struct Entry {
    received_at: OffsetDateTime,
    status: u16,
    reason: String,
    operation_id: String,
    path: String,
    body: Bytes,
}

#[derive(Serialize)]
struct Line<'a> {
    received_at: String,
    status: u16,
    reason: &'a str,
    operation_id: &'a str,
    path: &'a str,
    body_base64: String,
}

impl InvalidLog {
    /// A log in `dir`, holding at most `max_bytes`.
    pub fn new(dir: &Path, max_bytes: u64) -> Self {
        Self::with_queue(dir, max_bytes, QUEUE_BYTES)
    }

    /// [`InvalidLog::new`] with `queue_bytes` of bodies waiting at most.
    fn with_queue(dir: &Path, max_bytes: u64, queue_bytes: usize) -> Self {
        let path = dir.join(FILE_NAME);
        let (entries, receiver) = mpsc::sync_channel::<Entry>(QUEUE_ENTRIES);
        let queued = Arc::new(AtomicUsize::new(0));
        let mut file = LogFile {
            path,
            max_bytes,
            file: None,
            written: 0,
            full_reported: false,
        };
        let writer = {
            let queued = Arc::clone(&queued);
            std::thread::Builder::new()
                .name("invalid-log".to_owned())
                .spawn(move || {
                    // What earlier runs wrote counts towards the cap.
                    file.written = std::fs::metadata(&file.path).map_or(0, |meta| meta.len());
                    for entry in receiver {
                        queued.fetch_sub(entry.body.len(), Ordering::AcqRel);
                        file.append(&entry);
                    }
                })
        };
        let writer = match writer {
            Ok(writer) => Some(writer),
            Err(err) => {
                warn!(cause = %err, "cannot start the invalid-callback log's thread; refused callbacks are only counted");
                None
            }
        };
        Self {
            entries,
            queued,
            queue_bytes,
            dropped: AtomicU64::new(0),
            drop_log: RateLimit::default(),
            writer,
        }
    }

    /// Records one refused callback: hands it to the log's thread, or drops
    /// it (counted, and logged at most once a second) when the thread is
    /// behind. Never blocks; the reply to the sender does not depend on it.
    pub fn record(&self, status: u16, reason: &str, operation_id: &str, path: &str, body: &Bytes) {
        let size = body.len();
        let queued = self.queued.fetch_add(size, Ordering::AcqRel);
        // Past the byte bound nothing is copied: the flood costs a count.
        let handed = queued + size <= self.queue_bytes
            && self
                .entries
                .try_send(Entry {
                    received_at: OffsetDateTime::now_utc(),
                    status,
                    reason: reason.to_owned(),
                    operation_id: operation_id.to_owned(),
                    path: path.to_owned(),
                    body: body.clone(),
                })
                .is_ok();
        if !handed {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            let dropped = self.dropped.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(suppressed) = self.drop_log.allow() {
                warn!(dropped_total = dropped, suppressed, "the invalid-callback log cannot keep up; this refused callback is only counted, not kept");
            }
        }
    }

    /// Refused callbacks dropped because the log's thread was behind (the
    /// log line says it too).
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// Waits until everything recorded so far is written, and stops the
    /// log's thread.
    pub fn close(mut self) {
        let writer = self.writer.take();
        // Dropping the sender ends the thread once it has written the rest.
        drop(self);
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// The log file, owned by the log's thread.
struct LogFile {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    written: u64,
    full_reported: bool,
}

impl LogFile {
    fn append(&mut self, entry: &Entry) {
        let line = Line {
            received_at: rfc3339(entry.received_at),
            status: entry.status,
            reason: &entry.reason,
            operation_id: &entry.operation_id,
            path: &entry.path,
            body_base64: base64::engine::general_purpose::STANDARD.encode(&entry.body),
        };
        // Serializing strings and a number cannot fail.
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        if self.written + bytes.len() as u64 > self.max_bytes {
            if !self.full_reported {
                self.full_reported = true;
                warn!(file = %self.path.display(), max_bytes = self.max_bytes, "invalid-callback log is full; further refused callbacks are only counted");
            }
            return;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(file) => self.file.insert(file),
                Err(err) => {
                    warn!(file = %self.path.display(), cause = %err, "cannot open the invalid-callback log");
                    return;
                }
            },
        };
        match file.write_all(&bytes) {
            Ok(()) => self.written += bytes.len() as u64,
            Err(err) => {
                warn!(file = %self.path.display(), cause = %err, "cannot write the invalid-callback log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exact_bytes_and_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = InvalidLog::new(dir.path(), 400);
        let body = Bytes::from_static(b"{\"seq\":-1,\xff}");
        log.record(400, "bad seq", "op-1", "/openim/x", &body);
        log.record(400, "bad seq", "op-1", "/openim/x", &body);
        log.record(400, "bad seq", "op-1", "/openim/x", &body);
        assert_eq!(log.dropped(), 0);
        log.close();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            !lines.is_empty() && lines.len() < 3,
            "cap not applied: {} lines",
            lines.len()
        );
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(lines[0]["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, body.as_ref());
        assert_eq!(lines[0]["reason"], "bad seq");
        assert!(text.len() as u64 <= 400);
    }

    #[test]
    fn a_flood_past_the_queue_is_dropped_and_counted_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        // Room for one 100-byte body waiting, not two.
        let log = InvalidLog::with_queue(dir.path(), 1 << 20, 150);
        let body = Bytes::from(vec![b'x'; 100]);
        let held = log.queued.fetch_add(100, Ordering::AcqRel); // as if one waits
        assert_eq!(held, 0);
        for _ in 0..5 {
            log.record(400, "flood", "op", "/x", &body);
        }
        assert_eq!(log.dropped(), 5, "each record past the queue is counted");
        log.queued.fetch_sub(100, Ordering::AcqRel);
        log.record(400, "kept", "op", "/x", &body);
        assert_eq!(log.dropped(), 5);
        log.close();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"kept\""));
    }
}
