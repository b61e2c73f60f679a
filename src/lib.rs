//! openim-bridge: OpenIM webhook callbacks in, CloudEvents out to Kafka or
//! RabbitMQ.
//!
//! A callback travels one way through these stages (private modules; the
//! design docs are in each one's `mod.rs`):
//!
//! 1. `ingress`: hyper accepts `POST {prefix}/{callbackCommand}`
//!    (`ingress::handler` is where a callback goes).
//! 2. [`normalize`]: the OpenIM body becomes a [`normalize::Event`] with a
//!    stable id and a partition key; [`normalize::catalog`] lists every
//!    command. `routing` says whether it is published, and where.
//! 3. `spool`: the event is appended to a durable on-disk log, and OpenIM
//!    gets its "continue" ack as soon as it is synced; a full spool answers 503.
//! 4. `sink`: the publisher reads the spool and sends events to the broker
//!    (Kafka, RabbitMQ or stdout), retries what the broker did not confirm
//!    and writes what it refused for good to the dead-letter file.
//!
//! Around them: [`settings`] (one settings tree), [`telemetry`] (logs),
//! [`stats`] (counters and the broker's state), [`shutdown`], `broker` (the
//! configured sink, from the settings alone), and [`App`], which wires it
//! all. When events are stranded: [`replay`] publishes dead-lettered events
//! and refused callbacks again, and [`drain`] empties a retired replica's
//! spool.
//!
//! # Embedding
//!
//! The public API is what the `openim-bridge` binary itself uses, and what
//! an embedder needs to run the bridge in its own process:
//!
//! * [`Settings`] (load or build them, then [`Settings::validate`]) and the
//!   [`Validated`] settings [`App::start`] takes; the section types are in
//!   [`settings`];
//! * [`App`]: start it on a bound listener, [`App::run`] it until a
//!   shutdown future resolves ([`shutdown::graceful`] for the signals);
//!   [`App::stats`] reads what it did ([`stats::Stats`]);
//! * [`StartError`] and the errors it holds;
//! * the published event: [`normalize::Event`], [`normalize::CallbackKind`],
//!   [`normalize::callback`] and the [`normalize::catalog`] of commands;
//! * the commands: [`replay::run`] and [`drain::run`];
//! * [`telemetry::init`], the binary's log subscriber.
//!
//! Everything else is private; its tests live beside it.

#![warn(missing_docs)]

mod app;
mod backoff;
mod broker;
mod config;
pub mod drain;
mod ingress;
pub mod normalize;
pub mod replay;
mod routing;
pub mod settings;
pub mod shutdown;
mod sink;
mod spool;
pub mod stats;
pub mod telemetry;
mod traces;

pub use app::{App, StartError};
pub use broker::SinkStartError;
pub use settings::{Settings, Validated};
pub use sink::kafka::KafkaStartError;
pub use sink::rabbitmq::RabbitMqStartError;
pub use spool::OpenError;

/// The spool's record codec, for the fuzz targets only: `cargo fuzz`
/// builds with `--cfg fuzzing`, and no other build has this module.
#[cfg(fuzzing)]
pub mod spool_record {
    pub use crate::spool::record::{decode, encode, frame, Frame};
}
