//! Domain results → proto messages and gRPC statuses. Every `TaskError` variant is mapped by an
//! exhaustive `match`, so a new variant cannot silently become INTERNAL. No I/O.

use brickyard_proto::v1;
use tonic::{Code, Status};

use crate::tasks::{Check, TaskError};

pub fn error_kind(err: &TaskError) -> v1::ErrorKind {
    match err {
        TaskError::Invalid(_) | TaskError::InvalidTask(_) => v1::ErrorKind::Invalid,
        TaskError::Unsafe(_) => v1::ErrorKind::Unsafe,
        TaskError::Conflict(_) => v1::ErrorKind::Conflict,
        TaskError::NotReady(_) => v1::ErrorKind::NotReady,
        TaskError::Command(_) | TaskError::Failed(_) | TaskError::Timeout(_) | TaskError::Io { .. } => {
            v1::ErrorKind::Failed
        }
        TaskError::Unsupported(_) => v1::ErrorKind::Unsupported,
    }
}

fn code(err: &TaskError) -> Code {
    match err {
        TaskError::Invalid(_) | TaskError::InvalidTask(_) => Code::InvalidArgument,
        TaskError::Unsafe(_) | TaskError::Conflict(_) | TaskError::NotReady(_) | TaskError::Unsupported(_) => {
            Code::FailedPrecondition
        }
        TaskError::Timeout(_) => Code::DeadlineExceeded,
        TaskError::Command(_) | TaskError::Failed(_) | TaskError::Io { .. } => Code::Internal,
    }
}

pub fn task_error(err: &TaskError) -> v1::TaskError {
    v1::TaskError { kind: error_kind(err) as i32, message: err.to_string() }
}

/// The gRPC status for an RPC that failed as a whole.
pub fn status(err: &TaskError) -> Status {
    Status::new(code(err), err.to_string())
}

/// A rejected batch: names the task and what is wrong with it.
pub fn invalid_task(id: &str, err: &TaskError) -> Status {
    Status::invalid_argument(format!("task {id:?}: {err}"))
}

/// `Plan`'s answer for one task.
pub fn verdict(id: &str, check: Result<Check, TaskError>) -> v1::TaskVerdict {
    use v1::task_verdict::Verdict;
    let (verdict, warnings) = match check {
        Ok(Check { changes, warnings }) if changes.is_empty() => (Verdict::Unchanged(v1::Unchanged {}), warnings),
        Ok(Check { changes, warnings }) => (Verdict::WouldChange(v1::Changes { changes }), warnings),
        Err(err) => (Verdict::Refused(task_error(&err)), Vec::new()),
    };
    v1::TaskVerdict { id: id.to_owned(), verdict: Some(verdict), warnings }
}

/// `Apply`'s events for one task.
pub fn event(id: &str, event: v1::task_event::Event) -> v1::TaskEvent {
    v1::TaskEvent { id: id.to_owned(), event: Some(event) }
}

pub fn applied(id: &str, result: Result<Vec<String>, TaskError>) -> v1::TaskEvent {
    use v1::task_event::Event;
    event(
        id,
        match result {
            Ok(changes) if changes.is_empty() => Event::Unchanged(v1::Unchanged {}),
            Ok(changes) => Event::Changed(v1::Changes { changes }),
            Err(err) => Event::Failed(task_error(&err)),
        },
    )
}

pub fn service_manager(sm: crate::tasks::ServiceManager) -> v1::ServiceManager {
    match sm {
        crate::tasks::ServiceManager::Systemd => v1::ServiceManager::Systemd,
        crate::tasks::ServiceManager::Direct => v1::ServiceManager::Direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind() {
        let unsafe_ = TaskError::Unsafe("/dev/vdb holds ext4".into());
        assert_eq!(error_kind(&unsafe_), v1::ErrorKind::Unsafe);
        assert_eq!(status(&unsafe_).code(), Code::FailedPrecondition);
        assert_eq!(status(&unsafe_).message(), "/dev/vdb holds ext4");
        assert_eq!(error_kind(&TaskError::NotReady("/vdisk is not mounted".into())), v1::ErrorKind::NotReady);
        assert_eq!(error_kind(&TaskError::Conflict("volume differs".into())), v1::ErrorKind::Conflict);
        let timeout = TaskError::Timeout("peers".into());
        assert_eq!((error_kind(&timeout), status(&timeout).code()), (v1::ErrorKind::Failed, Code::DeadlineExceeded));
        let invalid = TaskError::InvalidTask("no kind".into());
        assert_eq!(invalid_task("t1", &invalid).code(), Code::InvalidArgument);
        assert!(invalid_task("t1", &invalid).message().contains("\"t1\""));
    }

    #[test]
    fn verdicts_and_events() {
        use v1::task_verdict::Verdict;
        assert!(matches!(verdict("a", Ok(Check::unchanged())).verdict, Some(Verdict::Unchanged(_))));
        let v = verdict("a", Ok(Check::change("mkdir /vdisk/brick1")));
        assert!(matches!(v.verdict, Some(Verdict::WouldChange(c)) if c.changes == ["mkdir /vdisk/brick1"]));
        let v = verdict("a", Err(TaskError::Unsupported("no fuse".into())));
        assert!(matches!(v.verdict, Some(Verdict::Refused(e)) if e.kind == v1::ErrorKind::Unsupported as i32));
        use v1::task_event::Event;
        assert!(matches!(applied("a", Ok(vec![])).event, Some(Event::Unchanged(_))));
        assert!(matches!(applied("a", Ok(vec!["x".into()])).event, Some(Event::Changed(_))));
    }
}
