//! Host identities through the agents: `brickyard enroll` (a host that serves its
//! provisional certificate proves its join token on the TLS channel and gets its CSR signed),
//! `brickyard pki rotate` (an enrolled host makes a new key; authorised by its current valid
//! certificate) and `brickyard pki push-crl` (the pool CRL to the agents). Enrolment is never
//! implicit: `facts`, `plan` and `apply` only say that a host is not enrolled, so reading the
//! pool never spends a token or signs a certificate. Hosts are handled concurrently; each line
//! of output names its host. On a TLS pool, `rotate` also re-signs the CRL (so it never runs
//! out before the certificates do) and installs it, and both `rotate` and `push-crl` then bring
//! gluster along ([`crate::gluster_roll`]): its TLS files refreshed on every host, its
//! processes restarted one server at a time. Reads and writes the pki directory (token
//! state, `hosts/NAME.pem`, `crl.pem`).

use std::path::PathBuf;
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::agent_client::AgentClient;
use tonic::transport::Channel;

use crate::agents::{AgentError, RPC_TIMEOUT};
use crate::client::{self, PeerCert, ServerCheck};
use crate::gluster_roll;
use crate::pki::{self, revoke, token};
use crate::spec::{HostTarget, Spec};

/// What to do on each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Enroll,
    Rotate,
    PushCrl,
}

/// How certificates are signed.
#[derive(Debug, Clone)]
pub struct Signing {
    /// The CA key when kept outside the pki directory.
    pub ca_key: Option<PathBuf>,
    pub validity: time::Duration,
}

struct Run {
    pki_dir: PathBuf,
    signing: Signing,
}

/// What `rotate` and `push-crl` do with gluster on a TLS pool besides refreshing its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlusterRestart {
    /// Restart each server's gluster processes, one server at a time.
    Rolling,
    /// Leave them: new connections use the new files, established ones keep their sessions.
    None,
}

/// Runs `operation` on `host` (or every host of the spec); prints one line per host.
/// Exit code 0 when every host succeeded, 1 otherwise.
pub async fn run(
    spec: &Spec,
    host: Option<&str>,
    operation: Operation,
    signing: Signing,
    restart: GlusterRestart,
) -> anyhow::Result<u8> {
    let hosts = spec.hosts();
    let targets: Vec<HostTarget> = match host {
        None => hosts,
        Some(name) => match hosts.into_iter().find(|h| h.name == name) {
            Some(target) => vec![target],
            None => anyhow::bail!("host {name} is not in {}", spec.path.display()),
        },
    };
    // gluster refuses every connection once its CRL is past its next update: whatever signs
    // certificates re-signs the CRL to last at least as long (enrolment says "CRL installed").
    let resigned = match operation {
        Operation::Enroll | Operation::Rotate if spec.pool.tls => {
            let revoked = revoke::resign(&spec.pki_dir(), signing.ca_key.as_deref(), signing.validity)?;
            let said = format!("CRL re-signed ({revoked} revoked), valid at least as long as the new certificates");
            (operation == Operation::Rotate).then_some(said)
        }
        _ => None,
    };
    let run = Arc::new(Run { pki_dir: spec.pki_dir(), signing });
    let mut targets = targets;
    if operation != Operation::Enroll {
        let mut reachable = Vec::new();
        for target in targets {
            if revoke::is_revoked(&run.pki_dir, &target.name)? {
                println!(
                    "{}: its current certificate is revoked: not contacted (the coordinator refuses it)",
                    target.name
                );
            } else {
                reachable.push(target);
            }
        }
        targets = reachable;
    }
    let by_name: std::collections::BTreeMap<String, HostTarget> =
        targets.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let by_name = Arc::new(by_name);
    let answers = crate::agents::each(targets.iter().map(|t| t.name.as_str()), |name| {
        let (run, by_name) = (run.clone(), by_name.clone());
        async move {
            let target = &by_name[&name];
            match operation {
                Operation::Enroll => enroll(&run, target).await,
                Operation::Rotate => rotate(&run, target).await,
                Operation::PushCrl => push_crl(&run, target).await,
            }
        }
    })
    .await;
    let mut failed = 0;
    let mut done_on = Vec::new();
    for (name, answer) in answers {
        match answer {
            Ok(done) => {
                println!("{name}: {done}");
                done_on.push(by_name[&name].clone());
            }
            Err(err) => {
                failed += 1;
                eprintln!("{name}: {err}");
            }
        }
    }
    if let Some(resigned) = resigned {
        println!("{resigned}");
    }
    if operation != Operation::Enroll && spec.pool.tls && !done_on.is_empty() {
        let roll = gluster_roll::Roll {
            restart: restart == GlusterRestart::Rolling,
            revoked: revoked_addresses(spec, &run.pki_dir)?,
        };
        failed += gluster_roll::run(spec, &done_on, &roll).await;
    }
    Ok(u8::from(failed > 0))
}

/// The spec addresses of hosts whose current certificate is revoked.
fn revoked_addresses(spec: &Spec, pki_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut addresses = Vec::new();
    for host in spec.hosts() {
        if revoke::is_revoked(pki_dir, &host.name)? {
            addresses.push(host.address);
        }
    }
    Ok(addresses)
}

/// A unary RPC with the read-only deadline; errors name the host and the RPC.
async fn call<T>(
    host: &str,
    rpc: &'static str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(AgentError::rpc(host, rpc, status).to_string()),
        Err(_) => Err(AgentError::Timeout { host: host.to_owned(), rpc }.to_string()),
    }
}

async fn connect(
    run: &Run,
    target: &HostTarget,
    check: ServerCheck,
) -> Result<(AgentClient<Channel>, PeerCert), String> {
    client::connect_with(&run.pki_dir, target, check).await.map_err(|e| client::error_chain(&e))
}

/// The certificate the agent presented (recorded by the handshake).
fn presented(peer: &PeerCert) -> Result<rustls::pki_types::CertificateDer<'static>, String> {
    peer.lock().expect("peer certificate lock").clone().ok_or_else(|| "the agent presented no certificate".to_owned())
}

/// (serial in hex, DER SubjectPublicKeyInfo) of a certificate.
fn serial_and_spki(cert: &[u8]) -> Result<(String, Vec<u8>), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).map_err(|e| format!("unparseable certificate: {e}"))?;
    Ok((revoke::hex(cert.raw_serial()), cert.public_key().raw.to_vec()))
}

fn sign(run: &Run, target: &HostTarget, csr_pem: &str, expected_spki: Option<&[u8]>) -> Result<String, String> {
    let addresses = [target.address.clone()];
    let ca_key = run.signing.ca_key.as_deref();
    pki::sign_host_csr(&run.pki_dir, ca_key, &target.name, &addresses, csr_pem, expected_spki, run.signing.validity)
        .map_err(|e| e.to_string())
}

/// A new connection checked against the pool: facts answer and the certificate is `serial`.
async fn check_serves(run: &Run, target: &HostTarget, serial: &str) -> Result<(), String> {
    let (mut fresh, peer) = connect(run, target, ServerCheck::Pool).await?;
    call(&target.name, "GetFacts", fresh.get_facts(v1::GetFactsRequest::default())).await?;
    let (served, _) = serial_and_spki(&presented(&peer)?)?;
    if served != serial {
        return Err(format!("installed serial {serial}, but a new connection is served serial {served}"));
    }
    Ok(())
}

async fn enroll(run: &Run, target: &HostTarget) -> Result<String, String> {
    let (mut agent, peer) = connect(run, target, ServerCheck::Enrolling).await?;
    let cert = presented(&peer)?;
    if !client::is_provisional(&cert) {
        return match connect(run, target, ServerCheck::Pool).await {
            Ok(_) => Ok("already enrolled (its certificate chains to the pool CA); nothing to do".into()),
            Err(err) => Err(format!("serves a certificate that is not provisional, and it is refused: {err}")),
        };
    }
    let csr = call(&target.name, "IdentityCsr", agent.identity_csr(v1::IdentityCsrRequest { rotate: false })).await?;
    let (_, spki) = serial_and_spki(&cert)?;
    match token::redeem(&run.pki_dir, &target.name, &csr.join_token, &csr.token_binding, &spki) {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return Err(format!("enrolment refused: {refusal}")),
        Err(err) => return Err(err.to_string()),
    }
    let signed = sign(run, target, &csr.csr_pem, Some(&spki))?;
    let install = v1::IdentityInstallRequest { cert_pem: signed };
    let serial = call(&target.name, "IdentityInstall", agent.identity_install(install)).await?.serial;
    let crl = push_crl_on(run, target, &mut agent).await?;
    check_serves(run, target, &serial).await?;
    Ok(format!("enrolled: serial {serial}, valid {} days{crl}", run.signing.validity.whole_days()))
}

async fn rotate(run: &Run, target: &HostTarget) -> Result<String, String> {
    let (mut agent, peer) = connect(run, target, ServerCheck::Pool).await?;
    let old_cert = presented(&peer)?;
    let (old, _) = serial_and_spki(&old_cert)?;
    let old_until = not_after(&old_cert)?;
    let csr = call(&target.name, "IdentityCsr", agent.identity_csr(v1::IdentityCsrRequest { rotate: true })).await?;
    let signed = sign(run, target, &csr.csr_pem, None)?;
    let install = v1::IdentityInstallRequest { cert_pem: signed };
    let serial = call(&target.name, "IdentityInstall", agent.identity_install(install)).await?.serial;
    // The connection made before the rotation keeps working; a new one gets the new certificate.
    call(&target.name, "GetFacts", agent.get_facts(v1::GetFactsRequest::default())).await?;
    let crl = push_crl_on(run, target, &mut agent).await?;
    check_serves(run, target, &serial).await?;
    Ok(format!(
        "rotated: serial {old} -> {serial}, valid {} days (the old one until {old_until}){crl}",
        run.signing.validity.whole_days()
    ))
}

/// When a certificate expires, as a UTC date and time.
fn not_after(cert: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).map_err(|e| format!("unparseable certificate: {e}"))?;
    let until = cert.validity().not_after.to_datetime();
    Ok(format!("{} {:02}:{:02} UTC", until.date(), until.hour(), until.minute()))
}

async fn push_crl(run: &Run, target: &HostTarget) -> Result<String, String> {
    let (mut agent, _) = connect(run, target, ServerCheck::Pool).await?;
    let crl_path = revoke::crl_path(&run.pki_dir);
    if !crl_path.exists() {
        return Err(format!("no CRL at {} (nothing revoked yet: `brickyard pki revoke`)", crl_path.display()));
    }
    Ok(push_crl_on(run, target, &mut agent).await?.trim_start_matches("; ").to_owned())
}

/// Installs the pool CRL on `agent` when there is one; says so (`; CRL installed ...`).
async fn push_crl_on(run: &Run, target: &HostTarget, agent: &mut AgentClient<Channel>) -> Result<String, String> {
    let crl_path = revoke::crl_path(&run.pki_dir);
    let crl_pem = match std::fs::read_to_string(&crl_path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("{}: {e}", crl_path.display())),
    };
    let revoked = call(&target.name, "IdentityCrl", agent.identity_crl(v1::IdentityCrlRequest { crl_pem })).await?;
    Ok(format!("; CRL installed ({} revoked)", revoked.revoked))
}
