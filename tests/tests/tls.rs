//! Agent and coordinator over real mutual TLS on 127.0.0.1 (the `brickyard-agent` binary on an
//! ephemeral port): facts with the right certificates; the agent refusing, each for its own
//! reason, a missing client certificate, another CA, an expired coordinator certificate, an
//! agent certificate used as a client and a pool client certificate with an agent's name (both by
//! its identity check: host certificates allow client auth, gluster uses them both ways); the
//! coordinator refusing an agent whose certificate names another host or has expired;
//! plaintext HTTP/2 against the TLS port, TLS against a closed port and against a port that
//! never answers; and bad agent configs. Touches only temp dirs and loopback.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use brickyard::client::error_chain;
use brickyard::spec::HostTarget;
use brickyard_proto::v1;
use brickyard_tests::bins::{agent_exit, AgentProcess};
use brickyard_tests::pki::{raw_connect, TestPki};
use time::{Duration, OffsetDateTime};

fn target(name: &str, agent: &AgentProcess) -> HostTarget {
    HostTarget { name: name.into(), address: "127.0.0.1".into(), port: agent.addr.port() }
}

fn start(pki: &TestPki, name: &str) -> AgentProcess {
    let config = pki.agent_config(name, "127.0.0.1:0", "").unwrap();
    AgentProcess::start(&config).unwrap()
}

/// Why agent1 ends a connection from `client` (see [`TestPki::tls_refusal`]).
fn tls_refusal(pki: &TestPki, agent: &AgentProcess, client: Option<&brickyard::pki::IssuedCert>) -> String {
    pki.tls_refusal(agent.addr, "agent1", client)
}

/// What `brickyard::client::connect` + `GetFacts` to `host` says, with its causes.
async fn coordinator_error(pki: &TestPki, host: &HostTarget) -> String {
    let result = async {
        let mut client = brickyard::client::connect(&pki.dir, host).await?;
        client.get_facts(v1::GetFactsRequest::default()).await.map_err(|s| anyhow::anyhow!(error_chain(&s)))?;
        anyhow::Ok(())
    }
    .await;
    format!("{:#}", result.expect_err("the coordinator got facts from a host it must refuse"))
}

#[tokio::test]
async fn facts_and_health_with_the_right_certificates() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");
    let mut client = brickyard::client::connect(&pki.dir, &target("agent1", &agent)).await.unwrap();
    let facts = client.get_facts(v1::GetFactsRequest::default()).await.unwrap().into_inner();
    assert!(!facts.hostname.is_empty() && !facts.kernel.is_empty() && facts.cpus > 0, "{facts:?}");
    assert!(facts.memory_bytes > 0);
    assert_eq!(facts.service_manager(), v1::ServiceManager::Direct);
    assert_eq!(facts.agent_version, env!("CARGO_PKG_VERSION"));

    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", agent.addr))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(pki.layout().ca_cert).unwrap()))
                .identity(tonic::transport::Identity::from_pem(
                    std::fs::read(pki.coordinator().cert).unwrap(),
                    std::fs::read(pki.coordinator().key).unwrap(),
                ))
                .domain_name("agent1"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(status.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
}

#[tokio::test]
async fn refuses_clients_that_are_not_the_coordinator() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");
    let in_30_days = OffsetDateTime::now_utc() + Duration::days(30);

    // The agent's TLS stack refuses these, each with the alert that names its reason. A
    // gRPC client only sees the connection end (closed, canceled or a broken pipe, as the
    // timing has it), so the handshake is made by hand to read the alert.
    let none = tls_refusal(&pki, &agent, None);
    assert_eq!(none, "received fatal alert: CertificateRequired", "no client certificate");
    let other_pool = TestPki::new().unwrap();
    let other_ca = tls_refusal(&pki, &agent, Some(&other_pool.coordinator()));
    assert_eq!(other_ca, "received fatal alert: UnknownCA", "another pool's coordinator certificate");
    let expired = tls_refusal(&pki, &agent, Some(&pki.expired_coordinator().unwrap()));
    assert_eq!(expired, "received fatal alert: CertificateExpired", "expired coordinator certificate");
    // An agent certificate (EKU serverAuth and clientAuth: GlusterFS TLS uses it both ways)
    // passes the TLS stack as a client; the agent's own identity check refuses it, as it does
    // a pool client certificate with an agent's name.
    let agent2 = pki.agent("agent2").unwrap();
    let agent_named = pki.client_cert("agent2-client", "agent2", in_30_days).unwrap();
    let mut refusals = Vec::new();
    for (what, cert) in [("agent certificate as a client", &agent2), ("client certificate named agent2", &agent_named)]
    {
        let mut client = raw_connect(&pki.layout().ca_cert, Some(cert), "agent1", agent.addr).await.unwrap();
        let status = client.get_facts(v1::GetFactsRequest::default()).await.expect_err(what);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{what}: {status}");
        assert_eq!(
            status.message(),
            "client certificate names [\"agent2\"], not the coordinator \"brickyard-coordinator\"",
            "{what}"
        );
        refusals.push(status.message().to_owned());
    }
    let (agent_as_client, identity) = (&refusals[0], &refusals[1]);

    // The agent is still healthy and serves the real coordinator afterwards.
    let mut client = brickyard::client::connect(&pki.dir, &target("agent1", &agent)).await.unwrap();
    client.get_facts(v1::GetFactsRequest::default()).await.unwrap();
    eprintln!(
        "refusals:\n no client cert: {none}\n other CA: {other_ca}\n expired coordinator: {expired}\n agent cert as \
         client: {agent_as_client}\n agent-named client cert: {identity}"
    );
}

#[tokio::test]
async fn coordinator_refuses_an_agent_with_an_expired_certificate() {
    let pki = TestPki::new().unwrap();
    let expired = pki.server_cert("agent1-expired", "agent1", OffsetDateTime::now_utc() - Duration::days(1)).unwrap();

    // The agent itself will not start with it...
    let config = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    let issued = pki.layout().host("agent1");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(issued.cert.to_str().unwrap(), expired.cert.to_str().unwrap())
            .replace(issued.key.to_str().unwrap(), expired.key.to_str().unwrap()),
    )
    .unwrap();
    let exit = agent_exit(&config, &["--check-config"]).unwrap();
    assert!(!exit.success && exit.stderr.contains("certificate expired"), "{}", exit.stderr);

    // ...so serve it from a TLS server of this test: the coordinator refuses the agent.
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(&expired.cert).unwrap(),
        std::fs::read(&expired.key).unwrap(),
    );
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    let host = HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: addr.port() };
    let err = coordinator_error(&pki, &host).await;
    server.abort();
    assert!(err.contains("host agent1") && err.contains("invalid peer certificate: certificate expired"), "{err}");
    eprintln!("expired agent certificate: {err}");
}

#[tokio::test]
async fn plaintext_and_dead_ports_are_refused_for_what_they_are() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");

    // Plaintext HTTP/2 (h2c) against the TLS port: the agent's TLS stack drops it.
    let plaintext = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", agent.addr))?.connect().await?;
        v1::agent_client::AgentClient::new(channel).get_facts(v1::GetFactsRequest::default()).await?;
        anyhow::Ok(())
    }
    .await
    .map_err(|e| e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": "))
    .expect_err("the agent answered plaintext HTTP/2");
    // What the client reads depends on timing (a broken pipe, or the agent's answer read as
    // an HTTP/2 frame of impossible size); the answer itself is a fatal TLS alert record.
    let mut raw = std::net::TcpStream::connect(agent.addr).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut alert = [0u8; 7];
    raw.read_exact(&mut alert).unwrap();
    assert_eq!(alert[..2], [0x15, 0x03], "not a TLS alert record: {alert:02x?}");
    assert_eq!(alert[3..6], [0x00, 0x02, 0x02], "not one fatal alert: {alert:02x?}");
    assert_eq!(alert[6], 50, "not decode_error: {alert:02x?}");

    // TLS against a closed port: refused by the kernel, named as such.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let started = Instant::now();
    let refused = coordinator_error(
        &pki,
        &HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: closed.port() },
    )
    .await;
    assert!(refused.contains("host agent1") && refused.contains("Connection refused"), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());

    // TLS against a port that accepts TCP and never answers: given up after the connect
    // timeout instead of waiting forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let silent_port = silent.local_addr().unwrap().port();
    let hung =
        coordinator_error(&pki, &HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: silent_port })
            .await;
    let waited = started.elapsed();
    assert!(hung.contains("host agent1") && hung.contains("timed out"), "{hung}");
    assert!(
        waited >= brickyard::client::CONNECT_TIMEOUT && waited < brickyard::client::CONNECT_TIMEOUT * 2,
        "waited {waited:?}"
    );
    drop(silent);

    // The agent still serves the coordinator.
    let mut client = brickyard::client::connect(&pki.dir, &target("agent1", &agent)).await.unwrap();
    client.get_facts(v1::GetFactsRequest::default()).await.unwrap();
    eprintln!("plaintext: {plaintext}\nplaintext answer: {alert:02x?}\nclosed port: {refused}\nsilent port ({waited:?}): {hung}");
}

#[tokio::test]
async fn coordinator_refuses_an_agent_with_another_hosts_certificate() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");
    // The spec says this address is agent2, but the certificate there names agent1.
    pki.agent("agent2").unwrap();
    let err = coordinator_error(&pki, &target("agent2", &agent)).await;
    assert!(err.contains("host agent2") && err.contains("certificate not valid for name \"agent2\""), "{err}");
    eprintln!("another host's certificate: {err}");
}

#[test]
fn bad_configs_are_named() {
    let pki = TestPki::new().unwrap();
    let check = |config: &std::path::Path| {
        let exit = agent_exit(config, &["--check-config"]).unwrap();
        assert!(!exit.success, "{} accepted", config.display());
        exit.stderr
    };

    let good = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    assert!(agent_exit(&good, &["--check-config"]).unwrap().success);

    let unknown = pki.agent_config("agent1", "127.0.0.1:0", "colour = \"blue\"\n").unwrap();
    let err = check(&unknown);
    assert!(err.contains("colour") && err.contains(unknown.to_str().unwrap()), "{err}");

    let bad_addr = pki.agent_config("agent1", "127.0.0.1:99999", "").unwrap();
    let err = check(&bad_addr);
    assert!(err.contains("listen") && err.contains("127.0.0.1:99999"), "{err}");

    // Key readable by others.
    let issued = pki.agent("agent1").unwrap();
    std::fs::set_permissions(&issued.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = check(&good);
    assert!(err.contains(issued.key.to_str().unwrap()) && err.contains("0644"), "{err}");

    // Key of another agent.
    let other = pki.agent("agent2").unwrap();
    let mismatched = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    let text = std::fs::read_to_string(&mismatched).unwrap();
    std::fs::write(&mismatched, text.replace(issued.key.to_str().unwrap(), other.key.to_str().unwrap())).unwrap();
    let err = check(&mismatched);
    assert!(err.contains("does not match") && err.contains(other.key.to_str().unwrap()), "{err}");

    // The coordinator's certificate (client-only) and a certificate of another pool.
    let coordinator = pki.coordinator();
    let wrong_role = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    let text = std::fs::read_to_string(&wrong_role).unwrap();
    let text = text
        .replace(pki.agent("agent1").unwrap().cert.to_str().unwrap(), coordinator.cert.to_str().unwrap())
        .replace(issued.key.to_str().unwrap(), coordinator.key.to_str().unwrap());
    std::fs::write(&wrong_role, text).unwrap();
    let err = check(&wrong_role);
    assert!(err.contains("not a valid agent certificate") && err.contains(coordinator.cert.to_str().unwrap()), "{err}");
    let other_pool = TestPki::new().unwrap();
    let foreign = other_pool.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    let text = std::fs::read_to_string(&foreign).unwrap();
    std::fs::write(
        &foreign,
        text.replace(other_pool.layout().ca_cert.to_str().unwrap(), pki.layout().ca_cert.to_str().unwrap()),
    )
    .unwrap();
    let err = check(&foreign);
    assert!(err.contains("UnknownIssuer") && err.contains("ca.pem"), "{err}");

    // Missing CA file.
    let missing = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    std::fs::write(&missing, std::fs::read_to_string(&missing).unwrap().replace("ca.pem", "nope.pem")).unwrap();
    let err = check(&missing);
    assert!(err.contains("nope.pem"), "{err}");

    // Port in use: the agent names the address it could not listen on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let busy = pki.agent_config("agent1", &addr.to_string(), "").unwrap();
    let exit = agent_exit(&busy, &[]).unwrap();
    assert!(!exit.success);
    assert!(exit.stderr.contains(&addr.to_string()) && exit.stderr.contains("in use"), "{}", exit.stderr);
}
