//! `GlusterTls`: GlusterFS TLS on this host from the agent's own key material. The agent's
//! certificate, key and pool CA (the paths its config names, `Context::key_material`) are
//! copied to where gluster reads them, `/etc/ssl/glusterfs.pem`, `glusterfs.key` (mode 0600)
//! and `glusterfs.ca`, atomically; no key ever crosses the wire. Debian's and Ubuntu's
//! gluster is built to read them from OpenSSL's directory instead, `/usr/lib/ssl` (its
//! socket.so names `/usr/lib/ssl/glusterfs.pem`), where Debian links OpenSSL's own files to
//! /etc/ssl too: there each is a symlink to its /etc/ssl file. `/var/lib/glusterd/
//! secure-access` turns on TLS for management traffic (glusterd, and the volfile fetch of
//! clients) and holds `option transport.socket.ssl-cert-depth N`. glusterd reads that file
//! only when it starts: a glusterd already running without it is restarted (stop, start,
//! wait for its CLI) when it is fresh (no peers, no volumes: e.g. started by its package) or
//! the task allows restarts, and refused otherwise, since its peers, volumes and clients then
//! need TLS too. With the pool CRL in the task, it is installed as the one file of
//! [`GLUSTER_CRL_DIR`] (a TLS volume's `ssl.crl-path`), named `HASH.r0` by the subject hash of
//! its issuer, which must be the pool CA: OpenSSL finds it there when a brick checks a
//! connecting certificate (gluster builds a new SSL context for each accepted connection, so
//! a new CRL applies to the next connection). Reads the key material and /etc/os-release;
//! writes /etc/ssl, /usr/lib/ssl (Debian family) and /var/lib/glusterd; may restart glusterd.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use brickyard_proto::v1;

use brickyard_proto::agent_config::GLUSTER_CRL_DIR;

use super::glusterd;
use super::shape::{Plan, Task, TaskError};
use crate::gluster;
use crate::host::os_release::{self, Family};
use crate::host::subject_hash::subject_hash;
use crate::host::{etcfile, Context};

/// The management TLS switch glusterd and the clients look for.
const SECURE_ACCESS: &str = "/var/lib/glusterd/secure-access";
/// Where gluster reads its certificate, key and CA (`glusterfs.pem`, `.key`, `.ca`).
const SSL_DIR: &str = "/etc/ssl";
/// Where Debian's gluster reads them (OpenSSL's directory there).
const DEBIAN_SSL_DIR: &str = "/usr/lib/ssl";
const OS_RELEASE: &str = "/etc/os-release";
/// gluster's names for its certificate, key and CA.
const FILES: [&str; 3] = ["glusterfs.pem", "glusterfs.key", "glusterfs.ca"];
/// Host certificates are signed by the pool CA itself.
const DEFAULT_DEPTH: u32 = 1;
/// Anything deeper than a CA with a few intermediates is a mistake.
const MAX_DEPTH: u32 = 9;

pub struct GlusterTls {
    depth: u32,
    allow_restart: bool,
    refresh_only: bool,
    crl: Option<Crl>,
    crl_dir: PathBuf,
    ssl_dir: PathBuf,
    debian_ssl_dir: PathBuf,
    os_release: PathBuf,
    secure_access: PathBuf,
    pid_file: PathBuf,
}

impl GlusterTls {
    pub fn from_proto(task: &v1::GlusterTls) -> Result<Self, TaskError> {
        let depth = match task.certificate_depth {
            0 => DEFAULT_DEPTH,
            d if d <= MAX_DEPTH => d,
            d => return Err(TaskError::InvalidTask(format!("certificate depth {d} is above {MAX_DEPTH}"))),
        };
        let crl = (!task.crl_pem.is_empty()).then(|| Crl::parse(&task.crl_pem)).transpose()?;
        Ok(Self {
            depth,
            allow_restart: task.allow_restart,
            refresh_only: task.refresh_only,
            crl,
            crl_dir: PathBuf::from(GLUSTER_CRL_DIR),
            ssl_dir: PathBuf::from(SSL_DIR),
            debian_ssl_dir: PathBuf::from(DEBIAN_SSL_DIR),
            os_release: PathBuf::from(OS_RELEASE),
            secure_access: PathBuf::from(SECURE_ACCESS),
            pid_file: PathBuf::from(glusterd::PID_FILE),
        })
    }

    /// The directory this host's gluster reads instead of /etc/ssl, if any.
    fn links_dir(&self) -> Option<&Path> {
        let os = os_release::parse(&std::fs::read_to_string(&self.os_release).unwrap_or_default());
        (os.family() == Ok(Family::Debian)).then_some(self.debian_ssl_dir.as_path())
    }

    fn secure_access_contents(&self) -> String {
        format!("option transport.socket.ssl-cert-depth {}\n", self.depth)
    }

    /// The CRL's installation, when the task brings one that is not installed yet: checked
    /// against the pool CA of this host (its issuer must be the CA's subject).
    fn crl_change(&self, ca_pem_path: &Path) -> Result<Option<TlsChange>, TaskError> {
        let Some(crl) = &self.crl else { return Ok(None) };
        let ca_pem = std::fs::read(ca_pem_path)
            .map_err(TaskError::io(format!("reading the pool CA {}", ca_pem_path.display())))?;
        let ca_hash = x509_parser::pem::parse_x509_pem(&ca_pem)
            .ok()
            .and_then(|(_, pem)| pem.parse_x509().ok().map(|ca| subject_hash(ca.subject())))
            .ok_or_else(|| TaskError::Failed(format!("{} is not a PEM certificate", ca_pem_path.display())))?
            .map_err(TaskError::Failed)?;
        if ca_hash != crl.issuer_hash {
            return Err(TaskError::InvalidTask(format!(
                "the CRL is not the pool CA's (its issuer's hash is {}, the CA's in {} is {ca_hash})",
                crl.issuer_hash,
                ca_pem_path.display()
            )));
        }
        let path = self.crl_dir.join(format!("{}.r0", crl.issuer_hash));
        let others = match std::fs::read_dir(&self.crl_dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| *p != path).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(TaskError::io(format!("reading {}", self.crl_dir.display()))(e)),
        };
        if holds(&path, &crl.pem, 0o644)? && others.is_empty() {
            return Ok(None);
        }
        Ok(Some(TlsChange::Crl { path, contents: crl.pem.clone(), revoked: crl.revoked, others }))
    }
}

/// The pool CRL of a task, checked before anything runs.
struct Crl {
    pem: Vec<u8>,
    issuer_hash: String,
    revoked: usize,
}

impl Crl {
    fn parse(pem: &str) -> Result<Crl, TaskError> {
        let bad = |e: String| TaskError::InvalidTask(format!("the CRL is not a PEM X.509 CRL: {e}"));
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if block.label != "X509 CRL" {
            return Err(bad(format!("a PEM block labelled {:?}", block.label)));
        }
        let (_, crl) = x509_parser::parse_x509_crl(&block.contents).map_err(|e| bad(e.to_string()))?;
        Ok(Crl {
            pem: pem.as_bytes().to_vec(),
            issuer_hash: subject_hash(crl.issuer()).map_err(bad)?,
            revoked: crl.iter_revoked_certificates().count(),
        })
    }
}

/// One step of turning GlusterFS TLS on here, in order.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsChange {
    /// A copy of one of the agent's own files, with exactly `mode`.
    Install {
        path: PathBuf,
        from: PathBuf,
        mode: u32,
        contents: Vec<u8>,
    },
    /// `link` made a symlink to `target` (where this host's gluster looks instead).
    Link {
        link: PathBuf,
        target: PathBuf,
    },
    SecureAccess {
        path: PathBuf,
        contents: String,
    },
    /// The pool CRL as `path`, the one file of its directory (`others` are removed).
    Crl {
        path: PathBuf,
        contents: Vec<u8>,
        revoked: usize,
        others: Vec<PathBuf>,
    },
    RestartGlusterd,
}

impl fmt::Debug for TlsChange {
    /// Without the contents: one of them is a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TlsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsChange::Install { path, from, mode, .. } => {
                write!(f, "install {} from {} (mode {mode:04o})", path.display(), from.display())
            }
            TlsChange::Link { link, target } => {
                write!(
                    f,
                    "link {} to {} (this distribution's gluster reads it there)",
                    link.display(),
                    target.display()
                )
            }
            TlsChange::SecureAccess { path, contents } => {
                write!(f, "write {} (management TLS: {})", path.display(), contents.trim_end())
            }
            TlsChange::Crl { path, revoked, others, .. } => {
                write!(f, "install the pool CRL ({revoked} revoked) as {} (ssl.crl-path)", path.display())?;
                if !others.is_empty() {
                    let names: Vec<String> = others.iter().map(|p| p.display().to_string()).collect();
                    write!(f, ", removing {}", names.join(", "))?;
                }
                Ok(())
            }
            TlsChange::RestartGlusterd => {
                f.write_str("restart glusterd so that management TLS takes effect (its peers reconnect with TLS)")
            }
        }
    }
}

/// When the TLS files gluster reads last changed: the newest modification time of
/// `/etc/ssl/glusterfs.{pem,key,ca}`, of the CRL directory and its files (`None`: none exists).
/// A gluster process started before then serves what was there before on the connections it
/// made before.
pub(super) fn tls_files_changed() -> Result<Option<std::time::SystemTime>, TaskError> {
    let crl_dir = Path::new(GLUSTER_CRL_DIR);
    let mut paths: Vec<PathBuf> = FILES.iter().map(|name| Path::new(SSL_DIR).join(name)).collect();
    paths.push(crl_dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(crl_dir) {
        paths.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
    }
    let mut newest = None;
    for path in paths {
        match std::fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(modified) => newest = newest.max(Some(modified)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TaskError::io(format!("reading {}", path.display()))(e)),
        }
    }
    Ok(newest)
}

/// Whether `path` holds exactly `contents` with exactly `mode`.
fn holds(path: &Path, contents: &[u8], mode: u32) -> Result<bool, TaskError> {
    match std::fs::read(path) {
        Ok(current) => {
            let meta = std::fs::metadata(path).map_err(TaskError::io(format!("reading {}", path.display())))?;
            Ok(current == contents && meta.permissions().mode() & 0o7777 == mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TaskError::io(format!("reading {}", path.display()))(e)),
    }
}

#[async_trait]
impl Task for GlusterTls {
    type Change = TlsChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<TlsChange>, TaskError> {
        let own = &ctx.key_material;
        let mut changes = Vec::new();
        let [pem, key, ca] = FILES;
        if self.refresh_only && !self.ssl_dir.join(pem).exists() {
            return Ok(Plan::unchanged());
        }
        for (from, name, mode) in [(&own.cert, pem, 0o644), (&own.key, key, 0o600), (&own.ca, ca, 0o644)] {
            let contents = std::fs::read(from)
                .map_err(TaskError::io(format!("reading the agent's own {} (for gluster's {name})", from.display())))?;
            let path = self.ssl_dir.join(name);
            if !holds(&path, &contents, mode)? {
                changes.push(TlsChange::Install { path, from: from.clone(), mode, contents });
            }
        }
        changes.extend(self.crl_change(&own.ca)?);
        if self.refresh_only {
            return Ok(Plan::of(changes));
        }
        if let Some(dir) = self.links_dir() {
            for name in FILES {
                let (link, target) = (dir.join(name), self.ssl_dir.join(name));
                if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
                    changes.push(TlsChange::Link { link, target });
                }
            }
        }
        let secure_access = self.secure_access_contents();
        if !holds(&self.secure_access, secure_access.as_bytes(), 0o644)? {
            changes.push(TlsChange::SecureAccess { path: self.secure_access.clone(), contents: secure_access });
            if glusterd::is_running(ctx, &self.pid_file).await? {
                if !self.allow_restart && !fresh_glusterd(ctx).await? {
                    return Err(TaskError::Unsafe(format!(
                        "glusterd runs without management TLS ({} is absent or differs): turning TLS on restarts \
                         glusterd, and the pool's volumes then need a restart and their clients a remount; the task \
                         does that only when restarts are allowed (`tls_restart = true` under [pool] in the spec)",
                        self.secure_access.display()
                    )));
                }
                changes.push(TlsChange::RestartGlusterd);
            }
        }
        Ok(Plan::of(changes))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<TlsChange>) -> Result<Vec<TlsChange>, TaskError> {
        for change in &plan.changes {
            match change {
                TlsChange::Install { path, mode, contents, .. } => write(path, contents, *mode)?,
                TlsChange::Link { link, target } => etcfile::atomic_symlink(link, target)
                    .map_err(TaskError::io(format!("linking {} to {}", link.display(), target.display())))?,
                TlsChange::SecureAccess { path, contents } => write(path, contents.as_bytes(), 0o644)?,
                TlsChange::Crl { path, contents, others, .. } => {
                    write(path, contents, 0o644)?;
                    for other in others {
                        std::fs::remove_file(other).map_err(TaskError::io(format!("removing {}", other.display())))?;
                    }
                }
                TlsChange::RestartGlusterd => {
                    glusterd::stop(ctx, &self.pid_file).await?;
                    glusterd::start(ctx, &self.pid_file).await?;
                }
            }
        }
        Ok(plan.changes)
    }
}

/// Whether the running glusterd has no peers and no volumes, so nothing depends on it.
async fn fresh_glusterd(ctx: &Context) -> Result<bool, TaskError> {
    Ok(gluster::pool_list(ctx).await?.len() <= 1 && gluster::volume_info(ctx).await?.is_empty())
}

/// Writes `path` atomically with exactly `mode`, creating its directory.
fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), TaskError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(TaskError::io(format!("creating {}", dir.display())))?;
    }
    etcfile::atomic_write_mode(path, contents, mode).map_err(TaskError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::KeyMaterial;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    /// A task writing under `dir`, with the agent's key material there too.
    fn setup(dir: &Path, allow_restart: bool) -> (GlusterTls, Context) {
        setup_with(dir, allow_restart, FakeRunner::default())
    }

    fn setup_with(dir: &Path, allow_restart: bool, runner: FakeRunner) -> (GlusterTls, Context) {
        let own = dir.join("pki");
        std::fs::create_dir_all(&own).unwrap();
        for (name, text) in [("ca.pem", "CA\n"), ("agent.pem", "CERT\n"), ("agent.key", "KEY\n")] {
            std::fs::write(own.join(name), text).unwrap();
        }
        std::fs::set_permissions(own.join("agent.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("os-release"), "ID=rocky\nVERSION_ID=9.4\n").unwrap();
        let task = GlusterTls {
            ssl_dir: dir.join("etc/ssl"),
            debian_ssl_dir: dir.join("usr/lib/ssl"),
            os_release: dir.join("os-release"),
            secure_access: dir.join("var/lib/glusterd/secure-access"),
            pid_file: dir.join("glusterd.pid"),
            crl_dir: dir.join("etc/ssl/glusterfs-crl"),
            ..GlusterTls::from_proto(&v1::GlusterTls { allow_restart, ..Default::default() }).unwrap()
        };
        let mut ctx = Context::direct(runner);
        ctx.key_material =
            KeyMaterial { ca: own.join("ca.pem"), cert: own.join("agent.pem"), key: own.join("agent.key") };
        (task, ctx)
    }

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn installs_the_agents_own_files_and_secure_access_then_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (task, ctx) = setup(dir.path(), false);
        let (before, done) = converges(&task, &ctx).await;
        let ssl = dir.path().join("etc/ssl");
        let own = dir.path().join("pki");
        assert_eq!(
            before.changes,
            [
                format!("install {}/glusterfs.pem from {}/agent.pem (mode 0644)", ssl.display(), own.display()),
                format!("install {}/glusterfs.key from {}/agent.key (mode 0600)", ssl.display(), own.display()),
                format!("install {}/glusterfs.ca from {}/ca.pem (mode 0644)", ssl.display(), own.display()),
                format!(
                    "write {}/var/lib/glusterd/secure-access (management TLS: option transport.socket.ssl-cert-depth 1)",
                    dir.path().display()
                ),
            ]
        );
        assert_eq!(done, before.changes, "glusterd is not running: nothing to restart");
        assert_eq!(std::fs::read_to_string(ssl.join("glusterfs.key")).unwrap(), "KEY\n");
        assert_eq!(mode(&ssl.join("glusterfs.key")), 0o600);
        assert_eq!(std::fs::read_to_string(ssl.join("glusterfs.ca")).unwrap(), "CA\n");
        let secure_access = std::fs::read_to_string(dir.path().join("var/lib/glusterd/secure-access")).unwrap();
        assert_eq!(secure_access, "option transport.socket.ssl-cert-depth 1\n");

        // A rotated certificate is installed again; a key made readable is made private again.
        std::fs::write(own.join("agent.pem"), "CERT 2\n").unwrap();
        std::fs::set_permissions(ssl.join("glusterfs.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let done = task.run(&ctx).await.unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(
            done[0].contains("glusterfs.pem")
                && done[1].contains("glusterfs.key from")
                && done[1].ends_with("(mode 0600)"),
            "{done:?}"
        );
        assert_eq!(mode(&ssl.join("glusterfs.key")), 0o600);
        assert!(task.check(&ctx).await.unwrap().changes.is_empty());
    }

    #[tokio::test]
    async fn debians_gluster_finds_them_through_links_in_openssls_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (task, ctx) = setup(dir.path(), false);
        std::fs::write(dir.path().join("os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let lib = dir.path().join("usr/lib/ssl");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("glusterfs.pem"), "a stale copy\n").unwrap();
        let (before, _) = converges(&task, &ctx).await;
        let ssl = dir.path().join("etc/ssl");
        assert_eq!(
            before.changes[3],
            format!(
                "link {}/glusterfs.pem to {}/glusterfs.pem (this distribution's gluster reads it there)",
                lib.display(),
                ssl.display()
            )
        );
        assert_eq!(before.changes.len(), 7, "{before:?}");
        for name in FILES {
            assert_eq!(std::fs::read_link(lib.join(name)).unwrap(), ssl.join(name));
        }
        assert_eq!(std::fs::read_to_string(lib.join("glusterfs.key")).unwrap(), "KEY\n");
    }

    /// A CA (its PEM) and a CRL it signed revoking `revoked` serials.
    fn ca_and_crl(cn: &str, revoked: u64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        let now = time::OffsetDateTime::now_utc();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: (1..=revoked)
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .unwrap();
        (cert.pem(), crl.pem().unwrap())
    }

    #[tokio::test]
    async fn the_pool_crl_is_the_one_file_of_the_crl_directory_named_by_its_issuers_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, crl) = ca_and_crl("Brickyard pool CA test", 2);
        let (mut task, ctx) = setup(dir.path(), false);
        std::fs::write(&ctx.key_material.ca, &ca).unwrap();
        task.crl = Some(Crl::parse(&crl).unwrap());
        let crl_dir = dir.path().join("etc/ssl/glusterfs-crl");
        std::fs::create_dir_all(&crl_dir).unwrap();
        std::fs::write(crl_dir.join("0badc0de.r0"), "an older CA's CRL").unwrap();
        let (before, _) = converges(&task, &ctx).await;
        let (_, pem) = x509_parser::pem::parse_x509_pem(ca.as_bytes()).unwrap();
        let hash = subject_hash(pem.parse_x509().unwrap().subject()).unwrap();
        let installed = crl_dir.join(format!("{hash}.r0"));
        assert_eq!(
            before.changes[3],
            format!(
                "install the pool CRL (2 revoked) as {} (ssl.crl-path), removing {}",
                installed.display(),
                crl_dir.join("0badc0de.r0").display()
            )
        );
        assert_eq!(std::fs::read_to_string(&installed).unwrap(), crl);
        assert_eq!(std::fs::read_dir(&crl_dir).unwrap().count(), 1);

        // Another CA's CRL is refused before anything is written.
        let (_, foreign) = ca_and_crl("another CA", 1);
        task.crl = Some(Crl::parse(&foreign).unwrap());
        let err = task.check(&ctx).await.expect_err("another CA's CRL accepted");
        assert!(matches!(err, TaskError::InvalidTask(_)) && err.to_string().contains("not the pool CA's"), "{err}");
        assert_eq!(std::fs::read_to_string(&installed).unwrap(), crl);
        let err = GlusterTls::from_proto(&v1::GlusterTls { crl_pem: ca, ..Default::default() }).err().unwrap();
        assert!(err.to_string().contains("labelled \"CERTIFICATE\""), "{err}");
    }

    #[tokio::test]
    async fn a_refresh_touches_only_hosts_set_up_for_tls_and_only_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut task, ctx) = setup(dir.path(), false);
        task.refresh_only = true;
        assert!(task.check(&ctx).await.unwrap().changes.is_empty(), "no /etc/ssl/glusterfs.pem: not a TLS host");
        let ssl = dir.path().join("etc/ssl");
        std::fs::create_dir_all(&ssl).unwrap();
        std::fs::write(ssl.join("glusterfs.pem"), "OLD CERT\n").unwrap();
        let done = task.run(&ctx).await.unwrap();
        assert_eq!(done.len(), 3, "the three files, no secure-access: {done:?}");
        assert!(!dir.path().join("var/lib/glusterd/secure-access").exists());
        assert_eq!(std::fs::read_to_string(ssl.join("glusterfs.pem")).unwrap(), "CERT\n");
    }

    #[test]
    fn the_depth_is_bounded() {
        let err = GlusterTls::from_proto(&v1::GlusterTls { certificate_depth: 10, ..Default::default() }).err();
        assert_eq!(err.expect("depth 10 accepted").to_string(), "certificate depth 10 is above 9");
    }

    /// A glusterd that runs without secure-access: a pid file naming a live `glusterd`.
    fn running_glusterd(dir: &Path) -> std::process::Child {
        let glusterd = dir.join("glusterd");
        std::os::unix::fs::symlink("/bin/sleep", &glusterd).unwrap();
        let child = std::process::Command::new(&glusterd).arg("30").spawn().unwrap();
        std::fs::write(dir.join("glusterd.pid"), format!("{}\n", child.id())).unwrap();
        child
    }

    #[tokio::test]
    async fn a_running_glusterd_without_secure_access_is_refused_unless_restarts_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let mut glusterd = running_glusterd(dir.path());
        let in_a_pool = FakeRunner::default().expect(&format!("{G} pool list"), &fixture("pool-list.xml"));
        let (task, ctx) = setup_with(dir.path(), false, in_a_pool);
        let err = task.check(&ctx).await.expect_err("planned a glusterd restart without permission");
        assert!(matches!(err, TaskError::Unsafe(_)), "{err:?}");
        assert!(
            err.to_string().contains("glusterd runs without management TLS")
                && err.to_string().contains("`tls_restart = true` under [pool]"),
            "{err}"
        );
        let restart = "restart glusterd so that management TLS takes effect (its peers reconnect with TLS)";
        let (task, ctx) = setup(dir.path(), true);
        assert_eq!(task.check(&ctx).await.unwrap().changes.last().unwrap(), restart);
        // A fresh glusterd (e.g. started by its package): nothing depends on it yet.
        let fresh = FakeRunner::default()
            .expect(&format!("{G} pool list"), &fixture("pool-list-single.xml"))
            .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"));
        let (task, ctx) = setup_with(dir.path(), false, fresh);
        assert_eq!(task.check(&ctx).await.unwrap().changes.last().unwrap(), restart);
        glusterd.kill().unwrap();
        glusterd.wait().unwrap();
    }
}
