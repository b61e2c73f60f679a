//! The ceiling: a bare hyper server that reads and parses each request's
//! JSON body and answers OpenIM's "continue" ack, nothing else (issue 27's
//! anchor: any bridge must at least do that much). Same runtime shape as the
//! bridge (tokio multi-thread, hyper HTTP/1.1, keep-alive), run as its own
//! process so its CPU is measured the same way.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The environment variable that makes the benchmark binary the bare server.
pub const ENV: &str = "OPENIM_BRIDGE_BENCH_BARE";

/// Serves on 127.0.0.1:0 until killed; prints the address as the bridge
/// does ("listening on http://ADDR").
pub fn serve() -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        eprintln!("listening on http://{}", listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async {
                    if let Ok(body) = request.into_body().collect().await {
                        let parsed = serde_json::from_slice::<serde_json::Value>(&body.to_bytes());
                        std::hint::black_box(parsed.is_ok());
                    }
                    let response = hyper::Response::builder()
                        .header("Content-Type", "application/json")
                        .body(Full::new(Bytes::from_static(super::ACK)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    std::process::exit(0)
}
