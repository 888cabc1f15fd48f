//! Block devices from the kernel: the bottom layer that facts and the disk tasks stand on.
//! Devices and their stacking come from sysfs (`sysfs`: /sys/class/block, with mount points from
//! /proc/self/mountinfo and swap from /proc/swaps), on-disk signatures from `blkid -p`
//! (`blkid`) and the xfs superblock's unfinished-mkfs flag (`xfs_sb`), and a task's name for a
//! disk (a /dev path, a /dev/disk/by-id link, a Cinder volume id) is turned into the kernel's device by `reference`. Nothing depends on lsblk or
//! its output format, so util-linux 2.23 (EL7) to 2.40 give the same answers. Here: what the
//! disk tasks know about one disk before they touch it, the refusals they share, and waiting
//! for a partition's /dev node without udev. Reads only: sysfs, /proc, /dev, `blkid -p`.
//! Imports nothing above it (no `crate::tasks`); its [`Error`] says what kind of no it is.

mod blkid;
mod reference;
mod sysfs;
mod xfs_sb;

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

pub use blkid::{parse_blkid, probe, Signature};
pub use reference::{CinderVolume, DiskRef};
pub use sysfs::{find, BlockDevice, Kind, Partition, SYSTEM_MOUNT_POINTS};
#[cfg(test)]
pub use xfs_sb::test_superblock;
pub use xfs_sb::{parse_xfs_inprogress, xfs_unfinished};

use crate::host::mountinfo::{self, Mount};
use crate::host::runner::{Cmd, CommandError, Runner};
use brickyard_proto::poll::{self, Look, TimedOut};

/// How long a new partition may take to show up in sysfs and /dev.
pub const PARTITION_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// Why the block-device layer says no, by what it means for the caller (the disk tasks map
/// each kind to theirs with `From`). Every message names the device and what was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Data safety: changing the device would destroy or expose data (it carries the system,
    /// is in use, holds signatures, cannot be inspected): done only on the operator's explicit
    /// word, or never.
    #[error("{0}")]
    Unsafe(String),
    /// The device is not what a disk task works on (a partition, an LVM volume, a disk whose
    /// serial two disks share) and no task will change that.
    #[error("{0}")]
    Conflict(String),
    /// The reference names no block device on this host (no such path, no disk with that
    /// Cinder volume's serial).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl From<TimedOut> for Error {
    fn from(timed_out: TimedOut) -> Self {
        Error::Timeout(timed_out.to_string())
    }
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Where the host's files are: `/` on a real host; a scratch directory or a fixture tree in
/// unit tests, so sysfs, /proc, /dev and /etc/fstab can be fakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl HostPaths {
    pub fn system() -> Self {
        Self { root: PathBuf::from("/") }
    }

    #[cfg(test)]
    pub fn under(root: &std::path::Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The host file at absolute path `abs`.
    pub fn host(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// `/sys/class/block/NAME`.
    pub fn sys_block(&self, name: &str) -> PathBuf {
        self.host("/sys/class/block").join(name)
    }

    /// The kernel name of the device node `path` leads to (`/dev/disk/by-id/virtio-x` →
    /// `vdb`, `/dev/mapper/vg-lv` → `dm-0`), when it resolves to a node directly under /dev.
    pub fn device_name(&self, path: &str) -> Option<String> {
        let real = std::fs::canonicalize(self.host(path)).ok()?;
        let dev = std::fs::canonicalize(self.host("/dev")).ok()?;
        let name = real.strip_prefix(dev).ok()?.to_str()?;
        (!name.is_empty() && !name.contains('/')).then(|| name.to_owned())
    }

    /// This mount namespace's mounts.
    pub fn mounts(&self) -> Result<Vec<Mount>, Error> {
        let path = self.host("/proc/self/mountinfo");
        let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
        Ok(mountinfo::parse(&text))
    }

    /// The devices in use as swap (/proc/swaps; none when it cannot be read).
    pub fn swaps(&self) -> Vec<String> {
        std::fs::read_to_string(self.host("/proc/swaps")).map(|t| mountinfo::parse_swaps(&t)).unwrap_or_default()
    }

    pub fn fstab(&self) -> PathBuf {
        self.host("/etc/fstab")
    }
}

/// Every block device of the host as lsblk would list it, with every mount point of this
/// mount namespace and the signatures `blkid -p` finds (best effort: a device blkid may not
/// read, e.g. a hypervisor's disk, stays without; a suspended device-mapper device is not
/// read at all, as lsblk does not, since the read would block until it is resumed).
pub async fn list(runner: &dyn Runner, paths: &HostPaths) -> Result<Vec<BlockDevice>, Error> {
    let mut devices = sysfs::scan(paths)?;
    let mut probes: HashMap<String, Signature> = HashMap::new();
    for dev in devices.iter().flat_map(BlockDevice::walk) {
        if dev.suspended || probes.contains_key(&dev.kernel_name) {
            continue; // an md or dm device under each of its members: probed once
        }
        let node = format!("/dev/{}", dev.kernel_name);
        match probe(runner, &node).await {
            Ok(sig) => {
                probes.insert(dev.kernel_name.clone(), sig);
            }
            Err(e) => tracing::debug!(device = %node, error = %e, "blkid -p failed"),
        }
    }
    for dev in &mut devices {
        dev.fill_signatures(&probes);
    }
    Ok(devices)
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

/// Held across each exclusive open [`Disk::refuse_hidden_use`] makes (and its close): checks
/// of one disk run at once (a `Plan`'s checks do), and one must not take the other's open
/// for a use hidden from this mount namespace.
static EXCLUSIVE_OPEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Everything we know about one whole disk before changing it.
#[derive(Debug, Clone)]
pub struct Disk {
    /// The task's name for it, as given: `/dev/vdb`, `/dev/disk/by-id/...`, a Cinder volume.
    pub asked: String,
    /// `/dev/NAME`, NAME being the kernel's name.
    pub path: String,
    pub name: String,
    /// The disk's tree (partitions, holders) with all mount points.
    pub device: BlockDevice,
    /// In 512-byte sectors (sysfs).
    pub size: u64,
    /// From sysfs, by partition number.
    pub partitions: Vec<Partition>,
}

impl Disk {
    /// Looks `disk` up: resolves the reference to the kernel's device, reads sysfs and mountinfo.
    pub fn inspect(paths: &HostPaths, disk: &DiskRef) -> Result<Disk, Error> {
        let name = reference::resolve(paths, disk)?;
        let device = sysfs::scan_one(paths, &name)?.ok_or_else(|| {
            Error::NotFound(format!(
                "{disk}: the kernel shows {name} without data (size 0 in /sys/class/block/{name}/size, or a RAM disk)"
            ))
        })?;
        let partitions = sysfs::partitions(&paths.sys_block(&name))
            .map_err(Error::io(format!("reading {}", paths.sys_block(&name).display())))?;
        Ok(Disk {
            asked: disk.to_string(),
            path: format!("/dev/{name}"),
            size: device.size_bytes / 512,
            name,
            device,
            partitions,
        })
    }

    /// [`Disk::inspect`], then the refusals every disk task makes before it plans a change:
    /// not a whole disk, the system disk, in use where we cannot see it.
    pub fn inspect_for_change(paths: &HostPaths, disk: &DiskRef) -> Result<Disk, Error> {
        let disk = Disk::inspect(paths, disk)?;
        disk.require_whole_disk()?;
        disk.refuse_system_disk()?;
        disk.refuse_hidden_use(paths)?;
        Ok(disk)
    }

    /// Before a wipe: the task must name the disk by its identity, a `/dev/disk/by-id/` link
    /// (which leads here) or a Cinder volume (found by its serial), never by a device name such
    /// as `/dev/vdb`, which can lead to another disk after a reboot or a re-attach. The refusal
    /// names the device and the identity found, to put in the spec.
    pub fn require_identity_for_wipe(&self, asked: &DiskRef) -> Result<(), Error> {
        match asked {
            DiskRef::CinderVolume(_) => Ok(()),
            DiskRef::Path(path) if path.as_str().starts_with("/dev/disk/by-id/") => Ok(()),
            DiskRef::Path(path) => {
                let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
                let links = if self.device.by_id.is_empty() { "none".to_owned() } else { self.device.by_id.join(", ") };
                Err(Error::Unsafe(format!(
                    "refusing to wipe {}: {path} names no disk identity, so it may be another disk than the spec \
                     means; expected a /dev/disk/by-id/ link or a Cinder volume, found serial {}, WWN {}, by-id \
                     links {links}",
                    self.label(),
                    or_none(&self.device.serial),
                    or_none(&self.device.wwn),
                )))
            }
        }
    }

    /// The disk for messages: `/dev/vdb`, or `/dev/disk/by-id/virtio-x (/dev/vdb)` when the
    /// task named it by a link or a Cinder volume, so both names show.
    pub fn label(&self) -> String {
        if self.asked == self.path {
            self.path.clone()
        } else {
            format!("{} ({})", self.asked, self.path)
        }
    }

    /// Re-reads the partitions until `done` says they are as expected (the kernel adds them
    /// after parted returns), then waits for their /dev nodes: there is no udev to wait for,
    /// the kernel's devtmpfs creates them.
    pub async fn await_partitions(
        &mut self,
        paths: &HostPaths,
        what: &str,
        done: impl Fn(&[Partition]) -> bool,
    ) -> Result<(), Error> {
        let sys = paths.sys_block(&self.name);
        let done = &done;
        self.partitions = poll::until(format!("{what} in {}", self.label()), PARTITION_TIMEOUT, POLL, || async {
            let partitions = sysfs::partitions(&sys).map_err(Error::io(format!("reading {}", sys.display())))?;
            Ok::<_, Error>(if done(&partitions) {
                Look::Done(partitions)
            } else {
                let names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
                Look::NotYet(format!("the kernel shows partitions [{}]", names.join(", ")))
            })
        })
        .await?;
        for part in &self.partitions {
            wait_for_node(paths, &part.path()).await?;
        }
        Ok(())
    }

    /// The disk's only partition, the one the disk tasks act on. `Ok(None)`: no partition yet.
    pub fn single_partition(&self) -> Result<Option<&Partition>, Error> {
        match self.partitions.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(Error::Unsafe(format!(
                "{} has {} partitions ({}); brickyard uses a disk with exactly one",
                self.label(),
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

    /// Refuses anything that is not a whole disk (a disk, or a loop device: lab and test disks).
    pub fn require_whole_disk(&self) -> Result<(), Error> {
        if self.device.kind.is_whole_disk() {
            Ok(())
        } else {
            Err(Error::Conflict(format!("{} is {}, not a whole disk", self.label(), self.device.kind.describe())))
        }
    }

    /// Refuses the disk that carries / or /boot (or /usr, /var): never touched, even with wipe.
    pub fn refuse_system_disk(&self) -> Result<(), Error> {
        match self.device.system_mount() {
            Some((dev, mp)) => Err(Error::Unsafe(format!(
                "{} carries the system ({dev} is mounted at {mp}); brickyard never changes it, even with wipe",
                self.label()
            ))),
            None => Ok(()),
        }
    }

    /// Refuses the disk when the kernel will not let us open it, or one of its partitions,
    /// exclusively although nothing in this mount namespace uses it: it is mounted or held
    /// somewhere we cannot see (another mount namespace's root, as for a lab host or a
    /// container). Never changed, even with wipe.
    pub fn refuse_hidden_use(&self, paths: &HostPaths) -> Result<(), Error> {
        let devices = std::iter::once((self.name.clone(), self.path.clone(), self.label()))
            .chain(self.partitions.iter().map(|p| (p.name.clone(), p.path(), p.path())));
        for (name, path, label) in devices {
            if self.partition_device(&name).is_some_and(|d| refuse_in_use(d, &label).is_err()) {
                continue; // a use we can see; refuse_in_use names it when a change is needed
            }
            let open = {
                let _one_at_a_time = EXCLUSIVE_OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                std::fs::OpenOptions::new().read(true).custom_flags(libc::O_EXCL).open(paths.host(&path)).map(drop)
            };
            match open {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(Error::Unsafe(format!(
                        "{label} is in use outside this mount namespace (the kernel refuses an exclusive open: \
                         mounted or held elsewhere, e.g. the machine's root); brickyard never changes it, even \
                         with wipe"
                    )))
                }
                Err(e) => {
                    return Err(Error::Unsafe(format!(
                        "{label}: cannot open it exclusively to check it is unused: {e}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The tree of this disk's partition `name` (or of the disk itself).
    pub fn partition_device(&self, name: &str) -> Option<&BlockDevice> {
        find(std::slice::from_ref(&self.device), name)
    }
}

/// Refuses when anything in `dev`'s tree is mounted (swap included) or held by LVM, RAID,
/// dm-crypt...: even wipe does not pull an active device away. `label` leads the message.
pub fn refuse_in_use(dev: &BlockDevice, label: &str) -> Result<(), Error> {
    if let Some((name, mp)) = dev.mounts().first() {
        let at = if *mp == sysfs::SWAP { "in use as swap".to_owned() } else { format!("mounted at {mp}") };
        return Err(Error::Unsafe(format!("{label} is in use: {name} is {at} (never changed, even with wipe)")));
    }
    if let Some(holder) = dev.walk().into_iter().skip(1).find(|d| d.kind != Kind::Part) {
        return Err(Error::Unsafe(format!(
            "{label} is in use: {} ({}) is active on it (never changed, even with wipe)",
            holder.name,
            holder.kind.name()
        )));
    }
    Ok(())
}

/// Waits for `/dev/NAME` to exist. On a devtmpfs /dev the kernel creates it (there is no udev
/// to wait for). In a container /dev is a plain tmpfs (systemd-nspawn, LXC) and no udev runs
/// there either: nothing ever creates the node, so the agent makes it itself as udev would,
/// from the device number sysfs shows (`/sys/class/block/NAME/dev`), mode 0660.
pub async fn wait_for_node(paths: &HostPaths, dev_path: &str) -> Result<(), Error> {
    let node = paths.host(dev_path);
    let kernel_makes_nodes = dev_is_devtmpfs(&paths.mounts()?);
    let name = dev_path.strip_prefix("/dev/").unwrap_or(dev_path);
    let sys_dev = paths.sys_block(name).join("dev");
    poll::until(format!("device node {dev_path} to appear"), PARTITION_TIMEOUT, POLL, || async {
        if node.exists() {
            return Ok::<_, Error>(Look::Done(()));
        }
        if !kernel_makes_nodes {
            if let Ok(number) = std::fs::read_to_string(&sys_dev) {
                make_block_node(&node, number.trim())?;
                return Ok(Look::Done(()));
            }
        }
        Ok(Look::NotYet(String::new()))
    })
    .await
}

/// Whether the /dev the agent sees is the kernel's devtmpfs (the last mount on /dev counts).
fn dev_is_devtmpfs(mounts: &[Mount]) -> bool {
    mounts.iter().rev().find(|m| m.mount_point == "/dev").is_some_and(|m| m.fstype == "devtmpfs")
}

/// `mknod NODE b MAJOR MINOR` (mode 0660) from sysfs' "MAJOR:MINOR"; an existing node is fine.
fn make_block_node(node: &std::path::Path, number: &str) -> Result<(), Error> {
    let context = || format!("{}: /dev is no devtmpfs, creating the node ({number})", node.display());
    let (major, minor) = number
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| Error::Io { context: context(), source: std::io::ErrorKind::InvalidData.into() })?;
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o660);
    match nix::sys::stat::mknod(node, nix::sys::stat::SFlag::S_IFBLK, mode, nix::sys::stat::makedev(major, minor)) {
        // mknod applies the umask: set the mode udev would give it.
        Ok(()) => std::fs::set_permissions(node, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(|source| Error::Io { context: context(), source }),
        Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(errno) => Err(Error::Io { context: context(), source: errno.into() }),
    }
}

/// `wipefs -a PATH`: erases every signature blkid could find (only run when the task says wipe).
pub fn wipefs(runner: &dyn Runner, path: &str) -> Result<Cmd, Error> {
    Ok(runner.cmd("wipefs")?.args(["-a", path]))
}

#[cfg(test)]
pub mod testhost {
    //! A fake host for unit tests: sysfs, /dev, /proc and /etc under a temporary directory,
    //! empty or copied from a fixture tree (`src/fixtures/sysfs/CASE`).

    use std::path::Path;

    use super::*;

    /// A fixture tree, read in place.
    pub fn fixture(case: &str) -> HostPaths {
        HostPaths::under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fixtures/sysfs").join(case))
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

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
            } else if kind.is_dir() {
                copy_tree(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }

    impl FakeHost {
        /// A writable copy of fixture tree `case`, with an /etc to write fstab into.
        pub fn from_fixture(case: &str) -> Self {
            let host = FakeHost::default();
            copy_tree(&fixture(case).host("/"), host.dir.path());
            host
        }

        /// A whole disk of `sectors` 512-byte sectors.
        pub fn disk(&self, name: &str, sectors: u64) -> &Self {
            let sys = self.paths.sys_block(name);
            std::fs::create_dir_all(&sys).unwrap();
            std::fs::write(sys.join("size"), format!("{sectors}\n")).unwrap();
            std::fs::write(sys.join("dev"), "7:0\n").unwrap();
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
    use std::sync::Mutex;

    use async_trait::async_trait;
    use brickyard_proto::types::DevicePath;

    use super::testhost::{fixture, FakeHost};
    use super::*;
    use crate::host::runner::Output;

    /// Answers `blkid -p -o export /dev/NAME` from the fixture's `blkid/NAME` (exit 0) or
    /// `blkid/NAME.err` (exit 2, that stderr); nothing found (exit 2) otherwise.
    struct FixtureBlkid {
        paths: HostPaths,
        probed: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Runner for FixtureBlkid {
        fn find(&self, name: &str) -> Result<PathBuf, CommandError> {
            assert_eq!(name, "blkid", "listing block devices runs blkid only");
            Ok(PathBuf::from("/usr/sbin/blkid"))
        }

        async fn output(&self, cmd: &Cmd) -> Result<Output, CommandError> {
            let args: Vec<String> = cmd.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            assert!(cmd.program.ends_with("blkid") && args[..3] == ["-p", "-o", "export"], "{}", cmd.display());
            let name = args[3].strip_prefix("/dev/").unwrap().to_owned();
            self.probed.lock().unwrap().push(name.clone());
            let read = |suffix: &str| std::fs::read_to_string(self.paths.host(&format!("/blkid/{name}{suffix}"))).ok();
            Ok(match (read(""), read(".err")) {
                (Some(stdout), _) => Output { code: Some(0), stdout, stderr: String::new() },
                (None, Some(stderr)) => Output { code: Some(2), stdout: String::new(), stderr },
                (None, None) => Output { code: Some(2), ..Default::default() },
            })
        }
    }

    fn scan(case: &str) -> Vec<BlockDevice> {
        sysfs::scan(&fixture(case)).unwrap()
    }

    fn names(devices: &[BlockDevice]) -> Vec<&str> {
        devices.iter().map(|d| d.name.as_str()).collect()
    }

    fn path(p: &str) -> DiskRef {
        DiskRef::Path(DevicePath::new(p).unwrap())
    }

    fn cinder(id: &str) -> DiskRef {
        DiskRef::CinderVolume(CinderVolume::new(id).unwrap())
    }

    /// Captured on this machine: a loop device with a GPT partition holding mounted xfs.
    #[test]
    fn loop_device_captured_here() {
        let devs = scan("loop-gpt-xfs");
        assert_eq!(names(&devs), ["loop0"]);
        let loop0 = &devs[0];
        assert_eq!(
            (&loop0.kind, loop0.size_bytes, loop0.path.as_str(), loop0.dev.as_str()),
            (&Kind::Loop, 536870912, "/dev/loop0", "7:0")
        );
        assert!(loop0.kind.is_whole_disk() && !loop0.read_only && !loop0.removable);
        assert_eq!((loop0.serial.as_ref(), loop0.wwn.as_ref()), (None, None));
        let part = &loop0.children[0];
        assert_eq!((part.name.as_str(), &part.kind, part.size_bytes), ("loop0p1", &Kind::Part, 1044480 * 512));
        assert_eq!(part.mount_points, ["/tmp/sysfscap/mnt"]);
        assert!(!loop0.carries_root() && loop0.system_mount().is_none());
        let parts = sysfs::partitions(&fixture("loop-gpt-xfs").sys_block("loop0")).unwrap();
        assert_eq!(
            parts,
            [Partition { name: "loop0p1".into(), number: 1, start: 2048, size: 1044480, dev: "259:0".into() }]
        );
    }

    /// Captured on this machine: the VM's virtio disk (serial without a newline), the root
    /// filesystem, mounted twice; blkid may not read it.
    /// In a container (/dev a tmpfs, no udev) the agent makes a new partition's node from sysfs;
    /// on devtmpfs it leaves that to the kernel. (mknod needs root, as the agent has.)
    #[tokio::test]
    async fn partition_node_is_made_from_sysfs_when_dev_is_no_devtmpfs() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let host = FakeHost::default();
        host.disk("loop0", 2048).partition("loop0", 1, 2048, 1024);
        let node = host.paths.host("/dev/loop0p1");
        std::fs::remove_file(&node).unwrap();
        host.mountinfo(
            "22 1 254:0 / / rw - ext4 /dev/vda rw\n23 22 0:5 / /dev rw - devtmpfs udev rw\n\
                        24 23 0:40 / /dev rw - tmpfs tmpfs rw\n",
        );
        wait_for_node(&host.paths, "/dev/loop0p1").await.unwrap();
        let meta = std::fs::metadata(&node).unwrap();
        assert!(meta.file_type().is_block_device(), "{meta:?}");
        assert_eq!((meta.rdev(), meta.mode() & 0o777), (nix::sys::stat::makedev(259, 0), 0o660));
        // Already there: nothing to do.
        wait_for_node(&host.paths, "/dev/loop0p1").await.unwrap();

        let devtmpfs = mountinfo::parse("23 22 0:5 / /dev rw - devtmpfs udev rw\n");
        assert!(dev_is_devtmpfs(&devtmpfs));
        let nspawn =
            mountinfo::parse("23 22 0:5 / /dev rw - devtmpfs udev rw\n24 23 0:40 / /dev rw - tmpfs tmpfs rw\n");
        assert!(!dev_is_devtmpfs(&nspawn), "the last mount on /dev is what the agent sees");
    }

    #[tokio::test]
    async fn virtio_root_disk_captured_here() {
        let devs = scan("virtio-root");
        let vda = &devs[0];
        assert_eq!((vda.name.as_str(), &vda.kind, vda.serial.as_deref()), ("vda", &Kind::Disk, Some("overlayblk")));
        assert_eq!(vda.mount_points, ["/", "/run/netns"]);
        assert!(vda.carries_root() && !vda.carries_boot());
        assert_eq!(vda.system_mount(), Some(("vda", "/")));
        let runner = FixtureBlkid { paths: fixture("virtio-root"), probed: Mutex::default() };
        let listed = list(&runner, &fixture("virtio-root")).await.unwrap();
        assert_eq!(listed[0].signature, Signature::default(), "an unreadable disk is listed without signatures");
    }

    #[test]
    fn plain_scsi_disk_rom_and_what_lsblk_leaves_out() {
        let devs = scan("plain-disk");
        assert_eq!(names(&devs), ["sda", "sdb", "sr0"], "no RAM disk, no empty loop device");
        let sdb = &devs[1];
        assert_eq!(
            (sdb.serial.as_deref(), sdb.wwn.as_deref()),
            (Some("6000c29d8e5f4a1b"), Some("naa.6000c29d8e5f4a1b2c3d4e5f6a7b8c9d"))
        );
        assert!(sdb.children.is_empty() && sdb.mount_points.is_empty() && sdb.system_mount().is_none());
        assert_eq!(devs[0].system_mount(), Some(("sda1", "/boot")));
        assert!(devs[0].carries_root() && devs[0].carries_boot());
        assert_eq!((&devs[2].kind, devs[2].removable), (&Kind::Rom, true));
        assert!(!devs[2].kind.is_whole_disk());
    }

    #[tokio::test]
    async fn nvme_with_lvm_root_and_swap() {
        let devs = scan("nvme-lvm-root");
        assert_eq!(names(&devs), ["nvme0n1", "nvme1n1"], "LVM volumes show under their physical volume only");
        let sys = &devs[0];
        assert!(sys.carries_root() && sys.carries_boot());
        assert_eq!(names(&sys.children), ["nvme0n1p1", "nvme0n1p2", "nvme0n1p3"]);
        let root = find(&devs, "dm-0").unwrap();
        assert_eq!(
            (root.name.as_str(), root.path.as_str(), root.kind.name()),
            ("rhel-root", "/dev/mapper/rhel-root", "lvm")
        );
        assert_eq!(root.mount_points, ["/"]);
        assert!(sys.mounts().contains(&("rhel-swap", "[SWAP]")), "swap from /proc/swaps: {:?}", sys.mounts());
        let blank = &devs[1];
        assert_eq!(
            (blank.serial.as_deref(), blank.wwn.as_deref()),
            (Some("S5GXNF0R654321"), Some("eui.002538b911b2c3d4"))
        );
        assert!(blank.children.is_empty() && blank.mount_points.is_empty());

        let runner = FixtureBlkid { paths: fixture("nvme-lvm-root"), probed: Mutex::default() };
        let listed = list(&runner, &fixture("nvme-lvm-root")).await.unwrap();
        let sig = |name: &str| find(&listed, name).unwrap().signature.clone();
        assert_eq!(sig("nvme0n1").pttype.as_deref(), Some("gpt"));
        assert_eq!(sig("nvme0n1p3").fstype.as_deref(), Some("LVM2_member"));
        assert_eq!(
            (sig("dm-0").fstype, sig("dm-0").uuid.as_deref()),
            (Some("xfs".into()), Some("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"))
        );
        assert_eq!(sig("dm-1").fstype.as_deref(), Some("swap"));
        assert!(sig("nvme1n1").is_empty());
        let probed = runner.probed.lock().unwrap().clone();
        assert_eq!(
            probed,
            ["nvme0n1", "nvme0n1p1", "nvme0n1p2", "nvme0n1p3", "dm-0", "dm-1", "nvme1n1"],
            "kernel names, each once"
        );
    }

    #[tokio::test]
    async fn suspended_mappings_are_not_read() {
        let host = FakeHost::from_fixture("nvme-lvm-root");
        std::fs::write(host.paths.sys_block("dm-1").join("dm/suspended"), "1\n").unwrap();
        let runner = FixtureBlkid { paths: host.paths.clone(), probed: Mutex::default() };
        let listed = list(&runner, &host.paths).await.unwrap();
        assert!(find(&listed, "dm-1").unwrap().suspended);
        assert!(!runner.probed.lock().unwrap().contains(&"dm-1".to_owned()), "a suspended mapping blocks readers");
        assert!(find(&listed, "dm-0").unwrap().signature.fstype.is_some());
    }

    #[test]
    fn lvm_member_is_held() {
        let devs = scan("lvm-member");
        let sdb = &devs[0];
        assert_eq!(sdb.serial.as_deref(), Some("ZC1A2B3C"), "SCSI serial from VPD page 0x80");
        assert_eq!((sdb.children[0].name.as_str(), sdb.children[0].kind.name()), ("data-brick", "lvm"));
        let err = refuse_in_use(sdb, "/dev/sdb").unwrap_err();
        assert!(matches!(err, Error::Unsafe(_)));
        assert_eq!(
            err.to_string(),
            "/dev/sdb is in use: data-brick (lvm) is active on it (never changed, even with wipe)"
        );
    }

    #[test]
    fn md_members_share_their_array() {
        let devs = scan("md-member");
        assert_eq!(names(&devs), ["sdc", "sdd"]);
        for disk in &devs {
            let md0 = &disk.children[0].children[0];
            assert_eq!((md0.name.as_str(), md0.kind.name(), md0.path.as_str()), ("md0", "raid1", "/dev/md0"));
            assert_eq!(disk.mounts(), [("md0", "/srv/bricks")]);
        }
        let err = refuse_in_use(&devs[1], "/dev/sdd").unwrap_err().to_string();
        assert_eq!(err, "/dev/sdd is in use: md0 is mounted at /srv/bricks (never changed, even with wipe)");
    }

    #[test]
    fn dm_crypt_mapping_on_a_partition() {
        let devs = scan("dm-crypt");
        let crypt = find(&devs, "dm-0").unwrap();
        assert_eq!(
            (crypt.name.as_str(), crypt.path.as_str(), crypt.kind.name()),
            ("cryptbrick", "/dev/mapper/cryptbrick", "crypt")
        );
        assert_eq!(crypt.kind.describe(), "a dm-crypt mapping");
        assert_eq!(crypt.mount_points, ["/data"]);
        let err = refuse_in_use(&devs[0], "/dev/vdb").unwrap_err().to_string();
        assert_eq!(err, "/dev/vdb is in use: cryptbrick is mounted at /data (never changed, even with wipe)");
    }

    #[test]
    fn virtio_serials_and_by_id_links() {
        let devs = scan("virtio-cinder");
        assert_eq!(names(&devs), ["vda", "vdb", "vdc"]);
        let vdb = &devs[1];
        assert_eq!(vdb.serial.as_deref(), Some("ec4eea2a-f0d9-4614-b"));
        assert_eq!(vdb.by_id, ["/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b"]);
        assert_eq!(vdb.children[0].by_id, ["/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b-part1"]);
        assert_eq!(vdb.mounts(), [("vdb1", "/vdisk")]);
        assert!(devs[0].carries_root() && !vdb.carries_root());
    }

    /// btrfs shows an anonymous major:minor in mountinfo: the source names the device.
    #[test]
    fn mounts_found_by_source_too() {
        let host = FakeHost::default();
        host.disk("vda", 1 << 21).partition("vda", 1, 2048, (1 << 21) - 4096).mountinfo(
            "22 1 0:33 /root / rw - btrfs /dev/vda1 rw\n23 22 0:33 /home /home rw - btrfs /dev/vda1 rw\n\
             24 22 0:40 / /tmp rw - tmpfs tmpfs rw\n",
        );
        let devs = sysfs::scan(&host.paths).unwrap();
        assert_eq!(devs[0].children[0].mount_points, ["/", "/home"]);
        assert!(devs[0].carries_root());
    }

    #[test]
    fn vpd_unit_serial_page() {
        assert_eq!(sysfs::parse_vpd_serial(b"\x00\x80\x00\x0a  ZC1A2B3C"), Some("ZC1A2B3C".into()));
        assert_eq!(sysfs::parse_vpd_serial(b"\x00\x80\x00\x04"), None, "length past the end: what is there");
        assert_eq!(sysfs::parse_vpd_serial(b"\x00\x83\x00\x04abcd"), None, "another page");
        assert_eq!(sysfs::parse_vpd_serial(b""), None);
    }

    #[test]
    fn paths_and_links_resolve_to_the_kernel_device() {
        let paths = fixture("virtio-cinder");
        let resolve = |p: &str| reference::resolve(&paths, &path(p));
        assert_eq!(resolve("/dev/vdb").unwrap(), "vdb");
        assert_eq!(resolve("/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b").unwrap(), "vdb");
        assert_eq!(resolve("/dev/disk/by-path/pci-0000:00:06.0").unwrap(), "vdb");
        assert_eq!(reference::resolve(&fixture("nvme-lvm-root"), &path("/dev/mapper/rhel-root")).unwrap(), "dm-0");
        let err = resolve("/dev/disk/by-id/virtio-nothing").unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert!(err.to_string().starts_with("device /dev/disk/by-id/virtio-nothing: No such file"), "{err}");
    }

    #[test]
    fn cinder_volumes_are_found_by_virtio_serial() {
        let paths = fixture("virtio-cinder");
        assert_eq!(reference::resolve(&paths, &cinder("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4")).unwrap(), "vdb");
        assert_eq!(reference::resolve(&paths, &cinder("0B5D3A51-77C2-4B8E-9F31-6A0D2C4E8B17")).unwrap(), "vdc");
        let err = reference::resolve(&paths, &cinder("11111111-2222-4333-8444-555555555555")).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert_eq!(
            err.to_string(),
            "Cinder volume 11111111-2222-4333-8444-555555555555 is not attached here: no disk has serial \
             11111111-2222-4333-8 (/sys/block/*/serial) and there is no /dev/disk/by-id/virtio-11111111-2222-4333-8; \
             disks here: vda (no serial), vdb (serial ec4eea2a-f0d9-4614-b), vdc (serial 0b5d3a51-77c2-4b8e-9)"
        );
    }

    #[test]
    fn cinder_volume_by_udev_link_when_sysfs_has_no_serial() {
        let host = FakeHost::from_fixture("virtio-cinder");
        std::fs::remove_file(host.paths.sys_block("vdc").join("serial")).unwrap();
        let volume = cinder("0b5d3a51-77c2-4b8e-9f31-6a0d2c4e8b17");
        assert_eq!(reference::resolve(&host.paths, &volume).unwrap(), "vdc");
        // Two disks with one serial (a cloned volume attached twice): never a guess.
        std::fs::write(host.paths.sys_block("vdc").join("serial"), "ec4eea2a-f0d9-4614-b").unwrap();
        let err = reference::resolve(&host.paths, &cinder("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4")).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)));
        assert!(err.to_string().contains("2 disks have serial ec4eea2a-f0d9-4614-b (vdb, vdc)"), "{err}");
    }

    #[test]
    fn inspects_a_fake_host() {
        let host = FakeHost::default();
        host.disk("loop0", 1048576)
            .partition("loop0", 1, 2048, 1044480)
            .mountinfo("22 1 254:0 / / rw - ext4 /dev/vda rw\n119 22 259:0 / /vdisk rw - xfs /dev/loop0p1 rw\n");
        let disk = Disk::inspect(&host.paths, &path("/dev/loop0")).unwrap();
        assert_eq!((disk.path.as_str(), disk.size, disk.label()), ("/dev/loop0", 1048576, "/dev/loop0".to_owned()));
        assert_eq!(
            disk.partitions,
            [Partition { name: "loop0p1".into(), number: 1, start: 2048, size: 1044480, dev: "259:0".into() }]
        );
        assert!(disk.has_one_spanning_partition());
        disk.require_whole_disk().unwrap();
        disk.refuse_system_disk().unwrap();
        let err = refuse_in_use(&disk.device, &disk.label()).unwrap_err().to_string();
        assert_eq!(err, "/dev/loop0 is in use: loop0p1 is mounted at /vdisk (never changed, even with wipe)");
        let err = Disk::inspect(&host.paths, &path("/dev/loop1")).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)) && err.to_string().starts_with("device /dev/loop1: "), "{err}");
    }

    #[test]
    fn one_device_is_scanned_as_the_whole_scan_finds_it() {
        let cases = [
            "dm-crypt",
            "loop-gpt-xfs",
            "lvm-member",
            "md-member",
            "nvme-lvm-root",
            "plain-disk",
            "virtio-cinder",
            "virtio-root",
        ];
        for case in cases {
            let paths = fixture(case);
            let devices = sysfs::scan(&paths).unwrap();
            for dev in devices.iter().flat_map(BlockDevice::walk) {
                let one = sysfs::scan_one(&paths, &dev.kernel_name).unwrap();
                assert_eq!(one.as_ref(), Some(dev), "{case}: {}", dev.kernel_name);
            }
            assert_eq!(sysfs::scan_one(&paths, "nosuchdev").unwrap(), None, "{case}");
        }
        let host = FakeHost::default();
        host.disk("loop0", 1048576).disk("loop1", 0);
        assert!(sysfs::scan_one(&host.paths, "loop0").unwrap().is_some());
        assert_eq!(sysfs::scan_one(&host.paths, "loop1").unwrap(), None, "a loop device without a file has no data");
    }

    #[test]
    fn refusals_name_device_and_finding() {
        let nvme = fixture("nvme-lvm-root");
        let sys = Disk::inspect(&nvme, &path("/dev/nvme0n1")).unwrap().refuse_system_disk().unwrap_err();
        assert!(matches!(sys, Error::Unsafe(_)));
        assert_eq!(
            sys.to_string(),
            "/dev/nvme0n1 carries the system (nvme0n1p1 is mounted at /boot/efi); brickyard never changes it, even \
             with wipe"
        );
        assert!(Disk::inspect_for_change(&nvme, &path("/dev/nvme1n1")).is_ok());
        let part = Disk::inspect(&nvme, &path("/dev/nvme0n1p2")).unwrap().require_whole_disk().unwrap_err();
        assert!(matches!(part, Error::Conflict(_)));
        assert_eq!(part.to_string(), "/dev/nvme0n1p2 is a partition, not a whole disk");
        let swap = find(&sysfs::scan(&nvme).unwrap(), "dm-1").cloned().unwrap();
        assert_eq!(
            refuse_in_use(&swap, "/dev/dm-1").unwrap_err().to_string(),
            "/dev/dm-1 is in use: rhel-swap is in use as swap (never changed, even with wipe)"
        );
        let md = Disk::inspect(&fixture("md-member"), &path("/dev/md0")).unwrap().require_whole_disk().unwrap_err();
        assert_eq!(md.to_string(), "/dev/md0 is an md RAID array (raid1), not a whole disk");
        let cinder_disk =
            Disk::inspect(&fixture("virtio-cinder"), &cinder("ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4")).unwrap();
        assert_eq!(cinder_disk.label(), "Cinder volume ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4 (/dev/vdb)");
        let many = Disk { partitions: vec![cinder_disk.partitions[0].clone(); 2], ..cinder_disk };
        assert!(many
            .single_partition()
            .unwrap_err()
            .to_string()
            .ends_with("has 2 partitions (vdb1, vdb1); brickyard uses a disk with exactly one"));
    }

    #[test]
    fn partition_names() {
        assert_eq!(first_partition_name("vdb"), "vdb1");
        assert_eq!(first_partition_name("nvme0n1"), "nvme0n1p1");
        assert_eq!(first_partition_name("loop0"), "loop0p1");
    }
}
