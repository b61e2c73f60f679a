//! The default sink: one structured-mode CloudEvent (JSON) per line on
//! standard output. Needs no broker; logs go to standard error, so stdout
//! can be piped straight into `jq` or another program.

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{settled, Delivery, Sink, SinkError};
use crate::normalize::event::{Event, DATA_CONTENT_TYPE, SPEC_VERSION};

/// Writes JSON lines to any async writer (standard output in production).
pub struct StdoutSink<W = tokio::io::Stdout> {
    out: W,
    line: Vec<u8>,
}

impl StdoutSink {
    /// A sink writing to the process's standard output.
    pub fn new() -> Self {
        Self::with_writer(tokio::io::stdout())
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> StdoutSink<W> {
    /// A sink writing to `out`.
    pub fn with_writer(out: W) -> Self {
        Self { out, line: Vec::with_capacity(2048) }
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

impl<W: AsyncWrite + Unpin + Send + 'static> Sink for StdoutSink<W> {
    fn name(&self) -> &'static str {
        "stdout"
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        self.line.clear();
        if let Err(err) = structured_json(event, &mut self.line) {
            return Ok(settled(Err(err)));
        }
        self.line.push(b'\n');
        let written = async {
            self.out.write_all(&self.line).await?;
            self.out.flush().await
        };
        written
            .await
            .map_err(|err| SinkError::Retryable(format!("writing to standard output failed: {err}")))?;
        Ok(settled(Ok(())))
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn close(mut self) {
        // Nothing can be done about a failing stdout at exit.
        let _ = self.out.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::CallbackKind;
    use std::sync::Arc;

    #[tokio::test]
    async fn writes_one_cloudevent_per_line() {
        let event = Event {
            id: "m1".into(),
            kind: CallbackKind::GroupMessageSent,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".into(),
            key: "g1".into(),
            data: br#"{"a":1}"#.to_vec().into(),
        };
        let mut sink = StdoutSink::with_writer(Vec::new());
        sink.send(&event).await.unwrap().await.unwrap();
        sink.send(&event).await.unwrap().await.unwrap();
        let text = String::from_utf8(sink.out.clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["type"], "io.openim.group.message.sent");
        assert_eq!(doc["subject"], "g1");
        assert_eq!(doc["data"]["a"], 1);
    }
}
