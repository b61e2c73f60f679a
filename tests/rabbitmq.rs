//! End to end against a real RabbitMQ: OpenIM-shaped callbacks in,
//! CloudEvents RabbitMQ binary-mode messages out.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::rabbitmq::{header, Binding};
use common::*;
use openim_bridge::settings::SinkKind;
use openim_bridge::Settings;
use serde_json::Value;

fn rabbit_settings(exchange: &str) -> Settings {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = amqp_url();
    settings.rabbitmq.exchange = exchange.to_owned();
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_fixture_becomes_a_cloudevent_message() {
    let exchange = unique("openim-e2e");
    let bridge = TestBridge::start(rabbit_settings(&exchange)).await;
    let mut binding = Binding::new(&amqp_url(), &exchange, "io.openim.#").await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    let mut sent = Vec::new();
    for (_, body) in fixtures() {
        let input: Value = serde_json::from_str(&body).unwrap();
        let command = input["callbackCommand"].as_str().unwrap().to_owned();
        if command.starts_with("callbackAfterSend") {
            assert_ack(
                &client
                    .post(&format!("/openim/{command}?contenttype=json"), &body)
                    .await,
            );
            sent.push(input);
        }
    }
    let deliveries = binding.read(sent.len(), Duration::from_secs(20)).await;
    assert_eq!(deliveries.len(), sent.len());
    for input in &sent {
        let id = input["serverMsgID"].as_str().unwrap();
        let delivery = deliveries
            .iter()
            .find(|d| header(d, "ce-id") == id)
            .unwrap_or_else(|| panic!("no message with ce-id {id}"));
        let props = &delivery.properties;
        assert_eq!(delivery.routing_key.as_str(), expected_type(input));
        assert_eq!(header(delivery, "ce-specversion"), "1.0");
        assert_eq!(header(delivery, "ce-type"), expected_type(input));
        assert_eq!(header(delivery, "ce-source"), "openim");
        assert_eq!(header(delivery, "ce-subject"), expected_key(input));
        assert!(header(delivery, "ce-time").ends_with('Z'));
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(props.message_id().as_ref().map(|s| s.as_str()), Some(id));
        assert_eq!(*props.delivery_mode(), Some(2));
        assert!(props.timestamp().is_some_and(|t| t > 1_700_000_000));
        let data: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_data_carries_input(&data, input);
        assert_matches_schema(&data);
        let event =
            openim_events::Event::from_amqp(delivery).expect("the kit decodes the delivery");
        assert_eq!(event.id, id);
        let decoded = assert_kit_decodes(&event, &data);
        assert_eq!(decoded["message"]["content"], input["content"]);
    }
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_key_template_is_applied() {
    let exchange = unique("openim-route");
    let mut settings = rabbit_settings(&exchange);
    settings.rabbitmq.routing_key = "chat.{command}.{key}".to_owned();
    let bridge = TestBridge::start(settings).await;
    let mut binding = Binding::new(
        &amqp_url(),
        &exchange,
        "chat.callbackAfterSendGroupMsgCommand.g_3001",
    )
    .await;
    let body = fixture("after_send_group_msg_02_attext_android.json");
    assert_ack(&post(bridge.addr, "/callbackAfterSendGroupMsgCommand", &body).await);
    let deliveries = binding.read(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        header(&deliveries[0], "ce-id"),
        "4b1a0c9d8e7f6a5b4c3d2e1f0a9b8c7d"
    );
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unroutable_messages_are_counted_as_rejected() {
    let exchange = unique("openim-noroute");
    let bridge = TestBridge::start(rabbit_settings(&exchange)).await;
    // The exchange exists (the bridge declared it) but no queue is bound.
    let body = fixture("after_send_group_msg_01_text_ios.json");
    assert_ack(&post(bridge.addr, "/callbackAfterSendGroupMsgCommand", &body).await);
    let stats = bridge.stats.clone();
    assert!(
        eventually(Duration::from_secs(10), || stats.snapshot().events_rejected
            == 1)
        .await
    );
    assert_eq!(stats.snapshot().events_published, 0);
    bridge.stop().await;
    Binding::new(&amqp_url(), &exchange, "#")
        .await
        .delete_exchange(&exchange)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_exchange_is_declared_again_and_nothing_is_lost() {
    let exchange = unique("openim-redeclare");
    let bridge = TestBridge::start(rabbit_settings(&exchange)).await;
    let template: Value =
        serde_json::from_str(&fixture("after_send_group_msg_01_text_ios.json")).unwrap();
    let mut client = OpenImClient::connect(bridge.addr).await;
    let send = |i: usize| {
        let mut body = template.clone();
        body["serverMsgID"] = format!("redeclare-{i}").into();
        body.to_string()
    };
    let first = Binding::new(&amqp_url(), &exchange, "#").await;
    // Deleting the exchange under the bridge makes its next publish fail
    // with a channel error: the bridge must reconnect, declare again, and
    // send the event again.
    first.delete_exchange(&exchange).await;
    assert_ack(
        &client
            .post("/callbackAfterSendGroupMsgCommand", &send(0))
            .await,
    );
    let stats = bridge.stats.clone();
    assert!(
        eventually(Duration::from_secs(15), || stats.snapshot().events_retried
            >= 1
            || stats.snapshot().events_rejected >= 1)
        .await,
        "{:?}",
        stats.snapshot()
    );
    // Now bound again: later events arrive.
    let mut binding = Binding::new(&amqp_url(), &exchange, "#").await;
    assert_ack(
        &client
            .post("/callbackAfterSendGroupMsgCommand", &send(1))
            .await,
    );
    let deliveries = binding.read(1, Duration::from_secs(15)).await;
    assert!(deliveries
        .iter()
        .any(|d| header(d, "ce-id") == "redeclare-1"));
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;
}

/// lapin hands a basic.return to whichever confirm it resolves next, and
/// RabbitMQ coalesces confirms, so with many confirms in flight a return
/// can ride on another message's confirm. The sink must dead-letter
/// exactly the events the broker returned, and count no returned event as
/// delivered.
#[tokio::test(flavor = "multi_thread")]
async fn unroutable_events_and_only_those_are_dead_lettered() {
    const EVENTS: usize = 4_000;
    const CLIENTS: usize = 8;
    // Every fifth event's group has no queue bound for its routing key.
    fn unroutable(n: usize) -> bool {
        n.is_multiple_of(5)
    }
    fn id(n: usize) -> String {
        format!("mixed-{n}")
    }
    fn group(n: usize) -> String {
        let prefix = if unroutable(n) { "lost" } else { "ok" };
        format!("{prefix}.{n}")
    }
    let exchange = unique("openim-mixed");
    let mut settings = rabbit_settings(&exchange);
    settings.rabbitmq.routing_key = "chat.{command}.{key}".to_owned();
    let bridge = TestBridge::start(settings).await;
    let mut binding = Binding::new(&amqp_url(), &exchange, "chat.*.ok.*").await;
    let senders: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let addr = bridge.addr;
            tokio::spawn(async move {
                let mut connection = OpenImClient::connect(addr).await;
                for n in (client..EVENTS).step_by(CLIENTS) {
                    let body = group_message(&id(n), &group(n));
                    assert_ack(
                        &connection
                            .post("/callbackAfterSendGroupMsgCommand", &body)
                            .await,
                    );
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let expected_dead: HashSet<String> = (0..EVENTS).filter(|&n| unroutable(n)).map(id).collect();
    let expected_delivered: HashSet<String> =
        (0..EVENTS).filter(|&n| !unroutable(n)).map(id).collect();

    // The file docs/delivery.md names.
    let dead_letter = bridge.spool.join("dead-letter.jsonl");
    let dead_ids = || -> Vec<String> {
        std::fs::read_to_string(&dead_letter)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let line: Value = serde_json::from_str(line).expect("dead-letter line is JSON");
                line["event"]["id"].as_str().expect("event.id").to_owned()
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(60), || dead_ids().len()
            >= expected_dead.len())
        .await,
        "{} of {} events dead-lettered",
        dead_ids().len(),
        expected_dead.len()
    );
    let delivered: HashSet<String> = binding
        .read(expected_delivered.len(), Duration::from_secs(60))
        .await
        .iter()
        .map(|d| header(d, "ce-id"))
        .collect();
    let dead: HashSet<String> = dead_ids().into_iter().collect();
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;

    let wrongly_dead = dead.difference(&expected_dead).count();
    let lost = expected_dead.difference(&dead).count();
    assert_eq!(
        (wrongly_dead, lost),
        (0, 0),
        "{wrongly_dead} delivered events dead-lettered, {lost} unroutable events not dead-lettered"
    );
    assert_eq!(dead, expected_dead);
    assert_eq!(delivered, expected_delivered);
}
