//! `brickyard cloud-init`: the `#cloud-config` user-data that bootstraps one host's agent on
//! a RHEL-family 7+ instance. It writes the pool CA, a new single-use join token for the host
//! (0600, root) and `/etc/brickyard/agent.toml`, installs the `brickyard-agent` package (from
//! a configured repository, or `yum install` of a package URL) and enables and starts the
//! agent. **No private key**: the agent makes its own on first boot and is enrolled by
//! `brickyard enroll` (the token proven on the TLS channel, see `crate::identity`).
//!
//! Reads the spec's PKI directory (`ca.pem`) and writes one token's hash there
//! (`tokens/ID.toml`, see `crate::pki::token`); the token itself is only in the output.
//!
//! The YAML is built as a tree and emitted by `yaml-rust2` (multi-line values as literal
//! block scalars, scalars quoted where a YAML 1.1 reader such as cloud-init's PyYAML would
//! otherwise retype them), never by pasting strings into a template.

use std::net::IpAddr;
use std::path::PathBuf;

use brickyard_proto::agent_config::{AgentConfigFile, ServiceManagerSetting};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

use crate::pki::{Layout, COORDINATOR_IDENTITY};
use crate::spec::{HostTarget, Spec};

/// Where the agent package puts its configuration and key material.
const CONFIG_PATH: &str = "/etc/brickyard/agent.toml";
const CA_PATH: &str = "/etc/brickyard/pki/ca.pem";
const CERT_PATH: &str = "/etc/brickyard/pki/agent.pem";
const KEY_PATH: &str = "/etc/brickyard/pki/agent.key";
const TOKEN_PATH: &str = "/etc/brickyard/pki/join-token";
const UNIT: &str = "brickyard-agent.service";
const PACKAGE: &str = "brickyard-agent";

#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    #[error("host {host:?} is not in {spec} (known hosts: {})", known.join(", "))]
    UnknownHost { host: String, spec: PathBuf, known: Vec<String> },
    #[error("no pool CA at {path}: create the pool PKI first with `brickyard pki init --dir {dir}`")]
    NoCa { path: PathBuf, dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("making the join token: {0}")]
    Token(#[from] crate::pki::PkiError),
    #[error("--package-url {url:?}: {reason}")]
    PackageUrl { url: String, reason: &'static str },
    #[error("cannot emit YAML: {0}")]
    Emit(#[from] yaml_rust2::EmitError),
}

/// Where the instance gets the `brickyard-agent` package from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// A yum/dnf repository the image already knows (cloud-config `packages:`).
    Repository,
    /// `yum -y install URL` (https only: the package runs as root).
    Url(String),
}

impl PackageSource {
    /// `--package-url URL`, or the repository when absent. Only https URLs without
    /// whitespace or quotes are accepted.
    pub fn from_arg(url: Option<String>) -> Result<PackageSource, CloudInitError> {
        let Some(url) = url else { return Ok(PackageSource::Repository) };
        let reason = if !url.starts_with("https://") || url.len() <= "https://".len() {
            Some("must be an https:// URL (the package runs as root; plain http could be swapped in transit)")
        } else if url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '\\')) {
            Some("must not contain whitespace, quotes, backslashes or control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(CloudInitError::PackageUrl { url, reason }),
            None => Ok(PackageSource::Url(url)),
        }
    }
}

/// Everything one host's user-data carries.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub host: HostTarget,
    pub ca_pem: String,
    pub join_token: String,
    pub package: PackageSource,
}

/// Reads the spec's pool CA, makes a join token for `host` valid for `token_ttl` and renders
/// its user-data.
pub fn user_data(
    spec: &Spec,
    host: &str,
    package: PackageSource,
    token_ttl: std::time::Duration,
) -> Result<String, CloudInitError> {
    let hosts = spec.hosts();
    let Some(target) = hosts.iter().find(|h| h.name == host) else {
        return Err(CloudInitError::UnknownHost {
            host: host.to_owned(),
            spec: spec.path.clone(),
            known: hosts.into_iter().map(|h| h.name).collect(),
        });
    };
    let dir = spec.pki_dir();
    let ca_cert = Layout::new(&dir).ca_cert;
    let ca_pem = std::fs::read_to_string(&ca_cert).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CloudInitError::NoCa { path: ca_cert.clone(), dir: dir.clone() },
        _ => CloudInitError::Read { path: ca_cert.clone(), source },
    })?;
    let join_token = crate::pki::token::create(&dir, host, token_ttl)?;
    render(&Bootstrap { host: target.clone(), ca_pem, join_token, package })
}

/// The agent configuration for `host`: listens on every address of the host's family (a
/// cloud's floating or NAT address is often not on the instance's interface, so binding to
/// the spec's address could fail), on the spec's port.
pub fn agent_toml(host: &HostTarget) -> String {
    let any = match host.address.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => "[::]",
        _ => "0.0.0.0",
    };
    AgentConfigFile {
        listen: Some(format!("{any}:{}", host.port)),
        ca: CA_PATH.into(),
        cert: CERT_PATH.into(),
        key: KEY_PATH.into(),
        coordinator_identity: Some(COORDINATOR_IDENTITY.into()),
        service_manager: ServiceManagerSetting::Systemd,
        crl: None,
        join_token: Some(TOKEN_PATH.into()),
    }
    .render(&format!("Written by `brickyard cloud-init` for host {}.", host.name))
}

/// Renders the `#cloud-config` document.
pub fn render(b: &Bootstrap) -> Result<String, CloudInitError> {
    let s = |v: &str| Yaml::String(v.to_owned());
    let map = |pairs: Vec<(&str, Yaml)>| Yaml::Hash(pairs.into_iter().map(|(k, v)| (s(k), v)).collect::<Hash>());
    let file = |path: &str, content: &str, mode: &str| {
        map(vec![("path", s(path)), ("content", s(content)), ("owner", s("root:root")), ("permissions", s(mode))])
    };
    let command = |argv: &[&str]| Yaml::Array(argv.iter().map(|a| s(a)).collect());

    let config = agent_toml(&b.host);
    let token = format!("{}\n", b.join_token);
    let contents = [&b.ca_pem, &token, &config];
    let mut runcmd = Vec::new();
    let mut doc = vec![(
        "write_files",
        Yaml::Array(vec![
            file(CA_PATH, &b.ca_pem, "0644"),
            file(TOKEN_PATH, &token, "0600"),
            file(CONFIG_PATH, &config, "0644"),
        ]),
    )];
    match &b.package {
        PackageSource::Repository => doc.push(("packages", Yaml::Array(vec![s(PACKAGE)]))),
        // yum is dnf on RHEL 8+; runs before the commands below.
        PackageSource::Url(url) => runcmd.push(command(&["yum", "-y", "install", url])),
    }
    // The package enables the unit already (preset); enable again in case a local preset
    // says otherwise. `restart`, not `start`: a baked-in agent must pick up this config.
    runcmd.push(command(&["systemctl", "enable", UNIT]));
    runcmd.push(command(&["systemctl", "restart", UNIT]));
    doc.push(("runcmd", Yaml::Array(runcmd)));

    let mut yaml = String::new();
    let mut emitter = YamlEmitter::new(&mut yaml);
    emitter.multiline_strings(contents.iter().all(|c| literal_block_safe(c)));
    emitter.dump(&map(doc))?;
    Ok(format!(
        "#cloud-config\n\
         # brickyard-agent bootstrap for host {name} (written by `brickyard cloud-init`).\n\
         # No private key: the agent makes its own at first boot. The join token below is\n\
         # single-use and expires; `brickyard enroll` spends it.\n\
         {yaml}\n",
        name = b.host.name
    ))
}

/// Whether yaml-rust2's literal block (`|` / `|-`) reproduces `v` exactly. Its emitter picks
/// no indentation indicator and only clips or strips the final newline, so a value whose
/// first line starts with whitespace, that starts with or keeps several trailing newlines, or
/// that holds CR or non-ASCII characters would come back changed. PEM files and our TOML are
/// always safe; anything else makes the whole document fall back to double-quoted strings
/// with escapes, which are exact.
fn literal_block_safe(v: &str) -> bool {
    !v.starts_with([' ', '\t', '\n']) && !v.ends_with("\n\n") && v.chars().all(|c| matches!(c, '\n' | '\t' | ' '..='~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yaml_rust2::YamlLoader;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBCA==\n-----END CERTIFICATE-----\n";
    const TOKEN: &str = "byt1.0123456789abcdef.secret";

    fn bootstrap(address: &str, package: PackageSource) -> Bootstrap {
        Bootstrap {
            host: HostTarget { name: "gluServer1".into(), address: address.into(), port: 7420 },
            ca_pem: CA.into(),
            join_token: TOKEN.into(),
            package,
        }
    }

    fn parse(text: &str) -> Yaml {
        assert!(text.starts_with("#cloud-config\n"), "first line must be #cloud-config: {text}");
        let mut docs = YamlLoader::load_from_str(text).expect("valid YAML");
        assert_eq!(docs.len(), 1, "one document");
        docs.remove(0)
    }

    /// (content, owner, permissions) of each written file, by path.
    fn files(doc: &Yaml) -> Vec<(String, String, String, String)> {
        doc["write_files"]
            .as_vec()
            .expect("write_files list")
            .iter()
            .map(|f| {
                let field = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("{k} is not a string: {f:?}")).to_owned();
                (field("path"), field("content"), field("owner"), field("permissions"))
            })
            .collect()
    }

    fn commands(doc: &Yaml) -> Vec<Vec<&str>> {
        doc["runcmd"]
            .as_vec()
            .expect("runcmd list")
            .iter()
            .map(|c| c.as_vec().expect("argv list").iter().map(|a| a.as_str().expect("string arg")).collect())
            .collect()
    }

    #[test]
    fn files_round_trip_exactly_with_their_modes() {
        let text = render(&bootstrap("192.0.2.11", PackageSource::Repository)).expect("render");
        let doc = parse(&text);
        let root = |s: &str| ("root:root".to_owned(), s.to_owned());
        let got: Vec<_> = files(&doc).into_iter().map(|(p, c, o, m)| (p, c, (o, m))).collect();
        assert_eq!(
            got,
            vec![
                (CA_PATH.into(), CA.into(), root("0644")),
                (TOKEN_PATH.into(), format!("{TOKEN}\n"), root("0600")),
                (
                    CONFIG_PATH.into(),
                    agent_toml(&bootstrap("192.0.2.11", PackageSource::Repository).host),
                    root("0644")
                ),
            ]
        );
        // PEM goes out as a literal block, readable and diffable.
        assert!(text.contains("content: |\n"), "{text}");
        assert!(text.contains("permissions: \"0600\""), "mode must stay a string, not octal/int: {text}");
        assert!(!text.contains("PRIVATE KEY"), "user-data must carry no private key: {text}");
    }

    #[test]
    fn repository_install_uses_packages_and_starts_the_agent() {
        let doc = parse(&render(&bootstrap("192.0.2.11", PackageSource::Repository)).expect("render"));
        assert_eq!(doc["packages"], Yaml::Array(vec![Yaml::String("brickyard-agent".into())]));
        assert_eq!(
            commands(&doc),
            [
                vec!["systemctl", "enable", "brickyard-agent.service"],
                vec!["systemctl", "restart", "brickyard-agent.service"]
            ]
        );
    }

    #[test]
    fn package_url_is_installed_before_the_agent_starts() {
        let url = "https://repo.example/brickyard-agent-0.1.0-1.x86_64.rpm";
        let source = PackageSource::from_arg(Some(url.into())).expect("valid url");
        let doc = parse(&render(&bootstrap("192.0.2.11", source)).expect("render"));
        assert!(doc["packages"].is_badvalue(), "no packages: key with a URL");
        assert_eq!(commands(&doc)[0], ["yum", "-y", "install", url]);
        assert_eq!(commands(&doc).len(), 3);
    }

    #[test]
    fn package_url_must_be_plain_https() {
        for bad in ["http://repo.example/a.rpm", "https://", "https://x/a b.rpm", "https://x/a'.rpm", "ftp://x/a.rpm"] {
            let err = PackageSource::from_arg(Some(bad.into())).expect_err(bad).to_string();
            assert!(err.contains(bad), "error must name the URL: {err}");
        }
        assert_eq!(PackageSource::from_arg(None).expect("none"), PackageSource::Repository);
    }

    #[test]
    fn agent_listens_on_the_spec_port_in_the_address_family() {
        let mut host = HostTarget { name: "client1".into(), address: "192.0.2.21".into(), port: 7421 };
        assert!(agent_toml(&host).contains("listen = \"0.0.0.0:7421\"\n"));
        host.address = "2001:db8::21".into();
        assert!(agent_toml(&host).contains("listen = \"[::]:7421\"\n"));
        host.address = "client1.example".into();
        assert!(agent_toml(&host).contains("listen = \"0.0.0.0:7421\"\n"));
        let config: toml::Table = toml::from_str(&agent_toml(&host)).expect("valid TOML");
        assert_eq!(config["coordinator_identity"].as_str(), Some(COORDINATOR_IDENTITY));
        assert_eq!(config["service_manager"].as_str(), Some("systemd"));
    }

    /// Values a YAML 1.1 reader would retype or misparse survive as the exact strings.
    #[test]
    fn awkward_contents_survive() {
        let mut b = bootstrap("192.0.2.11", PackageSource::Repository);
        for content in [
            "yes",
            "0600",
            "no trailing newline\nx",
            "  leading spaces\n",
            "\tleading tab\n",
            "\nleading newline\n",
            "two trailing newlines\n\n",
            "crlf\r\nline\r\n",
            "a: b\n# c\n  - d\n",
            "tab\there\n",
            "\"quoted\" 'single' \\ back\n",
            "non-ascii é\u{feff}\n",
            "",
        ] {
            b.ca_pem = content.into();
            let doc = parse(&render(&b).expect("render"));
            assert_eq!(files(&doc)[0].1, content, "content {content:?}");
        }
    }
}
