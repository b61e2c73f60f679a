//! The spool's reader: follows the writer's watermark, hands frames to the
//! publisher in log order, and advances (and persists) the acked position
//! as the publisher completes them.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{error, warn};

use super::record::{self, Frame};
use super::{segment_path, write_acked, Position, ACK_PERSIST_INTERVAL};
use crate::normalize::Event;
use crate::stats::Stats;

/// Bytes read from a segment at a time.
const READ_CHUNK: u64 = 256 * 1024;

/// An event read back from the spool, with where it lives.
#[derive(Debug)]
pub struct Spooled {
    /// The event.
    pub event: Event,
    /// Its frame; pass it to [`SpoolReader::complete`] once handled.
    pub position: Position,
}

/// The publisher's end of the spool.
#[derive(Debug)]
pub struct SpoolReader {
    dir: PathBuf,
    /// Next byte to read.
    cursor: Position,
    /// Read, not yet handed out.
    ready: VecDeque<Spooled>,
    /// Handed out, not yet completed.
    outstanding: BTreeSet<Position>,
    /// End of synced data; closed when the writer has stopped.
    watermark: watch::Receiver<Position>,
    acked: Position,
    /// The acked position last written to disk.
    persisted: Position,
    persisted_at: Instant,
    file: Option<(u64, Arc<File>)>,
    used: Arc<AtomicU64>,
    stats: Arc<Stats>,
}

impl SpoolReader {
    pub(super) fn new(
        dir: PathBuf,
        start: Position,
        watermark: watch::Receiver<Position>,
        used: Arc<AtomicU64>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            dir,
            cursor: start,
            ready: VecDeque::new(),
            outstanding: BTreeSet::new(),
            watermark,
            acked: start,
            persisted: start,
            persisted_at: Instant::now(),
            file: None,
            used,
            stats,
        }
    }

    /// The next event in log order; `None` once the writer has stopped and
    /// everything it wrote was read.
    pub async fn recv(&mut self) -> Option<Spooled> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                self.outstanding.insert(item.position);
                return Some(item);
            }
            let watermark = *self.watermark.borrow_and_update();
            if self.cursor < watermark {
                self.read_more(watermark);
                continue;
            }
            if self.watermark.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The event at `position` was confirmed by the broker or dead-lettered.
    pub fn complete(&mut self, position: Position) {
        if self.outstanding.remove(&position) {
            self.stats.spool_records.dec();
        }
        let acked = self
            .outstanding
            .first()
            .copied()
            .or_else(|| self.ready.front().map(|item| item.position))
            .unwrap_or(self.cursor);
        if acked > self.acked {
            let new_segment = acked.segment > self.acked.segment;
            self.acked = acked;
            if new_segment || self.persisted_at.elapsed() >= ACK_PERSIST_INTERVAL {
                self.persist();
            }
        }
    }

    /// Persists the acked position if it moved since the last time (the
    /// publisher calls this when idle, so a quiet bridge does not keep an
    /// old position on disk).
    pub fn persist_if_moved(&mut self) {
        if self.acked != self.persisted {
            self.persist();
        }
    }

    /// Deletes fully confirmed segments, then writes the acked position.
    ///
    /// Deleting first frees space even when the disk is full (when writing
    /// the position could fail); a position left behind on disk only means
    /// re-delivery after a restart, never loss.
    pub fn persist(&mut self) {
        self.persisted_at = Instant::now();
        let mut id = self.acked.segment;
        while id > 0 {
            id -= 1;
            let path = segment_path(&self.dir, id);
            let Ok(meta) = fs::metadata(&path) else { break };
            if fs::remove_file(&path).is_ok() {
                self.used.fetch_sub(meta.len(), Ordering::AcqRel);
            }
            if matches!(&self.file, Some((open, _)) if *open == id) {
                self.file = None;
            }
        }
        match write_acked(&self.dir, self.acked) {
            Ok(()) => self.persisted = self.acked,
            Err(err) => {
                warn!(cause = %err, "cannot persist the spool's acked position; events may be published again after a restart")
            }
        }
    }

    /// Reads frames from the cursor up to `watermark` into `ready`.
    fn read_more(&mut self, watermark: Position) {
        let segment = self.cursor.segment;
        let end = if segment < watermark.segment {
            // An older segment is complete: read it to its end, then move on.
            match fs::metadata(segment_path(&self.dir, segment)) {
                Ok(meta) if self.cursor.offset < meta.len() => meta.len(),
                _ => {
                    self.cursor = Position {
                        segment: segment + 1,
                        offset: 0,
                    };
                    return;
                }
            }
        } else {
            watermark.offset
        };
        match self.read_range(segment, end) {
            Ok(()) => {}
            Err(problem) => {
                error!(segment, offset = self.cursor.offset, %problem, "spool segment is damaged; skipping the rest of it");
                self.cursor.offset = end;
            }
        }
    }

    fn read_range(&mut self, segment: u64, end: u64) -> Result<(), String> {
        let file = self.open(segment).map_err(|err| err.to_string())?;
        let len = (end - self.cursor.offset).min(READ_CHUNK);
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, self.cursor.offset)
            .map_err(|err| err.to_string())?;
        let mut at = 0;
        loop {
            match record::frame(&buf[at..]) {
                Frame::Record(payload, used) => {
                    let position = Position {
                        segment,
                        offset: self.cursor.offset + at as u64,
                    };
                    match record::decode(payload) {
                        Ok(event) => self.ready.push_back(Spooled { event, position }),
                        // An intact frame this version cannot read (written by a
                        // newer bridge?): only this record is skipped.
                        Err(problem) => {
                            error!(?position, %problem, "spool record cannot be decoded; skipping it")
                        }
                    }
                    at += used;
                }
                Frame::Incomplete if at == 0 => {
                    // One frame bigger than a chunk: read exactly that frame.
                    let need = frame_len(&buf).ok_or("truncated frame header")?;
                    if self.cursor.offset + need > end {
                        return Err("frame runs past the synced end".to_owned());
                    }
                    buf.resize(need as usize, 0);
                    file.read_exact_at(&mut buf, self.cursor.offset)
                        .map_err(|err| err.to_string())?;
                    continue;
                }
                Frame::Incomplete => break,
                Frame::Corrupt(problem) => return Err(problem.to_owned()),
            }
        }
        self.cursor.offset += at as u64;
        Ok(())
    }

    fn open(&mut self, segment: u64) -> std::io::Result<Arc<File>> {
        match &self.file {
            Some((open, file)) if *open == segment => Ok(Arc::clone(file)),
            _ => {
                let file = Arc::new(File::open(segment_path(&self.dir, segment))?);
                self.file = Some((segment, Arc::clone(&file)));
                Ok(file)
            }
        }
    }
}

fn frame_len(buf: &[u8]) -> Option<u64> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as u64;
    Some(record::HEADER_LEN as u64 + len)
}
