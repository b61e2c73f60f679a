//! Stage 2 alone: how long `normalize::callback` takes for a group message
//! callback, the way OpenIM 3.5+ posts it (the URL names the command: one
//! parse) and the way older OpenIM posts it (`?command=` or no command in
//! the path: the body's command is read first, then the typed parse).
//! Interleaved rounds in one process, so the ratio is not the machine's
//! noise. `cargo bench --bench normalize`; prints a table.

use std::sync::Arc;
use std::time::Instant;

use openim_bridge::normalize::{callback, Context};
use time::OffsetDateTime;

const BODY: &str = include_str!("../tests/fixtures/after_send_group_msg_01_text_ios.json");
const COMMAND: &str = "callbackAfterSendGroupMsgCommand";
const CALLS: u32 = 200_000;
const ROUNDS: usize = 7;

/// Nanoseconds per call of `CALLS` calls with `url_command`.
fn round(source: &Arc<str>, url_command: Option<&str>) -> f64 {
    let context = Context {
        source,
        received_at: OffsetDateTime::now_utc(),
        url_command,
        publish_unknown: true,
    };
    let started = Instant::now();
    for _ in 0..CALLS {
        let event = callback(std::hint::black_box(BODY.as_bytes()), &context);
        std::hint::black_box(event.is_ok());
    }
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// Nanoseconds per parse of the body into a `serde_json::Value`.
fn value_round() -> f64 {
    let started = Instant::now();
    for _ in 0..CALLS {
        let value =
            serde_json::from_slice::<serde_json::Value>(std::hint::black_box(BODY.as_bytes()));
        std::hint::black_box(value.is_ok());
    }
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo bench` lists benchmarks this way.
    }
    let source: Arc<str> = Arc::from("openim");
    // Warm up both paths.
    round(&source, Some(COMMAND));
    round(&source, None);
    value_round();
    let (mut once, mut long, mut value) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..ROUNDS {
        once.push(round(&source, Some(COMMAND)));
        long.push(round(&source, None));
        value.push(value_round());
    }
    let (once, long, value) = (median(once), median(long), median(value));
    println!("# normalize::callback, group message ({} bytes), median of {ROUNDS} interleaved rounds of {CALLS} calls\n", BODY.len());
    println!("| path | ns / call | x one parse |\n|---|---|---|");
    println!("| URL names the command: one parse | {once:.0} | 1.00 |");
    println!(
        "| body's command read first, then the typed parse | {long:.0} | {:.2} |",
        long / once
    );
    println!(
        "| the bare server's work: parse into a serde_json::Value | {value:.0} | {:.2} |",
        value / once
    );
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
}
