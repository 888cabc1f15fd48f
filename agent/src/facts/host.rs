//! Host capability facts: the running kernel, FUSE (/dev/fuse and `fuse` in /proc/filesystems)
//! and the firewall backends (firewalld running per its pid file, iptables and nft installed).
//! Reads only.

use std::path::Path;

use brickyard_proto::v1;

use crate::host::runner::Runner;

const FIREWALLD_PID_FILES: &[&str] = &["/run/firewalld.pid", "/var/run/firewalld.pid"];

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
