//! `lab up`: builds a lab step by step, recording each thing in DIR/state.json as it is made;
//! if any step fails, everything made so far is torn down before the error is returned. Steps:
//! `pki` (CA, host certs, agent configs) → `disks` (sparse files on loop devices: the servers'
//! raw disks, every host's ext4 root disk) → `network`
//! (control namespace + bridge, host namespaces + veths) → `hosts` (each host's init, which
//! starts its agent) → `agents` (wait until every agent listens) → `spec` (DIR/cluster.toml).
//! BRICKYARD_LAB_FAIL_AFTER=<step> makes `up` fail right after that step (to test the cleanup).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::agent::{agent_binary, wait_until_listening, write_pki_and_configs};
use super::host::{child_exited, start_host, HostDir, InitArgs};
use super::naming::{plan_hosts, HostPlan, LabName, Role};
use super::ns::in_netns;
use super::state::{self, HostRecord, LoopRecord, State};
use super::{disk, net, spec_file, teardown, LabError};

/// How long the agents of a fresh lab may take to listen.
const AGENT_DEADLINE: Duration = Duration::from_secs(30);
/// The environment variable that injects a failure after a step.
pub const FAIL_AFTER_ENV: &str = "BRICKYARD_LAB_FAIL_AFTER";

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: LabName,
    pub servers: usize,
    pub clients: usize,
    /// Lab directory; default /var/lib/brickyard-lab/<name>.
    pub dir: Option<PathBuf>,
    /// Agent binary; default $BRICKYARD_AGENT_BIN or `brickyard-agent` next to this binary.
    pub agent_bin: Option<PathBuf>,
}

/// A lab that is up.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub dir: PathBuf,
    pub spec: PathBuf,
    pub hosts: Vec<HostPlan>,
    /// (server, loop device)
    pub disks: Vec<(String, String)>,
}

/// Builds lab `opts.name`; on failure removes whatever it made and returns the error.
pub fn up(opts: &UpOptions) -> Result<UpReport, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let hosts = plan_hosts(&opts.name, opts.servers, opts.clients)?;
    let agent = agent_binary(opts.agent_bin.clone())?;
    let exe = std::env::current_exe().map_err(|source| LabError::Io { path: "/proc/self/exe".into(), source })?;
    let dir = opts.dir.clone().unwrap_or_else(|| state::default_dir(&opts.name));
    if !dir.is_absolute() || dir.to_string_lossy().contains([',', ':', '\n']) {
        return Err(LabError::BadDir(dir));
    }
    refuse_existing(&opts.name, &dir)?;
    std::fs::create_dir_all(&dir).map_err(|source| LabError::Io { path: dir.clone(), source })?;
    let mut build = Build {
        lab: opts.name.clone(),
        dir: dir.clone(),
        hosts,
        state: State {
            name: opts.name.to_string(),
            subnet: opts.name.subnet().to_string(),
            agent: Some(agent.clone()),
            ..State::default()
        },
        children: Vec::new(),
    };
    build.state.hosts = build
        .hosts
        .iter()
        .map(|h| HostRecord { name: h.name.clone(), address: h.address.to_string(), server: h.role == Role::Server })
        .collect();
    let result =
        build.state.save(&dir).and_then(|()| state::register(&opts.name, &dir)).and_then(|()| build.run(&exe, &agent));
    match result {
        Ok(disks) => Ok(UpReport { spec: dir.join(spec_file::SPEC_FILE), dir, hosts: build.hosts, disks }),
        Err(err) => {
            if let Err(cleanup) = teardown::down(&opts.name) {
                eprintln!("brickyard-lab: cleaning up after the failed `up` also failed: {cleanup}");
            }
            Err(err)
        }
    }
}

/// An existing lab of that name (registered or with namespaces) or a non-empty DIR is an error.
fn refuse_existing(lab: &LabName, dir: &Path) -> Result<(), LabError> {
    let exists = |what: String| Err(LabError::Exists { name: lab.to_string(), what });
    if let Some(netns) = net::existing_netns(lab).into_iter().next() {
        return exists(format!("namespace {netns}"));
    }
    let registry = state::registry_entry(lab);
    if registry.symlink_metadata().is_ok() {
        return exists(registry.display().to_string());
    }
    // `down` removes what `up` writes in DIR: never let that be somebody's files.
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(LabError::DirNotEmpty(dir.to_path_buf()));
    }
    Ok(())
}

struct Build {
    lab: LabName,
    dir: PathBuf,
    hosts: Vec<HostPlan>,
    state: State,
    /// Host inits started by this process (they are our children until we exit).
    children: Vec<(String, Pid)>,
}

fn inject(step: &str) -> Result<(), LabError> {
    match std::env::var(FAIL_AFTER_ENV) {
        Ok(wanted) if wanted == step => Err(LabError::Injected(step.into())),
        _ => Ok(()),
    }
}

fn mkdir(path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(|source| LabError::Io { path: path.into(), source })
}

impl Build {
    fn host_dir(&self, host: &HostPlan) -> HostDir {
        HostDir::of(&self.dir, &host.name)
    }

    fn run(&mut self, exe: &Path, agent: &Path) -> Result<Vec<(String, String)>, LabError> {
        let host_dirs: Vec<(HostPlan, HostDir)> = self.hosts.iter().map(|h| (h.clone(), self.host_dir(h))).collect();
        for (_, d) in &host_dirs {
            mkdir(&d.0)?;
        }
        write_pki_and_configs(&self.dir.join("pki"), &host_dirs)?;
        inject("pki")?;

        let disks = self.disks()?;
        inject("disks")?;

        self.network()?;
        inject("network")?;

        for (host, hd) in &host_dirs {
            self.start_host(exe, agent, host, hd)?;
        }
        inject("hosts")?;

        let children = self.children.clone();
        let dead = |name: &str| {
            let (_, pid) = children.iter().find(|(n, _)| n == name)?;
            let why = child_exited(*pid)?;
            let log = self.host_dir(self.hosts.iter().find(|h| h.name == name)?).log();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<_> = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            Some(format!("its init exited ({why}); {}: {}", log.display(), tail.join(" | ")))
        };
        let deadline = Instant::now() + AGENT_DEADLINE;
        in_netns(&self.lab.control_netns(), || wait_until_listening(&self.hosts, deadline, dead))??;
        inject("agents")?;

        let spec = self.dir.join(spec_file::SPEC_FILE);
        std::fs::write(&spec, spec_file::render(&self.lab, &self.hosts, &disks))
            .map_err(|source| LabError::Io { path: spec, source })?;
        inject("spec")?;
        Ok(disks)
    }

    fn disks(&mut self) -> Result<Vec<(String, String)>, LabError> {
        let disks_dir = self.dir.join("disks");
        mkdir(&disks_dir)?;
        let mut disks = Vec::new();
        for host in self.hosts.iter().filter(|h| h.role == Role::Server) {
            let backing = disks_dir.join(format!("{}.img", host.name));
            disk::create_backing(&backing)?;
            let device = disk::attach(&backing)?;
            self.state.loops.push(LoopRecord { host: host.name.clone(), device: device.clone(), backing });
            self.state.save(&self.dir)?;
            disks.push((host.name.clone(), device));
        }
        for host in &self.hosts {
            let backing = disks_dir.join(format!("{}-root.img", host.name));
            disk::create_root_disk(&backing)?;
            let device = disk::attach(&backing)?;
            self.state.root_disks.push(LoopRecord { host: host.name.clone(), device, backing });
            self.state.save(&self.dir)?;
        }
        Ok(disks)
    }

    fn add_netns(&mut self, netns: String) -> Result<(), LabError> {
        net::add_netns(&netns)?;
        self.state.netns.push(netns);
        self.state.save(&self.dir)
    }

    fn network(&mut self) -> Result<(), LabError> {
        self.add_netns(self.lab.control_netns())?;
        net::setup_control(&self.lab, self.lab.subnet())?;
        for host in self.hosts.clone() {
            self.add_netns(host.netns.clone())?;
            net::connect_host(&self.lab, &host)?;
        }
        Ok(())
    }

    fn start_host(&mut self, exe: &Path, agent: &Path, host: &HostPlan, dir: &HostDir) -> Result<(), LabError> {
        mkdir(&dir.stage())?;
        let root_disk = self.state.root_disks.iter().find(|d| d.host == host.name).map(|d| d.device.clone());
        let args = InitArgs {
            host: host.name.clone(),
            host_dir: dir.0.clone(),
            agent: agent.to_path_buf(),
            root_disk: root_disk.expect("the disks step made every host's root disk").into(),
        };
        let (pid, record) = start_host(exe, &args, &host.netns)?;
        self.children.push((host.name.clone(), pid));
        self.state.inits.push(record);
        self.state.save(&self.dir)
    }
}
