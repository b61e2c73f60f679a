//! One spooled event on disk: a frame (length + CRC32C) around a small
//! binary encoding of [`Event`].
//!
//! ```text
//! frame   = len: u32 LE | crc32c(payload): u32 LE | payload (len bytes)
//! payload = version: u8 (2) | kind: u8 | id | source | time | key | data
//!           | traceparent | tracestate
//! field   = len: u32 LE | bytes
//! ```
//!
//! Version 1 records (written before tracing) have no trace fields and are
//! still read.
//!
//! Segments are preallocated with zeros, so a header of eight zero bytes
//! ([`Frame::End`]) marks the logical end of a segment's records.

use std::sync::Arc;

use crate::normalize::{CallbackKind, Event};

/// Bytes before the payload: length and checksum.
pub const HEADER_LEN: usize = 8;

/// Largest payload accepted when reading; anything larger is corruption
/// (the HTTP body limit keeps real records far below it).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

const VERSION: u8 = 2;

/// Records without the trace context, from older bridges.
const VERSION_WITHOUT_TRACE: u8 = 1;

/// [`Frame::Corrupt`]'s reason when the length is plausible and the
/// checksum is not: only this frame is damaged.
pub const CHECKSUM_MISMATCH: &str = "checksum mismatch";

/// What a read of one frame found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole, intact payload, and the bytes the frame took.
    Record(&'a [u8], usize),
    /// The buffer ends inside the frame (a torn write, or more to read).
    Incomplete,
    /// The frame is damaged: impossible length or checksum mismatch.
    Corrupt(&'static str),
    /// A header of zeros: the preallocated space after the last record.
    End,
}

/// The payload's fields, in order.
fn fields(event: &Event) -> [&[u8]; 7] {
    [
        event.id.as_bytes(),
        event.source.as_bytes(),
        event.time.as_bytes(),
        event.key.as_bytes(),
        &event.data,
        event.traceparent.as_bytes(),
        event.tracestate.as_bytes(),
    ]
}

/// The length of `event`'s frame ([`encode`]'s result), without encoding it.
pub fn encoded_len(event: &Event) -> usize {
    let fields = fields(event);
    HEADER_LEN + 2 + fields.iter().map(|field| 4 + field.len()).sum::<usize>()
}

/// Appends the framed encoding of `event` to `out`; returns its length.
pub fn encode(event: &Event, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(VERSION);
    out.push(kind_code(event.kind));
    for field in fields(event) {
        put_field(out, field);
    }
    let payload_len = out.len() - start - HEADER_LEN;
    let crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    // Payloads are bounded by the HTTP body limit, far below 4 GiB.
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// Reads the frame at the start of `buf`.
pub fn frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < HEADER_LEN {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 && crc == 0 {
        return Frame::End;
    }
    if len == 0 || len > MAX_PAYLOAD {
        return Frame::Corrupt("impossible record length");
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Frame::Incomplete;
    };
    if crc32c::crc32c(payload) != crc {
        return Frame::Corrupt(CHECKSUM_MISMATCH);
    }
    Frame::Record(payload, HEADER_LEN + len)
}

/// Decodes a payload that passed its checksum.
pub fn decode(payload: &[u8]) -> Result<Event, &'static str> {
    let mut rest = payload;
    let mut byte = || -> Result<u8, &'static str> {
        let (&b, tail) = rest.split_first().ok_or("payload too short")?;
        rest = tail;
        Ok(b)
    };
    let count = match byte()? {
        VERSION => 7,
        VERSION_WITHOUT_TRACE => 5,
        _ => return Err("unknown record version"),
    };
    let kind = kind_from_code(byte()?).ok_or("unknown callback kind")?;
    let mut fields: [&[u8]; 7] = [&[]; 7];
    for field in &mut fields[..count] {
        *field = take_field(&mut rest)?;
    }
    if !rest.is_empty() {
        return Err("trailing bytes in payload");
    }
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| "field is not UTF-8");
    Ok(Event {
        id: text(fields[0])?,
        kind,
        source: Arc::from(text(fields[1])?),
        time: text(fields[2])?,
        key: text(fields[3])?,
        data: fields[4].to_vec().into(),
        traceparent: text(fields[5])?,
        tracestate: text(fields[6])?,
    })
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(field);
}

fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    if rest.len() < 4 {
        return Err("payload too short");
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let field = rest.get(4..4 + len).ok_or("field longer than payload")?;
    *rest = &rest[4 + len..];
    Ok(field)
}

/// Stable on-disk codes (the catalog's): never reuse or renumber one.
fn kind_code(kind: CallbackKind) -> u8 {
    kind.code()
}

fn kind_from_code(code: u8) -> Option<CallbackKind> {
    CallbackKind::from_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn event(id: &str) -> Event {
        Event {
            id: id.to_owned(),
            kind: CallbackKind::SINGLE_MESSAGE_SENT,
            source: Arc::from("openim"),
            time: "2024-07-01T02:13:20.123Z".to_owned(),
            key: "si_a_b".to_owned(),
            data: br#"{"x":"\u00e9"}"#.to_vec().into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            tracestate: "congo=t61rcWkgMzE".to_owned(),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let len = encode(&event("m1"), &mut buf);
        assert_eq!(len, buf.len());
        assert_eq!(encoded_len(&event("m1")), len);
        // Appended after other bytes, as the writer batches frames.
        let mut batch = vec![7; 5];
        assert_eq!(encode(&event("m1"), &mut batch), len);
        assert_eq!(&batch[5..], &buf[..]);
        let Frame::Record(payload, used) = frame(&buf) else {
            panic!("{:?}", frame(&buf))
        };
        assert_eq!(used, len);
        let back = decode(payload).unwrap();
        assert_eq!((back.id.as_str(), back.key.as_str()), ("m1", "si_a_b"));
        assert_eq!(back.kind, CallbackKind::SINGLE_MESSAGE_SENT);
        assert_eq!(back.data, event("m1").data);
        assert_eq!(back.traceparent, event("m1").traceparent);
        assert_eq!(back.tracestate, "congo=t61rcWkgMzE");
    }

    #[test]
    fn version_1_records_are_read_without_a_trace() {
        let old = event("m1");
        let mut payload = vec![1, kind_code(old.kind)];
        for field in [
            old.id.as_bytes(),
            old.source.as_bytes(),
            old.time.as_bytes(),
            old.key.as_bytes(),
            &old.data,
        ] {
            put_field(&mut payload, field);
        }
        let back = decode(&payload).unwrap();
        assert_eq!((back.id.as_str(), back.data), ("m1", old.data));
        assert_eq!(
            (back.traceparent.as_str(), back.tracestate.as_str()),
            ("", "")
        );
    }

    #[test]
    fn zeros_mark_the_end_and_a_zero_length_with_a_checksum_is_damage() {
        assert_eq!(frame(&[0; 64]), Frame::End);
        let mut header = [0u8; 16];
        header[4] = 1;
        assert_eq!(frame(&header), Frame::Corrupt("impossible record length"));
        let mut buf = Vec::new();
        encode(&event("m1"), &mut buf);
        let len = buf.len();
        buf.extend_from_slice(&[0; 32]);
        assert!(matches!(frame(&buf), Frame::Record(_, used) if used == len));
    }

    #[test]
    fn torn_and_flipped_frames_are_detected() {
        let mut buf = Vec::new();
        encode(&event("m1"), &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(frame(&buf[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        for i in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert_eq!(
                frame(&bad),
                Frame::Corrupt("checksum mismatch"),
                "flip at {i}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Frame::Record(payload, _) = frame(&bytes) {
                let _ = decode(payload);
            }
            let _ = decode(&bytes);
        }
    }
}
