//! `ProbePeers`: makes the named servers members of this server's trusted pool. Each peer is
//! probed BY NAME (`gluster peer probe NAME`) unless the pool already knows it by that name;
//! a peer known only by another name (e.g. its IP, because it probed us first) is probed again
//! by name, which makes glusterd add the name. Then `pool list` is polled with a deadline until
//! every named peer is `Peer in Cluster (Connected)`. Runs only the local gluster CLI.

use std::time::{Duration, Instant};

use brickyard_proto::types::HostName;
use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::gluster::{self, PeerInfo};

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
    /// `Peer in Cluster (Connected)` yet.
    fn plan<'a>(&'a self, pool: &[PeerInfo], local: &'a str) -> (Vec<&'a HostName>, Vec<String>) {
        let mut probe = Vec::new();
        let mut warnings = Vec::new();
        for peer in self.remote_peers(local) {
            match pool.iter().find(|p| !p.is_local && p.known_as(peer.as_str())) {
                None => probe.push(peer),
                Some(p) if !p.in_cluster() => warnings.push(format!("peer {peer} is {}", p.describe())),
                Some(_) => {}
            }
        }
        (probe, warnings)
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let pool = gluster::pool_list(ctx).await?;
        let local = gluster::local_hostname()?;
        let (probe, warnings) = self.plan(&pool, &local);
        Ok(Check { changes: probe.iter().map(|p| format!("probe peer {p}")).collect(), warnings })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let pool = gluster::pool_list(ctx).await?;
        let local = gluster::local_hostname()?;
        let (probe, _) = self.plan(&pool, &local);
        let mut changes = Vec::new();
        for peer in probe {
            gluster::cli(ctx, &["peer", "probe", peer.as_str()]).await?;
            changes.push(format!("probed peer {peer}"));
        }
        self.wait_in_cluster(ctx, &local).await?;
        Ok(changes)
    }

    /// Polls `pool list` until every named peer is `Peer in Cluster (Connected)`; a rejected
    /// peer fails at once, the deadline fails naming every peer that is not there yet.
    async fn wait_in_cluster(&self, ctx: &Context, local: &str) -> Result<(), TaskError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let pool = gluster::pool_list(ctx).await?;
            let mut waiting = Vec::new();
            for peer in self.remote_peers(local) {
                match pool.iter().find(|p| !p.is_local && p.known_as(peer.as_str())) {
                    Some(p) if p.in_cluster() => {}
                    Some(p) if p.state.contains("Rejected") => {
                        return Err(TaskError::Conflict(format!(
                            "peer {peer} is {}: glusterd rejected it (its volume configuration or UUID \
                             conflicts with this pool)",
                            p.describe()
                        )));
                    }
                    Some(p) => waiting.push(format!("{peer}: {}", p.describe())),
                    None => waiting.push(format!("{peer}: not in the pool")),
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Timeout(format!(
                    "peers to be Peer in Cluster (Connected) for {}s; still {}",
                    self.timeout.as_secs(),
                    waiting.join(", ")
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::runner::fake::FakeRunner;
    use crate::tasks::ServiceManager;
    use std::sync::Arc;

    const POOL: &str = "/usr/sbin/gluster --mode=script --xml pool list";

    fn task(peers: &[&str]) -> ProbePeers {
        ProbePeers::from_proto(&v1::ProbePeers {
            peers: peers.iter().map(|s| s.to_string()).collect(),
            timeout_seconds: 0,
        })
        .unwrap()
    }

    fn ctx(runner: FakeRunner) -> (Context, Arc<FakeRunner>) {
        let runner = Arc::new(runner);
        (Context { runner: runner.clone(), service_manager: ServiceManager::Direct }, runner)
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
        let (probe, warnings) = t.plan(&single, "gs1");
        assert_eq!(probe.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["gs2"]);
        assert!(warnings.is_empty());

        // Known only by its IP: probed again by name so the pool learns the name.
        let by_ip = gluster::xml::peers(&gluster::xml::cli_output(&fixture("peer-status-by-ip.xml")).unwrap()).unwrap();
        assert_eq!(t.plan(&by_ip, "gs1").0.len(), 1);

        let gone = fixture("pool-list.xml").replacen("<connected>1</connected>", "<connected>0</connected>", 1);
        let gone = gluster::xml::peers(&gluster::xml::cli_output(&gone).unwrap()).unwrap();
        let (probe, warnings) = t.plan(&gone, "gs1");
        assert!(probe.is_empty());
        assert_eq!(warnings, ["peer gs2 is Peer in Cluster (Disconnected)"]);
    }

    #[tokio::test]
    async fn probes_by_name_then_waits_for_the_pool() {
        let local = gluster::local_hostname().unwrap();
        let (c, runner) = ctx(FakeRunner::default()
            .expect(POOL, &fixture("peer-status-by-ip.xml"))
            .expect("/usr/sbin/gluster --mode=script --xml peer probe gs2", &fixture("peer-probe-again.xml"))
            .expect(POOL, &fixture("peer-status-by-ip.xml"))
            .expect(POOL, &fixture("pool-list.xml")));
        let t = task(&["gs2", &local]);
        assert_eq!(t.apply(&c).await.unwrap(), ["probed peer gs2"]);
        assert_eq!(runner.seen().len(), 4);

        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        assert_eq!(t.check(&c).await.unwrap(), Check::unchanged());
    }

    #[tokio::test]
    async fn rejected_and_missing_peers_are_named() {
        let rejected = fixture("pool-list.xml").replace("Peer in Cluster", "Peer Rejected");
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &rejected).expect(POOL, &rejected));
        let err = task(&["gs2"]).apply(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer gs2 is Peer Rejected (Connected)"), "{err}");

        // The deadline has passed after the first poll: gs2 is fine, gs3 is missing.
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let mut t = task(&["gs2", "gs3"]);
        t.timeout = Duration::ZERO;
        let err = t.wait_in_cluster(&c, "gs1").await.unwrap_err().to_string();
        assert!(err.contains("gs3: not in the pool") && !err.contains("gs2"), "{err}");
    }

    #[tokio::test]
    async fn probe_failure_surfaces_glusterd_message() {
        let out =
            crate::runner::Output { code: Some(1), stdout: fixture("peer-probe-unknown.xml"), stderr: String::new() };
        let (c, _) = ctx(FakeRunner::default()
            .expect(POOL, &fixture("pool-list-single.xml"))
            .expect_output("/usr/sbin/gluster --mode=script --xml peer probe gs9", out));
        let err = task(&["gs9"]).apply(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer probe gs9") && err.contains("Transport endpoint is not connected"), "{err}");
    }
}
