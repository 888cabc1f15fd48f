//! Agent and coordinator over real mutual TLS on 127.0.0.1 (the `brickyard-agent` binary on an
//! ephemeral port): facts with the right certificates; refusals for a missing client
//! certificate, another CA, an agent certificate used as the coordinator, an expired
//! certificate and a pool certificate with another name; the coordinator refusing an agent
//! whose certificate names another host; and bad agent configs. Touches only temp dirs.

use std::os::unix::fs::PermissionsExt;

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

/// `GetFacts` with this client must fail, at connect or at the call; returns the error text.
async fn refused(pki: &TestPki, agent: &AgentProcess, client: Option<&brickyard::pki::IssuedCert>) -> String {
    match raw_connect(&pki.layout().ca_cert, client, "agent1", agent.addr).await {
        Err(e) => format!("{e:#}"),
        Ok(mut c) => match c.get_facts(v1::GetFactsRequest {}).await {
            Ok(_) => panic!("GetFacts succeeded with a client that must be refused"),
            Err(status) => format!("{status}"),
        },
    }
}

#[tokio::test]
async fn facts_and_health_with_the_right_certificates() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");
    let mut client = brickyard::client::connect(&pki.dir, &target("agent1", &agent)).await.unwrap();
    let facts = client.get_facts(v1::GetFactsRequest {}).await.unwrap().into_inner();
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

    let none = refused(&pki, &agent, None).await;
    let other_pool = TestPki::new().unwrap();
    let other_ca = refused(&pki, &agent, Some(&other_pool.coordinator())).await;
    let agent2 = pki.agent("agent2").unwrap();
    let agent_as_coordinator = refused(&pki, &agent, Some(&agent2)).await;
    let expired = refused(&pki, &agent, Some(&pki.expired_coordinator().unwrap())).await;
    // Chains to the pool CA and allows client auth, but does not name the coordinator: only
    // the agent's own identity check stands in the way.
    let wrong_name = pki.client_cert("impostor", "impostor", OffsetDateTime::now_utc() + Duration::days(30)).unwrap();
    let impostor = refused(&pki, &agent, Some(&wrong_name)).await;
    assert!(impostor.contains("PermissionDenied") || impostor.contains("not the coordinator"), "{impostor}");
    assert!(impostor.contains("impostor"), "{impostor}");

    // The agent is still healthy and serves the real coordinator afterwards.
    let mut client = brickyard::client::connect(&pki.dir, &target("agent1", &agent)).await.unwrap();
    client.get_facts(v1::GetFactsRequest {}).await.unwrap();
    eprintln!(
        "refusals:\n none: {none}\n other CA: {other_ca}\n agent cert: {agent_as_coordinator}\n expired: {expired}"
    );
}

#[tokio::test]
async fn coordinator_refuses_an_agent_with_another_hosts_certificate() {
    let pki = TestPki::new().unwrap();
    let agent = start(&pki, "agent1");
    // The spec says this address is agent2, but the certificate there names agent1.
    pki.agent("agent2").unwrap();
    let result = async {
        let mut client = brickyard::client::connect(&pki.dir, &target("agent2", &agent)).await?;
        client.get_facts(v1::GetFactsRequest {}).await?;
        anyhow::Ok(())
    }
    .await;
    let err = format!("{:#}", result.expect_err("coordinator accepted an agent certificate for another host"));
    assert!(err.contains("agent2"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
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
