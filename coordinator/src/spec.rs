//! The cluster spec (TOML, `version = 1`) as a document: servers with their disk, volumes,
//! clients with their mounts, parsed into these types. Broken TOML, wrong types, numbers out
//! of range, duplicate and unknown keys are rejected here with line, column and key; the
//! semantic checks on a parsed spec are `crate::validate`'s (whose `load` is the entry point
//! that runs both). Also the key paths and line lookup that locate any error in the file.
//! Reads only the spec file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use brickyard_proto::layout::Counts;
pub use brickyard_proto::layout::{Layout, LayoutError, VolumeKind};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, or not a spec: located at `line` (0 = unknown) and `key` (may be empty).
    #[error("{path}: {}", located(*line, *column, key, message))]
    Parse { path: PathBuf, line: usize, column: usize, key: String, message: String },
    /// Semantic errors, each located at a key of the spec.
    #[error("{path}: the spec is not valid:{}", issues.iter().map(|i| format!("\n  {i}")).collect::<String>())]
    Semantic { path: PathBuf, issues: Vec<SpecIssue> },
}

/// One semantic error: where (the key path, e.g. `volume[0].replica`, and its line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    pub key: String,
    /// 1-based line of the key in the spec file (0 = unknown, e.g. a spec built in memory).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}: {}", self.line, self.key, self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub version: u32,
    pub pool: Pool,
    #[serde(default, rename = "server")]
    pub servers: Vec<Server>,
    #[serde(default, rename = "volume")]
    pub volumes: Vec<Volume>,
    #[serde(default, rename = "client")]
    pub clients: Vec<Client>,
    /// Where the spec was read from (not a TOML key).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// Pool PKI directory (CA, coordinator cert); relative to the spec's directory.
    /// Default: `pki` beside the spec.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// Servers cloned from one image share a glusterd UUID and cannot be probed. By default
    /// `apply` refuses and names both hosts; with this set it gives the later server (in spec
    /// order) a fresh UUID, which the agent only does while that server has no peers/volumes.
    #[serde(default)]
    pub reset_duplicate_uuids: bool,
    /// Also open the gluster NFS ports (111, 2049) on the servers.
    #[serde(default)]
    pub nfs: bool,
    /// Whether Brickyard manages the servers' firewall (only the pool reaches the pool).
    /// `false` leaves it as it is (e.g. a pool built by hand, see `brickyard adopt`).
    #[serde(default = "yes")]
    pub firewall: bool,
    /// Which hosts every host's /etc/hosts names (in Brickyard's block, unless a line of the
    /// file already maps the name right).
    #[serde(default)]
    pub etc_hosts: EtcHosts,
    /// Addresses or networks (`ADDR` or `ADDR/PREFIX`) admitted to the agents' port. Without
    /// it each agent admits only the address `apply` connects from (and `plan` says so).
    #[serde(default)]
    pub coordinators: Option<Vec<String>>,
    /// RHEL-family hosts: the CentOS Storage SIG GlusterFS release (`"9"` on EL7, `"10"` or
    /// `"11"` on EL8/EL9). Default: the newest the host's major version has.
    #[serde(default)]
    pub gluster_version: Option<String>,
    /// RHEL-family hosts: GlusterFS from elsewhere than the Storage SIG (needed on EL10, which
    /// has none): an https URL of a `.repo` file, or a release package name.
    #[serde(default)]
    pub gluster_repo: Option<String>,
    /// GlusterFS TLS from the pool CA (I/O and management; see `crate::gluster_tls`). Default on.
    #[serde(default = "default_tls")]
    pub tls: bool,
    /// Allows turning TLS on for what runs without it: restarts glusterd and stops and starts
    /// every started volume without TLS (its clients are remounted). Without it `plan` refuses.
    #[serde(default)]
    pub tls_restart: bool,
}

fn default_tls() -> bool {
    true
}

fn yes() -> bool {
    true
}

/// `[pool] etc_hosts`: the hosts /etc/hosts names on every host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum EtcHosts {
    /// Every server and client (the default).
    #[default]
    All,
    /// The servers only: what gluster and the clients resolve (a pool built by hand often
    /// names only those).
    Servers,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// The brick disk. Without one, bricks live under `/` (the root filesystem), which every
    /// volume on this server must allow with `force = true`.
    #[serde(default)]
    pub disk: Option<Disk>,
    /// Move this server's data off and out of the pool: its bricks are drained out of every
    /// volume (`remove-brick` start → status → commit when no file failed to move), then it is
    /// detached. Whole sets only (every server of a replica set drains together).
    #[serde(default)]
    pub drain: bool,
    /// The server this one takes over from (dead, or leaving): it is no longer in the spec;
    /// this server takes its place in every volume's brick order, its bricks are moved here
    /// (`replace-brick`, full heal) and it is detached from the pool. Kept after the
    /// replacement, it changes nothing.
    #[serde(default)]
    pub replaces: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The disk's device: `/dev/vdb` or a stable link such as `/dev/disk/by-id/virtio-...`.
    #[serde(default)]
    pub device: Option<String>,
    /// Instead of `device`: the Cinder volume attached as this disk (exactly one of the two).
    #[serde(default)]
    pub cinder_volume: Option<String>,
    /// `xfs` (default) or `ext4`.
    #[serde(default)]
    pub filesystem: Option<String>,
    pub mount: String,
    /// `gpt` (default) or `msdos`.
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub wipe: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    /// `distribute`, `replicate`, `arbiter` (`replica = 3`, `arbiter = 1`) or `disperse`
    /// (`disperse = N`, `redundancy = R`). More bricks than one set make the distributed form.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub replica: Option<u32>,
    #[serde(default)]
    pub arbiter: Option<u32>,
    #[serde(default)]
    pub disperse: Option<u32>,
    #[serde(default)]
    pub redundancy: Option<u32>,
    /// The brick directory, relative to each server's disk mount (one brick per server).
    pub brick_dir: String,
    /// The servers that carry a brick, in brick order. Default: every server, in spec order.
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Opt-in for replica 2 without an arbiter (split-brain prone).
    #[serde(default)]
    pub allow_replica2: bool,
    /// Allow bricks on the root filesystem.
    #[serde(default)]
    pub force: bool,
    /// Addresses admitted to the volume's bricks beyond the pool's own servers and the clients
    /// that mount it (gluster's `auth.allow`, which Brickyard sets to exactly those): IP
    /// addresses; or `["*"]` alone: everyone, gluster's default, and Brickyard does not set
    /// `auth.allow` (a pool built by hand without it, see `brickyard adopt`).
    #[serde(default)]
    pub auth_allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub mounts: Vec<ClientMount>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(PartialEq, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ClientMount {
    pub volume: String,
    pub path: String,
}

impl Disk {
    /// How tasks and messages name the disk: its device, or `Cinder volume ID`.
    pub fn name(&self) -> String {
        match (&self.device, &self.cinder_volume) {
            (Some(device), _) => device.clone(),
            (None, Some(volume)) => format!("Cinder volume {volume}"),
            (None, None) => "(no disk)".to_owned(),
        }
    }
}

/// A host the coordinator talks to: its name (also its certificate's name) and where its
/// agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub name: String,
    pub address: String,
    pub port: u16,
}

impl Volume {
    /// The counts as the spec gives them.
    pub fn counts(&self) -> Counts {
        Counts { replica: self.replica, arbiter: self.arbiter, disperse: self.disperse, redundancy: self.redundancy }
    }

    /// The volume's layout with defaults filled in (see `brickyard_proto::layout`); how its
    /// bricks fit is checked by `crate::validate`.
    pub fn layout(&self) -> Result<Layout, LayoutError> {
        Layout::new(VolumeKind::parse(&self.kind)?, self.counts(), self.allow_replica2)
    }
}

impl Spec {
    /// Parses spec text into a `Spec` without the semantic checks (`crate::validate::parse`
    /// runs both); `path` is where it came from (for messages and for resolving `pki_dir`).
    pub fn from_toml(text: &str, path: &Path) -> Result<Spec, SpecError> {
        let mut spec: Spec = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        spec.path = path.to_path_buf();
        if spec.version != 1 {
            let at = [Seg::from("version")];
            return Err(SpecError::Parse {
                path: path.into(),
                line: line_of(text, &at),
                column: 0,
                key: key_path(&at),
                message: format!("version {} is not supported (expected 1)", spec.version),
            });
        }
        Ok(spec)
    }

    /// The pool PKI directory, resolved against the spec's directory.
    pub fn pki_dir(&self) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(self.pool.pki_dir.clone().unwrap_or_else(|| PathBuf::from("pki")))
    }

    /// Every server, then every client.
    pub fn hosts(&self) -> Vec<HostTarget> {
        let port = |p: Option<u16>| p.unwrap_or(brickyard_proto::DEFAULT_AGENT_PORT);
        self.servers
            .iter()
            .map(|s| HostTarget { name: s.name.clone(), address: s.address.clone(), port: port(s.port) })
            .chain(self.clients.iter().map(|c| HostTarget {
                name: c.name.clone(),
                address: c.address.clone(),
                port: port(c.port),
            }))
            .collect()
    }

    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The servers that keep a brick of `volume` (not drained), in brick order.
    pub fn volume_members(&self, volume: &Volume) -> Vec<&Server> {
        self.volume_servers(volume).into_iter().filter(|s| !s.drain).collect()
    }

    /// Where `server`'s bricks live: its disk's mount point (`/` without a disk).
    pub fn brick_root(&self, server: &str) -> String {
        self.server(server).and_then(|s| s.disk.as_ref()).map_or_else(|| "/".to_owned(), |d| d.mount.clone())
    }

    /// A server's brick for `brick_dir` (also what the spec checks hold to the path policy).
    pub fn brick_path(&self, server: &str, brick_dir: &str) -> String {
        let root = self.brick_root(server);
        if root == "/" {
            format!("/{brick_dir}")
        } else {
            format!("{root}/{brick_dir}")
        }
    }

    /// Whether `name` is a server that another server of the spec `replaces` (it left the spec:
    /// its bricks move to the replacement, then it leaves the pool).
    pub fn is_replaced(&self, name: &str) -> bool {
        self.servers.iter().any(|s| s.replaces.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(name)))
    }

    /// The servers that stay in the pool (not drained), in spec order.
    pub fn members(&self) -> Vec<&Server> {
        self.servers.iter().filter(|s| !s.drain).collect()
    }

    /// The servers that carry a brick of `volume`, drained ones included, in brick order
    /// (unknown names skipped; validation reports them).
    pub fn volume_servers(&self, volume: &Volume) -> Vec<&Server> {
        match &volume.servers {
            Some(names) => names.iter().filter_map(|n| self.server(n)).collect(),
            None => self.servers.iter().collect(),
        }
    }
}

/// One step of a key path into the spec document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Self {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Self {
        Seg::Index(index)
    }
}

/// `server[1].name` for `["server", 1, "name"]`; keys other than bare TOML keys are quoted
/// and escaped (e.g. `options."performance.cache-size"`).
pub fn key_path(at: &[Seg]) -> String {
    let mut out = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The 1-based line of the deepest existing value along `at` (e.g. `server`, 1, `name`);
/// 0 when the text cannot be parsed.
pub fn line_of(text: &str, at: &[Seg]) -> usize {
    match span_of(text, at) {
        Some(span) => line_and_column(text, span.start).0,
        None => 0,
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

fn span_of(text: &str, at: &[Seg]) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut value: Option<&DeValue> = None;
    let mut table = Some(root.get_ref());
    for seg in at {
        let next = match (seg, table, value) {
            (Seg::Key(key), Some(t), _) => t.get(key.as_str()),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = next.span();
        value = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    Some(span)
}

/// One key or array element of a parsed document: its path, where it starts (the key, or a
/// `[[table]]` header), where it ends, and whether it is a table the following lines fill.
struct Entry {
    path: Vec<Seg>,
    span: Range<usize>,
    table: bool,
}

fn entries(value: &toml::de::DeValue<'_>, path: &mut Vec<Seg>, out: &mut Vec<Entry>) {
    use toml::de::DeValue;
    let children: Vec<(Seg, usize, &toml::Spanned<DeValue<'_>>)> = match value {
        DeValue::Table(table) => {
            table.iter().map(|(k, v)| (Seg::Key(k.get_ref().to_string()), k.span().start, v)).collect()
        }
        DeValue::Array(array) => array.iter().enumerate().map(|(i, v)| (Seg::Index(i), v.span().start, v)).collect(),
        _ => return,
    };
    for (seg, start, child) in children {
        path.push(seg);
        let table = child.get_ref().is_table();
        out.push(Entry { path: path.clone(), span: start..child.span().end, table });
        entries(child.get_ref(), path, out);
        path.pop();
    }
}

/// The key path at byte `offset` of `text`, from whatever part of it parses: on a table
/// header line, the header's name; else the deepest entry holding it; else (a key the parser
/// dropped, e.g. a duplicate or a broken value) the table the line is in, plus the line's key.
fn key_at(text: &str, offset: usize) -> Vec<Seg> {
    let bare = |word: &str| {
        (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
            .then(|| Seg::Key(word.to_owned()))
    };
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default().trim();
    if line.starts_with('[') {
        return bare(line.trim_matches(|c| c == '[' || c == ']').trim()).into_iter().collect();
    }
    let (root, _) = toml::de::DeTable::parse_recoverable(text);
    let mut all = Vec::new();
    entries(&toml::de::DeValue::Table(root.into_inner()), &mut Vec::new(), &mut all);
    if let Some(entry) = all.iter().filter(|e| e.span.contains(&offset)).max_by_key(|e| e.path.len()) {
        return entry.path.clone();
    }
    let mut path = match all.iter().filter(|e| e.span.start <= offset).max_by_key(|e| e.span.start) {
        Some(e) if e.table => e.path.clone(),
        Some(e) => e.path[..e.path.len() - 1].to_vec(),
        None => Vec::new(),
    };
    path.extend(line.split_once('=').and_then(|(key, _)| bare(key.trim())));
    path
}

fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> SpecError {
    let (line, column, key) = match err.span() {
        Some(span) => {
            let (line, column) = line_and_column(text, span.start);
            (line, column, key_path(&key_at(text, span.start)))
        }
        None => (0, 0, String::new()),
    };
    SpecError::Parse { path: path.into(), line, column, key, message: escape_controls(err.message()) }
}

/// `line 3, column 7: server[0].port: MESSAGE`, leaving out what is unknown (0 or empty).
fn located(line: usize, column: usize, key: &str, message: &str) -> String {
    let mut out = String::new();
    match (line, column) {
        (0, _) => {}
        (line, 0) => out.push_str(&format!("line {line}: ")),
        (line, column) => out.push_str(&format!("line {line}, column {column}: ")),
    }
    if !key.is_empty() {
        out.push_str(&format!("{key}: "));
    }
    out + message
}

/// `text` with control characters (other than newlines) escaped, so that a message never
/// carries them raw to a terminal.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { c.escape_debug().to_string() } else { c.to_string() })
        .collect()
}
