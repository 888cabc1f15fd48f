//! Faults under load on real lab hosts with real glusterd. A brick filesystem fills up: `status`
//! warns (more than 95% used, naming host, brick and percent) before it is full; once full,
//! client writes fail with ENOSPC; `apply` changes nothing; a file written before keeps its
//! checksum on the client and on both bricks; once space is freed the pool is healthy again.
//!
//! Needs root (namespaces, loop devices) and the built binaries (`cargo build --bins`).

use std::process::Output;
use std::time::{Duration, Instant};

use brickyard_tests::lab::{assert_success, TestLab};

/// How long the pool may take to show a change of brick usage in `status`.
const SHOWS: Duration = Duration::from_secs(60);
const BRICK: &str = "/vdisk/brick1";

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `script` with `sh -c` on `host`; panics unless it succeeds; returns its stdout.
fn sh(lab: &TestLab, host: &str, script: &str) -> String {
    let out = lab.exec(host, &["sh", "-c", script]);
    assert_success(&format!("{script:?} on {host}"), &out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `status` until its output satisfies `done`; returns that output and how long it took.
fn await_status(lab: &TestLab, spec: &str, what: &str, done: impl Fn(&Output) -> bool) -> (Output, Duration) {
    let started = Instant::now();
    loop {
        let out = lab.brickyard(&["status", "-f", spec]);
        if done(&out) {
            return (out, started.elapsed());
        }
        assert!(started.elapsed() < SHOWS, "status did not show {what} within {SHOWS:?}:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Fills /vdisk on `server` with a preallocated file until `leave_percent` of it (and 4 MiB for
/// xfs's own metadata, well under gluster's `storage.reserve` of 1%) is free.
fn fill(lab: &TestLab, server: &str, file: &str, leave_percent: u64) {
    let df = sh(lab, server, "df -B1 --output=size,avail /vdisk | tail -1");
    let [size, avail]: [u64; 2] =
        df.split_whitespace().map(|n| n.parse().expect("df number")).collect::<Vec<_>>().try_into().expect("2 numbers");
    let length = avail.saturating_sub(size * leave_percent / 100 + (4 << 20));
    sh(lab, server, &format!("fallocate -l {length} /vdisk/{file}"));
}

#[test]
fn a_full_brick_is_reported_refuses_writes_with_enospc_and_recovers() {
    let lab = TestLab::up("fnfull", 2, 1);
    let spec = lab.spec_path();
    let spec = spec.to_str().unwrap();
    let out = lab.brickyard(&["apply", "-f", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let before =
        sh(&lab, "client1", "head -c 1048576 /dev/urandom > /dataShare/before && sha256sum < /dataShare/before");

    // 97% used: warned about, not yet full.
    for server in ["gluServer1", "gluServer2"] {
        fill(&lab, server, "filler", 3);
    }
    let (out, took) = await_status(&lab, spec, "a brick more than 95% full", |out| {
        String::from_utf8_lossy(&out.stdout).contains(&format!("brick gluServer1:{BRICK} is 9"))
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout.contains("% full (more than 95%): writes to it fail with ENOSPC once it is full"), "{stdout}");
    eprintln!("status warned after {took:?}: {}", stdout.lines().find(|l| l.contains("% full")).unwrap_or(""));

    // Full: writes fail cleanly with ENOSPC.
    for server in ["gluServer1", "gluServer2"] {
        fill(&lab, server, "filler2", 0);
    }
    let write = lab.exec("client1", &["sh", "-c", "head -c 8388608 /dev/urandom > /dataShare/after"]);
    let stderr = String::from_utf8_lossy(&write.stderr);
    assert!(!write.status.success() && stderr.contains("No space left on device"), "{}", text(&write));
    eprintln!("write on a full volume: {}", stderr.trim());

    // apply makes nothing worse: it changes nothing.
    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let changed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(r#""event":"task_done""#) && !l.contains(r#""status":"unchanged""#))
        .collect();
    assert!(
        out.status.code() == Some(0) && changed.is_empty(),
        "apply on a full pool changed {changed:?}\n{}",
        text(&out)
    );
    eprintln!("apply on the full pool: exit 0, nothing changed");

    // Space freed: healthy, the earlier file intact everywhere.
    sh(&lab, "client1", "rm -f /dataShare/after");
    for server in ["gluServer1", "gluServer2"] {
        sh(&lab, server, "rm /vdisk/filler /vdisk/filler2");
    }
    let (_, took) = await_status(&lab, spec, "a healthy pool", |out| out.status.code() == Some(0));
    eprintln!("healthy {took:?} after space was freed");
    assert_eq!(sh(&lab, "client1", "sha256sum < /dataShare/before"), before);
    for server in ["gluServer1", "gluServer2"] {
        assert_eq!(sh(&lab, server, &format!("sha256sum < {BRICK}/before")), before, "brick of {server}");
    }
}
