//! `ProbePeers` and `AwaitPeers`: the trusted pool. `ProbePeers` makes the named servers
//! members of this server's pool: each peer is probed BY NAME (`gluster peer probe NAME`)
//! unless the pool already knows it by that name; a peer known only by another name (e.g. its
//! IP, because it probed us first) is probed again by name, which makes glusterd add the name.
//! `AwaitPeers` is the pool barrier every server runs after the probes: it probes nothing and
//! waits until this server sees every named peer (by name or address) as `Peer in Cluster
//! (Connected)`, since gluster stages a volume change on every peer and fails on one that does
//! not see the others yet. Both poll `pool list` with a deadline; the timeout names who does not
//! see whom. Runs only the local gluster CLI.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::HostName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, PeerInfo};
use crate::host::Context;
use brickyard_proto::poll::{self, Look};

/// How long to wait for the peers when the task does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait a task may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Interval between two `pool list` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A peer the pool must hold: its name and, when given, the address glusterd may know it by.
#[derive(Debug, Clone)]
struct Wanted {
    name: HostName,
    address: Option<String>,
}

impl Wanted {
    /// This peer in `pool`, known by its name or its address.
    fn find<'a>(&self, pool: &'a [PeerInfo]) -> Option<&'a PeerInfo> {
        pool.iter().find(|p| {
            !p.is_local && (p.known_as(self.name.as_str()) || self.address.as_deref().is_some_and(|a| p.known_as(a)))
        })
    }
}

/// The peers of `wanted` that are not this host, validated, each once.
fn wanted_peers(task: &str, wanted: Vec<Wanted>) -> Result<Vec<Wanted>, TaskError> {
    if wanted.is_empty() {
        return Err(TaskError::InvalidTask(format!("{task} names no peer")));
    }
    let mut peers: Vec<Wanted> = Vec::new();
    for w in wanted {
        if !peers.iter().any(|p| p.name.as_str().eq_ignore_ascii_case(w.name.as_str())) {
            peers.push(w);
        }
    }
    Ok(peers)
}

fn timeout(task: &str, seconds: u32) -> Result<Duration, TaskError> {
    let timeout = match seconds {
        0 => DEFAULT_TIMEOUT,
        s => Duration::from_secs(s.into()),
    };
    if timeout > MAX_TIMEOUT {
        return Err(TaskError::InvalidTask(format!(
            "{task} timeout_seconds {seconds} is above the maximum of {}",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(timeout)
}

/// The peers of `wanted` other than the host named `local`.
fn remote<'a>(wanted: &'a [Wanted], local: &'a str) -> impl Iterator<Item = &'a Wanted> + 'a {
    wanted.iter().filter(move |w| !gluster::is_local_name(local, w.name.as_str()))
}

/// Why each remote peer is not `Peer in Cluster (Connected)` as `local` sees `pool` (empty:
/// all are). A rejected peer is a conflict probing again does not solve.
fn not_in_cluster(wanted: &[Wanted], pool: &[PeerInfo], local: &str) -> Result<Vec<String>, TaskError> {
    let mut missing = Vec::new();
    for peer in remote(wanted, local) {
        let name = &peer.name;
        match peer.find(pool) {
            Some(p) if p.in_cluster() => {}
            Some(p) if p.state.contains("Rejected") => {
                return Err(TaskError::Conflict(format!(
                    "{local} sees peer {name} as {}: glusterd rejected it (its volume configuration or UUID \
                     conflicts with this pool)",
                    p.describe()
                )));
            }
            Some(p) => missing
                .push(format!("{local} does not see {name} as Peer in Cluster (Connected): it is {}", p.describe())),
            None => missing
                .push(format!("{local} does not see {name} as Peer in Cluster (Connected): it is not in its pool")),
        }
    }
    Ok(missing)
}

/// Polls `pool list` until every remote peer of `wanted` is `Peer in Cluster (Connected)`; a
/// rejected peer fails at once, the deadline fails naming every peer that is not there yet.
/// Returns how long it waited.
async fn wait_in_cluster(
    ctx: &Context,
    wanted: &[Wanted],
    local: &str,
    timeout: Duration,
) -> Result<Duration, TaskError> {
    let started = tokio::time::Instant::now();
    poll::until("the pool", timeout, POLL_INTERVAL, || async {
        let missing = not_in_cluster(wanted, &gluster::pool_list(ctx).await?, local)?;
        Ok::<_, TaskError>(if missing.is_empty() { Look::Done(()) } else { Look::NotYet(missing.join("; ")) })
    })
    .await?;
    Ok(started.elapsed())
}

pub struct ProbePeers {
    peers: Vec<Wanted>,
    timeout: Duration,
}

impl ProbePeers {
    pub fn from_proto(task: &v1::ProbePeers) -> Result<Self, TaskError> {
        let wanted = task
            .peers
            .iter()
            .map(|name| Ok(Wanted { name: HostName::new(name)?, address: None }))
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(Self { peers: wanted_peers("ProbePeers", wanted)?, timeout: timeout("ProbePeers", task.timeout_seconds)? })
    }

    /// The peers to probe (not known by that name) and warnings about known ones that are not
    /// `Peer in Cluster (Connected)` yet, as `local` sees `pool`.
    fn plan_for(&self, pool: &[PeerInfo], local: &str) -> Plan<PeerChange> {
        let mut plan = Plan::unchanged();
        for peer in remote(&self.peers, local) {
            match peer.find(pool) {
                None => plan.changes.push(PeerChange::Probe(peer.name.clone())),
                Some(p) if !p.in_cluster() => plan = plan.warn(format!("peer {} is {}", peer.name, p.describe())),
                Some(_) => {}
            }
        }
        plan
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
        wait_in_cluster(ctx, &self.peers, &gluster::local_hostname()?, self.timeout).await?;
        Ok(done)
    }
}

pub struct AwaitPeers {
    peers: Vec<Wanted>,
    timeout: Duration,
}

impl AwaitPeers {
    pub fn from_proto(task: &v1::AwaitPeers) -> Result<Self, TaskError> {
        let wanted = task
            .peers
            .iter()
            .map(|entry| {
                let address = match entry.address.as_str() {
                    "" => None,
                    a if a.parse::<IpAddr>().is_ok() => Some(a.to_owned()),
                    a => Some(HostName::new(a)?.to_string()),
                };
                Ok(Wanted { name: HostName::new(&entry.name)?, address })
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(Self { peers: wanted_peers("AwaitPeers", wanted)?, timeout: timeout("AwaitPeers", task.timeout_seconds)? })
    }

    /// The wait, as `local` sees `pool`: none when every peer is in the cluster, else what is
    /// missing.
    fn wait_for(&self, pool: &[PeerInfo], local: &str) -> Result<Option<Vec<String>>, TaskError> {
        let missing = not_in_cluster(&self.peers, pool, local)?;
        Ok((!missing.is_empty()).then_some(missing))
    }
}

/// Waiting for the pool, and then how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolWait {
    /// Who this host does not see yet.
    Wait { local: String, missing: Vec<String> },
    /// This host sees `peers` as Peer in Cluster (Connected), after `waited`.
    Waited { local: String, peers: Vec<String>, waited: Duration },
}

impl fmt::Display for PoolWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolWait::Wait { missing, .. } => f.write_str(&missing.join("; ")),
            PoolWait::Waited { local, peers, waited } => write!(
                f,
                "{local} sees {} as Peer in Cluster (Connected) after {:.1}s",
                peers.join(", "),
                waited.as_secs_f64()
            ),
        }
    }
}

#[async_trait]
impl Task for AwaitPeers {
    type Change = PoolWait;

    /// Unchanged when every peer is in the cluster as this host sees it; otherwise not ready,
    /// naming who this host does not see (the probes of the pool phase bring them).
    async fn plan(&self, ctx: &Context) -> Result<Plan<PoolWait>, TaskError> {
        match self.plan_for_apply(ctx).await?.changes.pop() {
            None => Ok(Plan::unchanged()),
            Some(wait) => Err(TaskError::NotReady(wait.to_string())),
        }
    }

    /// A barrier: what `plan` calls not ready, apply waits for.
    async fn plan_for_apply(&self, ctx: &Context) -> Result<Plan<PoolWait>, TaskError> {
        let local = gluster::local_hostname()?;
        let wait = self.wait_for(&gluster::pool_list(ctx).await?, &local)?;
        Ok(Plan::of(wait.map(|missing| PoolWait::Wait { local, missing }).into_iter().collect()))
    }

    /// Waits for the peers; reports the wait as the change.
    async fn apply(&self, ctx: &Context, plan: Plan<PoolWait>) -> Result<Vec<PoolWait>, TaskError> {
        let mut done = Vec::new();
        for change in plan.changes {
            if let PoolWait::Wait { local, .. } = change {
                let waited = wait_in_cluster(ctx, &self.peers, &local, self.timeout).await?;
                let peers = remote(&self.peers, &local).map(|p| p.name.to_string()).collect();
                done.push(PoolWait::Waited { local, peers, waited });
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
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
        let with_timeout = |timeout_seconds| v1::ProbePeers { peers: vec!["gs2".into()], timeout_seconds };
        for seconds in [3601, 999_999, u32::MAX] {
            let e = ProbePeers::from_proto(&with_timeout(seconds)).err().expect("accepted").to_string();
            assert!(e.contains(&format!("ProbePeers timeout_seconds {seconds} is above the maximum of 3600")), "{e}");
        }
        assert_eq!(ProbePeers::from_proto(&with_timeout(3600)).unwrap().timeout, MAX_TIMEOUT);
        assert_eq!(ProbePeers::from_proto(&with_timeout(0)).unwrap().timeout, DEFAULT_TIMEOUT);
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
        let err = task(&["gs2"]).run(&c).await.unwrap_err();
        assert!(matches!(err, TaskError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("sees peer gs2 as Peer Rejected (Connected)"), "{err}");

        // The deadline has passed after the first poll: gs2 is fine, gs3 is missing.
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let t = task(&["gs2", "gs3"]);
        let err = wait_in_cluster(&c, &t.peers, "gs1", Duration::ZERO).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "timed out waiting for the pool (after 0ns: gs1 does not see gs3 as Peer in Cluster (Connected): it is \
             not in its pool)"
        );
    }

    fn barrier(peers: &[(&str, &str)]) -> AwaitPeers {
        AwaitPeers::from_proto(&v1::AwaitPeers {
            peers: peers.iter().map(|(n, a)| v1::HostEntry { name: n.to_string(), address: a.to_string() }).collect(),
            timeout_seconds: 0,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn the_barrier_knows_peers_by_name_or_address_and_names_who_is_missing() {
        let local = gluster::local_hostname().unwrap();
        // pool-list.xml: gs2 is known by the name gs2 and the address 198.18.250.2.
        let t = barrier(&[("gs2", ""), (&local, "")]);
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        assert_eq!(t.plan(&c).await.unwrap(), Plan::unchanged());
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        assert!(t.run(&c).await.unwrap().is_empty(), "a formed pool is a single poll and no change");

        // Known only by its address.
        let by_ip = barrier(&[("gsx", "198.18.250.2")]);
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("peer-status-by-ip.xml")));
        assert_eq!(by_ip.plan(&c).await.unwrap(), Plan::unchanged());

        // Not there yet: not ready (plan), then seen after one more poll (apply).
        let t = barrier(&[("gs2", "198.18.250.2"), ("gs3", "198.18.250.3")]);
        let c = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let err = t.check(&c).await.unwrap_err();
        assert!(matches!(err, TaskError::NotReady(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!("{local} does not see gs3 as Peer in Cluster (Connected): it is not in its pool")
        );
        let gone = fixture("pool-list.xml").replacen("<connected>1</connected>", "<connected>0</connected>", 1);
        let c =
            ctx(FakeRunner::default().expect(POOL, &gone).expect(POOL, &gone).expect(POOL, &fixture("pool-list.xml")));
        let t = barrier(&[("gs2", "")]);
        let changes = t.run(&c).await.unwrap();
        assert!(
            changes[0].starts_with(&format!("{local} sees gs2 as Peer in Cluster (Connected) after")),
            "{changes:?}"
        );
        assert!(AwaitPeers::from_proto(&v1::AwaitPeers::default()).is_err());
        let bad = v1::AwaitPeers {
            peers: vec![v1::HostEntry { name: "gs2".into(), address: "a;b".into() }],
            timeout_seconds: 0,
        };
        assert!(AwaitPeers::from_proto(&bad).is_err());
    }

    #[tokio::test]
    async fn probe_failure_surfaces_glusterd_message() {
        let out = Output { code: Some(1), stdout: fixture("peer-probe-unknown.xml"), stderr: String::new() };
        let c = ctx(FakeRunner::default()
            .expect(POOL, &fixture("pool-list-single.xml"))
            .expect_output("/usr/sbin/gluster --mode=script --xml peer probe gs9", out));
        let err = task(&["gs9"]).run(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer probe gs9") && err.contains("Transport endpoint is not connected"), "{err}");
    }
}
