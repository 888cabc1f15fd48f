//! `GetFacts`: what this host is and has — hostname, OS, kernel, CPUs and memory (sysinfo),
//! block devices (`crate::host::blockdev`: sysfs, mountinfo, `blkid -p`), glusterfs version,
//! glusterd state and node UUID, FUSE, firewall backends, service manager, SELinux mode, the
//! glusterfs mounts and whether they answer (`crate::gluster::local_mounts`: statvfs() off the
//! async workers, with a deadline). Read-only: reads /sys, /proc, /dev, /etc/os-release,
//! /etc/selinux/config, pid files, glusterd.info, the managed block of /etc/hosts and runs
//! `blkid -p` and `glusterfs --version`.

mod devices;
pub(crate) mod gluster;
pub(crate) mod host;
pub(crate) mod selinux;

use brickyard_proto::v1;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::host::runner::CommandError;
use crate::host::{blockdev, os_release, Context, ServiceManager};

/// Why the facts could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    BlockDevices(#[from] blockdev::Error),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Gluster(#[from] crate::gluster::Error),
}

/// Collects this host's facts.
/// The host's facts, with its block devices only when asked (see `v1::GetFactsRequest`).
pub async fn collect(ctx: &Context, block_devices: bool) -> Result<v1::Facts, Error> {
    let devices = if block_devices {
        blockdev::list(ctx.runner.as_ref(), &blockdev::HostPaths::system()).await?
    } else {
        Vec::new()
    };
    let glusterfs_version = gluster::version(ctx).await?;
    let sys = System::new_with_specifics(
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let os = os_release::read();
    Ok(v1::Facts {
        hostname: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        os_id: os.id,
        os_version: os.version_id,
        os_id_like: os.id_like,
        kernel: host::kernel(),
        cpus: u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX),
        memory_bytes: sys.total_memory(),
        block_devices: devices.iter().map(devices::to_proto).collect(),
        glusterfs_version: glusterfs_version.unwrap_or_default(),
        glusterd_running: crate::gluster::glusterd_running(),
        glusterd_uuid: gluster::glusterd_uuid().unwrap_or_default(),
        fuse_available: host::fuse_available(),
        firewall: Some(host::firewall(ctx.runner.as_ref())),
        service_manager: service_manager(ctx.service_manager) as i32,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        selinux: Some(selinux::facts(&selinux::SelinuxPaths::system())),
        gluster_mounts: crate::gluster::local_mounts().await?,
        pool_hosts: host::pool_hosts(),
    })
}

fn service_manager(sm: ServiceManager) -> v1::ServiceManager {
    match sm {
        ServiceManager::Systemd => v1::ServiceManager::Systemd,
        ServiceManager::Direct => v1::ServiceManager::Direct,
    }
}
