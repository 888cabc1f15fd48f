//! Each server's `disk`: a device under /dev, a mount point that is absolute and not `/`, a
//! supported filesystem and partition table, and a label the filesystem can take.

use brickyard_proto::types::{AbsPath, DevicePath, Filesystem, FsLabel};

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    for (i, server) in spec.servers.iter().enumerate() {
        let Some(disk) = &server.disk else { continue };
        if let Err(e) = DevicePath::new(&disk.device) {
            issues.push(at!["server", i, "disk", "device"], e.to_string());
        }
        match AbsPath::checked("disk mount", &disk.mount) {
            Err(e) => issues.push(at!["server", i, "disk", "mount"], e.to_string()),
            Ok(p) if p.is_root() => {
                issues.push(at!["server", i, "disk", "mount"], "a brick disk cannot be mounted on /")
            }
            Ok(_) => {}
        }
        let filesystem = match disk.filesystem.as_deref().map(Filesystem::parse) {
            None => Some(Filesystem::Xfs),
            Some(Ok(fs)) => Some(fs),
            Some(Err(e)) => {
                issues.push(at!["server", i, "disk", "filesystem"], e.to_string());
                None
            }
        };
        if let Some(table) = &disk.table {
            if !matches!(table.as_str(), "gpt" | "msdos") {
                issues.push(at!["server", i, "disk", "table"], format!("{table:?} is not supported (gpt or msdos)"));
            }
        }
        if let (Some(label), Some(fs)) = (&disk.label, filesystem) {
            if let Err(e) = FsLabel::new(label, fs) {
                issues.push(at!["server", i, "disk", "label"], e.to_string());
            }
        }
    }
}
