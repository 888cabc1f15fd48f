//! The agent's TLS identity, replaceable while it serves.
//!
//! - **Enrolled**: `cert` + `key` of the config, checked by [`crate::rpc::tls`].
//! - **Not enrolled** (no `cert` file yet, `join_token` configured): the agent makes its own
//!   key at `key` (0600) on first start, keeps it across restarts and serves a provisional
//!   self-signed certificate over it. Clients must still present the coordinator's certificate
//!   chained to the pool CA. The coordinator enrols it: `IdentityCsr` returns a CSR over that
//!   key with the join token and the token's binding to the key (see
//!   [`brickyard_proto::join_token`]), `IdentityInstall` brings the signed certificate.
//! - **Rotation**: `IdentityCsr { rotate }` makes a new key, kept in memory until its
//!   certificate is installed.
//!
//! Every handshake takes the current certificate (a rustls [`ResolvesServerCert`]) and the
//! current client verifier (pool CA + the CRL at `crl`, loaded at startup and replaced by
//! `IdentityCrl`), so an install or a new CRL applies from the next handshake on and open
//! connections keep their sessions: no restart. Writes only `key`, `cert` and `crl` (each
//! atomically; key before certificate, so a crash between the two renames leaves a pair the
//! agent refuses at startup as mismatched rather than a half-written file), and removes the
//! join token file once enrolled. `--check-config` on a host that is not enrolled makes its
//! key, as the first start would.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use brickyard_proto::join_token::PROVISIONAL_CN;
use brickyard_proto::v1;
use rcgen::{CertificateParams, DistinguishedName as RcgenName, DnType, KeyPair, PublicKeyData};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DistinguishedName, RootCertStore};
use tonic::Status;

use crate::host::etcfile::atomic_write;
use crate::rpc::config::Config;
use crate::rpc::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("this agent is already enrolled (it serves {0}); rotate its certificate instead")]
    AlreadyEnrolled(PathBuf),
    #[error("this agent is not enrolled yet (it serves a provisional certificate); enrol it first")]
    NotEnrolled,
    #[error("no CSR is pending on this agent: ask for one (IdentityCsr) before installing a certificate")]
    NothingPending,
    #[error("the certificate is not for the key of this agent's pending CSR")]
    WrongKey,
    #[error("the certificate is refused: {0}")]
    BadCert(String),
    #[error("the CRL is refused: {0}")]
    BadCrl(String),
    #[error("join token {path}: {message}")]
    Token { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("making a key or CSR: {0}")]
    Key(#[from] rcgen::Error),
}

impl IdentityError {
    /// The gRPC status of this error.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            IdentityError::AlreadyEnrolled(_) | IdentityError::NotEnrolled | IdentityError::NothingPending => {
                Status::failed_precondition(message)
            }
            IdentityError::WrongKey | IdentityError::BadCert(_) | IdentityError::BadCrl(_) => {
                Status::invalid_argument(message)
            }
            IdentityError::Token { .. } => Status::failed_precondition(message),
            IdentityError::Io { .. } | IdentityError::Key(_) => Status::internal(message),
        }
    }
}

/// What is served now.
struct Served {
    key: Arc<CertifiedKey>,
    enrolled: bool,
}

/// The agent's live TLS identity and client verifier.
pub struct Identity {
    config: Config,
    ca_certs: Vec<CertificateDer<'static>>,
    root_hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
    served: RwLock<Served>,
    /// The key of the last CSR (the provisional key while not enrolled), until installed.
    pending: Mutex<Option<KeyPair>>,
    verifier: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("cert", &self.config.cert).finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_path_buf(), source }
}

impl Identity {
    /// Loads the identity the config names: the enrolled certificate, or (no `cert` file and a
    /// `join_token` configured) the agent's own key, made now if it has none, with a
    /// provisional certificate. Also loads the CRL when there is one.
    pub fn load(config: &Config) -> Result<Arc<Identity>, TlsError> {
        let ca_certs = tls::ca_certs(config)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(ca_certs.clone());
        let root_hints = roots.subjects();
        let (served, pending) = match (&config.join_token, config.cert.exists()) {
            (Some(token), false) => {
                let key = own_key(config)?;
                let certified = provisional(&key, &provider)
                    .map_err(|e| TlsError::key_material(config, "key", &config.key, e.to_string()))?;
                tracing::info!(
                    "not enrolled: serving a provisional certificate until the coordinator enrols this host \
                     (`brickyard enroll`) with the join token in {}",
                    token.display()
                );
                (Served { key: Arc::new(certified), enrolled: false }, Some(key))
            }
            _ => (Served { key: Arc::new(tls::certified_key(config, &ca_certs)?), enrolled: true }, None),
        };
        let crl = match std::fs::read(&config.crl) {
            Ok(pem) => Some(parse_crl(&pem).map_err(|e| TlsError::key_material(config, "crl", &config.crl, e))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(TlsError::key_material(config, "crl", &config.crl, e.to_string())),
        };
        let verifier = client_verifier(&ca_certs, &provider, crl)
            .map_err(|e| TlsError::key_material(config, "crl", &config.crl, e))?;
        Ok(Arc::new(Identity {
            config: config.clone(),
            ca_certs,
            root_hints,
            provider,
            served: RwLock::new(served),
            pending: Mutex::new(pending),
            verifier: RwLock::new(verifier),
        }))
    }

    /// The rustls server configuration that serves this identity (HTTP/2 only).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_client_cert_verifier(self.clone())
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    fn enrolled(&self) -> bool {
        self.served.read().expect("identity lock").enrolled
    }

    /// A CSR: over the provisional key with the join token and its binding (enrolment), or
    /// over a new pending key (`rotate`).
    pub fn csr(&self, rotate: bool) -> Result<v1::IdentityCsrResponse, IdentityError> {
        let mut pending = self.pending.lock().expect("pending key lock");
        match (rotate, self.enrolled()) {
            (false, true) => return Err(IdentityError::AlreadyEnrolled(self.config.cert.clone())),
            (true, false) => return Err(IdentityError::NotEnrolled),
            (true, true) => *pending = Some(KeyPair::generate()?),
            (false, false) => {}
        }
        let key = pending.as_ref().ok_or(IdentityError::NothingPending)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("brickyard agent");
        let csr_pem = params.serialize_request(key)?.pem()?;
        if rotate {
            return Ok(v1::IdentityCsrResponse { csr_pem, ..Default::default() });
        }
        let path = self.config.join_token.clone().expect("a provisional identity has a join token path");
        let token = std::fs::read_to_string(&path)
            .map_err(|e| IdentityError::Token { path: path.clone(), message: e.to_string() })?
            .trim()
            .to_owned();
        let token_binding = brickyard_proto::join_token::binding(&token, &key.subject_public_key_info());
        Ok(v1::IdentityCsrResponse { csr_pem, join_token: token, token_binding })
    }

    /// Installs `cert_pem` (signed for the pending key): checks it as a coordinator will,
    /// writes key and certificate atomically, serves it from the next handshake on and, after
    /// an enrolment, removes the join token file. Returns its serial (hex).
    pub fn install(&self, cert_pem: &str) -> Result<String, IdentityError> {
        let mut pending = self.pending.lock().expect("pending key lock");
        let key = pending.as_ref().ok_or(IdentityError::NothingPending)?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::BadCert(format!("not PEM: {e}")))?;
        let leaf = chain.first().ok_or_else(|| IdentityError::BadCert("no certificate".into()))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf).map_err(|e| IdentityError::BadCert(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(IdentityError::WrongKey);
        }
        let serial = parsed.raw_serial().iter().map(|b| format!("{b:02X}")).collect::<String>();
        tls::check_server_cert(&chain, self.ca_certs.clone()).map_err(IdentityError::BadCert)?;
        let certified = CertifiedKey::from_der(chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()), &self.provider)
            .map_err(|e| IdentityError::BadCert(e.to_string()))?;
        atomic_write(&self.config.key, key.serialize_pem().as_bytes(), 0o600).map_err(io_err(&self.config.key))?;
        atomic_write(&self.config.cert, cert_pem.as_bytes(), 0o644).map_err(io_err(&self.config.cert))?;
        let was_enrolled = {
            let mut served = self.served.write().expect("identity lock");
            served.key = Arc::new(certified);
            std::mem::replace(&mut served.enrolled, true)
        };
        *pending = None;
        if !was_enrolled {
            if let Some(token) = &self.config.join_token {
                if let Err(e) = std::fs::remove_file(token) {
                    tracing::warn!(path = %token.display(), "enrolled, but cannot remove the used join token: {e}");
                }
            }
        }
        tracing::info!(serial, cert = %self.config.cert.display(), "installed a new certificate; serving it from now on");
        Ok(serial)
    }

    /// Replaces the CRL with `crl_pem` (from the coordinator presenting `caller`). The CRL
    /// must be the pool CA's: it is tried on the caller's own certificate first, so a CRL
    /// that does not verify never locks the coordinator out. Returns how many serials it lists.
    pub fn install_crl(&self, crl_pem: &str, caller: &CertificateDer<'_>) -> Result<usize, IdentityError> {
        let crl = parse_crl(crl_pem.as_bytes()).map_err(IdentityError::BadCrl)?;
        let (_, parsed) = x509_parser::parse_x509_crl(&crl).map_err(|e| IdentityError::BadCrl(e.to_string()))?;
        let revoked = parsed.iter_revoked_certificates().count();
        let verifier =
            client_verifier(&self.ca_certs, &self.provider, Some(crl.clone())).map_err(IdentityError::BadCrl)?;
        match verifier.verify_client_cert(caller, &[], UnixTime::now()) {
            Ok(_) | Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {}
            Err(e) => return Err(IdentityError::BadCrl(format!("does not verify against the pool CA: {e}"))),
        }
        atomic_write(&self.config.crl, crl_pem.as_bytes(), 0o644).map_err(io_err(&self.config.crl))?;
        *self.verifier.write().expect("verifier lock") = verifier;
        tracing::info!(revoked, crl = %self.config.crl.display(), "installed a new CRL");
        Ok(revoked)
    }

    fn current_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.verifier.read().expect("verifier lock").clone()
    }
}

/// The agent's own key at `key`: read (mode checked) or, on first start, made and written 0600.
fn own_key(config: &Config) -> Result<KeyPair, TlsError> {
    let err = |message: String| TlsError::key_material(config, "key", &config.key, message);
    match std::fs::read_to_string(&config.key) {
        Ok(pem) => {
            tls::check_key_mode(config)?;
            KeyPair::from_pem(&pem).map_err(|e| err(format!("not a PEM private key: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
            if let Some(dir) = config.key.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            atomic_write(&config.key, key.serialize_pem().as_bytes(), 0o600).map_err(|e| err(e.to_string()))?;
            tracing::info!(key = %config.key.display(), "made this host's key");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn common_name(name: &str) -> RcgenName {
    let mut dn = RcgenName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A self-signed certificate over `key`, served until the host is enrolled.
fn provisional(key: &KeyPair, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(PROVISIONAL_CN);
    let cert = params.self_signed(key).map_err(|e| e.to_string())?;
    CertifiedKey::from_der(vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()), provider)
        .map_err(|e| e.to_string())
}

fn parse_crl(pem: &[u8]) -> Result<CertificateRevocationListDer<'static>, String> {
    CertificateRevocationListDer::from_pem_slice(pem).map_err(|e| format!("not a PEM CRL: {e}"))
}

/// Client certificates must chain to the pool CA and, with a CRL, not be on it.
fn client_verifier(
    ca_certs: &[CertificateDer<'static>],
    provider: &Arc<CryptoProvider>,
    crl: Option<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(ca_certs.to_vec());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = crl {
        builder = builder.with_crls([crl]).only_check_end_entity_revocation();
    }
    builder.build().map_err(|e| format!("unusable CA or CRL: {e}"))
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served.read().expect("identity lock").key.clone())
    }
}

impl ClientCertVerifier for Identity {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current_verifier().verify_client_cert(end_entity, intermediates, now).inspect_err(|e| {
            let revoked = matches!(e, rustls::Error::InvalidCertificate(CertificateError::Revoked));
            tracing::warn!(reason = %e, revoked, "refused a client certificate");
        })
    }

    brickyard_proto::signature_checks_by_provider!(provider);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path, extra: &str) -> Config {
        let path = dir.join("agent.toml");
        let text = format!("ca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n{extra}");
        Config::parse(&path, &text).unwrap()
    }

    fn ca(dir: &Path) -> (rcgen::Issuer<'static, KeyPair>, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        (rcgen::Issuer::new(params, key), cert.pem())
    }

    fn sign(issuer: &rcgen::Issuer<'static, KeyPair>, csr_pem: &str) -> String {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        csr.params = CertificateParams::new(vec!["glu1".to_owned()]).unwrap();
        csr.params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        csr.signed_by(issuer).unwrap().pem()
    }

    #[test]
    fn enrol_then_rotate_keeps_the_key_private_and_the_token_spent() {
        let dir = tempfile::tempdir().unwrap();
        let (issuer, _) = ca(dir.path());
        std::fs::write(dir.path().join("join-token"), "byt1.x.y\n").unwrap();
        let config = config_in(dir.path(), "join_token = \"join-token\"\n");
        let identity = Identity::load(&config).unwrap();
        assert!(!identity.enrolled());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&config.key).unwrap().permissions().mode() & 0o777, 0o600);
        let provisional_key = std::fs::read_to_string(&config.key).unwrap();
        // A restart before enrolment keeps the key (the same SPKI, the same binding).
        assert_eq!(Identity::load(&config).unwrap().csr(false).unwrap().token_binding, {
            identity.csr(false).unwrap().token_binding
        });
        assert_eq!(identity.csr(true).unwrap_err().to_string(), IdentityError::NotEnrolled.to_string());
        assert!(matches!(identity.install("junk"), Err(IdentityError::BadCert(_))));

        let csr = identity.csr(false).unwrap();
        assert_eq!(csr.join_token, "byt1.x.y");
        let serial = identity.install(&sign(&issuer, &csr.csr_pem)).unwrap();
        assert!(identity.enrolled() && !dir.path().join("join-token").exists());
        assert_eq!(std::fs::read_to_string(&config.key).unwrap(), provisional_key);
        assert!(matches!(identity.csr(false), Err(IdentityError::AlreadyEnrolled(_))));
        assert!(matches!(identity.install(&sign(&issuer, &csr.csr_pem)), Err(IdentityError::NothingPending)));

        assert!(Identity::load(&config_in(dir.path(), "")).unwrap().enrolled(), "what was written loads");
        let rotation = identity.csr(true).unwrap();
        // A certificate for another key (the old CSR) is refused; the pending key stays.
        assert!(matches!(identity.install(&sign(&issuer, &csr.csr_pem)), Err(IdentityError::WrongKey)));
        let rotated = identity.install(&sign(&issuer, &rotation.csr_pem)).unwrap();
        assert_ne!(rotated, serial);
        assert_ne!(std::fs::read_to_string(&config.key).unwrap(), provisional_key);
        assert_eq!(std::fs::metadata(&config.key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(Identity::load(&config_in(dir.path(), "")).unwrap().enrolled(), "the rotated pair loads");
    }
}
