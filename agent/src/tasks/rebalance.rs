//! `RebalanceVolume`: after a volume grew, `volume rebalance VOL start`, watched with
//! `rebalance VOL status` until every node has completed (progress reported on each look), a
//! failure on any node being an error naming the node and its counts; then, on a volume that
//! self-heals, until no entry is pending. Needed when the volume
//! has more than one distribute set and a server holding one of its bricks took no part in a
//! completed, failure-free rebalance (gluster keeps the last rebalance's record through
//! `add-brick`, so the new servers are missing from it; a volume never rebalanced has none).
//! Also the watch both migrations share ([`watch`]; `RemoveBricks` drains with it). Runs only
//! the local gluster CLI.

use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::{HostName, VolumeName};
use brickyard_proto::v1;

use super::heal;
use super::shape::{Plan, Task, TaskError};
use crate::gluster;
use crate::gluster::rebalance::{self as migration, Found, Migration, NodeProgress, State};
use crate::host::progress;
use crate::host::Context;
use brickyard_proto::poll::{self, Look};

/// How long a migration may run when the task does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often `... status` is asked while a migration runs.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// `timeout_seconds` of a task (0 = the default).
pub fn timeout(seconds: u32) -> Duration {
    if seconds == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_secs(seconds.into())
    }
}

/// The one-line account of a migration's nodes.
pub fn describe(nodes: &[NodeProgress]) -> String {
    nodes.iter().map(NodeProgress::describe).collect::<Vec<_>>().join("; ")
}

fn progress_of(migration: &Migration, nodes: &[NodeProgress]) -> v1::MigrationProgress {
    v1::MigrationProgress {
        volume: migration.volume().to_owned(),
        operation: migration.operation().to_owned(),
        nodes: nodes.iter().map(NodeProgress::to_proto).collect(),
    }
}

/// How many looks in a row (one a second) a node may say "in progress" with its counts and
/// run time unchanged before its migration process counts as ended unseen. A running process
/// answers each look with its run time grown; glusterd misses the end of one that finishes
/// before glusterd has connected to it (a rebalance with nothing to move, in a fraction of a
/// second; gluster's defrag connection race, glusterfs#1339), and then says "in progress" for
/// ever: CI saw it once in the day-2 drain test.
const STALLED_LOOKS: u32 = 30;

/// How a watch ended.
enum Watched {
    /// No node in progress: the nodes' final counts.
    Done(Vec<NodeProgress>),
    /// This node's part stood still for [`STALLED_LOOKS`] looks.
    Lost(NodeProgress),
}

/// Polls `... status` of `migration` (started) until no node is in progress, reporting
/// progress on each look; returns the nodes' final counts. A node whose process ended
/// without glusterd seeing it (see [`STALLED_LOOKS`]) has the migration stopped and started
/// again, once. A deadline error names what the nodes were doing at the last look.
pub async fn watch(ctx: &Context, migration: &Migration, timeout: Duration) -> Result<Vec<NodeProgress>, TaskError> {
    let lost = match watch_once(ctx, migration, timeout).await? {
        Watched::Done(nodes) => return Ok(nodes),
        Watched::Lost(node) => node,
    };
    tracing::warn!(volume = migration.volume(), node = %lost.node, "migration lost by glusterd; starting it again");
    gluster::cli(ctx, &migration.args("stop")).await?;
    gluster::cli(ctx, &migration.args("start")).await?;
    match watch_once(ctx, migration, timeout).await? {
        Watched::Done(nodes) => Ok(nodes),
        Watched::Lost(node) => Err(TaskError::Failed(format!(
            "the {} of volume {} on {} says \"in progress\" with nothing changing for {STALLED_LOOKS} s, twice \
             ({}): its process has ended without glusterd seeing it (see /var/log/glusterfs/{}-rebalance.log there; \
             restarting glusterd on that server makes it read the outcome again)",
            migration.operation(),
            migration.volume(),
            node.node,
            node.describe(),
            migration.volume()
        ))),
    }
}

async fn watch_once(ctx: &Context, migration: &Migration, timeout: Duration) -> Result<Watched, TaskError> {
    let local = gluster::local_hostname()?;
    let what = format!("the {} of volume {} to complete on every node", migration.operation(), migration.volume());
    // Each node's last answer, and for how many looks in a row it has been the same.
    let unchanged: std::sync::Mutex<Vec<(NodeProgress, u32)>> = Default::default();
    poll::until(what, timeout, POLL_INTERVAL, || async {
        let found = match migration::status(ctx, migration, &local).await {
            Err(e) if migration::node_not_answering(&e) => return Ok(Look::NotYet(e.to_string())),
            found => found?,
        };
        Ok::<_, TaskError>(match found {
            Found::Nodes(nodes) => {
                progress::report_migration(progress_of(migration, &nodes));
                if let Some(lost) = stalled(&mut unchanged.lock().unwrap_or_else(|p| p.into_inner()), &nodes) {
                    Look::Done(Watched::Lost(lost))
                } else if nodes.iter().any(|n| n.state == State::InProgress) || nodes.is_empty() {
                    Look::NotYet(describe(&nodes))
                } else {
                    Look::Done(Watched::Done(nodes))
                }
            }
            Found::NotStarted => Look::NotYet("gluster says it is not started".into()),
            Found::NotDistributed => {
                return Err(TaskError::Failed(format!(
                    "volume {} is no longer distributed while its {} ran",
                    migration.volume(),
                    migration.operation()
                )))
            }
        })
    })
    .await
}

/// Counts this look into `unchanged`; the first node in progress that has now looked the
/// same [`STALLED_LOOKS`] times in a row.
fn stalled(unchanged: &mut Vec<(NodeProgress, u32)>, nodes: &[NodeProgress]) -> Option<NodeProgress> {
    let next: Vec<(NodeProgress, u32)> = nodes
        .iter()
        .map(|n| {
            let before = unchanged.iter().find(|(last, _)| last == n).map_or(0, |(_, looks)| *looks);
            (n.clone(), before + 1)
        })
        .collect();
    *unchanged = next;
    unchanged.iter().find(|(n, looks)| n.state == State::InProgress && *looks >= STALLED_LOOKS).map(|(n, _)| n.clone())
}

/// Nodes whose part did not complete cleanly, described ("" when every node did).
pub fn unclean(nodes: &[NodeProgress]) -> String {
    describe(&nodes.iter().filter(|n| !n.clean()).cloned().collect::<Vec<_>>())
}

pub struct RebalanceVolume {
    volume: VolumeName,
    timeout: Duration,
    /// The brick servers the volume is to have (some may still wait for `add-brick`).
    servers: Vec<HostName>,
}

impl RebalanceVolume {
    pub fn from_proto(task: &v1::RebalanceVolume) -> Result<Self, TaskError> {
        Ok(Self {
            volume: VolumeName::new(&task.volume)?,
            timeout: timeout(task.timeout_seconds),
            servers: task.servers.iter().map(|s| HostName::new(s)).collect::<Result<_, _>>()?,
        })
    }

    fn migration(&self) -> Migration {
        Migration::Rebalance { volume: self.volume.to_string() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceChange {
    /// `rebalance VOL start`, then the watch; `servers`: the brick servers the last rebalance
    /// did not cover.
    Start { volume: String, servers: Vec<String> },
    /// A rebalance already runs: only the watch.
    Watch { volume: String },
    /// What apply found at the end.
    Completed { volume: String, nodes: String, seconds: u64 },
}

impl std::fmt::Display for RebalanceChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebalanceChange::Start { volume, servers } => write!(
                f,
                "rebalance volume {volume} (new layout for {}; `rebalance {volume} start`, watched until completed)",
                servers.join(", ")
            ),
            RebalanceChange::Watch { volume } => write!(f, "wait for the running rebalance of volume {volume}"),
            RebalanceChange::Completed { volume, nodes, seconds } => {
                write!(f, "rebalanced volume {volume} in {seconds} s: {nodes}")
            }
        }
    }
}

#[async_trait]
impl Task for RebalanceVolume {
    type Change = RebalanceChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<RebalanceChange>, TaskError> {
        let volume = self.volume.to_string();
        let Some(live) = gluster::volume_info(ctx).await?.into_iter().find(|v| v.name == volume) else {
            return Ok(Plan::unchanged().waiting_for(format!("volume {volume} to exist (EnsureVolume creates it)")));
        };
        if !live.started() {
            return Ok(Plan::unchanged().waiting_for(format!("volume {volume} to be started (EnsureVolume starts it)")));
        }
        let nodes = match migration::status(ctx, &self.migration(), &gluster::local_hostname()?).await? {
            Found::NotStarted => Vec::new(),
            // One set now: a rebalance follows only the expansion to the task's servers.
            Found::NotDistributed
                if self.servers.iter().all(|s| live.bricks.iter().any(|b| b.host.eq_ignore_ascii_case(s.as_str()))) =>
            {
                return Ok(Plan::unchanged())
            }
            Found::NotDistributed => Vec::new(),
            Found::Nodes(nodes) => nodes,
        };
        if nodes.iter().any(|n| n.state == State::InProgress) {
            return Ok(Plan::of(vec![RebalanceChange::Watch { volume }]));
        }
        let hosts = live.bricks.iter().map(|b| b.host.as_str()).chain(self.servers.iter().map(HostName::as_str));
        let mut servers: Vec<String> = Vec::new();
        for host in hosts {
            let covered = nodes.iter().any(|n| n.clean() && n.node.eq_ignore_ascii_case(host));
            if !covered && !servers.iter().any(|s| s.eq_ignore_ascii_case(host)) {
                servers.push(host.to_owned());
            }
        }
        Ok(if servers.is_empty() {
            Plan::unchanged()
        } else {
            Plan::of(vec![RebalanceChange::Start { volume, servers }])
        })
    }

    async fn apply(&self, ctx: &Context, plan: Plan<RebalanceChange>) -> Result<Vec<RebalanceChange>, TaskError> {
        let migration = self.migration();
        if plan.changes.iter().any(|c| matches!(c, RebalanceChange::Start { .. })) {
            gluster::cli(ctx, &migration.args("start")).await?;
        }
        let started = std::time::Instant::now();
        let nodes = watch(ctx, &migration, self.timeout).await?;
        let failed = unclean(&nodes);
        if !failed.is_empty() {
            return Err(TaskError::Failed(format!(
                "rebalance of volume {} did not complete on every node: {failed} (see \
                 /var/log/glusterfs/{}-rebalance.log on those servers; files not moved stay readable where \
                 they are; apply starts the rebalance again)",
                self.volume, self.volume
            )));
        }
        // The files it moved last may still have an entry pending in a replica set (AFR
        // clears it after the write, `cluster.post-op-delay-secs` later): apply ends with none.
        if gluster::volume_info(ctx).await?.iter().any(|v| v.name == self.volume.as_str() && v.heals()) {
            heal::until_healed(ctx, self.volume.as_str(), heal::DEFAULT_HEAL_TIMEOUT, started.into(), "rebalance")
                .await?;
        }
        let mut done = plan.changes;
        done.push(RebalanceChange::Completed {
            volume: self.volume.to_string(),
            nodes: describe(&nodes),
            seconds: started.elapsed().as_secs(),
        });
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

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    fn task() -> RebalanceVolume {
        servers_task(4)
    }

    fn servers_task(count: usize) -> RebalanceVolume {
        let servers = (1..=count).map(|i| format!("gluServer{i}")).collect();
        RebalanceVolume::from_proto(&v1::RebalanceVolume { volume: "gluV1".into(), timeout_seconds: 5, servers })
            .unwrap()
    }

    fn refused(name: &str) -> Output {
        Output { code: Some(1), stdout: fixture(name), stderr: String::new() }
    }

    /// gluV1 live as one replica set of gluServer1-2 (the captured volume-info.xml with its names
    /// changed), which gluster does not rebalance: the volume is not distributed.
    fn one_set_live() -> Context {
        let info = fixture("volume-info.xml")
            .replace("gv0", "gluV1")
            .replace("gs1:", "gluServer1:")
            .replace("gs2:", "gluServer2:");
        Context::direct(info_then_refused_status(&info, "rebalance-status-not-distribute.xml"))
    }

    /// A runner answering `volume info` with `info`, then refusing `rebalance status` with the
    /// fixture `status`.
    fn info_then_refused_status(info: &str, status: &str) -> FakeRunner {
        FakeRunner::default()
            .expect(&format!("{G} volume info"), info)
            .expect_output(&format!("{G} volume rebalance gluV1 status"), refused(status))
    }

    #[tokio::test]
    async fn a_single_set_needs_no_rebalance() {
        let c = one_set_live();
        assert_eq!(servers_task(2).plan(&c).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn a_pending_expansion_is_planned_with_its_new_servers() {
        // The live volume is still one set of gluServer1-2; the spec adds gluServer3-4.
        let c = one_set_live();
        let plan = task().check(&c).await.unwrap();
        assert_eq!(
            plan.changes,
            ["rebalance volume gluV1 (new layout for gluServer1, gluServer2, gluServer3, gluServer4; `rebalance \
              gluV1 start`, watched until completed)"]
        );
    }

    #[tokio::test]
    async fn servers_missing_from_the_last_rebalance_start_one() {
        // This host is the first brick server; the captured rebalance calls it "localhost".
        let info = fixture("volume-info-grown.xml").replace("gluServer1", &gluster::local_hostname().unwrap());
        let c = Context::direct(
            info_then_refused_status(&info, "rebalance-status-not-started.xml")
                .expect(&format!("{G} volume info"), &info)
                .expect(&format!("{G} volume rebalance gluV1 status"), &fixture("rebalance-status-completed.xml")),
        );
        let t = servers_task(0);
        let plan = t.check(&c).await.unwrap();
        assert_eq!(plan.changes.len(), 1, "{plan:?}");
        assert!(plan.changes[0].starts_with("rebalance volume gluV1 (new layout for "), "{plan:?}");
        assert!(
            plan.changes[0]
                .ends_with(", gluServer2, gluServer3, gluServer4; `rebalance gluV1 start`, watched until completed)"),
            "{plan:?}"
        );
        // The completed rebalance covers every brick server.
        assert_eq!(t.plan(&c).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn a_started_rebalance_is_watched_and_failures_fail_naming_the_node() {
        let info = fixture("volume-info-grown.xml");
        let failed = fixture("rebalance-status-completed.xml")
            .replacen("<failures>0</failures>", "<failures>2</failures>", 1)
            .replacen("<status>3</status>", "<status>4</status>", 1)
            .replacen("<statusStr>completed</statusStr>", "<statusStr>failed</statusStr>", 1);
        let c = Context::direct(
            info_then_refused_status(&info, "rebalance-status-not-started.xml")
                .expect(&format!("{G} volume rebalance gluV1 start"), &fixture("rebalance-start.xml"))
                .expect(&format!("{G} volume rebalance gluV1 status"), &fixture("rebalance-status-in-progress.xml"))
                .expect(&format!("{G} volume rebalance gluV1 status"), &failed),
        );
        let e = task().run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Failed(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("gluServer2: failed, 200 scanned, 47 moved, 2 failures"), "{e}");
        assert!(!e.contains("gluServer3"), "only the failed node is named: {e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_stuck_in_progress_has_the_rebalance_started_again() {
        let stuck = fixture("rebalance-status-in-progress.xml");
        let mut runner = FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-grown.xml"))
            .expect(&format!("{G} volume rebalance gluV1 status"), &stuck);
        // The plan's look, then the watch's: the same answer, run time and all, 30 times.
        for _ in 0..STALLED_LOOKS {
            runner = runner.expect(&format!("{G} volume rebalance gluV1 status"), &stuck);
        }
        let c = Context::direct(
            runner
                .expect(&format!("{G} volume rebalance gluV1 stop"), &fixture("rebalance-start.xml"))
                .expect(&format!("{G} volume rebalance gluV1 start"), &fixture("rebalance-start.xml"))
                .expect(&format!("{G} volume rebalance gluV1 status"), &fixture("rebalance-status-completed.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info-grown.xml"))
                .expect(&format!("{G} volume heal gluV1 info summary"), &fixture("heal-info-summary.xml")),
        );
        // The default timeout: the 30 looks take 30 s (of paused time).
        let task = RebalanceVolume { timeout: DEFAULT_TIMEOUT, ..task() };
        let done = task.run(&c).await.unwrap();
        assert!(done[1].contains("gluServer2: completed, 200 scanned, 47 moved, 0 failures"), "{done:?}");
    }

    #[test]
    fn only_a_node_in_progress_that_stands_still_is_stalled() {
        let status = fixture("rebalance-status-in-progress.xml");
        let nodes = |runtime: &str| {
            let answer = gluster::xml::cli_output(&status.replace("<runtime>1.00</runtime>", runtime)).unwrap();
            migration::nodes(&answer, "volRebalance").unwrap()
        };
        let mut unchanged = Vec::new();
        for look in 0..STALLED_LOOKS * 2 {
            // gluServer2 and this node run (their run time grows); the completed ones are done.
            let runtime = format!("<runtime>{look}.00</runtime>");
            assert_eq!(stalled(&mut unchanged, &nodes(&runtime)), None, "look {look}");
        }
        let frozen = nodes("<runtime>7.00</runtime>");
        for look in 1..STALLED_LOOKS {
            assert_eq!(stalled(&mut unchanged, &frozen), None, "look {look} of the frozen answer");
        }
        assert_eq!(stalled(&mut unchanged, &frozen).map(|n| n.node), Some("gluServer2".to_owned()));
    }

    #[tokio::test]
    async fn a_completed_rebalance_reports_each_node() {
        let info = fixture("volume-info-grown.xml");
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &info)
                .expect(&format!("{G} volume rebalance gluV1 status"), &fixture("rebalance-status-in-progress.xml"))
                .expect(&format!("{G} volume rebalance gluV1 status"), &fixture("rebalance-status-completed.xml"))
                // A replicated volume: the entries the last moves left pending are waited for.
                .expect(&format!("{G} volume info"), &info)
                .expect(&format!("{G} volume heal gluV1 info summary"), &fixture("heal-info-summary-pending.xml"))
                .expect(&format!("{G} volume heal gluV1 info summary"), &fixture("heal-info-summary.xml")),
        );
        let done = task().run(&c).await.unwrap();
        assert_eq!(done[0], "wait for the running rebalance of volume gluV1");
        assert!(done[1].starts_with("rebalanced volume gluV1 in "), "{done:?}");
        assert!(done[1].contains("gluServer2: completed, 200 scanned, 47 moved, 0 failures, 11 s"), "{done:?}");
    }
}
