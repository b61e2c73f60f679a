use super::*;
use crate::normalize::{CallbackKind, Event};
use crate::sink::dead_letter::DeadLetterFile;
use crate::spool;
use crate::spool::SpoolSettings;
use std::sync::Mutex;

/// A sink whose deliveries fail while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    log: Arc<Mutex<Vec<String>>>,
    fail_next: Arc<Mutex<usize>>,
    reject_id: Option<&'static str>,
}

impl Sink for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn destination(&self, _event: &Event) -> &str {
        "flaky"
    }
    async fn send(&mut self, event: &Event) -> Result<Delivery, SinkError> {
        if self.reject_id == Some(event.id.as_str()) {
            return Ok(super::super::settled(Err(SinkError::from(
                crate::sink::Rejection {
                    class: crate::sink::RejectClass::TooLarge,
                    code: None,
                    destination: crate::sink::Destination::topic("t"),
                    problem: "too large".into(),
                },
            ))));
        }
        let mut fail = self.fail_next.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Ok(super::super::settled(Err(SinkError::Retryable(
                "down".into(),
            ))));
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{}", event.key, event.id));
        Ok(super::super::settled(Ok(())))
    }
    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn close(self) {}
}

fn event(key: &str, id: usize) -> Event {
    Event {
        id: id.to_string(),
        kind: CallbackKind::GROUP_MESSAGE_SENT,
        source: Arc::from("s"),
        time: String::new(),
        key: key.into(),
        data: b"{}".to_vec().into(),
        traceparent: String::new(),
        tracestate: String::new(),
    }
}

/// Spools `events`, then publishes until the spool is drained.
async fn publish_all(sink: Flaky, events: Vec<Event>) -> (Arc<Stats>, tempfile::TempDir) {
    let stats = Arc::new(Stats::default());
    publish_all_on(sink, events, crate::spool::disk::os(), stats).await
}

/// [`publish_all`] with the dead-letter file on `disk`, counting in `stats`.
async fn publish_all_on(
    sink: Flaky,
    events: Vec<Event>,
    disk: crate::spool::disk::SharedDisk,
    stats: Arc<Stats>,
) -> (Arc<Stats>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let spool_settings = SpoolSettings {
        dir: dir.path().to_owned(),
        ..SpoolSettings::default()
    };
    let (writer, reader) = spool::open(&spool_settings, Arc::clone(&stats)).unwrap();
    for e in events {
        writer.append(e).await.unwrap();
    }
    drop(writer);
    let settings = SinkSettings {
        max_in_flight: 4,
        retry_initial_ms: 1,
        ..SinkSettings::default()
    };
    run(
        sink,
        reader,
        DeadLetter::from(DeadLetterFile::on(dir.path(), disk)),
        settings,
        Arc::clone(&stats),
    )
    .await;
    (stats, dir)
}

#[tokio::test(start_paused = true)]
async fn failed_events_are_resent_in_key_order() {
    let sink = Flaky::default();
    *sink.fail_next.lock().unwrap() = 2;
    let events = (0..6)
        .map(|i| event(if i % 2 == 0 { "a" } else { "b" }, i))
        .collect();
    let (stats, _dir) = publish_all(sink.clone(), events).await;
    let log = sink.log.lock().unwrap().clone();
    for key in ["a", "b"] {
        let ids: Vec<_> = log.iter().filter(|l| l.starts_with(key)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "key {key} out of order or duplicated: {log:?}");
        assert_eq!(ids.len(), 3, "{log:?}");
    }
    let snap = stats.snapshot();
    assert_eq!(snap.events_published, 6);
    assert_eq!(snap.events_retried, 2);
}

#[tokio::test(start_paused = true)]
async fn rejected_events_are_dead_lettered_not_retried() {
    let sink = Flaky {
        reject_id: Some("1"),
        ..Flaky::default()
    };
    let (stats, dir) = publish_all(sink.clone(), (0..3).map(|i| event("a", i)).collect()).await;
    assert_eq!(*sink.log.lock().unwrap(), ["a:0", "a:2"]);
    assert_eq!(stats.snapshot().events_rejected, 1);
    assert_eq!(stats.snapshot().events_published, 2);
    let dead =
        std::fs::read_to_string(dir.path().join(crate::sink::dead_letter::FILE_NAME)).unwrap();
    let line: serde_json::Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert_eq!(line["event"]["id"], "1");
    assert_eq!(line["reason"], "too large");
    assert_eq!(dead.lines().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_dead_letter_write_keeps_the_event_and_is_tried_again() {
    use crate::spool::disk::faults::{Faulty, Op, ENOSPC};
    let sink = Flaky {
        reject_id: Some("1"),
        ..Flaky::default()
    };
    let disk = Faulty::new();
    disk.fail(Op::Write, ENOSPC, 0, 2);
    let events = (0..3).map(|i| event("a", i)).collect();
    let stats = Arc::new(Stats::default());
    let (stats, dir) = publish_all_on(sink.clone(), events, disk.clone(), stats).await;
    assert_eq!(disk.failures(), 2, "both injected failures were hit");
    let dead =
        std::fs::read_to_string(dir.path().join(crate::sink::dead_letter::FILE_NAME)).unwrap();
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dead}");
    assert_eq!(lines[0]["event"]["id"], "1");
    assert_eq!(stats.snapshot().events_rejected, 1);
    assert!(sink.log.lock().unwrap().contains(&"a:2".to_owned()));
    assert_eq!(
        stats.snapshot().events_retried,
        0,
        "a failing dead-letter write holds back no other event"
    );
    assert_eq!(stats.spool_records.get(), 0, "the spool is drained");
}

#[test]
fn backoff_grows_to_the_cap_with_jitter() {
    let settings = SinkSettings {
        retry_initial_ms: 100,
        retry_max_ms: 400,
        ..SinkSettings::default()
    };
    let mut backoff = recover_backoff(&settings);
    let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
    assert!((50..=100).contains(&delays[0]), "{delays:?}");
    assert!((200..=400).contains(&delays[4]), "{delays:?}");
    backoff.reset();
    assert!(backoff.next_delay() <= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_confirmed_delivery_clears_a_refusal() {
    // As when a rotated secret failed for a while after the broker had
    // accepted this replica, and works again.
    let stats = Arc::new(Stats::default());
    refusal::accepted(&stats, "flaky");
    refusal::report(
        &stats,
        "flaky",
        refusal::Refusal::Authentication,
        "test",
        "test",
    );
    let events = vec![event("a", 0)];
    let (stats, _dir) =
        publish_all_on(Flaky::default(), events, crate::spool::disk::os(), stats).await;
    assert_eq!(stats.refusal(), None);
    assert_eq!(stats.broker_up.get(), 1);
}
