//! `EnsureGlusterd`: glusterd running, its CLI answering, and started at boot.
//!
//! With systemd: `systemctl is-active` / `is-enabled glusterd`, fixed by `systemctl enable
//! --now glusterd`. Without a service manager (`ServiceManager::Direct`, e.g. the lab) the agent
//! starts `/usr/sbin/glusterd -p /run/glusterd.pid` itself (it daemonizes) and tracks it by that
//! pid file only — never by process name, since several hosts may share one process table;
//! "enabled at boot" does not apply there and the check says so as a warning. After a start
//! the agent waits, with a deadline, until `gluster pool list` answers over the local socket.
//! Also used by `ResetGlusterdUuid` to stop and start glusterd. Reads /run/glusterd.pid and
//! /proc; starts/stops glusterd.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brickyard_proto::v1;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Check, Context, ServiceManager, TaskError};
use crate::facts::process;
use crate::gluster;
use crate::runner::{find_program, Cmd};

/// The pid file of a glusterd the agent started itself.
pub(super) const PID_FILE: &str = "/run/glusterd.pid";
/// How long glusterd may take to answer on its socket after a start (≈1 s measured here).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long glusterd may take to exit after SIGTERM / `systemctl stop`.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

pub struct EnsureGlusterd {
    pid_file: PathBuf,
}

impl EnsureGlusterd {
    pub fn from_proto(_task: &v1::EnsureGlusterd) -> Result<Self, TaskError> {
        Ok(Self { pid_file: PathBuf::from(PID_FILE) })
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        match ctx.service_manager {
            ServiceManager::Systemd => {
                let active = is_running(ctx, &self.pid_file).await?;
                let is_enabled = Cmd::new(find_program("systemctl")?).args(["is-enabled", "glusterd"]);
                let enabled = ctx.runner.output(&is_enabled).await?.stdout.trim() == "enabled";
                let mut check = Check::unchanged();
                if !active {
                    check.changes.push("start glusterd (systemctl enable --now glusterd)".to_owned());
                }
                if !enabled {
                    check.changes.push("enable glusterd at boot (systemctl enable --now glusterd)".to_owned());
                }
                Ok(check)
            }
            ServiceManager::Direct => {
                let mut check = if is_running(ctx, &self.pid_file).await? {
                    Check::unchanged()
                } else {
                    Check::change(format!("start glusterd -p {}", self.pid_file.display()))
                };
                check.warnings.push(
                    "glusterd is not enabled at boot: there is no service manager here (direct mode), \
                     the agent starts glusterd itself"
                        .to_owned(),
                );
                Ok(check)
            }
        }
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let check = self.check(ctx).await?;
        if check.changes.is_empty() {
            return Ok(Vec::new());
        }
        match ctx.service_manager {
            ServiceManager::Systemd => {
                ctx.runner.run(&Cmd::new(find_program("systemctl")?).args(["enable", "--now", "glusterd"])).await?;
                wait_for_cli(ctx).await?;
            }
            ServiceManager::Direct => start(ctx, &self.pid_file).await?,
        }
        Ok(check.changes)
    }
}

/// Whether glusterd runs: `systemctl is-active`, or (direct) the process in the pid file.
pub(super) async fn is_running(ctx: &Context, pid_file: &Path) -> Result<bool, TaskError> {
    Ok(match ctx.service_manager {
        ServiceManager::Systemd => {
            let query = Cmd::new(find_program("systemctl")?).args(["is-active", "glusterd"]);
            ctx.runner.output(&query).await?.stdout.trim() == "active"
        }
        ServiceManager::Direct => running_pid(pid_file)?.is_some(),
    })
}

/// The pid of the glusterd recorded in `pid_file`, if that process is alive (not a zombie)
/// and is glusterd.
pub(super) fn running_pid(pid_file: &Path) -> Result<Option<u32>, TaskError> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TaskError::io(format!("reading {}", pid_file.display()))(e)),
    };
    let Some(pid) = process::parse_pid(&text) else { return Ok(None) };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let read = |file: &str| std::fs::read_to_string(proc_dir.join(file)).unwrap_or_default();
    let alive = matches!(process::parse_stat_state(&read("stat")), Some(s) if s != 'Z' && s != 'X');
    Ok((alive && process::is_named(&read("comm"), &read("cmdline"), "glusterd")).then_some(pid))
}

/// Starts glusterd: `systemctl start` with systemd, else `glusterd -p PID_FILE`; then waits
/// until its CLI answers.
pub(super) async fn start(ctx: &Context, pid_file: &Path) -> Result<(), TaskError> {
    match ctx.service_manager {
        ServiceManager::Systemd => {
            ctx.runner.run(&Cmd::new(find_program("systemctl")?).args(["start", "glusterd"])).await?;
        }
        ServiceManager::Direct => {
            // glusterd forks, and its parent exits once the daemon is set up.
            ctx.runner.run(&Cmd::new(find_program("glusterd")?).arg("-p").arg(pid_file)).await?;
            if running_pid(pid_file)?.is_none() {
                return Err(TaskError::Failed(format!(
                    "glusterd exited right after starting (pid file {}); see /var/log/glusterfs/glusterd.log",
                    pid_file.display()
                )));
            }
        }
    }
    wait_for_cli(ctx).await
}

/// Stops glusterd and waits until it is gone. Brick processes are not glusterd and keep running.
pub(super) async fn stop(ctx: &Context, pid_file: &Path) -> Result<(), TaskError> {
    match ctx.service_manager {
        ServiceManager::Systemd => {
            ctx.runner.run(&Cmd::new(find_program("systemctl")?).args(["stop", "glusterd"])).await?;
        }
        ServiceManager::Direct => {
            let Some(pid) = running_pid(pid_file)? else { return Ok(()) };
            kill(Pid::from_raw(pid as i32), Signal::SIGTERM)
                .map_err(|e| TaskError::io(format!("stopping glusterd (pid {pid})"))(e.into()))?;
            let deadline = Instant::now() + STOP_DEADLINE;
            while running_pid(pid_file)?.is_some() {
                if Instant::now() > deadline {
                    return Err(TaskError::Timeout(format!("glusterd (pid {pid}) to exit after SIGTERM")));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
    Ok(())
}

/// Polls `gluster pool list` until glusterd answers on its local socket, or the deadline.
async fn wait_for_cli(ctx: &Context) -> Result<(), TaskError> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        match gluster::pool_list(ctx).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(TaskError::Timeout(format!(
                    "glusterd to answer `gluster pool list` within {START_DEADLINE:?} (last: {e})"
                )))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fake::FakeRunner;
    use crate::runner::Output;
    use std::sync::Arc;

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
        let runner = Arc::new(
            FakeRunner::default()
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
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Systemd };
        assert_eq!(t.apply(&ctx).await.unwrap(), ["start glusterd (systemctl enable --now glusterd)"]);
        assert_eq!(t.check(&ctx).await.unwrap(), Check::unchanged());
        assert_eq!(runner.seen().len(), 7);
    }

    #[tokio::test]
    async fn direct_mode_warns_that_boot_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        let t = EnsureGlusterd { pid_file: dir.path().join("glusterd.pid") };
        let ctx = Context { runner: Arc::new(FakeRunner::default()), service_manager: ServiceManager::Direct };
        let check = t.check(&ctx).await.unwrap();
        assert_eq!(check.changes, [format!("start glusterd -p {}/glusterd.pid", dir.path().display())]);
        assert!(check.warnings[0].contains("not enabled at boot"), "{check:?}");
    }
}
