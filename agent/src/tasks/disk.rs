//! What the disk tasks (PartitionDisk, MakeFilesystem, MountFilesystem) share: the disk a task
//! names (a /dev path or a Cinder volume id).

use brickyard_proto::types::{CinderVolume, DevicePath};

use super::shape::TaskError;
use crate::host::blockdev::DiskRef;

/// The disk a disk task names: its `disk` field (a /dev path, by-id and other links
/// included) or its `cinder_volume` field (the volume id), exactly one of the two.
pub(super) fn disk_ref(disk: &str, cinder_volume: &str) -> Result<DiskRef, TaskError> {
    match (disk, cinder_volume) {
        ("", "") => Err(TaskError::InvalidTask("the task names no disk: set disk or cinder_volume".into())),
        (disk, "") => Ok(DiskRef::Path(DevicePath::new(disk)?)),
        ("", volume) => Ok(DiskRef::CinderVolume(CinderVolume::new(volume)?)),
        (disk, volume) => Err(TaskError::InvalidTask(format!(
            "the task names its disk twice (disk {disk:?} and cinder_volume {volume:?}): set one of the two"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_is_named_by_exactly_one_of_path_and_cinder_volume() {
        const ID: &str = "ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4";
        assert!(disk_ref("/etc/passwd", "").unwrap_err().to_string().contains("must be a path under /dev"));
        assert_eq!(
            disk_ref("/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b", "").unwrap(),
            DiskRef::Path(DevicePath::new("/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b").unwrap())
        );
        assert_eq!(disk_ref("", ID).unwrap().to_string(), format!("Cinder volume {ID}"));
        assert!(disk_ref("", "vdb").unwrap_err().to_string().contains("must be a volume UUID"));
        let both = disk_ref("/dev/vdb", ID).unwrap_err().to_string();
        assert!(both.contains("names its disk twice") && both.contains("/dev/vdb") && both.contains(ID), "{both}");
        assert!(disk_ref("", "").unwrap_err().to_string().contains("set disk or cinder_volume"));
    }
}
