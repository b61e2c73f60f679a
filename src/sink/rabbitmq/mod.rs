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

mod confirms;

use std::sync::Arc;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use time::OffsetDateTime;
use tracing::{info, warn};

use self::confirms::{Confirms, Decision, Resolution};
use super::{Delivery, Sink, SinkError};
use crate::config::{ExchangeType, RabbitMqSettings};
use crate::normalize::event::{Event, DATA_CONTENT_TYPE};
use crate::routing::Routes;

/// A RabbitMQ sink could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "rabbitmq at {url}: {cause} (check rabbitmq.url, rabbitmq.exchange and rabbitmq.exchange_type)"
)]
pub struct RabbitMqStartError {
    url: String,
    cause: lapin::Error,
}

/// Publishes events to the exchange their route names.
pub struct RabbitMqSink {
    settings: RabbitMqSettings,
    routes: Arc<Routes>,
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
    /// Connects and declares the exchange. A broker that cannot be reached is
    /// not an error (events wait in the queue and the publisher reconnects);
    /// one that refuses us (credentials, an exchange of another type) is.
    pub async fn start(
        settings: &RabbitMqSettings,
        routes: Arc<Routes>,
    ) -> Result<Self, RabbitMqStartError> {
        let mut sink = Self {
            settings: settings.clone(),
            routes,
            link: None,
        };
        match connect(settings, &sink.routes.rabbitmq_exchanges()).await {
            Ok(link) => sink.link = Some(link),
            Err(cause) if matches!(cause.kind(), ErrorKind::ProtocolError(_)) => {
                return Err(RabbitMqStartError {
                    url: redact(&settings.url),
                    cause,
                })
            }
            Err(cause) => {
                warn!(url = %redact(&settings.url), %cause, "rabbitmq is not reachable yet; events are queued until it is")
            }
        }
        Ok(sink)
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

/// Connects, and declares every exchange the routes use.
async fn connect(
    settings: &RabbitMqSettings,
    exchanges: &[Arc<str>],
) -> Result<Link, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name("openim-bridge".into());
    let connection = Connection::connect(&settings.url, properties).await?;
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
        info!(url = %redact(&settings.url), %exchange, "rabbitmq connected, exchange declared");
    }
    Ok(Link {
        _connection: connection,
        channel,
        confirms: Confirms::default(),
    })
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

fn properties(event: &Event) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in event.attributes() {
        headers.insert(
            ShortString::from(format!("ce-{name}")),
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

    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        let Some(link) = &self.link else {
            return Err(SinkError::Retryable("not connected to rabbitmq".to_owned()));
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
            .map_err(|err| SinkError::Retryable(format!("rabbitmq publish failed: {err}")))?;
        let tracked = publishing.arm(
            event.id.clone(),
            Box::pin(async move { Resolution::from(confirm.await) }),
        );
        Ok(Box::pin(async move {
            match tracked.await {
                Decision::Delivered => Ok(()),
                Decision::Unroutable(returned) => Err(SinkError::Rejected(format!(
                    "rabbitmq returned the message as unroutable ({} {}): no queue is bound to exchange `{exchange}` for routing key `{}`",
                    returned.reply_code, returned.reply_text, returned.routing_key
                ))),
                Decision::Nacked => Err(SinkError::Retryable("rabbitmq nacked the message".to_owned())),
                Decision::NotRequested => Err(SinkError::Retryable(
                    "rabbitmq channel is not in confirm mode".to_owned(),
                )),
                Decision::Failed(cause) => Err(SinkError::Retryable(format!("rabbitmq confirm failed: {cause}"))),
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
        let link = connect(&self.settings, &self.routes.rabbitmq_exchanges())
            .await
            .map_err(|err| SinkError::Retryable(format!("rabbitmq reconnect failed: {err}")))?;
        self.link = Some(link);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
    }
}
