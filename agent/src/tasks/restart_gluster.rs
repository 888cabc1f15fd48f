//! `RestartGluster`: after a certificate rotation or a new pool CRL, this server's gluster
//! processes handshake again with what /etc/ssl/glusterfs.* and the CRL directory hold now.
//! gluster reads those files for each new connection, but a process keeps the TLS sessions
//! it has: the connections made with the old certificate (and those of a host revoked since)
//! stay up until they break. Restarting glusterd, this server's brick processes and its
//! self-heal daemon makes every peer, client and daemon connect again, so that the new
//! certificate is proven now, while the old one is still valid, and a revoked certificate
//! loses the connections it holds. Needed when one of them started before the TLS files last
//! changed (process start time from /proc against the files' modification time); nothing
//! otherwise, so a re-run after an interrupted rotation does only what is left.
//!
//! Apply: read the local processes from `volume status all` (pids of bricks and daemons on
//! this node's UUID), stop glusterd, SIGTERM each of them and wait until it is gone, start
//! glusterd (it starts the bricks and the self-heal daemon of started volumes again), run
//! `volume start VOL force` for each started volume with a brick here (starts what is still
//! offline) and wait until this server's bricks are online and every address that was
//! connected to one of them before (`volume status VOL clients`: FUSE clients, self-heal
//! daemons) is connected to it again, so that the next server may go down. The other
//! replicas serve the volume meanwhile; the coordinator waits for pending heals before the
//! next server. Reads
//! /proc, runs the gluster CLI, signals gluster processes by pid, stops/starts glusterd.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use brickyard_proto::v1;
use nix::sys::signal::Signal;

use super::gluster_tls::tls_files_changed;
use super::glusterd;
use super::shape::{Plan, Task, TaskError};
use crate::gluster::{self, VolumeProcess};
use crate::host::{process, Context, ServiceManager};
use brickyard_proto::poll::{self, Look};

/// How long a brick process may take to exit after SIGTERM.
/// How long the bricks may take to come back online, and their clients to reconnect (a
/// client retries every few seconds), after glusterd started.
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);

pub struct RestartGluster {
    pid_file: PathBuf,
    /// Addresses whose connections are not waited for (revoked hosts).
    not_expected: BTreeSet<String>,
}

impl RestartGluster {
    pub fn from_proto(task: &v1::RestartGluster) -> Result<Self, TaskError> {
        let mut not_expected = BTreeSet::new();
        for address in &task.not_expected {
            let ip: std::net::IpAddr = address
                .parse()
                .map_err(|_| TaskError::InvalidTask(format!("not_expected: {address:?} is not an IP address")))?;
            not_expected.insert(ip.to_string());
        }
        Ok(Self { pid_file: PathBuf::from(glusterd::PID_FILE), not_expected })
    }
}

/// A local gluster process that started before the TLS files changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// e.g. `glusterd`, `brick gluServer1:/vdisk/brick1 of gluV1`.
    what: String,
    pid: u32,
}

/// Restart glusterd and this server's volume processes (all of them: glusterd restarts anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    stale: Vec<Stale>,
    /// Local bricks and daemons to stop: (process name for the check, pid, what).
    processes: Vec<(&'static str, u32, String)>,
    /// Started volumes with a local brick.
    volumes: Vec<String>,
    /// This server's bricks (`HOST:PATH`) of those volumes.
    bricks: Vec<String>,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stale: Vec<String> = self.stale.iter().map(|s| format!("{} (pid {})", s.what, s.pid)).collect();
        write!(
            f,
            "restart glusterd, this server's bricks and self-heal daemon so that every connection handshakes again \
             with the current TLS files ({} started before they changed)",
            stale.join(", ")
        )
    }
}

/// The local bricks (`glusterfsd`) and volume daemons (`glusterfs`) of started volumes.
fn local_processes(all: &[VolumeProcess], local_uuid: &str) -> Vec<(&'static str, u32, String)> {
    let mut out: Vec<(&'static str, u32, String)> = Vec::new();
    for p in all.iter().filter(|p| p.peer_id == local_uuid) {
        let Some(pid) = p.pid else { continue };
        let (program, what) = if p.name.contains(":/") {
            ("glusterfsd", format!("brick {} of {}", p.name, p.volume))
        } else {
            ("glusterfs", format!("{} of {}", p.name.to_lowercase(), p.volume))
        };
        // Multiplexed bricks and the shared self-heal daemon appear once per volume.
        if let Some(seen) = out.iter_mut().find(|(_, known, _)| *known == pid) {
            seen.2.push_str(&format!(", {what}"));
        } else {
            out.push((program, pid, what));
        }
    }
    out
}

/// glusterd's pid: the pid file (direct), or systemd's main pid of the unit.
async fn glusterd_pid(ctx: &Context, pid_file: &std::path::Path) -> Result<Option<u32>, TaskError> {
    match ctx.service_manager {
        ServiceManager::Direct => glusterd::running_pid(pid_file),
        ServiceManager::Systemd => {
            let query = ctx.runner.cmd("systemctl")?.args(["show", "--property", "MainPID", "--value", "glusterd"]);
            Ok(process::parse_pid(&ctx.runner.output(&query).await?.stdout))
        }
    }
}

fn started_before(pid: u32, changed: SystemTime) -> Result<bool, TaskError> {
    let started = process::started_at(pid).map_err(TaskError::io(format!("reading the start time of pid {pid}")))?;
    // The start time has a one-second grain: a process of the same second counts as older.
    Ok(started < changed + Duration::from_secs(1))
}

#[async_trait]
impl Task for RestartGluster {
    type Change = Restart;

    async fn plan(&self, ctx: &Context) -> Result<Plan<Restart>, TaskError> {
        // No TLS files: gluster TLS was never set up here, nothing serves an old certificate.
        let Some(changed) = tls_files_changed()? else { return Ok(Plan::unchanged()) };
        let Some(glusterd_pid) = glusterd_pid(ctx, &self.pid_file).await? else {
            return Err(TaskError::NotReady("glusterd does not run: EnsureGlusterd starts it".into()));
        };
        let local_uuid = gluster::pool_list(ctx)
            .await?
            .into_iter()
            .find(|p| p.is_local)
            .map(|p| p.uuid)
            .ok_or_else(|| TaskError::Failed("`gluster pool list` shows no local node".into()))?;
        let volumes = gluster::volume_info(ctx).await?;
        let started: Vec<_> = volumes.iter().filter(|v| v.started()).collect();
        let all = if started.is_empty() { Vec::new() } else { gluster::volume_processes(ctx).await? };
        let processes = local_processes(&all, &local_uuid);
        let mut stale = Vec::new();
        if started_before(glusterd_pid, changed)? {
            stale.push(Stale { what: "glusterd".into(), pid: glusterd_pid });
        }
        for (_, pid, what) in &processes {
            if started_before(*pid, changed)? {
                stale.push(Stale { what: what.clone(), pid: *pid });
            }
        }
        if stale.is_empty() {
            return Ok(Plan::unchanged());
        }
        let local_bricks: Vec<&VolumeProcess> =
            all.iter().filter(|p| p.peer_id == local_uuid && p.name.contains(":/")).collect();
        let mut volumes: Vec<String> = local_bricks.iter().map(|p| p.volume.clone()).collect();
        volumes.dedup();
        let bricks = local_bricks.iter().map(|p| p.name.clone()).collect();
        Ok(Plan::of(vec![Restart { stale, processes, volumes, bricks }]))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<Restart>) -> Result<Vec<Restart>, TaskError> {
        for restart in &plan.changes {
            let mut connected = BTreeMap::new();
            for volume in &restart.volumes {
                let clients = local_bricks(gluster::brick_clients(ctx, volume).await?, &restart.bricks);
                connected.extend(clients.map(|(brick, addresses)| {
                    (brick, addresses.into_iter().filter(|a| !self.not_expected.contains(a)).collect())
                }));
            }
            glusterd::stop(ctx, &self.pid_file).await?;
            for (program, pid, what) in &restart.processes {
                process::stop(*pid, program, Signal::SIGTERM, what).await?;
            }
            glusterd::start(ctx, &self.pid_file).await?;
            for volume in &restart.volumes {
                gluster::cli(ctx, &["volume", "start", volume, "force"]).await?;
            }
            await_reconnected(ctx, &restart.volumes, &connected).await?;
        }
        Ok(plan.changes)
    }
}

/// The entries of `clients` that are this server's bricks.
fn local_bricks(
    clients: BTreeMap<String, BTreeSet<String>>,
    bricks: &[String],
) -> impl Iterator<Item = (String, BTreeSet<String>)> + '_ {
    clients.into_iter().filter(|(brick, _)| bricks.contains(brick))
}

/// Waits until every brick of this server in `volumes` is online again and every address
/// `before` lists for it is connected to it again.
async fn await_reconnected(
    ctx: &Context,
    volumes: &[String],
    before: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(), TaskError> {
    let bricks: Vec<String> = before.keys().cloned().collect();
    let what = "this server's bricks to be online and their clients connected again";
    poll::until(what, ONLINE_DEADLINE, POLL, || async {
        let mut missing = Vec::new();
        for volume in volumes {
            for (brick, now) in local_bricks(gluster::brick_clients(ctx, volume).await?, &bricks) {
                let gone: Vec<&str> = before[&brick].difference(&now).map(String::as_str).collect();
                if !gone.is_empty() {
                    missing.push(format!("{brick} lacks {}", gone.join(", ")));
                }
            }
        }
        let offline = gluster::volume_processes(ctx).await?;
        missing.extend(
            offline
                .iter()
                .filter(|p| bricks.contains(&p.name) && p.pid.is_none())
                .map(|p| format!("{} offline", p.name)),
        );
        Ok::<_, TaskError>(if missing.is_empty() { Look::Done(()) } else { Look::NotYet(missing.join("; ")) })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(volume: &str, name: &str, peer: &str, pid: Option<u32>) -> VolumeProcess {
        VolumeProcess { volume: volume.into(), name: name.into(), peer_id: peer.into(), pid }
    }

    #[test]
    fn local_processes_are_this_nodes_bricks_and_daemons_each_pid_once() {
        let all = [
            process("gv0", "gs1:/srv/b1", "u1", Some(10)),
            process("gv0", "gs2:/srv/b1", "u2", Some(20)),
            process("gv0", "Self-heal Daemon", "u1", Some(11)),
            process("gv1", "gs1:/srv/b2", "u1", None),
            process("gv1", "Self-heal Daemon", "u1", Some(11)),
        ];
        assert_eq!(
            local_processes(&all, "u1"),
            [
                ("glusterfsd", 10, "brick gs1:/srv/b1 of gv0".to_owned()),
                ("glusterfs", 11, "self-heal daemon of gv0, self-heal daemon of gv1".to_owned()),
            ]
        );
    }

    #[test]
    fn the_change_names_what_started_before_the_files_changed() {
        let restart = Restart {
            stale: vec![Stale { what: "glusterd".into(), pid: 7 }, Stale { what: "brick a:/b of v".into(), pid: 9 }],
            processes: Vec::new(),
            volumes: Vec::new(),
            bricks: Vec::new(),
        };
        assert!(restart
            .to_string()
            .ends_with("(glusterd (pid 7), brick a:/b of v (pid 9) started before they changed)"));
    }
}
