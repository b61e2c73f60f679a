//! One settings tree for the whole bridge.
//!
//! Layers, later wins: built-in defaults < TOML file (`--config FILE`) <
//! environment variables `OPENIM_BRIDGE__SECTION__KEY` (e.g.
//! `OPENIM_BRIDGE__SINK__KIND=kafka`). Every section rejects unknown keys, so a
//! typo fails at startup instead of being ignored. [`Settings::validate`]
//! rejects values that parse but cannot work, naming the key to change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::routing::{FilterSettings, RouteSettings};

/// `TryFrom<String>` for a settings enum spelled as lowercase words, with an
/// error that lists the allowed words.
macro_rules! words {
    ($enum:ident: $($word:literal => $variant:ident),+) => {
        impl TryFrom<String> for $enum {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                choose(&value, &[$(($word, Self::$variant)),+])
            }
        }
    };
}

mod security;

pub use security::{read_secret_file, Passthrough, SaslMechanism, Secret, SecurityProtocol};

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "OPENIM_BRIDGE";

/// A configuration that could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A key has a value the bridge cannot work with.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// Dotted key, as written in the TOML file.
        key: &'static str,
        /// What is wrong and what to change.
        problem: String,
    },
}

/// The whole configuration. See `deploy/openim-bridge.example.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The HTTP endpoint OpenIM posts callbacks to.
    pub http: HttpSettings,
    /// Where events go.
    pub sink: SinkSettings,
    /// The durable spool between the ack and the broker.
    pub spool: SpoolSettings,
    /// CloudEvents attributes the bridge sets.
    pub event: EventSettings,
    /// Kafka sink (used when `sink.kind = "kafka"`).
    pub kafka: KafkaSettings,
    /// RabbitMQ sink (used when `sink.kind = "rabbitmq"`).
    pub rabbitmq: RabbitMqSettings,
    /// Logging.
    pub log: LogSettings,
    /// Graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// Per-command or per-type routing (`[[routes]]`; see [`crate::routing`]).
    pub routes: Vec<RouteSettings>,
    /// Callbacks not to publish (see [`crate::routing`]).
    pub filter: FilterSettings,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// A client must send a request's headers within this time, counted
    /// from when the connection is idle; otherwise it is closed. This is
    /// also the keep-alive idle timeout.
    pub header_read_timeout_ms: u64,
    /// Once the headers are in, the body must arrive within this time, or
    /// the request is answered 408 (protects against slow-body clients).
    pub body_read_timeout_ms: u64,
    /// Open connections at most; past it the bridge stops accepting until
    /// one closes (new ones wait in the kernel's backlog), so a flood of
    /// idle connections cannot exhaust file descriptors.
    pub max_connections: usize,
    /// Shared secret callbacks must carry (OpenIM signs nothing). Accepted
    /// as a path segment of `webhooks.url` (`http://bridge:8080/<token>`), a
    /// `?token=` query parameter, or the `auth_header` header added by a
    /// reverse proxy. Unset: no check.
    pub auth_token: Option<String>,
    /// Header that may carry `auth_token`.
    pub auth_header: String,
    /// Client addresses allowed to post callbacks, as IPs or CIDRs (e.g.
    /// `["10.0.0.0/8", "127.0.0.1"]`, or `"10.0.0.0/8,127.0.0.1"` from the
    /// environment); the TCP peer is checked. Empty: all.
    #[serde(deserialize_with = "list_or_commas")]
    pub allow_ips: Vec<String>,
    /// Size cap of `{spool.dir}/invalid-callbacks.jsonl`, where refused
    /// (4xx after reading the body) callbacks are kept with their reason;
    /// 0 turns the log off.
    pub invalid_log_max_bytes: u64,
    /// PEM certificate chain: when set (with `tls_key_file`), the listener
    /// speaks HTTPS. Read at startup; restart to load a renewed certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// A `callbackCommand` this version does not know (a newer OpenIM):
    /// `publish` (acked and published raw as `io.openim.callback.unknown`,
    /// with a warning and a count) or `reject` (404).
    pub unknown_commands: UnknownCommands,
}

/// What to do with a command the catalog does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum UnknownCommands {
    /// Ack and publish raw: nothing is lost.
    #[default]
    Publish,
    /// Answer 404.
    Reject,
}

words!(UnknownCommands: "publish" => Publish, "reject" => Reject);

impl UnknownCommands {
    /// Whether unknown commands are published.
    pub fn publishes(self) -> bool {
        self == Self::Publish
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            // All interfaces: the bridge runs in a container behind a load balancer.
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            // OpenIM caps a text message far below this; merged-message and
            // custom payloads are the largest bodies seen.
            max_body_bytes: 4 * 1024 * 1024,
            // Longer than Go's 90 s idle-connection timeout, so OpenIM's
            // client always closes an idle connection first: a server-side
            // close racing a new POST would make OpenIM drop that callback.
            header_read_timeout_ms: 120_000,
            // OpenIM's own callback timeout is 5 s by default.
            body_read_timeout_ms: 10_000,
            // OpenIM opens at most 100 per process; well below the usual
            // 20k+ file descriptor limit.
            max_connections: 10_000,
            auth_token: None,
            auth_header: "x-openim-bridge-token".to_owned(),
            allow_ips: Vec::new(),
            // Room for tens of thousands of refused callbacks.
            invalid_log_max_bytes: 64 * 1024 * 1024,
            tls_cert_file: None,
            tls_key_file: None,
            unknown_commands: UnknownCommands::Publish,
        }
    }
}

/// A TOML list, or one comma-separated string (environment variables).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl HttpSettings {
    /// `allow_ips` as networks; a plain IP is a network of one address.
    pub fn parse_allow_ips(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
        list.iter()
            .map(|item| {
                item.parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{item}` is not an IP address or CIDR (e.g. 10.0.0.0/8)"))
            })
            .collect()
    }
}

/// Which broker receives events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SinkKind {
    /// JSON lines (structured CloudEvents) on standard output. Needs no broker.
    #[default]
    Stdout,
    /// Apache Kafka or any Kafka-protocol broker.
    Kafka,
    /// RabbitMQ (AMQP 0-9-1).
    Rabbitmq,
}

words!(SinkKind: "stdout" => Stdout, "kafka" => Kafka, "rabbitmq" => Rabbitmq);

impl SinkKind {
    /// The sink's name, as in `sink.kind` (and the `sink` metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Kafka => "kafka",
            Self::Rabbitmq => "rabbitmq",
        }
    }
}

/// `[sink]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// `stdout` | `kafka` | `rabbitmq`.
    pub kind: SinkKind,
    /// Events handed to the broker client and not yet confirmed, at most.
    pub max_in_flight: usize,
    /// First retry delay after a broker error; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between retries.
    pub retry_max_ms: u64,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            kind: SinkKind::Stdout,
            // Enough to keep a broker busy over loopback or a LAN without
            // holding many events unconfirmed.
            max_in_flight: 1024,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
        }
    }
}

/// When a callback is acked: what an acked event survives.
///
/// | mode | acked once | survives a bridge crash (`kill -9`) | survives a power loss or kernel crash |
/// |---|---|---|---|
/// | `durable` | its record is synced (`fdatasync`) | yes | yes |
/// | `written` | its record is written to the segment file | yes | no: up to `spool.sync_interval_ms` |
/// | `memory` | the spool's writer thread has it | no: the records not yet written (milliseconds) | no: up to `spool.sync_interval_ms` |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum AckMode {
    /// After its record is synced to disk (`fdatasync`): survives a crash
    /// of the machine.
    #[default]
    Durable,
    /// After its record is written to the segment file (the kernel holds
    /// it): survives a crash of the bridge, not of the machine.
    Written,
    /// As soon as the spool's writer thread has it: fastest; a crash loses
    /// events not yet written (at most a few milliseconds' worth).
    Memory,
}

words!(AckMode: "durable" => Durable, "written" => Written, "memory" => Memory);

/// `[spool]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSettings {
    /// Directory of the spool's files (created if missing). One bridge
    /// process per directory. Default: `spool/<http.listen port>`.
    pub dir: PathBuf,
    /// Disk space the spool may use; past it callbacks are answered 503
    /// until the broker has confirmed enough events.
    pub max_bytes: u64,
    /// `durable` | `written` | `memory`: when a callback is acked (see
    /// [`AckMode`]).
    pub ack: AckMode,
    /// In `written` and `memory` modes, the longest time between two
    /// syncs of written records (`durable` syncs every batch before it
    /// acks). Bounds what a power loss can take.
    pub sync_interval_ms: u64,
    /// Size at which a new segment file is started; confirmed segments are
    /// deleted whole.
    pub segment_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        Self {
            // Empty = `spool/<http.listen port>` in the working directory
            // (see `Settings::load`): `cargo run` works anywhere, and two
            // replicas on one host do not share a spool by accident. The
            // container image sets /var/lib/openim-bridge/spool.
            dir: PathBuf::new(),
            // Hours of a busy cluster's events while a broker is down.
            max_bytes: 1024 * 1024 * 1024,
            ack: AckMode::Durable,
            sync_interval_ms: 100,
            // Small enough to free space soon after the broker catches up.
            segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `[event]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// CloudEvents `source` of every event: names the OpenIM deployment.
    /// `source` + `id` identify an event, so give each OpenIM cluster its own.
    pub source: String,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            source: "openim".to_owned(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Topic every event is written to.
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
    /// secret properties are hidden in `--check-config`.
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

words!(Compression: "none" => None, "gzip" => Gzip, "snappy" => Snappy, "lz4" => Lz4);

impl Compression {
    /// librdkafka's name for it (`compression.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
        }
    }
}

/// `[rabbitmq]`
#[derive(Clone, Deserialize)]
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
            .field("url", &crate::sink::rabbitmq::redact(&self.url))
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

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

words!(LogFormat: "text" => Text, "json" => Json);

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` | `json`.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `openim_bridge=debug,info`.
    /// `RUST_LOG` overrides it when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM: how long the bridge keeps accepting and acking
    /// callbacks while `/readyz` already answers 503, so a load balancer's
    /// health check (or Kubernetes' endpoint removal) stops sending new
    /// ones before it stops listening. A second SIGTERM cuts it short.
    pub ready_delay_ms: u64,
    /// Then: how long in-flight requests may take to finish and spooled
    /// events to reach the broker before the bridge exits anyway (what is
    /// left stays in the spool).
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        // 5 s: several health checks of a load balancer checking every
        // second or faster, and Kubernetes' endpoint propagation. With the
        // 20 s drain, below Kubernetes' default 30 s grace period.
        Self {
            ready_delay_ms: 5_000,
            drain_timeout_ms: 20_000,
        }
    }
}

/// Parses one of a fixed set of words, or says which words are allowed.
fn choose<T: Copy>(value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    let found = choices
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(value.trim()));
    found.map(|(_, choice)| *choice).ok_or_else(|| {
        let words: Vec<_> = choices
            .iter()
            .map(|(word, _)| format!("`{word}`"))
            .collect();
        format!(
            "unknown value `{value}`, expected one of {}",
            words.join(", ")
        )
    })
}

/// Routing key placeholders [`RabbitMqSettings::routing_key`] accepts.
pub const ROUTING_KEY_PLACEHOLDERS: [&str; 3] = ["{type}", "{command}", "{key}"];

impl Settings {
    /// Loads defaults, then `file` if given, then the environment.
    ///
    /// `env` replaces the process environment when given (tests use it).
    pub fn load(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .source(env);
        let mut settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.derive_defaults();
        settings.resolve_secret_files()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Fills defaults that depend on other settings: an empty `spool.dir`
    /// becomes `spool/<http.listen port>`. [`Settings::load`] and
    /// `App::start` call it.
    pub fn derive_defaults(&mut self) {
        if self.spool.dir.as_os_str().is_empty() {
            self.spool.dir = PathBuf::from("spool").join(self.http.listen.port().to_string());
        }
    }

    /// Reads the secrets given as files (`*_file`) into their settings and
    /// checks that the TLS files can be read. [`Settings::load`] and
    /// `App::start` call it; a second call changes nothing.
    pub fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        self.kafka.resolve_files()?;
        self.rabbitmq.resolve_files()
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if self
            .http
            .auth_token
            .as_deref()
            .is_some_and(|t| t.len() < 16)
        {
            return invalid(
                "http.auth_token",
                "is shorter than 16 characters; use a long random value",
            );
        }
        // It travels in a URL (path segment or `?token=`): characters that a
        // URL escapes or splits on would arrive changed.
        if self.http.auth_token.as_deref().is_some_and(|t| {
            !t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        }) {
            return invalid(
                "http.auth_token",
                "may contain only letters, digits, `-`, `.`, `_` and `~` (it goes into OpenIM's webhooks.url); e.g. `openssl rand -hex 24`",
            );
        }
        if let Err(problem) = HttpSettings::parse_allow_ips(&self.http.allow_ips) {
            return invalid("http.allow_ips", &problem);
        }
        if self.http.tls_cert_file.is_some() != self.http.tls_key_file.is_some() {
            return invalid(
                "http.tls_cert_file",
                "and http.tls_key_file must be set together",
            );
        }
        if self.http.max_connections == 0 {
            return invalid("http.max_connections", "must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            return invalid("http.max_body_bytes", "must be at least 1024 bytes");
        }
        // An event is about its body's size plus a little: half the spool's
        // record limit leaves room, so every acked callback can be read back.
        if self.http.max_body_bytes > crate::spool::record::MAX_PAYLOAD / 2 {
            return invalid(
                "http.max_body_bytes",
                "must be at most 33554432 bytes (32 MiB), half the spool's record limit",
            );
        }
        if self.spool.segment_bytes < 1024 * 1024 {
            return invalid("spool.segment_bytes", "must be at least 1 MiB (1048576)");
        }
        if !(1..=60_000).contains(&self.spool.sync_interval_ms) {
            return invalid(
                "spool.sync_interval_ms",
                "must be between 1 and 60000 (it bounds what a power loss can take in written and memory modes)",
            );
        }
        if self.spool.max_bytes < 2 * self.spool.segment_bytes + 2 * self.http.max_body_bytes as u64
        {
            return invalid(
                "spool.max_bytes",
                "must be at least twice spool.segment_bytes plus twice http.max_body_bytes, or the spool could fill before a segment can be freed",
            );
        }
        if self.sink.max_in_flight == 0 {
            return invalid("sink.max_in_flight", "must be at least 1");
        }
        if self.sink.retry_initial_ms == 0 || self.sink.retry_max_ms < self.sink.retry_initial_ms {
            return invalid(
                "sink.retry_initial_ms",
                "must be at least 1 and not above sink.retry_max_ms",
            );
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid(
                "log.level",
                &format!(
                    "{:?} is not a log filter ({err}); try `info` or `openim_bridge=debug,info`",
                    self.log.level
                ),
            );
        }
        if self.event.source.is_empty() {
            return invalid(
                "event.source",
                "must not be empty (CloudEvents requires a source)",
            );
        }
        crate::routing::Filter::new(&self.filter)?;
        for route in &self.routes {
            self.validate_route(route)?;
        }
        match self.sink.kind {
            SinkKind::Kafka => self.kafka.validate(),
            SinkKind::Rabbitmq => self.rabbitmq.validate(),
            SinkKind::Stdout => Ok(()),
        }
    }

    fn validate_route(&self, route: &RouteSettings) -> Result<(), ConfigError> {
        let invalid = |problem: String| {
            Err(ConfigError::Invalid {
                key: "routes",
                problem,
            })
        };
        let pattern = route.pattern.trim();
        if pattern.is_empty() {
            return invalid("an entry has no `match`: give a callbackCommand, an event type, or a type prefix ending in `*`".to_owned());
        }
        if !crate::normalize::CallbackKind::all().any(|kind| route.matches(kind)) {
            return invalid(format!("`match = {pattern:?}` matches no callback command or event type (see the table in README.md)"));
        }
        if let Some(topic) = &route.kafka_topic {
            if let Err(problem) = validate_topic_name(topic) {
                return invalid(format!("`kafka_topic` of `{pattern}`: {problem}"));
            }
        }
        if route.rabbitmq_exchange.as_deref() == Some("") {
            return invalid(format!("`rabbitmq_exchange` of `{pattern}` is empty"));
        }
        if let Some(key) = &route.rabbitmq_routing_key {
            check_routing_key(key).or_else(|problem| {
                invalid(format!("`rabbitmq_routing_key` of `{pattern}`: {problem}"))
            })?;
        }
        Ok(())
    }
}

/// A routing key template with only known placeholders.
fn check_routing_key(template: &str) -> Result<(), String> {
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

impl KafkaSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "kafka.brokers",
                problem: "is empty: set it to the bootstrap servers, e.g. `kafka:9092`".to_owned(),
            });
        }
        validate_topic_name(&self.topic).map_err(|problem| ConfigError::Invalid {
            key: "kafka.topic",
            problem,
        })?;
        self.validate_security()?;
        // The bridge promises no loss and per-group order: these two
        // librdkafka properties are what make that true.
        for (name, allowed) in [
            ("enable.idempotence", &["true"][..]),
            ("acks", &["all", "-1"][..]),
        ] {
            if let Some(value) = self.options.get(name) {
                if !allowed.contains(&value.as_str()) {
                    return Err(ConfigError::Invalid {
                        key: "kafka.options",
                        problem: format!(
                            "`{name} = {value}` would allow lost or reordered events; the bridge requires `{name} = {}` (remove the option)",
                            allowed[0]
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Kafka's own rule for topic names.
fn validate_topic_name(topic: &str) -> Result<(), String> {
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

impl RabbitMqSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Err(problem) = self.url.parse::<lapin::uri::AMQPUri>() {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.url",
                problem: format!(
                    "is not an AMQP URL ({problem}); expected amqp://user:pass@host:5672/%2f"
                ),
            });
        }
        self.validate_security()?;
        if self.exchange.is_empty() {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.exchange",
                problem:
                    "must not be empty: the default exchange cannot be declared; name an exchange"
                        .to_owned(),
            });
        }
        if let Err(problem) = check_routing_key(&self.routing_key) {
            return Err(ConfigError::Invalid {
                key: "rabbitmq.routing_key",
                problem,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_unknown_compression_is_refused_when_the_settings_load() {
        let err = load_err(&[("OPENIM_BRIDGE__KAFKA__COMPRESSION", "zstd")]);
        assert!(err.contains("zstd") && err.contains("`lz4`"), "{err}");
        let settings =
            Settings::load(None, env(&[("OPENIM_BRIDGE__KAFKA__COMPRESSION", "GZIP")])).unwrap();
        assert_eq!(settings.kafka.compression.as_str(), "gzip");
    }

    fn load_err(pairs: &[(&str, &str)]) -> String {
        Settings::load(None, env(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_need_no_broker() {
        let settings = Settings::load(None, env(&[])).unwrap();
        assert_eq!(settings.sink.kind, SinkKind::Stdout);
        assert_eq!(settings.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.kafka.topic, "openim.events");
        assert_eq!(settings.rabbitmq.routing_key, "{type}");
    }

    #[test]
    fn environment_overrides_with_double_underscores() {
        let settings = Settings::load(
            None,
            env(&[
                ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
                (
                    "OPENIM_BRIDGE__KAFKA__BROKERS",
                    "10.0.0.1:9092,10.0.0.2:9092",
                ),
                ("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:9999"),
                ("OPENIM_BRIDGE__KAFKA__LINGER_MS", "20"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.sink.kind, SinkKind::Kafka);
        assert_eq!(settings.kafka.brokers, "10.0.0.1:9092,10.0.0.2:9092");
        assert_eq!(settings.http.listen.port(), 9999);
        assert_eq!(settings.kafka.linger_ms, 20);
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.toml");
        std::fs::write(
            &path,
            "[sink]\nkind = \"rabbitmq\"\n[rabbitmq]\nexchange = \"from-file\"\nrouting_key = \"chat.{command}\"\n[kafka.options]\n\"queue.buffering.max.kbytes\" = 2048\n",
        )
        .unwrap();
        let settings = Settings::load(
            Some(&path),
            env(&[("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", "from-env")]),
        )
        .unwrap();
        assert_eq!(settings.sink.kind, SinkKind::Rabbitmq);
        assert_eq!(settings.rabbitmq.exchange, "from-env");
        assert_eq!(settings.rabbitmq.routing_key, "chat.{command}");
        assert_eq!(settings.kafka.options["queue.buffering.max.kbytes"], "2048");
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_err(&[("OPENIM_BRIDGE__SINK__KIND", "kafak")]);
        assert!(err.contains("kafak") && err.contains("sink.kind"), "{err}");
        let err = load_err(&[("OPENIM_BRIDGE__HTTP__LISTEN", "localhost")]);
        assert!(err.contains("http.listen"), "{err}");
        let err = load_err(&[("OPENIM_BRIDGE__HTTP__LISTNE", "0.0.0.0:1")]);
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn contradictory_values_are_rejected() {
        let err = load_err(&[
            ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
            ("OPENIM_BRIDGE__KAFKA__TOPIC", "a topic"),
        ]);
        assert!(err.contains("kafka.topic"), "{err}");
        let err = load_err(&[
            ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
            ("OPENIM_BRIDGE__RABBITMQ__URL", "http://x"),
        ]);
        assert!(err.contains("rabbitmq.url"), "{err}");
        let err = load_err(&[
            ("OPENIM_BRIDGE__SINK__KIND", "rabbitmq"),
            ("OPENIM_BRIDGE__RABBITMQ__ROUTING_KEY", "{group}"),
        ]);
        assert!(err.contains("rabbitmq.routing_key"), "{err}");
        let err = load_err(&[("OPENIM_BRIDGE__SPOOL__MAX_BYTES", "1000")]);
        assert!(err.contains("spool.max_bytes"), "{err}");
        // A body the spool could not read back once acked.
        let err = load_err(&[
            ("OPENIM_BRIDGE__HTTP__MAX_BODY_BYTES", "67108864"),
            ("OPENIM_BRIDGE__SPOOL__MAX_BYTES", "1099511627776"),
        ]);
        assert!(
            err.contains("http.max_body_bytes") && err.contains("32 MiB"),
            "{err}"
        );
        let err = load_err(&[("OPENIM_BRIDGE__SPOOL__ACK", "fast")]);
        assert!(
            err.contains("spool.ack") && err.contains("durable"),
            "{err}"
        );
    }

    #[test]
    fn allowlist_from_the_environment() {
        let settings = Settings::load(
            None,
            env(&[("OPENIM_BRIDGE__HTTP__ALLOW_IPS", "10.0.0.0/8,127.0.0.1")]),
        )
        .unwrap();
        let nets = HttpSettings::parse_allow_ips(&settings.http.allow_ips).unwrap();
        assert_eq!(nets.len(), 2);
        assert!(nets[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        let err = load_err(&[("OPENIM_BRIDGE__HTTP__ALLOW_IPS", "10.0.0.300/8")]);
        assert!(
            err.contains("http.allow_ips") && err.contains("10.0.0.300/8"),
            "{err}"
        );
        let err = load_err(&[("OPENIM_BRIDGE__HTTP__AUTH_TOKEN", "short")]);
        assert!(err.contains("http.auth_token"), "{err}");
    }

    #[test]
    fn routes_and_filters_load_from_toml_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("bridge.toml");
            std::fs::write(&path, text).unwrap();
            Settings::load(Some(&path), env(&[]))
        };
        let settings = load(
            "[[routes]]\nmatch = \"io.openim.group.*\"\nkafka_topic = \"openim.group\"\n[filter]\nexclude_content_types = [113, \"200-300\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.routes[0].kafka_topic.as_deref(),
            Some("openim.group")
        );
        assert_eq!(settings.filter.exclude_content_types.len(), 2);
        let refused = |text: &str, needles: &[&str]| {
            let err = load(text).unwrap_err().to_string();
            assert!(needles.iter().all(|n| err.contains(n)), "{err}");
        };
        refused(
            "[[routes]]\nmatch = \"io.openim.nope\"\n",
            &["routes", "io.openim.nope"],
        );
        refused(
            "[filter]\ncontent_types = [\"abc\"]\n",
            &["filter.content_types", "abc"],
        );
        refused(
            "[[routes]]\nmatch = \"*\"\nkafka_topic = \"bad topic\"\n",
            &["kafka_topic"],
        );
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/openim-bridge.example.toml");
        let example = Settings::load(Some(&path), env(&[])).unwrap();
        let defaults = Settings::load(None, env(&[])).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
        assert_eq!(defaults.spool.dir, Path::new("spool/8080"));
    }

    #[test]
    fn loss_enabling_kafka_options_are_rejected() {
        let mut settings = Settings::default();
        settings.sink.kind = SinkKind::Kafka;
        settings.kafka.options.insert("acks".into(), "1".into());
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("kafka.options") && err.contains("acks"),
            "{err}"
        );
        settings.kafka.options.insert("acks".into(), "all".into());
        settings.validate().unwrap();
    }
}
