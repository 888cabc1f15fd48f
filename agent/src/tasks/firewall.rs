//! `OpenPorts`: only the pool reaches the pool. glusterd's management ports (24007-24008/tcp),
//! the brick port range glusterd hands out (base-port..max-port from
//! /etc/glusterfs/glusterd.vol; since Gluster 10 bricks take random ports anywhere in it) and,
//! for gluster NFS, 111/tcp+udp and 2049/tcp are admitted from the spec's servers and clients
//! only; the agent port only from the coordinators (`[pool] coordinators`, or else exactly the
//! address this request comes from). Every address is validated (`SourceNet`) before anything
//! runs, and a list of coordinators that would shut out the coordinator asking is refused.
//!
//! Backend, chosen from what the host runs: firewalld when a firewalld process is there and
//! `firewall-cmd --state` says running (zone brickyard, runtime and permanent; see
//! `firewalld`); firewalld's permanent
//! configuration through `firewall-offline-cmd` when firewalld is enabled at boot but not
//! running; otherwise iptables and ip6tables (chain BRICKYARD, saved where the distribution's
//! loader reads it; see `iptables`). Reads glusterd.vol and systemd's enablement links;
//! changes the firewall and the iptables rule files.

mod firewalld;
mod iptables;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use brickyard_proto::types::SourceNet;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::host::runner::{Cmd, Runner};
use crate::host::Context;
use crate::host::{etcfile, process};

/// glusterd's defaults when glusterd.vol does not set them (Gluster 10+).
const DEFAULT_BASE_PORT: u16 = 49152;
const DEFAULT_MAX_PORT: u16 = 60999;
/// The programs this task may use, looked up when it is checked.
const PROGRAMS: &[&str] =
    &["firewall-cmd", "firewall-offline-cmd", "iptables", "iptables-save", "ip6tables", "ip6tables-save"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One port or port range (of a protocol given alongside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    fn one(port: u16) -> Self {
        Self { first: port, last: port }
    }

    /// `24007-24008` (firewalld) or `24007:24008` (iptables).
    fn joined(&self, separator: char) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}{separator}{}", self.first, self.last)
        }
    }
}

/// Some ports of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ports {
    proto: Proto,
    ranges: Vec<PortRange>,
}

/// `24007-24008,49152-60999/tcp`.
impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self.ranges.iter().map(|r| r.joined('-')).collect();
        write!(f, "{}/{}", ranges.join(","), self.proto)
    }
}

/// `source` may open connections to `ports`, because of `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    source: SourceNet,
    ports: Ports,
    why: String,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "accept {} from {} ({})", self.ports, self.source, self.why)
    }
}

/// Who may reach what on this host; everyone else is kept from every port of `closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    grants: Vec<Grant>,
    closed: Vec<Ports>,
}

impl Policy {
    /// The distinct sources of all grants, in grant order.
    fn sources(&self) -> Vec<SourceNet> {
        let mut sources: Vec<SourceNet> = Vec::new();
        for grant in &self.grants {
            if !sources.contains(&grant.source) {
                sources.push(grant.source);
            }
        }
        sources
    }
}

/// The programs found on the host (by name).
#[derive(Debug, Clone, Default)]
struct Programs(BTreeMap<&'static str, PathBuf>);

impl Programs {
    fn installed(runner: &dyn Runner) -> Self {
        Self(PROGRAMS.iter().filter_map(|name| Some((*name, runner.find(name).ok()?))).collect())
    }

    fn get(&self, name: &str) -> Option<&Path> {
        self.0.get(name).map(PathBuf::as_path)
    }
}

/// One thing `apply` does and the changes it makes.
struct Step {
    action: Action,
    changes: Vec<String>,
}

enum Action {
    Run(Cmd),
    /// Write the output of an `iptables-save` to a file.
    Save {
        save: Cmd,
        path: PathBuf,
    },
}

impl Step {
    fn run(cmd: Cmd, change: impl Into<String>) -> Self {
        Self { action: Action::Run(cmd), changes: vec![change.into()] }
    }

    /// This step's plan lines (it has at least one), the first carrying its action.
    fn into_changes(self) -> impl Iterator<Item = FirewallChange> {
        debug_assert!(!self.changes.is_empty(), "a step without a plan line");
        let mut action = Some(self.action);
        self.changes.into_iter().map(move |line| FirewallChange { line, action: action.take() })
    }
}

/// One plan line of OpenPorts. One firewall command may make several changes at once (one
/// `firewall-cmd --zone=brickyard --add-source=A --add-source=B` admits two sources): the
/// first of its lines carries the command, the others none.
pub struct FirewallChange {
    line: String,
    action: Option<Action>,
}

impl fmt::Display for FirewallChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

pub struct OpenPorts {
    nfs: bool,
    pool: Vec<SourceNet>,
    /// `[pool] coordinators`; `None`: not listed, the agent port admits `peer` only.
    coordinators: Option<Vec<SourceNet>>,
    /// The request's source address (the coordinator as this host sees it), if known.
    peer: Option<IpAddr>,
    agent_port: u16,
    /// `/`, or a test's directory standing in for it (files only; programs are the runner's).
    root: PathBuf,
}

fn sources(field: &str, values: &[String]) -> Result<Vec<SourceNet>, TaskError> {
    values.iter().map(|v| SourceNet::new(v).map_err(|e| TaskError::InvalidTask(format!("{field}: {e}")))).collect()
}

impl OpenPorts {
    pub fn from_proto(task: &v1::OpenPorts) -> Result<Self, TaskError> {
        let pool = sources("pool_sources", &task.pool_sources)?;
        if pool.is_empty() {
            return Err(TaskError::InvalidTask(
                "OpenPorts without pool_sources would close gluster's ports to every host of the pool".into(),
            ));
        }
        let coordinators = Some(sources("agent_sources", &task.agent_sources)?).filter(|c| !c.is_empty());
        let agent_port = u16::try_from(task.agent_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| TaskError::InvalidTask(format!("agent_port {} is not a TCP port", task.agent_port)))?;
        Ok(Self { nfs: task.nfs, pool, coordinators, peer: None, agent_port, root: PathBuf::from("/") })
    }

    /// Where the request came from: admitted to the agent port when no coordinators are listed.
    pub fn requested_from(self, peer: Option<IpAddr>) -> Self {
        Self { peer, ..self }
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The brick port range from glusterd.vol, and a warning when glusterd.vol is not there (yet).
    fn brick_ports(&self) -> Result<(PortRange, Option<String>), TaskError> {
        let path = self.path("/etc/glusterfs/glusterd.vol");
        let vol = path.display();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let range = brick_port_range(&text).map_err(|e| TaskError::Conflict(format!("{vol}: {e}")))?;
                Ok((range, None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
                PortRange { first: DEFAULT_BASE_PORT, last: DEFAULT_MAX_PORT },
                Some(format!(
                    "{vol} not found: brick ports {DEFAULT_BASE_PORT}-{DEFAULT_MAX_PORT} (glusterd's defaults)"
                )),
            )),
            Err(e) => Err(TaskError::io(format!("reading {vol}"))(e)),
        }
    }

    /// The grants and closed ports, with warnings; refuses coordinators that would shut out the
    /// coordinator asking.
    fn policy(&self) -> Result<(Policy, Vec<String>), TaskError> {
        let (bricks, warning) = self.brick_ports()?;
        let mut warnings: Vec<String> = warning.into_iter().collect();
        let mut gluster =
            vec![Ports { proto: Proto::Tcp, ranges: vec![PortRange { first: 24007, last: 24008 }, bricks] }];
        if self.nfs {
            gluster[0].ranges.extend([PortRange::one(111), PortRange::one(2049)]);
            gluster.push(Ports { proto: Proto::Udp, ranges: vec![PortRange::one(111)] });
        }
        let agent = Ports { proto: Proto::Tcp, ranges: vec![PortRange::one(self.agent_port)] };
        let port = self.agent_port;
        let (coordinators, why) = match (&self.coordinators, self.peer) {
            (Some(listed), Some(peer)) if !listed.iter().any(|net| net.contains(peer)) => {
                let listed: Vec<String> = listed.iter().map(ToString::to_string).collect();
                return Err(TaskError::Conflict(format!(
                    "the agent port {port} would be closed to this coordinator, which connects from {peer}: \
                     [pool] coordinators ({}) does not include it",
                    listed.join(", ")
                )));
            }
            (Some(listed), _) => (listed.clone(), "[pool] coordinators"),
            (None, Some(peer)) => {
                let source = SourceNet::host(peer);
                warnings.push(format!(
                    "the agent port {port} admits only {source}, where this coordinator connects from \
                     ([pool] coordinators is not set): a coordinator elsewhere is shut out until the spec lists it"
                ));
                (vec![source], "where this coordinator connects from; [pool] coordinators is not set")
            }
            (None, None) => {
                return Err(TaskError::InvalidTask(format!(
                    "no addresses for the agent port {port}: agent_sources is empty and the request's \
                     source address is unknown"
                )))
            }
        };
        let mut grants = Vec::new();
        for source in &self.pool {
            grants.extend(gluster.iter().map(|ports| Grant {
                source: *source,
                ports: ports.clone(),
                why: "a server or client of the pool".into(),
            }));
        }
        grants.extend(coordinators.into_iter().map(|source| Grant { source, ports: agent.clone(), why: why.into() }));
        let mut closed = gluster;
        closed[0].ranges.push(PortRange::one(port));
        Ok((Policy { grants, closed }, warnings))
    }

    /// Whether firewalld starts at boot: its unit is wanted by multi-user.target and not masked.
    fn firewalld_enabled(&self) -> bool {
        let wanted = self.path("/etc/systemd/system/multi-user.target.wants/firewalld.service");
        let masked = std::fs::read_link(self.path("/etc/systemd/system/firewalld.service"))
            .is_ok_and(|target| target == Path::new("/dev/null"));
        wanted.symlink_metadata().is_ok() && !masked
    }

    /// What is missing, in the order to fix it, plus warnings.
    async fn steps(&self, ctx: &Context) -> Result<(Vec<Step>, Vec<String>), TaskError> {
        let (policy, mut warnings) = self.policy()?;
        let programs = Programs::installed(ctx.runner.as_ref());
        // firewall-cmd is a Python program (~0.3 s to start): asked only when a firewalld runs.
        let firewalld_seen = || process::any_alive_named(&self.path("/proc"), "firewalld");
        if let Some(firewall_cmd) = programs.get("firewall-cmd").filter(|_| firewalld_seen()) {
            let state = ctx.runner.output(&Cmd::new(firewall_cmd).arg("--state")).await?;
            if state.success() && state.stdout.trim() == "running" {
                let steps = firewalld::plan(ctx, &firewalld::Mode::Running(firewall_cmd.to_owned()), &policy).await?;
                return Ok((steps, warnings));
            }
        }
        if let Some(offline) = programs.get("firewall-offline-cmd").filter(|_| self.firewalld_enabled()) {
            warnings.push(
                "firewalld is enabled at boot but not running: zone brickyard is set in its permanent \
                 configuration (firewall-offline-cmd) and takes effect when firewalld starts; until then \
                 nothing here keeps other hosts from gluster's ports"
                    .into(),
            );
            let steps = firewalld::plan(ctx, &firewalld::Mode::Offline(offline.to_owned()), &policy).await?;
            return Ok((steps, warnings));
        }
        let families = iptables::families(&programs, &policy, |p| self.path(p), &mut warnings)?;
        let mut steps = Vec::new();
        for family in &families {
            steps.extend(iptables::plan(ctx, family, &policy).await?);
        }
        Ok((steps, warnings))
    }
}

#[async_trait]
impl Task for OpenPorts {
    type Change = FirewallChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<FirewallChange>, TaskError> {
        let (steps, warnings) = self.steps(ctx).await?;
        Ok(Plan { warnings, ..Plan::of(steps.into_iter().flat_map(Step::into_changes).collect()) })
    }

    async fn apply(&self, ctx: &Context, plan: Plan<FirewallChange>) -> Result<Vec<FirewallChange>, TaskError> {
        for change in &plan.changes {
            match &change.action {
                Some(Action::Run(cmd)) => {
                    ctx.runner.run(cmd).await?;
                }
                Some(Action::Save { save, path }) => {
                    let saved = ctx.runner.run(save).await?;
                    etcfile::atomic_write(path, saved.stdout.as_bytes(), 0o600)
                        .map_err(TaskError::io(format!("writing {}", path.display())))?;
                }
                None => {}
            }
        }
        Ok(plan.changes)
    }
}

/// The brick port range set in glusterd.vol (`option base-port N`, `option max-port N`;
/// commented lines ignored), with glusterd's defaults for what is not set.
fn brick_port_range(glusterd_vol: &str) -> Result<PortRange, String> {
    let (mut base, mut max) = (DEFAULT_BASE_PORT, DEFAULT_MAX_PORT);
    for line in glusterd_vol.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (key, value) = match fields.as_slice() {
            ["option", key @ ("base-port" | "max-port"), value] => (*key, *value),
            _ => continue,
        };
        let port: u16 = value.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid {key} {value:?}"))?;
        if key == "base-port" {
            base = port;
        } else {
            max = port;
        }
    }
    if base > max {
        return Err(format!("base-port {base} is above max-port {max}"));
    }
    Ok(PortRange { first: base, last: max })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::{Argv, FakeRunner};
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    /// glusterd.vol as Debian's glusterfs-server 10.3 ships it.
    const DEBIAN_GLUSTERD_VOL: &str = "volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport.socket.listen-port 24007
#   option base-port 49152
    option max-port  60999
end-volume
";
    const ACCEPT_GLUSTER: &str = "-p tcp -m multiport --dports 24007:24008,49152:60999 -j ACCEPT";
    const DROP_NEW: &str =
        "-p tcp -m multiport --dports 24007:24008,49152:60999,7420 -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP";

    #[test]
    fn reads_brick_port_range() {
        let range = |text: &str| brick_port_range(text).map(|r| (r.first, r.last));
        assert_eq!(range(DEBIAN_GLUSTERD_VOL), Ok((49152, 60999)));
        assert_eq!(range(""), Ok((49152, 60999)));
        let custom = DEBIAN_GLUSTERD_VOL.replace("#   option base-port 49152", "  option base-port 50000");
        assert_eq!(range(&custom.replace("60999", "50100")), Ok((50000, 50100)));
        assert!(range(&custom.replace("60999", "40000")).unwrap_err().contains("above max-port"));
        assert!(range("option max-port 70000").unwrap_err().contains("invalid max-port"));
    }

    fn proto(pool: &[&str], coordinators: &[&str]) -> v1::OpenPorts {
        v1::OpenPorts {
            nfs: false,
            pool_sources: pool.iter().map(|s| (*s).to_owned()).collect(),
            agent_sources: coordinators.iter().map(|s| (*s).to_owned()).collect(),
            agent_port: 7420,
        }
    }

    /// The task on a test root (a directory holding Debian's glusterd.vol), and the host's
    /// programs.
    struct Host {
        task: OpenPorts,
        programs: Vec<&'static str>,
    }

    impl std::ops::Deref for Host {
        type Target = OpenPorts;

        fn deref(&self) -> &OpenPorts {
            &self.task
        }
    }

    impl Host {
        /// A runner with these programs (firewall-cmd and firewall-offline-cmd in /usr/bin, the
        /// others in /usr/sbin) that answers `script` in order, each command argv for argv.
        fn runner(&self, script: &[(&str, Output)]) -> Context {
            let installed = self.programs.iter().fold(FakeRunner::default(), |fake, name| {
                let dir = if name.starts_with("firewall") { "/usr/bin" } else { "/usr/sbin" };
                fake.installed(&format!("{dir}/{name}"))
            });
            Context::direct(
                script.iter().fold(installed, |fake, (cmd, out)| fake.expect_output(argv(cmd), out.clone())),
            )
        }
    }

    /// A command line as the scripts write it. firewall-cmd's arguments are all `--options`
    /// and a rich rule holds spaces but never ` --`, so its words are split there.
    fn argv(line: &str) -> Argv {
        if !line.starts_with("/usr/bin/firewall") {
            return Argv::from(line);
        }
        let mut words = line.split(" --");
        let program = words.next().unwrap_or_default().to_owned();
        let words: Vec<String> = std::iter::once(program).chain(words.map(|w| format!("--{w}"))).collect();
        Argv::from(words.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
    }

    fn task(dir: &Path, task: &v1::OpenPorts, peer: &str, programs: &[&'static str]) -> Host {
        let vol = dir.join("etc/glusterfs/glusterd.vol");
        std::fs::create_dir_all(vol.parent().unwrap()).unwrap();
        std::fs::write(vol, DEBIAN_GLUSTERD_VOL).unwrap();
        // A firewalld process, so that firewall-cmd is asked whether it runs.
        let proc = dir.join("proc/4242");
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::write(proc.join("comm"), "firewalld\n").unwrap();
        std::fs::write(proc.join("stat"), "4242 (firewalld) S 1").unwrap();
        std::fs::write(proc.join("cmdline"), "/usr/bin/python3\0/usr/sbin/firewalld\0--nofork\0--nopid\0").unwrap();
        let task = OpenPorts {
            root: dir.to_owned(),
            ..OpenPorts::from_proto(task).unwrap().requested_from(peer.parse().ok())
        };
        Host { task, programs: programs.to_vec() }
    }

    fn exit(code: i32, stdout: &str) -> Output {
        Output { code: Some(code), stdout: stdout.into(), stderr: String::new() }
    }

    #[test]
    fn every_source_is_validated() {
        let err = |t: &v1::OpenPorts| OpenPorts::from_proto(t).err().expect("refused").to_string();
        let e = err(&proto(&["198.18.0.11", "198.18.0.0/16 -j ACCEPT"], &[]));
        assert!(e.starts_with("pool_sources: invalid address or network \"198.18.0.0/16 -j ACCEPT\""), "{e}");
        let e = err(&proto(&["198.18.0.11"], &["10.0.0.1/8"]));
        assert!(e.contains("agent_sources") && e.contains("the network is 10.0.0.0/8"), "{e}");
        assert!(err(&proto(&[], &[])).contains("without pool_sources"));
        for port in [0, 65536, 70000, u32::MAX] {
            let e = err(&v1::OpenPorts { agent_port: port, ..proto(&["198.18.0.11"], &[]) });
            assert!(e.contains(&format!("agent_port {port} is not a TCP port")), "{e}");
        }
        assert!(OpenPorts::from_proto(&v1::OpenPorts { agent_port: 65535, ..proto(&["198.18.0.11"], &[]) }).is_ok());
    }

    #[test]
    fn policy_says_who_reaches_what_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let (policy, warnings) =
            task(dir.path(), &proto(&["198.18.0.11", "2001:db8::21"], &[]), "::ffff:198.18.0.1", &[]).policy().unwrap();
        let grants: Vec<String> = policy.grants.iter().map(ToString::to_string).collect();
        assert_eq!(
            grants,
            [
                "accept 24007-24008,49152-60999/tcp from 198.18.0.11/32 (a server or client of the pool)",
                "accept 24007-24008,49152-60999/tcp from 2001:db8::21/128 (a server or client of the pool)",
                "accept 7420/tcp from 198.18.0.1/32 (where this coordinator connects from; [pool] coordinators is not set)",
            ]
        );
        assert_eq!(
            policy.closed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["24007-24008,49152-60999,7420/tcp"]
        );
        assert!(warnings[0].starts_with("the agent port 7420 admits only 198.18.0.1/32"), "{warnings:?}");

        let nfs = v1::OpenPorts { nfs: true, ..proto(&["198.18.0.11"], &["198.18.0.0/24"]) };
        let (policy, warnings) = task(dir.path(), &nfs, "198.18.0.1", &[]).policy().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let grants: Vec<String> = policy.grants.iter().map(ToString::to_string).collect();
        assert_eq!(
            grants,
            [
                "accept 24007-24008,49152-60999,111,2049/tcp from 198.18.0.11/32 (a server or client of the pool)",
                "accept 111/udp from 198.18.0.11/32 (a server or client of the pool)",
                "accept 7420/tcp from 198.18.0.0/24 ([pool] coordinators)",
            ]
        );
        assert_eq!(
            policy.closed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["24007-24008,49152-60999,111,2049,7420/tcp", "111/udp"]
        );
    }

    #[test]
    fn coordinators_that_shut_out_this_one_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), &proto(&["198.18.0.11"], &["10.0.0.0/8", "2001:db8::1"]), "198.18.0.1", &[]);
        let err = t.policy().unwrap_err();
        assert!(matches!(err, TaskError::Conflict(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the agent port 7420 would be closed to this coordinator, which connects from 198.18.0.1: \
             [pool] coordinators (10.0.0.0/8, 2001:db8::1/128) does not include it"
        );
        let unknown = task(dir.path(), &proto(&["198.18.0.11"], &[]), "", &[]).policy().unwrap_err().to_string();
        assert!(unknown.contains("source address is unknown"), "{unknown}");
    }

    /// A fresh host with iptables and ip6tables and Debian's /etc/iptables: chain BRICKYARD
    /// built in both families, jumped to from INPUT, saved to rules.v4 and rules.v6; then
    /// nothing to do.
    #[tokio::test]
    async fn iptables_builds_the_chain_in_both_families_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let programs = ["iptables", "iptables-save", "ip6tables", "ip6tables-save"];
        let t = task(dir.path(), &proto(&["198.18.0.11", "198.18.0.21", "2001:db8::21"], &[]), "198.18.0.1", &programs);
        std::fs::create_dir(dir.path().join("etc/iptables")).unwrap();
        let empty = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n";
        let v4_chain = [
            "-A BRICKYARD -i lo -j RETURN".to_owned(),
            format!("-A BRICKYARD -s 198.18.0.11/32 {ACCEPT_GLUSTER}"),
            format!("-A BRICKYARD -s 198.18.0.21/32 {ACCEPT_GLUSTER}"),
            "-A BRICKYARD -s 198.18.0.1/32 -p tcp -m multiport --dports 7420 -j ACCEPT".to_owned(),
            format!("-A BRICKYARD {DROP_NEW}"),
        ];
        let v6_chain = [
            "-A BRICKYARD -i lo -j RETURN".to_owned(),
            format!("-A BRICKYARD -s 2001:db8::21/128 {ACCEPT_GLUSTER}"),
            format!("-A BRICKYARD {DROP_NEW}"),
        ];
        let saved = |chain: &[String]| {
            format!(
                "*filter\n:INPUT ACCEPT [0:0]\n:BRICKYARD - [0:0]\n-A INPUT -j BRICKYARD\n{}\nCOMMIT\n",
                chain.join("\n")
            )
        };
        let inserts = |program: &str, chain: &[String]| -> Vec<String> {
            chain.iter().enumerate().map(|(i, l)| format!("{program} -w -I BRICKYARD {} {}", i + 1, &l[13..])).collect()
        };
        let mut commands = vec!["/usr/sbin/iptables -w -S".to_owned(), "/usr/sbin/ip6tables -w -S".to_owned()];
        commands.push("/usr/sbin/iptables -w -N BRICKYARD".into());
        commands.extend(inserts("/usr/sbin/iptables", &v4_chain));
        commands.extend(["/usr/sbin/iptables -w -I INPUT 1 -j BRICKYARD".into(), "/usr/sbin/iptables-save".into()]);
        commands.push("/usr/sbin/ip6tables -w -N BRICKYARD".into());
        commands.extend(inserts("/usr/sbin/ip6tables", &v6_chain));
        commands.extend(["/usr/sbin/ip6tables -w -I INPUT 1 -j BRICKYARD".into(), "/usr/sbin/ip6tables-save".into()]);
        let listing = |chain: &[String]| format!("{empty}-N BRICKYARD\n-A INPUT -j BRICKYARD\n{}\n", chain.join("\n"));
        let (v4, v6) = (listing(&v4_chain), listing(&v6_chain));
        let in_place = [("/usr/sbin/iptables -w -S", exit(0, &v4)), ("/usr/sbin/ip6tables -w -S", exit(0, &v6))];
        let script: Vec<(&str, Output)> = commands
            .iter()
            .map(|c| {
                let out = match c.as_str() {
                    "/usr/sbin/iptables -w -S" | "/usr/sbin/ip6tables -w -S" => empty.to_owned(),
                    "/usr/sbin/iptables-save" => saved(&v4_chain),
                    "/usr/sbin/ip6tables-save" => saved(&v6_chain),
                    _ => String::new(),
                };
                (c.as_str(), exit(0, &out))
            })
            .collect();
        // Plan (the two listings), apply (which plans again first), plan: all in place.
        let converging: Vec<(&str, Output)> =
            script[..2].iter().chain(&script).chain(&in_place).map(|(c, o)| (*c, o.clone())).collect();
        let (_, done) = converges(&t.task, &t.runner(&converging)).await;
        assert_eq!(done.len(), 1 + 5 + 2 + 1 + 3 + 2, "{done:#?}");
        assert_eq!(done[0], "iptables: create chain BRICKYARD");
        assert_eq!(
            done[2],
            "iptables: accept 24007-24008,49152-60999/tcp from 198.18.0.11/32 (a server or client of the pool)"
        );
        assert_eq!(done[5], "iptables: drop new connections to 24007-24008,49152-60999,7420/tcp from everyone else");
        assert_eq!(done[6], "iptables: send INPUT through chain BRICKYARD first (no later REJECT can shadow it)");
        assert_eq!(
            done[7],
            format!("iptables: save the rules to {}/etc/iptables/rules.v4 (iptables-save)", dir.path().display())
        );
        assert_eq!(
            done[10],
            "ip6tables: accept 24007-24008,49152-60999/tcp from 2001:db8::21/128 (a server or client of the pool)"
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("etc/iptables/rules.v6")).unwrap(), saved(&v6_chain));

        // Everything in place and saved: two listings, no change; the warning about 7420 stays.
        let check = t.check(&t.runner(&in_place)).await.unwrap();
        assert!(check.changes.is_empty() && check.warnings.len() == 1, "{check:?}");
        assert!(check.warnings[0].contains("where this coordinator connects from"), "{check:?}");
    }

    /// A host left the pool, another joined, and INPUT still holds an earlier version's rules
    /// open to everyone: the stale rule goes by number, the new one goes in its place, the old
    /// INPUT rules go; no rule files and no ip6tables, so two warnings.
    #[tokio::test]
    async fn iptables_follows_the_pool_and_removes_old_rules() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(
            dir.path(),
            &proto(&["198.18.0.11", "198.18.0.21"], &["198.18.0.1"]),
            "198.18.0.1",
            &["iptables", "iptables-save"],
        );
        let old_management = "-A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment brickyard -j ACCEPT";
        let listing = format!(
            "-P INPUT ACCEPT\n-N BRICKYARD\n{old_management}\n-A INPUT -j BRICKYARD\n\
             -A INPUT -p tcp -m tcp --dport 49152:60999 -m comment --comment \"brickyard\" -j ACCEPT\n\
             -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A BRICKYARD -i lo -j RETURN\n\
             -A BRICKYARD -s 198.18.0.11/32 {ACCEPT_GLUSTER}\n-A BRICKYARD -s 198.18.0.99/32 {ACCEPT_GLUSTER}\n\
             -A BRICKYARD -s 198.18.0.1/32 -p tcp -m multiport --dports 7420 -j ACCEPT\n-A BRICKYARD {DROP_NEW}\n"
        );
        let add = format!("/usr/sbin/iptables -w -I BRICKYARD 3 -s 198.18.0.21/32 {ACCEPT_GLUSTER}");
        let drop_old = format!("/usr/sbin/iptables -w -D INPUT {}", &old_management[9..]);
        let script = [
            ("/usr/sbin/iptables -w -S", exit(0, &listing)),
            ("/usr/sbin/iptables -w -D BRICKYARD 3", exit(0, "")),
            (add.as_str(), exit(0, "")),
            (drop_old.as_str(), exit(0, "")),
            ("/usr/sbin/iptables -w -D INPUT -p tcp -m tcp --dport 49152:60999 -m comment --comment brickyard -j ACCEPT", exit(0, "")),
        ];
        let check = t.check(&t.runner(&script[..1])).await.unwrap();
        assert_eq!(
            check.changes[..2],
            [
                format!("iptables: remove from chain BRICKYARD (not wanted): -A BRICKYARD -s 198.18.0.99/32 {ACCEPT_GLUSTER}"),
                "iptables: accept 24007-24008,49152-60999/tcp from 198.18.0.21/32 (a server or client of the pool)".to_owned(),
            ]
        );
        assert!(check.changes[2].starts_with("iptables: remove the rule an earlier Brickyard put into INPUT: -A INPUT"));
        assert_eq!(check.changes.len(), 4);
        assert!(check.warnings[0].starts_with("ip6tables is not installed"), "{check:?}");
        assert!(check.warnings[1].starts_with("iptables rules are runtime only"), "{check:?}");
        assert_eq!(t.run(&t.runner(&script)).await.unwrap(), check.changes);
    }

    #[tokio::test]
    async fn ipv6_sources_need_ip6tables() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(
            dir.path(),
            &proto(&["198.18.0.11", "2001:db8::21"], &[]),
            "198.18.0.1",
            &["iptables", "iptables-save"],
        );
        let err = t.check(&t.runner(&[])).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported on this host: the pool has IPv6 sources (2001:db8::21/128) but ip6tables (with \
             ip6tables-save) is not installed"
        );
    }

    fn rich(source: &str, port: &str) -> String {
        let family = if source.contains(':') { "ipv6" } else { "ipv4" };
        format!("rule family=\"{family}\" source address=\"{source}\" port port=\"{port}\" protocol=\"tcp\" accept")
    }

    /// firewalld running, no zone yet, the default zone opened gluster's ports to everyone
    /// (an earlier version): zone brickyard made in the permanent configuration, filled,
    /// the default zone closed, then a reload brings it into the runtime.
    #[tokio::test]
    async fn firewalld_creates_the_zone_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(
            dir.path(),
            &proto(&["198.18.0.11", "198.18.0.21"], &[]),
            "198.18.0.1",
            &["firewall-cmd", "iptables", "iptables-save"],
        );
        let add_rules = format!(
            "/usr/bin/firewall-cmd --permanent --zone=brickyard {}",
            [
                rich("198.18.0.11/32", "24007-24008"),
                rich("198.18.0.11/32", "49152-60999"),
                rich("198.18.0.21/32", "24007-24008"),
                rich("198.18.0.21/32", "49152-60999"),
                rich("198.18.0.1/32", "7420"),
            ]
            .map(|r| format!("--add-rich-rule={r}"))
            .join(" ")
        );
        let script = [
            ("/usr/bin/firewall-cmd --state", exit(0, "running\n")),
            ("/usr/bin/firewall-cmd --permanent --info-zone=brickyard", exit(112, "")),
            ("/usr/bin/firewall-cmd --permanent --list-ports", exit(0, "8080/tcp 24007-24008/tcp 49152-60999/tcp\n")),
            ("/usr/bin/firewall-cmd --info-zone=brickyard", exit(112, "")),
            ("/usr/bin/firewall-cmd --permanent --new-zone=brickyard", exit(0, "success\n")),
            (
                "/usr/bin/firewall-cmd --permanent --zone=brickyard --add-source=198.18.0.11/32 \
                 --add-source=198.18.0.21/32 --add-source=198.18.0.1/32",
                exit(0, "success\n"),
            ),
            (add_rules.as_str(), exit(0, "success\n")),
            (
                "/usr/bin/firewall-cmd --permanent --remove-port=24007-24008/tcp --remove-port=49152-60999/tcp",
                exit(0, "success\n"),
            ),
            ("/usr/bin/firewall-cmd --reload", exit(0, "success\n")),
        ];
        let done = t.run(&t.runner(&script)).await.unwrap();
        assert!(
            done[0].starts_with("firewalld permanent: create zone brickyard (traffic from its sources"),
            "{done:#?}"
        );
        assert_eq!(
            done[1],
            "firewalld permanent: admit 198.18.0.11/32 to zone brickyard (a server or client of the pool)"
        );
        assert_eq!(
            done[3],
            "firewalld permanent: admit 198.18.0.1/32 to zone brickyard (where this coordinator connects from; \
             [pool] coordinators is not set)"
        );
        assert_eq!(
            done[4],
            "firewalld permanent: accept 24007-24008/tcp from 198.18.0.11/32 (a server or client of the pool) in zone brickyard"
        );
        assert_eq!(
            done[9],
            "firewalld permanent: close 24007-24008/tcp in the default zone (open to every host there)"
        );
        assert!(
            done[11].starts_with("firewalld runtime: reload, so that the runtime configuration gets zone brickyard")
        );
        assert_eq!(done.len(), 12);
    }

    /// The zone exists: what is missing is added, what is not wanted (a host gone from the
    /// spec, a plain port, an unknown rule) removed, the operator's services kept.
    #[tokio::test]
    async fn firewalld_replaces_what_the_zone_should_not_have() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path(), &proto(&["198.18.0.11"], &["198.18.0.1"]), "198.18.0.1", &["firewall-cmd"]);
        let wanted = [
            rich("198.18.0.11/32", "24007-24008"),
            rich("198.18.0.11/32", "49152-60999"),
            rich("198.18.0.1/32", "7420"),
        ];
        let info = |sources: &str, ports: &str, rules: &[String]| {
            format!(
                "brickyard (active)\n  target: default\n  sources: {sources}\n  services: ssh\n  ports: {ports}\n  \
                 forward-ports: \n  rich rules: \n{}",
                rules.iter().map(|r| format!("\t{r}\n")).collect::<String>()
            )
        };
        let permanent = info("198.18.0.11 198.18.0.1/32", "", &wanted);
        let gone = rich("198.18.0.99/32", "24007-24008");
        let runtime =
            info("198.18.0.11/32 198.18.0.99/32 ipset:x", "24007-24008/tcp", &[wanted[0].clone(), gone.clone()]);
        let add_rules = format!(
            "/usr/bin/firewall-cmd --zone=brickyard --add-rich-rule={} --add-rich-rule={}",
            wanted[1], wanted[2]
        );
        let remove_rule = format!("/usr/bin/firewall-cmd --zone=brickyard --remove-rich-rule={gone}");
        let script = [
            ("/usr/bin/firewall-cmd --state", exit(0, "running\n")),
            ("/usr/bin/firewall-cmd --permanent --info-zone=brickyard", exit(0, &permanent)),
            ("/usr/bin/firewall-cmd --permanent --list-ports", exit(0, "\n")),
            ("/usr/bin/firewall-cmd --info-zone=brickyard", exit(0, &runtime)),
            ("/usr/bin/firewall-cmd --list-ports", exit(0, "\n")),
            ("/usr/bin/firewall-cmd --zone=brickyard --add-source=198.18.0.1/32", exit(0, "success\n")),
            (add_rules.as_str(), exit(0, "success\n")),
            (remove_rule.as_str(), exit(0, "success\n")),
            (
                "/usr/bin/firewall-cmd --zone=brickyard --remove-source=198.18.0.99/32 --remove-source=ipset:x",
                exit(0, "success\n"),
            ),
            ("/usr/bin/firewall-cmd --zone=brickyard --remove-port=24007-24008/tcp", exit(0, "success\n")),
        ];
        let done = t.run(&t.runner(&script)).await.unwrap();
        assert_eq!(done[3], format!("firewalld runtime: remove from zone brickyard (not wanted): {gone}"));
        assert_eq!(done[4], "firewalld runtime: remove source 198.18.0.99/32 from zone brickyard (not wanted)");
        assert!(
            done[6].starts_with("firewalld runtime: remove port 24007-24008/tcp from zone brickyard (it would admit")
        );
        assert_eq!(done.len(), 7, "{done:#?}");
    }

    /// firewalld stopped: enabled at boot → its permanent configuration, offline; not enabled
    /// (or masked) → iptables.
    #[tokio::test]
    async fn firewalld_stopped_is_configured_offline_only_when_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let programs = ["firewall-cmd", "firewall-offline-cmd", "iptables", "iptables-save"];
        let t = task(dir.path(), &proto(&["198.18.0.11"], &["198.18.0.1"]), "198.18.0.1", &programs);
        let not_running = exit(252, "not running\n");
        let ctx = t.runner(&[
            ("/usr/bin/firewall-cmd --state", not_running.clone()),
            ("/usr/sbin/iptables -w -S", exit(0, "")),
        ]);
        assert!(t.check(&ctx).await.unwrap().changes[0].starts_with("iptables: "));

        let units = dir.path().join("etc/systemd/system");
        std::fs::create_dir_all(units.join("multi-user.target.wants")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/systemd/system/firewalld.service",
            units.join("multi-user.target.wants/firewalld.service"),
        )
        .unwrap();
        let script = [
            ("/usr/bin/firewall-cmd --state", not_running.clone()),
            ("/usr/bin/firewall-offline-cmd --info-zone=brickyard", exit(112, "")),
            ("/usr/bin/firewall-offline-cmd --list-ports", exit(0, "\n")),
        ];
        let check = t.check(&t.runner(&script)).await.unwrap();
        assert!(check.changes[0].starts_with("firewall-offline-cmd: create zone brickyard"), "{check:?}");
        assert_eq!(
            check.changes[1],
            "firewall-offline-cmd: admit 198.18.0.11/32 to zone brickyard (a server or client of the pool)"
        );
        assert_eq!(check.changes.len(), 1 + 2 + 3);
        assert!(check.warnings[0].starts_with("firewalld is enabled at boot but not running"), "{check:?}");

        std::os::unix::fs::symlink("/dev/null", units.join("firewalld.service")).unwrap();
        let ctx =
            t.runner(&[("/usr/bin/firewall-cmd --state", not_running), ("/usr/sbin/iptables -w -S", exit(0, ""))]);
        assert!(t.check(&ctx).await.unwrap().changes[0].starts_with("iptables: "), "masked: not used");

        // No firewalld process at all: firewall-cmd is not even asked.
        std::fs::remove_dir_all(dir.path().join("proc")).unwrap();
        let ctx = t.runner(&[("/usr/sbin/iptables -w -S", exit(0, ""))]);
        assert!(t.check(&ctx).await.unwrap().changes[0].starts_with("iptables: "), "no firewalld: iptables");
    }
}
