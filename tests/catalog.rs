//! The documents generated from the callback catalog
//! (`src/normalize/catalog.rs`) must match the code: a JSON Schema per event
//! type (`schemas/events/`), the reference table in `docs/events.md` and the AsyncAPI
//! 3.0 document (`schemas/asyncapi.json`). Run with
//! `OPENIM_BRIDGE_BLESS=1` to rewrite them after changing the catalog.
//!
//! Also: every fixture body normalizes to an event its schema accepts.

use std::path::{Path, PathBuf};

use openim_bridge::normalize::catalog::{
    Family, FieldType, Layout, Spec, CATALOG, OTHER_BEFORE, UNKNOWN,
};
use openim_bridge::normalize::{normalize, CallbackKind};
use openim_bridge::Settings;
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn specs() -> impl Iterator<Item = &'static Spec> {
    CATALOG.iter().chain([&OTHER_BEFORE, &UNKNOWN])
}

/// Compares `path` with `expected`, or writes it when blessing.
fn check_file(path: &Path, expected: &str) {
    if std::env::var_os("OPENIM_BRIDGE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date with src/normalize/catalog.rs: run `OPENIM_BRIDGE_BLESS=1 cargo test --test catalog` and commit the result",
        path.display()
    );
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

fn schema_path(spec: &Spec) -> PathBuf {
    root().join(format!("schemas/events/{}.schema.json", spec.event_type))
}

fn field_schema(ty: FieldType) -> Value {
    let int32 = json!({"type": ["integer", "null"], "minimum": i32::MIN, "maximum": i32::MAX});
    match ty {
        FieldType::String | FieldType::WrappedString => json!({"type": ["string", "null"]}),
        FieldType::Int32 | FieldType::WrappedInt32 => int32,
        FieldType::Int64 => json!({"type": ["integer", "null"]}),
        FieldType::Bool => json!({"type": ["boolean", "null"]}),
        FieldType::StringList => json!({"type": "array", "items": {"type": "string"}}),
        FieldType::Int64List => json!({"type": "array", "items": {"type": "integer"}}),
        FieldType::GroupType => json!({"type": ["integer", "string", "null"]}),
        FieldType::Json => json!({}),
    }
}

/// The JSON Schema of one event type's `data`.
fn schema(spec: &Spec) -> Value {
    let id = format!(
        "https://github.com/openim-bridge/openim-bridge/schemas/events/{}.schema.json",
        spec.event_type
    );
    if spec.layout == Layout::Message {
        let path = root().join("schemas/event-v1.schema.json");
        let mut schema: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        schema["$id"] = id.into();
        schema["title"] = spec.event_type.into();
        schema["description"] = format!(
            "{} The CloudEvents data of {} (from {}); the message layout of schemas/event-v1.schema.json.",
            spec.summary, spec.event_type, spec.command
        )
        .into();
        schema["properties"]["event_type"] = json!({"const": spec.event_type});
        schema["properties"]["callback_command"] = json!({"const": spec.command});
        return schema;
    }
    let command = if spec.command == UNKNOWN.command || spec.command == OTHER_BEFORE.command {
        json!({"type": "string", "minLength": 1})
    } else {
        json!({"const": spec.command})
    };
    let mut properties = Map::new();
    properties.insert("schema_version".into(), json!({"const": 1}));
    properties.insert(
        "event_id".into(),
        json!({"type": "string", "minLength": 1, "description": "Equals the CloudEvents id: the message id, or h- and a hash of the exact body. Deduplicate on it."}),
    );
    properties.insert("event_type".into(), json!({"const": spec.event_type}));
    properties.insert("callback_command".into(), command);
    properties.insert("operation_id".into(), json!({"type": ["string", "null"]}));
    properties.insert(
        "received_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    match spec.layout {
        Layout::Fields => {
            for field in spec.fields {
                let mut schema = field_schema(field.ty);
                schema["description"] = format!("OpenIM `{}`", field.wire).into();
                properties.insert(field.name.into(), schema);
            }
            properties.insert(
                "extra_fields".into(),
                json!({"type": "object", "description": "Callback keys unknown to this bridge version, verbatim."}),
            );
        }
        _ => {
            properties.insert(
                "body".into(),
                json!({"type": "object", "description": "The callback body exactly as OpenIM sent it."}),
            );
        }
    }
    let required: Vec<&String> = properties.keys().collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "title": spec.event_type,
        "description": format!("{} The CloudEvents data of {} events (OpenIM {}).", spec.summary, spec.event_type, spec.command),
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
    })
}

#[test]
fn every_event_type_has_its_schema_in_the_repo() {
    for spec in specs() {
        check_file(&schema_path(spec), &pretty(&schema(spec)));
    }
    // No schema left behind for a type that no longer exists.
    let known: Vec<PathBuf> = specs().map(schema_path).collect();
    for entry in std::fs::read_dir(root().join("schemas/events")).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            known.contains(&path),
            "{} belongs to no event type",
            path.display()
        );
    }
}

fn key_description(spec: &Spec) -> String {
    match spec.layout {
        Layout::Message if spec.code == 1 => "`groupID`".to_owned(),
        Layout::Message if spec.code == 2 => "`si_<low>_<high>` of `sendID`, `recvID`".to_owned(),
        Layout::Message => "`groupID`, else `si_<low>_<high>`".to_owned(),
        _ if matches!(spec.family, Family::Before | Family::Unknown) => {
            "first of `groupID`, `recvID`, `userID`, `sendID`, ...".to_owned()
        }
        _ => spec
            .key
            .iter()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn readme_table() -> String {
    let settings = Settings::default().validate().unwrap();
    let mut table = String::from(
        "| callbackCommand | CloudEvents type | key | id | Kafka topic | RabbitMQ routing key |\n|---|---|---|---|---|---|\n",
    );
    for spec in specs() {
        let id = match spec.id {
            Some(id) => format!("`{id}`{}", spec.id_suffix),
            None => "hash of the body".to_owned(),
        };
        let command = if spec.command == UNKNOWN.command {
            "any other".to_owned()
        } else if spec.command == OTHER_BEFORE.command {
            "any other `callbackBefore...`".to_owned()
        } else {
            format!("`{}`", spec.command)
        };
        let route = settings.route(CallbackKind::from_code(spec.code).unwrap());
        let (topic, routing_key) = if route.enabled {
            (
                format!("`{}`", route.kafka_topic),
                format!(
                    "`{}`",
                    route
                        .rabbitmq_routing_key
                        .replace("{type}", spec.event_type)
                ),
            )
        } else {
            (
                "not published (answered \"continue\")".to_owned(),
                "-".to_owned(),
            )
        };
        table.push_str(&format!(
            "| {command} | `{}` | {} | {id} | {topic} | {routing_key} |\n",
            spec.event_type,
            key_description(spec)
        ));
    }
    table.push_str(&format!(
        "\nTopics and routing keys are the defaults (`kafka.topic`, `rabbitmq.exchange` `{}` with `rabbitmq.routing_key` `{}`); `[[routes]]` changes them per command or type.\n",
        settings.rabbitmq.exchange, settings.rabbitmq.routing_key
    ));
    table
}

#[test]
fn the_readme_table_lists_every_command() {
    let path = root().join("docs/events.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- catalog:start -->\n", "<!-- catalog:end -->");
    let from = readme
        .find(start)
        .expect("docs/events.md has <!-- catalog:start -->")
        + start.len();
    let to = readme
        .find(end)
        .expect("docs/events.md has <!-- catalog:end -->");
    let expected = format!("{}{}{}", &readme[..from], readme_table(), &readme[to..]);
    check_file(&path, &expected);
}

fn asyncapi() -> Value {
    let settings = Settings::default();
    let mut messages = Map::new();
    let mut refs = Map::new();
    for spec in specs() {
        let id = spec.event_type.replace('.', "_");
        messages.insert(
            id.clone(),
            json!({
                "name": spec.event_type,
                "title": spec.event_type,
                "summary": spec.summary,
                "description": format!("From OpenIM `{}`. Kafka: binary CloudEvents (ce_* headers), key = the partition key. RabbitMQ: ce-* headers, routing key = the type.", spec.command),
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/cloudevents_headers"},
                "payload": {"$ref": format!("./events/{}.schema.json", spec.event_type)},
                "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
            }),
        );
        refs.insert(
            id.clone(),
            json!({"$ref": format!("#/components/messages/{id}")}),
        );
    }
    let operation_messages = |channel: &str| -> Vec<Value> {
        refs.keys()
            .map(|id| json!({"$ref": format!("#/channels/{channel}/messages/{id}")}))
            .collect()
    };
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "openim-bridge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OpenIM Server webhook callbacks, published as CloudEvents 1.0 (binary mode). Generated from src/normalize/catalog.rs by tests/catalog.rs; [[routes]] can send types to other topics, exchanges and routing keys.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {"host": settings.kafka.brokers, "protocol": "kafka", "description": "kafka.brokers"},
            "rabbitmq": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1", "description": "rabbitmq.url"},
        },
        "channels": {
            "kafka_events": {
                "address": settings.kafka.topic,
                "description": "kafka.topic: every event unless a route names another topic.",
                "servers": [{"$ref": "#/servers/kafka"}],
                "messages": refs.clone(),
                "bindings": {"kafka": {"topic": settings.kafka.topic, "bindingVersion": "0.5.0"}},
            },
            "rabbitmq_events": {
                "address": settings.rabbitmq.routing_key,
                "description": "rabbitmq.exchange (durable topic exchange); the routing key is the CloudEvents type.",
                "servers": [{"$ref": "#/servers/rabbitmq"}],
                "messages": refs,
                "bindings": {"amqp": {
                    "is": "routingKey",
                    "exchange": {"name": settings.rabbitmq.exchange, "type": "topic", "durable": true, "autoDelete": false, "vhost": "/"},
                    "bindingVersion": "0.3.0",
                }},
            },
        },
        "operations": {
            "publish_kafka": {"action": "send", "channel": {"$ref": "#/channels/kafka_events"}, "messages": operation_messages("kafka_events")},
            "publish_rabbitmq": {"action": "send", "channel": {"$ref": "#/channels/rabbitmq_events"}, "messages": operation_messages("rabbitmq_events")},
        },
        "components": {
            "messages": messages,
            "schemas": {"cloudevents_headers": {
                "type": "object",
                "description": "CloudEvents attributes: Kafka headers ce_specversion, ce_id, ce_source, ce_type, ce_time, ce_subject and content-type; RabbitMQ headers ce-specversion, ce-id, ... and the content_type property.",
                "properties": {
                    "ce_specversion": {"const": "1.0"},
                    "ce_id": {"type": "string"},
                    "ce_source": {"type": "string"},
                    "ce_type": {"type": "string"},
                    "ce_time": {"type": "string", "format": "date-time"},
                    "ce_subject": {"type": "string", "description": "The partition key."},
                },
            }},
        },
    })
}

#[test]
fn the_asyncapi_document_matches_the_catalog() {
    let document = asyncapi();
    check_file(&root().join("schemas/asyncapi.json"), &pretty(&document));
    // A valid AsyncAPI 3.0.0 document, by the specification's own schema.
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/schemas/asyncapi-3.0.0.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .build(&spec)
        .expect("the AsyncAPI schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schemas/asyncapi.json: {errors:#?}");
    let mut broken = document.clone();
    broken["operations"]["publish_kafka"]["action"] = "shout".into();
    assert!(
        !validator.is_valid(&broken),
        "the validator checks operations"
    );
    // Every payload reference resolves to a schema in the repo.
    for message in document["components"]["messages"]
        .as_object()
        .unwrap()
        .values()
    {
        let reference = message["payload"]["$ref"].as_str().unwrap();
        let path = root()
            .join("schemas")
            .join(reference.trim_start_matches("./"));
        assert!(path.exists(), "{reference} does not exist");
    }
}

/// Normalizes `body` like the bridge and checks it against its schema.
fn assert_valid(kind: CallbackKind, body: &[u8]) -> Value {
    let event = normalize(
        kind,
        body,
        time::OffsetDateTime::now_utc(),
        &std::sync::Arc::from("openim"),
    )
    .unwrap_or_else(|err| panic!("{}: {err}", kind.command()));
    let data: Value = serde_json::from_slice(&event.data).unwrap();
    let schema = schema(kind.spec());
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&data)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{}: {errors:?}\n{data:#}",
        kind.event_type()
    );
    assert_eq!(data["event_id"], event.id.as_str());
    data
}

#[test]
fn every_fixture_normalizes_to_a_valid_event() {
    let dir = root().join("tests/fixtures/callbacks");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let command = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let kind = CallbackKind::from_command(&command).unwrap_or(CallbackKind::UNKNOWN);
        assert_valid(kind, &std::fs::read(&path).unwrap());
        seen += 1;
    }
    // Plus the two send-message fixtures, elsewhere.
    let after: Vec<_> = CATALOG.iter().filter(|spec| !spec.is_before()).collect();
    assert!(seen >= after.len() - 2, "a fixture per after-callback");
    let unknown = br#"{"callbackCommand":"callbackAfterSomethingNewCommand","userID":"u_1"}"#;
    assert_valid(CallbackKind::UNKNOWN, unknown);
}
