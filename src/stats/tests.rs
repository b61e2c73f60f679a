//! The metrics as Prometheus reads them.
use super::*;

#[test]
fn renders_prometheus_names_and_values() {
    let stats = Stats::default();
    for _ in 0..3 {
        stats.callback(
            Some(CallbackKind::GROUP_MESSAGE_SENT),
            CallbackOutcome::Acked,
        );
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

#[test]
fn each_kind_and_outcome_counts_in_its_own_series() {
    for (at, outcome) in CallbackOutcome::ALL.into_iter().enumerate() {
        assert_eq!(outcome.index(), at);
    }
    let stats = Stats::default();
    let counted = [
        (
            Some(CallbackKind::GROUP_MESSAGE_SENT),
            CallbackOutcome::Acked,
            2,
        ),
        (
            Some(CallbackKind::GROUP_MESSAGE_SENT),
            CallbackOutcome::Invalid,
            1,
        ),
        (
            Some(CallbackKind::SINGLE_MESSAGE_SENT),
            CallbackOutcome::Acked,
            4,
        ),
        (None, CallbackOutcome::Unauthorized, 3),
        (
            Some(CallbackKind::UNKNOWN),
            CallbackOutcome::Unauthorized,
            1,
        ),
    ];
    for (kind, outcome, times) in counted {
        for _ in 0..times {
            stats.callback(kind, outcome);
        }
    }
    let text = stats.render();
    for line in [
        r#"callbacks_total{command="callbackAfterSendGroupMsgCommand",outcome="acked"} 2"#,
        r#"callbacks_total{command="callbackAfterSendGroupMsgCommand",outcome="invalid"} 1"#,
        r#"callbacks_total{command="callbackAfterSendSingleMsgCommand",outcome="acked"} 4"#,
        r#"callbacks_total{command="unknown",outcome="unauthorized"} 4"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("openim_bridge_callbacks_total{").count(),
        4,
        "{text}"
    );
}
