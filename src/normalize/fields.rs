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
        traceparent: String::new(),
        tracestate: String::new(),
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
mod tests;
