//! `docs/configuration-reference.md` is generated from the settings types:
//! their JSON Schema (schemars, from the types and their doc comments),
//! with every key, its default (`Settings::default()`), its range and its
//! environment variable. The test fails when the page drifts from the
//! types; `OPENIM_BRIDGE_BLESS=1 cargo test --test configuration` writes
//! it again. A range the page shows is the one validation enforces: the
//! value just outside is refused naming the key, the bound itself loads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use openim_bridge::settings::ENV_PREFIX;
use openim_bridge::Settings;
use serde_json::Value;

const PAGE: &str = "docs/configuration-reference.md";

/// Keys whose environment variable takes a comma-separated list.
const COMMA_LISTS: [&str; 1] = ["http.allow_ips"];

fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Settings)).unwrap()
}

/// The definition `schema` refers to, or `schema` itself; `Option<T>` is
/// `T` (the key may be left out).
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/$defs/");
        return resolve(root, &root["$defs"][name]);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema[key].as_array() {
            let not_null: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
            if let [only] = not_null[..] {
                return resolve(root, only);
            }
        }
    }
    schema
}

/// One line of Markdown: doc comment paragraphs joined, intra-doc links
/// as plain code, table pipes escaped.
fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some(start) = line.find("[`") {
        let Some(end) = line[start..].find("`]").map(|end| start + end) else {
            break;
        };
        if line[end + 2..].starts_with('(') {
            break;
        }
        let inner = line[start + 1..end + 1].to_owned();
        line.replace_range(start..end + 2, &inner);
    }
    line.replace('|', "\\|")
}

/// What values a key takes, from its schema.
fn values(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(words) = schema["enum"].as_array() {
        let words: Vec<String> = words
            .iter()
            .map(|w| format!("`{}`", w.as_str().unwrap()))
            .collect();
        return words.join(", ");
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .filter(|t| *t != "null")
            .map(|t| t.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(" or "),
        Value::String(kind) => kind.clone(),
        _ => "content type or `from-to` range".to_owned(),
    };
    let kind = match kind.as_str() {
        "integer" | "number" => {
            let bound = |key: &str| {
                schema[key]
                    .as_f64()
                    .filter(|v| *v != 0.0 || schema.get("maximum").is_some())
            };
            match (bound("minimum"), schema["maximum"].as_f64()) {
                (Some(min), Some(max)) => format!("{kind}, {min} to {max}"),
                (Some(min), None) => format!("{kind}, at least {min}"),
                _ => kind,
            }
        }
        "array" => format!("list of {}", values(root, &schema["items"])),
        "object" => "table of strings".to_owned(),
        "string" => match schema["minLength"].as_u64() {
            Some(min) => format!("string, at least {min} characters"),
            None => kind,
        },
        _ => kind,
    };
    one_line(&kind)
}

fn default_text(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::String(text) if text.is_empty() => "`\"\"`".to_owned(),
        Value::Array(items) if items.is_empty() => "`[]`".to_owned(),
        Value::Object(map) if map.is_empty() => "`{}`".to_owned(),
        other => format!("`{}`", other.to_string().replace('|', "\\|")),
    }
}

/// One row per key of `section` (a table, or an array of tables).
fn section_rows(root: &Value, name: &str, schema: &Value, defaults: &Value, out: &mut String) {
    let array = schema["type"] == "array";
    let table = if array {
        resolve(root, &schema["items"])
    } else {
        resolve(root, schema)
    };
    let example = if array { &Value::Null } else { defaults };
    for (key, property) in table["properties"].as_object().unwrap() {
        let dotted = if array {
            format!("{name}[].{key}")
        } else {
            format!("{name}.{key}")
        };
        let resolved = resolve(root, property);
        let list_or_map = matches!(resolved["type"].as_str(), Some("array" | "object"));
        let env = if array || (list_or_map && !COMMA_LISTS.contains(&dotted.as_str())) {
            "(file only)".to_owned()
        } else {
            format!(
                "`{ENV_PREFIX}__{}__{}`",
                name.to_uppercase(),
                key.to_uppercase()
            )
        };
        let default = if array {
            property["default"].clone()
        } else {
            example[key].clone()
        };
        let description = property["description"]
            .as_str()
            .or(resolved["description"].as_str())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "| `{dotted}`<br>{env} | {} | {} | {} |",
            default_text(&default),
            values(root, property),
            one_line(description)
        );
    }
}

fn reference() -> String {
    let root = schema();
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let mut page = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the settings types by tests/configuration.rs: run\n\
         `OPENIM_BRIDGE_BLESS=1 cargo test --test configuration` after changing them. -->\n\n\
         Every key the bridge reads, with its default and the values it takes.\n\
         Set a key in the TOML file (`--config FILE`) or in its environment\n\
         variable; the environment wins over the file, the file over the\n\
         default. How the layers, secrets and `*_file` keys work:\n\
         [configuration.md](configuration.md). An unknown key, or a value\n\
         outside its range, stops the bridge at startup with a message naming\n\
         the key; `openim-bridge --check-config` checks a file without starting.\n",
    );
    for (section, schema) in root["properties"].as_object().unwrap() {
        let header = if schema["type"] == "array" {
            format!("[[{section}]]")
        } else {
            format!("[{section}]")
        };
        let _ = writeln!(page, "\n## `{header}`\n");
        if let Some(description) = schema["description"].as_str() {
            let _ = writeln!(page, "{}\n", one_line(description));
        }
        page.push_str(
            "| key, environment variable | default | values | meaning |\n|---|---|---|---|\n",
        );
        section_rows(&root, section, schema, &defaults[section], &mut page);
    }
    page
}

#[test]
fn the_configuration_reference_is_generated_from_the_settings_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let expected = reference();
    if std::env::var_os("OPENIM_BRIDGE_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    let first_difference = actual
        .lines()
        .zip(expected.lines())
        .find(|(on_page, generated)| on_page != generated)
        .map(|(on_page, generated)| format!("\n  page:      {on_page}\n  generated: {generated}"))
        .unwrap_or_default();
    assert!(
        actual == expected,
        "{PAGE} is out of date with the settings types: run `OPENIM_BRIDGE_BLESS=1 cargo test --test configuration` and commit the result{first_difference}"
    );
    // Every section of the settings has its heading, every key its row.
    let root = schema();
    for (section, schema) in root["properties"].as_object().unwrap() {
        let table = resolve(&root, schema);
        let table = if schema["type"] == "array" {
            resolve(&root, &schema["items"])
        } else {
            table
        };
        for key in table["properties"].as_object().unwrap().keys() {
            assert!(
                actual.contains(&format!("`{section}.{key}`"))
                    || actual.contains(&format!("`{section}[].{key}`")),
                "{section}.{key} has no row"
            );
        }
    }
}

/// Loads the defaults with one environment variable set.
fn load_with(key: &str, value: &str) -> Result<(), String> {
    let (section, name) = key.split_once('.').unwrap();
    let variable = format!(
        "{ENV_PREFIX}__{}__{}",
        section.to_uppercase(),
        name.to_uppercase()
    );
    let env: HashMap<String, String> = [(variable, value.to_owned())].into();
    Settings::load(None, Some(env))
        .map(|_| ())
        .map_err(|err| err.to_string())
}

#[test]
fn every_range_the_reference_shows_is_the_one_validation_enforces() {
    let root = schema();
    let mut checked = 0;
    for (section, schema) in root["properties"].as_object().unwrap() {
        let table = resolve(&root, schema);
        let Some(properties) = table["properties"].as_object() else {
            continue;
        };
        for (name, property) in properties {
            let key = format!("{section}.{name}");
            let property = resolve(&root, property);
            let integer = property["type"] == "integer"
                || property["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"integer".into()));
            let show = |v: f64| {
                if integer {
                    format!("{}", v as i64)
                } else {
                    format!("{v}")
                }
            };
            let minimum = property["minimum"]
                .as_f64()
                .filter(|min| *min > 0.0 || property.get("maximum").is_some());
            if let Some(min) = minimum {
                load_with(&key, &show(min)).unwrap_or_else(|err| panic!("{key} = {min}: {err}"));
                let below = load_with(&key, &show(min - 1.0));
                assert!(
                    below.as_ref().is_err_and(|err| err.contains(&key)),
                    "{key} = {}: {below:?}",
                    min - 1.0
                );
                checked += 1;
            }
            if let Some(max) = property["maximum"].as_f64() {
                load_with(&key, &show(max)).unwrap_or_else(|err| panic!("{key} = {max}: {err}"));
                let above = load_with(&key, &show(max + 1.0));
                assert!(
                    above.as_ref().is_err_and(|err| err.contains(&key)),
                    "{key} = {}: {above:?}",
                    max + 1.0
                );
                checked += 1;
            }
            if let Some(length) = property["minLength"].as_u64() {
                let long_enough = "a".repeat(length as usize);
                load_with(&key, &long_enough).unwrap_or_else(|err| panic!("{key}: {err}"));
                let short = load_with(&key, &long_enough[1..]);
                assert!(short.is_err_and(|err| err.contains(&key)), "{key}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} bounds found in the schema");
}
