//! HTTPS on the listener: a round trip with a self-signed certificate made
//! here, and a clear startup error for an unusable one.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_over_tls_are_acked() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let mut settings = test_settings();
    settings.http.tls_cert_file = Some(cert_file);
    settings.http.tls_key_file = Some(key_file);
    let bridge = TestBridge::start(settings).await;

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    let server_name = "localhost".try_into().unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post("/openim/callbackAfterSendGroupMsgCommand")
        .header("Host", "localhost")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(fixture(
            "after_send_group_msg_01_text_ios.json",
        ))))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.as_ref(), ACK.as_bytes());

    // Plain HTTP to the TLS port gets no ack.
    let reply = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        OpenImClient::connect(bridge.addr)
            .await
            .try_post("/callbackAfterSendGroupMsgCommand", "{}")
            .await
    })
    .await
    .expect("the server closes a plain-text connection");
    assert!(
        reply.is_err(),
        "plain HTTP was answered on the TLS listener"
    );
    bridge.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unusable_certificate_fails_startup_naming_the_file() {
    let dir = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let cert_file = dir.join("cert.pem");
    std::fs::write(&cert_file, "not a certificate").unwrap();
    let mut settings = test_settings();
    settings.http.tls_cert_file = Some(cert_file.clone());
    settings.http.tls_key_file = Some(dir.join("missing-key.pem"));
    let err = startup_error(settings).await;
    assert!(
        err.contains("cert.pem") && err.contains("http.tls_cert_file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
