//! Written events handed from the spool's writer to its reader in memory,
//! so that in steady state the publisher does not read back from disk what
//! was just written. Bounded: when the publisher is behind, the writer
//! leaves batches out and the reader reads them from disk.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Position, Spooled};

/// Frame bytes of written events held in memory for the reader, at most.
const TAIL_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Written events on their way to the reader in memory, in log order; a
/// batch that does not fit is left out (the reader reads it from disk).
#[derive(Debug, Default)]
pub struct Tail {
    queue: Mutex<VecDeque<(Spooled, u64)>>,
    bytes: AtomicUsize,
}

impl Tail {
    /// Adds a written batch: each event with its frame's length.
    pub(super) fn push(&self, items: Vec<(Spooled, u64)>) {
        let bytes: usize = items.iter().map(|(_, len)| *len as usize).sum();
        if self.bytes.load(Ordering::Acquire) + bytes > TAIL_MAX_BYTES {
            return;
        }
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.lock().extend(items);
    }

    /// Moves the events that follow `cursor` without a gap into `out`, and
    /// drops those before it (read from disk meanwhile). Returns the
    /// position after the last one taken.
    pub(super) fn take(&self, mut cursor: Position, out: &mut VecDeque<Spooled>) -> Position {
        let mut queue = self.lock();
        let mut freed = 0;
        while let Some((item, len)) = queue.front() {
            if item.position > cursor {
                break;
            }
            let len = *len;
            freed += len as usize;
            if let Some((item, _)) = queue.pop_front() {
                if item.position == cursor {
                    cursor.offset += len;
                    out.push_back(item);
                }
            }
        }
        drop(queue);
        self.bytes.fetch_sub(freed, Ordering::AcqRel);
        cursor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Spooled, u64)>> {
        // A panic while holding it cannot leave the queue inconsistent.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
