//! The lab fixture for OS tests: `TestLab::up` builds a uniquely named lab with the built
//! `brickyard-lab up --bare` (real namespaces, loop disks, agents; nothing applied yet) and
//! `Drop` removes it with `brickyard-lab down`, also when the test panics. Tests reach the
//! hosts with [`TestLab::exec`] / [`TestLab::sh`], restarts one with [`TestLab::reboot`], and
//! reaches the agents with [`TestLab::brickyard`] (the operator CLI inside the lab's control
//! namespace, [`TestLab::await_status`] to poll `status`) or [`TestLab::in_control_ns`] (a
//! closure on a thread inside it).
//!
//! The binaries come from the cargo target dir next to the test executable
//! (`target/<profile>/brickyard`, `brickyard-lab` and `brickyard-agent`; or $BRICKYARD_BIN_DIR,
//! see [`crate::bins::bin`]): run `cargo build --workspace --bins` before `cargo test`
//! (scripts/test.sh does), or point $BRICKYARD_BIN at a `brickyard` binary with the other two
//! next to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brickyard::spec::Spec;
use brickyard_lab::LabName;

/// The binaries a lab needs beside the operator's `brickyard` (the lab runs both from its own
/// directory).
const BESIDE_BRICKYARD: [&str; 2] = ["brickyard-lab", "brickyard-agent"];

/// The operator CLI: $BRICKYARD_BIN if set (`brickyard-lab` and `brickyard-agent` must sit next
/// to it), else the workspace's `brickyard`.
pub fn brickyard_bin() -> PathBuf {
    let Some(bin) = std::env::var_os("BRICKYARD_BIN").map(PathBuf::from) else {
        for name in BESIDE_BRICKYARD {
            crate::bins::bin(name);
        }
        return crate::bins::bin("brickyard");
    };
    assert!(
        bin.is_file() && BESIDE_BRICKYARD.iter().all(|name| bin.with_file_name(name).is_file()),
        "BRICKYARD_BIN={}: it, or {} next to it, is missing",
        bin.display(),
        BESIDE_BRICKYARD.join(" or ")
    );
    bin
}

/// The lab binary `brickyard-lab`, next to [`brickyard_bin`].
pub fn lab_bin() -> PathBuf {
    brickyard_bin().with_file_name("brickyard-lab")
}

/// Runs a command; panics with its output if it cannot be started.
fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Panics with stdout and stderr unless `out` succeeded.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A command's stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A lab that exists for the lifetime of this value.
pub struct TestLab {
    name: String,
    dir: PathBuf,
    lab_bin: PathBuf,
}

impl TestLab {
    /// A unique lab name `<prefix>-<pid>-<n>` (prefix: a-z, 0-9, '-').
    pub fn unique_name(prefix: &str) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        LabName::new(&name).unwrap_or_else(|e| panic!("lab name prefix {prefix:?}: {e}"));
        name
    }

    /// Builds a lab with `servers` servers (gluServer1..) and `clients` clients (client1..);
    /// panics with `lab up`'s output if that fails (`up` cleans up after itself).
    pub fn up(prefix: &str, servers: usize, clients: usize) -> TestLab {
        let lab_bin = lab_bin();
        let name = Self::unique_name(prefix);
        let dir = Path::new("/var/lib/brickyard-lab").join(&name);
        let out = output(Command::new(&lab_bin).args(["up", "--bare", "--name", &name]).args([
            "--servers",
            &servers.to_string(),
            "--clients",
            &clients.to_string(),
            "--dir",
            &dir.to_string_lossy(),
        ]));
        assert_success(&format!("brickyard-lab up --name {name}"), &out);
        TestLab { name, dir, lab_bin }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab directory (PKI in `pki/`, `cluster.toml`, `state.json`, per-host files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// DIR/cluster.toml: the lab in the ordinary spec format.
    pub fn spec_path(&self) -> PathBuf {
        self.dir.join(brickyard_lab::SPEC_FILE)
    }

    pub fn spec(&self) -> Spec {
        brickyard::validate::load(&self.spec_path()).expect("the lab's cluster.toml loads")
    }

    /// The control network namespace (`/run/netns/<this>`), where the coordinator runs.
    pub fn control_netns(&self) -> String {
        LabName::new(&self.name).expect("valid lab name").control_netns()
    }

    /// Runs `argv` inside lab host `host` (`brickyard-lab exec`).
    pub fn exec(&self, host: &str, argv: &[&str]) -> Output {
        output(Command::new(&self.lab_bin).args(["exec", "--name", &self.name, host, "--"]).args(argv))
    }

    /// Runs `script` with `sh -c` on `host`; panics unless it succeeds; returns its stdout,
    /// trimmed.
    pub fn sh(&self, host: &str, script: &str) -> String {
        let out = self.exec(host, &["sh", "-c", script]);
        assert_success(&format!("{script:?} on {host}"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Reboots lab host `host` (`brickyard-lab reboot`: killed, booted again from its own disk);
    /// panics unless it succeeds; returns its output (the boot's log and timings).
    pub fn reboot(&self, host: &str) -> String {
        let out = output(Command::new(&self.lab_bin).args(["reboot", "--name", &self.name, host]));
        assert_success(&format!("brickyard-lab reboot --name {} {host}", self.name), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `brickyard status -f SPEC` until its output satisfies `done`, for at most `within`;
    /// returns that output and how long it took.
    pub fn await_status(&self, what: &str, within: Duration, done: impl Fn(&Output) -> bool) -> (Output, Duration) {
        let spec = self.spec_path();
        let started = Instant::now();
        loop {
            let out = self.brickyard(&["status", "-f", &spec.to_string_lossy()]);
            if done(&out) {
                return (out, started.elapsed());
            }
            assert!(started.elapsed() < within, "status did not show {what} within {within:?}:\n{}", text(&out));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `brickyard apply --json -f SPEC` and asserts that it exits 0 with every task
    /// unchanged; `what` names that apply in the failure message.
    pub fn assert_apply_changes_nothing(&self, what: &str) {
        let out = self.brickyard(&["apply", "--json", "-f", &self.spec_path().to_string_lossy()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let changed: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains(r#""event":"task_done""#) && !l.contains(r#""status":"unchanged""#))
            .collect();
        assert!(out.status.code() == Some(0) && changed.is_empty(), "{what} changed {changed:?}\n{}", text(&out));
    }

    /// Mounts a 64 MiB tmpfs at `dir` on each of `servers`, so bricks there live off the lab
    /// host's (overlay) root.
    pub fn tmpfs_bricks(&self, servers: &[&brickyard::spec::HostTarget], dir: &str) {
        for s in servers {
            for argv in [&["mkdir", "-p", dir][..], &["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir]] {
                assert_success(&format!("{argv:?} on {}", s.name), &self.exec(&s.name, argv));
            }
        }
    }

    /// Runs `brickyard args...` inside the control namespace (`brickyard-lab run`).
    pub fn brickyard(&self, args: &[&str]) -> Output {
        output(Command::new(&self.lab_bin).args(["run", "--name", &self.name, "--"]).args(args))
    }

    /// Runs `f` on a fresh thread inside the control network namespace: sockets it opens live in
    /// the lab network. For async code build a runtime inside `f`:
    /// `tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(...)`.
    pub fn in_control_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        brickyard_lab::ns::in_netns(&self.control_netns(), f)
            .unwrap_or_else(|e| panic!("entering lab {}'s control namespace: {e}", self.name))
    }

    /// The PID (in this PID namespace) of host `host`'s init, from the lab's state.json.
    pub fn init_pid(&self, host: &str) -> i32 {
        let path = self.dir.join("state.json");
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read state.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let init = state["inits"].as_array().and_then(|inits| inits.iter().find(|i| i["host"] == host));
        let pid = init.and_then(|i| i["pid"].as_i64()).unwrap_or_else(|| panic!("no init of {host} in {state}"));
        i32::try_from(pid).expect("a PID")
    }

    /// Takes host `host` down for good: SIGKILL to its init kills every process of its PID
    /// namespace (agent, glusterd, bricks), and its mounts go with its mount namespace. Waits,
    /// with a deadline, until the init is gone. `down` still cleans up after it.
    pub fn kill_host(&self, host: &str) {
        let pid = self.init_pid(host);
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let out = output(Command::new("kill").args(["-KILL", &pid.to_string()]));
        assert_success(&format!("kill -KILL {pid} (init of {host})"), &out);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // A killed init lingers as a zombie until its parent reaps it: gone = not running.
        let running = || {
            std::fs::read_to_string(proc_dir.join("stat"))
                .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        };
        while running() {
            assert!(std::time::Instant::now() < deadline, "init {pid} of {host} still runs 30 s after SIGKILL");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Removes the lab now (also what `Drop` does); returns `brickyard-lab down`'s output.
    pub fn down(&self) -> Output {
        output(Command::new(&self.lab_bin).args(["down", "--name", &self.name]))
    }
}

impl TestLab {
    /// Removes the specs a test wrote into the lab directory (beside the lab's own, so that their
    /// `pki_dir = "pki"` finds the lab's PKI), then the directory: `lab down` leaves a directory
    /// that holds files it did not make.
    fn remove_test_specs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_file() && path.extension().is_some_and(|x| x == "toml") {
                let _ = std::fs::remove_file(&path);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl TestLab {
    /// After a failed test, before the lab goes: each server's glusterd errors and its last
    /// gluster commands, each client's mount log errors, so that a refusal gluster only explains in its own log ("Commit failed
    /// on gluServer2. Please check log file") can still be read from the test's output.
    fn print_gluster_logs(&self) {
        const LOGS: &str =
            "grep -h '\\] [EW] \\[' /var/log/glusterfs/glusterd.log | tail -n 40; echo '-- cmd_history:'; \
                            tail -n 15 /var/log/glusterfs/cmd_history.log";
        const MOUNT_LOGS: &str = "cd /var/log/glusterfs && grep -E '^\\[[^]]*\\] [EW] ' *.log | tail -n 40";
        let Ok(spec) = brickyard::validate::load(&self.spec_path()) else { return };
        for server in &spec.servers {
            let out = self.exec(&server.name, &["sh", "-c", LOGS]);
            eprintln!("---- lab {}: {} glusterd.log (errors, warnings) ----\n{}", self.name, server.name, text(&out));
        }
        for client in &spec.clients {
            let out = self.exec(&client.name, &["sh", "-c", MOUNT_LOGS]);
            eprintln!("---- lab {}: {} mount logs (errors, warnings) ----\n{}", self.name, client.name, text(&out));
        }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_gluster_logs();
        }
        let out = self.down();
        self.remove_test_specs();
        if std::thread::panicking() {
            if !out.status.success() {
                eprintln!("brickyard-lab down --name {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
            }
        } else {
            assert_success(&format!("brickyard-lab down --name {}", self.name), &out);
        }
    }
}
