//! `src/data.rs` is generated from the bridge's JSON Schemas
//! (`schemas/events/*.schema.json`, themselves generated from the bridge's
//! catalog and checked against it by the bridge's `tests/catalog.rs`): one
//! definition of every layout, so the kit and the bridge cannot drift.
//!
//! This test fails when `src/data.rs` differs from what the schemas give.
//! Regenerate with `OPENIM_EVENTS_REGENERATE=1 cargo test -p openim-events --test generated`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

const HEADER: &str = "//! Typed `data` of every event type, generated from
//! `schemas/events/*.schema.json` by `tests/generated.rs` (do not edit:
//! regenerate with `OPENIM_EVENTS_REGENERATE=1 cargo test -p openim-events --test generated`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
";

/// `io.openim.group.member.kicked` -> `GroupMemberKicked`.
fn type_name(event_type: &str) -> String {
    event_type
        .trim_start_matches("io.openim.")
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The Rust type of one schema property.
fn rust_type(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return match reference {
            "#/$defs/message" => "Message".to_owned(),
            "#/$defs/string" => "Option<String>".to_owned(),
            "#/$defs/int32" => "Option<i32>".to_owned(),
            other => panic!("unknown $ref {other}"),
        };
    }
    if let Some(constant) = schema.get("const") {
        return if constant.is_string() {
            "String"
        } else {
            "u32"
        }
        .to_owned();
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return "Value".to_owned(),
    };
    let nullable = types.contains(&"null");
    let concrete: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    let inner = match concrete.as_slice() {
        ["string"] => "String".to_owned(),
        ["boolean"] => "bool".to_owned(),
        ["integer"] => match (schema["minimum"].as_i64(), schema["maximum"].as_i64()) {
            (Some(0), Some(4_294_967_295)) => "u32".to_owned(),
            (Some(-2_147_483_648), Some(2_147_483_647)) => "i32".to_owned(),
            _ => "i64".to_owned(),
        },
        ["object"] => "Map<String, Value>".to_owned(),
        ["array"] => match schema["items"]["type"].as_str() {
            Some("string") => "Vec<String>".to_owned(),
            Some("integer") => "Vec<i64>".to_owned(),
            _ => "Vec<Value>".to_owned(),
        },
        _ => return "Value".to_owned(),
    };
    if nullable {
        format!("Option<{inner}>")
    } else {
        inner
    }
}

/// Doc comment lines for `text`.
fn doc(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}/// {}", line.trim_end());
    }
}

/// A struct for the properties of `schema` (an object schema). `shared`:
/// it serves several event types (their constants differ).
fn structure(out: &mut String, name: &str, description: &str, schema: &Value, shared: bool) {
    doc(out, "", description);
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]"
    );
    let _ = writeln!(out, "pub struct {name} {{");
    let properties: BTreeMap<&String, &Value> = schema["properties"]
        .as_object()
        .expect("properties")
        .iter()
        .collect();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (field, property) in properties {
        let mut ty = rust_type(property);
        let optional = !required.contains(&field.as_str());
        let constant = property.get("const");
        let text = property["description"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| match constant {
                Some(_) if shared => Some(format!("`{field}`: fixed for each event type.")),
                Some(value) => Some(format!("Always `{value}`.")),
                None => None,
            })
            .unwrap_or_else(|| format!("`{field}`"));
        doc(out, "    ", &text);
        if optional && !ty.starts_with("Option<") {
            // Present in some events of the type only (e.g. `group_id`).
            ty = format!("Option<{ty}>");
            let _ = writeln!(
                out,
                "    #[serde(default, skip_serializing_if = \"Option::is_none\")]"
            );
        } else if ty.starts_with("Option<") || ty.starts_with("Vec<") || ty.starts_with("Map<") {
            // Absent and null read the same; an empty list stays a list.
            let _ = writeln!(out, "    #[serde(default)]");
        }
        let _ = writeln!(out, "    pub {field}: {ty},");
    }
    let _ = writeln!(out, "}}\n");
}

fn generate(schemas: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(schemas)
        .expect("schemas/events")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut out = HEADER.to_owned();
    out.push('\n');
    // (event type, variant, data type, summary)
    let mut variants: Vec<(String, String, String, String)> = Vec::new();
    let (mut raw_done, mut message_done) = (false, false);
    for file in files {
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let event_type = schema["title"].as_str().unwrap().to_owned();
        let variant = type_name(&event_type);
        let summary = schema["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let properties = schema["properties"].as_object().unwrap();
        let data = if properties.contains_key("body") {
            if !raw_done {
                structure(
                    &mut out,
                    "RawData",
                    "The data of a raw event (before-callbacks, unknown commands): the callback body as OpenIM sent it.",
                    &schema,
                    true,
                );
                raw_done = true;
            }
            "RawData".to_owned()
        } else if properties.contains_key("message") {
            if !message_done {
                structure(
                    &mut out,
                    "Message",
                    "The message of a message event, field for field from the callback body.",
                    &schema["$defs"]["message"],
                    true,
                );
                structure(
                    &mut out,
                    "MessageData",
                    "The data of a message event (sent, saved).",
                    &schema,
                    true,
                );
                message_done = true;
            }
            "MessageData".to_owned()
        } else {
            let name = format!("{variant}Data");
            structure(&mut out, &name, &summary, &schema, false);
            name
        };
        variants.push((event_type, variant, data, summary));
    }
    let _ = writeln!(out, "/// The data of an event, by its CloudEvents `type`.");
    let _ = writeln!(out, "#[derive(Debug, Clone, PartialEq)]");
    let _ = writeln!(out, "pub enum EventData {{");
    for (event_type, variant, data, summary) in &variants {
        doc(&mut out, "    ", &format!("`{event_type}`: {summary}"));
        let _ = writeln!(out, "    {variant}({data}),");
    }
    let _ = writeln!(
        out,
        "    /// A type this version of the kit does not know (a newer bridge):"
    );
    let _ = writeln!(out, "    /// its data as JSON.");
    let _ = writeln!(out, "    Other(Value),");
    let _ = writeln!(out, "}}\n");
    let _ = writeln!(out, "/// Every event type the kit knows.");
    let _ = writeln!(out, "pub const EVENT_TYPES: &[&str] = &[");
    for (event_type, ..) in &variants {
        let _ = writeln!(out, "    {event_type:?},");
    }
    let _ = writeln!(out, "];\n");
    let _ = writeln!(out, "impl EventData {{");
    let _ = writeln!(
        out,
        "    /// `data` of an event of `event_type`; an unknown type gives [`EventData::Other`].
    pub(crate) fn decode(event_type: &str, data: &[u8]) -> Result<Self, serde_path_to_error::Error<serde_json::Error>> {{
        let de = &mut serde_json::Deserializer::from_slice(data);
        Ok(match event_type {{"
    );
    for (event_type, variant, ..) in &variants {
        let _ = writeln!(
            out,
            "            {event_type:?} => Self::{variant}(serde_path_to_error::deserialize(de)?),"
        );
    }
    let _ = writeln!(
        out,
        "            _ => Self::Other(serde_path_to_error::deserialize(de)?),
        }})
    }}

    /// The data as JSON (what the bridge published, keys in order).
    pub fn to_json(&self) -> Value {{
        let value = match self {{"
    );
    for (_, variant, ..) in &variants {
        let _ = writeln!(
            out,
            "            Self::{variant}(data) => serde_json::to_value(data),"
        );
    }
    let _ = writeln!(
        out,
        "            Self::Other(value) => Ok(value.clone()),
        }};
        // Serializing these types cannot fail (string keys, no maps of
        // non-string keys).
        value.unwrap_or(Value::Null)
    }}

    /// When the bridge received the callback (RFC 3339): every event has it.
    pub fn received_at(&self) -> Option<&str> {{
        match self {{"
    );
    for (_, variant, ..) in &variants {
        let _ = writeln!(
            out,
            "            Self::{variant}(data) => Some(&data.received_at),"
        );
    }
    let _ = writeln!(
        out,
        "            Self::Other(value) => value.get(\"received_at\").and_then(Value::as_str),
        }}
    }}
}}"
    );
    out
}

#[test]
fn generated_types_match_the_schemas() {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = generate(&kit.join("../schemas/events"));
    let path = kit.join("src/data.rs");
    if std::env::var_os("OPENIM_EVENTS_REGENERATE").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "src/data.rs is not what schemas/events gives: regenerate it with `OPENIM_EVENTS_REGENERATE=1 cargo test -p openim-events --test generated`"
    );
}
