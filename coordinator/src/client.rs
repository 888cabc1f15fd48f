//! Connects to one agent over mutual TLS: presents the coordinator certificate of the pool
//! PKI and accepts only an agent certificate that chains to the pool CA, names the host as
//! the spec names it and is not on the pool CRL (`DIR/crl.pem`, when there is one); a host
//! that serves its provisional certificate is reported as not enrolled. Enrolment connects
//! accepting any agent certificate and records it ([`ServerCheck::Enrolling`]). Reads the
//! PKI files; opens one TCP connection.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brickyard_proto::v1::agent_client::AgentClient;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use tonic::transport::{Channel, Endpoint};

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
    #[error(
        "host {host}: the agent at {address} is not enrolled yet (it serves a provisional certificate): enrol \
         it with `brickyard enroll -f SPEC --host {host}`"
    )]
    NotEnrolled { host: String, address: String },
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

/// How the agent's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCheck {
    /// Chains to the pool CA, names the host, is valid now and not on the pool CRL.
    Pool,
    /// Enrolment: any certificate is accepted (a host that is not enrolled serves a
    /// provisional one); the handshake still proves the agent holds its key, and the
    /// certificate is recorded so the join token's binding can be checked against it.
    Enrolling,
}

/// The certificate the agent presented in the latest handshake of a connection.
pub type PeerCert = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// Connects to `host`'s agent with the pool PKI in `pki_dir`.
pub async fn connect(pki_dir: &Path, host: &HostTarget) -> Result<AgentClient<Channel>, ConnectError> {
    Ok(connect_with(pki_dir, host, ServerCheck::Pool).await?.0)
}

/// Connects to `host`'s agent checking its certificate as `check` says; also returns the
/// certificate the agent presented.
pub async fn connect_with(
    pki_dir: &Path,
    host: &HostTarget,
    check: ServerCheck,
) -> Result<(AgentClient<Channel>, PeerCert), ConnectError> {
    let peer = PeerCert::default();
    let tls = tls_config(pki_dir, check, peer.clone())?;
    let address = authority(host);
    let address_err =
        |reason: String| ConnectError::Address { host: host.name.clone(), address: host.address.clone(), reason };
    let server_name = ServerName::try_from(host.name.clone()).map_err(|e| address_err(e.to_string()))?;
    // TLS is ours (tokio-rustls with the config above); tonic speaks HTTP/2 over it.
    let endpoint = Endpoint::from_shared(format!("http://{address}")).map_err(|e| address_err(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp_address = address.clone();
    let connect = tower::service_fn(move |_: tonic::transport::Uri| {
        let (connector, tcp_address, server_name) = (connector.clone(), tcp_address.clone(), server_name.clone());
        // One deadline for TCP and TLS: a peer that accepts and never answers the handshake
        // would otherwise hold the coordinator forever.
        let connect = async move {
            let tcp = tokio::net::TcpStream::connect(&tcp_address).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        };
        async move {
            tokio::time::timeout(CONNECT_TIMEOUT, connect).await.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("timed out after {CONNECT_TIMEOUT:?} (no TLS handshake)"),
                ))
            })
        }
    });
    let connect_err =
        |reason: String| ConnectError::Connect { host: host.name.clone(), address: address.clone(), reason };
    let channel = endpoint.connect_with_connector(connect).await.map_err(|e| {
        let provisional = peer.lock().expect("peer certificate lock").as_ref().is_some_and(is_provisional);
        match (check, provisional) {
            (ServerCheck::Pool, true) => {
                ConnectError::NotEnrolled { host: host.name.clone(), address: address.clone() }
            }
            _ => connect_err(error_chain(&e)),
        }
    })?;
    Ok((AgentClient::new(channel), peer))
}

/// The client side of mutual TLS: the coordinator certificate, the pool CA and CRL.
fn tls_config(pki_dir: &Path, check: ServerCheck, peer: PeerCert) -> Result<rustls::ClientConfig, ConnectError> {
    let layout = Layout::new(pki_dir);
    let read = |path: &Path| std::fs::read(path).map_err(|source| ConnectError::Pki { path: path.into(), source });
    let invalid = |path: &Path, e: &dyn std::fmt::Display| ConnectError::Pki {
        path: path.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&layout.ca_cert)?) {
        roots.add(ca.map_err(|e| invalid(&layout.ca_cert, &e))?).map_err(|e| invalid(&layout.ca_cert, &e))?;
    }
    let mut pool = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let crl_path = crate::pki::revoke::crl_path(pki_dir);
    match std::fs::read(&crl_path) {
        Ok(pem) => {
            let crl = CertificateRevocationListDer::from_pem_slice(&pem).map_err(|e| invalid(&crl_path, &e))?;
            pool = pool.with_crls([crl]).only_check_end_entity_revocation();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ConnectError::Pki { path: crl_path, source }),
    }
    let pool = pool.build().map_err(|e| invalid(&layout.ca_cert, &e))?;
    let chain = CertificateDer::pem_slice_iter(&read(&layout.coordinator_cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&layout.coordinator_cert, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&layout.coordinator_key)?)
        .map_err(|e| invalid(&layout.coordinator_key, &e))?;
    let verifier = AgentVerifier { pool, check, peer, provider: provider.clone() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid(&layout.coordinator_key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Checks the agent's certificate as `check` says; records it first (so a refused one can be
/// recognised as provisional).
#[derive(Debug)]
struct AgentVerifier {
    pool: Arc<WebPkiServerVerifier>,
    check: ServerCheck,
    peer: PeerCert,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// Whether `cert` is an agent's provisional certificate.
pub fn is_provisional(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert).is_ok_and(|(_, c)| {
        c.subject().iter_common_name().any(|cn| cn.as_str() == Ok(brickyard_proto::join_token::PROVISIONAL_CN))
    })
}

impl ServerCertVerifier for AgentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.peer.lock().expect("peer certificate lock") = Some(end_entity.clone().into_owned());
        match self.check {
            ServerCheck::Enrolling => Ok(ServerCertVerified::assertion()),
            ServerCheck::Pool => {
                self.pool.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
        }
    }

    brickyard_proto::signature_checks_by_provider!(provider);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_certificates_are_recognised() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, brickyard_proto::join_token::PROVISIONAL_CN);
        assert!(is_provisional(params.self_signed(&key).unwrap().der()));
        let other = rcgen::CertificateParams::new(vec!["glu1".to_owned()]).unwrap().self_signed(&key).unwrap();
        assert!(!is_provisional(other.der()));
    }

    #[test]
    fn authority_brackets_ipv6() {
        let host = |address: &str| HostTarget { name: "h".into(), address: address.into(), port: 7420 };
        assert_eq!(authority(&host("192.0.2.1")), "192.0.2.1:7420");
        assert_eq!(authority(&host("::1")), "[::1]:7420");
        assert_eq!(authority(&host("glu1.example.org")), "glu1.example.org:7420");
    }
}
