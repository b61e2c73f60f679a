use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A confirm resolved by the test, waking its waker at once as lapin's
/// io thread does.
#[derive(Clone, Default)]
struct FakeConfirm(Arc<Mutex<(Option<Resolution>, Option<Waker>)>>);

impl FakeConfirm {
    fn future(&self) -> ConfirmFuture {
        let state = Arc::clone(&self.0);
        Box::pin(std::future::poll_fn(move |cx| {
            let mut state = lock(&state);
            match state.0.take() {
                Some(resolution) => Poll::Ready(resolution),
                None => {
                    state.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }))
    }

    /// Acks, carrying the return of the message `returned` (if any).
    fn ack(&self, returned: Option<&str>) {
        let waker = {
            let mut state = lock(&self.0);
            state.0 = Some(Resolution {
                outcome: Outcome::Ack,
                returned: returned.map(|id| Returned {
                    message_id: Some(id.to_owned()),
                    reply_code: 312,
                    reply_text: "NO_ROUTE".to_owned(),
                    routing_key: format!("key.{id}"),
                }),
            });
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Counts its wakes.
#[derive(Default)]
struct Task(AtomicUsize);

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn publish(confirms: &Confirms, id: &str) -> (FakeConfirm, Tracked) {
    let confirm = FakeConfirm::default();
    let pending = confirms.begin().arm(id.to_owned(), confirm.future());
    (confirm, pending)
}

fn poll(tracked: &mut Tracked, task: &Arc<Task>) -> Poll<Decision> {
    let waker = Waker::from(Arc::clone(task));
    Pin::new(tracked).poll(&mut Context::from_waker(&waker))
}

fn unroutable(id: &str) -> Poll<Decision> {
    Poll::Ready(Decision::Unroutable(Returned {
        message_id: Some(id.to_owned()),
        reply_code: 312,
        reply_text: "NO_ROUTE".to_owned(),
        routing_key: format!("key.{id}"),
    }))
}

#[test]
fn a_return_on_an_earlier_confirm_belongs_to_its_message() {
    let confirms = Confirms::default();
    let task = Arc::new(Task::default());
    let (a, mut routable) = publish(&confirms, "a");
    let (x, mut lost) = publish(&confirms, "x");
    assert_eq!(poll(&mut routable, &task), Poll::Pending);
    assert_eq!(poll(&mut lost, &task), Poll::Pending);
    // One multiple ack: lapin hands x's return to a's confirm.
    a.ack(Some("x"));
    x.ack(None);
    assert_eq!(poll(&mut lost, &task), unroutable("x"));
    assert_eq!(poll(&mut routable, &task), Poll::Ready(Decision::Delivered));
}

#[test]
fn a_return_on_a_later_confirm_is_waited_for() {
    let confirms = Confirms::default();
    let task = Arc::new(Task::default());
    let (a, mut lost_a) = publish(&confirms, "a");
    let (x, mut lost_x) = publish(&confirms, "x");
    assert_eq!(poll(&mut lost_a, &task), Poll::Pending);
    // Both unroutable; a multiple ack walked in HashMap order resolves
    // x first, and lapin hands it a's return (the FIFO's head).
    x.ack(Some("a"));
    assert_eq!(
        poll(&mut lost_x, &task),
        Poll::Pending,
        "x's return may come later"
    );
    let wakes = task.0.load(Ordering::SeqCst);
    a.ack(Some("x"));
    assert!(task.0.load(Ordering::SeqCst) > wakes, "a's confirm wakes");
    assert_eq!(poll(&mut lost_a, &task), unroutable("a"));
    assert_eq!(poll(&mut lost_x, &task), unroutable("x"));
}

#[test]
fn a_blocked_delivery_is_woken_when_lower_ones_resolve() {
    let confirms = Confirms::default();
    let (a, mut first) = publish(&confirms, "a");
    let (x, mut second) = publish(&confirms, "x");
    let (first_task, second_task) = (Arc::new(Task::default()), Arc::new(Task::default()));
    x.ack(None);
    assert_eq!(poll(&mut second, &second_task), Poll::Pending);
    let before = second_task.0.load(Ordering::SeqCst);
    a.ack(None);
    assert_eq!(
        poll(&mut first, &first_task),
        Poll::Ready(Decision::Delivered)
    );
    assert!(second_task.0.load(Ordering::SeqCst) > before);
    assert_eq!(
        poll(&mut second, &second_task),
        Poll::Ready(Decision::Delivered)
    );
}

#[test]
fn decisions_wait_for_a_publish_in_progress() {
    let confirms = Confirms::default();
    let task = Arc::new(Task::default());
    let (x, mut pending) = publish(&confirms, "x");
    x.ack(None);
    // A publish is registered with lapin but not armed: its confirm
    // could already carry x's return.
    let publishing = confirms.begin();
    assert_eq!(poll(&mut pending, &task), Poll::Pending);
    let wakes = task.0.load(Ordering::SeqCst);
    let y = FakeConfirm::default();
    y.ack(Some("x"));
    let _later = publishing.arm("y".to_owned(), y.future());
    assert!(task.0.load(Ordering::SeqCst) > wakes);
    assert_eq!(poll(&mut pending, &task), unroutable("x"));
}

#[test]
fn duplicate_ids_each_claim_one_return() {
    let confirms = Confirms::default();
    let task = Arc::new(Task::default());
    let (first, mut one) = publish(&confirms, "d");
    let (second, mut two) = publish(&confirms, "d");
    first.ack(Some("d"));
    second.ack(Some("d"));
    assert_eq!(poll(&mut one, &task), unroutable("d"));
    assert_eq!(poll(&mut two, &task), unroutable("d"));
    assert!(lock(&confirms.inner).returned.is_empty());
}

#[test]
fn a_publish_that_escaped_the_tracker_fails_what_is_in_flight() {
    let confirms = Confirms::default();
    let task = Arc::new(Task::default());
    let (_x, mut pending) = publish(&confirms, "x");
    drop(confirms.begin());
    assert!(confirms.is_broken());
    assert!(matches!(
        poll(&mut pending, &task),
        Poll::Ready(Decision::Failed(_))
    ));
}
