//! What the disk tasks (PartitionDisk, MakeFilesystem, MountFilesystem) share: how their
//! `disk` field names a disk.

use brickyard_proto::types::DevicePath;

use super::shape::TaskError;
use crate::host::blockdev::DiskRef;

/// The disk a disk task's `disk` field names: a /dev path, by-id and other links included.
pub(super) fn disk_ref(disk: &str) -> Result<DiskRef, TaskError> {
    Ok(DiskRef::Path(DevicePath::new(disk)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_named_by_dev_paths() {
        assert!(disk_ref("vdb").is_err());
        assert_eq!(
            disk_ref("/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b").unwrap().to_string(),
            "/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b"
        );
    }
}
