//! The `openim-sync` binary: settings, logs, probes, run until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use openim_sync::settings::Settings;
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Consumes openim-bridge's events from Kafka or RabbitMQ and keeps a chat
/// archive in PostgreSQL (tables events, messages, revokes, read_receipts).
///
/// Settings come from built-in defaults, then the TOML file given with
/// --config, then environment variables OPENIM_SYNC__SECTION__KEY (for
/// example OPENIM_SYNC__SOURCE__KIND=rabbitmq, OPENIM_SYNC__KAFKA__TOPICS=a,b).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match Settings::load(args.config.as_deref(), None) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("openim-sync: {err}");
            return ExitCode::from(2);
        }
    };
    let traces = match openim_otel::start(
        &settings.tracing,
        "openim-sync",
        openim_otel::HeadSampling::Sdk,
    ) {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("openim-sync: {err}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    tracing_subscriber::registry()
        .with(logs)
        .with(traces.as_ref().map(|traces| traces.layer(&["openim_sync"])))
        .init();
    if let Some(traces) = &traces {
        traces.log_start();
    }
    let code = serve(settings);
    if let Some(traces) = traces {
        // Short: the drain before it has used most of the grace period.
        traces.shutdown(std::time::Duration::from_secs(2));
    }
    code
}

/// Runs until SIGTERM on a new runtime.
fn serve(settings: Settings) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(cause = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(settings.http.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(listen = %settings.http.listen, cause = %err, "cannot listen (change http.listen)");
                return ExitCode::FAILURE;
            }
        };
        openim_sync::run(settings, listener, stop_signal()).await;
        ExitCode::SUCCESS
    })
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { term.as_mut()?.recv().await } => {}
    }
}
