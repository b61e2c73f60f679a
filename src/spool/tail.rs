//! Events handed from the spool's writer to its reader in memory:
//!
//! * **written** ones, so that in steady state the publisher does not read
//!   back from disk what was just written. Bounded: when the publisher is
//!   behind, the writer leaves batches out and the reader reads them from
//!   disk.
//! * **unwritten** ones: events acked in `memory` mode whose write the disk
//!   refused (ENOSPC, EIO). They exist nowhere else, so they are published
//!   from here, after everything written before them. Bounded by what was
//!   acked before the writer saw the failure: from then on every append
//!   waits for its write. Those still unconfirmed when the reader is
//!   dropped are lost, and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Position, Spooled};
use crate::normalize::Event;

/// Frame bytes of written events held in memory for the reader, at most.
const TAIL_MAX_BYTES: usize = 1024 * 1024;

/// Events on their way to the reader in memory, in log order.
#[derive(Debug, Default)]
pub struct Tail {
    /// Written events with their frame's position and length.
    written: Mutex<VecDeque<(Position, Event, u64)>>,
    bytes: AtomicUsize,
    /// Acked events the disk refused, each after the log position it
    /// follows.
    unwritten: Mutex<VecDeque<(Position, Event)>>,
    /// Unwritten events not yet confirmed (queued here or handed out).
    unconfirmed: AtomicU64,
}

impl Tail {
    /// Adds a written batch: each event with its frame's position and
    /// length; a batch that does not fit is left out (read from disk).
    pub(super) fn push(&self, items: Vec<(Position, Event, u64)>) {
        let bytes: usize = items.iter().map(|(_, _, len)| *len as usize).sum();
        if self.bytes.load(Ordering::Acquire) + bytes > TAIL_MAX_BYTES {
            return;
        }
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        lock(&self.written).extend(items);
    }

    /// Moves the written events that follow `cursor` without a gap into
    /// `out`, and drops those before it (read from disk meanwhile).
    /// Returns the position after the last one taken.
    pub(super) fn take(&self, mut cursor: Position, out: &mut VecDeque<Spooled>) -> Position {
        let mut queue = lock(&self.written);
        let mut freed = 0;
        while let Some((position, _, len)) = queue.front() {
            if *position > cursor {
                break;
            }
            let len = *len;
            freed += len as usize;
            if let Some((position, event, _)) = queue.pop_front() {
                if position == cursor {
                    cursor.offset += len;
                    out.push_back(Spooled::new(event, Some(position)));
                }
            }
        }
        drop(queue);
        self.bytes.fetch_sub(freed, Ordering::AcqRel);
        cursor
    }

    /// Adds acked events whose write failed; `after`: the end of the log
    /// when they were to be written.
    pub(super) fn push_unwritten(&self, after: Position, events: Vec<Event>) {
        self.unconfirmed
            .fetch_add(events.len() as u64, Ordering::AcqRel);
        lock(&self.unwritten).extend(events.into_iter().map(|event| (after, event)));
    }

    /// Moves the unwritten events whose place in the log the reader has
    /// reached (`cursor`) into `out`; whether it moved any.
    pub(super) fn take_unwritten(&self, cursor: Position, out: &mut VecDeque<Spooled>) -> bool {
        let mut queue = lock(&self.unwritten);
        let before = out.len();
        while queue.front().is_some_and(|(after, _)| *after <= cursor) {
            if let Some((_, event)) = queue.pop_front() {
                out.push_back(Spooled::new(event, None));
            }
        }
        out.len() > before
    }

    /// An unwritten event was confirmed (or dead-lettered).
    pub(super) fn unwritten_confirmed(&self) {
        let _ = self
            .unconfirmed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Unwritten events not confirmed yet: lost if the process ends now.
    pub(super) fn unconfirmed(&self) -> u64 {
        self.unconfirmed.load(Ordering::Acquire)
    }
}

fn lock<T>(queue: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it cannot leave the queue inconsistent.
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
