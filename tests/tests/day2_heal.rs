//! Day 2 with heals on a real pool (issue #12), through the operator's `brickyard` in a lab
//! (real agents, loop disks with xfs, glusterd): a spec change raises a replica-2 volume
//! holding files to replica 3 on a new server (`add-brick replica 3`, full heal watched to
//! zero), and a server taken down for good is replaced by a new one (`replaces = "OLD"`:
//! `replace-brick ... commit force`, full heal, `peer detach`). Both check every file's sha256
//! on the client before, on the client after, and on every brick that must hold it. Volumes use
//! `network.ping-timeout` = 5 s so a dead server is noticed quickly. Root.

use std::path::{Path, PathBuf};
use std::process::Output;

use brickyard_tests::lab::{assert_success, TestLab};

const VOLUME: &str = "hv";
const BRICK_DIR: &str = "hb";
const MOUNT: &str = "/dataShare";
/// 200 files of random content at the top and 20 in a subdirectory (entry heal of a directory).
const WRITE_FILES: &str = "cd /dataShare && for i in $(seq 1 200); do head -c 16384 /dev/urandom > f$i || exit 1; \
                           done && mkdir -p d/e && for i in $(seq 1 20); do head -c 4096 /dev/urandom > d/e/g$i || \
                           exit 1; done";

/// `sha256sum` of every file under `dir` (gluster's own `.glusterfs` left out), sorted by path.
fn checksums_of(dir: &str) -> String {
    format!("cd {dir} && find . -path ./.glusterfs -prune -o -type f -print | sort | xargs sha256sum")
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One `[[server]]` of the spec: a lab server, perhaps replacing another.
struct Server<'a> {
    name: &'a str,
    replaces: Option<&'a str>,
}

fn server(name: &str) -> Server<'_> {
    Server { name, replaces: None }
}

/// Writes DIR/heal.toml: `servers` (each with its lab loop disk, xfs on /vdisk), one replicated
/// volume over them all, mounted by client1.
fn write_spec(lab: &TestLab, servers: &[Server], replica: u32) -> PathBuf {
    let live = lab.spec();
    let mut toml = format!("version = 1\n[pool]\nname = \"{}\"\npki_dir = \"pki\"\n", lab.name());
    for s in servers {
        let target = live.server(s.name).unwrap_or_else(|| panic!("lab server {}", s.name));
        let device = target.disk.as_ref().and_then(|d| d.device.clone()).expect("lab servers have a loop disk");
        toml += &format!("\n[[server]]\nname = \"{}\"\naddress = \"{}\"\n", s.name, target.address);
        if let Some(old) = s.replaces {
            toml += &format!("replaces = \"{old}\"\n");
        }
        toml += &format!("disk = {{ device = \"{device}\", filesystem = \"xfs\", mount = \"/vdisk\" }}\n");
    }
    let allow = if replica == 2 { "allow_replica2 = true\n" } else { "" };
    toml += &format!(
        "\n[[volume]]\nname = \"{VOLUME}\"\ntype = \"replicate\"\nreplica = {replica}\n{allow}brick_dir = \
         \"{BRICK_DIR}\"\noptions = {{ \"network.ping-timeout\" = \"5\" }}\n"
    );
    let client = &live.clients[0];
    toml += &format!(
        "\n[[client]]\nname = \"{}\"\naddress = \"{}\"\nmounts = [{{ volume = \"{VOLUME}\", path = \"{MOUNT}\" }}]\n",
        client.name, client.address
    );
    let path = lab.dir().join("heal.toml");
    std::fs::write(&path, toml).expect("write heal.toml");
    path
}

/// `brickyard ARGS -f SPEC`, which must succeed; its stdout.
fn brickyard(lab: &TestLab, args: &[&str], spec: &Path) -> String {
    let spec = spec.to_string_lossy();
    let out = lab.brickyard(&[args, &["-f", &spec]].concat());
    assert_success(&format!("brickyard {}", args.join(" ")), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the files on client1 and returns their checksums.
fn write_files(lab: &TestLab) -> String {
    assert_success("writing files", &lab.exec("client1", &["sh", "-c", WRITE_FILES]));
    let sums = on(lab, "client1", MOUNT);
    assert_eq!(sums.lines().count(), 220, "{sums}");
    sums
}

/// The checksums of every file under `dir` on `host`.
fn on(lab: &TestLab, host: &str, dir: &str) -> String {
    let out = lab.exec(host, &["sh", "-c", &checksums_of(dir)]);
    assert_success(&format!("checksums under {dir} on {host}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn brick() -> String {
    format!("/vdisk/{BRICK_DIR}")
}

/// The line apply printed for the watched heal, e.g. `full heal of volume hv: no entry pending
/// after 5.1 s (at most 321 pending)`.
fn heal_line(applied: &str) -> &str {
    applied
        .lines()
        .find(|l| l.contains(&format!("full heal of volume {VOLUME}: no entry pending after")))
        .unwrap_or_else(|| panic!("no finished heal in apply's output:\n{applied}"))
}

#[test]
fn replica_2_grows_to_3_on_a_new_server_and_every_brick_holds_every_file() {
    let lab = TestLab::up("heal-r3", 3, 1);
    let two = write_spec(&lab, &[server("gluServer1"), server("gluServer2")], 2);
    brickyard(&lab, &["apply"], &two);
    let before = write_files(&lab);

    let three = write_spec(&lab, &[server("gluServer1"), server("gluServer2"), server("gluServer3")], 3);
    let planned = lab.brickyard(&["plan", "-f", &three.to_string_lossy()]);
    let shown = String::from_utf8_lossy(&planned.stdout);
    assert!(
        shown.contains(&format!(
            "replica 2 → 3 on volume {VOLUME}: add bricks gluServer3:/vdisk/{BRICK_DIR} (add-brick), full heal"
        )),
        "{}",
        text(&planned)
    );
    assert!(shown.contains("full heal of volume hv, watched until no entry is pending"), "{}", text(&planned));

    let applied = brickyard(&lab, &["apply"], &three);
    println!("replica 2 → 3: {}", heal_line(&applied));
    assert!(applied.contains("heal hv: "), "the heal's progress is shown:\n{applied}");

    let status = lab.brickyard(&["status", "-f", &three.to_string_lossy()]);
    assert!(status.status.success(), "status after the heal: {}", text(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("status: healthy"), "{}", text(&status));
    assert_eq!(on(&lab, "client1", MOUNT), before, "the client reads every file as written");
    for s in ["gluServer1", "gluServer2", "gluServer3"] {
        assert_eq!(on(&lab, s, &brick()), before, "brick {s}:{} holds every file", brick());
    }
    // Converged: nothing left to do.
    let again = lab.brickyard(&["plan", "--detailed-exitcode", "-f", &three.to_string_lossy()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn a_server_gone_for_good_is_replaced_and_its_brick_healed_on_the_new_one() {
    let lab = TestLab::up("heal-rep", 4, 1);
    let three = write_spec(&lab, &[server("gluServer1"), server("gluServer2"), server("gluServer3")], 3);
    brickyard(&lab, &["apply"], &three);
    let before = write_files(&lab);

    lab.kill_host("gluServer3");
    let replaced = write_spec(
        &lab,
        &[server("gluServer1"), server("gluServer2"), Server { name: "gluServer4", replaces: Some("gluServer3") }],
        3,
    );
    let planned = lab.brickyard(&["plan", "-f", &replaced.to_string_lossy()]);
    let shown = String::from_utf8_lossy(&planned.stdout);
    let old = format!("gluServer3:/vdisk/{BRICK_DIR}");
    let new = format!("gluServer4:/vdisk/{BRICK_DIR}");
    assert!(
        shown.contains(&format!("replace brick {old} with {new} on volume {VOLUME} (replace-brick commit force)")),
        "{}",
        text(&planned)
    );

    let applied = brickyard(&lab, &["apply"], &replaced);
    println!("replace: {}", heal_line(&applied));
    assert!(applied.contains("detach peer gluServer3 from the pool (not connected: peer detach force)"), "{applied}");

    let status = lab.brickyard(&["status", "-f", &replaced.to_string_lossy()]);
    assert!(status.status.success(), "status after the replacement: {}", text(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("status: healthy"), "{}", text(&status));
    assert_eq!(on(&lab, "gluServer4", &brick()), before, "the new brick holds every file, intact");
    assert_eq!(on(&lab, "client1", MOUNT), before, "the client reads every file as written");
    let pool = lab.exec("gluServer1", &["gluster", "pool", "list"]);
    assert_success("gluster pool list", &pool);
    let pool = String::from_utf8_lossy(&pool.stdout);
    assert!(!pool.contains("gluServer3") && pool.contains("gluServer4"), "{pool}");
    let again = lab.brickyard(&["plan", "--detailed-exitcode", "-f", &replaced.to_string_lossy()]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn a_server_back_on_an_empty_disk_gets_its_brick_reset_and_healed() {
    let lab = TestLab::up("heal-reset", 3, 1);
    let three = write_spec(&lab, &[server("gluServer1"), server("gluServer2"), server("gluServer3")], 3);
    brickyard(&lab, &["apply"], &three);
    let before = write_files(&lab);

    // gluServer3's brick process dies and its brick comes back as an empty directory (a new disk).
    let empty = format!("kill -9 $(pidof glusterfsd) && rm -rf {}", brick());
    assert_success("emptying gluServer3's brick", &lab.exec("gluServer3", &["sh", "-c", &empty]));
    let applied = brickyard(&lab, &["apply"], &three);
    let reset = format!(
        "reset empty brick gluServer3:{} of volume {VOLUME} (reset-brick start, commit force), full heal:",
        brick()
    );
    let line = applied.lines().find(|l| l.contains(&reset)).unwrap_or_else(|| panic!("no reset in:\n{applied}"));
    println!("reset-brick: {line}");

    let status = lab.brickyard(&["status", "-f", &three.to_string_lossy()]);
    assert!(status.status.success(), "status after the reset: {}", text(&status));
    assert_eq!(on(&lab, "gluServer3", &brick()), before, "the reset brick holds every file again");
    assert_eq!(on(&lab, "client1", MOUNT), before);
}
