//! The pool PKI: a CA that signs one certificate for the coordinator and one per agent.
//! Files only, in one directory (nothing else on the host is touched):
//!
//! ```text
//! DIR/ca.pem DIR/ca.key                     pool CA (keys 0600)
//! DIR/coordinator.pem DIR/coordinator.key   DNS SAN `brickyard-coordinator`, EKU clientAuth only
//! DIR/hosts/NAME.pem DIR/hosts/NAME.key     agent NAME, SAN = name + addresses, EKU serverAuth only
//!                                           (no NAME.key when the agent made its own: `sign_host_csr`)
//! DIR/tokens/                               join tokens, hashed (`token`)
//! DIR/revoked.toml DIR/crl.pem              revoked serials and the CRL signed from them (`revoke`;
//!                                           `init` writes an empty one)
//! ```
//!
//! The CA key may live outside DIR (`--ca-key PATH`, e.g. on an offline or encrypted volume):
//! every function that signs takes it as `ca_key` (`None` = `DIR/ca.key`). Host certificates
//! live [`DEFAULT_HOST_VALIDITY`] (30 days) unless told otherwise; re-issue them before that.
//!
//! The EKUs keep the roles apart: TLS stacks refuse an agent certificate presented as a client,
//! and agents additionally check the coordinator name themselves.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use brickyard_proto::types::HostName;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use time::{Duration, OffsetDateTime};

pub mod revoke;
pub mod token;

/// The identity (DNS SAN) of the coordinator certificate; agents accept only this client.
pub const COORDINATOR_IDENTITY: &str = "brickyard-coordinator";

/// How long certificates are valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// The coordinator certificate (kept on the operator's machine, revocable).
const COORDINATOR_VALIDITY: Duration = Duration::days(365);
/// Agent certificates: short, so a lost host key stops working soon without a CRL.
pub const DEFAULT_HOST_VALIDITY: Duration = Duration::days(30);
/// Tolerated clock skew between the machine that issues and the hosts that check.
const BACKDATE: Duration = Duration::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("a pool CA already exists at {0}; refusing to overwrite it")]
    CaExists(PathBuf),
    #[error("no pool CA at {path} (run `brickyard pki init --dir {dir}` first): {source}")]
    NoCa { path: PathBuf, dir: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid agent name: {0}")]
    Name(#[from] brickyard_proto::types::InvalidValue),
    #[error("the name {COORDINATOR_IDENTITY:?} is reserved for the coordinator certificate")]
    ReservedName,
    #[error("invalid address {address:?} for {name}: not an IP address or a host name")]
    Address { name: String, address: String },
    #[error("{context}: {source}")]
    Cert { context: String, source: rcgen::Error },
    #[error("the system random number generator failed")]
    Random,
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where `issue` wrote an agent's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The PKI file paths inside `dir`.
pub struct Layout {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub coordinator_cert: PathBuf,
    pub coordinator_key: PathBuf,
    pub hosts: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            coordinator_cert: dir.join("coordinator.pem"),
            coordinator_key: dir.join("coordinator.key"),
            hosts: dir.join("hosts"),
        }
    }

    /// Certificate and key paths of agent `name`.
    pub fn host(&self, name: &str) -> IssuedCert {
        IssuedCert { cert: self.hosts.join(format!("{name}.pem")), key: self.hosts.join(format!("{name}.key")) }
    }
}

pub(crate) fn cert_err(context: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let context = context.into();
    move |source| PkiError::Cert { context, source }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

/// Creates the pool CA and the coordinator certificate in `dir` (created if missing), the CA
/// key at `ca_key` (default `DIR/ca.key`). Refuses to overwrite an existing CA.
pub fn init(dir: &Path, ca_key: Option<&Path>) -> Result<(), PkiError> {
    let layout = Layout::new(dir);
    let ca_key_path = ca_key.unwrap_or(&layout.ca_key).to_path_buf();
    for existing in [&layout.ca_cert, &ca_key_path] {
        if existing.exists() {
            return Err(PkiError::CaExists(existing.clone()));
        }
    }
    create_private_dir(dir)?;
    create_private_dir(&layout.hosts)?;

    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
    let mut ca = CertificateParams::default();
    // A distinct name per pool, so a certificate of another pool is "unknown issuer".
    let id: String = ca_key.public_key_raw().iter().rev().take(6).map(|b| format!("{b:02x}")).collect();
    ca.distinguished_name = common_name(&format!("Brickyard pool CA {id}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = now - BACKDATE;
    ca.not_after = now + CA_VALIDITY;
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_err("signing the CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let (cert, key) = leaf(
        &issuer,
        COORDINATOR_IDENTITY,
        vec![SanType::DnsName(COORDINATOR_IDENTITY.try_into().map_err(cert_err("coordinator name"))?)],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        COORDINATOR_VALIDITY,
    )?;
    write_file(&ca_key_path, issuer.key().serialize_pem().as_bytes(), 0o600, true)?;
    write_file(&layout.ca_cert, ca_cert.pem().as_bytes(), 0o644, true)?;
    write_file(&layout.coordinator_key, key.as_bytes(), 0o600, false)?;
    write_file(&layout.coordinator_cert, cert.as_bytes(), 0o644, false)?;
    // An empty CRL from the start: gluster's ssl.crl-path needs one before anything is revoked.
    revoke::resign(dir, Some(&ca_key_path), Duration::ZERO)?;
    Ok(())
}

/// An agent name: a valid host name that is not the coordinator's.
fn agent_name(name: &str) -> Result<HostName, PkiError> {
    let name = HostName::new(name)?;
    if name.as_str() == COORDINATOR_IDENTITY {
        return Err(PkiError::ReservedName);
    }
    Ok(name)
}

/// The EKUs of agent certificates. Gluster's TLS uses a host's certificate both ways (brick
/// server, client of other bricks); agents refuse a client that is not the coordinator by its
/// name, not by this EKU.
const HOST_EKUS: [ExtendedKeyUsagePurpose; 2] =
    [ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];

/// Issues (or re-issues) agent `name`'s certificate, valid for `validity`, signed by the pool
/// CA in `dir` (key at `ca_key`, default `DIR/ca.key`), with SANs = `name` and every address
/// (IP addresses as IP SANs, names as DNS SANs).
pub fn issue(
    dir: &Path,
    ca_key: Option<&Path>,
    name: &str,
    addresses: &[String],
    validity: Duration,
) -> Result<IssuedCert, PkiError> {
    let name = agent_name(name)?;
    let sans = host_sans(&name, addresses)?;
    let issuer = load_issuer(dir, ca_key)?;
    let (cert, key) = leaf(&issuer, name.as_str(), sans, &HOST_EKUS, validity)?;
    let layout = Layout::new(dir);
    create_private_dir(&layout.hosts)?;
    let issued = layout.host(name.as_str());
    write_file(&issued.key, key.as_bytes(), 0o600, false)?;
    write_file(&issued.cert, cert.as_bytes(), 0o644, false)?;
    Ok(issued)
}

/// An agent's SANs: its name and every address (IP addresses as IP SANs, names as DNS SANs).
fn host_sans(name: &HostName, addresses: &[String]) -> Result<Vec<SanType>, PkiError> {
    let mut sans = vec![dns_san(name.as_str())?];
    for address in addresses {
        let san = match address.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => match HostName::new(address) {
                Ok(host) => dns_san(host.as_str())?,
                Err(_) => return Err(PkiError::Address { name: name.to_string(), address: address.clone() }),
            },
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// Signs the agent's CSR (`pem`, its self-signature checked) as `issue` would issue agent
/// `name`'s certificate, over the CSR's key; the CSR's own names and extensions are ignored.
/// With `expected_spki`, the CSR must be for that key (the one the agent served in the
/// handshake). Writes the certificate to `DIR/hosts/NAME.pem` and removes a `NAME.key` an
/// earlier `issue` left there (the agent's key never leaves the agent); returns the PEM.
pub fn sign_host_csr(
    dir: &Path,
    ca_key: Option<&Path>,
    name: &str,
    addresses: &[String],
    csr_pem: &str,
    expected_spki: Option<&[u8]>,
    validity: Duration,
) -> Result<String, PkiError> {
    let name = agent_name(name)?;
    let path = Layout::new(dir).host(name.as_str());
    let bad_csr = |message: String| PkiError::Invalid { path: path.cert.clone(), message };
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| bad_csr(format!("the CSR of {name} does not verify: {e}")))?;
    if expected_spki.is_some_and(|spki| spki != csr.public_key.subject_public_key_info().as_slice()) {
        return Err(bad_csr(format!("the CSR of {name} is not for the key it presented in the TLS handshake")));
    }
    let issuer = load_issuer(dir, ca_key)?;
    csr.params = leaf_params(name.as_str(), host_sans(&name, addresses)?, &HOST_EKUS, validity);
    let cert = csr.signed_by(&issuer).map_err(cert_err(format!("signing the certificate of {name}")))?.pem();
    create_private_dir(&Layout::new(dir).hosts)?;
    write_file(&path.cert, cert.as_bytes(), 0o644, false)?;
    match std::fs::remove_file(&path.key) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path.key)(e)),
        _ => {}
    }
    Ok(cert)
}

/// The pool CA as an rcgen issuer (certificate from `dir`, key from `ca_key` or `DIR/ca.key`).
pub fn load_issuer(dir: &Path, ca_key: Option<&Path>) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let layout = Layout::new(dir);
    let ca_key = ca_key.unwrap_or(&layout.ca_key);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| PkiError::NoCa {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        })
    };
    let key_pem = read(ca_key)?;
    let cert_pem = read(&layout.ca_cert)?;
    let key = KeyPair::from_pem(&key_pem).map_err(cert_err(format!("reading {}", ca_key.display())))?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(cert_err(format!("reading {}", layout.ca_cert.display())))
}

fn dns_san(name: &str) -> Result<SanType, PkiError> {
    Ok(SanType::DnsName(name.try_into().map_err(cert_err(format!("host name {name:?}")))?))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A leaf certificate for `cn` with `sans` and exactly these EKUs, valid for `validity`; returns
/// (cert PEM, key PEM).
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    eku: &[ExtendedKeyUsagePurpose],
    validity: Duration,
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(cert_err(format!("generating the key of {cn}")))?;
    let params = leaf_params(cn, sans, eku, validity);
    let cert = params.signed_by(&key, issuer).map_err(cert_err(format!("signing the certificate of {cn}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What every leaf certificate says: `cn`, `sans`, exactly these EKUs, valid from now (less
/// the clock skew allowance) for `validity`.
fn leaf_params(cn: &str, sans: Vec<SanType>, eku: &[ExtendedKeyUsagePurpose], validity: Duration) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(cn);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = eku.to_vec();
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Writes `path` atomically with `mode` (temp file in the same directory, fsync, rename).
/// With `new_only`, an existing file is an error (the CA is never overwritten).
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32, new_only: bool) -> Result<(), PkiError> {
    if new_only && path.exists() {
        return Err(PkiError::CaExists(path.to_path_buf()));
    }
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(contents).and_then(|_| file.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn sans_and_eku(pem: &str) -> (Vec<String>, bool, bool) {
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = der.parse_x509().unwrap();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|ext| ext.value.general_names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        (sans, eku.server_auth, eku.client_auth)
    }

    const DAY: Duration = Duration::days(1);

    #[test]
    fn ca_key_outside_the_directory_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let (pki, offline) = (dir.path().join("pki"), dir.path().join("offline-ca.key"));
        init(&pki, Some(&offline)).unwrap();
        assert!(offline.is_file() && !Layout::new(&pki).ca_key.exists());
        let err = issue(&pki, None, "glu1", &[], DAY).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
        let issued = issue(&pki, Some(&offline), "glu1", &[], Duration::days(7)).unwrap();
        let pem = std::fs::read_to_string(issued.cert).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let validity = der.parse_x509().unwrap().validity().time_to_expiration().unwrap();
        assert!(validity <= Duration::days(7) && validity > Duration::days(6), "{validity}");
    }

    #[test]
    fn init_then_issue() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        init(&pki, None).unwrap();
        let layout = Layout::new(&pki);
        for key in [&layout.ca_key, &layout.coordinator_key] {
            assert_eq!(std::fs::metadata(key).unwrap().mode() & 0o777, 0o600, "{}", key.display());
        }
        let (sans, server, client) = sans_and_eku(&std::fs::read_to_string(&layout.coordinator_cert).unwrap());
        assert_eq!(sans, vec![format!("DNSName({COORDINATOR_IDENTITY})")]);
        assert!(client && !server);

        let issued = issue(&pki, None, "gluServer1", &["192.0.2.11".into(), "glu1.example.org".into()], DAY).unwrap();
        assert_eq!(issued, layout.host("gluServer1"));
        assert_eq!(std::fs::metadata(&issued.key).unwrap().mode() & 0o777, 0o600);
        let (sans, server, client) = sans_and_eku(&std::fs::read_to_string(&issued.cert).unwrap());
        assert_eq!(sans, ["DNSName(gluServer1)", "IPAddress(c0:00:02:0b)", "DNSName(glu1.example.org)"]);
        assert!(server && client, "gluster uses a host certificate both ways");

        assert!(matches!(init(&pki, None), Err(PkiError::CaExists(_))));
        assert!(matches!(issue(&pki, None, COORDINATOR_IDENTITY, &[], DAY), Err(PkiError::ReservedName)));
        assert!(matches!(issue(&pki, None, "a;b", &[], DAY), Err(PkiError::Name(_))));
        let err = issue(&pki, None, "x", &["not an address".into()], DAY).unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
        let err = issue(&dir.path().join("nope"), None, "x", &[], DAY).unwrap_err();
        assert!(err.to_string().contains("pki init"), "{err}");
    }
}
