//! How the disk tasks (PartitionDisk, MakeFilesystem, MountFilesystem) and facts see the
//! block-device layer: the disk a task names (a /dev path or a Cinder volume id), and the
//! layer's error kinds as task errors, in this one place, so `crate::blockdev` never needs to
//! know about tasks.

use brickyard_proto::types::{CinderVolume, DevicePath};

use super::TaskError;
use crate::blockdev::{self, DiskRef};

impl From<blockdev::Error> for TaskError {
    fn from(err: blockdev::Error) -> Self {
        match err {
            blockdev::Error::Unsafe(msg) => TaskError::Unsafe(msg),
            blockdev::Error::Conflict(msg) => TaskError::Conflict(msg),
            blockdev::Error::NotFound(msg) => TaskError::InvalidTask(msg),
            blockdev::Error::Command(e) => TaskError::Command(e),
            blockdev::Error::Timeout(what) => TaskError::Timeout(what),
            blockdev::Error::Io { context, source } => TaskError::Io { context, source },
        }
    }
}

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
    fn kinds_map_to_task_errors_keeping_the_message() {
        let unsafe_ = TaskError::from(blockdev::Error::Unsafe("/dev/vda carries the system".into()));
        assert!(matches!(&unsafe_, TaskError::Unsafe(m) if m == "/dev/vda carries the system"), "{unsafe_:?}");
        let conflict = TaskError::from(blockdev::Error::Conflict("/dev/vdb1 is a partition".into()));
        assert!(matches!(conflict, TaskError::Conflict(_)), "{conflict:?}");
        let missing = TaskError::from(blockdev::Error::NotFound("Cinder volume x is not attached here".into()));
        assert_eq!(missing.to_string(), "Cinder volume x is not attached here");
        assert!(matches!(TaskError::from(blockdev::Error::Timeout("x".into())), TaskError::Timeout(_)));
    }

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
