//! Starting the server under test and reading its counters.

use super::*;

pub fn new_histogram() -> Histogram<u64> {
    // 1 us to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

pub struct Bridge {
    pub child: Child,
    pub addr: SocketAddr,
    pub spool: tempfile::TempDir,
}

pub fn start_bridge(config: &Config, target: &Target, seen: &Arc<Mutex<Seen>>) -> Bridge {
    let spool = tempfile::tempdir().unwrap();
    let mut command = match config.server {
        Server::Bare => {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command.env(bare::ENV, "1");
            command
        }
        Server::Bridge => Command::new(BIN),
        Server::Baseline => Command::new(std::env::var_os("OPENIM_BRIDGE_BENCH_BASELINE").unwrap()),
    };
    if config.server == Server::Bare {
        command.env_remove("OPENIM_BRIDGE_TEST_KAFKA");
    } else {
        command.env_clear();
    }
    command
        .env("OPENIM_BRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("OPENIM_BRIDGE__SPOOL__DIR", spool.path())
        .env("OPENIM_BRIDGE__SPOOL__ACK", config.ack)
        .env("OPENIM_BRIDGE__LOG__LEVEL", "warn,openim_bridge::app=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match config.sink {
        Sink::Stdout => command.env("OPENIM_BRIDGE__SINK__KIND", "stdout"),
        Sink::Kafka => command
            .env("OPENIM_BRIDGE__SINK__KIND", "kafka")
            .env("OPENIM_BRIDGE__KAFKA__BROKERS", &target.kafka)
            .env("OPENIM_BRIDGE__KAFKA__TOPIC", &target.topic),
        Sink::RabbitMq => command
            .env("OPENIM_BRIDGE__SINK__KIND", "rabbitmq")
            .env("OPENIM_BRIDGE__RABBITMQ__URL", &target.amqp)
            .env("OPENIM_BRIDGE__RABBITMQ__EXCHANGE", &target.exchange),
    };
    command.envs(target.bridge_env.iter().map(|(k, v)| (k, v)));
    let mut child = command.spawn().expect("start openim-bridge");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("\n  bridge: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("bridge listening")
        .parse()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let seen = Arc::clone(seen);
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(parsed) = serde_json::from_str::<StdoutLine>(&line) {
                seen.lock()
                    .unwrap()
                    .record(parsed.data.event_id, parsed.data.received_at);
            }
        }
    });
    Bridge { child, addr, spool }
}

/// Where the brokers are, and this run's topic / exchange.
pub struct Target {
    pub kafka: String,
    pub amqp: String,
    pub topic: String,
    pub exchange: String,
    /// Extra bridge settings (TLS).
    pub bridge_env: Vec<(String, String)>,
    /// librdkafka properties the consumer needs (TLS).
    pub kafka_properties: Vec<(String, String)>,
    /// The URL the RabbitMQ consumer reads from.
    pub amqp_read: String,
}

/// The bridge's `openim_bridge_spool_syncs_total`, from `GET /metrics`.
pub async fn spool_syncs(addr: SocketAddr) -> u64 {
    let mut sender = support::connect(addr).await.expect("connect to the bridge");
    let request = hyper::Request::get("/metrics")
        .header("Host", "bridge")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let body = sender
        .send_request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("openim_bridge_spool_syncs_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_default()
}
