//! Kafka topics for a test or a benchmark run (Tansu does not create them
//! on first use).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A client configuration for `brokers` with extra `properties`
/// (security settings, a client id).
pub fn client_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// Creates `topic` with `partitions` partitions (replication 1) on
/// `brokers`, with extra client `properties` (security settings); the
/// error says which topic and why.
pub async fn create_topic(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, properties)
        .create()
        .map_err(|err| format!("admin client for {brokers}: {err}"))?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|err| format!("creating topic {topic}: {err}"))?;
    for result in results {
        result.map_err(|(name, code)| format!("creating topic {name}: {code:?}"))?;
    }
    Ok(())
}

/// The Tansu binary: `OPENIM_BRIDGE_TANSU`, else `tansu` on `PATH`, else
/// `~/.cargo/bin/tansu`; `None` when there is none.
pub fn tansu_binary() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(path) = std::env::var_os("OPENIM_BRIDGE_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("tansu"));
    let in_cargo =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"));
    on_path.chain(in_cargo).find(|path| path.is_file())
}

/// A command running Tansu with in-memory storage on 127.0.0.1:`port`,
/// telling clients to connect to 127.0.0.1:`advertised` (the same port,
/// or a proxy's in front of it). Memory storage forgets everything when
/// Tansu stops: pause it (SIGSTOP, SIGCONT) to simulate an outage.
pub fn tansu(port: u16, advertised: u16) -> std::process::Command {
    let binary = tansu_binary().unwrap_or_else(|| "tansu".into());
    let mut command = std::process::Command::new(binary);
    command
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(std::process::Stdio::null());
    command
}
