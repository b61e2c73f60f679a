//! Connecting to RabbitMQ: the URL with the configured credentials, TLS
//! for `amqps://` (custom CA, client certificate), and what a failed
//! connection means: an outage (wait), a [`Refusal`] (wait, and say which
//! setting to fix) or a configuration the broker rejects (stop).

use std::sync::Arc;

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{
    Channel, Connection, ConnectionProperties, DefaultConnectionBuilder, ErrorKind, ExchangeKind,
};
use tracing::info;

use super::config::{ExchangeType, RabbitMqSettings};
use crate::sink::refusal::Refusal;
use crate::sink::Problem;

/// AMQP reply codes that mean "not you": wrong credentials, or no access
/// to the vhost.
const ACCESS_REFUSED: u16 = 403;
const NOT_ALLOWED: u16 = 530;

/// How to reach the broker, built once from the settings.
#[derive(Clone)]
pub struct Target {
    uri: AMQPUri,
    tls: OwnedTLSConfig,
    /// The URL without its password, for logs and errors.
    pub shown: String,
}

impl Target {
    /// The URL with `rabbitmq.username`/`password` applied, and the TLS
    /// files read. Fails with a message naming the setting.
    pub fn new(settings: &RabbitMqSettings) -> Result<Self, Problem> {
        let mut uri: AMQPUri = settings
            .url
            .parse()
            .map_err(|err| Problem::from(format!("rabbitmq.url is not an AMQP URL ({err})")))?;
        if let Some(username) = &settings.username {
            uri.authority.userinfo.username = username.clone();
        }
        if let Some(password) = &settings.password {
            uri.authority.userinfo.password = password.expose().to_owned();
        }
        let read = |path: &std::path::PathBuf, key: &str| {
            std::fs::read(path).map_err(|err| {
                Problem::caused_by(format!("{key}: cannot read {}", path.display()), err)
            })
        };
        let mut tls = OwnedTLSConfig::default();
        if let Some(path) = &settings.tls_ca_file {
            let pem = read(path, "rabbitmq.tls_ca_file")?;
            tls.cert_chain = Some(String::from_utf8(pem).map_err(|err| {
                let what = format!("rabbitmq.tls_ca_file: {} is not a PEM file", path.display());
                Problem::caused_by(what, err)
            })?);
        }
        if let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) {
            tls.identity = Some(OwnedIdentity::PKCS8 {
                pem: read(cert, "rabbitmq.tls_cert_file")?,
                key: read(key, "rabbitmq.tls_key_file")?,
            });
        }
        Ok(Self {
            uri,
            tls,
            shown: redact(&settings.url),
        })
    }
}

/// A connection and its confirm-mode channel.
pub struct Opened {
    pub connection: Connection,
    pub channel: Channel,
}

/// Connects, and declares every exchange the routes use.
pub async fn open(
    target: &Target,
    settings: &RabbitMqSettings,
    exchanges: &[Arc<str>],
) -> Result<Opened, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name("openim-bridge".into());
    let connection = DefaultConnectionBuilder::new()?
        .with_uri(target.uri.clone())
        .with_properties(properties)
        .with_tls_config(target.tls.clone())
        .connect()
        .await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let kind = match settings.exchange_type {
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Headers => ExchangeKind::Headers,
    };
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in exchanges {
        channel
            .exchange_declare(
                exchange.as_ref().into(),
                kind.clone(),
                options,
                FieldTable::default(),
            )
            .await?;
        info!(url = %target.shown, %exchange, "rabbitmq connected, exchange declared");
    }
    Ok(Opened {
        connection,
        channel,
    })
}

/// What a failed connection means.
pub enum Failure {
    /// Down or unreachable: wait.
    Outage,
    /// Refused until a setting changes: wait, and say which.
    Refused(Refusal, &'static str),
    /// The broker rejects our configuration (e.g. an exchange of another
    /// type): stop with the error.
    Fatal,
}

/// Sorts a connection error.
pub fn failure(err: &lapin::Error) -> Failure {
    let text = err.to_string().to_ascii_lowercase();
    match err.kind() {
        ErrorKind::ProtocolError(amqp) if [ACCESS_REFUSED, NOT_ALLOWED].contains(&amqp.get_id()) => {
            Failure::Refused(
                Refusal::Authentication,
                "check rabbitmq.username and rabbitmq.password (or the user:password in rabbitmq.url, or rabbitmq.password_file), and that the user may use the vhost in rabbitmq.url",
            )
        }
        ErrorKind::ProtocolError(_) => Failure::Fatal,
        ErrorKind::ParsingError(_) | ErrorKind::InvalidProtocolVersion(_) => Failure::Refused(
            Refusal::TlsMismatch,
            "rabbitmq.url's scheme does not match the port: amqps:// for a TLS port (usually 5671), amqp:// for a plain one (5672)",
        ),
        _ if ["corrupt message", "invalidcontenttype", "wrong version"]
            .iter()
            .any(|words| text.contains(words)) =>
        {
            Failure::Refused(
                Refusal::TlsMismatch,
                "rabbitmq.url is amqps:// but the port speaks plain AMQP: use amqp:// or the TLS port (usually 5671)",
            )
        }
        _ if text.contains("certificate") || text.contains("handshake") => Failure::Refused(
            Refusal::Certificate,
            "set rabbitmq.tls_ca_file to the CA that signed the broker's certificate (unset: the system's roots) and check that rabbitmq.url names the host as its certificate does; if the broker requires a client certificate, set rabbitmq.tls_cert_file and rabbitmq.tls_key_file",
        ),
        _ => Failure::Outage,
    }
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
    }

    #[test]
    fn separate_credentials_override_the_urls() {
        let settings = RabbitMqSettings {
            url: "amqps://guest:old@broker.example:5671/prod".to_owned(),
            username: Some("bridge".to_owned()),
            password: Some(crate::config::Secret::new("n3w")),
            ..RabbitMqSettings::default()
        };
        let target = Target::new(&settings).unwrap();
        assert_eq!(target.uri.authority.userinfo.username, "bridge");
        assert_eq!(target.uri.authority.userinfo.password, "n3w");
        assert_eq!(target.uri.vhost, "prod");
        assert!(!target.shown.contains("old"), "{}", target.shown);
        let missing = RabbitMqSettings {
            tls_ca_file: Some("/nonexistent/ca.pem".into()),
            ..settings
        };
        let err = Target::new(&missing).err().unwrap();
        assert!(err.to_string().contains("rabbitmq.tls_ca_file"), "{err}");
        // The I/O error is kept as the source, not only as text.
        let source = std::error::Error::source(&err).expect("the read error");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
    }
}
