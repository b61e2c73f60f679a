//! Making librdkafka clients: the producer's and the admin client's
//! properties, topic creation, and the topics' message size limit.
//!
//! Creating a client reads the TLS files (and the OAUTHBEARER token file),
//! so clients are created on the blocking pool, never on the runtime.

use std::sync::Arc;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::info;

use super::config::KafkaSettings;
use super::context::BridgeContext;
use super::{BridgeProducer, KafkaStartError, DEFAULT_MESSAGE_MAX_BYTES, METADATA_TIMEOUT};
use crate::stats::Stats;

/// Drops a librdkafka client on the blocking pool: destroying one joins
/// its threads and may wait for the broker.
pub(super) fn drop_off_runtime<T: Send + 'static>(client: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(client))),
        Err(_) => drop(client),
    }
}

/// A librdkafka client that is dropped on the blocking pool wherever its
/// owner is dropped: on an early error return, or with a task that is
/// aborted at the drain deadline. (librdkafka's destroy purges, flushes
/// for up to 500 ms and joins its threads: never on a runtime thread.)
pub(super) struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    pub(super) fn new(client: T) -> Self {
        Self(Some(client))
    }

    /// Puts `client` in place of the current one, which is dropped off the
    /// runtime.
    pub(super) fn replace(&mut self, client: T) {
        if let Some(old) = self.0.replace(client) {
            drop_off_runtime(old);
        }
    }
}

impl<T: Send + 'static> std::ops::Deref for OffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `drop` takes the client out.
        self.0
            .as_ref()
            .expect("an OffRuntime holds its client until dropped")
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop_off_runtime(client);
        }
    }
}

/// Creates a client from `config` on the blocking pool.
async fn create<C>(
    config: ClientConfig,
    settings: &KafkaSettings,
    stats: &Arc<Stats>,
) -> Result<C, KafkaError>
where
    C: FromClientConfigAndContext<BridgeContext> + Send + 'static,
{
    let context = BridgeContext::new(settings, Arc::clone(stats));
    tokio::task::spawn_blocking(move || config.create_with_context(context))
        .await
        .unwrap_or_else(|panicked| Err(KafkaError::ClientCreation(panicked.to_string())))
}

/// An admin client with the producer's connection and security settings.
async fn admin_client(
    settings: &KafkaSettings,
    stats: &Arc<Stats>,
) -> Result<AdminClient<BridgeContext>, KafkaError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    set_security(&mut config, settings);
    for (key, value) in settings.options.iter() {
        // Security settings apply to the admin client too; producer-only
        // properties would be refused by it.
        if key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.") {
            config.set(key, value);
        }
    }
    create(config, settings, stats).await
}

/// The first-class security keys as librdkafka properties (validation
/// made sure `kafka.options` does not set them too).
fn set_security(config: &mut ClientConfig, settings: &KafkaSettings) {
    let protocol = settings.security_protocol;
    config.set("security.protocol", protocol.word());
    if protocol.uses_sasl() {
        config.set("sasl.mechanism", settings.sasl_mechanism.librdkafka());
        if !settings.sasl_username.is_empty() {
            config.set("sasl.username", &settings.sasl_username);
        }
        if let Some(password) = &settings.sasl_password {
            config.set("sasl.password", password.expose());
        }
    }
    for (property, path) in [
        ("ssl.ca.location", &settings.ssl_ca_file),
        ("ssl.certificate.location", &settings.ssl_cert_file),
        ("ssl.key.location", &settings.ssl_key_file),
    ] {
        if let Some(path) = path {
            config.set(property, path.to_string_lossy());
        }
    }
    if let Some(password) = &settings.ssl_key_password {
        config.set("ssl.key.password", password.expose());
    }
}

/// The smallest `max.message.bytes` of `topics`, if the broker tells.
pub(super) async fn topic_message_limit(
    settings: &KafkaSettings,
    topics: &[Arc<str>],
    stats: &Arc<Stats>,
) -> Option<usize> {
    let admin = admin_client(settings, stats).await.ok()?;
    let limit = async {
        let specifiers: Vec<ResourceSpecifier> = topics
            .iter()
            .map(|topic| ResourceSpecifier::Topic(topic))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        let described = match admin.describe_configs(&specifiers, &options).await {
            Ok(described) => described,
            Err(err) => {
                info!(cause = %err, "cannot read the topics' max.message.bytes; batches use librdkafka's message.max.bytes");
                return None;
            }
        };
        described
            .iter()
            .filter_map(|result| result.as_ref().ok())
            .filter_map(|resource| {
                resource
                    .get("max.message.bytes")?
                    .value
                    .as_deref()?
                    .parse()
                    .ok()
            })
            .min()
    }
    .await;
    drop_off_runtime(admin);
    limit
}

/// The largest record (and batch) the producer sends: `kafka.options`'
/// `message.max.bytes` if set, else the topics' limit, else librdkafka's.
pub(super) fn message_max_bytes(settings: &KafkaSettings, topic_limit: Option<usize>) -> usize {
    settings
        .options
        .get("message.max.bytes")
        .and_then(|value| value.parse().ok())
        .or(topic_limit)
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
}

/// Creates `topics` with the configured partitions and replication factor;
/// one that exists by now (another replica made it) is fine.
pub(super) async fn create_topics(
    settings: &KafkaSettings,
    topics: &[String],
    stats: &Arc<Stats>,
) -> Result<(), KafkaStartError> {
    let admin = admin_client(settings, stats)
        .await
        .map_err(KafkaStartError::Config)?;
    let created = async {
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    settings.topic_partitions,
                    TopicReplication::Fixed(settings.topic_replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|err| KafkaStartError::CreateTopic {
                topic: topics.join(", "),
                cause: err.into(),
            })?;
        for result in results {
            match result {
                Ok(topic) => {
                    info!(%topic, partitions = settings.topic_partitions, replication_factor = settings.topic_replication_factor, "kafka topic created")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaStartError::CreateTopic {
                        topic,
                        cause: code.into(),
                    })
                }
            }
        }
        Ok(())
    }
    .await;
    drop_off_runtime(admin);
    created
}

/// librdkafka settings: ours first, then `kafka.options` (validated not to
/// weaken idempotence or acks). `topic_limit`: the topics'
/// `max.message.bytes`, which records and batches must fit in.
pub(super) async fn producer(
    settings: &KafkaSettings,
    topic_limit: Option<usize>,
    stats: &Arc<Stats>,
) -> Result<BridgeProducer, KafkaError> {
    create(producer_config(settings, topic_limit), settings, stats).await
}

pub(super) fn producer_config(
    settings: &KafkaSettings,
    topic_limit: Option<usize>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "openim-bridge")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", settings.compression.word())
        .set("linger.ms", settings.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        // Same key -> same partition as the Java client, so other producers
        // of the same keys agree with us.
        .set("partitioner", "murmur2_random");
    // Info: librdkafka reports a connection closed at the first request
    // (plaintext spoken to a TLS port) only as an Info line.
    config.set_log_level(rdkafka::config::RDKafkaLogLevel::Info);
    set_security(&mut config, settings);
    if let Some(limit) = topic_limit {
        // librdkafka caps a batch at batch.size (and message.max.bytes);
        // the broker checks a whole batch against max.message.bytes.
        // librdkafka's bounds: message.max.bytes >= 1000, batch.size >= 1.
        let limit = limit.clamp(1000, 1_000_000_000);
        config.set("message.max.bytes", limit.to_string()).set(
            "batch.size",
            limit.min(DEFAULT_MESSAGE_MAX_BYTES).to_string(),
        );
    }
    for (key, value) in settings.options.iter() {
        config.set(key, value);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_the_topics_message_limit() {
        let settings = KafkaSettings::default();
        let config = producer_config(&settings, Some(512 * 1024));
        assert_eq!(config.get("message.max.bytes"), Some("524288"));
        assert_eq!(config.get("batch.size"), Some("524288"));
        let big = producer_config(&settings, Some(8 * 1024 * 1024));
        assert_eq!(big.get("message.max.bytes"), Some("8388608"));
        assert_eq!(big.get("batch.size"), Some("1000000"));
        assert_eq!(
            producer_config(&settings, None).get("message.max.bytes"),
            None
        );
        // The user's own setting wins.
        let mut own = KafkaSettings::default();
        own.options
            .insert("message.max.bytes".to_owned(), "2000000".to_owned());
        assert_eq!(
            producer_config(&own, Some(512 * 1024)).get("message.max.bytes"),
            Some("2000000")
        );
        assert_eq!(message_max_bytes(&own, Some(512 * 1024)), 2_000_000);
        assert_eq!(message_max_bytes(&settings, Some(512 * 1024)), 524_288);
        assert_eq!(
            message_max_bytes(&settings, None),
            DEFAULT_MESSAGE_MAX_BYTES
        );
    }
}
