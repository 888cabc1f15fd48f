//! The agent's configuration file (`/etc/brickyard/agent.toml`) as one serde shape: the agent
//! reads it (unknown keys rejected) and `brickyard cloud-init` and the lab write it, so the
//! reader and the writers cannot drift apart. Validation of the values is the agent's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The pid file of a glusterd started without a service manager (`direct`): the agent writes it
/// when it starts glusterd itself, and a lab host's boot, which starts glusterd there, too.
pub const DIRECT_GLUSTERD_PID_FILE: &str = "/run/glusterd.pid";

/// Where the agent installs the pool CRL for gluster (`HASH.r0`, OpenSSL's hashed-directory
/// name) and what the coordinator sets as a TLS volume's `ssl.crl-path`.
pub const GLUSTER_CRL_DIR: &str = "/etc/ssl/glusterfs-crl";

/// How the agent starts daemons: `auto` = systemd when it runs the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceManagerSetting {
    #[default]
    Auto,
    Systemd,
    Direct,
}

/// The file's keys, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfigFile {
    /// `ADDR:PORT`, `[V6]:PORT` or a bare IP address; default `0.0.0.0:7420`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator_identity: Option<String>,
    #[serde(default)]
    pub service_manager: ServiceManagerSetting,
    /// The pool CA's revocation list (written by the coordinator); default `crl.pem` beside
    /// the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
    /// A file holding this host's join token, read while the host is not enrolled yet (no
    /// `cert`); removed once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_token: Option<PathBuf>,
}

impl AgentConfigFile {
    /// The file's text, headed by `# {comment}`.
    pub fn render(&self, comment: &str) -> String {
        let body = toml::to_string(self).expect("an agent config always serializes to TOML");
        format!("# {comment}\n{body}")
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_the_same() {
        let file = AgentConfigFile {
            listen: Some("[::]:7421".into()),
            ca: "/etc/brickyard/pki/ca.pem".into(),
            cert: "/etc/brickyard/pki/agent.pem".into(),
            key: "/etc/brickyard/pki/agent.key".into(),
            coordinator_identity: Some("brickyard-coordinator".into()),
            service_manager: ServiceManagerSetting::Systemd,
            crl: None,
            join_token: Some("/etc/brickyard/pki/join-token".into()),
        };
        let text = file.render("Written for host gluServer1.");
        assert!(text.starts_with("# Written for host gluServer1.\n"), "{text}");
        assert!(
            text.contains("listen = \"[::]:7421\"\n") && text.contains("service_manager = \"systemd\"\n"),
            "{text}"
        );
        assert_eq!(AgentConfigFile::parse(&text).unwrap(), file);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = AgentConfigFile::parse("ca = \"a\"\ncert = \"b\"\nkey = \"c\"\ncolour = \"blue\"\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
