//! Revocation: `brickyard pki revoke NAME` records the serial of NAME's current certificate
//! (an agent's, or the coordinator's under its identity) in `DIR/revoked.toml` and re-signs
//! `DIR/crl.pem` from every recorded serial. `pki init` writes an empty CRL and `pki rotate`
//! re-signs it ([`resign`]): gluster (OpenSSL) refuses every connection once a CRL in its
//! `ssl.crl-path` has passed its next update, so the CRL is kept at least as fresh as the
//! host certificates. `brickyard pki push-crl` installs it on the agents and for gluster.

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{cert_err, io_err, load_issuer, write_file, Layout, PkiError, COORDINATOR_IDENTITY};

/// How long a CRL is valid at least: revoke, or rotate (which re-signs it), before then.
const CRL_VALIDITY: Duration = Duration::days(30);

/// What `DIR/revoked.toml` holds: one entry per revoked certificate.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Revoked {
    #[serde(default)]
    certificate: Vec<RevokedEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RevokedEntry {
    name: String,
    /// Hex, as `openssl x509 -serial` prints it.
    serial: String,
    revoked_unix: i64,
}

/// The CRL's path in `dir`.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("crl.pem")
}

fn invalid(path: &Path, message: String) -> PkiError {
    PkiError::Invalid { path: path.to_path_buf(), message }
}

/// The serial (big-endian bytes) of the certificate in `pem_path`.
pub fn serial_of(pem_path: &Path) -> Result<Vec<u8>, PkiError> {
    let pem = std::fs::read(pem_path).map_err(io_err(pem_path))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| invalid(pem_path, format!("not PEM: {e}")))?;
    let cert = pem.parse_x509().map_err(|e| invalid(pem_path, format!("not a certificate: {e}")))?;
    Ok(cert.raw_serial().to_vec())
}

/// A serial in hex, as `openssl x509 -serial` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.len()
        .is_multiple_of(2)
        .then(|| (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect())
        .flatten()
}

/// Revokes `name`'s current certificate and rewrites the CRL; returns the revoked serial (hex).
pub fn revoke(dir: &Path, ca_key: Option<&Path>, name: &str) -> Result<String, PkiError> {
    let layout = Layout::new(dir);
    let cert = if name == COORDINATOR_IDENTITY { layout.coordinator_cert.clone() } else { layout.host(name).cert };
    let serial = hex(&serial_of(&cert)?);
    let mut revoked = read_revoked(dir)?;
    if !revoked.certificate.iter().any(|c| c.serial == serial) {
        revoked.certificate.push(RevokedEntry {
            name: name.to_owned(),
            serial: serial.clone(),
            revoked_unix: OffsetDateTime::now_utc().unix_timestamp(),
        });
    }
    sign_crl(dir, ca_key, &revoked, CRL_VALIDITY)?;
    let text = toml::to_string(&revoked).expect("the revocation list serializes");
    write_file(&dir.join(REVOKED), text.as_bytes(), 0o644, false)?;
    Ok(serial)
}

/// Re-signs the CRL from the recorded serials (none yet: an empty CRL), valid for `validity`
/// but at least [`CRL_VALIDITY`]; returns how many serials it lists.
pub fn resign(dir: &Path, ca_key: Option<&Path>, validity: Duration) -> Result<usize, PkiError> {
    let revoked = read_revoked(dir)?;
    sign_crl(dir, ca_key, &revoked, validity.max(CRL_VALIDITY))?;
    Ok(revoked.certificate.len())
}

/// Whether host `name`'s current certificate (`DIR/hosts/NAME.pem`) is revoked.
pub fn is_revoked(dir: &Path, name: &str) -> Result<bool, PkiError> {
    let cert = Layout::new(dir).host(name).cert;
    if !cert.exists() {
        return Ok(false);
    }
    let serial = hex(&serial_of(&cert)?);
    Ok(read_revoked(dir)?.certificate.iter().any(|c| c.serial == serial))
}

/// The revocation record, where the serials live.
const REVOKED: &str = "revoked.toml";

fn read_revoked(dir: &Path) -> Result<Revoked, PkiError> {
    let list_path = dir.join(REVOKED);
    match std::fs::read_to_string(&list_path) {
        Ok(text) => toml::from_str(&text).map_err(|e| invalid(&list_path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revoked::default()),
        Err(e) => Err(io_err(&list_path)(e)),
    }
}

/// Writes `DIR/crl.pem` listing every serial of `revoked`, valid for `validity` from now.
fn sign_crl(dir: &Path, ca_key: Option<&Path>, revoked: &Revoked, validity: Duration) -> Result<(), PkiError> {
    let list_path = dir.join(REVOKED);
    let now = OffsetDateTime::now_utc();
    let mut revoked_certs = Vec::new();
    for entry in &revoked.certificate {
        let bytes = unhex(&entry.serial)
            .ok_or_else(|| invalid(&list_path, format!("serial {:?} of {} is not hex", entry.serial, entry.name)))?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: OffsetDateTime::from_unix_timestamp(entry.revoked_unix).unwrap_or(now),
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let issuer = load_issuer(dir, ca_key)?;
    let crl = CertificateRevocationListParams {
        this_update: now,
        next_update: now + validity,
        crl_number: SerialNumber::from(now.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .map_err(cert_err("signing the CRL"))?;
    write_file(&crl_path(dir), crl.pem().map_err(cert_err("encoding the CRL"))?.as_bytes(), 0o644, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_serials_accumulate_in_the_crl() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        super::super::init(&dir, None).unwrap();
        super::super::issue(&dir, None, "glu1", &[], Duration::days(1)).unwrap();
        assert!(!is_revoked(&dir, "glu1").unwrap());
        let host = revoke(&dir, None, "glu1").unwrap();
        assert!(is_revoked(&dir, "glu1").unwrap());
        let coordinator = revoke(&dir, None, COORDINATOR_IDENTITY).unwrap();
        assert_eq!(revoke(&dir, None, COORDINATOR_IDENTITY).unwrap(), coordinator, "revoking twice is one entry");
        let pem = std::fs::read(crl_path(&dir)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).unwrap();
        let serials: Vec<String> = crl.iter_revoked_certificates().map(|c| hex(c.raw_serial())).collect();
        assert_eq!(serials, [host, coordinator]);
        let err = revoke(&dir, None, "nobody").unwrap_err();
        assert!(err.to_string().contains("nobody.pem"), "{err}");
        // Re-signing keeps the serials and moves the next update out.
        assert_eq!(resign(&dir, None, Duration::days(90)).unwrap(), 2);
        let pem = std::fs::read(crl_path(&dir)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 2);
        let next = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
        assert_eq!(next, Duration::days(90).whole_seconds());
    }
}
