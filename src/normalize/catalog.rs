//! Every OpenIM callback command the bridge knows: its CloudEvents `type`,
//! partition key, event id, and the wire keys and types of its body.
//!
//! This table is the single source of truth: the parser reads it, and the
//! JSON Schemas (`schemas/events/`), the README's reference table and the
//! AsyncAPI document (`schemas/asyncapi.json`) are generated from it by
//! `tests/catalog.rs`, which fails when they drift.
//!
//! Naming scheme of event types: `io.openim.<scope>.<entity>.<past tense>`
//! (`io.openim.group.member.kicked`); before-callbacks are
//! `io.openim.before.<action>` (`io.openim.before.send_group_msg`); a
//! command this table does not know is `io.openim.callback.unknown`.
//!
//! Wire keys are matched the way Go's `encoding/json` does it, case
//! insensitively, and additionally ignoring `_`, so OpenIM's own spelling
//! drift (`ownerUserID` / `ownerUserId` / `owner_user_id`, `Seqs` / `seqs`)
//! lands on one field. Each field is published under one snake_case name.

use std::collections::HashMap;
use std::sync::LazyLock;

/// How a wire value is read and normalized. `operationID` and
/// `callbackCommand` are never fields: every event carries them as
/// `operation_id` and `callback_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Go `string`.
    String,
    /// Go `int32`.
    Int32,
    /// Go `int64` (milliseconds since the epoch for times).
    Int64,
    /// Go `bool`.
    Bool,
    /// Go `[]string`; OpenIM's `null` for an empty list becomes `[]`.
    StringList,
    /// Go `[]int64`; `null` becomes `[]`.
    Int64List,
    /// A protobuf `StringValue` (`{"value": "..."}`), unwrapped to the
    /// string; `null` (not changed) stays `null`. A plain string is taken
    /// as is.
    WrappedString,
    /// A protobuf `Int32Value`, unwrapped like [`FieldType::WrappedString`].
    WrappedInt32,
    /// `groupType`: an `int32`, except in the dismiss callback, where OpenIM
    /// writes it as a one-character string (`"\u0002"`): normalized to the
    /// number.
    GroupType,
    /// Nested structures (user or member lists, group info), kept as sent.
    Json,
}

/// One known key of a callback body.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The wire key, as OpenIM's Go struct tag spells it.
    pub wire: &'static str,
    /// The key in the published `data`.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
}

/// How the published `data` is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A chat message: `data.message` (`schemas/event-v1.schema.json`).
    Message,
    /// The known fields, flattened into `data`, in snake_case.
    Fields,
    /// The body as sent, in `data.body` (before-callbacks, unknown commands).
    Raw,
}

/// What a callback command is about (a closed set: [`Spec::family`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A chat message was sent or saved.
    Message,
    /// A user's state (online, offline, kicked off, profile).
    User,
    /// A group or its members.
    Group,
    /// Friends and the blacklist.
    Friend,
    /// Conversations.
    Conversation,
    /// A before-callback: OpenIM waits for the answer.
    Before,
    /// A command the catalog does not know.
    Unknown,
}

/// One callback command.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// OpenIM's `callbackCommand`.
    pub command: &'static str,
    /// Code of this command in spool records: stable, never reused.
    pub code: u8,
    /// CloudEvents `type`.
    pub event_type: &'static str,
    /// What the callback is about.
    pub family: Family,
    /// Layout of `data`.
    pub layout: Layout,
    /// Partition key: the first of these wire keys (or JSON pointers into
    /// the body) that holds a non-empty string. Messages use their
    /// conversation instead.
    pub key: &'static [&'static str],
    /// The wire key holding a natural event id (`serverMsgID`), if any;
    /// otherwise the id is `h-` + a hash of the exact body bytes, so the
    /// same callback replayed carries the same id.
    pub id: Option<&'static str>,
    /// Appended to the natural id, so two event types about one message
    /// never share an id (consumers deduplicate on it).
    pub id_suffix: &'static str,
    /// The known keys of the body ([`Layout::Fields`]).
    pub fields: &'static [Field],
    /// Before-callbacks: wire keys the "continue" reply must echo as
    /// received, because OpenIM copies them from the reply into the user's
    /// request whether or not they are set. Empty: the plain ack leaves the
    /// request unchanged.
    pub echo: &'static [&'static str],
    /// One line for the docs.
    pub summary: &'static str,
}

impl Spec {
    /// Whether OpenIM waits for our answer (`callbackBefore...`): acked at
    /// once and, by default, not published.
    pub fn is_before(&self) -> bool {
        self.family == Family::Before
    }
}

/// Code of [`UNKNOWN`] in spool records.
pub(crate) const UNKNOWN_CODE: u8 = 255;

/// A command this table does not know (a newer OpenIM): published raw.
pub const UNKNOWN: Spec = Spec {
    command: "unknown",
    code: UNKNOWN_CODE,
    event_type: "io.openim.callback.unknown",
    family: Family::Unknown,
    layout: Layout::Raw,
    key: RAW_KEY,
    id: None,
    id_suffix: "",
    fields: &[],
    echo: &[],
    summary: "A callback command this version does not know, published as sent.",
};

/// Keys tried, in order, for raw events.
const RAW_KEY: &[&str] = &[
    "groupID",
    "recvID",
    "userID",
    "sendID",
    "fromUserID",
    "ownerUserID",
    "conversationID",
];

macro_rules! field {
    ($wire:literal, $name:literal, $ty:ident) => {
        Field {
            wire: $wire,
            name: $name,
            ty: FieldType::$ty,
        }
    };
}

const USER_STATUS: &[Field] = &[
    field!("userID", "user_id", String),
    field!("platformID", "platform_id", Int32),
    field!("platform", "platform", String),
    field!("isAppBackground", "is_app_background", Bool),
    field!("connID", "conn_id", String),
    field!("seq", "seq", Int64),
];

const USER_INFO: &[Field] = &[
    field!("userID", "user_id", String),
    field!("nickName", "nickname", String),
    field!("faceURL", "face_url", String),
    field!("ex", "ex", String),
];

const USER_INFO_EX: &[Field] = &[
    field!("userID", "user_id", String),
    field!("nickName", "nickname", WrappedString),
    field!("faceURL", "face_url", WrappedString),
    field!("ex", "ex", WrappedString),
];

const GROUP_INFO: &[Field] = &[
    field!("groupID", "group_id", String),
    field!("groupName", "group_name", String),
    field!("notification", "notification", String),
    field!("introduction", "introduction", String),
    field!("faceURL", "face_url", String),
    field!("ownerUserID", "owner_user_id", String),
    field!("createTime", "create_time_ms", Int64),
    field!("memberCount", "member_count", Int64),
    field!("ex", "ex", String),
    field!("status", "status", Int32),
    field!("creatorUserID", "creator_user_id", String),
    field!("groupType", "group_type", GroupType),
    field!("needVerification", "need_verification", Int32),
    field!("lookMemberInfo", "look_member_info", Int32),
    field!("applyMemberFriend", "apply_member_friend", Int32),
    field!(
        "notificationUpdateTime",
        "notification_update_time_ms",
        Int64
    ),
    field!("notificationUserID", "notification_user_id", String),
    field!("initMemberList", "init_member_list", Json),
];

const GROUP_SET_INFO: &[Field] = &[
    field!("groupID", "group_id", String),
    field!("groupName", "group_name", String),
    field!("notification", "notification", String),
    field!("introduction", "introduction", String),
    field!("faceURL", "face_url", String),
    field!("ex", "ex", String),
    field!("needVerification", "need_verification", Int32),
    field!("lookMemberInfo", "look_member_info", Int32),
    field!("applyMemberFriend", "apply_member_friend", Int32),
];

const GROUP_SET_INFO_EX: &[Field] = &[
    field!("groupID", "group_id", String),
    field!("groupName", "group_name", WrappedString),
    field!("notification", "notification", WrappedString),
    field!("introduction", "introduction", WrappedString),
    field!("faceURL", "face_url", WrappedString),
    field!("ex", "ex", WrappedString),
    field!("needVerification", "need_verification", WrappedInt32),
    field!("lookMemberInfo", "look_member_info", WrappedInt32),
    field!("applyMemberFriend", "apply_member_friend", WrappedInt32),
];

const CONVERSATION: &[Field] = &[
    field!("owner_user_id", "owner_user_id", String),
    field!("conversation_id", "conversation_id", String),
    field!("conversation_type", "conversation_type", Int32),
    field!("user_id", "user_id", String),
    field!("group_id", "group_id", String),
    field!("recv_msg_opt", "recv_msg_opt", Int32),
    field!("is_pinned", "is_pinned", Bool),
    field!("is_private_chat", "is_private_chat", Bool),
    field!("burn_duration", "burn_duration", Int32),
    field!("group_at_type", "group_at_type", Int32),
    field!("attached_info", "attached_info", String),
    field!("ex", "ex", String),
];

/// An after-callback with [`Layout::Fields`].
macro_rules! after {
    ($code:literal, $command:literal, $type:literal, $family:expr, $key:expr, $fields:expr, $summary:literal) => {
        Spec {
            command: $command,
            code: $code,
            event_type: $type,
            family: $family,
            layout: Layout::Fields,
            key: $key,
            id: None,
            id_suffix: "",
            fields: $fields,
            echo: &[],
            summary: $summary,
        }
    };
}

/// A before-callback: acked at once, published raw when enabled. `echo`:
/// see [`Spec::echo`].
macro_rules! before {
    ($code:literal, $command:literal, $type:literal) => {
        before!($code, $command, $type, &[])
    };
    ($code:literal, $command:literal, $type:literal, $echo:expr) => {
        Spec {
            command: $command,
            code: $code,
            event_type: $type,
            family: Family::Before,
            layout: Layout::Raw,
            key: RAW_KEY,
            id: None,
            id_suffix: "",
            fields: &[],
            echo: $echo,
            summary: "Before-callback: answered \"continue\" at once; published (raw) only when a route enables it.",
        }
    };
}

/// What `callbackBeforeSetGroupInfoCommand`'s reply must echo: OpenIM
/// copies these four plain strings from the reply unconditionally (a
/// missing one would blank the group's ID, failing every group edit). Not
/// `ex`, `needVerification`, `lookMemberInfo`, `applyMemberFriend`: those
/// are pointers OpenIM applies when set, and the request shows their unset
/// state as `""`/`0`, which echoed would overwrite the group's values.
const ECHO_SET_GROUP_INFO: &[&str] = &["groupID", "groupName", "faceURL", "introduction"];

/// What `callbackBeforeSetGroupInfoExCommand`'s reply must echo: OpenIM
/// copies `groupID` and assigns every wrapper field from the reply, so a
/// missing one would become "unset"; each is echoed exactly as received
/// (`null` stays `null`).
const ECHO_SET_GROUP_INFO_EX: &[&str] = &[
    "groupID",
    "groupName",
    "notification",
    "introduction",
    "faceURL",
    "ex",
    "needVerification",
    "lookMemberInfo",
    "applyMemberFriend",
];

/// Every known command. Codes 1-63 are after-callbacks, 64-127
/// before-callbacks; a code is never reused.
pub const CATALOG: &[Spec] = &[
    Spec {
        command: "callbackAfterSendGroupMsgCommand",
        code: 1,
        event_type: "io.openim.group.message.sent",
        family: Family::Message,
        layout: Layout::Message,
        key: &["groupID"],
        id: Some("serverMsgID"),
        id_suffix: "",
        fields: &[],
        echo: &[],
        summary: "A group message was sent.",
    },
    Spec {
        command: "callbackAfterSendSingleMsgCommand",
        code: 2,
        event_type: "io.openim.single.message.sent",
        family: Family::Message,
        layout: Layout::Message,
        key: &["sendID", "recvID"],
        id: Some("serverMsgID"),
        id_suffix: "",
        fields: &[],
        echo: &[],
        summary: "A 1:1 message was sent.",
    },
    Spec {
        command: "callbackAfterMsgSaveDBCommand",
        code: 3,
        event_type: "io.openim.message.saved",
        family: Family::Message,
        layout: Layout::Message,
        key: &["groupID", "sendID", "recvID"],
        id: Some("serverMsgID"),
        id_suffix: ".saved",
        fields: &[],
        echo: &[],
        summary: "A message was stored (newer OpenIM; carries the real `seq`).",
    },
    after!(
        4,
        "callbackAfterSingleMsgReadCommand",
        "io.openim.single.message.read",
        Family::Message,
        &["conversationID", "userID"],
        &[
            field!("conversationID", "conversation_id", String),
            field!("userID", "user_id", String),
            field!("Seqs", "seqs", Int64List),
            field!("contentType", "content_type", Int32),
        ],
        "A user read 1:1 messages (read receipt)."
    ),
    after!(
        5,
        "callbackAfterGroupMsgReadCommand",
        "io.openim.group.message.read",
        Family::Message,
        // OpenIM names no group or conversation here: keyed by the reader.
        &["receiveID", "sendID"],
        &[
            field!("sendID", "send_id", String),
            field!("receiveID", "receive_id", String),
            field!("unreadMsgNum", "unread_msg_num", Int64),
            field!("contentType", "content_type", Int64),
        ],
        "A user read group messages (read receipt). OpenIM sends only the reader (as both `sendID` and `receiveID`), the read seq (`unreadMsgNum`) and the conversation type (`contentType`): no group."
    ),
    after!(
        6,
        "callbackBeforeAfterMsgCommand",
        "io.openim.message.revoked",
        Family::Message,
        &["conversationID", "userID"],
        &[
            field!("conversationID", "conversation_id", String),
            field!("seq", "seq", Int64),
            field!("userID", "user_id", String),
        ],
        "A message was revoked (OpenIM's command name is `callbackBeforeAfterMsgCommand`)."
    ),
    after!(
        7,
        "callbackAfterUserOnlineCommand",
        "io.openim.user.online",
        Family::User,
        &["userID"],
        USER_STATUS,
        "A user's device connected (repeats about every 10 minutes)."
    ),
    after!(
        8,
        "callbackAfterUserOfflineCommand",
        "io.openim.user.offline",
        Family::User,
        &["userID"],
        USER_STATUS,
        "A user's device disconnected."
    ),
    after!(
        9,
        "callbackAfterUserKickOffCommand",
        "io.openim.user.kicked_off",
        Family::User,
        &["userID"],
        USER_STATUS,
        "A user's device was kicked off."
    ),
    after!(
        10,
        "callbackAfterUserRegisterCommand",
        "io.openim.user.registered",
        Family::User,
        &["/users/0/userID"],
        &[field!("users", "users", Json)],
        "Users were registered (keyed by the first user)."
    ),
    after!(
        11,
        "callbackAfterUpdateUserInfoCommand",
        "io.openim.user.info.updated",
        Family::User,
        &["userID"],
        USER_INFO,
        "A user changed their profile."
    ),
    after!(
        12,
        "callbackAfterUpdateUserInfoExCommand",
        "io.openim.user.info_ex.updated",
        Family::User,
        &["userID"],
        USER_INFO_EX,
        "A user changed their profile (`null`: not changed)."
    ),
    after!(
        13,
        "callbackAfterCreateGroupCommand",
        "io.openim.group.created",
        Family::Group,
        &["groupID"],
        GROUP_INFO,
        "A group was created."
    ),
    after!(
        14,
        "callbackAfterSetGroupMemberInfoCommand",
        "io.openim.group.member.updated",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("userID", "user_id", String),
            field!("nickName", "nickname", String),
            field!("faceURL", "face_url", String),
            field!("roleLevel", "role_level", Int32),
            field!("ex", "ex", String),
        ],
        "A group member's settings changed."
    ),
    after!(
        15,
        "callbackAfterQuitGroupCommand",
        "io.openim.group.member.quit",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("userID", "user_id", String),
        ],
        "A member left a group."
    ),
    after!(
        16,
        "callbackAfterKickGroupCommand",
        "io.openim.group.member.kicked",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("kickedUserIDs", "kicked_user_ids", StringList),
            field!("reason", "reason", String),
        ],
        "Members were removed from a group."
    ),
    after!(
        17,
        "callbackAfterDisMissGroupCommand",
        "io.openim.group.dismissed",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("ownerID", "owner_id", String),
            field!("groupType", "group_type", GroupType),
            field!("membersID", "member_ids", StringList),
        ],
        "A group was dismissed (its `groupType` arrives as a one-character string)."
    ),
    after!(
        18,
        "callbackAfterJoinGroupCommand",
        "io.openim.group.member.joined",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("reqMessage", "req_message", String),
            field!("joinSource", "join_source", Int32),
            field!("inviterUserID", "inviter_user_id", String),
        ],
        "A user joined a group (OpenIM does not say which user: only the group, the request message, how they joined and who invited them)."
    ),
    after!(
        19,
        "callbackAfterTransferGroupOwnerCommand",
        "io.openim.group.owner.transferred",
        Family::Group,
        &["groupID"],
        &[
            field!("groupID", "group_id", String),
            field!("oldOwnerUserID", "old_owner_user_id", String),
            field!("newOwnerUserID", "new_owner_user_id", String),
        ],
        "A group got a new owner."
    ),
    after!(
        20,
        "callbackAfterSetGroupInfoCommand",
        "io.openim.group.info.updated",
        Family::Group,
        &["groupID"],
        GROUP_SET_INFO,
        "A group's profile changed."
    ),
    after!(
        21,
        "callbackAfterSetGroupInfoExCommand",
        "io.openim.group.info_ex.updated",
        Family::Group,
        &["groupID"],
        GROUP_SET_INFO_EX,
        "A group's profile changed (`null`: not changed)."
    ),
    after!(
        22,
        "callbackAfterAddFriendCommand",
        "io.openim.friend.requested",
        Family::Friend,
        &["fromUserID"],
        &[
            field!("fromUserID", "from_user_id", String),
            field!("toUserID", "to_user_id", String),
            field!("reqMsg", "req_msg", String),
        ],
        "A friend request was sent."
    ),
    after!(
        23,
        "callbackAfterAddFriendAgreeCommand",
        "io.openim.friend.request.handled",
        Family::Friend,
        &["fromUserID"],
        &[
            field!("fromUserID", "from_user_id", String),
            // OpenIM's struct tags the other user `blackUserID`.
            field!("blackUserID", "to_user_id", String),
            field!("HandleResult", "handle_result", Int32),
            field!("HandleMsg", "handle_msg", String),
        ],
        "A friend request was answered (OpenIM names the other user `blackUserID`)."
    ),
    after!(
        24,
        "callbackAfterDeleteFriendCommand",
        "io.openim.friend.deleted",
        Family::Friend,
        &["ownerUserID"],
        &[
            field!("ownerUserID", "owner_user_id", String),
            field!("friendUserID", "friend_user_id", String),
        ],
        "A friend was removed."
    ),
    after!(
        25,
        "callbackAfterImportFriendsCommand",
        "io.openim.friend.imported",
        Family::Friend,
        &["ownerUserID"],
        &[
            field!("ownerUserID", "owner_user_id", String),
            field!("friendUserIDs", "friend_user_ids", StringList),
        ],
        "Friends were imported by an admin."
    ),
    after!(
        26,
        "callbackAfterRemoveBlackCommand",
        "io.openim.friend.blacklist.removed",
        Family::Friend,
        &["ownerUserID"],
        &[
            field!("ownerUserID", "owner_user_id", String),
            field!("blackUserID", "black_user_id", String),
        ],
        "A user was taken off a blacklist."
    ),
    after!(
        27,
        "callbackAfterSetFriendRemarkCommand",
        "io.openim.friend.remark.updated",
        Family::Friend,
        &["ownerUserID"],
        &[
            field!("ownerUserID", "owner_user_id", String),
            field!("friendUserID", "friend_user_id", String),
            field!("remark", "remark", String),
        ],
        "A friend's remark changed."
    ),
    after!(
        28,
        "callbackAfterCreateSingleChatConversationsCommand",
        "io.openim.single.conversation.created",
        Family::Conversation,
        &["owner_user_id"],
        CONVERSATION,
        "A 1:1 conversation was created for a user (keys also spelled `ownerUserId`)."
    ),
    after!(
        29,
        "callbackAfterCreateGroupChatConversationsCommand",
        "io.openim.group.conversation.created",
        Family::Conversation,
        &["owner_user_id"],
        CONVERSATION,
        "A group conversation was created for a user (keys also spelled `ownerUserId`, `groupId`)."
    ),
    before!(
        64,
        "callbackBeforeSendSingleMsgCommand",
        "io.openim.before.send_single_msg"
    ),
    before!(
        65,
        "callbackBeforeSendGroupMsgCommand",
        "io.openim.before.send_group_msg"
    ),
    before!(
        66,
        "callbackBeforeMsgModifyCommand",
        "io.openim.before.msg_modify"
    ),
    before!(
        67,
        "callbackBeforeUserRegisterCommand",
        "io.openim.before.user_register"
    ),
    before!(
        68,
        "callbackBeforeUpdateUserInfoCommand",
        "io.openim.before.update_user_info"
    ),
    before!(
        69,
        "callbackBeforeUpdateUserInfoExCommand",
        "io.openim.before.update_user_info_ex"
    ),
    before!(
        70,
        "callbackBeforeCreateGroupCommand",
        "io.openim.before.create_group"
    ),
    before!(
        71,
        "callbackBeforeMembersJoinGroupCommand",
        "io.openim.before.members_join_group"
    ),
    before!(
        72,
        "callbackBeforeSetGroupMemberInfoCommand",
        "io.openim.before.set_group_member_info"
    ),
    before!(
        73,
        "callbackBeforeInviteJoinGroupCommand",
        "io.openim.before.invite_join_group"
    ),
    before!(
        74,
        "callbackBeforeJoinGroupCommand",
        "io.openim.before.join_group"
    ),
    before!(
        75,
        "callbackBeforeSetGroupInfoCommand",
        "io.openim.before.set_group_info",
        ECHO_SET_GROUP_INFO
    ),
    before!(
        76,
        "callbackBeforeSetGroupInfoExCommand",
        "io.openim.before.set_group_info_ex",
        ECHO_SET_GROUP_INFO_EX
    ),
    before!(
        77,
        "callbackBeforeAddFriendCommand",
        "io.openim.before.add_friend"
    ),
    before!(
        78,
        "callbackBeforeAddFriendAgreeCommand",
        "io.openim.before.add_friend_agree"
    ),
    before!(
        79,
        "callbackBeforeAddBlackCommand",
        "io.openim.before.add_black"
    ),
    before!(
        80,
        "callbackBeforeImportFriendsCommand",
        "io.openim.before.import_friends"
    ),
    before!(
        81,
        "callbackBeforeSetFriendRemarkCommand",
        "io.openim.before.set_friend_remark"
    ),
    before!(
        82,
        "callbackBeforeOfflinePushCommand",
        "io.openim.before.offline_push"
    ),
    before!(
        83,
        "callbackBeforeOnlinePushCommand",
        "io.openim.before.online_push"
    ),
    before!(
        84,
        "callbackBeforeGroupOnlinePushCommand",
        "io.openim.before.group_online_push"
    ),
    before!(
        85,
        "callbackBeforeCreateSingleChatConversationsCommand",
        "io.openim.before.create_single_chat_conversations"
    ),
    before!(
        86,
        "callbackBeforeCreateGroupChatConversationsCommand",
        "io.openim.before.create_group_chat_conversations"
    ),
];

/// The catch-all for `callbackBefore...Command`s this table does
/// not name: they are answered "continue" like the others.
pub const OTHER_BEFORE: Spec = before!(127, "callbackBefore", "io.openim.before.other");

/// The catalog by command, built once (every request looks its command up).
static BY_COMMAND: LazyLock<HashMap<&'static str, &'static Spec>> =
    LazyLock::new(|| CATALOG.iter().map(|spec| (spec.command, spec)).collect());

/// The catalog by spool code, built once (every event's headers and every
/// spool record look their kind up).
static BY_CODE: LazyLock<[Option<&'static Spec>; 256]> = LazyLock::new(|| {
    let mut table = [None; 256];
    for spec in CATALOG.iter().chain([&UNKNOWN, &OTHER_BEFORE]) {
        table[usize::from(spec.code)] = Some(spec);
    }
    table
});

/// The spec of `command`, if known (any other `callbackBefore...Command`
/// is [`OTHER_BEFORE`]).
pub(crate) fn find(command: &str) -> Option<&'static Spec> {
    BY_COMMAND.get(command).copied().or_else(|| {
        command
            .starts_with("callbackBefore")
            .then_some(&OTHER_BEFORE)
    })
}

/// The spec with spool code `code`.
pub(crate) fn by_code(code: u8) -> Option<&'static Spec> {
    BY_CODE[usize::from(code)]
}

/// Whether two wire keys are the same key, without allocating: compared
/// as Go's decoder does (case-insensitively), and then without `_`.
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    folded(a).eq(folded(b))
}

/// A wire key as [`same_key`] compares it.
fn folded(key: &str) -> impl Iterator<Item = char> + '_ {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn commands_types_and_codes_are_unique() {
        let mut commands = HashSet::new();
        let mut types = HashSet::new();
        let mut codes = HashSet::new();
        for spec in CATALOG.iter().chain([&UNKNOWN, &OTHER_BEFORE]) {
            assert!(commands.insert(spec.command), "{}", spec.command);
            assert!(types.insert(spec.event_type), "{}", spec.event_type);
            assert!(codes.insert(spec.code), "{}", spec.code);
            assert_eq!(by_code(spec.code).unwrap().command, spec.command);
            if spec.code != UNKNOWN_CODE {
                assert_eq!(find(spec.command).unwrap().code, spec.code);
            }
            assert!(spec.event_type.starts_with("io.openim."));
            assert_eq!(
                spec.is_before(),
                spec.command.starts_with("callbackBefore") && spec.code >= 64
            );
        }
    }

    #[test]
    fn lookups_of_what_the_catalog_does_not_hold_find_nothing() {
        let used: HashSet<u8> = CATALOG.iter().map(|spec| spec.code).collect();
        let free = (0..=254u8).find(|code| !used.contains(code) && *code != 127);
        assert_eq!(by_code(free.unwrap()).map(|spec| spec.command), None);
        assert_eq!(find("callbackAfterNothingCommand").map(|s| s.code), None);
        assert_eq!(find("callbackBeforeNothingCommand").unwrap().code, 127);
    }

    #[test]
    fn field_names_are_unique_per_command() {
        for spec in CATALOG {
            let mut wire = HashSet::new();
            let mut names = HashSet::new();
            for field in spec.fields {
                assert!(
                    wire.insert(folded(field.wire).collect::<String>()),
                    "{} {}",
                    spec.command,
                    field.wire
                );
                assert!(names.insert(field.name), "{} {}", spec.command, field.name);
            }
        }
    }

    #[test]
    fn spelling_drift_is_one_key() {
        assert!(same_key("ownerUserId", "owner_user_id"));
        assert!(same_key("ownerUserID", "owner_user_id"));
        assert!(same_key("Seqs", "seqs"));
        assert!(same_key("groupId", "group_id") && !same_key("groupID", "groupIDs"));
    }
}
