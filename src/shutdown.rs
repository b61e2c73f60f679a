//! The process's stop signal, and the shutdown timeline a load balancer
//! can follow.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::Stats;

/// Resolves when the bridge should stop serving, on this timeline:
///
/// 1. SIGTERM (or SIGINT): `/readyz` turns 503 (`shutting down`), while
///    callbacks are still accepted and acked, for `ready_delay`, so load
///    balancers' health checks and Kubernetes' endpoint removal take the
///    replica out before it stops listening;
/// 2. then (or at a second SIGTERM) it resolves: the bridge stops
///    accepting, finishes in-flight requests and drains the spool within
///    `shutdown.drain_timeout_ms` ([`crate::App::run`]).
pub async fn graceful(stats: Arc<Stats>, ready_delay: Duration) {
    signal().await;
    stats.shutting_down.set(1);
    info!(
        ready_delay_ms = ready_delay.as_millis() as u64,
        "stop signal: /readyz answers 503 now; still serving until the delay is over (a second signal stops at once)"
    );
    tokio::select! {
        () = tokio::time::sleep(ready_delay) => {}
        () = signal() => info!("second stop signal: stopping now"),
    }
}

/// Takes SIGTERM and SIGINT over from their default action (exit) now, so
/// a signal that arrives before [`graceful`] first runs still stops the
/// bridge gracefully. Tokio keeps a handler for the process's lifetime
/// once registered.
pub fn install_handlers() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
            if let Err(err) = signal(kind) {
                tracing::warn!(cause = %err, "cannot handle stop signals; SIGTERM stops the bridge at once");
            }
        }
    }
}

/// Resolves on SIGTERM (Docker, Kubernetes) or SIGINT (Ctrl-C).
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without signal handlers the process can still be killed;
            // serving matters more than graceful stop.
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After SIGTERM: how long the bridge keeps accepting and acking
    /// callbacks while `/readyz` already answers 503, so a load balancer's
    /// health check (or Kubernetes' endpoint removal) stops sending new
    /// ones before it stops listening. A second SIGTERM cuts it short.
    pub ready_delay_ms: u64,
    /// Then: how long in-flight requests may take to finish and spooled
    /// events to reach the broker before the bridge exits anyway (what is
    /// left stays in the spool).
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        // 5 s: several health checks of a load balancer checking every
        // second or faster, and Kubernetes' endpoint propagation. With the
        // 20 s drain, below Kubernetes' default 30 s grace period.
        Self {
            ready_delay_ms: 5_000,
            drain_timeout_ms: 20_000,
        }
    }
}
