//! `EnsurePackages`: the GlusterFS packages a server (glusterfs-server and the FUSE client) or
//! a client (the FUSE client) needs. The distribution family comes from /etc/os-release (`ID`,
//! `ID_LIKE`): Debian-family hosts are queried with `dpkg-query` and installed with
//! `apt-get`, RPM-family hosts with `rpm -q` and `dnf` (or `yum` where there is no dnf). The
//! package manager runs only when something is missing. Reads /etc/os-release; installs
//! packages.

use std::path::PathBuf;
use std::time::Duration;

use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::runner::{find_program, Cmd, CommandError};

const OS_RELEASE: &str = "/etc/os-release";
/// Downloads and installs can take long on a slow mirror.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Debian,
    Rpm,
}

/// The distribution family from /etc/os-release: `ID` first, then each `ID_LIKE` entry.
fn family(os_release: &str) -> Result<Family, String> {
    let value = |key: &str| {
        os_release.lines().find_map(|line| {
            let v = line.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
    };
    let id = value("ID").unwrap_or_default();
    let like = value("ID_LIKE").unwrap_or_default();
    for candidate in std::iter::once(id.as_str()).chain(like.split_whitespace()) {
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
fn query_cmd(family: Family, names: &[&str]) -> Result<Cmd, TaskError> {
    Ok(match family {
        Family::Debian => {
            Cmd::new(find_program("dpkg-query")?).arg("-W").arg("-f=${Package} ${db:Status-Status}\\n").args(names)
        }
        Family::Rpm => Cmd::new(find_program("rpm")?).args(["-q", "--qf", "%{NAME} installed\\n"]).args(names),
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
fn install_cmds(family: Family, names: &[&str]) -> Result<Vec<Cmd>, TaskError> {
    Ok(match family {
        Family::Debian => {
            // `env` only sets debconf's frontend so no question can wait for a terminal.
            let env = find_program("env")?;
            let apt_get = find_program("apt-get")?;
            let apt = |args: &[&str]| {
                Cmd::new(&env).arg("DEBIAN_FRONTEND=noninteractive").arg(&apt_get).args(args).timeout(INSTALL_TIMEOUT)
            };
            vec![apt(&["update", "-q"]), apt(&["install", "-y", "-q", "--no-install-recommends"]).args(names)]
        }
        Family::Rpm => {
            let manager = find_program("dnf").or_else(|_| find_program("yum"))?;
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
        let family = family(&os_release).map_err(TaskError::Unsupported)?;
        let names = packages(family, self.role);
        // Both queries exit non-zero when a package is not installed: the output says which.
        let out = ctx.runner.output(&query_cmd(family, names)?).await?;
        Ok((family, missing(names, &out.stdout)))
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let (_, missing) = self.missing(ctx).await?;
        Ok(if missing.is_empty() {
            Check::unchanged()
        } else {
            Check::change(format!("install {}", missing.join(" ")))
        })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let (family, missing) = self.missing(ctx).await?;
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        for cmd in install_cmds(family, &missing)? {
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
        Ok(vec![format!("installed {}", missing.join(" "))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fake::FakeRunner;
    use crate::runner::Output;
    use crate::tasks::ServiceManager;
    use std::sync::Arc;

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
    const UBUNTU: &str = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
    const ROCKY: &str = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n";
    const CENTOS7: &str = "NAME=\"CentOS Linux\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\n";
    const AMAZON: &str = "NAME=\"Amazon Linux\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\n";
    const EXOTIC: &str = "ID=something\nID_LIKE=\"other\"\n";
    const SUSE: &str = "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n";

    #[test]
    fn families() {
        assert_eq!(family(DEBIAN), Ok(Family::Debian));
        assert_eq!(family(UBUNTU), Ok(Family::Debian));
        assert_eq!(family(ROCKY), Ok(Family::Rpm));
        assert_eq!(family(CENTOS7), Ok(Family::Rpm));
        assert_eq!(family(AMAZON), Ok(Family::Rpm));
        assert_eq!(family("ID=x\nID_LIKE=\"suse debian\"\n"), Ok(Family::Debian));
        for other in [EXOTIC, SUSE, ""] {
            assert!(family(other).unwrap_err().contains("unsupported distribution"), "{other}");
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

    #[tokio::test]
    async fn installed_packages_run_no_package_manager() {
        let (t, _dir) = task(Role::Server, DEBIAN);
        let runner = Arc::new(FakeRunner::default().expect(
            "/usr/bin/dpkg-query -W -f=${Package} ${db:Status-Status}\\n glusterfs-server glusterfs-client",
            "glusterfs-server installed\nglusterfs-client installed\n",
        ));
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        assert!(t.apply(&ctx).await.unwrap().is_empty());
        assert_eq!(runner.seen().len(), 1);

        let (t, _dir) = task(Role::Client, ROCKY);
        let runner = Arc::new(
            FakeRunner::default()
                .expect("/usr/bin/rpm -q --qf %{NAME} installed\\n glusterfs-fuse", "glusterfs-fuse installed\n"),
        );
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        assert_eq!(t.check(&ctx).await.unwrap(), Check::unchanged());
        assert_eq!(runner.seen().len(), 1);
    }

    #[tokio::test]
    async fn installs_only_the_missing_ones() {
        let (t, _dir) = task(Role::Server, UBUNTU);
        let not_found = Output {
            code: Some(1),
            stdout: "glusterfs-client installed\n".into(),
            stderr: "dpkg-query: no packages found matching glusterfs-server\n".into(),
        };
        let runner = Arc::new(
            FakeRunner::default()
                .expect_output("/usr/bin/dpkg-query", not_found.clone())
                .expect("/usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get update -q", "")
                .expect(
                    "/usr/bin/env DEBIAN_FRONTEND=noninteractive /usr/bin/apt-get install -y -q --no-install-recommends glusterfs-server",
                    "",
                )
                .expect("/usr/bin/dpkg-query", "glusterfs-server installed\nglusterfs-client installed\n"),
        );
        let ctx = Context { runner: runner.clone(), service_manager: ServiceManager::Direct };
        assert_eq!(t.apply(&ctx).await.unwrap(), ["installed glusterfs-server"]);
        assert_eq!(runner.seen().len(), 4);

        // A package manager that "succeeds" without installing is an error, not a success.
        let runner = Arc::new(
            FakeRunner::default()
                .expect_output("/usr/bin/dpkg-query", not_found.clone())
                .expect("/usr/bin/env", "")
                .expect("/usr/bin/env", "")
                .expect_output("/usr/bin/dpkg-query", not_found),
        );
        let ctx = Context { runner, service_manager: ServiceManager::Direct };
        let err = t.apply(&ctx).await.unwrap_err();
        assert!(err.to_string().contains("glusterfs-server is still not installed"), "{err}");
    }
}
