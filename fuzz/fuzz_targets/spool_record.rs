//! Arbitrary bytes as spool contents: the frame reader and the record
//! decoder must never panic, and a record that passes its checksum and
//! decodes must encode back to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openim_bridge::spool_record::{decode, encode, frame, Frame};

fuzz_target!(|bytes: &[u8]| {
    let mut rest = bytes;
    while let Frame::Record(payload, used) = frame(rest) {
        if let Ok(event) = decode(payload) {
            let mut again = Vec::new();
            encode(&event, &mut again);
            assert_eq!(&again[..], &rest[..used]);
        }
        rest = &rest[used..];
    }
});
