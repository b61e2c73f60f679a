//! openim-bridge: OpenIM webhook callbacks in, CloudEvents out to Kafka or
//! RabbitMQ.
//!
//! A callback travels one way through these stages:
//!
//! 1. [`ingress`]: hyper accepts `POST {prefix}/{callbackCommand}`
//!    ([`ingress::handler`] is where a callback goes).
//! 2. [`normalize`]: the OpenIM body becomes an [`normalize::Event`] with a
//!    stable id and a partition key; [`normalize::catalog`] lists every
//!    command. [`routing`] says whether it is published, and where.
//! 3. [`spool`]: the event is appended to a durable on-disk log, and OpenIM
//!    gets its "continue" ack as soon as it is synced; a full spool answers 503.
//! 4. [`sink`]: the [`sink::publisher`] reads the spool and sends events to the broker
//!    ([`sink::kafka`], [`sink::rabbitmq`] or [`sink::stdout`]) and retries
//!    what the broker did not confirm.
//!
//! Around them: [`settings`] (one settings tree; [`config`] holds what its
//! sections share), [`telemetry`] (logs),
//! [`stats`] (counters), [`shutdown`], [`broker`] (the configured sink,
//! from the settings alone), and [`app`], which wires it all.
//!
//! When events are stranded: [`replay`] publishes dead-lettered events and
//! refused callbacks again, and [`drain`] empties a retired replica's spool.

#![warn(missing_docs)]

pub mod app;
mod backoff;
pub mod broker;
pub mod config;
pub mod drain;
pub mod ingress;
pub mod normalize;
pub mod replay;
pub mod routing;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod stats;
pub mod telemetry;
mod traces;

pub use app::App;
pub use settings::{Settings, Validated};
