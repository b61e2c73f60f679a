//! The accept loop: HTTP/1.1 keep-alive connections (optionally over TLS)
//! served by hyper, at most `http.max_connections` at once, shut down
//! gracefully (stop accepting, let in-flight requests finish).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::handler::Handler;
use super::settings::{fit_open_files, HttpSettings};
use crate::stats::Stats;
use crate::telemetry::RateLimit;

/// What every connection task shares.
struct Shared {
    handler: Handler,
    builder: http1::Builder,
    tls: Option<TlsAcceptor>,
    stats: Arc<Stats>,
    header_timeout: Duration,
    /// Rate limit for "slow client" log lines.
    timeout_log: RateLimit,
}

/// Serves callbacks on `listener` until `shutdown` resolves, then waits up
/// to `drain` for open requests to finish. With `tls`, every connection
/// starts with a TLS handshake.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    stats: Arc<Stats>,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let header_timeout = Duration::from_millis(settings.header_read_timeout_ms);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let shared = Arc::new(Shared {
        handler,
        builder,
        tls,
        stats,
        header_timeout,
        timeout_log: RateLimit::default(),
    });
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(fit_open_files(
        settings.max_connections,
    )));
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
                    let task = connection(Arc::clone(&shared), graceful.watcher(), stream, peer, slot);
                    tokio::spawn(task);
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
    // Every connection is done: the refused callbacks still queued for the
    // invalid-callback log are written before the process exits. (A
    // connection still busy past the deadline keeps the handler; its log
    // then ends with the process.)
    if let Ok(shared) = Arc::try_unwrap(shared) {
        shared.handler.close().await;
    }
}

/// One client connection, from TLS handshake (if any) to close. `slot` is
/// its share of `http.max_connections`, given back when it ends.
async fn connection(
    shared: Arc<Shared>,
    watcher: Watcher,
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
) {
    // Acks are tiny: send them now, not after Nagle's delay.
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, cause = %err, "could not set TCP_NODELAY");
    }
    match &shared.tls {
        None => http(&shared, watcher, stream, peer).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(&shared, watcher, tls, peer).await,
                Ok(Err(err)) => debug!(%peer, cause = %err, "TLS handshake failed"),
                Err(_) => shared.slow_client(peer),
            }
        }
    }
    drop(slot);
}

/// HTTP/1.1 over an established (plain or TLS) stream.
async fn http<S>(shared: &Arc<Shared>, watcher: Watcher, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = Arc::clone(shared);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(shared.handler.handle(request, peer.ip()).await) }
    });
    let served = watcher.watch(
        shared
            .builder
            .serve_connection(TokioIo::new(stream), service),
    );
    match served.await {
        Err(err) if err.is_timeout() => shared.slow_client(peer),
        Err(err) => debug!(%peer, cause = %err, "connection ended with an error"),
        Ok(()) => {}
    }
}

impl Shared {
    /// Counts and (rate-limited) logs a client too slow to send its headers
    /// or finish its TLS handshake.
    fn slow_client(&self, peer: SocketAddr) {
        Stats::add(&self.stats.header_timeouts, 1);
        if let Some(suppressed) = self.timeout_log.allow() {
            warn!(%peer, suppressed, "closed a connection: request headers did not arrive within http.header_read_timeout_ms");
        }
    }
}
