//! Connects to one agent over mutual TLS: presents the coordinator certificate of the pool
//! PKI and accepts only an agent certificate that chains to the pool CA and names the host as
//! the spec names it. Reads the PKI files; opens one TCP connection.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brickyard_proto::v1::agent_client::AgentClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::pki::Layout;
use crate::spec::HostTarget;

/// How long to wait for the TCP connection and TLS handshake, together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {path} (pool PKI): {source}")]
    Pki { path: PathBuf, source: std::io::Error },
    #[error("host {host}: invalid agent address {address:?}: {reason}")]
    Address { host: String, address: String, reason: String },
    #[error("host {host}: cannot connect to agent at {address}: {reason}")]
    Connect { host: String, address: String, reason: String },
}

/// `host:port` as a URI authority (IPv6 addresses in brackets).
fn authority(host: &HostTarget) -> String {
    match host.address.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", host.port),
        _ => format!("{}:{}", host.address, host.port),
    }
}

/// The error and every cause, `: `-separated (tonic's transport errors nest the useful part).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Connects to `host`'s agent with the pool PKI in `pki_dir`.
pub async fn connect(pki_dir: &Path, host: &HostTarget) -> Result<AgentClient<Channel>, ConnectError> {
    let layout = Layout::new(pki_dir);
    let read = |path: &Path| std::fs::read(path).map_err(|source| ConnectError::Pki { path: path.into(), source });
    let ca = Certificate::from_pem(read(&layout.ca_cert)?);
    let identity = Identity::from_pem(read(&layout.coordinator_cert)?, read(&layout.coordinator_key)?);
    let tls = ClientTlsConfig::new().ca_certificate(ca).identity(identity).domain_name(host.name.clone());

    let address = authority(host);
    let address_err =
        |reason: String| ConnectError::Address { host: host.name.clone(), address: host.address.clone(), reason };
    let endpoint = Endpoint::from_shared(format!("https://{address}"))
        .map_err(|e| address_err(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| address_err(error_chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    // `connect_timeout` bounds the TCP connect only; a peer that accepts and never answers
    // the TLS handshake would otherwise hold the coordinator forever.
    let connect_err =
        |reason: String| ConnectError::Connect { host: host.name.clone(), address: address.clone(), reason };
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| connect_err(format!("timed out after {CONNECT_TIMEOUT:?} (no TLS handshake)")))?
        .map_err(|e| connect_err(error_chain(&e)))?;
    Ok(AgentClient::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_brackets_ipv6() {
        let host = |address: &str| HostTarget { name: "h".into(), address: address.into(), port: 7420 };
        assert_eq!(authority(&host("192.0.2.1")), "192.0.2.1:7420");
        assert_eq!(authority(&host("::1")), "[::1]:7420");
        assert_eq!(authority(&host("glu1.example.org")), "glu1.example.org:7420");
    }
}
