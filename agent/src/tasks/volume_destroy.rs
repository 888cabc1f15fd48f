//! `DestroyVolume` (`brickyard destroy`, after the operator's confirmation): `gluster volume
//! stop VOL` when it is started, then `gluster volume delete VOL`. Gluster's delete removes the
//! volume from the pool's configuration only: the brick directories and every file in them stay
//! where they are (the plan line names them), and nothing here removes them. A volume that does
//! not exist is nothing to do. Runs only the local gluster CLI.

use std::fmt;

use async_trait::async_trait;
use brickyard_proto::types::VolumeName;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, VolumeInfo};
use crate::host::Context;

pub struct DestroyVolume {
    name: VolumeName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestroyChange {
    Stop(VolumeName),
    /// `bricks`: `host:path` of each brick, whose files are kept.
    Delete {
        volume: VolumeName,
        bricks: Vec<String>,
    },
}

impl DestroyChange {
    fn cli_args(&self) -> [&str; 3] {
        match self {
            DestroyChange::Stop(volume) => ["volume", "stop", volume.as_str()],
            DestroyChange::Delete { volume, .. } => ["volume", "delete", volume.as_str()],
        }
    }
}

impl fmt::Display for DestroyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestroyChange::Stop(volume) => write!(f, "stop volume {volume} (gluster volume stop {volume})"),
            DestroyChange::Delete { volume, bricks } => write!(
                f,
                "delete volume {volume} (gluster volume delete {volume}); brick data is kept: {} keep their files",
                bricks.join(" ")
            ),
        }
    }
}

impl DestroyVolume {
    pub fn from_proto(task: &v1::DestroyVolume) -> Result<Self, TaskError> {
        Ok(Self { name: VolumeName::new(&task.name)? })
    }

    fn plan_with(&self, live: Option<&VolumeInfo>) -> Plan<DestroyChange> {
        let Some(live) = live else { return Plan::unchanged() };
        let stop = live.started().then(|| DestroyChange::Stop(self.name.clone()));
        let delete =
            DestroyChange::Delete { volume: self.name.clone(), bricks: live.bricks.iter().map(|b| b.spec()).collect() };
        Plan::of(stop.into_iter().chain([delete]).collect())
    }
}

#[async_trait]
impl Task for DestroyVolume {
    type Change = DestroyChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<DestroyChange>, TaskError> {
        let volumes = gluster::volume_info(ctx).await?;
        Ok(self.plan_with(volumes.iter().find(|v| v.name == self.name.as_str())))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<DestroyChange>) -> Result<Vec<DestroyChange>, TaskError> {
        for change in &plan.changes {
            gluster::cli(ctx, &change.cli_args()).await?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::testing::converges;

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    #[tokio::test]
    async fn stops_then_deletes_naming_the_kept_bricks() {
        let c = Context::direct(
            FakeRunner::default()
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
                .expect(&format!("{G} volume stop gv0"), &fixture("volume-start.xml"))
                .expect(&format!("{G} volume delete gv0"), &fixture("volume-start.xml"))
                .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml")),
        );
        let t = DestroyVolume::from_proto(&v1::DestroyVolume { name: "gv0".into() }).unwrap();
        let (before, done) = converges(&t, &c).await;
        assert_eq!(
            before.changes,
            [
                "stop volume gv0 (gluster volume stop gv0)",
                "delete volume gv0 (gluster volume delete gv0); brick data is kept: gs1:/srv/b1 gs2:/srv/b1 keep \
                 their files"
            ]
        );
        assert_eq!(done, before.changes);
        assert!(DestroyVolume::from_proto(&v1::DestroyVolume { name: "a b".into() }).is_err());
    }
}
