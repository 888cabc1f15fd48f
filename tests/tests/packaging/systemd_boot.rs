//! systemd for real: an [`IsolatedRoot`] booted with systemd as its PID 1 by `systemd-nspawn
//! --boot`, and the packaged agent run there by its unit. The container has a private network
//! (only its own loopback), registers nowhere (`--register=no --keep-unit`: this machine needs
//! no systemd or machined of its own) and runs in a cgroup of its own, made under this
//! process's cgroup in the hierarchies systemd writes to (cgroup2 and v1's `name=systemd`) and
//! removed when the container is gone. Commands run in the container's namespaces (`nsenter`);
//! its files are reached from outside through the root, as before the boot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brickyard_tests::pki::TestPki;

use super::isolated_root::{IsolatedRoot, CHROOT_MOUNTS};
use super::{
    agent_processes, packages, succeeded, tool, wants_link, write_in, Format, AGENT_PACKAGE, CONFIG, KEY, PKI_DIR, UNIT,
};

/// How long the container may take to boot (reach `is-system-running`'s end state), and
/// anything in it to reach the state a test waits for.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
pub const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's port in the container (its own loopback).
const AGENT_ADDR: &str = "127.0.0.1:7420";

/// Runs in the holder's namespaces with $1 = the root, then the cgroup dirs to join: joins
/// them, takes away the chroot's mounts ($CHROOT_MOUNTS) and execs systemd-nspawn with the
/// network and binds of $NSPAWN_ARGS (see [`Network`]; words without spaces).
const LAUNCH: &str = r#"set -e
dir=$1
shift
for cgroup; do echo $$ >"$cgroup/cgroup.procs"; done
for m in $CHROOT_MOUNTS; do umount --recursive "$dir$m"; done
exec systemd-nspawn --quiet --boot --directory="$dir" $NSPAWN_ARGS --register=no --keep-unit \
    --link-journal=no --console=read-only
"#;

/// Cgroup dirs made for one container; removed (with what systemd made below them) on drop.
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for cgroup in &self.0 {
            remove_cgroup(cgroup);
        }
    }
}

/// The container's network, devices and name.
pub struct Network {
    /// systemd-nspawn options: `--private-network` (own loopback only) or
    /// `--network-namespace-path=...`, `--bind=/dev/...`, `--hostname=...`.
    pub nspawn_args: Vec<String>,
    /// Where the agent listens there (its agent.toml's `listen`).
    pub agent_addr: String,
}

impl Network {
    /// Only its own loopback, the agent on AGENT_ADDR.
    pub fn private() -> Network {
        Network { nspawn_args: vec!["--private-network".into()], agent_addr: AGENT_ADDR.into() }
    }
}

pub struct Booted {
    /// Where the agent listens.
    agent_addr: String,
    /// `nsenter`, whose child is systemd-nspawn (output to `log`).
    nspawn: Child,
    /// The container's systemd, as this process sees it (0 until found).
    init: u32,
    log: PathBuf,
    root: IsolatedRoot,
    /// Dropped after `root` is killed (see `Drop`).
    _cgroups: Cgroups,
}

/// Where this process sits in the cgroup hierarchies systemd uses: `MOUNT/OUR-PATH` for the
/// cgroup2 mount and a v1 `name=systemd` mount, when they exist.
fn systemd_hierarchies() -> Vec<PathBuf> {
    let ours = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let path_in = |controllers: &str| {
        ours.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, path) = (f.next()?, f.next()?, f.next()?);
            (c == controllers).then(|| path.trim_start_matches('/').to_owned())
        })
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        // ID PARENT DEV ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let (left, right): (Vec<&str>, Vec<&str>) = (left.split(' ').collect(), right.split(' ').collect());
        let ours = match right.first() {
            Some(&"cgroup2") => path_in(""),
            Some(&"cgroup") if right.get(2).is_some_and(|o| o.split(',').any(|o| o == "name=systemd")) => {
                path_in("name=systemd")
            }
            _ => None,
        };
        if let (Some(ours), Some(mount)) = (ours, left.get(4)) {
            found.push(Path::new(mount).join(ours));
        }
    }
    assert!(!found.is_empty(), "no cgroup2 or name=systemd cgroup hierarchy is mounted: systemd-nspawn needs one");
    found
}

/// Removes cgroup `dir` and everything below it (children first), waiting for the processes
/// that were in it to be gone.
fn remove_cgroup(dir: &Path) {
    let deadline = Instant::now() + STATE_TIMEOUT;
    fn remove(dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                remove(&entry.path())?;
            }
        }
        std::fs::remove_dir(dir)
    }
    while let Err(e) = remove(dir) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return;
        }
        assert!(Instant::now() < deadline, "cgroup {} still busy after {STATE_TIMEOUT:?}: {e}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` (every 100 ms) until it returns Ok, for at most `timeout`; fails naming `what`
/// and the last Err it returned.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what}: not within {timeout:?}; last seen: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl Booted {
    /// Boots `root` with a private network and waits for the container's systemd to finish
    /// starting up.
    pub fn boot(root: IsolatedRoot, log: &Path) -> Booted {
        Self::boot_with(root, log, Network::private())
    }

    /// [`Self::boot`] on `network`.
    pub fn boot_with(root: IsolatedRoot, log: &Path, network: Network) -> Booted {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        tool("systemd-nspawn");
        let name = format!("brickyard-pkgtest-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut cgroups = Cgroups(Vec::new());
        for cgroup in systemd_hierarchies().into_iter().map(|h| h.join(&name)) {
            std::fs::create_dir(&cgroup).unwrap_or_else(|e| panic!("creating cgroup {}: {e}", cgroup.display()));
            cgroups.0.push(cgroup);
        }
        let log_file = std::fs::File::create(log).expect("create the container log");
        let nspawn = Command::new(tool("nsenter"))
            .args(["--target", &root.holder().to_string(), "--mount", "--pid", "--", "sh", "-c", LAUNCH, "sh"])
            .arg(root.dir_in_holder())
            .args(&cgroups.0)
            .env("CHROOT_MOUNTS", CHROOT_MOUNTS.join(" "))
            .env("NSPAWN_ARGS", network.nspawn_args.join(" "))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file)
            .spawn()
            .expect("spawning nsenter for systemd-nspawn");
        let mut booted =
            Booted { agent_addr: network.agent_addr, nspawn, init: 0, log: log.to_owned(), root, _cgroups: cgroups };
        // nsenter → systemd-nspawn → the container's systemd.
        booted.init = wait_for("the container's systemd", STATE_TIMEOUT, || {
            if let Ok(Some(status)) = booted.nspawn.try_wait() {
                panic!("systemd-nspawn ended ({status}); its output:\n{}", booted.log());
            }
            children(booted.nspawn.id())
                .into_iter()
                .flat_map(children)
                .find(|c| std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| comm.trim() == "systemd"))
                .ok_or_else(|| format!("no systemd under systemd-nspawn; its output:\n{}", booted.log()))
        });
        // Until its manager is up, systemctl cannot even connect (and `--wait` gives up).
        let state = wait_for("the container's boot", BOOT_TIMEOUT, || {
            let out = booted.exec(&["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match state.as_str() {
                "running" | "degraded" => Ok(state),
                _ => Err(format!("{state:?} {}", String::from_utf8_lossy(&out.stderr).trim())),
            }
        });
        let failed = booted.exec_ok(&["systemctl", "--failed", "--no-legend", "--plain"]);
        eprintln!("container booted: {state}; failed units: {failed}");
        booted
    }

    /// The container's processes (its /proc, seen through its systemd's root).
    pub fn proc_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/proc", self.init))
    }

    /// The container's console output so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Runs `argv` in the container's namespaces (its root, PID 1, network...).
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new(tool("nsenter"))
            .args(["--target", &self.init.to_string(), "--mount", "--uts", "--ipc", "--net", "--pid", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in the container: {e}"))
    }

    /// [`Self::exec`] that must succeed; returns stdout.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        succeeded(&format!("{argv:?} in the container"), &self.exec(argv))
    }

    /// Runs `argv` from this machine's filesystem inside the container's network only.
    pub fn in_network(&self, argv: &[&str]) -> Output {
        Command::new(tool("nsenter"))
            .args(["--target", &self.init.to_string(), "--net", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} in the container's network: {e}"))
    }

    /// `systemctl show -p PROPERTY --value` of the agent's unit.
    pub fn unit_property(&self, property: &str) -> String {
        self.exec_ok(&["systemctl", "show", "--property", property, "--value", UNIT]).trim().to_owned()
    }

    /// Waits until the agent's unit is active with a main PID that is not `not` and listens
    /// on its address; returns that PID.
    pub fn wait_running(&self, not: &str) -> String {
        let addr = &self.agent_addr;
        wait_for(&format!("{UNIT} active (main PID not {not}) and listening on {addr}"), STATE_TIMEOUT, || {
            let (state, pid) = (self.unit_property("ActiveState"), self.unit_property("MainPID"));
            let listening = self.exec_ok(&["ss", "--no-header", "--listening", "--tcp", "--numeric"]);
            if state == "active" && pid != "0" && pid != not && listening.contains(addr.as_str()) {
                Ok(pid)
            } else {
                Err(format!("ActiveState={state} MainPID={pid}, listening: {listening}"))
            }
        })
    }

    /// The agent's unit is inactive (stopped or never started, not failed) and nothing listens.
    pub fn assert_stopped(&self, what: &str) {
        let state = self.unit_property("ActiveState");
        assert_eq!(state, "inactive", "{what}: ActiveState={state}\n{}", self.journal());
        let listening = self.exec_ok(&["ss", "--no-header", "--listening", "--tcp", "--numeric"]);
        let addr = &self.agent_addr;
        assert!(!listening.contains(addr.as_str()), "{what}: something still listens on {addr}: {listening}");
    }

    /// The agent's journal, for failure messages.
    pub fn journal(&self) -> String {
        String::from_utf8_lossy(&self.exec(&["journalctl", "--no-pager", "--unit", UNIT]).stdout).into_owned()
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_else(|e| format!("({}: {e})", log.display()))
}

impl Drop for Booted {
    fn drop(&mut self) {
        // Everything in the container is in the holder's PID namespace: killing the holder
        // ends it all; the cgroups (dropped next) empty as those processes go.
        self.root.kill();
        let _ = self.nspawn.wait();
    }
}

/// Key material and a config for the agent in the container, as cloud-init writes them: the
/// pool CA, the host's certificate and key (issued for 127.0.0.1), the packaged config
/// listening on AGENT_ADDR.
fn write_agent_files(root: &IsolatedRoot, pki: &TestPki) {
    let issued = pki.agent("gluServer1").expect("issue the agent certificate");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    write_in(root, &format!("{PKI_DIR}/ca.pem"), &read(&pki.layout().ca_cert), 0o644);
    write_in(root, &format!("{PKI_DIR}/agent.pem"), &read(&issued.cert), 0o644);
    write_in(root, KEY, &read(&issued.key), 0o600);
    let mut config = std::fs::read_to_string(root.path(CONFIG)).expect("read the packaged config");
    // Loopback only; and `auto`, so that the facts show the agent detecting systemd as PID 1.
    for (packaged, ours) in [
        ("listen = \"0.0.0.0:7420\"", format!("listen = {AGENT_ADDR:?}")),
        ("service_manager = \"systemd\"", "service_manager = \"auto\"".into()),
    ] {
        assert!(config.contains(packaged), "the packaged agent.toml no longer says {packaged}");
        config = config.replace(packaged, &ours);
    }
    write_in(root, CONFIG, &config, 0o644);
}

/// The agent's facts through the real CLI (this machine's build) over the container's network.
fn facts(booted: &Booted, pki: &TestPki) -> serde_json::Value {
    let spec = pki.dir.parent().expect("pki dir has a parent").join("cluster.toml");
    let address = AGENT_ADDR.split(':').next().expect("ip");
    std::fs::write(
        &spec,
        format!(
            "version = 1\n[pool]\nname = \"pkgtest\"\n[[server]]\nname = \"gluServer1\"\naddress = \"{address}\"\n"
        ),
    )
    .expect("write spec");
    let brickyard = brickyard_tests::bins::bin("brickyard");
    let out = booted.in_network(&[
        brickyard.to_str().expect("utf-8"),
        "facts",
        "--json",
        "-f",
        spec.to_str().expect("utf-8"),
    ]);
    let json = succeeded("brickyard facts against the container's agent", &out);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("brickyard facts --json: {e}: {json}"))
}

/// The .deb and the RPM on a host that runs systemd. Image build first (offline, as a chroot):
/// the .deb's postinst enables the agent. Boot without key material: the unit is skipped by its
/// condition, not failed. With cloud-init's files in place `systemctl start` runs the agent,
/// which answers the real CLI; killed, systemd restarts it (Restart=on-failure); an upgrade
/// restarts it, removal stops it. Then the RPM, installed live: %post enables and does not
/// start it, even with the key there; erase stops and disables it.
#[test]
fn packaged_agent_runs_under_systemd_in_a_booted_root() {
    let packages = packages();
    let started = Instant::now();
    let root = IsolatedRoot::new();
    // This machine is a container image whose policy-rc.d forbids maintainer scripts to start
    // or stop services; real Debian and Ubuntu instances have none.
    let _ = std::fs::remove_file(root.path("/usr/sbin/policy-rc.d"));
    succeeded("dpkg -i (image build)", &Format::Deb.install(&root, &[]));
    assert!(wants_link(&root), "postinst must enable the agent");
    let (deb_cli, deb_agent) = (root.copy_in(&packages.deb.cli), root.copy_in(&packages.deb.agent));
    let (rpm_cli, rpm_agent) = (root.copy_in(&packages.rpm.cli), root.copy_in(&packages.rpm.agent));

    let log_dir = tempfile::tempdir().expect("tempdir");
    let booted = Booted::boot(root, &log_dir.path().join("console.log"));
    eprintln!("booted in {:.1?}", started.elapsed());
    assert_eq!(booted.exec_ok(&["systemctl", "is-enabled", UNIT]).trim(), "enabled");
    booted.assert_stopped("booted without key material");
    assert_eq!(booted.unit_property("ConditionResult"), "no", "the unit must be skipped by ConditionPathExists");

    let pki = TestPki::new().expect("pool PKI");
    write_agent_files(&booted.root, &pki);
    booted.exec_ok(&["systemctl", "start", UNIT]);
    let pid = booted.wait_running("0");
    let facts = facts(&booted, &pki);
    let host = &facts[0]["facts"];
    assert_eq!(host["os_id"], "debian", "facts from the container's agent: {facts}");
    assert_eq!(host["agent_version"], env!("CARGO_PKG_VERSION"), "the packaged agent answers: {facts}");
    assert_eq!(host["service_manager"], "SERVICE_MANAGER_SYSTEMD", "`auto` must find systemd as PID 1: {facts}");

    booted.exec_ok(&["systemctl", "kill", "--signal=KILL", UNIT]);
    let pid = booted.wait_running(&pid);
    assert_eq!(booted.unit_property("NRestarts"), "1", "one restart after SIGKILL");

    // Upgrade (the same version again): postinst's try-restart gives the agent a new process.
    booted.exec_ok(&["dpkg", "-i", &deb_cli, &deb_agent]);
    booted.wait_running(&pid);

    booted.exec_ok(&["dpkg", "--remove", AGENT_PACKAGE]);
    booted.assert_stopped("after dpkg --remove");
    booted.exec_ok(&["dpkg", "--purge", AGENT_PACKAGE]);
    assert!(booted.root.path(KEY).is_file(), "purge must never delete key material");

    // The RPM on the same (systemd) host: rpm's own database is empty, hence --nodeps.
    booted.exec_ok(&["rpm", "--initdb"]);
    booted.exec_ok(&["rpm", "-i", "--nodeps", &rpm_cli, &rpm_agent]);
    assert_eq!(booted.exec_ok(&["systemctl", "is-enabled", UNIT]).trim(), "enabled", "%post presets the unit");
    booted.assert_stopped("after rpm -i with the key in place (%post never starts the agent)");
    write_agent_files(&booted.root, &pki);
    booted.exec_ok(&["systemctl", "start", UNIT]);
    booted.wait_running("0");
    booted.exec_ok(&["rpm", "-e", AGENT_PACKAGE]);
    booted.assert_stopped("after rpm -e");
    assert!(!wants_link(&booted.root), "%preun must disable the agent");
    assert_eq!(agent_processes(&booted.proc_dir()), Vec::<String>::new(), "no agent process is left");
    eprintln!("systemd test took {:.1?}", started.elapsed());
}
