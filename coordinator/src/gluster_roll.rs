//! Gluster's side of `pki rotate` and `pki push-crl` on a TLS pool. gluster reads
//! /etc/ssl/glusterfs.* and the CRL directory for every new connection (a new TLS context per
//! accepted or re-made connection), but keeps the TLS sessions it has. So, after new
//! certificates or a new CRL are on the agents:
//!
//! 1. **Refresh**, every host at once: the agent copies its new certificate and key, the pool
//!    CA and CRL where gluster reads them (`GlusterTls`, refresh only: hosts an apply set up
//!    for TLS). From here on every new connection uses them.
//! 2. **Restart, one server at a time** (unless `--no-restart`): glusterd, the server's brick
//!    processes and self-heal daemon (`RestartGluster`, which waits until its bricks are online
//!    and what was connected to them is connected again), then this module waits, polling
//!    `GetGlusterStatus` with a deadline and printing what it waits for, until every brick of
//!    the pool's started volumes is online and no heal is pending, before the next server.
//!    A replica always has a live copy, so clients keep the volume; every connection then
//!    handshakes again, proving the new certificates while the old ones are still valid and
//!    cutting the connections a revoked host still held.
//!
//! Clients are not remounted: their FUSE processes reconnect to each restarted brick with the
//! refreshed files. Network only (through the agents).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brickyard_proto::poll::{self, Look};
use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::agents::Agents;
use crate::apply;
use crate::gluster_tls;
use crate::spec::{HostTarget, Spec};
use crate::status::volume_health;

/// How long a server's volumes may take to be healthy again after its restart (the heal of
/// what was written while its bricks were down).
const HEALTHY_DEADLINE: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_secs(1);

/// What the roll does besides refreshing the files.
pub struct Roll {
    /// Restart the servers' gluster processes one at a time.
    pub restart: bool,
    /// Addresses of hosts whose current certificate is revoked: not waited for.
    pub revoked: Vec<String>,
}

/// Refreshes gluster's TLS files on `hosts`, then (with `roll.restart`) restarts the servers
/// among them one at a time. Prints one line per step and host; returns how many failed. A
/// failed server stops the restarts (the next server keeps its copy up).
pub async fn run(spec: &Spec, hosts: &[HostTarget], roll: &Roll) -> usize {
    let agents = Arc::new(Agents::new(spec));
    let refresh = gluster_tls::refresh_task(spec);
    let answers = crate::agents::each(hosts.iter().map(|h| h.name.as_str()), |host| {
        let (agents, task) = (agents.clone(), refresh.clone());
        async move { apply::apply_quietly(&agents, &host, vec![task]).await }
    })
    .await;
    let mut failed = 0;
    for (host, answer) in answers {
        match answer {
            Ok(changes) if changes.is_empty() => println!("{host}: gluster TLS files already current"),
            Ok(changes) => println!("{host}: gluster TLS files refreshed: {}", changes.join("; ")),
            Err(err) => {
                failed += 1;
                eprintln!("{host}: refreshing gluster's TLS files failed: {err}");
            }
        }
    }
    if failed > 0 {
        return failed;
    }
    let servers: Vec<&str> =
        spec.servers.iter().map(|s| s.name.as_str()).filter(|s| hosts.iter().any(|h| h.name == *s)).collect();
    let mut restarted = false;
    for server in servers.into_iter().filter(|_| roll.restart) {
        match restart_server(&agents, server, roll).await {
            Ok(done) => restarted |= done,
            Err(err) => {
                eprintln!("{server}: {err}; the servers after it were not restarted");
                return failed + 1;
            }
        }
    }
    let reconnected = if restarted {
        "its gluster connections were made again with them as each server restarted"
    } else {
        "its established gluster connections keep their TLS sessions until they reconnect"
    };
    for client in hosts.iter().filter(|h| spec.clients.iter().any(|c| c.name == h.name)) {
        println!(
            "{}: mounts not remounted; gluster reads the refreshed files on every new connection, {reconnected}",
            client.name
        );
    }
    failed
}

/// Restarts `server`'s gluster processes when they predate its TLS files, then waits until
/// the pool's volumes are healthy; whether it restarted them.
async fn restart_server(agents: &Agents, server: &str, roll: &Roll) -> Result<bool, String> {
    let task = v1::Task {
        id: "restart gluster".into(),
        kind: Some(Kind::RestartGluster(v1::RestartGluster { not_expected: roll.revoked.clone() })),
    };
    println!(
        "{server}: restarting gluster if it predates its TLS files (then waiting for its bricks and their clients)"
    );
    let started = Instant::now();
    let changes = apply::apply_quietly(agents, server, vec![task]).await?;
    if changes.is_empty() {
        println!("{server}: gluster processes already started with the current TLS files");
        return Ok(false);
    }
    println!(
        "{server}: {} (bricks online, clients back, {:.1} s)",
        changes.join("; "),
        started.elapsed().as_secs_f64()
    );
    warn_missing_crl_path(agents, server).await;
    await_healthy(agents, server).await?;
    println!("{server}: pool healthy again ({:.1} s after the restart began)", started.elapsed().as_secs_f64());
    Ok(true)
}

/// Says so when a started TLS volume has no `ssl.crl-path` yet (a pool from before the CRL).
async fn warn_missing_crl_path(agents: &Agents, server: &str) {
    let Ok(status) = agents.gluster_status(server, v1::VolumeDetail::Full).await else { return };
    for volume in status.volumes.iter().filter(|v| v.status == "Started") {
        let tls = volume.options.get("server.ssl").is_some_and(|v| v == "on");
        if tls && !volume.options.contains_key(gluster_tls::CRL_PATH_OPTION) {
            println!(
                "{server}: volume {} has no {} yet, so its bricks do not check the CRL: `brickyard apply` sets it \
                 (then run this again to restart the bricks with it)",
                volume.name,
                gluster_tls::CRL_PATH_OPTION
            );
        }
    }
}

/// Polls `server`'s view of the pool until every brick of every started volume is online and
/// no heal is pending; prints what it still waits for whenever that changes.
async fn await_healthy(agents: &Agents, server: &str) -> Result<(), String> {
    let shown = RefCell::new(String::new());
    let what = format!("the pool to be healthy again after {server}'s restart");
    poll::until(what, HEALTHY_DEADLINE, POLL, || async {
        let waiting = match agents.gluster_status(server, v1::VolumeDetail::Full).await {
            Ok(status) => unhealthy(&status),
            Err(err) => vec![format!("no status ({err})")],
        };
        if waiting.is_empty() {
            return Ok(Look::Done(()));
        }
        let now = waiting.join(", ");
        if *shown.borrow() != now {
            println!("{server}: waiting for {now}");
            shown.replace(now.clone());
        }
        Ok::<_, String>(Look::NotYet(now))
    })
    .await
}

/// What keeps the pool from being healthy: offline bricks, pending heals.
fn unhealthy(status: &v1::GlusterStatus) -> Vec<String> {
    let mut waiting = Vec::new();
    if !status.glusterd_running {
        waiting.push("glusterd".to_owned());
    }
    for volume in status.volumes.iter().filter(|v| v.status == "Started") {
        let offline = volume_health::offline_bricks(volume);
        if !offline.is_empty() {
            waiting.push(format!("{} bricks of {} to be online ({})", offline.len(), volume.name, offline.join(" ")));
        }
        if volume.pending_heals > 0 {
            waiting.push(format!("{} pending heals of {}", volume.pending_heals, volume.name));
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brick(host: &str, online: bool) -> v1::BrickStatus {
        v1::BrickStatus { host: host.into(), path: "/vdisk/brick1".into(), online, ..Default::default() }
    }

    #[test]
    fn healthy_means_every_brick_online_and_no_pending_heal() {
        let volume = |bricks, pending_heals| v1::VolumeStatus {
            name: "gluV1".into(),
            status: "Started".into(),
            bricks,
            pending_heals,
            ..Default::default()
        };
        let status = |volumes| v1::GlusterStatus { glusterd_running: true, volumes, ..Default::default() };
        assert!(unhealthy(&status(vec![volume(vec![brick("s1", true), brick("s2", true)], 0)])).is_empty());
        assert!(unhealthy(&status(vec![volume(vec![brick("s1", true)], -1)])).is_empty(), "-1: no heal info");
        assert_eq!(
            unhealthy(&status(vec![volume(vec![brick("s1", false), brick("s2", true)], 3)])),
            ["1 bricks of gluV1 to be online (s1:/vdisk/brick1)", "3 pending heals of gluV1"]
        );
    }
}
