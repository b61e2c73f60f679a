//! No event stranded: `openim-bridge replay` publishes dead-lettered events
//! and refused callbacks again (once, resumably), and `openim-bridge drain`
//! empties a retired replica's spool; with the real binary and real brokers.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::kafka::{create_topic, read_until, OwnTansu};
use common::process::{signal, spawn, wait_exit, BIN};
use common::rabbitmq::{header, Binding};
use common::*;
use openim_bridge::settings::{SinkKind, UnknownCommands};
use serde_json::Value;

/// Runs `openim-bridge ARGS` with `env` (and nothing else of this
/// process's environment) to its end.
fn bridge_command(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .output()
        .expect("run openim-bridge")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn rabbitmq_env(url: &str, exchange: &str) -> Vec<(String, String)> {
    vec![
        ("OPENIM_BRIDGE__SINK__KIND".into(), "rabbitmq".into()),
        ("OPENIM_BRIDGE__RABBITMQ__URL".into(), url.into()),
        ("OPENIM_BRIDGE__RABBITMQ__EXCHANGE".into(), exchange.into()),
    ]
}

/// The JSON lines of the dead-letter file in the spool directory `dir`
/// (`dead-letter.jsonl`, as docs/delivery.md names it; far below its
/// rotation size here).
fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead-letter.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A bridge publishing to `exchange`, where no queue is bound: every one
/// of `n` group messages is acked, then dead-lettered as unroutable.
/// Returns its spool directory and the acked ids.
async fn unroutable(url: &str, exchange: &str, n: usize) -> (PathBuf, Vec<String>) {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = url.into();
    settings.rabbitmq.exchange = exchange.to_owned();
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{exchange}-{i}");
        assert_ack(
            &client
                .post(
                    "/callbackAfterSendGroupMsgCommand",
                    &group_message(&id, &format!("g_{}", i % 3)),
                )
                .await,
        );
        ids.push(id);
    }
    let stats = Arc::clone(&bridge.stats);
    let all_dead = eventually(Duration::from_secs(30), || {
        stats.snapshot().events_rejected == n as u64
    })
    .await;
    assert!(all_dead, "{:?}", stats.snapshot());
    (bridge.stop_keeping_spool().await, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_events_are_replayed_once_each_as_live_events_are_published() {
    let url = amqp_url();
    let exchange = unique("openim-unroutable");
    let (spool, ids) = unroutable(&url, &exchange, 40).await;
    // Each line says why, where, and how often.
    let lines = dead_letters(&spool);
    assert_eq!(lines.len(), 40);
    for line in &lines {
        assert_eq!(line["class"], "unroutable", "{line}");
        assert_eq!(line["code"], "312", "{line}");
        assert_eq!(line["destination"]["exchange"], exchange.as_str());
        assert!(line["attempts"].as_u64().unwrap() >= 1);
        assert!(
            line["first_failed_at"].as_str().unwrap() <= line["last_failed_at"].as_str().unwrap()
        );
    }
    let stored: HashMap<String, &Value> = lines
        .iter()
        .map(|line| (line["event"]["id"].as_str().unwrap().to_owned(), line))
        .collect();
    assert_eq!(
        stored.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect()
    );

    // The cause is fixed: a queue is bound. Replay.
    let mut binding = Binding::new(&url, &exchange, "#").await;
    let env = rabbitmq_env(&url, &exchange);
    let spool_arg = spool.to_str().unwrap();
    let replayed = bridge_command(&["replay", spool_arg], &env);
    assert!(replayed.status.success(), "{}", text(&replayed));
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("40 published"),
        "{}",
        text(&replayed)
    );
    let deliveries = binding.read(41, Duration::from_secs(5)).await;
    assert_eq!(deliveries.len(), 40, "each event once");
    let mut seen = BTreeSet::new();
    for delivery in &deliveries {
        let id = header(delivery, "ce-id");
        assert!(seen.insert(id.clone()), "{id} twice");
        let line = stored[&id];
        let event = &line["event"];
        // Field by field: what the broker got is the stored CloudEvent.
        for (attribute, name) in [
            ("ce-id", "id"),
            ("ce-source", "source"),
            ("ce-type", "type"),
            ("ce-time", "time"),
            ("ce-subject", "subject"),
            // The trace it was acked in, kept by the dead-letter line.
            ("ce-traceparent", "traceparent"),
        ] {
            assert_eq!(
                header(delivery, attribute),
                event[name].as_str().unwrap(),
                "{attribute}"
            );
        }
        assert_eq!(
            delivery.routing_key.as_str(),
            line["destination"]["routing_key"].as_str().unwrap()
        );
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(body, event["data"]);
    }

    // A live event of the same kind, now that the queue is bound: the same
    // headers and properties as the replayed ones.
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = url.clone();
    settings.rabbitmq.exchange = exchange.clone();
    let bridge = TestBridge::start(settings).await;
    assert_ack(
        &post(
            bridge.addr,
            "/callbackAfterSendGroupMsgCommand",
            &group_message("live-1", "g_0"),
        )
        .await,
    );
    let live = binding.read(1, Duration::from_secs(10)).await.remove(0);
    bridge.stop().await;
    let shape = |delivery: &lapin::message::Delivery| {
        let properties = &delivery.properties;
        let headers: BTreeSet<String> = properties
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .keys()
            .map(|key| key.to_string())
            .collect();
        (
            headers,
            properties.content_type().clone(),
            *properties.delivery_mode(),
            properties.app_id().clone(),
        )
    };
    let replayed_of_g0 = deliveries
        .iter()
        .find(|d| header(d, "ce-subject") == "g_0")
        .unwrap();
    assert_eq!(shape(replayed_of_g0), shape(&live));
    assert_eq!(replayed_of_g0.routing_key, live.routing_key);

    // Again: nothing is published.
    let again = bridge_command(&["replay", spool_arg], &env);
    assert!(again.status.success(), "{}", text(&again));
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(
        summary.contains(" 0 published") && summary.contains("40 done by an earlier replay"),
        "{summary}"
    );
    assert!(binding.read(1, Duration::from_secs(1)).await.is_empty());
    binding.delete_exchange(&exchange).await;
    let _ = std::fs::remove_dir_all(spool);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_killed_midway_resumes_and_reports_what_may_be_twice() {
    let url = amqp_url();
    let exchange = unique("openim-replay-kill");
    let (spool, ids) = unroutable(&url, &exchange, 600).await;
    let mut binding = Binding::new(&url, &exchange, "#").await;
    let env = rabbitmq_env(&url, &exchange);
    let spool_arg = spool.to_str().unwrap();
    // 300 events/s: about 2 s for all of them; killed after 0.8 s.
    let slow = replay_at("300", spool_arg, &env, Stdio::null());
    tokio::time::sleep(Duration::from_millis(800)).await;
    signal(slow.id(), "KILL");
    wait_exit(slow, Duration::from_secs(5));
    let resumed = bridge_command(&["replay", spool_arg], &env);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let summary = String::from_utf8_lossy(&resumed.stdout).into_owned();
    let count = arrivals(&mut binding).await;
    let missing: Vec<&String> = ids.iter().filter(|id| !count.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice = count.values().filter(|n| **n > 1).count();
    assert!(count.values().all(|n| *n <= 2));
    assert!(
        twice <= 128,
        "{twice} duplicates: more than the batch in flight"
    );
    assert!(count.len() == 600);
    eprintln!("{summary}{twice} delivered twice");
    let published_first = 600 - summary_number(&summary, " published").unwrap();
    assert!(
        published_first > 0,
        "the first replay was killed before it published anything:\n{summary}"
    );
    if twice > 0 {
        let reported = summary_number(&summary, " of the published were in flight").unwrap_or(0);
        assert!(
            reported >= twice,
            "{twice} duplicates, {reported} reported:\n{summary}"
        );
    }
    binding.delete_exchange(&exchange).await;
    let _ = std::fs::remove_dir_all(spool);
}

/// Starts `openim-bridge replay --rate RATE DIR` with `env`.
fn replay_at(
    rate: &str,
    dir: &str,
    env: &[(String, String)],
    stdout: Stdio,
) -> std::process::Child {
    Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["replay", "--rate", rate, dir])
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How often each event id arrived on `binding` (within 5 s).
async fn arrivals(binding: &mut Binding) -> HashMap<String, usize> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for delivery in binding.read(1000, Duration::from_secs(5)).await {
        *count.entry(header(&delivery, "ce-id")).or_default() += 1;
    }
    count
}

/// The number before `what` in a replay summary.
fn summary_number(summary: &str, what: &str) -> Option<usize> {
    let before = &summary[..summary.find(what)?];
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_for_a_topic_that_did_not_exist_is_replayed_once_it_does() {
    let brokers = kafka_brokers();
    let topic = unique("openim-replay-missing");
    // A dead-letter file as a bridge writes it, for a topic that was gone.
    let dir = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let body = group_message("replay-kafka-1", "g_7");
    let source: Arc<str> = Arc::from("openim");
    let event = openim_bridge::normalize::callback(
        body.as_bytes(),
        &openim_bridge::normalize::Context {
            source: &source,
            received_at: time::OffsetDateTime::now_utc(),
            url_command: None,
            publish_unknown: false,
        },
    )
    .unwrap();
    // The line as docs/delivery.md describes it: the refusal, and the
    // event as a structured CloudEvent.
    let data: Value = serde_json::from_slice(&event.data).unwrap();
    let line = serde_json::json!({
        "dead_lettered_at": event.time,
        "sink": "kafka",
        "class": "unknown_destination",
        "code": "UnknownTopicOrPartition",
        "reason": "the topic does not exist",
        "destination": {"topic": topic},
        "attempts": 3,
        "first_failed_at": event.time,
        "last_failed_at": event.time,
        "event": {
            "specversion": "1.0",
            "id": event.id,
            "source": "openim",
            "type": event.event_type(),
            "time": event.time,
            "subject": event.key,
            "datacontenttype": "application/json",
            "data": data,
        },
    });
    std::fs::write(dir.join("dead-letter.jsonl"), format!("{line}\n")).unwrap();
    create_topic(&brokers, &topic, 3).await;
    let env = vec![
        ("OPENIM_BRIDGE__SINK__KIND".to_owned(), "kafka".to_owned()),
        ("OPENIM_BRIDGE__KAFKA__BROKERS".to_owned(), brokers.clone()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC".to_owned(), topic.clone()),
    ];
    let file = dir.join("dead-letter.jsonl");
    let replayed = bridge_command(&["replay", file.to_str().unwrap()], &env);
    assert!(replayed.status.success(), "{}", text(&replayed));
    let records = read_until(&brokers, &topic, 3, Duration::from_secs(30), |records| {
        !records.is_empty()
    });
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.header("ce_id"), event.id);
    assert_eq!(record.key, event.key);
    assert_eq!(record.header("ce_type"), event.event_type());
    assert_eq!(record.header("ce_time"), event.time);
    let data: Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(record.value, data);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_callbacks_are_replayed_under_todays_settings_and_the_rest_reported() {
    let mut settings = test_settings();
    settings.http.unknown_commands = UnknownCommands::Reject;
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let unknown = r#"{"callbackCommand":"callbackAfterSomethingNewCommand","operationID":"op-new-1","userID":"u1"}"#;
    let refused = client
        .post("/callbackAfterSomethingNewCommand", unknown)
        .await;
    assert_eq!(refused.status, 404, "{:?}", refused.body);
    let mut broken: Value = serde_json::from_str(&group_message("", "g_1")).unwrap();
    broken["serverMsgID"] = "".into();
    let refused = client
        .post("/callbackAfterSendGroupMsgCommand", &broken.to_string())
        .await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    let spool = bridge.stop_keeping_spool().await;
    let log = spool.join("invalid-callbacks.jsonl");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);

    // Today the bridge publishes unknown commands.
    let env = vec![
        (
            "OPENIM_BRIDGE__HTTP__UNKNOWN_COMMANDS".to_owned(),
            "publish".to_owned(),
        ),
        (
            "OPENIM_BRIDGE__SPOOL__DIR".to_owned(),
            spool_dir().to_string_lossy().into_owned(),
        ),
    ];
    let dry = bridge_command(&["replay", "--dry-run", log.to_str().unwrap()], &env);
    let counts = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        counts.contains("command: callbackAfterSomethingNewCommand")
            && counts.contains("command: callbackAfterSendGroupMsgCommand")
            && counts.contains(" 0 published"),
        "{}",
        text(&dry)
    );
    let replayed = bridge_command(&["replay", log.to_str().unwrap()], &env);
    assert_eq!(replayed.status.code(), Some(1), "{}", text(&replayed));
    let stdout = String::from_utf8_lossy(&replayed.stdout).into_owned();
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(
        events[0]["data"]["callback_command"], "callbackAfterSomethingNewCommand",
        "{stdout}"
    );
    assert!(
        stdout.contains("1 published") && stdout.contains("1 still invalid"),
        "{stdout}"
    );
    // The one that still does not parse is kept, with today's reason.
    let written: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("invalid-callbacks.replay-"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let kept: Value =
        serde_json::from_str(std::fs::read_to_string(&written[0]).unwrap().trim()).unwrap();
    assert!(
        kept["reason"].as_str().unwrap().contains("serverMsgID"),
        "{kept}"
    );
    assert!(stdout.contains(written[0].to_str().unwrap()), "{stdout}");
    let _ = std::fs::remove_dir_all(spool);
}

/// File names and sizes in `dir`.
fn listing(dir: &Path) -> BTreeSet<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata().unwrap().len(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_publishes_what_a_killed_replica_left_and_refuses_a_held_spool() {
    let tansu = OwnTansu::start();
    let topic = unique("openim-drain");
    create_topic(&tansu.brokers, &topic, 3).await;
    let spool = spool_dir();
    let spool_env = spool.to_string_lossy().into_owned();
    let env = [
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", tansu.brokers.as_str()),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", topic.as_str()),
        ("OPENIM_BRIDGE__SPOOL__DIR", spool_env.as_str()),
    ];
    // A replica acks while its broker is paused, then is killed.
    let replica = spawn(&env);
    let mut client = OpenImClient::connect(replica.addr).await;
    let ready = async {
        loop {
            if client.send(get("/readyz")).await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the replica's broker accepts it");
    signal(tansu.child.id(), "STOP");
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = format!("{topic}-{i}");
        assert_ack(
            &client
                .post(
                    "/callbackAfterSendGroupMsgCommand",
                    &group_message(&id, &format!("g_{}", i % 4)),
                )
                .await,
        );
        ids.push(id);
    }
    signal(replica.child.id(), "KILL");
    wait_exit(replica.child, Duration::from_secs(5));
    signal(tansu.child.id(), "CONT");

    // While another bridge holds the directory, drain touches nothing.
    // (Its broker never answers, so it publishes nothing itself.)
    let holder = spawn(&[
        ("OPENIM_BRIDGE__SPOOL__DIR", spool_env.as_str()),
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", "127.0.0.1:1"),
        ("OPENIM_BRIDGE__KAFKA__TOPIC", topic.as_str()),
    ]);
    let before = listing(&spool);
    let drain_env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let refused = bridge_command(&["drain", "--spool", &spool_env], &drain_env);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("holds this spool's lock")
            && stderr.contains(&format!("pid {}", holder.child.id())),
        "{}",
        text(&refused)
    );
    assert_eq!(listing(&spool), before, "drain touched a held spool");
    signal(holder.child.id(), "KILL");
    wait_exit(holder.child, Duration::from_secs(5));

    // A drain whose broker does not answer holds the directory while it
    // waits: a second drain (or a replica started on it) is refused.
    let waiting_env: Vec<(String, String)> = drain_env
        .iter()
        .map(|(k, v)| {
            let v = if k == "OPENIM_BRIDGE__KAFKA__BROKERS" {
                "127.0.0.1:1".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let waiting = Command::new(BIN)
        .env_clear()
        .envs(waiting_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["drain", "--spool", &spool_env])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = bridge_command(&["drain", "--spool", &spool_env], &drain_env);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains(&format!("pid {}", waiting.id())),
        "{}",
        text(&second)
    );
    signal(waiting.id(), "KILL");
    wait_exit(waiting, Duration::from_secs(5));

    // The directory is free: drain publishes every acked event.
    let drained = bridge_command(&["drain", "--spool", &spool_env], &drain_env);
    assert!(drained.status.success(), "{}", text(&drained));
    let records = read_until(
        &tansu.brokers,
        &topic,
        3,
        Duration::from_secs(60),
        |records| {
            let seen: BTreeSet<&str> = records.iter().map(|r| r.header("ce_id")).collect();
            ids.iter().all(|id| seen.contains(id.as_str()))
        },
    );
    let seen: BTreeSet<&str> = records.iter().map(|r| r.header("ce_id")).collect();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .collect();
    assert!(missing.is_empty(), "{} of 200 missing", missing.len());
    let stdout = String::from_utf8_lossy(&drained.stdout);
    assert_eq!(
        summary_number(&stdout, " events published"),
        Some(200),
        "{stdout}"
    );
    // What was confirmed is gone: no segment holds records any more.
    let left: u64 = listing(&spool)
        .iter()
        .filter(|(name, _)| name.ends_with(".seg"))
        .map(|(_, len)| len)
        .sum();
    assert_eq!(left, 0, "{:?}", listing(&spool));
    let _ = std::fs::remove_dir_all(spool);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_a_replay_at_the_end_of_its_batch_and_the_next_run_goes_on() {
    let url = amqp_url();
    let exchange = unique("openim-replay-int");
    let (spool, ids) = unroutable(&url, &exchange, 300).await;
    let mut binding = Binding::new(&url, &exchange, "#").await;
    let env = rabbitmq_env(&url, &exchange);
    let spool_arg = spool.to_str().unwrap();
    // 200 events/s: a batch of 128 takes 0.64 s; interrupted within the first.
    let slow = replay_at("200", spool_arg, &env, Stdio::piped());
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(slow.id(), "INT");
    let first = tokio::task::spawn_blocking(move || slow.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    let summary = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(summary.contains("interrupted"), "{summary}");
    assert_eq!(
        summary_number(&summary, " published"),
        Some(128),
        "the batch under way is finished: {summary}"
    );
    let resumed = bridge_command(&["replay", spool_arg], &env);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let count = arrivals(&mut binding).await;
    assert_eq!(count.len(), ids.len(), "every event");
    assert!(
        count.values().all(|n| *n == 1),
        "a graceful stop sends nothing twice"
    );
    binding.delete_exchange(&exchange).await;
    let _ = std::fs::remove_dir_all(spool);
}
