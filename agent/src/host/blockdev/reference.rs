//! Which block device a task means. A /dev path is resolved like the kernel would open it
//! (`/dev/disk/by-id/...`, `/dev/disk/by-path/...`, `/dev/mapper/...` are symlinks: followed to
//! the kernel's node). A Cinder volume id names the disk Nova attached: the guest does not get
//! the device name asked for at attach time, but virtio-blk carries the volume id, cut to its
//! first 20 characters (the virtio serial's size), as the disk's serial
//! (`/sys/block/vdX/serial`; udev's `/dev/disk/by-id/virtio-<20 characters>`); virtio-scsi
//! carries the whole id. The id's rule is `brickyard_proto::types::CinderVolume`'s (the spec
//! checks it too). Reads sysfs and /dev only.

use std::fmt;

pub use brickyard_proto::types::CinderVolume;
use brickyard_proto::types::DevicePath;

use super::{sysfs, Error, HostPaths};

/// A task's name for its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRef {
    /// `/dev/vdb`, `/dev/disk/by-id/virtio-...`, ...
    Path(DevicePath),
    CinderVolume(CinderVolume),
}

impl fmt::Display for DiskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskRef::Path(path) => write!(f, "{path}"),
            DiskRef::CinderVolume(volume) => write!(f, "Cinder volume {volume}"),
        }
    }
}

/// The kernel name of the disk `disk` refers to (`vdb`).
pub fn resolve(paths: &HostPaths, disk: &DiskRef) -> Result<String, Error> {
    match disk {
        DiskRef::Path(path) => resolve_path(paths, path),
        DiskRef::CinderVolume(volume) => resolve_cinder(paths, volume),
    }
}

fn resolve_path(paths: &HostPaths, path: &DevicePath) -> Result<String, Error> {
    std::fs::canonicalize(paths.host(path.as_str())).map_err(|e| Error::NotFound(format!("device {path}: {e}")))?;
    match paths.device_name(path.as_str()) {
        Some(name) if paths.sys_block(&name).exists() => Ok(name),
        Some(name) => Err(Error::NotFound(format!(
            "device {path} leads to /dev/{name}, which the kernel does not list as a block device (no \
             /sys/class/block/{name})"
        ))),
        None => Err(Error::NotFound(format!("device {path} does not lead to a device node directly under /dev"))),
    }
}

fn resolve_cinder(paths: &HostPaths, volume: &CinderVolume) -> Result<String, Error> {
    let serial = volume.virtio_serial();
    let disks: Vec<(String, Option<String>)> =
        sysfs::whole_devices(paths)?.into_iter().map(|(name, dir)| (name, sysfs::serial(&dir))).collect();
    let matching: Vec<&str> = disks
        .iter()
        .filter(|(_, s)| {
            s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(serial) || s.eq_ignore_ascii_case(volume.id()))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let link = format!("/dev/disk/by-id/virtio-{serial}");
    match matching.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => paths.device_name(&link).filter(|name| paths.sys_block(name).exists()).ok_or_else(|| {
            let seen: Vec<String> = disks
                .iter()
                .map(|(name, s)| match s {
                    Some(s) => format!("{name} (serial {s})"),
                    None => format!("{name} (no serial)"),
                })
                .collect();
            Error::NotFound(format!(
                "Cinder volume {} is not attached here: no disk has serial {serial} (/sys/block/*/serial) and there \
                 is no {link}; disks here: {}",
                volume.id(),
                if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
            ))
        }),
        many => Err(Error::Conflict(format!(
            "Cinder volume {}: {} disks have serial {serial} ({}); brickyard will not guess which",
            volume.id(),
            many.len(),
            many.join(", ")
        ))),
    }
}
