//! `DetachPeers`: servers leaving the pool (drained, or replaced by another) leave the trusted
//! pool once no volume has a brick on them (`RemoveBricks` drained them, or `EnsureVolume`
//! moved them with `replace-brick`, just before in the same batch):
//! `gluster peer detach NAME`, with `force` only for a peer that is not connected. A peer that
//! still holds bricks is not detached: the plan waits for those bricks to move, naming them,
//! and apply refuses ("not ready") if they have not. A peer the pool does not know is done.
//! Runs only the local gluster CLI.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::HostName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, PeerInfo, VolumeInfo};
use crate::host::Context;

pub struct DetachPeers {
    peers: Vec<HostName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detach {
    peer: String,
    /// `peer detach NAME force`: the peer is not connected.
    force: bool,
}

impl Detach {
    fn cli_args(&self) -> Vec<&str> {
        let mut args = vec!["peer", "detach", self.peer.as_str()];
        // Without `force`, glusterd asks the peer itself to leave the pool too, and a connected
        // peer must be told, or it would keep a pool of its own with stale volume copies. A peer
        // that is not connected (a host gone for good) cannot answer: `force` is what gluster
        // documents for it (gluster 10.3 also accepts the plain form, measured; older releases
        // are not relied on). Losing no data is this task's check, not gluster's: no volume
        // has a brick on the peer.
        args.extend(self.force.then_some("force"));
        args
    }
}

impl fmt::Display for Detach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.force {
            write!(f, "detach peer {} from the pool (not connected: peer detach force)", self.peer)
        } else {
            write!(f, "detach peer {} from the pool (peer detach)", self.peer)
        }
    }
}

/// The bricks (`VOL host:path`) that `volumes` still have on `peer`.
fn bricks_on(peer: &PeerInfo, volumes: &[VolumeInfo]) -> Vec<String> {
    volumes
        .iter()
        .flat_map(|v| v.bricks.iter().map(move |b| (v, b)))
        .filter(|(_, b)| b.host_uuid == peer.uuid || peer.known_as(&b.host))
        .map(|(v, b)| format!("{} {}", v.name, b.spec()))
        .collect()
}

impl DetachPeers {
    pub fn from_proto(task: &v1::DetachPeers) -> Result<Self, TaskError> {
        let peers = task.peers.iter().map(|p| HostName::new(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { peers })
    }
}

#[async_trait]
impl Task for DetachPeers {
    type Change = Detach;

    async fn plan(&self, ctx: &Context) -> Result<Plan<Detach>, TaskError> {
        let pool = gluster::peer_status(ctx).await?;
        let leaving: Vec<(&HostName, &PeerInfo)> = self
            .peers
            .iter()
            .filter_map(|name| pool.iter().find(|p| p.known_as(name.as_str())).map(|p| (name, p)))
            .collect();
        if leaving.is_empty() {
            return Ok(Plan::unchanged());
        }
        let volumes = gluster::volume_info(ctx).await?;
        let plan =
            Plan::of(leaving.iter().map(|(name, p)| Detach { peer: name.to_string(), force: !p.connected }).collect());
        let held: Vec<String> = leaving.iter().flat_map(|(_, p)| bricks_on(p, &volumes)).collect();
        if !held.is_empty() {
            let names: Vec<&str> = leaving.iter().map(|(name, _)| name.as_str()).collect();
            return Ok(plan.waiting_for(format!(
                "the bricks still on {} to move off (drain or replacement): {}",
                names.join(", "),
                held.join(", ")
            )));
        }
        Ok(plan)
    }

    async fn apply(&self, ctx: &Context, plan: Plan<Detach>) -> Result<Vec<Detach>, TaskError> {
        for detach in &plan.changes {
            gluster::cli(ctx, &detach.cli_args()).await?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    fn task(peers: &[&str]) -> DetachPeers {
        DetachPeers::from_proto(&v1::DetachPeers { peers: peers.iter().map(|p| p.to_string()).collect() }).unwrap()
    }

    #[tokio::test]
    async fn a_disconnected_peer_without_bricks_is_detached_with_force() {
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} peer status"), &fixture("peer-status-disconnected.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"))
                .expect(&format!("{G} peer detach gs2 force"), &fixture("peer-detach.xml")),
        );
        assert_eq!(
            task(&["gs2"]).run(&c).await.unwrap(),
            ["detach peer gs2 from the pool (not connected: peer detach force)"]
        );
    }

    #[tokio::test]
    async fn a_connected_peer_is_detached_without_force_and_an_unknown_one_is_done() {
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} peer status"), &fixture("peer-status.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"))
                .expect(&format!("{G} peer detach gs2"), &fixture("peer-detach.xml"))
                .expect(&format!("{G} peer status"), &fixture("peer-status-empty.xml")),
        );
        assert_eq!(task(&["gs2"]).run(&c).await.unwrap(), ["detach peer gs2 from the pool (peer detach)"]);
        assert_eq!(task(&["gs2"]).check(&c).await.unwrap().changes, Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_peer_holding_bricks_waits_for_them_to_move() {
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} peer status"), &fixture("peer-status-disconnected.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml")),
        );
        let e = task(&["gs2"]).run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::NotReady(_)), "{e}");
        assert_eq!(e.to_string(), "the bricks still on gs2 to move off (drain or replacement): gv0 gs2:/srv/b1");
    }

    #[tokio::test]
    async fn glusters_own_refusal_is_surfaced() {
        let refused = crate::host::runner::Output {
            code: Some(1),
            stdout: fixture("peer-detach-holds-bricks.xml"),
            stderr: String::new(),
        };
        let c =
            Context::direct(FakeRunner::default().expect_output(&format!("{G} peer detach gluServer3 force"), refused));
        let plan = Plan::of(vec![Detach { peer: "gluServer3".into(), force: true }]);
        let e = task(&["gluServer3"]).apply(&c, plan).await.unwrap_err().to_string();
        assert!(e.contains("Peer gluServer3 hosts one or more bricks"), "{e}");
    }
}
