//! `ResetEmptyBricks`: a brick of this server that its volume lists but that is an empty
//! directory without `trusted.glusterfs.volume-id` — the server came back under its name on a
//! new, empty disk, and gluster will not start a brick without its volume-id. For a started
//! volume that heals (replicate, arbiter, disperse): `volume reset-brick VOL BRICK start`,
//! `volume reset-brick VOL BRICK BRICK commit force` (the same brick, now empty, back in its
//! place), then a full heal watched to zero ([`super::heal`]). A brick holding anything, or
//! carrying a volume-id, is not this task's (`EnsureBricks` judges it). Reads `volume info`,
//! lists the brick directories and reads their volume-id; runs only the local gluster CLI.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::{AbsPath, VolumeName};
use brickyard_proto::v1;

use super::heal::{self, Healed};
use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, VolumeInfo};
use crate::host::Context;

const VOLUME_ID: &str = "trusted.glusterfs.volume-id";

pub struct ResetEmptyBricks {
    bricks: Vec<(VolumeName, AbsPath)>,
    heal_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    volume: String,
    /// `host:path` as the volume lists it.
    brick: String,
    healed: Option<Healed>,
}

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Reset { volume, brick, healed } = self;
        write!(f, "reset empty brick {brick} of volume {volume} (reset-brick start, commit force), full heal")?;
        if let Some(h) = healed {
            write!(
                f,
                ": no entry pending after {:.1} s (at most {} pending)",
                h.elapsed.as_secs_f64(),
                h.most_pending
            )?;
        }
        Ok(())
    }
}

/// Whether `path` is an empty directory without a volume-id.
fn empty_untagged(path: &Path) -> Result<bool, TaskError> {
    let read = |what: &str| TaskError::io(format!("{what} {}", path.display()));
    if !path.is_dir() || std::fs::read_dir(path).map_err(read("listing"))?.next().is_some() {
        return Ok(false);
    }
    Ok(xattr::get(path, VOLUME_ID).map_err(read("reading the volume-id of"))?.is_none())
}

impl ResetEmptyBricks {
    pub fn from_proto(task: &v1::ResetEmptyBricks) -> Result<Self, TaskError> {
        let bricks = task
            .bricks
            .iter()
            .map(|b| Ok((VolumeName::new(&b.volume)?, AbsPath::checked("brick path", &b.path)?)))
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(Self { bricks, heal_timeout: heal::timeout(task.heal_timeout_seconds) })
    }

    /// The resets `volumes` call for on host `host`.
    fn resets(&self, host: &str, volumes: &[VolumeInfo]) -> Result<Vec<Reset>, TaskError> {
        let mut resets = Vec::new();
        for (volume, path) in &self.bricks {
            let Some(live) = volumes.iter().find(|v| v.name == volume.as_str() && v.started() && v.heals()) else {
                continue;
            };
            let listed = live.bricks.iter().find(|b| b.path == path.as_str() && gluster::is_local_name(host, &b.host));
            if let Some(b) = listed {
                if empty_untagged(Path::new(path.as_str()))? {
                    resets.push(Reset { volume: live.name.clone(), brick: b.spec(), healed: None });
                }
            }
        }
        Ok(resets)
    }
}

#[async_trait]
impl Task for ResetEmptyBricks {
    type Change = Reset;

    /// Asks gluster only when some brick is an empty, untagged directory (as every brick is
    /// before its volume exists); no glusterd yet means no volume to reset a brick of.
    async fn plan(&self, ctx: &Context) -> Result<Plan<Reset>, TaskError> {
        let mut any = false;
        for (_, path) in &self.bricks {
            any |= empty_untagged(Path::new(path.as_str()))?;
        }
        if !any {
            return Ok(Plan::unchanged());
        }
        let volumes = match gluster::volume_info(ctx).await {
            Ok(volumes) => volumes,
            Err(gluster::Error::NotReady(_)) => return Ok(Plan::unchanged()),
            Err(e) => return Err(e.into()),
        };
        Ok(Plan::of(self.resets(&gluster::local_hostname()?, &volumes)?))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<Reset>) -> Result<Vec<Reset>, TaskError> {
        let mut done = Vec::new();
        for reset in plan.changes {
            let (volume, brick) = (reset.volume.as_str(), reset.brick.as_str());
            gluster::cli(ctx, &["volume", "reset-brick", volume, brick, "start"]).await?;
            gluster::cli(ctx, &["volume", "reset-brick", volume, brick, brick, "commit", "force"]).await?;
            let healed = heal::full_heal(ctx, volume, self.heal_timeout).await?;
            done.push(Reset { healed: Some(healed), ..reset });
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::gluster::xml::{cli_output, volumes};

    #[test]
    fn only_an_empty_untagged_brick_its_started_volume_lists_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let brick = dir.path().join("b1");
        std::fs::create_dir(&brick).unwrap();
        let path = brick.to_str().unwrap();
        let info = fixture("volume-info.xml").replace("/srv/b1", path);
        let live = volumes(&cli_output(&info).unwrap()).unwrap();
        let task = ResetEmptyBricks::from_proto(&v1::ResetEmptyBricks {
            bricks: vec![v1::LocalBrick { volume: "gv0".into(), path: path.into(), ..Default::default() }],
            heal_timeout_seconds: 0,
        })
        .unwrap();
        let resets = task.resets("gs2", &live).unwrap();
        assert_eq!(resets.len(), 1);
        assert_eq!(
            resets[0].to_string(),
            format!("reset empty brick gs2:{path} of volume gv0 (reset-brick start, commit force), full heal")
        );
        assert!(task.resets("gs3", &live).unwrap().is_empty(), "not a brick of this host");
        std::fs::write(brick.join("f"), "data").unwrap();
        assert!(task.resets("gs2", &live).unwrap().is_empty(), "a brick holding a file is not reset");
    }
}
