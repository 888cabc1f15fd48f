//! Spec + facts → the typed task batches of every phase, per host, in the seed's order:
//! servers (packages, /etc/hosts, firewall, partition, mkfs, mount, brick dirs, glusterd,
//! FUSE) → pool (probe from the first server, then the first server back by name, then the
//! barrier: every server waits until it sees every other as `Peer in Cluster (Connected)`, since
//! gluster stages volume changes on every peer) → volumes (every brick server checks its bricks
//! — on their mounted disks, no stale volume-id; a brick back empty is reset — then the volumes
//! are ensured from the first server, and servers leaving the pool, drained or replaced, are
//! detached) → clients (packages, /etc/hosts, FUSE, mounts) → rebalance. Pure: the agents check
//! and apply what this produces. Every volume's `auth.allow` is computed here: the pool's
//! servers, the clients that mount the volume, and the spec's `auth_allow` additions.
//! GlusterFS TLS adds its tasks and options through `crate::gluster_tls`. The order here is
//! presentation; what really waits for what is `crate::graph`'s, which cuts these batches into
//! the nodes apply runs.

use std::collections::BTreeMap;
use std::fmt;

use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::gluster_tls;
use crate::migrate;
use crate::spec::{EtcHosts, Spec};

/// The phases that change hosts (facts before them and verify after them read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Clients that left the spec give up their mounts (`crate::retire`), before anything else.
    Retire,
    Servers,
    Pool,
    Volumes,
    Clients,
    /// After the clients know every server: see `crate::migrate`.
    Rebalance,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Retire => "retire",
            Phase::Servers => "servers",
            Phase::Pool => "pool",
            Phase::Volumes => "volumes",
            Phase::Clients => "clients",
            Phase::Rebalance => "rebalance",
        })
    }
}

/// The tasks one host runs in one step of a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub host: String,
    pub tasks: Vec<v1::Task>,
}

/// One phase: its steps, each the batches of its hosts (`crate::graph` makes them nodes).
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    pub phase: Phase,
    pub steps: Vec<Vec<HostBatch>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhaseError {
    #[error(
        "servers {first} and {second} have the same glusterd UUID {uuid} (cloned image?) and cannot form a \
         pool; set `reset_duplicate_uuids = true` under [pool] to give {second} a fresh UUID"
    )]
    DuplicateUuid { uuid: String, first: String, second: String },
    #[error("volume {volume}: {message}")]
    Volume { volume: String, message: String },
}

/// The servers whose glusterd UUID repeats an earlier server's (spec order), with that UUID.
/// Servers without facts or without a UUID are not compared.
fn duplicate_uuids<'a>(spec: &'a Spec, facts: &'a BTreeMap<String, v1::Facts>) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for server in &spec.servers {
        let Some(uuid) = facts.get(&server.name).map(|f| f.glusterd_uuid.as_str()).filter(|u| !u.is_empty()) else {
            continue;
        };
        match seen.get(uuid) {
            Some(first) => duplicates.push((*first, server.name.as_str(), uuid)),
            None => {
                seen.insert(uuid, &server.name);
            }
        }
    }
    duplicates
}

/// Every phase's batches. `facts` holds what the hosts reported (hosts missing from it are
/// planned without their facts).
pub fn build(spec: &Spec, facts: &BTreeMap<String, v1::Facts>) -> Result<Vec<PhasePlan>, PhaseError> {
    let mut resets: BTreeMap<&str, &str> = BTreeMap::new();
    for (first, second, uuid) in duplicate_uuids(spec, facts) {
        if !spec.pool.reset_duplicate_uuids {
            return Err(PhaseError::DuplicateUuid { uuid: uuid.into(), first: first.into(), second: second.into() });
        }
        resets.insert(second, uuid);
    }
    let mut phases = vec![
        PhasePlan { phase: Phase::Servers, steps: vec![servers(spec, &resets)] },
        PhasePlan { phase: Phase::Pool, steps: pool(spec) },
        PhasePlan { phase: Phase::Volumes, steps: volumes(spec)? },
        PhasePlan { phase: Phase::Clients, steps: vec![clients(spec)] },
    ];
    phases.extend(rebalance(spec)?);
    Ok(phases)
}

fn task(id: impl Into<String>, kind: Kind) -> v1::Task {
    v1::Task { id: id.into(), kind: Some(kind) }
}

fn hosts_task(spec: &Spec) -> v1::Task {
    let clients = match spec.pool.etc_hosts {
        EtcHosts::All => spec.clients.as_slice(),
        EtcHosts::Servers => &[],
    };
    let entries = spec
        .servers
        .iter()
        .map(|s| (&s.name, &s.address))
        .chain(clients.iter().map(|c| (&c.name, &c.address)))
        .map(|(name, address)| v1::HostEntry { name: name.clone(), address: address.clone() })
        .collect();
    task("/etc/hosts", Kind::EnsureHosts(v1::EnsureHosts { entries }))
}

fn packages_task(spec: &Spec, role: v1::PackageRole) -> v1::Task {
    let id = match role {
        v1::PackageRole::Client => "packages (client)",
        _ => "packages (server)",
    };
    task(
        id,
        Kind::EnsurePackages(v1::EnsurePackages {
            role: role.into(),
            gluster_version: spec.pool.gluster_version.clone().unwrap_or_default(),
            gluster_repo: spec.pool.gluster_repo.clone().unwrap_or_default(),
        }),
    )
}

fn filesystem(name: Option<&str>) -> v1::FilesystemType {
    match name {
        Some("ext4") => v1::FilesystemType::Ext4,
        _ => v1::FilesystemType::Xfs,
    }
}

fn servers(spec: &Spec, resets: &BTreeMap<&str, &str>) -> Vec<HostBatch> {
    spec.servers
        .iter()
        .map(|server| {
            let mut tasks = vec![packages_task(spec, v1::PackageRole::Server), hosts_task(spec)];
            if spec.pool.firewall {
                tasks.push(task(
                    "firewall ports",
                    // Gluster's ports for the pool's hosts, the agent port for the coordinators
                    // (unlisted: the agent admits where this apply connects from).
                    Kind::OpenPorts(v1::OpenPorts {
                        nfs: spec.pool.nfs,
                        pool_sources: spec.hosts().into_iter().map(|h| h.address).collect(),
                        agent_sources: spec.pool.coordinators.clone().unwrap_or_default(),
                        agent_port: server.port.unwrap_or(brickyard_proto::DEFAULT_AGENT_PORT).into(),
                    }),
                ));
            }
            if let Some(disk) = &server.disk {
                let fs = filesystem(disk.filesystem.as_deref());
                let table = if disk.table.as_deref() == Some("msdos") {
                    v1::PartitionTable::Msdos
                } else {
                    v1::PartitionTable::Gpt
                };
                let device = disk.device.clone().unwrap_or_default();
                let cinder_volume = disk.cinder_volume.clone().unwrap_or_default();
                tasks.push(task(
                    format!("partition {}", disk.name()),
                    Kind::PartitionDisk(v1::PartitionDisk {
                        disk: device.clone(),
                        table: table.into(),
                        wipe: disk.wipe,
                        cinder_volume: cinder_volume.clone(),
                    }),
                ));
                tasks.push(task(
                    format!("filesystem on {}", disk.name()),
                    Kind::MakeFilesystem(v1::MakeFilesystem {
                        disk: device.clone(),
                        filesystem: fs.into(),
                        label: disk.label.clone().unwrap_or_default(),
                        wipe: disk.wipe,
                        cinder_volume: cinder_volume.clone(),
                    }),
                ));
                tasks.push(task(
                    format!("mount {}", disk.mount),
                    Kind::MountFilesystem(v1::MountFilesystem {
                        disk: device,
                        filesystem: fs.into(),
                        mount_point: disk.mount.clone(),
                        options: Vec::new(),
                        cinder_volume,
                    }),
                ));
            }
            for volume in spec.volumes.iter().filter(|v| spec.volume_servers(v).iter().any(|s| s.name == server.name)) {
                let brick = spec.brick_path(&server.name, &volume.brick_dir);
                tasks.push(task(
                    format!("brick dir {brick}"),
                    Kind::BrickDir(v1::BrickDir {
                        mount_point: spec.brick_root(&server.name),
                        dir: volume.brick_dir.clone(),
                    }),
                ));
                tasks.push(task(format!("selinux {brick}"), Kind::BrickSelinux(v1::BrickSelinux { path: brick })));
            }
            // TLS files and secure-access before glusterd (re)starts, so it starts with them.
            tasks.extend(gluster_tls::host_task(spec));
            if let Some(uuid) = resets.get(server.name.as_str()) {
                tasks.push(task(
                    "fresh glusterd UUID",
                    Kind::ResetGlusterdUuid(v1::ResetGlusterdUuid { current_uuid: (*uuid).to_owned() }),
                ));
            }
            tasks.push(task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {})));
            tasks.push(task("fuse", Kind::EnsureFuse(v1::EnsureFuse {})));
            HostBatch { host: server.name.clone(), tasks }
        })
        .collect()
}

/// Probe every other server from the first; then the first back from the second, so the pool
/// knows the first server by name rather than by address; then the barrier on every server at
/// once: each waits until it sees all the others (by name or address) in the pool, connected.
fn pool(spec: &Spec) -> Vec<Vec<HostBatch>> {
    let members = spec.members();
    let [first, second, ..] = members.as_slice() else { return Vec::new() };
    let probe = |from: &str, peers: Vec<String>| HostBatch {
        host: from.to_owned(),
        tasks: vec![task(
            format!("probe {}", peers.join(", ")),
            Kind::ProbePeers(v1::ProbePeers { peers, timeout_seconds: 0 }),
        )],
    };
    let barrier = |server: &crate::spec::Server| {
        let peers = members
            .iter()
            .filter(|other| other.name != server.name)
            .map(|other| v1::HostEntry { name: other.name.clone(), address: other.address.clone() })
            .collect();
        HostBatch {
            host: server.name.clone(),
            tasks: vec![task("peers connected", Kind::AwaitPeers(v1::AwaitPeers { peers, timeout_seconds: 0 }))],
        }
    };
    vec![
        vec![probe(&first.name, members[1..].iter().map(|s| s.name.clone()).collect())],
        vec![probe(&second.name, vec![first.name.clone()])],
        members.iter().map(|s| barrier(s)).collect(),
    ]
}

/// The bricks of a volume in replica-set order: one brick per volume server that is not
/// The rebalance phase: the first member server rebalances every volume whose kept bricks
/// make more than one distribute set (none: no such volume).
fn rebalance(spec: &Spec) -> Result<Option<PhasePlan>, PhaseError> {
    let Some(first) = spec.members().first().copied() else { return Ok(None) };
    let mut tasks = Vec::new();
    for volume in &spec.volumes {
        let layout =
            volume.layout().map_err(|e| PhaseError::Volume { volume: volume.name.clone(), message: e.to_string() })?;
        tasks.extend(migrate::rebalance_task(spec, volume, layout));
    }
    Ok((!tasks.is_empty()).then(|| PhasePlan {
        phase: Phase::Rebalance,
        steps: vec![vec![HostBatch { host: first.name.clone(), tasks }]],
    }))
}

/// `DetachPeers` of the servers leaving the pool, run after every volume moved their bricks
/// off: those drained (`drain = true`) and those another server `replaces`.
pub(crate) fn detach_task(spec: &Spec) -> Option<v1::Task> {
    let drained = spec.servers.iter().filter(|s| s.drain).map(|s| s.name.clone());
    let peers: Vec<String> = drained.chain(spec.servers.iter().filter_map(|s| s.replaces.clone())).collect();
    (!peers.is_empty()).then(|| {
        task(format!("detach leaving servers {}", peers.join(", ")), Kind::DetachPeers(v1::DetachPeers { peers }))
    })
}

/// drained, so every set of consecutive bricks lies on distinct hosts.
pub fn bricks(spec: &Spec, volume: &crate::spec::Volume) -> Vec<v1::Brick> {
    spec.volume_members(volume)
        .iter()
        .map(|s| v1::Brick { host: s.name.clone(), path: spec.brick_path(&s.name, &volume.brick_dir) })
        .collect()
}

/// The volume option that names who may connect to a volume's bricks.
pub const AUTH_ALLOW: &str = "auth.allow";

/// `auth_allow = ["*"]`: everyone, gluster's own default value of `auth.allow`, which Brickyard
/// then does not set (a pool built by hand without it).
pub const AUTH_ALLOW_EVERYONE: &str = "*";

/// `auth.allow` for `volume`: every server of the pool (their self-heal, rebalance and
/// management daemons connect to the bricks too), the clients that mount it, then the spec's
/// `auth_allow` additions; each once, in that order. `["*"]`: everyone.
pub fn auth_allow(spec: &Spec, volume: &crate::spec::Volume) -> String {
    if admits_everyone(volume) {
        return AUTH_ALLOW_EVERYONE.to_owned();
    }
    let mounting = spec.clients.iter().filter(|c| c.mounts.iter().any(|m| m.volume == volume.name));
    let mut admitted: Vec<&str> = Vec::new();
    for address in spec
        .servers
        .iter()
        .map(|s| s.address.as_str())
        .chain(mounting.map(|c| c.address.as_str()))
        .chain(volume.auth_allow.iter().map(String::as_str))
    {
        if !admitted.contains(&address) {
            admitted.push(address);
        }
    }
    admitted.join(",")
}

fn admits_everyone(volume: &crate::spec::Volume) -> bool {
    volume.auth_allow.iter().any(|a| a == AUTH_ALLOW_EVERYONE)
}

/// The options `volume` is ensured with: the spec's, plus `auth.allow` (unless the spec leaves
/// it at gluster's default, everyone) and the TLS options.
fn volume_options(spec: &Spec, volume: &crate::spec::Volume) -> BTreeMap<String, String> {
    let mut options = volume.options.clone();
    if !admits_everyone(volume) {
        options.insert(AUTH_ALLOW.to_owned(), auth_allow(spec, volume));
    }
    options.extend(gluster_tls::volume_options(spec, volume));
    options
}

/// Every brick server checks its bricks (all at once), then the first server ensures the volumes.
/// Around each volume, the drain of its drained servers' bricks before it (`crate::migrate`);
/// the drained servers' detach after them all.
fn volumes(spec: &Spec) -> Result<Vec<Vec<HostBatch>>, PhaseError> {
    let Some(first) = spec.members().first().copied() else { return Ok(Vec::new()) };
    let mut tasks = Vec::new();
    for volume in &spec.volumes {
        let volume_layout =
            volume.layout().map_err(|e| PhaseError::Volume { volume: volume.name.clone(), message: e.to_string() })?;
        // A drain first: the TLS guard may stop the volume, and bricks leave only a started one.
        tasks.extend(migrate::drain_task(spec, volume));
        tasks.extend(gluster_tls::volume_task(spec, volume));
        tasks.push(task(
            format!("volume {}", volume.name),
            Kind::EnsureVolume(v1::EnsureVolume {
                name: volume.name.clone(),
                layout: Some(volume_layout.to_proto()),
                bricks: bricks(spec, volume),
                options: volume_options(spec, volume).into_iter().collect(),
                allow_replica2: volume.allow_replica2,
                force: volume.force,
                leaving: migrate::leaving(spec, volume),
                replaces: crate::replacements::of_volume(spec, volume),
                heal_timeout_seconds: 0,
            }),
        ));
    }
    // After every volume moved the leaving servers' bricks off.
    tasks.extend(detach_task(spec));
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let brick_checks = spec
        .servers
        .iter()
        .filter_map(|server| {
            let bricks: Vec<v1::LocalBrick> = spec
                .volumes
                .iter()
                .filter(|v| spec.volume_members(v).iter().any(|s| s.name == server.name))
                .map(|v| v1::LocalBrick {
                    volume: v.name.clone(),
                    path: spec.brick_path(&server.name, &v.brick_dir),
                    mount_point: spec.brick_root(&server.name),
                    force: v.force,
                })
                .collect();
            (!bricks.is_empty()).then(|| HostBatch {
                host: server.name.clone(),
                tasks: vec![
                    task("bricks", Kind::EnsureBricks(v1::EnsureBricks { bricks: bricks.clone() })),
                    task(
                        "reset empty bricks",
                        Kind::ResetEmptyBricks(v1::ResetEmptyBricks { bricks, heal_timeout_seconds: 0 }),
                    ),
                ],
            })
        })
        .collect();
    Ok(vec![brick_checks, vec![HostBatch { host: first.name.clone(), tasks }]])
}

fn clients(spec: &Spec) -> Vec<HostBatch> {
    spec.clients
        .iter()
        .map(|client| {
            let mut tasks = vec![
                packages_task(spec, v1::PackageRole::Client),
                hosts_task(spec),
                task("fuse", Kind::EnsureFuse(v1::EnsureFuse {})),
            ];
            tasks.extend(gluster_tls::host_task(spec));
            for mount in &client.mounts {
                let servers = spec
                    .volume(&mount.volume)
                    .map(|v| spec.volume_members(v).iter().map(|s| s.name.clone()).collect())
                    .unwrap_or_default();
                tasks.push(task(
                    format!("mount {} on {}", mount.volume, mount.path),
                    Kind::MountGlusterVolume(v1::MountGlusterVolume {
                        volume: mount.volume.clone(),
                        servers,
                        mount_point: mount.path.clone(),
                    }),
                ));
            }
            HostBatch { host: client.name.clone(), tasks }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SPEC: &str = r#"version = 1
[pool]
name = "lab"
[[server]]
name = "s1"
address = "10.0.0.1"
disk = { device = "/dev/loop0", mount = "/vdisk" }
[[server]]
name = "s2"
address = "10.0.0.2"
disk = { device = "/dev/loop1", mount = "/vdisk", filesystem = "ext4", table = "msdos" }
[[server]]
name = "s3"
address = "10.0.0.3"
[[volume]]
name = "arb"
type = "arbiter"
brick_dir = "brick1"
force = true
options = { "performance.cache-size" = "64MB" }
[[volume]]
name = "two"
type = "replicate"
replica = 2
allow_replica2 = true
servers = ["s2", "s1"]
brick_dir = "brick2"
[[client]]
name = "c1"
address = "10.0.0.21"
mounts = [{ volume = "arb", path = "/a" }, { volume = "two", path = "/b" }]
"#;

    fn spec() -> Spec {
        crate::validate::parse(SPEC, Path::new("cluster.toml")).unwrap()
    }

    fn ids(batch: &HostBatch) -> Vec<&str> {
        batch.tasks.iter().map(|t| t.id.as_str()).collect()
    }

    fn facts(uuids: &[(&str, &str)]) -> BTreeMap<String, v1::Facts> {
        uuids
            .iter()
            .map(|(h, u)| (h.to_string(), v1::Facts { glusterd_uuid: u.to_string(), ..Default::default() }))
            .collect()
    }

    #[test]
    fn phases_in_seed_order() {
        let phases = build(&spec(), &BTreeMap::new()).unwrap();
        let order: Vec<Phase> = phases.iter().map(|p| p.phase).collect();
        assert_eq!(order, [Phase::Servers, Phase::Pool, Phase::Volumes, Phase::Clients]);

        let servers = &phases[0].steps[0];
        assert_eq!(
            ids(&servers[0]),
            [
                "packages (server)",
                "/etc/hosts",
                "firewall ports",
                "partition /dev/loop0",
                "filesystem on /dev/loop0",
                "mount /vdisk",
                "brick dir /vdisk/brick1",
                "selinux /vdisk/brick1",
                "brick dir /vdisk/brick2",
                "selinux /vdisk/brick2",
                "gluster tls",
                "glusterd",
                "fuse"
            ]
        );
        let Some(Kind::BrickSelinux(label)) = &servers[0].tasks[7].kind else { panic!() };
        assert_eq!(label.path, "/vdisk/brick1");
        // No disk: only the arbiter volume (force) has a brick there, on the root filesystem.
        assert_eq!(
            ids(&servers[2]),
            [
                "packages (server)",
                "/etc/hosts",
                "firewall ports",
                "brick dir /brick1",
                "selinux /brick1",
                "gluster tls",
                "glusterd",
                "fuse"
            ]
        );
        let Some(Kind::MakeFilesystem(mkfs)) = &servers[1].tasks[4].kind else { panic!() };
        assert_eq!(mkfs.filesystem(), v1::FilesystemType::Ext4);
        let Some(Kind::EnsureHosts(hosts)) = &servers[1].tasks[1].kind else { panic!() };
        assert_eq!(hosts.entries.len(), 4);

        let pool = &phases[1].steps;
        assert_eq!((pool[0][0].host.as_str(), ids(&pool[0][0])), ("s1", vec!["probe s2, s3"]));
        assert_eq!((pool[1][0].host.as_str(), ids(&pool[1][0])), ("s2", vec!["probe s1"]));
        // The barrier: every server, each waiting for all the others (by name or address).
        assert_eq!(pool[2].iter().map(|b| b.host.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3"]);
        let Some(Kind::AwaitPeers(barrier)) = &pool[2][1].tasks[0].kind else { panic!() };
        let peers: Vec<_> = barrier.peers.iter().map(|p| format!("{} {}", p.name, p.address)).collect();
        assert_eq!(peers, ["s1 10.0.0.1", "s3 10.0.0.3"]);

        // Bricks checked on every brick server before the volumes are ensured.
        let checks = &phases[2].steps[0];
        assert_eq!(checks.iter().map(|b| b.host.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3"]);
        let Some(Kind::EnsureBricks(s1)) = &checks[0].tasks[0].kind else { panic!() };
        let s1: Vec<_> =
            s1.bricks.iter().map(|b| (b.volume.as_str(), b.path.as_str(), b.mount_point.as_str(), b.force)).collect();
        assert_eq!(s1, [("arb", "/vdisk/brick1", "/vdisk", true), ("two", "/vdisk/brick2", "/vdisk", false)]);
        let Some(Kind::EnsureBricks(s3)) = &checks[2].tasks[0].kind else { panic!() };
        assert_eq!(
            (s3.bricks.len(), s3.bricks[0].path.as_str(), s3.bricks[0].mount_point.as_str()),
            (1, "/brick1", "/")
        );

        let volumes = &phases[2].steps[1];
        assert_eq!(volumes.len(), 1);
        let ids_of_volumes: Vec<&str> = volumes[0].tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids_of_volumes, ["volume arb tls", "volume arb", "volume two tls", "volume two"]);
        let Some(Kind::EnsureVolume(arb)) = &volumes[0].tasks[1].kind else { panic!() };
        let layout = arb.layout.unwrap();
        assert_eq!((layout.r#type(), layout.replica, layout.arbiter), (v1::VolumeType::Arbiter, 3, 1));
        let bricks: Vec<_> = arb.bricks.iter().map(|b| format!("{}:{}", b.host, b.path)).collect();
        assert_eq!(bricks, ["s1:/vdisk/brick1", "s2:/vdisk/brick1", "s3:/brick1"]);
        assert!(arb.force);
        // Every server, then the clients that mount the volume.
        assert_eq!(arb.options["auth.allow"], "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.21");
        assert_eq!(arb.options["performance.cache-size"], "64MB");
        let Some(Kind::EnsureVolume(two)) = &volumes[0].tasks[3].kind else { panic!() };
        assert!(two.allow_replica2);
        assert_eq!(two.bricks[0].host, "s2");

        let clients = &phases[3].steps[0];
        assert_eq!(
            ids(&clients[0]),
            ["packages (client)", "/etc/hosts", "fuse", "gluster tls", "mount arb on /a", "mount two on /b"]
        );
        let Some(Kind::MountGlusterVolume(m)) = &clients[0].tasks[5].kind else { panic!() };
        assert_eq!(m.servers, ["s2", "s1"]);
    }

    #[test]
    fn cinder_disks_and_package_sources_reach_the_tasks() {
        let text = SPEC
            .replace(
                "disk = { device = \"/dev/loop0\",",
                "disk = { cinder_volume = \"ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4\",",
            )
            .replace("name = \"lab\"", "name = \"lab\"\ngluster_version = \"10\"");
        let spec = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&spec, &BTreeMap::new()).unwrap();
        let s1 = &phases[0].steps[0][0];
        let id = "ec4eea2a-f0d9-4614-bc00-2b1d7fd134f4";
        assert_eq!(
            ids(s1)[3..5],
            [format!("partition Cinder volume {id}"), format!("filesystem on Cinder volume {id}")]
        );
        let disks: Vec<(&str, &str)> = s1.tasks[3..6]
            .iter()
            .map(|t| match &t.kind {
                Some(Kind::PartitionDisk(t)) => (t.disk.as_str(), t.cinder_volume.as_str()),
                Some(Kind::MakeFilesystem(t)) => (t.disk.as_str(), t.cinder_volume.as_str()),
                Some(Kind::MountFilesystem(t)) => (t.disk.as_str(), t.cinder_volume.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(disks, [("", id), ("", id), ("", id)]);
        let Some(Kind::EnsurePackages(packages)) = &s1.tasks[0].kind else { panic!() };
        assert_eq!((packages.gluster_version.as_str(), packages.gluster_repo.as_str()), ("10", ""));
        let Some(Kind::EnsurePackages(client)) = &phases[3].steps[0][0].tasks[0].kind else { panic!() };
        assert_eq!((client.role(), client.gluster_version.as_str()), (v1::PackageRole::Client, "10"));
    }

    #[test]
    fn duplicate_uuids_are_refused_naming_both_hosts() {
        let err = build(&spec(), &facts(&[("s1", "u1"), ("s2", "u2"), ("s3", "u1")])).unwrap_err();
        assert_eq!(err, PhaseError::DuplicateUuid { uuid: "u1".into(), first: "s1".into(), second: "s3".into() });
        assert!(err.to_string().contains("s1 and s3"));
    }

    #[test]
    fn duplicate_uuids_reset_on_the_later_server_when_allowed() {
        let mut spec = spec();
        spec.pool.reset_duplicate_uuids = true;
        let phases = build(&spec, &facts(&[("s1", "u1"), ("s2", "u1"), ("s3", "")])).unwrap();
        let servers = &phases[0].steps[0];
        assert!(!ids(&servers[0]).contains(&"fresh glusterd UUID"));
        let reset = servers[1].tasks.iter().find(|t| t.id == "fresh glusterd UUID").unwrap();
        assert_eq!(reset.kind, Some(Kind::ResetGlusterdUuid(v1::ResetGlusterdUuid { current_uuid: "u1".into() })));
        // Before glusterd is ensured, so it comes up with the new UUID (and TLS before both).
        assert_eq!(
            ids(&servers[1]).iter().rev().take(4).collect::<Vec<_>>(),
            [&"fuse", &"glusterd", &"fresh glusterd UUID", &"gluster tls"]
        );
    }

    #[test]
    fn auth_allow_is_widened_by_the_spec_once_per_address() {
        let text = SPEC.replace(
            "brick_dir = \"brick2\"",
            "brick_dir = \"brick2\"\nauth_allow = [\"192.0.2.7\", \"10.0.0.21\", \"2001:db8::7\"]",
        );
        let spec = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&spec, &BTreeMap::new()).unwrap();
        let Some(Kind::EnsureVolume(two)) = &phases[2].steps[1][0].tasks[3].kind else { panic!() };
        assert_eq!(two.options["auth.allow"], "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.21,192.0.2.7,2001:db8::7");
    }

    /// What an adopted pool's spec says: firewall left alone, /etc/hosts naming the servers
    /// only, every address admitted.
    #[test]
    fn firewall_hosts_and_auth_allow_can_be_left_as_built_by_hand() {
        let text = SPEC
            .replace("name = \"lab\"", "name = \"lab\"\nfirewall = false\netc_hosts = \"servers\"")
            .replace("brick_dir = \"brick2\"", "brick_dir = \"brick2\"\nauth_allow = [\"*\"]");
        let spec = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&spec, &BTreeMap::new()).unwrap();
        let s1 = &phases[0].steps[0][0];
        assert!(!ids(s1).contains(&"firewall ports"), "{:?}", ids(s1));
        let Some(Kind::EnsureHosts(hosts)) = &s1.tasks[1].kind else { panic!() };
        assert_eq!(hosts.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3"]);
        let two = phases[2].steps[1][0]
            .tasks
            .iter()
            .find_map(|t| match &t.kind {
                Some(Kind::EnsureVolume(v)) if v.name == "two" => Some(v),
                _ => None,
            })
            .expect("volume two is ensured");
        assert!(!two.options.contains_key("auth.allow"), "left at gluster's default: {:?}", two.options);

        let mixed = text.replace("auth_allow = [\"*\"]", "auth_allow = [\"*\", \"192.0.2.7\"]");
        let err = crate::validate::parse(&mixed, Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("volume[1].auth_allow[0]: \"*\" admits everyone and stands alone"), "{err}");
    }

    #[test]
    fn tls_tasks_and_options_by_default_none_with_tls_off() {
        let phases = build(&spec(), &BTreeMap::new()).unwrap();
        let Some(Kind::GlusterTls(host)) = &phases[0].steps[0][0].tasks[10].kind else { panic!() };
        assert_eq!((host.certificate_depth, host.allow_restart), (1, false));
        let Some(Kind::VolumeTls(guard)) = &phases[2].steps[1][0].tasks[2].kind else { panic!() };
        assert_eq!((guard.volume.as_str(), guard.allow_restart), ("two", false));
        let Some(Kind::EnsureVolume(two)) = &phases[2].steps[1][0].tasks[3].kind else { panic!() };
        let tls: Vec<_> = crate::gluster_tls::OPTIONS.iter().map(|k| (*k, two.options[*k].as_str())).collect();
        // Names, as the host certificates carry them: every server, then the volume's clients.
        assert_eq!(
            tls,
            [
                ("client.ssl", "on"),
                ("server.ssl", "on"),
                ("ssl.certificate-depth", "1"),
                ("auth.ssl-allow", "s1,s2,s3,c1")
            ]
        );

        let text = SPEC.replace("name = \"lab\"", "name = \"lab\"\ntls_restart = true");
        let restart = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&restart, &BTreeMap::new()).unwrap();
        let Some(Kind::VolumeTls(guard)) = &phases[2].steps[1][0].tasks[0].kind else { panic!() };
        assert!(guard.allow_restart);

        let text = SPEC.replace("name = \"lab\"", "name = \"lab\"\ntls = false");
        let plain = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&plain, &BTreeMap::new()).unwrap();
        let all = phases.iter().flat_map(|p| p.steps.iter().flatten()).flat_map(|b| b.tasks.iter());
        assert!(!all.clone().any(|t| t.id.contains("tls")), "TLS tasks with tls = false");
        let Some(Kind::EnsureVolume(arb)) = &phases[2].steps[1][0].tasks[0].kind else { panic!() };
        assert!(!arb.options.contains_key("server.ssl"), "{:?}", arb.options);
    }

    #[test]
    fn one_server_has_no_pool_step() {
        let text = SPEC.split("[[server]]\nname = \"s2\"").next().unwrap().to_owned()
            + "[[volume]]\nname = \"d\"\ntype = \"distribute\"\nbrick_dir = \"b\"\n";
        let spec = crate::validate::parse(&text, Path::new("c.toml")).unwrap();
        let phases = build(&spec, &BTreeMap::new()).unwrap();
        assert!(phases[1].steps.is_empty());
        assert_eq!(phases[2].steps.len(), 2, "a single server still checks its brick");
        assert!(phases[3].steps[0].is_empty());
    }
}
