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
use std::sync::Mutex;

use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::warn;

use crate::normalize::event::rfc3339;

/// File name of the invalid-callback log inside the spool directory.
pub const FILE_NAME: &str = "invalid-callbacks.jsonl";

/// Appends refused callbacks to the log, up to a size cap.
#[derive(Debug)]
pub struct InvalidLog {
    path: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    file: Option<File>,
    written: u64,
    full_reported: bool,
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
        let path = dir.join(FILE_NAME);
        let written = std::fs::metadata(&path).map_or(0, |meta| meta.len());
        Self {
            path,
            max_bytes,
            state: Mutex::new(State {
                written,
                ..State::default()
            }),
        }
    }

    /// Records one refused callback. Failures are logged, never raised: the
    /// reply to the sender does not depend on this log.
    pub fn record(&self, status: u16, reason: &str, operation_id: &str, path: &str, body: &[u8]) {
        let line = Line {
            received_at: rfc3339(OffsetDateTime::now_utc()),
            status,
            reason,
            operation_id,
            path,
            body_base64: base64::engine::general_purpose::STANDARD.encode(body),
        };
        // Serializing strings and a number cannot fail.
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        // A poisoned lock only means another writer panicked mid-line; the
        // state is still usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.written + bytes.len() as u64 > self.max_bytes {
            if !state.full_reported {
                state.full_reported = true;
                warn!(file = %self.path.display(), max_bytes = self.max_bytes, "invalid-callback log is full; further refused callbacks are only counted");
            }
            return;
        }
        let file = match &mut state.file {
            Some(file) => file,
            None => match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(file) => state.file.insert(file),
                Err(err) => {
                    warn!(file = %self.path.display(), cause = %err, "cannot open the invalid-callback log");
                    return;
                }
            },
        };
        match file.write_all(&bytes) {
            Ok(()) => state.written += bytes.len() as u64,
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
        let body = b"{\"seq\":-1,\xff}";
        log.record(400, "bad seq", "op-1", "/openim/x", body);
        log.record(400, "bad seq", "op-1", "/openim/x", body);
        log.record(400, "bad seq", "op-1", "/openim/x", body);
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
        assert_eq!(decoded, body);
        assert_eq!(lines[0]["reason"], "bad seq");
        assert!(text.len() as u64 <= 400);
    }
}
