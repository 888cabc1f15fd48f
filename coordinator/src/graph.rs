//! The task graph of `apply`: the phases' batches (`crate::phases`) cut into nodes — one host's
//! tasks each — with the nodes each one really needs. Every dependency rule of apply is written
//! here, once:
//! - a server's batch becomes four nodes: "packages" (packages, /etc/hosts) needs nothing;
//!   "glusterd" (TLS files, UUID reset, glusterd) and "firewall" (which reads the brick port
//!   range from the package's glusterd.vol) need its packages; "disk" (partition, mkfs, mount,
//!   brick dirs, SELinux labels, FUSE) needs nothing — so glusterd starts while the disk is
//!   prepared and the firewall written;
//! - a probe needs the glusterd and firewall nodes of its own host and of every server it
//!   probes (not their disks); each later pool step (the probe back, then the barrier) needs
//!   the step before it;
//! - a server's brick check needs its disk node and the pool being formed (the barrier, or
//!   every server's glusterd and firewall when there is no pool step);
//! - each volume (its drain, TLS guard and ensure) needs every brick check, the pool and the
//!   retire nodes of clients that left the spec (they unmount before `auth.allow` drops them);
//!   the detach of leaving servers needs every volume;
//! - a client's "prep" node (packages, /etc/hosts, FUSE, TLS files) needs nothing; each of its
//!   mounts needs its prep, its own retire node (mounts gone from the spec) and the volume it
//!   mounts;
//! - rebalance needs every volume, detach and mount (the clients know every server by then);
//! - at most [`MOUNTS_AT_ONCE`] client mounts run at once, whatever they need (each one loads
//!   the servers).
//!
//! Nodes keep their phase as a label, so output stays by phase. Pure.

use std::collections::BTreeMap;
use std::fmt;

use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::phases::{Phase, PhasePlan};
use crate::spec::Spec;

/// A node's index in [`Graph::nodes`].
pub type NodeId = usize;

/// One host's tasks that run as one `Apply` batch once every node in `needs` succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub phase: Phase,
    /// What the node does on its host: `glusterd`, `disk`, `probe`, `volume gluV1`, `prep`, ...
    pub name: String,
    pub host: String,
    pub tasks: Vec<v1::Task>,
    pub needs: Vec<NodeId>,
    /// A client mount: one of at most [`MOUNTS_AT_ONCE`] running at once.
    pub mount: bool,
}

/// How many client mounts run at once. Each fetches its volume file from glusterd and makes a
/// TLS connection to every brick: 98 at once against two lab servers timed 19 of them out
/// ("first lookup on root failed"); a real pool's servers meet the same burst.
pub const MOUNTS_AT_ONCE: usize = 16;

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.name, self.host)
    }
}

/// Every node of a run; a node needs only nodes before it (ids are in dependency order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

/// The node of a server's batch a task belongs to.
fn server_part(kind: Option<&Kind>) -> &'static str {
    match kind {
        Some(Kind::EnsurePackages(_) | Kind::EnsureHosts(_)) => PACKAGES,
        Some(Kind::OpenPorts(_)) => FIREWALL,
        Some(
            Kind::PartitionDisk(_)
            | Kind::MakeFilesystem(_)
            | Kind::MountFilesystem(_)
            | Kind::BrickDir(_)
            | Kind::BrickSelinux(_)
            | Kind::EnsureFuse(_),
        ) => DISK,
        _ => GLUSTERD,
    }
}

const PACKAGES: &str = "packages";
const GLUSTERD: &str = "glusterd";
const FIREWALL: &str = "firewall";
const DISK: &str = "disk";

impl Graph {
    /// The graph of `plans` (in the order `crate::phases::build` and the retire survey make
    /// them) for `spec`. Empty batches make no node.
    pub fn build(spec: &Spec, plans: Vec<PhasePlan>) -> Graph {
        let mut graph = Graph::default();
        // Retire nodes of the spec's clients (their mounts gone) and of clients that left it.
        let mut retire: BTreeMap<String, NodeId> = BTreeMap::new();
        let mut retired: Vec<NodeId> = Vec::new();
        // Per server: the nodes after which it serves the pool (glusterd, firewall).
        let mut serving: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        let mut disk: BTreeMap<String, NodeId> = BTreeMap::new();
        // The nodes after which the pool is formed: the last pool step (else the glusterds).
        let mut pool_ready: Vec<NodeId> = Vec::new();
        let mut bricks: Vec<NodeId> = Vec::new();
        let mut volumes: BTreeMap<String, NodeId> = BTreeMap::new();
        let mut volume_phase: Vec<NodeId> = Vec::new();
        let mut mounts: Vec<NodeId> = Vec::new();
        for plan in plans {
            match plan.phase {
                Phase::Retire => {
                    for batch in plan.steps.into_iter().flatten() {
                        let id = graph.add(Phase::Retire, "retire", &batch.host, batch.tasks, Vec::new());
                        if spec.clients.iter().any(|c| c.name == batch.host) {
                            retire.extend(id.map(|id| (batch.host.clone(), id)));
                        } else {
                            retired.extend(id);
                        }
                    }
                }
                Phase::Servers => {
                    for batch in plan.steps.into_iter().flatten() {
                        let host = batch.host;
                        let mut parts: BTreeMap<&str, Vec<v1::Task>> = BTreeMap::new();
                        for task in batch.tasks {
                            parts.entry(server_part(task.kind.as_ref())).or_default().push(task);
                        }
                        let mut part = |name| parts.remove(name).unwrap_or_default();
                        let packages: Vec<NodeId> = graph
                            .add(Phase::Servers, PACKAGES, &host, part(PACKAGES), Vec::new())
                            .into_iter()
                            .collect();
                        let glusterd = graph.add(Phase::Servers, GLUSTERD, &host, part(GLUSTERD), packages.clone());
                        let firewall = graph.add(Phase::Servers, FIREWALL, &host, part(FIREWALL), packages);
                        serving.insert(host.clone(), glusterd.into_iter().chain(firewall).collect());
                        disk.extend(
                            graph.add(Phase::Servers, DISK, &host, part(DISK), Vec::new()).map(|id| (host, id)),
                        );
                    }
                    pool_ready = serving.values().flatten().copied().collect();
                }
                Phase::Pool => {
                    let mut previous: Option<Vec<NodeId>> = None;
                    for step in plan.steps {
                        let mut this_step = Vec::new();
                        for batch in step {
                            let needs = match &previous {
                                Some(previous) => previous.clone(),
                                None => probed_hosts(&batch.host, &batch.tasks)
                                    .iter()
                                    .filter_map(|host| serving.get(host))
                                    .flatten()
                                    .copied()
                                    .collect(),
                            };
                            let name = pool_step_name(&batch.tasks);
                            this_step.extend(graph.add(Phase::Pool, name, &batch.host, batch.tasks, needs));
                        }
                        if !this_step.is_empty() {
                            previous = Some(this_step);
                        }
                    }
                    if let Some(last) = previous {
                        pool_ready = last;
                    }
                }
                Phase::Volumes => {
                    for batch in plan.steps.into_iter().flatten() {
                        if batch.tasks.iter().any(|t| matches!(t.kind, Some(Kind::EnsureBricks(_)))) {
                            let needs = disk.get(&batch.host).copied().into_iter().chain(pool_ready.iter().copied());
                            bricks.extend(graph.add(
                                Phase::Volumes,
                                "bricks",
                                &batch.host,
                                batch.tasks,
                                needs.collect(),
                            ));
                            continue;
                        }
                        let before: Vec<NodeId> = bricks.iter().chain(&pool_ready).chain(&retired).copied().collect();
                        let mut group = Vec::new();
                        let mut this_batch = Vec::new();
                        for task in batch.tasks {
                            let ensured = match &task.kind {
                                Some(Kind::EnsureVolume(v)) => Some(v.name.clone()),
                                _ => None,
                            };
                            group.push(task);
                            if let Some(volume) = ensured {
                                let name = format!("volume {volume}");
                                let tasks = std::mem::take(&mut group);
                                if let Some(id) = graph.add(Phase::Volumes, &name, &batch.host, tasks, before.clone()) {
                                    volumes.insert(volume, id);
                                    this_batch.push(id);
                                }
                            }
                        }
                        // What follows the last volume (the detach of leaving servers).
                        let needs = before.iter().chain(&this_batch).copied().collect();
                        this_batch.extend(graph.add(Phase::Volumes, "detach", &batch.host, group, needs));
                        volume_phase.extend(this_batch);
                    }
                }
                Phase::Clients => {
                    for batch in plan.steps.into_iter().flatten() {
                        let (mount_tasks, prep_tasks): (Vec<_>, Vec<_>) =
                            batch.tasks.into_iter().partition(|t| mounted_volume(t).is_some());
                        let prep = graph.add(Phase::Clients, "prep", &batch.host, prep_tasks, Vec::new());
                        let own: Vec<NodeId> = prep.into_iter().chain(retire.get(&batch.host).copied()).collect();
                        for task in mount_tasks {
                            let volume = mounted_volume(&task).and_then(|v| volumes.get(v)).copied();
                            let needs = own.iter().copied().chain(volume).collect();
                            let name = task.id.clone();
                            let mount = graph.add(Phase::Clients, &name, &batch.host, vec![task], needs);
                            if let Some(id) = mount {
                                graph.nodes[id].mount = true;
                            }
                            mounts.extend(mount);
                        }
                    }
                }
                Phase::Rebalance => {
                    let needs: Vec<NodeId> = volume_phase.iter().chain(&mounts).copied().collect();
                    for batch in plan.steps.into_iter().flatten() {
                        graph.add(Phase::Rebalance, "rebalance", &batch.host, batch.tasks, needs.clone());
                    }
                }
            }
        }
        graph
    }

    /// Adds a node unless it has no tasks; its id.
    fn add(
        &mut self,
        phase: Phase,
        name: &str,
        host: &str,
        tasks: Vec<v1::Task>,
        needs: Vec<NodeId>,
    ) -> Option<NodeId> {
        if tasks.is_empty() {
            return None;
        }
        let id = self.nodes.len();
        let mut needs = needs;
        needs.sort_unstable();
        needs.dedup();
        self.nodes.push(Node { id, phase, name: name.to_owned(), host: host.to_owned(), tasks, needs, mount: false });
        Some(id)
    }
}

/// The volume a client's mount task mounts (None: not a mount).
fn mounted_volume(task: &v1::Task) -> Option<&str> {
    match &task.kind {
        Some(Kind::MountGlusterVolume(mount)) => Some(&mount.volume),
        _ => None,
    }
}

/// The hosts a probe batch involves: its own and every server it probes.
fn probed_hosts(host: &str, tasks: &[v1::Task]) -> Vec<String> {
    let probed = tasks.iter().filter_map(|t| match &t.kind {
        Some(Kind::ProbePeers(p)) => Some(p.peers.clone()),
        _ => None,
    });
    std::iter::once(host.to_owned()).chain(probed.flatten()).collect()
}

fn pool_step_name(tasks: &[v1::Task]) -> &'static str {
    if tasks.iter().all(|t| matches!(t.kind, Some(Kind::AwaitPeers(_)))) {
        "barrier"
    } else {
        "probe"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::HostBatch;
    use crate::test_spec::SpecText;

    /// Servers s1 and s2 with disks; volumes v1 (replica 2) and v2 (distribute); client c1
    /// mounts both, c2 only v2.
    fn spec_text() -> SpecText {
        SpecText::pool("lab")
            .numbered_server(1)
            .numbered_server(2)
            .volume("v1", "replicate", "b1")
            .replica(2)
            .volume("v2", "distribute", "b2")
            .client("c1", "10.0.0.21")
            .set("mounts", r#"[{ volume = "v1", path = "/a" }, { volume = "v2", path = "/b" }]"#)
            .client("c2", "10.0.0.22")
            .mount("v2", "/b")
    }

    fn graph() -> Graph {
        let spec = spec_text().spec();
        let mut plans = crate::phases::build(&spec, &BTreeMap::new()).unwrap();
        let retire = |host: &str| HostBatch {
            host: host.into(),
            tasks: vec![v1::Task {
                id: "mounts gone from the spec".into(),
                kind: Some(Kind::RetireGlusterMounts(v1::RetireGlusterMounts { keep: vec![] })),
            }],
        };
        // c9 left the spec; c1 and c2 give up mounts gone from it.
        let retire = vec![retire("c1"), retire("c2"), retire("c9")];
        plans.insert(0, PhasePlan { phase: Phase::Retire, steps: vec![retire] });
        Graph::build(&spec, plans)
    }

    fn node<'a>(graph: &'a Graph, name: &str, host: &str) -> &'a Node {
        graph.nodes.iter().find(|n| n.name == name && n.host == host).unwrap_or_else(|| panic!("no {name} on {host}"))
    }

    /// Every node `id` needs, directly or through others.
    fn ancestors(graph: &Graph, id: NodeId) -> Vec<NodeId> {
        let mut seen = vec![false; graph.nodes.len()];
        let mut stack = graph.nodes[id].needs.clone();
        while let Some(next) = stack.pop() {
            if !std::mem::replace(&mut seen[next], true) {
                stack.extend(&graph.nodes[next].needs);
            }
        }
        (0..graph.nodes.len()).filter(|&n| seen[n]).collect()
    }

    fn needs(graph: &Graph, name: &str, host: &str) -> Vec<String> {
        node(graph, name, host).needs.iter().map(|&n| graph.nodes[n].to_string()).collect()
    }

    #[test]
    fn servers_split_into_packages_then_glusterd_and_firewall_and_a_disk_that_needs_nothing() {
        let graph = graph();
        let ids = |name, host| node(&graph, name, host).tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids("packages", "s1"), ["packages (server)", "/etc/hosts"]);
        assert_eq!(ids("glusterd", "s1"), ["gluster tls", "glusterd"]);
        assert_eq!(ids("firewall", "s1"), ["firewall ports"]);
        assert_eq!(
            ids("disk", "s1"),
            [
                "partition /dev/loop0",
                "filesystem on /dev/loop0",
                "mount /vdisk",
                "brick dir /vdisk/b1",
                "selinux /vdisk/b1",
                "brick dir /vdisk/b2",
                "selinux /vdisk/b2",
                "fuse"
            ]
        );
        for host in ["s1", "s2"] {
            assert!(needs(&graph, "packages", host).is_empty());
            assert_eq!(needs(&graph, "glusterd", host), [format!("packages on {host}")]);
            assert_eq!(needs(&graph, "firewall", host), [format!("packages on {host}")]);
            assert!(needs(&graph, "disk", host).is_empty());
        }
        assert!(graph.nodes.iter().all(|n| n.needs.iter().all(|&need| need < n.id)), "ids in dependency order");
    }

    #[test]
    fn probe_needs_every_glusterd_and_firewall_and_no_disk_then_the_barrier_the_probes() {
        let graph = graph();
        assert_eq!(
            needs(&graph, "probe", "s1"),
            ["glusterd on s1", "firewall on s1", "glusterd on s2", "firewall on s2"]
        );
        assert_eq!(needs(&graph, "probe", "s2"), ["probe on s1"]);
        for host in ["s1", "s2"] {
            assert_eq!(needs(&graph, "barrier", host), ["probe on s2"]);
            assert_eq!(
                needs(&graph, "bricks", host),
                [format!("disk on {host}"), "barrier on s1".into(), "barrier on s2".into()]
            );
        }
    }

    #[test]
    fn each_volume_needs_bricks_pool_and_retired_clients_and_each_mount_its_volume() {
        let graph = graph();
        let before = ["retire on c9", "barrier on s1", "barrier on s2", "bricks on s1", "bricks on s2"];
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let mut expected: Vec<String> = before.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(sorted(needs(&graph, "volume v1", "s1")), expected);
        assert_eq!(sorted(needs(&graph, "volume v2", "s1")), expected);
        let tasks: Vec<_> = node(&graph, "volume v2", "s1").tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(tasks, ["volume v2 tls", "volume v2"]);

        // Client preparation at once; a mount when its own volume is there.
        assert!(needs(&graph, "prep", "c1").is_empty());
        assert_eq!(needs(&graph, "mount v1 on /a", "c1"), ["retire on c1", "volume v1 on s1", "prep on c1"]);
        assert_eq!(needs(&graph, "mount v2 on /b", "c1"), ["retire on c1", "volume v2 on s1", "prep on c1"]);
        assert_eq!(needs(&graph, "mount v2 on /b", "c2"), ["retire on c2", "volume v2 on s1", "prep on c2"]);
        let mount = node(&graph, "mount v1 on /a", "c1");
        assert_eq!(mount.phase, Phase::Clients);
        assert!(ancestors(&graph, mount.id).iter().all(|&n| graph.nodes[n].name != "volume v2"));
        assert!(ancestors(&graph, mount.id).contains(&node(&graph, "disk", "s2").id));
    }

    #[test]
    fn rebalance_needs_every_volume_and_mount() {
        let graph = graph();
        let rebalance = node(&graph, "rebalance", "s1");
        let named: Vec<String> = rebalance.needs.iter().map(|&n| graph.nodes[n].name.clone()).collect();
        assert_eq!(named, ["volume v1", "volume v2", "mount v1 on /a", "mount v2 on /b", "mount v2 on /b"]);
    }

    #[test]
    fn one_server_volumes_need_its_glusterd_and_firewall() {
        let spec = SpecText::pool("lab").numbered_server(1).volume("d", "distribute", "b").spec();
        let graph = Graph::build(&spec, crate::phases::build(&spec, &BTreeMap::new()).unwrap());
        assert!(graph.nodes.iter().all(|n| n.phase != Phase::Pool));
        assert_eq!(needs(&graph, "bricks", "s1"), ["glusterd on s1", "firewall on s1", "disk on s1"]);
        assert_eq!(needs(&graph, "volume d", "s1"), ["glusterd on s1", "firewall on s1", "bricks on s1"]);
    }
}
