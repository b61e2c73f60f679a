//! Arbitrary bytes as a callback body: the stage's one call (command peek,
//! classification, parse) and the parser of every known command (and the
//! unknown-command path) must return Ok or Err, never panic or hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use openim_bridge::normalize::{callback, normalize, CallbackKind, Context};
use time::OffsetDateTime;

fuzz_target!(|body: &[u8]| {
    let source: Arc<str> = Arc::from("openim");
    let context = Context {
        source: &source,
        received_at: OffsetDateTime::UNIX_EPOCH,
        url_command: None,
        publish_unknown: true,
    };
    let _ = callback(body, &context);
    for kind in CallbackKind::all() {
        if let Ok(event) = normalize(kind, body, OffsetDateTime::UNIX_EPOCH, &source) {
            // Whatever is accepted must produce valid JSON data.
            assert!(serde_json::from_slice::<serde_json::Value>(&event.data).is_ok());
        }
    }
});
