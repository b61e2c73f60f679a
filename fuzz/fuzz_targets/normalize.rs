//! Arbitrary bytes as a callback body: the command peek and the parser of
//! every known command (and the unknown-command path) must return Ok or Err, never panic or hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use openim_bridge::normalize::{normalize, peek_command, CallbackKind};
use time::OffsetDateTime;

fuzz_target!(|body: &[u8]| {
    let _ = peek_command(body);
    let source: Arc<str> = Arc::from("openim");
    for kind in CallbackKind::all() {
        if let Ok(event) = normalize(kind, body, OffsetDateTime::UNIX_EPOCH, &source) {
            // Whatever is accepted must produce valid JSON data.
            assert!(serde_json::from_slice::<serde_json::Value>(&event.data).is_ok());
        }
    }
});
