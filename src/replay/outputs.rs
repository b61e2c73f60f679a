//! The files replay writes what still fails to: refused-again events as
//! dead-letter lines, still-invalid callbacks as invalid-callback lines.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// An invalid-callback line with a new reason and when replay tried it.
pub(super) fn with_reason(raw: &[u8], reason: &str) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return raw.to_vec();
    };
    value["reason"] = reason.into();
    value["replayed_at"] = crate::normalize::event::rfc3339(OffsetDateTime::now_utc()).into();
    serde_json::to_vec(&value).unwrap_or_else(|_| raw.to_vec())
}

/// The files that lines still failing are written to, opened on first use.
pub(super) struct Outputs {
    stamp: String,
    files: HashMap<PathBuf, File>,
}

impl Outputs {
    pub(super) fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        Self {
            stamp,
            files: HashMap::new(),
        }
    }

    pub(super) fn stamp(&self) -> &str {
        &self.stamp
    }

    /// Appends one line (`bytes`, with or without its newline) to `path`.
    pub(super) fn write(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file = match self.files.get_mut(path) {
            Some(file) => file,
            None => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(path)?;
                // A run cut short in the same second may have left part of
                // a line: the next one starts on a line of its own.
                if ends_torn(&mut file)? {
                    file.write_all(b"\n")?;
                }
                self.files.entry(path.to_owned()).or_insert(file)
            }
        };
        file.write_all(bytes)?;
        if !bytes.ends_with(b"\n") {
            file.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Syncs what was written, before the ledger says it is done.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.files.values().try_for_each(File::sync_data)
    }

    pub(super) fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        paths.sort();
        paths
    }
}

/// Whether `file` is not empty and does not end with a line break.
fn ends_torn(file: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}
