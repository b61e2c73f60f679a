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

/// Keys and strings written with escapes (which are read into owned
/// strings, not borrowed from the body) mean what they mean unescaped.
#[test]
fn escaped_keys_and_strings_read_as_their_plain_form() {
    let plain = parse(CallbackKind::GROUP_MESSAGE_SENT, GROUP).unwrap();
    let escaped = GROUP
        .replace("\"sendID\"", "\"send\\u0049D\"")
        .replace("\"u_1001\"", "\"u\\u005f1001\"")
        .replace("\"g_3001\"", "\"\\u0067_3001\"");
    assert_ne!(escaped, GROUP);
    let event = parse(CallbackKind::GROUP_MESSAGE_SENT, &escaped).unwrap();
    assert_eq!((&event.id, &event.key), (&plain.id, &plain.key));
    assert_eq!(data(&event), data(&plain));
    let missing = GROUP.replace("\"serverMsgID\"", "\"serverMsgId\"");
    let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &missing).unwrap_err();
    assert!(
        err.to_string().contains("missing field `serverMsgID`"),
        "{err}"
    );
    let null = GROUP.replace("\"sendID\":\"u_1001\"", "\"sendID\":null");
    let err = parse(CallbackKind::GROUP_MESSAGE_SENT, &null).unwrap_err();
    assert!(
        err.to_string().contains("`sendID`: invalid type: null"),
        "{err}"
    );
    let array = parse(CallbackKind::GROUP_MESSAGE_SENT, "[]").unwrap_err();
    assert!(array.to_string().contains("a JSON object"), "{array}");
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

/// [`callback`] with `url_command` and the unknown-commands policy.
fn classify(
    body: &[u8],
    url_command: Option<&str>,
    publish_unknown: bool,
) -> Result<Event, Refused> {
    let source = source();
    let context = Context {
        source: &source,
        received_at: OffsetDateTime::UNIX_EPOCH,
        url_command,
        publish_unknown,
    };
    callback(body, &context)
}

#[test]
fn one_call_classifies_the_body_or_says_why_not() {
    let event = classify(
        GROUP.as_bytes(),
        Some("callbackAfterSendGroupMsgCommand"),
        false,
    )
    .unwrap();
    assert_eq!(event.kind, CallbackKind::GROUP_MESSAGE_SENT);
    let refused = |body: &[u8], url, publish| classify(body, url, publish).unwrap_err();
    assert!(matches!(
        refused(b"{}", None, true).error,
        NormalizeError::NoCommand
    ));
    assert!(matches!(
        refused(b"[1]", None, true).error,
        NormalizeError::NotJson(_)
    ));
    let not_json = refused(b"\xff", None, true).error;
    assert!(matches!(not_json, NormalizeError::NotJson(_)));
    // The parser's error is kept as the source, not only as text.
    assert!(std::error::Error::source(&not_json).is_some());
    // The URL and the body must agree; the body's command is not
    // trusted then.
    let mismatch = refused(
        GROUP.as_bytes(),
        Some("callbackAfterSendSingleMsgCommand"),
        true,
    );
    assert!(
        matches!(mismatch.error, NormalizeError::CommandMismatch { .. }),
        "{mismatch}"
    );
    assert_eq!(mismatch.kind, None);
    // A known kind whose body is wrong keeps its kind.
    let mut bad: serde_json::Value = serde_json::from_str(GROUP).unwrap();
    bad["sendID"] = 1.into();
    let invalid = refused(bad.to_string().as_bytes(), None, true);
    assert_eq!(
        invalid.kind,
        Some(CallbackKind::GROUP_MESSAGE_SENT),
        "{invalid}"
    );
    // Unknown commands: published raw, or refused.
    let newer = br#"{"callbackCommand":"callbackAfterSomethingNewCommand"}"#;
    assert_eq!(
        classify(newer, None, true).unwrap().kind,
        CallbackKind::UNKNOWN
    );
    let unknown = refused(newer, None, false);
    assert!(
        matches!(unknown.error, NormalizeError::UnknownCommand(_)),
        "{unknown}"
    );
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
    // The command peek skips the value without recursing: it finds the
    // kind (a stack overflow would abort this test process).
    let refused = classify(body.as_bytes(), None, true).unwrap_err();
    assert_eq!(refused.kind, Some(CallbackKind::GROUP_MESSAGE_SENT));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = classify(&body, None, true);
        let _ = normalize(CallbackKind::GROUP_MESSAGE_SENT, &body, OffsetDateTime::UNIX_EPOCH, &source());
    }
}

/// What [`callback`] returns, as text: the event's every part, or the
/// refusal's kind and message.
fn outcome(result: Result<Event, Refused>) -> String {
    match result {
        Ok(event) => format!(
            "{} {:?} {} {} {}",
            event.id,
            event.kind,
            event.time,
            event.key,
            String::from_utf8_lossy(&event.data)
        ),
        Err(refused) => format!("refused {:?}: {}", refused.kind, refused.error),
    }
}

/// The one-parse path (the URL names a chat-message command) gives what
/// the long path (the command read from the body first) gives, for valid
/// bodies and for every way a body can be wrong.
#[test]
fn a_message_named_by_the_url_is_parsed_once_with_the_same_outcome() {
    let single = include_str!("../../tests/fixtures/after_send_single_msg_01_text.json");
    let bodies = [
        GROUP.to_owned(),
        single.to_owned(),
        GROUP.replace("\"sendTime\":1719800000123,", ""),
        GROUP.replace(
            "\"serverMsgID\":\"9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91\"",
            "\"serverMsgID\":\"\"",
        ),
        GROUP.replace("\"groupID\":\"g_3001\"", "\"groupID\":\"\""),
        GROUP.replace("\"contentType\":101", "\"contentType\":\"101\""),
        GROUP.replace(
            "callbackAfterSendGroupMsgCommand",
            "callbackAfterSendSingleMsgCommand",
        ),
        GROUP.replace(
            "\"callbackCommand\":\"callbackAfterSendGroupMsgCommand\",",
            "",
        ),
        format!("{GROUP} trailing"),
        "{}".to_owned(),
        "[1]".to_owned(),
    ];
    for changed in &bodies[2..8] {
        assert_ne!(changed, GROUP, "a variant that changes nothing");
    }
    // The valid body its URL names takes the one parse; a body naming
    // another command does not.
    let source = source();
    let named = |url| Context {
        source: &source,
        received_at: OffsetDateTime::UNIX_EPOCH,
        url_command: Some(url),
        publish_unknown: true,
    };
    let group_url = named("callbackAfterSendGroupMsgCommand");
    assert!(message_named_by_url(GROUP.as_bytes(), &group_url).is_some());
    let single_url = named("callbackAfterSendSingleMsgCommand");
    assert!(message_named_by_url(GROUP.as_bytes(), &single_url).is_none());
    for body in &bodies {
        for url in [
            "callbackAfterSendGroupMsgCommand",
            "callbackAfterSendSingleMsgCommand",
        ] {
            let context = named(url);
            let once = outcome(callback(body.as_bytes(), &context));
            let long = outcome(callback_named_by_body(body.as_bytes(), &context));
            assert_eq!(once, long, "{url}: {body}");
        }
    }
}
