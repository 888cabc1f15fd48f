//! `brickyard-agent --config PATH [--check-config]`: the Brickyard agent daemon. Loads and
//! checks its config and key material, then serves `brickyard.v1.Agent` over mutual TLS on
//! the configured address until SIGTERM/SIGINT. Runs as root; everything it changes on the
//! host it changes through typed tasks (see the library).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use brickyard_agent::host::runner::SystemRunner;
use brickyard_agent::host::{Context, KeyMaterial};
use brickyard_agent::rpc::config::Config;
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Brickyard agent: typed storage and GlusterFS tasks over mutual-TLS gRPC")]
struct Args {
    /// Agent configuration file (TOML).
    #[arg(long, short = 'c', value_name = "PATH")]
    config: PathBuf,
    /// Validate the config and key material, then exit.
    #[arg(long)]
    check_config: bool,
}

/// How long stopping waits for blocking calls still running (e.g. on a hung FUSE mount).
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    unblock_stop_signals();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("brickyard-agent: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    if args.check_config {
        brickyard_agent::rpc::identity::Identity::load(&config)?;
        println!("{}: OK", config.path.display());
        return Ok(());
    }
    let key_material = KeyMaterial { ca: config.ca.clone(), cert: config.cert.clone(), key: config.key.clone() };
    let ctx = Context::new(Arc::new(SystemRunner), config.service_manager(), key_material);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(brickyard_agent::rpc::server::run(&config, ctx, shutdown_signal()));
    // A filesystem call stuck on a hung mount holds a blocking thread; dropping the runtime
    // would wait for it forever, so the agent would never stop.
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// A supervisor may start the agent with SIGTERM and SIGINT blocked (the signal mask survives
/// exec; the lab's hosts did), and the agent would then never stop. Unblocked here, before any
/// thread exists, so every thread inherits it.
fn unblock_stop_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    if let Err(errno) = stop.thread_unblock() {
        eprintln!("brickyard-agent: warning: cannot unblock SIGTERM/SIGINT: {errno}");
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
