//! RabbitMQ sink: publisher confirms on one channel, CloudEvents RabbitMQ
//! binding in binary mode (the knative eventing-rabbitmq protocol spec).
//!
//! A message is: body = the JSON `data`; property `content_type` =
//! `application/json`; headers `ce-specversion`, `ce-id`, `ce-source`,
//! `ce-type`, `ce-time`, `ce-subject` (AMQP long strings); plus
//! `message_id` = the event id, `timestamp` = when it was sent (seconds),
//! `app_id` = `openim-bridge` and `delivery_mode` 2 (persistent).
//!
//! Messages are published `mandatory`: a message the broker returned (no
//! queue bound for the routing key) is [`SinkError::Rejected`], a Nack is
//! [`SinkError::Retryable`]. Returns are matched to messages by their
//! `message_id`, not by the confirm lapin attaches them to (`confirms.rs`
//! explains why and proves the matching). A lost connection is retryable:
//! the publisher calls [`Sink::recover`], which reconnects and declares the
//! exchange again.

pub mod config;
mod confirms;
mod connect;

use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use time::OffsetDateTime;
use tracing::warn;

use self::confirms::{Confirms, Decision, Resolution};
pub use self::connect::redact;
use self::connect::{Failure, Target};
use super::refusal;
use super::{Delivery, Destination, Problem, RejectClass, Rejection, Sink, SinkError};
use crate::backoff::Backoff;
use crate::normalize::event::{Event, DATA_CONTENT_TYPE};
use crate::routing::Routes;
use crate::stats::Stats;
use config::RabbitMqSettings;

/// First wait between connection attempts at startup; doubles up to
/// [`START_RETRY_MAX`].
const START_RETRY_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between connection attempts at startup.
const START_RETRY_MAX: Duration = Duration::from_secs(10);

/// A RabbitMQ sink could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "rabbitmq at {url}: {cause} (check rabbitmq.url, rabbitmq.exchange and rabbitmq.exchange_type)"
)]
pub struct RabbitMqStartError {
    url: String,
    #[source]
    cause: Problem,
}

/// Publishes events to the exchange their route names.
pub struct RabbitMqSink {
    settings: RabbitMqSettings,
    target: Target,
    routes: Arc<Routes>,
    stats: Arc<Stats>,
    /// `None` while disconnected.
    link: Option<Link>,
}

struct Link {
    /// Kept so the connection lives as long as the channel.
    _connection: Connection,
    channel: Channel,
    /// Matches the channel's returns to its publishes; a new channel gets
    /// a new one (delivery tags start again).
    confirms: Confirms,
}

impl RabbitMqSink {
    /// Connects and declares the exchanges, retrying until the broker
    /// accepts (events wait in the spool meanwhile). A broker that is down
    /// is waited for; one that refuses the credentials or the certificate
    /// too, with one log line naming the setting to fix. One that rejects
    /// the configuration (an exchange of another type) is an error.
    pub async fn start(
        settings: &RabbitMqSettings,
        routes: Arc<Routes>,
        stats: Arc<Stats>,
    ) -> Result<Self, RabbitMqStartError> {
        // Reads the TLS files: on the blocking pool.
        let owned = settings.clone();
        let target = tokio::task::spawn_blocking(move || Target::new(&owned))
            .await
            .unwrap_or_else(|panicked| Err(Problem::caused_by("reading the TLS files", panicked)))
            .map_err(|cause| RabbitMqStartError {
                url: redact(&settings.url),
                cause,
            })?;
        let mut sink = Self {
            settings: settings.clone(),
            target,
            routes,
            stats,
            link: None,
        };
        let mut backoff = Backoff::new(START_RETRY_INITIAL, START_RETRY_MAX);
        let mut warned = false;
        loop {
            match sink.connect().await {
                Ok(()) => return Ok(sink),
                Err((Failure::Fatal, cause)) => {
                    return Err(RabbitMqStartError {
                        url: sink.target.shown.clone(),
                        cause: Problem::caused_by("", cause),
                    })
                }
                Err((Failure::Outage, cause)) if !warned => {
                    warn!(url = %sink.target.shown, %cause, "rabbitmq is not reachable yet; callbacks are acked and wait in the spool until it is");
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// One connection attempt; a refusal is reported (see [`refusal`]).
    async fn connect(&mut self) -> Result<(), (Failure, lapin::Error)> {
        let exchanges = self.routes.rabbitmq_exchanges();
        match connect::open(&self.target, &self.settings, &exchanges).await {
            Ok(opened) => {
                self.link = Some(Link {
                    _connection: opened.connection,
                    channel: opened.channel,
                    confirms: Confirms::default(),
                });
                refusal::accepted(&self.stats, "rabbitmq");
                Ok(())
            }
            Err(err) => {
                let failure = connect::failure(&err);
                if let Failure::Refused(reason, fix) = failure {
                    refusal::report(&self.stats, "rabbitmq", reason, &err.to_string(), fix);
                }
                Err((failure, err))
            }
        }
    }

    fn routing_key(&self, event: &Event) -> String {
        self.routes
            .route(event.kind)
            .rabbitmq_routing_key
            .replace("{type}", event.event_type())
            .replace("{command}", event.kind.command())
            .replace("{key}", &event.key)
    }
}

fn properties(event: &Event) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (attribute, value) in event.attributes() {
        headers.insert(
            ShortString::from(attribute.amqp_header),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    BasicProperties::default()
        .with_content_type(DATA_CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(event.id.as_str().into())
        .with_timestamp(u64::try_from(timestamp).unwrap_or_default())
        .with_app_id("openim-bridge".into())
        .with_headers(headers)
}

impl Sink for RabbitMqSink {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn destination(&self, event: &Event) -> &str {
        &self.routes.route(event.kind).rabbitmq_exchange
    }

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let Some(link) = &self.link else {
            return Err(SinkError::Retryable("not connected to rabbitmq".into()));
        };
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let exchange = Arc::clone(&self.routes.route(event.kind).rabbitmq_exchange);
        let publishing = link.confirms.begin();
        let confirm = link
            .channel
            .basic_publish(
                exchange.as_ref().into(),
                self.routing_key(event).into(),
                options,
                &event.data,
                properties(event),
            )
            .await
            .map_err(|err| {
                SinkError::Retryable(Problem::caused_by("rabbitmq publish failed", err))
            })?;
        let tracked = publishing.arm(
            event.id.clone(),
            Box::pin(async move { Resolution::from(confirm.await) }),
        );
        Ok(Box::pin(async move {
            match tracked.await {
                Decision::Delivered => Ok(()),
                Decision::Unroutable(returned) => Err(SinkError::from(Rejection {
                    class: RejectClass::Unroutable,
                    code: Some(returned.reply_code.to_string()),
                    destination: Destination::exchange(&exchange, &returned.routing_key),
                    problem: Problem::from(format!(
                        "rabbitmq returned the message as unroutable ({} {}): no queue is bound to exchange `{exchange}` for routing key `{}`",
                        returned.reply_code, returned.reply_text, returned.routing_key
                    )),
                })),
                Decision::Nacked => Err(SinkError::Retryable("rabbitmq nacked the message".into())),
                Decision::NotRequested => Err(SinkError::Retryable(
                    "rabbitmq channel is not in confirm mode".into(),
                )),
                Decision::Failed(cause) => Err(SinkError::Retryable(format!("rabbitmq confirm failed: {cause}").into())),
            }
        }))
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        if let Some(link) = &self.link {
            // A broken tracker cannot match returns any more: start afresh.
            if link.channel.status().connected() && !link.confirms.is_broken() {
                return Ok(());
            }
        }
        self.link = None;
        self.connect().await.map_err(|(_, cause)| {
            SinkError::Retryable(Problem::caused_by("rabbitmq reconnect failed", cause))
        })
    }

    async fn close(self) {
        if let Some(link) = self.link {
            // Best effort: every confirm was already awaited.
            let _ = link
                .channel
                .close(200, "openim-bridge shutting down".into())
                .await;
            let _ = link
                ._connection
                .close(200, "openim-bridge shutting down".into())
                .await;
        }
    }
}
