//! End to end against a real Kafka-protocol broker: OpenIM-shaped callbacks
//! in, CloudEvents Kafka binary-mode records out.

mod common;

use std::time::Duration;

use common::kafka::{create_topic, read};
use common::*;
use openim_bridge::settings::SinkKind;
use serde_json::Value;

const PARTITIONS: i32 = 3;

async fn kafka_bridge(topic: &str) -> TestBridge {
    let brokers = kafka_brokers();
    create_topic(&brokers, topic, PARTITIONS).await;
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = brokers;
    settings.kafka.topic = topic.to_owned();
    TestBridge::start(settings).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_fixture_becomes_a_cloudevent_record() {
    let topic = unique("openim-e2e");
    let bridge = kafka_bridge(&topic).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut sent = Vec::new();
    for (name, body) in fixtures() {
        let input: Value = serde_json::from_str(&body).unwrap();
        let command = input["callbackCommand"].as_str().unwrap().to_owned();
        // The other commands have tests of their own (tests/commands.rs).
        if !command.starts_with("callbackAfterSend") {
            continue;
        }
        let reply = client
            .post(&format!("/callbackExample/{command}"), &body)
            .await;
        assert_ack(&reply);
        assert!(!name.is_empty());
        sent.push(input);
    }
    assert!(sent.len() >= 3, "fixtures with messages: {}", sent.len());

    let records = read(
        &kafka_brokers(),
        &topic,
        PARTITIONS,
        sent.len(),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), sent.len(), "records read back");
    for input in &sent {
        let id = input["serverMsgID"].as_str().unwrap();
        let record = records
            .iter()
            .find(|r| r.header("ce_id") == id)
            .unwrap_or_else(|| panic!("no record with ce_id {id}"));
        assert_eq!(record.key, expected_key(input));
        assert_eq!(record.header("ce_specversion"), "1.0");
        assert_eq!(record.header("ce_type"), expected_type(input));
        assert_eq!(record.header("ce_source"), "openim");
        assert_eq!(record.header("ce_subject"), expected_key(input));
        assert_eq!(record.header("content-type"), "application/json");
        let sent_ms = input["sendTime"].as_i64().unwrap();
        let time = time::OffsetDateTime::parse(
            record.header("ce_time"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(
            (time.unix_timestamp_nanos() / 1_000_000) as i64,
            sent_ms,
            "ce_time is sendTime"
        );
        assert_data_carries_input(&record.value, input);
        assert_matches_schema(&record.value);
        let event = record.event.as_ref().expect("the kit decodes the record");
        let decoded = assert_kit_decodes(event, &record.value);
        assert_eq!(decoded["message"]["server_msg_id"], input["serverMsgID"]);
        assert_eq!(decoded["message"]["content"], input["content"]);
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_group_stays_in_one_partition_in_order() {
    let topic = unique("openim-order");
    let bridge = kafka_bridge(&topic).await;
    let template: Value =
        serde_json::from_str(&fixture("after_send_group_msg_01_text_ios.json")).unwrap();
    let mut client = OpenImClient::connect(bridge.addr).await;
    let groups = ["g_a", "g_b", "g_c", "g_d"];
    let per_group = 25;
    for i in 0..per_group {
        for group in groups {
            let mut body = template.clone();
            body["groupID"] = group.into();
            body["serverMsgID"] = format!("{group}-{i:03}").into();
            assert_ack(
                &client
                    .post("/callbackAfterSendGroupMsgCommand", &body.to_string())
                    .await,
            );
        }
    }
    let total = groups.len() * per_group;
    let records = read(
        &kafka_brokers(),
        &topic,
        PARTITIONS,
        total,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), total);
    for group in groups {
        let mine: Vec<_> = records.iter().filter(|r| r.key == group).collect();
        assert_eq!(mine.len(), per_group, "{group}");
        assert!(
            mine.iter().all(|r| r.partition == mine[0].partition),
            "{group} spans partitions"
        );
        let ids: Vec<_> = mine.iter().map(|r| r.header("ce_id").to_owned()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "{group} out of order");
    }
    let stats = bridge.stats.snapshot();
    assert_eq!(stats.callbacks_acked, total as u64);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_delivers_everything_acked() {
    let topic = unique("openim-drain");
    let bridge = kafka_bridge(&topic).await;
    let template: Value =
        serde_json::from_str(&fixture("after_send_single_msg_01_text.json")).unwrap();
    let mut client = OpenImClient::connect(bridge.addr).await;
    let count = 300;
    for i in 0..count {
        let mut body = template.clone();
        body["serverMsgID"] = format!("drain-{i}").into();
        assert_ack(
            &client
                .post("/callbackAfterSendSingleMsgCommand", &body.to_string())
                .await,
        );
    }
    let stats = bridge.stats.clone();
    bridge.stop().await;
    assert_eq!(stats.snapshot().events_published, count);
    let records = read(
        &kafka_brokers(),
        &topic,
        PARTITIONS,
        count as usize,
        Duration::from_secs(30),
    );
    let mut ids: Vec<_> = records
        .iter()
        .map(|r| r.header("ce_id").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_stops_the_bridge_with_a_clear_error() {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = kafka_brokers();
    settings.kafka.topic = unique("openim-never-created");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = openim_bridge::App::start(settings.clone().validate().unwrap(), listener)
        .await
        .expect("the spool opens");
    let err = tokio::time::timeout(Duration::from_secs(30), app.run(std::future::pending()))
        .await
        .expect("the bridge stops by itself")
        .expect_err("the missing topic is reported");
    let text = err.to_string();
    assert!(
        text.contains(&settings.kafka.topic) && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_too_large_for_kafka_is_dead_lettered_and_its_neighbours_are_delivered() {
    // A 2 MiB callback fits http.max_body_bytes (4 MiB) but not Kafka's
    // message limit (about 1 MB by default): it is acked (OpenIM would not
    // send it again), refused by the producer and dead-lettered with the
    // reason; the events sent around it, in the same batches, all arrive.
    let topic = unique("openim-large");
    let bridge = kafka_bridge(&topic).await;
    let big_id = unique("big");
    let mut big: Value = serde_json::from_str(&group_message(&big_id, "g_1")).unwrap();
    big["content"] = format!("{{\"content\":\"{}\"}}", "x".repeat(2 << 20)).into();
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (addr, big) = (bridge.addr, big.to_string());
        senders.push(tokio::spawn(async move {
            let mut client = OpenImClient::connect(addr).await;
            let mut ids = Vec::new();
            for i in 0..25 {
                if worker == 0 && i == 10 {
                    assert_ack(&client.post("/callbackAfterSendGroupMsgCommand", &big).await);
                }
                let id = format!("small-{worker}-{i}");
                let body = group_message(&id, &format!("g_{}", i % 3));
                assert_ack(
                    &client
                        .post("/callbackAfterSendGroupMsgCommand", &body)
                        .await,
                );
                ids.push(id);
            }
            ids
        }));
    }
    let mut small = Vec::new();
    for sender in senders {
        small.extend(sender.await.unwrap());
    }
    let records = read(
        &kafka_brokers(),
        &topic,
        PARTITIONS,
        small.len(),
        Duration::from_secs(30),
    );
    let delivered: std::collections::HashSet<_> = records
        .iter()
        .map(|r| r.header("ce_id").to_owned())
        .collect();
    let missing: Vec<_> = small.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "small events not delivered: {missing:?}"
    );
    assert!(
        !delivered.contains(&big_id),
        "the big one cannot be in Kafka"
    );
    let stats = std::sync::Arc::clone(&bridge.stats);
    assert!(
        eventually(Duration::from_secs(10), || stats.snapshot().events_rejected
            == 1)
        .await,
        "{:?}",
        stats.snapshot()
    );
    let dead = std::fs::read_to_string(bridge.spool.join("dead-letter.jsonl")).unwrap();
    let lines: Vec<Value> = dead
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the big event is dead-lettered");
    assert_eq!(lines[0]["event"]["id"], big_id.as_str());
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(reason.contains("too large"), "{reason}");
    bridge.stop().await;
}
