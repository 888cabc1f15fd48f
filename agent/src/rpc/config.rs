//! The agent's configuration file (TOML, unknown keys rejected):
//!
//! ```toml
//! listen = "0.0.0.0:7420"                       # address[:port], default port 7420
//! ca = "/etc/brickyard/pki/ca.pem"              # pool CA: client certs must chain to it
//! cert = "/etc/brickyard/pki/agent.pem"         # this agent's certificate ...
//! key = "/etc/brickyard/pki/agent.key"          # ... and key (mode 0600)
//! coordinator_identity = "brickyard-coordinator" # the only client name accepted
//! service_manager = "auto"                      # auto | systemd | direct
//! crl = "crl.pem"                               # pool CRL, default beside this file
//! join_token = "/etc/brickyard/pki/join-token"  # read while not enrolled (no cert yet)
//! ```
//!
//! Reads the file only; the key material is checked by `crate::rpc::tls`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use brickyard_proto::agent_config::AgentConfigFile;
pub use brickyard_proto::agent_config::ServiceManagerSetting;

use crate::host::ServiceManager;

pub const DEFAULT_COORDINATOR_IDENTITY: &str = "brickyard-coordinator";
const DEFAULT_LISTEN: &str = "0.0.0.0";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub coordinator_identity: String,
    pub service_manager: ServiceManagerSetting,
    /// The pool CRL (may be absent: nothing revoked yet).
    pub crl: PathBuf,
    /// Where the join token is, for a host that is not enrolled yet.
    pub join_token: Option<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(path, &text)
    }

    /// Parses `text` (read from `path`); relative key paths are resolved against its directory.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
        let raw = AgentConfigFile::parse(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        let listen = parse_listen(raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN)).map_err(invalid)?;
        let identity = raw.coordinator_identity.unwrap_or_else(|| DEFAULT_COORDINATOR_IDENTITY.to_owned());
        brickyard_proto::types::HostName::new(&identity).map_err(|e| invalid(format!("coordinator_identity: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        Ok(Config {
            path: path.into(),
            listen,
            ca: base.join(raw.ca),
            cert: base.join(raw.cert),
            key: base.join(raw.key),
            coordinator_identity: identity,
            service_manager: raw.service_manager,
            crl: base.join(raw.crl.unwrap_or_else(|| "crl.pem".into())),
            join_token: raw.join_token.map(|p| base.join(p)),
        })
    }

    /// The service manager to use: `auto` means systemd when it runs this host.
    pub fn service_manager(&self) -> ServiceManager {
        resolve_service_manager(self.service_manager, Path::new("/run/systemd/system").is_dir())
    }
}

pub fn resolve_service_manager(setting: ServiceManagerSetting, systemd_running: bool) -> ServiceManager {
    match setting {
        ServiceManagerSetting::Systemd => ServiceManager::Systemd,
        ServiceManagerSetting::Direct => ServiceManager::Direct,
        ServiceManagerSetting::Auto if systemd_running => ServiceManager::Systemd,
        ServiceManagerSetting::Auto => ServiceManager::Direct,
    }
}

/// `ADDR:PORT`, `[V6]:PORT`, or a bare IP address (port 7420).
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, brickyard_proto::DEFAULT_AGENT_PORT))
        .map_err(|_| format!("listen: invalid address {value:?} (expected IP:PORT, [IPv6]:PORT or an IP address)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/brickyard/agent.toml"), text)
    }

    const MINIMAL: &str = "ca = \"ca.pem\"\ncert = \"/k/agent.pem\"\nkey = \"/k/agent.key\"\n";

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen, "0.0.0.0:7420".parse().unwrap());
        assert_eq!(c.ca, Path::new("/etc/brickyard/ca.pem"));
        assert_eq!(c.cert, Path::new("/k/agent.pem"));
        assert_eq!(c.coordinator_identity, "brickyard-coordinator");
        assert_eq!(c.service_manager, ServiceManagerSetting::Auto);
        assert_eq!((c.crl.as_path(), c.join_token), (Path::new("/etc/brickyard/crl.pem"), None));
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("10.0.0.1").unwrap(), "10.0.0.1:7420".parse().unwrap());
        assert_eq!(parse_listen("[::]").unwrap(), "[::]:7420".parse().unwrap());
        assert_eq!(parse_listen("127.0.0.1:0").unwrap(), "127.0.0.1:0".parse().unwrap());
        let err = parse(&format!("listen = \"nowhere:x\"\n{MINIMAL}")).unwrap_err().to_string();
        assert!(err.contains("agent.toml") && err.contains("listen") && err.contains("nowhere:x"), "{err}");
    }

    #[test]
    fn unknown_key_and_bad_values_are_named() {
        let err = parse(&format!("{MINIMAL}colour = \"blue\"\n")).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = parse(&format!("{MINIMAL}service_manager = \"upstart\"\n")).unwrap_err().to_string();
        assert!(err.contains("upstart"), "{err}");
        let err = parse(&format!("{MINIMAL}coordinator_identity = \"a b\"\n")).unwrap_err().to_string();
        assert!(err.contains("coordinator_identity"), "{err}");
        let err = parse("ca = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("cert"), "{err}");
    }

    #[test]
    fn service_manager_resolution() {
        assert_eq!(resolve_service_manager(ServiceManagerSetting::Auto, true), ServiceManager::Systemd);
        assert_eq!(resolve_service_manager(ServiceManagerSetting::Auto, false), ServiceManager::Direct);
        assert_eq!(resolve_service_manager(ServiceManagerSetting::Direct, true), ServiceManager::Direct);
        assert_eq!(resolve_service_manager(ServiceManagerSetting::Systemd, false), ServiceManager::Systemd);
    }
}
