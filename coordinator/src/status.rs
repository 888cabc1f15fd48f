//! `brickyard status`: `GetGlusterStatus` from every host, checked against the spec — peers
//! and their state, volumes (type, status, bricks online, heal state in [`heal_state`], brick
//! disk usage),
//! client mounts (present and answering). Each problem that `apply` repairs says so. What a
//! volume's state means for clients (quorum, full bricks, the stall when a server drops) is
//! judged in [`volume_health`]. Exit code 0 healthy, 1 degraded, 2 hosts unreachable. Read-only.

pub mod heal_state;
pub mod volume_health;

use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::VolumeDetail;
use serde_json::{json, Value};

use crate::agents::{self, Agents};
use crate::output::{human_bytes, Table};
use crate::spec::Spec;

/// A problem and what `brickyard apply` does about it.
fn fixed_by_apply(problem: String, fix: &str) -> String {
    format!("{problem} — `brickyard apply` {fix}")
}

#[derive(Debug, Clone, Default)]
pub struct StatusReport {
    /// Hosts whose agent did not answer, with the error.
    pub unreachable: Vec<(String, String)>,
    /// What each reachable host reported (servers first, spec order).
    pub hosts: Vec<(String, v1::GlusterStatus)>,
    /// Where the live state differs from the spec.
    pub problems: Vec<String>,
    /// The server whose answer carries the volumes (the first one with a running glusterd).
    pub volume_source: Option<String>,
}

impl StatusReport {
    /// 0 healthy, 1 degraded, 2 hosts unreachable.
    pub fn exit_code(&self) -> u8 {
        if !self.unreachable.is_empty() {
            2
        } else if !self.problems.is_empty() {
            1
        } else {
            0
        }
    }

    fn host(&self, name: &str) -> Option<&v1::GlusterStatus> {
        self.hosts.iter().find(|(h, _)| h == name).map(|(_, s)| s)
    }

    fn replace(&mut self, name: &str, status: v1::GlusterStatus) {
        if let Some(entry) = self.hosts.iter_mut().find(|(h, _)| h == name) {
            entry.1 = status;
        }
    }

    /// The volumes as the server asked for them sees them.
    fn volume_view(&self) -> Option<(&str, &v1::GlusterStatus)> {
        let source = self.volume_source.as_deref()?;
        self.host(source).map(|status| (source, status))
    }
}

/// Asks every host at once and compares with the spec. Volumes look the same from every
/// server and `volume status` takes glusterd's cluster-wide lock (two at once can make glusterd
/// skip a volume: "another transaction is in progress"), so only the first server is asked for
/// them; when it has no running glusterd the next servers are asked, one after the other.
pub async fn run(spec: &Spec) -> StatusReport {
    let agents = Arc::new(Agents::new(spec));
    let first_server = spec.servers.first().map(|s| s.name.as_str());
    let answers = agents::each(
        spec.servers.iter().map(|s| s.name.as_str()).chain(spec.clients.iter().map(|c| c.name.as_str())),
        |host| {
            let agents = agents.clone();
            let detail = if Some(host.as_str()) == first_server { VolumeDetail::Full } else { VolumeDetail::None };
            async move { agents.gluster_status(&host, detail).await }
        },
    )
    .await;
    let mut report = StatusReport::default();
    for (host, answer) in answers {
        match answer {
            Ok(status) => report.hosts.push((host, status)),
            Err(e) => report.unreachable.push((host, e.to_string())),
        }
    }
    // The first server with a running glusterd answers for the volumes.
    for server in &spec.servers {
        if !report.host(&server.name).is_some_and(|st| st.glusterd_running) {
            continue;
        }
        if Some(server.name.as_str()) != first_server {
            match agents.gluster_status(&server.name, VolumeDetail::Full).await {
                Ok(full) if full.glusterd_running => report.replace(&server.name, full),
                _ => continue,
            }
        }
        report.volume_source = Some(server.name.clone());
        break;
    }
    report.problems = problems(spec, &report);
    report
}

/// Does `peer` stand for spec server `name` (by name, another name, or address)?
fn is_peer(peer: &v1::Peer, name: &str, address: &str) -> bool {
    peer.hostname == name || peer.hostname == address || peer.other_names.iter().any(|n| n == name || n == address)
}

/// How many spec servers `view` (a server's own report) sees in the pool and connected, itself
/// included.
fn servers_connected(spec: &Spec, view: &v1::GlusterStatus) -> usize {
    let connected = |s: &&crate::spec::Server| {
        view.peers.iter().any(|p| !p.is_local && p.connected && is_peer(p, &s.name, &s.address))
    };
    1 + spec.servers.iter().filter(connected).count()
}

/// Where the reported state differs from the spec. Pure.
pub fn problems(spec: &Spec, report: &StatusReport) -> Vec<String> {
    let mut problems = Vec::new();
    // Drained servers leave the pool: only the members must see each other.
    let members = spec.members();
    for server in &members {
        let Some(status) = report.host(&server.name) else { continue };
        if !status.glusterd_running {
            problems.push(fixed_by_apply(format!("{}: glusterd is not running", server.name), "starts it"));
            continue;
        }
        for other in members.iter().filter(|o| o.name != server.name) {
            match status.peers.iter().find(|p| !p.is_local && is_peer(p, &other.name, &other.address)) {
                None => problems
                    .push(fixed_by_apply(format!("{}: {} is not in its pool", server.name, other.name), "probes it")),
                Some(p) if !p.connected || p.state != "Peer in Cluster" => problems.push(format!(
                    "{}: peer {} is {} ({})",
                    server.name,
                    other.name,
                    p.state,
                    if p.connected { "connected" } else { "disconnected" }
                )),
                Some(_) => {}
            }
        }
    }

    if let Some((_, view)) = report.volume_view() {
        for volume in &spec.volumes {
            let Some(live) = view.volumes.iter().find(|v| v.name == volume.name) else {
                problems.push(fixed_by_apply(format!("volume {}: does not exist", volume.name), "creates it"));
                continue;
            };
            if live.status != "Started" {
                problems.push(fixed_by_apply(
                    format!("volume {}: is {}, not Started", volume.name, live.status),
                    "starts it",
                ));
                continue;
            }
            for brick in volume_health::offline_bricks(live) {
                problems
                    .push(fixed_by_apply(format!("volume {}: brick {brick} is offline", volume.name), "restarts it"));
            }
            problems.extend(volume_health::brick_usage_problems(live));
            problems.extend(volume_health::migration_problems(live));
            problems.extend(volume_health::quorum_problems(live, servers_connected(spec, view), spec.servers.len()));
            problems.extend(heal_state::problems(live));
        }
    } else if !spec.servers.is_empty() && !spec.volumes.is_empty() {
        problems.push("no server with a running glusterd answered: volumes unknown".into());
    }

    for client in &spec.clients {
        let Some(status) = report.host(&client.name) else { continue };
        for mount in &client.mounts {
            let live = status.mounts.iter().find(|m| {
                m.mount_point == mount.path
                    && m.source.rsplit(':').next().map(|v| v.trim_start_matches('/')) == Some(&mount.volume)
            });
            let at = format!("{}: volume {} on {}", client.name, mount.volume, mount.path);
            match live {
                None => problems.push(fixed_by_apply(
                    format!("{}: volume {} is not mounted on {}", client.name, mount.volume, mount.path),
                    "mounts it",
                )),
                Some(m) if m.stale => {
                    problems.push(fixed_by_apply(format!("{at} is a stale mount ({})", m.error), "mounts it again"))
                }
                Some(m) if !m.error.is_empty() => problems.push(format!("{at} does not answer ({})", m.error)),
                Some(_) => {}
            }
        }
    }
    problems
}

fn usage(total: u64, free: u64) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{} of {} used", human_bytes(total - free), human_bytes(total))
}

/// The human report.
pub fn render_text(spec: &Spec, report: &StatusReport) -> String {
    let mut out = String::new();
    for (host, error) in &report.unreachable {
        out.push_str(&format!("UNREACHABLE {host}: {error}\n"));
    }
    let mut peers = Table::new(["SERVER", "PEER", "STATE", "CONNECTED"]);
    for server in &spec.servers {
        if let Some(status) = report.host(&server.name) {
            for p in status.peers.iter().filter(|p| !p.is_local) {
                peers.row([server.name.as_str(), &p.hostname, &p.state, if p.connected { "yes" } else { "no" }]);
            }
        }
    }
    out.push_str("Peers\n");
    out.push_str(&peers.render());

    if let Some((from, view)) = report.volume_view() {
        out.push_str(&format!("\nVolumes (as {from} sees them)\n"));
        let mut volumes =
            Table::new(["VOLUME", "TYPE", "STATUS", "BRICKS ONLINE", "PENDING HEALS", "SPLIT-BRAIN", "PING-TIMEOUT"]);
        let mut bricks = Table::new(["BRICK", "ONLINE", "PORT", "DISK"]);
        for v in &view.volumes {
            let online = v.bricks.iter().filter(|b| b.online).count();
            let [heals, split_brain] = heal_state::cells(v);
            volumes.row([
                v.name.clone(),
                v.r#type.clone(),
                v.status.clone(),
                format!("{online}/{}", v.bricks.len()),
                heals,
                split_brain,
                format!("{} s", volume_health::ping_timeout_seconds(v)),
            ]);
            for b in &v.bricks {
                let name = format!("{}:{}:{}{}", v.name, b.host, b.path, if b.is_arbiter { " (arbiter)" } else { "" });
                bricks.row([
                    name,
                    if b.online { "yes".into() } else { "no".into() },
                    b.port.to_string(),
                    usage(b.size_total, b.size_free),
                ]);
            }
        }
        out.push_str(&volumes.render());
        for v in view.volumes.iter().filter(|v| v.status == "Started" && v.replica > 1) {
            out.push_str(&format!("note: {}\n", volume_health::stall_note(v)));
        }
        for v in view.volumes.iter().filter(|v| !v.migration.is_empty()) {
            out.push_str(&format!("note: volume {}: {}\n", v.name, volume_health::migration_state(v)));
        }
        out.push('\n');
        out.push_str(&bricks.render());
    }

    let mut mounts = Table::new(["CLIENT", "MOUNT", "SOURCE", "DISK"]);
    for client in &spec.clients {
        if let Some(status) = report.host(&client.name) {
            for m in &status.mounts {
                mounts.row([
                    client.name.clone(),
                    m.mount_point.clone(),
                    m.source.clone(),
                    usage(m.size_total, m.size_free),
                ]);
            }
        }
    }
    out.push_str("\nClient mounts\n");
    out.push_str(&mounts.render());
    out.push('\n');
    match (report.unreachable.is_empty(), report.problems.is_empty()) {
        (true, true) => out.push_str("status: healthy\n"),
        _ => {
            for problem in &report.problems {
                out.push_str(&format!("problem: {problem}\n"));
            }
            out.push_str(if report.unreachable.is_empty() {
                "status: degraded\n"
            } else {
                "status: hosts unreachable\n"
            });
        }
    }
    out
}

/// The machine-readable report.
pub fn render_json(report: &StatusReport) -> Value {
    let hosts: Vec<Value> = report
        .hosts
        .iter()
        .map(|(host, s)| {
            json!({
                "host": host,
                "glusterd_running": s.glusterd_running,
                "peers": s.peers.iter().filter(|p| !p.is_local).map(|p| json!({
                    "hostname": p.hostname, "uuid": p.uuid, "state": p.state, "connected": p.connected,
                })).collect::<Vec<_>>(),
                "volumes": s.volumes.iter().map(|v| json!({
                    "name": v.name, "type": v.r#type, "status": v.status, "pending_heals": v.pending_heals,
                    "rebalance": volume_health::migration_state(v),
                    "split_brain": v.split_brain,
                    "heal_unreachable": v.heal_unreachable,
                    "ping_timeout_seconds": volume_health::ping_timeout_seconds(v),
                    "client_quorum_lost": volume_health::client_quorum(v).iter()
                        .any(|q| matches!(q, volume_health::ClientQuorum::Lost { .. })),
                    "bricks": v.bricks.iter().map(|b| json!({
                        "host": b.host, "path": b.path, "online": b.online, "arbiter": b.is_arbiter,
                        "size_total": b.size_total, "size_free": b.size_free,
                        "used_percent": volume_health::brick_used_percent(b),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "mounts": s.mounts.iter().map(|m| json!({
                    "source": m.source, "mount_point": m.mount_point,
                    "size_total": m.size_total, "size_free": m.size_free, "error": m.error, "stale": m.stale,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "healthy": report.exit_code() == 0,
        "exit_code": report.exit_code(),
        "unreachable": report.unreachable.iter().map(|(h, e)| json!({"host": h, "error": e})).collect::<Vec<_>>(),
        "problems": report.problems,
        "hosts": hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spec::SpecText;

    fn healthy() -> (Spec, StatusReport) {
        let spec = SpecText::pool("t")
            .numbered_server(1)
            .numbered_server(2)
            .volume("v", "replicate", "b")
            .replica(2)
            .client("c1", "10.0.0.21")
            .mount("v", "/data")
            .spec();
        let peer = |name: &str| v1::Peer {
            hostname: name.into(),
            connected: true,
            state: "Peer in Cluster".into(),
            ..Default::default()
        };
        let brick = |host: &str| v1::BrickStatus {
            host: host.into(),
            path: "/vdisk/b".into(),
            online: true,
            size_total: 100,
            size_free: 50,
            ..Default::default()
        };
        let volume = v1::VolumeStatus {
            name: "v".into(),
            r#type: "Replicate".into(),
            status: "Started".into(),
            bricks: vec![brick("s1"), brick("s2")],
            pending_heals: 0,
            ..Default::default()
        };
        let server = |other: &str| v1::GlusterStatus {
            glusterd_running: true,
            peers: vec![peer(other), v1::Peer { hostname: "localhost".into(), is_local: true, ..Default::default() }],
            volumes: vec![volume.clone()],
            ..Default::default()
        };
        let client = v1::GlusterStatus {
            mounts: vec![v1::GlusterMount {
                source: "s1:/v".into(),
                mount_point: "/data".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let report = StatusReport {
            hosts: vec![("s1".into(), server("s2")), ("s2".into(), server("s1")), ("c1".into(), client)],
            volume_source: Some("s1".into()),
            ..Default::default()
        };
        (spec, report)
    }

    #[test]
    fn a_healthy_pool_has_no_problems() {
        let (spec, report) = healthy();
        assert_eq!(problems(&spec, &report), Vec::<String>::new());
        assert!(render_text(&spec, &report).contains("status: healthy"));
    }

    #[test]
    fn degraded_and_unreachable() {
        let (spec, mut report) = healthy();
        report.hosts[0].1.peers[0].connected = false;
        report.hosts[0].1.volumes[0].bricks[1].online = false;
        report.hosts[0].1.volumes[0].pending_heals = 3;
        report.hosts[1].1.glusterd_running = false;
        report.hosts[2].1.mounts.clear();
        report.problems = problems(&spec, &report);
        assert_eq!(
            report.problems,
            [
                "s1: peer s2 is Peer in Cluster (disconnected)",
                "s2: glusterd is not running — `brickyard apply` starts it",
                "volume v: brick s2:/vdisk/b is offline — `brickyard apply` restarts it",
                "volume v: 3 entries pending heal (the self-heal daemons' next crawl is cluster.heal-timeout, 600 s by \
                 default, after their last; `gluster volume heal v` starts one now)",
                "c1: volume v is not mounted on /data — `brickyard apply` mounts it"
            ]
        );
        assert_eq!(report.exit_code(), 1);
        report.unreachable.push(("s2".into(), "connection refused".into()));
        assert_eq!(report.exit_code(), 2);
    }

    #[test]
    fn stale_and_silent_client_mounts() {
        let (spec, mut report) = healthy();
        let mount = &mut report.hosts[2].1.mounts[0];
        mount.error = "Transport endpoint is not connected".into();
        mount.stale = true;
        assert_eq!(
            problems(&spec, &report),
            ["c1: volume v on /data is a stale mount (Transport endpoint is not connected) — `brickyard apply` \
              mounts it again"]
        );
        let mount = &mut report.hosts[2].1.mounts[0];
        mount.error = "no answer to statvfs() within 5s".into();
        mount.stale = false;
        assert_eq!(
            problems(&spec, &report),
            ["c1: volume v on /data does not answer (no answer to statvfs() within 5s)"]
        );
    }

    #[test]
    fn full_bricks_lost_quorum_and_the_stall_are_reported() {
        let (spec, mut report) = healthy();
        let volume = &mut report.hosts[0].1.volumes[0];
        volume.replica = 2;
        volume.bricks[1].size_free = 3;
        volume.options.insert("cluster.quorum-type".into(), "auto".into());
        volume.bricks[0].online = false;
        assert_eq!(
            problems(&spec, &report),
            [
                "volume v: brick s1:/vdisk/b is offline — `brickyard apply` restarts it",
                "volume v: brick s2:/vdisk/b is 97% full (more than 95%): writes to it fail with ENOSPC once it is \
                 full — free space on s2 or give it a bigger disk",
                "volume v: replica set 1 has 1 of 2 bricks up, client quorum lost (needs more than half of 2 bricks \
                 up (auto)): the volume is read-only for clients, writes fail (ENOTCONN on gluster 10, EROFS on \
                 older releases) until its servers are back",
            ]
        );
        let text = render_text(&spec, &report);
        assert!(text.contains("note: volume v: network.ping-timeout 42 s — "), "{text}");
        let json = render_json(&report);
        assert_eq!(json["hosts"][0]["volumes"][0]["ping_timeout_seconds"], 42);
        assert_eq!(json["hosts"][0]["volumes"][0]["client_quorum_lost"], true);
        assert_eq!(json["hosts"][0]["volumes"][0]["bricks"][1]["used_percent"], 97);
    }

    #[test]
    fn rebalance_state_is_shown_and_a_failed_one_named_with_its_nodes() {
        let (spec, mut report) = healthy();
        report.hosts[0].1.volumes[0].migration = "rebalance completed".into();
        assert!(problems(&spec, &report).is_empty());
        assert!(render_text(&spec, &report).contains("note: volume v: rebalance completed\n"));
        let volume = &mut report.hosts[0].1.volumes[0];
        volume.migration = "rebalance failed".into();
        volume.migration_failed_on = vec!["s2".into()];
        let found = problems(&spec, &report);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("volume v: rebalance failed on s2 (see /var/log/glusterfs/v-rebalance.log"),
            "{found:?}"
        );
        assert_eq!(render_json(&report)["hosts"][0]["volumes"][0]["rebalance"], "rebalance failed on s2");
    }
}
