//! `PartitionDisk`: one partition spanning a whole, empty disk (`parted -s DISK mklabel TABLE
//! mkpart primary 0% 100%`), then waits for the kernel to show it in sysfs and /dev (no udev).
//! A disk that already has exactly that layout is left alone; a disk with any other partition
//! table, filesystem, LVM or RAID signature is refused, naming what was found, unless the task
//! says wipe. The system disk and a disk in use are refused even with wipe. Touches the disk
//! only in apply (`wipefs -a`, `parted`); reads sysfs, mountinfo, `lsblk` and `blkid -p`.

use brickyard_proto::types::DevicePath;
use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::blockdev::{self, Disk, HostPaths};
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
    disk: DevicePath,
    table: Table,
    wipe: bool,
    paths: HostPaths,
}

impl PartitionDisk {
    pub fn from_proto(task: &v1::PartitionDisk) -> Result<Self, TaskError> {
        let disk = DevicePath::new(&task.disk)?;
        let table = match v1::PartitionTable::try_from(task.table) {
            Ok(v1::PartitionTable::Unspecified | v1::PartitionTable::Gpt) => Table::Gpt,
            Ok(v1::PartitionTable::Msdos) => Table::Msdos,
            Err(_) => return Err(TaskError::InvalidTask(format!("{disk}: unknown partition table {}", task.table))),
        };
        Ok(Self { disk, table, wipe: task.wipe, paths: HostPaths::system() })
    }

    /// The disk as found and the commands apply would run, in order (none: satisfied).
    async fn plan(&self, ctx: &Context) -> Result<(Disk, Vec<Cmd>), TaskError> {
        let runner = ctx.runner.as_ref();
        let disk = Disk::inspect(runner, &self.paths, &self.disk).await?;
        disk.require_whole_disk()?;
        disk.refuse_system_disk()?;
        disk.refuse_hidden_use(&self.paths)?;
        let sig = blockdev::probe(runner, &disk.path).await?;
        if sig.pttype.as_deref() == Some(self.table.blkid_name())
            && sig.fstype.is_none()
            && !sig.ambivalent
            && disk.has_one_spanning_partition()
        {
            return Ok((disk, Vec::new()));
        }
        blockdev::refuse_in_use(&disk.device)?;
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
                    disk.path,
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
    use crate::runner::fake::FakeRunner;
    use crate::runner::{CommandError, Output, Runner};
    use crate::tasks::ServiceManager;

    const EMPTY_LOOP: &str = r#"{"blockdevices": [{"name": "loop0", "path": "/dev/loop0", "maj:min": "7:0",
        "size": 536870912, "type": "loop", "pttype": null, "fstype": null, "label": null, "uuid": null,
        "mountpoint": null}]}"#;
    const ONE_PART: &str = include_str!("../fixtures/lsblk/loop-msdos.json");
    const NVME: &str = include_str!("../fixtures/lsblk/nvme.json");

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
        let proto = v1::PartitionDisk { disk: disk.into(), table: table.into(), wipe };
        PartitionDisk { paths: host.paths.clone(), ..PartitionDisk::from_proto(&proto).unwrap() }
    }

    fn parted(table: &str) -> String {
        format!("{} -s /dev/loop0 mklabel {table} mkpart primary 0% 100%", prog("parted"))
    }

    #[tokio::test]
    async fn empty_disk_is_partitioned_and_waited_for() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let fake = FakeRunner::default()
            .expect(&prog("lsblk"), EMPTY_LOOP)
            .expect_output(&prog("blkid"), blkid(""))
            .expect(&parted("gpt"), "");
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Unspecified, false);
        let runner = Arc::new(Kernel { fake, host });
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        assert_eq!(t.apply(&ctx).await.unwrap(), [parted("gpt")]);
    }

    #[tokio::test]
    async fn own_layout_is_unchanged() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let runner = FakeRunner::default()
            .expect(&prog("lsblk"), ONE_PART)
            .expect_output(&prog("blkid"), blkid(include_str!("../fixtures/blkid/dos-disk.txt")));
        let ctx = Context { runner: Arc::new(runner), service_manager: ServiceManager::Direct };
        let t = task(&host, "/dev/loop0", v1::PartitionTable::Msdos, false);
        assert!(t.apply(&ctx).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn foreign_layouts_are_refused_or_wiped() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576).partition("loop0", 1, 2048, 1046528);
        let dos = include_str!("../fixtures/blkid/dos-disk.txt");
        let script =
            || FakeRunner::default().expect(&prog("lsblk"), ONE_PART).expect_output(&prog("blkid"), blkid(dos));
        let ctx = |r: FakeRunner| Context { runner: Arc::new(r), service_manager: ServiceManager::Direct };
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, false).check(&ctx(script())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/loop0 is not empty: found a dos partition table with 1 partition(s) (loop0p1); gpt with \
             one partition asked (set wipe = true for /dev/loop0 to destroy it)"
        );
        let check = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, true).check(&ctx(script())).await.unwrap();
        assert_eq!(
            check.changes,
            [format!("{} -a /dev/loop0p1", prog("wipefs")), format!("{} -a /dev/loop0", prog("wipefs")), parted("gpt")]
        );
        // A filesystem on the whole disk.
        let host = FakeHost::default();
        host.disk("loop0", 1048576);
        let r = FakeRunner::default()
            .expect(&prog("lsblk"), EMPTY_LOOP)
            .expect_output(&prog("blkid"), blkid(include_str!("../fixtures/blkid/ext4-disk.txt")));
        let err = task(&host, "/dev/loop0", v1::PartitionTable::Gpt, false).check(&ctx(r)).await.unwrap_err();
        assert!(err.to_string().contains("/dev/loop0 is not empty: found an ext4 filesystem;"), "{err}");
    }

    #[tokio::test]
    async fn system_disk_and_partitions_are_refused_before_probing() {
        let host = FakeHost::default();
        host.disk("nvme0n1", 1 << 30).partition("nvme0n1", 1, 2048, 1 << 20);
        let ctx = |r: FakeRunner| Context { runner: Arc::new(r), service_manager: ServiceManager::Direct };
        let err = task(&host, "/dev/nvme0n1", v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default().expect(&prog("lsblk"), NVME)))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("/dev/nvme0n1 carries the system (nvme0n1p1 is mounted at /boot/efi)"),
            "{err}"
        );
        let err = task(&host, "/dev/nvme0n1p1", v1::PartitionTable::Gpt, true)
            .check(&ctx(FakeRunner::default().expect(&prog("lsblk"), NVME)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "/dev/nvme0n1p1 is a part (lsblk TYPE), not a whole disk");
    }
}
