use super::*;
use serde_json::json;

fn event(command: &str, body: Value) -> Result<Value, NormalizeError> {
    let kind = CallbackKind::from_command(command).unwrap_or(CallbackKind::UNKNOWN);
    let bytes = body.to_string();
    let event = normalize(
        kind,
        bytes.as_bytes(),
        OffsetDateTime::UNIX_EPOCH,
        &Arc::from("openim"),
    )?;
    let mut data: Value = serde_json::from_slice(&event.data).unwrap();
    data["_key"] = event.key.into();
    data["_id"] = event.id.into();
    Ok(data)
}

#[test]
fn dismiss_group_type_control_character_becomes_a_number() {
    let data = event(
        "callbackAfterDisMissGroupCommand",
        json!({"callbackCommand": "callbackAfterDisMissGroupCommand", "groupID": "g_1",
               "ownerID": "u_1", "groupType": "\u{0002}", "membersID": null}),
    )
    .unwrap();
    assert_eq!(data["group_type"], 2);
    assert_eq!(data["member_ids"], json!([]));
    assert_eq!(data["_key"], "g_1");
}

#[test]
fn spelling_variants_land_on_one_field() {
    let data = event(
        "callbackAfterCreateGroupChatConversationsCommand",
        json!({"callbackCommand": "x", "ownerUserId": "u_7", "groupId": "g_9",
               "conversationID": "sg_g_9", "isPinned": true}),
    )
    .unwrap();
    assert_eq!(data["owner_user_id"], "u_7");
    assert_eq!(data["group_id"], "g_9");
    assert_eq!(data["conversation_id"], "sg_g_9");
    assert_eq!(data["is_pinned"], true);
    assert_eq!(data["_key"], "u_7");
    assert_eq!(data["extra_fields"], json!({}));
}

#[test]
fn capitalised_seqs_and_wrappers_are_normalized() {
    let data = event(
        "callbackAfterSingleMsgReadCommand",
        json!({"conversationID": "si_a_b", "userID": "a", "Seqs": [3, 4], "contentType": 2200}),
    )
    .unwrap();
    assert_eq!(data["seqs"], json!([3, 4]));
    let data = event(
        "callbackAfterUpdateUserInfoExCommand",
        json!({"userID": "u_1", "nickName": {"value": "Ann"}, "faceURL": null, "ex": {}}),
    )
    .unwrap();
    assert_eq!(data["nickname"], "Ann");
    assert_eq!(data["face_url"], Value::Null);
    assert_eq!(data["ex"], "");
}

#[test]
fn wrappers_as_openim_writes_them_are_bare_values() {
    let data = event(
        "callbackAfterSetGroupInfoExCommand",
        json!({"groupID": "g_1", "groupName": "Team B", "needVerification": 1,
               "notification": null, "ex": {"value": "kept too"}}),
    )
    .unwrap();
    assert_eq!(data["group_name"], "Team B");
    assert_eq!(data["need_verification"], 1);
    assert_eq!(data["notification"], Value::Null);
    assert_eq!(data["ex"], "kept too");
}

#[test]
fn fields_openim_never_sends_are_not_in_the_layout() {
    // What OpenIM's structs really carry (PROTOCOL.md, round two).
    let cases = [
        (
            "callbackAfterGroupMsgReadCommand",
            json!({"sendID": "u_5", "receiveID": "u_5", "unreadMsgNum": 9, "contentType": 3}),
            &["group_id", "conversation_id", "user_id", "seqs"][..],
        ),
        (
            "callbackAfterSingleMsgReadCommand",
            json!({"conversationID": "si_a_b", "userID": "a", "Seqs": [3], "contentType": 1}),
            &["send_id", "receive_id"][..],
        ),
        (
            "callbackAfterJoinGroupCommand",
            json!({"groupID": "g_1", "reqMessage": "hi", "joinSource": 3, "inviterUserID": ""}),
            &["user_id", "apply_id", "group_type", "ex"][..],
        ),
        (
            "callbackBeforeAfterMsgCommand",
            json!({"conversationID": "sg_g_1", "seq": 4, "userID": "u_1"}),
            &["group_id", "group_type", "content"][..],
        ),
    ];
    for (command, body, never) in cases {
        let data = event(command, body).unwrap();
        for name in never {
            assert!(
                data.get(name).is_none(),
                "{command}: `{name}` is never sent"
            );
        }
        assert_eq!(data["extra_fields"], json!({}), "{command}");
    }
}

#[test]
fn a_conversation_id_keys_like_the_conversations_messages() {
    let key = |command: &str, body: Value| event(command, body).unwrap()["_key"].clone();
    let revoke = "callbackBeforeAfterMsgCommand";
    assert_eq!(
        key(revoke, json!({"conversationID": "sg_g_1", "userID": "u"})),
        "g_1"
    );
    assert_eq!(
        key(revoke, json!({"conversationID": "g_g_1", "userID": "u"})),
        "g_1"
    );
    assert_eq!(
        key(revoke, json!({"conversationID": "si_a_b", "userID": "a"})),
        "si_a_b"
    );
    assert_eq!(
        key(revoke, json!({"conversationID": "sn_a_b", "userID": "a"})),
        "sn_a_b"
    );
    assert_eq!(
        key(
            "callbackAfterSingleMsgReadCommand",
            json!({"conversationID": "si_a_b", "userID": "a"})
        ),
        "si_a_b"
    );
    // No conversation in a group read receipt: the reader.
    assert_eq!(
        key(
            "callbackAfterGroupMsgReadCommand",
            json!({"sendID": "u_5", "receiveID": "u_5"})
        ),
        "u_5"
    );
}

#[test]
fn wrong_types_are_refused_naming_the_key() {
    let err = event(
        "callbackAfterKickGroupCommand",
        json!({"groupID": "g_1", "kickedUserIDs": [1, 2]}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`kickedUserIDs`") && err.contains("list of strings"),
        "{err}"
    );
    let err = event(
        "callbackAfterUserOnlineCommand",
        json!({"userID": "u", "platformID": 4294967296_i64}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`platformID`") && err.contains("int32"),
        "{err}"
    );
}

#[test]
fn ids_are_deterministic_and_unknown_keys_kept() {
    let body = json!({"callbackCommand": "callbackAfterQuitGroupCommand", "groupID": "g", "userID": "u", "newKey": 1});
    let a = event("callbackAfterQuitGroupCommand", body.clone()).unwrap();
    let b = event("callbackAfterQuitGroupCommand", body).unwrap();
    assert_eq!(a["_id"], b["_id"]);
    assert!(a["_id"].as_str().unwrap().starts_with("h-"));
    assert_eq!(a["extra_fields"], json!({"newKey": 1}));
}

#[test]
fn unknown_commands_are_published_raw() {
    let body =
        json!({"callbackCommand": "callbackAfterSomethingNewCommand", "userID": "u_5", "x": [1]});
    let data = event("callbackAfterSomethingNewCommand", body.clone()).unwrap();
    assert_eq!(data["event_type"], "io.openim.callback.unknown");
    assert_eq!(data["callback_command"], "callbackAfterSomethingNewCommand");
    assert_eq!(data["body"], body);
    assert_eq!(data["_key"], "u_5");
}

#[test]
fn first_registered_user_keys_the_event() {
    let data = event(
        "callbackAfterUserRegisterCommand",
        json!({"users": [{"userID": "u_42", "nickname": "x"}]}),
    )
    .unwrap();
    assert_eq!(data["_key"], "u_42");
}
