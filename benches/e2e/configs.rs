//! Which configurations the benchmark runs: server, sink, ack mode, transport.

#[derive(Clone, Copy, PartialEq)]
pub enum Sink {
    Stdout,
    Kafka,
    RabbitMq,
}

/// How the bridge reaches the broker.
#[derive(Clone, Copy, PartialEq)]
pub enum Transport {
    /// The brokers scripts/bench started (or named), plaintext.
    Direct,
    /// Kafka: a plain relay in front of a Tansu of its own; RabbitMQ: the
    /// TLS node's plain listener. The baseline of `Tls`.
    Plain,
    /// Kafka: the same relay terminating TLS; RabbitMQ: the TLS node's
    /// amqps:// listener.
    Tls,
}

/// Which server a configuration runs.
#[derive(Clone, Copy, PartialEq)]
pub enum Server {
    /// The bare ack server (the ceiling).
    Bare,
    /// This build's bridge.
    Bridge,
    /// The build named by `OPENIM_BRIDGE_BENCH_BASELINE`.
    Baseline,
}

pub struct Config {
    pub name: String,
    pub server: Server,
    pub sink: Sink,
    pub ack: &'static str,
    pub transport: Transport,
    /// Traces exported over OTLP/gRPC to a receiver in the benchmark's
    /// process, sampling this percentage of callbacks; `None`: tracing off.
    pub traced: Option<u32>,
}

impl Config {
    pub fn new(server: Server, sink: Sink, ack: &'static str, transport: Transport) -> Self {
        let sink_name = match sink {
            Sink::Stdout => "stdout",
            Sink::Kafka => "kafka",
            Sink::RabbitMq => "rabbitmq",
        };
        let name = match (server, sink, transport) {
            (Server::Bare, _, _) => "bare".to_owned(),
            (_, _, Transport::Direct) => format!("{sink_name} {ack}"),
            (_, Sink::Kafka, Transport::Plain) => format!("kafka {ack}, relay plain"),
            (_, Sink::Kafka, _) => format!("kafka {ack}, relay TLS"),
            (_, _, Transport::Plain) => format!("rabbitmq {ack}, amqp (TLS node)"),
            (_, _, Transport::Tls) => format!("rabbitmq {ack}, amqps (TLS node)"),
        };
        let name = match server {
            Server::Baseline => format!("baseline: {name}"),
            _ => name,
        };
        Self {
            name,
            server,
            sink,
            ack,
            transport,
            traced: None,
        }
    }

    /// The same, tracing `percent` of the callbacks.
    pub fn traced(self, percent: u32) -> Self {
        Self {
            name: format!("{}, traced {percent}%", self.name),
            traced: Some(percent),
            ..self
        }
    }
}

/// The configurations, in the order run: the bare server, every sink in
/// every ack mode, the TLS pairs, then the baseline build's rows if asked.
pub fn configs() -> Vec<Config> {
    use Transport::{Direct, Plain, Tls};
    let mut configs = vec![Config::new(Server::Bare, Sink::Stdout, "", Direct)];
    for sink in [Sink::Stdout, Sink::Kafka, Sink::RabbitMq] {
        for ack in ["memory", "written", "durable"] {
            configs.push(Config::new(Server::Bridge, sink, ack, Direct));
        }
    }
    // The cost of tracing, beside "stdout durable" and "kafka durable" (off).
    for sink in [Sink::Stdout, Sink::Kafka] {
        for percent in [10, 100] {
            configs.push(Config::new(Server::Bridge, sink, "durable", Direct).traced(percent));
        }
    }
    for sink in [Sink::Kafka, Sink::RabbitMq] {
        for transport in [Plain, Tls] {
            configs.push(Config::new(Server::Bridge, sink, "durable", transport));
        }
    }
    if std::env::var_os("OPENIM_BRIDGE_BENCH_BASELINE").is_some() {
        for (sink, ack) in [
            (Sink::Stdout, "memory"),
            (Sink::Stdout, "written"),
            (Sink::Stdout, "durable"),
            (Sink::Kafka, "durable"),
        ] {
            configs.push(Config::new(Server::Baseline, sink, ack, Direct));
        }
    }
    configs
}
