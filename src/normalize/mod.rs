//! Stage 2: an OpenIM callback body becomes an [`Event`].
//!
//! [`peek_command`] reads the body's `callbackCommand` (authoritative over the
//! URL), [`CallbackKind::from_command`] says whether this bridge handles it,
//! and [`normalize`] parses the typed body ([`wire`]) into the published shape
//! ([`event`]).

pub mod catalog;
pub mod event;
mod fields;
pub mod wire;

use std::sync::Arc;

use time::OffsetDateTime;

use catalog::{Layout, Spec};
pub use event::Event;
use event::{from_unix_ms, rfc3339, MessageData, MessageEventData, SCHEMA_VERSION};
use wire::{CommandPeek, MsgCallback};

/// Which callback an event came from: its entry in [`catalog`] (stored in
/// the spool as the entry's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackKind(u8);

impl CallbackKind {
    /// `callbackAfterSendGroupMsgCommand`.
    pub const GROUP_MESSAGE_SENT: Self = Self(1);
    /// `callbackAfterSendSingleMsgCommand`.
    pub const SINGLE_MESSAGE_SENT: Self = Self(2);
    /// A command the catalog does not know.
    pub const UNKNOWN: Self = Self(catalog::UNKNOWN_CODE);

    /// Every kind: the catalog, the other before-callbacks, unknown.
    pub fn all() -> impl Iterator<Item = Self> {
        catalog::CATALOG
            .iter()
            .chain([&catalog::OTHER_BEFORE, &catalog::UNKNOWN])
            .map(|spec| Self(spec.code))
    }

    /// The kind for an OpenIM `callbackCommand`, if known.
    pub fn from_command(command: &str) -> Option<Self> {
        catalog::find(command).map(|spec| Self(spec.code))
    }

    /// The kind stored in the spool as `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        catalog::by_code(code).map(|spec| Self(spec.code))
    }

    /// Its code in spool records.
    pub fn code(self) -> u8 {
        self.0
    }

    /// Its catalog entry.
    pub fn spec(self) -> &'static Spec {
        catalog::by_code(self.0).unwrap_or(&catalog::UNKNOWN)
    }

    /// OpenIM's `callbackCommand` (`unknown` for [`Self::UNKNOWN`]).
    pub fn command(self) -> &'static str {
        self.spec().command
    }

    /// CloudEvents `type`, e.g. `io.openim.group.message.sent`.
    pub fn event_type(self) -> &'static str {
        self.spec().event_type
    }
}

/// A body that cannot become an event. The text is sent back to OpenIM as
/// `errMsg`, so it names the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Not JSON, or not an object.
    #[error("body is not a JSON object: {0}")]
    NotJson(serde_json::Error),
    /// A JSON object without `callbackCommand`.
    #[error("body has no `callbackCommand`")]
    NoCommand,
    /// A key has the wrong type or is missing.
    #[error("invalid {command} body: {detail}")]
    Invalid {
        /// The callback command being parsed.
        command: &'static str,
        /// Which key, and what is wrong with it.
        detail: String,
    },
}

/// The body's `callbackCommand`.
pub fn peek_command(body: &[u8]) -> Result<String, NormalizeError> {
    let peek: CommandPeek = serde_json::from_slice(body).map_err(NormalizeError::NotJson)?;
    peek.callback_command.ok_or(NormalizeError::NoCommand)
}

/// Parses a callback body of the given kind into an event.
pub fn normalize(
    kind: CallbackKind,
    body: &[u8],
    received_at: OffsetDateTime,
    source: &Arc<str>,
) -> Result<Event, NormalizeError> {
    match kind.spec().layout {
        Layout::Message => normalize_message(kind, body, received_at, source),
        Layout::Fields | Layout::Raw => fields::normalize(kind, body, received_at, source),
    }
}

/// A chat message callback ([`Layout::Message`]).
fn normalize_message(
    kind: CallbackKind,
    body: &[u8],
    received_at: OffsetDateTime,
    source: &Arc<str>,
) -> Result<Event, NormalizeError> {
    let invalid = |detail: String| NormalizeError::Invalid {
        command: kind.command(),
        detail,
    };
    // Parsed without tracking where it is (the common, valid case costs
    // less); a body that fails is parsed again to name the key at fault.
    let msg: MsgCallback = serde_json::from_slice(body).map_err(|plain| {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, MsgCallback>(&mut deserializer) {
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if path == "." {
                    invalid(inner.to_string())
                } else {
                    invalid(format!("`{path}`: {inner}"))
                }
            }
            // Only trailing bytes: the path tracker does not check those.
            Ok(_) => invalid(plain.to_string()),
        }
    })?;

    let required = |key: &str, value: Option<&str>| match value {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(invalid(format!("`{key}` is missing or empty"))),
    };
    if msg.server_msg_id.is_empty() {
        return Err(invalid(
            "`serverMsgID` is empty: it is the event id".to_owned(),
        ));
    }
    let sender = required("sendID", Some(&msg.send_id))?;
    // Group messages carry `groupID`, 1:1 messages `recvID`; the saved
    // callback carries both, and a non-empty `groupID` means a group.
    let in_group = match kind {
        CallbackKind::GROUP_MESSAGE_SENT => true,
        CallbackKind::SINGLE_MESSAGE_SENT => false,
        _ => msg
            .group_id
            .as_deref()
            .is_some_and(|group| !group.is_empty()),
    };
    // OpenIM's conversation ID (pkg/msgprocessor GetChatConversationIDByMsg);
    // the partition key is the group for group chats, else the whole ID.
    let (conversation_id, key) = if in_group {
        let group = required("groupID", msg.group_id.as_deref())?;
        let prefix = if msg.session_type == Some(WRITE_GROUP_SESSION) {
            "g_"
        } else {
            "sg_"
        };
        (format!("{prefix}{group}"), group)
    } else {
        let receiver = required("recvID", msg.recv_id.as_deref())?;
        let id = if msg.session_type == Some(NOTIFICATION_SESSION) {
            pair_conversation_id("sn_", &sender, &receiver)
        } else {
            single_conversation_id(&sender, &receiver)
        };
        (id.clone(), id)
    };
    let event_id = format!("{}{}", msg.server_msg_id, kind.spec().id_suffix);

    let received = rfc3339(received_at);
    let sent_at = msg.send_time.or(msg.create_time).and_then(from_unix_ms);
    let data = MessageEventData {
        schema_version: SCHEMA_VERSION,
        event_id: &event_id,
        event_type: kind.event_type(),
        callback_command: &msg.callback_command,
        operation_id: msg.operation_id.as_deref(),
        received_at: &received,
        conversation_id: &conversation_id,
        message: MessageData {
            server_msg_id: &msg.server_msg_id,
            client_msg_id: msg.client_msg_id.as_deref(),
            sender_id: &msg.send_id,
            sender_platform_id: msg.sender_platform_id,
            sender_nickname: msg.sender_nickname.as_deref(),
            sender_face_url: msg.face_url.as_deref(),
            group_id: msg.group_id.as_deref(),
            recv_id: msg.recv_id.as_deref(),
            session_type: msg.session_type,
            msg_from: msg.msg_from,
            content_type: msg.content_type,
            status: msg.status,
            send_time_ms: msg.send_time,
            create_time_ms: msg.create_time,
            content: msg.content.as_deref(),
            seq: msg.seq,
            at_user_ids: msg.at_user_list.as_deref().unwrap_or_default(),
            ex: msg.ex.as_deref(),
        },
        extra_fields: &msg.extra,
    };
    // Serializing borrowed strings, integers and a serde_json Map cannot fail.
    let data = serde_json::to_vec(&data).map_err(|err| invalid(err.to_string()))?;
    Ok(Event {
        time: sent_at.map_or_else(|| received.clone(), rfc3339),
        id: event_id,
        kind,
        source: Arc::clone(source),
        key,
        data: data.into(),
    })
}

/// `sessionType` of OpenIM's write-group chats (`g_` conversations; unused
/// by current OpenIM, whose groups are read-groups, 3, `sg_`).
const WRITE_GROUP_SESSION: i32 = 2;
/// `sessionType` of OpenIM's notification sessions (`sn_` conversations).
const NOTIFICATION_SESSION: i32 = 4;

/// OpenIM's own conversation ID for a 1:1 chat: `si_` + both user IDs, sorted,
/// joined by `_`. The same for both directions, so one chat stays in order.
pub fn single_conversation_id(a: &str, b: &str) -> String {
    pair_conversation_id("si_", a, b)
}

/// `prefix` + both user IDs, sorted (bytewise, as Go's `sort.Strings`),
/// joined by `_`.
fn pair_conversation_id(prefix: &str, a: &str, b: &str) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("{prefix}{low}_{high}")
}

/// The partition key of an event that names its conversation by OpenIM's
/// conversation ID: the group ID for group conversations (`sg_<group>`,
/// `g_<group>`), so they share the key of the group's messages; the ID
/// itself otherwise (`si_...`, `sn_...`), as the messages' key.
pub fn conversation_key(conversation_id: &str) -> &str {
    conversation_id
        .strip_prefix("sg_")
        .or_else(|| conversation_id.strip_prefix("g_"))
        .filter(|group| !group.is_empty())
        .unwrap_or(conversation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const GROUP: &str = include_str!("../../tests/fixtures/after_send_group_msg_01_text_ios.json");

    fn source() -> Arc<str> {
        Arc::from("openim")
    }

    fn data(event: &Event) -> Value {
        serde_json::from_slice(&event.data).unwrap()
    }

    fn parse(kind: CallbackKind, body: &str) -> Result<Event, NormalizeError> {
        normalize(kind, body.as_bytes(), OffsetDateTime::UNIX_EPOCH, &source())
    }

    #[test]
    fn group_message_maps_every_field() {
        let event = parse(CallbackKind::GROUP_MESSAGE_SENT, GROUP).unwrap();
        assert_eq!(event.id, "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91");
        assert_eq!(event.key, "g_3001");
        assert_eq!(event.time, "2024-07-01T02:13:20.123Z");
        let data = data(&event);
        let msg = &data["message"];
        assert_eq!(msg["sender_id"], "u_1001");
        assert_eq!(msg["sender_platform_id"], 1);
        assert_eq!(
            msg["sender_face_url"],
            "https://cdn.example.com/avatar/u_1001.png"
        );
        assert_eq!(msg["content"], "{\"content\":\"hello team\"}");
        assert_eq!(msg["at_user_ids"], serde_json::json!([]));
        assert_eq!(msg["send_time_ms"], 1719800000123_i64);
        assert!(msg.get("recv_id").is_none());
        assert_eq!(data["conversation_id"], "sg_g_3001");
        assert_eq!(data["received_at"], "1970-01-01T00:00:00Z");
        assert_eq!(data["extra_fields"], serde_json::json!({}));
    }

    #[test]
    fn unknown_keys_are_kept() {
        let body = GROUP.replace(
            "\"ex\":\"\"",
            "\"ex\":\"\",\"isReact\":true,\"newThing\":{\"a\":[1,2]}",
        );
        let event = parse(CallbackKind::GROUP_MESSAGE_SENT, &body).unwrap();
        assert_eq!(
            data(&event)["extra_fields"],
            serde_json::json!({"isReact": true, "newThing": {"a": [1, 2]}})
        );
    }

    #[test]
    fn missing_send_time_falls_back_to_create_time() {
        let body = GROUP.replace("\"sendTime\":1719800000123,", "");
        let event = parse(CallbackKind::GROUP_MESSAGE_SENT, &body).unwrap();
        assert_eq!(event.time, "2024-07-01T02:13:20.001Z");
        assert_eq!(data(&event)["message"]["send_time_ms"], Value::Null);
    }

    #[test]
    fn notification_sessions_and_write_groups_use_openims_conversation_ids() {
        let saved = |session_type: i32, group: &str| {
            let mut body: Value = serde_json::from_str(GROUP).unwrap();
            body["callbackCommand"] = "callbackAfterMsgSaveDBCommand".into();
            body["sessionType"] = session_type.into();
            body["groupID"] = group.into();
            body["sendID"] = "u_9".into();
            body["recvID"] = "u_1".into();
            let event = normalize(
                CallbackKind::from_command("callbackAfterMsgSaveDBCommand").unwrap(),
                body.to_string().as_bytes(),
                OffsetDateTime::UNIX_EPOCH,
                &source(),
            )
            .unwrap();
            (data(&event)["conversation_id"].clone(), event.key)
        };
        assert_eq!(
            saved(4, ""),
            (Value::from("sn_u_1_u_9"), "sn_u_1_u_9".into())
        );
        assert_eq!(
            saved(1, ""),
            (Value::from("si_u_1_u_9"), "si_u_1_u_9".into())
        );
        assert_eq!(saved(3, "g_1"), (Value::from("sg_g_1"), "g_1".into()));
        assert_eq!(saved(2, "g_1"), (Value::from("g_g_1"), "g_1".into()));
    }

    #[test]
    fn single_chat_key_is_direction_independent() {
        assert_eq!(
            single_conversation_id("u_2", "u_1"),
            single_conversation_id("u_1", "u_2")
        );
        assert_eq!(single_conversation_id("u_2", "u_1"), "si_u_1_u_2");
    }

    /// Type errors per key are covered end to end in tests/ingress.rs; these
    /// are the cases only the parser sees.
    #[test]
    fn malformed_bodies_are_refused_precisely() {
        let duplicate = GROUP.replace(
            "\"sendID\":\"u_1001\",",
            "\"sendID\":\"u_1001\",\"sendID\":\"u_1002\",",
        );
        let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &duplicate)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field `sendID`"), "{err}");
        let trailing = GROUP.trim_end().to_owned() + "{}";
        let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &trailing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailing"), "{err}");
        let wide = GROUP.replace("\"contentType\":101", "\"contentType\":4294967296");
        let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &wide)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`contentType`"), "{err}");
    }

    #[test]
    fn peek_finds_the_command() {
        assert_eq!(
            peek_command(GROUP.as_bytes()).unwrap(),
            "callbackAfterSendGroupMsgCommand"
        );
        assert!(matches!(
            peek_command(b"{}"),
            Err(NormalizeError::NoCommand)
        ));
        assert!(matches!(
            peek_command(b"[1]"),
            Err(NormalizeError::NotJson(_))
        ));
        assert!(matches!(
            peek_command(b"\xff"),
            Err(NormalizeError::NotJson(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        // An unknown key (kept verbatim) and known keys of other types.
        for key in ["isReact", "content", "atUserList"] {
            let body = GROUP.replacen('{', &format!("{{\"{key}\":{deep},"), 1);
            let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &body)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) || err.contains("recursion limit"),
                "{key}: {err}"
            );
        }
        let body = GROUP.replacen('{', &format!("{{\"isReact\":{deep},"), 1);
        let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &body)
            .unwrap_err()
            .to_string();
        assert!(err.contains("recursion limit"), "{err}");
        // The command peek skips the value without recursing: it returns
        // (a stack overflow would abort this test process).
        assert_eq!(
            peek_command(body.as_bytes()).unwrap(),
            "callbackAfterSendGroupMsgCommand"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = peek_command(&body);
            let _ = normalize(CallbackKind::GROUP_MESSAGE_SENT, &body, OffsetDateTime::UNIX_EPOCH, &source());
        }
    }
}
