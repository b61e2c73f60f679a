//! The W3C trace context every event carries (the CloudEvents distributed
//! tracing extension: `traceparent`, and `tracestate` when the trace has
//! one), so a consumer's work joins the trace of the callback OpenIM sent.

use std::fmt;

/// A parsed `traceparent`: `00-<trace id>-<parent id>-<flags>`, in
/// lowercase hex (W3C Trace Context, level 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace, shared by every span of it (never all zeros).
    pub trace_id: [u8; 16],
    /// The span the event was created in (never all zeros).
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 says the trace is sampled (recorded).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header. A later version's value is read as
    /// version 00 (its first four fields), as the specification asks;
    /// anything malformed is `None`.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let bytes = header.as_bytes();
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&bytes[0..2])?[0];
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        if bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        let parent = Self {
            trace_id: hex(&bytes[3..35])?,
            parent_id: hex(&bytes[36..52])?,
            flags: hex::<1>(&bytes[53..55])?[0],
        };
        let valid = parent.trace_id != [0; 16] && parent.parent_id != [0; 8];
        valid.then_some(parent)
    }

    /// Whether the trace is recorded (the sampled flag).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// As an OpenTelemetry remote span context, with `tracestate` when the
    /// event has one (a malformed one is left out).
    #[cfg(feature = "opentelemetry")]
    pub fn span_context(&self, tracestate: Option<&str>) -> opentelemetry::trace::SpanContext {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let state = tracestate
            .and_then(|state| state.parse::<TraceState>().ok())
            .unwrap_or_default();
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.parent_id),
            TraceFlags::new(self.flags),
            true,
            state,
        )
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written into one buffer: this runs once per event.
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        write_hex(&mut out[3..35], &self.trace_id);
        write_hex(&mut out[36..52], &self.parent_id);
        write_hex(&mut out[53..55], &[self.flags]);
        // Only ASCII digits, letters and dashes were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// `bytes` as lowercase hex digits, two per byte, into `out`.
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    debug_assert_eq!(out.len(), 2 * bytes.len());
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        assert!(parent.sampled());
        assert_eq!(parent.parent_id[0], 0x00);
        assert_eq!(parent.parent_id[7], 0xb7);
        assert_eq!(parent.to_string(), EXAMPLE);
    }

    #[test]
    fn every_byte_is_written_as_two_lowercase_digits_in_its_place() {
        for (trace, parent, flags) in [(0x01, 0x02, 0x00), (0xff, 0xa0, 0xff), (0x3c, 0x9e, 0x0f)] {
            let value = TraceParent {
                trace_id: std::array::from_fn(|i| trace ^ i as u8),
                parent_id: std::array::from_fn(|i| parent ^ (i as u8) << 4),
                flags,
            };
            let header = value.to_string();
            let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            let expected = format!(
                "00-{}-{}-{flags:02x}",
                hex(&value.trace_id),
                hex(&value.parent_id)
            );
            assert_eq!(header, expected);
            assert_eq!(TraceParent::parse(&header), Some(value));
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version: its first four fields are read.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        assert!(!TraceParent::parse(later).unwrap().sampled());
    }
}
