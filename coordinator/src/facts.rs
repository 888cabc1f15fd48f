//! `brickyard facts`: every host's facts, asked the one way `plan` and `apply` ask them
//! (`Agents::every_host_facts`); renders them as a table or JSON. Network only.

use std::sync::Arc;

use brickyard_proto::v1;
use serde_json::{json, Value};

use crate::agents::{AgentError, Agents, Devices};
use crate::output::{human_bytes, Table};
use crate::spec::{HostTarget, Spec};

/// One host's answer.
#[derive(Debug)]
pub struct HostFacts {
    pub host: HostTarget,
    pub result: Result<v1::Facts, AgentError>,
}

/// Facts of every host of the spec, asked concurrently; answers in spec order.
pub async fn gather(spec: &Spec) -> Vec<HostFacts> {
    let agents = Arc::new(Agents::new(spec));
    agents
        .every_host_facts(Devices::Listed)
        .await
        .into_iter()
        .map(|(host, result)| HostFacts { host, result })
        .collect()
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn firewall_text(fw: Option<&v1::Firewall>) -> String {
    let fw = fw.copied().unwrap_or_default();
    let names: Vec<&str> = [(fw.firewalld_running, "firewalld"), (fw.iptables, "iptables"), (fw.nft, "nft")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn selinux_mode_name(mode: v1::SelinuxMode) -> &'static str {
    match mode {
        v1::SelinuxMode::Unspecified => "-",
        v1::SelinuxMode::Disabled => "disabled",
        v1::SelinuxMode::Permissive => "permissive",
        v1::SelinuxMode::Enforcing => "enforcing",
    }
}

/// The mode now, and the configured one when the next boot changes it
/// (`disabled (boot: enforcing)`).
fn selinux_text(selinux: Option<&v1::Selinux>) -> String {
    let Some(selinux) = selinux else { return "-".into() };
    let (now, configured) = (selinux.mode(), selinux.configured());
    if configured == v1::SelinuxMode::Unspecified || configured == now {
        selinux_mode_name(now).into()
    } else {
        format!("{} (boot: {})", selinux_mode_name(now), selinux_mode_name(configured))
    }
}

/// One line per device and child: `path type size [fs label uuid] [serial wwn by-id] [mounts]
/// [root/boot]` (serial and by-id tell which disk a Cinder volume is: a virtio disk's serial is
/// the volume id's first 20 characters).
fn device_lines(dev: &v1::BlockDevice, depth: usize, out: &mut Vec<String>) {
    let mut parts = vec![dev.path.clone(), dev.type_name.clone(), human_bytes(dev.size_bytes)];
    if !dev.partition_table.is_empty() {
        parts.push(format!("table={}", dev.partition_table));
    }
    parts.push(format!("fs={}", or_dash(&dev.filesystem)));
    if !dev.label.is_empty() {
        parts.push(format!("label={}", dev.label));
    }
    if !dev.uuid.is_empty() {
        parts.push(format!("uuid={}", dev.uuid));
    }
    if !dev.serial.is_empty() {
        parts.push(format!("serial={}", dev.serial));
    }
    if !dev.wwn.is_empty() {
        parts.push(format!("wwn={}", dev.wwn));
    }
    if !dev.by_id.is_empty() {
        parts.push(format!("by-id={}", dev.by_id.join(",")));
    }
    if !dev.mount_points.is_empty() {
        parts.push(format!("on {}", dev.mount_points.join(",")));
    }
    if dev.carries_root {
        parts.push("[root]".into());
    }
    if dev.carries_boot {
        parts.push("[boot]".into());
    }
    out.push(format!("{}{}", "  ".repeat(depth + 1), parts.join(" ")));
    for child in &dev.children {
        device_lines(child, depth + 1, out);
    }
}

/// `MOUNT from SOURCE: FREE free of TOTAL`, or why it does not answer.
fn mount_line(m: &v1::GlusterMount) -> String {
    let state = if m.error.is_empty() {
        format!("{} free of {}", human_bytes(m.size_free), human_bytes(m.size_total))
    } else {
        format!("does not answer ({})", m.error)
    };
    format!("{} from {}: {state}", m.mount_point, m.source)
}

/// The human view: a summary table, each host's block devices and glusterfs mounts, then the unreachable hosts.
pub fn render_text(answers: &[HostFacts]) -> String {
    let mut table = Table::new([
        "HOST",
        "ADDRESS",
        "HOSTNAME",
        "OS",
        "KERNEL",
        "CPUS",
        "MEMORY",
        "GLUSTERFS",
        "GLUSTERD",
        "UUID",
        "FUSE",
        "FIREWALL",
        "SERVICES",
        "SELINUX",
    ]);
    let mut devices = String::new();
    let mut failures = String::new();
    for answer in answers {
        let host = &answer.host;
        match &answer.result {
            Ok(f) => {
                let services = match f.service_manager() {
                    v1::ServiceManager::Systemd => "systemd",
                    v1::ServiceManager::Direct => "direct",
                    v1::ServiceManager::Unspecified => "-",
                };
                table.row([
                    host.name.clone(),
                    format!("{}:{}", host.address, host.port),
                    f.hostname.clone(),
                    format!("{} {}", f.os_id, f.os_version).trim().to_owned(),
                    f.kernel.clone(),
                    f.cpus.to_string(),
                    human_bytes(f.memory_bytes),
                    or_dash(&f.glusterfs_version).to_owned(),
                    if f.glusterd_running { "running" } else { "stopped" }.to_owned(),
                    or_dash(&f.glusterd_uuid).to_owned(),
                    yes_no(f.fuse_available).to_owned(),
                    firewall_text(f.firewall.as_ref()),
                    services.to_owned(),
                    selinux_text(f.selinux.as_ref()),
                ]);
                let mut lines = Vec::new();
                for dev in &f.block_devices {
                    device_lines(dev, 0, &mut lines);
                }
                devices.push_str(&format!("{} block devices:\n", host.name));
                if lines.is_empty() {
                    devices.push_str("  (none)\n");
                }
                for line in lines {
                    devices.push_str(&line);
                    devices.push('\n');
                }
                if !f.gluster_mounts.is_empty() {
                    devices.push_str(&format!("{} glusterfs mounts:\n", host.name));
                    for m in &f.gluster_mounts {
                        devices.push_str(&format!("  {}\n", mount_line(m)));
                    }
                }
            }
            Err(err) => failures.push_str(&format!("  {} ({}:{}): {err}\n", host.name, host.address, host.port)),
        }
    }
    let mut out = table.render();
    if !devices.is_empty() {
        out.push('\n');
        out.push_str(&devices);
    }
    if !failures.is_empty() {
        out.push_str("\nunreachable:\n");
        out.push_str(&failures);
    }
    out
}

fn device_json(dev: &v1::BlockDevice) -> Value {
    json!({
        "name": dev.name,
        "path": dev.path,
        "size_bytes": dev.size_bytes,
        "type": dev.type_name,
        "partition_table": dev.partition_table,
        "filesystem": dev.filesystem,
        "label": dev.label,
        "uuid": dev.uuid,
        "mount_points": dev.mount_points,
        "carries_root": dev.carries_root,
        "carries_boot": dev.carries_boot,
        "serial": dev.serial,
        "wwn": dev.wwn,
        "by_id": dev.by_id,
        "read_only": dev.read_only,
        "removable": dev.removable,
        "children": dev.children.iter().map(device_json).collect::<Vec<_>>(),
    })
}

pub fn facts_json(f: &v1::Facts) -> Value {
    let fw = f.firewall.unwrap_or_default();
    json!({
        "hostname": f.hostname,
        "os_id": f.os_id,
        "os_version": f.os_version,
        "os_id_like": f.os_id_like,
        "kernel": f.kernel,
        "cpus": f.cpus,
        "memory_bytes": f.memory_bytes,
        "block_devices": f.block_devices.iter().map(device_json).collect::<Vec<_>>(),
        "glusterfs_version": f.glusterfs_version,
        "glusterd_running": f.glusterd_running,
        "glusterd_uuid": f.glusterd_uuid,
        "fuse_available": f.fuse_available,
        "firewall": { "firewalld_running": fw.firewalld_running, "iptables": fw.iptables, "nft": fw.nft },
        "service_manager": f.service_manager().as_str_name(),
        "agent_version": f.agent_version,
        "selinux": f.selinux.map(|s| json!({
            "mode": s.mode().as_str_name(),
            "configured": s.configured().as_str_name(),
        })),
        "gluster_mounts": f.gluster_mounts.iter().map(|m| json!({
            "source": m.source,
            "mount_point": m.mount_point,
            "size_total": m.size_total,
            "size_free": m.size_free,
            "error": m.error,
            "stale": m.stale,
        })).collect::<Vec<_>>(),
    })
}

/// The machine view: one object per host with `facts` or `error`.
pub fn render_json(answers: &[HostFacts]) -> Value {
    Value::Array(
        answers
            .iter()
            .map(|a| {
                let mut host = json!({ "name": a.host.name, "address": a.host.address, "port": a.host.port });
                match &a.result {
                    Ok(f) => host["facts"] = facts_json(f),
                    Err(e) => host["error"] = Value::String(e.to_string()),
                }
                host
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Vec<HostFacts> {
        let disk = v1::BlockDevice {
            name: "vdb".into(),
            path: "/dev/vdb".into(),
            size_bytes: 10 << 30,
            type_name: "disk".into(),
            serial: "ec4eea2a-f0d9-4614-b".into(),
            by_id: vec!["/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b".into()],
            children: vec![v1::BlockDevice {
                path: "/dev/vdb1".into(),
                type_name: "part".into(),
                filesystem: "ext4".into(),
                mount_points: vec!["/vdisk".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let facts = v1::Facts {
            hostname: "gluServer1".into(),
            os_id: "debian".into(),
            os_version: "12".into(),
            cpus: 2,
            memory_bytes: 4 << 30,
            glusterfs_version: "10.3".into(),
            block_devices: vec![disk],
            selinux: Some(v1::Selinux {
                mode: v1::SelinuxMode::Permissive.into(),
                configured: v1::SelinuxMode::Enforcing.into(),
            }),
            gluster_mounts: vec![v1::GlusterMount {
                source: "gluServer1:/gluV1".into(),
                mount_point: "/dataShare".into(),
                error: "no answer to statvfs() within 5s".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let host = |name: &str| HostTarget { name: name.into(), address: "192.0.2.11".into(), port: 7420 };
        vec![
            HostFacts { host: host("gluServer1"), result: Ok(facts) },
            HostFacts {
                host: host("gluServer2"),
                result: Err(AgentError::Timeout { host: "gluServer2".into(), rpc: "GetFacts" }),
            },
        ]
    }

    #[test]
    fn text_lists_devices_and_unreachable_hosts() {
        let text = render_text(&answers());
        assert!(text.starts_with("HOST "), "{text}");
        assert!(text.contains("debian 12") && text.contains("10.3") && text.contains("4.0 GiB"), "{text}");
        assert!(
            text.contains(
                "  /dev/vdb disk 10.0 GiB fs=- serial=ec4eea2a-f0d9-4614-b \
                 by-id=/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b\n"
            ),
            "{text}"
        );
        assert!(text.contains(" permissive (boot: enforcing)\n"), "{text}");
        assert!(text.contains("    /dev/vdb1 part 0 B fs=ext4 on /vdisk"), "{text}");
        assert!(
            text.contains(
                "gluServer1 glusterfs mounts:\n  /dataShare from gluServer1:/gluV1: does not answer \
                 (no answer to statvfs() within 5s)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("unreachable:\n  gluServer2 (192.0.2.11:7420): host gluServer2: no answer to GetFacts"),
            "{text}"
        );
    }

    #[test]
    fn json_has_facts_or_error() {
        let v = render_json(&answers());
        assert_eq!(v[0]["facts"]["block_devices"][0]["children"][0]["filesystem"], "ext4");
        assert_eq!(v[0]["facts"]["service_manager"], "SERVICE_MANAGER_UNSPECIFIED");
        assert_eq!(v[0]["facts"]["block_devices"][0]["serial"], "ec4eea2a-f0d9-4614-b");
        assert_eq!(v[0]["facts"]["block_devices"][0]["by_id"][0], "/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b");
        assert_eq!(v[0]["facts"]["selinux"]["mode"], "SELINUX_MODE_PERMISSIVE");
        assert_eq!(v[0]["facts"]["gluster_mounts"][0]["mount_point"], "/dataShare");
        assert_eq!(v[0]["facts"]["gluster_mounts"][0]["error"], "no answer to statvfs() within 5s");
        assert!(v[1]["error"].as_str().unwrap().contains("gluServer2"));
        assert!(v[1].get("facts").is_none());
    }
}
