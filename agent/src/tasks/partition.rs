//! `PartitionDisk`: one partition spanning a whole, empty disk (`parted -s DISK mklabel TABLE
//! mkpart primary 0% 100%`), then waits for the kernel to show it in sysfs and /dev (no udev).
//! A disk that already has exactly that layout is left alone; a disk with any other partition
//! table, filesystem, LVM or RAID signature is refused, naming what was found, unless the task
//! says wipe and names the disk by its identity (a by-id link or a Cinder volume, never a bare
//! device name). The system disk and a disk in use are refused even with wipe. The disk may be
//! named by a stable link (`/dev/disk/by-id/...`); messages then name the link and the device.
//! Touches the disk only in apply (`wipefs -a`, `parted`); reads sysfs, /proc, /dev and
//! `blkid -p`.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::v1;

use super::disk::disk_ref;
use super::shape::{Plan, Task, TaskError};
use crate::host::blockdev::{self, Disk, DiskRef, HostPaths, Partition};
use crate::host::runner::Cmd;
use crate::host::Context;

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
}

/// One command of partitioning a disk, in order: wiping what is there (only with wipe), then
/// parted, after which the kernel must show the new partition.
#[derive(Debug, Clone)]
pub enum DiskChange {
    Wipe(Cmd),
    Partition { parted: Cmd, disk: Box<Disk> },
}

impl fmt::Display for DiskChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskChange::Wipe(cmd) | DiskChange::Partition { parted: cmd, .. } => f.write_str(&cmd.display()),
        }
    }
}

#[async_trait]
impl Task for PartitionDisk {
    type Change = DiskChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<DiskChange>, TaskError> {
        let disk = Disk::inspect_for_change(&self.paths, &self.disk)?;
        let sig = blockdev::probe(ctx.runner.as_ref(), &disk.path).await?;
        if sig.pttype.as_deref() == Some(self.table.blkid_name())
            && sig.fstype.is_none()
            && !sig.ambivalent
            && disk.has_one_spanning_partition()
        {
            return Ok(Plan::unchanged());
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
            disk.require_identity_for_wipe(&self.disk)?;
            for part in &disk.partitions {
                cmds.push(DiskChange::Wipe(blockdev::wipefs(ctx.runner.as_ref(), &part.path())?));
            }
            cmds.push(DiskChange::Wipe(blockdev::wipefs(ctx.runner.as_ref(), &disk.path)?));
        }
        let parted = ctx.runner.cmd("parted")?.args([
            "-s",
            &disk.path,
            "mklabel",
            self.table.parted_name(),
            "mkpart",
            "primary",
            "0%",
            "100%",
        ]);
        cmds.push(DiskChange::Partition { parted, disk: Box::new(disk) });
        Ok(Plan::of(cmds))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<DiskChange>) -> Result<Vec<DiskChange>, TaskError> {
        for change in &plan.changes {
            match change {
                DiskChange::Wipe(cmd) => {
                    ctx.runner.run(cmd).await?;
                }
                DiskChange::Partition { parted, disk } => {
                    ctx.runner.run(parted).await?;
                    let new_partition_1 = |parts: &[Partition]| matches!(parts, [p] if p.number == 1);
                    disk.clone().await_partitions(&self.paths, "the new partition 1", new_partition_1).await?;
                }
            }
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host::blockdev::testhost::FakeHost;
    use crate::host::blockdev::CinderVolume;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const DOS: &str = include_str!("../fixtures/blkid/dos-disk.txt");
    const GPT: &str = include_str!("../fixtures/blkid/gpt-disk.txt");

    fn blkid(stdout: &str) -> Output {
        Output { code: Some(if stdout.is_empty() { 2 } else { 0 }), stdout: stdout.into(), stderr: String::new() }
    }

    fn task(host: &FakeHost, disk: &str, table: v1::PartitionTable, wipe: bool) -> PartitionDisk {
        let proto = v1::PartitionDisk { disk: disk.into(), table: table.into(), wipe, ..Default::default() };
        PartitionDisk { paths: host.paths.clone(), ..PartitionDisk::from_proto(&proto).unwrap() }
    }

    fn ctx(runner: FakeRunner) -> Context {
        Context::direct(runner)
    }

    fn parted(disk: &str, table: &str) -> String {
        format!("/usr/sbin/parted -s {disk} mklabel {table} mkpart primary 0% 100%")
    }

    /// A host with parted and wipefs whose blkid finds `stdout` on `disk`.
    fn probed(disk: &str, stdout: &str) -> FakeRunner {
        FakeRunner::default()
            .installed("/usr/sbin/parted")
            .installed("/usr/sbin/wipefs")
            .expect_output(&format!("/usr/sbin/blkid -p -o export {disk}"), blkid(stdout))
    }

    /// parted's partition appears in sysfs and /dev as the kernel would show it; the plan
    /// after it finds the layout it asked for.
    #[tokio::test]
    async fn empty_disk_is_partitioned_and_waited_for() {
        let host = Arc::new(FakeHost::default());
        host.disk("loop0", 1048576);
        let kernel = host.clone();
        let runner = probed("/dev/loop0", "")
            .expect_output("/usr/sbin/blkid -p -o export /dev/loop0", blkid(""))
            .expect(&parted("/dev/loop0", "gpt"), "")
            .then(move || {
                kernel.partition("loop0", 1, 2048, 1046528);
            })
            .expect_output("/usr/sbin/blkid -p -o export /dev/loop0", blkid(GPT));
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Unspecified, false);
        let (_, done) = converges(&t, &ctx(runner)).await;
        assert_eq!(done, [parted("/dev/loop0", "gpt")]);
    }

    #[tokio::test]
    async fn own_layout_is_unchanged() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let runner = probed("/dev/loop0", DOS);
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Msdos, false);
        assert!(t.run(&ctx(runner)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn foreign_layouts_are_refused_or_wiped() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let script = || probed("/dev/loop0", DOS);
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, false).check(&ctx(script())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/loop0 is not empty: found a dos partition table with 1 partition(s) (loop0p1); gpt with \
             one partition asked (set wipe = true for /dev/loop0 to destroy it)"
        );
        // Wipe on a device name alone: refused, naming what the disk's identity is.
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, true).check(&ctx(script())).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "refusing to wipe /dev/loop0: /dev/loop0 names no disk identity, so it may be another disk than the \
             spec means; expected a /dev/disk/by-id/ link or a Cinder volume, found serial none, WWN none, by-id \
             links none"
        );
        // Named by its Cinder volume (its serial), the wipe is planned.
        let host = FakeHost::from_fixture("virtio-cinder");
        let blank = DiskRef::CinderVolume(CinderVolume::new("0b5d3a51-77c2-4b8e-9f31-6a0d2c4e8b17").unwrap());
        let t = PartitionDisk { disk: blank, ..task(&host, "/dev/vdb", v1::PartitionTable::Gpt, true) };
        let check = t.check(&ctx(probed("/dev/vdc", DOS))).await.unwrap();
        assert_eq!(check.changes, ["/usr/sbin/wipefs -a /dev/vdc".to_owned(), parted("/dev/vdc", "gpt")]);
        // A filesystem on the whole disk.
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let r = probed("/dev/loop0", include_str!("../fixtures/blkid/ext4-disk.txt"));
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
        let err =
            task(&host, link, v1::PartitionTable::Gpt, true).check(&ctx(probed("/dev/vdb", DOS))).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{link} (/dev/vdb) is in use: vdb1 is mounted at /vdisk (never changed, even with wipe)")
        );
        let volume = DiskRef::CinderVolume(CinderVolume::new("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4").unwrap());
        let by_volume = PartitionDisk { disk: volume, ..task(&host, "/dev/vdb", v1::PartitionTable::Msdos, false) };
        let plan = by_volume.plan(&ctx(probed("/dev/vdb", DOS))).await.unwrap();
        assert!(plan.changes.is_empty() && plan.warnings.is_empty(), "the seed's layout on the volume's disk is kept");
        // The blank second volume, by its Cinder id: partitioned as /dev/vdc.
        let blank = DiskRef::CinderVolume(CinderVolume::new("0b5d3a51-77c2-4b8e-9f31-6a0d2c4e8b17").unwrap());
        let t = PartitionDisk { disk: blank, ..task(&host, "/dev/vdb", v1::PartitionTable::Gpt, false) };
        let check = t.check(&ctx(probed("/dev/vdc", ""))).await.unwrap();
        assert_eq!(check.changes, [parted("/dev/vdc", "gpt")]);
    }
}
