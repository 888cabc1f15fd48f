//! `brickyard-lab`: the lab binary (see `cli.rs` for the subcommands). No async runtime and no
//! threads before the subcommand runs: `init-host` becomes PID 1 of a lab host.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    brickyard_lab::cli::main(brickyard_lab::cli::Cli::parse())
}
