//! The default sink: one structured-mode CloudEvent (JSON) per line on
//! standard output. Needs no broker; logs go to standard error, so stdout
//! can be piped straight into `jq` or another program.
//!
//! A dedicated thread does the (blocking) writes through a buffer and
//! flushes whenever it has nothing more to write, so a burst costs one
//! write call, not one per event. An event counts as delivered once the
//! flush that carried it succeeded.

use std::io::Write;

use futures_util::future::{FutureExt, Shared};
use tokio::sync::{mpsc, oneshot};

use super::{settled, Delivery, Destination, Problem, RejectClass, Rejection, Sink, SinkError};
use crate::normalize::event::Event;

/// Batches handed to the writer thread and not yet written, at most.
const WRITER_QUEUE: usize = 64;

/// Bytes gathered before they are handed to the writer thread even
/// without a [`Sink::flush`].
const GATHER_BYTES: usize = 256 * 1024;

/// Lines, and where to say whether they were written.
type Batch = (Vec<u8>, oneshot::Sender<Result<(), SinkError>>);

/// Resolves when the batch holding an event was written (shared by every
/// event of the batch).
type Written = Shared<futures_util::future::BoxFuture<'static, Result<(), SinkError>>>;

/// Writes JSON lines to standard output (or any writer, for tests).
pub struct StdoutSink {
    batches: mpsc::Sender<Batch>,
    /// Lines sent since the last hand-off, and their batch's outcome.
    gathered: Option<(Batch, Written)>,
    writer: std::thread::JoinHandle<()>,
}

impl StdoutSink {
    /// A sink writing to the process's standard output.
    pub fn new() -> Self {
        Self::with_writer(std::io::stdout())
    }

    /// A sink writing to `out` from its own thread.
    pub fn with_writer<W: Write + Send + 'static>(out: W) -> Self {
        let (batches, receiver) = mpsc::channel(WRITER_QUEUE);
        let writer = std::thread::Builder::new()
            .name("stdout-sink".to_owned())
            .spawn(move || write_batches(out, receiver))
            // Only fails if the OS cannot create a thread at startup.
            .expect("cannot start the stdout writer thread");
        Self {
            batches,
            gathered: None,
            writer,
        }
    }

    /// The batch being gathered (a new one if none is).
    fn gathering(&mut self) -> &mut (Batch, Written) {
        self.gathered.get_or_insert_with(|| {
            let (done, written) = oneshot::channel();
            let written = async move { written.await.unwrap_or_else(|_| Err(gone())) }
                .boxed()
                .shared();
            // Room for a line or two: a block jemalloc keeps in its small
            // size classes (16 KiB was a large one, taken from the arena for
            // every batch, as the writer thread frees it: ~1,500
            // instructions each).
            ((Vec::with_capacity(4 * 1024), done), written)
        })
    }
}

fn gone() -> SinkError {
    SinkError::Retryable("the stdout writer thread stopped".into())
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

/// The writer thread: write what is there, flush when idle, then settle
/// the batches the flush covered.
fn write_batches<W: Write>(out: W, mut receiver: mpsc::Receiver<Batch>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut waiting = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some((lines, done)) = next.take() {
            if result.is_ok() {
                result = out.write_all(&lines);
            }
            waiting.push(done);
            next = receiver.try_recv().ok();
        }
        let result = result.and_then(|()| out.flush()).map_err(|err| {
            SinkError::Retryable(Problem::caused_by("writing to standard output failed", err))
        });
        for done in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn destination(&self, _event: &Event) -> &str {
        "stdout"
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let ((lines, _), written) = self.gathering();
        let start = lines.len();
        if let Err(err) = event.write_structured_json(lines) {
            lines.truncate(start);
            let refused = SinkError::from(Rejection {
                class: RejectClass::InvalidData,
                code: None,
                destination: Destination::stdout(),
                problem: Problem::caused_by("event data is not JSON", err),
            });
            return Ok(settled(Err(refused)));
        }
        lines.push(b'\n');
        let delivery: Delivery = Box::pin(written.clone());
        if lines.len() >= GATHER_BYTES {
            self.flush().await;
        }
        Ok(delivery)
    }

    async fn flush(&mut self) {
        if let Some((batch, _)) = self.gathered.take() {
            // A stopped thread drops the batch: its deliveries fail.
            let _ = self.batches.send(batch).await;
        }
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn close(mut self) {
        self.flush().await;
        drop(self.batches);
        // The thread ends once it has written what it holds.
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::CallbackKind;
    use openim_bridge_test_kit::SharedBuffer;
    use std::sync::Arc;

    #[tokio::test]
    async fn writes_one_cloudevent_per_line() {
        let event = Event {
            id: "m1".into(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".into(),
            key: "g1".into(),
            data: br#"{"a":1}"#.to_vec().into(),
            traceparent: String::new(),
            tracestate: String::new(),
        };
        let out = SharedBuffer::default();
        let mut sink = StdoutSink::with_writer(out.clone());
        let first = sink.send(&event).await.unwrap();
        let second = sink.send(&event).await.unwrap();
        assert!(out.is_empty(), "gathered until the publisher flushes");
        sink.flush().await;
        first.await.unwrap();
        second.await.unwrap();
        let third = sink.send(&event).await.unwrap();
        sink.close().await;
        third.await.unwrap();
        let (text, lines) = out.lines();
        assert_eq!(lines.len(), 3, "close writes what was gathered: {text}");
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["type"], "io.openim.group.message.sent");
        assert_eq!(doc["subject"], "g1");
        assert_eq!(doc["data"]["a"], 1);
    }

    #[tokio::test]
    async fn data_that_is_not_json_is_refused_and_the_stream_stays_whole() {
        let good = Event {
            id: "m1".into(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".into(),
            key: "g\"1".into(),
            data: br#"{"a":"\u00e9"}"#.to_vec().into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: String::new(),
        };
        let out = SharedBuffer::default();
        let mut sink = StdoutSink::with_writer(out.clone());
        for data in [&b""[..], b" [1", b"{\"a\":1"] {
            let bad = Event {
                data: data.to_vec().into(),
                ..good.clone()
            };
            let refused = sink.send(&bad).await.unwrap().await.unwrap_err();
            assert!(refused.to_string().contains("not JSON"), "{refused}");
        }
        let delivered = sink.send(&good).await.unwrap();
        // Another JSON value than an object is checked, then written.
        let array = Event {
            data: b" [1] ".to_vec().into(),
            ..good.clone()
        };
        let also = sink.send(&array).await.unwrap();
        sink.close().await;
        delivered.await.unwrap();
        also.await.unwrap();
        let (text, lines) = out.lines();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].ends_with(r#","data":[1]}"#), "{text}");
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(doc["subject"], "g\"1");
        assert_eq!(doc["traceparent"], good.traceparent.as_str());
        assert_eq!(doc["data"]["a"], "\u{e9}");
        // `data` as it was, last.
        assert!(lines[0].ends_with(r#","data":{"a":"\u00e9"}}"#), "{text}");
    }
}
