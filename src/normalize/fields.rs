//! Callbacks other than chat messages: the body's known keys (from the
//! [`catalog`](super::catalog)) are checked against their Go types,
//! normalized and published flat in snake_case ([`Layout::Fields`]), or the
//! body is published as sent ([`Layout::Raw`]).
//!
//! `data` = `schema_version`, `event_id`, `event_type`, `callback_command`,
//! `operation_id`, `received_at`, then the fields and `extra_fields` (keys
//! the catalog does not name, as sent), or `body`.

use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::catalog::{same_key, Field, FieldType, Layout, Spec};
use super::event::{rfc3339, SCHEMA_VERSION};
use super::{CallbackKind, Event, NormalizeError};

/// A JSON object.
type Object = Map<String, Value>;

/// Parses `body` as an event of `kind` (a [`Layout::Fields`] or
/// [`Layout::Raw`] kind).
pub(super) fn normalize(
    kind: CallbackKind,
    body: &[u8],
    received_at: OffsetDateTime,
    source: &Arc<str>,
) -> Result<Event, NormalizeError> {
    let spec = kind.spec();
    let invalid = |detail: String| NormalizeError::Invalid {
        command: spec.command,
        detail,
    };
    let object = match serde_json::from_slice::<Value>(body).map_err(NormalizeError::NotJson)? {
        Value::Object(object) => object,
        _ => return Err(invalid("the body is not a JSON object".to_owned())),
    };
    let text = |wire: &str| {
        lookup(&object, wire)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let command = text("callbackCommand").unwrap_or(spec.command).to_owned();
    let operation_id = text("operationID").map(str::to_owned);
    let id = match spec.id.and_then(text) {
        Some(natural) => format!("{natural}{}", spec.id_suffix),
        None => format!("h-{:032x}", xxhash_rust::xxh3::xxh3_128(body)),
    };
    // Without any of its key fields the event is still published (never
    // lost), keyed by its command.
    // A conversation ID keys like the conversation's messages.
    let key = spec
        .key
        .iter()
        .find_map(|wire| {
            let value = text(wire)?;
            Some(if same_key(wire, "conversationID") {
                super::conversation_key(value)
            } else {
                value
            })
        })
        .unwrap_or(&command)
        .to_owned();
    let received = rfc3339(received_at);

    let mut data = Map::new();
    data.insert("schema_version".into(), SCHEMA_VERSION.into());
    data.insert("event_id".into(), id.as_str().into());
    data.insert("event_type".into(), spec.event_type.into());
    data.insert("callback_command".into(), command.into());
    data.insert("operation_id".into(), operation_id.into());
    data.insert("received_at".into(), received.as_str().into());
    match spec.layout {
        Layout::Raw | Layout::Message => {
            data.insert("body".into(), Value::Object(object));
        }
        Layout::Fields => {
            let (fields, extra) = split(spec, object).map_err(invalid)?;
            data.extend(fields);
            data.insert("extra_fields".into(), Value::Object(extra));
        }
    }
    // Serializing a serde_json Map cannot fail.
    let data = serde_json::to_vec(&data).map_err(|err| invalid(err.to_string()))?;
    Ok(Event {
        id,
        kind,
        source: Arc::clone(source),
        time: received,
        key,
        data: data.into(),
    })
}

/// The value of `wire` (matched like Go's decoder, ignoring `_`), or of a
/// JSON pointer (`/users/0/userID`).
fn lookup<'a>(object: &'a Map<String, Value>, wire: &str) -> Option<&'a Value> {
    if let Some(pointer) = wire.strip_prefix('/') {
        let (first, rest) = pointer.split_once('/').unwrap_or((pointer, ""));
        let value = lookup(object, first)?;
        return if rest.is_empty() {
            Some(value)
        } else {
            value.pointer(&format!("/{rest}"))
        };
    }
    object
        .iter()
        .find(|(key, _)| same_key(key, wire))
        .map(|(_, value)| value)
}

/// The catalog's fields of `object`, normalized and named, every one
/// present (absent ones as `null` or `[]`); and the keys it does not know.
fn split(spec: &Spec, object: Map<String, Value>) -> Result<(Object, Object), String> {
    let mut values: Vec<Option<Value>> = vec![None; spec.fields.len()];
    let mut extra = Map::new();
    for (wire, value) in object {
        if same_key(&wire, "callbackCommand") || same_key(&wire, "operationID") {
            continue;
        }
        match spec.fields.iter().position(|f| same_key(f.wire, &wire)) {
            // Two spellings of one key: the first non-null wins.
            Some(i) if values[i].as_ref().is_some_and(|v| !v.is_null()) => {
                extra.insert(wire, value);
            }
            Some(i) => {
                let field = &spec.fields[i];
                let normalized = field_value(field, value).map_err(|e| format!("`{wire}`: {e}"))?;
                values[i] = Some(normalized);
            }
            None => {
                extra.insert(wire, value);
            }
        }
    }
    let fields = spec
        .fields
        .iter()
        .zip(values)
        .map(|(field, value)| {
            let value = value.unwrap_or_else(|| absent(field.ty));
            (field.name.to_owned(), value)
        })
        .collect();
    Ok((fields, extra))
}

/// What a field OpenIM did not send is published as.
fn absent(ty: FieldType) -> Value {
    match ty {
        FieldType::StringList | FieldType::Int64List => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn int(value: &Value, min: i64, max: i64, what: &str) -> Result<Value, String> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(value.clone()),
        _ => Err(format!("expected {what}, found {value}")),
    }
}

/// Checks `value` against the field's Go type and normalizes it.
fn field_value(field: &Field, value: Value) -> Result<Value, String> {
    let int32 = |v: &Value| int(v, i32::MIN.into(), i32::MAX.into(), "an int32");
    let expected = |what: &str, v: &Value| Err(format!("expected {what}, found {}", kind_of(v)));
    match (field.ty, &value) {
        (_, Value::Null) => Ok(absent(field.ty)),
        (FieldType::Json, _)
        | (FieldType::String | FieldType::WrappedString, Value::String(_))
        | (FieldType::Bool, Value::Bool(_)) => Ok(value),
        (FieldType::Int32 | FieldType::WrappedInt32 | FieldType::GroupType, Value::Number(_)) => {
            int32(&value)
        }
        (FieldType::Int64, Value::Number(_)) => int(&value, i64::MIN, i64::MAX, "an int64"),
        (FieldType::StringList, Value::Array(items)) => match items.iter().find(|v| !v.is_string())
        {
            Some(bad) => expected("a list of strings", bad),
            None => Ok(value),
        },
        (FieldType::Int64List, Value::Array(items)) => {
            for item in items {
                int(item, i64::MIN, i64::MAX, "a list of int64")?;
            }
            Ok(value)
        }
        // A protobuf wrapper: `{"value": x}`; `{}` is the type's zero value.
        (FieldType::WrappedString | FieldType::WrappedInt32, Value::Object(wrapper)) => {
            let zero = if field.ty == FieldType::WrappedString {
                Value::String(String::new())
            } else {
                Value::from(0)
            };
            let inner = wrapper.get("value").cloned().unwrap_or(zero);
            let plain = Field {
                ty: if field.ty == FieldType::WrappedString {
                    FieldType::String
                } else {
                    FieldType::Int32
                },
                ..*field
            };
            field_value(&plain, inner)
        }
        // The dismiss callback writes the group type as a one-character
        // string ("\u0002"); a decimal string is read as its number.
        (FieldType::GroupType, Value::String(text)) => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_ascii_digit() => Ok(Value::from(u32::from(c))),
                _ => match text.parse::<i32>() {
                    Ok(n) => Ok(Value::from(n)),
                    Err(_) => Ok(value),
                },
            }
        }
        (FieldType::String, v) => expected("a string", v),
        (FieldType::Bool, v) => expected("a boolean", v),
        (FieldType::StringList | FieldType::Int64List, v) => expected("a list", v),
        (FieldType::WrappedString, v) => expected("a string or {\"value\": string}", v),
        (FieldType::WrappedInt32, v) => expected("a number or {\"value\": number}", v),
        (FieldType::Int32 | FieldType::Int64 | FieldType::GroupType, v) => expected("a number", v),
    }
}

#[cfg(test)]
mod tests {
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
        let body = json!({"callbackCommand": "callbackAfterSomethingNewCommand", "userID": "u_5", "x": [1]});
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
}
