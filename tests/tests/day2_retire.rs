//! Shrinking only when asked (issue #12), through the coordinator on real lab hosts with real
//! glusterd: a client removed from the spec is retired first (its Brickyard mount unmounted, its
//! Brickyard fstab entry removed, a hand-written fstab line left byte for byte, files on the
//! volume intact) and leaves /etc/hosts and auth.allow, and one whose agent does not answer is
//! warned about while apply does the rest; an option removed from the spec is reset
//! to gluster's default (plan listed the reset); a volume removed from the spec is left alone with
//! a warning, and `brickyard destroy` refuses while the spec has it, while a client mounts it and
//! without confirmation, then with `--yes` deletes it and keeps every brick file.
//!
//! Needs root (namespaces, loop devices) and the built binaries (`cargo build --bins`).

use std::path::{Path, PathBuf};
use std::process::Output;

use brickyard_tests::lab::{assert_success, TestLab};

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `brickyard args...` in the lab and asserts its exit code.
fn brickyard(lab: &TestLab, args: &[&str], code: i32) -> Output {
    let out = lab.brickyard(args);
    assert_eq!(out.status.code(), Some(code), "brickyard {args:?}:\n{}", text(&out));
    out
}

/// Runs `sh -c script` on `host`, asserting success; its stdout.
fn sh(lab: &TestLab, host: &str, script: &str) -> String {
    let out = lab.exec(host, &["sh", "-c", script]);
    assert_success(&format!("{script:?} on {host}"), &out);
    stdout(&out)
}

/// A spec next to the lab's (same pki dir), with `text`.
fn write_spec(lab: &TestLab, name: &str, text: &str) -> PathBuf {
    let path = lab.dir().join(name);
    std::fs::write(&path, text).expect("writing a spec");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Rejects connections to a lab host's agent (as if it were down).
const AGENT_CLOSED: [&str; 11] =
    ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "7420", "-j", "REJECT", "--reject-with", "tcp-reset"];

const WRITE_FILES: &str = "for i in $(seq 1 20); do head -c 4096 /dev/urandom > DIR/f$i || exit 1; done";
const CHECKSUMS: &str = "cd DIR && sha256sum f* | sort";

fn write_files(lab: &TestLab, host: &str, dir: &str) -> String {
    sh(lab, host, &WRITE_FILES.replace("DIR", dir));
    checksums(lab, host, dir)
}

fn checksums(lab: &TestLab, host: &str, dir: &str) -> String {
    let sums = sh(lab, host, &CHECKSUMS.replace("DIR", dir));
    assert_eq!(sums.lines().count(), 20, "{sums}");
    sums
}

/// The value `gluster volume get VOL KEY` shows on the first server.
fn volume_get(lab: &TestLab, volume: &str, key: &str) -> String {
    let out = sh(lab, "gluServer1", &format!("gluster volume get {volume} {key}"));
    out.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in {out}"))[key.len()..].trim().to_owned()
}

#[test]
fn removed_client_is_retired_and_removed_option_reset() {
    let lab = TestLab::up("retire", 2, 3);
    let spec = lab.spec();
    let address = |name: &str| spec.clients.iter().find(|c| c.name == name).expect("lab client").address.clone();
    let (client2, client3) = (address("client2"), address("client3"));
    let seed = std::fs::read_to_string(lab.spec_path()).expect("the lab's spec");

    // A line client2's operator wrote by hand (a glusterfs one too), before Brickyard's.
    let planted = "# written by hand, not by Brickyard\ngluServer1:/gluV1 /mnt/hand glusterfs defaults,noauto 0 0\n";
    sh(&lab, "client2", &format!("printf '%s' '{planted}' >> /etc/fstab"));
    let fstab_before = sh(&lab, "client2", "cat /etc/fstab");
    assert!(fstab_before.ends_with(planted), "{fstab_before}");

    brickyard(&lab, &["apply", "-f", path_str(&lab.spec_path())], 0);
    let files = write_files(&lab, "client1", "/dataShare");
    assert_eq!(volume_get(&lab, "gluV1", "performance.cache-size"), "512MB");
    assert!(sh(&lab, "client2", "cat /etc/fstab").contains("# brickyard-managed: /dataShare\n"));

    // client2, client3 (whose agent no longer answers) and the volume's option leave the spec.
    assert_success("client3's agent port closed", &lab.exec("client3", &AGENT_CLOSED));
    let client2_block = seed.find("\n[[client]]\nname = \"client2\"").expect("client2 in the lab spec");
    let shrunk = seed[..client2_block].replace(r#"options = { "performance.cache-size" = "512MB" }"#, "options = {}");
    assert_ne!(shrunk, seed[..client2_block], "the option was in the lab spec");
    let shrunk = write_spec(&lab, "shrunk.toml", &shrunk);
    let shrunk = path_str(&shrunk);

    let plan = stdout(&brickyard(&lab, &["plan", "-f", shrunk], 0));
    let retire = format!("~ retire client client2 ({client2}): unmount /dataShare (gluServer1:/gluV1)");
    assert!(plan.contains(&retire), "{plan}");
    assert!(
        plan.contains(&format!(
            "~ retire client client2 ({client2}): remove fstab line \"gluServer1:/gluV1 /dataShare glusterfs \
             defaults,_netdev,nofail,backup-volfile-servers=gluServer2 0 0\""
        )),
        "{plan}"
    );
    let first_phase = plan.find("== ").map(|i| &plan[i..]).unwrap_or_default();
    assert!(first_phase.starts_with("== retire\n"), "the retirement comes first:\n{plan}");
    let unreachable = format!("client client3 ({client3}) left the spec but cannot be retired now (");
    assert!(plan.contains(&format!("warning: {unreachable}")), "{plan}");
    assert!(
        plan.contains("apply drops it from /etc/hosts, auth.allow and the firewall anyway, after which Brickyard no longer knows it"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "~ volume gluV1: reset performance.cache-size on volume gluV1 to gluster's default (was 512MB, gone \
             from the spec)"
        ),
        "{plan}"
    );

    let apply = brickyard(&lab, &["apply", "-f", shrunk], 0);
    assert!(String::from_utf8_lossy(&apply.stderr).contains(&unreachable), "{}", text(&apply));
    let mounted = lab.exec("client2", &["findmnt", "-n", "/dataShare"]);
    assert_eq!(mounted.status.code(), Some(1), "client2 still mounts /dataShare:\n{}", text(&mounted));
    let fstab_after = sh(&lab, "client2", "cat /etc/fstab");
    assert_eq!(fstab_after, fstab_before, "client2's fstab is back to its own lines, byte for byte");
    assert_eq!(checksums(&lab, "client1", "/dataShare"), files);
    assert_eq!(volume_get(&lab, "gluV1", "performance.cache-size"), "32MB (DEFAULT)");
    let allowed = volume_get(&lab, "gluV1", "auth.allow");
    assert!(!allowed.contains(&client2) && !allowed.contains(&client3), "client2 and client3 left {allowed}");
    let hosts = sh(&lab, "gluServer1", "cat /etc/hosts");
    assert!(!hosts.contains("client2") && !hosts.contains("client3") && hosts.contains("client1"), "{hosts}");

    // Nothing left to do: the pool's record has neither client2 nor client3.
    brickyard(&lab, &["plan", "--detailed-exitcode", "-f", shrunk], 0);
}

#[test]
fn unmanaged_volume_is_left_alone_and_destroy_keeps_brick_data() {
    let lab = TestLab::up("rtdestroy", 2, 1);
    let seed = std::fs::read_to_string(lab.spec_path()).expect("the lab's spec");
    let seed_mount = r#"mounts = [{ volume = "gluV1", path = "/dataShare" }]"#;
    assert!(seed.contains(seed_mount), "{seed}");
    let scratch = "\n[[volume]]\nname = \"scratch\"\ntype = \"replicate\"\nreplica = 2\nallow_replica2 = true\n\
                   brick_dir = \"brick2\"\n";
    let with_scratch = seed.replace(
        seed_mount,
        r#"mounts = [{ volume = "gluV1", path = "/dataShare" }, { volume = "scratch", path = "/scratch" }]"#,
    ) + scratch;
    let with_scratch = write_spec(&lab, "scratch.toml", &with_scratch);
    let with_scratch = path_str(&with_scratch);
    let seed = path_str(&lab.spec_path()).to_owned();
    let seed = seed.as_str();

    brickyard(&lab, &["apply", "-f", with_scratch], 0);
    write_files(&lab, "client1", "/scratch");
    let bricks = checksums(&lab, "gluServer1", "/vdisk/brick2");

    let refused = brickyard(&lab, &["destroy", "-f", with_scratch, "--volume", "scratch", "--yes"], 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!(
            "brickyard: destroy: volume scratch is still in the spec {with_scratch}: remove its [[volume]] entry and \
             the mounts of it (clients client1 at /scratch) first and apply"
        )),
        "{}",
        text(&refused)
    );
    let refused = brickyard(&lab, &["destroy", "-f", seed, "--volume", "scratch", "--yes"], 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!(
            "volume scratch is still mounted by clients client1 at /scratch: run `brickyard apply -f {seed}` first"
        )),
        "{}",
        text(&refused)
    );

    // Back to the seed spec: the volume is warned about, never touched; client1's mount of it goes.
    let warning = format!(
        "warning: volume scratch is on the pool but not in the spec: it is no longer managed and is left as is (to \
         delete it, keeping its brick data: brickyard destroy -f {seed} --volume scratch)"
    );
    let plan = stdout(&brickyard(&lab, &["plan", "-f", seed], 0));
    assert!(plan.contains(&warning), "{plan}");
    assert!(plan.contains("~ mounts gone from the spec: unmount /scratch (gluServer1:/scratch)"), "{plan}");
    assert!(!plan.contains("scratch on volume") && !plan.contains("volume scratch:"), "{plan}");
    let apply = brickyard(&lab, &["apply", "-f", seed], 0);
    assert!(String::from_utf8_lossy(&apply.stderr).contains(&warning["warning: ".len()..]), "{}", text(&apply));
    assert_eq!(lab.exec("client1", &["findmnt", "-n", "/scratch"]).status.code(), Some(1));
    let status = |lab: &TestLab| sh(lab, "gluServer1", "gluster volume info scratch | grep ^Status");
    assert_eq!(status(&lab), "Status: Started\n");

    // No terminal and no --yes: refused, nothing changed.
    let refused = brickyard(&lab, &["destroy", "-f", seed, "--volume", "scratch"], 1);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "brickyard: destroy: not destroying volume scratch: no confirmation (stdin is not a terminal); pass \
             --yes to confirm; nothing changed"
        ),
        "{}",
        text(&refused)
    );
    assert_eq!(status(&lab), "Status: Started\n");

    let destroyed = stdout(&brickyard(&lab, &["destroy", "-f", seed, "--volume", "scratch", "--yes"], 0));
    assert!(destroyed.contains("Brick data is never removed: the brick directories keep their files."), "{destroyed}");
    assert!(
        destroyed.contains(
            "- delete volume scratch (gluster volume delete scratch); brick data is kept: gluServer1:/vdisk/brick2 \
             gluServer2:/vdisk/brick2 keep their files"
        ),
        "{destroyed}"
    );
    let list = sh(&lab, "gluServer1", "gluster volume list");
    assert_eq!(list, "gluV1\n", "scratch is gone from the pool");
    assert_eq!(checksums(&lab, "gluServer1", "/vdisk/brick2"), bricks, "brick files kept on gluServer1");
    assert_eq!(checksums(&lab, "gluServer2", "/vdisk/brick2"), bricks, "brick files kept on gluServer2");
    brickyard(&lab, &["plan", "--detailed-exitcode", "-f", seed], 0);
}
