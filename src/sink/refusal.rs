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
//! ([`crate::stats::Stats::accepted`]), so a rolling deploy with a
//! bad secret stalls while the old replicas keep serving.

use tracing::{error, info};

pub use crate::stats::Refusal;
use crate::stats::Stats;

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
    stats.set_accepted();
    if stats.set_refusal(None) {
        stats.broker_up.set(1);
        info!(sink, "the broker accepts this replica again");
    }
}
