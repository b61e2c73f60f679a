//! OpenIM's callback bodies, exactly as its Go encoder writes them.
//!
//! Wire keys and integer widths follow OpenIM's Go structs
//! (`pkg/callbackstruct`), not its documentation page: the avatar key is
//! `faceURL`, `seq` is a uint32, `sendTime` is missing before OpenIM 3.8.1.
//! Any key this struct does not name lands in `extra`, so nothing the sender
//! sent is lost when OpenIM adds fields.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A string as the body has it: borrowed from the body when it holds no
/// escapes (most do), owned otherwise.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A JSON string as the body has it, quotes and escapes included: copied
/// into the event as it is. `content` is JSON text inside a string, so it is
/// all escapes: unescaping it and escaping it again cost about 2,000
/// instructions per message. Refused exactly as serde_json refuses a
/// `String`, in its words.
#[derive(Debug, Clone, Copy)]
pub struct JsonString<'a>(pub &'a RawValue);

impl<'de> Deserialize<'de> for JsonString<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        let json = raw.get();
        // Reading the token checked that it is JSON, but not that it is a
        // string, nor that each `\u` escape of a surrogate is half of a
        // pair: when either is in doubt serde_json reads it as a `String`,
        // which checks both.
        if !json.starts_with('"') || json.contains("\\u") {
            if let Err(err) = serde_json::from_str::<String>(json) {
                // Where in the token is not where in the body: left out.
                let text = err.to_string();
                let words = text
                    .rsplit_once(" at line ")
                    .map_or(&*text, |(words, _)| words);
                return Err(de::Error::custom(words));
            }
        }
        Ok(Self(raw))
    }
}

/// The body of `callbackAfterSendGroupMsgCommand` and
/// `callbackAfterSendSingleMsgCommand` (which carries `recvID` instead of
/// `groupID`).
///
/// The identity fields are required; every other field is optional so that a
/// version of OpenIM that drops one still gets its message through (the event
/// then carries `null` for it rather than a made-up value).
#[derive(Debug, Default)]
pub struct MsgCallback<'a> {
    /// `callbackCommand`.
    pub callback_command: Text<'a>,
    /// `serverMsgID`: unique per message, the event id.
    pub server_msg_id: Text<'a>,
    /// `sendID`: the sender's user ID.
    pub send_id: Text<'a>,
    /// `groupID` (group messages).
    pub group_id: Option<Text<'a>>,
    /// `recvID` (single-chat messages).
    pub recv_id: Option<Text<'a>>,
    /// `clientMsgID`.
    pub client_msg_id: Option<Text<'a>>,
    /// `operationID`: OpenIM's trace ID.
    pub operation_id: Option<Text<'a>>,
    /// `senderPlatformID` (int32): 1 iOS, 2 Android, 5 Web, ...
    pub sender_platform_id: Option<i32>,
    /// `senderNickname`.
    pub sender_nickname: Option<Text<'a>>,
    /// `faceURL`: the sender's avatar.
    pub face_url: Option<Text<'a>>,
    /// `sessionType` (int32): 1 single, 3 group, 4 notification.
    pub session_type: Option<i32>,
    /// `msgFrom` (int32): 100 user, 200 system.
    pub msg_from: Option<i32>,
    /// `contentType` (int32): 101 text, 102 picture, ...
    pub content_type: Option<i32>,
    /// `status` (int32).
    pub status: Option<i32>,
    /// `sendTime` (int64, ms since epoch); absent before OpenIM 3.8.1.
    pub send_time: Option<i64>,
    /// `createTime` (int64, ms since epoch).
    pub create_time: Option<i64>,
    /// `content`: the message content, JSON text inside a string.
    pub content: Option<JsonString<'a>>,
    /// `seq` (uint32): 0 in after-send callbacks.
    pub seq: Option<u32>,
    /// `atUserList`: `null` when nobody is mentioned.
    pub at_user_list: Option<Vec<String>>,
    /// `ex`: free-form extension string.
    pub ex: Option<Text<'a>>,
    /// Every key not named above, verbatim.
    pub extra: Map<String, Value>,
}

/// Each named key of [`MsgCallback`] on the wire, at most once; any other
/// key goes to `extra` as it is. Written out rather than derived: serde's
/// `flatten` would buffer every value of the body before reading it a
/// second time (half the parse's cost), and it could not borrow strings.
impl<'de> Deserialize<'de> for MsgCallback<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MsgCallbackVisitor)
    }
}

struct MsgCallbackVisitor;

impl<'de> Visitor<'de> for MsgCallbackVisitor {
    type Value = MsgCallback<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a callback body (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut msg = MsgCallback::default();
        let mut seen = SeenKeys::default();
        let map = &mut map;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "callbackCommand" => {
                    msg.callback_command = once(map, &mut seen, "callbackCommand")?
                }
                "serverMsgID" => msg.server_msg_id = once(map, &mut seen, "serverMsgID")?,
                "sendID" => msg.send_id = once(map, &mut seen, "sendID")?,
                "groupID" => msg.group_id = once(map, &mut seen, "groupID")?,
                "recvID" => msg.recv_id = once(map, &mut seen, "recvID")?,
                "clientMsgID" => msg.client_msg_id = once(map, &mut seen, "clientMsgID")?,
                "operationID" => msg.operation_id = once(map, &mut seen, "operationID")?,
                "senderPlatformID" => {
                    msg.sender_platform_id = once(map, &mut seen, "senderPlatformID")?;
                }
                "senderNickname" => msg.sender_nickname = once(map, &mut seen, "senderNickname")?,
                "faceURL" => msg.face_url = once(map, &mut seen, "faceURL")?,
                "sessionType" => msg.session_type = once(map, &mut seen, "sessionType")?,
                "msgFrom" => msg.msg_from = once(map, &mut seen, "msgFrom")?,
                "contentType" => msg.content_type = once(map, &mut seen, "contentType")?,
                "status" => msg.status = once(map, &mut seen, "status")?,
                "sendTime" => msg.send_time = once(map, &mut seen, "sendTime")?,
                "createTime" => msg.create_time = once(map, &mut seen, "createTime")?,
                "content" => msg.content = once(map, &mut seen, "content")?,
                "seq" => msg.seq = once(map, &mut seen, "seq")?,
                "atUserList" => msg.at_user_list = once(map, &mut seen, "atUserList")?,
                "ex" => msg.ex = once(map, &mut seen, "ex")?,
                _ => {
                    let value = map.next_value()?;
                    msg.extra.insert(key.0.into_owned(), value);
                }
            }
        }
        for required in ["callbackCommand", "serverMsgID", "sendID"] {
            if !seen.contains(required) {
                return Err(de::Error::missing_field(required));
            }
        }
        Ok(msg)
    }
}

/// The value of `key`, which must not have come before.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    seen: &mut SeenKeys,
    key: &'static str,
) -> Result<T, A::Error> {
    if !seen.insert(key) {
        return Err(de::Error::duplicate_field(key));
    }
    map.next_value()
}

/// The named keys read so far (at most the 20 of [`MsgCallback`]).
#[derive(Default)]
struct SeenKeys {
    keys: [&'static str; 20],
    len: usize,
}

impl SeenKeys {
    fn contains(&self, key: &str) -> bool {
        self.keys[..self.len].contains(&key)
    }

    /// Adds `key`; `false` if it was there.
    fn insert(&mut self, key: &'static str) -> bool {
        if self.contains(key) || self.len == self.keys.len() {
            return false;
        }
        self.keys[self.len] = key;
        self.len += 1;
        true
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// Reads only `callbackCommand`, to route a body before parsing it fully.
#[derive(Debug, Deserialize)]
pub struct CommandPeek {
    /// `callbackCommand`, if present.
    #[serde(rename = "callbackCommand", default)]
    pub callback_command: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::Value;
    use time::OffsetDateTime;

    use crate::normalize::{normalize, CallbackKind};

    const GROUP: &str = include_str!("../../tests/fixtures/after_send_group_msg_01_text_ios.json");

    /// The event's `message.content` for a body whose `content` is `json`,
    /// or the refusal's text.
    fn content(json: &str) -> Result<Value, String> {
        let fixture = r#""content":"{\"content\":\"hello team\"}""#;
        assert!(GROUP.contains(fixture), "the fixture's content changed");
        let body = GROUP.replace(fixture, &format!(r#""content":{json}"#));
        let event = normalize(
            CallbackKind::GROUP_MESSAGE_SENT,
            body.as_bytes(),
            OffsetDateTime::UNIX_EPOCH,
            &Arc::from("openim"),
        )
        .map_err(|err| err.to_string())?;
        let data: Value = serde_json::from_slice(&event.data).map_err(|err| err.to_string())?;
        Ok(data["message"]["content"].clone())
    }

    #[test]
    fn content_is_the_string_the_body_had() {
        for (json, text) in [
            (
                r#""{\"content\":\"hello team\"}""#,
                r#"{"content":"hello team"}"#,
            ),
            (
                r#""a \u003c b \u0026 \"c\" \\ \/ \ud83d\ude00""#,
                "a < b & \"c\" \\ / 😀",
            ),
            (
                r#""tab\there\nnew line \u2028""#,
                "tab\there\nnew line \u{2028}",
            ),
            (r#""plain""#, "plain"),
            (r#""""#, ""),
        ] {
            assert_eq!(content(json), Ok(Value::from(text)), "{json}");
        }
        assert_eq!(content("null"), Ok(Value::Null));
    }

    #[test]
    fn content_serde_json_refuses_is_refused_naming_it() {
        for json in [
            r#""\ud800""#,
            r#""\udc00 alone""#,
            r#""\ud800\u0041""#,
            r#""\ud83d\\ude00""#,
            r#""\ud800x""#,
            "12",
            "-1.5",
            "true",
            r#"{"content":"hi"}"#,
            r#"["hi"]"#,
            r#""\x""#,
            "\"line\nbreak\"",
        ] {
            let serde_err = serde_json::from_str::<String>(json)
                .unwrap_err()
                .to_string();
            // serde_json's words, without where it found the fault.
            let words = serde_err.split(" at line").next().unwrap_or_default();
            let err = content(json).unwrap_err();
            assert!(
                err.contains("`content`") && err.contains(words),
                "{json}: {err} / {serde_err}"
            );
        }
    }

    proptest! {
        /// Any string token: accepted exactly when serde_json reads it as a
        /// string, and then the event carries the same string.
        #[test]
        fn content_is_read_as_serde_json_reads_a_string(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(r"\ud83d".to_owned()),
                    Just(r"\ude00".to_owned()),
                    Just(r"\\".to_owned()),
                    Just(r#"\""#.to_owned()),
                    Just(r"\u00e9".to_owned()),
                    Just("u".to_owned()),
                    Just("\\".to_owned()),
                    "[a-z \\u{e9}\\u{1f600}]{0,3}",
                ],
                0..12,
            )
        ) {
            let json = format!("\"{}\"", pieces.concat());
            match serde_json::from_str::<String>(&json) {
                Ok(text) => prop_assert_eq!(content(&json), Ok(Value::from(text))),
                Err(_) => prop_assert!(content(&json).is_err(), "{}", json),
            }
        }
    }
}
