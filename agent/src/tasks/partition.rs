//! `PartitionDisk`: one partition spanning a whole, empty disk (`parted -s DISK mklabel TABLE
//! mkpart primary 0% 100%`), then waits for the kernel to show it in sysfs and /dev (no udev).
//! A disk that already has exactly that layout is left alone; a disk with any other partition
//! table, filesystem, LVM or RAID signature is refused, naming what was found, unless the task
//! says wipe. The system disk and a disk in use are refused even with wipe. The disk may be
//! named by a stable link (`/dev/disk/by-id/...`); messages then name the link and the device.
//! Touches the disk only in apply (`wipefs -a`, `parted`); reads sysfs, /proc, /dev and
//! `blkid -p`.

use brickyard_proto::v1;

use super::disk::disk_ref;
use super::{Check, Context, TaskError};
use crate::blockdev::{self, Disk, DiskRef, HostPaths};
use crate::runner::{find_program, Cmd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Gpt,
    Msdos,
}

impl Table {
    /// The name parted takes.
    fn parted_name(self) -> &'static str {
        match self {
            Table::Gpt => "gpt",
            Table::Msdos => "msdos",
        }
    }

    /// The name blkid reports (PTTYPE).
    fn blkid_name(self) -> &'static str {
        match self {
            Table::Gpt => "gpt",
            Table::Msdos => "dos",
        }
    }
}

#[derive(Debug)]
pub struct PartitionDisk {
    disk: DiskRef,
    table: Table,
    wipe: bool,
    paths: HostPaths,
}

impl PartitionDisk {
    pub fn from_proto(task: &v1::PartitionDisk) -> Result<Self, TaskError> {
        let disk = disk_ref(&task.disk, &task.cinder_volume)?;
        let table = match v1::PartitionTable::try_from(task.table) {
            Ok(v1::PartitionTable::Unspecified | v1::PartitionTable::Gpt) => Table::Gpt,
            Ok(v1::PartitionTable::Msdos) => Table::Msdos,
            Err(_) => return Err(TaskError::InvalidTask(format!("{disk}: unknown partition table {}", task.table))),
        };
        Ok(Self { disk, table, wipe: task.wipe, paths: HostPaths::system() })
    }

    /// The disk as found and the commands apply would run, in order (none: satisfied).
    async fn plan(&self, ctx: &Context) -> Result<(Disk, Vec<Cmd>), TaskError> {
        let disk = Disk::inspect_for_change(&self.paths, &self.disk)?;
        let sig = blockdev::probe(ctx.runner.as_ref(), &disk.path).await?;
        if sig.pttype.as_deref() == Some(self.table.blkid_name())
            && sig.fstype.is_none()
            && !sig.ambivalent
            && disk.has_one_spanning_partition()
        {
            return Ok((disk, Vec::new()));
        }
        blockdev::refuse_in_use(&disk.device, &disk.label())?;
        let mut found: Vec<String> = sig.describe().into_iter().collect();
        if !disk.partitions.is_empty() {
            let names: Vec<&str> = disk.partitions.iter().map(|p| p.name.as_str()).collect();
            found.push(format!("{} partition(s) ({})", names.len(), names.join(", ")));
        }
        let mut cmds = Vec::new();
        if !found.is_empty() {
            if !self.wipe {
                return Err(TaskError::Unsafe(format!(
                    "{} is not empty: found {}; {} with one partition asked (set wipe = true for {} to destroy it)",
                    disk.label(),
                    found.join(" with "),
                    self.table.parted_name(),
                    self.disk
                )));
            }
            for part in &disk.partitions {
                cmds.push(blockdev::wipefs(&part.path())?);
            }
            cmds.push(blockdev::wipefs(&disk.path)?);
        }
        cmds.push(Cmd::new(find_program("parted")?).args([
            "-s",
            &disk.path,
            "mklabel",
            self.table.parted_name(),
            "mkpart",
            "primary",
            "0%",
            "100%",
        ]));
        Ok((disk, cmds))
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let (_, cmds) = self.plan(ctx).await?;
        Ok(Check { changes: cmds.iter().map(Cmd::display).collect(), warnings: Vec::new() })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let (mut disk, cmds) = self.plan(ctx).await?;
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        for cmd in &cmds {
            ctx.runner.run(cmd).await?;
            done.push(cmd.display());
        }
        disk.await_partitions(&self.paths, "the new partition 1", |parts| matches!(parts, [p] if p.number == 1))
            .await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::blockdev::testhost::{prog, FakeHost};
    use crate::blockdev::CinderVolume;
    use crate::runner::fake::FakeRunner;
    use crate::runner::{CommandError, Output, Runner};
    use crate::tasks::ServiceManager;

    const DOS: &str = include_str!("../fixtures/blkid/dos-disk.txt");

    /// FakeRunner, plus the kernel's side of parted: the partition appears in sysfs and /dev.
    struct Kernel {
        fake: FakeRunner,
        host: FakeHost,
    }

    #[async_trait]
    impl Runner for Kernel {
        async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
            let out = self.fake.output(cmd).await?;
            if cmd.display().starts_with(&prog("parted")) {
                self.host.partition("loop0", 1, 2048, 1046528);
            }
            Ok(out)
        }
    }

    fn blkid(stdout: &str) -> Output {
        Output { code: Some(if stdout.is_empty() { 2 } else { 0 }), stdout: stdout.into(), stderr: String::new() }
    }

    fn task(host: &FakeHost, disk: &str, table: v1::PartitionTable, wipe: bool) -> PartitionDisk {
        let proto = v1::PartitionDisk { disk: disk.into(), table: table.into(), wipe, ..Default::default() };
        PartitionDisk { paths: host.paths.clone(), ..PartitionDisk::from_proto(&proto).unwrap() }
    }

    fn ctx(runner: FakeRunner) -> Context {
        Context { runner: Arc::new(runner), service_manager: ServiceManager::Direct }
    }

    fn parted(disk: &str, table: &str) -> String {
        format!("{} -s {disk} mklabel {table} mkpart primary 0% 100%", prog("parted"))
    }

    #[tokio::test]
    async fn empty_disk_is_partitioned_and_waited_for() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let fake =
            FakeRunner::default().expect_output(&prog("blkid"), blkid("")).expect(&parted("/dev/loop0", "gpt"), "");
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Unspecified, false);
        let runner = Arc::new(Kernel { fake, host });
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        assert_eq!(t.apply(&ctx).await.unwrap(), [parted("/dev/loop0", "gpt")]);
        assert_eq!(runner.fake.seen().len(), 2);
    }

    #[tokio::test]
    async fn own_layout_is_unchanged() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let runner = FakeRunner::default().expect_output(&prog("blkid"), blkid(DOS));
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Msdos, false);
        assert!(t.apply(&ctx(runner)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn foreign_layouts_are_refused_or_wiped() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let script = || FakeRunner::default().expect_output(&prog("blkid"), blkid(DOS));
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, false).check(&ctx(script())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/loop0 is not empty: found a dos partition table with 1 partition(s) (loop0p1); gpt with \
             one partition asked (set wipe = true for /dev/loop0 to destroy it)"
        );
        let check = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, true).check(&ctx(script())).await.unwrap();
        assert_eq!(
            check.changes,
            [
                format!("{} -a /dev/loop0p1", prog("wipefs")),
                format!("{} -a /dev/loop0", prog("wipefs")),
                parted("/dev/loop0", "gpt")
            ]
        );
        // A filesystem on the whole disk.
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let r =
            FakeRunner::default().expect_output(&prog("blkid"), blkid(include_str!("../fixtures/blkid/ext4-disk.txt")));
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, false).check(&ctx(r)).await.unwrap_err();
        assert!(err.to_string().contains("/dev/loop0 is not empty: found an ext4 filesystem;"), "{err}");
    }

    /// No blkid expected: the FakeRunner panics on any command.
    #[tokio::test]
    async fn system_disk_and_partitions_are_refused_before_probing() {
        let host = FakeHost::from_fixture("nvme-lvm-root");
        let err = task(&host, "/dev/nvme0n1", v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/nvme0n1 carries the system (nvme0n1p1 is mounted at /boot/efi); brickyard never changes \
             it, even with wipe"
        );
        let err = task(&host, "/dev/nvme0n1p1", v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default()))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "/dev/nvme0n1p1 is a partition, not a whole disk");
        let err = task(&host, "/dev/mapper/rhel-root", v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default()))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "/dev/mapper/rhel-root (/dev/dm-0) is an LVM logical volume, not a whole disk");
    }

    /// The seed's disk named by its udev link, and by its Cinder volume: messages name both
    /// the name given and the kernel's device.
    #[tokio::test]
    async fn disk_named_by_link_or_cinder_volume_is_named_both_ways() {
        let host = FakeHost::from_fixture("virtio-cinder");
        let link = "/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b";
        let err = task(&host, link, v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(DOS))))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{link} (/dev/vdb) is in use: vdb1 is mounted at /vdisk (never changed, even with wipe)")
        );
        let volume = DiskRef::CinderVolume(CinderVolume::new("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4").unwrap());
        let by_volume = PartitionDisk { disk: volume, ..task(&host, "/dev/vdb", v1::PartitionTable::Msdos, false) };
        let check =
            by_volume.check(&ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid(DOS)))).await.unwrap();
        assert_eq!(check, Check::unchanged(), "the seed's layout on the volume's disk is kept");
        // The blank second volume, by its Cinder id: partitioned as /dev/vdc.
        let blank = DiskRef::CinderVolume(CinderVolume::new("0b5d3a51-77c2-4b8e-9f31-6a0d2c4e8b17").unwrap());
        let t = PartitionDisk { disk: blank, ..task(&host, "/dev/vdb", v1::PartitionTable::Gpt, false) };
        let check = t.check(&ctx(FakeRunner::default().expect_output(&prog("blkid"), blkid("")))).await.unwrap();
        assert_eq!(check.changes, [parted("/dev/vdc", "gpt")]);
    }
}
