//! `MakeFilesystem`: xfs (`-i size=512`, as GlusterFS recommends for bricks) or ext4 on the
//! disk's single partition (found through sysfs). The same filesystem already there is reused,
//! never reformatted; anything else there is refused, naming it, unless the task says wipe.
//! Touches the partition only (`wipefs -a` when wiping, `mkfs.*`); reads sysfs, /proc, /dev
//! and `blkid -p`.

use brickyard_proto::types::{Filesystem, FsLabel};
use brickyard_proto::v1;

use super::disk::disk_ref;
use super::{Check, Context, TaskError};
use crate::blockdev::{self, Disk, DiskRef, HostPaths};
use crate::runner::{find_program, Cmd};

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

    fn mkfs(self, label: Option<&str>, device: &str) -> Result<Cmd, TaskError> {
        let mut cmd = match self {
            FsType::Xfs => Cmd::new(find_program("mkfs.xfs")?).args(["-i", "size=512"]),
            FsType::Ext4 => Cmd::new(find_program("mkfs.ext4")?).arg("-q"),
        };
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

/// What apply would do: on which partition (`None`: PartitionDisk has not made it yet), the
/// commands in order, and warnings.
struct Plan {
    partition: Option<String>,
    cmds: Vec<Cmd>,
    warnings: Vec<String>,
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

    async fn plan(&self, ctx: &Context) -> Result<Plan, TaskError> {
        let runner = ctx.runner.as_ref();
        let disk = Disk::inspect_for_change(&self.paths, &self.disk)?;
        let Some(part) = disk.single_partition()? else {
            let future = format!("/dev/{}", blockdev::first_partition_name(&disk.name));
            return Ok(Plan {
                cmds: vec![self.fs.mkfs(self.label.as_deref(), &future)?],
                warnings: vec![format!(
                    "{} has no partition yet: PartitionDisk must create {future} first",
                    disk.label()
                )],
                partition: None,
            });
        };
        let path = part.path();
        let sig = blockdev::probe(runner, &path).await?;
        if sig.fstype.as_deref() == Some(self.fs.name()) && !sig.ambivalent {
            let mut warnings = Vec::new();
            if self.label.is_some() && sig.label != self.label {
                warnings.push(format!(
                    "{path}: existing {} filesystem labelled {:?} is reused as is ({:?} asked)",
                    self.fs.name(),
                    sig.label.unwrap_or_default(),
                    self.label.as_deref().unwrap_or_default()
                ));
            }
            return Ok(Plan { partition: Some(path), cmds: Vec::new(), warnings });
        }
        let mut cmds = Vec::new();
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
            cmds.push(blockdev::wipefs(&path)?);
        }
        if let Some(dev) = disk.partition_device(&part.name) {
            blockdev::refuse_in_use(dev, &path)?;
        }
        cmds.push(self.fs.mkfs(self.label.as_deref(), &path)?);
        Ok(Plan { partition: Some(path), cmds, warnings: Vec::new() })
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let plan = self.plan(ctx).await?;
        Ok(Check { changes: plan.cmds.iter().map(Cmd::display).collect(), warnings: plan.warnings })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let plan = self.plan(ctx).await?;
        let Some(partition) = plan.partition else {
            return Err(TaskError::NotReady(plan.warnings.join("; ")));
        };
        if plan.cmds.is_empty() {
            return Ok(Vec::new());
        }
        blockdev::wait_for_node(&self.paths, &partition).await?;
        let mut done = Vec::new();
        for cmd in &plan.cmds {
            ctx.runner.run(cmd).await?;
            done.push(cmd.display());
        }
        let sig = blockdev::probe(ctx.runner.as_ref(), &partition).await?;
        if sig.fstype.as_deref() != Some(self.fs.name()) {
            return Err(TaskError::Unsupported(format!(
                "{partition}: blkid finds {} after {}",
                sig.describe().unwrap_or_else(|| "nothing".into()),
                done.last().map(String::as_str).unwrap_or_default()
            )));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blockdev::testhost::{prog, FakeHost};
    use crate::runner::fake::FakeRunner;
    use crate::runner::Output;
    use crate::tasks::ServiceManager;

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

    fn ctx(runner: FakeRunner) -> (Context, Arc<FakeRunner>) {
        let runner = Arc::new(runner);
        (Context { runner: runner.clone(), service_manager: ServiceManager::Direct }, runner)
    }

    fn blkid(stdout: &str) -> Output {
        Output { code: Some(if stdout.is_empty() { 2 } else { 0 }), stdout: stdout.into(), stderr: String::new() }
    }

    fn host() -> FakeHost {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        host
    }

    #[tokio::test]
    async fn formats_an_empty_partition_then_confirms() {
        let host = host();
        let (ctx, runner) = ctx(FakeRunner::default()
            .expect_output(&prog("blkid"), blkid(""))
            .expect(&format!("{} -i size=512 -L brick /dev/loop0p1", prog("mkfs.xfs")), "")
            .expect_output(&prog("blkid"), blkid(XFS)));
        let t = task(&host, v1::FilesystemType::Unspecified, "brick", false);
        let done = t.apply(&ctx).await.unwrap();
        assert_eq!(done, [format!("{} -i size=512 -L brick /dev/loop0p1", prog("mkfs.xfs"))]);
        assert_eq!(runner.seen().len(), 3);
    }

    #[tokio::test]
    async fn same_filesystem_is_reused() {
        let host = host();
        let (ctx, _) = ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(XFS)));
        let check = task(&host, v1::FilesystemType::Xfs, "other", true).check(&ctx).await.unwrap();
        assert!(check.changes.is_empty());
        assert!(check.warnings[0].contains("labelled \"brick\" is reused"), "{:?}", check.warnings);
    }

    #[tokio::test]
    async fn other_filesystem_is_refused_naming_it_or_wiped() {
        let host = host();
        let ext4 = "DEVNAME=/dev/loop0p1\nTYPE=ext4\nUSAGE=filesystem\n";
        let (ctx1, _) = ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(ext4)));
        let err = task(&host, v1::FilesystemType::Xfs, "", false).check(&ctx1).await.unwrap_err().to_string();
        assert!(err.starts_with("/dev/loop0p1: ext4 is there, xfs asked"), "{err}");
        let (ctx2, _) = ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(ext4)));
        let check = task(&host, v1::FilesystemType::Xfs, "", true).check(&ctx2).await.unwrap();
        assert_eq!(
            check.changes,
            [format!("{} -a /dev/loop0p1", prog("wipefs")), format!("{} -i size=512 /dev/loop0p1", prog("mkfs.xfs"))]
        );
    }

    #[tokio::test]
    async fn mounted_partition_is_refused_even_with_wipe() {
        let host = host();
        host.mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n90 22 259:0 / /data rw - ext4 /dev/loop0p1 rw\n");
        let ext4 = "TYPE=ext4\n";
        let (ctx, _) = ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(ext4)));
        let err = task(&host, v1::FilesystemType::Xfs, "", true).check(&ctx).await.unwrap_err().to_string();
        assert_eq!(err, "/dev/loop0p1 is in use: loop0p1 is mounted at /data (never changed, even with wipe)");
    }

    #[tokio::test]
    async fn no_partition_yet_plans_but_does_not_apply() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let (ctx, _) = ctx(FakeRunner::default());
        let t = task(&host, v1::FilesystemType::Ext4, "data", false);
        let check = t.check(&ctx).await.unwrap();
        assert_eq!(check.changes, [format!("{} -q -L data /dev/loop0p1", prog("mkfs.ext4"))]);
        assert!(check.warnings[0].contains("PartitionDisk must create /dev/loop0p1 first"));
        assert!(t.apply(&ctx).await.unwrap_err().to_string().contains("no partition yet"));
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
