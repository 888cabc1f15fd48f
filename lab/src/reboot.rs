//! `lab reboot`: restarts one host of a running lab from its own disk, like the reset button:
//! its init is SIGKILLed (the kernel kills everything in the host and drops its mounts; its
//! network namespace, the host's "hardware", stays), and once every process of the host is gone
//! a new init starts on the same network namespace and root disk, boots (`boot`: fstab mounts,
//! glusterd) and starts the agent. Returns when the agent listens again, with how long each part
//! took and the host log of this boot.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::agent::{agent_binary, wait_until_listening};
use super::boot::BOOT_DEADLINE;
use super::host::{child_exited, start_host, HostDir, InitArgs};
use super::naming::{plan_hosts, LabName};
use super::ns::{in_netns, netns_path};
use super::state::{self, State};
use super::{poll, procs, LabError};

/// How long the old host's processes may take to go away.
const DOWN_DEADLINE: Duration = Duration::from_secs(30);
/// How long the agent may take to listen once the boot is over.
const AGENT_DEADLINE: Duration = Duration::from_secs(30);

/// A host that rebooted.
#[derive(Debug, Clone)]
pub struct RebootReport {
    pub address: Ipv4Addr,
    /// From SIGKILL until the last process of the old host was gone.
    pub down: Duration,
    /// From the new init's start until its agent listened (boot included).
    pub up: Duration,
    /// What the new init wrote to the host log (its boot steps and the agent start).
    pub log: String,
}

/// Reboots host `host` of lab `name`.
pub fn reboot(name: &LabName, host: &str) -> Result<RebootReport, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let dir = state::lab_dir(name);
    let mut state = State::load(&dir)?.ok_or_else(|| LabError::NotFound(name.to_string()))?;
    let servers = state.hosts.iter().filter(|h| h.server).count();
    let plan = plan_hosts(name, servers, state.hosts.len() - servers)?.into_iter().find(|h| h.name == host);
    let Some(plan) = plan else {
        let known: Vec<_> = state.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(LabError::NoHost { lab: name.to_string(), host: host.into(), known: known.join(", ") });
    };
    let root_disk = state.root_disks.iter().find(|d| d.host == host).ok_or_else(|| LabError::Unexpected {
        what: format!("lab state of {host}"),
        found: "no root disk (a lab made before hosts had one: make it again)".into(),
    })?;
    let args = InitArgs {
        host: host.into(),
        host_dir: HostDir::of(&dir, host).0,
        agent: agent_binary(state.agent.clone())?,
        root_disk: root_disk.device.clone().into(),
    };
    let exe = std::env::current_exe().map_err(|source| LabError::Io { path: "/proc/self/exe".into(), source })?;

    let killed = Instant::now();
    let init = state.inits.iter().find(|i| i.host == host).map(|i| (i.pid, i.start_time));
    if let Some((pid, start_time)) = init {
        if procs::is_alive(pid, start_time) {
            // Gone meanwhile (ESRCH) is what we want anyway.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let netns_file = netns_path(&plan.netns);
    let me = std::process::id() as i32;
    // The old init's exit completes only once every other task of its PID namespace (every
    // thread too: a dying agent's worker threads still hold its listening socket after its main
    // thread has left the network namespace) has gone; other processes in the network namespace
    // (a `lab exec`'s nsenter) follow at once.
    poll::until(killed + DOWN_DEADLINE, || {
        if let Some((pid, start_time)) = init.filter(|&(pid, t)| procs::is_alive(pid, t)) {
            return Ok(Some(format!("the old init of {host} (pid {pid}, start time {start_time}) to exit")));
        }
        let left: Vec<_> = procs::in_netns(&netns_file).into_iter().filter(|(pid, _)| *pid != me).collect();
        Ok((!left.is_empty()).then(|| format!("the processes of {host} {left:?} (pid, start time) to exit")))
    })?;
    let down = killed.elapsed();

    let log_path = HostDir(args.host_dir.clone()).log();
    let log_from = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let booted = Instant::now();
    let (pid, record) = start_host(&exe, &args, &plan.netns)?;
    state.inits.retain(|i| i.host != host);
    state.inits.push(record);
    state.save(&dir)?;
    let dead =
        |_: &str| child_exited(pid).map(|why| format!("its new init exited ({why}); see {}", log_path.display()));
    let deadline = booted + BOOT_DEADLINE + AGENT_DEADLINE;
    in_netns(&name.control_netns(), || wait_until_listening(std::slice::from_ref(&plan), deadline, dead))??;
    let up = booted.elapsed();
    let log = std::fs::read(&log_path).map_err(|source| LabError::Io { path: log_path.clone(), source })?;
    let log = String::from_utf8_lossy(log.get(log_from as usize..).unwrap_or_default()).into_owned();
    Ok(RebootReport { address: plan.address, down, up, log })
}
