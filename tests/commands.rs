//! One end-to-end test per OpenIM callback command: its realistic body
//! (`tests/fixtures/callbacks/`) goes through a real bridge to a real
//! Kafka-protocol broker and a real RabbitMQ, routed by a `[[routes]]`
//! entry of its own (the Kafka topic is created by the bridge,
//! `kafka.create_topics`); the record must carry the expected CloudEvents
//! type, key and body, valid against the type's schema. Plus routing,
//! filters, disabled commands and before-callbacks.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::kafka::{create_topic, read, Record};
use common::rabbitmq::{header, Binding};
use common::*;
use openim_bridge::settings::RouteSettings;
use openim_bridge::settings::SinkKind;
use openim_bridge::Settings;
use serde_json::Value;

fn body(command: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/callbacks")
        .join(format!("{command}.json"));
    std::fs::read_to_string(path).unwrap()
}

/// Checks `data` against `schemas/events/<type>.schema.json`.
fn assert_schema(event_type: &str, data: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("schemas/events/{event_type}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator.iter_errors(data).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{event_type}: {errors:?}\n{data:#}");
}

/// What a command's fixture must become.
struct Expected {
    command: &'static str,
    event_type: &'static str,
    key: &'static str,
    /// A JSON pointer into `data` and the value it must hold.
    field: (&'static str, Value),
}

fn route(pattern: &str) -> RouteSettings {
    RouteSettings {
        pattern: pattern.to_owned(),
        ..RouteSettings::default()
    }
}

async fn kafka_settings(default_topic: &str, routes: Vec<RouteSettings>) -> Settings {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = kafka_brokers();
    settings.kafka.topic = default_topic.to_owned();
    settings.kafka.create_topics = true;
    settings.kafka.topic_partitions = 3;
    settings.routes = routes;
    settings
}

fn check(expected: &Expected, event_type: &str, id: &str, key: &str, data: &Value) {
    assert_eq!(event_type, expected.event_type, "{}", expected.command);
    assert_eq!(key, expected.key, "{}", expected.command);
    assert_eq!(data["event_id"], id, "{}", expected.command);
    assert_eq!(data["callback_command"], expected.command);
    let (pointer, value) = &expected.field;
    assert_eq!(
        data.pointer(pointer),
        Some(value),
        "{}: {pointer} in {data:#}",
        expected.command
    );
    assert_schema(event_type, data);
}

/// The consumer kit's decoding of what the bridge published equals the
/// published data key by key, and each catalog field of the fixture
/// `input` (plain values) is in it under its name.
fn check_kit(expected: &Expected, event: &openim_events::Event, published: &Value, input: &str) {
    let command = expected.command;
    assert_eq!(event.event_type, expected.event_type, "{command}");
    assert_eq!(event.subject.as_deref(), Some(expected.key), "{command}");
    let decoded = assert_kit_decodes(event, published);
    let body: Value = serde_json::from_str(input).unwrap();
    let spec = openim_bridge::normalize::CallbackKind::from_command(command)
        .unwrap_or(openim_bridge::normalize::CallbackKind::UNKNOWN)
        .spec();
    use openim_bridge::normalize::catalog::FieldType as T;
    let mut compared = 0;
    for field in spec.fields {
        let plain = matches!(
            field.ty,
            T::String | T::Int32 | T::Int64 | T::Bool | T::StringList | T::Int64List | T::Json
        );
        match body.get(field.wire) {
            Some(sent) if plain && !sent.is_null() => {
                assert_eq!(
                    &decoded[field.name], sent,
                    "{command}: {} ({})",
                    field.name, field.wire
                );
                compared += 1;
            }
            _ => {}
        }
    }
    if spec.layout == openim_bridge::normalize::catalog::Layout::Message {
        for (name, wire) in [
            ("server_msg_id", "serverMsgID"),
            ("sender_id", "sendID"),
            ("content", "content"),
            ("content_type", "contentType"),
            ("seq", "seq"),
        ] {
            assert_eq!(
                decoded["message"][name], body[wire],
                "{command}: message.{name}"
            );
            compared += 1;
        }
    }
    if spec.layout == openim_bridge::normalize::catalog::Layout::Raw {
        assert_eq!(decoded["body"], body, "{command}: body");
        compared += 1;
    }
    assert!(compared > 0, "{command}: no field compared");
}

async fn round_trip(expected: Expected) {
    let command = expected.command;
    let input = body(command);

    // Kafka: the route sends this command to a topic of its own, which the
    // bridge creates.
    let topic = unique("openim-cmd");
    let mut routed = route(expected.event_type);
    // Before-callbacks are published only when a route enables them.
    routed.enabled = Some(true);
    routed.kafka_topic = Some(topic.clone());
    let settings = kafka_settings(&unique("openim-default"), vec![routed]).await;
    let bridge = TestBridge::start(settings).await;
    assert_ack(&post(bridge.addr, &format!("/openim/{command}"), &input).await);
    let records: Vec<Record> = read(&kafka_brokers(), &topic, 3, 1, Duration::from_secs(30));
    let record = records
        .first()
        .unwrap_or_else(|| panic!("{command}: no record on {topic}"));
    check(
        &expected,
        record.header("ce_type"),
        record.header("ce_id"),
        &record.key,
        &record.value,
    );
    assert_eq!(record.header("ce_subject"), expected.key);
    let event = record
        .event
        .as_ref()
        .unwrap_or_else(|err| panic!("{command}: {err}"));
    check_kit(&expected, event, &record.value, &input);
    bridge.stop().await;

    // RabbitMQ: the route's routing key names the command.
    let exchange = unique("openim-cmd");
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = amqp_url();
    settings.rabbitmq.exchange = exchange.clone();
    let mut routed = route(expected.event_type);
    routed.enabled = Some(true);
    routed.rabbitmq_routing_key = Some("cmd.{type}.{key}".to_owned());
    settings.routes = vec![routed];
    let bridge = TestBridge::start(settings).await;
    let binding_key = format!("cmd.{}.#", expected.event_type);
    let mut binding = Binding::new(&amqp_url(), &exchange, &binding_key).await;
    assert_ack(&post(bridge.addr, &format!("/openim/{command}"), &input).await);
    let deliveries = binding.read(1, Duration::from_secs(20)).await;
    let delivery = deliveries
        .first()
        .unwrap_or_else(|| panic!("{command}: nothing on {exchange}"));
    assert_eq!(
        delivery.routing_key.as_str(),
        format!("cmd.{}.{}", expected.event_type, expected.key)
    );
    let data: Value = serde_json::from_slice(&delivery.data).unwrap();
    check(
        &expected,
        &header(delivery, "ce-type"),
        &header(delivery, "ce-id"),
        &header(delivery, "ce-subject"),
        &data,
    );
    let event =
        openim_events::Event::from_amqp(delivery).unwrap_or_else(|err| panic!("{command}: {err}"));
    check_kit(&expected, &event, &data, &input);
    bridge.stop().await;
    binding.delete_exchange(&exchange).await;
}

macro_rules! command_tests {
    ($($test:ident: $command:literal => $type:literal, key $key:literal, $pointer:literal = $value:expr;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $test() {
                round_trip(Expected {
                    command: $command,
                    event_type: $type,
                    key: $key,
                    field: ($pointer, Value::from($value)),
                })
                .await;
            }
        )+
    };
}

command_tests! {
    msg_save_db: "callbackAfterMsgSaveDBCommand" => "io.openim.message.saved", key "g_3001", "/message/seq" = 812;
    single_msg_read: "callbackAfterSingleMsgReadCommand" => "io.openim.single.message.read", key "si_u_1001_u_1002", "/seqs" = vec![41, 42, 43];
    group_msg_read: "callbackAfterGroupMsgReadCommand" => "io.openim.group.message.read", key "u_1005", "/unread_msg_num" = 812;
    revoke_msg: "callbackBeforeAfterMsgCommand" => "io.openim.message.revoked", key "g_3001", "/seq" = 812;
    user_online: "callbackAfterUserOnlineCommand" => "io.openim.user.online", key "u_1001", "/platform" = "Android";
    user_offline: "callbackAfterUserOfflineCommand" => "io.openim.user.offline", key "u_1002", "/platform_id" = 5;
    user_kick_off: "callbackAfterUserKickOffCommand" => "io.openim.user.kicked_off", key "u_1003", "/is_app_background" = true;
    user_register: "callbackAfterUserRegisterCommand" => "io.openim.user.registered", key "u_2001", "/users/1/userID" = "u_2002";
    update_user_info: "callbackAfterUpdateUserInfoCommand" => "io.openim.user.info.updated", key "u_1001", "/nickname" = "Alice L.";
    update_user_info_ex: "callbackAfterUpdateUserInfoExCommand" => "io.openim.user.info_ex.updated", key "u_1001", "/nickname" = "Alice";
    create_group: "callbackAfterCreateGroupCommand" => "io.openim.group.created", key "g_3009", "/owner_user_id" = "u_1001";
    set_group_member_info: "callbackAfterSetGroupMemberInfoCommand" => "io.openim.group.member.updated", key "g_3001", "/role_level" = 60;
    quit_group: "callbackAfterQuitGroupCommand" => "io.openim.group.member.quit", key "g_3002", "/user_id" = "u_1008";
    kick_group: "callbackAfterKickGroupCommand" => "io.openim.group.member.kicked", key "g_3001", "/kicked_user_ids" = vec!["u_1006", "u_1007"];
    dismiss_group: "callbackAfterDisMissGroupCommand" => "io.openim.group.dismissed", key "g_3004", "/group_type" = 2;
    join_group: "callbackAfterJoinGroupCommand" => "io.openim.group.member.joined", key "g_3001", "/join_source" = 3;
    transfer_group_owner: "callbackAfterTransferGroupOwnerCommand" => "io.openim.group.owner.transferred", key "g_3001", "/new_owner_user_id" = "u_1002";
    set_group_info: "callbackAfterSetGroupInfoCommand" => "io.openim.group.info.updated", key "g_3001", "/notification" = "standup at 10 <b>sharp</b> & bring coffee";
    set_group_info_ex: "callbackAfterSetGroupInfoExCommand" => "io.openim.group.info_ex.updated", key "g_3001", "/need_verification" = 1;
    add_friend: "callbackAfterAddFriendCommand" => "io.openim.friend.requested", key "u_1001", "/to_user_id" = "u_1009";
    add_friend_agree: "callbackAfterAddFriendAgreeCommand" => "io.openim.friend.request.handled", key "u_1009", "/to_user_id" = "u_1001";
    delete_friend: "callbackAfterDeleteFriendCommand" => "io.openim.friend.deleted", key "u_1001", "/friend_user_id" = "u_1009";
    import_friends: "callbackAfterImportFriendsCommand" => "io.openim.friend.imported", key "u_1001", "/friend_user_ids" = vec!["u_1010", "u_1011"];
    remove_black: "callbackAfterRemoveBlackCommand" => "io.openim.friend.blacklist.removed", key "u_1001", "/black_user_id" = "u_1012";
    set_friend_remark: "callbackAfterSetFriendRemarkCommand" => "io.openim.friend.remark.updated", key "u_1001", "/remark" = "Bob from ops";
    create_single_chat_conversations: "callbackAfterCreateSingleChatConversationsCommand" => "io.openim.single.conversation.created", key "u_1002", "/owner_user_id" = "u_1002";
    create_group_chat_conversations: "callbackAfterCreateGroupChatConversationsCommand" => "io.openim.group.conversation.created", key "u_1003", "/group_id" = "g_3009";
    before_send_group_msg_when_enabled: "callbackBeforeSendGroupMsgCommand" => "io.openim.before.send_group_msg", key "g_3001", "/body/serverMsgID" = "9f2c4e1ab0d34c6f8e7a5b3c2d1e0f91";
    unknown_command: "callbackAfterSomethingNewCommand" => "io.openim.callback.unknown", key "u_77", "/body/newThing" = vec![1, 2];
}

/// Posts `bodies` to a Kafka bridge with `routes` and `filter`, then
/// returns the `ce_id`s that reached the default topic.
async fn published_ids(bodies: &[String], configure: impl FnOnce(&mut Settings)) -> Vec<String> {
    let topic = unique("openim-filter");
    create_topic(&kafka_brokers(), &topic, 3).await;
    let mut settings = kafka_settings(&topic, Vec::new()).await;
    configure(&mut settings);
    let bridge = TestBridge::start(settings).await;
    let mut client = OpenImClient::connect(bridge.addr).await;
    for body in bodies {
        let command: Value = serde_json::from_str(body).unwrap();
        let command = command["callbackCommand"].as_str().unwrap().to_owned();
        assert_ack(&client.post(&format!("/{command}"), body).await);
    }
    // A marker sent last; a graceful stop then waits until the broker has
    // confirmed everything, and the marker shows the topic was read to the end.
    let marker = group_message("marker", "g_marker");
    assert_ack(
        &client
            .post("/callbackAfterSendGroupMsgCommand", &marker)
            .await,
    );
    bridge.stop().await;
    let records = common::kafka::read(
        &kafka_brokers(),
        &topic,
        3,
        bodies.len() + 1,
        Duration::from_secs(5),
    );
    assert!(
        records.iter().any(|r| r.header("ce_id") == "marker"),
        "the marker was not published"
    );
    records
        .iter()
        .map(|r| r.header("ce_id").to_owned())
        .filter(|id| id != "marker")
        .collect()
}

fn message(id: &str, group: &str, sender: &str, content_type: i64) -> String {
    let mut body: Value = serde_json::from_str(&group_message(id, group)).unwrap();
    body["sendID"] = sender.into();
    body["contentType"] = content_type.into();
    body.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_drop_content_types_groups_and_users() {
    let bodies = [
        message("text", "g_1", "u_1", 101),
        message("typing", "g_1", "u_1", 113),
        message("custom", "g_1", "u_1", 110),
        message("noisy-group", "g_noisy", "u_1", 101),
        message("bot", "g_1", "u_bot", 101),
    ];
    let ids = published_ids(&bodies, |settings| {
        settings.filter = toml_filter(
            r#"
            content_types = ["101-110"]
            exclude_content_types = [113]
            exclude_group_ids = ["g_noisy"]
            exclude_user_ids = ["u_bot"]
            "#,
        );
    })
    .await;
    assert_eq!(ids, ["text", "custom"]);
}

fn toml_filter(text: &str) -> openim_bridge::settings::FilterSettings {
    ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_commands_and_default_before_callbacks_are_acked_not_published() {
    let bodies = [
        body("callbackAfterUserOnlineCommand"),
        body("callbackBeforeSendGroupMsgCommand"),
        body("callbackAfterQuitGroupCommand"),
    ];
    let ids = published_ids(&bodies, |settings| {
        let mut off = route("io.openim.user.*");
        off.enabled = Some(false);
        settings.routes = vec![off];
    })
    .await;
    // Only the quit event (its id is a hash of the body) was published.
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].starts_with("h-"), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_routed_topic_is_named_when_creation_is_off() {
    let default = unique("openim-present");
    create_topic(&kafka_brokers(), &default, 3).await;
    let missing = unique("openim-absent");
    let mut routed = route("io.openim.group.*");
    routed.kafka_topic = Some(missing.clone());
    let mut settings = kafka_settings(&default, vec![routed]).await;
    settings.kafka.create_topics = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = openim_bridge::App::start(settings.validate().unwrap(), listener)
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), app.run(std::future::pending()))
        .await
        .expect("the bridge stops by itself")
        .expect_err("the missing topic is reported")
        .to_string();
    assert!(
        err.contains(&missing) && err.contains("kafka.create_topics"),
        "{err}"
    );
}

#[tokio::test]
async fn an_allowlist_that_does_not_parse_stops_startup_instead_of_admitting_everyone() {
    // Settings built in code skip Settings::validate; a bad allowlist must
    // still fail closed, never become an empty one (every address).
    let mut settings = test_settings();
    settings.http.allow_ips = vec!["10.0.0.0/8".to_owned(), "10.0.0.300".to_owned()];
    let err = startup_error(settings).await;
    assert!(
        err.contains("http.allow_ips") && err.contains("10.0.0.300"),
        "{err}"
    );
}

#[tokio::test]
async fn a_filter_that_does_not_compile_stops_startup_instead_of_filtering_nothing() {
    // Settings built in code skip Settings::validate; the bridge still
    // refuses a filter it cannot apply.
    let mut settings = test_settings();
    settings.filter = toml_filter(r#"content_types = ["120-101"]"#);
    let err = startup_error(settings).await;
    assert!(
        err.contains("filter.content_types") && err.contains("120-101"),
        "{err}"
    );
}
