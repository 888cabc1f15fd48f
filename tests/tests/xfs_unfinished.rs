//! Issue #16 on a real loop device: an xfs whose mkfs never finished (`sb_inprogress` set, as an
//! agent killed in the middle of mkfs.xfs leaves it) is found by blkid as xfs but never mounts
//! ("Structure needs cleaning"); MakeFilesystem makes it again, without wipe, and it mounts.
//! Only PartitionDisk and MakeFilesystem run (no fstab is touched); each mount is tried in a
//! private mount namespace (`unshare -m`) that dies with it. Touches only: a loop device it
//! attaches (and detaches, even on failure) and a temp file. Needs root, util-linux, parted,
//! xfsprogs.

use std::process::{Command, Output};
use std::sync::Arc;

use brickyard_agent::host::runner::SystemRunner;
use brickyard_agent::host::{Context, ServiceManager};
use brickyard_agent::tasks;
use brickyard_proto::v1::{self, task::Kind};

/// mkfs.xfs wants at least 300 MB.
const DISK_BYTES: u64 = 512 << 20;

fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed? scripts/install-deps.sh): {e}"))
}

/// Runs `program args`; fails naming the program, its arguments, status and stderr.
fn run(program: &str, args: &[&str]) -> String {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A sparse file on a loop device with partition scanning; detached on drop.
struct LoopDisk {
    dev: String,
    _file: tempfile::NamedTempFile,
}

impl LoopDisk {
    fn new() -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(DISK_BYTES).unwrap();
        let dev = run("losetup", &["-P", "-f", "--show", file.path().to_str().unwrap()]).trim().to_owned();
        assert!(dev.starts_with("/dev/loop"), "losetup gave {dev:?}");
        LoopDisk { dev, _file: file }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Mounts `dev` in a private mount namespace and unmounts it; the mount's stderr on failure.
fn try_mount(dev: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("mount -t xfs {dev} {0} && umount {0}", dir.path().display());
    let out = output("unshare", &["--mount", "--propagation", "private", "sh", "-c", &script]);
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// sb_inprogress, byte 126 of the primary superblock.
fn inprogress_byte(dev: &str) -> u8 {
    use std::io::Read;
    let mut sb = [0u8; 512];
    std::fs::File::open(dev).unwrap().read_exact(&mut sb).unwrap();
    assert_eq!(&sb[..4], b"XFSB", "{dev} holds no xfs superblock");
    sb[126]
}

fn disk_tasks(disk: &str) -> Vec<v1::Task> {
    let task = |id: &str, kind| v1::Task { id: id.into(), kind: Some(kind) };
    vec![
        task("partition", Kind::PartitionDisk(v1::PartitionDisk { disk: disk.into(), ..Default::default() })),
        task(
            "filesystem",
            Kind::MakeFilesystem(v1::MakeFilesystem {
                disk: disk.into(),
                filesystem: v1::FilesystemType::Xfs.into(),
                label: "brick".into(),
                ..Default::default()
            }),
        ),
    ]
}

/// Plans (`apply` false) or applies each task in order; each task's changes.
async fn each(tasks: &[v1::Task], apply: bool) -> Vec<Vec<String>> {
    let ctx = Context { runner: Arc::new(SystemRunner), service_manager: ServiceManager::Direct };
    let mut out = Vec::new();
    for t in tasks {
        let task = tasks::from_proto(t, None).unwrap();
        out.push(match apply {
            true => task.run(&ctx).await.unwrap_or_else(|e| panic!("{}: {e}", t.id)),
            false => task.check(&ctx).await.unwrap_or_else(|e| panic!("{}: {e}", t.id)).changes,
        });
    }
    out
}

#[tokio::test]
async fn unfinished_xfs_is_made_again_and_mounts() {
    assert_eq!(run("id", &["-u"]).trim(), "0", "needs root (loop devices, mounts, namespaces)");
    let disk = LoopDisk::new();
    let tasks = disk_tasks(&disk.dev);
    let part = format!("{}p1", disk.dev);
    each(&tasks, true).await;
    try_mount(&part).expect("the fresh filesystem mounts");

    run("xfs_db", &["-x", "-c", "sb 0", "-c", "write inprogress 1", &part]);
    assert_eq!(inprogress_byte(&part), 1);
    assert!(run("blkid", &["-p", "-o", "export", &part]).contains("TYPE=xfs"), "blkid still says xfs");
    let refused = try_mount(&part).unwrap_err();
    assert!(refused.contains("Structure needs cleaning"), "{refused}");

    let planned = each(&tasks, false).await;
    let remake = format!(
        "mkfs.xfs on {part}: the filesystem found there was never finished (sb_inprogress set by an interrupted mkfs)"
    );
    assert_eq!(planned, [vec![], vec![remake.clone()]]);
    assert_eq!(each(&tasks, true).await, [vec![], vec![remake]]);
    assert_eq!(inprogress_byte(&part), 0);
    try_mount(&part).expect("the remade filesystem mounts");
    assert_eq!(each(&tasks, false).await, [Vec::<String>::new(), vec![]], "converged");
}
