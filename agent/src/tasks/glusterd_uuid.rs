//! `ResetGlusterdUuid`: gives glusterd a fresh UUID on a server cloned from an image that
//! already carried /var/lib/glusterd/glusterd.info (every clone then has the same UUID and
//! peer probes fail with "Peer uuid ... is same as local uuid"). Refused when glusterd knows
//! any peer or volume (asked through the gluster CLI when glusterd runs, else read from
//! /var/lib/glusterd/peers and vols): a new UUID would orphan them. The task carries the UUID
//! it means to replace: when the host's UUID is another one (already reset, or the plan is
//! stale) there is nothing to do. Otherwise glusterd is stopped, the `UUID=` line rewritten
//! atomically (other lines kept) and glusterd started again if it was running. Finding
//! duplicate UUIDs across servers is the coordinator's job. Touches /var/lib/glusterd and glusterd.

use std::path::{Path, PathBuf};

use brickyard_proto::v1;

use super::glusterd::{self, PID_FILE};
use super::{Check, Context, TaskError};
use crate::etcfile;
use crate::facts::gluster::parse_glusterd_info;
use crate::gluster;

const STATE_DIR: &str = "/var/lib/glusterd";
/// The kernel hands out a fresh random (version 4) UUID on every read.
const RANDOM_UUID: &str = "/proc/sys/kernel/random/uuid";

/// Whether `s` is a UUID in the canonical 8-4-4-4-12 hex form.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// glusterd.info with the `UUID=` line replaced by `uuid`, every other line kept.
fn with_uuid(info: &str, uuid: &str) -> String {
    info.split_inclusive('\n')
        .map(|line| if line.trim().starts_with("UUID=") { format!("UUID={uuid}\n") } else { line.to_owned() })
        .collect()
}

pub struct ResetGlusterdUuid {
    current: String,
    state_dir: PathBuf,
    pid_file: PathBuf,
}

/// What check found: nothing to do (with why), or the UUID to replace and glusterd.info.
enum Found {
    Nothing(String),
    Reset { info: String },
}

impl ResetGlusterdUuid {
    pub fn from_proto(task: &v1::ResetGlusterdUuid) -> Result<Self, TaskError> {
        if !is_uuid(&task.current_uuid) {
            return Err(TaskError::InvalidTask(format!(
                "current_uuid {:?} is not a UUID (8-4-4-4-12 hex digits)",
                task.current_uuid
            )));
        }
        Ok(Self {
            current: task.current_uuid.to_ascii_lowercase(),
            state_dir: PathBuf::from(STATE_DIR),
            pid_file: PathBuf::from(PID_FILE),
        })
    }

    fn info_path(&self) -> PathBuf {
        self.state_dir.join("glusterd.info")
    }

    /// Peers (by name) and volumes glusterd knows.
    async fn pool_members(&self, ctx: &Context) -> Result<(Vec<String>, Vec<String>), TaskError> {
        if glusterd::is_running(ctx, &self.pid_file).await? {
            let peers = gluster::pool_list(ctx).await?.into_iter().filter(|p| !p.is_local).map(|p| p.hostname);
            let volumes = gluster::volume_info(ctx).await?.into_iter().map(|v| v.name);
            Ok((peers.collect(), volumes.collect()))
        } else {
            Ok((dir_entries(&self.state_dir.join("peers"))?, dir_entries(&self.state_dir.join("vols"))?))
        }
    }

    async fn find(&self, ctx: &Context) -> Result<Found, TaskError> {
        let path = self.info_path();
        let info = match std::fs::read_to_string(&path) {
            Ok(info) => info,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Found::Nothing(format!(
                    "no {}: glusterd makes a fresh UUID when it first starts",
                    path.display()
                )))
            }
            Err(e) => return Err(TaskError::io(format!("reading {}", path.display()))(e)),
        };
        let Some(uuid) = parse_glusterd_info(&info) else {
            return Err(TaskError::Conflict(format!("{} has no UUID= line", path.display())));
        };
        if !uuid.eq_ignore_ascii_case(&self.current) {
            return Ok(Found::Nothing(format!(
                "glusterd's UUID is {uuid}, not {}: nothing to reset (already reset, or the plan is stale)",
                self.current
            )));
        }
        let (peers, volumes) = self.pool_members(ctx).await?;
        if !peers.is_empty() || !volumes.is_empty() {
            return Err(TaskError::Unsafe(format!(
                "glusterd {uuid} already has peers [{}] and volumes [{}]: a new UUID would cut them off",
                peers.join(", "),
                volumes.join(", ")
            )));
        }
        Ok(Found::Reset { info })
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        Ok(match self.find(ctx).await? {
            Found::Nothing(why) => Check { changes: Vec::new(), warnings: vec![why] },
            Found::Reset { .. } => Check::change(self.change()),
        })
    }

    fn change(&self) -> String {
        format!("give glusterd a fresh UUID in place of {} ({})", self.current, self.info_path().display())
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let Found::Reset { info } = self.find(ctx).await? else { return Ok(Vec::new()) };
        let fresh = std::fs::read_to_string(RANDOM_UUID).map_err(TaskError::io(format!("reading {RANDOM_UUID}")))?;
        let fresh = fresh.trim();
        let was_running = glusterd::is_running(ctx, &self.pid_file).await?;
        if was_running {
            glusterd::stop(ctx, &self.pid_file).await?;
        }
        let path = self.info_path();
        etcfile::atomic_write(&path, with_uuid(&info, fresh).as_bytes(), 0o600)
            .map_err(TaskError::io(format!("writing {}", path.display())))?;
        if was_running {
            glusterd::start(ctx, &self.pid_file).await?;
        }
        Ok(vec![format!("{} (now {fresh})", self.change())])
    }
}

/// The names in `dir` (none when it does not exist).
fn dir_entries(dir: &Path) -> Result<Vec<String>, TaskError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TaskError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(TaskError::io(format!("reading {}", dir.display())))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fake::FakeRunner;
    use crate::tasks::ServiceManager;
    use std::sync::Arc;

    const UUID: &str = "fca0ad99-8589-4e71-ae6f-b5a748661e38";
    const INFO: &str = "UUID=fca0ad99-8589-4e71-ae6f-b5a748661e38\noperating-version=100000\n";
    const POOL_ALONE: &str = include_str!("../gluster/fixtures/pool-list-single.xml");
    const POOL_WITH_PEER: &str = include_str!("../gluster/fixtures/pool-list.xml");
    const NO_VOLUMES: &str = include_str!("../gluster/fixtures/volume-info-none.xml");

    #[test]
    fn uuids_and_glusterd_info() {
        assert!(is_uuid(UUID));
        for bad in
            ["", "fca0ad99", "fca0ad99-8589-4e71-ae6f-b5a748661e3", "gca0ad99-8589-4e71-ae6f-b5a748661e38", "x;y"]
        {
            assert!(!is_uuid(bad), "{bad:?}");
            assert!(ResetGlusterdUuid::from_proto(&v1::ResetGlusterdUuid { current_uuid: bad.into() }).is_err());
        }
        assert_eq!(
            with_uuid(INFO, "00000000-0000-4000-8000-000000000000"),
            "UUID=00000000-0000-4000-8000-000000000000\noperating-version=100000\n"
        );
    }

    fn task(dir: &Path, current: &str) -> ResetGlusterdUuid {
        std::fs::write(dir.join("glusterd.info"), INFO).unwrap();
        ResetGlusterdUuid { current: current.into(), state_dir: dir.to_owned(), pid_file: dir.join("glusterd.pid") }
    }

    fn systemd(runner: FakeRunner) -> (Context, Arc<FakeRunner>) {
        let runner = Arc::new(runner);
        (Context { runner: runner.clone(), service_manager: ServiceManager::Systemd }, runner)
    }

    #[tokio::test]
    async fn refuses_when_glusterd_has_peers() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), UUID);
        let (ctx, _) = systemd(
            FakeRunner::default()
                .expect("/usr/bin/systemctl is-active glusterd", "active\n")
                .expect("/usr/sbin/gluster --mode=script --xml pool list", POOL_WITH_PEER)
                .expect("/usr/sbin/gluster --mode=script --xml volume info", NO_VOLUMES),
        );
        let err = t.check(&ctx).await.unwrap_err();
        assert!(matches!(err, TaskError::Unsafe(_)) && err.to_string().contains("peers [198.18.250.2]"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("glusterd.info")).unwrap(), INFO);
    }

    #[tokio::test]
    async fn refuses_from_disk_state_when_glusterd_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), UUID);
        std::fs::create_dir_all(dir.path().join("vols/gluV1")).unwrap();
        let (ctx, _) = systemd(FakeRunner::default().expect_output(
            "/usr/bin/systemctl is-active glusterd",
            crate::runner::Output { code: Some(3), stdout: "inactive\n".into(), stderr: String::new() },
        ));
        let err = t.check(&ctx).await.unwrap_err();
        assert!(err.to_string().contains("volumes [gluV1]"), "{err}");
    }

    #[tokio::test]
    async fn resets_a_lone_glusterd_then_has_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), UUID);
        let (ctx, runner) = systemd(
            FakeRunner::default()
                .expect("/usr/bin/systemctl is-active glusterd", "active\n")
                .expect("/usr/sbin/gluster --mode=script --xml pool list", POOL_ALONE)
                .expect("/usr/sbin/gluster --mode=script --xml volume info", NO_VOLUMES)
                .expect("/usr/bin/systemctl is-active glusterd", "active\n")
                .expect("/usr/bin/systemctl stop glusterd", "")
                .expect("/usr/bin/systemctl start glusterd", "")
                .expect("/usr/sbin/gluster --mode=script --xml pool list", POOL_ALONE),
        );
        let done = t.apply(&ctx).await.unwrap();
        assert_eq!(runner.seen().len(), 7);
        let info = std::fs::read_to_string(dir.path().join("glusterd.info")).unwrap();
        let fresh = parse_glusterd_info(&info).unwrap();
        assert!(is_uuid(&fresh) && fresh != UUID, "{info}");
        assert!(info.ends_with("\noperating-version=100000\n"));
        assert!(done[0].contains(&format!("in place of {UUID}")) && done[0].contains(&fresh), "{done:?}");

        // The UUID it was meant to replace is gone: nothing to do, and nothing is run.
        let check = t.check(&ctx).await.unwrap();
        assert!(check.changes.is_empty() && check.warnings[0].contains("nothing to reset"), "{check:?}");
        assert_eq!(runner.seen().len(), 7);
    }
}
