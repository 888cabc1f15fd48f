//! Typed tasks: one module per task kind. Each validates its proto message into a domain
//! struct (`from_proto`, before anything runs), `check`s what would change without touching
//! anything, and `apply`s, re-checking first so a satisfied task is a no-op. Dispatch is an
//! explicit `match` on the proto `oneof`.

mod brick_dir;
mod bricks;
mod disk;
mod filesystem;
mod firewall;
mod fuse;
mod gluster_mount;
mod glusterd;
mod glusterd_uuid;
mod hosts;
mod mount;
mod packages;
mod partition;
mod peers;
mod selinux;
mod volume;

use std::sync::Arc;

use brickyard_proto::types::InvalidValue;
use brickyard_proto::v1;

use crate::runner::{CommandError, Runner};

/// How the agent starts daemons: via systemd, or itself (no service manager, e.g. the lab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    Direct,
}

/// What every task may use on the host.
pub struct Context {
    pub runner: Arc<dyn Runner>,
    pub service_manager: ServiceManager,
}

/// Why a task could not be checked or applied, by what it means for the operator. Mapped to
/// `v1::ErrorKind` exhaustively in `crate::conversions`; the coordinator's `plan` tells "never
/// without the operator" (unsafe, conflict) from "not yet" (not ready) by it.
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

/// A validated task, ready to check or apply.
pub enum Task {
    PartitionDisk(partition::PartitionDisk),
    MakeFilesystem(filesystem::MakeFilesystem),
    MountFilesystem(mount::MountFilesystem),
    BrickDir(brick_dir::BrickDir),
    EnsurePackages(packages::EnsurePackages),
    EnsureGlusterd(glusterd::EnsureGlusterd),
    OpenPorts(firewall::OpenPorts),
    EnsureHosts(hosts::EnsureHosts),
    EnsureFuse(fuse::EnsureFuse),
    ResetGlusterdUuid(glusterd_uuid::ResetGlusterdUuid),
    ProbePeers(peers::ProbePeers),
    AwaitPeers(peers::AwaitPeers),
    EnsureBricks(bricks::EnsureBricks),
    EnsureVolume(volume::EnsureVolume),
    MountGlusterVolume(gluster_mount::MountGlusterVolume),
    BrickSelinux(selinux::BrickSelinux),
}

impl Task {
    /// Validates a proto task; nothing runs on the host.
    pub fn from_proto(task: &v1::Task) -> Result<Self, TaskError> {
        use v1::task::Kind;
        let kind =
            task.kind.as_ref().ok_or_else(|| TaskError::InvalidTask(format!("task {:?} has no kind", task.id)))?;
        Ok(match kind {
            Kind::PartitionDisk(t) => Task::PartitionDisk(partition::PartitionDisk::from_proto(t)?),
            Kind::MakeFilesystem(t) => Task::MakeFilesystem(filesystem::MakeFilesystem::from_proto(t)?),
            Kind::MountFilesystem(t) => Task::MountFilesystem(mount::MountFilesystem::from_proto(t)?),
            Kind::BrickDir(t) => Task::BrickDir(brick_dir::BrickDir::from_proto(t)?),
            Kind::EnsurePackages(t) => Task::EnsurePackages(packages::EnsurePackages::from_proto(t)?),
            Kind::EnsureGlusterd(t) => Task::EnsureGlusterd(glusterd::EnsureGlusterd::from_proto(t)?),
            Kind::OpenPorts(t) => Task::OpenPorts(firewall::OpenPorts::from_proto(t)?),
            Kind::EnsureHosts(t) => Task::EnsureHosts(hosts::EnsureHosts::from_proto(t)?),
            Kind::EnsureFuse(t) => Task::EnsureFuse(fuse::EnsureFuse::from_proto(t)?),
            Kind::ResetGlusterdUuid(t) => Task::ResetGlusterdUuid(glusterd_uuid::ResetGlusterdUuid::from_proto(t)?),
            Kind::ProbePeers(t) => Task::ProbePeers(peers::ProbePeers::from_proto(t)?),
            Kind::AwaitPeers(t) => Task::AwaitPeers(peers::AwaitPeers::from_proto(t)?),
            Kind::EnsureBricks(t) => Task::EnsureBricks(bricks::EnsureBricks::from_proto(t)?),
            Kind::EnsureVolume(t) => Task::EnsureVolume(volume::EnsureVolume::from_proto(t)?),
            Kind::MountGlusterVolume(t) => Task::MountGlusterVolume(gluster_mount::MountGlusterVolume::from_proto(t)?),
            Kind::BrickSelinux(t) => Task::BrickSelinux(selinux::BrickSelinux::from_proto(t)?),
        })
    }

    /// Tells the task where its request came from (the coordinator as this host sees it):
    /// `OpenPorts` without listed coordinators admits that address to the agent port.
    pub fn requested_from(self, peer: Option<std::net::IpAddr>) -> Self {
        match self {
            Task::OpenPorts(t) => Task::OpenPorts(t.requested_from(peer)),
            other => other,
        }
    }

    /// What `apply` would change; touches nothing.
    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        match self {
            Task::PartitionDisk(t) => t.check(ctx).await,
            Task::MakeFilesystem(t) => t.check(ctx).await,
            Task::MountFilesystem(t) => t.check(ctx).await,
            Task::BrickDir(t) => t.check(ctx).await,
            Task::EnsurePackages(t) => t.check(ctx).await,
            Task::EnsureGlusterd(t) => t.check(ctx).await,
            Task::OpenPorts(t) => t.check(ctx).await,
            Task::EnsureHosts(t) => t.check(ctx).await,
            Task::EnsureFuse(t) => t.check(ctx).await,
            Task::ResetGlusterdUuid(t) => t.check(ctx).await,
            Task::ProbePeers(t) => t.check(ctx).await,
            Task::AwaitPeers(t) => t.check(ctx).await,
            Task::EnsureBricks(t) => t.check(ctx).await,
            Task::EnsureVolume(t) => t.check(ctx).await,
            Task::MountGlusterVolume(t) => t.check(ctx).await,
            Task::BrickSelinux(t) => t.check(ctx).await,
        }
    }

    /// Makes it so; returns the changes made (empty = was already satisfied).
    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        match self {
            Task::PartitionDisk(t) => t.apply(ctx).await,
            Task::MakeFilesystem(t) => t.apply(ctx).await,
            Task::MountFilesystem(t) => t.apply(ctx).await,
            Task::BrickDir(t) => t.apply(ctx).await,
            Task::EnsurePackages(t) => t.apply(ctx).await,
            Task::EnsureGlusterd(t) => t.apply(ctx).await,
            Task::OpenPorts(t) => t.apply(ctx).await,
            Task::EnsureHosts(t) => t.apply(ctx).await,
            Task::EnsureFuse(t) => t.apply(ctx).await,
            Task::ResetGlusterdUuid(t) => t.apply(ctx).await,
            Task::ProbePeers(t) => t.apply(ctx).await,
            Task::AwaitPeers(t) => t.apply(ctx).await,
            Task::EnsureBricks(t) => t.apply(ctx).await,
            Task::EnsureVolume(t) => t.apply(ctx).await,
            Task::MountGlusterVolume(t) => t.apply(ctx).await,
            Task::BrickSelinux(t) => t.apply(ctx).await,
        }
    }
}
