//! Draining servers out of the pool, only on the spec's word (`drain = true`):
//! `RemoveBricks` moves whole sets of bricks' files onto the rest of a volume
//! (`remove-brick VOL BRICK... start`, watched with `... status` until every node has
//! completed, progress on each look) and `commit`s only when no node had a failure: a
//! migration that failed, stopped or did not run is never committed (that loses the files left
//! on the bricks), and `force` is never used. `DetachPeers` (`detach`) then takes each drained
//! server out of the pool once it holds no brick of any volume. Runs only the local gluster CLI.

use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::{AbsPath, HostName, VolumeName};
use brickyard_proto::v1;

use super::rebalance::{describe, timeout, unclean, watch};
use super::shape::{Plan, Task, TaskError};
use crate::gluster::rebalance::{self as migration, set_size, Found, Migration, State};
use crate::gluster::{self, VolumeInfo};
use crate::host::Context;

pub struct RemoveBricks {
    volume: VolumeName,
    /// `host:path`, as `volume info` names them.
    bricks: Vec<String>,
    timeout: Duration,
}

impl RemoveBricks {
    pub fn from_proto(task: &v1::RemoveBricks) -> Result<Self, TaskError> {
        let volume = VolumeName::new(&task.volume)?;
        let mut bricks = Vec::new();
        for b in &task.bricks {
            bricks.push(format!("{}:{}", HostName::new(&b.host)?, AbsPath::checked("brick path", &b.path)?));
        }
        if bricks.is_empty() {
            return Err(TaskError::InvalidTask(format!("volume {volume}: no bricks to remove")));
        }
        Ok(Self { volume, bricks, timeout: timeout(task.timeout_seconds) })
    }

    fn migration(&self) -> Migration {
        Migration::RemoveBrick { volume: self.volume.to_string(), bricks: self.bricks.clone() }
    }

    fn listed(&self, brick: &str) -> bool {
        self.bricks.iter().any(|b| b.eq_ignore_ascii_case(brick))
    }

    /// Refuses a removal gluster would take but that is not whole sets, or all of them.
    fn check_sets(&self, live: &VolumeInfo) -> Result<(), TaskError> {
        let sets: Vec<Vec<String>> =
            live.bricks.chunks(set_size(live)).map(|s| s.iter().map(|b| b.spec()).collect()).collect();
        let mut kept = 0;
        for set in &sets {
            let leaving = set.iter().filter(|b| self.listed(b)).count();
            if leaving == 0 {
                kept += 1;
            } else if leaving < set.len() {
                return Err(TaskError::Conflict(format!(
                    "volume {}: draining {} would split the set {}: drain every server of that set, or none",
                    self.volume,
                    self.bricks.join(" "),
                    set.join(" ")
                )));
            }
        }
        if kept == 0 {
            return Err(TaskError::Conflict(format!(
                "volume {}: draining {} would leave the volume without bricks; nothing changed",
                self.volume,
                self.bricks.join(" ")
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainChange {
    Start {
        volume: String,
        bricks: Vec<String>,
    },
    Watch {
        volume: String,
    },
    /// `remove-brick ... commit`; `nodes`: the migration's final counts (known after the watch).
    Commit {
        volume: String,
        bricks: Vec<String>,
        nodes: Option<String>,
    },
}

impl std::fmt::Display for DrainChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainChange::Start { volume, bricks } => {
                write!(f, "drain {} out of volume {volume} (remove-brick start)", bricks.join(" "))
            }
            DrainChange::Watch { volume } => {
                write!(f, "wait until the files of volume {volume}'s drained bricks have moved")
            }
            DrainChange::Commit { volume, bricks, nodes: None } => {
                write!(
                    f,
                    "remove {} from volume {volume} once no file failed to move (remove-brick commit)",
                    bricks.join(" ")
                )
            }
            DrainChange::Commit { volume, bricks, nodes: Some(nodes) } => {
                write!(f, "removed {} from volume {volume} (remove-brick commit): {nodes}", bricks.join(" "))
            }
        }
    }
}

#[async_trait]
impl Task for RemoveBricks {
    type Change = DrainChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<DrainChange>, TaskError> {
        let name = self.volume.to_string();
        let Some(live) = gluster::volume_info(ctx).await?.into_iter().find(|v| v.name == name) else {
            return Ok(Plan::unchanged());
        };
        let present: Vec<&str> = self
            .bricks
            .iter()
            .filter(|b| live.bricks.iter().any(|l| l.spec().eq_ignore_ascii_case(b)))
            .map(String::as_str)
            .collect();
        if present.is_empty() {
            return Ok(Plan::unchanged());
        }
        if present.len() < self.bricks.len() {
            return Err(TaskError::Conflict(format!(
                "volume {name} has only {} of the bricks to drain ({}); nothing changed",
                present.join(" "),
                self.bricks.join(" ")
            )));
        }
        self.check_sets(&live)?;
        if !live.started() {
            return Err(TaskError::NotReady(format!("volume {name} is not started: its files cannot move")));
        }
        let commit = DrainChange::Commit { volume: name.clone(), bricks: self.bricks.clone(), nodes: None };
        let nodes = match migration::status(ctx, &self.migration(), &gluster::local_hostname()?).await? {
            Found::Nodes(nodes) => nodes,
            Found::NotStarted | Found::NotDistributed => Vec::new(),
        };
        let changes = if nodes.is_empty() || nodes.iter().all(|n| n.state == State::Stopped) {
            vec![
                DrainChange::Start { volume: name.clone(), bricks: self.bricks.clone() },
                DrainChange::Watch { volume: name },
                commit,
            ]
        } else if nodes.iter().any(|n| n.state == State::InProgress) {
            vec![DrainChange::Watch { volume: name }, commit]
        } else if nodes.iter().all(|n| n.clean()) {
            vec![commit]
        } else {
            return Err(TaskError::Unsafe(self.not_committed(&unclean(&nodes))));
        };
        Ok(Plan::of(changes))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<DrainChange>) -> Result<Vec<DrainChange>, TaskError> {
        let migration = self.migration();
        let mut done = Vec::new();
        for change in plan.changes {
            match change {
                DrainChange::Start { .. } => {
                    gluster::cli(ctx, &migration.args("start")).await?;
                    done.push(change);
                }
                DrainChange::Watch { .. } => {
                    let nodes = watch(ctx, &migration, self.timeout).await?;
                    let failed = unclean(&nodes);
                    if !failed.is_empty() {
                        return Err(TaskError::Unsafe(self.not_committed(&failed)));
                    }
                    done.push(change);
                }
                DrainChange::Commit { volume, bricks, .. } => {
                    // Re-read right before the commit: only a clean, completed migration is committed.
                    let local = gluster::local_hostname()?;
                    let Found::Nodes(nodes) = migration::status(ctx, &migration, &local).await? else {
                        return Err(TaskError::Failed(format!(
                            "volume {volume}: gluster no longer reports the drain of {}; not committed",
                            bricks.join(" ")
                        )));
                    };
                    let failed = unclean(&nodes);
                    if nodes.is_empty() || !failed.is_empty() {
                        return Err(TaskError::Unsafe(self.not_committed(&failed)));
                    }
                    gluster::cli(ctx, &migration.args("commit")).await?;
                    done.push(DrainChange::Commit { volume, bricks, nodes: Some(describe(&nodes)) });
                }
            }
        }
        Ok(done)
    }
}

impl RemoveBricks {
    fn not_committed(&self, failed: &str) -> String {
        format!(
            "volume {}: the drain of {} did not move every file ({failed}); not committed, the bricks keep \
             their files (see /var/log/glusterfs/{}-rebalance.log on those servers; fix the cause, run `gluster \
             volume remove-brick {} {} stop`, then apply starts the drain again)",
            self.volume,
            self.bricks.join(" "),
            self.volume,
            self.volume,
            self.bricks.join(" ")
        )
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
    const RB: &str = "volume remove-brick gluV1 gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1";

    fn drain(hosts: &[&str]) -> RemoveBricks {
        RemoveBricks::from_proto(&v1::RemoveBricks {
            volume: "gluV1".into(),
            bricks: hosts.iter().map(|h| v1::Brick { host: h.to_string(), path: "/vdisk/brick1".into() }).collect(),
            timeout_seconds: 5,
        })
        .unwrap()
    }

    fn not_started() -> Output {
        Output { code: Some(1), stdout: fixture("remove-brick-status-not-started.xml"), stderr: String::new() }
    }

    #[tokio::test]
    async fn a_whole_set_is_started_watched_and_committed() {
        let info = fixture("volume-info-grown.xml");
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &info)
                .expect_output(&format!("{G} {RB} status"), not_started())
                .expect(&format!("{G} {RB} start"), &fixture("remove-brick-start.xml"))
                // Right after the start, the drained servers' rebalance processes may not answer yet.
                .expect(&format!("{G} {RB} status"), &fixture("remove-brick-status-node-not-answering.xml"))
                .expect(&format!("{G} {RB} status"), &fixture("remove-brick-status-in-progress.xml"))
                .expect(&format!("{G} {RB} status"), &fixture("remove-brick-status-completed.xml"))
                .expect(&format!("{G} {RB} status"), &fixture("remove-brick-status-completed.xml"))
                .expect(&format!("{G} {RB} commit"), &fixture("remove-brick-commit.xml")),
        );
        let done = drain(&["gluServer3", "gluServer4"]).run(&c).await.unwrap();
        assert_eq!(
            done[0],
            "drain gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1 out of volume gluV1 (remove-brick start)"
        );
        assert!(
            done[2].contains("(remove-brick commit): gluServer3: completed, 90 scanned, 43 moved, 0 failures"),
            "{done:?}"
        );
    }

    #[tokio::test]
    async fn failures_are_never_committed() {
        let failed = fixture("remove-brick-status-completed.xml").replacen(
            "<failures>0</failures>",
            "<failures>3</failures>",
            1,
        );
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info-grown.xml"))
                .expect(&format!("{G} {RB} status"), &failed),
        );
        let e = drain(&["gluServer3", "gluServer4"]).run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Unsafe(_)), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("gluServer3: completed, 90 scanned, 43 moved, 3 failures") && e.contains("not committed"),
            "{e}"
        );
        assert!(e.contains(&format!("gluster {RB} stop")), "{e}");
    }

    #[tokio::test]
    async fn half_a_set_or_every_set_is_refused() {
        let c = Context::direct(
            FakeRunner::default().expect(&format!("{G} volume info"), &fixture("volume-info-grown.xml")),
        );
        let e = drain(&["gluServer3"]).run(&c).await.unwrap_err().to_string();
        assert!(e.contains("would split the set gluServer3:/vdisk/brick1 gluServer4:/vdisk/brick1"), "{e}");
        let c = Context::direct(
            FakeRunner::default().expect(&format!("{G} volume info"), &fixture("volume-info-grown.xml")),
        );
        let e = drain(&["gluServer1", "gluServer2", "gluServer3", "gluServer4"]).run(&c).await.unwrap_err().to_string();
        assert!(e.contains("would leave the volume without bricks"), "{e}");
    }

    #[tokio::test]
    async fn drained_bricks_gone_is_unchanged() {
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml").replace("gv0", "gluV1")),
        );
        assert_eq!(drain(&["gluServer3", "gluServer4"]).plan(&c).await.unwrap(), Plan::unchanged());
    }
}
