//! `OpenPorts`: opens glusterd's management ports (24007-24008/tcp), the brick port range that
//! glusterd hands out (base-port..max-port from /etc/glusterfs/glusterd.vol; since Gluster 10
//! bricks take random ports anywhere in it) and, for gluster NFS, 111/tcp+udp and 2049/tcp.
//!
//! Backend, chosen from what the host runs: firewalld when `firewall-cmd --state` says running
//! (ports added to the runtime and the permanent configuration of the default zone); otherwise
//! iptables: each rule is looked up with `iptables -C` and inserted at the top of INPUT (so a
//! trailing REJECT, as in RHEL's stock rules, cannot shadow it) only when absent, marked
//! `-m comment --comment brickyard`; marked rules no longer wanted (another brick range, NFS
//! turned off) are deleted. iptables rules are persisted where the distribution's
//! loader reads them, if it is installed: /etc/sysconfig/iptables (RHEL iptables-services,
//! when the file exists) or /etc/iptables/rules.v4 (Debian iptables-persistent, when
//! /etc/iptables exists), written atomically from `iptables-save`. Otherwise the rules are
//! runtime only and the check says so. Reads glusterd.vol; changes the firewall and those files.

use std::fmt;
use std::path::{Path, PathBuf};

use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::etcfile;
use crate::runner::{find_program, Cmd, CommandError};

const GLUSTERD_VOL: &str = "/etc/glusterfs/glusterd.vol";
const SYSCONFIG_IPTABLES: &str = "/etc/sysconfig/iptables";
const DEBIAN_RULES_V4: &str = "/etc/iptables/rules.v4";
/// glusterd's defaults when glusterd.vol does not set them (Gluster 10+).
const DEFAULT_BASE_PORT: u16 = 49152;
const DEFAULT_MAX_PORT: u16 = 60999;
/// Marks the iptables rules this task adds.
const COMMENT: &str = "brickyard";

/// One port or port range of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortRange {
    proto: &'static str,
    first: u16,
    last: u16,
}

impl PortRange {
    /// The iptables rule body after `-I/-C INPUT`, exactly as `iptables-save` prints it.
    fn iptables_spec(&self) -> Vec<String> {
        let dport =
            if self.first == self.last { self.first.to_string() } else { format!("{}:{}", self.first, self.last) };
        ["-p", self.proto, "-m", self.proto, "--dport", &dport, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]
            .map(str::to_owned)
            .to_vec()
    }

    /// The rule as an `iptables-save` line.
    fn saved_line(&self) -> String {
        format!("-A INPUT {}", self.iptables_spec().join(" "))
    }
}

/// firewalld's notation: `24007-24008/tcp`, `111/udp`.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}/{}", self.first, self.proto)
        } else {
            write!(f, "{}-{}/{}", self.first, self.last, self.proto)
        }
    }
}

/// The brick port range set in glusterd.vol (`option base-port N`, `option max-port N`;
/// commented lines ignored), with glusterd's defaults for what is not set.
fn brick_port_range(glusterd_vol: &str) -> Result<(u16, u16), String> {
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
    Ok((base, max))
}

/// The rules marked as ours in `iptables -S INPUT` / iptables-save text, as `-A INPUT ...`
/// lines with quotes dropped (older iptables print every comment quoted).
fn marked_rules(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|line| line.trim_end().replace('"', ""))
        .filter(|line| {
            line.starts_with("-A INPUT ")
                && line.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["--comment", COMMENT])
        })
        .collect()
}

fn wanted_ports(nfs: bool, (base, max): (u16, u16)) -> Vec<PortRange> {
    let tcp = |first, last| PortRange { proto: "tcp", first, last };
    let mut ports = vec![tcp(24007, 24008), tcp(base, max)];
    if nfs {
        ports.extend([tcp(111, 111), PortRange { proto: "udp", first: 111, last: 111 }, tcp(2049, 2049)]);
    }
    ports
}

/// Where iptables rules survive a reboot on this host, if anywhere.
fn iptables_persistence(sysconfig: &Path, debian_rules: &Path) -> Option<PathBuf> {
    if sysconfig.is_file() {
        Some(sysconfig.to_owned())
    } else if debian_rules.parent().is_some_and(Path::is_dir) {
        Some(debian_rules.to_owned())
    } else {
        None
    }
}

pub struct OpenPorts {
    nfs: bool,
    glusterd_vol: PathBuf,
    sysconfig_iptables: PathBuf,
    debian_rules_v4: PathBuf,
}

enum Backend {
    Firewalld(PathBuf),
    Iptables { iptables: PathBuf, save_to: Option<PathBuf> },
}

/// One thing to do: run a command, or write `iptables-save`'s output to a file.
enum Step {
    Run(Cmd),
    Save { iptables_save: Cmd, path: PathBuf },
}

impl OpenPorts {
    pub fn from_proto(task: &v1::OpenPorts) -> Result<Self, TaskError> {
        Ok(Self {
            nfs: task.nfs,
            glusterd_vol: PathBuf::from(GLUSTERD_VOL),
            sysconfig_iptables: PathBuf::from(SYSCONFIG_IPTABLES),
            debian_rules_v4: PathBuf::from(DEBIAN_RULES_V4),
        })
    }

    /// The ports to open, and a warning when glusterd.vol is not there (yet).
    fn ports(&self) -> Result<(Vec<PortRange>, Option<String>), TaskError> {
        let vol = self.glusterd_vol.display();
        match std::fs::read_to_string(&self.glusterd_vol) {
            Ok(text) => {
                let range = brick_port_range(&text).map_err(|e| TaskError::Conflict(format!("{vol}: {e}")))?;
                Ok((wanted_ports(self.nfs, range), None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
                wanted_ports(self.nfs, (DEFAULT_BASE_PORT, DEFAULT_MAX_PORT)),
                Some(format!(
                    "{vol} not found: brick ports {DEFAULT_BASE_PORT}-{DEFAULT_MAX_PORT} (glusterd's defaults)"
                )),
            )),
            Err(e) => Err(TaskError::io(format!("reading {vol}"))(e)),
        }
    }

    async fn backend(&self, ctx: &Context) -> Result<Backend, TaskError> {
        if let Ok(firewall_cmd) = find_program("firewall-cmd") {
            let state = ctx.runner.output(&Cmd::new(&firewall_cmd).arg("--state")).await?;
            if state.success() && state.stdout.trim() == "running" {
                return Ok(Backend::Firewalld(firewall_cmd));
            }
        }
        let iptables = find_program("iptables").map_err(|_| {
            TaskError::Unsupported(
                "no firewall to configure: firewalld is not running and iptables is not installed".into(),
            )
        })?;
        Ok(Backend::Iptables {
            iptables,
            save_to: iptables_persistence(&self.sysconfig_iptables, &self.debian_rules_v4),
        })
    }

    /// What is missing, in the order to fix it, plus warnings.
    async fn plan(&self, ctx: &Context) -> Result<(Vec<(Step, String)>, Vec<String>), TaskError> {
        let (ports, warning) = self.ports()?;
        let mut warnings: Vec<String> = warning.into_iter().collect();
        let mut steps = Vec::new();
        match self.backend(ctx).await? {
            Backend::Firewalld(firewall_cmd) => steps = firewalld_steps(ctx, &firewall_cmd, &ports).await?,
            Backend::Iptables { iptables, save_to } => {
                for port in &ports {
                    let check = Cmd::new(&iptables).args(["-w", "-C", "INPUT"]).args(port.iptables_spec());
                    let out = ctx.runner.output(&check).await?;
                    match out.code {
                        Some(0) => {}
                        Some(1) => steps.push((
                            Step::Run(Cmd::new(&iptables).args(["-w", "-I", "INPUT"]).args(port.iptables_spec())),
                            format!("iptables: accept {port} in INPUT (comment {COMMENT})"),
                        )),
                        _ => return Err(failed(&check, out)),
                    }
                }
                let wanted: Vec<String> = ports.iter().map(PortRange::saved_line).collect();
                let listed = ctx.runner.run(&Cmd::new(&iptables).args(["-w", "-S", "INPUT"])).await?;
                for stale in marked_rules(&listed.stdout).into_iter().filter(|r| !wanted.contains(r)) {
                    let spec: Vec<String> = stale.split_whitespace().skip(2).map(str::to_owned).collect();
                    steps.push((
                        Step::Run(Cmd::new(&iptables).args(["-w", "-D", "INPUT"]).args(spec)),
                        format!("iptables: remove the rule no longer wanted: {stale}"),
                    ));
                }
                match save_to {
                    Some(path) => {
                        let saved = etcfile::read_or_empty(&path)
                            .map_err(TaskError::io(format!("reading {}", path.display())))?;
                        let mut saved = marked_rules(&saved);
                        saved.sort();
                        let mut wanted = wanted;
                        wanted.sort();
                        if saved != wanted {
                            let what = format!("save the iptables rules to {} (iptables-save)", path.display());
                            steps.push((
                                Step::Save { iptables_save: Cmd::new(find_program("iptables-save")?), path },
                                what,
                            ));
                        }
                    }
                    None => warnings.push(format!(
                        "iptables rules are runtime only: neither {} nor {} is installed here \
                         (iptables-services / iptables-persistent), so nothing reloads them at boot",
                        self.sysconfig_iptables.display(),
                        self.debian_rules_v4.parent().unwrap_or(Path::new("/")).display()
                    )),
                }
            }
        }
        Ok((steps, warnings))
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let (steps, warnings) = self.plan(ctx).await?;
        Ok(Check { changes: steps.into_iter().map(|(_, what)| what).collect(), warnings })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let (steps, _) = self.plan(ctx).await?;
        let mut done = Vec::with_capacity(steps.len());
        for (step, what) in steps {
            match step {
                Step::Run(cmd) => {
                    ctx.runner.run(&cmd).await?;
                }
                Step::Save { iptables_save, path } => {
                    let saved = ctx.runner.run(&iptables_save).await?;
                    etcfile::atomic_write(&path, saved.stdout.as_bytes(), 0o600)
                        .map_err(TaskError::io(format!("writing {}", path.display())))?;
                }
            }
            done.push(what);
        }
        Ok(done)
    }
}

/// The firewalld ports missing from the runtime or the permanent configuration (default zone).
async fn firewalld_steps(
    ctx: &Context,
    firewall_cmd: &Path,
    ports: &[PortRange],
) -> Result<Vec<(Step, String)>, TaskError> {
    let mut steps = Vec::new();
    for permanent in [false, true] {
        let scope = if permanent { "permanent" } else { "runtime" };
        for port in ports {
            let flag = |verb: &str| {
                let mut args = if permanent { vec!["--permanent".to_owned()] } else { Vec::new() };
                args.push(format!("--{verb}-port={port}"));
                args
            };
            let query = Cmd::new(firewall_cmd).args(flag("query"));
            let out = ctx.runner.output(&query).await?;
            match out.code {
                Some(0) => {}
                Some(1) => steps.push((
                    Step::Run(Cmd::new(firewall_cmd).args(flag("add"))),
                    format!("firewalld: open {port} ({scope})"),
                )),
                _ => return Err(failed(&query, out)),
            }
        }
    }
    Ok(steps)
}

fn failed(cmd: &Cmd, out: crate::runner::Output) -> TaskError {
    TaskError::Command(CommandError::Failed {
        cmd: cmd.display(),
        code: out.code,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fake::FakeRunner;
    use crate::runner::Output;
    use crate::tasks::ServiceManager;
    use std::sync::Arc;

    /// glusterd.vol as Debian's glusterfs-server 10.3 ships it.
    const DEBIAN_GLUSTERD_VOL: &str = "volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport.socket.listen-port 24007
#   option base-port 49152
    option max-port  60999
end-volume
";

    #[test]
    fn reads_brick_port_range() {
        assert_eq!(brick_port_range(DEBIAN_GLUSTERD_VOL), Ok((49152, 60999)));
        assert_eq!(brick_port_range(""), Ok((49152, 60999)));
        let custom = DEBIAN_GLUSTERD_VOL.replace("#   option base-port 49152", "  option base-port 50000");
        assert_eq!(brick_port_range(&custom.replace("60999", "50100")), Ok((50000, 50100)));
        assert!(brick_port_range(&custom.replace("60999", "40000")).unwrap_err().contains("above max-port"));
        assert!(brick_port_range("option max-port 70000").unwrap_err().contains("invalid max-port"));
    }

    #[test]
    fn port_notation() {
        let ports = wanted_ports(true, (49152, 60999));
        let shown: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["24007-24008/tcp", "49152-60999/tcp", "111/tcp", "111/udp", "2049/tcp"]);
        assert_eq!(
            ports[0].saved_line(),
            "-A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment brickyard -j ACCEPT"
        );
        assert_eq!(
            ports[3].saved_line(),
            "-A INPUT -p udp -m udp --dport 111 -m comment --comment brickyard -j ACCEPT"
        );
        assert_eq!(wanted_ports(false, (49152, 60999)).len(), 2);
    }

    fn exit(code: i32) -> Output {
        Output { code: Some(code), ..Output::default() }
    }

    fn task(dir: &Path) -> OpenPorts {
        std::fs::write(dir.join("glusterd.vol"), DEBIAN_GLUSTERD_VOL).unwrap();
        OpenPorts {
            nfs: false,
            glusterd_vol: dir.join("glusterd.vol"),
            sysconfig_iptables: dir.join("sysconfig/iptables"),
            debian_rules_v4: dir.join("iptables/rules.v4"),
        }
    }

    /// iptables backend (firewall-cmd is not installed on the test machine): checks each rule,
    /// inserts only the missing one, saves to the Debian location that exists.
    #[tokio::test]
    async fn iptables_adds_missing_rules_and_saves() {
        assert!(find_program("firewall-cmd").is_err(), "these tests expect no firewalld");
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path());
        std::fs::create_dir(dir.path().join("iptables")).unwrap();
        let saved = "*filter\n-A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment brickyard -j ACCEPT\n\
                     -A INPUT -p tcp -m tcp --dport 49152:60999 -m comment --comment brickyard -j ACCEPT\nCOMMIT\n";
        let runner = Arc::new(
            FakeRunner::default()
                .expect_output("/usr/sbin/iptables -w -C INPUT -p tcp -m tcp --dport 24007:24008", exit(0))
                .expect_output("/usr/sbin/iptables -w -C INPUT -p tcp -m tcp --dport 49152:60999", exit(1))
                .expect(
                    "/usr/sbin/iptables -w -S INPUT",
                    "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 24007:24008 -m comment --comment brickyard -j ACCEPT\n\
                     -A INPUT -p tcp -m tcp --dport 49152:49155 -m comment --comment \"brickyard\" -j ACCEPT\n\
                     -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n",
                )
                .expect("/usr/sbin/iptables -w -I INPUT -p tcp -m tcp --dport 49152:60999 -m comment", "")
                .expect("/usr/sbin/iptables -w -D INPUT -p tcp -m tcp --dport 49152:49155 -m comment --comment brickyard -j ACCEPT", "")
                .expect("/usr/sbin/iptables-save", saved),
        );
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        let done = t.apply(&ctx).await.unwrap();
        assert_eq!(
            done,
            [
                "iptables: accept 49152-60999/tcp in INPUT (comment brickyard)".to_owned(),
                "iptables: remove the rule no longer wanted: -A INPUT -p tcp -m tcp --dport 49152:49155 -m comment \
                 --comment brickyard -j ACCEPT"
                    .to_owned(),
                format!("save the iptables rules to {}/iptables/rules.v4 (iptables-save)", dir.path().display()),
            ]
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("iptables/rules.v4")).unwrap(), saved);

        // Everything in place: two lookups and a listing, nothing else, no warning.
        let runner = Arc::new(
            FakeRunner::default()
                .expect_output("/usr/sbin/iptables -w -C INPUT", exit(0))
                .expect_output("/usr/sbin/iptables -w -C INPUT", exit(0))
                .expect("/usr/sbin/iptables -w -S INPUT", saved),
        );
        let ctx = Context { runner, service_manager: ServiceManager::Direct };
        assert_eq!(t.check(&ctx).await.unwrap(), Check::unchanged());
    }

    /// firewalld: runtime and permanent are looked up separately; only the missing ones added.
    #[tokio::test]
    async fn firewalld_adds_what_each_configuration_lacks() {
        let ports = wanted_ports(false, (49152, 60999));
        let no = exit(1);
        let runner = Arc::new(
            FakeRunner::default()
                .expect("/usr/bin/firewall-cmd --query-port=24007-24008/tcp", "yes\n")
                .expect_output("/usr/bin/firewall-cmd --query-port=49152-60999/tcp", no.clone())
                .expect_output("/usr/bin/firewall-cmd --permanent --query-port=24007-24008/tcp", no.clone())
                .expect_output("/usr/bin/firewall-cmd --permanent --query-port=49152-60999/tcp", no),
        );
        let ctx = Context { runner, service_manager: ServiceManager::Systemd };
        let steps = firewalld_steps(&ctx, Path::new("/usr/bin/firewall-cmd"), &ports).await.unwrap();
        let shown: Vec<String> = steps
            .iter()
            .map(|(step, what)| match step {
                Step::Run(cmd) => format!("{what}: {}", cmd.display()),
                Step::Save { .. } => panic!("firewalld saves nothing itself"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "firewalld: open 49152-60999/tcp (runtime): /usr/bin/firewall-cmd --add-port=49152-60999/tcp",
                "firewalld: open 24007-24008/tcp (permanent): /usr/bin/firewall-cmd --permanent --add-port=24007-24008/tcp",
                "firewalld: open 49152-60999/tcp (permanent): /usr/bin/firewall-cmd --permanent --add-port=49152-60999/tcp",
            ]
        );
    }

    #[tokio::test]
    async fn iptables_without_persistence_warns() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(dir.path());
        let runner = Arc::new(
            FakeRunner::default()
                .expect_output("/usr/sbin/iptables -w -C INPUT", exit(0))
                .expect_output("/usr/sbin/iptables -w -C INPUT", exit(0))
                .expect("/usr/sbin/iptables -w -S INPUT", ""),
        );
        let ctx = Context { runner, service_manager: ServiceManager::Direct };
        let check = t.check(&ctx).await.unwrap();
        assert!(check.changes.is_empty());
        assert!(check.warnings[0].contains("runtime only"), "{check:?}");
    }

    #[test]
    fn persistence_location() {
        let dir = tempfile::tempdir().unwrap();
        let (sysconfig, debian) = (dir.path().join("sysconfig/iptables"), dir.path().join("iptables/rules.v4"));
        assert_eq!(iptables_persistence(&sysconfig, &debian), None);
        std::fs::create_dir(dir.path().join("iptables")).unwrap();
        assert_eq!(iptables_persistence(&sysconfig, &debian), Some(debian.clone()));
        std::fs::create_dir(dir.path().join("sysconfig")).unwrap();
        std::fs::write(&sysconfig, "").unwrap();
        assert_eq!(iptables_persistence(&sysconfig, &debian), Some(sysconfig));
    }
}
