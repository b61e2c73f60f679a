//! The default sink: one structured-mode CloudEvent (JSON) per line on
//! standard output. Needs no broker; logs go to standard error, so stdout
//! can be piped straight into `jq` or another program.
//!
//! A dedicated thread does the (blocking) writes through a buffer and
//! flushes whenever it has nothing more to write, so a burst costs one
//! write call, not one per event. An event counts as delivered once the
//! flush that carried it succeeded.

use std::io::Write;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::{settled, Delivery, Sink, SinkError};
use crate::normalize::event::{Event, DATA_CONTENT_TYPE, SPEC_VERSION};

/// Lines handed to the writer thread and not yet written, at most.
const WRITER_QUEUE: usize = 4096;

type Line = (Vec<u8>, oneshot::Sender<Result<(), SinkError>>);

/// Writes JSON lines to standard output (or any writer, for tests).
pub struct StdoutSink {
    lines: mpsc::Sender<Line>,
    writer: std::thread::JoinHandle<()>,
}

impl StdoutSink {
    /// A sink writing to the process's standard output.
    pub fn new() -> Self {
        Self::with_writer(std::io::stdout())
    }

    /// A sink writing to `out` from its own thread.
    pub fn with_writer<W: Write + Send + 'static>(out: W) -> Self {
        let (lines, receiver) = mpsc::channel(WRITER_QUEUE);
        let writer = std::thread::Builder::new()
            .name("stdout-sink".to_owned())
            .spawn(move || write_lines(out, receiver))
            // Only fails if the OS cannot create a thread at startup.
            .expect("cannot start the stdout writer thread");
        Self { lines, writer }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

/// The writer thread: write what is there, flush when idle, then settle
/// the deliveries the flush covered.
fn write_lines<W: Write>(out: W, mut receiver: mpsc::Receiver<Line>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut waiting = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some((line, done)) = next.take() {
            if result.is_ok() {
                result = out.write_all(&line);
            }
            waiting.push(done);
            next = receiver.try_recv().ok();
        }
        let result = result.and_then(|()| out.flush()).map_err(|err| {
            SinkError::Retryable(format!("writing to standard output failed: {err}"))
        });
        for done in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

/// CloudEvents JSON format (structured mode).
#[derive(Serialize)]
struct Structured<'a> {
    specversion: &'a str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    time: &'a str,
    subject: &'a str,
    datacontenttype: &'a str,
    data: &'a RawValue,
}

/// Renders `event` as one structured-mode CloudEvents JSON object.
pub fn structured_json(event: &Event, out: &mut Vec<u8>) -> Result<(), SinkError> {
    let data: &RawValue = serde_json::from_slice(&event.data)
        .map_err(|err| SinkError::Rejected(format!("event data is not JSON: {err}")))?;
    let doc = Structured {
        specversion: SPEC_VERSION,
        id: &event.id,
        source: &event.source,
        event_type: event.event_type(),
        time: &event.time,
        subject: &event.key,
        datacontenttype: DATA_CONTENT_TYPE,
        data,
    };
    serde_json::to_writer(out, &doc).map_err(|err| SinkError::Rejected(err.to_string()))
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let mut line = Vec::with_capacity(event.data.len() + 256);
        if let Err(err) = structured_json(event, &mut line) {
            return Ok(settled(Err(err)));
        }
        line.push(b'\n');
        let (done, written) = oneshot::channel();
        let gone = || SinkError::Retryable("the stdout writer thread stopped".to_owned());
        self.lines.send((line, done)).await.map_err(|_| gone())?;
        Ok(Box::pin(async move {
            written.await.unwrap_or_else(|_| Err(gone()))
        }))
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn close(self) {
        drop(self.lines);
        // The thread ends once it has written what it holds.
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::CallbackKind;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_one_cloudevent_per_line() {
        let event = Event {
            id: "m1".into(),
            kind: CallbackKind::GROUP_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".into(),
            key: "g1".into(),
            data: br#"{"a":1}"#.to_vec().into(),
        };
        let out = SharedBuffer::default();
        let mut sink = StdoutSink::with_writer(out.clone());
        sink.send(&event).await.unwrap().await.unwrap();
        sink.send(&event).await.unwrap().await.unwrap();
        sink.close().await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["type"], "io.openim.group.message.sent");
        assert_eq!(doc["subject"], "g1");
        assert_eq!(doc["data"]["a"], 1);
    }
}
