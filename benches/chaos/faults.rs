//! Faults.

use super::*;

/// The faults the soak injects, in the order of its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillKafkaA,
    PauseTansu,
    KillRabbitmqB,
    RestartRabbitmq,
    FillKafkaBDisk,
    PartitionKafka,
    PauseTansuKillKafkaB,
    KillBothKafka,
    FillRabbitmqADisk,
    RestartRabbitmqKillRabbitmqA,
    KafkaAOutOfFiles,
    FillRabbitmqBDiskOnce,
    RabbitmqAOutOfFiles,
    /// Not in the rotation (see `World::restart_tansu`): only by number.
    RestartTansuEmpty,
}

impl Fault {
    /// Every fault, numbered for `CHAOS_FAULTS` by its place here.
    pub const ALL: [Fault; 14] = [
        Fault::KillKafkaA,
        Fault::PauseTansu,
        Fault::KillRabbitmqB,
        Fault::RestartRabbitmq,
        Fault::FillKafkaBDisk,
        Fault::PartitionKafka,
        Fault::PauseTansuKillKafkaB,
        Fault::KillBothKafka,
        Fault::FillRabbitmqADisk,
        Fault::RestartRabbitmqKillRabbitmqA,
        Fault::KafkaAOutOfFiles,
        Fault::FillRabbitmqBDiskOnce,
        Fault::RabbitmqAOutOfFiles,
        Fault::RestartTansuEmpty,
    ];

    /// The default rotation: every fault but [`Fault::RestartTansuEmpty`].
    pub fn rotation() -> &'static [Fault] {
        &Self::ALL[..Self::ALL.len() - 1]
    }

    /// The fault numbered `n` in `CHAOS_FAULTS`.
    pub fn numbered(n: usize) -> Option<Fault> {
        Self::ALL.get(n).copied()
    }

    /// What the fault does, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::KillKafkaA => "kill -9 kafka-a, restart after 2 s",
            Fault::PauseTansu => "pause Tansu 8 s (SIGSTOP)",
            Fault::KillRabbitmqB => "kill -9 rabbitmq-b, restart after 2 s",
            Fault::RestartRabbitmq => "restart RabbitMQ (stop_app, 3 s, start_app)",
            Fault::FillKafkaBDisk => "fill kafka-b's spool disk for 6 s",
            Fault::PartitionKafka => "partition Kafka from the bridges for 8 s",
            Fault::PauseTansuKillKafkaB => "pause Tansu 10 s; kill -9 + restart kafka-b during it",
            Fault::KillBothKafka => "kill -9 kafka-a and kafka-b together, restart after 2 s",
            Fault::FillRabbitmqADisk => "fill rabbitmq-a's spool disk for 6 s",
            Fault::RestartRabbitmqKillRabbitmqA => {
                "restart RabbitMQ; kill -9 + restart rabbitmq-a during it"
            }
            Fault::KafkaAOutOfFiles => "kafka-a out of file descriptors for 6 s (prlimit)",
            Fault::FillRabbitmqBDiskOnce => "fill rabbitmq-b's spool disk once, broker healthy",
            Fault::RabbitmqAOutOfFiles => "rabbitmq-a out of file descriptors for 6 s (prlimit)",
            Fault::RestartTansuEmpty => "restart Tansu empty (kill -9; topic re-created)",
        }
    }
}

pub struct World {
    pub tansu: Tansu,
    pub cut: watch::Sender<bool>,
    pub topic: String,
    pub reader: Arc<Reader>,
    pub replicas: Vec<Replica>,
    pub started: Instant,
    pub log: Vec<(f64, f64, String)>,
    /// What the last fault measured, for its line in the log.
    pub note: Option<String>,
}

impl World {
    pub fn replica(&mut self, name: &str) -> &mut Replica {
        self.replicas
            .iter_mut()
            .find(|replica| replica.name == name)
            .unwrap()
    }

    pub async fn restart_replica(&mut self, name: &str) {
        let replica = self.replica(name);
        replica.kill_9();
        tokio::time::sleep(Duration::from_secs(2)).await;
        replica.start().await;
    }

    pub async fn pause_tansu(&mut self, seconds: u64, crash_during: Option<&str>) {
        signal(self.tansu.child.id(), "STOP");
        tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
        if let Some(name) = crash_during {
            self.restart_replica(name).await;
        }
        tokio::time::sleep(Duration::from_secs(seconds - seconds / 2)).await;
        signal(self.tansu.child.id(), "CONT");
    }

    pub async fn partition_kafka(&mut self, seconds: u64) {
        self.cut.send_replace(true);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        self.cut.send_replace(false);
    }

    /// Kills Tansu and starts it again empty. The bridges are cut off
    /// first and the reader catches up, so only what the bridges send
    /// after the restart is looked for in the new broker.
    ///
    /// Only with `CHAOS_FAULTS=13`: an in-memory Tansu also forgets the
    /// producer IDs it handed out and hands them out again, so after a
    /// restart two bridges can produce under one producer ID and the
    /// broker drops records as idempotent duplicates while acking them
    /// (measured: thousands missing after 5 restarts, with the bridges'
    /// logs showing `UnknownProducerId` and reused `PID{Id:1}`; with
    /// `CHAOS_ONE_PRODUCER=1`, all Kafka load on one replica, the same 5
    /// restarts lose nothing). A real broker keeps producer state in its
    /// log; use this fault with a persistent one.
    pub async fn restart_tansu(&mut self) -> Result<(), String> {
        self.cut.send_replace(true);
        // Let requests already inside Tansu finish.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let brokers = self.tansu.brokers();
        if !reader_caught_up(&brokers, &self.topic, &self.reader, Duration::from_secs(60)).await {
            self.cut.send_replace(false);
            return Err("the reader did not catch up; Tansu not restarted".into());
        }
        self.reader.paused.store(true, Ordering::SeqCst);
        while self.reader.reading.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.tansu.child.kill();
        let _ = self.tansu.child.wait();
        let (port, advertised, log) = (
            self.tansu.port,
            self.tansu.advertised,
            self.tansu.log.clone(),
        );
        self.tansu = Tansu::start(port, advertised, log).await;
        let mut created = create_topic(&brokers, &self.topic).await;
        for _ in 0..10 {
            if created.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            created = create_topic(&brokers, &self.topic).await;
        }
        self.reader.paused.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.cut.send_replace(false);
        created.map_err(|err| format!("re-creating the topic: {err}"))
    }

    pub async fn restart_rabbitmq(&mut self, crash_during: Option<&str>) -> Result<(), String> {
        if !rabbitmqctl("stop_app").await {
            return Err("rabbitmqctl stop_app failed".into());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(name) = crash_during {
            self.restart_replica(name).await;
        }
        if !rabbitmqctl("start_app").await {
            return Err("rabbitmqctl start_app failed".into());
        }
        Ok(())
    }

    pub async fn fill_disk(&mut self, name: &str, seconds: u64) -> Result<(), String> {
        let replica = self.replica(name);
        if !replica.disk.mounted {
            return Err("skipped: no tmpfs (mount needs root)".into());
        }
        // Keep it full: the bridge frees space by deleting confirmed
        // segments, and another process takes it again.
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            replica.disk.fill();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica.disk.free();
        Ok(())
    }

    /// Fills `name`'s spool disk once and leaves the filler there: with a
    /// healthy broker the bridge must answer again by itself, within 10 s,
    /// by deleting segments the broker confirmed.
    pub async fn fill_disk_once(&mut self, name: &str) -> Result<(), String> {
        let replica = self.replica(name);
        if !replica.disk.mounted {
            return Err("skipped: no tmpfs (mount needs root)".into());
        }
        let port = replica.port;
        let before = replica_metric(port, "outcome=\"unavailable\"").await;
        replica.disk.fill();
        let filled = Instant::now();
        let result = loop {
            if filled.elapsed() > Duration::from_secs(10) {
                break Err("NOT RECOVERED within 10 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Recovered: refusals happened and stopped, acks go on.
            let refused = replica_metric(port, "outcome=\"unavailable\"").await;
            if refused > before {
                let acked = replica_metric(port, "outcome=\"acked\"").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let still_refusing = replica_metric(port, "outcome=\"unavailable\"").await;
                if still_refusing == refused
                    && replica_metric(port, "outcome=\"acked\"").await > acked
                {
                    break Ok(format!(
                        "recovered by itself after {} ms ({} refused)",
                        filled.elapsed().as_millis(),
                        refused - before
                    ));
                }
            } else if filled.elapsed() > Duration::from_secs(5) {
                break Ok("the disk never filled up for it (no refusals)".to_owned());
            }
        };
        self.replica(name).disk.free();
        result.map(|note| self.note = Some(note))
    }

    /// Lowers `name`'s open-files limit to what it has open for `seconds`:
    /// every new socket, segment and read of the spool fails with EMFILE.
    pub async fn exhaust_files(&mut self, name: &str, seconds: u64) -> Result<(), String> {
        let replica = self.replica(name);
        let Some(pid) = replica.child.as_ref().map(Child::id) else {
            return Err("not running".into());
        };
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| dir.count())
            .map_err(|err| err.to_string())?;
        let limit = |value: &str| {
            Command::new("prlimit")
                .args(["--pid", &pid.to_string(), &format!("--nofile={value}")])
                .status()
                .is_ok_and(|status| status.success())
        };
        let original = Command::new("prlimit")
            .args([
                "--pid",
                &pid.to_string(),
                "--nofile",
                "--raw",
                "--noheadings",
                "-o",
                "SOFT,HARD",
            ])
            .output()
            .map_err(|err| format!("prlimit: {err}"))?;
        let original = String::from_utf8_lossy(&original.stdout);
        let original: Vec<&str> = original.split_whitespace().collect();
        let [soft, hard] = original[..] else {
            return Err(format!("prlimit printed {original:?}"));
        };
        if !limit(&format!("{open}:{hard}")) {
            return Err("prlimit failed (needs util-linux and root)".into());
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        limit(&format!("{soft}:{hard}"));
        Ok(())
    }

    pub async fn inject(&mut self, fault: Fault) {
        let at = self.started.elapsed().as_secs_f64();
        let result = match fault {
            Fault::KillKafkaA => {
                self.restart_replica("kafka-a").await;
                Ok(())
            }
            Fault::PauseTansu => {
                self.pause_tansu(8, None).await;
                Ok(())
            }
            Fault::KillRabbitmqB => {
                self.restart_replica("rabbitmq-b").await;
                Ok(())
            }
            Fault::RestartRabbitmq => self.restart_rabbitmq(None).await,
            Fault::FillKafkaBDisk => self.fill_disk("kafka-b", 6).await,
            Fault::PartitionKafka => {
                self.partition_kafka(8).await;
                Ok(())
            }
            Fault::PauseTansuKillKafkaB => {
                self.pause_tansu(10, Some("kafka-b")).await;
                Ok(())
            }
            Fault::KillBothKafka => {
                self.replica("kafka-a").kill_9();
                self.restart_replica("kafka-b").await;
                self.replica("kafka-a").start().await;
                Ok(())
            }
            Fault::FillRabbitmqADisk => self.fill_disk("rabbitmq-a", 6).await,
            Fault::RestartRabbitmqKillRabbitmqA => self.restart_rabbitmq(Some("rabbitmq-a")).await,
            Fault::KafkaAOutOfFiles => self.exhaust_files("kafka-a", 6).await,
            Fault::FillRabbitmqBDiskOnce => self.fill_disk_once("rabbitmq-b").await,
            Fault::RabbitmqAOutOfFiles => self.exhaust_files("rabbitmq-a", 6).await,
            Fault::RestartTansuEmpty => self.restart_tansu().await,
        };
        let name = fault.describe();
        let until = self.started.elapsed().as_secs_f64();
        let name = match (result, self.note.take()) {
            (Ok(()), None) => name.to_owned(),
            (Ok(()), Some(note)) => format!("{name}: {note}"),
            (Err(problem), _) => format!("{name}: {problem}"),
        };
        eprintln!("  [{at:6.1}-{until:6.1} s] {name}");
        self.log.push((at, until, name));
    }
}

pub const GAP: Duration = Duration::from_secs(4);
