//! The spool under injected disk faults (EMFILE, EIO, ENOSPC, short
//! writes): nothing acked is lost, a damaged record costs only itself, and
//! a full disk with a healthy broker recovers by itself.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::disk::faults::{Faulty, Op, EIO, EMFILE, ENOSPC};
use super::tests::event;
use super::*;
use crate::spool::settings::AckMode;

fn settings(dir: &Path, ack: AckMode) -> SpoolSettings {
    SpoolSettings {
        ack,
        ..super::tests::settings(dir)
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| event(i).id).collect()
}

/// Reads (and confirms) everything until the writer has stopped.
pub(super) async fn read_all(reader: &mut SpoolReader) -> Vec<String> {
    let mut read = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(30), reader.recv())
        .await
        .expect("the reader is stuck")
    {
        read.push(item.event.id.clone());
        reader.complete(item.position);
    }
    read
}

#[tokio::test]
async fn a_failing_read_is_retried_and_skips_nothing() {
    // The audit's case: 100 acked events not yet read, then the process is
    // briefly out of file descriptors (and a read fails with EIO). Before,
    // the reader took the errors for damage and jumped past all 100.
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader) = open(&settings(dir.path(), AckMode::Durable), Arc::default()).unwrap();
    for i in 0..100 {
        writer.append(event(i)).await.unwrap();
    }
    drop((writer, reader));
    // After a restart the reader reads them from disk (not from memory).
    let disk = Faulty::new();
    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open_on(
        &settings(dir.path(), AckMode::Durable),
        Arc::clone(&stats),
        disk.clone(),
    )
    .unwrap();
    let stopped = writer.stopped();
    drop(writer);
    stopped.await;
    // The reader has read nothing yet; now its file operations fail for a
    // while: opening a segment, sizing an older one, reading one.
    disk.fail(Op::Len, EMFILE, 0, 2);
    disk.fail(Op::Open, EMFILE, 0, 3);
    disk.fail(Op::Read, EIO, 1, 2);
    assert_eq!(read_all(&mut reader).await, ids(0..100));
    assert_eq!(disk.failures(), 7, "every injected fault was hit");
    let snap = stats.snapshot();
    assert_eq!(snap.spool_read_errors, 7, "each failed read counted");
    assert_eq!(snap.spool_skipped_bytes, 0, "nothing skipped");
    assert_eq!(stats.spool_read_failing.get(), 0, "reads work again");
    reader.checkpoint_and_wait().await;
    drop(reader);
    // Nothing is replayed either: every event was confirmed once.
    let (writer, mut reader) =
        open(&settings(dir.path(), AckMode::Durable), Arc::default()).unwrap();
    drop(writer);
    assert_eq!(read_all(&mut reader).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_record_with_a_bad_checksum_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), AckMode::Durable);
    let (writer, reader) = open(&settings, Arc::default()).unwrap();
    for i in 0..100 {
        writer.append(event(i)).await.unwrap();
    }
    drop((writer, reader));
    // Flip a byte inside the payload of the 3rd record of the first segment.
    let first = list_segments(dir.path()).unwrap()[0];
    let path = segment_path(dir.path(), first);
    let mut bytes = fs::read(&path).unwrap();
    let mut at = 0;
    for _ in 0..2 {
        match record::frame(&bytes[at..]) {
            record::Frame::Record(_, used) => at += used,
            other => panic!("{other:?}"),
        }
    }
    let third_len = match record::frame(&bytes[at..]) {
        record::Frame::Record(_, used) => used,
        other => panic!("{other:?}"),
    };
    bytes[at + record::HEADER_LEN + 3] ^= 0xff;
    fs::write(&path, bytes).unwrap();

    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open(&settings, Arc::clone(&stats)).unwrap();
    drop(writer);
    let mut expected = ids(0..100);
    expected.remove(2);
    assert_eq!(read_all(&mut reader).await, expected);
    assert_eq!(stats.snapshot().spool_skipped_bytes, third_len as u64);
}

#[tokio::test]
async fn a_full_disk_with_a_healthy_broker_frees_its_confirmed_segment() {
    // Every frame of the open segment is confirmed when the disk fills: no
    // confirmation will ever come again, yet the segment must be deleted
    // so that writes can succeed.
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let settings = SpoolSettings {
        segment_bytes: 1 << 20,
        ..settings(dir.path(), AckMode::Durable)
    };
    let (writer, mut reader) = open_on(&settings, Arc::default(), disk.clone()).unwrap();
    for i in 0..10 {
        writer.append(event(i)).await.unwrap();
        let item = reader.recv().await.unwrap();
        reader.complete(item.position);
    }
    let full = list_segments(dir.path()).unwrap();
    assert_eq!(full.len(), 1, "{full:?}");
    let publisher = tokio::spawn(async move { read_all(&mut reader).await });
    disk.short_writes(ENOSPC);
    let err = writer.append(event(10)).await.unwrap_err();
    assert!(matches!(err, AppendError::Io(_)), "{err:?}");
    let freed = async {
        while segment_path(dir.path(), full[0]).exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), freed)
        .await
        .expect("the confirmed segment was never deleted: the disk stays full");
    disk.clear();
    writer.append(event(11)).await.unwrap();
    drop(writer);
    assert_eq!(publisher.await.unwrap(), vec![event(11).id]);
}

#[tokio::test]
async fn a_segment_whose_directory_entry_cannot_be_synced_is_not_written_to() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), AckMode::Durable);
    let disk = Faulty::new();
    // At startup: the spool does not open, and says which directory.
    disk.fail(Op::SyncDir, EIO, 0, 1);
    let err = open_on(&settings, Arc::default(), disk.clone()).unwrap_err();
    assert!(err.to_string().contains("spool directory"), "{err}");
    let cause = std::error::Error::source(&err).and_then(|cause| cause.downcast_ref());
    assert_eq!(cause.and_then(std::io::Error::raw_os_error), Some(EIO));
    // At a roll (4 KiB segments): the writer goes on in its current
    // segment and rolls at the next batch; nothing is refused or lost.
    let (writer, mut reader) = open_on(&settings, Arc::default(), disk.clone()).unwrap();
    disk.fail(Op::SyncDir, EIO, 0, 1);
    for i in 0..100 {
        writer.append(event(i)).await.unwrap();
    }
    assert_eq!(disk.failures(), 2, "both injected faults were hit");
    drop(writer);
    assert_eq!(read_all(&mut reader).await, ids(0..100));
}

#[tokio::test]
async fn memory_mode_keeps_what_it_acked_when_a_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let stats = Arc::new(Stats::default());
    let (writer, mut reader) = open_on(
        &settings(dir.path(), AckMode::Memory),
        Arc::clone(&stats),
        disk.clone(),
    )
    .unwrap();
    // Some batches fail: half-written, then cut off.
    disk.fail(Op::Write, ENOSPC, 3, 4);
    disk.fail(Op::Sync, EIO, 5, 2);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..3000 {
        match writer.append(event(i)).await {
            Ok(()) => acked.push(event(i).id),
            Err(AppendError::Io(_)) => refused += 1,
            Err(other) => panic!("{other}"),
        }
        if i % 100 == 0 {
            // Let the writer thread take a batch now and then.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    drop(writer);
    assert_eq!(disk.failures(), 6, "every injected fault was hit");
    let read = read_all(&mut reader).await;
    let missing: Vec<_> = acked.iter().filter(|id| !read.contains(id)).collect();
    assert!(missing.is_empty(), "acked, then lost: {missing:?}");
    assert_eq!(read.len(), acked.len(), "only acked events are spooled");
    assert!(acked.len() + refused == 3000);
    assert_eq!(stats.snapshot().spool_lost_records, 0);
}

/// Memory mode on a dead disk: appends until the writer has seen the
/// failure and stops. Returns the reader, the counters and the ids acked
/// (in memory) before the writer saw it.
async fn acked_on_a_dead_disk() -> (tempfile::TempDir, SpoolReader, Arc<Stats>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let stats = Arc::new(Stats::default());
    let (writer, reader) = open_on(
        &settings(dir.path(), AckMode::Memory),
        Arc::clone(&stats),
        disk.clone(),
    )
    .unwrap();
    disk.fail(Op::Write, EIO, 0, usize::MAX);
    let mut acked = Vec::new();
    for i in 0..5 {
        if writer.append(event(i)).await.is_ok() {
            acked.push(event(i).id);
        }
    }
    let stopped = writer.stopped();
    drop(writer);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the writer stops");
    assert!(
        !acked.is_empty(),
        "the first append is acked in memory mode"
    );
    (dir, reader, stats, acked)
}

#[tokio::test]
async fn memory_mode_publishes_what_a_dead_disk_refused_from_memory() {
    let (_dir, mut reader, stats, acked) = acked_on_a_dead_disk().await;
    // The writer has stopped (a graceful stop): the reader still hands out
    // every acked event, and confirming them loses nothing.
    assert_eq!(read_all(&mut reader).await, acked);
    drop(reader);
    assert_eq!(stats.snapshot().spool_lost_records, 0);
}

#[tokio::test]
async fn memory_mode_counts_what_a_dead_disk_refused_and_nobody_confirmed() {
    let (_dir, mut reader, stats, acked) = acked_on_a_dead_disk().await;
    // One is confirmed; the rest are not when the process stops.
    let first = reader.recv().await.expect("an acked event");
    reader.complete(first.position);
    drop(reader);
    assert_eq!(
        stats.snapshot().spool_lost_records,
        acked.len() as u64 - 1,
        "every acked event the disk refused and the broker never confirmed is counted as lost"
    );
}

#[tokio::test]
async fn a_short_write_whose_cut_fails_never_reaches_the_reader() {
    // The failed batch cannot be cut off the file (set_len fails too): the
    // writer must move to a new segment, so the reader never takes the
    // leftover half-frame for data, and the spool's byte count stays sane.
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let stats = Arc::new(Stats::default());
    let settings = SpoolSettings {
        segment_bytes: 1 << 20,
        ..settings(dir.path(), AckMode::Durable)
    };
    let (writer, mut reader) = open_on(&settings, Arc::clone(&stats), disk.clone()).unwrap();
    // The first write into a fresh segment fails half-way.
    disk.short_writes(ENOSPC);
    disk.fail(Op::SetLen, EIO, 0, 1);
    assert!(writer.append(event(1)).await.is_err());
    disk.clear();
    writer.append(event(2)).await.unwrap();
    let (used, _) = writer.usage();
    assert!(used < 1 << 20, "byte count underflowed: {used}");
    drop(writer);
    assert_eq!(read_all(&mut reader).await, vec![event(2).id]);
    // The leftover half-frame was skipped as such, never decoded.
    assert!(stats.snapshot().spool_skipped_bytes > 0);
}

#[tokio::test]
async fn a_segment_that_cannot_be_removed_now_is_removed_later() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let (writer, mut reader) = open_on(
        &settings(dir.path(), AckMode::Durable),
        Arc::default(),
        disk.clone(),
    )
    .unwrap();
    for i in 0..200 {
        writer.append(event(i)).await.unwrap();
    }
    let mut items = Vec::new();
    for _ in 0..200 {
        items.push(reader.recv().await.unwrap());
    }
    // The first event is confirmed last, so the acked position jumps over
    // many segments at once; the second of their removals fails.
    disk.fail(Op::Remove, EIO, 1, 1);
    for item in items.iter().skip(1) {
        reader.complete(item.position);
    }
    reader.complete(items[0].position);
    reader.wait_for_checkpoint().await;
    assert_eq!(disk.failures(), 1, "the injected failure was hit");
    // More traffic: the acked position moves on, and the left-over
    // segment goes with the next deletion.
    let mut last = items[0].position.expect("written");
    for i in 200..300 {
        writer.append(event(i)).await.unwrap();
        let item = reader.recv().await.unwrap();
        last = item.position.expect("written");
        reader.complete(item.position);
    }
    reader.checkpoint_and_wait().await;
    drop(writer);
    let left = list_segments(dir.path()).unwrap();
    assert!(
        left.iter().all(|id| *id >= last.segment),
        "confirmed segments left behind: {left:?} (last confirmed event in {})",
        last.segment
    );
}
