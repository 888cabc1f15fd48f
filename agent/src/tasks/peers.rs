//! `ProbePeers`: makes the named servers members of this server's trusted pool. Each peer is
//! probed BY NAME (`gluster peer probe NAME`) unless the pool already knows it by that name;
//! a peer known only by another name (e.g. its IP, because it probed us first) is probed again
//! by name, which makes glusterd add the name. Then `pool list` is polled with a deadline until
//! every named peer is `Peer in Cluster (Connected)`. Runs only the local gluster CLI.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::HostName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, PeerInfo};
use crate::host::poll::{self, Look};
use crate::host::Context;

/// How long to wait for the peers when the task does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait a task may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Interval between two `pool list` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct ProbePeers {
    peers: Vec<HostName>,
    timeout: Duration,
}

impl ProbePeers {
    pub fn from_proto(task: &v1::ProbePeers) -> Result<Self, TaskError> {
        if task.peers.is_empty() {
            return Err(TaskError::InvalidTask("ProbePeers names no peer".into()));
        }
        let mut peers: Vec<HostName> = Vec::new();
        for name in &task.peers {
            let name = HostName::new(name)?;
            if !peers.iter().any(|p| p.as_str().eq_ignore_ascii_case(name.as_str())) {
                peers.push(name);
            }
        }
        let timeout = match task.timeout_seconds {
            0 => DEFAULT_TIMEOUT,
            s => Duration::from_secs(s.into()),
        };
        if timeout > MAX_TIMEOUT {
            return Err(TaskError::InvalidTask(format!(
                "ProbePeers timeout_seconds {} is above the maximum of {}",
                task.timeout_seconds,
                MAX_TIMEOUT.as_secs()
            )));
        }
        Ok(Self { peers, timeout })
    }

    /// The peers that are not this host.
    fn remote_peers<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a HostName> + 'a {
        self.peers.iter().filter(move |p| !gluster::is_local_name(local, p.as_str()))
    }

    /// The peers to probe (not known by that name) and warnings about known ones that are not
    /// `Peer in Cluster (Connected)` yet, as `local` sees `pool`.
    fn plan_for(&self, pool: &[PeerInfo], local: &str) -> Plan<PeerChange> {
        let mut plan = Plan::unchanged();
        for peer in self.remote_peers(local) {
            match pool.iter().find(|p| !p.is_local && p.known_as(peer.as_str())) {
                None => plan.changes.push(PeerChange::Probe(peer.clone())),
                Some(p) if !p.in_cluster() => plan = plan.warn(format!("peer {peer} is {}", p.describe())),
                Some(_) => {}
            }
        }
        plan
    }

    /// Polls `pool list` until every named peer is `Peer in Cluster (Connected)`; a rejected
    /// peer fails at once, the deadline fails naming every peer that is not there yet.
    async fn wait_in_cluster(&self, ctx: &Context, local: &str) -> Result<(), TaskError> {
        poll::until("peers to be Peer in Cluster (Connected)", self.timeout, POLL_INTERVAL, || async {
            let pool = gluster::pool_list(ctx).await?;
            let mut waiting = Vec::new();
            for peer in self.remote_peers(local) {
                match pool.iter().find(|p| !p.is_local && p.known_as(peer.as_str())) {
                    Some(p) if p.in_cluster() => {}
                    Some(p) if p.state.contains("Rejected") => {
                        return Err(TaskError::Refused(format!(
                            "peer {peer} is {}: glusterd rejected it (its volume configuration or UUID \
                             conflicts with this pool)",
                            p.describe()
                        )));
                    }
                    Some(p) => waiting.push(format!("{peer}: {}", p.describe())),
                    None => waiting.push(format!("{peer}: not in the pool")),
                }
            }
            Ok(if waiting.is_empty() { Look::Done(()) } else { Look::NotYet(format!("still {}", waiting.join(", "))) })
        })
        .await
    }
}

/// A peer to probe by name, and then the peer probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    Probe(HostName),
    Probed(HostName),
}

impl fmt::Display for PeerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerChange::Probe(peer) => write!(f, "probe peer {peer}"),
            PeerChange::Probed(peer) => write!(f, "probed peer {peer}"),
        }
    }
}

#[async_trait]
impl Task for ProbePeers {
    type Change = PeerChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<PeerChange>, TaskError> {
        Ok(self.plan_for(&gluster::pool_list(ctx).await?, &gluster::local_hostname()?))
    }

    /// Probes, then waits until every named peer is in the pool (also when none needed a probe).
    async fn apply(&self, ctx: &Context, plan: Plan<PeerChange>) -> Result<Vec<PeerChange>, TaskError> {
        let mut done = Vec::new();
        for change in plan.changes {
            if let PeerChange::Probe(peer) = change {
                gluster::cli(ctx, &["peer", "probe", peer.as_str()]).await?;
                done.push(PeerChange::Probed(peer));
            }
        }
        self.wait_in_cluster(ctx, &gluster::local_hostname()?).await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const POOL: &str = "/usr/sbin/gluster --mode=script --xml pool list";

    fn task(peers: &[&str]) -> ProbePeers {
        ProbePeers::from_proto(&v1::ProbePeers {
            peers: peers.iter().map(|s| s.to_string()).collect(),
            timeout_seconds: 0,
        })
        .unwrap()
    }

    fn ctx(runner: FakeRunner) -> Context {
        Context::direct(runner)
    }

    fn shown(plan: Plan<PeerChange>) -> (Vec<String>, Vec<String>) {
        let shown = plan.shown();
        (shown.changes, shown.warnings)
    }

    #[test]
    fn invalid_peers_are_rejected_before_any_command() {
        for bad in ["gs 2", "gs2;reboot", "gs2\n", "-gs2", ""] {
            let t = v1::ProbePeers { peers: vec![bad.into()], timeout_seconds: 0 };
            assert!(ProbePeers::from_proto(&t).is_err(), "{bad:?} accepted");
        }
        assert!(ProbePeers::from_proto(&v1::ProbePeers::default()).is_err());
        assert!(
            ProbePeers::from_proto(&v1::ProbePeers { peers: vec!["gs2".into()], timeout_seconds: 999_999 }).is_err()
        );
    }

    #[test]
    fn plan_probes_unknown_names_and_skips_self() {
        let single = gluster::xml::peers(&gluster::xml::cli_output(&fixture("pool-list-single.xml")).unwrap()).unwrap();
        let t = task(&["gs1", "gs2", "GS2"]);
        assert_eq!(shown(t.plan_for(&single, "gs1")), (vec!["probe peer gs2".to_owned()], vec![]));

        // Known only by its IP: probed again by name so the pool learns the name.
        let by_ip = gluster::xml::peers(&gluster::xml::cli_output(&fixture("peer-status-by-ip.xml")).unwrap()).unwrap();
        assert_eq!(t.plan_for(&by_ip, "gs1").changes.len(), 1);

        let gone = fixture("pool-list.xml").replacen("<connected>1</connected>", "<connected>0</connected>", 1);
        let gone = gluster::xml::peers(&gluster::xml::cli_output(&gone).unwrap()).unwrap();
        assert_eq!(
            shown(t.plan_for(&gone, "gs1")),
            (vec![], vec!["peer gs2 is Peer in Cluster (Disconnected)".to_owned()])
        );
    }

    #[tokio::test]
    async fn probes_by_name_then_waits_for_the_pool() {
        let local = gluster::local_hostname().unwrap();
        // Plan, plan and probe, wait (gs2 is known by its IP only, then by name), plan.
        let c = ctx(FakeRunner::default()
            .expect(POOL, &fixture("peer-status-by-ip.xml"))
            .expect(POOL, &fixture("peer-status-by-ip.xml"))
            .expect("/usr/sbin/gluster --mode=script --xml peer probe gs2", &fixture("peer-probe-again.xml"))
            .expect(POOL, &fixture("peer-status-by-ip.xml"))
            .expect(POOL, &fixture("pool-list.xml"))
            .expect(POOL, &fixture("pool-list.xml")));
        let t = task(&["gs2", &local]);
        let (before, done) = converges(&t, &c).await;
        assert_eq!((before.changes, done), (vec!["probe peer gs2".to_owned()], vec!["probed peer gs2".to_owned()]));
    }

    #[tokio::test]
    async fn rejected_and_missing_peers_are_named() {
        let rejected = fixture("pool-list.xml").replace("Peer in Cluster", "Peer Rejected");
        let c = ctx(FakeRunner::default().expect(POOL, &rejected).expect(POOL, &rejected));
        let err = task(&["gs2"]).run(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer gs2 is Peer Rejected (Connected)"), "{err}");

        // The deadline has passed after the first poll: gs2 is fine, gs3 is missing.
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let mut t = task(&["gs2", "gs3"]);
        t.timeout = Duration::ZERO;
        let err = t.wait_in_cluster(&c, "gs1").await.unwrap_err().to_string();
        assert!(err.contains("gs3: not in the pool") && !err.contains("gs2"), "{err}");
    }

    #[tokio::test]
    async fn probe_failure_surfaces_glusterd_message() {
        let out = crate::host::runner::Output {
            code: Some(1),
            stdout: fixture("peer-probe-unknown.xml"),
            stderr: String::new(),
        };
        let c = ctx(FakeRunner::default()
            .expect(POOL, &fixture("pool-list-single.xml"))
            .expect_output("/usr/sbin/gluster --mode=script --xml peer probe gs9", out));
        let err = task(&["gs9"]).run(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer probe gs9") && err.contains("Transport endpoint is not connected"), "{err}");
    }
}
