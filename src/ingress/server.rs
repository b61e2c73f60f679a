//! The accept loop: HTTP/1.1 keep-alive connections served by hyper, shut
//! down gracefully (stop accepting, let in-flight requests finish).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::handler::Handler;
use crate::config::HttpSettings;
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// Serves callbacks on `listener` until `shutdown` resolves, then waits up
/// to `drain` for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    stats: Arc<Stats>,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let handler = Arc::new(handler);
    let timeout_log = Arc::new(RateLimit::default());
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(settings.header_read_timeout_ms))
        .keep_alive(true);
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting until one closes.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                // The semaphore is never closed.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Acks are tiny: send them now, not after Nagle's delay.
                    if let Err(err) = stream.set_nodelay(true) {
                        debug!(%peer, cause = %err, "could not set TCP_NODELAY");
                    }
                    let handler = Arc::clone(&handler);
                    let service = service_fn(move |request| {
                        let handler = Arc::clone(&handler);
                        async move { Ok::<_, Infallible>(handler.handle(request, peer.ip()).await) }
                    });
                    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    let (stats, timeout_log) = (Arc::clone(&stats), Arc::clone(&timeout_log));
                    tokio::spawn(async move {
                        match connection.await {
                            Err(err) if err.is_timeout() => {
                                Stats::add(&stats.header_timeouts, 1);
                                if let Some(suppressed) = timeout_log.allow() {
                                    warn!(%peer, suppressed, "closed a connection: request headers did not arrive within http.header_read_timeout_ms");
                                }
                            }
                            Err(err) => debug!(%peer, cause = %err, "connection ended with an error"),
                            Ok(()) => {}
                        }
                        drop(slot);
                    });
                }
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(cause = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    info!(
        open_connections = graceful.count(),
        "stopped accepting; finishing open requests"
    );
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("some connections were still busy at the shutdown deadline");
    }
}
