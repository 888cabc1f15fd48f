//! `BrickSelinux`: where SELinux is enforcing or permissive, a brick directory gets the type
//! `glusterd_brick_t`, as gluster's own create/add-brick hook scripts give it when semanage is
//! installed: a local file-context rule `semanage fcontext -a -t glusterd_brick_t
//! "BRICK(/.*)?"` (`-m` when a local rule for that pattern names another type), then
//! `restorecon -R BRICK`. The rule is looked for among the local customizations
//! (`semanage fcontext -l -C`) and the directory's label read with `stat -c %C`, so a re-run
//! runs neither. Disabled: nothing to do, but a warning when /etc/selinux/config enables it at
//! the next boot. No semanage: a warning naming the package that has it
//! (`policycoreutils-python` on EL7, `policycoreutils-python-utils` elsewhere). Reads the
//! SELinux mode and /etc/os-release; runs semanage, stat and restorecon.

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use brickyard_proto::types::AbsPath;
use brickyard_proto::v1;

use super::shape::{Plan, Task, TaskError};
use crate::facts::selinux::{self, Mode, SelinuxPaths};
use crate::host::os_release::{self, Family};
use crate::host::runner::{Cmd, CommandError};
use crate::host::Context;

/// The type gluster's SELinux policy (glusterfs-selinux) gives brick directories.
const BRICK_TYPE: &str = "glusterd_brick_t";
const OS_RELEASE: &str = "/etc/os-release";
/// `restorecon -R` walks the whole brick.
const RESTORECON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

#[derive(Debug)]
pub struct BrickSelinux {
    path: AbsPath,
    selinux: SelinuxPaths,
    os_release: PathBuf,
}

/// The type of a local rule for exactly `pattern` in `semanage fcontext -l -C` output
/// (`PATTERN  all files  USER:ROLE:TYPE:LEVEL` lines under a header).
fn local_rule_type<'a>(listing: &'a str, pattern: &str) -> Option<&'a str> {
    listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(pattern)).then(|| words.last().and_then(context_type)).flatten()
    })
}

/// The type field of an SELinux context (`system_u:object_r:glusterd_brick_t:s0`).
fn context_type(context: &str) -> Option<&str> {
    context.split(':').nth(2)
}

/// The package that installs semanage on this platform.
fn semanage_package(os_release: &str) -> &'static str {
    let os = os_release::parse(os_release);
    match (os.family(), os.major_version()) {
        (Ok(Family::RedHat), Some(7)) => "policycoreutils-python",
        _ => "policycoreutils-python-utils",
    }
}

impl BrickSelinux {
    pub fn from_proto(task: &v1::BrickSelinux) -> Result<Self, TaskError> {
        let path = AbsPath::checked("brick path", &task.path)?;
        if let Err(e) = path.require_outside_system() {
            return Err(TaskError::InvalidTask(format!("{e}: labelling it {BRICK_TYPE} would relabel the system")));
        }
        Ok(Self { path, selinux: SelinuxPaths::system(), os_release: PathBuf::from(OS_RELEASE) })
    }

    fn pattern(&self) -> String {
        format!("{}(/.*)?", self.path)
    }

    /// Whether the directory carries the brick type (a directory not made yet does not).
    async fn labelled(&self, ctx: &Context) -> Result<bool, TaskError> {
        if !Path::new(self.path.as_str()).is_dir() {
            return Ok(false);
        }
        let out = ctx.runner.run(&ctx.runner.cmd("stat")?.args(["-c", "%C", self.path.as_str()])).await?;
        Ok(context_type(out.stdout.trim()) == Some(BRICK_TYPE))
    }
}

/// One semanage or restorecon command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relabel(Cmd);

impl fmt::Display for Relabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display())
    }
}

#[async_trait]
impl Task for BrickSelinux {
    type Change = Relabel;

    /// The commands apply would run, in order, and the warnings.
    async fn plan(&self, ctx: &Context) -> Result<Plan<Relabel>, TaskError> {
        let mode = selinux::mode(&self.selinux).map_err(TaskError::io("reading the SELinux mode"))?;
        if mode == Mode::Disabled {
            let warnings = match selinux::configured(&self.selinux) {
                Some(next @ (Mode::Enforcing | Mode::Permissive)) => vec![format!(
                    "SELinux is disabled now but {} makes it {} at the next boot: brick {} will then need the \
                     {BRICK_TYPE} context; run apply again after that reboot",
                    self.selinux.config().display(),
                    next.name(),
                    self.path
                )],
                _ => Vec::new(),
            };
            return Ok(Plan { warnings, ..Plan::unchanged() });
        }
        let semanage = match ctx.runner.find("semanage") {
            Ok(path) => path,
            Err(CommandError::NotFound { .. }) => {
                let os_release = std::fs::read_to_string(&self.os_release).unwrap_or_default();
                return Ok(Plan::unchanged().warn(format!(
                    "SELinux is {} but semanage is not installed: brick {} keeps its default context, which glusterd \
                     may be denied; install {} and run apply again",
                    mode.name(),
                    self.path,
                    semanage_package(&os_release)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let pattern = self.pattern();
        let rules = ctx.runner.run(&Cmd::new(&semanage).args(["fcontext", "-l", "-C"])).await?;
        let mut cmds = Vec::new();
        let rule = |flag: &str| Cmd::new(&semanage).args(["fcontext", flag, "-t", BRICK_TYPE, &pattern]);
        match local_rule_type(&rules.stdout, &pattern) {
            Some(BRICK_TYPE) => {}
            Some(_) => cmds.push(rule("-m")),
            None => cmds.push(rule("-a")),
        }
        if !cmds.is_empty() || !self.labelled(ctx).await? {
            cmds.push(ctx.runner.cmd("restorecon")?.args(["-R", self.path.as_str()]).timeout(RESTORECON_TIMEOUT));
        }
        Ok(Plan::of(cmds.into_iter().map(Relabel).collect()))
    }

    async fn apply(&self, ctx: &Context, plan: Plan<Relabel>) -> Result<Vec<Relabel>, TaskError> {
        if !plan.changes.is_empty() && !Path::new(self.path.as_str()).is_dir() {
            return Err(TaskError::NotReady(format!(
                "brick directory {} does not exist, so it cannot be labelled {BRICK_TYPE} (its brick dir task makes it)",
                self.path
            )));
        }
        for Relabel(cmd) in &plan.changes {
            ctx.runner.run(cmd).await?;
        }
        Ok(plan.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::selinux::tests::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::tasks::shape::{AnyTask, Check};
    use crate::tasks::testing::converges;

    /// semanage, stat and restorecon, in /usr/sbin.
    const EVERYTHING: &[&str] = &["semanage", "stat", "restorecon"];
    const NO_SEMANAGE: &[&str] = &["stat", "restorecon"];

    fn os_release(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fixtures/os-release").join(name)
    }

    /// A brick directory (made) on a host in SELinux `mode` (a fixture root), on `os`.
    fn brick(mode: &str, os: &str) -> (BrickSelinux, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("brick1")).unwrap();
        let task =
            BrickSelinux::from_proto(&v1::BrickSelinux { path: format!("{}/brick1", dir.path().display()) }).unwrap();
        (BrickSelinux { selinux: fixture(mode), os_release: os_release(os), ..task }, dir)
    }

    /// A host with `programs` (in /usr/sbin) whose commands `runner` answers.
    fn ctx(programs: &[&str], runner: FakeRunner) -> Context {
        Context::direct(programs.iter().fold(runner, |f, p| f.installed(&format!("/usr/sbin/{p}"))))
    }

    fn change(line: String) -> Check {
        Check { changes: vec![line], warnings: vec![] }
    }

    /// `semanage fcontext -l -C` with no local rules, and with the gluster hook's rule.
    const NO_RULES: &str = "";
    fn hook_rule(pattern: &str, context: &str) -> String {
        format!(
            "SELinux fcontext                                   type               Context\n\n{pattern:<50} all files          {context}\n"
        )
    }

    #[tokio::test]
    async fn enforcing_adds_the_rule_and_relabels_once() {
        let (t, _dir) = brick("enforcing", "rocky-9");
        let pattern = t.pattern();
        let path = t.path.to_string();
        let semanage_add = format!("/usr/sbin/semanage fcontext -a -t glusterd_brick_t {pattern}");
        let restorecon = format!("/usr/sbin/restorecon -R {path}");
        let listed = hook_rule(&pattern, "system_u:object_r:glusterd_brick_t:s0");
        let stat = format!("/usr/sbin/stat -c %C {path}");
        let labelled = "unconfined_u:object_r:glusterd_brick_t:s0\n";
        // The rule is missing, so restorecon runs whatever the label: no stat. Then the rule is
        // there and the directory carries the type.
        let runner = FakeRunner::default()
            .expect("/usr/sbin/semanage fcontext -l -C", NO_RULES)
            .expect("/usr/sbin/semanage fcontext -l -C", NO_RULES)
            .expect(&semanage_add, "")
            .expect(&restorecon, "")
            .expect("/usr/sbin/semanage fcontext -l -C", &listed)
            .expect(&stat, labelled);
        let (_, done) = converges(&t, &ctx(EVERYTHING, runner)).await;
        assert_eq!(done, [semanage_add, restorecon]);

        // Re-run: plan and apply change nothing.
        let runner = FakeRunner::default()
            .expect("/usr/sbin/semanage fcontext -l -C", &listed)
            .expect(&stat, labelled)
            .expect("/usr/sbin/semanage fcontext -l -C", &listed)
            .expect(&stat, labelled);
        let c = ctx(EVERYTHING, runner);
        assert_eq!(t.check(&c).await.unwrap(), Check::default());
        assert!(t.run(&c).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn permissive_relabels_a_directory_the_rule_covers_but_restorecon_never_reached() {
        let (t, _dir) = brick("permissive", "alma-9");
        let (pattern, path) = (t.pattern(), t.path.to_string());
        let runner = FakeRunner::default()
            .expect("/usr/sbin/semanage fcontext -l -C", &hook_rule(&pattern, "system_u:object_r:glusterd_brick_t:s0"))
            .expect(&format!("/usr/sbin/stat -c %C {path}"), "unconfined_u:object_r:default_t:s0\n");
        assert_eq!(t.check(&ctx(EVERYTHING, runner)).await.unwrap(), change(format!("/usr/sbin/restorecon -R {path}")));
    }

    #[tokio::test]
    async fn a_local_rule_of_another_type_is_modified() {
        let (t, _dir) = brick("enforcing", "centos-stream-9");
        let pattern = t.pattern();
        let runner = FakeRunner::default()
            .expect("/usr/sbin/semanage fcontext -l -C", &hook_rule(&pattern, "system_u:object_r:public_content_t:s0"));
        let check = t.check(&ctx(EVERYTHING, runner)).await.unwrap();
        assert_eq!(
            check.changes,
            [
                format!("/usr/sbin/semanage fcontext -m -t glusterd_brick_t {pattern}"),
                format!("/usr/sbin/restorecon -R {}", t.path)
            ]
        );
    }

    #[tokio::test]
    async fn disabled_runs_nothing_and_warns_only_when_the_next_boot_enables_it() {
        let (t, dir) = brick("disabled", "rocky-9");
        let c = ctx(EVERYTHING, FakeRunner::default());
        assert_eq!(t.check(&c).await.unwrap(), Check::default());
        assert!(t.run(&c).await.unwrap().is_empty());

        // selinux=0 on the kernel command line, config still enforcing.
        std::fs::create_dir_all(dir.path().join("root/etc/selinux")).unwrap();
        std::fs::write(dir.path().join("root/etc/selinux/config"), "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
            .unwrap();
        let t = BrickSelinux { selinux: SelinuxPaths::under(dir.path().join("root")), ..t };
        let check = t.check(&c).await.unwrap();
        assert!(check.changes.is_empty());
        assert_eq!(check.warnings.len(), 1, "{:?}", check.warnings);
        assert!(
            check.warnings[0].contains("SELinux is disabled now but")
                && check.warnings[0].contains("makes it enforcing at the next boot"),
            "{:?}",
            check.warnings
        );
    }

    #[tokio::test]
    async fn without_semanage_a_warning_names_the_package() {
        for (os, package) in [("centos-7", "policycoreutils-python"), ("rhel-8", "policycoreutils-python-utils")] {
            let (t, _dir) = brick("enforcing", os);
            let check = t.check(&ctx(NO_SEMANAGE, FakeRunner::default())).await.unwrap();
            assert!(check.changes.is_empty(), "{os}");
            assert_eq!(
                check.warnings,
                [format!(
                    "SELinux is enforcing but semanage is not installed: brick {} keeps its default context, which \
                     glusterd may be denied; install {package} and run apply again",
                    t.path
                )],
                "{os}"
            );
        }
    }

    #[tokio::test]
    async fn a_brick_not_made_yet_is_planned_but_not_labelled() {
        let (t, dir) = brick("enforcing", "rocky-9");
        std::fs::remove_dir(dir.path().join("brick1")).unwrap();
        let listed = hook_rule(&t.pattern(), "system_u:object_r:glusterd_brick_t:s0");
        let runner = FakeRunner::default()
            .expect("/usr/sbin/semanage fcontext -l -C", &listed)
            .expect("/usr/sbin/semanage fcontext -l -C", &listed);
        let c = ctx(EVERYTHING, runner);
        assert_eq!(t.check(&c).await.unwrap(), change(format!("/usr/sbin/restorecon -R {}", t.path)));
        let err = t.run(&c).await.unwrap_err().to_string();
        assert!(err.contains(&format!("brick directory {} does not exist", t.path)), "{err}");
    }

    #[test]
    fn system_directories_are_never_labelled() {
        for path in ["/", "/usr", "/var", "/var/lib/glusterd/x"] {
            let err = BrickSelinux::from_proto(&v1::BrickSelinux { path: path.into() }).unwrap_err().to_string();
            assert!(err.contains("a system directory") && err.contains("would relabel the system"), "{path}: {err}");
        }
        let err = BrickSelinux::from_proto(&v1::BrickSelinux { path: "brick1".into() }).unwrap_err().to_string();
        assert!(err.contains("brick path") && err.contains("absolute"), "{err}");
    }

    #[test]
    fn rules_and_contexts() {
        let listing = hook_rule("/vdisk/brick1(/.*)?", "system_u:object_r:glusterd_brick_t:s0")
            + "/vdisk/brick10(/.*)?                               all files          system_u:object_r:default_t:s0\n";
        assert_eq!(local_rule_type(&listing, "/vdisk/brick1(/.*)?"), Some("glusterd_brick_t"));
        assert_eq!(local_rule_type(&listing, "/vdisk/brick10(/.*)?"), Some("default_t"));
        assert_eq!(local_rule_type(&listing, "/vdisk(/.*)?"), None);
        assert_eq!(local_rule_type("", "/vdisk/brick1(/.*)?"), None);
        assert_eq!(context_type("unconfined_u:object_r:default_t:s0"), Some("default_t"));
        assert_eq!(context_type("?"), None);
    }
}
