//! Mutual TLS for the agent: loads and checks the key material named in the config (CA,
//! certificate, key: present, parseable, certificate valid for serving and signed by the CA,
//! key matching the certificate, key file not accessible by group/others) and, per request,
//! checks that the client certificate names the coordinator identity. rustls (configured by
//! `crate::rpc::identity`) already requires a client certificate that chains to the pool CA,
//! allows client authentication and is not on the CRL; the name check is ours, so an agent's
//! certificate can never command another agent. Reads the three files only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;

use crate::rpc::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field} {path}: {message} (config {config})")]
    KeyMaterial { config: PathBuf, field: &'static str, path: PathBuf, message: String },
}

impl TlsError {
    pub(crate) fn key_material(config: &Config, field: &'static str, path: &Path, message: String) -> TlsError {
        TlsError::KeyMaterial { config: config.path.clone(), field, path: path.to_path_buf(), message }
    }
}

fn read(config: &Config, field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::key_material(config, field, path, e.to_string()))
}

/// The certificates of a PEM file (at least one).
pub(crate) fn parse_certs(
    config: &Config,
    field: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::key_material(config, field, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::key_material(config, field, path, "contains no certificate".into()));
    }
    Ok(certs)
}

/// The pool CA certificates (`ca`).
pub fn ca_certs(config: &Config) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(config, "ca", &config.ca, &read(config, "ca", &config.ca)?)
}

/// Refuses a key file that group or others can access.
pub fn check_key_mode(config: &Config) -> Result<(), TlsError> {
    let err = |message| TlsError::key_material(config, "key", &config.key, message);
    let mode = std::fs::metadata(&config.key).map_err(|e| err(e.to_string()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(err(format!("is accessible by group or others (mode {:04o}); run chmod 600", mode & 0o7777)));
    }
    Ok(())
}

/// The enrolled identity (`cert` + `key`), checked as a coordinator will check it: signed by
/// the CA, valid now, made for serving, the key matching the certificate.
pub fn certified_key(config: &Config, ca_certs: &[CertificateDer<'static>]) -> Result<CertifiedKey, TlsError> {
    let chain = parse_certs(config, "cert", &config.cert, &read(config, "cert", &config.cert)?)?;
    check_server_cert(&chain, ca_certs.to_vec()).map_err(|e| {
        TlsError::key_material(
            config,
            "cert",
            &config.cert,
            format!("{e} (checked against the CA {})", config.ca.display()),
        )
    })?;
    check_key_mode(config)?;
    let key = PrivateKeyDer::from_pem_slice(&read(config, "key", &config.key)?)
        .map_err(|e| TlsError::key_material(config, "key", &config.key, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).map_err(|e| {
        TlsError::key_material(
            config,
            "key",
            &config.key,
            format!("does not match the certificate {}: {e}", config.cert.display()),
        )
    })
}

/// The DNS names in a certificate's subjectAltName.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).map_err(|e| format!("unparseable certificate: {e}"))?;
    Ok(cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Checks, as a coordinator will, that this agent's certificate chains to the pool CA, is
/// valid now and allows server authentication (so a coordinator certificate is refused).
pub(crate) fn check_server_cert(
    chain: &[CertificateDer<'static>],
    ca_certs: Vec<CertificateDer<'static>>,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(ca_certs);
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| format!("unusable CA: {e}"))?;
    let name = dns_names(&chain[0])?.into_iter().next().ok_or("names no host (no DNS subjectAltName)")?;
    let server_name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| format!("{name:?}: {e}"))?;
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], rustls::pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("is not a valid agent certificate for {name}: {e}"))
}

/// Checks that the client's end-entity certificate carries `identity` as a DNS SAN.
pub fn check_peer_identity(peer_certs: Option<&[CertificateDer<'_>]>, identity: &str) -> Result<(), String> {
    let cert = peer_certs.and_then(|c| c.first()).ok_or("no client certificate")?;
    let names = dns_names(cert).map_err(|e| format!("client certificate: {e}"))?;
    if names.iter().any(|n| n.eq_ignore_ascii_case(identity)) {
        Ok(())
    } else {
        Err(format!("client certificate names {names:?}, not the coordinator {identity:?}"))
    }
}

/// Refuses every request whose client certificate does not name the coordinator identity.
#[derive(Clone)]
pub struct CoordinatorOnly {
    identity: Arc<str>,
}

impl CoordinatorOnly {
    pub fn new(identity: &str) -> Self {
        Self { identity: identity.into() }
    }
}

impl Interceptor for CoordinatorOnly {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let certs = request.peer_certs();
        match check_peer_identity(certs.as_deref().map(Vec::as_slice), &self.identity) {
            Ok(()) => Ok(request),
            Err(reason) => {
                tracing::warn!(peer = ?request.remote_addr(), %reason, "refused client");
                Err(Status::permission_denied(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A certificate with DNS SANs `brickyard-coordinator` and `other`, made with `openssl req -x509`.
    const CERT_PEM: &str = include_str!("../../testdata/client-cert.pem");

    #[test]
    fn identity_check() {
        let cert = CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap();
        let certs = [cert];
        assert_eq!(check_peer_identity(Some(&certs), "brickyard-coordinator"), Ok(()));
        assert_eq!(check_peer_identity(Some(&certs), "BRICKYARD-coordinator"), Ok(()));
        let err = check_peer_identity(Some(&certs), "someone-else").unwrap_err();
        assert!(err.contains("someone-else"), "{err}");
        assert_eq!(check_peer_identity(None, "x").unwrap_err(), "no client certificate");
        assert_eq!(check_peer_identity(Some(&[]), "x").unwrap_err(), "no client certificate");
    }
}
