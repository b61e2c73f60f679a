//! Structure-aware: well-formed JSON objects with the real wire keys and
//! arbitrary values of arbitrary types (and extra keys), the way a buggy or
//! newer OpenIM, or an attacker, could send them.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use openim_bridge::normalize::{normalize, CallbackKind};
use serde_json::{Map, Value};
use time::OffsetDateTime;

const KEYS: [&str; 21] = [
    "sendID", "callbackCommand", "serverMsgID", "clientMsgID", "operationID", "senderPlatformID",
    "senderNickname", "sessionType", "msgFrom", "contentType", "status", "sendTime", "createTime",
    "content", "seq", "atUserList", "faceURL", "ex", "groupID", "recvID", "isReact",
];

#[derive(Arbitrary, Debug)]
enum Field {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Text(String),
    List(Vec<String>),
    Nested(Vec<Option<i32>>),
}

impl Field {
    fn json(self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Bool(b) => b.into(),
            Field::Int(i) => i.into(),
            Field::Big(u) => u.into(),
            Field::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Field::Text(s) => s.into(),
            Field::List(l) => l.into(),
            Field::Nested(n) => n.into(),
        }
    }
}

fuzz_target!(|input: (bool, Vec<(u8, Field)>)| {
    let (group, fields) = input;
    let kind = if group { CallbackKind::GROUP_MESSAGE_SENT } else { CallbackKind::SINGLE_MESSAGE_SENT };
    let mut body = Map::new();
    body.insert("callbackCommand".into(), kind.command().into());
    for (key, field) in fields {
        body.insert(KEYS[key as usize % KEYS.len()].to_owned(), field.json());
    }
    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap();
    let source: Arc<str> = Arc::from("openim");
    if let Ok(event) = normalize(kind, &bytes, OffsetDateTime::UNIX_EPOCH, &source) {
        let data: Value = serde_json::from_slice(&event.data).unwrap();
        assert_eq!(data["event_id"].as_str(), Some(event.id.as_str()));
        assert!(!event.id.is_empty() && !event.key.is_empty());
    }
});
