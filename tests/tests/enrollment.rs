//! Host identity end to end, with `brickyard-agent` binaries on loopback addresses and the
//! `brickyard` CLI: an agent without a certificate serves a provisional one, `brickyard
//! enroll` spends its join token and installs a CA-signed certificate (facts then answer
//! over it, also after a restart); a used, an expired and another host's token are refused
//! for what they are; `brickyard cloud-init` user-data has a token and no private key, and
//! that token enrols; a revoked coordinator certificate is refused by agents once the CRL
//! is pushed (and after a restart), a revoked agent by the coordinator; `pki rotate` changes
//! the served certificate live while a connection made before keeps working. Touches only
//! temp dirs and 127.0.0.0/8.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brickyard::client::{connect_with, ServerCheck};
use brickyard::pki::COORDINATOR_IDENTITY;
use brickyard::spec::HostTarget;
use brickyard_proto::v1;
use brickyard_tests::bins::{bin, AgentProcess};
use brickyard_tests::pki::{raw_connect, TestPki};

/// A pool PKI, a spec beside it and agents with their own config directories.
struct Pool {
    pki: TestPki,
    spec: PathBuf,
    hosts: Vec<HostTarget>,
    agents: std::cell::Cell<u8>,
}

/// One agent's configuration directory (its /etc/brickyard).
struct AgentDir {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    /// The loopback address it listens on (one per agent: the spec wants unique addresses).
    address: String,
}

impl AgentDir {
    fn key(&self) -> PathBuf {
        self.dir.join("agent.key")
    }
    fn token(&self) -> PathBuf {
        self.dir.join("join-token")
    }
}

impl Pool {
    fn new() -> Pool {
        let pki = TestPki::new().unwrap();
        let spec = pki.dir.parent().unwrap().join("spec.toml");
        Pool { pki, spec, hosts: Vec::new(), agents: Default::default() }
    }

    /// Runs `brickyard args`.
    fn brickyard(&self, args: &[&str]) -> Output {
        Command::new(bin("brickyard")).args(args).output().expect("running brickyard")
    }

    /// `brickyard COMMAND -f SPEC [args]`.
    fn on_spec(&self, command: &[&str], args: &[&str]) -> Output {
        let spec = self.spec.to_str().unwrap();
        self.brickyard(&[command, &["-f", spec], args].concat())
    }

    /// A join token for `host` valid for `ttl` (`brickyard pki token`).
    fn token(&self, host: &str, ttl: &str) -> String {
        let out =
            self.brickyard(&["pki", "token", "--dir", self.pki.dir.to_str().unwrap(), "--host", host, "--ttl", ttl]);
        assert!(out.status.success(), "pki token: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A config directory for an agent that is not enrolled: the pool CA and `token`, no key,
    /// no certificate.
    fn fresh_agent_dir(&self, token: &str) -> AgentDir {
        self.agents.set(self.agents.get() + 1);
        let address = format!("127.0.0.{}", 10 + self.agents.get());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::copy(self.pki.layout().ca_cert, dir.join("ca.pem")).unwrap();
        std::fs::write(dir.join("join-token"), format!("{token}\n")).unwrap();
        std::fs::set_permissions(dir.join("join-token"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"{address}:0\"\nca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n\
                 join_token = \"join-token\"\nservice_manager = \"direct\"\n"
            ),
        )
        .unwrap();
        AgentDir { _tmp: tmp, dir, config, address }
    }

    /// Starts the agent of `dir` as spec host `name` (added to the spec, or moved to the
    /// agent's new port).
    fn start(&mut self, name: &str, dir: &AgentDir) -> AgentProcess {
        let agent = AgentProcess::start(&dir.config).unwrap();
        let target = HostTarget { name: name.into(), address: dir.address.clone(), port: agent.addr.port() };
        self.hosts.retain(|h| h.name != name);
        self.hosts.push(target);
        self.write_spec();
        agent
    }

    /// Every host a server at its agent's address and port, no disk (identity only).
    fn write_spec(&self) {
        let mut text = "version = 1\n[pool]\nname = \"t\"\npki_dir = \"pki\"\n".to_owned();
        for h in &self.hosts {
            text.push_str(&format!("[[server]]\nname = {:?}\naddress = {:?}\nport = {}\n", h.name, h.address, h.port));
        }
        std::fs::write(&self.spec, text).unwrap();
    }

    fn target(&self, name: &str) -> HostTarget {
        self.hosts.iter().find(|h| h.name == name).unwrap().clone()
    }

    /// Facts over a pool-checked connection; the serial (hex) of the certificate served.
    async fn facts_and_serial(&self, name: &str) -> String {
        let (mut client, peer) = connect_with(&self.pki.dir, &self.target(name), ServerCheck::Pool).await.unwrap();
        client.get_facts(v1::GetFactsRequest::default()).await.unwrap();
        let der = peer.lock().unwrap().clone().unwrap();
        serial(&der)
    }
}

fn serial(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    brickyard::pki::revoke::hex(cert.raw_serial())
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn enrolment_installs_a_ca_signed_certificate_and_facts_answer_over_it() {
    let mut pool = Pool::new();
    let dir = pool.fresh_agent_dir(&pool.token("glu1", "1h"));
    let agent = pool.start("glu1", &dir);
    assert_eq!(mode(&dir.key()), 0o600, "the agent's own key");
    let key_before = std::fs::read(dir.key()).unwrap();

    // Before enrolment the coordinator refuses the provisional certificate and says why.
    let (_, stderr) = text(&pool.on_spec(&["facts"], &[]));
    assert!(stderr.contains("1 of 1 hosts did not answer"), "{stderr}");
    let (stdout, _) = text(&pool.on_spec(&["facts"], &[]));
    assert!(
        stdout.contains("not enrolled yet (it serves a provisional certificate)")
            && stdout.contains("brickyard enroll -f SPEC --host glu1"),
        "{stdout}"
    );

    let out = pool.on_spec(&["enroll"], &["--days", "7"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "enroll failed: {stdout}{stderr}");
    assert!(stdout.starts_with("glu1: enrolled: serial ") && stdout.contains("valid 7 days"), "{stdout}");

    // The agent kept its key (it never left the host), got a certificate and spent its token.
    assert_eq!(std::fs::read(dir.key()).unwrap(), key_before);
    assert_eq!(mode(&dir.key()), 0o600);
    assert!(!dir.token().exists(), "the used join token is still on the host");
    let issued = pool.pki.layout().host("glu1");
    assert!(!issued.key.exists(), "a host key in the pki directory");
    let signed = brickyard::pki::revoke::hex(&brickyard::pki::revoke::serial_of(&issued.cert).unwrap());
    assert_eq!(pool.facts_and_serial("glu1").await, signed);
    let out = pool.on_spec(&["facts"], &[]);
    assert!(out.status.success(), "facts after enrolment: {:?}", text(&out));

    let (stdout, _) = text(&pool.on_spec(&["enroll"], &[]));
    assert_eq!(stdout, "glu1: already enrolled (its certificate chains to the pool CA); nothing to do\n");

    // A restart loads the installed certificate.
    drop(agent);
    let _agent = pool.start("glu1", &dir);
    assert_eq!(pool.facts_and_serial("glu1").await, signed);
}

#[tokio::test]
async fn used_expired_and_other_hosts_tokens_are_refused() {
    let mut pool = Pool::new();
    let used = pool.token("replayed", "1h");
    let first = pool.fresh_agent_dir(&used);
    let first_agent = pool.start("replayed", &first);
    assert!(pool.on_spec(&["enroll"], &[]).status.success());
    drop(first_agent);

    // The same token again, from a new host (its own key) under the same name.
    let replay = pool.fresh_agent_dir(&used);
    let _replay = pool.start("replayed", &replay);
    let expired = pool.fresh_agent_dir(&pool.token("expired", "0s"));
    let _expired = pool.start("expired", &expired);
    let other = pool.fresh_agent_dir(&pool.token("glu9", "1h"));
    let _other = pool.start("glu3", &other);

    let out = pool.on_spec(&["enroll"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success() && stdout.is_empty(), "{stdout}");
    let line = |host: &str| {
        stderr.lines().find(|l| l.starts_with(&format!("{host}: "))).unwrap_or_else(|| panic!("{host}: {stderr}"))
    };
    assert!(
        line("replayed").contains("enrolment refused") && line("replayed").contains("was already used"),
        "{stderr}"
    );
    assert!(line("expired").contains("for host expired expired at unix time"), "{stderr}");
    assert!(line("glu3").contains("was issued for host glu9, not glu3"), "{stderr}");
    // Refused hosts stay provisional: nothing was signed for them.
    for host in ["expired", "glu3"] {
        assert!(!pool.pki.layout().host(host).cert.exists(), "{host} got a certificate");
    }
    eprintln!("refusals:\n{stderr}");
}

#[tokio::test]
async fn cloud_init_user_data_carries_a_token_that_enrols_and_no_private_key() {
    let mut pool = Pool::new();
    pool.hosts.push(HostTarget { name: "glu1".into(), address: "127.0.0.11".into(), port: 7420 });
    pool.write_spec();
    let out = pool.on_spec(&["cloud-init"], &["--host", "glu1", "--token-ttl", "10m"]);
    let (user_data, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(!user_data.contains("PRIVATE KEY"), "user-data carries a private key:\n{user_data}");
    assert!(
        user_data.contains("path: /etc/brickyard/pki/ca.pem") && user_data.contains("join_token = "),
        "{user_data}"
    );
    let token = user_data
        .split_whitespace()
        .find(|w| w.starts_with("byt1."))
        .unwrap_or_else(|| panic!("no join token in:\n{user_data}"))
        .to_owned();

    // The token in the user-data is what enrols the host.
    let dir = pool.fresh_agent_dir(&token);
    let _agent = pool.start("glu1", &dir);
    let (stdout, stderr) = text(&pool.on_spec(&["enroll"], &[]));
    assert!(stdout.starts_with("glu1: enrolled"), "{stdout}{stderr}");
}

#[tokio::test]
async fn a_revoked_coordinator_certificate_is_refused_by_agents() {
    let mut pool = Pool::new();
    let dir = pool.fresh_agent_dir(&pool.token("glu1", "1h"));
    let agent = pool.start("glu1", &dir);
    assert!(pool.on_spec(&["enroll"], &[]).status.success());

    // A second coordinator certificate (e.g. a lost laptop's), revoked as the coordinator.
    let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let lost = pool.pki.client_cert("lost", COORDINATOR_IDENTITY, in_30_days).unwrap();
    let current = pool.pki.coordinator();
    let keep = |from: &Path, to: &Path| std::fs::rename(from, to).unwrap();
    let (saved_cert, saved_key) = (pool.pki.dir.join("saved.pem"), pool.pki.dir.join("saved.key"));
    keep(&current.cert, &saved_cert);
    keep(&current.key, &saved_key);
    std::fs::copy(&lost.cert, &current.cert).unwrap();
    let pki_dir = pool.pki.dir.to_str().unwrap().to_owned();
    let out = pool.brickyard(&["pki", "revoke", "--dir", &pki_dir, COORDINATOR_IDENTITY]);
    assert!(out.status.success(), "{:?}", text(&out));
    keep(&saved_cert, &current.cert);
    keep(&saved_key, &current.key);
    // Before the agent has the CRL, the lost certificate still commands it.
    let lost_facts = |agent: &AgentProcess| {
        let (ca, lost, addr) = (pool.pki.layout().ca_cert, lost.clone(), agent.addr);
        async move {
            let mut client = raw_connect(&ca, Some(&lost), "glu1", addr).await?;
            client.get_facts(v1::GetFactsRequest::default()).await?;
            anyhow::Ok(())
        }
    };
    lost_facts(&agent).await.expect("facts with the not yet revoked certificate");

    let (stdout, stderr) = text(&pool.on_spec(&["pki", "push-crl"], &[]));
    assert!(stdout.starts_with("glu1: CRL installed (1 revoked)\n"), "{stdout}{stderr}");
    let refusal = pool.pki.tls_refusal(agent.addr, "glu1", Some(&lost));
    assert_eq!(refusal, "received fatal alert: CertificateRevoked");
    // The pool's coordinator certificate still works; the agent says why it refused.
    pool.facts_and_serial("glu1").await;
    let logged: Vec<String> = agent.log.try_iter().filter(|l| l.contains("refused a client certificate")).collect();
    assert!(logged.iter().any(|l| l.contains("revoked=true")), "agent log: {logged:?}");

    // A restart loads the CRL from the agent's config directory.
    assert!(dir.dir.join("crl.pem").is_file());
    drop(agent);
    let agent = pool.start("glu1", &dir);
    assert_eq!(pool.pki.tls_refusal(agent.addr, "glu1", Some(&lost)), "received fatal alert: CertificateRevoked");
    pool.facts_and_serial("glu1").await;
    eprintln!("revoked coordinator certificate: {refusal}; agent log: {logged:?}");
}

#[tokio::test]
async fn the_coordinator_refuses_a_revoked_agent() {
    let mut pool = Pool::new();
    let dir = pool.fresh_agent_dir(&pool.token("glu1", "1h"));
    let _agent = pool.start("glu1", &dir);
    assert!(pool.on_spec(&["enroll"], &[]).status.success());
    let out = pool.brickyard(&["pki", "revoke", "--dir", pool.pki.dir.to_str().unwrap(), "glu1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = pool.on_spec(&["facts"], &[]);
    let (stdout, _) = text(&out);
    assert!(
        !out.status.success() && stdout.contains("glu1") && stdout.contains("invalid peer certificate: Revoked"),
        "{stdout}"
    );
    eprintln!("revoked agent: {stdout}");
}

#[tokio::test]
async fn rotation_serves_a_new_certificate_live_and_open_connections_keep_working() {
    let mut pool = Pool::new();
    let dir = pool.fresh_agent_dir(&pool.token("glu1", "1h"));
    let agent = pool.start("glu1", &dir);
    assert!(pool.on_spec(&["enroll"], &[]).status.success());
    let key_before = std::fs::read(dir.key()).unwrap();
    let (mut before, peer) = connect_with(&pool.pki.dir, &pool.target("glu1"), ServerCheck::Pool).await.unwrap();
    before.get_facts(v1::GetFactsRequest::default()).await.unwrap();
    let old = serial(&peer.lock().unwrap().clone().unwrap());

    let started = std::time::Instant::now();
    let out = pool.on_spec(&["pki", "rotate"], &[]);
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rotate: {stdout}{stderr}");
    let new = pool.facts_and_serial("glu1").await;
    assert_ne!(new, old);
    let line = stdout.lines().find(|l| l.starts_with("glu1: rotated")).unwrap_or_default();
    assert!(
        line.starts_with(&format!("glu1: rotated: serial {old} -> {new}, valid 30 days (the old one until ")),
        "{stdout}"
    );
    // No gluster TLS on this host (an agent on loopback): nothing of gluster's is touched.
    assert!(stdout.contains("glu1: gluster TLS files already current"), "{stdout}");
    assert!(stdout.contains("glu1: gluster processes already started with the current TLS files"), "{stdout}");
    // The connection made before the rotation still answers; the agent was not restarted
    // (same process, same port) and made a new key, 0600.
    before.get_facts(v1::GetFactsRequest::default()).await.expect("facts on the connection made before the rotation");
    assert_eq!(pool.target("glu1").port, agent.addr.port());
    assert_ne!(std::fs::read(dir.key()).unwrap(), key_before);
    assert_eq!(mode(&dir.key()), 0o600);
    let issued = brickyard::pki::revoke::serial_of(&pool.pki.layout().host("glu1").cert).unwrap();
    assert_eq!(brickyard::pki::revoke::hex(&issued), new);
    eprintln!("rotation {old} -> {new} took {took:?}");
}

/// Rotation in a converged lab pool (2 servers, replica 2, 1 client; real glusterd): `status`
/// is healthy before and after `pki rotate`, every agent serves a new serial, and a file the
/// client wrote before reads back with the same checksum (the mount was not touched).
#[test]
fn rotation_keeps_a_converged_pool_healthy() {
    let lab = brickyard_tests::lab::TestLab::up("idrot", 2, 1);
    let spec = lab.spec_path();
    let spec = spec.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = lab.brickyard(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "brickyard {args:?}: {stdout}{stderr}");
        stdout
    };
    let started = std::time::Instant::now();
    run(&["apply", "-f", spec]);
    eprintln!("converged in {:?}", started.elapsed());
    run(&["status", "-f", spec]);
    let on_client = |argv: &[&str]| {
        let out = lab.exec("client1", argv);
        assert!(out.status.success(), "{argv:?} on client1: {:?}", text(&out));
        text(&out).0
    };
    on_client(&["dd", "if=/dev/urandom", "of=/dataShare/before-rotation", "bs=64k", "count=4", "status=none"]);
    let sum = on_client(&["sha256sum", "/dataShare/before-rotation"]);

    let pki = lab.spec().pki_dir();
    let serial = |name: &str| {
        brickyard::pki::revoke::hex(&brickyard::pki::revoke::serial_of(&pki.join(format!("hosts/{name}.pem"))).unwrap())
    };
    let hosts: Vec<String> = lab.spec().hosts().into_iter().map(|h| h.name).collect();
    let before: Vec<String> = hosts.iter().map(|h| serial(h)).collect();
    let started = std::time::Instant::now();
    let rotated = run(&["pki", "rotate", "-f", spec]);
    eprintln!("rotated {} hosts in {:?}:\n{rotated}", hosts.len(), started.elapsed());
    for (host, old) in hosts.iter().zip(&before) {
        let new = serial(host);
        assert!(rotated.contains(&format!("{host}: rotated: serial {old} -> {new}")), "{rotated}");
    }
    run(&["status", "-f", spec]);
    assert_eq!(on_client(&["sha256sum", "/dataShare/before-rotation"]), sum);
    let verify = run(&["verify", "-f", spec]);
    assert!(verify.contains("checks passed"), "{verify}");
}
