//! Each server's `disk`: named by exactly one of a device under /dev (`/dev/disk/by-id/...`
//! links included) and a Cinder volume id, `wipe` only on a disk named by its identity (a
//! by-id link or a Cinder volume), a mount point that is absolute and outside the system trees
//! (the path policy, `AbsPath::require_outside_system`), a
//! supported filesystem and partition table, and a label the filesystem can take.

use brickyard_proto::types::{AbsPath, CinderVolume, DevicePath, Filesystem, FsLabel};

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    for (i, server) in spec.servers.iter().enumerate() {
        let Some(disk) = &server.disk else { continue };
        match (&disk.device, &disk.cinder_volume) {
            (Some(device), None) => {
                if let Err(e) = DevicePath::new(device) {
                    issues.push(at!["server", i, "disk", "device"], e.to_string());
                }
            }
            (None, Some(volume)) => {
                if let Err(e) = CinderVolume::new(volume) {
                    issues.push(at!["server", i, "disk", "cinder_volume"], e.to_string());
                }
            }
            (Some(_), Some(_)) => issues.push(
                at!["server", i, "disk", "cinder_volume"],
                "give the disk's device or its cinder_volume, not both",
            ),
            (None, None) => issues.push(
                at!["server", i, "disk"],
                "name the disk: device = \"/dev/vdb\" (or a /dev/disk/by-id/ path) or cinder_volume = \"VOLUME-UUID\"",
            ),
        }
        match AbsPath::checked("disk mount", &disk.mount) {
            Err(e) => issues.push(at!["server", i, "disk", "mount"], e.to_string()),
            Ok(p) => {
                if let Err(e) = p.require_outside_system() {
                    issues.push(at!["server", i, "disk", "mount"], format!("server {:?}: {e}", server.name));
                }
            }
        }
        let named_by_id =
            disk.cinder_volume.is_some() || disk.device.as_deref().is_some_and(|d| d.starts_with("/dev/disk/by-id/"));
        if disk.wipe && !named_by_id {
            issues.push(
                at!["server", i, "disk", "wipe"],
                format!(
                    "server {:?}: wipe = true needs the disk's identity, since device names can change between boots: \
                     name it by a /dev/disk/by-id/ device or by cinder_volume",
                    server.name
                ),
            );
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
