//! How the disk tasks (PartitionDisk, MakeFilesystem, MountFilesystem) and facts see the
//! block-device layer's answers: its error kinds as task errors, in this one place, so
//! `crate::blockdev` never needs to know about tasks.

use brickyard_proto::types::DevicePath;

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

/// The disk a disk task's `disk` field names: a /dev path, by-id and other links included.
pub(super) fn disk_ref(disk: &str) -> Result<DiskRef, TaskError> {
    Ok(DiskRef::Path(DevicePath::new(disk)?))
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
        assert!(disk_ref("vdb").is_err());
        assert_eq!(
            disk_ref("/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b").unwrap().to_string(),
            "/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b"
        );
    }
}
