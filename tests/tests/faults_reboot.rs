//! A lab host "reboots" (`brickyard-lab reboot`: everything in it killed, then booted again from
//! its own root disk and /etc) while the pool is unreachable from it, on a converged 2-server
//! replica-2 pool with one client:
//! - a server, cut off from the other server while the client writes: its brick filesystem comes
//!   back from fstab (`nofail`), glusterd starts, its agent answers; once the cut ends, heal
//!   completes, `status` is healthy, and every file (written before and during the reboot) is on
//!   both bricks with the client's checksum;
//! - the client, cut off from both servers: the boot gives up on its glusterfs fstab line
//!   (`_netdev,nofail`) at the lab's network-mount deadline instead of hanging; the mount is
//!   absent and stays so once the servers are back (nothing retries a boot mount that failed)
//!   until `apply` mounts it (changed), and a second `apply` leaves it (unchanged); the files
//!   read back with their checksums.
//!
//! Measured here (2 loaded cores, four passing runs): the server's reboot 6.6-31 s (almost all
//! glusterd's start), 110-130 entries to heal, healthy 17-32 s after the cut ended; the client's
//! reboot 15.1-15.3 s (the lab boot's 15 s network-mount deadline).
//!
//! A cut is iptables DROP rules in the network namespace of a host that does not reboot (a
//! rebooting host's own rules would survive too — its network namespace is its hardware — but
//! this keeps the rebooted host as it is). Needs root (namespaces, loop devices) and the built
//! binaries (`cargo build --bins`).

use std::time::{Duration, Instant};

use brickyard_tests::lab::{text, TestLab};

const BRICK: &str = "/vdisk/brick1";
/// The test's files, on the client's mount and (as `reboot/`) in each brick.
const FILES: &str = "/dataShare/reboot";
/// Created on the mount to end the client's write loop.
const STOP_FILE: &str = "/dataShare/reboot.stop";
/// How long heal and `status` may take to be healthy once a cut ends.
const HEALS: Duration = Duration::from_secs(300);
/// How long the client's write loop may take to write a few more files.
const WRITES: Duration = Duration::from_secs(120);
/// The client's whole boot with its servers away: the lab gives network mounts 15 s (systemd
/// 90 s); the rest of a boot takes well under a second here.
const CLIENT_BOOT_BOUND: Duration = Duration::from_secs(40);

/// Drops (`-I`) or restores (`-D`) all traffic between `on` and the address `peer`, with rules
/// inside `on`'s network namespace.
fn cut(lab: &TestLab, on: &str, peer: &str, op: &str) {
    for rule in [["INPUT", "-s"], ["OUTPUT", "-d"]] {
        let argv = ["iptables", "-w", op, rule[0], rule[1], peer, "-j", "DROP"];
        let out = lab.exec(on, &argv);
        assert!(out.status.success(), "{argv:?} on {on}: {}", text(&out));
    }
}

/// `sha256sum` of every file under `root`/reboot on `host`, sorted by name.
fn checksums(lab: &TestLab, host: &str, root: &str) -> String {
    lab.sh(host, &format!("cd {root}/reboot && ls | sort | xargs sha256sum"))
}

/// How many files the client's write loop has written (`during*`).
fn written(lab: &TestLab) -> usize {
    lab.sh("client1", &format!("ls {FILES} | grep -c '^during' || true")).parse().expect("a count")
}

/// Polls until the client has written more than `count` files.
fn await_written_past(lab: &TestLab, count: usize) -> usize {
    let started = Instant::now();
    loop {
        let now = written(lab);
        if now > count {
            return now;
        }
        assert!(started.elapsed() < WRITES, "client1 wrote {now} files, not more than {count}, within {WRITES:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `mount_point` is in `host`'s mount table (and as what).
fn mounted(lab: &TestLab, host: &str, mount_point: &str) -> String {
    lab.sh(host, &format!("awk '$2 == \"{mount_point}\" {{ print $1, $3 }}' /proc/mounts"))
}

/// The `status` of the `task_done` event of task `task` on `host` in `apply --json` output,
/// with its changes.
fn task_done(stdout: &str, host: &str, task: &str) -> (String, Vec<String>) {
    let event = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|e| e["event"] == "task_done" && e["host"] == host && e["task"] == task)
        .unwrap_or_else(|| panic!("no task_done of {task:?} on {host} in:\n{stdout}"));
    let changes = event["changes"].as_array().cloned().unwrap_or_default();
    (
        event["status"].as_str().unwrap_or_default().to_owned(),
        changes.iter().map(|c| c.as_str().unwrap_or_default().to_owned()).collect(),
    )
}

/// "... booted and its agent listening in X s" from `lab reboot`'s output.
fn boot_line(out: &str) -> &str {
    out.lines().find(|l| l.contains(" rebooted: ")).unwrap_or_else(|| panic!("no summary line in:\n{out}"))
}

#[test]
fn a_server_and_a_client_reboot_with_the_pool_unreachable_and_come_back() {
    let lab = TestLab::up("frboot", 2, 1);
    let spec_path = lab.spec_path();
    let spec = spec_path.to_str().unwrap();
    let out = lab.brickyard(&["apply", "-f", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let address = |host: &str| {
        let hosts = lab.spec().hosts();
        hosts.iter().find(|h| h.name == host).expect("host in the spec").address.clone()
    };
    let (server2, client) = (address("gluServer2"), address("client1"));

    let originals = lab.sh(
        "client1",
        &format!(
            "mkdir {FILES} && for i in $(seq 20); do head -c 65536 /dev/urandom > {FILES}/before$i; done && \
             cd {FILES} && ls | sort | xargs sha256sum"
        ),
    );

    // (a) gluServer2 reboots while gluServer1 drops its traffic, and the client writes on.
    cut(&lab, "gluServer1", &server2, "-I");
    let writer = format!(
        "i=0; while [ ! -e {STOP_FILE} ]; do i=$((i+1)); \
         head -c 16384 /dev/urandom > {FILES}/during$i || {{ echo \"write of during$i failed\" >&2; exit 1; }}; \
         sleep 0.05; done"
    );
    let (rebooted, took) = std::thread::scope(|scope| {
        let writing = scope.spawn(|| lab.exec("client1", &["sh", "-c", &writer]));
        await_written_past(&lab, 5);
        let started = Instant::now();
        let rebooted = lab.reboot("gluServer2");
        let took = started.elapsed();
        await_written_past(&lab, written(&lab) + 10);
        lab.sh("client1", &format!("touch {STOP_FILE}"));
        let out = writing.join().expect("the writer thread");
        assert!(out.status.success(), "the write loop on client1: {}", text(&out));
        (rebooted, took)
    });
    eprintln!("gluServer2 reboot took {took:.1?}: {}", boot_line(&rebooted));
    for step in [
        "boot: local filesystems (`mount -a -O no_netdev`): done",
        "boot: glusterd (`glusterd -p /run/glusterd.pid`): done",
    ] {
        assert!(rebooted.contains(step), "{step:?} not in the boot log:\n{rebooted}");
    }
    assert!(mounted(&lab, "gluServer2", "/vdisk").ends_with(" xfs"), "the brick disk is not mounted from fstab");
    lab.sh("gluServer2", "kill -0 $(cat /run/glusterd.pid) && gluster --mode=script pool list && pidof glusterfsd");
    let peers = lab.sh("gluServer2", "gluster --mode=script peer status");
    assert!(
        peers.contains("Peer in Cluster (Disconnected)"),
        "gluServer1 should be unreachable from gluServer2:\n{peers}"
    );
    let during = written(&lab);
    eprintln!("gluServer2: /vdisk mounted from fstab, glusterd and its brick run, the agent answers; {during} files written around the reboot");

    // Index entries on gluServer1's brick: files changed while gluServer2's brick was away.
    let pending: usize = lab
        .sh("gluServer1", &format!("ls {BRICK}/.glusterfs/indices/xattrop | grep -vc '^xattrop-' || true"))
        .parse()
        .expect("a count");
    assert!(pending > 0, "nothing for heal to do: no index entry on gluServer1's brick");
    cut(&lab, "gluServer1", &server2, "-D");
    let (_, healed) = lab.await_status("a healthy pool after the cut", HEALS, |out| out.status.code() == Some(0));
    let out = lab.brickyard(&["status", "--json", "-f", spec]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""pending_heals": 0,"#), "{}", text(&out));
    eprintln!("{pending} entries pending heal when the cut ended; status healthy, 0 pending heals {healed:.1?} later");
    let on_client = checksums(&lab, "client1", "/dataShare");
    assert_eq!(on_client.lines().count(), 20 + during, "files on client1");
    assert!(on_client.starts_with(&originals), "client1's before* files changed:\n{on_client}");
    for server in ["gluServer1", "gluServer2"] {
        assert_eq!(checksums(&lab, server, BRICK), on_client, "sha256 of the files on the brick of {server}");
    }
    eprintln!("{} files identical on client1 and both bricks", on_client.lines().count());

    // (b) client1 reboots while both servers drop its traffic.
    for server in ["gluServer1", "gluServer2"] {
        cut(&lab, server, &client, "-I");
    }
    let started = Instant::now();
    let rebooted = lab.reboot("client1");
    let took = started.elapsed();
    eprintln!("client1 reboot took {took:.1?}: {}", boot_line(&rebooted));
    assert!(took < CLIENT_BOOT_BOUND, "client1's boot took {took:?} (bound {CLIENT_BOOT_BOUND:?}):\n{rebooted}");
    let gave_up = "boot: network filesystems (`mount -a -O _netdev`): still running at its 15 s deadline: killed";
    assert!(rebooted.contains(gave_up) && rebooted.contains(r#"detached (["/dataShare"])"#), "{rebooted}");
    assert_eq!(mounted(&lab, "client1", "/dataShare"), "", "/dataShare is mounted after a boot without servers");

    for server in ["gluServer1", "gluServer2"] {
        cut(&lab, server, &client, "-D");
    }
    // Servers reachable again: nothing retries the boot's mount; apply would make it.
    assert_eq!(mounted(&lab, "client1", "/dataShare"), "", "/dataShare came back by itself");
    let out = lab.brickyard(&["plan", "-f", spec]);
    let mount = "mount -t glusterfs gluServer1:/gluV1 /dataShare -o backup-volfile-servers=gluServer2".to_owned();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&mount), "plan does not mount /dataShare: {}", text(&out));
    let task = "mount gluV1 on /dataShare";
    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(task_done(&String::from_utf8_lossy(&out.stdout), "client1", task), ("changed".into(), vec![mount]));
    let out = lab.brickyard(&["apply", "--json", "-f", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(task_done(&String::from_utf8_lossy(&out.stdout), "client1", task), ("unchanged".into(), vec![]));
    assert!(mounted(&lab, "client1", "/dataShare").ends_with(" fuse.glusterfs"), "/dataShare after apply");
    assert_eq!(checksums(&lab, "client1", "/dataShare"), on_client, "files read back on client1");
    eprintln!(
        "client1: /dataShare absent after the boot and once the servers were back; apply mounted it (changed), \
         a re-apply left it (unchanged); {} files read back with their checksums",
        on_client.lines().count()
    );
}
