//! `brickyard-lab`: the seed's instances on one machine, to try Brickyard and to test it. A tool
//! for developers, not part of the operator's `brickyard` and not in the packages; it stands on
//! the `brickyard` library (PKI, spec) and runs the `brickyard` binary found next to it. A lab
//! host is a set of namespaces (network, mount with an overlay root, UTS, IPC, PID) running a
//! real `brickyard-agent`, on a root disk of its own (so it can reboot); servers also get a loop
//! device as their raw disk. The hosts share a bridge
//! inside the lab's control network namespace, where `brickyard-lab run` executes the
//! coordinator; nothing is routed from or to the root namespace. Touches:
//! /run/netns/brickyard-<lab>-*, /run/brickyard-lab/<lab>, the lab directory (default
//! /var/lib/brickyard-lab/<lab>), loop devices backed by files in it.
//!
//! Modules: `naming` (names, addresses), `net` (namespaces, bridge, veths), `host` (a host's
//! init and root), `boot` (a host's boot: fstab mounts, glusterd), `disk` (loop disks), `agent`
//! (PKI, agent configs, readiness), `spec_file` (DIR/cluster.toml), `state` (what was made),
//! `up` / `reboot` / `teardown` (sequencing), `procs` (/proc),
//! `ns` (entering a lab network from this process), `poll` (waiting with a deadline), `cmd`
//! (running `ip`, `losetup`, ...), `cli` (the subcommands).

mod agent;
mod boot;
pub mod cli;
mod cmd;
mod disk;
mod host;
pub mod naming;
mod net;
pub mod ns;
mod poll;
mod procs;
mod reboot;
mod spec_file;
mod state;
mod teardown;
mod up;

use std::path::PathBuf;

pub use host::AGENT_PID_IN_HOST;
pub use naming::LabName;
pub use reboot::{reboot, RebootReport};
pub use spec_file::SPEC_FILE;
pub use teardown::down;
pub use up::{up, UpOptions, UpReport};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Name(#[from] naming::InvalidLabName),
    #[error(transparent)]
    Topology(#[from] naming::BadTopology),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: nix::errno::Errno },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("program `{0}` not found in /usr/sbin, /usr/bin, /sbin or /bin (run scripts/install-deps.sh)")]
    MissingProgram(String),
    #[error("unexpected {what}: {found}")]
    Unexpected { what: String, found: String },
    #[error("{}: corrupt lab state: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "agent binary {} not found (build it with `cargo build --bins`, or pass --agent-bin / set BRICKYARD_AGENT_BIN)",
        .0.display()
    )]
    NoAgent(PathBuf),
    #[error("operator CLI {} not found next to brickyard-lab (build both with `cargo build --bins`)", .0.display())]
    NoCli(PathBuf),
    #[error(transparent)]
    Pki(#[from] brickyard::pki::PkiError),
    #[error("lab {name} already exists (namespace {what}); remove it with `brickyard-lab down --name {name}`")]
    Exists { name: String, what: String },
    #[error("lab {0} does not exist (see `brickyard-lab status`)")]
    NotFound(String),
    #[error("lab {lab} has no host {host} (hosts: {known})")]
    NoHost { lab: String, host: String, known: String },
    #[error("host {host} is not running: {why}")]
    HostDied { host: String, why: String },
    #[error("timed out waiting for {what}")]
    Timeout { what: String },
    #[error("failure injected after step `{0}` (BRICKYARD_LAB_FAIL_AFTER)")]
    Injected(String),
    #[error("lab directory {} must be an absolute path without ',', ':' or newlines", .0.display())]
    BadDir(PathBuf),
    #[error("lab directory {} exists and is not empty; give an empty or new directory", .0.display())]
    DirNotEmpty(PathBuf),
    #[error("`brickyard-lab` must run as root (namespaces, mounts, loop devices)")]
    NotRoot,
}
