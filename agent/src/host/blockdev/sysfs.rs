//! Block devices as the kernel shows them in /sys/class/block, arranged as lsblk shows them:
//! the devices that sit on no other device at the top, each with its partitions (the
//! subdirectories holding a `partition` file) and then its holders (LVM, dm-crypt, md, ...)
//! as children. The kind follows lsblk's TYPE rules (util-linux `lsblk.c`, `get_type`): a
//! `partition` file → part; `dm-*` → dm/uuid's prefix (LVM, CRYPT, mpath, ...) or dm; `loop*`;
//! `md*` → md/level; SCSI `device/type` 5 → rom; else disk. Sizes are in 512-byte sectors
//! (`size`), whatever the logical sector size. Mount points come from /proc/self/mountinfo (by
//! major:minor, or by a source naming the device: btrfs shows an anonymous major:minor) and
//! swap from /proc/swaps. Reads files only, all under a [`HostPaths`] root; signatures are
//! blkid's (`super::blkid`).

use std::collections::HashMap;
use std::path::Path;

use super::{Error, HostPaths, Signature};

/// Mount points that make a device a system disk: never partitioned or formatted.
pub const SYSTEM_MOUNT_POINTS: &[&str] = &["/", "/boot", "/boot/efi", "/usr", "/var"];

/// The mount point lsblk shows for a device in use as swap.
pub const SWAP: &str = "[SWAP]";

/// What a block device is, by lsblk's rules for its TYPE column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Disk,
    Part,
    Loop,
    Rom,
    /// Device-mapper, with its owner from dm/uuid's prefix, lower-cased: `lvm`, `crypt`,
    /// `mpath`, `part` (kpartx), ...; `dm` when the mapping has no uuid.
    Dm(String),
    /// md RAID, with md/level: `raid1`, `raid5`, ...; `md` when the level is not known.
    Md(String),
}

impl Kind {
    /// lsblk's TYPE spelling: disk, part, loop, rom, lvm, crypt, raid1, ...
    pub fn name(&self) -> &str {
        match self {
            Kind::Disk => "disk",
            Kind::Part => "part",
            Kind::Loop => "loop",
            Kind::Rom => "rom",
            Kind::Dm(owner) => owner,
            Kind::Md(level) => level,
        }
    }

    /// Whole-disk semantics: disks, and loop devices (lab and test disks are loop devices).
    pub fn is_whole_disk(&self) -> bool {
        matches!(self, Kind::Disk | Kind::Loop)
    }

    /// "a partition", "an LVM logical volume", ... for messages.
    pub fn describe(&self) -> String {
        match self {
            Kind::Disk => "a disk".into(),
            Kind::Part => "a partition".into(),
            Kind::Loop => "a loop device".into(),
            Kind::Rom => "a CD/DVD drive".into(),
            Kind::Dm(owner) if owner == "lvm" => "an LVM logical volume".into(),
            Kind::Dm(owner) if owner == "crypt" => "a dm-crypt mapping".into(),
            Kind::Dm(owner) if owner == "mpath" => "a multipath device".into(),
            Kind::Dm(owner) => format!("a device-mapper device ({owner})"),
            Kind::Md(level) => format!("an md RAID array ({level})"),
        }
    }
}

/// One block device and the devices on it (partitions, then holders).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    /// lsblk's NAME: the kernel's name, or the mapping's name for device-mapper (`rhel-root`).
    pub name: String,
    /// The kernel's name: `sda1`, `dm-0`, `md0`.
    pub kernel_name: String,
    /// `/dev/NAME`; `/dev/mapper/NAME` for device-mapper.
    pub path: String,
    /// "major:minor".
    pub dev: String,
    pub size_bytes: u64,
    pub kind: Kind,
    pub read_only: bool,
    pub removable: bool,
    /// A device-mapper device whose I/O is suspended (`dm/suspended`): reading it blocks.
    pub suspended: bool,
    /// virtio's `serial`, NVMe's `device/serial`, SCSI's unit serial number (VPD page 0x80).
    pub serial: Option<String>,
    /// The kernel's world-wide id (`wwid` for NVMe, `device/wwid` for SCSI): `naa.…`, `eui.…`.
    pub wwn: Option<String>,
    /// The /dev/disk/by-id links to this device (udev makes them; none on a host without udev).
    pub by_id: Vec<String>,
    /// What `blkid -p` found; filled in for facts only (the disk tasks probe for themselves).
    pub signature: Signature,
    /// Every mount point of this mount namespace, `[SWAP]` for swap.
    pub mount_points: Vec<String>,
    pub children: Vec<BlockDevice>,
}

impl BlockDevice {
    /// This device and every device below it, depth first.
    pub fn walk(&self) -> Vec<&BlockDevice> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.walk());
        }
        out
    }

    /// Every `(device name, mount point)` in this tree, `[SWAP]` included.
    pub fn mounts(&self) -> Vec<(&str, &str)> {
        self.walk()
            .into_iter()
            .flat_map(|d| d.mount_points.iter().map(move |m| (d.name.as_str(), m.as_str())))
            .collect()
    }

    /// The first system mount point (`/`, `/boot`, ...) in this tree, as `(device, mount point)`.
    pub fn system_mount(&self) -> Option<(&str, &str)> {
        self.mounts().into_iter().find(|(_, m)| SYSTEM_MOUNT_POINTS.contains(m))
    }

    /// True when this device or a device on it is mounted at `/`.
    pub fn carries_root(&self) -> bool {
        self.mounts().iter().any(|(_, m)| *m == "/")
    }

    /// True when this device or a device on it is mounted at `/boot` or `/boot/efi`.
    pub fn carries_boot(&self) -> bool {
        self.mounts().iter().any(|(_, m)| *m == "/boot" || *m == "/boot/efi")
    }

    /// Sets the signatures of this tree from `probes`, keyed by kernel name.
    pub(super) fn fill_signatures(&mut self, probes: &HashMap<String, Signature>) {
        if let Some(sig) = probes.get(&self.kernel_name) {
            self.signature = sig.clone();
        }
        for child in &mut self.children {
            child.fill_signatures(probes);
        }
    }
}

/// Finds the device whose kernel name is `name` (`vdb`, `dm-0`) anywhere in `devices`.
pub fn find<'a>(devices: &'a [BlockDevice], name: &str) -> Option<&'a BlockDevice> {
    devices.iter().flat_map(BlockDevice::walk).find(|d| d.kernel_name == name)
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

/// The partitions of the device whose sysfs directory is `dir`, by number.
pub fn partitions(dir: &Path) -> std::io::Result<Vec<Partition>> {
    let mut parts: Vec<Partition> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let dir = e.path();
            Some(Partition {
                number: u32::try_from(read_number(&dir.join("partition"))?).ok()?,
                start: read_number(&dir.join("start"))?,
                size: read_number(&dir.join("size"))?,
                dev: read_text(&dir.join("dev"))?,
                name: e.file_name().to_string_lossy().into_owned(),
            })
        })
        .collect();
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// The whole devices (no `partition` file) in /sys/class/block, by name, with their sysfs
/// directories.
pub fn whole_devices(paths: &HostPaths) -> Result<Vec<(String, std::path::PathBuf)>, Error> {
    let class = paths.host("/sys/class/block");
    let entries = std::fs::read_dir(&class).map_err(Error::io(format!("reading {}", class.display())))?;
    let mut out: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(_, dir)| !dir.join("partition").exists())
        .collect();
    out.sort();
    Ok(out)
}

/// The disk's serial number: virtio-blk's `serial`, `device/serial` (NVMe controllers and
/// others), or the unit serial number page a SCSI disk reports (`device/vpd_pg80`).
pub fn serial(dir: &Path) -> Option<String> {
    read_text(&dir.join("serial"))
        .or_else(|| read_text(&dir.join("device/serial")))
        .or_else(|| parse_vpd_serial(&std::fs::read(dir.join("device/vpd_pg80")).ok()?))
}

/// The serial number in a SCSI Unit Serial Number VPD page (0x80): a 4-byte header (device
/// type, page code, big-endian length) and then the serial in ASCII, space-padded.
pub fn parse_vpd_serial(page: &[u8]) -> Option<String> {
    let [_, 0x80, hi, lo, rest @ ..] = page else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let serial = String::from_utf8_lossy(rest.get(..len).unwrap_or(rest)).trim().to_owned();
    (!serial.is_empty()).then_some(serial)
}

/// Every block device of the host, as lsblk lists them by default: the devices that sit on
/// no other device at the top, except empty ones (size 0: a loop device with nothing
/// attached, a drive without a medium) and RAM disks (major 1).
pub fn scan(paths: &HostPaths) -> Result<Vec<BlockDevice>, Error> {
    let scanner = Scanner::new(paths)?;
    let mut top = Vec::new();
    for (name, dir) in whole_devices(paths)? {
        let stacked = std::fs::read_dir(dir.join("slaves")).is_ok_and(|mut d| d.next().is_some());
        if !stacked && !without_data(&dir) {
            top.push(scanner.device(&dir, &name, &mut Vec::new()));
        }
    }
    Ok(top)
}

/// The device whose kernel name is `name`, as [`find`] finds it in [`scan`]'s list, without
/// walking the host's other devices (a task's one disk on a host with a hundred). None when
/// there is no such device or it is a whole device the scan leaves out (no data).
pub fn scan_one(paths: &HostPaths, name: &str) -> Result<Option<BlockDevice>, Error> {
    let dir = paths.sys_block(name);
    if !dir.exists() || (!dir.join("partition").exists() && without_data(&dir)) {
        return Ok(None);
    }
    Ok(Some(Scanner::new(paths)?.device(&dir, name, &mut Vec::new())))
}

/// A whole device the kernel shows without data: size 0 (an unused loop or nbd device) or a
/// RAM disk (major 1).
fn without_data(dir: &Path) -> bool {
    let empty = read_number(&dir.join("size")).unwrap_or(0) == 0;
    let ram = read_text(&dir.join("dev")).is_some_and(|d| d.starts_with("1:"));
    empty || ram
}

/// What the scan looks devices up in besides sysfs.
struct Scanner<'a> {
    paths: &'a HostPaths,
    /// Mount points by "major:minor".
    mounts_by_dev: HashMap<String, Vec<String>>,
    /// Mount points (and `[SWAP]`) by the source's device: its kernel name when it resolves
    /// under /dev, and its path as written.
    mounts_by_source: HashMap<String, Vec<String>>,
    /// /dev/disk/by-id links by the kernel name they lead to.
    by_id: HashMap<String, Vec<String>>,
}

impl<'a> Scanner<'a> {
    fn new(paths: &'a HostPaths) -> Result<Self, Error> {
        let mut scanner =
            Scanner { paths, mounts_by_dev: HashMap::new(), mounts_by_source: HashMap::new(), by_id: HashMap::new() };
        for m in paths.mounts()? {
            scanner.mounts_by_dev.entry(m.dev.clone()).or_default().push(m.mount_point.clone());
            scanner.add_source(&m.source, &m.mount_point);
        }
        for swap in paths.swaps() {
            scanner.add_source(&swap, SWAP);
        }
        if let Ok(links) = std::fs::read_dir(paths.host("/dev/disk/by-id")) {
            for link in links.filter_map(Result::ok) {
                let path = format!("/dev/disk/by-id/{}", link.file_name().to_string_lossy());
                if let Some(name) = paths.device_name(&path) {
                    scanner.by_id.entry(name).or_default().push(path);
                }
            }
            scanner.by_id.values_mut().for_each(|links| links.sort());
        }
        Ok(scanner)
    }

    fn add_source(&mut self, source: &str, mount_point: &str) {
        if !source.starts_with("/dev/") {
            return; // tmpfs, overlay, fuse.glusterfs SERVER:/VOL, ...
        }
        let mut keys = vec![source.to_owned()];
        keys.extend(self.paths.device_name(source));
        for key in keys {
            self.mounts_by_source.entry(key).or_default().push(mount_point.to_owned());
        }
    }

    /// The device `kernel_name` whose sysfs directory is `dir`, with everything on it.
    /// `stack` holds the devices above it in this walk, so a loop in holders ends.
    fn device(&self, dir: &Path, kernel_name: &str, stack: &mut Vec<String>) -> BlockDevice {
        let kind = kind(dir, kernel_name);
        let (name, path) = match read_text(&dir.join("dm/name")) {
            Some(dm) => (dm.clone(), format!("/dev/mapper/{dm}")),
            None => (kernel_name.to_owned(), format!("/dev/{kernel_name}")),
        };
        let dev = read_text(&dir.join("dev")).unwrap_or_default();
        stack.push(kernel_name.to_owned());
        let mut children: Vec<BlockDevice> = partitions(dir)
            .unwrap_or_default()
            .iter()
            .map(|p| self.device(&dir.join(&p.name), &p.name, stack))
            .collect();
        for holder in names_in(&dir.join("holders")) {
            if !stack.contains(&holder) {
                children.push(self.device(&self.paths.sys_block(&holder), &holder, stack));
            }
        }
        stack.pop();
        let mut mount_points = Vec::new();
        let sources = [path.clone(), format!("/dev/{kernel_name}"), kernel_name.to_owned()];
        let found =
            self.mounts_by_dev.get(&dev).into_iter().chain(sources.iter().filter_map(|s| self.mounts_by_source.get(s)));
        for mp in found.flatten() {
            if !mount_points.contains(mp) {
                mount_points.push(mp.clone());
            }
        }
        BlockDevice {
            size_bytes: read_number(&dir.join("size")).unwrap_or(0) * 512,
            read_only: read_number(&dir.join("ro")) == Some(1),
            removable: read_number(&dir.join("removable")) == Some(1),
            suspended: read_number(&dir.join("dm/suspended")) == Some(1),
            serial: serial(dir),
            wwn: read_text(&dir.join("wwid")).or_else(|| read_text(&dir.join("device/wwid"))),
            by_id: self.by_id.get(kernel_name).cloned().unwrap_or_default(),
            signature: Signature::default(),
            kernel_name: kernel_name.to_owned(),
            name,
            path,
            dev,
            kind,
            mount_points,
            children,
        }
    }
}

/// lsblk's TYPE rules (see the module header).
fn kind(dir: &Path, kernel_name: &str) -> Kind {
    if dir.join("partition").exists() {
        Kind::Part
    } else if kernel_name.starts_with("dm-") {
        let uuid = read_text(&dir.join("dm/uuid")).unwrap_or_default();
        let owner = uuid.split('-').next().unwrap_or_default().to_ascii_lowercase();
        Kind::Dm(match owner.as_str() {
            "" => "dm".to_owned(),
            kpartx if kpartx.starts_with("part") => "part".to_owned(),
            _ => owner,
        })
    } else if kernel_name.starts_with("loop") {
        Kind::Loop
    } else if kernel_name.starts_with("md") {
        Kind::Md(read_text(&dir.join("md/level")).unwrap_or_else(|| "md".to_owned()))
    } else if read_text(&dir.join("device/type")).as_deref() == Some("5") {
        Kind::Rom
    } else {
        Kind::Disk
    }
}

/// The entry names of a directory such as holders/ or slaves/, sorted; none when it is missing.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A sysfs attribute, trimmed; `None` when missing, unreadable or blank.
fn read_text(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn read_number(path: &Path) -> Option<u64> {
    read_text(path)?.parse().ok()
}
