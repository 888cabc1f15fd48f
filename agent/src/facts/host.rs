//! Host capability facts: the running kernel, FUSE (/dev/fuse and `fuse` in /proc/filesystems)
//! the firewall backends (firewalld running per its pid file, iptables and nft installed) and
//! the pool as the managed block of /etc/hosts lists it. Reads only.

use std::path::Path;

use brickyard_proto::v1;

use brickyard_proto::types::HostName;

use crate::host::etcfile;
use crate::host::runner::Runner;

pub const HOSTS: &str = "/etc/hosts";
/// The managed block's name in /etc/hosts (written by `EnsureHosts`).
pub const POOL_BLOCK: &str = "pool";

const FIREWALLD_PID_FILES: &[&str] = &["/run/firewalld.pid", "/var/run/firewalld.pid"];

/// The entries of the managed block in /etc/hosts: the pool as the last `EnsureHosts` wrote
/// it (how a client that left the spec is still found). Lines that do not parse are skipped.
pub fn pool_hosts() -> Vec<v1::HostEntry> {
    parse_pool_block(&etcfile::read_or_empty(Path::new(HOSTS)).unwrap_or_default())
}

pub fn parse_pool_block(contents: &str) -> Vec<v1::HostEntry> {
    etcfile::get_block(contents, POOL_BLOCK)
        .into_iter()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.next()?.parse::<std::net::IpAddr>().ok()?;
            let name = HostName::new(fields.next()?).ok()?;
            Some(v1::HostEntry { name: name.to_string(), address: address.to_string() })
        })
        .collect()
}

/// The running kernel's release, e.g. `6.1.0-27-amd64`.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Whether /proc/filesystems lists the `fuse` filesystem (`nodev\tfuse`).
pub fn filesystems_has_fuse(text: &str) -> bool {
    text.lines().any(|l| l.split_whitespace().last() == Some("fuse"))
}

pub fn fuse_available() -> bool {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    Path::new("/dev/fuse").exists() && filesystems_has_fuse(&fs)
}

pub fn firewall(runner: &dyn Runner) -> v1::Firewall {
    v1::Firewall {
        firewalld_running: crate::host::process::running(FIREWALLD_PID_FILES, "firewalld"),
        iptables: runner.find("iptables").is_ok(),
        nft: runner.find("nft").is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_in_proc_filesystems() {
        assert!(filesystems_has_fuse("nodev\tsysfs\n\text4\n\tfuseblk\nnodev\tfuse\nnodev\tfusectl\n"));
        assert!(!filesystems_has_fuse("nodev\tsysfs\n\tfuseblk\nnodev\tfusectl\n"));
    }
}
