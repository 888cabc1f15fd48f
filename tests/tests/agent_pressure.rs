//! The agent under pressure.
//! - A flood on the agent port (the `brickyard-agent` binary on 127.0.0.1, no lab): idle TCP
//!   connections and half-sent TLS handshakes from one address, then more from another address
//!   while the coordinator works. The coordinator's requests still succeed within a deadline;
//!   the agent drops every connection past its handshake slots at once and the rest after the
//!   handshake timeout (counted), and an authenticated connection past the connection cap.
//! - A hung FUSE mount (its glusterfs client process stopped with SIGSTOP, on a lab client with
//!   real glusterd servers): `facts`, `plan` and `status` still answer within a deadline, and
//!   name the hung mount point and the timeout; asked again and again, the agent's thread count
//!   stays put (the stuck call is not repeated); after SIGCONT the pool is healthy and a
//!   re-apply changes nothing; hung again, the agent still stops on SIGTERM.
//!
//! Needs root (namespaces, loop devices) and the built binaries (`cargo build --bins`).

use std::process::Output;
use std::time::{Duration, Instant};

use brickyard::spec::HostTarget;
use brickyard_agent::host::pathcheck::FS_TIMEOUT;
use brickyard_agent::rpc::limits::{HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, MAX_HANDSHAKES};
use brickyard_proto::v1;
use brickyard_tests::bins::AgentProcess;
use brickyard_tests::lab::{assert_success, TestLab};
use brickyard_tests::pki::{raw_connect, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// How long `facts`, `plan` or `status` may take with a hung mount: the agent gives up on a
/// filesystem call after `FS_TIMEOUT` (5 s); the rest is the command's own work.
const ANSWERS_WITHIN: Duration = Duration::from_secs(30);
/// How long the pool may take to be healthy again once the mount's client process goes on.
const RECOVERS: Duration = Duration::from_secs(60);
/// How long the agent may take to stop on SIGTERM with a call stuck on a hung mount (it waits
/// 2 s for such calls).
const STOPS_WITHIN: Duration = Duration::from_secs(10);
const MOUNT: &str = "/dataShare";

/// Sends `signal` to the glusterfs client process of `MOUNT` on client1 (own PID namespace,
/// so the pattern can only match that host's processes).
fn signal_fuse_client(lab: &TestLab, signal: &str) -> Output {
    lab.exec("client1", &["pkill", &format!("-{signal}"), "-f", &format!("glusterfs .*{MOUNT}$")])
}

/// SIGCONTs the mount's client process when dropped, so no test failure leaves it stopped.
struct Resume<'a>(&'a TestLab);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let out = signal_fuse_client(self.0, "CONT");
        if !out.status.success() {
            eprintln!("SIGCONT of the glusterfs client of {MOUNT} failed: {}", text(&out));
        }
    }
}

/// The number of threads of client1's agent (`Threads:` in its /proc status).
fn agent_threads(lab: &TestLab) -> usize {
    let out = lab.exec("client1", &["sh", "-c", "grep Threads: /proc/$(pidof brickyard-agent)/status"]);
    assert_success("reading the agent's thread count", &out);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("thread count in {line:?}"))
}

/// Runs `brickyard args` and returns its output and how long it took.
fn timed(lab: &TestLab, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = lab.brickyard(args);
    (out, started.elapsed())
}

#[test]
fn a_hung_fuse_mount_does_not_freeze_the_agent() {
    let lab = TestLab::up("prhang", 2, 1);
    let spec = lab.spec_path();
    let spec = spec.to_str().unwrap();
    let out = lab.brickyard(&["apply", "-f", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let resume = Resume(&lab);
    assert_success("SIGSTOP of the glusterfs client", &signal_fuse_client(&lab, "STOP"));
    // The mount hangs now: a stat on it does not return (killed by `timeout` after 3 s).
    let probe = lab.exec("client1", &["timeout", "3", "stat", "-f", MOUNT]);
    assert_eq!(probe.status.code(), Some(124), "statfs of the stopped mount answered: {}", text(&probe));

    let threads_before = agent_threads(&lab);
    let silent = format!("no answer to statvfs() within {}s", FS_TIMEOUT.as_secs());
    let expected = [
        (
            "facts",
            Some(0),
            format!("client1 glusterfs mounts:\n  {MOUNT} from gluServer1:/gluV1: does not answer ({silent})"),
        ),
        (
            "plan",
            Some(0),
            format!("mount gluV1 on {MOUNT}: gluServer1:/gluV1 at {MOUNT} is mounted but gives {silent}; left as is"),
        ),
        ("status", Some(1), format!("problem: client1: volume gluV1 on {MOUNT} does not answer ({silent})")),
    ];
    for (command, code, says) in expected {
        let (out, took) = timed(&lab, &[command, "-f", spec]);
        eprintln!("{command} with a hung mount: exit {:?} after {took:?}", out.status.code());
        assert!(took < ANSWERS_WITHIN, "{command} took {took:?}");
        assert_eq!(out.status.code(), code, "{command}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&says),
            "{command} does not say {says:?}:\n{}",
            text(&out)
        );
    }
    // Asked again and again, the agent does not pile up threads stuck on the mount: the call
    // still stuck is not repeated (one more stuck thread per call otherwise).
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (out, took) = timed(&lab, &["status", "-f", spec]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        slowest = slowest.max(took);
    }
    let threads_after = agent_threads(&lab);
    eprintln!(
        "10 more status calls: slowest {slowest:?}; agent threads {threads_before} before, {threads_after} after"
    );
    assert!(threads_after <= threads_before + 2, "agent threads grew from {threads_before} to {threads_after}");

    drop(resume);
    let started = Instant::now();
    loop {
        let out = lab.brickyard(&["status", "-f", spec]);
        if out.status.code() == Some(0) {
            break;
        }
        assert!(started.elapsed() < RECOVERS, "status not healthy {RECOVERS:?} after SIGCONT:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("healthy {:?} after SIGCONT", started.elapsed());
    lab.assert_apply_changes_nothing("re-apply");

    // A call stuck on the hung mount does not keep the agent from stopping on SIGTERM.
    let resume = Resume(&lab);
    assert_success("SIGSTOP of the glusterfs client", &signal_fuse_client(&lab, "STOP"));
    let out = lab.brickyard(&["status", "-f", spec]);
    assert_eq!(out.status.code(), Some(1), "status with the mount hung again: {}", text(&out));
    let pid = String::from_utf8_lossy(&lab.exec("client1", &["pidof", "brickyard-agent"]).stdout).trim().to_owned();
    let started = Instant::now();
    assert_success("SIGTERM to the agent", &lab.exec("client1", &["kill", "-TERM", &pid]));
    loop {
        let state = lab.exec("client1", &["ps", "-o", "stat=", "-p", &pid]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        if state.is_empty() || state.starts_with('Z') {
            break;
        }
        assert!(
            started.elapsed() < STOPS_WITHIN,
            "the agent (pid {pid}, state {state}) still runs {STOPS_WITHIN:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the agent stopped {:?} after SIGTERM with a call stuck on the hung mount", started.elapsed());
    drop(resume);
}

/// How long a coordinator request may take while the agent port is flooded: the coordinator's
/// own connect timeout (measured: 0.2-1.6 s with the whole machine busy).
const COORDINATOR_WITHIN: Duration = brickyard::client::CONNECT_TIMEOUT;
/// The start of a TLS record that announces a 512-byte ClientHello and then never sends it.
const HALF_HANDSHAKE: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];

/// A TCP connection to `agent` from `source` (any 127/8 address), idle or with `first` sent.
async fn connect_from(source: &str, agent: std::net::SocketAddr, first: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut tcp = socket.connect(agent).await.unwrap_or_else(|e| panic!("connect from {source}: {e}"));
    tcp.write_all(first).await.unwrap();
    tcp
}

/// Whether the agent has closed `tcp` (EOF or reset), looking for at most `wait`.
async fn closed(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(wait, tcp.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

/// How many of `flood` the agent has closed; the closed ones are removed.
async fn reap(flood: &mut Vec<TcpStream>) -> usize {
    let before = flood.len();
    let mut open = Vec::new();
    for mut tcp in flood.drain(..) {
        if !closed(&mut tcp, Duration::from_millis(1)).await {
            open.push(tcp);
        }
    }
    *flood = open;
    before - flood.len()
}

/// Polls until at least `count` more of `flood` are closed, for at most `within`; returns how
/// many were closed and when that was reached.
async fn await_closed(flood: &mut Vec<TcpStream>, count: usize, within: Duration) -> (usize, Duration) {
    let started = Instant::now();
    let mut total = 0;
    loop {
        total += reap(flood).await;
        if total >= count {
            return (total, started.elapsed());
        }
        assert!(started.elapsed() < within, "the agent closed {total} of the flood, not {count}, within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GetFacts` over a fresh coordinator connection; returns how long it took.
async fn coordinator_facts(pki: &TestPki, host: &HostTarget) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut client = brickyard::client::connect(&pki.dir, host).await?;
    client.get_facts(v1::GetFactsRequest::default()).await?;
    Ok(started.elapsed())
}

/// Waits (with a deadline) for an agent log line containing `text`.
fn await_log(agent: &AgentProcess, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match agent.log.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(e) => panic!("the agent logged no line with {text:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_does_not_shut_the_coordinator_out() {
    let pki = TestPki::new().unwrap();
    let config = pki.agent_config("agent1", "127.0.0.1:0", "").unwrap();
    let agent = AgentProcess::start(&config).unwrap();
    let host = HostTarget { name: "agent1".into(), address: "127.0.0.1".into(), port: agent.addr.port() };

    // 200 idle connections and 50 half handshakes from 127.0.0.2.
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..250 {
        flood.push(connect_from("127.0.0.2", agent.addr, if i < 200 { &[] } else { &HALF_HANDSHAKE }).await);
    }
    let opened = flood.len();
    let excess = opened - MAX_HANDSHAKES;
    let (evicted, took) = await_closed(&mut flood, excess, HANDSHAKE_TIMEOUT).await;
    eprintln!("{opened} connections from 127.0.0.2: {evicted} dropped within {took:?}, {} held", flood.len());
    assert_eq!(flood.len(), MAX_HANDSHAKES, "connections the agent holds in handshake");
    let evicted_line = await_log(&agent, "dropped a connection: all 32 handshake slots are taken");
    eprintln!("agent: {evicted_line}");

    // Every handshake slot is held by 127.0.0.2: the coordinator still gets in, again and again,
    // while 127.0.0.3 keeps opening connections.
    let flooding = tokio::spawn(async move {
        let mut second = Vec::new();
        let mut opened = 0;
        let until = Instant::now() + COORDINATOR_WITHIN * 5;
        while Instant::now() < until {
            second.push(connect_from("127.0.0.3", agent.addr, &[]).await);
            opened += 1;
            if second.len() >= 200 {
                reap(&mut second).await;
            }
        }
        (opened, second)
    });
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        // Getting an answer at all is the test: the coordinator gives up a connection whose TLS
        // handshake takes longer than its connect timeout. The call's total also counts the
        // agent's facts collection, which a loaded machine slows, so it is reported, not bounded.
        let took = coordinator_facts(&pki, &host).await.expect("GetFacts during the flood");
        slowest = slowest.max(took);
    }
    let (second_opened, mut second) = flooding.await.unwrap();
    eprintln!("5 GetFacts while 127.0.0.3 opened {second_opened} connections: slowest {slowest:?}");

    // The handshakes left time out.
    let held = flood.len() + second.len();
    flood.append(&mut second);
    let (timed_out, took) = await_closed(&mut flood, held, HANDSHAKE_TIMEOUT * 2).await;
    eprintln!("the last {timed_out} pending handshakes dropped {took:?} later");
    assert!(flood.is_empty());
    let timed_out_line = await_log(&agent, "dropped a connection: no TLS handshake within 5s");
    eprintln!("agent: {timed_out_line}");
    let first_flood_age = started.elapsed();
    assert!(
        first_flood_age >= HANDSHAKE_TIMEOUT,
        "the first flood's handshakes dropped after only {first_flood_age:?}"
    );

    // Authenticated connections: the cap holds; one more is dropped; a freed slot admits again.
    let ca = pki.layout().ca_cert;
    let coordinator = pki.coordinator();
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut client = raw_connect(&ca, Some(&coordinator), "agent1", agent.addr).await.unwrap();
        client.get_facts(v1::GetFactsRequest::default()).await.expect("a connection within the cap is served");
        open.push(client);
    }
    let over = async {
        let mut client = raw_connect(&ca, Some(&coordinator), "agent1", agent.addr).await?;
        client.get_facts(v1::GetFactsRequest::default()).await?;
        anyhow::Ok(())
    }
    .await;
    let refused = format!("{:#}", over.expect_err("a connection past the cap was served"));
    let cap_line =
        await_log(&agent, &format!("dropped a connection: all {MAX_CONNECTIONS} connection slots are taken"));
    eprintln!("connection {} past the cap: {refused}\nagent: {cap_line}", MAX_CONNECTIONS + 1);
    open.pop();
    let freed = Instant::now();
    while let Err(e) = coordinator_facts(&pki, &host).await {
        assert!(freed.elapsed() < Duration::from_secs(10), "no connection slot came free after one was closed: {e:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("a closed connection's slot admitted the coordinator {:?} later", freed.elapsed());
}
