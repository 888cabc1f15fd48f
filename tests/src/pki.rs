//! A throw-away pool PKI for tests (in a temp dir): the real `brickyard::pki` CA, coordinator
//! and agent certificates, agent config files, and deliberately wrong client certificates
//! (another CA, expired, wrong name, wrong role). Also a raw mTLS client to present any of them.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use brickyard::pki::{IssuedCert, Layout, COORDINATOR_IDENTITY};
use brickyard_proto::v1::agent_client::AgentClient;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
use time::{Duration, OffsetDateTime};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A pool PKI in a temp dir with agents issued for 127.0.0.1.
pub struct TestPki {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    configs: std::sync::atomic::AtomicUsize,
}

impl TestPki {
    pub fn new() -> anyhow::Result<TestPki> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("pki");
        brickyard::pki::init(&dir, None)?;
        Ok(TestPki { _tmp: tmp, dir, configs: Default::default() })
    }

    pub fn layout(&self) -> Layout {
        Layout::new(&self.dir)
    }

    /// Issues agent `name` for 127.0.0.1.
    pub fn agent(&self, name: &str) -> anyhow::Result<IssuedCert> {
        Ok(brickyard::pki::issue(
            &self.dir,
            None,
            name,
            &["127.0.0.1".to_owned()],
            brickyard::pki::DEFAULT_HOST_VALIDITY,
        )?)
    }

    /// Writes an agent config for `name` (listening on `listen`, direct service manager) plus
    /// `extra` TOML lines to a new file (`DIR/agent-N.toml`); returns its path.
    pub fn agent_config(&self, name: &str, listen: &str, extra: &str) -> anyhow::Result<PathBuf> {
        let issued = self.agent(name)?;
        let n = self.configs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(format!("agent-{n}.toml"));
        let text = format!(
            "listen = {listen:?}\nca = {:?}\ncert = {:?}\nkey = {:?}\nservice_manager = \"direct\"\n{extra}",
            self.layout().ca_cert,
            issued.cert,
            issued.key,
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// A client certificate signed by this pool's CA with DNS name `name`, EKU clientAuth,
    /// valid until `not_after`; written as `DIR/extra-FILE.pem/.key`.
    pub fn client_cert(&self, file: &str, name: &str, not_after: OffsetDateTime) -> anyhow::Result<IssuedCert> {
        self.signed_cert(file, name, ExtendedKeyUsagePurpose::ClientAuth, not_after)
    }

    /// Like `client_cert`, for serving (EKU serverAuth, SANs `name` and 127.0.0.1): an agent
    /// certificate with the validity the test chooses.
    pub fn server_cert(&self, file: &str, name: &str, not_after: OffsetDateTime) -> anyhow::Result<IssuedCert> {
        self.signed_cert(file, name, ExtendedKeyUsagePurpose::ServerAuth, not_after)
    }

    fn signed_cert(
        &self,
        file: &str,
        name: &str,
        eku: ExtendedKeyUsagePurpose,
        not_after: OffsetDateTime,
    ) -> anyhow::Result<IssuedCert> {
        let issuer = brickyard::pki::load_issuer(&self.dir, None)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
        if eku == ExtendedKeyUsagePurpose::ServerAuth {
            params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        params.extended_key_usages = vec![eku];
        params.not_before = not_after - Duration::days(30);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &issuer)?;
        let out = IssuedCert {
            cert: self.dir.join(format!("extra-{file}.pem")),
            key: self.dir.join(format!("extra-{file}.key")),
        };
        std::fs::write(&out.cert, cert.pem())?;
        std::fs::write(&out.key, key.serialize_pem())?;
        std::fs::set_permissions(&out.key, std::fs::Permissions::from_mode(0o600))?;
        Ok(out)
    }

    /// A coordinator certificate that expired yesterday.
    pub fn expired_coordinator(&self) -> anyhow::Result<IssuedCert> {
        self.client_cert("expired", COORDINATOR_IDENTITY, OffsetDateTime::now_utc() - Duration::days(1))
    }

    /// Completes a TLS handshake with the agent at `addr` (serving `server_name`) as `client`
    /// (or without a certificate) and returns why the agent then ends the connection: the
    /// alert it sends (rustls on the agent decides on the client certificate after the
    /// client's last handshake flight). A gRPC client only sees the connection end.
    pub fn tls_refusal(&self, addr: SocketAddr, server_name: &str, client: Option<&IssuedCert>) -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use std::io::{Read, Write};

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.layout().ca_cert).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(c) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(&c.cert).unwrap().map(Result::unwrap).collect(),
                    PrivateKeyDer::from_pem_file(&c.key).unwrap(),
                )
                .unwrap(),
        };
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 64];
        match tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").and_then(|()| tls.read(&mut buf)) {
            Ok(n) => panic!("the agent accepted the TLS client and answered {n} bytes"),
            Err(e) => e.to_string(),
        }
    }

    /// The coordinator certificate of this pool.
    pub fn coordinator(&self) -> IssuedCert {
        let layout = self.layout();
        IssuedCert { cert: layout.coordinator_cert, key: layout.coordinator_key }
    }
}

/// Connects to `addr` trusting `ca`, expecting the server to be `server_name`, presenting
/// `client` (or no certificate). Errors may surface here or only at the first RPC (TLS 1.3
/// reports a refused client certificate after the handshake).
pub async fn raw_connect(
    ca: &Path,
    client: Option<&IssuedCert>,
    server_name: &str,
    addr: SocketAddr,
) -> anyhow::Result<AgentClient<Channel>> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca)?))
        .domain_name(server_name.to_owned());
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(std::fs::read(&client.cert)?, std::fs::read(&client.key)?));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(AgentClient::new(channel))
}
