//! A lab host's boot, run by its init inside the finished root before the agent starts: what a
//! real machine's init system does from its own disk and /etc, in the order systemd's units
//! have (Debian's sysvinit scripts the same): (1) local filesystems, `mount -a -O no_netdev`
//! (e.g. a brick disk's `nofail` line); (2) glusterd, if it is enabled — in the lab (no service
//! manager, the agent's `direct` mode) that means it has run on this host before, i.e.
//! /var/lib/glusterd/glusterd.info exists — started as the agent starts it (`glusterd -p
//! /run/glusterd.pid`); glusterd.service is ordered before network-online.target, so before
//! (3) network filesystems, `mount -a -O _netdev` (the clients' glusterfs lines).
//!
//! Every step has a deadline: a step still running then is killed with every process it started
//! (as systemd kills a unit's cgroup at its timeout; the lab keeps systemd's 90 s for local mounts
//! and glusterd but gives network mounts only 15 s), any mount it had added meanwhile is detached (a glusterfs client mounts FUSE
//! before it has its volume file: killed, it would leave a dead mount that fails with ENOTCONN;
//! mount.glusterfs unmounts it too when it gives up by itself), and the boot goes on. A failed step never stops the boot either (the lab has
//! no emergency mode): `nofail` is what lets a real machine boot past a mount that fails, and
//! nothing mounts it again later, so a glusterfs mount given up on stays absent until someone
//! (`brickyard apply`) mounts it. Each step is logged to the host log with its outcome and
//! duration, then the whole boot's.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use brickyard_proto::agent_config::DIRECT_GLUSTERD_PID_FILE;
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{poll, procs, LabError};

/// The gluster package's state directory (glusterd.info there: glusterd has run on this host).
pub const GLUSTERD_DIR: &str = "/var/lib/glusterd";
/// The PATH of what runs in a host (boot steps, glusterd, the agent).
pub const PATH_IN_HOST: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long local mounts and glusterd's start may take: systemd's default start timeout (under
/// load glusterd's start, which runs geo-replication's Python tool several times, takes 5-30 s
/// here).
const LOCAL_DEADLINE: Duration = Duration::from_secs(90);
/// How long network mounts may take (systemd's default mount timeout is 90 s). A glusterfs mount
/// whose servers drop its packets gives up by itself after about 87 s here.
pub const NETDEV_DEADLINE: Duration = Duration::from_secs(15);
/// The longest a boot can take: every step at its deadline.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(LOCAL_DEADLINE.as_secs() * 2 + NETDEV_DEADLINE.as_secs());

/// How a boot step ended.
enum Outcome {
    Exited(ExitStatus),
    /// Still running at the deadline: killed, with the PIDs of the processes it had started and
    /// the mount points it had added (detached).
    GaveUp {
        pids: Vec<i32>,
        detached: Vec<String>,
    },
    NotRun(LabError),
}

/// Runs the boot steps of host `host` (see the module header); logs, never fails.
pub fn run(host: &str) {
    let started = Instant::now();
    step(host, "local filesystems", &["mount", "-a", "-O", "no_netdev"], LOCAL_DEADLINE);
    if Path::new(GLUSTERD_DIR).join("glusterd.info").exists() {
        step(host, "glusterd", &["glusterd", "-p", DIRECT_GLUSTERD_PID_FILE], LOCAL_DEADLINE);
    } else {
        eprintln!("lab host {host}: boot: glusterd not enabled (no {GLUSTERD_DIR}/glusterd.info: it never ran here)");
    }
    step(host, "network filesystems", &["mount", "-a", "-O", "_netdev"], NETDEV_DEADLINE);
    eprintln!("lab host {host}: boot: finished in {:.1} s", started.elapsed().as_secs_f64());
}

/// Runs `argv` (output to the host log) for at most `within`, then logs how it ended.
fn step(host: &str, what: &str, argv: &[&str], within: Duration) {
    let started = Instant::now();
    let mounted_before = mount_points();
    let outcome = match Command::new(argv[0]).args(&argv[1..]).env("PATH", PATH_IN_HOST).stdin(Stdio::null()).spawn() {
        Ok(child) => bounded(child, started + within, &mounted_before),
        Err(source) => Outcome::NotRun(LabError::Spawn { program: argv[0].into(), source }),
    };
    let took = started.elapsed().as_secs_f64();
    let how = match outcome {
        Outcome::Exited(status) if status.success() => "done".to_owned(),
        Outcome::Exited(status) => format!("failed ({status}; see above), boot goes on"),
        Outcome::GaveUp { pids, detached } => format!(
            "still running at its {} s deadline: killed (pids {pids:?}), mounts it added detached ({detached:?}), \
             boot goes on",
            within.as_secs()
        ),
        Outcome::NotRun(err) => format!("not run ({err}), boot goes on"),
    };
    eprintln!("lab host {host}: boot: {what} (`{}`): {how} in {took:.1} s", argv.join(" "));
}

/// Waits for `child` until `deadline`; past it kills the child and all its descendants (found
/// while the tree is intact: a daemon such as glusterfs forks before it is done), reaps it and
/// detaches the mounts that appeared since `mounted_before`.
fn bounded(mut child: Child, deadline: Instant, mounted_before: &[String]) -> Outcome {
    let mut status = None;
    let waited = poll::until(deadline, || {
        status = child.try_wait().map_err(|source| LabError::Spawn { program: "wait".into(), source })?;
        Ok(status.is_none().then(|| "the boot step to end".to_owned()))
    });
    match waited {
        Ok(()) => Outcome::Exited(status.expect("poll::until returns Ok once try_wait found the exit status")),
        Err(LabError::Timeout { .. }) => {
            let root = child.id() as i32;
            let mut pids = procs::descendants(root);
            pids.insert(0, root);
            for pid in &pids {
                // Gone meanwhile (ESRCH) is what we want anyway.
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            let _ = child.wait();
            let detached: Vec<String> = mount_points()
                .into_iter()
                .filter(|m| !mounted_before.contains(m))
                .filter(|m| umount2(m.as_str(), MntFlags::MNT_DETACH).is_ok())
                .collect();
            Outcome::GaveUp { pids, detached }
        }
        Err(err) => Outcome::NotRun(err),
    }
}

/// The mount points in /proc/self/mounts, in mount order.
fn mount_points() -> Vec<String> {
    parse_mount_points(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default())
}

/// Field 2 of each line of /proc/self/mounts, its octal escapes (`\040` for a space) undone.
fn parse_mount_points(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| line.split(' ').nth(1)).map(unescape).collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        let text = "/dev/loop1p1 /vdisk xfs rw 0 0\ngluServer1:/gluV1 /data\\040share fuse.glusterfs rw 0 0\n";
        assert_eq!(parse_mount_points(text), ["/vdisk", "/data share"]);
        assert_eq!(unescape("/a\\134b\\0"), "/a\\b\\0");
    }
}
