//! `EnsurePackages`: the GlusterFS packages a server (glusterfs-server and the FUSE client) or
//! a client (the FUSE client) needs, from where the host's platform has them. The platform is
//! /etc/os-release as `crate::host::os_release` reads it (family, major version):
//! - Debian, Ubuntu: the distribution's packages (`dpkg-query`, `apt-get`); Fedora likewise
//!   (`rpm -q`, `dnf`).
//! - RHEL family 7 to 9: the CentOS Storage SIG, through its release package for the major
//!   version (`centos-release-gluster9` on EL7; `…10` or `…11` on EL8/EL9, chosen by
//!   `gluster_version`, default 11), then glusterfs-server with the repository that carries its
//!   python3-pyxattr enabled for that one transaction (PowerTools on EL8, CRB on EL9+). RHEL
//!   itself carries neither in its own repositories: the plan warns.
//! - EL10: the SIG has no GlusterFS for it (glusterfs issue #4646): refused, naming the
//!   platform, unless `gluster_repo` names a `.repo` file URL or a release package.
//!
//! The package manager runs only when something is missing. Reads /etc/os-release and
//! /etc/yum.repos.d/brickyard-gluster.repo; installs packages; downloads and writes that file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::types::{GlusterRelease, GlusterRepo};
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::host::etcfile;
use crate::host::os_release::{self, Family, OsRelease};
use crate::host::runner::{Cmd, CommandError, Runner};
use crate::host::Context;

const OS_RELEASE: &str = "/etc/os-release";
/// Where a `gluster_repo` .repo file is kept.
const REPO_FILE: &str = "/etc/yum.repos.d/brickyard-gluster.repo";
/// The first line of that file: says where it came from, so a re-run knows it is current.
const REPO_FILE_MARKER: &str = "# brickyard-managed: downloaded from";
/// Downloads and installs can take long on a slow mirror.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// Where an RPM host gets GlusterFS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The distribution's own repositories (Debian, Ubuntu, Fedora).
    Distribution,
    /// A release package that sets up the repository: the Storage SIG's (`sig`) or the spec's.
    ReleasePackage { name: String, sig: bool },
    /// A .repo file the spec names by URL, kept at `REPO_FILE`.
    RepoFile(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Distribution => f.write_str("the distribution's repositories"),
            Source::ReleasePackage { name, sig: true } => write!(f, "the CentOS Storage SIG ({name})"),
            Source::ReleasePackage { name, sig: false } => write!(f, "the repository of release package {name}"),
            Source::RepoFile(url) => write!(f, "the repository file {url}"),
        }
    }
}

fn packages(family: Family, role: Role) -> &'static [&'static str] {
    match (family, role) {
        (Family::Debian, Role::Server) => &["glusterfs-server", "glusterfs-client"],
        (Family::Debian, Role::Client) => &["glusterfs-client"],
        (Family::RedHat | Family::Fedora, Role::Server) => &["glusterfs-server", "glusterfs-fuse"],
        (Family::RedHat | Family::Fedora, Role::Client) => &["glusterfs-fuse"],
    }
}

/// The Storage SIG releases for a RHEL-family major version, newest (the default) last.
fn sig_releases(major: u32) -> &'static [u8] {
    match major {
        7 => &[9],
        8 | 9 => &[10, 11],
        _ => &[],
    }
}

/// Where a host of `family` gets GlusterFS: the spec's repository, else (RHEL family) the
/// Storage SIG's release package for its major version; refused where there is none.
fn source(
    os: &OsRelease,
    family: Family,
    version: Option<GlusterRelease>,
    repo: Option<&GlusterRepo>,
) -> Result<Source, TaskError> {
    if family != Family::RedHat {
        return Ok(Source::Distribution);
    }
    match repo {
        Some(GlusterRepo::RepoFile(url)) => return Ok(Source::RepoFile(url.clone())),
        Some(GlusterRepo::ReleasePackage(name)) => {
            return Ok(Source::ReleasePackage { name: name.clone(), sig: false })
        }
        None => {}
    }
    let set_repo = "set [pool] gluster_repo to the https URL of a .repo file, or to a release package your \
                    repositories carry, that provides glusterfs-server and glusterfs-fuse";
    let name = os.name();
    let Some(major) = os.major_version() else {
        return Err(TaskError::Unsupported(format!(
            "{name}: os-release gives no major version (VERSION_ID={:?}), so no CentOS Storage SIG release can be \
             chosen; {set_repo}",
            os.version_id
        )));
    };
    let releases = sig_releases(major);
    let Some(newest) = releases.last() else {
        let why = if major == 10 {
            "the CentOS Storage SIG builds no GlusterFS for EL10 (glusterfs issue #4646)".to_owned()
        } else {
            format!("the CentOS Storage SIG has GlusterFS for EL7 (9), EL8 and EL9 (10, 11) only, not for EL{major}")
        };
        return Err(TaskError::Unsupported(format!("{name} (EL{major}): {why}; {set_repo}")));
    };
    let release = match version {
        None => GlusterRelease::new(&newest.to_string())?,
        Some(asked) if releases.contains(&asked.major()) => asked,
        Some(asked) => {
            let has: Vec<String> = releases.iter().map(u8::to_string).collect();
            return Err(TaskError::Unsupported(format!(
                "{name} (EL{major}): the CentOS Storage SIG has no GlusterFS {asked} for EL{major} (it has {}); set \
                 [pool] gluster_version to one of those or leave it out",
                has.join(", ")
            )));
        }
    };
    Ok(Source::ReleasePackage { name: release.sig_release_package(), sig: true })
}

/// The repository glusterfs-server's dependencies (python3-pyxattr) come from on a RHEL
/// rebuild, enabled for the install only: PowerTools on EL8, CRB on EL9 and later. RHEL's is
/// CodeReady Linux Builder under a subscription-specific id (a plan warning names it).
fn extra_repo(os: &OsRelease, family: Family, role: Role) -> Option<&'static str> {
    if family != Family::RedHat || role != Role::Server || os.is_rhel() {
        return None;
    }
    match os.major_version()? {
        8 => Some("powertools"),
        major if major >= 9 => Some("crb"),
        _ => None,
    }
}

/// The query that lists which of `names` are installed: one line per installed package
/// (`NAME installed`), something else (or nothing) for the others.
fn query_cmd(runner: &dyn Runner, family: Family, names: &[&str]) -> Result<Cmd, TaskError> {
    Ok(match family {
        Family::Debian => runner.cmd("dpkg-query")?.arg("-W").arg("-f=${Package} ${db:Status-Status}\\n").args(names),
        Family::RedHat | Family::Fedora => runner.cmd("rpm")?.args(["-q", "--qf", "%{NAME} installed\\n"]).args(names),
    })
}

/// The files the package database is kept in, which change with every install or removal:
/// dpkg replaces its status file and journals into updates/; rpm writes Packages (Berkeley DB,
/// EL7 and EL8) or rpmdb.sqlite and its write-ahead log (EL9, Fedora).
fn database_files(family: Family) -> &'static [&'static str] {
    match family {
        Family::Debian => &["/var/lib/dpkg/status", "/var/lib/dpkg/updates"],
        Family::RedHat | Family::Fedora => {
            &["/var/lib/rpm/Packages", "/var/lib/rpm/rpmdb.sqlite", "/var/lib/rpm/rpmdb.sqlite-wal"]
        }
    }
}

/// Which of `names` the query output does not list as installed.
fn missing<'a>(names: &[&'a str], query_stdout: &str) -> Vec<&'a str> {
    let installed: Vec<&str> = query_stdout
        .lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name, "installed"] => Some(*name),
            _ => None,
        })
        .collect();
    names.iter().copied().filter(|n| !installed.contains(n)).collect()
}

/// The commands that install `names`, in order (`extra_repo` enabled for this install only).
fn install_cmds(
    runner: &dyn Runner,
    family: Family,
    names: &[&str],
    extra_repo: Option<&str>,
) -> Result<Vec<Cmd>, TaskError> {
    Ok(match family {
        Family::Debian => {
            // `env` only sets debconf's frontend so no question can wait for a terminal.
            let env = runner.find("env")?;
            let apt_get = runner.find("apt-get")?;
            let apt = |args: &[&str]| {
                Cmd::new(&env).arg("DEBIAN_FRONTEND=noninteractive").arg(&apt_get).args(args).timeout(INSTALL_TIMEOUT)
            };
            vec![apt(&["update", "-q"]), apt(&["install", "-y", "-q", "--no-install-recommends"]).args(names)]
        }
        Family::RedHat | Family::Fedora => {
            let manager = runner.find("dnf").or_else(|_| runner.find("yum"))?;
            let mut cmd = Cmd::new(manager).args(["install", "-y"]);
            if let Some(repo) = extra_repo {
                cmd = cmd.arg(format!("--enablerepo={repo}"));
            }
            vec![cmd.args(names).timeout(INSTALL_TIMEOUT)]
        }
    })
}

/// One step of apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Run(Cmd),
    /// Download the .repo file at `url` (with `curl`) and keep it, marked, at `path`.
    RepoFile {
        url: String,
        curl: Cmd,
        path: PathBuf,
    },
}

/// What the steps install for: the platform, where GlusterFS comes from, what is missing (so
/// apply can confirm it and name the source when an install fails).
#[derive(Debug, PartialEq, Eq)]
pub struct Install {
    family: Family,
    os: OsRelease,
    source: Source,
    missing: Vec<&'static str>,
}

/// One step of apply and the install it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageStep {
    step: Step,
    install: Arc<Install>,
}

impl fmt::Display for PackageStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Step::Run(cmd) => f.write_str(&cmd.display()),
            Step::RepoFile { curl, path, .. } => write!(f, "{} > {}", curl.display(), path.display()),
        }
    }
}

pub struct EnsurePackages {
    role: Role,
    version: Option<GlusterRelease>,
    repo: Option<GlusterRepo>,
    os_release: PathBuf,
    repo_file: PathBuf,
}

impl EnsurePackages {
    pub fn from_proto(task: &v1::EnsurePackages) -> Result<Self, TaskError> {
        let role = match v1::PackageRole::try_from(task.role) {
            Ok(v1::PackageRole::Server) => Role::Server,
            Ok(v1::PackageRole::Client) => Role::Client,
            _ => {
                return Err(TaskError::InvalidTask(format!("package role must be server or client, got {}", task.role)))
            }
        };
        let version = task.gluster_version.as_str();
        let repo = task.gluster_repo.as_str();
        Ok(Self {
            role,
            version: (!version.is_empty()).then(|| GlusterRelease::new(version)).transpose()?,
            repo: (!repo.is_empty()).then(|| GlusterRepo::new(repo)).transpose()?,
            os_release: PathBuf::from(OS_RELEASE),
            repo_file: PathBuf::from(REPO_FILE),
        })
    }

    /// Which of `names` are not installed (both queries exit non-zero when a package is not
    /// installed: the output says which). Asked again only when the package database changed.
    async fn not_installed<'a>(
        &self,
        ctx: &Context,
        family: Family,
        names: &[&'a str],
    ) -> Result<Vec<&'a str>, TaskError> {
        let query = query_cmd(ctx.runner.as_ref(), family, names)?;
        let sources: Vec<PathBuf> = database_files(family).iter().map(PathBuf::from).collect();
        let out = ctx.stamped_answers.output(ctx.runner.as_ref(), &query, &sources).await?;
        Ok(missing(names, &out.stdout))
    }

    /// Whether the repo file is there and came from `url`.
    fn repo_file_from(&self, url: &str) -> Result<bool, TaskError> {
        let text = etcfile::read_or_empty(&self.repo_file)
            .map_err(TaskError::io(format!("reading {}", self.repo_file.display())))?;
        Ok(text.lines().next() == Some(format!("{REPO_FILE_MARKER} {url}").as_str()))
    }

    /// Keeps a downloaded .repo file, marked with where it came from, once it looks like one.
    fn keep_repo_file(&self, url: &str, text: &str) -> Result<(), TaskError> {
        let sections = text.lines().filter(|l| l.trim_start().starts_with('[')).count();
        let sources = text
            .lines()
            .filter(|l| ["baseurl", "metalink", "mirrorlist"].iter().any(|k| l.trim_start().starts_with(k)))
            .count();
        if sections == 0 || sources == 0 {
            return Err(TaskError::InvalidTask(format!(
                "gluster_repo {url} is not a yum/dnf repository file (found {sections} [section] line(s) and {sources} \
                 baseurl/metalink/mirrorlist line(s)); {} left unchanged",
                self.repo_file.display()
            )));
        }
        let contents = format!("{REPO_FILE_MARKER} {url}\n{text}");
        etcfile::atomic_write(&self.repo_file, contents.as_bytes(), 0o644)
            .map_err(TaskError::io(format!("writing {}", self.repo_file.display())))
    }
}

#[async_trait]
impl Task for EnsurePackages {
    type Change = PackageStep;

    async fn plan(&self, ctx: &Context) -> Result<Plan<PackageStep>, TaskError> {
        let runner = ctx.runner.as_ref();
        let text = std::fs::read_to_string(&self.os_release)
            .map_err(TaskError::io(format!("reading {}", self.os_release.display())))?;
        let os = os_release::parse(&text);
        let family = os.family().map_err(TaskError::Unsupported)?;
        let mut warnings = Vec::new();
        if family != Family::RedHat && (self.version.is_some() || self.repo.is_some()) {
            warnings.push(format!(
                "[pool] gluster_version and gluster_repo apply to RHEL-family hosts; {} installs GlusterFS from its \
                 own repositories",
                os.name()
            ));
        }
        let names = packages(family, self.role);
        let missing = self.not_installed(ctx, family, names).await?;
        if missing.is_empty() {
            return Ok(Plan { warnings, ..Plan::unchanged() });
        }
        let source = source(&os, family, self.version, self.repo.as_ref())?;
        let mut steps = Vec::new();
        match &source {
            Source::Distribution => {}
            Source::ReleasePackage { name, sig } => {
                if !self.not_installed(ctx, family, &[name.as_str()]).await?.is_empty() {
                    if *sig && os.is_rhel() {
                        warnings.push(format!(
                            "{}: RHEL's own repositories do not carry {name} (it comes with CentOS Stream, Rocky and \
                             Alma extras), so installing it fails unless a repository added here provides it; set \
                             [pool] gluster_repo to a .repo URL or a release package your repositories carry",
                            os.name()
                        ));
                    }
                    steps.extend(install_cmds(runner, family, &[name.as_str()], None)?.into_iter().map(Step::Run));
                }
            }
            Source::RepoFile(url) => {
                if !self.repo_file_from(url)? {
                    let curl = runner
                        .cmd("curl")?
                        .args(["-fsSL", "--proto", "=https", "--max-time", "60"])
                        .arg(url)
                        .timeout(DOWNLOAD_TIMEOUT);
                    steps.push(Step::RepoFile { url: url.clone(), curl, path: self.repo_file.clone() });
                }
            }
        }
        if family == Family::RedHat && self.role == Role::Server && os.is_rhel() && os.major_version() >= Some(8) {
            warnings.push(format!(
                "{}: glusterfs-server needs python3-pyxattr from CodeReady Linux Builder; enable it first (e.g. \
                 subscription-manager repos --enable codeready-builder-for-rhel-{}-$(arch)-rpms)",
                os.name(),
                os.major_version().unwrap_or_default()
            ));
        }
        let extra = extra_repo(&os, family, self.role);
        steps.extend(install_cmds(runner, family, &missing, extra)?.into_iter().map(Step::Run));
        let install = Arc::new(Install { family, os, source, missing });
        let changes = steps.into_iter().map(|step| PackageStep { step, install: install.clone() }).collect();
        Ok(Plan { warnings, ..Plan::of(changes) })
    }

    /// Runs the steps, then confirms the missing packages are installed.
    async fn apply(&self, ctx: &Context, plan: Plan<PackageStep>) -> Result<Vec<PackageStep>, TaskError> {
        let Some(install) = plan.changes.first().map(|c| c.install.clone()) else { return Ok(plan.changes) };
        for change in &plan.changes {
            match &change.step {
                Step::Run(cmd) => run_install(ctx, &install, cmd).await?,
                Step::RepoFile { url, curl, .. } => {
                    let out = ctx.runner.run(curl).await?;
                    self.keep_repo_file(url, &out.stdout)?;
                }
            }
        }
        let still = self.not_installed(ctx, install.family, &install.missing).await?;
        if !still.is_empty() {
            return Err(TaskError::Failed(format!(
                "the package manager succeeded but {} is still not installed (from {})",
                still.join(" "),
                install.source
            )));
        }
        Ok(plan.changes)
    }
}

/// Runs one install; a failure on an RPM host says where GlusterFS was to come from.
async fn run_install(ctx: &Context, install: &Install, cmd: &Cmd) -> Result<(), TaskError> {
    let result = ctx.runner.run(cmd).await;
    // Installed or not, in part or not: the next query asks the database again.
    ctx.stamped_answers.forget();
    match result {
        Ok(_) => Ok(()),
        Err(CommandError::Failed { cmd, code, stdout, stderr }) if install.family == Family::RedHat => {
            let mut hint = format!("GlusterFS for {} comes from {}", install.os.name(), install.source);
            if install.os.is_rhel() {
                hint.push_str(
                    "; RHEL's own repositories carry neither the Storage SIG release packages nor python3-pyxattr \
                     (CodeReady Linux Builder)",
                );
            }
            let stderr = format!("{} ({hint})", stderr.trim());
            Err(CommandError::Failed { cmd, code, stdout, stderr }.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::{Argv, FakeRunner};
    use crate::host::runner::Output;
    use crate::tasks::shape::{AnyTask, Check};
    use crate::tasks::testing::converges;
    use std::path::Path;

    /// Every program is installed, in /usr/bin.
    const EVERYTHING: &[&str] = &["rpm", "dpkg-query", "dnf", "yum", "env", "apt-get", "curl"];
    /// An EL7 image: yum, no dnf.
    const YUM_ONLY: &[&str] = &["rpm", "dpkg-query", "yum", "env", "apt-get", "curl"];

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fixtures/os-release").join(name)
    }

    struct Host {
        task: EnsurePackages,
        _dir: tempfile::TempDir,
    }

    fn host(fixture_name: &str, role: Role, version: Option<&str>, repo: Option<&str>) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let task = EnsurePackages {
            role,
            version: version.map(|v| GlusterRelease::new(v).unwrap()),
            repo: repo.map(|r| GlusterRepo::new(r).unwrap()),
            os_release: fixture(fixture_name),
            repo_file: dir.path().join("brickyard-gluster.repo"),
        };
        Host { task, _dir: dir }
    }

    /// A host with `programs` (in /usr/bin) that answers `script` in order, argv for argv.
    fn ctx(programs: &[&str], script: Vec<(Argv, Output)>) -> Context {
        let installed = programs.iter().fold(FakeRunner::default(), |f, p| f.installed(&format!("/usr/bin/{p}")));
        Context::direct(script.into_iter().fold(installed, |f, (argv, out)| f.expect_output(argv, out)))
    }

    fn ok(stdout: &str) -> Output {
        Output { code: Some(0), stdout: stdout.into(), stderr: String::new() }
    }

    fn not_installed(stdout: &str) -> Output {
        Output { code: Some(1), stdout: stdout.into(), stderr: String::new() }
    }

    fn words(command: &[&str], names: &[&str]) -> Argv {
        Argv::from(command.iter().chain(names).copied().collect::<Vec<_>>().as_slice())
    }

    /// `rpm -q` asking for `names` (its query format holds a space).
    fn rpm_q(names: &[&str]) -> Argv {
        words(&["/usr/bin/rpm", "-q", "--qf", "%{NAME} installed\\n"], names)
    }

    /// `dpkg-query` asking for `names` (its format holds a space).
    fn dpkg_q(names: &[&str]) -> Argv {
        words(&["/usr/bin/dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n"], names)
    }

    const SERVER_RPMS: &[&str] = &["glusterfs-server", "glusterfs-fuse"];
    const SERVER_DEBS: &[&str] = &["glusterfs-server", "glusterfs-client"];
    const APT: &str = "/usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get";

    /// `MANAGER install -y RELEASE` then glusterfs-server (with `EXTRA` enabled for it).
    fn sig(manager: &str, release: &str, extra: &str) -> Planned {
        let extra = if extra.is_empty() { String::new() } else { format!(" --enablerepo={extra}") };
        Ok(vec![
            format!("/usr/bin/{manager} install -y {release}"),
            format!("/usr/bin/{manager} install -y{extra} glusterfs-server glusterfs-fuse"),
        ])
    }

    /// What a platform's plan is: the exact commands, or (a refusal) the platform it names.
    type Planned = Result<Vec<String>, &'static str>;

    /// One platform: its os-release fixture, family, major version, programs, the release
    /// package it looks for (if any) and its plan.
    type Row = (&'static str, Family, u32, &'static [&'static str], Option<&'static str>, Planned);

    fn apt() -> Planned {
        Ok(vec![
            format!("{APT} update -q"),
            format!("{APT} install -y -q --no-install-recommends glusterfs-server glusterfs-client"),
        ])
    }

    /// Each platform's os-release, as a server with nothing installed: its family and major
    /// version, the queries run (`None`: no release package to look for), and the exact
    /// commands planned, or the refusal.
    #[tokio::test]
    async fn every_platform_plans_its_own_commands() {
        use Family::{Debian, RedHat};
        const EL10: &str = "(EL10): the CentOS Storage SIG builds no GlusterFS for EL10 (glusterfs issue #4646); set \
                            [pool] gluster_repo to the https URL of a .repo file";
        const ALL: &[&str] = EVERYTHING;
        #[rustfmt::skip]
        let rows: [Row; 16] = [
            ("rhel-7", RedHat, 7, YUM_ONLY, Some("centos-release-gluster9"), sig("yum", "centos-release-gluster9", "")),
            ("rhel-8", RedHat, 8, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "")),
            ("rhel-9", RedHat, 9, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "")),
            ("rhel-10", RedHat, 10, ALL, None, Err("Red Hat Enterprise Linux 10.0 (Coughlan)")),
            ("centos-7", RedHat, 7, YUM_ONLY, Some("centos-release-gluster9"), sig("yum", "centos-release-gluster9", "")),
            ("centos-stream-8", RedHat, 8, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "powertools")),
            ("centos-stream-9", RedHat, 9, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "crb")),
            ("centos-stream-10", RedHat, 10, ALL, None, Err("CentOS Stream 10 (Coughlan)")),
            ("rocky-8", RedHat, 8, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "powertools")),
            ("rocky-9", RedHat, 9, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "crb")),
            ("alma-8", RedHat, 8, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "powertools")),
            ("alma-9", RedHat, 9, ALL, Some("centos-release-gluster11"), sig("dnf", "centos-release-gluster11", "crb")),
            ("alma-10", RedHat, 10, ALL, None, Err("AlmaLinux 10.0 (Purple Lion)")),
            ("debian-12", Debian, 12, ALL, None, apt()),
            ("ubuntu-22.04", Debian, 22, ALL, None, apt()),
            ("ubuntu-24.04", Debian, 24, ALL, None, apt()),
        ];
        for (name, family, major, programs, release, planned) in rows {
            let os = os_release::parse(&std::fs::read_to_string(fixture(name)).unwrap());
            assert_eq!((os.family(), os.major_version()), (Ok(family), Some(major)), "{name}");

            // The strict FakeRunner checks that exactly these queries run.
            let mut queries = vec![match family {
                Debian => (dpkg_q(SERVER_DEBS), not_installed("")),
                _ => (rpm_q(SERVER_RPMS), not_installed("")),
            }];
            queries.extend(release.map(|r| (rpm_q(&[r]), not_installed(""))));
            let checked = host(name, Role::Server, None, None).task.check(&ctx(programs, queries)).await;
            match (checked, planned) {
                (Ok(check), Ok(planned)) => {
                    assert_eq!(check.changes, planned, "{name}");
                    let rhel_warned = check.warnings.iter().any(|w| w.contains("RHEL's own repositories do not carry"));
                    assert_eq!(rhel_warned, name.starts_with("rhel"), "{name}: {:?}", check.warnings);
                }
                (Err(err), Err(platform)) => {
                    assert!(matches!(err, TaskError::Unsupported(_)), "{name}: {err:?}");
                    assert!(err.to_string().contains(&format!("{platform} {EL10}")), "{name}: {err}");
                }
                (got, want) => panic!("{name}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn families_of_other_distributions() {
        let family = |text: &str| os_release::parse(text).family();
        assert_eq!(family("ID=fedora\nVERSION_ID=40\n"), Ok(Family::Fedora));
        assert_eq!(family("ID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n"), Ok(Family::RedHat));
        assert_eq!(family("ID=x\nID_LIKE=\"suse debian\"\n"), Ok(Family::Debian));
        let err = family("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nPRETTY_NAME=\"openSUSE Leap 15.6\"\n")
            .unwrap_err();
        assert!(err.contains("unsupported distribution openSUSE Leap 15.6"), "{err}");
    }

    #[test]
    fn reads_query_output() {
        // dpkg-query prints nothing (stderr: "no packages found") for unknown packages, and
        // `not-installed`/`config-files` for removed ones.
        let names = ["glusterfs-server", "glusterfs-client"];
        assert_eq!(missing(&names, "glusterfs-server installed\nglusterfs-client installed\n"), Vec::<&str>::new());
        assert_eq!(
            missing(&names, "glusterfs-server config-files\nglusterfs-client installed\n"),
            ["glusterfs-server"]
        );
        // rpm prints "package X is not installed" on stdout.
        let names = ["glusterfs-server", "glusterfs-fuse"];
        assert_eq!(
            missing(&names, "package glusterfs-server is not installed\nglusterfs-fuse installed\n"),
            ["glusterfs-server"]
        );
    }

    #[test]
    fn role_version_and_repo_are_validated() {
        let proto = |role: i32, version: &str, repo: &str| v1::EnsurePackages {
            role,
            gluster_version: version.into(),
            gluster_repo: repo.into(),
        };
        let err = EnsurePackages::from_proto(&proto(0, "", "")).err().unwrap();
        assert!(err.to_string().contains("server or client"), "{err}");
        assert!(EnsurePackages::from_proto(&proto(9, "", "")).is_err());
        let err = EnsurePackages::from_proto(&proto(1, "12", "")).err().unwrap();
        assert!(err.to_string().contains("invalid GlusterFS version \"12\""), "{err}");
        let err = EnsurePackages::from_proto(&proto(1, "", "http://x/y.repo")).err().unwrap();
        assert!(err.to_string().contains("must be https://"), "{err}");
        assert!(EnsurePackages::from_proto(&proto(2, "10", "")).is_ok());
    }

    #[tokio::test]
    async fn installed_packages_need_no_repository_even_on_el10() {
        let all = || (rpm_q(SERVER_RPMS), ok("glusterfs-server installed\nglusterfs-fuse installed\n"));
        let h = host("alma-10", Role::Server, None, None);
        assert_eq!(h.task.check(&ctx(EVERYTHING, vec![all()])).await.unwrap(), Check::default());
        assert!(h.task.run(&ctx(EVERYTHING, vec![all()])).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_spec_picks_the_release_or_the_repository() {
        // gluster_version = "10" on Rocky 9, release package already there: only glusterfs.
        let c = ctx(
            EVERYTHING,
            vec![
                (rpm_q(SERVER_RPMS), not_installed("glusterfs-fuse installed\n")),
                (rpm_q(&["centos-release-gluster10"]), ok("centos-release-gluster10 installed\n")),
            ],
        );
        let h = host("rocky-9", Role::Server, Some("10"), None);
        let check = h.task.check(&c).await.unwrap();
        assert_eq!(
            check,
            Check {
                changes: vec!["/usr/bin/dnf install -y --enablerepo=crb glusterfs-server".into()],
                warnings: vec![]
            }
        );

        // gluster_version = "11" where the SIG has only 9.
        let c = ctx(YUM_ONLY, vec![(rpm_q(&["glusterfs-fuse"]), not_installed(""))]);
        let h = host("centos-7", Role::Client, Some("11"), None);
        let err = h.task.check(&c).await.unwrap_err().to_string();
        assert!(
            err.contains("CentOS Linux 7 (Core) (EL7): the CentOS Storage SIG has no GlusterFS 11 for EL7 (it has 9)"),
            "{err}"
        );

        // A release package of the spec's on RHEL 10: installed, then glusterfs (CRB is RHEL's own).
        let c = ctx(
            EVERYTHING,
            vec![(rpm_q(SERVER_RPMS), not_installed("")), (rpm_q(&["mycorp-gluster-release"]), not_installed(""))],
        );
        let h = host("rhel-10", Role::Server, None, Some("mycorp-gluster-release"));
        let check = h.task.check(&c).await.unwrap();
        assert_eq!(
            check.changes,
            [
                "/usr/bin/dnf install -y mycorp-gluster-release",
                "/usr/bin/dnf install -y glusterfs-server glusterfs-fuse"
            ]
        );
        assert!(check.warnings.iter().any(|w| w.contains("codeready-builder-for-rhel-10")), "{:?}", check.warnings);
        assert!(!check.warnings.iter().any(|w| w.contains("do not carry")), "{:?}", check.warnings);

        // Debian ignores both keys, and says so.
        let c = ctx(EVERYTHING, vec![(dpkg_q(&["glusterfs-client"]), ok("glusterfs-client installed\n"))]);
        let h = host("debian-12", Role::Client, Some("11"), None);
        let check = h.task.check(&c).await.unwrap();
        assert!(check.changes.is_empty());
        assert_eq!(
            check.warnings,
            ["[pool] gluster_version and gluster_repo apply to RHEL-family hosts; Debian GNU/Linux 12 (bookworm) \
              installs GlusterFS from its own repositories"]
        );
    }

    const REPO_URL: &str = "https://copr.example.org/coprs/someone/glusterfs/repo/epel-10/glusterfs-epel-10.repo";
    const REPO_TEXT: &str = "[copr:someone:glusterfs]\nname=GlusterFS for EL10\nbaseurl=https://download.copr.example.org/results/someone/glusterfs/epel-10-$basearch/\ngpgcheck=1\ngpgkey=https://download.copr.example.org/results/someone/glusterfs/pubkey.gpg\nenabled=1\n";

    #[tokio::test]
    async fn a_repo_file_is_downloaded_once_then_used() {
        let h = host("alma-10", Role::Server, None, Some(REPO_URL));
        let curl = format!("/usr/bin/curl -fsSL --proto =https --max-time 60 {REPO_URL}");
        let install = "/usr/bin/dnf install -y --enablerepo=crb glusterfs-server glusterfs-fuse";
        let installed = "glusterfs-server installed\nglusterfs-fuse installed\n";
        // Plan, then apply (which plans again), then a plan that finds everything installed.
        // Only the install makes the query run again: the database files (none in this test)
        // did not change in between.
        let c = ctx(
            EVERYTHING,
            vec![
                (rpm_q(SERVER_RPMS), not_installed("")),
                (Argv::from(&curl), ok(REPO_TEXT)),
                (Argv::from(install), ok("")),
                (rpm_q(SERVER_RPMS), ok(installed)),
            ],
        );
        let (_, done) = converges(&h.task, &c).await;
        assert_eq!(done, [format!("{curl} > {}", h.task.repo_file.display()), install.to_owned()]);
        let written = std::fs::read_to_string(&h.task.repo_file).unwrap();
        assert_eq!(written, format!("{REPO_FILE_MARKER} {REPO_URL}\n{REPO_TEXT}"));

        // Packages gone again (say, removed by hand): the kept file is used, not downloaded.
        let c = ctx(EVERYTHING, vec![(rpm_q(SERVER_RPMS), not_installed(""))]);
        assert_eq!(h.task.check(&c).await.unwrap().changes, [install]);
    }

    #[tokio::test]
    async fn a_download_that_is_no_repo_file_is_refused() {
        let h = host("centos-stream-10", Role::Client, None, Some(REPO_URL));
        let curl = format!("/usr/bin/curl -fsSL --proto =https --max-time 60 {REPO_URL}");
        let c = ctx(
            EVERYTHING,
            vec![(rpm_q(&["glusterfs-fuse"]), not_installed("")), (Argv::from(&curl), ok("<html>Not here</html>\n"))],
        );
        let err = h.task.run(&c).await.unwrap_err().to_string();
        assert!(err.contains(&format!("gluster_repo {REPO_URL} is not a yum/dnf repository file")), "{err}");
        assert!(!h.task.repo_file.exists());
    }

    #[tokio::test]
    async fn a_failed_install_on_rhel_says_where_glusterfs_was_to_come_from() {
        let h = host("rhel-9", Role::Client, None, None);
        let c = ctx(
            EVERYTHING,
            vec![
                (rpm_q(&["glusterfs-fuse"]), not_installed("")),
                (rpm_q(&["centos-release-gluster11"]), not_installed("")),
                (
                    Argv::from("/usr/bin/dnf install -y centos-release-gluster11"),
                    Output {
                        code: Some(1),
                        stdout: String::new(),
                        stderr: "Error: Unable to find a match: centos-release-gluster11\n".into(),
                    },
                ),
            ],
        );
        let err = h.task.run(&c).await.unwrap_err().to_string();
        assert!(
            err.contains(
                "Unable to find a match: centos-release-gluster11 (GlusterFS for Red Hat Enterprise Linux 9.4 (Plow) \
                 comes from the CentOS Storage SIG (centos-release-gluster11); RHEL's own repositories carry neither"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn installs_only_the_missing_ones() {
        let h = host("ubuntu-24.04", Role::Server, None, None);
        let not_found = || Output {
            code: Some(1),
            stdout: "glusterfs-client installed\n".into(),
            stderr: "dpkg-query: no packages found matching glusterfs-server\n".into(),
        };
        let update = format!("{APT} update -q");
        let install = format!("{APT} install -y -q --no-install-recommends glusterfs-server");
        // The query, apt-get, and the query after it, which answers `after`.
        let apply = |after: Output| {
            ctx(
                EVERYTHING,
                vec![
                    (dpkg_q(SERVER_DEBS), not_found()),
                    (Argv::from(&update), ok("")),
                    (Argv::from(&install), ok("")),
                    (dpkg_q(&["glusterfs-server"]), after),
                ],
            )
        };
        let done = h.task.run(&apply(ok("glusterfs-server installed\n"))).await.unwrap();
        assert_eq!(done, [update.clone(), install.clone()]);

        // A package manager that "succeeds" without installing is an error, not a success.
        let err = h.task.run(&apply(not_found())).await.unwrap_err();
        assert!(
            err.to_string().contains("glusterfs-server is still not installed (from the distribution's repositories)"),
            "{err}"
        );
    }
}
