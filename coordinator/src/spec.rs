//! The cluster spec (TOML, `version = 1`): servers with their disk, volumes, clients with
//! their mounts. Unknown keys are rejected with the line and key (toml's own error, which
//! carries the span); the semantic checks of `crate::validate` run on every load, before any
//! host is contacted, and their errors name the line of the offending key. Reads only the
//! spec file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validate;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
    /// Addresses or networks (`ADDR` or `ADDR/PREFIX`) admitted to the agents' port. Without
    /// it each agent admits only the address `apply` connects from (and `plan` says so).
    #[serde(default)]
    pub coordinators: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub device: String,
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
}

#[derive(Debug, Clone, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct ClientMount {
    pub volume: String,
    pub path: String,
}

/// A host the coordinator talks to: its name (also its certificate's name) and where its
/// agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub name: String,
    pub address: String,
    pub port: u16,
}

/// A volume's kind, parsed from `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    Distribute,
    Replicate,
    Arbiter,
    Disperse,
}

impl VolumeKind {
    pub fn parse(kind: &str) -> Result<VolumeKind, String> {
        match kind {
            "distribute" => Ok(VolumeKind::Distribute),
            "replicate" => Ok(VolumeKind::Replicate),
            "arbiter" => Ok(VolumeKind::Arbiter),
            "disperse" => Ok(VolumeKind::Disperse),
            "stripe" | "striped" => Err("stripe volumes were removed in Gluster 6; use distribute, replicate, \
                                         arbiter or disperse"
                .into()),
            other => {
                Err(format!("unknown volume type {other:?} (expected distribute, replicate, arbiter or disperse)"))
            }
        }
    }
}

/// The counts of a volume as gluster takes them. `set_size` bricks form one replica or
/// disperse set (1 for distribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub kind: VolumeKind,
    pub replica: u32,
    pub arbiter: u32,
    pub disperse: u32,
    pub redundancy: u32,
}

impl Layout {
    pub fn set_size(&self) -> u32 {
        match self.kind {
            VolumeKind::Distribute => 1,
            VolumeKind::Replicate | VolumeKind::Arbiter => self.replica,
            VolumeKind::Disperse => self.disperse,
        }
    }
}

impl Volume {
    /// The volume's layout with defaults filled in (arbiter: replica 3 arbiter 1; disperse:
    /// redundancy 1). Counts are checked against the bricks by `crate::validate`.
    pub fn layout(&self) -> Result<Layout, String> {
        let kind = VolumeKind::parse(&self.kind)?;
        let unused = |name: &str, value: Option<u32>| match value {
            Some(_) => Err(format!("`{name}` does not apply to a {} volume", self.kind)),
            None => Ok(()),
        };
        Ok(match kind {
            VolumeKind::Distribute => {
                unused("replica", self.replica)?;
                unused("arbiter", self.arbiter)?;
                unused("disperse", self.disperse)?;
                unused("redundancy", self.redundancy)?;
                Layout { kind, replica: 0, arbiter: 0, disperse: 0, redundancy: 0 }
            }
            VolumeKind::Replicate => {
                unused("disperse", self.disperse)?;
                unused("redundancy", self.redundancy)?;
                if self.arbiter.is_some() {
                    return Err("a volume with an arbiter is `type = \"arbiter\"`".into());
                }
                let replica = self.replica.ok_or("a replicate volume needs `replica` (2 or more)")?;
                Layout { kind, replica, arbiter: 0, disperse: 0, redundancy: 0 }
            }
            VolumeKind::Arbiter => {
                unused("disperse", self.disperse)?;
                unused("redundancy", self.redundancy)?;
                Layout {
                    kind,
                    replica: self.replica.unwrap_or(3),
                    arbiter: self.arbiter.unwrap_or(1),
                    disperse: 0,
                    redundancy: 0,
                }
            }
            VolumeKind::Disperse => {
                unused("replica", self.replica)?;
                unused("arbiter", self.arbiter)?;
                let disperse = self.disperse.ok_or("a disperse volume needs `disperse` (3 or more bricks per set)")?;
                Layout { kind, replica: 0, arbiter: 0, disperse, redundancy: self.redundancy.unwrap_or(1) }
            }
        })
    }
}

impl Spec {
    /// Reads, parses and validates a spec; nothing else is touched.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.into(), source })?;
        Spec::parse(&text, path)
    }

    /// Parses and validates spec text; `path` is where it came from (for messages and for
    /// resolving `pki_dir`).
    pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
        let mut spec: Spec =
            toml::from_str(text).map_err(|e| SpecError::Parse { path: path.into(), message: e.to_string() })?;
        spec.path = path.to_path_buf();
        if spec.version != 1 {
            return Err(SpecError::Invalid {
                path: path.into(),
                message: format!(
                    "line {}: version {} is not supported (expected 1)",
                    line_of(text, &["version".into()]),
                    spec.version
                ),
            });
        }
        let issues = validate::check(&spec);
        if issues.is_empty() {
            return Ok(spec);
        }
        let issues = issues
            .into_iter()
            .map(|issue| SpecIssue { line: line_of(text, &issue.at), key: key_path(&issue.at), message: issue.message })
            .collect();
        Err(SpecError::Semantic { path: path.into(), issues })
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

    /// The servers that carry a brick of `volume`, in brick order (unknown names skipped;
    /// validation reports them).
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

/// `server[1].name` for `["server", 1, "name"]`.
pub fn key_path(at: &[Seg]) -> String {
    let mut out = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) if k.contains('.') => out.push_str(&format!(".{k:?}")),
            Seg::Key(k) => out.push_str(&format!(".{k}")),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The 1-based line of the deepest existing value along `at` (e.g. `server`, 1, `name`);
/// 0 when the text cannot be parsed.
pub fn line_of(text: &str, at: &[Seg]) -> usize {
    match span_of(text, at) {
        Some(span) => text[..span.start].matches('\n').count() + 1,
        None => 0,
    }
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
