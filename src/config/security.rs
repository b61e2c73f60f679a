//! Broker security settings: TLS, SASL and secrets.
//!
//! Secrets (`kafka.sasl_password`, `rabbitmq.password`, ...) are [`Secret`]s:
//! their `Debug` prints `***`, so `--check-config`, logs and errors never
//! show them. Each can instead name a file (`*_file`), read once at startup
//! (a trailing newline is dropped), which is how Kubernetes and Docker
//! secrets are mounted. The OAUTHBEARER token file is read again at every
//! token refresh, so a rotated token is picked up without a restart.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{choose, ConfigError, KafkaSettings, RabbitMqSettings};

/// A password or token. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the broker client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `kafka.options`: librdkafka properties passed through as they are.
/// `Debug` hides the values of properties that hold secrets
/// (`sasl.password`, `ssl.key.password`, ...).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Passthrough(BTreeMap<String, String>);

impl Passthrough {
    /// Whether librdkafka property `name` holds a secret.
    fn is_secret(name: &str) -> bool {
        ["password", "secret", "token", "key.pem", "jaas"]
            .iter()
            .any(|word| name.contains(word))
    }
}

impl Deref for Passthrough {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Passthrough {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if Self::is_secret(name) { "***" } else { value };
                (name, shown)
            }))
            .finish()
    }
}

/// `kafka.security_protocol`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS; with `ssl_cert_file` the client certificate authenticates.
    Ssl,
    /// SASL authentication without TLS (only on a trusted network).
    SaslPlaintext,
    /// SASL authentication over TLS: what managed Kafka services use.
    SaslSsl,
}

words!(SecurityProtocol: "plaintext" => Plaintext, "ssl" => Ssl, "sasl_plaintext" => SaslPlaintext, "sasl_ssl" => SaslSsl);

impl SecurityProtocol {
    /// The librdkafka value.
    pub fn librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether the connection is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// `kafka.sasl_mechanism`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SaslMechanism {
    /// Username and password in the clear (over TLS): Confluent Cloud.
    #[default]
    Plain,
    /// Salted challenge-response with SHA-256.
    ScramSha256,
    /// Salted challenge-response with SHA-512: AWS MSK, Aiven.
    ScramSha512,
    /// A bearer token (`sasl_oauthbearer_token` or `_file`).
    OAuthBearer,
}

words!(SaslMechanism: "plain" => Plain, "scram-sha-256" => ScramSha256, "scram-sha-512" => ScramSha512, "oauthbearer" => OAuthBearer);

impl SaslMechanism {
    /// The librdkafka value of `sasl.mechanism`.
    pub fn librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Reads a secret file: the whole file, less one trailing newline.
pub fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
    let mut text = std::fs::read_to_string(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Secret(text))
}

/// Fills `value` from `file` when the file is given (and clears `file`, so
/// resolving twice is harmless); both at once is an error, as is a file
/// that cannot be read.
fn resolve(
    value: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
    key: &'static str,
    file_key: &'static str,
) -> Result<(), ConfigError> {
    let Some(path) = file.take() else {
        return Ok(());
    };
    if value.is_some() {
        return Err(ConfigError::Invalid {
            key,
            problem: format!("and {file_key} are both set; keep one"),
        });
    }
    let secret = read_secret_file(&path).map_err(|err| ConfigError::Invalid {
        key: file_key,
        problem: format!("cannot read {}: {err}", path.display()),
    })?;
    *value = Some(secret);
    Ok(())
}

/// A PEM file a TLS setting names must be readable now, not at the first
/// connection attempt.
fn readable(path: Option<&PathBuf>, key: &'static str) -> Result<(), ConfigError> {
    let Some(path) = path else { return Ok(()) };
    std::fs::File::open(path)
        .map(drop)
        .map_err(|err| ConfigError::Invalid {
            key,
            problem: format!("cannot read {}: {err}", path.display()),
        })
}

impl KafkaSettings {
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
    pub(super) fn resolve_files(&mut self) -> Result<(), ConfigError> {
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
            return Err(ConfigError::Invalid {
                key: "kafka.sasl_oauthbearer_token",
                problem: "and kafka.sasl_oauthbearer_token_file are both set; keep one".to_owned(),
            });
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
        let invalid = |key, problem: String| Err(ConfigError::Invalid { key, problem });
        let protocol = self.security_protocol;
        let has_credentials = !self.sasl_username.is_empty()
            || self.sasl_password.is_some()
            || self.sasl_oauthbearer_token.is_some()
            || self.sasl_oauthbearer_token_file.is_some();
        if has_credentials && !protocol.uses_sasl() {
            return invalid(
                "kafka.security_protocol",
                format!("is `{}` but SASL credentials are set; use `sasl_ssl` (or `sasl_plaintext` on a trusted network)", protocol.librdkafka()),
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
                    protocol.librdkafka()
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
                        format!("and kafka.sasl_password (or kafka.sasl_password_file) are needed with security_protocol `{}` and sasl_mechanism `{mechanism}`", protocol.librdkafka()),
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

impl RabbitMqSettings {
    /// Reads `rabbitmq.password_file` and checks the TLS files.
    pub(super) fn resolve_files(&mut self) -> Result<(), ConfigError> {
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
    pub(super) fn validate_security(&self) -> Result<(), ConfigError> {
        let tls_files = self.tls_ca_file.is_some()
            || self.tls_cert_file.is_some()
            || self.tls_key_file.is_some();
        if tls_files && !self.url.trim_start().starts_with("amqps:") {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.url",
                problem: "is not amqps:// but rabbitmq.tls_* files are set; use amqps://host:5671/... (TLS)".to_owned(),
            });
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.tls_cert_file",
                problem: "and rabbitmq.tls_key_file must be set together (the client certificate and its key)".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;

    /// Settings from the environment `pairs`; pairs whose key has a dot
    /// (`kafka.options`) go into a TOML file, as users write them.
    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let (options, env): (Vec<_>, Vec<_>) = pairs.iter().partition(|(k, _)| k.contains('.'));
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bridge.toml");
        let mut toml = "[kafka.options]\n".to_owned();
        for (key, value) in options {
            toml += &format!("{:?} = {value:?}\n", key.to_ascii_lowercase());
        }
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file), Some(env)).map_err(|err| err.to_string())
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("kafka-password");
        std::fs::write(&password, "s3cr3t-Kafka-pw\n").unwrap();
        let amqp = dir.path().join("amqp-password");
        std::fs::write(&amqp, "s3cr3t-Amqp-pw").unwrap();
        let settings = load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
            ("OPENIM_BRIDGE__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
            ("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "bridge"),
            (
                "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE",
                password.to_str().unwrap(),
            ),
            (
                "OPENIM_BRIDGE__RABBITMQ__URL",
                "amqps://user:s3cr3t-Url-pw@mq:5671/%2f",
            ),
            (
                "OPENIM_BRIDGE__RABBITMQ__PASSWORD_FILE",
                amqp.to_str().unwrap(),
            ),
            ("ssl.key.password", "s3cr3t-Opt-pw"),
        ])
        .unwrap();
        let kafka = &settings.kafka;
        assert_eq!(kafka.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(kafka.sasl_mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            kafka.sasl_password.as_ref().unwrap().expose(),
            "s3cr3t-Kafka-pw"
        );
        assert_eq!(
            settings.rabbitmq.password.as_ref().unwrap().expose(),
            "s3cr3t-Amqp-pw"
        );
        let shown = format!("{settings:?} {settings:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("user:***@mq"), "{shown}");
    }

    #[test]
    fn contradictions_name_the_key_to_change() {
        let refused = |pairs: &[(&str, &str)], needles: &[&str]| {
            let mut all = vec![("OPENIM_BRIDGE__SINK__KIND", "kafka")];
            all.extend_from_slice(pairs);
            let err = load(&all).unwrap_err();
            assert!(needles.iter().all(|n| err.contains(n)), "{err}");
        };
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "u")],
            &["kafka.security_protocol", "sasl_ssl"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl")],
            &["kafka.sasl_username", "kafka.sasl_password"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("OPENIM_BRIDGE__KAFKA__SASL_MECHANISM", "oauthbearer"),
            ],
            &["kafka.sasl_oauthbearer_token"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SSL_CA_FILE", "/etc/hostname")],
            &["kafka.security_protocol", "ssl"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "ssl"),
                ("OPENIM_BRIDGE__KAFKA__SSL_CA_FILE", "/nonexistent/ca.pem"),
            ],
            &["kafka.ssl_ca_file", "/nonexistent/ca.pem"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "ssl"),
                ("security.protocol", "SSL"),
            ],
            &["kafka.options", "security.protocol", "one place"],
        );
        refused(
            &[
                ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", "u"),
                ("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD", "p"),
                ("OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE", "/etc/hostname"),
            ],
            &["kafka.sasl_password", "both"],
        );
        refused(
            &[("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "tls")],
            &["kafka.security_protocol", "sasl_ssl"],
        );
        let err = load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
            ("OPENIM_BRIDGE__RABBITMQ__TLS_CA_FILE", "/etc/hostname"),
        ])
        .unwrap_err();
        assert!(
            err.contains("rabbitmq.url") && err.contains("amqps://"),
            "{err}"
        );
        // The old passthrough form still works on its own.
        load(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            ("security.protocol", "SASL_SSL"),
        ])
        .unwrap();
    }
}
