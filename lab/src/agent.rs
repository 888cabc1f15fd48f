//! The agents of a lab: the pool PKI under DIR/pki, one certificate per host (SAN = its name
//! and lab address), each host's config directory DIR/hosts/NAME/conf (agent.toml, ca.pem,
//! agent.pem, agent.key 0600; bound to /etc/brickyard inside the host), and waiting
//! until every agent accepts TCP connections from the control namespace.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brickyard_proto::agent_config::{AgentConfigFile, ServiceManagerSetting};
use brickyard_proto::DEFAULT_AGENT_PORT;

use super::host::{HostDir, CONF_IN_HOST};
use super::naming::HostPlan;
use super::{cmd, poll, LabError};
use brickyard::pki;

/// Finds the agent binary: `--agent-bin`, else $BRICKYARD_AGENT_BIN, else `brickyard-agent`
/// next to the running `brickyard-lab`.
pub fn agent_binary(flag: Option<PathBuf>) -> Result<PathBuf, LabError> {
    let path = match flag.or_else(|| std::env::var_os("BRICKYARD_AGENT_BIN").map(PathBuf::from)) {
        Some(p) => p,
        None => cmd::next_to_this_binary("brickyard-agent")?,
    };
    let path = std::path::absolute(&path).map_err(|source| LabError::Io { path: path.clone(), source })?;
    if !path.is_file() {
        return Err(LabError::NoAgent(path));
    }
    Ok(path)
}

/// The agent config of a lab host (paths as seen inside the host).
pub fn agent_config(host: &HostPlan) -> String {
    AgentConfigFile {
        listen: Some(format!("{}:{DEFAULT_AGENT_PORT}", host.address)),
        ca: format!("{CONF_IN_HOST}/ca.pem").into(),
        cert: format!("{CONF_IN_HOST}/agent.pem").into(),
        key: format!("{CONF_IN_HOST}/agent.key").into(),
        coordinator_identity: Some(pki::COORDINATOR_IDENTITY.into()),
        service_manager: ServiceManagerSetting::Direct,
        crl: None,
        join_token: None,
    }
    .render(&format!("Written by `brickyard-lab up` for lab host {}.", host.name))
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), LabError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| LabError::Io { path: path.into(), source })?;
    file.write_all(bytes).map_err(|source| LabError::Io { path: path.into(), source })
}

fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|source| LabError::Io { path: path.into(), source })
}

/// Creates the pool PKI in `pki_dir` and every host's config directory.
pub fn write_pki_and_configs(pki_dir: &Path, hosts: &[(HostPlan, HostDir)]) -> Result<(), LabError> {
    pki::init(pki_dir, None)?;
    let ca = read(&pki::Layout::new(pki_dir).ca_cert)?;
    for (host, dir) in hosts {
        let issued = pki::issue(pki_dir, None, &host.name, &[host.address.to_string()], pki::DEFAULT_HOST_VALIDITY)?;
        let conf = dir.conf();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&conf)
            .map_err(|source| LabError::Io { path: conf.clone(), source })?;
        write(&conf.join("ca.pem"), &ca, 0o644)?;
        write(&conf.join("agent.pem"), &read(&issued.cert)?, 0o644)?;
        write(&conf.join("agent.key"), &read(&issued.key)?, 0o600)?;
        write(&conf.join("agent.toml"), agent_config(host).as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Whether the agent at `address` accepts a TCP connection (call from inside the lab network).
pub fn answers(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// Polls (from the calling thread, which must be in the control namespace) until every host's
/// agent accepts TCP connections. `dead` reports a host whose init has exited (then waiting
/// is pointless). Errors name the hosts still not answering at the deadline.
pub fn wait_until_listening(
    hosts: &[HostPlan],
    deadline: Instant,
    dead: impl Fn(&str) -> Option<String>,
) -> Result<(), LabError> {
    let mut waiting: Vec<&HostPlan> = hosts.iter().collect();
    poll::until(deadline, || {
        if let Some((host, why)) = waiting.iter().find_map(|h| dead(&h.name).map(|why| (h.name.clone(), why))) {
            return Err(LabError::HostDied { host, why });
        }
        waiting.retain(|h| !answers(SocketAddr::new(h.address.into(), DEFAULT_AGENT_PORT)));
        let names: Vec<_> = waiting.iter().map(|h| h.name.as_str()).collect();
        Ok((!names.is_empty()).then(|| format!("the agents of {} to listen", names.join(", "))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{plan_hosts, LabName};

    #[test]
    fn agent_config_names_the_host_address_and_files_in_the_host() {
        let lab = LabName::new("x").unwrap();
        let host = &plan_hosts(&lab, 1, 0).unwrap()[0];
        let text = agent_config(host);
        let value: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(value["listen"].as_str().unwrap(), format!("{}:7420", host.address));
        assert_eq!(value["key"].as_str().unwrap(), "/etc/brickyard/agent.key");
        assert_eq!(value["coordinator_identity"].as_str().unwrap(), "brickyard-coordinator");
        assert_eq!(value["service_manager"].as_str().unwrap(), "direct");
    }
}
