//! The firewall task for real, through the agent of a lab server (its own network namespace,
//! so its own netfilter tables; nothing here touches this machine's firewall). The lab has one
//! server and two clients: the server admits gluServer1 and client1 (the pool), client2 is left
//! out and plays the intruder, the coordinator runs in the lab's control namespace.
//!
//! - iptables: chain BRICKYARD built once (IPv4 and IPv6, saved to /etc/iptables/rules.v4 and
//!   rules.v6), an earlier version's INPUT rules removed, a re-run changes nothing; the pool
//!   member reaches glusterd (24007) and a brick port, the intruder neither, only the
//!   coordinator reaches the agent (7420); a host taken out of the sources is taken out of the
//!   chain and shut out; coordinators that would shut out the coordinator asking are refused.
//! - firewalld: a real firewalld (Debian's, nftables backend) on its own D-Bus system bus inside
//!   the server: zone brickyard in the runtime and the permanent configuration, re-run a no-op,
//!   rules the spec does not want removed, reachability as above; then firewalld stopped (and
//!   enabled at boot) → `firewall-offline-cmd` sets the permanent configuration, which firewalld
//!   loads when it starts again.
//!
//! Blocked ports are told apart from closed ones by a pool member reaching the same port.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use brickyard::client::connect;
use brickyard::spec::HostTarget;
use brickyard_proto::v1::{self, task::Kind};
use brickyard_tests::agent::{apply, converge, plan, starts, task, Client};
use brickyard_tests::lab::{assert_success, TestLab};

/// How long a connection attempt that should fail may take before it counts as dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A listener on a brick port (no volume needed): accepts and closes, forever.
const BRICK_PORT: u16 = 49999;
const LISTENER: &str = "import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('', int(sys.argv[1]))); s.listen(16)
while True: s.accept()[0].close()";

/// The lab, its three hosts and the control namespace's address (the coordinator's).
struct Pool {
    lab: TestLab,
    server: HostTarget,
    member: HostTarget,
    intruder: HostTarget,
    coordinator: String,
}

impl Pool {
    fn up(prefix: &str) -> Pool {
        let lab = TestLab::up(prefix, 1, 2);
        let mut hosts = lab.spec().hosts().into_iter();
        let (server, member, intruder) = (hosts.next().unwrap(), hosts.next().unwrap(), hosts.next().unwrap());
        let (net, _) = server.address.rsplit_once('.').expect("an IPv4 lab address");
        let coordinator = format!("{net}.1");
        Pool { lab, server, member, intruder, coordinator }
    }

    /// Runs `argv` on `host`; panics unless it succeeds; its stdout.
    fn exec(&self, host: &str, argv: &[&str]) -> String {
        let out = self.lab.exec(host, argv);
        assert_success(&format!("{argv:?} on {host}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The firewall task: the pool is the server and `members`, the agent port admits
    /// `coordinators` (none: where the request comes from).
    fn ports(&self, members: &[&HostTarget], coordinators: &[&str]) -> v1::Task {
        let pool_sources = [&self.server].into_iter().chain(members.iter().copied()).map(|h| h.address.clone());
        task(
            "ports",
            Kind::OpenPorts(v1::OpenPorts {
                nfs: false,
                pool_sources: pool_sources.collect(),
                agent_sources: coordinators.iter().map(|c| (*c).to_owned()).collect(),
                agent_port: u32::from(self.server.port),
            }),
        )
    }

    /// Runs `f` with a client of the server's agent, from the control namespace.
    fn with_agent<T: Send>(&self, f: impl AsyncFnOnce(&mut Client) -> T + Send) -> T {
        let pki = self.lab.spec().pki_dir();
        self.lab.in_control_ns(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let mut client = connect(&pki, &self.server).await.expect("the server's agent answers");
                f(&mut client).await
            })
        })
    }

    /// Whether `from` (a lab host, or `None`: the control namespace) can open a TCP connection
    /// to the server's `port`: "open", "timed out" (dropped) or the error.
    fn reach(&self, from: Option<&HostTarget>, port: u16) -> String {
        let address = &self.server.address;
        let Some(from) = from else {
            let target: SocketAddr = format!("{address}:{port}").parse().unwrap();
            return self.lab.in_control_ns(|| match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
                Ok(_) => "open".to_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                Err(e) => e.to_string(),
            });
        };
        let secs = CONNECT_TIMEOUT.as_secs().to_string();
        let connect = "exec 3<>/dev/tcp/$0/$1";
        let out = self.lab.exec(&from.name, &["timeout", &secs, "bash", "-c", connect, address, &port.to_string()]);
        match out.status.code() {
            Some(0) => "open".to_owned(),
            Some(124) => "timed out".to_owned(),
            _ => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }
    }

    /// Polls until `from` reaches `port` (a listener may still be starting); panics after 10 s.
    fn assert_open(&self, from: Option<&HostTarget>, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reach = self.reach(from, port);
            if reach == "open" {
                return;
            }
            let who = from.map_or("the coordinator", |h| h.name.as_str());
            assert!(Instant::now() < deadline, "{who} cannot reach {}:{port}: {reach}", self.server.name);
        }
    }

    /// One attempt: `from` must not get a connection to `port` (dropped, or rejected by firewalld).
    fn assert_blocked(&self, from: Option<&HostTarget>, port: u16) {
        let reach = self.reach(from, port);
        let who = from.map_or("the coordinator", |h| h.name.as_str());
        assert!(
            reach == "timed out" || reach.contains("No route to host"),
            "{who} → {}:{port} should be blocked, got: {reach}",
            self.server.name
        );
    }

    /// The member reaches glusterd and the brick port but not the agent, the intruder none of
    /// them, the coordinator the agent.
    fn assert_only_the_pool_gets_in(&self) {
        for port in [24007, BRICK_PORT] {
            self.assert_open(Some(&self.member), port);
            self.assert_blocked(Some(&self.intruder), port);
        }
        self.assert_open(None, self.server.port);
        self.assert_blocked(Some(&self.member), self.server.port);
        self.assert_blocked(Some(&self.intruder), self.server.port);
    }

    /// glusterd (24007) started by the agent, and a listener on a brick port.
    fn start_listeners(&self) {
        let glusterd = [task("glusterd", Kind::EnsureGlusterd(v1::EnsureGlusterd {}))];
        let outcome = self.with_agent(async |client| apply(client, &glusterd).await);
        starts(&outcome, &["glusterd: changed"]);
        let background = format!("setsid python3 -c \"$0\" {BRICK_PORT} </dev/null >/dev/null 2>&1 &");
        self.exec(&self.server.name, &["bash", "-c", &background, LISTENER]);
    }

    /// `ip[6]tables -S BRICKYARD` on the server.
    fn chain(&self, program: &str) -> Vec<String> {
        self.exec(&self.server.name, &[program, "-w", "-S", "BRICKYARD"]).lines().map(str::to_owned).collect()
    }
}

fn accept(source: &str, ports: &str) -> String {
    format!("-A BRICKYARD -s {source}/32 -p tcp -m multiport --dports {ports} -j ACCEPT")
}

const DROP_NEW: &str = "-A BRICKYARD -p tcp -m multiport --dports 24007:24008,49152:60999,7420 \
                        -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP";

#[test]
fn iptables_admit_only_the_pool() {
    let pool = Pool::up("fwipt");
    let (server, member) = (&pool.server.name, &pool.member);
    pool.start_listeners();
    // An earlier version's rule, open to everyone, and iptables-persistent's directory.
    let old = ["-p", "tcp", "-m", "tcp", "--dport", "24007:24008", "-m", "comment", "--comment", "brickyard"];
    pool.exec(server, &[&["iptables", "-w", "-I", "INPUT"][..], &old[..], &["-j", "ACCEPT"]].concat());
    pool.exec(server, &["mkdir", "/etc/iptables"]);
    let ports = [pool.ports(&[member], &[])];

    // The coordinator's plan for the lab's own spec says who is admitted and why.
    let spec = pool.lab.spec_path();
    let out = pool.lab.brickyard(&["plan", "-f", spec.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("iptables: accept 24007-24008,49152-60999/tcp from {}/32 (a server or client of the pool)", member.address),
        format!(
            "iptables: accept 7420/tcp from {}/32 (where this coordinator connects from; [pool] coordinators is not set)",
            pool.coordinator
        ),
    ] {
        assert!(shown.contains(&line), "plan lacks {line:?}:\n{shown}");
    }

    let started = Instant::now();
    pool.with_agent(async |client| converge(client, &ports).await);
    eprintln!("iptables: plan + apply + plan took {:?}", started.elapsed());
    let chain = vec![
        "-N BRICKYARD".to_owned(),
        "-A BRICKYARD -i lo -j RETURN".to_owned(),
        accept(&pool.server.address, "24007:24008,49152:60999"),
        accept(&member.address, "24007:24008,49152:60999"),
        accept(&pool.coordinator, "7420"),
        DROP_NEW.to_owned(),
    ];
    assert_eq!(pool.chain("iptables"), chain);
    assert_eq!(pool.chain("ip6tables"), ["-N BRICKYARD", "-A BRICKYARD -i lo -j RETURN", DROP_NEW]);
    for program in ["iptables", "ip6tables"] {
        let input = pool.exec(server, &[program, "-w", "-S", "INPUT"]);
        assert_eq!(input, "-P INPUT ACCEPT\n-A INPUT -j BRICKYARD\n", "{program}: the old rule is gone");
    }
    let saved = pool.exec(server, &["cat", "/etc/iptables/rules.v4"]);
    assert!(
        chain[1..].iter().all(|rule| saved.contains(&format!("{rule}\n"))) && !saved.contains("comment"),
        "{saved}"
    );
    assert!(pool.exec(server, &["cat", "/etc/iptables/rules.v6"]).contains(&format!("{DROP_NEW}\n")));

    let started = Instant::now();
    let again = pool.with_agent(async |client| apply(client, &ports).await);
    starts(&again, &["ports: unchanged"]);
    eprintln!("iptables: re-run (no-op) took {:?}", started.elapsed());
    pool.assert_only_the_pool_gets_in();

    // client1 leaves the pool: its rule leaves the chain and the saved rules, and it is shut out.
    let alone = [pool.ports(&[], &[])];
    let outcome = pool.with_agent(async |client| apply(client, &alone).await);
    let removed = accept(&member.address, "24007:24008,49152:60999");
    starts(&outcome, &[&format!("ports: changed [\"iptables: remove from chain BRICKYARD (not wanted): {removed}\"")]);
    assert!(outcome[0].contains("save the rules to /etc/iptables/rules.v4"), "{outcome:?}");
    assert!(!pool.chain("iptables").contains(&removed));
    assert!(!pool.exec(server, &["cat", "/etc/iptables/rules.v4"]).contains(&removed));
    pool.assert_blocked(Some(member), 24007);

    // Coordinators that leave out the one asking would lock it out: refused, nothing changes.
    let elsewhere = [pool.ports(&[member], &["203.0.113.0/24"])];
    let verdicts = pool.with_agent(async |client| plan(client, &elsewhere).await);
    let expected = format!(
        "ports: refused the agent port 7420 would be closed to this coordinator, which connects from {}: \
         [pool] coordinators (203.0.113.0/24) does not include it",
        pool.coordinator
    );
    assert_eq!(verdicts[0].0, expected);
    let listed = [pool.ports(&[member], &[&format!("{}/32", pool.coordinator)])];
    let (outcome, verdicts) =
        pool.with_agent(async |client| (apply(client, &listed).await, plan(client, &listed).await));
    let readmitted = format!("iptables: accept 24007-24008,49152-60999/tcp from {}/32", member.address);
    starts(&outcome, &[&format!("ports: changed [\"{readmitted}")]);
    assert_eq!(
        verdicts,
        [("ports: unchanged".to_owned(), vec![])],
        "listed: no warning about where apply connects from"
    );
    pool.assert_only_the_pool_gets_in();
}

/// Starts D-Bus and firewalld inside `host` and waits until `firewall-cmd --state` says running.
fn start_firewalld(pool: &Pool) {
    let host = &pool.server.name;
    pool.exec(host, &["mkdir", "-p", "/run/dbus"]);
    if pool.lab.exec(host, &["test", "-S", "/run/dbus/system_bus_socket"]).status.code() != Some(0) {
        pool.exec(host, &["dbus-daemon", "--system", "--fork"]);
    }
    let started = Instant::now();
    pool.exec(host, &["firewalld"]);
    while firewalld_state(pool) != "running" {
        let log = pool.lab.exec(host, &["cat", "/var/log/firewalld"]);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "firewalld did not start in 60 s: {}",
            String::from_utf8_lossy(&log.stdout)
        );
    }
    eprintln!("firewalld: running after {:?}", started.elapsed());
}

fn firewalld_state(pool: &Pool) -> String {
    String::from_utf8_lossy(&pool.lab.exec(&pool.server.name, &["firewall-cmd", "--state"]).stdout).trim().to_owned()
}

/// `firewall-cmd [--permanent] --zone=brickyard --list-*` on the server.
fn zone(pool: &Pool, permanent: bool, what: &str) -> Vec<String> {
    let mut argv = vec!["firewall-cmd", "--zone=brickyard"];
    if permanent {
        argv.insert(1, "--permanent");
    }
    let list = format!("--list-{what}");
    argv.push(&list);
    let out = pool.exec(&pool.server.name, &argv);
    let mut items: Vec<String> = if what == "rich-rules" {
        out.lines().map(str::to_owned).collect()
    } else {
        out.split_whitespace().map(str::to_owned).collect()
    };
    items.sort();
    items
}

fn rich(source: &str, port: &str) -> String {
    format!("rule family=\"ipv4\" source address=\"{source}/32\" port port=\"{port}\" protocol=\"tcp\" accept")
}

#[test]
fn firewalld_for_real_and_offline() {
    let pool = Pool::up("fwfwd");
    let (server, member) = (&pool.server.name, &pool.member);
    start_firewalld(&pool);
    // As a bootstrap would: the agent port open to everyone in the default zone, so that the
    // coordinator reaches the agent at all.
    pool.exec(server, &["firewall-cmd", "--add-port=7420/tcp"]);
    pool.exec(server, &["firewall-cmd", "--permanent", "--add-port=7420/tcp"]);
    pool.start_listeners();
    let ports = [pool.ports(&[member], &[])];

    let started = Instant::now();
    let verdicts = pool.with_agent(async |client| plan(client, &ports).await);
    let closed = "firewalld permanent: close 7420/tcp in the default zone (open to every host there)";
    assert!(verdicts[0].0.contains(closed), "{verdicts:?}");
    pool.with_agent(async |client| converge(client, &ports).await);
    eprintln!("firewalld: plan + apply + plan took {:?}", started.elapsed());
    let mut sources = vec![
        format!("{}/32", pool.server.address),
        format!("{}/32", member.address),
        format!("{}/32", pool.coordinator),
    ];
    sources.sort();
    let mut rules = vec![
        rich(&pool.server.address, "24007-24008"),
        rich(&pool.server.address, "49152-60999"),
        rich(&member.address, "24007-24008"),
        rich(&member.address, "49152-60999"),
        rich(&pool.coordinator, "7420"),
    ];
    rules.sort();
    for permanent in [false, true] {
        assert_eq!(zone(&pool, permanent, "sources"), sources, "permanent: {permanent}");
        assert_eq!(zone(&pool, permanent, "rich-rules"), rules, "permanent: {permanent}");
        assert!(zone(&pool, permanent, "ports").is_empty());
    }
    let listed = pool.exec(server, &["firewall-cmd", "--permanent", "--zone=brickyard", "--list-all"]);
    eprintln!("firewall-cmd --permanent --zone=brickyard --list-all:\n{listed}");
    let started = Instant::now();
    starts(&pool.with_agent(async |client| apply(client, &ports).await), &["ports: unchanged"]);
    eprintln!("firewalld: re-run (no-op) took {:?}", started.elapsed());
    pool.assert_only_the_pool_gets_in();

    // Rules nobody asked for, in both configurations; and client1 leaves the pool.
    let stray = rich(&pool.intruder.address, "24007-24008");
    let add_stray = format!("--add-rich-rule={stray}");
    for scope in [&[][..], &["--permanent"][..]] {
        for add in [add_stray.as_str(), "--add-port=22/tcp"] {
            pool.exec(server, &[&["firewall-cmd"][..], scope, &["--zone=brickyard", add]].concat());
        }
    }
    let alone = [pool.ports(&[], &[])];
    let outcome = pool.with_agent(async |client| apply(client, &alone).await);
    for line in [
        format!("firewalld permanent: remove from zone brickyard (not wanted): {stray}"),
        format!("firewalld runtime: remove source {}/32 from zone brickyard (not wanted)", member.address),
        "firewalld runtime: remove port 22/tcp from zone brickyard".to_owned(),
    ] {
        // The changes are listed as Debug strings.
        assert!(outcome[0].contains(format!("{line:?}").trim_end_matches('"')), "{line:?} not in {outcome:#?}");
    }
    for permanent in [false, true] {
        assert!(!zone(&pool, permanent, "sources").contains(&format!("{}/32", member.address)));
        assert_eq!(zone(&pool, permanent, "rich-rules").len(), 3, "permanent: {permanent}");
        assert!(zone(&pool, permanent, "ports").is_empty());
    }
    pool.assert_blocked(Some(member), 24007);
    starts(&pool.with_agent(async |client| apply(client, &alone).await), &["ports: unchanged"]);

    // firewalld stopped. Not enabled at boot: the task falls back to iptables (plan only).
    pool.exec(server, &["bash", "-c", "kill $(cat /run/firewalld.pid)"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while firewalld_state(&pool) == "running" {
        assert!(Instant::now() < deadline, "firewalld still running 30 s after SIGTERM");
    }
    let verdicts = pool.with_agent(async |client| plan(client, &ports).await);
    assert!(verdicts[0].0.starts_with("ports: would change [\"iptables: create chain BRICKYARD\""), "{verdicts:?}");

    // Enabled at boot (the host's private /etc): firewall-offline-cmd sets the permanent
    // configuration, client1 back in the pool.
    let wants = "/etc/systemd/system/multi-user.target.wants";
    pool.exec(server, &["mkdir", "-p", wants]);
    pool.exec(server, &["ln", "-s", "/lib/systemd/system/firewalld.service", &format!("{wants}/firewalld.service")]);
    let (outcome, verdicts) = pool.with_agent(async |client| (apply(client, &ports).await, plan(client, &ports).await));
    let admitted = format!("firewall-offline-cmd: admit {}/32 to zone brickyard", member.address);
    assert!(outcome[0].starts_with("ports: changed [") && outcome[0].contains(&admitted), "{outcome:?}");
    assert!(verdicts[0].0 == "ports: unchanged", "{verdicts:?}");
    assert!(
        verdicts[0].1.iter().any(|w| w.starts_with("firewalld is enabled at boot but not running")),
        "{verdicts:?}"
    );
    let offline = pool.exec(server, &["firewall-offline-cmd", "--zone=brickyard", "--list-sources"]);
    assert!(offline.contains(&format!("{}/32", member.address)), "{offline}");

    // firewalld starts with what was set offline.
    start_firewalld(&pool);
    assert_eq!(zone(&pool, false, "sources"), sources);
    assert_eq!(zone(&pool, false, "rich-rules"), rules);
    starts(&pool.with_agent(async |client| apply(client, &ports).await), &["ports: unchanged"]);
    pool.assert_only_the_pool_gets_in();
}
