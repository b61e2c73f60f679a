//! Shared by the benchmark binaries (`mod support;` in each).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One HTTP/1.1 keep-alive client connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection to `addr` (Nagle off, as Go's
/// client does), or `None` when it cannot be opened.
pub async fn connect(addr: SocketAddr) -> Option<Sender> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// Every `data.event_id` in `topic` (partitions `0..partitions`), read with
/// a fresh consumer from the first offset until all of `wanted` were seen
/// or `within` passed.
// Not every benchmark binary reads Kafka back.
#[allow(dead_code)]
pub fn kafka_read_back(
    brokers: &str,
    topic: &str,
    partitions: i32,
    wanted: &std::collections::HashSet<String>,
    within: std::time::Duration,
) -> std::collections::HashSet<String> {
    kafka_read_back_counted(brokers, topic, partitions, wanted, within)
        .into_keys()
        .collect()
}

/// [`kafka_read_back`], with how many times each id was read (more than
/// once: published twice).
#[allow(dead_code)]
pub fn kafka_read_back_counted(
    brokers: &str,
    topic: &str,
    partitions: i32,
    wanted: &std::collections::HashSet<String>,
    within: std::time::Duration,
) -> std::collections::HashMap<String, usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let mut seen = std::collections::HashMap::new();
    let created: Result<BaseConsumer, _> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("read-back-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create();
    let Ok(consumer) = created else {
        return seen;
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        let _ = assignment.add_partition_offset(topic, partition, rdkafka::Offset::Beginning);
    }
    if consumer.assign(&assignment).is_err() {
        return seen;
    }
    let deadline = std::time::Instant::now() + within;
    let mut idle_polls = 0;
    while std::time::Instant::now() < deadline {
        let all_seen = wanted.iter().all(|id| seen.contains_key(id));
        match consumer.poll(std::time::Duration::from_millis(200)) {
            Some(Ok(message)) => {
                idle_polls = 0;
                let data: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap_or_default())
                        .unwrap_or_default();
                if let Some(id) = data["event_id"].as_str() {
                    *seen.entry(id.to_owned()).or_default() += 1;
                }
            }
            // Once every wanted id is in, read on until the topic is
            // quiet (a second without a message), to count duplicates.
            _ if all_seen => {
                idle_polls += 1;
                if idle_polls >= 5 {
                    break;
                }
            }
            _ => {}
        }
    }
    seen
}

/// OpenIM's "continue" ack, byte for byte.
#[allow(dead_code)]
pub const ACK: &[u8] = br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

/// What became of one callback, as OpenIM sees it.
#[allow(dead_code)]
pub enum Outcome {
    /// The exact ack.
    Acked,
    /// Any other reply, by HTTP status.
    Refused(u16),
    /// No reply: refused or reset connection, or `within` passed; why.
    NoReply(String),
}

/// POSTs a group-message callback `body` the way OpenIM does, and waits at
/// most `within` for the reply. Like Go's client, a connection whose reply
/// said `Connection: close` is not used again: `sender` becomes `None`.
// Not every benchmark binary posts one callback at a time.
#[allow(dead_code)]
pub async fn post(
    connection: &mut Option<Sender>,
    body: String,
    within: std::time::Duration,
) -> Outcome {
    let Some(sender) = connection.as_mut() else {
        return Outcome::NoReply("not connected".to_owned());
    };
    let request = hyper::Request::post("/openim/callbackAfterSendGroupMsgCommand")
        .header("Host", "bridge")
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Operationid", "1719800000123456789")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let close = response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body, close))
    };
    let outcome = match tokio::time::timeout(within, exchange).await {
        Ok(Ok((status, body, close))) => {
            if close {
                *connection = None;
            }
            if status == 200 && body.as_ref() == ACK {
                Outcome::Acked
            } else {
                Outcome::Refused(status)
            }
        }
        Ok(Err(err)) => Outcome::NoReply(err.to_string()),
        Err(_) => Outcome::NoReply(format!("no reply within {within:?}")),
    };
    if matches!(outcome, Outcome::NoReply(_)) {
        *connection = None;
    }
    outcome
}

/// Starts the `openim-bridge` binary at `bin` on 127.0.0.1:`port` with its
/// spool in `spool`, the extra `env`, and its log appended to `log`.
// Not every benchmark binary runs replicas.
#[allow(dead_code)]
pub fn spawn_bridge(
    bin: &str,
    port: u16,
    spool: &std::path::Path,
    env: &[(&'static str, String)],
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the replica's log");
    openim_bridge_test_kit::bridge::command(bin, &format!("127.0.0.1:{port}"), spool)
        .env("OPENIM_BRIDGE__LOG__LEVEL", "info")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start openim-bridge")
}

/// Replies counted by HTTP status, as `3 x 503, 1 x 400` (or `0`).
// Not every benchmark binary counts refusals.
#[allow(dead_code)]
pub fn counts(by_status: &std::collections::BTreeMap<u16, u64>) -> String {
    if by_status.is_empty() {
        return "0".to_owned();
    }
    by_status
        .iter()
        .map(|(status, n)| format!("{n} x {status}"))
        .collect::<Vec<_>>()
        .join(", ")
}
