//! Kafka: Tansu behind a proxy that can partition the bridges from it.

use super::*;

pub struct Tansu {
    pub child: Child,
    /// Where Tansu listens.
    pub port: u16,
    /// The proxy, which Tansu advertises: every client goes through it.
    pub advertised: u16,
    pub log: PathBuf,
}

impl Tansu {
    pub async fn start(port: u16, advertised: u16, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = openim_bridge_test_kit::kafka::tansu(port, advertised)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("the soak runs its own Tansu: install it (scripts/chaos does)");
        assert!(
            wait_for_port(port, Duration::from_secs(30)).await,
            "tansu did not listen (log: {})",
            log.display()
        );
        Self {
            child,
            port,
            advertised,
            log,
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }
}

/// Forwards connections to Tansu. While `cut` is true, connections of
/// every client but the reader are closed and new ones refused.
pub async fn proxy(listener: TcpListener, upstream: u16, cut: watch::Receiver<bool>) {
    while let Ok((client, _)) = listener.accept().await {
        let cut = cut.clone();
        tokio::spawn(async move {
            let _ = forward(client, upstream, cut).await;
        });
    }
}

pub async fn forward(
    mut client: TcpStream,
    upstream: u16,
    mut cut: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A Kafka request starts: size i32, api_key i16, api_version i16,
    // correlation_id i32, client_id (i16 length + bytes).
    let mut head = vec![0u8; 14];
    client.read_exact(&mut head).await?;
    let id_len = i16::from_be_bytes([head[12], head[13]]).max(0) as usize;
    let mut id = vec![0u8; id_len];
    client.read_exact(&mut id).await?;
    let cuttable = !id.starts_with(READER.as_bytes());
    if cuttable && *cut.borrow() {
        return Ok(());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    server.write_all(&head).await?;
    server.write_all(&id).await?;
    if !cuttable {
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        return Ok(());
    }
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut server) => { result?; }
        _ = cut.wait_for(|cut| *cut) => {}
    }
    Ok(())
}

pub fn kafka_config(brokers: &str, client_id: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id);
    config
}

/// The Kafka reader's shared state.
#[derive(Default)]
pub struct Reader {
    pub stop: AtomicBool,
    /// While set, the reader holds no client: librdkafka 2.12 can crash
    /// when a topic comes back under a new topic ID while a client caches
    /// the old one (confluentinc/librdkafka#4964), so the reader lets go
    /// of its client while Tansu is replaced and reads the new topic from
    /// the start with a new client.
    pub paused: AtomicBool,
    /// Whether the reader currently holds a client.
    pub reading: AtomicBool,
    /// Next offset to read, per partition.
    pub next: Mutex<[i64; PARTITIONS as usize]>,
}

pub fn kafka_reader(
    brokers: String,
    topic: String,
    tally: Arc<Tally>,
    reader: Arc<Reader>,
) -> std::thread::JoinHandle<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    std::thread::spawn(move || {
        let mut consumer: Option<BaseConsumer> = None;
        while !reader.stop.load(Ordering::Relaxed) {
            if reader.paused.load(Ordering::SeqCst) {
                consumer = None;
                reader.reading.store(false, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let current = consumer.get_or_insert_with(|| {
                let consumer: BaseConsumer = kafka_config(&brokers, READER)
                    .set("group.id", format!("chaos-{}", std::process::id()))
                    .set("enable.auto.commit", "false")
                    // An offset out of range restarts from the first record
                    // (duplicates, counted), never from the end (a gap).
                    .set("auto.offset.reset", "earliest")
                    .set("fetch.wait.max.ms", "50")
                    .create()
                    .unwrap();
                let mut assignment = TopicPartitionList::new();
                for partition in 0..PARTITIONS {
                    let _ = assignment.add_partition_offset(&topic, partition, Offset::Beginning);
                }
                let _ = consumer.assign(&assignment);
                *reader.next.lock().unwrap() = [0; PARTITIONS as usize];
                reader.reading.store(true, Ordering::SeqCst);
                consumer
            });
            if let Some(Ok(message)) = current.poll(Duration::from_millis(100)) {
                if let Some(id) = event_id(message.payload().unwrap_or_default()) {
                    tally.saw(&id);
                }
                if let Some(next) = reader
                    .next
                    .lock()
                    .unwrap()
                    .get_mut(message.partition() as usize)
                {
                    *next = message.offset() + 1;
                }
            }
        }
    })
}

/// Waits until the reader has read up to the broker's high watermarks.
pub async fn reader_caught_up(
    brokers: &str,
    topic: &str,
    reader: &Reader,
    within: Duration,
) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        match kafka_config(brokers, &format!("{READER}-watermarks")).create() {
            Ok(consumer) => consumer,
            Err(_) => return false,
        };
    let consumer = Arc::new(consumer);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (consumer, topic) = (Arc::clone(&consumer), topic.to_owned());
        let highs = tokio::task::spawn_blocking(move || {
            (0..PARTITIONS)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(5))
                        .map(|(_, high)| high)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
        if let Ok(highs) = highs {
            let next = *reader.next.lock().unwrap();
            if highs.iter().zip(next).all(|(high, next)| next >= *high) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Creates the soak's topic (the reader's client id, so the proxy never
/// cuts it off).
pub async fn create_topic(brokers: &str, topic: &str) -> Result<(), String> {
    let client = [("client.id".to_owned(), format!("{READER}-admin"))];
    openim_bridge_test_kit::kafka::create_topic(brokers, &client, topic, PARTITIONS).await
}
