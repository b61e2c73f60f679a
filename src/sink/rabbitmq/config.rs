//! `[rabbitmq]`: the RabbitMQ sink's settings and their checks.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{readable, resolve, words, ConfigError, Secret};

/// `[rabbitmq]`
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// AMQP URL, `amqp://user:pass@host:port/vhost` (`%2f` is the default
    /// vhost), or `amqps://...:5671/...` for TLS. Append
    /// `?auth_mechanism=external` to log in with the client certificate.
    pub url: String,
    /// Username; overrides the URL's.
    pub username: Option<String>,
    /// Password; overrides the URL's.
    pub password: Option<Secret>,
    /// File holding the password (instead of `password`).
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA(s) that sign the broker's certificate (amqps://);
    /// unset: the system's root certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (amqps://), with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Durable exchange declared at startup; events are published to it.
    pub exchange: String,
    /// `topic` | `direct` | `fanout` | `headers`.
    pub exchange_type: ExchangeType,
    /// Routing key template. Placeholders: `{type}` (CloudEvents type, e.g.
    /// `io.openim.group.message.sent`), `{command}` (OpenIM callbackCommand),
    /// `{key}` (the partition key: group ID or single-chat conversation ID).
    pub routing_key: String,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            username: None,
            password: None,
            password_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            exchange: "openim.events".to_owned(),
            exchange_type: ExchangeType::Topic,
            // The event type is dotted, so topic bindings like
            // `io.openim.group.#` select families of events.
            routing_key: "{type}".to_owned(),
        }
    }
}

impl std::fmt::Debug for RabbitMqSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqSettings")
            .field("url", &super::redact(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("exchange", &self.exchange)
            .field("exchange_type", &self.exchange_type)
            .field("routing_key", &self.routing_key)
            .finish()
    }
}

/// The AMQP exchange types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ExchangeType {
    /// Routing key patterns with `*` and `#`.
    #[default]
    Topic,
    /// Exact routing key match.
    Direct,
    /// Every bound queue gets every message.
    Fanout,
    /// Match on message headers.
    Headers,
}

words!(ExchangeType: "topic" => Topic, "direct" => Direct, "fanout" => Fanout, "headers" => Headers);

/// Routing key placeholders [`RabbitMqSettings::routing_key`] accepts.
pub const ROUTING_KEY_PLACEHOLDERS: [&str; 3] = ["{type}", "{command}", "{key}"];

/// A routing key template with only known placeholders.
pub(crate) fn check_routing_key(template: &str) -> Result<(), String> {
    let mut rest = template.to_owned();
    for placeholder in ROUTING_KEY_PLACEHOLDERS {
        rest = rest.replace(placeholder, "");
    }
    if rest.contains('{') || rest.contains('}') {
        return Err(format!(
            "{template:?} has an unknown placeholder; use only {}",
            ROUTING_KEY_PLACEHOLDERS.join(", ")
        ));
    }
    Ok(())
}

impl RabbitMqSettings {
    /// Reads `rabbitmq.password_file` and checks the TLS files.
    pub(crate) fn resolve_files(&mut self) -> Result<(), ConfigError> {
        resolve(
            &mut self.password,
            &mut self.password_file,
            "rabbitmq.password",
            "rabbitmq.password_file",
        )?;
        readable(self.tls_ca_file.as_ref(), "rabbitmq.tls_ca_file")?;
        readable(self.tls_cert_file.as_ref(), "rabbitmq.tls_cert_file")?;
        readable(self.tls_key_file.as_ref(), "rabbitmq.tls_key_file")
    }

    /// TLS files need `amqps://`; a certificate needs its key.
    fn validate_security(&self) -> Result<(), ConfigError> {
        let tls_files = self.tls_ca_file.is_some()
            || self.tls_cert_file.is_some()
            || self.tls_key_file.is_some();
        if tls_files && !self.url.trim_start().starts_with("amqps:") {
            return Err(ConfigError::invalid(
                "rabbitmq.url",
                "is not amqps:// but rabbitmq.tls_* files are set; use amqps://host:5671/... (TLS)",
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::invalid("rabbitmq.tls_cert_file", "and rabbitmq.tls_key_file must be set together (the client certificate and its key)"));
        }
        Ok(())
    }

    /// Rejects values that parse but cannot work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(problem) = self.url.parse::<lapin::uri::AMQPUri>() {
            return Err(ConfigError::invalid(
                "rabbitmq.url",
                format!("is not an AMQP URL ({problem}); expected amqp://user:pass@host:5672/%2f"),
            ));
        }
        self.validate_security()?;
        if self.exchange.is_empty() {
            return Err(ConfigError::invalid(
                "rabbitmq.exchange",
                "must not be empty: the default exchange cannot be declared; name an exchange",
            ));
        }
        if let Err(problem) = check_routing_key(&self.routing_key) {
            return Err(ConfigError::invalid("rabbitmq.routing_key", problem));
        }
        Ok(())
    }
}
