//! The spool: what is appended is read back in order, across segments,
//! restarts, torn tails and every ack mode.

use super::*;
use crate::normalize::{CallbackKind, Event};
use crate::spool::settings::AckMode;

/// Durable acks, 4 KiB segments, no size limit to speak of.
pub(super) fn settings(dir: &Path) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_owned(),
        max_bytes: 1 << 30,
        ack: AckMode::Durable,
        sync_interval_ms: 100,
        segment_bytes: 4096,
        dead_letter_max_bytes: 1 << 20,
    }
}

/// Event `i` (id `m0000i`, three keys in turn; a tracestate ends its frame).
pub(super) fn event(i: usize) -> Event {
    Event {
        id: format!("m{i:05}"),
        kind: CallbackKind::GROUP_MESSAGE_SENT,
        source: Arc::from("openim"),
        time: "2024-07-01T02:13:20.123Z".to_owned(),
        key: format!("g{}", i % 3),
        data: format!("{{\"n\":{i}}}").into_bytes().into(),
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        tracestate: "openim=1".into(),
    }
}

/// Appends `range`, then closes the writer.
async fn spool(settings: &SpoolSettings, range: std::ops::Range<usize>) -> SpoolReader {
    let (writer, reader) = open(settings, Arc::default()).unwrap();
    for i in range {
        writer.append(event(i)).await.unwrap();
    }
    drop(writer);
    reader
}

async fn read_ids(reader: &mut SpoolReader, complete: bool) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(item) = reader.recv().await {
        ids.push(item.event.id.clone());
        if complete {
            reader.complete(item.position);
        }
    }
    ids
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| event(i).id).collect()
}

#[tokio::test]
async fn everything_appended_is_read_in_order_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = spool(&settings(dir.path()), 0..300).await;
    assert!(
        list_segments(dir.path()).unwrap().len() > 3,
        "segments rolled"
    );
    assert_eq!(read_ids(&mut reader, true).await, ids(0..300));
}

#[tokio::test]
async fn confirmed_events_are_not_replayed_and_their_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let mut reader = spool(&settings, 0..300).await;
    read_ids(&mut reader, true).await;
    reader.checkpoint_and_wait().await;
    drop(reader);
    // Only the writer's last (empty or partial) segments remain.
    assert!(list_segments(dir.path()).unwrap().len() <= 2);
    let mut reader = spool(&settings, 300..310).await;
    assert_eq!(read_ids(&mut reader, true).await, ids(300..310));
}

#[tokio::test]
async fn unconfirmed_events_are_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let mut reader = spool(&settings, 0..100).await;
    // Confirm the first 40 only, out of order inside the window.
    let mut handed = Vec::new();
    for _ in 0..50 {
        handed.push(reader.recv().await.unwrap());
    }
    for item in handed.iter().take(40).rev() {
        reader.complete(item.position);
    }
    reader.checkpoint_and_wait().await;
    drop(reader); // a crash: nothing else is written
    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
    assert_eq!(stats.spool_records.get(), 60, "recovered backlog counted");
    for i in 100..105 {
        writer.append(event(i)).await.unwrap();
    }
    drop(writer);
    assert_eq!(read_ids(&mut reader, true).await, ids(40..105));
    assert_eq!(stats.spool_records.get(), 0, "every record completed");
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_the_intact_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        segment_bytes: 1 << 20,
        ..settings(dir.path())
    };
    drop(spool(&settings, 0..10).await);
    let last = segment_path(
        dir.path(),
        *list_segments(dir.path()).unwrap().last().unwrap(),
    );
    let intact = fs::metadata(&last).unwrap().len();
    // A crash in the middle of writing record 10: half a frame.
    let mut frame = Vec::new();
    record::encode(&event(10), &mut frame);
    let mut bytes = fs::read(&last).unwrap();
    bytes.extend_from_slice(&frame[..frame.len() / 2]);
    fs::write(&last, bytes).unwrap();

    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
    assert_eq!(fs::metadata(&last).unwrap().len(), intact, "torn bytes cut");
    assert_eq!(
        stats.snapshot().spool_torn_bytes,
        (frame.len() / 2) as u64,
        "torn bytes reported"
    );
    writer.append(event(11)).await.unwrap();
    drop(writer);
    let mut expected = ids(0..10);
    expected.push(event(11).id);
    assert_eq!(read_ids(&mut reader, true).await, expected);
}

#[tokio::test]
async fn a_corrupt_record_in_the_tail_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        segment_bytes: 1 << 20,
        ..settings(dir.path())
    };
    drop(spool(&settings, 0..5).await);
    let last = segment_path(
        dir.path(),
        *list_segments(dir.path()).unwrap().last().unwrap(),
    );
    let mut bytes = fs::read(&last).unwrap();
    let end = bytes.len();
    bytes[end - 3] ^= 0xff; // flip a bit in the last record
    fs::write(&last, bytes).unwrap();
    let mut reader = spool(&settings, 0..0).await;
    assert_eq!(read_ids(&mut reader, true).await, ids(0..4));
}

#[tokio::test]
async fn a_full_spool_refuses_then_recovers_when_segments_are_freed() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        max_bytes: 16 * 1024,
        ..settings(dir.path())
    };
    let (writer, mut reader) = open(&settings, Arc::default()).unwrap();
    let mut accepted = 0;
    let err = loop {
        match writer.append(event(accepted)).await {
            Ok(()) => accepted += 1,
            Err(err) => break err,
        }
    };
    assert!(matches!(err, AppendError::Full { .. }), "{err:?}");
    assert!(accepted > 50, "{accepted}");
    for _ in 0..accepted {
        let item = reader.recv().await.unwrap();
        reader.complete(item.position);
    }
    reader.checkpoint_and_wait().await;
    writer.append(event(accepted)).await.unwrap();
}

#[tokio::test]
async fn memory_mode_acks_without_waiting_and_still_writes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        ack: AckMode::Memory,
        ..settings(dir.path())
    };
    let mut reader = spool(&settings, 0..50).await;
    assert_eq!(read_ids(&mut reader, true).await, ids(0..50));
}

#[tokio::test]
async fn written_and_memory_modes_sync_on_a_timer_not_per_batch() {
    for ack in [AckMode::Written, AckMode::Memory, AckMode::Durable] {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            ack,
            sync_interval_ms: 60_000,
            segment_bytes: 1 << 20,
            ..settings(dir.path())
        };
        let stats = Arc::new(Stats::default());
        let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
        for i in 0..20 {
            writer.append(event(i)).await.unwrap();
            // Written (and readable) before any sync.
            assert_eq!(reader.recv().await.unwrap().event.id, event(i).id);
        }
        let syncs = stats.snapshot().spool_syncs;
        match ack {
            AckMode::Durable => assert!(syncs >= 20, "{syncs}: one per awaited append"),
            _ => assert_eq!(syncs, 0, "{ack:?} synced before its interval"),
        }
        let stopped = writer.stopped();
        drop(writer);
        stopped.await;
        assert!(
            stats.snapshot().spool_syncs > syncs,
            "{ack:?}: the writer syncs what it wrote when it stops"
        );
    }
}

#[tokio::test]
async fn durable_appends_waiting_together_share_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(Stats::default());
    let (writer, _reader) = open(&settings(dir.path()), Arc::clone(&stats)).unwrap();
    let appends = (0..200).map(|i| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.append(event(i)).await })
    });
    for append in futures_util::future::join_all(appends).await {
        append.unwrap().unwrap();
    }
    let syncs = stats.snapshot().spool_syncs;
    assert!(
        syncs < 100,
        "{syncs} syncs for 200 appends: no group commit"
    );
}

#[tokio::test]
async fn segments_are_preallocated_and_recovery_finds_where_the_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        segment_bytes: 64 * 1024,
        ..settings(dir.path())
    };
    let (writer, reader) = open(&settings, Arc::default()).unwrap();
    let mut i = 0;
    // Into the third segment (the second was prepared, then used as it was).
    while list_segments(dir.path()).unwrap().len() < 3 {
        writer.append(event(i)).await.unwrap();
        i += 1;
    }
    let segments = list_segments(dir.path()).unwrap();
    let open_segment = segment_path(dir.path(), segments[2]);
    assert_eq!(
        fs::metadata(&open_segment).unwrap().len(),
        64 * 1024,
        "the segment in use was preallocated"
    );
    writer.append(event(i)).await.unwrap();
    i += 1;
    drop((writer, reader));
    // A crash while writing the next record into the zeros: half of it.
    let mut bytes = fs::read(&open_segment).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let mut frame = Vec::new();
    record::encode(&event(i), &mut frame);
    let mut torn = frame[..frame.len() / 2].to_vec();
    torn.iter_mut()
        .skip(record::HEADER_LEN)
        .for_each(|b| *b |= 1);
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    fs::write(&open_segment, &bytes).unwrap();

    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
    assert_eq!(
        stats.snapshot().spool_torn_bytes,
        torn.len() as u64,
        "the torn record is cut, the zeros are not counted"
    );
    assert_eq!(fs::metadata(&open_segment).unwrap().len(), end as u64);
    drop(writer);
    assert_eq!(read_ids(&mut reader, true).await, ids(0..i));
}

#[tokio::test]
async fn written_events_reach_the_reader_from_memory_and_from_disk_when_behind() {
    use super::disk::faults::{Faulty, Op, EIO};
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let stats = Arc::new(Stats::default());
    let settings = SpoolSettings {
        segment_bytes: 1 << 20,
        ..settings(dir.path())
    };
    let (writer, mut reader) = open_on(&settings, Arc::clone(&stats), disk.clone()).unwrap();
    // Keeping up: every event comes from memory; disk reads would fail.
    disk.fail(Op::Read, EIO, 0, usize::MAX);
    for i in 0..50 {
        writer.append(event(i)).await.unwrap();
        let item = reader.recv().await.unwrap();
        assert_eq!(item.event.id, event(i).id);
        reader.complete(item.position);
    }
    assert_eq!(
        stats.snapshot().spool_read_errors,
        0,
        "nothing read from disk"
    );
    disk.clear();
    // Behind by more than memory holds: the rest comes from disk, once each.
    let big = |i: usize| Event {
        data: vec![b'7'; 64 * 1024].into(),
        ..event(i)
    };
    for i in 50..150 {
        writer.append(big(i)).await.unwrap();
    }
    disk.fail(Op::Read, EIO, 0, 1);
    drop(writer);
    assert_eq!(read_ids(&mut reader, true).await, ids(50..150));
    assert_eq!(disk.failures(), 1, "the reader read from disk");
}

#[tokio::test]
async fn one_spool_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader) = open(&settings(dir.path()), Arc::default()).unwrap();
    let err = open(&settings(dir.path()), Arc::default())
        .unwrap_err()
        .to_string();
    let holder = format!("pid {}", std::process::id());
    assert!(
        err.contains("another openim-bridge process") && err.contains(&holder),
        "{err}"
    );
    // The reader still deletes segments and writes the acked position:
    // the lock stays until it is gone too.
    let stopped = writer.stopped();
    drop(writer);
    stopped.await;
    let again = open(&settings(dir.path()), Arc::default());
    assert!(again.is_err(), "lock released while the reader works");
    drop(reader);
    open(&settings(dir.path()), Arc::default())
        .expect("lock released once the writer and the reader are gone");
}

#[tokio::test]
async fn opening_from_async_code_lets_other_tasks_run_while_it_waits_for_the_lock() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (writer, _reader) = open(&settings(dir.path()), Arc::default()).unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // This test's runtime has one thread: a blocking wait would stop it.
    let err = open_async(&settings(dir.path()), Arc::default())
        .await
        .unwrap_err();
    ticker.abort();
    assert!(
        err.to_string().contains("another openim-bridge process"),
        "{err}"
    );
    let ticks = ticks.load(Ordering::Relaxed);
    assert!(
        ticks >= 50,
        "{ticks} ticks in the 2 s lock wait: the runtime was blocked"
    );
    drop(writer);
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = open(&settings(&file.path().join("sub")), Arc::default()).unwrap_err();
    assert!(err.to_string().contains("spool.dir"), "{err}");
}
