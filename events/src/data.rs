//! Typed `data` of every event type, generated from
//! `schemas/events/*.schema.json` by `tests/generated.rs` (do not edit:
//! regenerate with `OPENIM_EVENTS_REGENERATE=1 cargo test -p openim-events --test generated`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The data of a raw event (before-callbacks, unknown commands): the callback body as OpenIM sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawData {
    /// The callback body exactly as OpenIM sent it.
    #[serde(default)]
    pub body: Map<String, Value>,
    /// `callback_command`: fixed for each event type.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// `event_type`: fixed for each event type.
    pub event_type: String,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// `schema_version`: fixed for each event type.
    pub schema_version: u32,
}

/// A user was taken off a blacklist. The CloudEvents data of io.openim.friend.blacklist.removed events (OpenIM callbackAfterRemoveBlackCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendBlacklistRemovedData {
    /// OpenIM `blackUserID`
    #[serde(default)]
    pub black_user_id: Option<String>,
    /// Always `"callbackAfterRemoveBlackCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.blacklist.removed"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerUserID`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A friend was removed. The CloudEvents data of io.openim.friend.deleted events (OpenIM callbackAfterDeleteFriendCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendDeletedData {
    /// Always `"callbackAfterDeleteFriendCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.deleted"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `friendUserID`
    #[serde(default)]
    pub friend_user_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerUserID`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// Friends were imported by an admin. The CloudEvents data of io.openim.friend.imported events (OpenIM callbackAfterImportFriendsCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendImportedData {
    /// Always `"callbackAfterImportFriendsCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.imported"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `friendUserIDs`
    #[serde(default)]
    pub friend_user_ids: Vec<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerUserID`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A friend's remark changed. The CloudEvents data of io.openim.friend.remark.updated events (OpenIM callbackAfterSetFriendRemarkCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendRemarkUpdatedData {
    /// Always `"callbackAfterSetFriendRemarkCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.remark.updated"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `friendUserID`
    #[serde(default)]
    pub friend_user_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerUserID`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `remark`
    #[serde(default)]
    pub remark: Option<String>,
    /// Always `1`.
    pub schema_version: u32,
}

/// A friend request was answered (OpenIM names the other user `blackUserID`). The CloudEvents data of io.openim.friend.request.handled events (OpenIM callbackAfterAddFriendAgreeCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendRequestHandledData {
    /// Always `"callbackAfterAddFriendAgreeCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.request.handled"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `fromUserID`
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// OpenIM `HandleMsg`
    #[serde(default)]
    pub handle_msg: Option<String>,
    /// OpenIM `HandleResult`
    #[serde(default)]
    pub handle_result: Option<i32>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `blackUserID`
    #[serde(default)]
    pub to_user_id: Option<String>,
}

/// A friend request was sent. The CloudEvents data of io.openim.friend.requested events (OpenIM callbackAfterAddFriendCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendRequestedData {
    /// Always `"callbackAfterAddFriendCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.friend.requested"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `fromUserID`
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `reqMsg`
    #[serde(default)]
    pub req_msg: Option<String>,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `toUserID`
    #[serde(default)]
    pub to_user_id: Option<String>,
}

/// A group conversation was created for a user (keys also spelled `ownerUserId`, `groupId`). The CloudEvents data of io.openim.group.conversation.created events (OpenIM callbackAfterCreateGroupChatConversationsCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupConversationCreatedData {
    /// OpenIM `attached_info`
    #[serde(default)]
    pub attached_info: Option<String>,
    /// OpenIM `burn_duration`
    #[serde(default)]
    pub burn_duration: Option<i32>,
    /// Always `"callbackAfterCreateGroupChatConversationsCommand"`.
    pub callback_command: String,
    /// OpenIM `conversation_id`
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// OpenIM `conversation_type`
    #[serde(default)]
    pub conversation_type: Option<i32>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.conversation.created"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `group_at_type`
    #[serde(default)]
    pub group_at_type: Option<i32>,
    /// OpenIM `group_id`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `is_pinned`
    #[serde(default)]
    pub is_pinned: Option<bool>,
    /// OpenIM `is_private_chat`
    #[serde(default)]
    pub is_private_chat: Option<bool>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `owner_user_id`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `recv_msg_opt`
    #[serde(default)]
    pub recv_msg_opt: Option<i32>,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `user_id`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A group was created. The CloudEvents data of io.openim.group.created events (OpenIM callbackAfterCreateGroupCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCreatedData {
    /// OpenIM `applyMemberFriend`
    #[serde(default)]
    pub apply_member_friend: Option<i32>,
    /// Always `"callbackAfterCreateGroupCommand"`.
    pub callback_command: String,
    /// OpenIM `createTime`
    #[serde(default)]
    pub create_time_ms: Option<i64>,
    /// OpenIM `creatorUserID`
    #[serde(default)]
    pub creator_user_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.created"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `groupName`
    #[serde(default)]
    pub group_name: Option<String>,
    /// OpenIM `groupType`
    pub group_type: Value,
    /// OpenIM `initMemberList`
    pub init_member_list: Value,
    /// OpenIM `introduction`
    #[serde(default)]
    pub introduction: Option<String>,
    /// OpenIM `lookMemberInfo`
    #[serde(default)]
    pub look_member_info: Option<i32>,
    /// OpenIM `memberCount`
    #[serde(default)]
    pub member_count: Option<i64>,
    /// OpenIM `needVerification`
    #[serde(default)]
    pub need_verification: Option<i32>,
    /// OpenIM `notification`
    #[serde(default)]
    pub notification: Option<String>,
    /// OpenIM `notificationUpdateTime`
    #[serde(default)]
    pub notification_update_time_ms: Option<i64>,
    /// OpenIM `notificationUserID`
    #[serde(default)]
    pub notification_user_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerUserID`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `status`
    #[serde(default)]
    pub status: Option<i32>,
}

/// A group was dismissed (its `groupType` arrives as a one-character string). The CloudEvents data of io.openim.group.dismissed events (OpenIM callbackAfterDisMissGroupCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDismissedData {
    /// Always `"callbackAfterDisMissGroupCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.dismissed"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `groupType`
    pub group_type: Value,
    /// OpenIM `membersID`
    #[serde(default)]
    pub member_ids: Vec<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `ownerID`
    #[serde(default)]
    pub owner_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A group's profile changed. The CloudEvents data of io.openim.group.info.updated events (OpenIM callbackAfterSetGroupInfoCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfoUpdatedData {
    /// OpenIM `applyMemberFriend`
    #[serde(default)]
    pub apply_member_friend: Option<i32>,
    /// Always `"callbackAfterSetGroupInfoCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.info.updated"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `groupName`
    #[serde(default)]
    pub group_name: Option<String>,
    /// OpenIM `introduction`
    #[serde(default)]
    pub introduction: Option<String>,
    /// OpenIM `lookMemberInfo`
    #[serde(default)]
    pub look_member_info: Option<i32>,
    /// OpenIM `needVerification`
    #[serde(default)]
    pub need_verification: Option<i32>,
    /// OpenIM `notification`
    #[serde(default)]
    pub notification: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A group's profile changed (`null`: not changed). The CloudEvents data of io.openim.group.info_ex.updated events (OpenIM callbackAfterSetGroupInfoExCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfoExUpdatedData {
    /// OpenIM `applyMemberFriend`
    #[serde(default)]
    pub apply_member_friend: Option<i32>,
    /// Always `"callbackAfterSetGroupInfoExCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.info_ex.updated"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `groupName`
    #[serde(default)]
    pub group_name: Option<String>,
    /// OpenIM `introduction`
    #[serde(default)]
    pub introduction: Option<String>,
    /// OpenIM `lookMemberInfo`
    #[serde(default)]
    pub look_member_info: Option<i32>,
    /// OpenIM `needVerification`
    #[serde(default)]
    pub need_verification: Option<i32>,
    /// OpenIM `notification`
    #[serde(default)]
    pub notification: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A user joined a group (OpenIM does not say which user: only the group, the request message, how they joined and who invited them). The CloudEvents data of io.openim.group.member.joined events (OpenIM callbackAfterJoinGroupCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMemberJoinedData {
    /// Always `"callbackAfterJoinGroupCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.member.joined"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `inviterUserID`
    #[serde(default)]
    pub inviter_user_id: Option<String>,
    /// OpenIM `joinSource`
    #[serde(default)]
    pub join_source: Option<i32>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `reqMessage`
    #[serde(default)]
    pub req_message: Option<String>,
    /// Always `1`.
    pub schema_version: u32,
}

/// Members were removed from a group. The CloudEvents data of io.openim.group.member.kicked events (OpenIM callbackAfterKickGroupCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMemberKickedData {
    /// Always `"callbackAfterKickGroupCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.member.kicked"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `kickedUserIDs`
    #[serde(default)]
    pub kicked_user_ids: Vec<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `reason`
    #[serde(default)]
    pub reason: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A member left a group. The CloudEvents data of io.openim.group.member.quit events (OpenIM callbackAfterQuitGroupCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMemberQuitData {
    /// Always `"callbackAfterQuitGroupCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.member.quit"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A group member's settings changed. The CloudEvents data of io.openim.group.member.updated events (OpenIM callbackAfterSetGroupMemberInfoCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMemberUpdatedData {
    /// Always `"callbackAfterSetGroupMemberInfoCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.member.updated"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `nickName`
    #[serde(default)]
    pub nickname: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `roleLevel`
    #[serde(default)]
    pub role_level: Option<i32>,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user read group messages (read receipt). OpenIM sends only the reader (as both `sendID` and `receiveID`), the read seq (`unreadMsgNum`) and the conversation type (`contentType`): no group. The CloudEvents data of io.openim.group.message.read events (OpenIM callbackAfterGroupMsgReadCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMessageReadData {
    /// Always `"callbackAfterGroupMsgReadCommand"`.
    pub callback_command: String,
    /// OpenIM `contentType`
    #[serde(default)]
    pub content_type: Option<i64>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.message.read"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `receiveID`
    #[serde(default)]
    pub receive_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `sendID`
    #[serde(default)]
    pub send_id: Option<String>,
    /// OpenIM `unreadMsgNum`
    #[serde(default)]
    pub unread_msg_num: Option<i64>,
}

/// The message of a message event, field for field from the callback body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// atUserList; OpenIM's null becomes []. AtAllTag means everyone.
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// clientMsgID
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// content: OpenIM's message content, JSON text inside a string, verbatim
    #[serde(default)]
    pub content: Option<String>,
    /// contentType: 101 text, 102 picture, 103 voice, 104 video, 105 file, 106 @text, ...
    #[serde(default)]
    pub content_type: Option<i32>,
    /// createTime, ms since epoch
    #[serde(default)]
    pub create_time_ms: Option<i64>,
    /// ex
    #[serde(default)]
    pub ex: Option<String>,
    /// groupID; present in group messages
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// msgFrom: 100 user, 200 system
    #[serde(default)]
    pub msg_from: Option<i32>,
    /// recvID; present in 1:1 messages
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_id: Option<String>,
    /// sendTime, ms since epoch; null before OpenIM 3.8.1
    #[serde(default)]
    pub send_time_ms: Option<i64>,
    /// faceURL (the sender's avatar)
    #[serde(default)]
    pub sender_face_url: Option<String>,
    /// sendID
    pub sender_id: String,
    /// senderNickname
    #[serde(default)]
    pub sender_nickname: Option<String>,
    /// senderPlatformID: 1 iOS, 2 Android, 3 Windows, 4 OSX, 5 Web, 6 MiniWeb, 7 Linux, 8 APad, 9 iPad, 10 Admin, 11 HarmonyOS
    #[serde(default)]
    pub sender_platform_id: Option<i32>,
    /// seq (0 in after-send callbacks; not an ordering key)
    #[serde(default)]
    pub seq: Option<u32>,
    /// serverMsgID
    pub server_msg_id: String,
    /// sessionType: 1 single, 3 group, 4 notification
    #[serde(default)]
    pub session_type: Option<i32>,
    /// status
    #[serde(default)]
    pub status: Option<i32>,
}

/// The data of a message event (sent, saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageData {
    /// `callback_command`: fixed for each event type.
    pub callback_command: String,
    /// OpenIM's conversation id: sg_{groupID}, or si_{lower userID}_{higher userID} for a 1:1 chat.
    pub conversation_id: String,
    /// OpenIM serverMsgID; equals the CloudEvents id. Stable across re-deliveries: deduplicate on it.
    pub event_id: String,
    /// `event_type`: fixed for each event type.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `message`
    pub message: Message,
    /// OpenIM operationID (trace id).
    #[serde(default)]
    pub operation_id: Option<String>,
    /// When the bridge received the callback (RFC 3339, UTC).
    pub received_at: String,
    /// Bumped on any incompatible change of this layout.
    pub schema_version: u32,
}

/// A group got a new owner. The CloudEvents data of io.openim.group.owner.transferred events (OpenIM callbackAfterTransferGroupOwnerCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupOwnerTransferredData {
    /// Always `"callbackAfterTransferGroupOwnerCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.group.owner.transferred"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `groupID`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `newOwnerUserID`
    #[serde(default)]
    pub new_owner_user_id: Option<String>,
    /// OpenIM `oldOwnerUserID`
    #[serde(default)]
    pub old_owner_user_id: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
}

/// A message was revoked (OpenIM's command name is `callbackBeforeAfterMsgCommand`). The CloudEvents data of io.openim.message.revoked events (OpenIM callbackBeforeAfterMsgCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRevokedData {
    /// Always `"callbackBeforeAfterMsgCommand"`.
    pub callback_command: String,
    /// OpenIM `conversationID`
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.message.revoked"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `seq`
    #[serde(default)]
    pub seq: Option<i64>,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A 1:1 conversation was created for a user (keys also spelled `ownerUserId`). The CloudEvents data of io.openim.single.conversation.created events (OpenIM callbackAfterCreateSingleChatConversationsCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleConversationCreatedData {
    /// OpenIM `attached_info`
    #[serde(default)]
    pub attached_info: Option<String>,
    /// OpenIM `burn_duration`
    #[serde(default)]
    pub burn_duration: Option<i32>,
    /// Always `"callbackAfterCreateSingleChatConversationsCommand"`.
    pub callback_command: String,
    /// OpenIM `conversation_id`
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// OpenIM `conversation_type`
    #[serde(default)]
    pub conversation_type: Option<i32>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.single.conversation.created"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `group_at_type`
    #[serde(default)]
    pub group_at_type: Option<i32>,
    /// OpenIM `group_id`
    #[serde(default)]
    pub group_id: Option<String>,
    /// OpenIM `is_pinned`
    #[serde(default)]
    pub is_pinned: Option<bool>,
    /// OpenIM `is_private_chat`
    #[serde(default)]
    pub is_private_chat: Option<bool>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `owner_user_id`
    #[serde(default)]
    pub owner_user_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// OpenIM `recv_msg_opt`
    #[serde(default)]
    pub recv_msg_opt: Option<i32>,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `user_id`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user read 1:1 messages (read receipt). The CloudEvents data of io.openim.single.message.read events (OpenIM callbackAfterSingleMsgReadCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleMessageReadData {
    /// Always `"callbackAfterSingleMsgReadCommand"`.
    pub callback_command: String,
    /// OpenIM `contentType`
    #[serde(default)]
    pub content_type: Option<i32>,
    /// OpenIM `conversationID`
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.single.message.read"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `Seqs`
    #[serde(default)]
    pub seqs: Vec<i64>,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user changed their profile. The CloudEvents data of io.openim.user.info.updated events (OpenIM callbackAfterUpdateUserInfoCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfoUpdatedData {
    /// Always `"callbackAfterUpdateUserInfoCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.info.updated"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `nickName`
    #[serde(default)]
    pub nickname: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user changed their profile (`null`: not changed). The CloudEvents data of io.openim.user.info_ex.updated events (OpenIM callbackAfterUpdateUserInfoExCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfoExUpdatedData {
    /// Always `"callbackAfterUpdateUserInfoExCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.info_ex.updated"`.
    pub event_type: String,
    /// OpenIM `ex`
    #[serde(default)]
    pub ex: Option<String>,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `faceURL`
    #[serde(default)]
    pub face_url: Option<String>,
    /// OpenIM `nickName`
    #[serde(default)]
    pub nickname: Option<String>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user's device was kicked off. The CloudEvents data of io.openim.user.kicked_off events (OpenIM callbackAfterUserKickOffCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserKickedOffData {
    /// Always `"callbackAfterUserKickOffCommand"`.
    pub callback_command: String,
    /// OpenIM `connID`
    #[serde(default)]
    pub conn_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.kicked_off"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `isAppBackground`
    #[serde(default)]
    pub is_app_background: Option<bool>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `platform`
    #[serde(default)]
    pub platform: Option<String>,
    /// OpenIM `platformID`
    #[serde(default)]
    pub platform_id: Option<i32>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `seq`
    #[serde(default)]
    pub seq: Option<i64>,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user's device disconnected. The CloudEvents data of io.openim.user.offline events (OpenIM callbackAfterUserOfflineCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserOfflineData {
    /// Always `"callbackAfterUserOfflineCommand"`.
    pub callback_command: String,
    /// OpenIM `connID`
    #[serde(default)]
    pub conn_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.offline"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `isAppBackground`
    #[serde(default)]
    pub is_app_background: Option<bool>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `platform`
    #[serde(default)]
    pub platform: Option<String>,
    /// OpenIM `platformID`
    #[serde(default)]
    pub platform_id: Option<i32>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `seq`
    #[serde(default)]
    pub seq: Option<i64>,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A user's device connected (repeats about every 10 minutes). The CloudEvents data of io.openim.user.online events (OpenIM callbackAfterUserOnlineCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserOnlineData {
    /// Always `"callbackAfterUserOnlineCommand"`.
    pub callback_command: String,
    /// OpenIM `connID`
    #[serde(default)]
    pub conn_id: Option<String>,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.online"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// OpenIM `isAppBackground`
    #[serde(default)]
    pub is_app_background: Option<bool>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// OpenIM `platform`
    #[serde(default)]
    pub platform: Option<String>,
    /// OpenIM `platformID`
    #[serde(default)]
    pub platform_id: Option<i32>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `seq`
    #[serde(default)]
    pub seq: Option<i64>,
    /// OpenIM `userID`
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Users were registered (keyed by the first user). The CloudEvents data of io.openim.user.registered events (OpenIM callbackAfterUserRegisterCommand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRegisteredData {
    /// Always `"callbackAfterUserRegisterCommand"`.
    pub callback_command: String,
    /// Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it.
    pub event_id: String,
    /// Always `"io.openim.user.registered"`.
    pub event_type: String,
    /// Callback keys unknown to this bridge version, verbatim.
    #[serde(default)]
    pub extra_fields: Map<String, Value>,
    /// `operation_id`
    #[serde(default)]
    pub operation_id: Option<String>,
    /// `received_at`
    pub received_at: String,
    /// Always `1`.
    pub schema_version: u32,
    /// OpenIM `users`
    pub users: Value,
}

/// The data of an event, by its CloudEvents `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// `io.openim.before.add_black`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.add_black events (OpenIM callbackBeforeAddBlackCommand).
    BeforeAddBlack(RawData),
    /// `io.openim.before.add_friend`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.add_friend events (OpenIM callbackBeforeAddFriendCommand).
    BeforeAddFriend(RawData),
    /// `io.openim.before.add_friend_agree`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.add_friend_agree events (OpenIM callbackBeforeAddFriendAgreeCommand).
    BeforeAddFriendAgree(RawData),
    /// `io.openim.before.create_group`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.create_group events (OpenIM callbackBeforeCreateGroupCommand).
    BeforeCreateGroup(RawData),
    /// `io.openim.before.create_group_chat_conversations`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.create_group_chat_conversations events (OpenIM callbackBeforeCreateGroupChatConversationsCommand).
    BeforeCreateGroupChatConversations(RawData),
    /// `io.openim.before.create_single_chat_conversations`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.create_single_chat_conversations events (OpenIM callbackBeforeCreateSingleChatConversationsCommand).
    BeforeCreateSingleChatConversations(RawData),
    /// `io.openim.before.group_online_push`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.group_online_push events (OpenIM callbackBeforeGroupOnlinePushCommand).
    BeforeGroupOnlinePush(RawData),
    /// `io.openim.before.import_friends`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.import_friends events (OpenIM callbackBeforeImportFriendsCommand).
    BeforeImportFriends(RawData),
    /// `io.openim.before.invite_join_group`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.invite_join_group events (OpenIM callbackBeforeInviteJoinGroupCommand).
    BeforeInviteJoinGroup(RawData),
    /// `io.openim.before.join_group`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.join_group events (OpenIM callbackBeforeJoinGroupCommand).
    BeforeJoinGroup(RawData),
    /// `io.openim.before.members_join_group`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.members_join_group events (OpenIM callbackBeforeMembersJoinGroupCommand).
    BeforeMembersJoinGroup(RawData),
    /// `io.openim.before.msg_modify`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.msg_modify events (OpenIM callbackBeforeMsgModifyCommand).
    BeforeMsgModify(RawData),
    /// `io.openim.before.offline_push`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.offline_push events (OpenIM callbackBeforeOfflinePushCommand).
    BeforeOfflinePush(RawData),
    /// `io.openim.before.online_push`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.online_push events (OpenIM callbackBeforeOnlinePushCommand).
    BeforeOnlinePush(RawData),
    /// `io.openim.before.other`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.other events (OpenIM callbackBefore).
    BeforeOther(RawData),
    /// `io.openim.before.send_group_msg`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.send_group_msg events (OpenIM callbackBeforeSendGroupMsgCommand).
    BeforeSendGroupMsg(RawData),
    /// `io.openim.before.send_single_msg`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.send_single_msg events (OpenIM callbackBeforeSendSingleMsgCommand).
    BeforeSendSingleMsg(RawData),
    /// `io.openim.before.set_friend_remark`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.set_friend_remark events (OpenIM callbackBeforeSetFriendRemarkCommand).
    BeforeSetFriendRemark(RawData),
    /// `io.openim.before.set_group_info`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.set_group_info events (OpenIM callbackBeforeSetGroupInfoCommand).
    BeforeSetGroupInfo(RawData),
    /// `io.openim.before.set_group_info_ex`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.set_group_info_ex events (OpenIM callbackBeforeSetGroupInfoExCommand).
    BeforeSetGroupInfoEx(RawData),
    /// `io.openim.before.set_group_member_info`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.set_group_member_info events (OpenIM callbackBeforeSetGroupMemberInfoCommand).
    BeforeSetGroupMemberInfo(RawData),
    /// `io.openim.before.update_user_info`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.update_user_info events (OpenIM callbackBeforeUpdateUserInfoCommand).
    BeforeUpdateUserInfo(RawData),
    /// `io.openim.before.update_user_info_ex`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.update_user_info_ex events (OpenIM callbackBeforeUpdateUserInfoExCommand).
    BeforeUpdateUserInfoEx(RawData),
    /// `io.openim.before.user_register`: Before-callback: answered "continue" at once; published (raw) only when a route enables it. The CloudEvents data of io.openim.before.user_register events (OpenIM callbackBeforeUserRegisterCommand).
    BeforeUserRegister(RawData),
    /// `io.openim.callback.unknown`: A callback command this version does not know, published as sent. The CloudEvents data of io.openim.callback.unknown events (OpenIM unknown).
    CallbackUnknown(RawData),
    /// `io.openim.friend.blacklist.removed`: A user was taken off a blacklist. The CloudEvents data of io.openim.friend.blacklist.removed events (OpenIM callbackAfterRemoveBlackCommand).
    FriendBlacklistRemoved(FriendBlacklistRemovedData),
    /// `io.openim.friend.deleted`: A friend was removed. The CloudEvents data of io.openim.friend.deleted events (OpenIM callbackAfterDeleteFriendCommand).
    FriendDeleted(FriendDeletedData),
    /// `io.openim.friend.imported`: Friends were imported by an admin. The CloudEvents data of io.openim.friend.imported events (OpenIM callbackAfterImportFriendsCommand).
    FriendImported(FriendImportedData),
    /// `io.openim.friend.remark.updated`: A friend's remark changed. The CloudEvents data of io.openim.friend.remark.updated events (OpenIM callbackAfterSetFriendRemarkCommand).
    FriendRemarkUpdated(FriendRemarkUpdatedData),
    /// `io.openim.friend.request.handled`: A friend request was answered (OpenIM names the other user `blackUserID`). The CloudEvents data of io.openim.friend.request.handled events (OpenIM callbackAfterAddFriendAgreeCommand).
    FriendRequestHandled(FriendRequestHandledData),
    /// `io.openim.friend.requested`: A friend request was sent. The CloudEvents data of io.openim.friend.requested events (OpenIM callbackAfterAddFriendCommand).
    FriendRequested(FriendRequestedData),
    /// `io.openim.group.conversation.created`: A group conversation was created for a user (keys also spelled `ownerUserId`, `groupId`). The CloudEvents data of io.openim.group.conversation.created events (OpenIM callbackAfterCreateGroupChatConversationsCommand).
    GroupConversationCreated(GroupConversationCreatedData),
    /// `io.openim.group.created`: A group was created. The CloudEvents data of io.openim.group.created events (OpenIM callbackAfterCreateGroupCommand).
    GroupCreated(GroupCreatedData),
    /// `io.openim.group.dismissed`: A group was dismissed (its `groupType` arrives as a one-character string). The CloudEvents data of io.openim.group.dismissed events (OpenIM callbackAfterDisMissGroupCommand).
    GroupDismissed(GroupDismissedData),
    /// `io.openim.group.info.updated`: A group's profile changed. The CloudEvents data of io.openim.group.info.updated events (OpenIM callbackAfterSetGroupInfoCommand).
    GroupInfoUpdated(GroupInfoUpdatedData),
    /// `io.openim.group.info_ex.updated`: A group's profile changed (`null`: not changed). The CloudEvents data of io.openim.group.info_ex.updated events (OpenIM callbackAfterSetGroupInfoExCommand).
    GroupInfoExUpdated(GroupInfoExUpdatedData),
    /// `io.openim.group.member.joined`: A user joined a group (OpenIM does not say which user: only the group, the request message, how they joined and who invited them). The CloudEvents data of io.openim.group.member.joined events (OpenIM callbackAfterJoinGroupCommand).
    GroupMemberJoined(GroupMemberJoinedData),
    /// `io.openim.group.member.kicked`: Members were removed from a group. The CloudEvents data of io.openim.group.member.kicked events (OpenIM callbackAfterKickGroupCommand).
    GroupMemberKicked(GroupMemberKickedData),
    /// `io.openim.group.member.quit`: A member left a group. The CloudEvents data of io.openim.group.member.quit events (OpenIM callbackAfterQuitGroupCommand).
    GroupMemberQuit(GroupMemberQuitData),
    /// `io.openim.group.member.updated`: A group member's settings changed. The CloudEvents data of io.openim.group.member.updated events (OpenIM callbackAfterSetGroupMemberInfoCommand).
    GroupMemberUpdated(GroupMemberUpdatedData),
    /// `io.openim.group.message.read`: A user read group messages (read receipt). OpenIM sends only the reader (as both `sendID` and `receiveID`), the read seq (`unreadMsgNum`) and the conversation type (`contentType`): no group. The CloudEvents data of io.openim.group.message.read events (OpenIM callbackAfterGroupMsgReadCommand).
    GroupMessageRead(GroupMessageReadData),
    /// `io.openim.group.message.sent`: A group message was sent. The CloudEvents data of io.openim.group.message.sent (from callbackAfterSendGroupMsgCommand); the message layout of schemas/event-v1.schema.json.
    GroupMessageSent(MessageData),
    /// `io.openim.group.owner.transferred`: A group got a new owner. The CloudEvents data of io.openim.group.owner.transferred events (OpenIM callbackAfterTransferGroupOwnerCommand).
    GroupOwnerTransferred(GroupOwnerTransferredData),
    /// `io.openim.message.revoked`: A message was revoked (OpenIM's command name is `callbackBeforeAfterMsgCommand`). The CloudEvents data of io.openim.message.revoked events (OpenIM callbackBeforeAfterMsgCommand).
    MessageRevoked(MessageRevokedData),
    /// `io.openim.message.saved`: A message was stored (newer OpenIM; carries the real `seq`). The CloudEvents data of io.openim.message.saved (from callbackAfterMsgSaveDBCommand); the message layout of schemas/event-v1.schema.json.
    MessageSaved(MessageData),
    /// `io.openim.single.conversation.created`: A 1:1 conversation was created for a user (keys also spelled `ownerUserId`). The CloudEvents data of io.openim.single.conversation.created events (OpenIM callbackAfterCreateSingleChatConversationsCommand).
    SingleConversationCreated(SingleConversationCreatedData),
    /// `io.openim.single.message.read`: A user read 1:1 messages (read receipt). The CloudEvents data of io.openim.single.message.read events (OpenIM callbackAfterSingleMsgReadCommand).
    SingleMessageRead(SingleMessageReadData),
    /// `io.openim.single.message.sent`: A 1:1 message was sent. The CloudEvents data of io.openim.single.message.sent (from callbackAfterSendSingleMsgCommand); the message layout of schemas/event-v1.schema.json.
    SingleMessageSent(MessageData),
    /// `io.openim.user.info.updated`: A user changed their profile. The CloudEvents data of io.openim.user.info.updated events (OpenIM callbackAfterUpdateUserInfoCommand).
    UserInfoUpdated(UserInfoUpdatedData),
    /// `io.openim.user.info_ex.updated`: A user changed their profile (`null`: not changed). The CloudEvents data of io.openim.user.info_ex.updated events (OpenIM callbackAfterUpdateUserInfoExCommand).
    UserInfoExUpdated(UserInfoExUpdatedData),
    /// `io.openim.user.kicked_off`: A user's device was kicked off. The CloudEvents data of io.openim.user.kicked_off events (OpenIM callbackAfterUserKickOffCommand).
    UserKickedOff(UserKickedOffData),
    /// `io.openim.user.offline`: A user's device disconnected. The CloudEvents data of io.openim.user.offline events (OpenIM callbackAfterUserOfflineCommand).
    UserOffline(UserOfflineData),
    /// `io.openim.user.online`: A user's device connected (repeats about every 10 minutes). The CloudEvents data of io.openim.user.online events (OpenIM callbackAfterUserOnlineCommand).
    UserOnline(UserOnlineData),
    /// `io.openim.user.registered`: Users were registered (keyed by the first user). The CloudEvents data of io.openim.user.registered events (OpenIM callbackAfterUserRegisterCommand).
    UserRegistered(UserRegisteredData),
    /// A type this version of the kit does not know (a newer bridge):
    /// its data as JSON.
    Other(Value),
}

/// Every event type the kit knows.
pub const EVENT_TYPES: &[&str] = &[
    "io.openim.before.add_black",
    "io.openim.before.add_friend",
    "io.openim.before.add_friend_agree",
    "io.openim.before.create_group",
    "io.openim.before.create_group_chat_conversations",
    "io.openim.before.create_single_chat_conversations",
    "io.openim.before.group_online_push",
    "io.openim.before.import_friends",
    "io.openim.before.invite_join_group",
    "io.openim.before.join_group",
    "io.openim.before.members_join_group",
    "io.openim.before.msg_modify",
    "io.openim.before.offline_push",
    "io.openim.before.online_push",
    "io.openim.before.other",
    "io.openim.before.send_group_msg",
    "io.openim.before.send_single_msg",
    "io.openim.before.set_friend_remark",
    "io.openim.before.set_group_info",
    "io.openim.before.set_group_info_ex",
    "io.openim.before.set_group_member_info",
    "io.openim.before.update_user_info",
    "io.openim.before.update_user_info_ex",
    "io.openim.before.user_register",
    "io.openim.callback.unknown",
    "io.openim.friend.blacklist.removed",
    "io.openim.friend.deleted",
    "io.openim.friend.imported",
    "io.openim.friend.remark.updated",
    "io.openim.friend.request.handled",
    "io.openim.friend.requested",
    "io.openim.group.conversation.created",
    "io.openim.group.created",
    "io.openim.group.dismissed",
    "io.openim.group.info.updated",
    "io.openim.group.info_ex.updated",
    "io.openim.group.member.joined",
    "io.openim.group.member.kicked",
    "io.openim.group.member.quit",
    "io.openim.group.member.updated",
    "io.openim.group.message.read",
    "io.openim.group.message.sent",
    "io.openim.group.owner.transferred",
    "io.openim.message.revoked",
    "io.openim.message.saved",
    "io.openim.single.conversation.created",
    "io.openim.single.message.read",
    "io.openim.single.message.sent",
    "io.openim.user.info.updated",
    "io.openim.user.info_ex.updated",
    "io.openim.user.kicked_off",
    "io.openim.user.offline",
    "io.openim.user.online",
    "io.openim.user.registered",
];

impl EventData {
    /// `data` of an event of `event_type`; an unknown type gives [`EventData::Other`].
    pub(crate) fn decode(event_type: &str, data: &[u8]) -> Result<Self, serde_path_to_error::Error<serde_json::Error>> {
        let de = &mut serde_json::Deserializer::from_slice(data);
        Ok(match event_type {
            "io.openim.before.add_black" => Self::BeforeAddBlack(serde_path_to_error::deserialize(de)?),
            "io.openim.before.add_friend" => Self::BeforeAddFriend(serde_path_to_error::deserialize(de)?),
            "io.openim.before.add_friend_agree" => Self::BeforeAddFriendAgree(serde_path_to_error::deserialize(de)?),
            "io.openim.before.create_group" => Self::BeforeCreateGroup(serde_path_to_error::deserialize(de)?),
            "io.openim.before.create_group_chat_conversations" => Self::BeforeCreateGroupChatConversations(serde_path_to_error::deserialize(de)?),
            "io.openim.before.create_single_chat_conversations" => Self::BeforeCreateSingleChatConversations(serde_path_to_error::deserialize(de)?),
            "io.openim.before.group_online_push" => Self::BeforeGroupOnlinePush(serde_path_to_error::deserialize(de)?),
            "io.openim.before.import_friends" => Self::BeforeImportFriends(serde_path_to_error::deserialize(de)?),
            "io.openim.before.invite_join_group" => Self::BeforeInviteJoinGroup(serde_path_to_error::deserialize(de)?),
            "io.openim.before.join_group" => Self::BeforeJoinGroup(serde_path_to_error::deserialize(de)?),
            "io.openim.before.members_join_group" => Self::BeforeMembersJoinGroup(serde_path_to_error::deserialize(de)?),
            "io.openim.before.msg_modify" => Self::BeforeMsgModify(serde_path_to_error::deserialize(de)?),
            "io.openim.before.offline_push" => Self::BeforeOfflinePush(serde_path_to_error::deserialize(de)?),
            "io.openim.before.online_push" => Self::BeforeOnlinePush(serde_path_to_error::deserialize(de)?),
            "io.openim.before.other" => Self::BeforeOther(serde_path_to_error::deserialize(de)?),
            "io.openim.before.send_group_msg" => Self::BeforeSendGroupMsg(serde_path_to_error::deserialize(de)?),
            "io.openim.before.send_single_msg" => Self::BeforeSendSingleMsg(serde_path_to_error::deserialize(de)?),
            "io.openim.before.set_friend_remark" => Self::BeforeSetFriendRemark(serde_path_to_error::deserialize(de)?),
            "io.openim.before.set_group_info" => Self::BeforeSetGroupInfo(serde_path_to_error::deserialize(de)?),
            "io.openim.before.set_group_info_ex" => Self::BeforeSetGroupInfoEx(serde_path_to_error::deserialize(de)?),
            "io.openim.before.set_group_member_info" => Self::BeforeSetGroupMemberInfo(serde_path_to_error::deserialize(de)?),
            "io.openim.before.update_user_info" => Self::BeforeUpdateUserInfo(serde_path_to_error::deserialize(de)?),
            "io.openim.before.update_user_info_ex" => Self::BeforeUpdateUserInfoEx(serde_path_to_error::deserialize(de)?),
            "io.openim.before.user_register" => Self::BeforeUserRegister(serde_path_to_error::deserialize(de)?),
            "io.openim.callback.unknown" => Self::CallbackUnknown(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.blacklist.removed" => Self::FriendBlacklistRemoved(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.deleted" => Self::FriendDeleted(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.imported" => Self::FriendImported(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.remark.updated" => Self::FriendRemarkUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.request.handled" => Self::FriendRequestHandled(serde_path_to_error::deserialize(de)?),
            "io.openim.friend.requested" => Self::FriendRequested(serde_path_to_error::deserialize(de)?),
            "io.openim.group.conversation.created" => Self::GroupConversationCreated(serde_path_to_error::deserialize(de)?),
            "io.openim.group.created" => Self::GroupCreated(serde_path_to_error::deserialize(de)?),
            "io.openim.group.dismissed" => Self::GroupDismissed(serde_path_to_error::deserialize(de)?),
            "io.openim.group.info.updated" => Self::GroupInfoUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.group.info_ex.updated" => Self::GroupInfoExUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.group.member.joined" => Self::GroupMemberJoined(serde_path_to_error::deserialize(de)?),
            "io.openim.group.member.kicked" => Self::GroupMemberKicked(serde_path_to_error::deserialize(de)?),
            "io.openim.group.member.quit" => Self::GroupMemberQuit(serde_path_to_error::deserialize(de)?),
            "io.openim.group.member.updated" => Self::GroupMemberUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.group.message.read" => Self::GroupMessageRead(serde_path_to_error::deserialize(de)?),
            "io.openim.group.message.sent" => Self::GroupMessageSent(serde_path_to_error::deserialize(de)?),
            "io.openim.group.owner.transferred" => Self::GroupOwnerTransferred(serde_path_to_error::deserialize(de)?),
            "io.openim.message.revoked" => Self::MessageRevoked(serde_path_to_error::deserialize(de)?),
            "io.openim.message.saved" => Self::MessageSaved(serde_path_to_error::deserialize(de)?),
            "io.openim.single.conversation.created" => Self::SingleConversationCreated(serde_path_to_error::deserialize(de)?),
            "io.openim.single.message.read" => Self::SingleMessageRead(serde_path_to_error::deserialize(de)?),
            "io.openim.single.message.sent" => Self::SingleMessageSent(serde_path_to_error::deserialize(de)?),
            "io.openim.user.info.updated" => Self::UserInfoUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.user.info_ex.updated" => Self::UserInfoExUpdated(serde_path_to_error::deserialize(de)?),
            "io.openim.user.kicked_off" => Self::UserKickedOff(serde_path_to_error::deserialize(de)?),
            "io.openim.user.offline" => Self::UserOffline(serde_path_to_error::deserialize(de)?),
            "io.openim.user.online" => Self::UserOnline(serde_path_to_error::deserialize(de)?),
            "io.openim.user.registered" => Self::UserRegistered(serde_path_to_error::deserialize(de)?),
            _ => Self::Other(serde_path_to_error::deserialize(de)?),
        })
    }

    /// The data as JSON (what the bridge published, keys in order).
    pub fn to_json(&self) -> Value {
        let value = match self {
            Self::BeforeAddBlack(data) => serde_json::to_value(data),
            Self::BeforeAddFriend(data) => serde_json::to_value(data),
            Self::BeforeAddFriendAgree(data) => serde_json::to_value(data),
            Self::BeforeCreateGroup(data) => serde_json::to_value(data),
            Self::BeforeCreateGroupChatConversations(data) => serde_json::to_value(data),
            Self::BeforeCreateSingleChatConversations(data) => serde_json::to_value(data),
            Self::BeforeGroupOnlinePush(data) => serde_json::to_value(data),
            Self::BeforeImportFriends(data) => serde_json::to_value(data),
            Self::BeforeInviteJoinGroup(data) => serde_json::to_value(data),
            Self::BeforeJoinGroup(data) => serde_json::to_value(data),
            Self::BeforeMembersJoinGroup(data) => serde_json::to_value(data),
            Self::BeforeMsgModify(data) => serde_json::to_value(data),
            Self::BeforeOfflinePush(data) => serde_json::to_value(data),
            Self::BeforeOnlinePush(data) => serde_json::to_value(data),
            Self::BeforeOther(data) => serde_json::to_value(data),
            Self::BeforeSendGroupMsg(data) => serde_json::to_value(data),
            Self::BeforeSendSingleMsg(data) => serde_json::to_value(data),
            Self::BeforeSetFriendRemark(data) => serde_json::to_value(data),
            Self::BeforeSetGroupInfo(data) => serde_json::to_value(data),
            Self::BeforeSetGroupInfoEx(data) => serde_json::to_value(data),
            Self::BeforeSetGroupMemberInfo(data) => serde_json::to_value(data),
            Self::BeforeUpdateUserInfo(data) => serde_json::to_value(data),
            Self::BeforeUpdateUserInfoEx(data) => serde_json::to_value(data),
            Self::BeforeUserRegister(data) => serde_json::to_value(data),
            Self::CallbackUnknown(data) => serde_json::to_value(data),
            Self::FriendBlacklistRemoved(data) => serde_json::to_value(data),
            Self::FriendDeleted(data) => serde_json::to_value(data),
            Self::FriendImported(data) => serde_json::to_value(data),
            Self::FriendRemarkUpdated(data) => serde_json::to_value(data),
            Self::FriendRequestHandled(data) => serde_json::to_value(data),
            Self::FriendRequested(data) => serde_json::to_value(data),
            Self::GroupConversationCreated(data) => serde_json::to_value(data),
            Self::GroupCreated(data) => serde_json::to_value(data),
            Self::GroupDismissed(data) => serde_json::to_value(data),
            Self::GroupInfoUpdated(data) => serde_json::to_value(data),
            Self::GroupInfoExUpdated(data) => serde_json::to_value(data),
            Self::GroupMemberJoined(data) => serde_json::to_value(data),
            Self::GroupMemberKicked(data) => serde_json::to_value(data),
            Self::GroupMemberQuit(data) => serde_json::to_value(data),
            Self::GroupMemberUpdated(data) => serde_json::to_value(data),
            Self::GroupMessageRead(data) => serde_json::to_value(data),
            Self::GroupMessageSent(data) => serde_json::to_value(data),
            Self::GroupOwnerTransferred(data) => serde_json::to_value(data),
            Self::MessageRevoked(data) => serde_json::to_value(data),
            Self::MessageSaved(data) => serde_json::to_value(data),
            Self::SingleConversationCreated(data) => serde_json::to_value(data),
            Self::SingleMessageRead(data) => serde_json::to_value(data),
            Self::SingleMessageSent(data) => serde_json::to_value(data),
            Self::UserInfoUpdated(data) => serde_json::to_value(data),
            Self::UserInfoExUpdated(data) => serde_json::to_value(data),
            Self::UserKickedOff(data) => serde_json::to_value(data),
            Self::UserOffline(data) => serde_json::to_value(data),
            Self::UserOnline(data) => serde_json::to_value(data),
            Self::UserRegistered(data) => serde_json::to_value(data),
            Self::Other(value) => Ok(value.clone()),
        };
        // Serializing these types cannot fail (string keys, no maps of
        // non-string keys).
        value.unwrap_or(Value::Null)
    }

    /// When the bridge received the callback (RFC 3339): every event has it.
    pub fn received_at(&self) -> Option<&str> {
        match self {
            Self::BeforeAddBlack(data) => Some(&data.received_at),
            Self::BeforeAddFriend(data) => Some(&data.received_at),
            Self::BeforeAddFriendAgree(data) => Some(&data.received_at),
            Self::BeforeCreateGroup(data) => Some(&data.received_at),
            Self::BeforeCreateGroupChatConversations(data) => Some(&data.received_at),
            Self::BeforeCreateSingleChatConversations(data) => Some(&data.received_at),
            Self::BeforeGroupOnlinePush(data) => Some(&data.received_at),
            Self::BeforeImportFriends(data) => Some(&data.received_at),
            Self::BeforeInviteJoinGroup(data) => Some(&data.received_at),
            Self::BeforeJoinGroup(data) => Some(&data.received_at),
            Self::BeforeMembersJoinGroup(data) => Some(&data.received_at),
            Self::BeforeMsgModify(data) => Some(&data.received_at),
            Self::BeforeOfflinePush(data) => Some(&data.received_at),
            Self::BeforeOnlinePush(data) => Some(&data.received_at),
            Self::BeforeOther(data) => Some(&data.received_at),
            Self::BeforeSendGroupMsg(data) => Some(&data.received_at),
            Self::BeforeSendSingleMsg(data) => Some(&data.received_at),
            Self::BeforeSetFriendRemark(data) => Some(&data.received_at),
            Self::BeforeSetGroupInfo(data) => Some(&data.received_at),
            Self::BeforeSetGroupInfoEx(data) => Some(&data.received_at),
            Self::BeforeSetGroupMemberInfo(data) => Some(&data.received_at),
            Self::BeforeUpdateUserInfo(data) => Some(&data.received_at),
            Self::BeforeUpdateUserInfoEx(data) => Some(&data.received_at),
            Self::BeforeUserRegister(data) => Some(&data.received_at),
            Self::CallbackUnknown(data) => Some(&data.received_at),
            Self::FriendBlacklistRemoved(data) => Some(&data.received_at),
            Self::FriendDeleted(data) => Some(&data.received_at),
            Self::FriendImported(data) => Some(&data.received_at),
            Self::FriendRemarkUpdated(data) => Some(&data.received_at),
            Self::FriendRequestHandled(data) => Some(&data.received_at),
            Self::FriendRequested(data) => Some(&data.received_at),
            Self::GroupConversationCreated(data) => Some(&data.received_at),
            Self::GroupCreated(data) => Some(&data.received_at),
            Self::GroupDismissed(data) => Some(&data.received_at),
            Self::GroupInfoUpdated(data) => Some(&data.received_at),
            Self::GroupInfoExUpdated(data) => Some(&data.received_at),
            Self::GroupMemberJoined(data) => Some(&data.received_at),
            Self::GroupMemberKicked(data) => Some(&data.received_at),
            Self::GroupMemberQuit(data) => Some(&data.received_at),
            Self::GroupMemberUpdated(data) => Some(&data.received_at),
            Self::GroupMessageRead(data) => Some(&data.received_at),
            Self::GroupMessageSent(data) => Some(&data.received_at),
            Self::GroupOwnerTransferred(data) => Some(&data.received_at),
            Self::MessageRevoked(data) => Some(&data.received_at),
            Self::MessageSaved(data) => Some(&data.received_at),
            Self::SingleConversationCreated(data) => Some(&data.received_at),
            Self::SingleMessageRead(data) => Some(&data.received_at),
            Self::SingleMessageSent(data) => Some(&data.received_at),
            Self::UserInfoUpdated(data) => Some(&data.received_at),
            Self::UserInfoExUpdated(data) => Some(&data.received_at),
            Self::UserKickedOff(data) => Some(&data.received_at),
            Self::UserOffline(data) => Some(&data.received_at),
            Self::UserOnline(data) => Some(&data.received_at),
            Self::UserRegistered(data) => Some(&data.received_at),
            Self::Other(value) => value.get("received_at").and_then(Value::as_str),
        }
    }
}
