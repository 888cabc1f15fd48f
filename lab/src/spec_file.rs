//! DIR/cluster.toml: the lab written down in the ordinary cluster-spec format, so every
//! `brickyard` command works on a lab unchanged. Servers carry their loop disk (xfs on
//! /vdisk); one replicated volume `gluV1` over all servers, tuned as the seed tunes it
//! (`performance.cache-size` 512MB); every client mounts it on /dataShare (the seed's names).

use std::fmt::Write;

use super::naming::{HostPlan, LabName, Role};

pub const SPEC_FILE: &str = "cluster.toml";
pub const VOLUME: &str = "gluV1";
pub const DISK_MOUNT: &str = "/vdisk";
pub const CLIENT_MOUNT: &str = "/dataShare";
/// The seed's volume tuning.
pub const VOLUME_OPTIONS: [(&str, &str); 1] = [("performance.cache-size", "512MB")];

/// The volume layout for `servers` bricks: replica 3 when the count allows it, else replica 2
/// (which needs the explicit opt-in), a plain distribute volume for a single server.
fn volume_layout(servers: usize) -> Option<String> {
    match servers {
        0 => None,
        1 => Some("type = \"distribute\"\n".into()),
        n if n % 3 == 0 => Some("type = \"replicate\"\nreplica = 3\n".into()),
        n if n % 2 == 0 => Some("type = \"replicate\"\nreplica = 2\nallow_replica2 = true\n".into()),
        _ => Some("type = \"distribute\"\n".into()),
    }
}

/// Renders the spec. `disks` gives each server's loop device, in the order of `hosts`' servers.
pub fn render(lab: &LabName, hosts: &[HostPlan], disks: &[(String, String)]) -> String {
    let mut out = format!(
        "# Lab \"{lab}\", written by `brickyard-lab up`. Use it from the lab's control namespace:\n\
         #   brickyard-lab run --name {lab} -- facts -f <this file>\n\
         version = 1\n\n[pool]\nname = \"{lab}\"\npki_dir = \"pki\"\n"
    );
    for host in hosts.iter().filter(|h| h.role == Role::Server) {
        let device = disks.iter().find(|(h, _)| *h == host.name).map(|(_, d)| d.as_str()).unwrap_or_default();
        let _ = write!(
            out,
            "\n[[server]]\nname = \"{}\"\naddress = \"{}\"\n\
             disk = {{ device = \"{device}\", filesystem = \"xfs\", mount = \"{DISK_MOUNT}\" }}\n",
            host.name, host.address
        );
    }
    let servers = hosts.iter().filter(|h| h.role == Role::Server).count();
    let layout = volume_layout(servers);
    if let Some(layout) = &layout {
        let options: Vec<String> =
            VOLUME_OPTIONS.iter().map(|(key, value)| format!("\"{key}\" = \"{value}\"")).collect();
        let _ = write!(
            out,
            "\n[[volume]]\nname = \"{VOLUME}\"\n{layout}brick_dir = \"brick1\"\noptions = {{ {} }}\n",
            options.join(", ")
        );
    }
    for host in hosts.iter().filter(|h| h.role == Role::Client) {
        let mounts = if layout.is_some() {
            format!("[{{ volume = \"{VOLUME}\", path = \"{CLIENT_MOUNT}\" }}]")
        } else {
            "[]".into()
        };
        let _ =
            write!(out, "\n[[client]]\nname = \"{}\"\naddress = \"{}\"\nmounts = {mounts}\n", host.name, host.address);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::plan_hosts;
    use brickyard::spec::Spec;

    fn load(servers: usize, clients: usize) -> Spec {
        let lab = LabName::new("t").unwrap();
        let hosts = plan_hosts(&lab, servers, clients).unwrap();
        let disks: Vec<_> = (1..=servers).map(|i| (format!("gluServer{i}"), format!("/dev/loop{i}"))).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPEC_FILE);
        std::fs::write(&path, render(&lab, &hosts, &disks)).unwrap();
        // `load` runs every spec check: the lab's spec passes them.
        brickyard::validate::load(&path).unwrap_or_else(|e| panic!("{servers}+{clients}: {e}"))
    }

    #[test]
    fn the_default_lab_is_the_seed() {
        let spec = load(2, 2);
        assert_eq!(spec.pool.name, "t");
        assert!(spec.pki_dir().ends_with("pki"));
        assert_eq!(spec.servers.len(), 2);
        let disk = spec.servers[1].disk.as_ref().unwrap();
        assert_eq!((disk.device.as_deref(), disk.mount.as_str()), (Some("/dev/loop2"), "/vdisk"));
        assert_eq!(disk.filesystem.as_deref(), Some("xfs"));
        let volume = &spec.volumes[0];
        assert_eq!((volume.name.as_str(), volume.kind.as_str(), volume.replica), ("gluV1", "replicate", Some(2)));
        assert!(volume.allow_replica2);
        assert_eq!(volume.brick_dir, "brick1");
        let options: Vec<_> = volume.options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(options, [("performance.cache-size", "512MB")]);
        assert_eq!(spec.clients[1].mounts[0].path, "/dataShare");
        assert_eq!(spec.hosts().len(), 4);
        assert!(spec.hosts().iter().all(|h| h.port == 7420));
    }

    #[test]
    fn volume_layouts_follow_the_server_count() {
        let three = load(3, 1);
        assert_eq!(three.volumes[0].replica, Some(3));
        assert!(!three.volumes[0].allow_replica2);
        assert_eq!(load(1, 1).volumes[0].kind, "distribute");
        assert_eq!(load(4, 0).volumes[0].replica, Some(2));
        let clients_only = load(0, 2);
        assert!(clients_only.volumes.is_empty());
        assert!(clients_only.clients[0].mounts.is_empty());
    }
}
