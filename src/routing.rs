//! Which callbacks are published, and where: `[[routes]]` and `[filter]`.
//!
//! With no routing config at all, every after-callback and every unknown
//! command is published to the one `kafka.topic` / `rabbitmq.exchange`
//! (with the `rabbitmq.routing_key` template, `{type}` by default), and
//! before-callbacks are only answered. Each `[[routes]]` entry matches
//! events by `callbackCommand`, by CloudEvents type, or by a type prefix
//! ending in `*` (`io.openim.group.*`, or `*` for everything); the first
//! entry that matches an event decides, and what it leaves out keeps the
//! default.
//!
//! `[filter]` drops callbacks users asked OpenIM to drop and OpenIM cannot:
//! by `contentType` (allow and deny lists of numbers and `from-to` ranges)
//! and by group and user IDs. A callback without the key a filter looks at
//! passes that filter. Dropped and unpublished callbacks are still
//! answered "continue" and counted (`outcome="skipped"`).

use std::collections::HashSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ConfigError;
use crate::normalize::catalog::same_key;
use crate::normalize::CallbackKind;

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RouteSettings {
    /// A `callbackCommand`, a CloudEvents type, or a type prefix ending in
    /// `*`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Publish matching events (default: yes, except before-callbacks).
    pub enabled: Option<bool>,
    /// Kafka topic (default `kafka.topic`).
    pub kafka_topic: Option<String>,
    /// RabbitMQ exchange (default `rabbitmq.exchange`).
    pub rabbitmq_exchange: Option<String>,
    /// RabbitMQ routing key template (default `rabbitmq.routing_key`).
    pub rabbitmq_routing_key: Option<String>,
}

impl RouteSettings {
    /// Whether this entry's `match` selects events of `kind`.
    pub(crate) fn matches(&self, kind: CallbackKind) -> bool {
        let pattern = self.pattern.trim();
        match pattern.strip_suffix('*') {
            Some(prefix) => kind.event_type().starts_with(prefix),
            None => pattern == kind.command() || pattern == kind.event_type(),
        }
    }

    /// The entry matches something and names no empty exchange (each
    /// broker's own name rules are checked with its settings).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let pattern = self.pattern.trim();
        let problem = if pattern.is_empty() {
            "an entry has no `match`: give a callbackCommand, an event type, or a type prefix ending in `*`".to_owned()
        } else if !CallbackKind::all().any(|kind| self.matches(kind)) {
            format!("`match = {pattern:?}` matches no callback command or event type (see the table in docs/events.md)")
        } else if self.rabbitmq_exchange.as_deref() == Some("") {
            format!("`rabbitmq_exchange` of `{pattern}` is empty")
        } else {
            return Ok(());
        };
        Err(ConfigError::invalid("routes", problem))
    }
}

/// A `contentType` list entry: `101` or `"101-120"`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ContentTypes {
    /// One content type.
    One(i64),
    /// `"101"` or `"from-to"`, inclusive.
    Text(String),
}

impl ContentTypes {
    fn range(&self) -> Result<(i64, i64), String> {
        match self {
            Self::One(n) => Ok((*n, *n)),
            Self::Text(text) => {
                let (from, to) = text.split_once('-').unwrap_or((text, text));
                let parse = |s: &str| {
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("`{text}` is not a content type or a `from-to` range"))
                };
                let (from, to) = (parse(from)?, parse(to)?);
                if from > to {
                    return Err(format!("`{text}`: the range is empty"));
                }
                Ok((from, to))
            }
        }
    }
}

/// `[filter]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSettings {
    /// Publish only these content types (empty: all).
    pub content_types: Vec<ContentTypes>,
    /// Never publish these content types (e.g. `113`, typing).
    pub exclude_content_types: Vec<ContentTypes>,
    /// Publish only callbacks about these groups (empty: all).
    pub group_ids: Vec<String>,
    /// Never publish callbacks about these groups.
    pub exclude_group_ids: Vec<String>,
    /// Publish only callbacks by or about these users (empty: all).
    pub user_ids: Vec<String>,
    /// Never publish callbacks by or about these users.
    pub exclude_user_ids: Vec<String>,
}

/// Where one kind of event goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// Whether it is published at all.
    pub enabled: bool,
    /// Kafka topic.
    pub kafka_topic: Arc<str>,
    /// RabbitMQ exchange.
    pub rabbitmq_exchange: Arc<str>,
    /// RabbitMQ routing key template.
    pub rabbitmq_routing_key: Arc<str>,
}

/// The route of every kind, resolved once at startup.
#[derive(Debug, Clone)]
pub struct Routes {
    by_code: Vec<Option<Route>>,
    fallback: Route,
}

impl Routes {
    /// Resolves `[[routes]]` for every kind: the first entry that matches
    /// decides; what it leaves unset comes from `fallback` (the sinks'
    /// own topic, exchange and routing key). Unknown commands are
    /// published if `publish_unknown` (`http.unknown_commands`).
    pub fn new(routes: &[RouteSettings], fallback: Route, publish_unknown: bool) -> Self {
        let mut by_code = vec![None; 256];
        for kind in CallbackKind::all() {
            let spec = kind.spec();
            let mut route = Route {
                enabled: !spec.is_before() && (kind != CallbackKind::UNKNOWN || publish_unknown),
                ..fallback.clone()
            };
            if let Some(chosen) = routes.iter().find(|r| r.matches(kind)) {
                route.enabled = chosen.enabled.unwrap_or(route.enabled);
                if let Some(topic) = &chosen.kafka_topic {
                    route.kafka_topic = Arc::from(topic.as_str());
                }
                if let Some(exchange) = &chosen.rabbitmq_exchange {
                    route.rabbitmq_exchange = Arc::from(exchange.as_str());
                }
                if let Some(key) = &chosen.rabbitmq_routing_key {
                    route.rabbitmq_routing_key = Arc::from(key.as_str());
                }
            }
            by_code[usize::from(kind.code())] = Some(route);
        }
        Self { by_code, fallback }
    }

    /// The route of `kind`.
    pub fn route(&self, kind: CallbackKind) -> &Route {
        self.by_code[usize::from(kind.code())]
            .as_ref()
            .unwrap_or(&self.fallback)
    }

    /// Every enabled route's Kafka topics, each once.
    pub fn kafka_topics(&self) -> Vec<Arc<str>> {
        self.distinct(|route| &route.kafka_topic)
    }

    /// Every enabled route's RabbitMQ exchanges, each once.
    pub fn rabbitmq_exchanges(&self) -> Vec<Arc<str>> {
        self.distinct(|route| &route.rabbitmq_exchange)
    }

    fn distinct(&self, pick: impl Fn(&Route) -> &Arc<str>) -> Vec<Arc<str>> {
        let mut seen = Vec::<Arc<str>>::new();
        for route in self.by_code.iter().flatten().filter(|r| r.enabled) {
            let value = pick(route);
            if !seen.contains(value) {
                seen.push(Arc::clone(value));
            }
        }
        seen
    }
}

/// Wire keys holding the group a callback is about.
const GROUP_KEYS: [&str; 1] = ["groupID"];
/// Wire keys holding the user a callback is by or about, in order.
const USER_KEYS: [&str; 5] = ["sendID", "userID", "fromUserID", "ownerUserID", "ownerID"];

/// `[filter]`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    content_types: Vec<(i64, i64)>,
    exclude_content_types: Vec<(i64, i64)>,
    group_ids: HashSet<String>,
    exclude_group_ids: HashSet<String>,
    user_ids: HashSet<String>,
    exclude_user_ids: HashSet<String>,
}

impl Filter {
    /// Compiles `settings`; an entry that is not a content type or range
    /// is an error naming it.
    pub fn new(settings: &FilterSettings) -> Result<Self, ConfigError> {
        let ranges = |list: &[ContentTypes], key: &'static str| {
            list.iter()
                .map(ContentTypes::range)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|problem| ConfigError::invalid(key, problem))
        };
        let set = |list: &[String]| list.iter().cloned().collect::<HashSet<_>>();
        Ok(Self {
            content_types: ranges(&settings.content_types, "filter.content_types")?,
            exclude_content_types: ranges(
                &settings.exclude_content_types,
                "filter.exclude_content_types",
            )?,
            group_ids: set(&settings.group_ids),
            exclude_group_ids: set(&settings.exclude_group_ids),
            user_ids: set(&settings.user_ids),
            exclude_user_ids: set(&settings.exclude_user_ids),
        })
    }

    /// Whether no filter is set (then bodies are not looked at).
    pub fn is_empty(&self) -> bool {
        self.content_types.is_empty()
            && self.exclude_content_types.is_empty()
            && self.group_ids.is_empty()
            && self.exclude_group_ids.is_empty()
            && self.user_ids.is_empty()
            && self.exclude_user_ids.is_empty()
    }

    /// Whether the callback `body` passes every filter: `Ok(())` when it
    /// does, `Err(reason)` when it is dropped.
    pub fn check(&self, body: &[u8]) -> Result<(), &'static str> {
        if self.is_empty() {
            return Ok(());
        }
        let Ok(object) = serde_json::from_slice::<Map<String, Value>>(body) else {
            return Ok(());
        };
        let find = |keys: &[&str]| {
            keys.iter().find_map(|key| {
                object
                    .iter()
                    .find(|(k, _)| same_key(k, key))
                    .map(|(_, v)| v)
            })
        };
        if let Some(content_type) = find(&["contentType"]).and_then(Value::as_i64) {
            let within = |ranges: &[(i64, i64)]| {
                ranges
                    .iter()
                    .any(|(from, to)| (*from..=*to).contains(&content_type))
            };
            if !self.content_types.is_empty() && !within(&self.content_types) {
                return Err("content type not in filter.content_types");
            }
            if within(&self.exclude_content_types) {
                return Err("content type in filter.exclude_content_types");
            }
        }
        let ids = |keys: &[&str]| find(keys).and_then(Value::as_str).map(str::to_owned);
        if let Some(group) = ids(&GROUP_KEYS) {
            if !self.group_ids.is_empty() && !self.group_ids.contains(&group) {
                return Err("group not in filter.group_ids");
            }
            if self.exclude_group_ids.contains(&group) {
                return Err("group in filter.exclude_group_ids");
            }
        }
        if let Some(user) = ids(&USER_KEYS) {
            if !self.user_ids.is_empty() && !self.user_ids.contains(&user) {
                return Err("user not in filter.user_ids");
            }
            if self.exclude_user_ids.contains(&user) {
                return Err("user in filter.exclude_user_ids");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(toml: &str) -> Filter {
        let settings: FilterSettings = ::config::Config::builder()
            .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        Filter::new(&settings).unwrap()
    }

    #[test]
    fn content_type_lists_and_ranges() {
        let f = filter("content_types = [101, \"104-106\"]\nexclude_content_types = [\"105\"]");
        let body = |t: i64| format!("{{\"contentType\":{t},\"groupID\":\"g\"}}");
        assert!(f.check(body(101).as_bytes()).is_ok());
        assert!(f.check(body(104).as_bytes()).is_ok());
        assert!(f.check(body(105).as_bytes()).is_err());
        assert!(f.check(body(113).as_bytes()).is_err());
        // No contentType: not this filter's business.
        assert!(f.check(b"{\"groupID\":\"g\"}").is_ok());
    }

    #[test]
    fn group_and_user_lists() {
        let f = filter("exclude_group_ids = [\"g_noisy\"]\nuser_ids = [\"u_1\", \"u_2\"]");
        assert!(f
            .check(b"{\"groupID\":\"g_noisy\",\"sendID\":\"u_1\"}")
            .is_err());
        assert!(f
            .check(b"{\"groupID\":\"g_ok\",\"sendID\":\"u_1\"}")
            .is_ok());
        assert!(f
            .check(b"{\"groupID\":\"g_ok\",\"sendID\":\"u_3\"}")
            .is_err());
        assert!(f.check(b"{\"ownerUserId\":\"u_2\"}").is_ok());
    }

    #[test]
    fn a_bad_range_is_a_config_error() {
        let settings = FilterSettings {
            content_types: vec![ContentTypes::Text("120-101".into())],
            ..FilterSettings::default()
        };
        let err = Filter::new(&settings).unwrap_err().to_string();
        assert!(
            err.contains("filter.content_types") && err.contains("120-101"),
            "{err}"
        );
    }

    #[test]
    fn first_matching_route_decides_and_before_callbacks_are_off() {
        let settings = [
            RouteSettings {
                pattern: "io.openim.group.*".into(),
                kafka_topic: Some("openim.group".into()),
                ..RouteSettings::default()
            },
            RouteSettings {
                pattern: "*".into(),
                kafka_topic: Some("never".into()),
                ..RouteSettings::default()
            },
            RouteSettings {
                pattern: "callbackBeforeSendGroupMsgCommand".into(),
                enabled: Some(true),
                ..RouteSettings::default()
            },
        ];
        let fallback = Route {
            enabled: true,
            kafka_topic: "openim.events".into(),
            rabbitmq_exchange: "openim.events".into(),
            rabbitmq_routing_key: "{type}".into(),
        };
        let routes = Routes::new(&settings, fallback.clone(), true);
        let quit = CallbackKind::from_command("callbackAfterQuitGroupCommand").unwrap();
        assert_eq!(&*routes.route(quit).kafka_topic, "openim.group");
        let online = CallbackKind::from_command("callbackAfterUserOnlineCommand").unwrap();
        assert_eq!(&*routes.route(online).kafka_topic, "never");
        // `*` matched first, so the before-callback route is never reached.
        let before = CallbackKind::from_command("callbackBeforeSendGroupMsgCommand").unwrap();
        assert!(!routes.route(before).enabled);
        assert!(Routes::new(&[], fallback, true).route(quit).enabled);
    }
}
