//! The cluster spec (TOML, `version = 1`): servers with their disk, volumes, clients with
//! their mounts. Unknown keys are rejected with the line and key. (Skeleton: the coordinator
//! issue adds the semantic checks.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub disk: Option<Disk>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub device: String,
    #[serde(default)]
    pub filesystem: Option<String>,
    pub mount: String,
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
    pub brick_dir: String,
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

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.into(), source })?;
        let mut spec: Spec =
            toml::from_str(&text).map_err(|e| SpecError::Parse { path: path.into(), message: e.to_string() })?;
        spec.path = path.to_path_buf();
        if spec.version != 1 {
            return Err(SpecError::Invalid {
                path: path.into(),
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
}
