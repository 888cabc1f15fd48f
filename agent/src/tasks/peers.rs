//! `ProbePeers` and `AwaitPeers`: the trusted pool. `ProbePeers` makes the named servers
//! members of this server's pool: each peer is probed BY NAME (`gluster peer probe NAME`)
//! unless the pool already knows it by that name; a peer known only by another name (e.g. its
//! IP, because it probed us first) is probed again by name, which makes glusterd add the name.
//! `AwaitPeers` is the pool barrier every server runs after the probes: it probes nothing and
//! waits until this server sees every named peer (by name or address) as `Peer in Cluster
//! (Connected)`, since gluster stages a volume change on every peer and fails on one that does
//! not see the others yet. Both poll `pool list` with a deadline; the timeout names who does not
//! see whom. Runs only the local gluster CLI.

use std::net::IpAddr;
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
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let missing = not_in_cluster(wanted, &gluster::pool_list(ctx).await?, local)?;
        if missing.is_empty() {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(TaskError::Timeout(format!("the pool for {}s: {}", timeout.as_secs(), missing.join("; "))));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
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
    /// `Peer in Cluster (Connected)` yet.
    fn plan<'a>(&'a self, pool: &[PeerInfo], local: &'a str) -> (Vec<&'a HostName>, Vec<String>) {
        let mut probe = Vec::new();
        let mut warnings = Vec::new();
        for peer in remote(&self.peers, local) {
            match peer.find(pool) {
                None => probe.push(&peer.name),
                Some(p) if !p.in_cluster() => warnings.push(format!("peer {} is {}", peer.name, p.describe())),
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
        wait_in_cluster(ctx, &self.peers, &local, self.timeout).await?;
        Ok(changes)
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

    /// Unchanged when every peer is in the cluster as this host sees it; otherwise not ready,
    /// naming who this host does not see (the probes of the pool phase bring them).
    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let local = gluster::local_hostname()?;
        let missing = not_in_cluster(&self.peers, &gluster::pool_list(ctx).await?, &local)?;
        if missing.is_empty() {
            Ok(Check::unchanged())
        } else {
            Err(TaskError::NotReady(missing.join("; ")))
        }
    }

    /// Waits for the peers; reports the wait as the change when there was one.
    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let local = gluster::local_hostname()?;
        if not_in_cluster(&self.peers, &gluster::pool_list(ctx).await?, &local)?.is_empty() {
            return Ok(Vec::new());
        }
        let waited = wait_in_cluster(ctx, &self.peers, &local, self.timeout).await?;
        let names: Vec<&str> = remote(&self.peers, &local).map(|p| p.name.as_str()).collect();
        Ok(vec![format!(
            "{local} sees {} as Peer in Cluster (Connected) after {:.1}s",
            names.join(", "),
            waited.as_secs_f64()
        )])
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
        let err = task(&["gs2"]).apply(&c).await.unwrap_err();
        assert!(matches!(err, TaskError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("sees peer gs2 as Peer Rejected (Connected)"), "{err}");

        // The deadline has passed after the first poll: gs2 is fine, gs3 is missing.
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let t = task(&["gs2", "gs3"]);
        let err = wait_in_cluster(&c, &t.peers, "gs1", Duration::ZERO).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "timed out waiting for the pool for 0s: gs1 does not see gs3 as Peer in Cluster (Connected): it is not \
             in its pool"
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
        let (c, runner) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        assert_eq!(t.check(&c).await.unwrap(), Check::unchanged());
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        assert!(t.apply(&c).await.unwrap().is_empty(), "a formed pool is a single poll and no change");
        assert_eq!(runner.seen().len(), 1);

        // Known only by its address.
        let by_ip = barrier(&[("gsx", "198.18.250.2")]);
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("peer-status-by-ip.xml")));
        assert_eq!(by_ip.check(&c).await.unwrap(), Check::unchanged());

        // Not there yet: not ready (plan), then seen after one more poll (apply).
        let t = barrier(&[("gs2", "198.18.250.2"), ("gs3", "198.18.250.3")]);
        let (c, _) = ctx(FakeRunner::default().expect(POOL, &fixture("pool-list.xml")));
        let err = t.check(&c).await.unwrap_err();
        assert!(matches!(err, TaskError::NotReady(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!("{local} does not see gs3 as Peer in Cluster (Connected): it is not in its pool")
        );
        let gone = fixture("pool-list.xml").replacen("<connected>1</connected>", "<connected>0</connected>", 1);
        let (c, _) =
            ctx(FakeRunner::default().expect(POOL, &gone).expect(POOL, &gone).expect(POOL, &fixture("pool-list.xml")));
        let t = barrier(&[("gs2", "")]);
        let changes = t.apply(&c).await.unwrap();
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
        let out =
            crate::runner::Output { code: Some(1), stdout: fixture("peer-probe-unknown.xml"), stderr: String::new() };
        let (c, _) = ctx(FakeRunner::default()
            .expect(POOL, &fixture("pool-list-single.xml"))
            .expect_output("/usr/sbin/gluster --mode=script --xml peer probe gs9", out));
        let err = task(&["gs9"]).apply(&c).await.unwrap_err().to_string();
        assert!(err.contains("peer probe gs9") && err.contains("Transport endpoint is not connected"), "{err}");
    }
}
