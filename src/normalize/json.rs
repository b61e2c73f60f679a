//! Writing an event's JSON field by field, on every callback's path.
//!
//! serde_json checks every byte of every field name and string for
//! characters to escape, one byte at a time: in memory mode that was the
//! largest single cost of an ack (callgrind: `format_escaped_str`, 15% of
//! the bridge's instructions, about 10,000 per ack). Here a name known when
//! compiling is copied as it is, and a string with nothing to escape (every
//! string a callback carries) is checked a block at a time and copied in
//! one go. Anything else goes through serde_json, so the output is
//! serde_json's, byte for byte; a message's `content` alone is copied as
//! the body's JSON string, escapes as OpenIM wrote them ([`Object::raw`]).

use serde::Serialize;

/// A JSON object being appended to a buffer; [`Object::end`] closes it.
pub(super) struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    /// Opens an object at the end of `out`.
    pub(super) fn start(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"name":`; the value comes next. Names are the code's own
    /// identifiers: nothing in them to escape.
    fn key(&mut self, name: &'static str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(name), "{name}");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field.
    pub(super) fn str(&mut self, name: &'static str, value: &str) -> serde_json::Result<()> {
        push_str(self.key(name), value)
    }

    /// A string field, `null` when absent.
    pub(super) fn opt_str(
        &mut self,
        name: &'static str,
        value: Option<&str>,
    ) -> serde_json::Result<()> {
        match value {
            Some(value) => self.str(name, value),
            None => self.value(name, &()),
        }
    }

    /// Any other field (numbers, `null`s, lists, maps), by serde_json.
    pub(super) fn value(
        &mut self,
        name: &'static str,
        value: &(impl Serialize + ?Sized),
    ) -> serde_json::Result<()> {
        serde_json::to_writer(self.key(name), value)
    }

    /// A field whose value is JSON already, copied as it is.
    pub(super) fn raw(&mut self, name: &'static str, json: &[u8]) {
        self.key(name).extend_from_slice(json);
    }

    /// A field whose value is an object, written through the returned
    /// [`Object`] (ended before this one goes on).
    pub(super) fn object(&mut self, name: &'static str) -> Object<'_> {
        Object::start(self.key(name))
    }

    /// Closes the object.
    pub(super) fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `value` as a JSON string, exactly as serde_json writes it.
fn push_str(out: &mut Vec<u8>, value: &str) -> serde_json::Result<()> {
    if needs_escape(value) {
        return serde_json::to_writer(out, value);
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether serde_json escapes anything in `value`: a quote, a backslash or
/// a control character below U+0020. Checked 16 bytes at a time without
/// stopping inside a block, which the compiler turns into vector compares.
fn needs_escape(value: &str) -> bool {
    let escapes = |block: &[u8]| {
        block.iter().fold(false, |found, &b| {
            found | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    value.as_bytes().chunks(16).any(escapes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(value: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for value in [
            "",
            "plain",
            "{\"content\":\"hello team\"}",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{0}\u{1f} and \u{7f}",
            "ünï 中文 🙂 \u{2028}",
            "a string longer than one block of sixteen bytes, with a \" late",
        ] {
            assert_eq!(written(value), serde_json::to_string(value).unwrap());
        }
    }

    #[test]
    fn an_object_matches_serde_json_field_for_field() {
        let mut out = Vec::new();
        let mut object = Object::start(&mut out);
        object.str("a", "x\"y").unwrap();
        object.opt_str("b", None).unwrap();
        object.value("c", &[1, 2]).unwrap();
        let mut inner = object.object("d");
        inner.value("e", &-7i64).unwrap();
        inner.end();
        object.object("f").end();
        object.raw("g", b"[true]");
        object.end();
        let expected = serde_json::json!(
            {"a": "x\"y", "b": null, "c": [1, 2], "d": {"e": -7}, "f": {}, "g": [true]}
        );
        assert_eq!(out, serde_json::to_vec(&expected).unwrap());
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(value in any::<String>()) {
            prop_assert_eq!(written(&value), serde_json::to_string(&value).unwrap());
        }
    }
}
