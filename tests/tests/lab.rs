//! `brickyard-lab` on the real machine (root): hosts get their agent, a raw loop disk, private
//! files and a private network; `lab down` and a failed `lab up` leave nothing behind.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use brickyard_tests::lab::{assert_success, brickyard_bin, lab_bin, TestLab};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a lab made, read from its state file before it is taken down.
struct Traces {
    name: String,
    dir: PathBuf,
    netns: Vec<String>,
    backings: Vec<PathBuf>,
    inits: Vec<i64>,
}

impl Traces {
    fn read(name: &str, dir: &Path) -> Traces {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state.json")).expect("state JSON");
        let list = |key: &str| state[key].as_array().cloned().unwrap_or_default();
        Traces {
            name: name.into(),
            dir: dir.into(),
            netns: list("netns").iter().map(|n| n.as_str().unwrap().to_string()).collect(),
            backings: list("loops").iter().map(|l| PathBuf::from(l["backing"].as_str().unwrap())).collect(),
            inits: list("inits").iter().map(|i| i["pid"].as_i64().unwrap()).collect(),
        }
    }

    /// Checks each kind of thing a lab makes, explicitly.
    fn assert_gone(&self) {
        let netns: Vec<_> = std::fs::read_dir("/run/netns")
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let prefix = format!("brickyard-{}-", self.name);
        let left: Vec<_> = netns.iter().filter(|n| n.starts_with(&prefix)).collect();
        assert!(left.is_empty(), "namespaces left: {left:?}");
        // The bridge lived in the control namespace: it must not have landed in ours either.
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        assert!(!stdout(&links).contains("v-gluServer"), "a lab veth is in the root namespace");
        let loops = Command::new("losetup").args(["--list", "--noheadings", "--output", "BACK-FILE"]).output().unwrap();
        for backing in &self.backings {
            assert!(
                !stdout(&loops).contains(&*backing.to_string_lossy()),
                "loop device left for {}",
                backing.display()
            );
        }
        assert!(!stdout(&loops).contains(&*self.dir.to_string_lossy()), "loop device left: {}", stdout(&loops));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*self.dir.to_string_lossy()), "mount left under {}", self.dir.display());
        for pid in &self.inits {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its parent to reap it (it has exited).
            assert!(stat.is_empty() || stat.contains(") Z "), "host init {pid} still runs: {stat}");
        }
        // Host inits carry the lab directory in their arguments (a zombie's cmdline is empty).
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&*self.dir.to_string_lossy()))
            .collect();
        assert!(running.is_empty(), "lab processes still run: {running:?}");
        assert!(!self.dir.exists(), "{} left", self.dir.display());
        assert!(!Path::new("/run/brickyard-lab").join(&self.name).exists(), "registry entry left");
    }
}

#[test]
fn lab_hosts_have_an_agent_a_raw_disk_and_private_files_and_network() {
    let lab = TestLab::up("lab-hosts", 2, 2);
    let spec = lab.spec();
    let hosts = spec.hosts();
    assert_eq!(
        hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["gluServer1", "gluServer2", "client1", "client2"]
    );

    // Every agent answers the coordinator, which runs inside the lab network.
    let out = lab.brickyard(&["facts", "-f", &lab.spec_path().to_string_lossy(), "--json"]);
    assert_success("brickyard-lab run -- facts", &out);
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("facts JSON");
    let facts_of = |name: &str| {
        let host = facts.as_array().unwrap().iter().find(|h| h["name"] == name);
        host.unwrap_or_else(|| panic!("no facts from {name}: {facts}"))["facts"].clone()
    };
    for host in &hosts {
        assert_eq!(facts_of(&host.name)["hostname"], host.name.as_str());
    }
    // Each server's disk is a whole, empty 1 GiB disk (a loop device: no partitions, no fs).
    for server in &spec.servers {
        let device = server.disk.as_ref().and_then(|d| d.device.as_deref()).expect("server disk device");
        let devices = facts_of(&server.name)["block_devices"].as_array().cloned().unwrap_or_default();
        let disk = devices.iter().find(|d| d["path"] == device);
        let disk = disk.unwrap_or_else(|| panic!("{} does not see {device}: {devices:?}", server.name));
        assert_eq!(disk["type"], "loop", "{disk}");
        assert_eq!(disk["size_bytes"].as_u64(), Some(1 << 30), "{disk}");
        assert_eq!((&disk["filesystem"], &disk["partition_table"]), (&"".into(), &"".into()), "{disk}");
        assert_eq!(disk["children"].as_array().map(Vec::len), Some(0), "{disk}");
        assert_eq!(disk["mount_points"].as_array().map(Vec::len), Some(0), "{disk}");
    }

    for host in &hosts {
        let out = lab.exec(&host.name, &["hostname"]);
        assert_success("hostname", &out);
        assert_eq!(stdout(&out).trim(), host.name);
        // No default route: lab traffic cannot leave the lab.
        let out = lab.exec(&host.name, &["ip", "route", "show", "default"]);
        assert_success("ip route", &out);
        assert_eq!(stdout(&out).trim(), "", "{} has a default route", host.name);
    }
    // Hosts reach each other.
    let target = format!("exec 3<>/dev/tcp/{}/{}", hosts[0].address, hosts[0].port);
    assert_success("client1 → gluServer1:7420", &lab.exec("client1", &["bash", "-c", &target]));

    // The root namespace has no address in, and no route to, the lab subnet.
    let lab_net = hosts[0].address.rsplit_once('.').unwrap().0.to_string() + ".";
    let addrs = Command::new("ip").args(["-o", "addr"]).output().unwrap();
    assert!(!stdout(&addrs).contains(&lab_net), "root namespace has a lab address");
    let routes = Command::new("ip").args(["route", "show", "table", "all"]).output().unwrap();
    assert!(!stdout(&routes).contains(&lab_net), "root namespace routes to the lab");

    // The control namespace reaches the agents directly too (for tests that speak gRPC).
    let unreachable: Vec<String> = lab.in_control_ns(|| {
        hosts
            .iter()
            .filter(|h| {
                let addr = SocketAddr::new(h.address.parse().unwrap(), h.port);
                TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
            })
            .map(|h| h.name.clone())
            .collect()
    });
    assert!(unreachable.is_empty(), "agents not answering in the control namespace: {unreachable:?}");

    // /etc/hosts written in one host is invisible outside it and in the others.
    let marker = format!("198.51.100.7 marker-{}", lab.name());
    let append = format!("echo '{marker}' >> /etc/hosts");
    assert_success("append to /etc/hosts", &lab.exec("client1", &["sh", "-c", &append]));
    assert!(stdout(&lab.exec("client1", &["cat", "/etc/hosts"])).contains(&marker));
    assert!(!std::fs::read_to_string("/etc/hosts").unwrap().contains(&marker), "write leaked to the real /etc/hosts");
    for other in ["client2", "gluServer1"] {
        assert!(!stdout(&lab.exec(other, &["cat", "/etc/hosts"])).contains(&marker), "write visible in {other}");
    }
}

#[test]
fn lab_down_leaves_nothing_behind_and_is_idempotent() {
    let lab = TestLab::up("lab-down", 1, 1);
    // Something running inside a host that the lab did not start itself.
    assert_success("background sleep", &lab.exec("client1", &["sh", "-c", "sleep 600 >/dev/null 2>&1 &"]));
    let traces = Traces::read(lab.name(), lab.dir());
    assert_eq!(traces.inits.len(), 2);
    assert_eq!(traces.backings.len(), 1);
    assert_eq!(traces.netns.len(), 3);
    assert_success("lab down", &lab.down());
    traces.assert_gone();
    let again = lab.down();
    assert_success("second lab down", &again);
    assert!(stdout(&again).contains("nothing to remove"), "{}", stdout(&again));
}

#[test]
fn a_failed_lab_up_cleans_up_after_itself() {
    for step in ["disks", "hosts", "agents"] {
        let name = TestLab::unique_name("lab-fail");
        let dir = Path::new("/var/lib/brickyard-lab").join(&name);
        let out = Command::new(lab_bin())
            .args(["up", "--name", &name, "--servers", "1", "--clients", "1"])
            .env("BRICKYARD_LAB_FAIL_AFTER", step)
            .output()
            .unwrap();
        assert!(!out.status.success(), "lab up with a failure injected after {step} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("after step `{step}`")), "{stderr}");
        Traces { name, dir, netns: vec![], backings: vec![], inits: vec![] }.assert_gone();
    }
}

#[test]
fn lab_down_cleans_up_after_an_interrupted_lab_up() {
    // An agent that never listens keeps `up` waiting with every host started; kill `up` there.
    let scratch = tempfile::tempdir().unwrap();
    let agent = scratch.path().join("silent-agent");
    std::fs::write(&agent, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let name = TestLab::unique_name("lab-intr");
    let dir = Path::new("/var/lib/brickyard-lab").join(&name);
    let mut up = Command::new(lab_bin())
        .args(["up", "--name", &name, "--servers", "1", "--clients", "1", "--agent-bin"])
        .arg(&agent)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let traces = loop {
        if let Ok(bytes) = std::fs::read(dir.join("state.json")) {
            if serde_json::from_slice::<serde_json::Value>(&bytes)
                .is_ok_and(|s| s["inits"].as_array().map(Vec::len) == Some(2))
            {
                break Traces::read(&name, &dir);
            }
        }
        assert!(std::time::Instant::now() < deadline, "lab up never started both hosts");
        std::thread::sleep(Duration::from_millis(20));
    };
    up.kill().unwrap();
    up.wait().unwrap();
    let out = Command::new(lab_bin()).args(["down", "--name", &name]).output().unwrap();
    assert_success("lab down after an interrupted up", &out);
    traces.assert_gone();
}

/// Whether file `binary` contains the bytes of `marker` (`grep -F`: its search is fast, a
/// hand-written one in this unoptimized test build takes seconds on a 100 MiB debug binary).
fn binary_contains(binary: &Path, marker: &str) -> bool {
    let out = Command::new("grep").args(["--quiet", "--text", "--fixed-strings", "--", marker]).arg(binary).output();
    match out.unwrap_or_else(|e| panic!("cannot run grep: {e}")).status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("grep {marker:?} {} failed: exit {other:?}", binary.display()),
    }
}

#[test]
fn the_operator_binary_has_no_lab_code() {
    let (operator, lab) = (brickyard_bin(), lab_bin());
    // What only the lab has: its hidden host init, the root switch and the failure injection.
    for marker in ["init-host", "pivot_root", "BRICKYARD_LAB_FAIL_AFTER"] {
        assert!(binary_contains(&lab, marker), "brickyard-lab lacks {marker:?}: the check finds nothing");
        assert!(!binary_contains(&operator, marker), "the operator's {} contains {marker:?}", operator.display());
    }
    let out = Command::new(&operator).args(["lab", "status"]).output().unwrap();
    assert!(!out.status.success(), "brickyard lab status succeeded: {}", stdout(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unrecognized subcommand 'lab'"), "{stderr}");
}
