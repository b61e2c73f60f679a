//! The report (`target/bench/report.md`) and the latency plot.

use hdrhistogram::Histogram;

use super::{Measured, CONNECTIONS, RATE, SECONDS, SENDERS};

fn ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

/// The disk's append + fdatasync and preallocated overwrite + fdatasync,
/// measured in the same run.
pub struct Disk {
    pub append: Histogram<u64>,
    pub preallocated: Histogram<u64>,
}

pub fn report(results: &[Measured], disk: &Disk) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let bare = results.iter().find(|r| r.bare);
    out += &format!(
        "# openim-bridge end-to-end benchmark\n\nMachine: {cores} cores; load generator, servers and brokers (Tansu, RabbitMQ) on the same machine; every figure from this one run.\n\n\
         Phases per configuration: **fixed** = {CONNECTIONS} keep-alive connections, open loop at {RATE}/s for {SECONDS} s (on an idle server); \
         **2 senders** = {SENDERS} connections, one request at a time each, as OpenIM's two webhook workers, {SECONDS} s; \
         **max** = {CONNECTIONS} connections, closed loop, {SECONDS} s (CPU per ack is measured over this phase, from /proc/PID/stat).\n\n\
         The disk, in this run (1 KiB write + `fdatasync`, in the spools' directory): append p50 {:.3} ms, p99 {:.3} ms; \
         overwrite of preallocated zeros p50 {:.3} ms, p99 {:.3} ms.\n\n",
        ms(&disk.append, 0.5),
        ms(&disk.append, 0.99),
        ms(&disk.preallocated, 0.5),
        ms(&disk.preallocated, 0.99),
    );
    out += "## Against the ceiling\n\n`bare` is a hyper server that reads and parses the JSON body and answers the fixed ack, nothing else (`benches/e2e/bare.rs`). Ratios are to it.\n\n\
            | config | max acks/s | x bare | CPU us / ack | x bare | 2 senders acks/s | 2 senders p50 ms | p99 ms | fixed p50 ms | p99 ms | p99.9 ms | fdatasync/s (max) | refused |\n\
            |---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in results {
        let (rate_x, cpu_x) = bare.map_or((f64::NAN, f64::NAN), |b| {
            (r.max.rate() / b.max.rate(), r.cpu_us / b.cpu_us)
        });
        out += &format!(
            "| {} | {:.0} | {:.2} | {:.1} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {} |\n",
            r.name,
            r.max.rate(),
            rate_x,
            r.cpu_us,
            cpu_x,
            r.openim.rate(),
            ms(&r.openim.latency, 0.5),
            ms(&r.openim.latency, 0.99),
            ms(&r.fixed.latency, 0.5),
            ms(&r.fixed.latency, 0.99),
            ms(&r.fixed.latency, 0.999),
            r.syncs_per_second,
            r.max.refused + r.fixed.refused + r.openim.refused,
        );
    }
    out += "\n## Delivery\n\nEvery acked `serverMsgID` looked for in what the bridge published. Lag: `received_at` in the event -> read by the consumer, fixed phase.\n\n\
            | config | lag p50 ms | lag p99 ms | missing | duplicates | RSS steady MiB | RSS peak MiB |\n|---|---|---|---|---|---|---|\n";
    for r in results.iter().filter(|r| !r.bare) {
        let (lag50, lag99) = r
            .lag
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |h| (ms(h, 0.5), ms(h, 0.99)));
        out += &format!(
            "| {} | {lag50:.1} | {lag99:.1} | {} | {} | {:.1} | {:.1} |\n",
            r.name, r.missing, r.duplicates, r.steady_rss, r.peak_rss,
        );
    }
    for r in results {
        if let Some(inside) = &r.lag_in_bridge {
            out += &format!(
                "\n{}: of the publish lag, received -> handed to librdkafka (record CreateTime, ms resolution): p50 {:.0} ms, p99 {:.0} ms; the rest is librdkafka batching, the broker and the consumer.\n",
                r.name,
                ms(inside, 0.5),
                ms(inside, 0.99)
            );
        }
    }
    out += &handoffs(results);
    out += &tls(results);
    out += &tracing(results);
    out += &targets(results, disk);
    out += "\n![ack latency](latency.svg)\n";
    out
}

/// Thread wake-ups (voluntary context switches) and system calls per ack
/// in the maximum phase, and which threads the wake-ups are in.
fn handoffs(results: &[Measured]) -> String {
    let mut out = "\n## Hand-offs per ack\n\nMaximum phase. A wake-up is a voluntary context switch (a thread blocked, to be woken by another): the hand-offs between threads. System calls from `perf stat -e raw_syscalls:sys_enter` (n/a without perf).\n\n\
                   The machine's two cores are shared by the server, the load generator (with the consumers) and the broker: their CPU per ack is here too (broker: the Tansu `scripts/bench` started; n/a for the others).\n\n\
                   | config | wake-ups / ack | involuntary / ack | syscalls / ack | wake-ups / ack by thread | generator CPU us / ack | broker CPU us / ack |\n|---|---|---|---|---|---|---|\n".to_owned();
    for r in results {
        let acks = r.max.acked.len().max(1) as f64;
        let involuntary: u64 = r.switches.by_thread.values().map(|(_, n)| n).sum();
        let mut threads: Vec<(&String, f64)> = r
            .switches
            .by_thread
            .iter()
            .map(|(name, (v, _))| (name, *v as f64 / acks))
            .filter(|(_, per)| *per >= 0.005)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let threads: Vec<String> = threads
            .iter()
            .map(|(name, per)| format!("{name} {per:.2}"))
            .collect();
        out += &format!(
            "| {} | {:.2} | {:.2} | {} | {} | {:.1} | {} |\n",
            r.name,
            r.switches.voluntary() as f64 / acks,
            involuntary as f64 / acks,
            r.syscalls
                .map_or("n/a".to_owned(), |n| format!("{:.2}", n as f64 / acks)),
            threads.join(", "),
            r.generator_cpu_us,
            r.broker_cpu_us
                .map_or("n/a".to_owned(), |us| format!("{us:.1}")),
        );
    }
    out
}

fn tls(results: &[Measured]) -> String {
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let mut out = "\n## The cost of TLS to the broker\n\nSame run, same broker, the only difference being TLS between the bridge and the broker (Kafka: the test helpers' relay in front of a Tansu of its own, plain vs terminating TLS; RabbitMQ: one node's amqp:// and amqps:// listeners).\n\n| pair | max acks/s (TLS / plain) | ack p99 ms @5k/s (plain -> TLS) | lag p99 ms (plain -> TLS) | CPU us / ack (plain -> TLS) |\n|---|---|---|---|---|\n".to_owned();
    for (plain, tls) in [
        ("kafka durable, relay plain", "kafka durable, relay TLS"),
        (
            "rabbitmq durable, amqp (TLS node)",
            "rabbitmq durable, amqps (TLS node)",
        ),
    ] {
        if let (Some(p), Some(t)) = (find(plain), find(tls)) {
            let lag = |r: &Measured| r.lag.as_ref().map_or(f64::NAN, |h| ms(h, 0.99));
            out += &format!(
                "| {tls} vs plain | {:.0}% ({:.0} / {:.0}) | {:.3} -> {:.3} | {:.1} -> {:.1} | {:.1} -> {:.1} |\n",
                t.max.rate() / p.max.rate() * 100.0,
                t.max.rate(),
                p.max.rate(),
                ms(&p.fixed.latency, 0.99),
                ms(&t.fixed.latency, 0.99),
                lag(p),
                lag(t),
                p.cpu_us,
                t.cpu_us,
            );
        }
    }
    out
}

fn tracing(results: &[Measured]) -> String {
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let mut out = format!("\n## The cost of tracing\n\nSame run: `durable` acks with tracing off, then exporting over OTLP/gRPC to a collector in the benchmark's process (it counts the spans), sampling 10% and 100% of the callbacks (three spans each: callback, spool.append, send). CPU per ack at the fixed rate ({RATE}/s: the same work per second for every row) and at the maximum (where a slower row also pays the spool's syncs and librdkafka's broker thread over fewer acks).\n\n| sink | tracing | max acks/s | CPU us / ack at {RATE}/s | x off | CPU us / ack at max | x off | spans received |\n|---|---|---|---|---|---|---|---|\n");
    for sink in ["stdout", "kafka"] {
        let Some(off) = find(&format!("{sink} durable")) else {
            continue;
        };
        out += &format!(
            "| {sink} | off | {:.0} | {:.1} | 1.00 | {:.1} | 1.00 | - |\n",
            off.max.rate(),
            off.fixed_cpu_us,
            off.cpu_us
        );
        for percent in [10, 100] {
            if let Some(r) = find(&format!("{sink} durable, traced {percent}%")) {
                out += &format!(
                    "| {sink} | {percent}% sampled | {:.0} | {:.1} | {:.3} | {:.1} | {:.3} | {} |\n",
                    r.max.rate(),
                    r.fixed_cpu_us,
                    r.fixed_cpu_us / off.fixed_cpu_us,
                    r.cpu_us,
                    r.cpu_us / off.cpu_us,
                    r.spans.unwrap_or(0)
                );
            }
        }
    }
    out
}

fn targets(results: &[Measured], disk: &Disk) -> String {
    let mut out = "\n## Targets\n\n".to_owned();
    let mut check = |what: String, ok: bool| {
        out += &format!("- {} {what}\n", if ok { "MET" } else { "MISSED" })
    };
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let Some(bare) = results.iter().find(|r| r.bare) else {
        check("the bare server was not run".to_owned(), false);
        return out;
    };
    // Issue 27's targets.
    for (name, limit) in [
        ("stdout memory", 1.5),
        ("stdout written", 2.0),
        ("stdout durable", 2.0),
        ("kafka durable", 2.0),
    ] {
        if let Some(r) = find(name) {
            let x = r.cpu_us / bare.cpu_us;
            let broker = r
                .broker_cpu_us
                .map(|us| format!(" (the broker's own: {us:.1} us per ack)"))
                .unwrap_or_default();
            check(
                format!(
                    "{name}: CPU per ack {:.1} us = {x:.2}x the bare server's {:.1} us (target <= {limit}x){broker}",
                    r.cpu_us, bare.cpu_us
                ),
                x <= limit,
            );
        }
    }
    let fsync = ms(&disk.append, 0.5);
    let bare_p50 = ms(&bare.openim.latency, 0.5);
    if let Some(r) = find("stdout written") {
        let p50 = ms(&r.openim.latency, 0.5);
        let limit = bare_p50 + 0.1;
        check(
            format!("stdout written, {SENDERS} senders: ack p50 {p50:.3} ms (target <= bare {bare_p50:.3} + 0.1 = {limit:.3} ms)"),
            p50 <= limit,
        );
    }
    for sink in ["stdout", "kafka", "rabbitmq"] {
        if let Some(r) = find(&format!("{sink} durable")) {
            let p50 = ms(&r.openim.latency, 0.5);
            let limit = bare_p50 + 1.5 * fsync;
            check(
                format!("{sink} durable, {SENDERS} senders: ack p50 {p50:.3} ms (target <= bare {bare_p50:.3} + 1.5 x fdatasync {fsync:.3} = {limit:.3} ms)"),
                p50 <= limit,
            );
        }
    }
    if let Some(kafka) = find("kafka durable") {
        let x = kafka.max.rate() / bare.max.rate();
        check(
            format!(
                "kafka durable, {CONNECTIONS} connections: {:.0} acks/s = {x:.2}x the bare server's {:.0} (target >= 0.5x)",
                kafka.max.rate(),
                bare.max.rate()
            ),
            x >= 0.5,
        );
    }
    for mode in ["durable", "memory"] {
        if let Some(kafka) = find(&format!("kafka {mode}")) {
            let k = ms(&kafka.fixed.latency, 0.99);
            check(
                format!("kafka {mode}: ack p99 at {RATE}/s: {k:.3} ms (target <= 1 ms)"),
                k <= 1.0,
            );
            let lag = kafka.lag.as_ref().map_or(f64::NAN, |h| ms(h, 0.99));
            check(
                format!("kafka {mode}: publish lag p99 at {RATE}/s: {lag:.1} ms (target <= 50 ms)"),
                lag <= 50.0,
            );
        }
    }
    for sink in ["stdout", "kafka"] {
        let Some(off) = find(&format!("{sink} durable")) else {
            continue;
        };
        for (percent, limit) in [(10, 1.05), (100, 1.15)] {
            if let Some(r) = find(&format!("{sink} durable, traced {percent}%")) {
                for (phase, traced, untraced) in [
                    (format!("at {RATE}/s"), r.fixed_cpu_us, off.fixed_cpu_us),
                    ("at max".to_owned(), r.cpu_us, off.cpu_us),
                ] {
                    let x = traced / untraced;
                    check(
                        format!(
                            "{sink} durable, traced {percent}%: CPU per ack {phase} {traced:.1} us = {x:.3}x tracing off's {untraced:.1} us (target <= {limit}x)"
                        ),
                        x <= limit,
                    );
                }
            }
        }
    }
    let missing: usize = results.iter().map(|r| r.missing).sum();
    check(
        format!("missing events, every configuration: {missing} (target 0)"),
        missing == 0,
    );
    let rss = results
        .iter()
        .filter(|r| !r.bare)
        .map(|r| r.steady_rss)
        .fold(0.0, f64::max);
    check(
        format!("bridge RSS at steady load: at most {rss:.1} MiB (target <= 64 MiB)"),
        rss <= 64.0,
    );
    match results.iter().find_map(|r| r.outage.map(|rss| (&r.name, rss))) {
        Some((name, (first, last, max))) => check(
            format!("{name}: RSS while the broker was paused for {SECONDS} s at {RATE}/s: {first:.1} -> {last:.1} MiB, at most {max:.1} MiB (target: flat, <= 64 MiB)"),
            max <= 64.0 && last - first <= 8.0,
        ),
        None => out += "- NOT MEASURED RSS while the broker is down (needs the Tansu started by scripts/bench)\n",
    }
    out
}

/// Ack latency by percentile in the fixed phase, one line per
/// configuration on the direct transport.
pub fn plot(results: &[Measured], path: &std::path::Path) {
    use plotters::prelude::*;
    let shown: Vec<&Measured> = results.iter().filter(|r| !r.name.contains(',')).collect();
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let max_ms = shown
        .iter()
        .map(|r| ms(&r.fixed.latency, 0.9999))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Ack latency by percentile, open loop at {RATE}/s"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, (0.05f64..max_ms * 1.5).log_scale())
        .unwrap();
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms (log)")
        .x_labels(5)
        .x_label_formatter(&|x| {
            let percent = format!("{:.4}", 100.0 - 100.0 / 10f64.powf(*x));
            format!("{}%", percent.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()
        .unwrap();
    for (i, r) in shown.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|i| {
                let nines = i as f64 / 100.0;
                let q = 1.0 - 1.0 / 10f64.powf(nines);
                (nines, ms(&r.fixed.latency, q).max(0.05))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .unwrap()
            .label(r.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .unwrap();
    root.present().unwrap();
}
