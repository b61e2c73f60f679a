//! The `openim-bridge` binary: settings, logs, listener, run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use openim_bridge::{shutdown, telemetry, App, Settings, Validated};
use tokio::net::TcpListener;

/// jemalloc: the allocator is a measured part of the ack's cost (see
/// Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines (same as log.format = "json").
    #[arg(long)]
    log_json: bool,
    /// Check the configuration, print the effective settings, and exit.
    #[arg(long)]
    check_config: bool,
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
    telemetry::init(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(settings)),
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
