//! `EnsurePackages`: the GlusterFS packages a server (glusterfs-server and the FUSE client) or
//! a client (the FUSE client) needs. The distribution family comes from /etc/os-release (`ID`,
//! `ID_LIKE`): Debian-family hosts are queried with `dpkg-query` and installed with
//! `apt-get`, RPM-family hosts with `rpm -q` and `dnf` (or `yum` where there is no dnf). The
//! package manager runs only when something is missing. Reads /etc/os-release; installs
//! packages.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::host::os_release::{self, OsRelease};
use crate::host::runner::{Cmd, CommandError, Runner};
use crate::host::Context;

const OS_RELEASE: &str = "/etc/os-release";
/// Downloads and installs can take long on a slow mirror.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Debian,
    Rpm,
}

/// The distribution family from os-release: `ID` first, then each `ID_LIKE` entry.
fn family(os: &OsRelease) -> Result<Family, String> {
    let (id, like) = (&os.id, os.id_like.join(" "));
    for candidate in std::iter::once(id.as_str()).chain(os.id_like.iter().map(String::as_str)) {
        match candidate {
            "debian" | "ubuntu" => return Ok(Family::Debian),
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "ol" | "amzn" => return Ok(Family::Rpm),
            _ => {}
        }
    }
    Err(format!(
        "unsupported distribution ID={id:?} ID_LIKE={like:?} (supported: Debian/Ubuntu family, RHEL/Fedora family)"
    ))
}

fn packages(family: Family, role: Role) -> &'static [&'static str] {
    match (family, role) {
        (Family::Debian, Role::Server) => &["glusterfs-server", "glusterfs-client"],
        (Family::Debian, Role::Client) => &["glusterfs-client"],
        (Family::Rpm, Role::Server) => &["glusterfs-server", "glusterfs-fuse"],
        (Family::Rpm, Role::Client) => &["glusterfs-fuse"],
    }
}

/// The query that lists which of `names` are installed: one line per installed package
/// (`NAME installed` / `NAME`), nothing (or an error line) for the others.
fn query_cmd(runner: &dyn Runner, family: Family, names: &[&str]) -> Result<Cmd, TaskError> {
    Ok(match family {
        Family::Debian => runner.cmd("dpkg-query")?.arg("-W").arg("-f=${Package} ${db:Status-Status}\\n").args(names),
        Family::Rpm => runner.cmd("rpm")?.args(["-q", "--qf", "%{NAME} installed\\n"]).args(names),
    })
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

/// The commands that install `names`, in order.
fn install_cmds(runner: &dyn Runner, family: Family, names: &[&str]) -> Result<Vec<Cmd>, TaskError> {
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
        Family::Rpm => {
            let manager = runner.find("dnf").or_else(|_| runner.find("yum"))?;
            vec![Cmd::new(manager).args(["install", "-y"]).args(names).timeout(INSTALL_TIMEOUT)]
        }
    })
}

pub struct EnsurePackages {
    role: Role,
    os_release: PathBuf,
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
        Ok(Self { role, os_release: PathBuf::from(OS_RELEASE) })
    }

    /// The host's family and the wanted packages that are not installed.
    async fn missing(&self, ctx: &Context) -> Result<(Family, Vec<&'static str>), TaskError> {
        let os_release = std::fs::read_to_string(&self.os_release)
            .map_err(TaskError::io(format!("reading {}", self.os_release.display())))?;
        let family = family(&os_release::parse(&os_release)).map_err(TaskError::Unsupported)?;
        let names = packages(family, self.role);
        // Both queries exit non-zero when a package is not installed: the output says which.
        let out = ctx.runner.output(&query_cmd(ctx.runner.as_ref(), family, names)?).await?;
        Ok((family, missing(names, &out.stdout)))
    }
}

/// The packages to install, and then the ones installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageChange {
    Install { family: Family, names: Vec<&'static str> },
    Installed(Vec<&'static str>),
}

impl fmt::Display for PackageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageChange::Install { names, .. } => write!(f, "install {}", names.join(" ")),
            PackageChange::Installed(names) => write!(f, "installed {}", names.join(" ")),
        }
    }
}

#[async_trait]
impl Task for EnsurePackages {
    type Change = PackageChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<PackageChange>, TaskError> {
        let (family, names) = self.missing(ctx).await?;
        Ok(Plan::of(if names.is_empty() { Vec::new() } else { vec![PackageChange::Install { family, names }] }))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<PackageChange>) -> Result<Vec<PackageChange>, TaskError> {
        let mut done = Vec::new();
        for change in plan.changes {
            if let PackageChange::Install { family, names } = change {
                self.install(ctx, family, &names).await?;
                done.push(PackageChange::Installed(names));
            }
        }
        Ok(done)
    }
}

impl EnsurePackages {
    async fn install(&self, ctx: &Context, family: Family, missing: &[&str]) -> Result<(), TaskError> {
        for cmd in install_cmds(ctx.runner.as_ref(), family, missing)? {
            match ctx.runner.run(&cmd).await {
                Ok(_) => {}
                // RHEL and its rebuilds ship no GlusterFS server in their base repositories.
                Err(CommandError::Failed { cmd, code, stdout, stderr }) if family == Family::Rpm => {
                    let stderr = format!(
                        "{} (GlusterFS for RHEL-family systems comes from the CentOS Storage SIG, e.g. \
                         centos-release-gluster10, or gluster.org's repositories: is one enabled?)",
                        stderr.trim()
                    );
                    return Err(CommandError::Failed { cmd, code, stdout, stderr }.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (_, still) = self.missing(ctx).await?;
        if !still.is_empty() {
            return Err(TaskError::Failed(format!(
                "the package manager succeeded but {} is still not installed",
                still.join(" ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::{Argv, FakeRunner};
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
    const UBUNTU: &str = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
    const ROCKY: &str = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n";
    const CENTOS7: &str = "NAME=\"CentOS Linux\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\n";
    const AMAZON: &str = "NAME=\"Amazon Linux\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\n";
    const EXOTIC: &str = "ID=something\nID_LIKE=\"other\"\n";
    const SUSE: &str = "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n";

    fn family_of(os_release: &str) -> Result<Family, String> {
        family(&os_release::parse(os_release))
    }

    #[test]
    fn families() {
        assert_eq!(family_of(DEBIAN), Ok(Family::Debian));
        assert_eq!(family_of(UBUNTU), Ok(Family::Debian));
        assert_eq!(family_of(ROCKY), Ok(Family::Rpm));
        assert_eq!(family_of(CENTOS7), Ok(Family::Rpm));
        assert_eq!(family_of(AMAZON), Ok(Family::Rpm));
        assert_eq!(family_of("ID=x\nID_LIKE=\"suse debian\"\n"), Ok(Family::Debian));
        for other in [EXOTIC, SUSE, ""] {
            assert!(family_of(other).unwrap_err().contains("unsupported distribution"), "{other}");
        }
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
    fn role_is_required() {
        let err = EnsurePackages::from_proto(&v1::EnsurePackages { role: 0 }).err().unwrap();
        assert!(err.to_string().contains("server or client"), "{err}");
        assert!(EnsurePackages::from_proto(&v1::EnsurePackages { role: 9 }).is_err());
    }

    fn task(role: Role, os_release: &str) -> (EnsurePackages, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("os-release"), os_release).unwrap();
        (EnsurePackages { role, os_release: dir.path().join("os-release") }, dir)
    }

    const SERVER: &[&str] = &["glusterfs-server", "glusterfs-client"];
    const APT_UPDATE: &str = "/usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get update -q";
    const APT_INSTALL: &str = "/usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get install -y -q \
                               --no-install-recommends glusterfs-server";

    /// `dpkg-query` asking for `names` (its format argument holds a space).
    fn dpkg_query(names: &[&str]) -> Argv {
        let mut argv = vec!["/usr/bin/dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n"];
        argv.extend(names);
        Argv::from(argv.as_slice())
    }

    #[tokio::test]
    async fn installed_packages_run_no_package_manager() {
        let (t, _dir) = task(Role::Server, DEBIAN);
        let runner = FakeRunner::default()
            .expect(dpkg_query(SERVER), "glusterfs-server installed\nglusterfs-client installed\n");
        assert!(t.run(&Context::direct(runner)).await.unwrap().is_empty());

        let (t, _dir) = task(Role::Client, ROCKY);
        let runner = FakeRunner::default().expect(
            ["/usr/bin/rpm", "-q", "--qf", "%{NAME} installed\\n", "glusterfs-fuse"],
            "glusterfs-fuse installed\n",
        );
        assert_eq!(t.plan(&Context::direct(runner)).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn installs_only_the_missing_ones() {
        let (t, _dir) = task(Role::Server, UBUNTU);
        let not_found = Output {
            code: Some(1),
            stdout: "glusterfs-client installed\n".into(),
            stderr: "dpkg-query: no packages found matching glusterfs-server\n".into(),
        };
        let both = "glusterfs-server installed\nglusterfs-client installed\n";
        let runner = FakeRunner::default()
            .installed("/usr/bin/apt-get")
            .expect_output(dpkg_query(SERVER), not_found.clone())
            .expect_output(dpkg_query(SERVER), not_found.clone())
            .expect(APT_UPDATE, "")
            .expect(APT_INSTALL, "")
            .expect(dpkg_query(SERVER), both)
            .expect(dpkg_query(SERVER), both);
        let (before, done) = converges(&t, &Context::direct(runner)).await;
        assert_eq!(
            (before.changes, done),
            (vec!["install glusterfs-server".to_owned()], vec!["installed glusterfs-server".to_owned()])
        );

        // A package manager that "succeeds" without installing is an error, not a success.
        let runner = FakeRunner::default()
            .installed("/usr/bin/apt-get")
            .expect_output(dpkg_query(SERVER), not_found.clone())
            .expect(APT_UPDATE, "")
            .expect(APT_INSTALL, "")
            .expect_output(dpkg_query(SERVER), not_found);
        let err = t.run(&Context::direct(runner)).await.unwrap_err();
        assert!(err.to_string().contains("glusterfs-server is still not installed"), "{err}");
    }
}
