//! The Kafka front of the test helpers (tests/common/kafka_front) works:
//! plain rdkafka clients publish and read back through TLS, mutual TLS and
//! every SASL mechanism with the right settings, and are refused with a
//! wrong CA, without a client certificate or with bad credentials. Each
//! test runs its own front and Tansu.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kafka::read_with;
use common::kafka_front::{FrontOptions, FrontTls, KafkaFront, Sasl};
use common::unique;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Properties = Vec<(String, String)>;

/// What librdkafka reported through the error callback: code and reason.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<(RDKafkaErrorCode, String)>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            // Poisoned only if a test already panicked.
            self.0.lock().unwrap().push((code, reason.to_owned()));
        }
    }
}

/// Errors reported while a client was refused.
#[derive(Debug)]
struct Refusal(Vec<(RDKafkaErrorCode, String)>);

impl Refusal {
    /// Asserts an error with `code` whose reason contains `text` was seen.
    fn assert(&self, code: RDKafkaErrorCode, text: &str) {
        assert!(
            self.0
                .iter()
                .any(|(seen, reason)| *seen == code && reason.contains(text)),
            "no {code:?} error with {text:?} among {:#?}",
            self.0
        );
    }
}

/// Publishes one record (key `key-1`, header `trace: t-1`, a JSON value)
/// to `topic` with `properties`, giving up after `timeout`. On failure:
/// the delivery error and every error librdkafka reported.
async fn publish(
    front: &KafkaFront,
    properties: &Properties,
    topic: &str,
    timeout: Duration,
) -> Result<(), (KafkaError, Refusal)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", front.bootstrap())
        .set("message.timeout.ms", timeout.as_millis().to_string());
    for (key, value) in properties {
        config.set(key, value);
    }
    let errors = Errors::default();
    let producer: FutureProducer<Errors> = config
        .create_with_context(errors.clone())
        .expect("producer");
    let record = FutureRecord::to(topic)
        .key("key-1")
        .payload(r#"{"n":1}"#)
        .headers(OwnedHeaders::new().insert(Header {
            key: "trace",
            value: Some("t-1"),
        }));
    producer
        .send(record, Duration::ZERO)
        .await
        .map(drop)
        .map_err(|(error, _)| (error, Refusal(errors.0.lock().unwrap().clone())))
}

/// Publishes with the front's own client properties and reads the record
/// back through the front.
async fn round_trip(front: &KafkaFront) {
    let topic = unique("front");
    front.create_topic(&topic, 1).await;
    let properties = front.client_properties();
    publish(front, &properties, &topic, Duration::from_secs(20))
        .await
        .expect("publish through the front");
    let records = read_with(
        &front.bootstrap(),
        &properties,
        &topic,
        1,
        1,
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), 1, "read back through the front");
    assert_eq!(records[0].key, "key-1");
    assert_eq!(records[0].header("trace"), "t-1");
    assert_eq!(records[0].value, serde_json::json!({"n": 1}));
}

/// Publishing with `properties` fails; what librdkafka reported.
async fn refused(front: &KafkaFront, properties: &Properties) -> Refusal {
    let (error, refusal) = publish(
        front,
        properties,
        &unique("refused"),
        Duration::from_secs(3),
    )
    .await
    .expect_err("the front refuses this client");
    assert_eq!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    );
    refusal
}

/// `properties` with `key` set to `value`.
fn with(properties: &Properties, key: &str, value: &str) -> Properties {
    let mut properties: Properties = without(properties, &[key]);
    properties.push((key.to_owned(), value.to_owned()));
    properties
}

/// `properties` without `keys`.
fn without(properties: &Properties, keys: &[&str]) -> Properties {
    properties
        .iter()
        .filter(|(key, _)| !keys.contains(&key.as_str()))
        .cloned()
        .collect()
}

fn sasl(sasl: Sasl) -> FrontOptions {
    FrontOptions {
        tls: None,
        sasl: Some(sasl),
    }
}

/// A front requiring `options` publishes with the right credentials and
/// refuses `wrong` (one property changed), counting both in the double.
async fn authenticates(options: FrontOptions, wrong: (&str, &str)) {
    let front = KafkaFront::start(options).await;
    round_trip(&front).await;
    let (successes, failures) = front.authentications();
    assert!(successes > 0, "the double authenticated the client");
    assert_eq!(failures, 0);

    refused(&front, &with(&front.client_properties(), wrong.0, wrong.1))
        .await
        .assert(
            RDKafkaErrorCode::Authentication,
            "Authentication failed: Invalid username or password",
        );
    assert!(
        front.authentications().1 > 0,
        "the double counted a failure"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_publishes_and_refuses_an_unknown_ca() {
    let front = KafkaFront::start(FrontOptions {
        tls: Some(FrontTls::Server),
        sasl: None,
    })
    .await;
    round_trip(&front).await;

    let wrong_ca = with(
        &front.client_properties(),
        "ssl.ca.location",
        &front.other_ca_file().to_string_lossy(),
    );
    refused(&front, &wrong_ca)
        .await
        .assert(RDKafkaErrorCode::SSL, "certificate verify failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let front = KafkaFront::start(FrontOptions {
        tls: Some(FrontTls::Mutual),
        sasl: None,
    })
    .await;
    round_trip(&front).await;

    let client_cert = ["ssl.certificate.location", "ssl.key.location"];
    let anonymous = without(&front.client_properties(), &client_cert);
    // TLS 1.3: the client's handshake completes before the server checks
    // its certificate; the server's alert arrives with the first read.
    refused(&front, &anonymous).await.assert(
        RDKafkaErrorCode::BrokerTransportFailure,
        "alert certificate required",
    );

    let (cert, key) = front.untrusted_client_cert("stranger");
    let stranger = with(
        &with(&anonymous, client_cert[0], &cert.to_string_lossy()),
        client_cert[1],
        &key.to_string_lossy(),
    );
    refused(&front, &stranger)
        .await
        .assert(RDKafkaErrorCode::BrokerTransportFailure, "alert unknown ca");
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plain_checks_the_password() {
    let user = Sasl::Plain {
        user: "bridge".to_owned(),
        password: "plain-secret".to_owned(),
    };
    authenticates(sasl(user), ("sasl.password", "wrong")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_sha_256_checks_the_proof() {
    let user = Sasl::ScramSha256 {
        user: "bridge".to_owned(),
        password: "scram-256-secret".to_owned(),
    };
    authenticates(sasl(user), ("sasl.password", "wrong")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_sha_512_checks_the_user() {
    let user = Sasl::ScramSha512 {
        user: "bridge".to_owned(),
        password: "scram-512-secret".to_owned(),
    };
    authenticates(sasl(user), ("sasl.username", "someone-else")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_oauthbearer_checks_the_token_subject() {
    let principal = Sasl::OAuthBearer {
        principal: "bridge".to_owned(),
    };
    authenticates(
        sasl(principal),
        ("sasl.oauthbearer.config", "principal=someone-else"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_over_mutual_tls() {
    let options = FrontOptions {
        tls: Some(FrontTls::Mutual),
        sasl: Some(Sasl::ScramSha512 {
            user: "bridge".to_owned(),
            password: "scram-512-secret".to_owned(),
        }),
    };
    authenticates(options, ("sasl.password", "wrong")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn before_authentication_only_api_versions_and_sasl_are_answered() {
    let front = KafkaFront::start(sasl(Sasl::Plain {
        user: "bridge".to_owned(),
        password: "plain-secret".to_owned(),
    }))
    .await;

    // ApiVersions v0 is relayed to Tansu, which must advertise the SASL
    // APIs at the versions librdkafka uses (or it would not try SASL).
    let mut stream = tokio::net::TcpStream::connect(front.bootstrap())
        .await
        .unwrap();
    stream.write_all(&request(18, 0, b"")).await.unwrap();
    let reply = read_reply(&mut stream).await.expect("ApiVersions reply");
    let versions = api_versions(&reply);
    for (api, name) in [(17, "SaslHandshake"), (36, "SaslAuthenticate")] {
        let range = versions.iter().find(|(key, _, _)| *key == api);
        assert!(
            range.is_some_and(|(_, min, max)| *min <= 1 && *max >= 1),
            "Tansu advertises {name} v1: {range:?}"
        );
    }

    // A Metadata request (any other API) closes the connection.
    stream
        .write_all(&request(3, 0, &0i32.to_be_bytes()))
        .await
        .unwrap();
    assert!(
        read_reply(&mut stream).await.is_none(),
        "metadata answered before authentication"
    );

    // A mechanism the double was not given: error 33 naming the enabled
    // one, then the connection closes.
    let mut stream = tokio::net::TcpStream::connect(front.bootstrap())
        .await
        .unwrap();
    let mechanism = b"SCRAM-SHA-256";
    let mut body = (mechanism.len() as i16).to_be_bytes().to_vec();
    body.extend(mechanism);
    stream.write_all(&request(17, 1, &body)).await.unwrap();
    let reply = read_reply(&mut stream).await.expect("SaslHandshake reply");
    let mut expected = 33i16.to_be_bytes().to_vec(); // UNSUPPORTED_SASL_MECHANISM
    expected.extend(1i32.to_be_bytes());
    expected.extend(5i16.to_be_bytes());
    expected.extend(b"PLAIN");
    assert_eq!(reply, expected);
    assert!(read_reply(&mut stream).await.is_none(), "closed after");
    assert_eq!(front.authentications(), (0, 1));
}

/// A request frame with header v1 (client id "front-test").
fn request(api_key: i16, api_version: i16, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend(api_key.to_be_bytes());
    frame.extend(api_version.to_be_bytes());
    frame.extend(7i32.to_be_bytes());
    frame.extend(10i16.to_be_bytes());
    frame.extend(b"front-test");
    frame.extend(body);
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend(frame);
    out
}

/// The next response frame after its correlation id; `None` on EOF.
async fn read_reply(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let len = stream.read_u32().await.ok()?;
        let mut frame = vec![0; len as usize];
        stream.read_exact(&mut frame).await.ok()?;
        assert_eq!(frame[..4], 7i32.to_be_bytes(), "correlation id");
        Some(frame[4..].to_vec())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the front answers or closes within 10 s")
}

/// (api key, min version, max version) of an ApiVersions v0 response body.
fn api_versions(body: &[u8]) -> Vec<(i16, i16, i16)> {
    let i16_at = |at: usize| i16::from_be_bytes([body[at], body[at + 1]]);
    assert_eq!(i16_at(0), 0, "ApiVersions error code");
    let count = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
    (0..count)
        .map(|i| 6 + i * 6)
        .map(|at| (i16_at(at), i16_at(at + 2), i16_at(at + 4)))
        .collect()
}
