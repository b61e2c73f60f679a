//! OpenIM as it really calls us (PROTOCOL.md, "Round two"): URLs built the
//! way OpenIM's code builds them, before-callback replies decoded and
//! applied the way OpenIM decodes and applies them, and one partition key
//! per conversation.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::kafka::{create_topic, read};
use common::rabbitmq::Binding;
use common::*;
use http_body_util::Full;
use openim_bridge::settings::SinkKind;
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-Token_0123456789";
const GROUP: &str = "after_send_group_msg_01_text_ios.json";
const QUIT: &str = "after_quit_group_01.json";

// ---------------------------------------------------------------------------
// How OpenIM builds a callback's URL.

/// Go's `url.QueryEscape`.
fn go_query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Every OpenIM version: `webhooks.url + "/" + command`, by concatenation.
fn concatenated(webhooks_url: &str, command: &str) -> String {
    format!("{webhooks_url}/{command}")
}

/// OpenIM main, message callbacks: the concatenated URL is parsed
/// (`url.Parse`), `key` is set to the base64 of the message's IDs
/// (`q.Set`), and the query is re-encoded (`q.Encode()`: keys sorted,
/// values escaped).
fn with_key(webhooks_url: &str, command: &str, send: &str, recv: &str, group: &str) -> String {
    let url = concatenated(webhooks_url, command);
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        values
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    let ids = json!({"sendID": send, "recvID": recv, "groupID": group}).to_string();
    let key = base64::engine::general_purpose::STANDARD.encode(ids);
    values.insert("key".to_owned(), vec![key]);
    let encoded: Vec<String> = values
        .iter()
        .flat_map(|(key, list)| {
            list.iter()
                .map(move |value| format!("{}={}", go_query_escape(key), go_query_escape(value)))
        })
        .collect();
    format!("{path}?{}", encoded.join("&"))
}

/// The path and query of an absolute URL.
fn target(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

#[test]
fn urls_are_built_as_openim_builds_them() {
    let url = "http://bridge:8080/openim?token=S";
    assert_eq!(
        target(&concatenated(url, "callbackAfterQuitGroupCommand")),
        "/openim?token=S/callbackAfterQuitGroupCommand"
    );
    let keyed = with_key(url, "callbackAfterSendGroupMsgCommand", "u1", "", "g1");
    assert!(
        target(&keyed).starts_with("/openim?key=")
            && keyed.ends_with("&token=S%2FcallbackAfterSendGroupMsgCommand"),
        "{keyed}"
    );
}

async fn token_bridge() -> TestBridge {
    let mut settings = test_settings();
    settings.http.auth_token = Some(TOKEN.to_owned());
    TestBridge::start(settings).await
}

#[tokio::test]
async fn a_token_in_the_webhooks_url_query_works_for_both_openim_generations() {
    let bridge = token_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let url = format!("http://openim-bridge:8080/openim?token={TOKEN}");
    // v3.8.x, every callback; main, every non-message callback.
    let quit = concatenated(&url, "callbackAfterQuitGroupCommand");
    assert_ack(&client.post(target(&quit), &fixture(QUIT)).await);
    let group = concatenated(&url, "callbackAfterSendGroupMsgCommand");
    assert_ack(&client.post(target(&group), &fixture(GROUP)).await);
    // main, message callbacks: `key` added, the query re-encoded.
    let keyed = with_key(
        &url,
        "callbackAfterSendGroupMsgCommand",
        "u_1001",
        "",
        "g_3001",
    );
    assert!(
        keyed.contains("%2FcallbackAfterSendGroupMsgCommand"),
        "{keyed}"
    );
    assert_ack(&client.post(target(&keyed), &fixture(GROUP)).await);
    assert_eq!(bridge.stats.snapshot().callbacks_acked, 3);
    bridge.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_in_every_form_and_never_echoed() {
    let bridge = token_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let wrong = "s3cret-Token_0123456780";
    let command = "callbackAfterSendGroupMsgCommand";
    let query = format!("http://bridge/openim?token={wrong}");
    let forms = [
        concatenated(&query, command),
        with_key(&query, command, "u_1001", "", "g_3001"),
        concatenated(&format!("http://bridge/openim/{wrong}"), command),
        // The secret in another parameter is not a token.
        with_key(
            &format!("http://bridge/openim?tok={TOKEN}"),
            command,
            TOKEN,
            TOKEN,
            TOKEN,
        ),
        concatenated(&format!("http://bridge/openim?token=x/{TOKEN}"), command),
    ];
    for url in &forms {
        let reply = client.post(target(url), &fixture(GROUP)).await;
        assert_eq!(reply.status, 401, "{url}: {:?}", reply.body);
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains(TOKEN) && !text.contains(wrong), "{text}");
    }
    // The right one, as a path segment and in the header.
    let path = concatenated(&format!("http://bridge/openim/{TOKEN}"), command);
    assert_ack(&client.post(target(&path), &fixture(GROUP)).await);
    let request = hyper::Request::post("/openim/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .header("X-OpenIM-Bridge-Token", TOKEN)
        .body(Full::new(Bytes::from(fixture(GROUP))))
        .unwrap();
    assert_ack(&client.send(request).await);
    bridge.stop().await;
}

#[tokio::test]
async fn the_token_stays_out_of_the_invalid_callback_log() {
    let bridge = token_bridge().await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let path = format!("/openim/{TOKEN}/callbackAfterSendGroupMsgCommand");
    let reply = client.post(&path, "{not json").await;
    assert_eq!(reply.status, 400);
    let log = invalid_log(&bridge.spool).await;
    assert!(
        log.contains("/openim/***/callbackAfterSendGroupMsgCommand"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the secret leaked: {log}");
    bridge.stop().await;
}

#[test]
fn a_token_a_url_would_change_is_refused_at_startup() {
    let mut settings = test_settings();
    settings.http.auth_token = Some("secret/with?odd&chars+".to_owned());
    let err = settings.validate().unwrap_err().to_string();
    assert!(
        err.contains("http.auth_token") && err.contains("letters, digits"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Before-callback replies, decoded and applied as OpenIM does.
//
// OpenIM decodes the reply into the command's Go response struct with
// `encoding/json` (keys matched exactly, else case-insensitively; unknown
// keys ignored; a value of the wrong type is an error, and any error rejects
// the user's action), blocks the action only on `actionCode == 0 &&
// nextCode == 1`, then copies fields into the user's request. How each
// field is copied (open-im-server main 7848d7c, internal/rpc/*/callback.go):
//
// * `Ptr`: a pointer with a nil check: copied only when the reply sets it.
// * `List`: a slice copied only when non-empty.
// * `NonEmpty`: a plain string copied only when non-empty (friend remark).
// * `Always`: a plain value copied unconditionally (`datautil.NotNilReplace`
//   on a non-pointer): a missing key copies the zero value.
// * `Assign`: a wrapper pointer assigned unconditionally (`NotNilReplace`
//   on a pointer-to-pointer): a missing or null key unsets the field.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Applied {
    Ptr,
    List,
    NonEmpty,
    Always,
    Assign,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum GoType {
    Str,
    I32,
    Boolean,
    /// Any JSON object or array (nested structs, slices).
    Nested,
}

use Applied::*;
use GoType::*;

/// The response struct of each before-callback (beyond
/// `CommonCallbackResp`): (json key, Go type, how it is copied).
fn response_struct(command: &str) -> Vec<(&'static str, GoType, Applied)> {
    let conversation = vec![
        ("recvMsgOpt", I32, Ptr),
        ("isPinned", Boolean, Ptr),
        ("isPrivateChat", Boolean, Ptr),
        ("burnDuration", I32, Ptr),
        ("groupAtType", I32, Ptr),
        ("attachedInfo", Str, Ptr),
        ("ex", Str, Ptr),
    ];
    let push = vec![
        ("userIDList", Nested, List),
        ("offlinePushInfo", Nested, Ptr),
    ];
    match command {
        "callbackBeforeSendSingleMsgCommand"
        | "callbackBeforeSendGroupMsgCommand"
        | "callbackBeforeJoinGroupCommand"
        | "callbackBeforeAddFriendCommand"
        | "callbackBeforeAddFriendAgreeCommand"
        | "callbackBeforeAddBlackCommand" => vec![],
        "callbackBeforeMsgModifyCommand" => vec![
            ("content", Str, Ptr),
            ("recvID", Str, Ptr),
            ("groupID", Str, Ptr),
            ("clientMsgID", Str, Ptr),
            ("serverMsgID", Str, Ptr),
            ("senderPlatformID", I32, Ptr),
            ("senderNickname", Str, Ptr),
            ("senderFaceURL", Str, Ptr),
            ("sessionType", I32, Ptr),
            ("msgFrom", I32, Ptr),
            ("contentType", I32, Ptr),
            ("status", I32, Ptr),
            ("options", Nested, Ptr),
            ("offlinePushInfo", Nested, Ptr),
            ("atUserIDList", Nested, Ptr),
            ("msgDataList", Str, Ptr),
            ("attachedInfo", Str, Ptr),
            ("ex", Str, Ptr),
        ],
        "callbackBeforeUserRegisterCommand" => vec![("users", Nested, List)],
        "callbackBeforeUpdateUserInfoCommand" | "callbackBeforeUpdateUserInfoExCommand" => vec![
            ("nickName", Str, Ptr),
            ("faceURL", Str, Ptr),
            ("ex", Str, Ptr),
        ],
        "callbackBeforeCreateGroupCommand" => vec![
            ("groupID", Str, Ptr),
            ("groupName", Str, Ptr),
            ("notification", Str, Ptr),
            ("introduction", Str, Ptr),
            ("faceURL", Str, Ptr),
            ("ownerUserID", Str, Ptr),
            ("ex", Str, Ptr),
            ("status", I32, Ptr),
            ("creatorUserID", Str, Ptr),
            ("groupType", I32, Ptr),
            ("needVerification", I32, Ptr),
            ("lookMemberInfo", I32, Ptr),
            ("applyMemberFriend", I32, Ptr),
        ],
        "callbackBeforeMembersJoinGroupCommand" => vec![("memberCallbackList", Nested, List)],
        "callbackBeforeSetGroupMemberInfoCommand" => vec![
            ("ex", Str, Ptr),
            ("nickName", Str, Ptr),
            ("faceURL", Str, Ptr),
            ("roleLevel", I32, Ptr),
        ],
        "callbackBeforeInviteJoinGroupCommand" => vec![("refusedMembersAccount", Nested, List)],
        "callbackBeforeSetGroupInfoCommand" => vec![
            ("groupID", Str, Always),
            ("groupName", Str, Always),
            ("notification", Str, Ptr), // in the struct, never copied
            ("introduction", Str, Always),
            ("faceURL", Str, Always),
            ("ex", Str, Ptr),
            ("needVerification", I32, Ptr),
            ("lookMemberInfo", I32, Ptr),
            ("applyMemberFriend", I32, Ptr),
        ],
        "callbackBeforeSetGroupInfoExCommand" => vec![
            ("groupID", Str, Always),
            ("groupName", Str, Assign),
            ("notification", Str, Ptr), // in the struct, never copied
            ("introduction", Str, Assign),
            ("faceURL", Str, Assign),
            ("ex", Str, Assign),
            ("needVerification", I32, Assign),
            ("lookMemberInfo", I32, Assign),
            ("applyMemberFriend", I32, Assign),
        ],
        "callbackBeforeImportFriendsCommand" => vec![("friendUserIDs", Nested, List)],
        "callbackBeforeSetFriendRemarkCommand" => vec![("remark", Str, NonEmpty)],
        "callbackBeforeOfflinePushCommand"
        | "callbackBeforeOnlinePushCommand"
        | "callbackBeforeGroupOnlinePushCommand" => push,
        "callbackBeforeCreateSingleChatConversationsCommand"
        | "callbackBeforeCreateGroupChatConversationsCommand" => conversation,
        other => panic!("no response struct for {other}"),
    }
}

/// The value of `key` as Go's decoder finds it: exact, else any case.
fn go_field<'a>(object: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Whether `value` decodes into a Go field of type `ty` (`null` always does).
fn decodes_as(value: &Value, ty: GoType) -> bool {
    match (value, ty) {
        (Value::Null, _) => true,
        (Value::String(_), Str) => true,
        (Value::Number(n), I32) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        (Value::Bool(_), Boolean) => true,
        (Value::Object(_) | Value::Array(_), Nested) => true,
        // Wrapper values: the bare value, or `{"value": ...}`.
        (Value::Object(wrapped), Str | I32) => wrapped
            .get("value")
            .is_none_or(|inner| decodes_as(inner, ty)),
        _ => false,
    }
}

/// Decodes `reply` as OpenIM does, applies it to the user's `request`
/// (the fields of the response struct, as the callback body shows them),
/// and returns the request afterwards, or why OpenIM would reject the
/// user's action.
fn apply_as_openim(
    command: &str,
    request: &Value,
    reply: &[u8],
) -> Result<HashMap<&'static str, Option<Value>>, String> {
    let reply: Value = serde_json::from_slice(reply).map_err(|err| format!("not JSON: {err}"))?;
    let reply = reply.as_object().ok_or("not a JSON object")?;
    for (key, ty) in [
        ("actionCode", I32),
        ("errCode", I32),
        ("errMsg", Str),
        ("errDlt", Str),
        ("nextCode", I32),
    ] {
        if let Some(value) = go_field(reply, key) {
            if !decodes_as(value, ty) {
                return Err(format!("`{key}`: {value} is not a Go {ty:?}"));
            }
        }
    }
    let code = |key| go_field(reply, key).and_then(Value::as_i64).unwrap_or(0);
    if code("actionCode") == 0 && code("nextCode") == 1 {
        return Err("the reply says stop".into());
    }
    let mut state = before_state(command, request);
    for (key, ty, copy) in response_struct(command) {
        let value = go_field(reply, key).cloned().unwrap_or(Value::Null);
        if !decodes_as(&value, ty) {
            return Err(format!("`{key}`: {value} is not a Go {ty:?}"));
        }
        let zero = match ty {
            Str => json!(""),
            I32 => json!(0),
            Boolean => json!(false),
            Nested => Value::Null,
        };
        let copied = match copy {
            Ptr => (!value.is_null()).then_some(value),
            List => value
                .as_array()
                .filter(|list| !list.is_empty())
                .map(|_| value.clone()),
            NonEmpty => value
                .as_str()
                .filter(|s| !s.is_empty())
                .map(|_| value.clone()),
            Always => Some(if value.is_null() { zero } else { value }),
            Assign => {
                state.insert(key, (!value.is_null()).then_some(value));
                continue;
            }
        };
        if let Some(value) = copied {
            state.insert(key, Some(value));
        }
    }
    Ok(state)
}

/// The user's request before the reply is applied: plain values as the body
/// shows them; pointers (`Ptr`) and slices unset (the body shows their
/// unset state as `""`, `0`, `null`); wrappers (`Assign`) as sent.
fn before_state(command: &str, request: &Value) -> HashMap<&'static str, Option<Value>> {
    let body = request.as_object().unwrap();
    response_struct(command)
        .into_iter()
        .map(|(key, _, copy)| {
            let sent = go_field(body, key).filter(|v| !v.is_null()).cloned();
            let value = match copy {
                Always | NonEmpty | Assign => sent,
                Ptr | List => None,
            };
            (key, value)
        })
        .collect()
}

/// Body of a before-callback as OpenIM sends it (keys of its request
/// struct; realistic values for the two commands whose reply is applied
/// field by field).
fn before_body(command: &str) -> Value {
    match command {
        "callbackBeforeSetGroupInfoCommand" => json!({
            "callbackCommand": command, "operationID": "op-1", "groupID": "g_3001",
            "groupName": "Team \u{3c}B\u{3e}", "notification": "", "introduction": "our team",
            "faceURL": "https://cdn.example.com/g.png", "ex": "", "needVerification": 0,
            "lookMemberInfo": 0, "applyMemberFriend": 0
        }),
        "callbackBeforeSetGroupInfoExCommand" => json!({
            "callbackCommand": command, "operationID": "op-1", "groupID": "g_3001",
            "groupName": "Team B", "notification": null, "introduction": null,
            "faceURL": "https://cdn.example.com/g.png", "ex": null, "needVerification": 1,
            "lookMemberInfo": null, "applyMemberFriend": 0
        }),
        _ => json!({
            "callbackCommand": command, "operationID": "op-1", "groupID": "g_3001",
            "userID": "u_1001", "nickName": "Alice", "remark": "", "ex": "",
            "users": null, "friendUserIDs": null
        }),
    }
}

/// Sends the before-callback `command` (URL as OpenIM builds it, body as
/// Go writes it) and checks OpenIM would continue with the request unchanged.
async fn assert_continues_unchanged(command: &str) {
    let bridge = TestBridge::start(test_settings()).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let request = before_body(command);
    // Go's encoder escapes <, > and & and ends the body with a newline.
    let body = request
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        + "\n";
    let url = concatenated("http://bridge/openim", command);
    let reply = client.post(target(&url), &body).await;
    let after = apply_as_openim(command, &request, &reply.body)
        .unwrap_or_else(|why| panic!("{command}: OpenIM rejects the action: {why}"));
    assert_eq!(
        after,
        before_state(command, &request),
        "{command}: the request changed"
    );
    bridge.stop().await;
}

macro_rules! before_callback_tests {
    ($($name:ident: $command:literal,)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                assert_continues_unchanged($command).await;
            }
        )*

        #[test]
        fn every_before_callback_has_a_test() {
            let tested = [$($command),*];
            let catalog: Vec<_> = openim_bridge::normalize::CallbackKind::all()
                .map(|kind| kind.command())
                .filter(|command| command.starts_with("callbackBefore") && *command != "callbackBeforeAfterMsgCommand" && *command != "callbackBefore")
                .collect();
            for command in &catalog {
                assert!(tested.contains(command), "{command} has no reply test");
            }
            assert_eq!(tested.len(), catalog.len());
        }
    };
}

before_callback_tests! {
    before_send_single_msg_continues_unchanged: "callbackBeforeSendSingleMsgCommand",
    before_send_group_msg_continues_unchanged: "callbackBeforeSendGroupMsgCommand",
    before_msg_modify_continues_unchanged: "callbackBeforeMsgModifyCommand",
    before_user_register_continues_unchanged: "callbackBeforeUserRegisterCommand",
    before_update_user_info_continues_unchanged: "callbackBeforeUpdateUserInfoCommand",
    before_update_user_info_ex_continues_unchanged: "callbackBeforeUpdateUserInfoExCommand",
    before_create_group_continues_unchanged: "callbackBeforeCreateGroupCommand",
    before_members_join_group_continues_unchanged: "callbackBeforeMembersJoinGroupCommand",
    before_set_group_member_info_continues_unchanged: "callbackBeforeSetGroupMemberInfoCommand",
    before_invite_join_group_continues_unchanged: "callbackBeforeInviteJoinGroupCommand",
    before_join_group_continues_unchanged: "callbackBeforeJoinGroupCommand",
    before_set_group_info_continues_unchanged: "callbackBeforeSetGroupInfoCommand",
    before_set_group_info_ex_continues_unchanged: "callbackBeforeSetGroupInfoExCommand",
    before_add_friend_continues_unchanged: "callbackBeforeAddFriendCommand",
    before_add_friend_agree_continues_unchanged: "callbackBeforeAddFriendAgreeCommand",
    before_add_black_continues_unchanged: "callbackBeforeAddBlackCommand",
    before_import_friends_continues_unchanged: "callbackBeforeImportFriendsCommand",
    before_set_friend_remark_continues_unchanged: "callbackBeforeSetFriendRemarkCommand",
    before_offline_push_continues_unchanged: "callbackBeforeOfflinePushCommand",
    before_online_push_continues_unchanged: "callbackBeforeOnlinePushCommand",
    before_group_online_push_continues_unchanged: "callbackBeforeGroupOnlinePushCommand",
    before_create_single_chat_conversations_continues_unchanged: "callbackBeforeCreateSingleChatConversationsCommand",
    before_create_group_chat_conversations_continues_unchanged: "callbackBeforeCreateGroupChatConversationsCommand",
}

#[test]
fn the_plain_ack_would_fail_every_group_edit() {
    // Why the two group-info replies echo: the model above, given the plain
    // ack, blanks the group's ID (and unsets the Ex callback's fields).
    let ack = br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;
    for command in [
        "callbackBeforeSetGroupInfoCommand",
        "callbackBeforeSetGroupInfoExCommand",
    ] {
        let request = before_body(command);
        let after = apply_as_openim(command, &request, ack).unwrap();
        assert_eq!(after["groupID"], Some(json!("")), "{command}");
        assert_ne!(after, before_state(command, &request), "{command}");
    }
}

#[tokio::test]
async fn a_group_edit_with_a_mistyped_field_is_still_echoed() {
    let bridge = TestBridge::start(test_settings()).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let command = "callbackBeforeSetGroupInfoCommand";
    let mut request = before_body(command);
    request["needVerification"] = json!("yes"); // not an int32
    let reply = client
        .post(&format!("/openim/{command}"), &request.to_string())
        .await;
    let after = apply_as_openim(command, &request, &reply.body).unwrap();
    assert_eq!(after, before_state(command, &request));
    bridge.stop().await;
}

// ---------------------------------------------------------------------------
// One conversation, one partition key.

/// A message, its revoke and (1:1) its read receipt, for a group and for a
/// 1:1 chat.
fn conversation_bodies() -> Vec<String> {
    let group_message = group_message("m-group-1", "g_7001");
    let group_revoke = json!({
        "callbackCommand": "callbackBeforeAfterMsgCommand",
        "conversationID": "sg_g_7001", "seq": 12, "userID": "u_1001"
    });
    let mut single: Value =
        serde_json::from_str(&fixture("after_send_single_msg_01_text.json")).unwrap();
    single["serverMsgID"] = "m-single-1".into();
    single["sendID"] = "u_b".into();
    single["recvID"] = "u_a".into();
    let single_revoke = json!({
        "callbackCommand": "callbackBeforeAfterMsgCommand",
        "conversationID": "si_u_a_u_b", "seq": 3, "userID": "u_b"
    });
    let single_read = json!({
        "callbackCommand": "callbackAfterSingleMsgReadCommand",
        "conversationID": "si_u_a_u_b", "userID": "u_a", "Seqs": [3], "contentType": 1
    });
    vec![
        group_message,
        group_revoke.to_string(),
        single.to_string(),
        single_revoke.to_string(),
        single_read.to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_and_its_revoke_share_one_kafka_key() {
    let topic = unique("openim-conversation");
    let brokers = kafka_brokers();
    create_topic(&brokers, &topic, 3).await;
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = brokers.clone();
    settings.kafka.topic = topic.clone();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let bodies = conversation_bodies();
    for body in &bodies {
        let command: Value = serde_json::from_str(body).unwrap();
        let command = command["callbackCommand"].as_str().unwrap();
        assert_ack(&client.post(&format!("/openim/{command}"), body).await);
    }
    let records = read(&brokers, &topic, 3, bodies.len(), Duration::from_secs(30));
    assert_eq!(records.len(), bodies.len());
    // Each conversation: one key, hence one partition, for all its events.
    let mut by_key: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for record in &records {
        by_key
            .entry(&record.key)
            .or_default()
            .push(record.partition);
    }
    let keys: Vec<_> = by_key.keys().copied().collect();
    assert_eq!(keys, ["g_7001", "si_u_a_u_b"], "{records:?}");
    assert_eq!(by_key["g_7001"].len(), 2, "group message and revoke");
    assert_eq!(
        by_key["si_u_a_u_b"].len(),
        3,
        "1:1 message, revoke, read receipt"
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_and_its_revoke_share_one_rabbitmq_routing_key() {
    let exchange = unique("openim-conversation");
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = amqp_url();
    settings.rabbitmq.exchange = exchange.clone();
    settings.rabbitmq.routing_key = "conversation.{key}".to_owned();
    let bridge = TestBridge::start(settings).await;
    let mut binding = Binding::new(&amqp_url(), &exchange, "conversation.#").await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let bodies = conversation_bodies();
    for body in &bodies {
        let command: Value = serde_json::from_str(body).unwrap();
        let command = command["callbackCommand"].as_str().unwrap();
        assert_ack(&client.post(&format!("/openim/{command}"), body).await);
    }
    let deliveries = binding.read(bodies.len(), Duration::from_secs(20)).await;
    let mut keys: Vec<String> = deliveries
        .iter()
        .map(|d| d.routing_key.as_str().to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys,
        ["conversation.g_7001", "conversation.si_u_a_u_b"],
        "{} deliveries",
        deliveries.len()
    );
    assert_eq!(deliveries.len(), bodies.len());
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;
}
