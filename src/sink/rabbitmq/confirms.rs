//! Which published messages RabbitMQ returned as unroutable.
//!
//! # Why not trust `Confirmation::Ack(Some(returned))`
//!
//! lapin (4.12) keeps the `basic.return`s it receives in a FIFO and hands
//! the head to whichever publisher confirm it resolves next
//! (`Acknowledgements::complete_pending`); a multiple ack resolves its
//! tags in `HashMap` order. RabbitMQ coalesces acks, so the return of
//! message X can ride on the confirm of another message, resolved before
//! or after X's own. Trusting the carrier dead-letters a delivered message
//! and counts the unroutable one as delivered (lost). Nor is it enough to
//! wait for X's own confirm: a multiple ack covering A and X may resolve X
//! first, hand it A's return, and leave X's return for A's confirm.
//!
//! # The rule
//!
//! Every message carries `message_id` = the event id, so a return names
//! its message. A [`Confirms`] tracker (one per channel) harvests every
//! resolved confirm and keeps the ids of the returned messages it carried
//! (a multiset: OpenIM may send one callback twice, and both copies route
//! alike). The delivery of X is decided only once every confirm with a
//! sequence number at most X's is resolved and harvested, and no publish
//! is half-registered (`publishing == 0`): then X is unroutable iff a
//! harvested return carries X's id. Waiting for lower seqs costs nothing:
//! the publisher reads confirmations in order anyway.
//!
//! # Why that is enough
//!
//! Facts: (R1) RabbitMQ sends a message's `basic.return` before the ack
//! that confirms it, and sends returns in publish order (a channel routes
//! its publishes one at a time). (L1) lapin's io thread handles frames in
//! order; resolving a confirm stores its result, pops the return FIFO's
//! head (if any) into it, and wakes the confirm's waker synchronously
//! before it resolves another. (T1) Sequence numbers are in delivery-tag
//! order: `send` takes `&mut self` and awaits `basic_publish`, so the sink
//! publishes one message at a time.
//!
//! A. Once every confirm with seq <= X is resolved, X's return (if any)
//! has been popped. Let W be the returns of seq <= X still in the FIFO
//! and U the publishes of seq <= X whose return arrived but whose confirm
//! is unresolved. By R1 W sits ahead of every other return, and
//! |W| <= |U| holds throughout: a return of seq <= X arriving adds one to
//! both; a resolved confirm removes at most one publish from U and pops
//! the FIFO's head, which is in W whenever W is non-empty. With all
//! seq <= X resolved, U is empty (R1), so W is.
//!
//! B. When X is decided, every confirm lapin resolved before L (the last
//! resolved of seq <= X) is harvested. Such a confirm C was registered
//! before we saw L resolved, so (`publishing == 0`) its publish has been
//! armed: polled once with its own waker. If C was resolved before that,
//! arming harvested it. If after, C's waker pushed its seq onto `woken`
//! before L was resolved (L1), hence before we saw L resolved, and the
//! decision drains `woken` after that, in the same critical section.
//!
//! So by A and B, X's return (if any) is in the multiset when X is decided.
//!
//! # Locks
//!
//! A confirm's waker runs on lapin's io thread, inside lapin's own lock
//! for that confirm, and takes only the `woken` list and the delivery's
//! task slot, never the tracker lock. Holders of the tracker lock poll
//! confirms (taking lapin's lock) and take those two locks briefly; no one
//! waits for the tracker lock while holding another lock, so there is no
//! lock-order cycle.
//!
//! A delivery dropped before it is decided (only when the publisher stops)
//! stops blocking the others, but its confirm is still harvested when it
//! wakes, since it may carry another message's return.
//!
//! A publish that fails or is cancelled after lapin registered its confirm
//! leaves a confirm that may carry someone else's return out of our reach.
//! The tracker is then *broken*: every undecided delivery fails (retryable)
//! and the sink opens a new channel, with a new tracker.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tracing::warn;

mod resolution;

pub use resolution::{Decision, Outcome, Resolution, Returned};

/// A publisher confirm, as the tracker polls it.
pub type ConfirmFuture = Pin<Box<dyn Future<Output = Resolution> + Send>>;

/// Matches returns to publishes on one channel (see the module docs).
#[derive(Clone, Default)]
pub struct Confirms {
    inner: Arc<Mutex<Inner>>,
    /// Seqs whose confirm woke. Its own lock, so lapin's io thread never
    /// waits for the tracker.
    woken: Arc<Mutex<Vec<u64>>>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    /// Publishes between [`Confirms::begin`] and [`Publishing::arm`].
    publishing: usize,
    /// A confirm escaped the tracker: nothing undecided can be trusted.
    broken: bool,
    entries: HashMap<u64, Entry>,
    /// Seqs of entries whose confirm is not harvested yet (`first()` is
    /// O(log n), so deciding never scans what is in flight).
    unresolved: BTreeSet<u64>,
    /// Deliveries waiting for lower seqs or for `publishing == 0`.
    blocked: BTreeSet<u64>,
    /// Harvested returns by message id, not yet claimed by their delivery.
    returned: HashMap<String, Vec<Returned>>,
}

struct Entry {
    id: String,
    /// `None` once harvested.
    confirm: Option<ConfirmFuture>,
    /// The only waker `confirm` is ever polled with.
    waker: Waker,
    outcome: Option<Outcome>,
    /// The delivery's task, woken with the confirm.
    task: Arc<Mutex<Option<Waker>>>,
    /// The delivery was dropped: harvest the confirm (it may carry
    /// another publish's return), then forget it.
    abandoned: bool,
}

/// Wakes on lapin's io thread: records the seq and wakes the delivery.
struct ConfirmWaker {
    seq: u64,
    woken: Arc<Mutex<Vec<u64>>>,
    task: Arc<Mutex<Option<Waker>>>,
}

impl Wake for ConfirmWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.woken).push(self.seq);
        let task = lock(&self.task).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// A poisoned lock only means a panic elsewhere; the data is still
/// consistent (every critical section leaves it whole before it can panic).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Confirms {
    /// Call right before `basic_publish`: decisions wait until the publish
    /// is armed, or the returned guard is dropped.
    pub fn begin(&self) -> Publishing {
        let mut inner = lock(&self.inner);
        inner.publishing += 1;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        Publishing {
            confirms: self.clone(),
            seq,
            armed: false,
        }
    }

    /// A publish failed or was cancelled after lapin may have registered
    /// its confirm: this channel's returns can no longer be matched.
    pub fn is_broken(&self) -> bool {
        lock(&self.inner).broken
    }
}

/// A publish in progress; [`Publishing::arm`] it with its confirm.
pub struct Publishing {
    confirms: Confirms,
    seq: u64,
    armed: bool,
}

impl Publishing {
    /// Tracks the confirm of the message whose `message_id` is `id`, and
    /// returns what will become of it.
    pub fn arm(mut self, id: String, confirm: ConfirmFuture) -> Tracked {
        self.armed = true;
        let confirms = self.confirms.clone();
        let seq = self.seq;
        let wake = {
            let mut inner = lock(&confirms.inner);
            let task = Arc::new(Mutex::new(None));
            let waker = Waker::from(Arc::new(ConfirmWaker {
                seq,
                woken: Arc::clone(&confirms.woken),
                task: Arc::clone(&task),
            }));
            inner.entries.insert(
                seq,
                Entry {
                    id,
                    confirm: Some(confirm),
                    waker,
                    outcome: None,
                    task,
                    abandoned: false,
                },
            );
            inner.unresolved.insert(seq);
            inner.poll_confirm(seq);
            inner.publishing -= 1;
            inner.unblocked()
        };
        wake.into_iter().for_each(Waker::wake);
        Tracked {
            confirms,
            seq,
            done: false,
        }
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        if self.armed {
            return;
        }
        let wake = {
            let mut inner = lock(&self.confirms.inner);
            inner.publishing -= 1;
            inner.broken = true;
            inner.unblocked()
        };
        wake.into_iter().for_each(Waker::wake);
    }
}

/// A tracked publish: resolves to what became of it (see the module docs).
pub struct Tracked {
    confirms: Confirms,
    seq: u64,
    done: bool,
}

impl Future for Tracked {
    type Output = Decision;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Decision> {
        let seq = self.seq;
        let (decision, wake) = {
            let mut inner = lock(&self.confirms.inner);
            if let Some(entry) = inner.entries.get(&seq) {
                *lock(&entry.task) = Some(cx.waker().clone());
            }
            // Own confirm first, then `woken`: whatever resolved before a
            // confirm we saw resolved is drained after (proof step B).
            inner.poll_confirm(seq);
            let woken = mem::take(&mut *lock(&self.confirms.woken));
            for woken in woken {
                inner.poll_confirm(woken);
            }
            let decision = inner.decide(seq);
            (decision, inner.unblocked())
        };
        wake.into_iter().for_each(Waker::wake);
        match decision {
            Some(decision) => {
                self.done = true;
                Poll::Ready(decision)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let wake = {
            let mut inner = lock(&self.confirms.inner);
            let seq = self.seq;
            inner.blocked.remove(&seq);
            inner.unresolved.remove(&seq);
            match inner.entries.get_mut(&seq) {
                Some(entry) if entry.confirm.is_some() => {
                    entry.abandoned = true;
                    *lock(&entry.task) = None;
                }
                Some(_) => {
                    inner.entries.remove(&seq);
                }
                None => {}
            }
            inner.unblocked()
        };
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Inner {
    /// Polls `seq`'s confirm with its own waker; harvests it if resolved.
    fn poll_confirm(&mut self, seq: u64) {
        let Some(entry) = self.entries.get_mut(&seq) else {
            return;
        };
        let Some(confirm) = entry.confirm.as_mut() else {
            return;
        };
        let Poll::Ready(resolution) = confirm
            .as_mut()
            .poll(&mut Context::from_waker(&entry.waker))
        else {
            return;
        };
        entry.confirm = None;
        if entry.abandoned {
            self.entries.remove(&seq);
        } else {
            entry.outcome = Some(resolution.outcome);
        }
        self.unresolved.remove(&seq);
        if let Some(returned) = resolution.returned {
            match returned.message_id.clone() {
                Some(id) => self.returned.entry(id).or_default().push(returned),
                None => warn!(
                    reply_code = returned.reply_code,
                    routing_key = %returned.routing_key,
                    "rabbitmq returned a message without a message_id; it is not one of ours"
                ),
            }
        }
    }

    /// `seq`'s decision, or `None` (and `seq` is blocked) if it is too
    /// early to tell.
    fn decide(&mut self, seq: u64) -> Option<Decision> {
        let settled = self.publishing == 0 && self.unresolved.first().is_none_or(|&low| low > seq);
        if !settled && !self.broken {
            self.blocked.insert(seq);
            return None;
        }
        self.blocked.remove(&seq);
        self.unresolved.remove(&seq);
        let entry = self.entries.remove(&seq)?;
        let returned = self.returned.get_mut(&entry.id).and_then(Vec::pop);
        if self.returned.get(&entry.id).is_some_and(Vec::is_empty) {
            self.returned.remove(&entry.id);
        }
        if self.broken {
            return Some(Decision::Failed(
                "a publish on this channel failed, so its returns can no longer be matched to messages"
                    .to_owned(),
            ));
        }
        Some(match entry.outcome {
            Some(Outcome::Ack) => match returned {
                Some(returned) => Decision::Unroutable(returned),
                None => Decision::Delivered,
            },
            Some(Outcome::Nack) => Decision::Nacked,
            Some(Outcome::NotRequested) => Decision::NotRequested,
            Some(Outcome::Failed(err)) => Decision::Failed(err.to_string()),
            // Unreachable: settled means harvested.
            None => Decision::Failed("confirm not harvested".to_owned()),
        })
    }

    /// Wakers of blocked deliveries that may now be decided.
    fn unblocked(&mut self) -> Vec<Waker> {
        if self.publishing > 0 && !self.broken {
            return Vec::new();
        }
        let low = match self.unresolved.first() {
            Some(&low) if !self.broken => low,
            _ => u64::MAX,
        };
        let still = self.blocked.split_off(&low);
        mem::replace(&mut self.blocked, still)
            .into_iter()
            .filter_map(|seq| self.entries.get(&seq))
            .filter_map(|entry| lock(&entry.task).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
