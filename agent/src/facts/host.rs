//! Host capability facts: FUSE (/dev/fuse and `fuse` in /proc/filesystems) and the firewall
//! backends (firewalld running per its pid file, iptables and nft installed). Reads only.

use std::path::Path;

use brickyard_proto::v1;

use crate::runner::find_program;

const FIREWALLD_PID_FILES: &[&str] = &["/run/firewalld.pid", "/var/run/firewalld.pid"];

/// Whether /proc/filesystems lists the `fuse` filesystem (`nodev\tfuse`).
pub fn filesystems_has_fuse(text: &str) -> bool {
    text.lines().any(|l| l.split_whitespace().last() == Some("fuse"))
}

pub fn fuse_available() -> bool {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    Path::new("/dev/fuse").exists() && filesystems_has_fuse(&fs)
}

pub fn firewall() -> v1::Firewall {
    v1::Firewall {
        firewalld_running: super::process::running(FIREWALLD_PID_FILES, "firewalld"),
        iptables: find_program("iptables").is_ok(),
        nft: find_program("nft").is_ok(),
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
