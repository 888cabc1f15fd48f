//! The `brickyard-lab` subcommands: argument parsing, `exec` / `run` (which enter lab
//! namespaces and run a program there) and `status`, and the text output of every action.
//! No async runtime anywhere: `init-host` becomes PID 1 of a host and must be single-threaded.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Instant;

use brickyard_proto::DEFAULT_AGENT_PORT;

use super::host::{run_init, InitArgs};
use super::naming::{LabName, Role, DEFAULT_LAB};
use super::spec_file::VOLUME;
use super::state::{self, State};
use super::{agent, cmd, ns, procs, LabError, UpOptions, UpReport};

#[derive(Debug, clap::Parser)]
#[command(
    name = "brickyard-lab",
    version,
    about = "Lab hosts on this machine (namespaces + loop disks) to try Brickyard and to test it"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// Lab name (a-z, 0-9, '-').
    #[arg(long, default_value = DEFAULT_LAB)]
    pub name: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build a lab: servers gluServer1..N (each with a 1 GiB loop disk) and clients client1..M,
    /// each a set of namespaces running brickyard-agent; writes DIR/cluster.toml.
    Up {
        #[command(flatten)]
        name: NameArg,
        #[arg(long, default_value_t = 2)]
        servers: usize,
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Lab directory (PKI, disks, host configs, cluster.toml) [default: /var/lib/brickyard-lab/NAME]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// brickyard-agent binary [default: $BRICKYARD_AGENT_BIN, else next to this binary]
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Only build the hosts (raw disks, no gluster): skip apply, verify and status.
        #[arg(long)]
        bare: bool,
    },
    /// Remove a lab and everything it made (processes, namespaces, loop devices, files).
    Down {
        #[command(flatten)]
        name: NameArg,
    },
    /// Reboot a lab host: kill everything in it, then boot it again from its own root disk and
    /// /etc (fstab mounts, glusterd if it ran there before, the agent); returns once its agent
    /// listens and prints the boot's log.
    Reboot {
        #[command(flatten)]
        name: NameArg,
        /// Host name, e.g. gluServer1 or client2.
        host: String,
    },
    /// List labs, their hosts and addresses, and whether each host and agent is alive.
    Status,
    /// Run a command inside a lab host (its network, mount, UTS, IPC and PID namespaces).
    Exec {
        #[command(flatten)]
        name: NameArg,
        /// Host name, e.g. gluServer1 or client2.
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run `brickyard ARGS...` (the operator CLI next to this binary) inside the lab's control
    /// network namespace, where the agents are reachable, e.g.
    /// `brickyard-lab run -- facts -f /var/lib/brickyard-lab/lab/cluster.toml`.
    Run {
        #[command(flatten)]
        name: NameArg,
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// PID 1 of a lab host (started by `lab up`).
    #[command(hide = true)]
    InitHost(InitArgs),
}

/// Runs a subcommand; prints errors and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("brickyard-lab: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: LabCommand) -> Result<ExitCode, LabError> {
    match command {
        LabCommand::Up { name, servers, clients, dir, agent_bin, bare } => {
            let started = Instant::now();
            let name = LabName::new(&name.name)?;
            let report = super::up(&UpOptions { name: name.clone(), servers, clients, dir, agent_bin })?;
            println!("lab {name} is up in {:.2} s (subnet {}):", started.elapsed().as_secs_f64(), name.subnet());
            for host in &report.hosts {
                let disk = report.disks.iter().find(|(h, _)| *h == host.name).map(|(_, d)| d.as_str());
                println!("  {:<12} {:<15} {}", host.name, host.address, disk.unwrap_or(""));
            }
            println!("spec: {}", report.spec.display());
            if bare {
                println!("try:  brickyard-lab run --name {name} -- facts -f {}", report.spec.display());
                return Ok(ExitCode::SUCCESS);
            }
            converge(&name, &report)
        }
        LabCommand::Down { name } => {
            let started = Instant::now();
            let name = LabName::new(&name.name)?;
            if super::down(&name)? {
                println!("lab {name} removed in {:.2} s", started.elapsed().as_secs_f64());
            } else {
                println!("lab {name}: nothing to remove");
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Reboot { name, host } => {
            let name = LabName::new(&name.name)?;
            let report = super::reboot(&name, &host)?;
            print!("{}", report.log);
            println!(
                "lab {name}: {host} ({}) rebooted: down in {:.2} s, booted and its agent listening in {:.2} s",
                report.address,
                report.down.as_secs_f64(),
                report.up.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status => status(),
        LabCommand::Exec { name, host, command } => exec(&LabName::new(&name.name)?, &host, &command),
        LabCommand::Run { name, args } => run_in_control(&LabName::new(&name.name)?, &args),
        LabCommand::InitHost(args) => {
            run_init(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The seed end to end on a new lab: `apply`, `verify` and `status` of its spec, each run from
/// the control namespace like `lab run`, then the volume as gluster on the first server sees
/// it (type, bricks, the options the spec set). Stops at the first command that fails (the lab
/// stays up to look at); the exit code is that command's.
fn converge(name: &LabName, report: &UpReport) -> Result<ExitCode, LabError> {
    let spec = report.spec.display().to_string();
    for command in ["apply", "verify", "status"] {
        println!("\n$ brickyard-lab run --name {name} -- {command} -f {spec}");
        let code = run_in_control(name, &[command.to_owned(), "-f".to_owned(), spec.clone()])?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    let Some(server) = report.hosts.iter().find(|h| h.role == Role::Server) else {
        return Ok(ExitCode::SUCCESS);
    };
    let volume_info = ["gluster", "--mode=script", "volume", "info", VOLUME].map(String::from);
    println!("\n$ brickyard-lab exec --name {name} {} -- {}", server.name, volume_info.join(" "));
    exec(name, &server.name, &volume_info)
}

fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn load_state(name: &LabName) -> Result<State, LabError> {
    State::load(&state::lab_dir(name))?.ok_or_else(|| LabError::NotFound(name.to_string()))
}

/// `lab exec`: `nsenter` into the host init's namespaces.
fn exec(name: &LabName, host: &str, command: &[String]) -> Result<ExitCode, LabError> {
    let state = load_state(name)?;
    let Some(init) = state.inits.iter().find(|i| i.host == host) else {
        let known: Vec<_> = state.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(LabError::NoHost { lab: name.to_string(), host: host.into(), known: known.join(", ") });
    };
    if !procs::is_alive(init.pid, init.start_time) {
        return Err(LabError::HostDied { host: host.into(), why: format!("init pid {} is gone", init.pid) });
    }
    let nsenter = cmd::program("nsenter")?;
    let status = Command::new(&nsenter)
        .args(["--target", &init.pid.to_string(), "--net", "--mount", "--uts", "--ipc", "--pid", "--"])
        .args(command)
        .status()
        .map_err(|source| LabError::Spawn { program: nsenter.display().to_string(), source })?;
    Ok(exit_code(status))
}

/// `lab run`: the `brickyard` next to this binary with `args`, its network namespace switched to
/// the lab's control namespace between fork and exec (so no thread of ours ever changes
/// namespace).
fn run_in_control(name: &LabName, args: &[String]) -> Result<ExitCode, LabError> {
    let path = ns::netns_path(&name.control_netns());
    let netns = std::fs::File::open(&path).map_err(|_| LabError::NotFound(name.to_string()))?;
    let exe = cmd::next_to_this_binary("brickyard")?;
    if !exe.is_file() {
        return Err(LabError::NoCli(exe));
    }
    let mut command = Command::new(&exe);
    command.args(args);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
    // SAFETY: setns is async-signal-safe; `fd` stays open in the child until exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command.status().map_err(|source| LabError::Spawn { program: exe.display().to_string(), source })?;
    Ok(exit_code(status))
}

/// `lab status`: every registered lab with its hosts, whether each init is alive and whether
/// each agent accepts connections (checked from the lab's control namespace).
fn status() -> Result<ExitCode, LabError> {
    let labs = state::registered();
    if labs.is_empty() {
        println!("no labs");
    }
    for (name, dir) in labs {
        let Some(state) = State::load(&dir)? else {
            println!(
                "lab {name}: {} has no state (interrupted? run `brickyard-lab down --name {name}`)",
                dir.display()
            );
            continue;
        };
        println!("lab {name}  subnet {}  dir {}", state.subnet, dir.display());
        let ctl = LabName::new(&name).map(|n| n.control_netns())?;
        let answers: Vec<bool> = ns::in_netns(&ctl, || {
            state
                .hosts
                .iter()
                .map(|h| {
                    h.address.parse().is_ok_and(|ip| agent::answers(std::net::SocketAddr::new(ip, DEFAULT_AGENT_PORT)))
                })
                .collect()
        })
        .unwrap_or_else(|_| vec![false; state.hosts.len()]);
        for (host, agent_ok) in state.hosts.iter().zip(answers) {
            let init = state.inits.iter().find(|i| i.host == host.name);
            let alive = init.is_some_and(|i| procs::is_alive(i.pid, i.start_time));
            let disk = state.loops.iter().find(|l| l.host == host.name).map(|l| l.device.as_str()).unwrap_or("");
            println!(
                "  {:<12} {:<15} host {:<5} agent {:<5} {disk}",
                host.name,
                host.address,
                if alive { "up" } else { "DOWN" },
                if agent_ok { "up" } else { "DOWN" },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
