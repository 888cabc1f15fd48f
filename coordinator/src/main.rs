//! `brickyard`: the operator CLI (see `cli.rs` for the subcommands). `main` parses the
//! arguments before anything else and each subcommand builds its own tokio runtime, so a
//! subcommand can change process-wide state (e.g. enter a network namespace) while the
//! process is still single-threaded.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brickyard: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
