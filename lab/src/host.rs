//! A lab host: a process tree in its own mount, UTS, IPC and PID namespaces, joined to the host's
//! network namespace. Its PID 1 is `brickyard-lab init-host` (this binary), which builds the
//! host's root, runs the host's boot (`boot`: fstab mounts, glusterd) and then only supervises
//! the agent and reaps orphans; killing it (SIGKILL from `lab down` or `lab reboot`) makes the
//! kernel kill everything else in the host and drop its mounts.
//!
//! Agent supervision is systemd's `Restart=on-abnormal`: an agent killed by a signal other than
//! the clean stop signals (SIGHUP, SIGINT, SIGTERM, SIGPIPE) — a crash or a `kill -9` — is
//! logged to the host log and started again with the same command, so tests can kill it
//! mid-batch like a real node would. An agent that exits with a status (e.g. a config error at
//! startup) or is stopped by a clean signal ends the host, so `lab up` fails at once and shows
//! the log. Crash-loop guard: more than `MAX_RESTARTS` abnormal deaths within `RESTART_WINDOW`
//! end the host too. Init writes the running agent's PID (in the host's PID namespace) to
//! /run/brickyard-lab/agent.pid, for `lab exec HOST -- kill ...`.
//!
//! The root: the host's root disk (an ext4 loop device, see `disk`) is mounted at
//! DIR/hosts/NAME/stage (visible only inside the host's mount namespace) and carries the
//! overlay's upper and work dirs; the overlay's lower is the real `/` (read-only in effect: every
//! write lands on the root disk). Into it go: the real /dev (recursive bind), a new /proc (this
//! PID namespace) and /sys (this network namespace), a fresh tmpfs on /run at every boot, the
//! root disk's own directories on /var/lib/glusterd (seeded with the package's `hooks` and
//! `groups` at the first boot) and on /var/log/glusterfs, the host's agent config directory
//! on /etc/brickyard (writable: the agent rewrites its key material) and the agent binary on
//! /run/brickyard-lab/brickyard-agent. Then pivot_root, and the old root is detached. At its first boot a host also gets its own, empty
//! /etc/fstab (not this machine's entries). So everything but /run survives `lab reboot`, as on
//! a real machine's disk; the network namespace (addresses, iptables rules) is the host's
//! "hardware" and outlives its init. Unlike a power cut, a reboot loses no written data (the
//! kernel keeps the page cache and unmounts the dead host's filesystems cleanly).

use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, pivot_root, sethostname, Pid};

use super::boot::{GLUSTERD_DIR, PATH_IN_HOST};
use super::ns::netns_path;
use super::state::InitRecord;
use super::{procs, LabError};

/// Where the host's agent binary and config appear inside the host.
pub const AGENT_IN_HOST: &str = "/run/brickyard-lab/brickyard-agent";
pub const CONF_IN_HOST: &str = "/etc/brickyard";
pub const AGENT_CONFIG_IN_HOST: &str = "/etc/brickyard/agent.toml";
/// The running agent's PID in the host's PID namespace, written by init at every (re)start.
pub const AGENT_PID_IN_HOST: &str = "/run/brickyard-lab/agent.pid";
/// Crash-loop guard: the host ends at the (MAX_RESTARTS + 1)th abnormal agent death within
/// RESTART_WINDOW.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// The parts of the gluster package's state directory copied into a host.
const GLUSTERD_SEED: [&str; 2] = ["hooks", "groups"];
const GLUSTERD_LOGS: &str = "/var/log/glusterfs";

/// Per-host paths on the real filesystem, under DIR/hosts/NAME.
pub struct HostDir(pub PathBuf);

impl HostDir {
    /// Host `host`'s directory in lab directory `lab_dir`.
    pub fn of(lab_dir: &Path, host: &str) -> HostDir {
        HostDir(lab_dir.join("hosts").join(host))
    }
    /// Mount point of the host's root disk (overlay upper/work, the merged root, the host's
    /// /var/lib/glusterd and /var/log/glusterfs), mounted only inside the host.
    pub fn stage(&self) -> PathBuf {
        self.0.join("stage")
    }
    /// Agent config, CA, certificate and key (bound to /etc/brickyard in the host).
    pub fn conf(&self) -> PathBuf {
        self.0.join("conf")
    }
    /// Output of the host's init and agent.
    pub fn log(&self) -> PathBuf {
        self.0.join("host.log")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.to_path_buf(), source }
}

fn cstring(bytes: &[u8]) -> Result<CString, LabError> {
    CString::new(bytes).map_err(|_| LabError::Unexpected { what: "argument".into(), found: "a NUL byte".into() })
}

/// Starts `exe args...` as PID 1 of new mount, UTS, IPC and PID namespaces inside network
/// namespace `netns_file`, detached from our terminal (own session, stdin /dev/null, output
/// appended to `log`). Returns its PID in our PID namespace.
fn spawn_init(exe: &Path, args: &[OsString], netns_file: &Path, log: &Path) -> Result<Pid, LabError> {
    let net = File::open(netns_file).map_err(io(netns_file))?;
    let null = File::open("/dev/null").map_err(io(Path::new("/dev/null")))?;
    let log_file = OpenOptions::new().create(true).append(true).open(log).map_err(io(log))?;
    // Everything the child needs is prepared here: between clone and execve it may only make
    // async-signal-safe system calls (this process may have other threads).
    let prog = cstring(exe.as_os_str().as_bytes())?;
    let argv: Vec<CString> = std::iter::once(Ok(prog.clone()))
        .chain(args.iter().map(|a| cstring(a.as_bytes())))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> =
        std::env::vars_os().filter_map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()).ok()).collect();
    let ptrs =
        |v: &[CString]| v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect::<Vec<_>>();
    let (argv_p, envp_p) = (ptrs(&argv), ptrs(&envp));
    let (net_fd, null_fd, log_fd) = (net.as_raw_fd(), null.as_raw_fd(), log_file.as_raw_fd());
    let child = Box::new(|| -> isize {
        // SAFETY: only async-signal-safe calls on memory prepared before clone.
        unsafe {
            if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                libc::_exit(120);
            }
            libc::setsid();
            if libc::dup2(null_fd, 0) < 0 || libc::dup2(log_fd, 1) < 0 || libc::dup2(log_fd, 2) < 0 {
                libc::_exit(121);
            }
            libc::execve(prog.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
            libc::_exit(127)
        }
    });
    let mut stack = vec![0u8; 256 * 1024];
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    // SAFETY: the child runs `child` on its own copy of `stack` and only execs or exits.
    unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|errno| LabError::Sys { what: format!("clone for {}", exe.display()), errno })
}

/// Starts host `args.host`'s init in network namespace `netns` (a /run/netns name), its output
/// appended to the host log; returns its PID and the record `lab down` finds it by.
pub fn start_host(exe: &Path, args: &InitArgs, netns: &str) -> Result<(Pid, InitRecord), LabError> {
    let log = HostDir(args.host_dir.clone()).log();
    let pid = spawn_init(exe, &args.argv(), &netns_path(netns), &log)?;
    let start_time = procs::start_time(pid.as_raw())
        .ok_or_else(|| LabError::HostDied { host: args.host.clone(), why: "exited at once".into() })?;
    Ok((pid, InitRecord { host: args.host.clone(), pid: pid.as_raw(), start_time }))
}

/// Whether our child `pid` (a host init started by this process) has exited; reaps it.
pub fn child_exited(pid: Pid) -> Option<String> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(status) => Some(format!("{status:?}")),
        Err(errno) => Some(format!("waitpid: {errno}")),
    }
}

/// The arguments of `init-host` (PID 1 of a host).
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Host name (also the UTS hostname).
    #[arg(long)]
    pub host: String,
    /// DIR/hosts/NAME on the real filesystem.
    #[arg(long)]
    pub host_dir: PathBuf,
    /// The agent binary on the real filesystem.
    #[arg(long)]
    pub agent: PathBuf,
    /// The host's root disk (an ext4 block device).
    #[arg(long)]
    pub root_disk: PathBuf,
}

impl InitArgs {
    /// The command line that makes this binary `init-host` with these arguments.
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["init-host".into(), "--host".into(), self.host.clone().into()];
        for (flag, path) in [("--host-dir", &self.host_dir), ("--agent", &self.agent), ("--root-disk", &self.root_disk)]
        {
            argv.extend([flag.into(), path.into()]);
        }
        argv
    }
}

/// PID 1 of a host: builds the root, boots, starts the agent, reaps orphans. The agent is the host's
/// reason to exist: an abnormal death (see the module header) restarts it, any other end makes
/// init return (and the kernel kill the rest of the host), so `lab up` sees a broken agent at
/// once. Also returns when asked to stop (SIGTERM/SIGINT/SIGHUP).
pub fn run_init(args: &InitArgs) -> Result<(), LabError> {
    // Block the signals we wait for before any child exists, so none is lost; children get an
    // empty mask from std's spawn.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().map_err(|errno| LabError::Sys { what: "blocking signals".into(), errno })?;
    build_root(args)?;
    sethostname(&args.host).map_err(|errno| LabError::Sys { what: "sethostname".into(), errno })?;
    std::fs::write("/etc/hostname", format!("{}\n", args.host)).map_err(io(Path::new("/etc/hostname")))?;
    super::boot::run(&args.host);
    let mut agent = start_agent(&args.host)?;
    let mut deaths: Vec<Instant> = Vec::new();
    loop {
        match signals.wait().map_err(|errno| LabError::Sys { what: "sigwait".into(), errno })? {
            Signal::SIGCHLD => match reap(agent) {
                None => {}
                Some(AgentEnd::Abnormal(signal)) => {
                    let now = Instant::now();
                    deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                    deaths.push(now);
                    if deaths.len() > MAX_RESTARTS {
                        return Err(LabError::HostDied {
                            host: args.host.clone(),
                            why: format!(
                                "its agent was killed by {signal:?}, the {}th abnormal death within {}s; not restarting",
                                deaths.len(),
                                RESTART_WINDOW.as_secs()
                            ),
                        });
                    }
                    eprintln!("lab host {}: agent (pid {agent}) killed by {signal:?}, restarting it", args.host);
                    agent = start_agent(&args.host)?;
                }
                Some(AgentEnd::Final(why)) => {
                    return Err(LabError::HostDied { host: args.host.clone(), why: format!("its agent ended: {why}") });
                }
            },
            other => {
                eprintln!("lab host {}: {other:?}, stopping", args.host);
                return Ok(());
            }
        }
    }
}

/// Starts the agent (in the host's root) and records its PID in AGENT_PID_IN_HOST.
fn start_agent(host: &str) -> Result<Pid, LabError> {
    let mut agent = Command::new(AGENT_IN_HOST);
    agent.args(["--config", AGENT_CONFIG_IN_HOST]).env("PATH", PATH_IN_HOST).stdin(Stdio::null());
    let agent = agent.spawn().map_err(|source| LabError::Spawn { program: AGENT_IN_HOST.into(), source })?;
    let pid = Pid::from_raw(agent.id() as i32);
    let pid_file = Path::new(AGENT_PID_IN_HOST);
    std::fs::write(pid_file, format!("{pid}\n")).map_err(io(pid_file))?;
    eprintln!("lab host {host}: agent started (pid {pid} in the host)");
    Ok(pid)
}

/// How the agent ended: killed by a signal systemd's `on-abnormal` restarts after, or for good.
enum AgentEnd {
    Abnormal(Signal),
    Final(String),
}

/// Reaps every exited child (orphans of the host are re-parented to us); returns how the agent
/// ended if it did.
fn reap(agent: Pid) -> Option<AgentEnd> {
    let mut agent_end = None;
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        match status {
            WaitStatus::StillAlive => break,
            WaitStatus::Exited(pid, code) if pid == agent => {
                agent_end = Some(AgentEnd::Final(format!("exit status {code}")))
            }
            WaitStatus::Signaled(pid, signal, _) if pid == agent => {
                agent_end = Some(match signal {
                    Signal::SIGHUP | Signal::SIGINT | Signal::SIGTERM | Signal::SIGPIPE => {
                        AgentEnd::Final(format!("stopped by {signal:?}"))
                    }
                    _ => AgentEnd::Abnormal(signal),
                })
            }
            _ => {}
        }
    }
    agent_end
}

fn sys(what: String) -> impl FnOnce(nix::errno::Errno) -> LabError {
    move |errno| LabError::Sys { what, errno }
}

fn mount_fs(fstype: &str, target: &Path, flags: MsFlags, data: Option<&str>) -> Result<(), LabError> {
    mount(Some(fstype), target, Some(fstype), flags, data)
        .map_err(sys(format!("mount {fstype} on {}", target.display())))
}

fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<(), LabError> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | flags, None::<&str>).map_err(sys(format!(
        "bind {} on {}",
        source.display(),
        target.display()
    )))
}

fn mkdir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(io(path))
}

/// Builds the host's root and pivots into it (see the module header).
fn build_root(args: &InitArgs) -> Result<(), LabError> {
    let dir = HostDir(args.host_dir.clone());
    // Nothing we mount may propagate back to the real mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("making / private".into()))?;
    let stage = dir.stage();
    // No write barriers: a lab reboot is no power cut (see the module header), flushes only cost.
    mount(Some(&args.root_disk), &stage, Some("ext4"), MsFlags::empty(), Some("barrier=0")).map_err(sys(format!(
        "mount root disk {} (ext4) on {}",
        args.root_disk.display(),
        stage.display()
    )))?;
    let (upper, work, root) = (stage.join("upper"), stage.join("work"), stage.join("root"));
    let (glusterd_state, glusterd_logs) = (stage.join("glusterd"), stage.join("glusterd-logs"));
    let first_boot = !upper.exists();
    for d in [&work, &root, &glusterd_state, &glusterd_logs] {
        mkdir(d)?;
    }
    if first_boot {
        for part in GLUSTERD_SEED {
            let from = Path::new(GLUSTERD_DIR).join(part);
            if from.is_dir() {
                copy_tree(&from, &glusterd_state.join(part))?;
            }
        }
    }
    // Made last, so a first boot cut short is done again in full.
    mkdir(&upper)?;
    let data = format!("lowerdir=/,upperdir={},workdir={}", upper.display(), work.display());
    if data.contains(['\n']) || [&upper, &work].iter().any(|p| p.to_string_lossy().contains([',', ':'])) {
        return Err(LabError::Unexpected {
            what: "lab directory for overlayfs".into(),
            found: stage.display().to_string(),
        });
    }
    mount(Some("overlay"), &root, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
        .map_err(sys(format!("mount overlay on {}", root.display())))?;
    if first_boot {
        let fstab = root.join("etc/fstab");
        let text = format!(
            "# /etc/fstab of lab host {}: its own, not this machine's (written by brickyard-lab at its first boot)\n",
            args.host
        );
        std::fs::write(&fstab, text).map_err(io(&fstab))?;
    }

    bind(Path::new("/dev"), &root.join("dev"), MsFlags::MS_REC)?;
    mount_fs("proc", &root.join("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, None)?;
    mount_fs("sysfs", &root.join("sys"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, None)?;
    let run = root.join("run");
    mount_fs("tmpfs", &run, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))?;
    mkdir(&run.join("lock"))?;
    for (from, to) in [(&glusterd_state, GLUSTERD_DIR), (&glusterd_logs, GLUSTERD_LOGS)] {
        let target = root.join(to.trim_start_matches('/'));
        mkdir(&target)?;
        bind(from, &target, MsFlags::empty())?;
    }

    let conf = root.join(CONF_IN_HOST.trim_start_matches('/'));
    mkdir(&conf)?;
    // Writable: the agent replaces its own key and certificate (`pki rotate`, `enroll`) and CRL.
    bind(&dir.conf(), &conf, MsFlags::empty())?;
    let agent = root.join(AGENT_IN_HOST.trim_start_matches('/'));
    mkdir(agent.parent().expect("agent path has a parent"))?;
    File::create(&agent).map_err(io(&agent))?;
    bind(&args.agent, &agent, MsFlags::empty())?;

    chdir(&root).map_err(sys(format!("chdir {}", root.display())))?;
    pivot_root(".", ".").map_err(sys(format!("pivot_root into {}", root.display())))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching the old root".into()))?;
    chdir("/").map_err(sys("chdir /".into()))
}

/// Copies directory tree `from` to `to` (files, directories and symlinks, with permissions).
fn copy_tree(from: &Path, to: &Path) -> Result<(), LabError> {
    mkdir(to)?;
    let mode = std::fs::metadata(from).map_err(io(from))?.permissions().mode();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(&src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io(&dst))?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(io(&dst))?;
        }
    }
    Ok(())
}
