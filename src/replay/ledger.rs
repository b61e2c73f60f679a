//! What `replay` has done, beside the files it reads: `replayed.ledger`
//! in their folder. Each line names input lines by a hash of their bytes
//! (so a rotated or renamed file keeps its history):
//!
//! ```text
//! S 1f0c...e2 9a41...07      a batch about to be sent
//! C 1f0c...e2 9a41...07      the same batch, confirmed (or written out)
//! ```
//!
//! A line whose `C` is there is done. One with an `S` and no `C` was in
//! flight when a replay stopped: sent again, it may reach the broker twice.
//! Each record is synced before the batch goes on, so a `kill -9` costs at
//! most the batch in flight.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the ledger in an input's folder.
pub const FILE_NAME: &str = "replayed.ledger";

/// An input line's identity.
pub type LineId = u128;

/// The identity of the line `bytes`.
pub fn id(bytes: &[u8]) -> LineId {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// A folder's ledger: what is done, what was in flight.
pub struct Ledger {
    path: PathBuf,
    file: Option<File>,
    /// The file ends in part of a line: the next record starts with a
    /// line break.
    torn: bool,
    done: HashSet<LineId>,
    in_flight: HashSet<LineId>,
}

impl Ledger {
    /// Reads the ledger of the folder holding `input` (none yet: empty).
    pub fn open(input: &Path) -> std::io::Result<Self> {
        let dir = input.parent().unwrap_or(Path::new("."));
        let path = dir.join(FILE_NAME);
        let mut done = HashSet::new();
        let mut sent = HashSet::new();
        let mut torn = false;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A torn last line (a kill -9 or a full disk mid-write) is
                // ignored, and the next record starts on a line of its own.
                let whole = text.rfind('\n').map_or(0, |end| end + 1);
                torn = whole < text.len();
                for line in text[..whole].lines() {
                    let mut words = line.split(' ');
                    let set = match words.next() {
                        Some("C") => &mut done,
                        Some("S") => &mut sent,
                        _ => continue,
                    };
                    set.extend(
                        words
                            .filter(|hex| hex.len() == 32)
                            .filter_map(|hex| LineId::from_str_radix(hex, 16).ok()),
                    );
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let in_flight = sent.difference(&done).copied().collect();
        Ok(Self {
            path,
            file: None,
            torn,
            done,
            in_flight,
        })
    }

    /// Whether line `id` was confirmed (or written out) by a replay.
    pub fn is_done(&self, id: LineId) -> bool {
        self.done.contains(&id)
    }

    /// Whether line `id` was in flight when a replay stopped.
    pub fn was_in_flight(&self, id: LineId) -> bool {
        self.in_flight.contains(&id)
    }

    /// Records that `ids` are about to be sent.
    pub fn sending(&mut self, ids: &[LineId]) -> std::io::Result<()> {
        self.record('S', ids)
    }

    /// Records that `ids` are done.
    pub fn done(&mut self, ids: &[LineId]) -> std::io::Result<()> {
        self.done.extend(ids);
        self.record('C', ids)
    }

    fn record(&mut self, mark: char, ids: &[LineId]) -> std::io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut line = String::with_capacity(3 + ids.len() * 33);
        if self.torn {
            line.push('\n');
        }
        line.push(mark);
        for id in ids {
            line.push_str(&format!(" {id:032x}"));
        }
        line.push('\n');
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        self.torn = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_lines_stay_done_and_an_unconfirmed_batch_was_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("dead-letter.jsonl");
        let mut ledger = Ledger::open(&input).unwrap();
        let (a, b, c) = (id(b"a"), id(b"b"), id(b"c"));
        ledger.sending(&[a, b]).unwrap();
        ledger.done(&[a, b]).unwrap();
        ledger.sending(&[c]).unwrap();
        // Interrupted here; a torn line follows.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&ledger.path)
            .unwrap()
            .write_all(b"C 12")
            .unwrap();
        let mut again = Ledger::open(&input).unwrap();
        assert!(again.is_done(a) && again.is_done(b) && !again.is_done(c));
        assert!(again.was_in_flight(c) && !again.was_in_flight(a));
        // The next record does not continue the torn line: what it sends
        // is not taken for done.
        let (d, e) = (id(b"d"), id(b"e"));
        again.sending(&[d, e]).unwrap();
        let third = Ledger::open(&input).unwrap();
        assert!(!third.is_done(d) && !third.is_done(e));
        assert!(third.was_in_flight(d) && third.was_in_flight(e));
    }
}
