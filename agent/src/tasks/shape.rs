//! What every task module stands on, and nothing else: the task error (with the mapping of the
//! lower layers' errors onto its kinds, in this one place, so those layers never know about
//! tasks) and what a check reports. Imports no task module.

use brickyard_proto::types::InvalidValue;

use crate::host::blockdev;
use crate::host::poll::TimedOut;
use crate::host::runner::CommandError;
use crate::{facts, gluster};

/// Why a task could not be checked or applied. Mapped to `v1::ErrorKind` exhaustively in
/// `crate::rpc::conversions`.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("{0}")]
    InvalidTask(String),
    /// A data-safety or precondition refusal: names the device/host and what was found.
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("unsupported on this host: {0}")]
    Unsupported(String),
}

impl From<blockdev::Error> for TaskError {
    fn from(err: blockdev::Error) -> Self {
        match err {
            blockdev::Error::Unsafe(msg) | blockdev::Error::Conflict(msg) => TaskError::Refused(msg),
            blockdev::Error::NotFound(msg) => TaskError::InvalidTask(msg),
            blockdev::Error::Command(e) => TaskError::Command(e),
            blockdev::Error::Timeout(what) => TaskError::Timeout(what),
            blockdev::Error::Io { context, source } => TaskError::Io { context, source },
        }
    }
}

impl From<TimedOut> for TaskError {
    fn from(timed_out: TimedOut) -> Self {
        TaskError::Timeout(timed_out.to_string())
    }
}

impl From<gluster::Error> for TaskError {
    fn from(err: gluster::Error) -> Self {
        match err {
            gluster::Error::Command(e) => TaskError::Command(e),
            gluster::Error::Io { context, source } => TaskError::Io { context, source },
        }
    }
}

impl From<facts::Error> for TaskError {
    fn from(err: facts::Error) -> Self {
        match err {
            facts::Error::BlockDevices(e) => e.into(),
            facts::Error::Command(e) => e.into(),
        }
    }
}

impl TaskError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TaskError {
        let context = context.into();
        move |source| TaskError::Io { context, source }
    }
}

/// What `check` found: the changes `apply` would make (empty = satisfied) and warnings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Check {
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

impl Check {
    pub fn unchanged() -> Self {
        Self::default()
    }

    pub fn change(change: impl Into<String>) -> Self {
        Self { changes: vec![change.into()], warnings: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_device_kinds_map_to_task_errors_keeping_the_message() {
        let unsafe_ = TaskError::from(blockdev::Error::Unsafe("/dev/vda carries the system".into()));
        assert!(matches!(&unsafe_, TaskError::Refused(m) if m == "/dev/vda carries the system"), "{unsafe_:?}");
        let conflict = TaskError::from(blockdev::Error::Conflict("/dev/vdb1 is a partition".into()));
        assert!(matches!(conflict, TaskError::Refused(_)), "{conflict:?}");
        let missing = TaskError::from(blockdev::Error::NotFound("Cinder volume x is not attached here".into()));
        assert_eq!(missing.to_string(), "Cinder volume x is not attached here");
        assert!(matches!(TaskError::from(blockdev::Error::Timeout("x".into())), TaskError::Timeout(_)));
    }
}
