//! A mount's glusterfs FUSE client process: its log, whether it crashed, and stopping it.
//!
//! A client process that crashes usually exits, and its mount answers ENOTCONN (stale, see
//! `MountAnswer::Error`). But glusterfs's crash handler can itself hang: seen with gluster
//! 10.3 when a write hit a full brick, heap corruption ("corrupted size vs. prev_size" in
//! `iobuf_unref`) aborted the FUSE thread, and the handler's backtrace deadlocked on the malloc
//! lock the abort held. The process then never exits, every request to the mount (statvfs,
//! the writer's close) waits forever, and only killing the process ends them (the kernel
//! aborts the FUSE connection when the process holding /dev/fuse exits). Such a mount is told
//! from a slow one by its log: a crash report (`signal received: N`) after the mount's last
//! `FUSE inited`.
//!
//! A fresh mount answers before it has reached every brick: a brick started a moment ago may
//! not be known to glusterd's port map yet, and the client tries it again seconds later. Its
//! connections show in the mount's meta directory: `.meta/graphs/active/VOL-client-N/private`
//! holds `connected = 1` for each brick it reached, and `options/remote-host` and
//! `options/remote-subvolume` beside it name that brick. A file written before then misses the
//! unreached bricks until the self-heal daemon's next crawl (client-side heals are off by
//! default), so a fresh mount, and `verify` before each write, wait for every brick a while
//! ([`await_every_brick`]).
//!
//! The process is found in /proc by its command line (`glusterfs ... MOUNT_POINT`) and by
//! sharing the agent's mount namespace: lab hosts share one process table, each with its own
//! mounts.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use brickyard_proto::poll::{self, Look, TimedOut};

use crate::host::pathcheck::{self, FS_TIMEOUT};
use crate::host::process;

/// How much of the end of a client log is read: a crash report lists every pending frame
/// before the signal, a line each.
const LOG_TAIL: u64 = 1 << 20;
/// Between two looks at a mount's brick connections (each a few reads the client answers
/// itself).
const REACH_INTERVAL: Duration = Duration::from_millis(100);

/// glusterfs's default log of the client mounted at `mount_point`: `/mnt/gv` logs to
/// `/var/log/glusterfs/mnt-gv.log`.
pub fn default_log(mount_point: &str) -> String {
    format!("/var/log/glusterfs/{}.log", mount_point.trim_start_matches('/').replace('/', "-"))
}

/// The crash a client log reports after the client's last start (`signal 6 at 2026-12-02
/// 13:58:23 +0000`), if any.
pub fn crash_in(log: &str) -> Option<String> {
    let crash = log.rfind("signal received: ")?;
    if log.rfind("FUSE inited").is_some_and(|started| started > crash) {
        return None;
    }
    let mut lines = log[crash..].lines();
    let signal = lines.next()?.trim_start_matches("signal received: ").trim().to_owned();
    let at = lines.skip_while(|l| !l.starts_with("time of crash:")).nth(1).map(str::trim).filter(|t| !t.is_empty());
    Some(match at {
        Some(at) => format!("signal {signal} at {at}"),
        None => format!("signal {signal}"),
    })
}

/// Why a client is dead while its process lives, from its log `log` (its [`default_log`], on
/// this host): `None` when the log shows no crash since its start or cannot be read.
pub fn crashed(log: &Path) -> Option<String> {
    let crash = crash_in(&read_tail(log).ok()?)?;
    Some(format!("its glusterfs client process crashed ({crash}; see {}) and hangs instead of exiting", log.display()))
}

/// Whether a protocol/client translator's private dump says it is connected to its brick.
pub fn connected_in(private: &str) -> bool {
    private.lines().any(|l| l.split_once('=').is_some_and(|(k, v)| k.trim() == "connected" && v.trim() == "1"))
}

/// The bricks the client mounted at `dir` (on this host) has not reached yet, as `host:path`
/// (the translator's name, `gluV1-client-1`, when its options do not say); `None` when the
/// mount shows no meta directory or does not answer.
pub async fn unreached_bricks(dir: &str) -> Option<Vec<String>> {
    let active = PathBuf::from(dir).join(".meta/graphs/active");
    let read = move || {
        let io = |source| pathcheck::PathError::Io { context: active.display().to_string(), source };
        let mut unreached = Vec::new();
        for entry in std::fs::read_dir(&active).map_err(io)? {
            let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
            let xlator = active.join(&name);
            let private = std::fs::read_to_string(xlator.join("private"));
            if name.contains("-client-") && !private.is_ok_and(|p| connected_in(&p)) {
                let option = |key: &str| std::fs::read_to_string(xlator.join("options").join(key)).ok();
                unreached.push(match (option("remote-host"), option("remote-subvolume")) {
                    (Some(host), Some(path)) => format!("{}:{}", host.trim(), path.trim()),
                    _ => name,
                });
            }
        }
        unreached.sort();
        Ok(unreached)
    };
    pathcheck::off_workers(format!("the brick connections of {dir}"), FS_TIMEOUT, read).await.ok()
}

/// Waits until the client mounted at `dir` has reached every brick, for at most `within`;
/// the timeout names the bricks still unreached and the client's log (`log`). A mount without
/// a meta directory is taken as reaching them (there is nothing to wait on).
pub async fn await_every_brick(dir: &str, log: &str, within: Duration) -> Result<(), TimedOut> {
    let what = format!("the glusterfs client mounted at {dir} to reach every brick (see {log})");
    poll::until(what, within, REACH_INTERVAL, || async {
        Ok(match unreached_bricks(dir).await {
            Some(unreached) if !unreached.is_empty() => Look::NotYet(format!("not yet {}", unreached.join(", "))),
            _ => Look::Done(()),
        })
    })
    .await
}

fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether a command line (NUL-separated) is a glusterfs client mounted at `mount_point`.
pub fn is_client_of(cmdline: &str, mount_point: &str) -> bool {
    let args: Vec<&str> = cmdline.split('\0').filter(|a| !a.is_empty()).collect();
    let program = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    matches!(program, Some("glusterfs" | "glusterfsd")) && args.last() == Some(&mount_point)
}

/// The pids of the glusterfs client processes mounted at `mount_point` in the agent's own
/// mount namespace.
pub fn pids(mount_point: &str) -> Vec<u32> {
    let own = std::fs::read_link("/proc/self/ns/mnt").ok();
    process::pids_in(Path::new("/proc"))
        .filter(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap_or_default();
            is_client_of(&cmdline, mount_point) && std::fs::read_link(dir.join("ns/mnt")).ok() == own
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bricks_not_connected_in_the_meta_directory_are_unreached_and_named() {
        let mount = tempfile::tempdir().unwrap();
        let active = mount.path().join(".meta/graphs/active");
        for (xlator, private) in [
            ("gluV1-client-0", "[xlator.protocol.client.gluV1-client-0.priv]\nconnected = 1\nping_timeout = 42\n"),
            ("gluV1-client-1", "[xlator.protocol.client.gluV1-client-1.priv]\nconnected = 0\n"),
            ("gluV1-client-2", ""),
            ("gluV1-replicate-0", "[xlator.cluster.afr.gluV1-replicate-0.priv]\n"),
        ] {
            std::fs::create_dir_all(active.join(xlator).join("options")).unwrap();
            std::fs::write(active.join(xlator).join("private"), private).unwrap();
        }
        let options = active.join("gluV1-client-1/options");
        std::fs::write(options.join("remote-host"), "gluServer2\n").unwrap();
        std::fs::write(options.join("remote-subvolume"), "/vdisk/brick1\n").unwrap();
        let dir = mount.path().to_str().unwrap();
        let unreached = vec!["gluServer2:/vdisk/brick1".to_owned(), "gluV1-client-2".to_owned()];
        assert_eq!(unreached_bricks(dir).await, Some(unreached), "named by their options, else by translator");
        let e = await_every_brick(dir, "/var/log/glusterfs/mnt.log", Duration::ZERO).await.unwrap_err().to_string();
        assert!(
            e.contains("(see /var/log/glusterfs/mnt.log)")
                && e.ends_with("not yet gluServer2:/vdisk/brick1, gluV1-client-2)"),
            "{e}"
        );

        std::fs::write(active.join("gluV1-client-1/private"), "connected = 1\n").unwrap();
        std::fs::write(active.join("gluV1-client-2/private"), "connected = 1\n").unwrap();
        assert_eq!(await_every_brick(dir, "mnt.log", Duration::ZERO).await, Ok(()));
        let none = tempfile::tempdir().unwrap();
        assert_eq!(unreached_bricks(none.path().to_str().unwrap()).await, None, "no meta directory");
    }

    /// The end of a client log from a lab run where glusterfs 10.3's crash handler hung.
    const HUNG: &str = "\
[2026-12-02 13:58:20.176195 +0000] I [fuse-bridge.c:5294:fuse_init] 0-glusterfs-fuse: FUSE inited with protocol versions: glusterfs 7.24 kernel 7.45
[2026-12-02 13:58:20.176204 +0000] I [fuse-bridge.c:5926:fuse_graph_sync] 0-fuse: switched to graph 0
pending frames:
frame : type(0) op(0)
frame : type(0) op(0)
patchset: git://git.gluster.org/glusterfs.git
signal received: 6
time of crash: 
2026-12-02 13:58:23 +0000
configuration details:
argp 1
package-string: glusterfs 10.3
[2026-12-02 13:58:23.116278 +0000] W [MSGID: 114031] [client-rpc-fops_v2.c:669:client4_0_writev_cbk] 0-gluV1-client-0: remote operation failed. [{errno=28}, {error=No space left on device}]
";

    #[test]
    fn a_crash_after_the_last_start_is_found_with_signal_and_time() {
        assert_eq!(crash_in(HUNG).as_deref(), Some("signal 6 at 2026-12-02 13:58:23 +0000"));
        let remounted = format!("{HUNG}[2026-12-02 14:00:01.1 +0000] I [fuse-bridge.c:5294:fuse_init] 0-glusterfs-fuse: FUSE inited with protocol versions: glusterfs 7.24 kernel 7.45\n");
        assert_eq!(crash_in(&remounted), None, "a mount after the crash is a new client");
        assert_eq!(crash_in("signal received: 11\n").as_deref(), Some("signal 11"));
        assert_eq!(crash_in(&HUNG.replace("signal received: 6", "received signum (15), shutting down")), None);
    }

    #[test]
    fn the_default_log_and_the_client_command_line_follow_the_mount_point() {
        assert_eq!(default_log("/mnt/gv"), "/var/log/glusterfs/mnt-gv.log");
        let client = "/usr/sbin/glusterfs\0--process-name\0fuse\0--volfile-server=gs1\0--volfile-id=/gv0\0/mnt/gv\0";
        assert!(is_client_of(client, "/mnt/gv"));
        assert!(!is_client_of(client, "/mnt"));
        assert!(!is_client_of("/usr/bin/tail\0/mnt/gv\0", "/mnt/gv"));
        assert!(!is_client_of("", "/mnt/gv"));
    }
}
