//! Throwaway roots to install packages into for real (scriptlets included) without touching
//! this machine's own root filesystem: an overlay whose lower layer is `/` and whose writes
//! land in a tmpfs, both mounted in a private mount namespace that a holder process (PID 1 of
//! its own PID namespace) keeps alive. Nothing is mounted in this machine's mount namespace:
//! the tmpfs covers an empty temp dir only inside the holder's. When the holder dies (on drop,
//! or when the test thread that made the root ends: `setpriv --pdeathsig` and `unshare
//! --kill-child`), the kernel kills whatever runs in the root and unmounts it all.
//!
//! [`IsolatedRoot::path`] reaches the root's files from outside (through `/proc/PID/root`) and
//! [`IsolatedRoot::chroot`] runs commands in it (`nsenter` + `chroot`; the root has the real
//! `/dev`, a `/proc` of its PID namespace and an empty `/run`, so no systemd runs there, as in
//! an image being built). `systemd_boot` can then boot it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::tool;

/// Mount points inside the root besides the overlay (what a chroot needs; `systemd_boot`
/// unmounts them, systemd-nspawn brings its own).
pub const CHROOT_MOUNTS: [&str; 3] = ["/dev", "/proc", "/run"];

/// The holder, run by `sh -c` with $1 = the stage dir. It also puts a tmpfs on its own view of
/// `/run`, so that systemd-nspawn's state (`/run/systemd/nspawn`) never lands on the real one.
const HOLDER: &str = r#"set -e
stage=$1
mount -t tmpfs -o mode=0755 brickyard-pkgtest "$stage"
mkdir "$stage/upper" "$stage/work" "$stage/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$stage/upper,workdir=$stage/work" "$stage/root"
mount -t tmpfs -o mode=0755 brickyard-pkgtest-run /run
mount --rbind /dev "$stage/root/dev"
mount -t proc proc "$stage/root/proc"
mount -t tmpfs -o mode=0755 brickyard-pkgtest-run "$stage/root/run"
echo ready
exec sleep infinity
"#;

pub struct IsolatedRoot {
    /// `unshare`, whose forked child is the holder.
    unshare: Child,
    /// The holder's PID as this process sees it (PID 1 inside).
    holder: u32,
    /// The tmpfs mount point (an empty dir on the real filesystem).
    stage: tempfile::TempDir,
}

impl IsolatedRoot {
    /// A fresh root; panics naming what failed.
    pub fn new() -> IsolatedRoot {
        let stage = tempfile::Builder::new().prefix("brickyard-pkgtest-").tempdir().expect("temp dir");
        let mut unshare = Command::new(tool("setpriv"))
            .args(["--pdeathsig", "KILL", "unshare", "--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--kill-child", "sh", "-c", HOLDER, "sh"])
            .arg(stage.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning setpriv unshare");
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read holder");
        if line.trim() != "ready" {
            let mut stderr = String::new();
            let _ = unshare.stderr.take().expect("piped stderr").read_to_string(&mut stderr);
            let status = unshare.wait().expect("wait unshare");
            panic!("isolated root in {}: the holder did not start ({status}):\n{stderr}", stage.path().display());
        }
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let holder = std::fs::read_to_string(&children)
            .unwrap_or_else(|e| panic!("{children}: {e}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{children}: not one PID: {e}"));
        IsolatedRoot { unshare, holder, stage }
    }

    /// The holder's PID (for `nsenter --target`).
    pub fn holder(&self) -> u32 {
        self.holder
    }

    /// The root's directory as the holder sees it (for systemd-nspawn, run in its namespace).
    pub fn dir_in_holder(&self) -> PathBuf {
        self.stage.path().join("root")
    }

    /// `inside` (an absolute path in the root) as this process can open it.
    pub fn path(&self, inside: &str) -> PathBuf {
        assert!(inside.starts_with('/'), "{inside}: not an absolute path");
        PathBuf::from(format!("/proc/{}/root{}{inside}", self.holder, self.dir_in_holder().display()))
    }

    /// Copies `file` into the root's /var/tmp (which a booted root keeps, unlike /tmp);
    /// returns its path inside the root.
    pub fn copy_in(&self, file: &Path) -> String {
        let inside = format!("/var/tmp/{}", file.file_name().and_then(|n| n.to_str()).expect("utf-8 file name"));
        std::fs::copy(file, self.path(&inside))
            .unwrap_or_else(|e| panic!("copying {} into the root: {e}", file.display()));
        inside
    }

    /// Runs `argv` chrooted into the root, stdin from /dev/null.
    pub fn chroot(&self, argv: &[&str]) -> Output {
        Command::new(tool("nsenter"))
            .args(["--target", &self.holder.to_string(), "--mount", "--pid", "--", "chroot"])
            .arg(self.dir_in_holder())
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in the isolated root: {e}"))
    }

    /// [`Self::chroot`] that must succeed; returns stdout.
    pub fn chroot_ok(&self, argv: &[&str]) -> String {
        super::succeeded(&format!("{argv:?} in the isolated root"), &self.chroot(argv))
    }

    /// Ends the root: SIGKILL to unshare, which --kill-child passes on to the holder, whose PID
    /// namespace (everything running in the root) and mount namespace then go away. The
    /// kernel kills the namespace's other processes after the holder: see `systemd_boot` for
    /// waiting on them.
    pub fn kill(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

impl Drop for IsolatedRoot {
    fn drop(&mut self) {
        self.kill();
    }
}
