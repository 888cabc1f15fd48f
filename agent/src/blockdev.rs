//! What the disk tasks know about one disk before they touch it: its lsblk tree (with every
//! mount point of this mount namespace), its partitions from sysfs (/sys/class/block), and the
//! on-disk signatures `blkid -p` finds (partition table, filesystem, LVM, RAID). Also the
//! refusals shared by the disk tasks, and waiting for a partition's /dev node without udev.
//! Reads only: sysfs, /proc/self/mountinfo, `lsblk`, `blkid -p`.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brickyard_proto::types::DevicePath;

use crate::lsblk::{self, BlockDevice};
use crate::mountinfo::{self, Mount};
use crate::runner::{find_program, Cmd, Runner};
use crate::tasks::TaskError;

/// How long a new partition may take to show up in sysfs and /dev.
pub const PARTITION_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Where the host's files are: `/` on a real host; a scratch directory in unit tests, so the
/// tasks can be run against a fake sysfs, /dev, mountinfo and /etc/fstab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl HostPaths {
    pub fn system() -> Self {
        Self { root: PathBuf::from("/") }
    }

    #[cfg(test)]
    pub fn under(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The host file at absolute path `abs`.
    pub fn host(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn sys_block(&self, name: &str) -> PathBuf {
        self.host("/sys/class/block").join(name)
    }

    /// This mount namespace's mounts.
    pub fn mounts(&self) -> Result<Vec<Mount>, TaskError> {
        let path = self.host("/proc/self/mountinfo");
        let text = std::fs::read_to_string(&path).map_err(TaskError::io(format!("reading {}", path.display())))?;
        Ok(mountinfo::parse(&text))
    }

    pub fn fstab(&self) -> PathBuf {
        self.host("/etc/fstab")
    }
}

/// What `blkid -p` found on a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// TYPE: ext4, xfs, LVM2_member, linux_raid_member, swap, ...
    pub fstype: Option<String>,
    /// PTTYPE: gpt, dos, ...
    pub pttype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// blkid saw more than one signature and would not say which (exit status 8).
    pub ambivalent: bool,
}

impl Signature {
    pub fn is_empty(&self) -> bool {
        self.fstype.is_none() && self.pttype.is_none() && !self.ambivalent
    }

    /// "a gpt partition table", "an ext4 filesystem", "an LVM physical volume", ... for
    /// refusal messages; `None` when nothing was found.
    pub fn describe(&self) -> Option<String> {
        let mut found = Vec::new();
        if let Some(pt) = &self.pttype {
            found.push(format!("a {pt} partition table"));
        }
        match self.fstype.as_deref() {
            Some("LVM2_member") => found.push("an LVM physical volume (LVM2_member)".into()),
            Some("linux_raid_member") => found.push("a RAID member (linux_raid_member)".into()),
            Some("swap") => found.push("swap space".into()),
            Some(fs) => {
                found.push(format!("{} {fs} filesystem", if fs.starts_with(['a', 'e', 'x']) { "an" } else { "a" }))
            }
            None => {}
        }
        if self.ambivalent {
            found.push("several conflicting signatures (see wipefs)".into());
        }
        (!found.is_empty()).then(|| found.join(" and "))
    }
}

/// Parses `blkid -p -o export` output (KEY=value lines).
pub fn parse_blkid(text: &str) -> Signature {
    let fields: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).map(|v| v.to_string());
    Signature { fstype: get("TYPE"), pttype: get("PTTYPE"), uuid: get("UUID"), label: get("LABEL"), ambivalent: false }
}

/// Probes `path` for signatures with `blkid -p` (low-level: reads the device, no cache).
pub async fn probe(runner: &dyn Runner, path: &str) -> Result<Signature, TaskError> {
    let cmd = Cmd::new(find_program("blkid")?).args(["-p", "-o", "export", path]);
    let out = runner.output(&cmd).await?;
    match out.code {
        Some(0) => Ok(parse_blkid(&out.stdout)),
        // 2 = nothing found; but an unreadable device also exits 2, with a message (refused below).
        Some(2) if out.stderr.trim().is_empty() => Ok(Signature::default()),
        Some(8) => Ok(Signature { ambivalent: true, ..parse_blkid(&out.stdout) }),
        Some(2) => Err(TaskError::Unsafe(format!(
            "{path}: cannot read it to see what is on it ({}); brickyard never changes a device it cannot \
             inspect, even with wipe",
            out.stderr.trim()
        ))),
        code => Err(crate::runner::CommandError::Failed {
            cmd: cmd.display(),
            code,
            stdout: out.stdout,
            stderr: out.stderr,
        }
        .into()),
    }
}

/// A partition as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub number: u32,
    /// In 512-byte sectors.
    pub start: u64,
    pub size: u64,
    /// "major:minor", as /proc/self/mountinfo shows it.
    pub dev: String,
}

impl Partition {
    pub fn path(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

/// The kernel name partition 1 of `disk` gets: `vdb1`, but `nvme0n1p1` and `loop0p1` when the
/// disk's name ends in a digit.
pub fn first_partition_name(disk: &str) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p1")
    } else {
        format!("{disk}1")
    }
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Everything we know about one whole disk before changing it.
#[derive(Debug, Clone)]
pub struct Disk {
    /// `/dev/NAME` (symlinks such as /dev/disk/by-id/... resolved).
    pub path: String,
    pub name: String,
    /// The disk's lsblk tree with all mount points merged in.
    pub device: BlockDevice,
    /// In 512-byte sectors (sysfs).
    pub size: u64,
    /// From sysfs, by partition number.
    pub partitions: Vec<Partition>,
}

impl Disk {
    /// Looks `disk` up: resolves symlinks, runs lsblk, reads mountinfo and sysfs.
    pub async fn inspect(runner: &dyn Runner, paths: &HostPaths, disk: &DevicePath) -> Result<Disk, TaskError> {
        let host_path = paths.host(disk.as_str());
        let resolved =
            std::fs::canonicalize(&host_path).map_err(|e| TaskError::InvalidTask(format!("device {disk}: {e}")))?;
        let name = resolved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| TaskError::InvalidTask(format!("device {disk} resolves to {}", resolved.display())))?;
        let out = runner.run(&lsblk::command()?).await?;
        let devices = lsblk::parse_with_mounts(&out.stdout, &paths.mounts()?)?;
        let device = lsblk::find(&devices, &name).cloned().ok_or_else(|| {
            TaskError::InvalidTask(format!("device {disk}: lsblk does not list {name} as a block device"))
        })?;
        let sys = paths.sys_block(&name);
        let size = read_number(&sys.join("size"))
            .ok_or_else(|| TaskError::InvalidTask(format!("device {disk}: no {}", sys.join("size").display())))?;
        let mut disk = Disk { path: format!("/dev/{name}"), name, device, size, partitions: Vec::new() };
        disk.partitions = disk.read_partitions(paths)?;
        Ok(disk)
    }

    fn read_partitions(&self, paths: &HostPaths) -> Result<Vec<Partition>, TaskError> {
        let sys = paths.sys_block(&self.name);
        let entries = std::fs::read_dir(&sys).map_err(TaskError::io(format!("reading {}", sys.display())))?;
        let mut parts: Vec<Partition> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let dir = e.path();
                Some(Partition {
                    number: read_number(&dir.join("partition"))? as u32,
                    start: read_number(&dir.join("start"))?,
                    size: read_number(&dir.join("size"))?,
                    dev: std::fs::read_to_string(dir.join("dev")).ok()?.trim().to_owned(),
                    name: e.file_name().to_string_lossy().into_owned(),
                })
            })
            .collect();
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Re-reads the partitions until `done` says they are as expected (the kernel adds them
    /// after parted returns), then waits for partition 1's /dev node: there is no udev to
    /// wait for, the kernel's devtmpfs creates it.
    pub async fn await_partitions(
        &mut self,
        paths: &HostPaths,
        what: &str,
        done: impl Fn(&[Partition]) -> bool,
    ) -> Result<(), TaskError> {
        let deadline = tokio::time::Instant::now() + PARTITION_TIMEOUT;
        loop {
            self.partitions = self.read_partitions(paths)?;
            if done(&self.partitions) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TaskError::Timeout(format!("{what} in {} (after {PARTITION_TIMEOUT:?})", self.path)));
            }
            tokio::time::sleep(POLL).await;
        }
        for part in &self.partitions {
            wait_for_node(paths, &part.path()).await?;
        }
        Ok(())
    }

    /// The disk's only partition, the one the disk tasks act on. `Ok(None)`: no partition yet.
    pub fn single_partition(&self) -> Result<Option<&Partition>, TaskError> {
        match self.partitions.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(TaskError::Unsafe(format!(
                "{} has {} partitions ({}); brickyard uses a disk with exactly one",
                self.path,
                many.len(),
                many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// True when the partitions are what PartitionDisk makes: one partition spanning the disk
    /// (up to alignment at the start and the GPT backup at the end).
    pub fn has_one_spanning_partition(&self) -> bool {
        let slack = (self.size / 100).max(32 * 1024 * 2); // 1% or 32 MiB
        matches!(self.partitions.as_slice(), [p] if p.number == 1 && p.size + slack >= self.size)
    }

    /// Refuses anything that is not a whole disk (lsblk TYPE `disk`, or `loop`).
    pub fn require_whole_disk(&self) -> Result<(), TaskError> {
        if self.device.is_whole_disk() {
            Ok(())
        } else {
            Err(TaskError::Conflict(format!(
                "{} is a {} (lsblk TYPE), not a whole disk",
                self.path,
                if self.device.kind.is_empty() { "device of unknown type" } else { &self.device.kind }
            )))
        }
    }

    /// Refuses the disk that carries / or /boot (or /usr, /var): never touched, even with wipe.
    pub fn refuse_system_disk(&self) -> Result<(), TaskError> {
        match self.device.system_mount() {
            Some((dev, mp)) => Err(TaskError::Unsafe(format!(
                "{} carries the system ({dev} is mounted at {mp}); brickyard never changes it, even with wipe",
                self.path
            ))),
            None => Ok(()),
        }
    }

    /// Refuses the disk when the kernel will not let us open it, or one of its partitions,
    /// exclusively although nothing in this mount namespace uses it: it is mounted or held
    /// somewhere we cannot see (another mount namespace's root, as for a lab host or a
    /// container). Never changed, even with wipe.
    pub fn refuse_hidden_use(&self, paths: &HostPaths) -> Result<(), TaskError> {
        let devices = std::iter::once((self.name.clone(), self.path.clone()))
            .chain(self.partitions.iter().map(|p| (p.name.clone(), p.path())));
        for (name, path) in devices {
            if self.partition_device(&name).is_some_and(|d| refuse_in_use(d).is_err()) {
                continue; // a use we can see; refuse_in_use names it when a change is needed
            }
            let open = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_EXCL).open(paths.host(&path));
            match open {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(TaskError::Unsafe(format!(
                        "{path} is in use outside this mount namespace (the kernel refuses an exclusive open: \
                         mounted or held elsewhere, e.g. the machine's root); brickyard never changes it, even \
                         with wipe"
                    )))
                }
                Err(e) => {
                    return Err(TaskError::Unsafe(format!(
                        "{path}: cannot open it exclusively to check it is unused: {e}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The lsblk tree of partition `name` of this disk.
    pub fn partition_device(&self, name: &str) -> Option<&BlockDevice> {
        lsblk::find(std::slice::from_ref(&self.device), name)
    }
}

/// Refuses when anything in `dev`'s tree is mounted (swap included) or held by LVM, RAID,
/// dm-crypt...: even wipe does not pull an active device away.
pub fn refuse_in_use(dev: &BlockDevice) -> Result<(), TaskError> {
    if let Some((name, mp)) = dev.mounts().first() {
        let at = if *mp == "[SWAP]" { "in use as swap".to_owned() } else { format!("mounted at {mp}") };
        return Err(TaskError::Unsafe(format!(
            "{} is in use: {name} is {at} (never changed, even with wipe)",
            dev.path
        )));
    }
    if let Some(holder) = dev.walk().into_iter().skip(1).find(|d| d.kind != "part") {
        return Err(TaskError::Unsafe(format!(
            "{} is in use: {} ({}) is active on it (never changed, even with wipe)",
            dev.path, holder.name, holder.kind
        )));
    }
    Ok(())
}

/// Waits for `/dev/NAME` to exist (the kernel's devtmpfs creates it; there is no udev).
pub async fn wait_for_node(paths: &HostPaths, dev_path: &str) -> Result<(), TaskError> {
    let node = paths.host(dev_path);
    let deadline = tokio::time::Instant::now() + PARTITION_TIMEOUT;
    while !node.exists() {
        if tokio::time::Instant::now() >= deadline {
            return Err(TaskError::Timeout(format!("device node {dev_path} to appear (after {PARTITION_TIMEOUT:?})")));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// `wipefs -a PATH`: erases every signature blkid could find (only run when the task says wipe).
pub fn wipefs(path: &str) -> Result<Cmd, TaskError> {
    Ok(Cmd::new(find_program("wipefs")?).args(["-a", path]))
}

#[cfg(test)]
pub mod testhost {
    //! A fake host for unit tests: sysfs, /dev, mountinfo and /etc under a temporary directory.

    use super::*;

    /// The absolute path a program runs from here, as FakeRunner expectations spell it.
    pub fn prog(name: &str) -> String {
        find_program(name).unwrap().display().to_string()
    }

    pub struct FakeHost {
        pub dir: tempfile::TempDir,
        pub paths: HostPaths,
    }

    impl Default for FakeHost {
        fn default() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let paths = HostPaths::under(dir.path());
            for d in ["/dev", "/sys/class/block", "/proc/self", "/etc"] {
                std::fs::create_dir_all(paths.host(d)).unwrap();
            }
            std::fs::write(paths.host("/proc/self/mountinfo"), "22 1 254:0 / / rw - ext4 /dev/vda rw\n").unwrap();
            Self { dir, paths }
        }
    }

    impl FakeHost {
        /// A whole disk of `sectors` 512-byte sectors.
        pub fn disk(&self, name: &str, sectors: u64) -> &Self {
            let sys = self.paths.sys_block(name);
            std::fs::create_dir_all(&sys).unwrap();
            std::fs::write(sys.join("size"), format!("{sectors}\n")).unwrap();
            std::fs::write(self.paths.host(&format!("/dev/{name}")), "").unwrap();
            self
        }

        pub fn partition(&self, disk: &str, number: u32, start: u64, size: u64) -> &Self {
            let name = if disk.ends_with(|c: char| c.is_ascii_digit()) {
                format!("{disk}p{number}")
            } else {
                format!("{disk}{number}")
            };
            let sys = self.paths.sys_block(disk).join(&name);
            std::fs::create_dir_all(&sys).unwrap();
            for (file, value) in [("partition", number as u64), ("start", start), ("size", size)] {
                std::fs::write(sys.join(file), format!("{value}\n")).unwrap();
            }
            std::fs::write(sys.join("dev"), format!("259:{}\n", number - 1)).unwrap();
            std::os::unix::fs::symlink(&sys, self.paths.sys_block(&name)).unwrap();
            std::fs::write(self.paths.host(&format!("/dev/{name}")), "").unwrap();
            self
        }

        pub fn mountinfo(&self, lines: &str) -> &Self {
            std::fs::write(self.paths.host("/proc/self/mountinfo"), lines).unwrap();
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testhost::{prog, FakeHost};
    use super::*;
    use crate::runner::fake::FakeRunner;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/src/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn blkid_fixtures() {
        let xfs = parse_blkid(&fixture("blkid/xfs-partition.txt"));
        assert_eq!(
            (xfs.fstype.as_deref(), xfs.label.as_deref(), xfs.pttype.as_deref()),
            (Some("xfs"), Some("brick"), None)
        );
        assert_eq!(xfs.uuid.as_deref(), Some("7b56d2b3-670e-4de9-9775-bcde44a7e225"));
        assert_eq!(parse_blkid(&fixture("blkid/gpt-disk.txt")).describe().unwrap(), "a gpt partition table");
        assert_eq!(parse_blkid(&fixture("blkid/dos-disk.txt")).pttype.as_deref(), Some("dos"));
        assert_eq!(parse_blkid(&fixture("blkid/ext4-disk.txt")).describe().unwrap(), "an ext4 filesystem");
        assert_eq!(
            parse_blkid(&fixture("blkid/lvm-member.txt")).describe().unwrap(),
            "an LVM physical volume (LVM2_member)"
        );
        assert_eq!(
            parse_blkid(&fixture("blkid/md-member.txt")).describe().unwrap(),
            "a RAID member (linux_raid_member)"
        );
        assert!(parse_blkid("").is_empty());
    }

    #[tokio::test]
    async fn probe_tells_nothing_from_unreadable() {
        use crate::runner::Output;
        let blank = Output { code: Some(2), ..Default::default() };
        let eperm =
            Output { code: Some(2), stderr: "error: /dev/vda: Operation not permitted".into(), ..Default::default() };
        let ambivalent = Output { code: Some(8), ..Default::default() };
        let r = FakeRunner::default()
            .expect_output(&format!("{} -p -o export /dev/loop0", prog("blkid")), blank)
            .expect_output(&format!("{} -p -o export /dev/vda", prog("blkid")), eperm)
            .expect_output(&format!("{} -p -o export /dev/loop1", prog("blkid")), ambivalent);
        assert!(probe(&r, "/dev/loop0").await.unwrap().is_empty());
        assert!(probe(&r, "/dev/vda").await.unwrap_err().to_string().starts_with("/dev/vda: cannot read it"));
        assert!(probe(&r, "/dev/loop1").await.unwrap().describe().unwrap().contains("conflicting"));
    }

    #[test]
    fn partition_names() {
        assert_eq!(first_partition_name("vdb"), "vdb1");
        assert_eq!(first_partition_name("nvme0n1"), "nvme0n1p1");
        assert_eq!(first_partition_name("loop0"), "loop0p1");
    }

    #[tokio::test]
    async fn inspects_a_fake_host() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576)
            .partition("loop0", 1, 2048, 1044480)
            .mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n119 22 259:0 / /vdisk rw - xfs /dev/loop0p1 rw\n");
        let r = FakeRunner::default().expect(&prog("lsblk"), &fixture("lsblk/loop-msdos.json"));
        let disk = Disk::inspect(&r, &host.paths, &DevicePath::new("/dev/loop0").unwrap()).await.unwrap();
        assert_eq!((disk.path.as_str(), disk.size), ("/dev/loop0", 1048576));
        assert_eq!(
            disk.partitions,
            [Partition { name: "loop0p1".into(), number: 1, start: 2048, size: 1044480, dev: "259:0".into() }]
        );
        assert!(disk.has_one_spanning_partition());
        disk.require_whole_disk().unwrap();
        disk.refuse_system_disk().unwrap();
        let err = refuse_in_use(&disk.device).unwrap_err().to_string();
        assert_eq!(err, "/dev/loop0 is in use: loop0p1 is mounted at /vdisk (never changed, even with wipe)");
    }

    #[test]
    fn refusals_name_device_and_finding() {
        let nvme = lsblk::parse(&fixture("lsblk/nvme.json")).unwrap();
        let disk = |name: &str, devs: &[BlockDevice]| Disk {
            path: format!("/dev/{name}"),
            name: name.into(),
            device: lsblk::find(devs, name).unwrap().clone(),
            size: 1 << 30,
            partitions: Vec::new(),
        };
        let sys = disk("nvme0n1", &nvme).refuse_system_disk().unwrap_err().to_string();
        assert!(sys.contains("/dev/nvme0n1 carries the system") && sys.contains("even with wipe"), "{sys}");
        assert!(disk("nvme1n1", &nvme).refuse_system_disk().is_ok());
        let part = disk("nvme0n1p2", &nvme).require_whole_disk().unwrap_err().to_string();
        assert_eq!(part, "/dev/nvme0n1p2 is a part (lsblk TYPE), not a whole disk");
        let lvm = lsblk::parse(&fixture("lsblk/lvm-member.json")).unwrap();
        let held = refuse_in_use(&lvm[0]).unwrap_err().to_string();
        assert_eq!(held, "/dev/sdb is in use: data-brick (lvm) is active on it (never changed, even with wipe)");
        let md = lsblk::parse(&fixture("lsblk/md-member.json")).unwrap();
        assert!(refuse_in_use(&md[1]).unwrap_err().to_string().contains("md0 is mounted at /srv/bricks"));
        let swap = refuse_in_use(lsblk::find(&nvme, "nvme0n1p3").unwrap()).unwrap_err().to_string();
        assert!(swap.contains("in use as swap") || swap.contains("mounted at /"), "{swap}");
    }
}
