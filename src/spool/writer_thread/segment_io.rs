//! The writer's file work: a batch written at the end of the log, and the
//! move to a new segment.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::error;

use super::WriterThread;
use crate::spool::append::AppendError;
use crate::spool::segments::{open_segment, prep_path, prepare, prepared};
use crate::spool::syncer::Syncer;
use crate::spool::{segment_path, Position};

impl WriterThread {
    /// Writes `batch` at the end of the log (in a new segment if the
    /// current one must be closed first); returns where it starts.
    pub(super) fn write_batch(&mut self, batch: &[u8]) -> Result<Position, AppendError> {
        let sync_failed = self.syncer.as_ref().is_some_and(Syncer::take_failure);
        if (self.must_roll || sync_failed) && !self.roll() {
            return Err(AppendError::Io(Arc::new(std::io::Error::other(
                "cannot create a new spool segment",
            ))));
        }
        if let Err(err) = self.disk.write_at(&self.file, batch, self.at.offset) {
            // Cut the file back so a half-written batch is never read.
            let restored = self.disk.set_len(&self.file, self.at.offset);
            self.preallocated = 0;
            if let Some(suppressed) = self.error_log.allow() {
                error!(cause = %err, restored = restored.is_ok(), suppressed, "spool write failed; callbacks are answered 503 until it works again");
            }
            if restored.is_err() {
                // Bytes of the failed batch stay in the file: they count
                // until the segment is deleted, and nothing more goes there.
                // Whole frames among them are read and published (as
                // duplicates of callbacks answered 503, or of events
                // published from memory): at-least-once, never lost.
                let on_disk = self
                    .disk
                    .len(&segment_path(&self.dir, self.at.segment))
                    .unwrap_or(self.at.offset + batch.len() as u64);
                self.used
                    .fetch_add(on_disk.saturating_sub(self.at.offset), Ordering::AcqRel);
                self.must_roll = true;
            }
            // Space comes back a whole segment at a time: close this one, so
            // it is deleted once the broker has confirmed it. Otherwise a
            // disk smaller than a segment would stay full for good.
            if self.at.offset > 0 || self.must_roll {
                self.roll();
            }
            return Err(AppendError::Io(Arc::new(err)));
        }
        let start = self.at;
        self.at.offset += batch.len() as u64;
        if let Some(syncer) = &self.syncer {
            syncer.written();
        }
        if self.next.is_none() && self.at.offset >= self.segment_bytes / 2 {
            // The next segment, filled with zeros in the background.
            let path = prep_path(&self.dir, self.at.segment + 1);
            self.next = prepare(Arc::clone(&self.disk), path, self.segment_bytes);
        }
        Ok(start)
    }

    /// Closes the current segment (trimmed to its records, synced) and
    /// starts the next; on failure keeps the current one. `false` if no
    /// new segment could be created.
    pub(super) fn roll(&mut self) -> bool {
        let next = self.at.segment + 1;
        let prepared = self.next.take().is_some_and(prepared);
        match open_segment(self.disk.as_ref(), &self.dir, next) {
            Ok(file) => {
                if self.preallocated > self.at.offset && !self.must_roll {
                    // The zeros past the last record go; the reader and
                    // recovery would stop at them anyway (`Frame::End`).
                    let _ = self.disk.set_len(&self.file, self.at.offset);
                }
                let file = Arc::new(file);
                let old = std::mem::replace(&mut self.file, Arc::clone(&file));
                if let Some(syncer) = &self.syncer {
                    syncer.closed(old, file);
                }
                self.preallocated = if prepared { self.segment_bytes } else { 0 };
                self.at = Position {
                    segment: next,
                    offset: 0,
                };
                self.must_roll = false;
                if let Some(watermark) = &self.watermark {
                    watermark.send_replace(self.at);
                }
                true
            }
            Err(err) => {
                error!(cause = %err, "cannot create a new spool segment; continuing in the current one");
                false
            }
        }
    }
}
