//! The Kafka sink's security settings types: the protocol, the SASL
//! mechanism, and `kafka.options` passed through to librdkafka (with its
//! secrets hidden). How they are checked together: [`super::config`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::Deserialize;

use crate::config::words;

/// `kafka.options`: librdkafka properties passed through as they are.
/// `Debug` hides the values of properties that hold secrets
/// (`sasl.password`, `ssl.key.password`, ...).
#[derive(Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Passthrough(BTreeMap<String, String>);

impl serde::Serialize for Passthrough {
    /// Secret properties' values as `***`, as `Debug` shows them.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            let shown = if Self::is_secret(name) { "***" } else { value };
            map.serialize_entry(name, shown)?;
        }
        map.end()
    }
}

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

// The same words as librdkafka's `security.protocol`.
words!(SecurityProtocol: "plaintext" => Plaintext, "ssl" => Ssl, "sasl_plaintext" => SaslPlaintext, "sasl_ssl" => SaslSsl);

impl SecurityProtocol {
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
    pub(crate) fn librdkafka(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}
