//! Stage 2: an OpenIM callback body becomes an [`Event`].
//!
//! One call: [`callback`] reads the body's `callbackCommand` (authoritative
//! over the URL, which must agree when it names one), classifies it by the
//! [`catalog`], and parses the typed body (`wire`) into the published
//! shape (`event`): a classified [`Event`], or a [`Refused`] saying why
//! not (with the kind, when the body named one).

pub mod catalog;
pub(crate) mod event;
mod fields;
mod json;
mod wire;

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::warn;

use catalog::{Layout, Spec};
pub use event::Event;
use event::{from_unix_ms, rfc3339, MessageData, MessageEventData, SCHEMA_VERSION};
use wire::{CommandPeek, MsgCallback};

use crate::telemetry::RateLimit;

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

    /// The kind whose CloudEvents `type` is `event_type` (dead-letter
    /// lines name their kind by it).
    pub fn from_event_type(event_type: &str) -> Option<Self> {
        Self::all().find(|kind| kind.event_type() == event_type)
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
    NotJson(#[source] serde_json::Error),
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
    /// URL and body disagree on the command.
    #[error("the URL names callback command `{url}` but the body's callbackCommand is `{body}`")]
    CommandMismatch {
        /// From the path or `?command=`.
        url: String,
        /// From the body.
        body: String,
    },
    /// A command the catalog does not know, with
    /// `http.unknown_commands = "reject"`.
    #[error("callback command `{0}` is not known to this version of openim-bridge (http.unknown_commands = \"reject\"; set it to \"publish\" to publish such callbacks raw)")]
    UnknownCommand(String),
}

/// What [`callback`] needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// CloudEvents `source` (`event.source`).
    pub source: &'a Arc<str>,
    /// When the request arrived.
    pub received_at: OffsetDateTime,
    /// The command the URL names, if it names one: the body's must match.
    pub url_command: Option<&'a str>,
    /// A command the catalog does not know is published raw
    /// ([`CallbackKind::UNKNOWN`]) if set, refused otherwise
    /// (`http.unknown_commands`).
    pub publish_unknown: bool,
}

/// A body that is not a callback this bridge takes.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    /// The callback kind, if the body named one this bridge knows (the
    /// reply to a before-callback and the metrics label depend on it).
    pub kind: Option<CallbackKind>,
    /// Why it was refused.
    pub error: NormalizeError,
    /// The command the body named, if it named one, as it named it (a
    /// refusal's log line shows it).
    pub command: Option<String>,
}

/// Unknown commands published raw: logged at most once a second.
static UNKNOWN_LOG: RateLimit = RateLimit::new();

/// Stage 2 in one call: the callback `body` as a classified event.
pub fn callback(body: &[u8], context: &Context<'_>) -> Result<Event, Refused> {
    match message_named_by_url(body, context) {
        Some(parsed) => parsed,
        None => callback_named_by_body(body, context),
    }
}

/// [`callback`] the long way: the body's command first (checked against
/// the URL's), then the parse its kind takes.
fn callback_named_by_body(body: &[u8], context: &Context<'_>) -> Result<Event, Refused> {
    let refused = |kind, error, command| Refused {
        kind,
        error,
        command,
    };
    let peek: CommandPeek = serde_json::from_slice(body)
        .map_err(|err| refused(None, NormalizeError::NotJson(err), None))?;
    let named = peek
        .callback_command
        .ok_or_else(|| refused(None, NormalizeError::NoCommand, None))?;
    if let Some(url) = context.url_command.filter(|url| *url != named) {
        let mismatch = NormalizeError::CommandMismatch {
            url: url.to_owned(),
            body: named.clone(),
        };
        return Err(refused(None, mismatch, Some(named)));
    }
    let kind = match CallbackKind::from_command(&named) {
        Some(kind) => kind,
        None if context.publish_unknown => {
            if let Some(suppressed) = UNKNOWN_LOG.allow() {
                warn!(command = %named, suppressed, "unknown callback command: published raw as io.openim.callback.unknown (a newer OpenIM? see http.unknown_commands)");
            }
            CallbackKind::UNKNOWN
        }
        None => {
            let unknown = NormalizeError::UnknownCommand(named.clone());
            return Err(refused(None, unknown, Some(named)));
        }
    };
    normalize(kind, body, context.received_at, context.source)
        .map_err(|err| refused(Some(kind), err, Some(named)))
}

/// The common case in one parse: the URL names a chat-message command
/// (OpenIM 3.5 and later post to `{url}/{callbackCommand}`) and the body is
/// that command's (and UTF-8, checked once, not string by string). `None`
/// for anything else, which takes the long way ([`callback_named_by_body`]),
/// so a refusal names the problem as it always did.
fn message_named_by_url(body: &[u8], context: &Context<'_>) -> Option<Result<Event, Refused>> {
    let kind = CallbackKind::from_command(context.url_command?)?;
    if kind.spec().layout != Layout::Message {
        return None;
    }
    let msg: MsgCallback = serde_json::from_str(std::str::from_utf8(body).ok()?).ok()?;
    if &*msg.callback_command != kind.command() {
        return None;
    }
    let event = message_event(kind, msg, body.len(), context.received_at, context.source);
    Some(event.map_err(|error| Refused {
        kind: Some(kind),
        error,
        command: Some(kind.command().to_owned()),
    }))
}

/// Parses a callback body of the given kind into an event ([`callback`]'s
/// last step; tests and fuzzing call it for one kind).
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
    let invalid = |detail| invalid_message(kind, detail);
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
    message_event(kind, msg, body.len(), received_at, source)
}

/// How much longer `data` may be than its body: sized once, not grown.
const DATA_GROWTH: usize = 512;

/// A chat message body of `kind` that cannot become an event, and why.
fn invalid_message(kind: CallbackKind, detail: String) -> NormalizeError {
    NormalizeError::Invalid {
        command: kind.command(),
        detail,
    }
}

/// The event of a parsed chat message callback, `body_len` bytes long.
fn message_event(
    kind: CallbackKind,
    msg: MsgCallback<'_>,
    body_len: usize,
    received_at: OffsetDateTime,
    source: &Arc<str>,
) -> Result<Event, NormalizeError> {
    let invalid = |detail| invalid_message(kind, detail);
    let required = |key: &str, value: Option<&str>| match value {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(invalid(format!("`{key}` is missing or empty"))),
    };
    if msg.server_msg_id.is_empty() {
        return Err(invalid(
            "`serverMsgID` is empty: it is the event id".to_owned(),
        ));
    }
    let sender = required("sendID", Some(&*msg.send_id))?;
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
    let event_id = format!("{}{}", &*msg.server_msg_id, kind.spec().id_suffix);

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
            content: msg.content.map(|content| content.0),
            seq: msg.seq,
            at_user_ids: msg.at_user_list.as_deref().unwrap_or_default(),
            ex: msg.ex.as_deref(),
        },
        extra_fields: &msg.extra,
    };
    // Serializing borrowed strings, integers and a serde_json Map cannot fail.
    let data = data
        .to_json(body_len + DATA_GROWTH)
        .map_err(|err| invalid(err.to_string()))?;
    Ok(Event {
        time: sent_at.map_or_else(|| received.clone(), rfc3339),
        id: event_id,
        kind,
        source: Arc::clone(source),
        key,
        data: data.into(),
        traceparent: String::new(),
        tracestate: String::new(),
    })
}

/// `sessionType` of OpenIM's write-group chats (`g_` conversations; unused
/// by current OpenIM, whose groups are read-groups, 3, `sg_`).
const WRITE_GROUP_SESSION: i32 = 2;
/// `sessionType` of OpenIM's notification sessions (`sn_` conversations).
const NOTIFICATION_SESSION: i32 = 4;

/// OpenIM's own conversation ID for a 1:1 chat: `si_` + both user IDs, sorted,
/// joined by `_`. The same for both directions, so one chat stays in order.
pub(crate) fn single_conversation_id(a: &str, b: &str) -> String {
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
pub(crate) fn conversation_key(conversation_id: &str) -> &str {
    conversation_id
        .strip_prefix("sg_")
        .or_else(|| conversation_id.strip_prefix("g_"))
        .filter(|group| !group.is_empty())
        .unwrap_or(conversation_id)
}

#[cfg(test)]
mod tests;
