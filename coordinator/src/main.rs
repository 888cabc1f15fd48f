//! `brickyard`: the operator CLI (see `cli.rs` for the subcommands). `main` parses the
//! arguments before anything else; the subcommands that talk to agents build their own tokio
//! runtime. The lab is not here: it is its own binary, `brickyard-lab` (lab/).

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
