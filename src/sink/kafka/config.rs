//! `[kafka]`: the Kafka sink's settings, and the checks that make them
//! safe (no setting may allow lost or reordered events).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::security::{Passthrough, SaslMechanism, SecurityProtocol};
use crate::config::{readable, resolve, words, ConfigError, Secret};

/// `[kafka]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Topic every event is written to, unless a `[[routes]]` entry names
    /// another. It must exist at startup, unless `create_topics` is on.
    pub topic: String,
    /// `none` | `gzip` | `snappy` | `lz4` (librdkafka `compression.type`; zstd is not compiled in).
    pub compression: Compression,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`).
    pub linger_ms: u64,
    /// How long librdkafka keeps retrying one record before it reports it
    /// failed; 0 = forever (the default: a broker outage is waited out, and
    /// events wait in the spool, which answers 503 when it fills).
    pub message_timeout_ms: u64,
    /// `plaintext` | `ssl` | `sasl_plaintext` | `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// `plain` | `scram-sha-256` | `scram-sha-512` | `oauthbearer` (with a
    /// `sasl_*` security protocol).
    pub sasl_mechanism: SaslMechanism,
    /// SASL username (PLAIN, SCRAM).
    pub sasl_username: String,
    /// SASL password (PLAIN, SCRAM).
    pub sasl_password: Option<Secret>,
    /// File holding the SASL password (instead of `sasl_password`).
    pub sasl_password_file: Option<PathBuf>,
    /// OAUTHBEARER token (a JWT), used as it is.
    pub sasl_oauthbearer_token: Option<Secret>,
    /// File holding the OAUTHBEARER token, read again at every refresh (at
    /// 80% of the token's lifetime: its JWT `exp`, but at most 10
    /// minutes), so a token rotated by another process is picked up.
    pub sasl_oauthbearer_token_file: Option<PathBuf>,
    /// PEM file of the CA(s) that sign the brokers' certificates; unset:
    /// the system's root certificates.
    pub ssl_ca_file: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with `ssl_key_file`.
    pub ssl_cert_file: Option<PathBuf>,
    /// PEM private key of `ssl_cert_file`.
    pub ssl_key_file: Option<PathBuf>,
    /// Password of an encrypted `ssl_key_file`.
    pub ssl_key_password: Option<Secret>,
    /// File holding `ssl_key_password`.
    pub ssl_key_password_file: Option<PathBuf>,
    /// Extra librdkafka producer properties, passed through as they are
    /// (e.g. `"ssl.endpoint.identification.algorithm" = "none"`). Values of
    /// secret properties are hidden in `--check-config`. They cannot
    /// weaken `enable.idempotence` or `acks`, nor set a property a key
    /// above sets.
    pub options: Passthrough,
    /// Create every topic the routes use at startup (Kafka admin API) when
    /// it is missing. Off: a missing topic stops the bridge with an error
    /// naming it.
    pub create_topics: bool,
    /// Partitions of topics the bridge creates.
    pub topic_partitions: i32,
    /// Replication factor of topics the bridge creates (use 3 on a
    /// production cluster).
    pub topic_replication_factor: i32,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "openim.events".to_owned(),
            // lz4: cheapest CPU per byte saved for JSON; every client decodes it.
            compression: Compression::Lz4,
            // 5 ms batches well at thousands of events/s and does not delay the ack.
            linger_ms: 5,
            message_timeout_ms: 0,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: SaslMechanism::Plain,
            sasl_username: String::new(),
            sasl_password: None,
            sasl_password_file: None,
            sasl_oauthbearer_token: None,
            sasl_oauthbearer_token_file: None,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
            ssl_key_password: None,
            ssl_key_password_file: None,
            options: Passthrough::default(),
            create_topics: false,
            topic_partitions: 6,
            topic_replication_factor: 1,
        }
    }
}

/// How the Kafka producer compresses batches (`kafka.compression`),
/// checked when the settings load rather than when the sink starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (zlib is compiled in).
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4: fast, and the default.
    #[default]
    Lz4,
}

// The same words as librdkafka's `compression.type`.
words!(Compression: "none" => None, "gzip" => Gzip, "snappy" => Snappy, "lz4" => Lz4);

impl KafkaSettings {
    /// Rejects values that parse but cannot work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "is empty: set it to the bootstrap servers, e.g. `kafka:9092`",
            ));
        }
        validate_topic_name(&self.topic)
            .map_err(|problem| ConfigError::invalid("kafka.topic", problem))?;
        self.validate_security()?;
        // The bridge promises no loss and per-group order: these two
        // librdkafka properties are what make that true.
        for (name, allowed) in [
            ("enable.idempotence", &["true"][..]),
            ("acks", &["all", "-1"][..]),
        ] {
            if let Some(value) = self.options.get(name) {
                if !allowed.contains(&value.as_str()) {
                    return Err(ConfigError::invalid("kafka.options", format!(
                            "`{name} = {value}` would allow lost or reordered events; the bridge requires `{name} = {}` (remove the option)",
                            allowed[0]
                        )));
                }
            }
        }
        Ok(())
    }

    /// Each first-class key, the librdkafka property it sets, and whether
    /// it is set here, so the same property in `kafka.options` is refused
    /// instead of silently winning.
    fn first_class_properties(&self) -> [(&'static str, &'static str, bool); 8] {
        let defaults = KafkaSettings::default();
        [
            (
                "kafka.security_protocol",
                "security.protocol",
                self.security_protocol != defaults.security_protocol,
            ),
            (
                "kafka.sasl_mechanism",
                "sasl.mechanism",
                self.sasl_mechanism != defaults.sasl_mechanism,
            ),
            (
                "kafka.sasl_username",
                "sasl.username",
                !self.sasl_username.is_empty(),
            ),
            (
                "kafka.sasl_password",
                "sasl.password",
                self.sasl_password.is_some(),
            ),
            (
                "kafka.ssl_ca_file",
                "ssl.ca.location",
                self.ssl_ca_file.is_some(),
            ),
            (
                "kafka.ssl_cert_file",
                "ssl.certificate.location",
                self.ssl_cert_file.is_some(),
            ),
            (
                "kafka.ssl_key_file",
                "ssl.key.location",
                self.ssl_key_file.is_some(),
            ),
            (
                "kafka.ssl_key_password",
                "ssl.key.password",
                self.ssl_key_password.is_some(),
            ),
        ]
    }

    /// Reads the `*_file` secrets into their values and checks that the TLS
    /// files can be read.
    pub(crate) fn resolve_files(&mut self) -> Result<(), ConfigError> {
        resolve(
            &mut self.sasl_password,
            &mut self.sasl_password_file,
            "kafka.sasl_password",
            "kafka.sasl_password_file",
        )?;
        resolve(
            &mut self.ssl_key_password,
            &mut self.ssl_key_password_file,
            "kafka.ssl_key_password",
            "kafka.ssl_key_password_file",
        )?;
        if self.sasl_oauthbearer_token.is_some() && self.sasl_oauthbearer_token_file.is_some() {
            return Err(ConfigError::invalid(
                "kafka.sasl_oauthbearer_token",
                "and kafka.sasl_oauthbearer_token_file are both set; keep one",
            ));
        }
        readable(
            self.sasl_oauthbearer_token_file.as_ref(),
            "kafka.sasl_oauthbearer_token_file",
        )?;
        readable(self.ssl_ca_file.as_ref(), "kafka.ssl_ca_file")?;
        readable(self.ssl_cert_file.as_ref(), "kafka.ssl_cert_file")?;
        readable(self.ssl_key_file.as_ref(), "kafka.ssl_key_file")
    }

    /// The security keys agree with each other and with `kafka.options`.
    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| Err(ConfigError::invalid(key, problem));
        let protocol = self.security_protocol;
        let has_credentials = !self.sasl_username.is_empty()
            || self.sasl_password.is_some()
            || self.sasl_oauthbearer_token.is_some()
            || self.sasl_oauthbearer_token_file.is_some();
        if has_credentials && !protocol.uses_sasl() {
            return invalid(
                "kafka.security_protocol",
                format!("is `{}` but SASL credentials are set; use `sasl_ssl` (or `sasl_plaintext` on a trusted network)", protocol.word()),
            );
        }
        let has_tls_files = self.ssl_ca_file.is_some()
            || self.ssl_cert_file.is_some()
            || self.ssl_key_file.is_some();
        if has_tls_files && !protocol.uses_tls() {
            return invalid(
                "kafka.security_protocol",
                format!(
                    "is `{}` but TLS files (kafka.ssl_*) are set; use `ssl` or `sasl_ssl`",
                    protocol.word()
                ),
            );
        }
        if self.ssl_cert_file.is_some() != self.ssl_key_file.is_some() {
            return invalid(
                "kafka.ssl_cert_file",
                "and kafka.ssl_key_file must be set together (the client certificate and its key)"
                    .to_owned(),
            );
        }
        if protocol.uses_sasl() {
            let mechanism = self.sasl_mechanism.librdkafka();
            match self.sasl_mechanism {
                SaslMechanism::OAuthBearer
                    if self.sasl_oauthbearer_token.is_none()
                        && self.sasl_oauthbearer_token_file.is_none() =>
                {
                    return invalid(
                        "kafka.sasl_oauthbearer_token",
                        "is needed with sasl_mechanism `oauthbearer`: set it, or kafka.sasl_oauthbearer_token_file to a file holding the token".to_owned(),
                    );
                }
                SaslMechanism::OAuthBearer => {}
                _ if self.sasl_username.is_empty() || self.sasl_password.is_none() => {
                    return invalid(
                        "kafka.sasl_username",
                        format!("and kafka.sasl_password (or kafka.sasl_password_file) are needed with security_protocol `{}` and sasl_mechanism `{mechanism}`", protocol.word()),
                    );
                }
                _ => {}
            }
        }
        for (key, property, set) in self.first_class_properties() {
            let in_options = self.options.contains_key(property)
                || (property == "sasl.mechanism" && self.options.contains_key("sasl.mechanisms"));
            if set && in_options {
                return invalid(
                    "kafka.options",
                    format!("`{property}` is also set by {key}; set it in one place"),
                );
            }
        }
        Ok(())
    }
}

/// Kafka's own rule for topic names.
pub(crate) fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
        return Err(format!(
            "{topic:?} is not a valid Kafka topic name (1 to 249 characters, not `.` or `..`)"
        ));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{topic:?} contains {bad:?}; Kafka topic names may only use ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}
