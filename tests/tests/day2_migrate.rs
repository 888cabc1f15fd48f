//! Day 2 data migration on a real pool (issue #12), through `brickyard plan/apply/status` in a
//! lab (4 servers on loop disks, 1 client; real glusterd): a replica-2 volume holding 200 files
//! grows from 2 to 4 servers and is rebalanced (both sets then hold files); a spec that drops
//! two servers still holding bricks is refused before any host changes; those servers, marked
//! `drain = true`, are drained out of the 2 x 2 volume back to 1 x 2 and detached. Every file is
//! read back with its checksum after each step. Root.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use brickyard_tests::lab::{assert_success, TestLab};

const VOLUME: &str = "gluV1";
const BRICK: &str = "/vdisk/brick1";
const MOUNT: &str = "/dataShare";
/// Writes 200 files of random content.
const WRITE_FILES: &str = "for i in $(seq 1 200); do head -c 4096 /dev/urandom > /dataShare/f$i || exit 1; done";
const CHECKSUMS: &str = "cd /dataShare && sha256sum f* | sort";

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn stdout(lab: &TestLab, host: &str, argv: &[&str]) -> String {
    let out = lab.exec(host, argv);
    assert_success(&format!("{argv:?} on {host}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A spec for the lab's first `servers` servers (those in `drained` with `drain = true`), the
/// replica-2 volume over them and the client's mount, written to `dir/file`.
fn spec(lab: &TestLab, dir: &Path, file: &str, servers: usize, drained: &[&str]) -> PathBuf {
    let base = lab.spec();
    let mut text = format!("version = 1\n[pool]\nname = \"{}\"\npki_dir = {:?}\n", base.pool.name, base.pki_dir());
    for s in &base.servers[..servers] {
        let disk = s.disk.as_ref().expect("lab servers have a disk");
        text += &format!(
            "[[server]]\nname = {:?}\naddress = {:?}\ndisk = {{ device = {:?}, mount = \"/vdisk\" }}\n",
            s.name,
            s.address,
            disk.device.as_deref().expect("lab disks are named by device"),
        );
        if drained.contains(&s.name.as_str()) {
            text += "drain = true\n";
        }
    }
    text += &format!(
        "[[volume]]\nname = \"{VOLUME}\"\ntype = \"replicate\"\nreplica = 2\nallow_replica2 = true\nbrick_dir = \"brick1\"\n"
    );
    for c in &base.clients {
        text += &format!(
            "[[client]]\nname = {:?}\naddress = {:?}\nmounts = [{{ volume = \"{VOLUME}\", path = \"{MOUNT}\" }}]\n",
            c.name, c.address
        );
    }
    let path = dir.join(file);
    std::fs::write(&path, text).expect("writing the test spec");
    path
}

fn brickyard(lab: &TestLab, args: &[&str], spec: &Path) -> Output {
    let mut argv = args.to_vec();
    argv.extend(["-f", spec.to_str().expect("utf-8 path")]);
    lab.brickyard(&argv)
}

/// `apply` must succeed; returns its output and how long it took.
fn apply(lab: &TestLab, spec: &Path) -> (String, f64) {
    let started = Instant::now();
    let out = brickyard(lab, &["apply", "--json"], spec);
    assert_eq!(out.status.code(), Some(0), "apply -f {}: {}", spec.display(), text(&out));
    (String::from_utf8_lossy(&out.stdout).into_owned(), started.elapsed().as_secs_f64())
}

/// The files on `host`'s brick that are data, not gluster's metadata or DHT link files (mode
/// 01000, empty).
fn files_on_brick(lab: &TestLab, host: &str) -> usize {
    let find = format!("find {BRICK} -path {BRICK}/.glusterfs -prune -o -type f ! -perm -1000 -print");
    stdout(lab, host, &["sh", "-c", &find]).lines().count()
}

fn write_files(lab: &TestLab, client: &str) -> String {
    assert_success("writing 200 files", &lab.exec(client, &["sh", "-c", WRITE_FILES]));
    let sums = stdout(lab, client, &["sh", "-c", CHECKSUMS]);
    assert_eq!(sums.lines().count(), 200);
    sums
}

/// Bricks of the volume as gluster lists them (`host:path`).
fn live_bricks(lab: &TestLab) -> Vec<String> {
    let info = stdout(lab, "gluServer1", &["gluster", "--mode=script", "volume", "info", VOLUME]);
    info.lines()
        .filter_map(|l| l.strip_prefix("Brick").and_then(|l| l.split_once(": ")).map(|(_, b)| b.trim().to_owned()))
        .collect()
}

/// The apply events of one task, as JSON lines.
fn events<'a>(json: &'a str, kind: &'a str, task: &'a str) -> impl Iterator<Item = serde_json::Value> + 'a {
    json.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(move |e| e["event"] == kind && e["task"] == task)
}

#[test]
fn replica2_grows_from_two_to_four_servers_and_rebalances_onto_both_sets() {
    let lab = TestLab::up("mig-grow", 4, 1);
    let dir = tempfile::tempdir().expect("a directory for the test's specs");
    let two = spec(&lab, dir.path(), "two.toml", 2, &[]);
    apply(&lab, &two);
    let before = write_files(&lab, "client1");

    let four = spec(&lab, dir.path(), "four.toml", 4, &[]);
    let out = brickyard(&lab, &["plan"], &four);
    let plan = text(&out);
    assert!(plan.contains("expand volume gluV1 with gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1"), "{plan}");
    assert!(
        plan.contains(
            "~ rebalance gluV1: rebalance volume gluV1 (new layout for gluServer1, gluServer2, gluServer3, gluServer4"
        ),
        "the rebalance is a planned step: {plan}"
    );
    let (json, seconds) = apply(&lab, &four);
    let progress: Vec<_> = events(&json, "task_progress", "rebalance gluV1").collect();
    assert!(!progress.is_empty(), "no rebalance progress in apply:\n{json}");
    let message = |p: &&serde_json::Value| p["message"].as_str().unwrap_or_default().to_owned();
    let (looks, heal): (Vec<_>, Vec<_>) = progress.iter().partition(|p| message(p).starts_with("rebalance gluV1: "));
    assert!(looks.iter().all(|p| p["nodes"].as_array().is_some_and(|n| !n.is_empty())), "{progress:?}");
    // Then the wait for the entries the last moves left pending heal, to none.
    assert!(heal.last().is_some_and(|p| message(p).starts_with("heal gluV1: 0 entries pending")), "{progress:?}");
    let done: Vec<_> = events(&json, "task_done", "rebalance gluV1").collect();
    let changes = done[0]["changes"].to_string();
    assert!(changes.contains("rebalanced volume gluV1 in "), "{changes}");
    eprintln!("grow 2 -> 4: apply {seconds:.1} s; {} progress events; {changes}", progress.len());

    assert_eq!(live_bricks(&lab), (1..=4).map(|i| format!("gluServer{i}:{BRICK}")).collect::<Vec<_>>());
    assert_eq!(stdout(&lab, "client1", &["sh", "-c", CHECKSUMS]), before, "every file reads back with its checksum");
    let counts: Vec<usize> = (1..=4).map(|i| files_on_brick(&lab, &format!("gluServer{i}"))).collect();
    eprintln!("files per brick after the rebalance: {counts:?}");
    assert_eq!((counts[0], counts[2]), (counts[1], counts[3]), "replicas hold the same files: {counts:?}");
    assert!(counts[0] > 0 && counts[2] > 0, "both replica sets hold files: {counts:?}");
    assert_eq!(counts[0] + counts[2], 200, "each file on exactly one set: {counts:?}");

    let out = brickyard(&lab, &["status"], &four);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("note: volume gluV1: rebalance completed"), "{}", text(&out));
    let out = brickyard(&lab, &["plan", "--detailed-exitcode"], &four);
    assert_eq!(out.status.code(), Some(0), "a rebalanced pool has nothing to do: {}", text(&out));
}

#[test]
fn a_dropped_server_with_bricks_is_refused_and_a_drained_pair_leaves_the_volume_and_the_pool() {
    let lab = TestLab::up("mig-drain", 4, 1);
    let dir = tempfile::tempdir().expect("a directory for the test's specs");
    let four = spec(&lab, dir.path(), "four.toml", 4, &[]);
    apply(&lab, &four);
    let before = write_files(&lab, "client1");
    assert!(files_on_brick(&lab, "gluServer3") > 0, "the second set holds files before the drain");

    // Dropped from the spec while holding bricks: refused, naming them and what to set.
    let dropped = spec(&lab, dir.path(), "dropped.toml", 2, &[]);
    let hosts_before = stdout(&lab, "gluServer1", &["cat", "/etc/hosts"]);
    for command in ["plan", "apply"] {
        let out = brickyard(&lab, &[command], &dropped);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", text(&out));
        let said = text(&out);
        for server in ["gluServer3", "gluServer4"] {
            assert!(
                said.contains(&format!(
                    "server {server} is not in the spec but holds bricks {server}:{BRICK} (volume {VOLUME}): its files \
                     would be lost; put its [[server]] entry back with `drain = true`"
                )),
                "{command}: {said}"
            );
        }
    }
    assert_eq!(stdout(&lab, "gluServer1", &["cat", "/etc/hosts"]), hosts_before, "no host changed");
    assert_eq!(live_bricks(&lab).len(), 4);

    // Marked drain = true: the plan shows the drain, apply moves the files and detaches them.
    let drain = spec(&lab, dir.path(), "drain.toml", 4, &["gluServer3", "gluServer4"]);
    let plan = text(&brickyard(&lab, &["plan"], &drain));
    assert!(
        plan.contains("~ drain gluV1: drain gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1 out of volume gluV1 (remove-brick start)"),
        "{plan}"
    );
    assert!(plan.contains("~ drain gluV1: remove gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1 from volume gluV1 once no file failed to move"), "{plan}");
    assert!(
        plan.contains(
            "~ detach leaving servers gluServer3, gluServer4: detach peer gluServer3 from the pool (peer detach)"
        ),
        "{plan}"
    );
    assert!(plan.contains("the bricks still on gluServer3, gluServer4 to move off (drain or replacement)"), "{plan}");
    let (json, seconds) = apply(&lab, &drain);
    let progress = events(&json, "task_progress", "drain gluV1").count();
    let done: Vec<_> = events(&json, "task_done", "drain gluV1").collect();
    let changes = done[0]["changes"].to_string();
    assert!(changes.contains("(remove-brick commit): gluServer3: completed"), "{changes}");
    eprintln!("drain 2 x 2 -> 1 x 2: apply {seconds:.1} s; {progress} progress events; {changes}");

    assert_eq!(live_bricks(&lab), [format!("gluServer1:{BRICK}"), format!("gluServer2:{BRICK}")]);
    assert_eq!(stdout(&lab, "client1", &["sh", "-c", CHECKSUMS]), before, "nothing lost");
    assert_eq!((files_on_brick(&lab, "gluServer3"), files_on_brick(&lab, "gluServer4")), (0, 0));
    assert_eq!((files_on_brick(&lab, "gluServer1"), files_on_brick(&lab, "gluServer2")), (200, 200));
    let pool = stdout(&lab, "gluServer1", &["gluster", "--mode=script", "pool", "list"]);
    assert!(!pool.contains("gluServer3") && !pool.contains("gluServer4") && pool.lines().count() == 3, "{pool}");

    let out = brickyard(&lab, &["status"], &drain);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = brickyard(&lab, &["plan", "--detailed-exitcode"], &drain);
    assert_eq!(out.status.code(), Some(0), "a drained pool has nothing to do: {}", text(&out));
}
