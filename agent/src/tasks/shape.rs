//! What every task module stands on, and nothing else: the one shape of a task ([`Task`]:
//! `plan` → typed changes and warnings, touching nothing; `apply` → carry that plan out), its
//! erased form the RPC layer runs ([`AnyTask`]: plan lines; apply = plan again, then carry it
//! out, so apply always re-checks the host first), and the task error, with the mapping of
//! the lower layers' errors onto its kinds in this one place so those layers never know about
//! tasks. Imports no task module.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::InvalidValue;

use crate::host::pathcheck::PathError;
use crate::host::runner::CommandError;
use crate::host::Context;
use crate::host::{blockdev, process};
use crate::{facts, gluster};
use brickyard_proto::poll::TimedOut;

/// One kind of task: what it would change on this host, and making it so.
#[async_trait]
pub trait Task: Send + Sync {
    /// One change apply would make; its `Display` is the plan line.
    type Change: fmt::Display + Send + Sync;

    /// What apply would change, in order (none: satisfied); touches nothing. A refusal is an
    /// error whose kind says why.
    async fn plan(&self, ctx: &Context) -> Result<Plan<Self::Change>, TaskError>;

    /// The plan apply carries out: `plan`'s, except for a barrier (AwaitPeers), whose plan
    /// answers "not ready" while its apply waits, with a deadline, for what it awaits.
    async fn plan_for_apply(&self, ctx: &Context) -> Result<Plan<Self::Change>, TaskError> {
        self.plan(ctx).await
    }

    /// Carries out `plan`, which `plan` has just made (the host is re-checked first), and
    /// returns the changes made: the planned ones, or what they turned into.
    async fn apply(&self, ctx: &Context, plan: Plan<Self::Change>) -> Result<Vec<Self::Change>, TaskError>;
}

/// What a task's `plan` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<C> {
    /// What apply would change, in order; empty when the task is satisfied.
    pub changes: Vec<C>,
    pub warnings: Vec<String>,
    /// Apply cannot carry this plan out yet: it waits for what an earlier task makes (named
    /// here; e.g. the partition MakeFilesystem formats). Plan shows it as a warning.
    pub waits_for: Option<String>,
}

impl<C> Plan<C> {
    /// Nothing to do.
    pub fn unchanged() -> Self {
        Self::of(Vec::new())
    }

    pub fn of(changes: Vec<C>) -> Self {
        Self { changes, warnings: Vec::new(), waits_for: None }
    }

    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    pub fn waiting_for(mut self, what: impl Into<String>) -> Self {
        self.waits_for = Some(what.into());
        self
    }
}

impl<C: fmt::Display> Plan<C> {
    /// The plan as the RPC layer shows it: one line per change, warnings (what it waits for last).
    pub fn shown(self) -> Check {
        Check {
            changes: self.changes.iter().map(ToString::to_string).collect(),
            warnings: self.warnings.into_iter().chain(self.waits_for).collect(),
        }
    }
}

/// A validated task of any kind, as the RPC layer runs it.
#[async_trait]
pub trait AnyTask: Send + Sync {
    /// `Plan`: what apply would change, as plan lines; touches nothing.
    async fn check(&self, ctx: &Context) -> Result<Check, TaskError>;

    /// `Apply`: plans again and carries that plan out (a satisfied task changes nothing);
    /// returns the lines of the changes made.
    async fn run(&self, ctx: &Context) -> Result<Vec<String>, TaskError>;
}

#[async_trait]
impl<T: Task> AnyTask for T {
    async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        Ok(self.plan(ctx).await?.shown())
    }

    async fn run(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let plan = self.plan_for_apply(ctx).await?;
        if let Some(what) = plan.waits_for {
            return Err(TaskError::NotReady(what));
        }
        Ok(self.apply(ctx, plan).await?.iter().map(ToString::to_string).collect())
    }
}

/// Why a task could not be planned or applied, by what it means for the operator. Mapped to
/// `v1::ErrorKind` exhaustively in `crate::rpc::conversions`; the coordinator's `plan` tells
/// "never without the operator" (unsafe, conflict) from "not yet" (not ready) by it.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("{0}")]
    InvalidTask(String),
    /// Data safety: it would destroy or expose data, so it is done only on the operator's
    /// explicit word (e.g. `wipe`, `force`), or never. Names the device/brick and what was found.
    #[error("{0}")]
    Unsafe(String),
    /// The live state differs in a way this task will not change (something else is mounted
    /// there, the volume exists with other bricks): names both sides.
    #[error("{0}")]
    Conflict(String),
    /// Waits for an earlier change, which the message names (a mount point not mounted yet,
    /// glusterd not running yet, a peer not in the pool yet).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A step ran but did not leave the state it should have (names what is missing).
    #[error("{0}")]
    Failed(String),
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
            blockdev::Error::Unsafe(msg) => TaskError::Unsafe(msg),
            blockdev::Error::Conflict(msg) => TaskError::Conflict(msg),
            blockdev::Error::NotFound(msg) => TaskError::InvalidTask(msg),
            blockdev::Error::Command(e) => TaskError::Command(e),
            blockdev::Error::Timeout(what) => TaskError::Timeout(what),
            blockdev::Error::Io { context, source } => TaskError::Io { context, source },
        }
    }
}

impl From<PathError> for TaskError {
    fn from(err: PathError) -> Self {
        match err {
            PathError::Symlink { .. } | PathError::NotEmpty { .. } => TaskError::Unsafe(err.to_string()),
            PathError::NotADirectory { .. } => TaskError::Conflict(err.to_string()),
            PathError::TimedOut { what, after } => {
                TaskError::Timeout(format!("{what} to answer ({after:?}; a hung mount?)"))
            }
            PathError::Io { context, source } => TaskError::Io { context, source },
        }
    }
}

impl From<process::StopError> for TaskError {
    fn from(err: process::StopError) -> Self {
        match err {
            process::StopError::Signal { .. } => TaskError::Failed(err.to_string()),
            process::StopError::TimedOut(timed_out) => timed_out.into(),
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
            gluster::Error::NotReady(msg) => TaskError::NotReady(msg),
            gluster::Error::Command(e) => TaskError::Command(e),
            gluster::Error::Io { context, source } => TaskError::Io { context, source },
            gluster::Error::LockHeld(timed_out) => timed_out.into(),
        }
    }
}

impl From<facts::Error> for TaskError {
    fn from(err: facts::Error) -> Self {
        match err {
            facts::Error::BlockDevices(e) => e.into(),
            facts::Error::Command(e) => e.into(),
            facts::Error::Gluster(e) => e.into(),
        }
    }
}

impl TaskError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TaskError {
        let context = context.into();
        move |source| TaskError::Io { context, source }
    }
}

/// A plan as shown: the lines of the changes apply would make (empty = satisfied), warnings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Check {
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_device_kinds_map_to_task_errors_keeping_the_message() {
        let unsafe_ = TaskError::from(blockdev::Error::Unsafe("/dev/vda carries the system".into()));
        assert!(matches!(&unsafe_, TaskError::Unsafe(m) if m == "/dev/vda carries the system"), "{unsafe_:?}");
        let conflict = TaskError::from(blockdev::Error::Conflict("/dev/vdb1 is a partition".into()));
        assert!(matches!(conflict, TaskError::Conflict(_)), "{conflict:?}");
        let missing = TaskError::from(blockdev::Error::NotFound("Cinder volume x is not attached here".into()));
        assert_eq!(missing.to_string(), "Cinder volume x is not attached here");
        assert!(matches!(TaskError::from(blockdev::Error::Timeout("x".into())), TaskError::Timeout(_)));
    }
}
