//! Typed tasks: one module per task kind, each of one shape ([`Task`], in `shape`): it
//! validates its proto message into a domain struct (`from_proto`, before anything runs),
//! `plan`s typed changes without touching anything, and `apply`s a plan made just before, so
//! apply always re-checks and a satisfied task is a no-op. Dispatch is one explicit `match`
//! on the proto `oneof` ([`from_proto`]); what each kind writes on the host — the lanes
//! that batches running at once must not share — is one more ([`lanes`]).

mod brick_dir;
mod bricks;
mod detach;
mod disk;
mod drain;
mod filesystem;
mod firewall;
mod fuse;
mod gluster_mount;
mod gluster_tls;
mod glusterd;
mod glusterd_uuid;
mod heal;
mod hosts;
mod mount;
mod packages;
mod partition;
mod peers;
mod rebalance;
mod reset_brick;
mod restart_gluster;
mod retire_mounts;
mod selinux;
mod volume;
mod volume_destroy;
mod volume_options;
mod volume_tls;

mod shape;
#[cfg(test)]
mod testing;

use std::net::IpAddr;

use brickyard_proto::v1;

pub use shape::{AnyTask, Check, Plan, Task, TaskError};

/// Validates a proto task into its task kind; nothing runs on the host. `peer` is where the
/// request came from (the coordinator as this host sees it): `OpenPorts` without listed
/// coordinators admits that address to the agent port. Each task kind is one arm here, and
/// nowhere else.
pub fn from_proto(task: &v1::Task, peer: Option<IpAddr>) -> Result<Box<dyn AnyTask>, TaskError> {
    use v1::task::Kind;
    let kind = task.kind.as_ref().ok_or_else(|| TaskError::InvalidTask(format!("task {:?} has no kind", task.id)))?;
    Ok(match kind {
        Kind::PartitionDisk(t) => Box::new(partition::PartitionDisk::from_proto(t)?),
        Kind::MakeFilesystem(t) => Box::new(filesystem::MakeFilesystem::from_proto(t)?),
        Kind::MountFilesystem(t) => Box::new(mount::MountFilesystem::from_proto(t)?),
        Kind::BrickDir(t) => Box::new(brick_dir::BrickDir::from_proto(t)?),
        Kind::EnsurePackages(t) => Box::new(packages::EnsurePackages::from_proto(t)?),
        Kind::EnsureGlusterd(t) => Box::new(glusterd::EnsureGlusterd::from_proto(t)?),
        Kind::OpenPorts(t) => Box::new(firewall::OpenPorts::from_proto(t)?.requested_from(peer)),
        Kind::EnsureHosts(t) => Box::new(hosts::EnsureHosts::from_proto(t)?),
        Kind::EnsureFuse(t) => Box::new(fuse::EnsureFuse::from_proto(t)?),
        Kind::ResetGlusterdUuid(t) => Box::new(glusterd_uuid::ResetGlusterdUuid::from_proto(t)?),
        Kind::ProbePeers(t) => Box::new(peers::ProbePeers::from_proto(t)?),
        Kind::AwaitPeers(t) => Box::new(peers::AwaitPeers::from_proto(t)?),
        Kind::EnsureBricks(t) => Box::new(bricks::EnsureBricks::from_proto(t)?),
        Kind::EnsureVolume(t) => Box::new(volume::EnsureVolume::from_proto(t)?),
        Kind::MountGlusterVolume(t) => Box::new(gluster_mount::MountGlusterVolume::from_proto(t)?),
        Kind::BrickSelinux(t) => Box::new(selinux::BrickSelinux::from_proto(t)?),
        Kind::GlusterTls(t) => Box::new(gluster_tls::GlusterTls::from_proto(t)?),
        Kind::VolumeTls(t) => Box::new(volume_tls::VolumeTls::from_proto(t)?),
        Kind::RestartGluster(t) => Box::new(restart_gluster::RestartGluster::from_proto(t)?),
        Kind::RetireGlusterMounts(t) => Box::new(retire_mounts::RetireGlusterMounts::from_proto(t)?),
        Kind::DestroyVolume(t) => Box::new(volume_destroy::DestroyVolume::from_proto(t)?),
        Kind::RebalanceVolume(t) => Box::new(rebalance::RebalanceVolume::from_proto(t)?),
        Kind::RemoveBricks(t) => Box::new(drain::RemoveBricks::from_proto(t)?),
        Kind::DetachPeers(t) => Box::new(detach::DetachPeers::from_proto(t)?),
        Kind::ResetEmptyBricks(t) => Box::new(reset_brick::ResetEmptyBricks::from_proto(t)?),
    })
}

/// A host resource that one task at a time may change. `Apply` batches that share no lane run
/// at once; a batch holds every lane its tasks use, taken in this order (no deadlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// The package manager (dpkg/rpm lock).
    Packages,
    /// /etc/hosts.
    Hosts,
    /// The firewall rules.
    Firewall,
    /// Block devices, filesystems and brick directories.
    Disk,
    /// /etc/fstab and the mounts it lists (disks and gluster mounts both write it).
    Fstab,
    /// glusterd: its service, /var/lib/glusterd, its TLS files and every gluster CLI change.
    Gluster,
}

impl Lane {
    pub const ALL: [Lane; 6] = [Lane::Packages, Lane::Hosts, Lane::Firewall, Lane::Disk, Lane::Fstab, Lane::Gluster];
}

/// The lanes a task of this kind uses (none: it changes nothing another task changes).
pub fn lanes(task: &v1::Task) -> &'static [Lane] {
    use v1::task::Kind;
    match &task.kind {
        None | Some(Kind::EnsureFuse(_)) => &[],
        Some(Kind::EnsurePackages(_)) => &[Lane::Packages],
        Some(Kind::EnsureHosts(_)) => &[Lane::Hosts],
        Some(Kind::OpenPorts(_)) => &[Lane::Firewall],
        Some(Kind::PartitionDisk(_) | Kind::MakeFilesystem(_) | Kind::BrickDir(_) | Kind::BrickSelinux(_)) => {
            &[Lane::Disk]
        }
        Some(Kind::MountFilesystem(_)) => &[Lane::Disk, Lane::Fstab],
        Some(Kind::MountGlusterVolume(_) | Kind::RetireGlusterMounts(_)) => &[Lane::Fstab],
        Some(Kind::EnsureBricks(_) | Kind::ResetEmptyBricks(_)) => &[Lane::Disk, Lane::Gluster],
        Some(
            Kind::EnsureGlusterd(_)
            | Kind::ResetGlusterdUuid(_)
            | Kind::GlusterTls(_)
            | Kind::ProbePeers(_)
            | Kind::AwaitPeers(_)
            | Kind::EnsureVolume(_)
            | Kind::VolumeTls(_)
            | Kind::DestroyVolume(_)
            | Kind::RebalanceVolume(_)
            | Kind::RemoveBricks(_)
            | Kind::DetachPeers(_)
            | Kind::RestartGluster(_),
        ) => &[Lane::Gluster],
    }
}
