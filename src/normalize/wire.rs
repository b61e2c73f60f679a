//! OpenIM's callback bodies, exactly as its Go encoder writes them.
//!
//! Wire keys and integer widths follow OpenIM's Go structs
//! (`pkg/callbackstruct`), not its documentation page: the avatar key is
//! `faceURL`, `seq` is a uint32, `sendTime` is missing before OpenIM 3.8.1.
//! Any key this struct does not name lands in `extra`, so nothing the sender
//! sent is lost when OpenIM adds fields.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The body of `callbackAfterSendGroupMsgCommand` and
/// `callbackAfterSendSingleMsgCommand` (which carries `recvID` instead of
/// `groupID`).
///
/// The identity fields are required; every other field is optional so that a
/// version of OpenIM that drops one still gets its message through (the event
/// then carries `null` for it rather than a made-up value).
#[derive(Debug, Deserialize)]
pub struct MsgCallback {
    /// `callbackCommand`.
    #[serde(rename = "callbackCommand")]
    pub callback_command: String,
    /// `serverMsgID`: unique per message, the event id.
    #[serde(rename = "serverMsgID")]
    pub server_msg_id: String,
    /// `sendID`: the sender's user ID.
    #[serde(rename = "sendID")]
    pub send_id: String,
    /// `groupID` (group messages).
    #[serde(rename = "groupID", default)]
    pub group_id: Option<String>,
    /// `recvID` (single-chat messages).
    #[serde(rename = "recvID", default)]
    pub recv_id: Option<String>,
    /// `clientMsgID`.
    #[serde(rename = "clientMsgID", default)]
    pub client_msg_id: Option<String>,
    /// `operationID`: OpenIM's trace ID.
    #[serde(rename = "operationID", default)]
    pub operation_id: Option<String>,
    /// `senderPlatformID` (int32): 1 iOS, 2 Android, 5 Web, ...
    #[serde(rename = "senderPlatformID", default)]
    pub sender_platform_id: Option<i32>,
    /// `senderNickname`.
    #[serde(rename = "senderNickname", default)]
    pub sender_nickname: Option<String>,
    /// `faceURL`: the sender's avatar.
    #[serde(rename = "faceURL", default)]
    pub face_url: Option<String>,
    /// `sessionType` (int32): 1 single, 3 group, 4 notification.
    #[serde(rename = "sessionType", default)]
    pub session_type: Option<i32>,
    /// `msgFrom` (int32): 100 user, 200 system.
    #[serde(rename = "msgFrom", default)]
    pub msg_from: Option<i32>,
    /// `contentType` (int32): 101 text, 102 picture, ...
    #[serde(rename = "contentType", default)]
    pub content_type: Option<i32>,
    /// `status` (int32).
    #[serde(default)]
    pub status: Option<i32>,
    /// `sendTime` (int64, ms since epoch); absent before OpenIM 3.8.1.
    #[serde(rename = "sendTime", default)]
    pub send_time: Option<i64>,
    /// `createTime` (int64, ms since epoch).
    #[serde(rename = "createTime", default)]
    pub create_time: Option<i64>,
    /// `content`: the message content, JSON text inside a string.
    #[serde(default)]
    pub content: Option<String>,
    /// `seq` (uint32): 0 in after-send callbacks.
    #[serde(default)]
    pub seq: Option<u32>,
    /// `atUserList`: `null` when nobody is mentioned.
    #[serde(rename = "atUserList", default)]
    pub at_user_list: Option<Vec<String>>,
    /// `ex`: free-form extension string.
    #[serde(default)]
    pub ex: Option<String>,
    /// Every key not named above, verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Reads only `callbackCommand`, to route a body before parsing it fully.
#[derive(Debug, Deserialize)]
pub struct CommandPeek {
    /// `callbackCommand`, if present.
    #[serde(rename = "callbackCommand", default)]
    pub callback_command: Option<String>,
}
