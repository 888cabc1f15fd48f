//! Failure points for the fault tests (issue #16), compiled only with the `fault-points`
//! cargo feature (the e2e tests turn it on; release packages build without it, so there
//! every point is an empty inline function). A point is armed by writing its name to
//! [`ARMED_FILE`]; the first point that matches removes the file (so the restarted agent
//! runs through) and SIGKILLs the agent, like a crash or an OOM kill: no destructor, no
//! cleanup. Points that sit on a running child kill the child first, as systemd does with
//! the rest of a service's cgroup when its main process dies.

/// Holds the armed point: `etc-rename:PATH` (between an /etc file's temp copy and its
/// rename) or `during:TEXT` (while a command whose display contains TEXT runs).
pub const ARMED_FILE: &str = "/run/brickyard-fault";

/// Dies here when `etc-rename:PATH` is armed for `path`.
#[inline]
pub fn before_rename(path: &std::path::Path) {
    #[cfg(feature = "fault-points")]
    if armed().is_some_and(|a| a.strip_prefix("etc-rename:") == Some(&*path.to_string_lossy())) {
        die(None, &format!("before renaming the temp copy of {}", path.display()));
    }
    #[cfg(not(feature = "fault-points"))]
    let _ = path;
}

/// Dies here (killing child `pid` first) when `during:TEXT` is armed and `command` contains TEXT.
#[inline]
pub fn during_command(command: &str, pid: Option<u32>) {
    #[cfg(feature = "fault-points")]
    if armed().is_some_and(|a| a.strip_prefix("during:").is_some_and(|text| command.contains(text))) {
        die(pid, &format!("while `{command}` runs"));
    }
    #[cfg(not(feature = "fault-points"))]
    let _ = (command, pid);
}

#[cfg(feature = "fault-points")]
fn armed() -> Option<String> {
    std::fs::read_to_string(ARMED_FILE).ok().map(|s| s.trim().to_owned())
}

#[cfg(feature = "fault-points")]
fn die(child: Option<u32>, where_: &str) -> ! {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = std::fs::remove_file(ARMED_FILE);
    eprintln!("brickyard-agent: fault point: SIGKILL {where_}");
    if let Some(pid) = child.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = kill(Pid::this(), Signal::SIGKILL);
    unreachable!("SIGKILL to self returned")
}
