//! RabbitMQ over TLS (`amqps://`), against a real RabbitMQ node with a TLS
//! listener: a custom CA, login with a client certificate, and what a user
//! sees when the CA, the password or the scheme is wrong.

mod common;

use std::time::Duration;

use common::rabbitmq::{header, Amqps, Binding};
use common::*;
use openim_bridge::settings::{Secret, SinkKind};
use openim_bridge::stats::Refusal;
use openim_bridge::Settings;

fn amqps_settings(tls: &Amqps, exchange: &str) -> Settings {
    let mut settings = test_settings();
    settings.sink.kind = SinkKind::Rabbitmq;
    settings.rabbitmq.url = tls.url.clone();
    settings.rabbitmq.tls_ca_file = Some(tls.ca.clone());
    settings.rabbitmq.exchange = exchange.to_owned();
    settings
}

/// Posts one group message and reads it back from the node's plain port.
async fn publish_and_read_back(bridge: &TestBridge, tls: &Amqps, exchange: &str) {
    let mut binding = Binding::new(&tls.plain_url, exchange, "#").await;
    let id = unique("amqps-msg");
    let body = group_message(&id, "g-tls");
    let reply = post(bridge.addr, "/callbackAfterSendGroupMsgCommand", &body).await;
    assert_ack(&reply);
    let deliveries = binding.read(1, Duration::from_secs(20)).await;
    assert_eq!(deliveries.len(), 1, "the event arrived over amqps");
    let delivery = &deliveries[0];
    assert_eq!(header(delivery, "ce-id"), id);
    assert_eq!(header(delivery, "ce-type"), "io.openim.group.message.sent");
    assert_eq!(header(delivery, "ce-subject"), "g-tls");
    assert_eq!(header(delivery, "ce-specversion"), "1.0");
    let data: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_data_carries_input(&data, &serde_json::from_str(&body).unwrap());
    binding.delete_exchange(exchange).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn amqps_with_a_custom_ca_publishes_with_confirms() {
    let tls = Amqps::from_env();
    let exchange = unique("openim-amqps");
    let bridge = TestBridge::start(amqps_settings(&tls, &exchange)).await;
    publish_and_read_back(&bridge, &tls, &exchange).await;
    assert_eq!(readyz(bridge.addr).await.status, 200);
    assert!(bridge.stats.accepted());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_logs_in_with_external() {
    let tls = Amqps::from_env();
    let exchange = unique("openim-amqps-cert");
    let mut settings = amqps_settings(&tls, &exchange);
    // No password anywhere: the certificate's CN (guest) is the user.
    settings.rabbitmq.url = format!("amqps://{}/%2f?auth_mechanism=external", tls.authority());
    settings.rabbitmq.tls_cert_file = Some(tls.client_cert.clone());
    settings.rabbitmq.tls_key_file = Some(tls.client_key.clone());
    let bridge = TestBridge::start(settings).await;
    publish_and_read_back(&bridge, &tls, &exchange).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_their_own_keys_override_the_url() {
    let tls = Amqps::from_env();
    let exchange = unique("openim-amqps-creds");
    let mut settings = amqps_settings(&tls, &exchange);
    settings.rabbitmq.url = format!("amqps://nobody:wrong@{}/%2f", tls.authority());
    settings.rabbitmq.username = Some("guest".to_owned());
    settings.rabbitmq.password = Some(Secret::new("guest"));
    let bridge = TestBridge::start(settings).await;
    publish_and_read_back(&bridge, &tls, &exchange).await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_ca_the_certificate_is_refused_clearly() {
    let tls = Amqps::from_env();
    let mut settings = amqps_settings(&tls, &unique("openim-amqps-noca"));
    settings.rabbitmq.tls_ca_file = None;
    refused_for(settings, Refusal::Certificate).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_an_authentication_refusal() {
    let tls = Amqps::from_env();
    let mut settings = amqps_settings(&tls, &unique("openim-amqps-pw"));
    settings.rabbitmq.password = Some(Secret::new("not-the-password"));
    refused_for(settings, Refusal::Authentication).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_amqp_to_the_tls_port_is_a_tls_mismatch() {
    let tls = Amqps::from_env();
    let mut settings = amqps_settings(&tls, &unique("openim-amqp-to-tls"));
    settings.rabbitmq.url = format!("amqp://guest:guest@{}/%2f", tls.authority());
    settings.rabbitmq.tls_ca_file = None;
    refused_for(settings, Refusal::TlsMismatch).await;
}
