//! The metrics as Prometheus reads them.
use super::*;

#[test]
fn renders_prometheus_names_and_values() {
    let stats = Stats::default();
    for _ in 0..3 {
        stats.callback("callbackAfterSendGroupMsgCommand", CallbackOutcome::Acked);
    }
    stats.events("kafka", EventOutcome::Published, 2);
    stats.ack_seconds.observe(0.0004);
    let text = stats.render();
    for line in [
        "openim_bridge_callbacks_total{command=\"callbackAfterSendGroupMsgCommand\",outcome=\"acked\"} 3",
        "openim_bridge_events_published_total{sink=\"kafka\"} 2",
        "openim_bridge_ack_duration_seconds_count 1",
        "openim_bridge_broker_up 1",
        "# EOF",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
