//! The `openim-bridge` binary: settings, logs, listener, run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use openim_bridge::{drain, replay, shutdown, telemetry, App, Settings, Validated};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// jemalloc: the allocator is a measured part of the ack's cost (see
/// Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`MALLOC_CONF` in the
/// environment still overrides them). `tcache_max`: each thread keeps freed
/// blocks of up to 256 KiB for reuse (32 KiB by default). For each produce
/// request librdkafka takes and frees a zeroed 64 KiB LZ4 buffer (`calloc`)
/// and an output buffer the size of the batch; from the arena, jemalloc
/// zeroed the first by handing its pages back to the kernel, so each
/// request cost page faults and TLB flushes on the cores running the
/// bridge (0.25 page faults per Kafka ack with `kafka.compression = "lz4"`,
/// the default; 0.025 with this).
#[cfg(target_os = "linux")]
static JEMALLOC_OPTIONS: [u8; 18] = *b"tcache_max:262144\0";

/// The C string jemalloc looks for (a weak symbol of its own, overridden
/// here): `malloc_conf` where jemalloc is the process's `malloc` (Linux,
/// see Cargo.toml).
#[cfg(target_os = "linux")]
#[export_name = "malloc_conf"]
static MALLOC_CONF: &u8 = &JEMALLOC_OPTIONS[0];

/// Receives OpenIM Server webhook callbacks, acks them at once, and publishes
/// each as a CloudEvent to Kafka, RabbitMQ or standard output.
///
/// Settings come from built-in defaults, then the TOML file given with
/// --config, then environment variables OPENIM_BRIDGE__SECTION__KEY (for
/// example OPENIM_BRIDGE__SINK__KIND=kafka). See
/// deploy/openim-bridge.example.toml for every key.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Log as JSON lines (same as log.format = "json").
    #[arg(long, global = true)]
    log_json: bool,
    /// Check the configuration, print the effective settings, and exit.
    #[arg(long)]
    check_config: bool,
    /// Without a command: run the bridge.
    #[command(subcommand)]
    command: Option<Command>,
}

/// When events are stranded (docs/operations.md, "When events are stranded").
#[derive(Debug, Subcommand)]
enum Command {
    /// Publish dead-lettered events and refused callbacks again, through
    /// the configured sink, once their cause is fixed. Runs beside a live
    /// bridge. Exit 0 when every selected line was confirmed.
    Replay(ReplayArgs),
    /// Publish every acked event in a retired replica's spool directory,
    /// delete what the broker confirmed, and exit.
    Drain {
        /// The retired replica's spool directory.
        #[arg(long, value_name = "DIR")]
        spool: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// dead-letter.jsonl / invalid-callbacks.jsonl files (rotated ones
    /// too), or a spool directory: all of them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Only lines written at or after this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    since: Option<OffsetDateTime>,
    /// Only lines written before this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    until: Option<OffsetDateTime>,
    /// Only lines of this callback command (e.g. callbackAfterSendGroupMsgCommand).
    #[arg(long)]
    command: Option<String>,
    /// Only lines whose reason contains this text.
    #[arg(long)]
    reason: Option<String>,
    /// Publish nothing: print counts per command and per reason.
    #[arg(long)]
    dry_run: bool,
    /// Publish lines an earlier replay already did, too.
    #[arg(long)]
    force: bool,
    /// Events per second, at most (0.01 to 1000000).
    #[arg(long, value_name = "N", value_parser = rate)]
    rate: Option<f64>,
}

fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (0.01..=1_000_000.0).contains(&rate) => Ok(rate),
        _ => Err("must be a number of events per second from 0.01 to 1000000".to_owned()),
    }
}

fn rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|err| format!("not an RFC 3339 time (e.g. 2026-12-05T10:00:00Z): {err}"))
}

/// Loads and checks the settings (reading the files they name) before the
/// async runtime starts, so no file is read on it; then runs the bridge.
fn main() -> ExitCode {
    let args = Args::parse();
    if args.log_json {
        // The same as log.format = "json", set where --check-config shows
        // it too (one thread runs so far: nothing reads the environment
        // concurrently).
        std::env::set_var("OPENIM_BRIDGE__LOG__FORMAT", "json");
    }
    let settings = match Settings::load(args.config.as_deref(), None) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("openim-bridge: {err}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
    let traces = match openim_otel::start(
        &settings.tracing,
        "openim-bridge",
        openim_otel::HeadSampling::Caller,
    ) {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("openim-bridge: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
        traces.as_ref(),
    );
    if let Some(traces) = &traces {
        traces.log_start();
    }
    let code = run_command(args.command, settings);
    if let Some(traces) = traces {
        // Short: the drain before it has used most of the grace period.
        traces.shutdown(std::time::Duration::from_secs(2));
    }
    code
}

/// Runs the bridge, or one of its commands, on a new runtime.
fn run_command(command: Option<Command>, settings: Validated) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(async move {
            match command {
                None => run(settings).await,
                Some(Command::Replay(replay)) => run_replay(settings, replay).await,
                Some(Command::Drain { spool }) => run_drain(settings, spool).await,
            }
        }),
        Err(err) => {
            tracing::error!(cause = %err, "cannot start the async runtime");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Validated) -> ExitCode {
    shutdown::install_handlers();
    let listener = match TcpListener::bind(settings.http.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %settings.http.listen, cause = %err, "cannot listen (change http.listen)");
            return ExitCode::FAILURE;
        }
    };
    let ready_delay = std::time::Duration::from_millis(settings.shutdown.ready_delay_ms);
    match App::start(settings, listener).await {
        Ok(app) => {
            let stopping = shutdown::graceful(app.stats(), ready_delay);
            match app.run(stopping).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(cause = %err, "openim-bridge stopped: its sink could not start");
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            tracing::error!(cause = %err, "openim-bridge could not start");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { term.as_mut()?.recv().await } => {}
    }
}

async fn run_replay(settings: Validated, args: ReplayArgs) -> ExitCode {
    let options = replay::Options {
        inputs: args.files,
        since: args.since,
        until: args.until,
        command: args.command,
        reason: args.reason,
        dry_run: args.dry_run,
        force: args.force,
        rate: args.rate,
        progress: std::io::stderr().is_terminal(),
    };
    match replay::run(&settings, &options, interrupted()).await {
        Ok(summary) => {
            print!("{summary}");
            if summary.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("openim-bridge replay: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run_drain(settings: Validated, spool: PathBuf) -> ExitCode {
    let drained = tokio::select! {
        drained = drain::run(&settings, &spool) => drained,
        () = interrupted() => {
            eprintln!("openim-bridge drain: interrupted; what was not confirmed stays in {}", spool.display());
            return ExitCode::FAILURE;
        }
    };
    match drained {
        Ok(drained) => {
            println!(
                "drained {}: {} events published, {} dead-lettered",
                spool.display(),
                drained.published,
                drained.dead_lettered
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("openim-bridge drain: {err}");
            ExitCode::from(2)
        }
    }
}
