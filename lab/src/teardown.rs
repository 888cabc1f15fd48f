//! `lab down`: removes everything a lab made, in an order that works after a complete, failed
//! or interrupted `up`: (1) SIGKILL every host init (the kernel then kills everything in its PID
//! namespace: agents, glusterd, bricks, FUSE clients, and drops the host's mounts) and every
//! other process living in one of the lab's network namespaces, and wait until they are gone;
//! (2) delete the namespaces (veths and the bridge go with them); (3) detach the loop devices
//! backed by the lab's disk files (servers' disks and hosts' root disks) and wait for the
//! kernel to release them; (4) remove the files
//! `up` wrote and the registry entry. Things are found from DIR/state.json and, in case it missed
//! something, by name (namespaces), by namespace (processes) and by backing file (loops).
//! Idempotent: a missing thing is not an error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::naming::LabName;
use super::ns::netns_path;
use super::state::{self, State};
use super::{disk, net, poll, procs, spec_file, LabError};

/// How long processes and loop devices may take to go away.
const DEADLINE: Duration = Duration::from_secs(30);
/// What `up` writes in the lab directory; `down` removes these and then the directory if empty
/// (never anything else: the directory may have been given with --dir).
const LAB_FILES: [&str; 6] = ["hosts", "disks", "pki", spec_file::SPEC_FILE, "state.json", ".state.json.tmp"];

/// Removes lab `name`. Returns whether there was anything to remove.
pub fn down(name: &LabName) -> Result<bool, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let dir = state::lab_dir(name);
    let state = State::load(&dir)?.unwrap_or_default();
    let deadline = Instant::now() + DEADLINE;
    let mut netns = state.netns.clone();
    for found in net::existing_netns(name) {
        if !netns.contains(&found) {
            netns.push(found);
        }
    }
    let mut anything = !netns.is_empty() || dir.exists() || state::registry_entry(name).symlink_metadata().is_ok();

    kill_processes(&state, &netns, deadline)?;
    for ns in &netns {
        net::delete_netns(ns)?;
    }
    let mut backings: Vec<PathBuf> = state.loops.iter().chain(&state.root_disks).map(|l| l.backing.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("disks")) {
        for path in entries.flatten().map(|e| e.path()) {
            if !backings.contains(&path) {
                backings.push(path);
            }
        }
    }
    for backing in &backings {
        anything |= !disk::devices_backed_by(backing).is_empty();
        disk::detach_all(backing, deadline)?;
    }
    remove_files(&dir)?;
    state::unregister(name)?;
    Ok(anything)
}

fn kill_processes(state: &State, netns: &[String], deadline: Instant) -> Result<(), LabError> {
    let me = std::process::id() as i32;
    let mut targets: Vec<(i32, u64)> = state.inits.iter().map(|i| (i.pid, i.start_time)).collect();
    for ns in netns {
        targets.extend(procs::in_netns(&netns_path(ns)).into_iter().filter(|(pid, _)| *pid != me));
    }
    targets.retain(|&(pid, t)| procs::is_alive(pid, t));
    for &(pid, _) in &targets {
        // Gone meanwhile (ESRCH) is what we want anyway.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    poll::until(deadline, || {
        targets.retain(|&(pid, t)| procs::is_alive(pid, t));
        Ok((!targets.is_empty()).then(|| format!("lab processes {targets:?} (pid, start time) to exit")))
    })
}

fn remove_files(dir: &Path) -> Result<(), LabError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LabError::Io { path, source }
    };
    for name in LAB_FILES {
        let path = dir.join(name);
        match path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).map_err(io(&path))?,
            Ok(_) => std::fs::remove_file(&path).map_err(io(&path))?,
            Err(_) => {}
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
            eprintln!("brickyard-lab: left {} in place: it holds files the lab did not make", dir.display());
            Ok(())
        }
        other => other.map_err(io(dir)),
    }
}
