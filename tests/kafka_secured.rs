//! The bridge's Kafka sink over TLS and SASL, end to end: callbacks in,
//! records read back with their CloudEvents headers, through the test
//! helpers' Kafka front (TLS, and a SASL test double that checks PLAIN,
//! SCRAM and OAUTHBEARER credentials) in front of a Tansu of its own; and
//! what a user sees when a certificate, a password or the protocol is wrong.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::kafka::read_with;
use common::kafka_front::{FrontOptions, FrontTls, KafkaFront, Sasl};
use common::*;
use openim_bridge::settings::{SaslMechanism, Secret, SecurityProtocol, SinkKind};
use openim_bridge::stats::Refusal;
use openim_bridge::Settings;

const USER: &str = "openim-bridge";
const PASSWORD: &str = "Pa55-w0rd-for-tests";

fn front_options(tls: Option<FrontTls>, sasl: Option<Sasl>) -> FrontOptions {
    FrontOptions { tls, sasl }
}

/// Bridge settings for `front`: brokers, topic, and the CA when it speaks TLS.
fn kafka_settings(front: &KafkaFront, topic: &str, protocol: SecurityProtocol) -> Settings {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Kafka;
    settings.kafka.brokers = front.bootstrap();
    settings.kafka.topic = topic.to_owned();
    settings.kafka.security_protocol = protocol;
    if protocol.uses_tls() {
        settings.kafka.ssl_ca_file = Some(front.ca_file().to_owned());
    }
    settings
}

fn with_password(mut settings: Settings, mechanism: SaslMechanism, password: &str) -> Settings {
    settings.kafka.sasl_mechanism = mechanism;
    settings.kafka.sasl_username = USER.to_owned();
    settings.kafka.sasl_password = Some(Secret::new(password));
    settings
}

/// Posts one group message to a bridge with `settings` and reads it back
/// through the front; returns the bridge for further checks.
async fn publishes(front: &KafkaFront, settings: Settings) -> TestBridge {
    let topic = settings.kafka.topic.clone();
    front.create_topic(&topic, 1).await;
    let bridge = TestBridge::start(settings).await;
    let id = unique("secured-msg");
    let body = group_message(&id, "g-secured");
    assert_ack(&post(bridge.addr, "/callbackAfterSendGroupMsgCommand", &body).await);
    let (bootstrap, properties) = (front.bootstrap(), front.client_properties());
    let records = tokio::task::spawn_blocking(move || {
        read_with(
            &bootstrap,
            &properties,
            &topic,
            1,
            1,
            Duration::from_secs(30),
        )
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "the event arrived");
    let record = &records[0];
    assert_eq!(record.key, "g-secured");
    assert_eq!(record.header("ce_id"), id);
    assert_eq!(record.header("ce_type"), "io.openim.group.message.sent");
    assert_eq!(record.header("ce_specversion"), "1.0");
    assert_eq!(record.header("ce_subject"), "g-secured");
    assert_eq!(record.header("content-type"), "application/json");
    assert_data_carries_input(&record.value, &serde_json::from_str(&body).unwrap());
    assert!(bridge.stats.accepted());
    assert_eq!(bridge.stats.refusal(), None);
    bridge
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_custom_ca() {
    let front = KafkaFront::start(front_options(Some(FrontTls::Server), None)).await;
    let settings = kafka_settings(&front, &unique("tls"), SecurityProtocol::Ssl);
    publishes(&front, settings).await.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_with_a_client_certificate() {
    let front = KafkaFront::start(front_options(Some(FrontTls::Mutual), None)).await;
    let mut settings = kafka_settings(&front, &unique("mtls"), SecurityProtocol::Ssl);
    let (cert, key) = front.client_cert("openim-bridge");
    settings.kafka.ssl_cert_file = Some(cert);
    settings.kafka.ssl_key_file = Some(key);
    publishes(&front, settings).await.stop().await;
}

/// SASL with `mechanism` over TLS: the double saw a good login.
async fn sasl_ssl(sasl: Sasl, mechanism: SaslMechanism) {
    let front = KafkaFront::start(front_options(Some(FrontTls::Server), Some(sasl))).await;
    let settings = kafka_settings(&front, &unique("sasl"), SecurityProtocol::SaslSsl);
    let bridge = publishes(&front, with_password(settings, mechanism, PASSWORD)).await;
    assert!(front.authentications().0 >= 1, "the SASL double was used");
    assert_eq!(front.authentications().1, 0, "no failed login");
    bridge.stop().await;
}

fn user() -> (String, String) {
    (USER.to_owned(), PASSWORD.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_ssl_plain() {
    let (user, password) = user();
    sasl_ssl(Sasl::Plain { user, password }, SaslMechanism::Plain).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_ssl_scram_sha_256() {
    let (user, password) = user();
    sasl_ssl(
        Sasl::ScramSha256 { user, password },
        SaslMechanism::ScramSha256,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_ssl_scram_sha_512() {
    let (user, password) = user();
    sasl_ssl(
        Sasl::ScramSha512 { user, password },
        SaslMechanism::ScramSha512,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plaintext_scram_sha_512() {
    let (user, password) = user();
    let front = KafkaFront::start(front_options(
        None,
        Some(Sasl::ScramSha512 { user, password }),
    ))
    .await;
    let settings = kafka_settings(
        &front,
        &unique("sasl-plain"),
        SecurityProtocol::SaslPlaintext,
    );
    let settings = with_password(settings, SaslMechanism::ScramSha512, PASSWORD);
    publishes(&front, settings).await.stop().await;
}

/// An unsigned JWT (`alg: none`) for `sub`, valid for an hour.
fn jwt(sub: &str) -> String {
    let part = |json: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    format!(
        "{}.{}.",
        part(r#"{"alg":"none"}"#.to_owned()),
        part(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn oauthbearer_token_from_a_file() {
    let principal = "svc-openim-bridge".to_owned();
    let front = KafkaFront::start(front_options(
        Some(FrontTls::Server),
        Some(Sasl::OAuthBearer {
            principal: principal.clone(),
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, jwt(&principal) + "\n").unwrap();
    let mut settings = kafka_settings(&front, &unique("oauth"), SecurityProtocol::SaslSsl);
    settings.kafka.sasl_mechanism = SaslMechanism::OAuthBearer;
    settings.kafka.sasl_oauthbearer_token_file = Some(token_file);
    let bridge = publishes(&front, settings).await;
    assert!(front.authentications().0 >= 1, "the SASL double was used");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_ca_is_a_certificate_refusal() {
    let front = KafkaFront::start(front_options(Some(FrontTls::Server), None)).await;
    let mut settings = kafka_settings(&front, &unique("other-ca"), SecurityProtocol::Ssl);
    settings.kafka.ssl_ca_file = Some(front.other_ca_file().to_owned());
    refused_for(settings, Refusal::Certificate).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_ca_the_system_roots_refuse_the_certificate() {
    let front = KafkaFront::start(front_options(Some(FrontTls::Server), None)).await;
    let mut settings = kafka_settings(&front, &unique("no-ca"), SecurityProtocol::Ssl);
    settings.kafka.ssl_ca_file = None;
    refused_for(settings, Refusal::Certificate).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_to_the_tls_port_is_a_tls_mismatch() {
    let front = KafkaFront::start(front_options(Some(FrontTls::Server), None)).await;
    let settings = kafka_settings(&front, &unique("mismatch"), SecurityProtocol::Plaintext);
    refused_for(settings, Refusal::TlsMismatch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_scram_password_is_an_authentication_refusal() {
    let (user, password) = user();
    let front = KafkaFront::start(front_options(
        Some(FrontTls::Server),
        Some(Sasl::ScramSha256 { user, password }),
    ))
    .await;
    let settings = kafka_settings(&front, &unique("wrong-pw"), SecurityProtocol::SaslSsl);
    let settings = with_password(settings, SaslMechanism::ScramSha256, "not-the-password");
    refused_for(settings, Refusal::Authentication).await;
    assert!(front.authentications().1 >= 1, "the double refused a login");
}

/// The real binary with a wrong password in a file: one log line names the
/// settings, the process keeps running and not ready, and the password is
/// in no output.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_names_the_setting_and_never_shows_the_secret() {
    let (user, password) = user();
    let front = KafkaFront::start(front_options(
        Some(FrontTls::Server),
        Some(Sasl::ScramSha512 { user, password }),
    ))
    .await;
    let secret = "Wr0ng-but-S3cret-pw";
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, format!("{secret}\n")).unwrap();
    let ca = front.ca_file().to_string_lossy().into_owned();
    let password_path = password_file.to_string_lossy().into_owned();
    let brokers = front.bootstrap();
    let env = [
        ("OPENIM_BRIDGE__SINK__KIND", "kafka"),
        ("OPENIM_BRIDGE__KAFKA__BROKERS", brokers.as_str()),
        ("OPENIM_BRIDGE__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
        ("OPENIM_BRIDGE__KAFKA__SASL_MECHANISM", "scram-sha-512"),
        ("OPENIM_BRIDGE__KAFKA__SASL_USERNAME", USER),
        (
            "OPENIM_BRIDGE__KAFKA__SASL_PASSWORD_FILE",
            password_path.as_str(),
        ),
        ("OPENIM_BRIDGE__KAFKA__SSL_CA_FILE", ca.as_str()),
    ];
    let running = process::spawn(&env);
    let refusals = || {
        running
            .stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("the broker refuses this replica"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(30), || refusals() >= 1).await,
        "no refusal logged: {:#?}",
        running.stderr.lock().unwrap()
    );
    // librdkafka retries many times meanwhile; the line is not repeated.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(front.authentications().1 >= 2, "the bridge kept retrying");
    assert_eq!(refusals(), 1);
    let log = running.stderr.lock().unwrap().join("\n");
    assert!(log.contains("kafka.sasl_password"), "{log}");
    assert!(log.contains("reason=\"authentication\""), "{log}");
    let metrics = metrics(running.addr).await;
    let ready = readyz(running.addr).await;
    assert_eq!(ready.status, 503);
    let mut child = running.child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running, not crash-looping"
    );
    let check = std::process::Command::new(process::BIN)
        .arg("--check-config")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(check.status.success());
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(printed.contains("sasl_password"), "{printed}");
    let ready_body = String::from_utf8_lossy(&ready.body).into_owned();
    for output in [&log, &metrics, &ready_body, &printed.into_owned()] {
        assert!(!output.contains(secret), "the secret leaked: {output}");
        assert!(!output.contains(PASSWORD), "a password leaked: {output}");
    }
    process::terminate(child);
}
