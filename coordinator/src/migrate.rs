//! Data migration in the plan: which volumes get a drain (`RemoveBricks` of the bricks of
//! servers marked `drain = true`, before the volume is ensured), which drained servers are
//! detached, and the rebalance phase: every volume of more than one distribute set gets a
//! `RebalanceVolume` (the agent starts one only when a brick server missed the last one, i.e.
//! after an expansion), run after the clients phase because clients switch to a grown volume's
//! graph at `add-brick` and, until /etc/hosts lets them resolve the new servers, the files a
//! rebalance moves there vanish from their view (seen in the lab: 90 of 200 files). Also the
//! refusal, before any host is changed, of a spec that dropped a server still holding bricks
//! (`plan` and `apply` both ask the pool through one member's `GetGlusterStatus`). Pure but
//! for that one call.

use std::collections::BTreeMap;

use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::agents::AgentError;
use crate::spec::{Layout, Spec, Volume};

/// The bricks of `volume` on its drained servers, in brick order.
pub fn leaving(spec: &Spec, volume: &Volume) -> Vec<v1::Brick> {
    spec.volume_servers(volume)
        .into_iter()
        .filter(|s| s.drain)
        .map(|s| v1::Brick { host: s.name.clone(), path: spec.brick_path(&s.name, &volume.brick_dir) })
        .collect()
}

/// `RemoveBricks` for `volume`'s drained bricks (none: nothing drains).
pub fn drain_task(spec: &Spec, volume: &Volume) -> Option<v1::Task> {
    let bricks = leaving(spec, volume);
    (!bricks.is_empty()).then(|| v1::Task {
        id: format!("drain {}", volume.name),
        kind: Some(Kind::RemoveBricks(v1::RemoveBricks { volume: volume.name.clone(), bricks, timeout_seconds: 0 })),
    })
}

/// `RebalanceVolume` for a volume whose kept bricks make more than one distribute set.
pub fn rebalance_task(spec: &Spec, volume: &Volume, layout: Layout) -> Option<v1::Task> {
    let servers: Vec<String> = spec.volume_members(volume).iter().map(|s| s.name.clone()).collect();
    (servers.len() > layout.set_size()).then(|| v1::Task {
        id: format!("rebalance {}", volume.name),
        kind: Some(Kind::RebalanceVolume(v1::RebalanceVolume {
            volume: volume.name.clone(),
            timeout_seconds: 0,
            servers,
        })),
    })
}

/// Servers of the live pool that the spec no longer lists, with the bricks they hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", removed.iter().map(|(server, bricks)| format!(
    "server {server} is not in the spec but holds bricks {}: its files would be lost; put its [[server]] entry \
     back with `drain = true` to move them to the other servers and detach it (nothing was changed)",
    bricks.join(", ")
)).collect::<Vec<_>>().join("; "))]
pub struct RemovedServers {
    /// (peer name, `host:path (volume V)` of each brick).
    pub removed: Vec<(String, Vec<String>)>,
}

/// The bricks of `status` (one server's view of the pool) on hosts the spec does not list (a
/// server another one `replaces` is accounted for: its bricks move to the replacement).
pub fn removed_servers(spec: &Spec, status: &v1::GlusterStatus) -> Result<(), RemovedServers> {
    let listed = |host: &str| {
        spec.servers.iter().any(|s| s.name.eq_ignore_ascii_case(host) || s.address == host) || spec.is_replaced(host)
    };
    let mut removed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for volume in &status.volumes {
        for brick in volume.bricks.iter().filter(|b| !listed(&b.host)) {
            removed
                .entry(&brick.host)
                .or_default()
                .push(format!("{}:{} (volume {})", brick.host, brick.path, volume.name));
        }
    }
    if removed.is_empty() {
        return Ok(());
    }
    Err(RemovedServers { removed: removed.into_iter().map(|(h, b)| (h.to_owned(), b)).collect() })
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Removed(#[from] RemovedServers),
    #[error("cannot read the pool to check for removed servers: {0}")]
    Agent(#[from] AgentError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::Phase;
    use crate::test_spec::{self, SpecText};

    /// Servers s1 to s`servers` in one replica-2 volume gv, those numbered in `draining` with
    /// `drain = true`.
    fn gv_pool(servers: u8, draining: &[u8]) -> SpecText {
        let text = (1..=servers).fold(SpecText::pool("lab"), |text, n| {
            let text = text.numbered_server(n);
            if draining.contains(&n) {
                text.set("drain", "true")
            } else {
                text
            }
        });
        text.volume("gv", "replicate", "b").replica(2)
    }

    #[test]
    fn drained_servers_leave_volumes_and_pool() {
        let spec = gv_pool(4, &[3, 4]).spec();
        let phases = crate::phases::build(&spec, &BTreeMap::new()).unwrap();
        // The pool is probed and awaited among the members only.
        let pool = &phases[1].steps;
        assert_eq!(pool[2].iter().map(|b| b.host.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
        let volumes = &phases[2].steps;
        assert_eq!(volumes[0].iter().map(|b| b.host.as_str()).collect::<Vec<_>>(), ["s1", "s2"], "brick checks");
        let ids: Vec<&str> = volumes[1][0].tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["drain gv", "volume gv tls", "volume gv", "detach leaving servers s3, s4"]);
        assert_eq!(phases.len(), 4, "one set left: no rebalance phase");
        let Some(Kind::RemoveBricks(drain)) = &volumes[1][0].tasks[0].kind else { panic!() };
        let bricks: Vec<_> = drain.bricks.iter().map(|b| format!("{}:{}", b.host, b.path)).collect();
        assert_eq!(bricks, ["s3:/vdisk/b", "s4:/vdisk/b"]);
        let Some(Kind::EnsureVolume(volume)) = &volumes[1][0].tasks[2].kind else { panic!() };
        assert_eq!((volume.bricks.len(), volume.leaving.len()), (2, 2));
    }

    #[test]
    fn only_whole_sets_drain() {
        let e = test_spec::parse(gv_pool(4, &[4]).text()).unwrap_err().to_string();
        assert!(e.contains("volume \"gv\": s4 drains but s3 of the same set does not"), "{e}");
        let e = test_spec::parse(gv_pool(4, &[1, 2, 3, 4]).text()).unwrap_err().to_string();
        assert!(e.contains("every server has drain = true"), "{e}");
    }

    #[test]
    fn a_grown_volume_is_rebalanced_after_it_is_ensured() {
        let spec = gv_pool(4, &[]).spec();
        let phases = crate::phases::build(&spec, &BTreeMap::new()).unwrap();
        let order: Vec<Phase> = phases.iter().map(|p| p.phase).collect();
        assert_eq!(order, [Phase::Servers, Phase::Pool, Phase::Volumes, Phase::Clients, Phase::Rebalance]);
        let ids: Vec<&str> = phases[2].steps[1][0].tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["volume gv tls", "volume gv"]);
        let rebalance = &phases[4].steps[0][0];
        assert_eq!(rebalance.host, "s1");
        let Some(Kind::RebalanceVolume(r)) = &rebalance.tasks[0].kind else { panic!() };
        assert_eq!(r.servers, ["s1", "s2", "s3", "s4"]);
    }

    #[test]
    fn a_removed_server_with_bricks_is_named_with_what_to_set() {
        let spec = gv_pool(4, &[]).spec();
        let brick = |host: &str| v1::BrickStatus { host: host.into(), path: "/vdisk/b".into(), ..Default::default() };
        let mut status = v1::GlusterStatus {
            volumes: vec![v1::VolumeStatus {
                name: "gv".into(),
                bricks: vec![brick("s1"), brick("s2"), brick("s3"), brick("s4")],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(removed_servers(&spec, &status), Ok(()));
        // s3 and s4 dropped from the spec (the volume is one set of s1, s2 there).
        let without = gv_pool(2, &[]).spec();
        let e = removed_servers(&without, &status).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "server s3 is not in the spec but holds bricks s3:/vdisk/b (volume gv): its files would be lost; put its \
                 [[server]] entry back with `drain = true` to move them to the other servers and detach it (nothing was \
                 changed); server s4 "
            ),
            "{e}"
        );
        status.volumes[0].bricks.truncate(2);
        assert_eq!(removed_servers(&without, &status), Ok(()));
    }
}
