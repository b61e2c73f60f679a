//! A broker that refuses this replica, as opposed to one that is down.
//!
//! A wrong password, an untrusted certificate or plaintext spoken to a TLS
//! port does not heal by waiting: a setting must change. Each sink sorts its
//! client's errors into a [`Refusal`] (or none: an outage) and reports it
//! with [`report`], which logs one line naming the setting to fix when the
//! reason changes (not at every reconnect), sets `broker_up` to 0 and the
//! `openim_bridge_broker_refused{reason}` gauge to 1. Events keep being
//! acked into the spool meanwhile; they go out once the setting is fixed.
//!
//! `/readyz` answers 503 until the broker first accepted this replica
//! ([`crate::stats::Stats::broker_accepted`]), so a rolling deploy with a
//! bad secret stalls while the old replicas keep serving.

use tracing::{error, info};

use crate::stats::Stats;

/// Why the broker refuses this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Wrong username, password or token; or no permission on the vhost.
    Authentication,
    /// The broker's certificate is not trusted, its name does not match,
    /// or the broker refused our client certificate.
    Certificate,
    /// TLS spoken to a plaintext port or the other way round.
    TlsMismatch,
}

impl Refusal {
    /// Every reason, for metrics initialisation.
    pub const ALL: [Refusal; 3] = [
        Refusal::Authentication,
        Refusal::Certificate,
        Refusal::TlsMismatch,
    ];

    /// The `reason` label and `/readyz` word.
    pub fn label(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Certificate => "certificate",
            Self::TlsMismatch => "tls_mismatch",
        }
    }
}

/// Reports a refusal: the gauges always, a log line when the reason is new.
/// `fix` names the settings to change; `detail` is the client's own words
/// (never a secret: broker clients do not echo credentials).
pub fn report(stats: &Stats, sink: &'static str, refusal: Refusal, detail: &str, fix: &str) {
    stats.broker_up.set(0);
    if stats.set_refusal(Some(refusal)) {
        error!(
            sink,
            reason = refusal.label(),
            cause = detail,
            "the broker refuses this replica: {fix}; callbacks are still acked and wait in the spool"
        );
    }
}

/// Reports that the broker accepted this replica (connected, authenticated,
/// topics or exchanges checked), clearing a refusal.
pub fn accepted(stats: &Stats, sink: &'static str) {
    stats.broker_accepted.set(1);
    if stats.set_refusal(None) {
        stats.broker_up.set(1);
        info!(sink, "the broker accepts this replica again");
    }
}
