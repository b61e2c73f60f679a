//! What `replay` reads: dead-letter lines and invalid-callback lines, each
//! turned into an event the way a live bridge would make it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::normalize::{self, Event};
use crate::sink::dead_letter::{self, line::Stored};

/// File names of the invalid-callback log and what replay writes of it.
const INVALID_PREFIX: &str = "invalid-callbacks";

/// The invalid-callback log itself.
const INVALID_FILE: &str = crate::ingress::invalid::FILE_NAME;

/// The files to read for `inputs`: a folder stands for its dead-letter
/// files (rotated ones first) and its invalid-callback files, not for what
/// earlier replays wrote out (`*.replay-*.jsonl`: name those to replay them).
pub fn expand(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            files.extend(dead_letter::files(input));
            std::fs::metadata(input)?;
            files.extend(dead_letter::logs(input, INVALID_PREFIX, INVALID_FILE));
        } else {
            // Fails here, naming the file, rather than later.
            std::fs::metadata(input)?;
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// A refused callback as the invalid-callback log keeps it.
#[derive(Debug, Deserialize)]
pub struct Invalid {
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// Why it was refused then.
    #[serde(default)]
    pub reason: String,
    /// The request path (without the token).
    #[serde(default)]
    pub path: String,
    /// The exact body.
    pub body_base64: String,
}

/// One line of an input file.
pub enum Line {
    /// A dead-lettered event.
    DeadLetter(Stored),
    /// A refused callback.
    Invalid(Invalid),
}

impl Line {
    /// Reads one line of either kind.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        /// Which kind of line, without building it (the event's data is
        /// then read from the line's own bytes, exactly as stored).
        #[derive(Deserialize)]
        struct Peek {
            event: Option<serde::de::IgnoredAny>,
            body_base64: Option<serde::de::IgnoredAny>,
        }
        let peek: Peek =
            serde_json::from_slice(bytes).map_err(|err| format!("not a JSON line: {err}"))?;
        if peek.event.is_some() {
            serde_json::from_slice(bytes)
                .map(Line::DeadLetter)
                .map_err(|err| format!("not a dead-letter line: {err}"))
        } else if peek.body_base64.is_some() {
            serde_json::from_slice(bytes)
                .map(Line::Invalid)
                .map_err(|err| format!("not an invalid-callback line: {err}"))
        } else {
            Err(
                "neither a dead-letter line (`event`) nor an invalid-callback line (`body_base64`)"
                    .to_owned(),
            )
        }
    }

    /// When the line was written.
    pub fn written_at(&self) -> Option<OffsetDateTime> {
        let at = match self {
            Line::DeadLetter(line) => &line.dead_lettered_at,
            Line::Invalid(line) => &line.received_at,
        };
        OffsetDateTime::parse(at, &Rfc3339).ok()
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        match self {
            Line::DeadLetter(line) => &line.reason,
            Line::Invalid(line) => &line.reason,
        }
    }

    /// The OpenIM callback command it came from, if it says.
    pub fn command(&self) -> Option<String> {
        match self {
            Line::DeadLetter(line) => line.event.command(),
            Line::Invalid(line) => {
                let body = line.body().ok()?;
                let peek: serde_json::Value = serde_json::from_slice(&body).ok()?;
                peek.get("callbackCommand")
                    .and_then(|command| command.as_str())
                    .map(str::to_owned)
                    .or_else(|| url_command(&line.path))
            }
        }
    }
}

impl Invalid {
    /// The body's bytes.
    pub fn body(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body_base64)
            .map_err(|err| format!("body_base64: {err}"))
    }

    /// The callback through today's normalize, as a live callback with
    /// this path and body would go (the token was checked when it was
    /// logged). `Err`: why it is still refused.
    pub fn normalize(&self, source: &Arc<str>, publish_unknown: bool) -> Result<Event, String> {
        let body = self.body()?;
        let received_at = OffsetDateTime::parse(&self.received_at, &Rfc3339)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let url_command = url_command(&self.path);
        let context = normalize::Context {
            source,
            received_at,
            url_command: url_command.as_deref(),
            publish_unknown,
        };
        normalize::callback(&body, &context).map_err(|refused| refused.to_string())
    }
}

/// The command a logged path names, as the live handler reads it.
fn url_command(path: &str) -> Option<String> {
    let uri: hyper::Uri = path.parse().ok()?;
    crate::ingress::url::url_command(&uri)
}

/// Where the lines that still fail go: beside `input`, a new file of the
/// same kind (so it can be replayed in turn).
pub fn failed_path(input: &Path, dead_letters: bool, stamp: &str) -> PathBuf {
    let dir = input.parent().unwrap_or(Path::new("."));
    if dead_letters {
        dir.join(format!("{}replay-{stamp}.jsonl", dead_letter::FILE_PREFIX))
    } else {
        dir.join(format!("{INVALID_PREFIX}.replay-{stamp}.jsonl"))
    }
}
