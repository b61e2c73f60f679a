//! `written` and `durable` appends that find the writer idle are written on
//! the async worker that runs them ([`super::writer`]): the callbacks ready
//! together share one write, and a cancelled callback's batch is still
//! written.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::disk::faults::{Faulty, Op, EIO};
use super::fault_tests::read_all;
use super::tests::{event, settings};
use super::*;
use crate::spool::settings::AckMode;

#[tokio::test]
async fn appends_ready_together_share_one_write() {
    for ack in [AckMode::Written, AckMode::Durable] {
        let dir = tempfile::tempdir().unwrap();
        let disk = Faulty::new();
        // One write works; every later one fails.
        disk.fail(Op::Write, EIO, 1, usize::MAX);
        let settings = SpoolSettings {
            ack,
            segment_bytes: 1 << 20,
            ..settings(dir.path())
        };
        let (writer, _reader) = open_on(&settings, Arc::default(), disk.clone()).unwrap();
        // On this single-threaded runtime the first append yields once,
        // and the others, ready by then, join its batch.
        let appends: Vec<_> = (0..50)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.append(event(i)).await })
            })
            .collect();
        for (i, append) in appends.into_iter().enumerate() {
            let result = tokio::time::timeout(Duration::from_secs(10), append)
                .await
                .expect("an append was never answered")
                .unwrap();
            assert!(
                result.is_ok(),
                "{ack:?}: append {i} was not in the first write: {result:?}"
            );
        }
        assert_eq!(disk.failures(), 0, "{ack:?}: more than one write");
    }
}

#[tokio::test]
async fn a_callback_cancelled_while_it_leads_a_batch_still_has_it_written() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        ack: AckMode::Written,
        segment_bytes: 1 << 20,
        ..settings(dir.path())
    };
    let (writer, mut reader) = open(&settings, Arc::default()).unwrap();
    {
        let mut append = pin!(writer.append(event(7)));
        let mut context = Context::from_waker(Waker::noop());
        // Staged, then yielding to the worker's other tasks.
        assert!(matches!(append.as_mut().poll(&mut context), Poll::Pending));
        // Dropped here, as hyper drops a callback whose client went away.
    }
    let item = tokio::time::timeout(Duration::from_secs(10), reader.recv())
        .await
        .expect("the cancelled callback's event was never written")
        .unwrap();
    assert_eq!(item.event.id, event(7).id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_on_both_paths_are_each_answered_and_read_once() {
    for ack in [AckMode::Written, AckMode::Durable] {
        let dir = tempfile::tempdir().unwrap();
        // 4 KiB segments: rolls every few appends, so many go to the
        // writer thread while others are written on the workers.
        let settings = SpoolSettings {
            ack,
            ..settings(dir.path())
        };
        let (writer, mut reader) = open(&settings, Arc::default()).unwrap();
        let senders: Vec<_> = (0..8)
            .map(|sender| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in (sender..400).step_by(8) {
                        writer.append(event(i)).await.unwrap();
                    }
                })
            })
            .collect();
        for sender in senders {
            tokio::time::timeout(Duration::from_secs(30), sender)
                .await
                .expect("an append was never answered")
                .unwrap();
        }
        drop(writer);
        let mut read = read_all(&mut reader).await;
        assert_eq!(read.len(), 400, "{ack:?}: each event read once");
        read.sort();
        let expected: Vec<String> = (0..400).map(|i| event(i).id).collect();
        assert_eq!(read, expected, "{ack:?}");
    }
}
