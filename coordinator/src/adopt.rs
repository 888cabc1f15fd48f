//! `brickyard adopt`: writes a spec for a pool built by hand (the seed's way), read through its
//! agents: the peers, the volumes (layout, brick order, options that differ from what gluster
//! sets at create), each brick's disk (the whole disk, its one partition's filesystem and mount
//! point) and the clients' glusterfs mounts. What a hand-built pool lacks and Brickyard would
//! add is written out as what is there: `firewall = false` and `tls = false` (left as built), `etc_hosts =
//! "servers"` (the names a hand-built /etc/hosts carries; lines that already resolve them are
//! kept, not repeated), `auth_allow = ["*"]` when no `auth.allow` is set (gluster's default),
//! hand-written fstab lines kept by the mount tasks (the glusterfs ones are read too: a line
//! of a volume not mounted now is refused). The spec is checked before it is written:
//! it must load and validate, and `plan` on it must have nothing to do and nothing to refuse;
//! anything a spec cannot say (LVM, two disks, bricks at different directories, a stopped
//! volume, a peer not named, ...) is refused, naming the host or volume and what was found.
//! Read-only on every host (GetFacts, GetGlusterStatus, Plan); writes only the output file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::VolumeDetail;

use crate::agents::{self, Agents, Devices};
use crate::phases::{self, AUTH_ALLOW, AUTH_ALLOW_EVERYONE};
use crate::spec::{EtcHosts, Pool, Spec};
use crate::{plan, validate};

/// The options gluster itself sets on `volume create` (10.x and 11.x), with the value it sets:
/// left out of the spec when they still have it.
const CREATE_DEFAULTS: &[(&str, &str)] = &[
    ("cluster.granular-entry-heal", "on"),
    ("storage.fips-mode-rchecksum", "on"),
    ("transport.address-family", "inet"),
    ("nfs.disable", "on"),
    ("performance.client-io-threads", "off"),
];

/// What to adopt: the pool's hosts as the operator names them.
#[derive(Debug, Clone)]
pub struct Request {
    pub pool: String,
    /// `(name, address)` of every server, in the order the spec lists them.
    pub servers: Vec<(String, String)>,
    pub clients: Vec<(String, String)>,
    /// The spec to write.
    pub output: PathBuf,
    /// The pool PKI directory (default: `pki` beside the output).
    pub pki_dir: Option<PathBuf>,
}

/// What the agents reported.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub facts: BTreeMap<String, v1::Facts>,
    pub gluster: BTreeMap<String, v1::GlusterStatus>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("cannot adopt the pool: {}", .0.iter().map(|r| format!("\n  {r}")).collect::<String>())]
    Refused(Vec<String>),
    #[error("the spec written from the pool does not load (a bug in adopt): {0}")]
    Invalid(String),
    #[error("the spec written from the pool would change it, so it was not written:\n{0}")]
    WouldChange(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl Request {
    /// A spec naming only the hosts, to reach their agents.
    fn hosts_spec(&self) -> Spec {
        let server = |(name, address): &(String, String)| crate::spec::Server {
            name: name.clone(),
            address: address.clone(),
            port: None,
            disk: None,
            drain: false,
            replaces: None,
        };
        let client = |(name, address): &(String, String)| crate::spec::Client {
            name: name.clone(),
            address: address.clone(),
            port: None,
            mounts: Vec::new(),
        };
        Spec {
            version: 1,
            pool: Pool {
                name: self.pool.clone(),
                pki_dir: self.pki_dir.clone(),
                reset_duplicate_uuids: false,
                nfs: false,
                coordinators: None,
                gluster_version: None,
                gluster_repo: None,
                firewall: false,
                etc_hosts: EtcHosts::Servers,
                tls: false,
                tls_restart: false,
            },
            servers: self.servers.iter().map(server).collect(),
            volumes: Vec::new(),
            clients: self.clients.iter().map(client).collect(),
            path: self.output.clone(),
        }
    }
}

/// Reads the pool, writes the spec (only when `plan` on it has nothing to do); returns the
/// plan report's text of the written spec.
pub async fn run(request: &Request) -> Result<String, AdoptError> {
    let agents = Arc::new(Agents::new(&request.hosts_spec()));
    let live = read(&agents, request).await?;
    let text = describe(request, &live).map_err(AdoptError::Refused)?;
    let spec = validate::parse(&text, &request.output).map_err(|e| AdoptError::Invalid(e.to_string()))?;
    let report = plan::run(&spec).await;
    let shown = plan::render_text(&report);
    if report.has_errors() || report.has_changes() {
        return Err(AdoptError::WouldChange(shown));
    }
    write_new(&request.output, &text)?;
    Ok(shown)
}

/// Facts from every host and gluster's view from every host, at once; the volumes from the
/// first server only (they look the same from every server, and `volume status` takes
/// glusterd's cluster lock).
async fn read(agents: &Arc<Agents>, request: &Request) -> Result<Live, AdoptError> {
    let names: Vec<&str> = request.servers.iter().chain(&request.clients).map(|(n, _)| n.as_str()).collect();
    let first = request.servers.first().map(|(n, _)| n.as_str());
    let answers = agents::each(names, |host| {
        let agents = agents.clone();
        let detail = if Some(host.as_str()) == first { VolumeDetail::Full } else { VolumeDetail::None };
        async move { (agents.facts(&host, Devices::Listed).await, agents.gluster_status(&host, detail).await) }
    })
    .await;
    let mut live = Live::default();
    let mut refusals = Vec::new();
    for (host, (facts, gluster)) in answers {
        match (facts, gluster) {
            (Ok(f), Ok(g)) => {
                live.facts.insert(host.clone(), f);
                live.gluster.insert(host, g);
            }
            (Err(e), _) | (_, Err(e)) => refusals.push(e.to_string()),
        }
    }
    if refusals.is_empty() {
        Ok(live)
    } else {
        Err(AdoptError::Refused(refusals))
    }
}

/// Writes `text` to `path` through a temporary file beside it (never a half-written spec).
fn write_new(path: &Path, text: &str) -> Result<(), AdoptError> {
    let err = |source| AdoptError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("toml.adopt-tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// A server's brick disk as a spec says it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskSpec {
    device: String,
    filesystem: String,
    mount: String,
    table: Option<&'static str>,
}

/// One volume as a spec says it.
#[derive(Debug, Clone)]
struct VolumeSpec {
    name: String,
    layout: Vec<(&'static str, String)>,
    brick_dir: String,
    servers: Vec<String>,
    options: BTreeMap<String, String>,
    auth_allow: Vec<String>,
    force: bool,
}

/// Pure: the spec text for `live`, or every reason it cannot be written.
pub fn describe(request: &Request, live: &Live) -> Result<String, Vec<String>> {
    let mut refusals = Vec::new();
    let Some((first, _)) = request.servers.first() else {
        return Err(vec!["give at least one --server NAME=ADDR".to_owned()]);
    };
    let server_named = |name: &str| request.servers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let view = &live.gluster[first];
    for (name, _) in &request.servers {
        if !live.gluster[name].glusterd_running {
            refusals.push(format!("server {name}: glusterd is not running"));
        }
    }
    check_peers(request, first, view, &mut refusals);

    let mut disks: BTreeMap<&str, Option<DiskSpec>> = BTreeMap::new();
    let mut volumes = Vec::new();
    for volume in &view.volumes {
        let name = &volume.name;
        if volume.status != "Started" {
            refusals.push(format!(
                "volume {name} is {}: a spec's volumes are started (start it, or delete it, first)",
                volume.status
            ));
        }
        let mut servers = Vec::new();
        let mut brick_dirs = BTreeMap::new();
        for brick in &volume.bricks {
            let Some((server, _)) = server_named(&brick.host) else {
                refusals.push(format!(
                    "volume {name}: brick {}:{} is on host {}, which is not given with --server by that name",
                    brick.host, brick.path, brick.host
                ));
                continue;
            };
            if servers.contains(server) {
                refusals.push(format!(
                    "volume {name}: server {server} has more than one brick ({}); a spec has one brick per server",
                    brick.path
                ));
                continue;
            }
            servers.push(server.clone());
            let facts = &live.facts[server];
            match brick_disk(server, &brick.path, facts) {
                Ok((disk, brick_dir)) => {
                    match disks.get(server.as_str()) {
                        Some(known) if *known != disk => refusals.push(format!(
                            "server {server}: bricks on two filesystems ({} and {}); a spec gives a server one disk",
                            mount_of(known),
                            mount_of(&disk)
                        )),
                        _ => {
                            disks.insert(server.as_str(), disk);
                        }
                    }
                    brick_dirs.insert(server.clone(), brick_dir);
                }
                Err(e) => refusals.push(format!("volume {name}: {e}")),
            }
        }
        let mut dirs: Vec<&String> = brick_dirs.values().collect();
        dirs.sort();
        dirs.dedup();
        if dirs.len() > 1 {
            let found: Vec<String> = brick_dirs.iter().map(|(s, d)| format!("{s}: {d}")).collect();
            refusals.push(format!(
                "volume {name}: its bricks lie at different directories under their disks' mounts ({}); a spec \
                 gives one brick_dir",
                found.join(", ")
            ));
        }
        let force = servers.iter().any(|s| disks.get(s.as_str()).is_some_and(Option::is_none));
        match layout(volume) {
            Ok(layout) => volumes.push(VolumeSpec {
                name: name.clone(),
                layout,
                brick_dir: dirs.first().map(|d| (*d).clone()).unwrap_or_default(),
                servers,
                options: adopted_options(volume),
                auth_allow: Vec::new(),
                force,
            }),
            Err(e) => refusals.push(format!("volume {name}: {e}")),
        }
    }
    let mounts = client_mounts(request, live, &volumes, &mut refusals);
    if !refusals.is_empty() {
        return Err(refusals);
    }
    // auth.allow: what the spec computes (from a draft without `auth_allow`) must be what is
    // set (`*`: gluster's default).
    let draft = render(request, &disks, &volumes, &mounts);
    let spec = validate::parse(&draft, &request.output).map_err(|e| vec![e.to_string()])?;
    for (volume, adopted) in view.volumes.iter().zip(volumes.iter_mut()) {
        let live_allow = volume.options.get(AUTH_ALLOW).map_or(AUTH_ALLOW_EVERYONE, String::as_str);
        if live_allow == AUTH_ALLOW_EVERYONE {
            adopted.auth_allow = vec![AUTH_ALLOW_EVERYONE.to_owned()];
            continue;
        }
        let spec_volume = spec.volume(&volume.name).expect("the rendered spec has every volume");
        let computed = phases::auth_allow(&spec, spec_volume);
        let extra: Vec<String> =
            live_allow.split(',').filter(|a| !computed.split(',').any(|c| c == *a)).map(str::to_owned).collect();
        let mut widened = spec_volume.clone();
        widened.auth_allow = extra.clone();
        if phases::auth_allow(&spec, &widened) == live_allow {
            adopted.auth_allow = extra;
        } else {
            refusals.push(format!(
                "volume {}: auth.allow is {live_allow:?}; a spec sets it to the pool's servers, the clients that \
                 mount it, then further addresses ({computed:?}, ...), so apply would change it",
                volume.name
            ));
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    Ok(render(request, &disks, &volumes, &mounts))
}

/// Every peer the first server sees is a named `--server` (by name or address), in the pool
/// and connected; every `--server` is a peer.
fn check_peers(request: &Request, first: &str, view: &v1::GlusterStatus, refusals: &mut Vec<String>) {
    let names = |p: &v1::Peer| std::iter::once(p.hostname.clone()).chain(p.other_names.clone()).collect::<Vec<_>>();
    let matches = |p: &v1::Peer, (name, address): &(String, String)| {
        (p.is_local && name == first) || names(p).iter().any(|n| n.eq_ignore_ascii_case(name) || n == address)
    };
    for peer in &view.peers {
        match request.servers.iter().find(|s| matches(peer, s)) {
            None => refusals.push(format!(
                "server {first} has peer {} (uuid {}) in its pool, which is not given with --server",
                names(peer).join("/"),
                peer.uuid
            )),
            Some((name, _)) if !peer.is_local && (!peer.connected || peer.state != "Peer in Cluster") => {
                refusals.push(format!(
                    "server {first} sees peer {name} as {:?}, {}: adopt a pool whose peers are all in the pool \
                     and connected",
                    peer.state,
                    if peer.connected { "connected" } else { "disconnected" }
                ))
            }
            Some(_) => {}
        }
    }
    for server in request.servers.iter().filter(|(n, _)| n != first) {
        if !view.peers.iter().any(|p| matches(p, server)) {
            refusals.push(format!("server {} is not a peer of {first}'s pool", server.0));
        }
    }
}

/// The disk under `brick` on `server` (None: the root filesystem) and the brick's directory
/// relative to its mount.
fn brick_disk(server: &str, brick: &str, facts: &v1::Facts) -> Result<(Option<DiskSpec>, String), String> {
    // The mounted filesystem holding the brick: the longest mount point that is a prefix of it.
    let devices = facts
        .block_devices
        .iter()
        .flat_map(|disk| std::iter::once((disk, None)).chain(disk.children.iter().map(move |c| (c, Some(disk)))));
    let best: Option<(&str, &v1::BlockDevice, Option<&v1::BlockDevice>)> = devices
        .flat_map(|(device, parent)| device.mount_points.iter().map(move |mp| (mp.as_str(), device, parent)))
        .filter(|(mp, _, _)| *mp == "/" || brick.strip_prefix(mp).is_some_and(|rest| rest.starts_with('/')))
        .max_by_key(|(mp, _, _)| mp.len());
    let mount = best.map_or("/", |(mp, _, _)| mp);
    let brick_dir = brick.strip_prefix(mount).unwrap_or(brick).trim_start_matches('/').to_owned();
    let Some((mp, part, parent)) = best.filter(|(mp, _, _)| *mp != "/") else {
        return Ok((None, brick_dir));
    };
    let found = |what: String| {
        Err(format!(
            "brick {server}:{brick} is on {} mounted at {mp}, {what}; a spec's disk is a whole disk with one \
             partition holding xfs or ext4",
            part.path
        ))
    };
    let Some(disk) = parent else { return found(format!("a {} with no partition table", part.type_name)) };
    if part.r#type() != v1::DeviceType::Part {
        return found(format!("a {} on {}", part.type_name, disk.path));
    }
    if disk.children.len() != 1 {
        return found(format!("one of {} partitions on {}", disk.children.len(), disk.path));
    }
    if !matches!(part.filesystem.as_str(), "xfs" | "ext4") {
        return found(format!("holding {:?}", part.filesystem));
    }
    let table = match disk.partition_table.as_str() {
        "dos" => Some("msdos"),
        "gpt" => None,
        other => return found(format!("in a {other:?} partition table")),
    };
    // A stable name where the host has one.
    let device = disk.by_id.first().cloned().unwrap_or_else(|| disk.path.clone());
    Ok((Some(DiskSpec { device, filesystem: part.filesystem.clone(), mount: mp.to_owned(), table }), brick_dir))
}

fn mount_of(disk: &Option<DiskSpec>) -> &str {
    disk.as_ref().map_or("/", |d| d.mount.as_str())
}

/// The spec's type and counts for a live volume.
fn layout(volume: &v1::VolumeStatus) -> Result<Vec<(&'static str, String)>, String> {
    let n = |v: u32| v.to_string();
    Ok(if volume.disperse > 0 {
        vec![("type", "disperse".into()), ("disperse", n(volume.disperse)), ("redundancy", n(volume.redundancy))]
    } else if volume.arbiter > 0 {
        if (volume.replica, volume.arbiter) != (3, 1) {
            return Err(format!(
                "replica {} arbiter {}: a spec's arbiter volumes are replica 3 arbiter 1",
                volume.replica, volume.arbiter
            ));
        }
        vec![("type", "arbiter".into())]
    } else if volume.replica > 1 {
        let mut layout = vec![("type", "replicate".into()), ("replica", n(volume.replica))];
        if volume.replica == 2 {
            layout.push(("allow_replica2", "true".into()));
        }
        layout
    } else {
        vec![("type", "distribute".into())]
    })
}

/// The reconfigured options but `auth.allow` and those gluster set itself at create.
fn adopted_options(volume: &v1::VolumeStatus) -> BTreeMap<String, String> {
    volume
        .options
        .iter()
        .filter(|(k, v)| k.as_str() != AUTH_ALLOW && !CREATE_DEFAULTS.contains(&(k.as_str(), v.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Each client's glusterfs mounts of the pool's volumes `(volume, mount point)`; servers
/// mounting a volume (now or in fstab), fstab lines for a volume not mounted now and mounts
/// from other hosts are refused.
fn client_mounts(
    request: &Request,
    live: &Live,
    volumes: &[VolumeSpec],
    refusals: &mut Vec<String>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for (server, _) in &request.servers {
        let gluster = &live.gluster[server];
        for mount in &gluster.mounts {
            refusals.push(format!(
                "server {server} mounts {} at {}: a spec mounts volumes on clients only",
                mount.source, mount.mount_point
            ));
        }
        for line in gluster.fstab.iter().filter(|l| !gluster.mounts.iter().any(|m| m.mount_point == l.mount_point)) {
            refusals.push(format!(
                "server {server}: /etc/fstab mounts {} at {}: a spec mounts volumes on clients only",
                line.source, line.mount_point
            ));
        }
    }
    for (client, _) in &request.clients {
        let gluster = &live.gluster[client];
        // A line for a volume not mounted now: the spec would have apply mount it.
        for line in gluster.fstab.iter().filter(|l| !gluster.mounts.iter().any(|m| m.mount_point == l.mount_point)) {
            refusals.push(format!(
                "client {client}: /etc/fstab mounts {} at {}, which is not mounted now: mount it, or remove the \
                 line, first",
                line.source, line.mount_point
            ));
        }
        let mut mounts = Vec::new();
        for mount in &live.gluster[client].mounts {
            let (host, volume) = mount.source.split_once(":/").unwrap_or((mount.source.as_str(), ""));
            match volumes.iter().find(|v| v.name == volume) {
                Some(v) if v.servers.iter().any(|s| s.eq_ignore_ascii_case(host)) => {
                    mounts.push((volume.to_owned(), mount.mount_point.clone()))
                }
                Some(v) => refusals.push(format!(
                    "client {client} mounts {} at {} from {host}, which is not one of {}'s servers by name ({})",
                    mount.source,
                    mount.mount_point,
                    v.name,
                    v.servers.join(", ")
                )),
                None => refusals.push(format!(
                    "client {client} mounts {} at {}, which is not a volume of this pool",
                    mount.source, mount.mount_point
                )),
            }
        }
        out.insert(client.clone(), mounts);
    }
    out
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "))
}

/// The spec text, with a header saying where it came from.
fn render(
    request: &Request,
    disks: &BTreeMap<&str, Option<DiskSpec>>,
    volumes: &[VolumeSpec],
    mounts: &BTreeMap<String, Vec<(String, String)>>,
) -> String {
    let now = time::OffsetDateTime::now_utc();
    let hosts = |hosts: &[(String, String)]| hosts.iter().map(|(n, a)| format!("{n} ({a})")).collect::<Vec<_>>();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `brickyard adopt` on {} {:02}:{:02} UTC from the live pool, read through the agents \
         (facts and gluster's view; nothing was changed on any host) of",
        now.date(),
        now.hour(),
        now.minute()
    );
    let _ = writeln!(out, "#   servers: {}", hosts(&request.servers).join(", "));
    if !request.clients.is_empty() {
        let _ = writeln!(out, "#   clients: {}", hosts(&request.clients).join(", "));
    }
    out.push_str(
        "# `brickyard plan` on it had nothing to do when it was written. What the pool was built\n\
         # without is said as it is: firewall = false (Brickyard leaves the firewall alone), tls =\n\
         # false (gluster's TLS stays as built; `tls = true` with `tls_restart` moves it to the pool CA),\n\
         # etc_hosts = \"servers\" (lines already naming a host are kept, not repeated), auth_allow =\n\
         # [\"*\"] where no auth.allow is set (gluster's default: everyone). Hand-written fstab lines\n\
         # that mount these disks and volumes are kept.\n",
    );
    let _ = writeln!(out, "version = 1\n\n[pool]\nname = {}", quote(&request.pool));
    if let Some(dir) = &request.pki_dir {
        let _ = writeln!(out, "pki_dir = {}", quote(&dir.to_string_lossy()));
    }
    out.push_str("firewall = false\ntls = false\netc_hosts = \"servers\"\n");
    for (name, address) in &request.servers {
        let _ = write!(out, "\n[[server]]\nname = {}\naddress = {}\n", quote(name), quote(address));
        if let Some(Some(disk)) = disks.get(name.as_str()) {
            let table = disk.table.map(|t| format!(", table = {}", quote(t))).unwrap_or_default();
            let _ = writeln!(
                out,
                "disk = {{ device = {}, filesystem = {}, mount = {}{table} }}",
                quote(&disk.device),
                quote(&disk.filesystem),
                quote(&disk.mount)
            );
        }
    }
    for volume in volumes {
        let _ = write!(out, "\n[[volume]]\nname = {}\n", quote(&volume.name));
        for (key, value) in &volume.layout {
            let value = if value.parse::<u32>().is_ok() || value == "true" { value.clone() } else { quote(value) };
            let _ = writeln!(out, "{key} = {value}");
        }
        let _ = writeln!(out, "brick_dir = {}\nservers = {}", quote(&volume.brick_dir), list(&volume.servers));
        if volume.force {
            out.push_str("force = true\n");
        }
        if !volume.options.is_empty() {
            let options: Vec<String> =
                volume.options.iter().map(|(k, v)| format!("{} = {}", quote(k), quote(v))).collect();
            let _ = writeln!(out, "options = {{ {} }}", options.join(", "));
        }
        if !volume.auth_allow.is_empty() {
            let _ = writeln!(out, "auth_allow = {}", list(&volume.auth_allow));
        }
    }
    for (name, address) in &request.clients {
        let _ = write!(out, "\n[[client]]\nname = {}\naddress = {}\n", quote(name), quote(address));
        let mounts: Vec<String> = mounts[name]
            .iter()
            .map(|(volume, path)| format!("{{ volume = {}, path = {} }}", quote(volume), quote(path)))
            .collect();
        let _ = writeln!(out, "mounts = [{}]", mounts.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            pool: "seed".into(),
            servers: vec![("gs1".into(), "10.0.0.1".into()), ("gs2".into(), "10.0.0.2".into())],
            clients: vec![("c1".into(), "10.0.0.21".into())],
            output: PathBuf::from("/tmp/adopted.toml"),
            pki_dir: None,
        }
    }

    /// /dev/vdb with one ext4 partition (msdos table) mounted at /vdisk.
    fn facts() -> v1::Facts {
        let part = v1::BlockDevice {
            name: "vdb1".into(),
            path: "/dev/vdb1".into(),
            r#type: v1::DeviceType::Part.into(),
            type_name: "part".into(),
            filesystem: "ext4".into(),
            mount_points: vec!["/vdisk".into()],
            ..Default::default()
        };
        let root = v1::BlockDevice {
            name: "vda".into(),
            path: "/dev/vda".into(),
            r#type: v1::DeviceType::Disk.into(),
            filesystem: "ext4".into(),
            mount_points: vec!["/".into()],
            ..Default::default()
        };
        let disk = v1::BlockDevice {
            name: "vdb".into(),
            path: "/dev/vdb".into(),
            r#type: v1::DeviceType::Disk.into(),
            partition_table: "dos".into(),
            children: vec![part],
            ..Default::default()
        };
        v1::Facts { block_devices: vec![root, disk], ..Default::default() }
    }

    fn peer(name: &str, local: bool) -> v1::Peer {
        v1::Peer {
            uuid: format!("uuid-{name}"),
            hostname: if local { "localhost".into() } else { name.into() },
            connected: true,
            state: "Peer in Cluster".into(),
            is_local: local,
            ..Default::default()
        }
    }

    fn volume() -> v1::VolumeStatus {
        let brick =
            |host: &str| v1::BrickStatus { host: host.into(), path: "/vdisk/brick1".into(), ..Default::default() };
        v1::VolumeStatus {
            name: "gluV1".into(),
            r#type: "Replicate".into(),
            status: "Started".into(),
            replica: 2,
            bricks: vec![brick("gs1"), brick("gs2")],
            options: [("performance.cache-size", "512MB"), ("nfs.disable", "on"), ("transport.address-family", "inet")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Default::default()
        }
    }

    fn live() -> Live {
        let server = |me: &str, other: &str| v1::GlusterStatus {
            glusterd_running: true,
            peers: vec![peer(other, false), peer(me, true)],
            volumes: vec![volume()],
            ..Default::default()
        };
        let client = v1::GlusterStatus {
            mounts: vec![v1::GlusterMount {
                source: "gs1:/gluV1".into(),
                mount_point: "/dataShare".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        Live {
            facts: ["gs1", "gs2", "c1"].map(|h| (h.to_owned(), facts())).into(),
            gluster: [("gs1", server("gs1", "gs2")), ("gs2", server("gs2", "gs1")), ("c1", client)]
                .map(|(h, g)| (h.to_owned(), g))
                .into(),
        }
    }

    fn refusals(live: &Live) -> String {
        describe(&request(), live).expect_err("adopted").join("\n")
    }

    #[test]
    fn the_seed_pool_becomes_a_spec_that_loads() {
        let text = describe(&request(), &live()).unwrap();
        assert!(text.starts_with("# Written by `brickyard adopt` on "), "{text}");
        let spec = validate::parse(&text, Path::new("/tmp/adopted.toml")).unwrap();
        let disk = spec.servers[1].disk.as_ref().unwrap();
        assert_eq!(
            (disk.device.as_deref(), disk.filesystem.as_deref(), disk.mount.as_str(), disk.table.as_deref()),
            (Some("/dev/vdb"), Some("ext4"), "/vdisk", Some("msdos"))
        );
        let v = &spec.volumes[0];
        assert_eq!(
            (v.kind.as_str(), v.replica, v.allow_replica2, v.brick_dir.as_str()),
            ("replicate", Some(2), true, "brick1")
        );
        // What gluster set itself at create is left out.
        assert_eq!(v.options, [("performance.cache-size".to_owned(), "512MB".to_owned())].into());
        assert_eq!(v.auth_allow, ["*"]);
        assert_eq!((spec.pool.firewall, spec.pool.etc_hosts), (false, EtcHosts::Servers));
        assert_eq!(spec.clients[0].mounts[0].path, "/dataShare");
    }

    #[test]
    fn an_auth_allow_the_spec_computes_is_kept_another_is_refused() {
        let mut live = live();
        let set = |live: &mut Live, value: &str| {
            live.gluster.get_mut("gs1").unwrap().volumes[0].options.insert(AUTH_ALLOW.into(), value.into());
        };
        set(&mut live, "10.0.0.1,10.0.0.2,10.0.0.21,192.0.2.9");
        let spec = validate::parse(&describe(&request(), &live).unwrap(), Path::new("a.toml")).unwrap();
        assert_eq!(spec.volumes[0].auth_allow, ["192.0.2.9"]);
        set(&mut live, "10.0.0.21,10.0.0.1");
        assert!(
            refusals(&live).contains("volume gluV1: auth.allow is \"10.0.0.21,10.0.0.1\"; a spec sets it to"),
            "{}",
            refusals(&live)
        );
    }

    #[test]
    fn what_a_spec_cannot_say_is_refused_naming_host_or_volume() {
        let mut lvm = live();
        let part = &mut lvm.facts.get_mut("gs2").unwrap().block_devices[1].children[0];
        (part.path, part.r#type, part.type_name) =
            ("/dev/mapper/vg-b".into(), v1::DeviceType::Other.into(), "lvm".into());
        assert!(
            refusals(&lvm).contains(
                "volume gluV1: brick gs2:/vdisk/brick1 is on /dev/mapper/vg-b mounted at /vdisk, a lvm on /dev/vdb"
            ),
            "{}",
            refusals(&lvm)
        );

        let mut stopped = live();
        stopped.gluster.get_mut("gs1").unwrap().volumes[0].status = "Stopped".into();
        assert!(refusals(&stopped).contains("volume gluV1 is Stopped"), "{}", refusals(&stopped));

        let mut apart = live();
        apart.gluster.get_mut("gs1").unwrap().volumes[0].bricks[1].path = "/vdisk/other".into();
        assert!(
            refusals(&apart).contains("volume gluV1: its bricks lie at different directories under their disks' mounts (gs1: brick1, gs2: other)"),
            "{}",
            refusals(&apart)
        );

        let mut by_address = live();
        by_address.gluster.get_mut("c1").unwrap().mounts[0].source = "10.0.0.1:/gluV1".into();
        assert!(
            refusals(&by_address).contains("client c1 mounts 10.0.0.1:/gluV1 at /dataShare from 10.0.0.1, which is not one of gluV1's servers by name"),
            "{}",
            refusals(&by_address)
        );

        let mut unmounted = live();
        unmounted.gluster.get_mut("c1").unwrap().fstab = vec![v1::FstabGlusterLine {
            source: "gs1:/gluV1".into(),
            mount_point: "/later".into(),
            options: "defaults".into(),
        }];
        assert!(
            refusals(&unmounted).contains(
                "client c1: /etc/fstab mounts gs1:/gluV1 at /later, which is not mounted now: mount it, or remove the line"
            ),
            "{}",
            refusals(&unmounted)
        );

        let mut server_mount = live();
        server_mount.gluster.get_mut("gs2").unwrap().mounts = live().gluster["c1"].mounts.clone();
        assert!(
            refusals(&server_mount)
                .contains("server gs2 mounts gs1:/gluV1 at /dataShare: a spec mounts volumes on clients only"),
            "{}",
            refusals(&server_mount)
        );

        let mut third = live();
        third.gluster.get_mut("gs1").unwrap().peers.push(peer("gs3", false));
        assert!(
            refusals(&third)
                .contains("server gs1 has peer gs3 (uuid uuid-gs3) in its pool, which is not given with --server"),
            "{}",
            refusals(&third)
        );
    }
}
