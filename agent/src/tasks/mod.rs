//! Typed tasks: one module per task kind. Each validates its proto message into a domain
//! struct (`from_proto`, before anything runs), `check`s what would change without touching
//! anything, and `apply`s, re-checking first so a satisfied task is a no-op. Dispatch is an
//! explicit `match` on the proto `oneof`.

mod brick_dir;
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
mod volume;

mod shape;

use brickyard_proto::v1;

use crate::host::Context;
pub use shape::{Check, TaskError};

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
    EnsureVolume(volume::EnsureVolume),
    MountGlusterVolume(gluster_mount::MountGlusterVolume),
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
            Kind::EnsureVolume(t) => Task::EnsureVolume(volume::EnsureVolume::from_proto(t)?),
            Kind::MountGlusterVolume(t) => Task::MountGlusterVolume(gluster_mount::MountGlusterVolume::from_proto(t)?),
        })
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
            Task::EnsureVolume(t) => t.check(ctx).await,
            Task::MountGlusterVolume(t) => t.check(ctx).await,
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
            Task::EnsureVolume(t) => t.apply(ctx).await,
            Task::MountGlusterVolume(t) => t.apply(ctx).await,
        }
    }
}
