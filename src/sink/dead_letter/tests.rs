//! The dead-letter file under disk faults, and its rotation.
use super::*;
use crate::normalize::{CallbackKind, Event};
use crate::spool::disk::faults::{Faulty, Op, EIO, ENOSPC};

fn event() -> Event {
    Event {
        id: "m1".to_owned(),
        kind: CallbackKind::GROUP_MESSAGE_SENT,
        source: Arc::from("openim"),
        time: "2024-07-01T02:13:20.123Z".to_owned(),
        key: "g1".to_owned(),
        data: b"{}".to_vec().into(),
        traceparent: String::new(),
        tracestate: String::new(),
    }
}

fn context(reason: &str) -> Context {
    let now = time::OffsetDateTime::now_utc();
    Context {
        sink: "kafka",
        class: line::RejectClass::TooLarge,
        code: Some("MessageSizeTooLarge".to_owned()),
        reason: reason.to_owned(),
        destination: line::Destination::topic("t"),
        attempts: 1,
        first_failed_at: now,
        last_failed_at: now,
    }
}

#[test]
fn a_torn_write_never_swallows_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let mut dead_letter = DeadLetterFile::on(dir.path(), disk.clone());
    let lines = || {
        std::fs::read_to_string(dir.path().join(FILE_NAME))
            .unwrap()
            .lines()
            .filter(|line| serde_json::from_str::<serde_json::Value>(line).is_ok())
            .count()
    };
    dead_letter.write(&event(), &context("one")).unwrap();
    // Half a line written, then cut off again.
    disk.short_writes(ENOSPC);
    assert!(dead_letter.write(&event(), &context("two")).is_err());
    disk.clear();
    dead_letter.write(&event(), &context("three")).unwrap();
    assert_eq!(lines(), 2);
    // Half a line that cannot be cut off: the next line starts anew.
    disk.short_writes(ENOSPC);
    disk.fail(Op::SetLen, EIO, 0, 1);
    assert!(dead_letter.write(&event(), &context("four")).is_err());
    disk.clear();
    dead_letter.write(&event(), &context("five")).unwrap();
    assert_eq!(
        lines(),
        3,
        "{:?}",
        std::fs::read_to_string(dir.path().join(FILE_NAME))
    );
}

#[test]
fn a_full_disk_spends_the_reserve_and_the_line_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Faulty::new();
    let mut dead_letter = DeadLetterFile::on(dir.path(), disk.clone());
    dead_letter.keep_reserve();
    let reserve = dir.path().join(RESERVE_NAME);
    assert_eq!(
        std::fs::metadata(&reserve).unwrap().len(),
        RESERVE_BYTES as u64
    );
    // The disk is full for one write: the reserve goes, the line is in.
    disk.fail(Op::Write, ENOSPC, 0, 1);
    dead_letter.write(&event(), &context("too large")).unwrap();
    let lines = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
    assert_eq!(
        lines.lines().filter(|l| l.contains("\"m1\"")).count(),
        1,
        "{lines}"
    );
    // Made again once there is room.
    assert_eq!(
        std::fs::metadata(&reserve).unwrap().len(),
        RESERVE_BYTES as u64
    );
    // Without a reserve, or for another error, the failure is reported.
    std::fs::remove_file(&reserve).unwrap();
    disk.fail(Op::Write, ENOSPC, 0, 2);
    assert!(dead_letter.write(&event(), &context("too large")).is_err());
    disk.clear();
    dead_letter.keep_reserve();
    disk.fail(Op::Write, EIO, 0, 1);
    assert!(dead_letter.write(&event(), &context("too large")).is_err());
    assert!(reserve.exists(), "an I/O error does not spend the reserve");
}

#[test]
fn lines_carry_the_refusal_and_the_file_rotates_past_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut dead_letter = DeadLetterFile::on(dir.path(), disk::os()).rotating_at(1000);
    for reason in ["one", "two", "three", "four", "five"] {
        dead_letter.write(&event(), &context(reason)).unwrap();
    }
    let names: Vec<String> = files(dir.path())
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    assert_eq!(names[0], "dead-letter.000001.jsonl");
    assert_eq!(
        names.last().unwrap(),
        FILE_NAME,
        "the current file is read last"
    );
    let mut reasons = Vec::new();
    for path in files(dir.path()) {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["class"], "too_large");
            assert_eq!(value["code"], "MessageSizeTooLarge");
            assert_eq!(value["destination"]["topic"], "t");
            assert_eq!(value["attempts"], 1);
            assert!(value["first_failed_at"].is_string() && value["last_failed_at"].is_string());
            let stored: line::Stored = serde_json::from_str(line).unwrap();
            assert_eq!(stored.event.into_event().unwrap().id, "m1");
            reasons.push(value["reason"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        reasons,
        ["one", "two", "three", "four", "five"],
        "every line, in order"
    );
    assert_eq!(count_lines(&dir.path().join(FILE_NAME)), 5);
}
