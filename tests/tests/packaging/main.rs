//! Packaging (issues #7 and #13), with the real tools. `packaging/build.sh` builds the RPMs and
//! the .debs once per test run from ONE cargo zigbuild against glibc 2.17 (then rpmbuild +
//! rpmlint, dpkg-deb + lintian: about six minutes cold on 2 cores, half a minute when nothing
//! changed). The tests check the packages' files, dependencies and GLIBC symbol versions, and
//! install them for real, RPM scriptlets and Debian maintainer scripts included, with `rpm` and
//! `dpkg` into throwaway overlays of this machine's root ([`isolated_root`]), never into the
//! root itself: modes, conffiles, enablement, what removal and purge leave. [`systemd_boot`]
//! boots such a root with systemd as PID 1 (systemd-nspawn) and runs the packaged agent under
//! its unit; [`systemd_pool`] boots a lab's hosts that way and has the coordinator converge
//! them (glusterd through systemctl). Also `systemd-analyze verify` and `security` on the
//! unit, and the cloud-init user-data.
//!
//! Touches only: target/rpm, target/deb, the zig target dir (see build.sh), temp dirs, for
//! a booted root a cgroup of its own (removed afterwards), and `systemd_pool`'s lab (removed
//! by `brickyard-lab down`). A missing tool fails the test with
//! its name; nothing is skipped.

mod isolated_root;
mod systemd_boot;
mod systemd_pool;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use brickyard_tests::bins::bin;
use isolated_root::IsolatedRoot;

/// The newest glibc the binaries may need: RHEL/CentOS 7's.
const GLIBC_MAX: (u32, u32) = (2, 17);

/// What RHEL 7's rpm 4.11 can satisfy among `rpmlib(...)` requirements. Anything else (zstd
/// payload, rich dependencies...) would make the package uninstallable there.
const RHEL7_RPMLIB: &[&str] = &["CompressedFileNames", "FileDigests", "PayloadFilesHavePrefix", "PayloadIsXz"];

const AGENT_PACKAGE: &str = "brickyard-agent";
const UNIT: &str = "brickyard-agent.service";
/// What enabling the unit creates (its WantedBy=multi-user.target).
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/brickyard-agent.service";
const CONFIG: &str = "/etc/brickyard/agent.toml";
const PKI_DIR: &str = "/etc/brickyard/pki";
const KEY: &str = "/etc/brickyard/pki/agent.key";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

/// The absolute path of `tool` on PATH; fails naming it (and the package) when missing.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| panic!("`{name}` is not installed: scripts/install-deps.sh installs it (Debian 12)"))
}

/// Stdout of `out`; fails with `what`, the status, stdout and stderr unless it succeeded.
fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// Runs `program args` on this machine, returns stdout; fails with program, args and output.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(tool(program)).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    succeeded(&format!("{program} {args:?}"), &out)
}

/// The CLI and the agent package of one format.
struct Pair {
    cli: PathBuf,
    agent: PathBuf,
}

struct Packages {
    rpm: Pair,
    deb: Pair,
}

/// The one `DIR/PREFIX<digit>...SUFFIX` file (e.g. `brickyard-0.1.0-1.x86_64.rpm`, which
/// `brickyard-` + digit tells apart from `brickyard-agent-...`).
fn one_file(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(found.len(), 1, "expected one {prefix}VERSION{suffix} in {}: {found:?}", dir.display());
    found.into_iter().next().expect("one package")
}

/// Builds all packages on first use (one build per test run, shared by every test here).
fn packages() -> &'static Packages {
    static BUILT: OnceLock<Packages> = OnceLock::new();
    BUILT.get_or_init(|| {
        for name in ["bash", "cargo", "rpmbuild", "rpmlint", "dpkg-gencontrol", "lintian", "readelf", "objcopy"] {
            tool(name);
        }
        let started = Instant::now();
        let mut build = Command::new(tool("bash"));
        build.arg(repo().join("packaging/build.sh"));
        // What cargo and rustup set for this test process: build.sh must see the environment a
        // shell gives it, or cargo finds the release build stale and redoes it (six minutes).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if (key.starts_with("CARGO") && !["CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS"].contains(&&*key))
                || ["LD_LIBRARY_PATH", "RUSTUP_TOOLCHAIN_SOURCE", "RUST_RECURSION_COUNT"].contains(&&*key)
            {
                build.env_remove(&*key);
            }
        }
        let out = build.output().expect("running packaging/build.sh");
        succeeded("packaging/build.sh", &out);
        eprintln!("packaging/build.sh took {:.0?}", started.elapsed());
        let (rpm, deb) = (repo().join("target/rpm"), repo().join("target/deb"));
        Packages {
            rpm: Pair {
                cli: one_file(&rpm, "brickyard-", ".x86_64.rpm"),
                agent: one_file(&rpm, "brickyard-agent-", ".x86_64.rpm"),
            },
            deb: Pair {
                cli: one_file(&deb, "brickyard_", "_amd64.deb"),
                agent: one_file(&deb, "brickyard-agent_", "_amd64.deb"),
            },
        }
    })
}

fn query(rpm: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-qp"];
    all.extend_from_slice(args);
    all.push(rpm.to_str().expect("utf-8 path"));
    run("rpm", &all).lines().map(str::to_owned).collect()
}

/// Control field `field` of `deb` ("" when absent).
fn deb_field(deb: &Path, field: &str) -> String {
    run("dpkg-deb", &["--field", deb.to_str().expect("utf-8 path"), field]).trim().to_owned()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Rpm,
    Deb,
}

impl Format {
    const ALL: [Format; 2] = [Format::Rpm, Format::Deb];

    fn packages(self) -> &'static Pair {
        match self {
            Format::Rpm => &packages().rpm,
            Format::Deb => &packages().deb,
        }
    }

    /// Installs the CLI and the agent package into `root` with this format's own tool and
    /// every scriptlet, `options` added (e.g. `--force-confold`).
    fn install(self, root: &IsolatedRoot, options: &[&str]) -> Output {
        let pair = self.packages();
        let (cli, agent) = (root.copy_in(&pair.cli), root.copy_in(&pair.agent));
        let mut argv = match self {
            Format::Rpm => {
                root.chroot_ok(&["rpm", "--initdb"]);
                // --nodeps: this Debian root's rpm database provides nothing (no systemd, no
                // libc); the dependencies themselves are checked in
                // `dependencies_are_installable_on_rhel7_and_recommend_the_tools`.
                vec!["rpm", "-i", "--nodeps"]
            }
            Format::Deb => vec!["dpkg", "-i"],
        };
        argv.extend_from_slice(options);
        argv.extend([cli.as_str(), agent.as_str()]);
        root.chroot(&argv)
    }
}

/// A fresh isolated root with both packages of `format` installed, after `prepare` has put
/// files there (e.g. what cloud-init writes before the package).
fn installed(format: Format, prepare: impl FnOnce(&IsolatedRoot)) -> IsolatedRoot {
    let root = IsolatedRoot::new();
    prepare(&root);
    succeeded(&format!("installing the {format:?} packages"), &format.install(&root, &[]));
    root
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

/// Writes `content` to `inside` in `root` with `mode`, creating the parents.
fn write_in(root: &IsolatedRoot, inside: &str, content: &str, file_mode: u32) {
    let path = root.path(inside);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode)).expect("chmod");
}

/// `systemctl is-enabled` of the agent inside a root where systemd does not run (systemctl
/// then reads the unit files and links itself): "enabled", "disabled", "masked", or the error.
fn is_enabled(root: &IsolatedRoot) -> String {
    let out = root.chroot(&["systemctl", "is-enabled", UNIT]);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_owned()
}

/// Whether the enablement link exists, and then that it names the installed unit.
fn wants_link(root: &IsolatedRoot) -> bool {
    let Ok(target) = std::fs::read_link(root.path(WANTS_LINK)) else { return false };
    let target = target.to_str().expect("utf-8 link").to_owned();
    assert!(
        ["/lib/systemd/system/", "/usr/lib/systemd/system/"].iter().any(|dir| target == format!("{dir}{UNIT}")),
        "{WANTS_LINK} points to {target}, not to the packaged unit"
    );
    true
}

/// PIDs of the agents in `proc` (a /proc of the PID namespace to look at).
fn agent_processes(proc: &Path) -> Vec<String> {
    std::fs::read_dir(proc)
        .unwrap_or_else(|e| panic!("{}: {e}", proc.display()))
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "brickyard-agent"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn packages_hold_the_binaries_unit_config_and_pki_dir() {
    let rpms = &packages().rpm;
    let cli = query(&rpms.cli, &["-l"]);
    assert!(cli.contains(&"/usr/bin/brickyard".to_owned()), "CLI package files: {cli:?}");
    assert!(!cli.iter().any(|f| f.contains("agent")), "the CLI package must not carry agent files: {cli:?}");

    let agent = query(&rpms.agent, &["-l"]);
    for want in [
        "/usr/bin/brickyard-agent",
        "/usr/lib/systemd/system/brickyard-agent.service",
        "/usr/lib/systemd/system-preset/80-brickyard-agent.preset",
        CONFIG,
        PKI_DIR,
    ] {
        assert!(agent.contains(&want.to_owned()), "{want} missing from the agent package: {agent:?}");
    }
    // Declared modes and flags: the config is %config(noreplace), the pki dir 0700.
    let declared =
        query(&rpms.agent, &["--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]"]);
    let line = |path: &str| {
        declared
            .iter()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in {declared:?}"))
            .clone()
    };
    assert!(line(PKI_DIR).starts_with("drwx------ root "), "{}", line(PKI_DIR));
    let config = line(CONFIG);
    assert!(config.starts_with("-rw-r--r-- root cn "), "agent.toml must be %config(noreplace) 0644: {config}");
}

/// Whether a packaged path is documentation or packaging metadata that only one format has:
/// copyright, Debian changelog and lintian overrides in the .debs; the build-id links rpmbuild
/// adds (debuggers find the binaries by them).
fn format_specific(path: &str) -> bool {
    ["/usr/share/doc/", "/usr/share/lintian/", "/usr/lib/.build-id"].iter().any(|p| path.starts_with(p))
}

/// `perms path` of every packaged file plus the directories the RPM owns (/etc/brickyard and
/// its pki), and the SHA-256 of every regular file; leaving out [`format_specific`] paths.
type Contents = (BTreeSet<String>, BTreeMap<String, String>);

fn rpm_contents(rpm: &Path) -> Contents {
    let mut entries = BTreeSet::new();
    let mut digests = BTreeMap::new();
    for line in query(rpm, &["--qf", "[%{FILEMODES:perms} %{FILEDIGESTS} %{FILENAMES}\n]"]) {
        let mut fields = line.splitn(3, ' ');
        let (perms, digest, path) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        if format_specific(path) {
            continue;
        }
        entries.insert(format!("{perms} {path}"));
        if perms.starts_with('-') {
            digests.insert(path.to_owned(), digest.to_owned());
        }
    }
    (entries, digests)
}

fn deb_contents(deb: &Path) -> Contents {
    let dir = tempfile::tempdir().expect("tempdir");
    let (deb, out) = (deb.to_str().expect("utf-8"), dir.path().to_str().expect("utf-8"));
    run("dpkg-deb", &["--extract", deb, out]);
    let mut entries = BTreeSet::new();
    let mut digests = BTreeMap::new();
    for line in run("dpkg-deb", &["--contents", deb]).lines() {
        // drwxr-xr-x root/root         0 2026-11-26 04:26 ./etc/brickyard/
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (perms, path) = (fields[0], fields[5].trim_start_matches('.').trim_end_matches('/'));
        if path.is_empty() || format_specific(path) || (perms.starts_with('d') && !path.starts_with("/etc/brickyard")) {
            continue;
        }
        entries.insert(format!("{perms} {path}"));
        if perms.starts_with('-') {
            let sum = run("sha256sum", &[&format!("{out}{path}")]);
            digests.insert(path.to_owned(), sum.split_whitespace().next().expect("digest").to_owned());
        }
    }
    (entries, digests)
}

/// Both formats install the same paths with the same modes and the same bytes: one build of
/// the binaries, the same unit, preset, config and README.
#[test]
fn deb_and_rpm_carry_the_same_files_and_binaries() {
    let packages = packages();
    for (rpm, deb) in [(&packages.rpm.cli, &packages.deb.cli), (&packages.rpm.agent, &packages.deb.agent)] {
        let ((rpm_entries, rpm_digests), (deb_entries, deb_digests)) = (rpm_contents(rpm), deb_contents(deb));
        assert_eq!(rpm_entries, deb_entries, "{} and {} install different files", rpm.display(), deb.display());
        assert_eq!(rpm_digests, deb_digests, "{} and {} carry different bytes", rpm.display(), deb.display());
    }
    let deb_agent = deb_contents(&packages.deb.agent).0;
    assert!(deb_agent.contains(&format!("drwx------ {PKI_DIR}")), "pki dir mode: {deb_agent:?}");
}

#[test]
fn dependencies_are_installable_on_rhel7_and_recommend_the_tools() {
    let rpms = &packages().rpm;
    let requires = query(&rpms.agent, &["-R"]);
    assert!(requires.iter().any(|r| r == "systemd"), "the scriptlets need systemd: {requires:?}");
    for rpm in [&rpms.cli, &rpms.agent] {
        for r in query(rpm, &["-R"]) {
            if let Some(feature) = r.strip_prefix("rpmlib(").and_then(|f| f.split(')').next()) {
                assert!(RHEL7_RPMLIB.contains(&feature), "{}: RHEL 7's rpm cannot satisfy {r}", rpm.display());
            }
            if let Some(version) = r.strip_prefix("libc.so.6(GLIBC_").and_then(|v| v.split(')').next()) {
                assert!(glibc_at_most(version, GLIBC_MAX), "{}: requires {r}, newer than glibc 2.17", rpm.display());
            }
        }
        assert_eq!(query(rpm, &["--qf", "%{PAYLOADCOMPRESSOR}"]), ["xz"], "{}: payload", rpm.display());
    }
    let recommends: BTreeSet<String> = query(&rpms.agent, &["--recommends"]).into_iter().collect();
    assert_eq!(recommends, agent_recommends(), "weak dependencies");
    assert_eq!(query(&rpms.agent, &["--suggests"]), ["firewalld"]);
}

/// What the agent package recommends in both formats: the tools its tasks run.
fn agent_recommends() -> BTreeSet<String> {
    ["e2fsprogs", "iptables", "parted", "xfsprogs"].map(str::to_owned).into()
}

/// The .debs depend on glibc only, at the version the binaries were linked for (so they install
/// on Debian 12 and Ubuntu 22.04/24.04, and would on anything with glibc 2.17+), recommend what
/// the RPM recommends, and declare agent.toml a conffile.
#[test]
fn deb_dependencies_and_conffiles() {
    let debs = &packages().deb;
    for deb in [&debs.cli, &debs.agent] {
        assert_eq!(deb_field(deb, "Depends"), "libc6 (>= 2.17)", "{}", deb.display());
        assert_eq!(deb_field(deb, "Architecture"), "amd64", "{}", deb.display());
        // Debian 12's dpkg cannot unpack zstd members.
        let members = run("ar", &["t", deb.to_str().expect("utf-8")]);
        assert_eq!(members.lines().collect::<Vec<_>>(), ["debian-binary", "control.tar.xz", "data.tar.xz"]);
    }
    let recommends: BTreeSet<String> = deb_field(&debs.agent, "Recommends").split(", ").map(str::to_owned).collect();
    assert_eq!(recommends, agent_recommends());
    assert_eq!(deb_field(&debs.agent, "Suggests"), "firewalld");
    let agent = debs.agent.to_str().expect("utf-8");
    assert_eq!(run("dpkg-deb", &["--info", agent, "conffiles"]).trim(), CONFIG);
    for script in ["postinst", "prerm", "postrm"] {
        run("dpkg-deb", &["--info", agent, script]);
    }
}

/// `version` ("2.3.4", "2.17") is at most `max`.
fn glibc_at_most(version: &str, max: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or_else(|_| panic!("GLIBC version {version}")));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) <= max
}

#[test]
fn installed_binaries_need_at_most_glibc_2_17() {
    let root = installed(Format::Rpm, |_| {});
    for bin in ["/usr/bin/brickyard", "/usr/bin/brickyard-agent"] {
        let dump = run("readelf", &["-V", "--wide", root.path(bin).to_str().expect("utf-8")]);
        let versions: BTreeSet<&str> = dump
            .split(|c: char| c.is_whitespace())
            .filter_map(|w| w.strip_prefix("GLIBC_"))
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert!(!versions.is_empty(), "{bin}: no GLIBC symbol versions (not linked against glibc?)");
        let too_new: Vec<&&str> = versions.iter().filter(|v| !glibc_at_most(v, GLIBC_MAX)).collect();
        assert!(too_new.is_empty(), "{bin} needs GLIBC {too_new:?}; RHEL 7 has 2.17");
    }
}

#[test]
fn installs_have_the_right_modes() {
    for format in Format::ALL {
        let root = installed(format, |_| {});
        for (path, want) in [
            ("/usr/bin/brickyard", 0o755),
            ("/usr/bin/brickyard-agent", 0o755),
            ("/usr/lib/systemd/system/brickyard-agent.service", 0o644),
            ("/etc/brickyard", 0o755),
            (CONFIG, 0o644),
            (PKI_DIR, 0o700),
        ] {
            let p = root.path(path);
            assert_eq!(mode(&p), want, "{format:?}: {path}: mode {:o}, want {want:o}", mode(&p));
            assert_eq!(p.metadata().expect("metadata").uid(), 0, "{format:?}: {path} must be owned by root");
        }
        let pki = root.path(PKI_DIR);
        assert!(pki.read_dir().expect("read pki").next().is_none(), "{format:?}: the pki dir ships empty");
    }
}

/// What cloud-init writes before the package is installed (its files stage runs first): a
/// config of its own and the key, in a pki dir made with the default 0755.
const CLOUD_INIT_CONFIG: &str = "listen = \"192.0.2.11:7420\"\n";

fn cloud_init_files(root: &IsolatedRoot) {
    write_in(root, CONFIG, CLOUD_INIT_CONFIG, 0o644);
    write_in(root, KEY, "key", 0o600);
    std::fs::set_permissions(root.path(PKI_DIR), std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Installing after cloud-init keeps its config (the packaged one goes beside it) and makes
/// the pki dir 0700, in both formats. dpkg asks before keeping a conffile it did not install
/// and, with no terminal to ask, fails: cloud-init's apt runs dpkg with --force-confold, which
/// keeps the file, so installing by hand over cloud-init's files needs it too.
#[test]
fn install_after_cloud_init_keeps_its_config_and_tightens_the_pki_dir() {
    for format in Format::ALL {
        let root = IsolatedRoot::new();
        cloud_init_files(&root);
        let packaged_default = match format {
            Format::Rpm => {
                succeeded("rpm -i", &format.install(&root, &[]));
                "/etc/brickyard/agent.toml.rpmnew"
            }
            Format::Deb => {
                let out = format.install(&root, &[]);
                let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(
                    !out.status.success()
                        && said.contains("end of file on stdin at conffile prompt")
                        && said.contains(&format!("Configuration file '{CONFIG}'")),
                    "dpkg must stop at the conffile prompt for {CONFIG} ({}):\n{said}",
                    out.status
                );
                root.chroot_ok(&["dpkg", "--configure", "--force-confold", AGENT_PACKAGE]);
                "/etc/brickyard/agent.toml.dpkg-dist"
            }
        };
        let read = |p: &str| std::fs::read_to_string(root.path(p)).unwrap_or_else(|e| panic!("{format:?}: {p}: {e}"));
        assert_eq!(read(CONFIG), CLOUD_INIT_CONFIG, "{format:?}: cloud-init's config replaced");
        assert!(read(packaged_default).contains("coordinator_identity"), "{format:?}: packaged default");
        assert_eq!(mode(&root.path(PKI_DIR)), 0o700, "{format:?}: the pki dir must be tightened");
        assert_eq!(mode(&root.path(KEY)), 0o600, "{format:?}");
        assert_eq!(is_enabled(&root), "enabled", "{format:?}");
    }
}

/// The RPM's scriptlets for real (no --noscripts), in a root where systemd does not run (an
/// image being built): %post enables the agent through its preset and starts nothing; erase
/// disables it, saves a changed config as .rpmsave, and leaves the key material alone.
#[test]
fn rpm_scriptlets_enable_the_agent_and_erase_disables_it() {
    let root = installed(Format::Rpm, |_| {});
    assert!(wants_link(&root), "%post must enable the agent: {WANTS_LINK} missing");
    assert_eq!(is_enabled(&root), "enabled");
    assert_eq!(agent_processes(&root.path("/proc")), Vec::<String>::new(), "nothing may start the agent");

    write_in(&root, CONFIG, CLOUD_INIT_CONFIG, 0o644);
    write_in(&root, KEY, "key", 0o600);
    root.chroot_ok(&["rpm", "-e", AGENT_PACKAGE]);
    assert!(!wants_link(&root), "%preun must disable the agent");
    assert!(!root.path(CONFIG).exists(), "erase removes the config");
    let saved = std::fs::read_to_string(root.path("/etc/brickyard/agent.toml.rpmsave")).expect("agent.toml.rpmsave");
    assert_eq!(saved, CLOUD_INIT_CONFIG, "the changed config is saved");
    assert!(root.path(KEY).is_file(), "erase must never delete key material");
}

/// The .deb's maintainer scripts for real, in a root where systemd does not run, the Debian
/// way: install enables the agent (starts nothing); an administrator's `systemctl disable`
/// survives an upgrade; remove keeps the conffile and the enablement (the unit masked while its
/// file is gone) so a reinstall restores both; purge deletes the conffile and the enablement
/// but never the key material.
#[test]
fn deb_scripts_enable_on_install_remove_keeps_the_conffile_and_purge_cleans_up() {
    const STATE: &str = "/var/lib/systemd/deb-systemd-helper-enabled/brickyard-agent.service.dsh-also";
    const MASK: &str = "/etc/systemd/system/brickyard-agent.service";
    let format = Format::Deb;
    let root = installed(format, |_| {});
    assert!(wants_link(&root), "postinst must enable the agent: {WANTS_LINK} missing");
    assert_eq!(is_enabled(&root), "enabled");
    assert!(root.path(STATE).is_file(), "deb-systemd-helper must remember the enablement ({STATE})");
    assert_eq!(agent_processes(&root.path("/proc")), Vec::<String>::new(), "nothing may start the agent");

    root.chroot_ok(&["systemctl", "disable", UNIT]);
    succeeded("dpkg -i (upgrade)", &format.install(&root, &[]));
    assert_eq!(is_enabled(&root), "disabled", "an upgrade must keep the administrator's disable");
    root.chroot_ok(&["systemctl", "enable", UNIT]);

    write_in(&root, CONFIG, CLOUD_INIT_CONFIG, 0o644);
    write_in(&root, KEY, "key", 0o600);
    root.chroot_ok(&["dpkg", "--remove", AGENT_PACKAGE]);
    assert!(!root.path("/usr/lib/systemd/system/brickyard-agent.service").exists(), "remove deletes the unit");
    assert_eq!(std::fs::read_to_string(root.path(CONFIG)).expect("config kept"), CLOUD_INIT_CONFIG);
    assert_eq!(std::fs::read_link(root.path(MASK)).expect("mask link"), Path::new("/dev/null"), "masked");
    assert!(root.path(WANTS_LINK).symlink_metadata().is_ok(), "remove keeps the enablement for a reinstall");

    succeeded("dpkg -i (reinstall)", &format.install(&root, &[]));
    assert_eq!(is_enabled(&root), "enabled", "a reinstall restores the enablement and unmasks");
    assert_eq!(std::fs::read_to_string(root.path(CONFIG)).expect("config"), CLOUD_INIT_CONFIG, "reinstall");

    root.chroot_ok(&["dpkg", "--purge", AGENT_PACKAGE]);
    for gone in [CONFIG, MASK, WANTS_LINK, STATE, "/etc/brickyard/agent.toml.dpkg-dist"] {
        assert!(root.path(gone).symlink_metadata().is_err(), "purge must remove {gone}");
    }
    assert!(root.path(KEY).is_file(), "purge must never delete key material");
    assert_eq!(agent_processes(&root.path("/proc")), Vec::<String>::new());
}

/// Directives that give the service its own mount namespace (mounts would stay invisible to
/// the host) or a device allow-list (no whole disks): the unit must never set them.
const FORBIDDEN_DIRECTIVES: &[&str] = &[
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectHostname",
    "ProtectClock",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "TemporaryFileSystem",
    "DevicePolicy",
    "DeviceAllow",
    "RootDirectory",
    "MountFlags",
];

#[test]
fn systemd_unit_verifies_and_keeps_mounts_visible() {
    // Inside the isolated root, where the packaged unit sits among the system's units that it
    // depends on (multi-user.target, network-online.target...).
    let root = installed(Format::Rpm, |_| {});
    let out = root.chroot(&["systemd-analyze", "verify", UNIT]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and other warnings: any message is a failure.
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify ({}):\n{stderr}", out.status);

    let unit = std::fs::read_to_string(root.path("/usr/lib/systemd/system/brickyard-agent.service")).expect("unit");
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .collect();
    for (key, value) in &directives {
        assert!(!FORBIDDEN_DIRECTIVES.contains(key), "the unit sets {key}={value}, which breaks mounts or disks");
    }
    for want in [
        ("After", "network-online.target"),
        ("Wants", "network-online.target"),
        ("Restart", "on-failure"),
        ("KillMode", "process"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert!(directives.contains(&want), "the unit must set {}={}", want.0, want.1);
    }
}

/// packaging/README.md reports the unit's `systemd-analyze security` exposure score as this
/// machine's systemd computes it (a new systemd that weighs differently shows up here). Run in
/// an isolated root: systemd-analyze writes to /run/systemd.
#[test]
fn readme_reports_the_units_security_exposure() {
    let root = IsolatedRoot::new();
    let unit = root.copy_in(&repo().join("packaging/brickyard-agent.service"));
    let out = root.chroot(&["systemd-analyze", "security", "--offline=true", "--no-pager", &unit]);
    // It exits non-zero when the exposure is above its threshold; the score is what counts.
    let report = String::from_utf8_lossy(&out.stdout);
    let score = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for brickyard-agent.service: "))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no overall exposure in systemd-analyze security output:\n{report}"));
    let readme = std::fs::read_to_string(repo().join("packaging/README.md")).expect("read packaging/README.md");
    let want = format!("exposure level: **{score}**");
    assert!(readme.contains(&want), "packaging/README.md must report `{want}` (systemd-analyze security)");
}

/// A spec with a server and a client, its pool PKI made by the real CLI, and a certificate
/// for the server only (`cloud-init` needs none).
fn pool() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("cluster.toml");
    std::fs::write(
        &spec,
        r#"version = 1
[pool]
name = "pkgtest"
[[server]]
name = "gluServer1"
address = "192.0.2.11"
disk = { device = "/dev/vdb", filesystem = "xfs", mount = "/vdisk" }
[[client]]
name = "client1"
address = "192.0.2.21"
"#,
    )
    .expect("write spec");
    let pki = dir.path().join("pki");
    let brickyard = bin("brickyard");
    for args in [
        vec!["pki", "init", "--dir", pki.to_str().expect("utf-8")],
        vec!["pki", "issue", "--dir", pki.to_str().expect("utf-8"), "--name", "gluServer1", "--address", "192.0.2.11"],
    ] {
        let out = Command::new(&brickyard).args(&args).output().expect("running brickyard");
        assert!(out.status.success(), "brickyard {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (dir, spec)
}

/// `brickyard cloud-init -f SPEC --host HOST EXTRA...`: (success, stdout, stderr).
fn cloud_init(spec: &Path, host: &str, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("brickyard"))
        .args(["cloud-init", "-f", spec.to_str().expect("utf-8"), "--host", host])
        .args(extra)
        .output()
        .expect("running brickyard cloud-init");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// cloud-init's own validator accepts the user-data, and PyYAML (the parser cloud-init uses)
/// reads back exactly the pool CA and a join token, no private key, with a config the agent
/// accepts together with them (it makes its own key, 0600).
#[test]
fn cloud_init_user_data_is_valid_and_carries_the_ca_and_a_token() {
    let (dir, spec) = pool();
    let url = "https://repo.example/brickyard-agent-0.1.0-1.x86_64.rpm";
    let (ok, user_data, stderr) = cloud_init(&spec, "gluServer1", &["--package-url", url]);
    assert!(ok, "brickyard cloud-init failed: {stderr}");
    let file = dir.path().join("user-data.yaml");
    std::fs::write(&file, &user_data).expect("write user-data");
    tool("cloud-init");
    let schema = run("cloud-init", &["schema", "--config-file", file.to_str().expect("utf-8")]);
    assert!(schema.contains("Valid cloud-config"), "cloud-init schema: {schema}");

    let json = run(
        "python3",
        &[
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            file.to_str().expect("utf-8"),
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&json).expect("PyYAML output as JSON");
    let files = doc["write_files"].as_array().expect("write_files");
    let written = |path: &str| {
        let f = files.iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("{path} not written: {doc}"));
        assert_eq!(f["owner"], "root:root", "{path} owner");
        (f["content"].as_str().expect("content").to_owned(), f["permissions"].as_str().expect("mode").to_owned())
    };
    let pki = dir.path().join("pki");
    let read = |p: &str| std::fs::read_to_string(pki.join(p)).expect("read pki file");
    assert_eq!(written("/etc/brickyard/pki/ca.pem"), (read("ca.pem"), "0644".into()));
    let (token, mode) = written("/etc/brickyard/pki/join-token");
    assert!(token.starts_with("byt1.") && mode == "0600", "{token:?} {mode}");
    let (config, mode) = written("/etc/brickyard/agent.toml");
    assert_eq!(mode, "0644");
    assert_eq!(files.len(), 3, "only the CA, the token and the config: {doc}");
    assert!(!user_data.contains("PRIVATE KEY"), "user-data must carry no private key:\n{user_data}");
    assert_eq!(doc["runcmd"][0], serde_json::json!(["yum", "-y", "install", url]));

    // The agent accepts the written config with the written files: lay them out as the
    // instance would, with the config's absolute paths pointing into a temp dir.
    let instance = tempfile::tempdir().expect("tempdir");
    let moved = config.replace("/etc/brickyard", instance.path().to_str().expect("utf-8"));
    std::fs::create_dir(instance.path().join("pki")).expect("mkdir");
    for (path, name) in [("ca.pem", "ca.pem"), ("join-token", "join-token")] {
        let (content, mode) = written(&format!("/etc/brickyard/pki/{path}"));
        let target = instance.path().join("pki").join(name);
        std::fs::write(&target, content).expect("write");
        let mode = u32::from_str_radix(&mode, 8).expect("octal mode");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let config_path = instance.path().join("agent.toml");
    std::fs::write(&config_path, moved).expect("write config");
    let out = Command::new(bin("brickyard-agent"))
        .args(["--config", config_path.to_str().expect("utf-8"), "--check-config"])
        .output()
        .expect("running brickyard-agent --check-config");
    assert!(out.status.success(), "agent refuses the cloud-init config: {}", String::from_utf8_lossy(&out.stderr));
    let key = instance.path().join("pki/agent.key");
    assert_eq!(std::fs::metadata(&key).expect("the agent's own key").permissions().mode() & 0o777, 0o600);
}

#[test]
fn cloud_init_unknown_host_is_an_error_listing_the_known_ones() {
    let (_dir, spec) = pool();
    let (ok, stdout, stderr) = cloud_init(&spec, "gluServer9", &[]);
    assert!(!ok && stdout.is_empty(), "unknown host must fail and print nothing: {stdout}");
    for want in ["gluServer9", "gluServer1", "client1"] {
        assert!(stderr.contains(want), "error must name {want}: {stderr}");
    }
}

#[test]
fn cloud_init_needs_no_host_certificate_and_refuses_plain_http() {
    let (_dir, spec) = pool();
    let (ok, stdout, stderr) = cloud_init(&spec, "client1", &[]);
    assert!(ok && stdout.contains("/etc/brickyard/pki/join-token"), "client1 has no certificate: {stdout}{stderr}");
    let (ok, _, stderr) = cloud_init(&spec, "gluServer1", &["--package-url", "http://repo.example/a.rpm"]);
    assert!(!ok && stderr.contains("https"), "plain http package URL must be refused: {stderr}");
}

/// The packaged default config is one the agent parses, and the unit waits for the key file
/// that config names or the join token the cloud-init user-data writes.
#[test]
fn default_config_parses_and_matches_the_unit_condition() {
    let path = repo().join("packaging/agent.toml");
    let text = std::fs::read_to_string(&path).expect("read packaging/agent.toml");
    let config = brickyard_agent::rpc::config::Config::parse(Path::new("/etc/brickyard/agent.toml"), &text)
        .unwrap_or_else(|e| panic!("the agent rejects packaging/agent.toml: {e}"));
    assert_eq!(config.listen.port(), 7420);
    assert_eq!(config.key, Path::new("/etc/brickyard/pki/agent.key"));
    let unit = std::fs::read_to_string(repo().join("packaging/brickyard-agent.service")).expect("read unit");
    for path in [config.key.as_path(), Path::new("/etc/brickyard/pki/join-token")] {
        assert!(
            unit.lines().any(|l| l == format!("ConditionPathExists=|{}", path.display())),
            "the unit's ConditionPathExists must name {} (either one starts it)",
            path.display()
        );
    }
}
