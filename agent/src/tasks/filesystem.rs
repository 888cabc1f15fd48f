//! `MakeFilesystem`: xfs (`-i size=512`, as GlusterFS recommends for bricks) or ext4 on the
//! disk's single partition (found through sysfs). The same filesystem already there is reused,
//! never reformatted, unless it is an xfs whose mkfs never finished (`sb_inprogress` set: an
//! interrupted mkfs.xfs, which can hold no data and never mounts), made again; anything else
//! there is refused, naming it, unless the task says wipe
//! (and names the disk by its identity, see `Disk::require_identity_for_wipe`).
//! Touches the partition only (`wipefs -a` when wiping, `mkfs.*`); reads sysfs, /proc, /dev
//! and `blkid -p`. (An interrupted mkfs.ext4 leaves no such state: mke2fs writes the primary
//! superblock last, so before that blkid finds no ext4 and the partition is simply made.)

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::{Filesystem, FsLabel};
use brickyard_proto::v1;

use super::disk::disk_ref;
use super::shape::{Plan, Task, TaskError};
use crate::host::blockdev::{self, Disk, DiskRef, HostPaths};
use crate::host::runner::{Cmd, Runner};
use crate::host::Context;

/// The filesystems brickyard makes and mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Xfs,
    Ext4,
}

impl FsType {
    pub fn from_proto(value: i32) -> Result<Self, TaskError> {
        match v1::FilesystemType::try_from(value) {
            Ok(v1::FilesystemType::Unspecified | v1::FilesystemType::Xfs) => Ok(FsType::Xfs),
            Ok(v1::FilesystemType::Ext4) => Ok(FsType::Ext4),
            Err(_) => Err(TaskError::InvalidTask(format!("unknown filesystem type {value}"))),
        }
    }

    /// The name blkid, mount and fstab use.
    pub fn name(self) -> &'static str {
        match self {
            FsType::Xfs => "xfs",
            FsType::Ext4 => "ext4",
        }
    }

    /// The shared filesystem kind, whose rules (labels) live in `brickyard_proto::types`.
    fn kind(self) -> Filesystem {
        match self {
            FsType::Xfs => Filesystem::Xfs,
            FsType::Ext4 => Filesystem::Ext4,
        }
    }

    /// Brick-friendly mount options when the task gives none (`nofail` is added separately).
    pub fn default_options(self) -> &'static [&'static str] {
        match self {
            FsType::Xfs => &["inode64", "noatime"],
            FsType::Ext4 => &["noatime"],
        }
    }

    /// fsck pass number for fstab: xfs has no boot-time fsck.
    pub fn fsck_pass(self) -> u8 {
        match self {
            FsType::Xfs => 0,
            FsType::Ext4 => 2,
        }
    }

    /// `over_unfinished`: the partition holds an xfs signature of an mkfs that never finished,
    /// which the mkfs programs would otherwise refuse to overwrite.
    fn mkfs(
        self,
        runner: &dyn Runner,
        label: Option<&str>,
        device: &str,
        over_unfinished: bool,
    ) -> Result<Cmd, TaskError> {
        let mut cmd = match self {
            FsType::Xfs => runner.cmd("mkfs.xfs")?.args(["-i", "size=512"]),
            FsType::Ext4 => runner.cmd("mkfs.ext4")?.arg("-q"),
        };
        if over_unfinished {
            cmd = cmd.arg(match self {
                FsType::Xfs => "-f",
                FsType::Ext4 => "-F",
            });
        }
        if let Some(label) = label {
            cmd = cmd.args(["-L", label]);
        }
        Ok(cmd.arg(device))
    }
}

#[derive(Debug)]
pub struct MakeFilesystem {
    disk: DiskRef,
    fs: FsType,
    label: Option<String>,
    wipe: bool,
    paths: HostPaths,
}

impl MakeFilesystem {
    pub fn from_proto(task: &v1::MakeFilesystem) -> Result<Self, TaskError> {
        let disk = disk_ref(&task.disk, &task.cinder_volume)?;
        let fs = FsType::from_proto(task.filesystem)?;
        let label = match task.label.as_str() {
            "" => None,
            l => Some(FsLabel::new(l, fs.kind())?.to_string()),
        };
        Ok(Self { disk, fs, label, wipe: task.wipe, paths: HostPaths::system() })
    }
}

/// One command on the partition, in order: wiping what is there (only with wipe), then mkfs
/// (`Remake`: over an xfs an interrupted mkfs.xfs left unfinished).
#[derive(Debug, Clone)]
pub enum FsChange {
    Wipe { partition: String, cmd: Cmd },
    Format { partition: String, cmd: Cmd },
    Remake { partition: String, cmd: Cmd, fs: FsType },
}

impl fmt::Display for FsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsChange::Wipe { cmd, .. } | FsChange::Format { cmd, .. } => f.write_str(&cmd.display()),
            FsChange::Remake { partition, fs, .. } => write!(
                f,
                "mkfs.{} on {partition}: the filesystem found there was never finished (sb_inprogress set by an \
                 interrupted mkfs)",
                fs.name()
            ),
        }
    }
}

#[async_trait]
impl Task for MakeFilesystem {
    type Change = FsChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<FsChange>, TaskError> {
        let runner = ctx.runner.as_ref();
        let disk = Disk::inspect_for_change(&self.paths, &self.disk)?;
        let Some(part) = disk.single_partition()? else {
            let future = format!("/dev/{}", blockdev::first_partition_name(&disk.name));
            let cmd = self.fs.mkfs(runner, self.label.as_deref(), &future, false)?;
            return Ok(Plan::of(vec![FsChange::Format { partition: future.clone(), cmd }]).waiting_for(format!(
                "{} has no partition yet: PartitionDisk must create {future} first",
                disk.label()
            )));
        };
        let path = part.path();
        let mut sig = blockdev::probe(runner, &path).await?;
        let unfinished = sig.fstype.as_deref() == Some(FsType::Xfs.name())
            && !sig.ambivalent
            && sig.pttype.is_none()
            && blockdev::xfs_unfinished(&self.paths, &path)?;
        if unfinished {
            // Holds no data and never mounts: the partition counts as empty.
            sig = blockdev::Signature::default();
        }
        if sig.fstype.as_deref() == Some(self.fs.name()) && !sig.ambivalent {
            let mut plan = Plan::unchanged();
            if self.label.is_some() && sig.label != self.label {
                plan = plan.warn(format!(
                    "{path}: existing {} filesystem labelled {:?} is reused as is ({:?} asked)",
                    self.fs.name(),
                    sig.label.unwrap_or_default(),
                    self.label.as_deref().unwrap_or_default()
                ));
            }
            return Ok(plan);
        }
        let mut changes = Vec::new();
        if let Some(found) = sig.describe() {
            if !self.wipe {
                let what = match &sig.fstype {
                    Some(fs) if !sig.ambivalent && sig.pttype.is_none() => format!("{fs} is there"),
                    _ => format!("found {found}"),
                };
                return Err(TaskError::Unsafe(format!(
                    "{path}: {what}, {} asked; brickyard never reformats (set wipe = true for {} to destroy it)",
                    self.fs.name(),
                    self.disk
                )));
            }
            changes.push(FsChange::Wipe { partition: path.clone(), cmd: blockdev::wipefs(runner, &path)? });
        }
        if let Some(dev) = disk.partition_device(&part.name) {
            blockdev::refuse_in_use(dev, &path)?;
        }
        if !changes.is_empty() {
            disk.require_identity_for_wipe(&self.disk)?;
        }
        let cmd = self.fs.mkfs(runner, self.label.as_deref(), &path, unfinished)?;
        changes.push(match unfinished {
            true => FsChange::Remake { partition: path, cmd, fs: self.fs },
            false => FsChange::Format { partition: path, cmd },
        });
        Ok(Plan::of(changes))
    }

    /// Waits for the partition's device node (a partition PartitionDisk has just made may not
    /// have one yet), runs each command, and confirms the filesystem with blkid.
    async fn apply(&self, ctx: &Context, plan: Plan<FsChange>) -> Result<Vec<FsChange>, TaskError> {
        for change in &plan.changes {
            let (FsChange::Wipe { partition, cmd }
            | FsChange::Format { partition, cmd }
            | FsChange::Remake { partition, cmd, .. }) = change;
            blockdev::wait_for_node(&self.paths, partition).await?;
            ctx.runner.run(cmd).await?;
            if !matches!(change, FsChange::Wipe { .. }) {
                let sig = blockdev::probe(ctx.runner.as_ref(), partition).await?;
                if sig.fstype.as_deref() != Some(self.fs.name()) {
                    return Err(TaskError::Unsupported(format!(
                        "{partition}: blkid finds {} after {}",
                        sig.describe().unwrap_or_else(|| "nothing".into()),
                        cmd.display()
                    )));
                }
            }
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::blockdev::testhost::FakeHost;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const XFS: &str = include_str!("../fixtures/blkid/xfs-partition.txt");

    fn task(host: &FakeHost, fs: v1::FilesystemType, label: &str, wipe: bool) -> MakeFilesystem {
        let proto = v1::MakeFilesystem {
            disk: "/dev/loop0".into(),
            filesystem: fs.into(),
            label: label.into(),
            wipe,
            ..Default::default()
        };
        MakeFilesystem { paths: host.paths.clone(), ..MakeFilesystem::from_proto(&proto).unwrap() }
    }

    const PROBE: &str = "/usr/sbin/blkid -p -o export /dev/loop0p1";

    fn blkid(stdout: &str) -> Output {
        Output { code: Some(if stdout.is_empty() { 2 } else { 0 }), stdout: stdout.into(), stderr: String::new() }
    }

    /// A host with the mkfs programs and wipefs whose blkid finds `stdout` on loop0p1.
    fn probed(stdout: &str) -> FakeRunner {
        FakeRunner::default()
            .installed("/usr/sbin/mkfs.xfs")
            .installed("/usr/sbin/mkfs.ext4")
            .installed("/usr/sbin/wipefs")
            .expect_output(PROBE, blkid(stdout))
    }

    fn host() -> FakeHost {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        host
    }

    #[tokio::test]
    async fn formats_an_empty_partition_then_confirms() {
        let host = host();
        let ctx = Context::direct(
            probed("")
                .expect_output(PROBE, blkid(""))
                .expect("/usr/sbin/mkfs.xfs -i size=512 -L brick /dev/loop0p1", "")
                .expect_output(PROBE, blkid(XFS))
                .expect_output(PROBE, blkid(XFS)),
        );
        let t = task(&host, v1::FilesystemType::Unspecified, "brick", false);
        let (_, done) = converges(&t, &ctx).await;
        assert_eq!(done, ["/usr/sbin/mkfs.xfs -i size=512 -L brick /dev/loop0p1"]);
    }

    #[tokio::test]
    async fn same_filesystem_is_reused() {
        let host = host();
        let ctx = Context::direct(probed(XFS));
        let check = task(&host, v1::FilesystemType::Xfs, "other", true).check(&ctx).await.unwrap();
        assert!(check.changes.is_empty());
        assert!(check.warnings[0].contains("labelled \"brick\" is reused"), "{:?}", check.warnings);
    }

    /// An interrupted mkfs.xfs (issue #16): blkid says xfs, but sb_inprogress is set; it is made
    /// again (forced over the stale signature), without wipe, and said so in the plan.
    #[tokio::test]
    async fn unfinished_xfs_is_made_again() {
        let host = host();
        let node = host.paths.host("/dev/loop0p1");
        std::fs::write(&node, blockdev::test_superblock(1)).unwrap();
        let mkfs = "/usr/sbin/mkfs.xfs -i size=512 -f -L brick /dev/loop0p1";
        let ctx = Context::direct(
            probed(XFS)
                .expect_output(PROBE, blkid(XFS))
                .expect(mkfs, "")
                .expect_output(PROBE, blkid(XFS))
                .expect_output(PROBE, blkid(XFS)),
        );
        let t = task(&host, v1::FilesystemType::Xfs, "brick", false);
        let check = t.check(&ctx).await.unwrap();
        assert_eq!(
            check.changes,
            ["mkfs.xfs on /dev/loop0p1: the filesystem found there was never finished (sb_inprogress set by an \
              interrupted mkfs)"]
        );
        assert_eq!(t.run(&ctx).await.unwrap().len(), 1);
        // What mkfs.xfs leaves when it finishes: the same filesystem, now reused.
        std::fs::write(&node, blockdev::test_superblock(0)).unwrap();
        assert!(t.check(&ctx).await.unwrap().changes.is_empty());
    }

    #[tokio::test]
    async fn other_filesystem_is_refused_naming_it_or_wiped() {
        let host = host();
        let ext4 = "DEVNAME=/dev/loop0p1\nTYPE=ext4\nUSAGE=filesystem\n";
        let ctx1 = Context::direct(probed(ext4));
        let err = task(&host, v1::FilesystemType::Xfs, "", false).check(&ctx1).await.unwrap_err().to_string();
        assert!(err.starts_with("/dev/loop0p1: ext4 is there, xfs asked"), "{err}");
        let ctx2 = Context::direct(probed(ext4));
        let err = task(&host, v1::FilesystemType::Xfs, "", true).check(&ctx2).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        assert!(err.to_string().starts_with("refusing to wipe /dev/loop0: /dev/loop0 names no disk identity"), "{err}");
    }

    #[tokio::test]
    async fn mounted_partition_is_refused_even_with_wipe() {
        let host = host();
        host.mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n90 22 259:0 / /data rw - ext4 /dev/loop0p1 rw\n");
        let ext4 = "TYPE=ext4\n";
        let ctx = Context::direct(probed(ext4));
        let err = task(&host, v1::FilesystemType::Xfs, "", true).check(&ctx).await.unwrap_err().to_string();
        assert_eq!(err, "/dev/loop0p1 is in use: loop0p1 is mounted at /data (never changed, even with wipe)");
    }

    #[tokio::test]
    async fn no_partition_yet_plans_but_does_not_apply() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let ctx = Context::direct(FakeRunner::default().installed("/usr/sbin/mkfs.ext4"));
        let t = task(&host, v1::FilesystemType::Ext4, "data", false);
        let check = t.check(&ctx).await.unwrap();
        assert_eq!(check.changes, ["/usr/sbin/mkfs.ext4 -q -L data /dev/loop0p1"]);
        assert!(check.warnings[0].contains("PartitionDisk must create /dev/loop0p1 first"));
        assert!(t.run(&ctx).await.unwrap_err().to_string().contains("no partition yet"));
    }

    #[test]
    fn labels_are_validated() {
        let proto = |label: &str, fs: v1::FilesystemType| v1::MakeFilesystem {
            disk: "/dev/vdb".into(),
            filesystem: fs.into(),
            label: label.into(),
            wipe: false,
            ..Default::default()
        };
        let err = MakeFilesystem::from_proto(&proto("thirteen-char", v1::FilesystemType::Xfs)).unwrap_err().to_string();
        assert!(err.contains("longer than 12 characters (xfs labels)"), "{err}");
        // The same rule as the spec's: no leading '.', which the agent once allowed.
        assert!(MakeFilesystem::from_proto(&proto(".brick", v1::FilesystemType::Ext4)).is_err());
        assert!(MakeFilesystem::from_proto(&proto("thirteen-char", v1::FilesystemType::Ext4)).is_ok());
        assert!(MakeFilesystem::from_proto(&proto("a/b", v1::FilesystemType::Ext4)).is_err());
        assert!(MakeFilesystem::from_proto(&v1::MakeFilesystem {
            disk: "vdb".into(),
            ..proto("", v1::FilesystemType::Xfs)
        })
        .is_err());
    }
}
