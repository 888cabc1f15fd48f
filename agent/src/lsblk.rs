//! Block devices as `lsblk -J` reports them; facts and the disk tasks both read devices through
//! here. Runs `lsblk` (read-only) and reads /proc/self/mountinfo; `blkid -p` fills in what lsblk
//! cannot see on hosts without udev. The parser and the merge steps are pure.

use std::collections::HashMap;

use serde::Deserialize;

use crate::blockdev;
use crate::mountinfo::{self, Mount};
use crate::runner::{find_program, Cmd, Runner};
use crate::tasks::TaskError;

/// The columns asked for. MAJ:MIN matches devices to /proc/self/mountinfo (MOUNTPOINT shows one
/// mount point only, and MOUNTPOINTS needs util-linux 2.37+).
const COLUMNS: &str = "NAME,PATH,MAJ:MIN,SIZE,TYPE,PTTYPE,FSTYPE,LABEL,UUID,MOUNTPOINT";

/// Mount points that make a device a system disk: never partitioned or formatted.
pub const SYSTEM_MOUNT_POINTS: &[&str] = &["/", "/boot", "/boot/efi", "/usr", "/var"];

/// One block device and its children (partitions, LVM volumes, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    pub name: String,
    pub path: String,
    pub size_bytes: u64,
    /// lsblk's TYPE: disk, part, loop, lvm, raid1, rom, ...
    pub kind: String,
    pub partition_table: Option<String>,
    pub filesystem: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
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

    /// True when this device or a child is mounted at `/`.
    pub fn carries_root(&self) -> bool {
        self.mounts().iter().any(|(_, m)| *m == "/")
    }

    /// True when this device or a child is mounted at `/boot` or `/boot/efi`.
    pub fn carries_boot(&self) -> bool {
        self.mounts().iter().any(|(_, m)| *m == "/boot" || *m == "/boot/efi")
    }

    /// Whole-disk semantics: lsblk's `disk`, and `loop` (lab and test disks are loop devices).
    pub fn is_whole_disk(&self) -> bool {
        matches!(self.kind.as_str(), "disk" | "loop")
    }
}

/// Finds the device called `name` (kernel name, e.g. `vdb`) anywhere in `devices`.
pub fn find<'a>(devices: &'a [BlockDevice], name: &str) -> Option<&'a BlockDevice> {
    devices.iter().flat_map(BlockDevice::walk).find(|d| d.name == name)
}

/// A device as lsblk prints it, before conversion.
#[derive(Debug, Deserialize)]
struct RawDevice {
    name: String,
    path: Option<String>,
    #[serde(rename = "maj:min")]
    maj_min: Option<String>,
    #[serde(default, deserialize_with = "size")]
    size: u64,
    #[serde(rename = "type")]
    kind: Option<String>,
    pttype: Option<String>,
    fstype: Option<String>,
    label: Option<String>,
    uuid: Option<String>,
    mountpoint: Option<String>,
    /// util-linux 2.37+ when asked for MOUNTPOINTS; holds `null` for "not mounted".
    #[serde(default)]
    mountpoints: Vec<Option<String>>,
    #[serde(default)]
    children: Vec<RawDevice>,
}

#[derive(Debug, Deserialize)]
struct RawOutput {
    blockdevices: Vec<RawDevice>,
}

/// SIZE is a number since util-linux 2.33 and a string before.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
        Null(()),
    }
    match Size::deserialize(d)? {
        Size::Number(n) => Ok(n),
        Size::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
        Size::Null(()) => Ok(0),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl RawDevice {
    /// Converts, adding the mount points mountinfo lists for this device's MAJ:MIN.
    fn convert(self, extra_mounts: &HashMap<String, Vec<String>>) -> BlockDevice {
        let mut mount_points: Vec<String> =
            self.mountpoint.into_iter().chain(self.mountpoints.into_iter().flatten()).collect();
        if let Some(extra) = self.maj_min.as_ref().and_then(|mm| extra_mounts.get(mm)) {
            mount_points.extend(extra.iter().cloned());
        }
        let mut seen = std::collections::HashSet::new();
        mount_points.retain(|m| seen.insert(m.clone()));
        BlockDevice {
            path: self.path.unwrap_or_else(|| format!("/dev/{}", self.name)),
            name: self.name,
            size_bytes: self.size,
            kind: self.kind.unwrap_or_default(),
            partition_table: non_empty(self.pttype),
            filesystem: non_empty(self.fstype),
            label: non_empty(self.label),
            uuid: non_empty(self.uuid),
            mount_points,
            children: self.children.into_iter().map(|c| c.convert(extra_mounts)).collect(),
        }
    }
}

fn parse_raw(json: &str) -> Result<Vec<RawDevice>, TaskError> {
    let out: RawOutput = serde_json::from_str(json)
        .map_err(|e| TaskError::Io { context: "parsing lsblk -J output".into(), source: std::io::Error::other(e) })?;
    Ok(out.blockdevices)
}

/// Parses `lsblk -J -b -o ...` output (any util-linux from 2.27 on: sizes as numbers or
/// strings, MOUNTPOINT or MOUNTPOINTS).
pub fn parse(json: &str) -> Result<Vec<BlockDevice>, TaskError> {
    Ok(parse_raw(json)?.into_iter().map(|d| d.convert(&HashMap::new())).collect())
}

/// Parses lsblk output and merges in every mount point of `mounts` (matched by MAJ:MIN), so a
/// device mounted twice, or mounted after lsblk's own snapshot of older util-linux, shows all.
pub fn parse_with_mounts(json: &str, mounts: &[Mount]) -> Result<Vec<BlockDevice>, TaskError> {
    let mut by_dev: HashMap<String, Vec<String>> = HashMap::new();
    for m in mounts {
        by_dev.entry(m.dev.clone()).or_default().push(m.mount_point.clone());
    }
    Ok(parse_raw(json)?.into_iter().map(|d| d.convert(&by_dev)).collect())
}

/// Fills in partition table, filesystem, label and UUID that lsblk left empty (it reads them
/// from udev's database, which hosts without udev do not have) from `blkid -p` results, keyed
/// by device path.
pub fn fill_signatures(devices: &mut [BlockDevice], probes: &HashMap<String, blockdev::Signature>) {
    for dev in devices {
        if let Some(sig) = probes.get(&dev.path) {
            dev.partition_table = dev.partition_table.take().or_else(|| sig.pttype.clone());
            dev.filesystem = dev.filesystem.take().or_else(|| sig.fstype.clone());
            dev.label = dev.label.take().or_else(|| sig.label.clone());
            dev.uuid = dev.uuid.take().or_else(|| sig.uuid.clone());
        }
        fill_signatures(&mut dev.children, probes);
    }
}

/// The `lsblk` invocation whose output [`parse`] reads.
pub fn command() -> Result<Cmd, TaskError> {
    Ok(Cmd::new(find_program("lsblk")?).args(["-J", "-b", "-o", COLUMNS]))
}

/// Every block device of the host, with every mount point of this mount namespace and, where
/// lsblk had no udev data, signatures from `blkid -p`.
pub async fn list(runner: &dyn Runner) -> Result<Vec<BlockDevice>, TaskError> {
    let out = runner.run(&command()?).await?;
    let mounts = mountinfo::read().map_err(TaskError::io("reading /proc/self/mountinfo"))?;
    let mut devices = parse_with_mounts(&out.stdout, &mounts)?;
    let unknown: Vec<String> = devices
        .iter()
        .flat_map(BlockDevice::walk)
        .filter(|d| {
            d.partition_table.is_none() && d.filesystem.is_none() && matches!(d.kind.as_str(), "disk" | "loop" | "part")
        })
        .map(|d| d.path.clone())
        .collect();
    let mut probes = HashMap::new();
    for path in unknown {
        // A device we may not read (e.g. a hypervisor's disk) stays unknown: facts are best effort.
        match blockdev::probe(runner, &path).await {
            Ok(sig) => {
                probes.insert(path, sig);
            }
            Err(e) => tracing::debug!(device = %path, error = %e, "blkid -p failed"),
        }
    }
    fill_signatures(&mut devices, &probes);
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<BlockDevice> {
        let path = format!("{}/src/fixtures/lsblk/{name}", env!("CARGO_MANIFEST_DIR"));
        parse(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn loop_device_captured_here() {
        let devs = fixture("loop-gpt-xfs-mounted.json");
        let loop0 = find(&devs, "loop0").unwrap();
        assert_eq!((loop0.kind.as_str(), loop0.size_bytes, loop0.path.as_str()), ("loop", 536870912, "/dev/loop0"));
        assert!(loop0.is_whole_disk());
        assert_eq!(loop0.children.len(), 1);
        assert_eq!(loop0.children[0].mount_points, ["/tmp/diskcap/mnt"]);
        assert!(!loop0.carries_root());
        // Without udev lsblk leaves signatures empty; null is None, never "".
        assert_eq!(loop0.partition_table, None);
        let vda = find(&devs, "vda").unwrap();
        assert!(vda.carries_root() && !vda.carries_boot());
        assert_eq!(vda.system_mount(), Some(("vda", "/")));
        assert!(find(&devs, "zram0").unwrap().mount_points.is_empty());
    }

    #[test]
    fn seed_vdb() {
        let devs = fixture("vdb.json");
        let vdb = find(&devs, "vdb").unwrap();
        assert_eq!(vdb.partition_table.as_deref(), Some("dos"));
        assert_eq!(vdb.mounts(), [("vdb1", "/vdisk")]);
        assert!(vdb.system_mount().is_none());
        assert!(find(&devs, "vda").unwrap().carries_root());
        let vdb1 = find(&devs, "vdb1").unwrap();
        assert_eq!((vdb1.kind.as_str(), vdb1.filesystem.as_deref()), ("part", Some("ext4")));
        assert!(!vdb1.is_whole_disk());
    }

    #[test]
    fn nvme_with_lvm_root() {
        let devs = fixture("nvme.json");
        let sys = find(&devs, "nvme0n1").unwrap();
        assert!(sys.carries_root() && sys.carries_boot());
        assert_eq!(find(&devs, "rhel-root").unwrap().path, "/dev/mapper/rhel-root");
        assert!(sys.mounts().contains(&("rhel-swap", "[SWAP]")));
        let blank = find(&devs, "nvme1n1").unwrap();
        assert!(blank.children.is_empty() && blank.mount_points.is_empty() && blank.partition_table.is_none());
    }

    #[test]
    fn lvm_and_md_members() {
        let lvm = fixture("lvm-member.json");
        let sdb = find(&lvm, "sdb").unwrap();
        assert_eq!(sdb.filesystem.as_deref(), Some("LVM2_member"));
        assert_eq!(sdb.children[0].kind, "lvm");
        let md = fixture("md-member.json");
        let sdd = find(&md, "sdd").unwrap();
        assert_eq!(sdd.children[0].filesystem.as_deref(), Some("linux_raid_member"));
        assert_eq!(sdd.mounts(), [("md0", "/srv/bricks")]);
        assert_eq!(find(&md, "md0").unwrap().kind, "raid1");
    }

    #[test]
    fn old_and_new_util_linux_formats() {
        // util-linux < 2.33: everything a string, no PATH; 2.37+: MOUNTPOINTS with nulls.
        let old = r#"{"blockdevices": [{"name": "sda", "size": "1024", "type": "disk", "pttype": "",
            "fstype": null, "mountpoint": null}]}"#;
        let devs = parse(old).unwrap();
        assert_eq!(
            (devs[0].path.as_str(), devs[0].size_bytes, devs[0].partition_table.as_ref()),
            ("/dev/sda", 1024, None)
        );
        let new = r#"{"blockdevices": [{"name": "sdb", "path": "/dev/sdb", "size": 1, "type": "disk",
            "mountpoints": ["/a", "/b"]}, {"name": "sdc", "size": 1, "type": "disk", "mountpoints": [null]}]}"#;
        let devs = parse(new).unwrap();
        assert_eq!(devs[0].mount_points, ["/a", "/b"]);
        assert!(devs[1].mount_points.is_empty());
        assert!(parse("not json").unwrap_err().to_string().contains("lsblk"));
    }

    #[test]
    fn mountinfo_adds_every_mount_point() {
        let json = std::fs::read_to_string(format!(
            "{}/src/fixtures/lsblk/loop-gpt-xfs-mounted.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mounts = mountinfo::parse(
            "119 99 259:0 / /tmp/diskcap/mnt rw - xfs /dev/loop0p1 rw\n\
             120 99 259:0 / /srv/again rw - xfs /dev/loop0p1 rw\n\
             121 99 254:0 / /srv/root-bind rw - ext4 /dev/root rw\n",
        );
        let devs = parse_with_mounts(&json, &mounts).unwrap();
        assert_eq!(find(&devs, "loop0p1").unwrap().mount_points, ["/tmp/diskcap/mnt", "/srv/again"]);
        assert_eq!(find(&devs, "vda").unwrap().mount_points, ["/", "/srv/root-bind"]);
    }

    #[test]
    fn blkid_fills_what_lsblk_lacks() {
        let mut devs = fixture("loop-msdos.json");
        let sig = blockdev::parse_blkid(
            &std::fs::read_to_string(format!("{}/src/fixtures/blkid/dos-disk.txt", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        );
        fill_signatures(&mut devs, &HashMap::from([("/dev/loop0".to_owned(), sig)]));
        assert_eq!(devs[0].partition_table.as_deref(), Some("dos"));
        assert_eq!(devs[0].children[0].partition_table, None);
    }
}
