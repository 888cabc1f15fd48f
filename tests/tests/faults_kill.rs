//! Issue #16, the agent killed *during* a change: the agent's failure points (feature
//! `fault-points`, on here through tests/Cargo.toml, off in the packages' `-p brickyard-agent`
//! builds) SIGKILL the agent of a lab server while mkfs runs, between /etc/fstab's temp copy and
//! its rename, and while `gluster volume create` runs. The host's init restarts the agent; a
//! second `brickyard apply` must converge and `verify` pass. Each test prints what it saw
//! (times, checksums, blkid) for the lead's note. Touches only its own lab (torn down on drop).

use std::time::{Duration, Instant};

use brickyard_agent::host::fault::ARMED_FILE;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use brickyard_tests::lab::{brickyard_bin, text, TestLab};

/// How long a killed lab agent may take to be restarted by the host's init.
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

fn agent_pid(lab: &TestLab, host: &str) -> String {
    lab.sh(host, &format!("cat {}", brickyard_lab::AGENT_PID_IN_HOST))
}

/// One interrupted run: arms `point` on the first server, runs `apply` (which must fail, the
/// agent having died at the point), awaits the restarted agent (a new pid), then calls
/// `after_kill` (the state the crash left), applies again (must converge), and checks that a
/// third apply changes nothing and verify passes. Returns the lab for the caller's checks.
fn interrupted_apply(prefix: &str, point: &str, after_kill: impl FnOnce(&TestLab, &str)) -> TestLab {
    let lab = TestLab::up(prefix, 2, 1);
    let spec_path = lab.spec_path();
    let spec = spec_path.to_str().unwrap();
    let host = lab.spec().servers[0].name.clone();
    let before = agent_pid(&lab, &host);
    lab.sh(&host, &format!("echo '{point}' > {ARMED_FILE}"));

    let started = Instant::now();
    let first = lab.brickyard(&["apply", "-f", spec]);
    let first_took = started.elapsed();
    assert_ne!(first.status.code(), Some(0), "apply with the agent killed at {point} succeeded:\n{}", text(&first));
    let log_path = lab.dir().join("hosts").join(&host).join("host.log");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(log.contains("fault point: SIGKILL"), "the point {point} did not fire; host log:\n{log}");
    assert!(!lab.sh(&host, &format!("ls {ARMED_FILE} 2>/dev/null || true")).contains("fault"), "point still armed");

    let deadline = Instant::now() + RESTART_TIMEOUT;
    while agent_pid(&lab, &host) == before || !log_has_restart(&log_path, &before) {
        assert!(
            Instant::now() < deadline,
            "awaited {host}'s agent restarted (pid other than {before}) for {RESTART_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{point}: first apply failed after {first_took:?}; agent restarted after {:?}", started.elapsed());
    eprintln!("{point}: first apply ended with: {}", last_line(&first));
    after_kill(&lab, &host);

    // The restarted agent may not listen yet: the re-run is retried until the deadline.
    let deadline = Instant::now() + RESTART_TIMEOUT;
    let rerun = Instant::now();
    loop {
        let out = lab.brickyard(&["apply", "-f", spec]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "re-run after {point} did not converge:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{point}: re-run converged in {:?}", rerun.elapsed());
    let plan = lab.brickyard(&["plan", "--detailed-exitcode", "-f", spec]);
    assert_eq!(plan.status.code(), Some(0), "plan after the re-run still has work:\n{}", text(&plan));
    let verify = lab.brickyard(&["verify", "-f", spec]);
    assert!(verify.status.success(), "verify after {point}:\n{}", text(&verify));
    eprintln!("{point}: {}", last_line(&verify));
    lab
}

fn log_has_restart(log: &std::path::Path, pid: &str) -> bool {
    std::fs::read_to_string(log)
        .is_ok_and(|l| l.contains(&format!("agent (pid {pid}) killed by SIGKILL, restarting it")))
}

/// The agent (and its mkfs child, as systemd kills a dead service's cgroup) killed as mkfs.xfs
/// starts: the partition is left without a filesystem on an otherwise empty disk; the re-run
/// keeps the partition, makes the filesystem and mounts the brick from it.
#[test]
fn agent_killed_during_mkfs_rerun_converges() {
    let lab = interrupted_apply("fkmkfs", "during:mkfs.xfs", |lab, host| {
        let disk = lab.spec().servers[0].disk.as_ref().and_then(|d| d.device.clone()).unwrap();
        let seen = lab.sh(host, &format!("blkid -p -o export {disk}p1 || echo 'blkid: nothing found (exit $?)'"));
        eprintln!("during:mkfs.xfs: after the kill, {disk}p1 holds: {seen:?}");
        assert!(
            !seen.lines().any(|l| l.starts_with("TYPE=")),
            "mkfs killed at its start left a filesystem signature: {seen}"
        );
    });
    let server = &lab.spec().servers[0];
    let disk = server.disk.as_ref().and_then(|d| d.device.clone()).unwrap();
    assert_eq!(lab.sh(&server.name, "findmnt -n -o SOURCE,FSTYPE /vdisk"), format!("{disk}p1 xfs"));
}

/// The agent killed between writing /etc/fstab's temp copy and renaming it: fstab is still the
/// old file byte for byte (sha256), the temp copy is there; the re-run writes the new fstab
/// (one managed /vdisk entry) and no temp copy is left.
#[test]
fn agent_killed_before_fstab_rename_file_is_old_or_new_and_no_temp_left() {
    let old = std::cell::RefCell::new(String::new());
    let lab = interrupted_apply("fketc", "etc-rename:/etc/fstab", |lab, host| {
        let sum = lab.sh(host, "sha256sum /etc/fstab | cut -d' ' -f1");
        let temps = lab.sh(host, "ls -a /etc | grep '^.fstab.brickyard-' || true");
        eprintln!("etc-rename: after the kill, /etc/fstab sha256 {sum}, temp copies {temps:?}");
        assert!(!temps.is_empty(), "the kill before rename left no temp copy in /etc");
        let contents = lab.sh(host, "cat /etc/fstab");
        assert!(!contents.contains("/vdisk"), "fstab has the new entry though the rename never ran:\n{contents}");
        *old.borrow_mut() = sum;
    });
    let host = lab.spec().servers[0].name.clone();
    let sum = lab.sh(&host, "sha256sum /etc/fstab | cut -d' ' -f1");
    let fstab = lab.sh(&host, "cat /etc/fstab");
    eprintln!("etc-rename: after the re-run, /etc/fstab sha256 {sum} (was {})", old.borrow());
    assert_ne!(sum, *old.borrow(), "the re-run did not write the new fstab");
    assert_eq!(fstab.lines().filter(|l| l.contains(" /vdisk xfs ")).count(), 1, "{fstab}");
    assert_eq!(lab.sh(&host, "ls -a /etc | grep -c '^.fstab.brickyard-' || true"), "0", "temp copy left behind");
}

/// The agent (and its gluster CLI child) killed while `gluster volume create` runs: the re-run
/// finds the volume made or makes it (clearing a half-tagged brick dir only if gluster has no
/// such volume), starts it and mounts it on the client.
#[test]
fn agent_killed_during_volume_create_rerun_converges() {
    let lab = interrupted_apply("fkvol", "during:volume create", |lab, host| {
        let info = lab.sh(host, "gluster --mode=script volume list 2>&1 || true");
        eprintln!("during:volume create: after the kill, gluster volume list says {info:?}");
    });
    let volume = lab.spec().volumes[0].name.clone();
    let host = lab.spec().servers[0].name.clone();
    let status = lab.sh(&host, &format!("gluster --mode=script volume info {volume} | grep '^Status'"));
    assert_eq!(status, "Status: Started");
}

/// Issue #16's coordinator killed mid-apply: `brickyard apply` on a fresh lab is SIGKILLed as
/// soon as it prints that the volumes phase started; the re-run converges and verify passes.
#[test]
fn coordinator_killed_during_volumes_phase_rerun_converges() {
    let lab = TestLab::up("fkcoord", 2, 1);
    let spec_path = lab.spec_path();
    let spec = spec_path.to_str().unwrap();
    let started = Instant::now();
    let mut apply = lab.in_control_ns(|| {
        Command::new(brickyard_bin())
            .args(["apply", "-f", spec])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning brickyard apply in the lab's control namespace")
    });
    let mut seen = Vec::new();
    for line in BufReader::new(apply.stdout.take().unwrap()).lines().map_while(Result::ok) {
        let volumes = line.starts_with("== volumes");
        seen.push(line);
        if volumes {
            apply.kill().expect("SIGKILL brickyard apply");
            break;
        }
    }
    let status = apply.wait().expect("reaping brickyard apply");
    let killed_after = started.elapsed();
    assert!(
        seen.last().is_some_and(|l| l.starts_with("== volumes")),
        "apply never reached volumes:\n{}",
        seen.join("\n")
    );
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "apply was not killed: {status}");
    eprintln!(
        "coordinator: SIGKILLed {killed_after:?} after start, as the volumes phase began ({} lines out)",
        seen.len()
    );

    let rerun = Instant::now();
    let out = lab.brickyard(&["apply", "-f", spec]);
    assert!(out.status.success(), "re-run after the coordinator was killed:\n{}", text(&out));
    eprintln!("coordinator: re-run converged in {:?}; its summary: {}", rerun.elapsed(), last_line(&out));
    let verify = lab.brickyard(&["verify", "-f", spec]);
    assert!(verify.status.success(), "verify after the coordinator was killed:\n{}", text(&verify));
    eprintln!("coordinator: {}", last_line(&verify));
    let plan = lab.brickyard(&["plan", "--detailed-exitcode", "-f", spec]);
    assert_eq!(plan.status.code(), Some(0), "plan after the re-run still has work:\n{}", text(&plan));
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned()
}
