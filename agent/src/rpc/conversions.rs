//! Domain results → proto messages and gRPC statuses. Every `TaskError` variant is mapped by an
//! exhaustive `match`, so a new variant cannot silently become INTERNAL. No I/O.

use brickyard_proto::v1;
use tonic::{Code, Status};

use crate::tasks::{Check, TaskError};

pub fn error_kind(err: &TaskError) -> v1::ErrorKind {
    match err {
        TaskError::Invalid(_) | TaskError::InvalidTask(_) => v1::ErrorKind::Invalid,
        TaskError::Refused(_) => v1::ErrorKind::Refused,
        TaskError::Command(_) => v1::ErrorKind::Command,
        TaskError::Timeout(_) => v1::ErrorKind::Timeout,
        TaskError::Io { .. } => v1::ErrorKind::Io,
        TaskError::Unsupported(_) => v1::ErrorKind::Unsupported,
    }
}

fn code(kind: v1::ErrorKind) -> Code {
    match kind {
        v1::ErrorKind::Invalid => Code::InvalidArgument,
        v1::ErrorKind::Refused | v1::ErrorKind::Unsupported => Code::FailedPrecondition,
        v1::ErrorKind::Timeout => Code::DeadlineExceeded,
        v1::ErrorKind::Command | v1::ErrorKind::Io | v1::ErrorKind::Unspecified => Code::Internal,
    }
}

pub fn task_error(err: &TaskError) -> v1::TaskError {
    v1::TaskError { kind: error_kind(err) as i32, message: err.to_string() }
}

/// The gRPC status for an RPC that failed as a whole.
pub fn status(err: &TaskError) -> Status {
    Status::new(code(error_kind(err)), err.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind() {
        let refused = TaskError::Refused("/dev/vdb holds ext4".into());
        assert_eq!(error_kind(&refused), v1::ErrorKind::Refused);
        assert_eq!(status(&refused).code(), Code::FailedPrecondition);
        assert!(status(&refused).message().contains("/dev/vdb"));
        assert_eq!(status(&TaskError::Timeout("peers".into())).code(), Code::DeadlineExceeded);
        let invalid = TaskError::InvalidTask("no kind".into());
        assert_eq!(invalid_task("t1", &invalid).code(), Code::InvalidArgument);
        assert!(invalid_task("t1", &invalid).message().contains("\"t1\""));
    }

    #[test]
    fn verdicts_and_events() {
        use v1::task_verdict::Verdict;
        assert!(matches!(verdict("a", Ok(Check::default())).verdict, Some(Verdict::Unchanged(_))));
        let v = verdict("a", Ok(Check { changes: vec!["mkdir /vdisk/brick1".into()], warnings: vec![] }));
        assert!(matches!(v.verdict, Some(Verdict::WouldChange(c)) if c.changes == ["mkdir /vdisk/brick1"]));
        let v = verdict("a", Err(TaskError::Unsupported("no fuse".into())));
        assert!(matches!(v.verdict, Some(Verdict::Refused(e)) if e.kind == v1::ErrorKind::Unsupported as i32));
        use v1::task_event::Event;
        assert!(matches!(applied("a", Ok(vec![])).event, Some(Event::Unchanged(_))));
        assert!(matches!(applied("a", Ok(vec!["x".into()])).event, Some(Event::Changed(_))));
    }
}
