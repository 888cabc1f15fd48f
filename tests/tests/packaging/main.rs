//! Packaging (issue #7), with the real tools: builds the RPMs once per test run with
//! `packaging/build-rpm.sh` (cargo zigbuild against glibc 2.17, rpmbuild, rpmlint: about six
//! minutes cold on 2 cores, seconds when nothing changed), then checks their files,
//! dependencies and GLIBC symbol versions, installs them with `rpm --root` into scratch
//! directories (no scriptlets) and checks modes, and runs `systemd-analyze verify` on the unit.
//!
//! Touches only: target/rpm, the zig target dir (see build-rpm.sh) and temp dirs. A missing
//! tool fails the test with its name; nothing is skipped.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use brickyard_tests::bins::bin;

/// The newest glibc the binaries may need: RHEL/CentOS 7's.
const GLIBC_MAX: (u32, u32) = (2, 17);

/// What RHEL 7's rpm 4.11 can satisfy among `rpmlib(...)` requirements. Anything else (zstd
/// payload, rich dependencies...) would make the package uninstallable there.
const RHEL7_RPMLIB: &[&str] = &["CompressedFileNames", "FileDigests", "PayloadFilesHavePrefix", "PayloadIsXz"];

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

/// Runs `program args`, returns stdout; fails with program, args, status and stderr.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(tool(program)).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

struct Rpms {
    cli: PathBuf,
    agent: PathBuf,
}

/// Builds the RPMs on first use (one build per test run, shared by every test here).
fn rpms() -> &'static Rpms {
    static BUILT: OnceLock<Rpms> = OnceLock::new();
    BUILT.get_or_init(|| {
        for name in ["bash", "cargo", "rpmbuild", "rpmlint", "readelf", "python3"] {
            tool(name);
        }
        let started = Instant::now();
        let out = Command::new(tool("bash"))
            .arg(repo().join("packaging/build-rpm.sh"))
            .output()
            .expect("running packaging/build-rpm.sh");
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "packaging/build-rpm.sh failed ({}):\n{log}", out.status);
        eprintln!("packaging/build-rpm.sh took {:.0?}", started.elapsed());
        let dir = repo().join("target/rpm");
        let find = |prefix: &str| {
            let found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("dir entry").path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                        && name.ends_with(".x86_64.rpm")
                })
                .collect();
            assert_eq!(
                found.len(),
                1,
                "expected one {prefix}VERSION-RELEASE.x86_64.rpm in {}: {found:?}",
                dir.display()
            );
            found.into_iter().next().expect("one rpm")
        };
        Rpms { cli: find("brickyard-"), agent: find("brickyard-agent-") }
    })
}

fn query(rpm: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-qp"];
    all.extend_from_slice(args);
    all.push(rpm.to_str().expect("utf-8 path"));
    run("rpm", &all).lines().map(str::to_owned).collect()
}

/// A scratch root with the RPMs installed by `rpm --root` (no dependencies, no scriptlets),
/// after `prepare` has put files there (e.g. what cloud-init writes before the package).
fn install_scratch(prepare: impl FnOnce(&Path)) -> tempfile::TempDir {
    let rpms = rpms();
    let root = tempfile::tempdir().expect("tempdir");
    prepare(root.path());
    let root_arg = root.path().to_str().expect("utf-8 path");
    run("rpm", &["--root", root_arg, "--initdb"]);
    run(
        "rpm",
        &[
            "--root",
            root_arg,
            "--nodeps",
            "--noscripts",
            "-i",
            rpms.cli.to_str().expect("utf-8"),
            rpms.agent.to_str().expect("utf-8"),
        ],
    );
    root
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

#[test]
fn packages_hold_the_binaries_unit_config_and_pki_dir() {
    let rpms = rpms();
    let cli = query(&rpms.cli, &["-l"]);
    assert!(cli.contains(&"/usr/bin/brickyard".to_owned()), "CLI package files: {cli:?}");
    assert!(!cli.iter().any(|f| f.contains("agent")), "the CLI package must not carry agent files: {cli:?}");

    let agent = query(&rpms.agent, &["-l"]);
    for want in [
        "/usr/bin/brickyard-agent",
        "/usr/lib/systemd/system/brickyard-agent.service",
        "/usr/lib/systemd/system-preset/80-brickyard-agent.preset",
        "/etc/brickyard/agent.toml",
        "/etc/brickyard/pki",
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
    assert!(line("/etc/brickyard/pki").starts_with("drwx------ root "), "{}", line("/etc/brickyard/pki"));
    let config = line("/etc/brickyard/agent.toml");
    assert!(config.starts_with("-rw-r--r-- root cn "), "agent.toml must be %config(noreplace) 0644: {config}");
}

#[test]
fn dependencies_are_installable_on_rhel7_and_recommend_the_tools() {
    let rpms = rpms();
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
    let want: BTreeSet<String> = ["e2fsprogs", "iptables", "parted", "xfsprogs"].map(str::to_owned).into();
    assert_eq!(recommends, want, "weak dependencies");
    assert_eq!(query(&rpms.agent, &["--suggests"]), ["firewalld"]);
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
    let root = install_scratch(|_| {});
    for bin in ["usr/bin/brickyard", "usr/bin/brickyard-agent"] {
        let path = root.path().join(bin);
        let dump = run("readelf", &["-V", "--wide", path.to_str().expect("utf-8")]);
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
fn scratch_install_has_the_right_modes() {
    let root = install_scratch(|_| {});
    let r = root.path();
    for (path, want) in [
        ("usr/bin/brickyard", 0o755),
        ("usr/bin/brickyard-agent", 0o755),
        ("usr/lib/systemd/system/brickyard-agent.service", 0o644),
        ("etc/brickyard", 0o755),
        ("etc/brickyard/agent.toml", 0o644),
        ("etc/brickyard/pki", 0o700),
    ] {
        let p = r.join(path);
        assert_eq!(mode(&p), want, "/{path}: mode {:o}, want {want:o}", mode(&p));
        assert_eq!(p.metadata().expect("metadata").uid(), 0, "/{path} must be owned by root");
    }
    assert!(r.join("etc/brickyard/pki").read_dir().expect("read pki").next().is_none(), "pki dir ships empty");
}

/// cloud-init writes the key material and agent.toml before the package is installed (its
/// files stage runs first): the install must keep that config and make the pki dir 0700.
#[test]
fn install_after_cloud_init_keeps_its_config_and_tightens_the_pki_dir() {
    const WRITTEN: &str = "listen = \"192.0.2.11:7420\"\n";
    let root = install_scratch(|r| {
        let pki = r.join("etc/brickyard/pki");
        std::fs::create_dir_all(&pki).expect("mkdir");
        std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(r.join("etc/brickyard/agent.toml"), WRITTEN).expect("write config");
        std::fs::write(pki.join("agent.key"), "key").expect("write key");
        std::fs::set_permissions(pki.join("agent.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    });
    let etc = root.path().join("etc/brickyard");
    assert_eq!(std::fs::read_to_string(etc.join("agent.toml")).expect("read"), WRITTEN, "config replaced");
    assert!(etc.join("agent.toml.rpmnew").is_file(), "the packaged default goes to agent.toml.rpmnew");
    assert_eq!(mode(&etc.join("pki")), 0o700, "rpm must tighten an existing pki dir");
    assert_eq!(mode(&etc.join("pki/agent.key")), 0o600);
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
    let analyze = tool("systemd-analyze");
    let root = install_scratch(|_| {});
    // verify resolves the unit's dependencies (multi-user.target, network-online.target...)
    // inside --root: give it the host's units beside ours.
    let units = root.path().join("usr/lib/systemd/system");
    run("cp", &["-a", "--no-clobber", "/usr/lib/systemd/system/.", units.to_str().expect("utf-8")]);
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("brickyard-agent.service")
        .output()
        .expect("running systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and other warnings: any message is a failure.
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify ({}):\n{stderr}", out.status);

    let unit = std::fs::read_to_string(units.join("brickyard-agent.service")).expect("read unit");
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

/// A spec with a server and a client, its pool PKI made by the real CLI, and a certificate
/// for the server only.
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
/// reads back exactly the pool's files, with a config the agent accepts together with them.
#[test]
fn cloud_init_user_data_is_valid_and_carries_the_host_files() {
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
    assert_eq!(written("/etc/brickyard/pki/agent.pem"), (read("hosts/gluServer1.pem"), "0644".into()));
    assert_eq!(written("/etc/brickyard/pki/agent.key"), (read("hosts/gluServer1.key"), "0600".into()));
    let (config, mode) = written("/etc/brickyard/agent.toml");
    assert_eq!(mode, "0644");
    assert!(!user_data.contains(&read("ca.key")), "the CA key must never be in user-data");
    assert_eq!(doc["runcmd"][0], serde_json::json!(["yum", "-y", "install", url]));

    // The agent accepts the written config with the written key material: lay the files
    // out as the instance would, with the config's absolute paths pointing into a temp dir.
    let instance = tempfile::tempdir().expect("tempdir");
    let moved = config.replace("/etc/brickyard", instance.path().to_str().expect("utf-8"));
    std::fs::create_dir(instance.path().join("pki")).expect("mkdir");
    for (path, name) in [("ca.pem", "ca.pem"), ("agent.pem", "agent.pem"), ("agent.key", "agent.key")] {
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
fn cloud_init_without_a_host_certificate_says_how_to_issue_it() {
    let (_dir, spec) = pool();
    let (ok, stdout, stderr) = cloud_init(&spec, "client1", &[]);
    assert!(!ok && stdout.is_empty(), "missing certificate must fail and print nothing: {stdout}");
    assert!(
        stderr.contains("brickyard pki issue") && stderr.contains("--name client1") && stderr.contains("192.0.2.21"),
        "error must give the command to run: {stderr}"
    );
    let (ok, _, stderr) = cloud_init(&spec, "gluServer1", &["--package-url", "http://repo.example/a.rpm"]);
    assert!(!ok && stderr.contains("https"), "plain http package URL must be refused: {stderr}");
}

/// The packaged default config is one the agent parses, and the unit waits for the key file
/// that config (and the cloud-init user-data) names.
#[test]
fn default_config_parses_and_matches_the_unit_condition() {
    let path = repo().join("packaging/agent.toml");
    let text = std::fs::read_to_string(&path).expect("read packaging/agent.toml");
    let config = brickyard_agent::config::Config::parse(Path::new("/etc/brickyard/agent.toml"), &text)
        .unwrap_or_else(|e| panic!("the agent rejects packaging/agent.toml: {e}"));
    assert_eq!(config.listen.port(), 7420);
    assert_eq!(config.key, Path::new("/etc/brickyard/pki/agent.key"));
    let unit = std::fs::read_to_string(repo().join("packaging/brickyard-agent.service")).expect("read unit");
    assert!(
        unit.lines().any(|l| l == format!("ConditionPathExists={}", config.key.display())),
        "the unit's ConditionPathExists must name the default key path {}",
        config.key.display()
    );
}
