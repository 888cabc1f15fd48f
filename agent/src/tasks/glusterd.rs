//! `EnsureGlusterd`: glusterd running, its CLI answering, and started at boot.
//!
//! With systemd: `systemctl is-active` / `is-enabled glusterd`, fixed by `systemctl enable
//! --now glusterd`. Without a service manager (`ServiceManager::Direct`, e.g. the lab) the agent
//! starts `/usr/sbin/glusterd -p /run/glusterd.pid` itself (it daemonizes) and tracks it by that
//! pid file only — never by process name, since several hosts may share one process table;
//! "enabled at boot" does not apply there and the plan says so as a warning. After a start
//! the agent waits, with a deadline, until `gluster pool list` answers over the local socket.
//! Also used by `ResetGlusterdUuid` to stop and start glusterd. Reads /run/glusterd.pid and
//! /proc; starts/stops glusterd.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::v1;
use nix::sys::signal::Signal;

use super::shape::{Plan, Task, TaskError};
use crate::gluster;
use crate::host::process;
use crate::host::{Context, ServiceManager};
use brickyard_proto::poll::{self, Look};

/// The pid file of a glusterd the agent started itself.
pub(super) const PID_FILE: &str = brickyard_proto::agent_config::DIRECT_GLUSTERD_PID_FILE;
/// How long glusterd may take to answer on its socket after a start (≈1 s measured here).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long glusterd may take to exit after SIGTERM / `systemctl stop`.
const POLL: Duration = Duration::from_millis(100);

pub struct EnsureGlusterd {
    pid_file: PathBuf,
}

impl EnsureGlusterd {
    pub fn from_proto(_task: &v1::EnsureGlusterd) -> Result<Self, TaskError> {
        Ok(Self { pid_file: PathBuf::from(PID_FILE) })
    }
}

/// What glusterd lacks: running, started at boot (systemd), or running (direct mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlusterdChange {
    Start,
    EnableAtBoot,
    StartDirect { pid_file: PathBuf },
}

impl fmt::Display for GlusterdChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlusterdChange::Start => f.write_str("start glusterd (systemctl enable --now glusterd)"),
            GlusterdChange::EnableAtBoot => f.write_str("enable glusterd at boot (systemctl enable --now glusterd)"),
            GlusterdChange::StartDirect { pid_file } => write!(f, "start glusterd -p {}", pid_file.display()),
        }
    }
}

#[async_trait]
impl Task for EnsureGlusterd {
    type Change = GlusterdChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<GlusterdChange>, TaskError> {
        let running = is_running(ctx, &self.pid_file).await?;
        match ctx.service_manager {
            ServiceManager::Systemd => {
                let is_enabled = ctx.runner.cmd("systemctl")?.args(["is-enabled", "glusterd"]);
                let enabled = ctx.runner.output(&is_enabled).await?.stdout.trim() == "enabled";
                let mut changes = Vec::new();
                if !running {
                    changes.push(GlusterdChange::Start);
                }
                if !enabled {
                    changes.push(GlusterdChange::EnableAtBoot);
                }
                Ok(Plan::of(changes))
            }
            ServiceManager::Direct => {
                let start = (!running).then(|| GlusterdChange::StartDirect { pid_file: self.pid_file.clone() });
                Ok(Plan::of(start.into_iter().collect()).warn(
                    "glusterd is not enabled at boot: there is no service manager here (direct mode), the agent \
                     starts glusterd itself",
                ))
            }
        }
    }

    /// One `systemctl enable --now` does both systemd changes; then glusterd must answer.
    async fn apply(&self, ctx: &Context, plan: Plan<GlusterdChange>) -> Result<Vec<GlusterdChange>, TaskError> {
        if plan.changes.iter().any(|c| matches!(c, GlusterdChange::Start | GlusterdChange::EnableAtBoot)) {
            ctx.runner.run(&ctx.runner.cmd("systemctl")?.args(["enable", "--now", "glusterd"])).await?;
            wait_for_cli(ctx).await?;
        }
        for change in &plan.changes {
            if let GlusterdChange::StartDirect { pid_file } = change {
                start(ctx, pid_file).await?;
            }
        }
        Ok(plan.changes)
    }
}

/// Whether glusterd runs: `systemctl is-active`, or (direct) the process in the pid file.
pub(super) async fn is_running(ctx: &Context, pid_file: &Path) -> Result<bool, TaskError> {
    Ok(match ctx.service_manager {
        ServiceManager::Systemd => {
            let query = ctx.runner.cmd("systemctl")?.args(["is-active", "glusterd"]);
            ctx.runner.output(&query).await?.stdout.trim() == "active"
        }
        ServiceManager::Direct => running_pid(pid_file)?.is_some(),
    })
}

/// The pid of the glusterd recorded in `pid_file`, if that process is alive (not a zombie)
/// and is glusterd.
pub(super) fn running_pid(pid_file: &Path) -> Result<Option<u32>, TaskError> {
    process::running_pid(pid_file, "glusterd").map_err(TaskError::io(format!("reading {}", pid_file.display())))
}

/// Starts glusterd: `systemctl start` with systemd, else `glusterd -p PID_FILE`; then waits
/// until its CLI answers.
pub(super) async fn start(ctx: &Context, pid_file: &Path) -> Result<(), TaskError> {
    match ctx.service_manager {
        ServiceManager::Systemd => {
            ctx.runner.run(&ctx.runner.cmd("systemctl")?.args(["start", "glusterd"])).await?;
        }
        ServiceManager::Direct => {
            // glusterd forks, and its parent exits once the daemon is set up.
            ctx.runner.run(&ctx.runner.cmd("glusterd")?.arg("-p").arg(pid_file)).await?;
            if running_pid(pid_file)?.is_none() {
                return Err(TaskError::Failed(format!(
                    "glusterd exited right after starting (pid file {}); see /var/log/glusterfs/glusterd.log",
                    pid_file.display()
                )));
            }
        }
    }
    ctx.shared_runs.changed();
    wait_for_cli(ctx).await
}

/// Stops glusterd and waits until it is gone. Brick processes are not glusterd and keep running.
pub(super) async fn stop(ctx: &Context, pid_file: &Path) -> Result<(), TaskError> {
    match ctx.service_manager {
        ServiceManager::Systemd => {
            ctx.runner.run(&ctx.runner.cmd("systemctl")?.args(["stop", "glusterd"])).await?;
        }
        ServiceManager::Direct => {
            let Some(pid) = running_pid(pid_file)? else { return Ok(()) };
            process::stop(pid, "glusterd", Signal::SIGTERM, "glusterd").await?;
        }
    }
    ctx.shared_runs.changed();
    Ok(())
}

/// Polls `gluster pool list` until glusterd answers on its local socket, or the deadline.
async fn wait_for_cli(ctx: &Context) -> Result<(), TaskError> {
    poll::until("glusterd to answer `gluster pool list`", START_DEADLINE, POLL, || async {
        Ok::<_, TaskError>(match gluster::pool_list(ctx).await {
            Ok(_) => Look::Done(()),
            Err(e) => Look::NotYet(format!("last answer: {e}")),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const POOL_LIST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cliOutput>\
        <opRet>0</opRet><opErrno>0</opErrno><opErrstr/><peerStatus><peer>\
        <uuid>2827e0a4-2c4c-4ae1-8b9e-9ffd0d1b44b4</uuid><hostname>localhost</hostname><connected>1</connected>\
        </peer></peerStatus></cliOutput>";

    #[test]
    fn pid_file_of_a_dead_or_foreign_process_is_not_glusterd() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("glusterd.pid");
        assert_eq!(running_pid(&pid_file).unwrap(), None);
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap(); // the test itself
        assert_eq!(running_pid(&pid_file).unwrap(), None);
        std::fs::write(&pid_file, "garbage").unwrap();
        assert_eq!(running_pid(&pid_file).unwrap(), None);
    }

    #[tokio::test]
    async fn systemd_enables_and_starts_then_waits_for_the_cli() {
        let t = EnsureGlusterd::from_proto(&v1::EnsureGlusterd {}).unwrap();
        let inactive = Output { code: Some(3), stdout: "inactive\n".into(), stderr: String::new() };
        let ctx = Context::systemd(
            FakeRunner::default()
                .expect_output("/usr/bin/systemctl is-active glusterd", inactive.clone())
                .expect("/usr/bin/systemctl is-enabled glusterd", "enabled\n")
                .expect_output("/usr/bin/systemctl is-active glusterd", inactive)
                .expect("/usr/bin/systemctl is-enabled glusterd", "enabled\n")
                .expect("/usr/bin/systemctl enable --now glusterd", "")
                .expect_output(
                    "/usr/sbin/gluster --mode=script --xml pool list",
                    Output {
                        code: Some(1),
                        stdout: "Connection failed. Please check if gluster daemon is operational.\n".into(),
                        stderr: String::new(),
                    },
                )
                .expect("/usr/sbin/gluster --mode=script --xml pool list", POOL_LIST)
                .expect("/usr/bin/systemctl is-active glusterd", "active\n")
                .expect("/usr/bin/systemctl is-enabled glusterd", "enabled\n"),
        );
        let (_, done) = converges(&t, &ctx).await;
        assert_eq!(done, ["start glusterd (systemctl enable --now glusterd)"]);
    }

    #[tokio::test]
    async fn direct_mode_warns_that_boot_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        let t = EnsureGlusterd { pid_file: dir.path().join("glusterd.pid") };
        let check = t.check(&Context::direct(FakeRunner::default())).await.unwrap();
        assert_eq!(check.changes, [format!("start glusterd -p {}/glusterd.pid", dir.path().display())]);
        assert!(check.warnings[0].contains("not enabled at boot"), "{check:?}");
    }
}
