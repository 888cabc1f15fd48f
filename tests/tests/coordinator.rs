//! The coordinator end to end, on real lab hosts with real glusterd: `apply` converges the
//! seed's 2+2 replica-2 pool (also when an agent drops out mid-run and comes back), `verify`,
//! `plan --detailed-exitcode`, a no-op second `apply` and `status`; a 3-server lab carries an
//! arbiter and a disperse volume; a 4-server 2 x replica 2 pool converges on its first apply,
//! plan refuses a conflicting change behind earlier ones, apply repairs a dead brick, an
//! unmounted disk, a dead glusterd, a stale, a hung (crashed) and a missing client mount, and recovers a volume
//! deleted by hand when its bricks hold only gluster's metadata — and refuses, touching
//! nothing, when they hold a user's file; servers cloned with the same glusterd UUID are
//! refused before any probe (and converge once `reset_duplicate_uuids` allows a fresh UUID);
//! spec errors name the line and contact no host.
//!
//! Needs root (namespaces, loop devices) and the built binaries (`cargo build --bins`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use brickyard::client::connect;
use brickyard::spec::Spec;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{apply, starts, task};
use brickyard_tests::lab::{assert_success, brickyard_bin, lab_bin, TestLab};
use serde_json::Value;

/// The JSON events of an `apply --json` run.
fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event: {l:?}: {e}")))
        .collect()
}

fn task_statuses(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "task_done")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("host"), s("task"), s("status"))
        })
        .collect()
}

/// How long the pool may take to show a fault (a killed process) in `status`.
const FAULT_SHOWS: Duration = Duration::from_secs(60);

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A spec for the lab's hosts (servers with their disks, clients) with other volumes and mounts,
/// written to `dir` (the test's own: `lab down` removes only what `lab up` wrote).
fn lab_spec(lab: &TestLab, dir: &Path, file: &str, volumes: &str, mounts: &str) -> PathBuf {
    let base: Spec = lab.spec();
    let mut text = format!("version = 1\n[pool]\nname = \"{}\"\npki_dir = {:?}\n", base.pool.name, base.pki_dir());
    for s in &base.servers {
        let disk = s.disk.as_ref().expect("lab servers have a disk");
        text += &format!(
            "[[server]]\nname = {:?}\naddress = {:?}\ndisk = {{ device = {:?}, mount = {:?} }}\n",
            s.name,
            s.address,
            disk.device.as_deref().expect("lab disks are named by device"),
            disk.mount
        );
    }
    text += volumes;
    for c in &base.clients {
        text += &format!("[[client]]\nname = {:?}\naddress = {:?}\nmounts = {mounts}\n", c.name, c.address);
    }
    let path = dir.join(file);
    std::fs::write(&path, text).expect("writing the test spec");
    path
}

/// Makes `host`'s agent unreachable (every packet to its port is answered with a reset, also on
/// the open connection) or reachable again, with iptables inside that host's own netns.
fn agent_reachable(lab: &TestLab, host: &str, reachable: bool) {
    let op = if reachable { "-D" } else { "-I" };
    let out = lab.exec(
        host,
        &["iptables", op, "INPUT", "-p", "tcp", "--dport", "7420", "-j", "REJECT", "--reject-with", "tcp-reset"],
    );
    assert_success(&format!("iptables {op} on {host}"), &out);
}

#[test]
fn replica2_pool_converges_verifies_and_reapplies_as_a_no_op() {
    let lab = TestLab::up("coord22", 2, 2);
    let spec = lab.spec_path();
    let spec = spec.to_str().unwrap();

    // First apply; client2's agent drops out as soon as the servers phase starts.
    let mut child = Command::new(lab_bin())
        .args(["run", "--name", lab.name(), "--", "apply", "--json", "-f", spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning brickyard apply");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("reading apply's output");
        if line.contains(r#""event":"phase_started","phase":"servers""#) {
            agent_reachable(&lab, "client2", false);
        }
        lines.push(line);
    }
    let out = child.wait_with_output().expect("waiting for apply");
    let stdout = lines.join("\n");
    assert_eq!(
        out.status.code(),
        Some(1),
        "apply with client2 down must fail:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("phase clients failed") && stderr.contains("client2"), "{stderr}");
    assert!(!stderr.contains("client1"), "only client2 failed: {stderr}");
    // The others' clients phase completed: client1 mounted the volume.
    let client1_done: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "host_done" && e["phase"] == "clients" && e["host"] == "client1")
        .collect();
    assert_eq!(client1_done.len(), 1, "{stdout}");
    assert!(client1_done[0]["error"].is_null(), "{stdout}");
    let mounted = lab.exec("client1", &["findmnt", "-n", "-t", "fuse.glusterfs", "/dataShare"]);
    assert_success("client1's glusterfs mount", &mounted);

    // Agent back: a re-run converges.
    agent_reachable(&lab, "client2", true);
    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    let out = lab.brickyard(&["verify", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("FAIL"), "{}", text(&out));

    let out = lab.brickyard(&["plan", "--detailed-exitcode", "-f", spec]);
    assert_eq!(code(&out), 0, "plan after apply must have nothing to do:\n{}", text(&out));

    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let statuses = task_statuses(&events(&out));
    assert!(statuses.len() > 20, "{statuses:?}");
    let changed: Vec<_> = statuses.iter().filter(|(_, _, s)| s != "unchanged").collect();
    assert!(changed.is_empty(), "second apply changed {changed:?}");

    let out = lab.brickyard(&["status", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: healthy"), "{}", text(&out));
}

#[test]
fn arbiter_and_disperse_volumes_on_three_servers() {
    let lab = TestLab::up("coord3", 3, 1);
    let volumes = "[[volume]]\nname = \"arb\"\ntype = \"arbiter\"\nreplica = 3\narbiter = 1\nbrick_dir = \"arb\"\n\
                   [[volume]]\nname = \"ec\"\ntype = \"disperse\"\ndisperse = 3\nredundancy = 1\nbrick_dir = \"ec\"\n";
    let mounts = r#"[{ volume = "arb", path = "/arb" }, { volume = "ec", path = "/ec" }]"#;
    let specs = tempfile::tempdir().expect("a directory for the test's specs");
    let spec = lab_spec(&lab, specs.path(), "arbiter-disperse.toml", volumes, mounts);
    let spec = spec.to_str().unwrap();

    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = lab.brickyard(&["verify", "--json", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    let checks = report["checks"].as_array().unwrap();
    // Per volume: append, read, 3 bricks, remove.
    assert_eq!(checks.len(), 12, "{report:#}");
    assert!(checks.iter().any(|c| c["volume"] == "arb" && c["check"].as_str().unwrap().contains("without its data")));
}

/// Runs `argv` on `host`; panics with its output unless it succeeds; returns its stdout.
fn on(lab: &TestLab, host: &str, argv: &[&str]) -> String {
    let out = lab.exec(host, argv);
    assert_success(&format!("{argv:?} on {host}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `brickyard COMMAND -f SPEC`.
fn run(lab: &TestLab, command: &str, spec: &str) -> Output {
    lab.brickyard(&[command, "-f", spec])
}

/// `brickyard COMMAND -f SPEC`, which must exit `want`; returns its output as text.
fn expect(lab: &TestLab, command: &str, spec: &str, want: i32) -> String {
    let out = run(lab, command, spec);
    assert_eq!(code(&out), want, "{command}:\n{}", text(&out));
    text(&out)
}

/// Polls `status` until it exits 1 naming `problem` (a fault takes a moment to show).
fn await_problem(lab: &TestLab, spec: &str, problem: &str) {
    let deadline = Instant::now() + FAULT_SHOWS;
    loop {
        let out = run(lab, "status", spec);
        if code(&out) == 1 && String::from_utf8_lossy(&out.stdout).contains(&format!("problem: {problem}")) {
            return;
        }
        assert!(Instant::now() < deadline, "status did not report {problem:?} within {FAULT_SHOWS:?}:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGKILLs the process in `pid_file` on `host` and waits until it is gone and reaped (the host's
/// init reaps orphans): a zombie leader does not prove that its other threads have closed their
/// files yet, so only then is its filesystem free to unmount.
fn kill_from_pid_file(lab: &TestLab, host: &str, pid_file: &str) {
    let pid = on(lab, host, &["cat", pid_file]).trim().to_owned();
    on(lab, host, &["kill", "-KILL", &pid]);
    let deadline = Instant::now() + FAULT_SHOWS;
    while lab.exec(host, &["test", "-e", &format!("/proc/{pid}")]).status.success() {
        assert!(Instant::now() < deadline, "{host}: pid {pid} from {pid_file} is still there after SIGKILL");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sha256sum` of each path on `host`.
fn sums(lab: &TestLab, host: &str, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| on(lab, host, &["sha256sum", p]).split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

/// The 4-server lab's volume: 2 x replica 2 over every server.
const TWO_BY_TWO: &str =
    "[[volume]]\nname = \"gluV1\"\ntype = \"replicate\"\nreplica = 2\nallow_replica2 = true\nbrick_dir = \"brick1\"\n";
const MOUNTS: &str = r#"[{ volume = "gluV1", path = "/dataShare" }]"#;
const BRICK: &str = "/vdisk/brick1";

#[test]
fn four_servers_converge_at_once_are_repaired_and_never_left_stuck() {
    let lab = TestLab::up("coord4", 4, 1);
    let specs = tempfile::tempdir().expect("a directory for the test's specs");
    let spec = lab_spec(&lab, specs.path(), "two-by-two.toml", TWO_BY_TWO, MOUNTS);
    let spec = spec.to_str().unwrap();
    let servers: Vec<String> = lab.spec().servers.iter().map(|s| s.name.clone()).collect();

    // The first apply converges a fresh 4-server pool (every server sees every other before
    // the volume is created); verify passes; plan then has nothing to do.
    let started = Instant::now();
    expect(&lab, "apply", spec, 0);
    eprintln!("4-server pool converged in {:?}", started.elapsed());
    assert!(expect(&lab, "verify", spec, 0).contains("verify: 5 of 5 checks passed"));
    let out = lab.brickyard(&["plan", "--detailed-exitcode", "-f", spec]);
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A conflict behind earlier changes is still a refusal: the volume on other brick dirs.
    let moved = lab_spec(&lab, specs.path(), "moved-bricks.toml", &TWO_BY_TWO.replace("brick1", "brick2"), MOUNTS);
    let plan = expect(&lab, "plan", moved.to_str().unwrap(), 1);
    assert!(plan.contains("~ brick dir /vdisk/brick2: create brick directory /vdisk/brick2"), "{plan}");
    assert!(
        plan.contains("! volume gluV1: REFUSED: volume gluV1 already exists and differs: its bricks are"),
        "{plan}"
    );
    assert!(plan.contains("(conflict)") && plan.contains("plan: apply would fail"), "{plan}");

    // User files, written through the client.
    let files: Vec<String> = (1..=4).map(|i| format!("/dataShare/data-{i}")).collect();
    for f in &files {
        on(&lab, "client1", &["dd", "if=/dev/urandom", &format!("of={f}"), "bs=64k", "count=4", "status=none"]);
    }
    let written = sums(&lab, "client1", &files);

    // A dead brick process: status names it, apply restarts it.
    kill_from_pid_file(&lab, &servers[0], &format!("/run/gluster/vols/gluV1/{}-vdisk-brick1.pid", servers[0]));
    let offline = format!("volume gluV1: brick {}:{BRICK} is offline — `brickyard apply` restarts it", servers[0]);
    await_problem(&lab, spec, &offline);
    // verify then names the brick the client cannot reach, instead of writing a file that
    // would miss it.
    let verified = expect(&lab, "verify", spec, 1);
    let unreached = format!(
        "to reach every brick (see /var/log/glusterfs/dataShare.log) (after 20s: not yet {}:{BRICK})",
        servers[0]
    );
    assert!(
        verified.contains("FAIL  gluV1: client1 writes /dataShare/") && verified.contains(&unreached),
        "{verified}"
    );
    let applied = expect(&lab, "apply", spec, 0);
    assert!(applied.contains(&format!("restart offline bricks {}:{BRICK} (volume start gluV1 force)", servers[0])));
    expect(&lab, "status", spec, 0);

    // A dead brick whose disk is not mounted either: the disk is mounted again from its fstab
    // entry before the brick is restarted (never on the filesystem below the mount point).
    kill_from_pid_file(&lab, &servers[1], &format!("/run/gluster/vols/gluV1/{}-vdisk-brick1.pid", servers[1]));
    on(&lab, &servers[1], &["umount", "/vdisk"]);
    let plan = expect(&lab, "plan", spec, 0);
    assert!(
        plan.contains("~ mount /vdisk: ")
            && plan.contains("~ bricks: depends on an earlier change (/vdisk is not mounted")
    );
    let applied = expect(&lab, "apply", spec, 0);
    assert!(applied.contains(&format!("restart offline bricks {}:{BRICK}", servers[1])), "{applied}");
    let source = on(&lab, &servers[1], &["findmnt", "-n", "-o", "SOURCE", "/vdisk"]);
    assert!(source.trim().starts_with("/dev/loop"), "{source}");
    expect(&lab, "status", spec, 0);

    // glusterd killed: status names it, apply starts it.
    kill_from_pid_file(&lab, &servers[2], "/run/glusterd.pid");
    await_problem(&lab, spec, &format!("{}: glusterd is not running — `brickyard apply` starts it", servers[2]));
    expect(&lab, "apply", spec, 0);
    expect(&lab, "status", spec, 0);

    // The client's FUSE process killed (a stale mount), then the mount gone.
    let fuse = on(&lab, "client1", &["pgrep", "-f", "glusterfs .*/dataShare$"]);
    on(&lab, "client1", &["kill", "-KILL", fuse.trim()]);
    await_problem(
        &lab,
        spec,
        "client1: volume gluV1 on /dataShare is a stale mount (Transport endpoint is not connected) — `brickyard apply` \
         mounts it again",
    );
    assert!(expect(&lab, "apply", spec, 0).contains("umount -l /dataShare"));
    expect(&lab, "status", spec, 0);
    // The client's FUSE process hung after a crash, as gluster 10.3's was seen to on a full
    // brick: stopped, with the crash report its handler writes before it deadlocks (requests to
    // the mount then wait forever). Apply kills it and mounts again.
    let fuse = on(&lab, "client1", &["pgrep", "-f", "glusterfs .*/dataShare$"]);
    on(&lab, "client1", &["kill", "-STOP", fuse.trim()]);
    let crash =
        "pending frames:\nframe : type(0) op(0)\nsignal received: 6\ntime of crash: \n2026-12-02 13:58:23 +0000\n";
    on(&lab, "client1", &["sh", "-c", &format!("printf '{crash}' >> /var/log/glusterfs/dataShare.log")]);
    await_problem(
        &lab,
        spec,
        "client1: volume gluV1 on /dataShare is a stale mount (its glusterfs client process crashed (signal 6 at \
         2026-12-02 13:58:23 +0000; see /var/log/glusterfs/dataShare.log) and hangs instead of exiting) — `brickyard \
         apply` mounts it again",
    );
    assert!(expect(&lab, "apply", spec, 0).contains("kill -KILL its glusterfs client; umount -l /dataShare"));
    expect(&lab, "status", spec, 0);
    on(&lab, "client1", &["umount", "/dataShare"]);
    await_problem(&lab, spec, "client1: volume gluV1 is not mounted on /dataShare — `brickyard apply` mounts it");
    expect(&lab, "apply", spec, 0);
    expect(&lab, "status", spec, 0);
    assert_eq!(sums(&lab, "client1", &files), written, "files written before the repairs");

    // Deleted by hand while its bricks hold only gluster's metadata: recreated.
    on(&lab, "client1", &["rm", "-f", &files[0], &files[1], &files[2], &files[3]]);
    let gluster = |args: &[&str]| on(&lab, &servers[0], &[&["gluster", "--mode=script", "volume"][..], args].concat());
    gluster(&["stop", "gluV1"]);
    gluster(&["delete", "gluV1"]);
    await_problem(&lab, spec, "volume gluV1: does not exist — `brickyard apply` creates it");
    let plan = expect(&lab, "plan", spec, 0);
    for s in &servers {
        assert!(plan.contains(&format!("~ bricks: recover brick {s}:{BRICK}: clear the stale volume-id")), "{plan}");
    }
    expect(&lab, "apply", spec, 0);
    expect(&lab, "status", spec, 0);
    assert!(expect(&lab, "verify", spec, 0).contains("verify: 5 of 5 checks passed"));

    // Deleted by hand while a user's file is on its bricks: refused, naming each brick that
    // holds it, and the file stays where it is, unchanged.
    let file = "/dataShare/keep-me";
    on(&lab, "client1", &["dd", "if=/dev/urandom", &format!("of={file}"), "bs=64k", "count=4", "status=none"]);
    let sum = sums(&lab, "client1", &[file.to_owned()]);
    gluster(&["stop", "gluV1"]);
    gluster(&["delete", "gluV1"]);
    let on_brick = format!("{BRICK}/keep-me");
    let holders: Vec<&String> =
        servers.iter().filter(|s| lab.exec(s, &["test", "-f", &on_brick]).status.success()).collect();
    assert_eq!(holders.len(), 2, "one replica pair holds the file");
    let out = run(&lab, "apply", spec);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for s in &servers {
        let refusal = format!("brick {s}:{BRICK} carries the volume-id");
        assert_eq!(stderr.contains(&refusal), holders.contains(&s), "{s}: {stderr}");
    }
    assert!(stderr.contains("holds 1 entry besides gluster's metadata (keep-me)"), "{stderr}");
    assert!(stderr.contains(&format!("setfattr -x trusted.glusterfs.volume-id {BRICK}")), "{stderr}");
    for s in holders {
        assert_eq!(sums(&lab, s, std::slice::from_ref(&on_brick)), sum, "{s}: the refused brick's file");
        let id = on(&lab, s, &["getfattr", "--absolute-names", "-n", "trusted.glusterfs.volume-id", BRICK]);
        assert!(id.contains("trusted.glusterfs.volume-id="), "{s}: the volume-id stays: {id}");
    }
    let plan = expect(&lab, "plan", spec, 1);
    assert!(plan.contains("! bricks: REFUSED: brick ") && plan.contains("(unsafe)"), "{plan}");
}

#[test]
fn cloned_servers_with_the_same_glusterd_uuid_are_refused_before_any_probe() {
    let lab = TestLab::up("dupuuid", 2, 0);
    let spec = lab.spec();
    let pki = spec.pki_dir();
    let exec = |host: &str, argv: &[&str]| {
        let out = lab.exec(host, argv);
        assert_success(&format!("{argv:?} on {host}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let uuid_of = |host: &str| {
        let info = exec(host, &["cat", "/var/lib/glusterd/glusterd.info"]);
        info.lines().find_map(|l| l.strip_prefix("UUID=")).expect("UUID= line in glusterd.info").to_owned()
    };
    // EnsureGlusterd starts glusterd, whose first CLI call writes glusterd.info.
    let ensure_glusterd = |hosts: &[&str]| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let glusterd = [task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {}))];
        lab.in_control_ns(|| {
            rt.block_on(async {
                for target in spec.hosts().iter().filter(|h| hosts.contains(&h.name.as_str())) {
                    let mut client = connect(&pki, target).await.expect("the lab agent answers");
                    starts(&apply(&mut client, &glusterd).await, &["glusterd: changed"]);
                }
            })
        })
    };
    ensure_glusterd(&["gluServer1", "gluServer2"]);
    let uuid1 = uuid_of("gluServer1");
    assert_ne!(uuid_of("gluServer2"), uuid1, "fresh hosts have their own UUIDs");

    // gluServer2 becomes a clone of gluServer1: glusterd stopped, UUID copied, glusterd started.
    let pid = exec("gluServer2", &["cat", "/run/glusterd.pid"]).trim().to_owned();
    exec("gluServer2", &["kill", &pid]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.exec("gluServer2", &["kill", "-0", &pid]).status.success() {
        assert!(Instant::now() < deadline, "gluServer2's glusterd (pid {pid}) still runs 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    exec("gluServer2", &["sed", "-i", &format!("s/^UUID=.*/UUID={uuid1}/"), "/var/lib/glusterd/glusterd.info"]);
    ensure_glusterd(&["gluServer2"]);
    assert_eq!(uuid_of("gluServer2"), uuid1);

    let spec_path = lab.spec_path();
    let out = lab.brickyard(&["apply", "-f", spec_path.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "apply with cloned servers must fail:\n{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("servers gluServer1 and gluServer2 have the same glusterd UUID") && stderr.contains(&uuid1),
        "{}",
        text(&out)
    );
    let pool = exec("gluServer1", &["gluster", "--mode=script", "pool", "list"]);
    let peers: Vec<&str> = pool.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    assert!(peers.len() == 1 && peers[0].contains("localhost"), "a peer was probed: {pool}");

    // Allowed to reset: gluServer2 gets a fresh UUID and the pool converges.
    let lab_text = std::fs::read_to_string(&spec_path).expect("reading the lab spec");
    // Outside the lab directory, so its pki_dir is given in full.
    let pool = format!("[pool]\nreset_duplicate_uuids = true\npki_dir = {:?}\n", pki);
    let reset_text = lab_text.replacen("[pool]\n", &pool, 1).replacen("pki_dir = \"pki\"\n", "", 1);
    assert_eq!(reset_text.matches("pki_dir").count(), 1, "the lab spec has a [pool] table with pki_dir = \"pki\"");
    let specs = tempfile::tempdir().expect("a directory for the test's specs");
    let reset_path = specs.path().join("reset-duplicate-uuids.toml");
    std::fs::write(&reset_path, reset_text).expect("writing the test spec");
    let out = lab.brickyard(&["apply", "-f", reset_path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let uuid2 = uuid_of("gluServer2");
    assert_ne!(uuid2, uuid1, "gluServer2 got a fresh UUID");
    let pool = exec("gluServer1", &["gluster", "--mode=script", "pool", "list"]);
    assert!(pool.contains(&uuid2) && pool.contains("gluServer2"), "{pool}");
}

#[test]
fn spec_errors_name_the_line_and_contact_no_host() {
    // Every host points at this listener: a connection attempt would show up here.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "version = 1\n[pool]\nname = \"t\"\n\
         [[server]]\nname = \"s1\"\naddress = \"127.0.0.1\"\nport = {port}\ndisk = {{ device = \"/dev/vdb\", mount = \"/vdisk\" }}\n\
         [[server]]\nname = \"s2\"\naddress = \"127.0.0.2\"\nport = {port}\ndisk = {{ device = \"/dev/vdb\", mount = \"/vdisk\" }}\n\
         [[volume]]\nname = \"v\"\ntype = \"replicate\"\nreplica = 2\nallow_replica2 = true\nbrick_dir = \"b\"\n"
    );
    let cases = [
        ("unknown key", good.replace("brick_dir = \"b\"", "brick_dir = \"b\"\nreplicas = 2"), "line 20", "replicas"),
        ("replica", good.replace("replica = 2", "replica = 3"), "line 17", "2 bricks do not fit replica 3"),
        ("duplicate", good.replace("name = \"s2\"", "name = \"s1\""), "line 10", "already used by server[0]"),
    ];
    for (what, text, line, needle) in cases {
        let path: &Path = &dir.path().join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(path, &text).unwrap();
        for command in ["plan", "apply"] {
            let out = Command::new(brickyard_bin()).args([command, "-f", path.to_str().unwrap()]).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(code(&out), 1, "{what}: {command}: {}", self::text(&out));
            assert!(
                stderr.contains(line) && stderr.contains(needle),
                "{what}: {command}: expected {line} and {needle:?}: {stderr}"
            );
        }
    }
    assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "a host was contacted");
}
