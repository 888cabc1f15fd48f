//! The path policy and the wipe rule through the built `brickyard plan -f SPEC`: a client
//! mount, a disk mount or a brick in a system tree (`/etc`, `/var/lib/x`, `/var` itself) and
//! `wipe = true` on a disk named only by its device name are refused while the spec loads,
//! each with its line, key, host and what the path meets. Every host is on 127.0.0.x at a
//! port nothing listens on, so a spec that loaded would fail to connect instead. Touches only
//! a temp dir.

use std::process::Command;

use brickyard_tests::bins::bin;

const VALID: &str = r#"version = 1
[pool]
name = "paths"
[[server]]
name = "gluServer1"
address = "127.0.0.11"
port = 1
disk = { device = "/dev/vdb", filesystem = "xfs", mount = "/vdisk" }
[[volume]]
name = "gluV1"
type = "distribute"
brick_dir = "brick1"
[[client]]
name = "client1"
address = "127.0.0.21"
port = 1
mounts = [{ volume = "gluV1", path = "/dataShare" }]
"#;

/// `brickyard plan` on VALID with `from` replaced by `to`: its exit code and stderr.
fn plan_with(from: &str, to: &str) -> (Option<i32>, String) {
    assert!(VALID.contains(from), "{from:?} is not in the spec");
    plan(&VALID.replace(from, to))
}

fn plan(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    std::fs::write(&spec, text).unwrap();
    let out = Command::new(bin("brickyard")).arg("plan").arg("-f").arg(&spec).output().expect("running brickyard plan");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn refused(from: &str, to: &str, says: &str) {
    let (code, stderr) = plan_with(from, to);
    assert_eq!(code, Some(1), "{to}: {stderr}");
    assert!(stderr.contains(says), "{to}: expected {says:?} in:\n{stderr}");
    assert!(!stderr.contains("connect"), "{to}: the spec must be refused before any host is contacted:\n{stderr}");
}

const POLICY: &str = "a system directory (never a mount point, brick or brick dir)";

#[test]
fn client_mounts_in_system_trees_are_refused() {
    for (path, how) in [("/etc", "is /etc"), ("/var/lib/x", "lies under /var/lib"), ("/var", "holds /var/lib")] {
        refused(
            "path = \"/dataShare\"",
            &format!("path = \"{path}\""),
            &format!("line 17: client[0].mounts[0].path: client \"client1\": {path} {how}, {POLICY}"),
        );
    }
}

#[test]
fn disk_mounts_and_bricks_in_system_trees_are_refused() {
    for (path, how) in [("/etc", "is /etc"), ("/var/lib/x", "lies under /var/lib"), ("/var", "holds /var/lib")] {
        let mount = format!("mount = \"{path}\"");
        refused(
            "mount = \"/vdisk\"",
            &mount,
            &format!("line 8: server[0].disk.mount: server \"gluServer1\": {path} {how}, {POLICY}"),
        );
    }
    // A server without a disk keeps its bricks under /: brick_dir decides where.
    let no_disk = "disk = { device = \"/dev/vdb\", filesystem = \"xfs\", mount = \"/vdisk\" }\n";
    for (brick_dir, brick, how) in [
        ("etc/bricks", "/etc/bricks", "lies under /etc"),
        ("var/lib/x", "/var/lib/x", "lies under /var/lib"),
        ("var", "/var", "holds /var/lib"),
    ] {
        let spec = VALID
            .replace(no_disk, "")
            .replace("brick_dir = \"brick1\"", &format!("brick_dir = \"{brick_dir}\"\nforce = true"));
        let (code, stderr) = plan(&spec);
        assert_eq!(code, Some(1), "{stderr}");
        let says =
            format!("volume[0].brick_dir: brick gluServer1:{brick} of volume \"gluV1\": {brick} {how}, {POLICY}");
        assert!(stderr.contains(&says), "expected {says:?} in:\n{stderr}");
    }
}

#[test]
fn wipe_needs_the_disks_identity() {
    refused(
        "mount = \"/vdisk\" }",
        "mount = \"/vdisk\", wipe = true }",
        "line 8: server[0].disk.wipe: server \"gluServer1\": wipe = true needs the disk's identity",
    );
    // Named by its by-id link or its Cinder volume, the spec loads (and plan goes on to the host).
    for disk in [
        "device = \"/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b\"",
        "cinder_volume = \"ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4\"",
    ] {
        let (_, stderr) = plan_with(
            "device = \"/dev/vdb\", filesystem = \"xfs\", mount = \"/vdisk\" }",
            &format!("{disk}, filesystem = \"xfs\", mount = \"/vdisk\", wipe = true }}"),
        );
        assert!(!stderr.contains("wipe = true needs"), "{disk}: {stderr}");
        assert!(!stderr.contains("server[0].disk"), "{disk}: {stderr}");
    }
}
