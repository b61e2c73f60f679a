//! One configuration measured: the load phases, the outage, the read-back.

use super::*;

/// What one configuration measured.
pub struct Measured {
    pub name: String,
    /// The bare ack server (no spool, no broker).
    pub bare: bool,
    pub max: Phase,
    pub fixed: Phase,
    /// `SENDERS` connections, closed loop.
    pub openim: Phase,
    pub lag: Option<Histogram<u64>>,
    pub lag_in_bridge: Option<Histogram<u64>>,
    /// RSS (MiB) at the start, at the end and at most during a broker outage.
    pub outage: Option<(f64, f64, f64)>,
    /// fdatasync calls per second during the maximum phase.
    pub syncs_per_second: f64,
    pub missing: usize,
    pub duplicates: u64,
    pub peak_rss: f64,
    pub steady_rss: f64,
    /// CPU microseconds per ack during the maximum phase.
    pub cpu_us: f64,
    /// CPU microseconds per ack at the fixed rate (the same work per
    /// second for every configuration).
    pub fixed_cpu_us: f64,
    /// The broker's CPU microseconds per ack (max phase), where known.
    pub broker_cpu_us: Option<f64>,
    /// The load generator's (this process, consumers included).
    pub generator_cpu_us: f64,
    /// Context switches per thread during the maximum phase.
    pub switches: Switches,
    /// System calls during the maximum phase (perf stat).
    pub syscalls: Option<u64>,
    /// Spans the collector received, when tracing was on.
    pub spans: Option<u64>,
}

pub async fn run_config(
    config: &Config,
    index: usize,
    of: usize,
    brokers: &(String, String),
) -> Measured {
    let run = format!("b{}-{index}", std::process::id());
    let mut target = Target {
        kafka: brokers.0.clone(),
        amqp: brokers.1.clone(),
        topic: format!("bench-{run}"),
        exchange: format!("bench-{run}"),
        bridge_env: Vec::new(),
        kafka_properties: Vec::new(),
        amqp_read: brokers.1.clone(),
    };
    let front = match (config.sink, config.transport) {
        (Sink::Kafka, Transport::Plain | Transport::Tls) => {
            let tls = (config.transport == Transport::Tls)
                .then_some(common::kafka_front::FrontTls::Server);
            let front = common::kafka_front::KafkaFront::start(common::kafka_front::FrontOptions {
                tls,
                sasl: None,
            })
            .await;
            target.kafka = front.bootstrap();
            target.kafka_properties = front.client_properties();
            if tls.is_some() {
                target.bridge_env = vec![
                    (
                        "OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL".into(),
                        "ssl".into(),
                    ),
                    (
                        "OPENIM_BRIDGE__KAFKA__SSL_CA_FILE".into(),
                        front.ca_file().to_string_lossy().into_owned(),
                    ),
                ];
            }
            Some(front)
        }
        (Sink::RabbitMq, Transport::Plain | Transport::Tls) => {
            let node = common::rabbitmq::Amqps::from_env();
            target.amqp_read = node.plain_url.clone();
            if config.transport == Transport::Tls {
                target.amqp = node.url.clone();
                target.bridge_env = vec![(
                    "OPENIM_BRIDGE__RABBITMQ__TLS_CA_FILE".into(),
                    node.ca.to_string_lossy().into_owned(),
                )];
            } else {
                target.amqp = node.plain_url.clone();
            }
            None
        }
        _ => None,
    };
    // A collector in this process, counting what arrives.
    let collector = match config.traced {
        Some(percent) => {
            let receiver = openim_bridge_test_kit::otlp::Receiver::start_counting().await;
            target.bridge_env.extend([
                (
                    "OPENIM_BRIDGE__TRACING__ENDPOINT".into(),
                    receiver.grpc_url(),
                ),
                ("OPENIM_BRIDGE__TRACING__PROTOCOL".into(), "grpc".into()),
                (
                    "OPENIM_BRIDGE__TRACING__SAMPLING_RATIO".into(),
                    format!("{}", f64::from(percent) / 100.0),
                ),
            ]);
            Some(receiver)
        }
        None => None,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumer_thread = None;
    let mut amqp = None;
    match config.sink {
        Sink::Kafka => {
            match &front {
                Some(front) => front.create_topic(&target.topic, 3).await,
                None => openim_bridge_test_kit::kafka::create_topic(
                    &target.kafka,
                    &[],
                    &target.topic,
                    3,
                )
                .await
                .expect("create the topic"),
            }
            consumer_thread = Some(kafka_consumer(
                &target,
                Arc::clone(&seen),
                Arc::clone(&stop),
            ));
        }
        Sink::RabbitMq => amqp = Some(rabbitmq_consumer(&target, Arc::clone(&seen)).await),
        Sink::Stdout => {}
    }
    let mut bridge = start_bridge(config, &target, &seen);
    let pid = bridge.child.id();
    let label = format!("[{}/{of}] {}", index + 1, config.name);
    let bare = config.server == Server::Bare;
    // What the consumer has seen of `acked`; nothing to look for behind
    // the bare server.
    let wait = |acked: Vec<String>| {
        let seen = Arc::clone(&seen);
        async move {
            if bare {
                0
            } else {
                wait_for(&seen, &acked).await
            }
        }
    };
    // The fixed rate first, on an idle bridge and broker, so its latency and
    // lag are not those of a backlog left by the maximum phase.
    let fixed_cpu_before = cpu_seconds(pid);
    let fixed = drive(
        bridge.addr,
        &format!("{run}-fixed"),
        Load {
            connections: CONNECTIONS,
            rate: Some(RATE),
        },
        &format!("{label} {RATE}/s"),
    )
    .await;
    let fixed_cpu_us =
        (cpu_seconds(pid) - fixed_cpu_before) * 1e6 / fixed.acked.len().max(1) as f64;
    let (_, steady_rss) = memory_mib(pid);
    let mut missing = wait(fixed.acked.clone()).await;
    let openim = drive(
        bridge.addr,
        &format!("{run}-openim"),
        Load {
            connections: SENDERS,
            rate: None,
        },
        &format!("{label} {SENDERS} senders"),
    )
    .await;
    missing += wait(openim.acked.clone()).await;
    let syncs_before = spool_syncs(bridge.addr).await;
    let syscalls = SyscallCount::start(pid);
    let switches_before = Switches::read(pid);
    // The broker's CPU where it is a process of ours (the Tansu that
    // scripts/bench started), and the load generator's (this process).
    let broker_pid = match (config.sink, config.transport) {
        (Sink::Kafka, Transport::Direct) => std::env::var("OPENIM_BRIDGE_TANSU_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok()),
        _ => None,
    };
    let broker_before = broker_pid.map(cpu_seconds);
    let generator_before = cpu_seconds(std::process::id());
    let cpu_before = cpu_seconds(pid);
    let max = drive(
        bridge.addr,
        &format!("{run}-max"),
        Load {
            connections: CONNECTIONS,
            rate: None,
        },
        &format!("{label} max"),
    )
    .await;
    let per_ack = |seconds: f64| seconds * 1e6 / max.acked.len().max(1) as f64;
    let cpu_us = per_ack(cpu_seconds(pid) - cpu_before);
    let generator_cpu_us = per_ack(cpu_seconds(std::process::id()) - generator_before);
    let broker_cpu_us = broker_pid
        .zip(broker_before)
        .map(|(broker, before)| per_ack(cpu_seconds(broker) - before));
    let switches = Switches::read(pid).since(&switches_before);
    let syscalls = syscalls.stop();
    let syncs_per_second = (spool_syncs(bridge.addr).await - syncs_before) as f64 / max.seconds;
    missing += wait(max.acked.clone()).await;
    let outage = match (config.sink, std::env::var("OPENIM_BRIDGE_TANSU_PID")) {
        (Sink::Kafka, Ok(tansu))
            if config.ack == "durable"
                && config.transport == Transport::Direct
                && config.server == Server::Bridge =>
        {
            let (acked, rss) = outage(bridge.addr, pid, &tansu, &run, &label).await;
            missing += wait_for(&seen, &acked).await;
            Some(rss)
        }
        _ => None,
    };
    let (peak_rss, _) = memory_mib(pid);
    openim_bridge_test_kit::signal(pid, "TERM");
    let _ = bridge.child.wait();
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = consumer_thread {
        let _ = thread.join();
    }
    if let Some(connection) = amqp {
        let channel = connection.create_channel().await.unwrap();
        let _ = channel
            .exchange_delete(target.exchange.as_str().into(), Default::default())
            .await;
        let _ = connection.close(200, "bench done".into()).await;
    }
    drop(bridge.spool);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let duplicates = seen
        .counts
        .values()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    eprintln!("\r  {label}: done{:40}", "");
    Measured {
        name: config.name.clone(),
        bare,
        max,
        fixed,
        openim,
        lag: seen.lag_fixed,
        lag_in_bridge: seen.lag_in_bridge,
        outage,
        syncs_per_second,
        missing,
        duplicates,
        peak_rss,
        steady_rss,
        cpu_us,
        fixed_cpu_us,
        broker_cpu_us,
        generator_cpu_us,
        switches,
        syscalls,
        spans: collector.map(|collector| collector.count()),
    }
}

/// Pauses the Kafka broker (SIGSTOP) while callbacks keep coming at `RATE`,
/// sampling the bridge's RSS; resumes it. Returns the acked ids and the RSS
/// (start, end, max) in MiB.
pub async fn outage(
    addr: SocketAddr,
    pid: u32,
    tansu: &str,
    run: &str,
    label: &str,
) -> (Vec<String>, (f64, f64, f64)) {
    let signal = |name: &str| {
        let _ = Command::new("kill").args([name, tansu]).status();
    };
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            loop {
                samples.lock().unwrap().push(memory_mib(pid).1);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    signal("-STOP");
    let phase = drive(
        addr,
        &format!("{run}-outage"),
        Load {
            connections: CONNECTIONS,
            rate: Some(RATE),
        },
        &format!("{label} broker paused"),
    )
    .await;
    signal("-CONT");
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let first = samples.first().copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let max = samples.iter().copied().fold(0.0, f64::max);
    assert_eq!(phase.refused, 0, "callbacks refused during the outage");
    (phase.acked, (first, last, max))
}

/// Waits (at most 90 s) until the consumer has seen every id in `acked`;
/// returns how many it has not.
pub async fn wait_for(seen: &Mutex<Seen>, acked: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing = {
            let seen = seen.lock().unwrap();
            acked
                .iter()
                .filter(|id| !seen.counts.contains_key(id.as_str()))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
